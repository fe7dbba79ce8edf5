#!/usr/bin/env bash
# images/build.sh — build the example images (python, node, java) from
# Debian packages, wrap and sign them with conf, run each wrapped image with
# `conf-run --image` and check what it prints.
#
#   images/build.sh [--quick] [NAME...]
#
#   --quick        only the python image (what CI runs)
#   NAME...        python, node, java (default: all three)
#   --no-podman    do not check that `podman load` accepts the images
#
# Environment:
#   CONF_IMAGES_CACHE  rootfs tarballs are kept here (default ~/.cache/conf-images);
#                      a second run does not debootstrap again
#   CONF_BIN           directory with conf and conf-run from one build (default:
#                      target/release, built by `cargo build --release` first)
#   CONF_IMAGES_OUT    where images and logs go (default target/images)
#   DEBIAN_MIRROR      default http://deb.debian.org/debian
#
# Each image: debootstrap a minimal bookworm rootfs with the recipe's
# packages (cached as a tarball), make an OCI image with umoci (layer 1: the
# rootfs, layer 2: the app), `conf wrap` it with a signing key made for this
# run (never committed), run it with `conf-run --image` and compare its
# output with the same program run natively in the rootfs (chroot), or with
# the recipe's EXPECT pattern. Ends with "N passed, M failed".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${CONF_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/conf-images}
bin=${CONF_BIN:-$repo/target/release}
out=${CONF_IMAGES_OUT:-$repo/target/images}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
date=20250101
podman_check=1
names=()

while [ $# -gt 0 ]; do
    case $1 in
        --quick) names=(python) ;;
        --no-podman) podman_check=0 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        python|node|java) names+=("$1") ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#names[@]} -gt 0 ] || names=(python node java)

log() { echo "[images] $*" >&2; }

# Tools: install what is missing (as root, from Debian's packages).
missing=()
for t in debootstrap:debootstrap umoci:umoci skopeo:skopeo; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: needs ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
if [ -z "${CONF_BIN:-}" ]; then
    # Both from the same build: conf measures with the LibOS conf-run carries.
    log "building conf and conf-run (release)"
    (cd "$repo" && cargo build --release -q -p conf-tools -p conf-loader)
fi

mkdir -p "$cache" "$out"
work=$(mktemp -d "$out/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT

# A signing key for this run only.
key=$work/test-signing-key.pem
"$bin/conf" keygen -o "$key" >/dev/null

# rootfs NAME PACKAGES -> path of the cached rootfs tarball
rootfs() {
    local name=$1 packages=$2
    local id
    id=$(printf '%s\n' "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)
    local tarball=$cache/rootfs-$name-$suite-$id.tar
    if [ ! -s "$tarball" ]; then
        local dir=$work/debootstrap-$name
        log "$name: debootstrap $suite with ${packages} (cached afterwards in $tarball)"
        debootstrap --variant=minbase --include="${packages// /,}" "$suite" "$dir" "$mirror" \
            >"$out/$name-debootstrap.log" 2>&1 ||
            { tail -20 "$out/$name-debootstrap.log" >&2; return 1; }
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
        tar --numeric-owner --sort=name --mtime=@0 -C "$dir" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$dir"
    fi
    echo "$tarball"
}

# build_one NAME: make, wrap, run and check one image.
build_one() {
    local name=$1
    local PACKAGES="" ENTRYPOINT="" CMD="" WORKDIR="/" ENV="" COMPILE_JAVA=0 EXPECT=""
    # shellcheck disable=SC1090
    . "$here/$name/recipe"
    local tarball
    tarball=$(rootfs "$name" "$PACKAGES")
    [ -s "$tarball" ]

    local w=$work/$name
    mkdir -p "$w"
    # The app, compiled if needed.
    cp -r "$here/$name/app" "$w/app"
    if [ "$COMPILE_JAVA" = 1 ]; then
        command -v javac >/dev/null || { log "$name: skipped: no javac to compile Hello.java"; return 2; }
        javac --release 17 -d "$w/app" "$w/app"/*.java
    fi

    # The OCI image: layer 1 the rootfs, layer 2 the app.
    log "$name: OCI image with umoci"
    umoci init --layout "$w/oci"
    umoci new --image "$w/oci:base"
    umoci unpack --image "$w/oci:base" "$w/bundle" >/dev/null
    tar --numeric-owner -C "$w/bundle/rootfs" -xf "$tarball"
    umoci repack --image "$w/oci:base" "$w/bundle"
    mkdir -p "$w/bundle/rootfs/app"
    cp -r "$w/app/." "$w/bundle/rootfs/app/"
    umoci repack --image "$w/oci:app" "$w/bundle"
    local cfg=(--config.workingdir "$WORKDIR" --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    local e
    for e in $ENTRYPOINT; do cfg+=(--config.entrypoint "$e"); done
    for e in $CMD; do cfg+=(--config.cmd "$e"); done
    for e in $ENV; do cfg+=(--config.env "$e"); done
    umoci config --image "$w/oci:app" "${cfg[@]}"
    umoci gc --layout "$w/oci"

    # Wrap and sign.
    local image=docker-archive:$out/$name-conf.tar
    log "$name: conf wrap"
    local t0=$SECONDS
    "$bin/conf" wrap "oci:$w/oci:app" -o "$image:conf-example/$name:latest" --key "$key" --date "$date" \
        >"$out/$name-wrap.txt" 2>"$out/$name-wrap.log" || { cat "$out/$name-wrap.log" >&2; return 1; }
    log "$name: wrapped in $((SECONDS - t0)) s: $(grep mrenclave "$out/$name-wrap.txt")"
    "$bin/conf" inspect "$image" >"$out/$name-inspect.txt"

    # Run it, and the same program natively in the rootfs.
    log "$name: conf-run --image"
    local status=0
    timeout 300 "$bin/conf-run" --image "$image" >"$out/$name-enclave.out" 2>"$out/$name-enclave.err" </dev/null || status=$?
    if [ $status != 0 ]; then
        log "$name: FAILED: conf-run exited with $status"
        tail -20 "$out/$name-enclave.err" >&2
        return 1
    fi
    local native_ok=0
    if [ "$(id -u)" = 0 ]; then
        # shellcheck disable=SC2086
        if (cd "$w/bundle/rootfs" && chroot . /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $ENV \
            /bin/sh -c "cd $WORKDIR && exec $ENTRYPOINT $CMD") >"$out/$name-native.out" 2>"$out/$name-native.err" </dev/null; then
            native_ok=1
        fi
    fi
    if [ $native_ok = 1 ]; then
        if ! cmp -s "$out/$name-native.out" "$out/$name-enclave.out"; then
            log "$name: FAILED: the enclave's output differs from the native run's"
            diff "$out/$name-native.out" "$out/$name-enclave.out" >&2 || true
            return 1
        fi
    elif [ -n "$EXPECT" ]; then
        grep -Eq "$EXPECT" "$out/$name-enclave.out" || { log "$name: FAILED: output does not match $EXPECT"; cat "$out/$name-enclave.out" >&2; return 1; }
    else
        log "$name: FAILED: no native run to compare with and no EXPECT pattern"
        return 1
    fi
    log "$name: ok: $(head -c 200 "$out/$name-enclave.out")"

    # The image's own Entrypoint, as a container would start it: the whole
    # image (conf layer included) as `/`, here with chroot (container
    # engines may not run in this sandbox).
    if [ "$(id -u)" = 0 ] && command -v skopeo >/dev/null; then
        skopeo copy -q "$image" "oci:$w/wrapped:latest" &&
            umoci unpack --image "$w/wrapped:latest" "$w/wrapped-bundle" >/dev/null
        local entry
        entry=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["process"]["args"]))' "$w/wrapped-bundle/config.json")
        status=0
        # shellcheck disable=SC2086
        (cd "$w/wrapped-bundle/rootfs" && timeout 300 chroot . $entry) >"$out/$name-entrypoint.out" 2>"$out/$name-entrypoint.err" </dev/null || status=$?
        if [ $status != 0 ] || ! cmp -s "$out/$name-enclave.out" "$out/$name-entrypoint.out"; then
            log "$name: FAILED: the image's Entrypoint ($entry) in a chroot of the image: exit $status"
            tail -5 "$out/$name-entrypoint.err" >&2
            return 1
        fi
        log "$name: Entrypoint ok: $entry"
    fi

    # A container engine accepts it.
    if [ $podman_check = 1 ] && command -v podman >/dev/null; then
        if podman load -q -i "$out/$name-conf.tar" >"$out/$name-podman.log" 2>&1; then
            log "$name: podman load: $(tail -1 "$out/$name-podman.log")"
            podman rmi -f "conf-example/$name:latest" >/dev/null 2>&1 || true
        else
            log "$name: FAILED: podman load refused the image"
            cat "$out/$name-podman.log" >&2
            return 1
        fi
    fi
    return 0
}

passed=0 failed=0 skipped=0
for n in "${names[@]}"; do
    s=0
    # In its own process, so that `set -e` holds inside it.
    build_one "$n" &
    wait $! || s=$?
    case $s in
        0) passed=$((passed + 1)) ;;
        2) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)); log "$n: FAILED (logs in $out)" ;;
    esac
done
echo "images: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
