#!/usr/bin/env bash
# images/bench.sh — time `conf wrap` on a ~500 MB image: the python, node
# and java rootfs tarballs of build.sh (run it first: images/build.sh)
# unpacked on top of each other, as one OCI image of two gzip layers.
# Prints conf wrap's phase timings (CONF_TIMING) and the total.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${CONF_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/conf-images}
bin=${CONF_BIN:-$repo/target/release}
out=${CONF_IMAGES_OUT:-$repo/target/images}
mkdir -p "$out"
w=$(mktemp -d "$out/.bench-XXXXXX")
trap 'rm -rf "$w"' EXIT
tars=()
for n in java node python; do
    t=$(ls "$cache"/rootfs-$n-*.tar 2>/dev/null | head -1) || true
    [ -n "$t" ] || { echo "bench.sh: no $n rootfs in $cache; run images/build.sh first" >&2; exit 1; }
    tars+=("$t")
done
umoci init --layout "$w/oci"
umoci new --image "$w/oci:base"
umoci unpack --image "$w/oci:base" "$w/bundle" >/dev/null
tar --numeric-owner -C "$w/bundle/rootfs" -xf "${tars[0]}"
umoci repack --image "$w/oci:base" "$w/bundle"
tar --numeric-owner -C "$w/bundle/rootfs" -xf "${tars[1]}"
tar --numeric-owner -C "$w/bundle/rootfs" -xf "${tars[2]}"
umoci repack --image "$w/oci:big" "$w/bundle"
umoci config --image "$w/oci:big" --config.entrypoint python3 --config.cmd -c --config.cmd 'print(1)'
umoci gc --layout "$w/oci"
size=$(du -sm "$w/bundle/rootfs" | cut -f1)
blobs=$(du -sm "$w/oci/blobs" | cut -f1)
rm -rf "$w/bundle"
"$bin/conf" keygen -o "$w/key.pem" >/dev/null
sync
echo "image: $size MB unpacked, $blobs MB of gzip layers; $(nproc) cores"
start=$(date +%s.%N)
CONF_TIMING=1 "$bin/conf" wrap "oci:$w/oci:big" -o "docker-archive:$w/big-conf.tar" --key "$w/key.pem" --date 20250101 >"$w/wrap.txt"
end=$(date +%s.%N)
grep -E 'runtime|mrenclave' "$w/wrap.txt"
echo "conf wrap: $(echo "$end - $start" | bc) s"
