//! Wrapped images: the layer `conf wrap` adds (conf-run, the resolved
//! manifest, the SIGSTRUCT), the cache of unpacked root file systems, and
//! what `conf-run --image` does to run one.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use conf_abi::manifest::ResolvedManifest;
use conf_manifest::ChunkIndex;

use super::source::Image;
use super::unpack::{Stats, Unpacker};
use super::write::NewLayer;
use super::{Hashing, ImageRef, Transport};
use crate::image::{build_resolved, BuiltImage};
use crate::sgx::{hex, Sigstruct};

/// Where the conf layer puts conf-run (in the image).
pub const CONF_RUN: &str = "/usr/local/bin/conf-run";
/// The resolved manifest (canonical bytes, what is measured).
pub const MANIFEST: &str = "/conf/app.manifest";
/// The SIGSTRUCT of the enclave.
pub const SIG: &str = "/conf/app.sig";

/// The image's Entrypoint: conf-run with the manifest and SIGSTRUCT of the
/// conf layer, the container's `/` as the enclave's root.
pub fn entrypoint() -> Vec<String> {
    [CONF_RUN, "--manifest", MANIFEST, "--sig", SIG]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Config labels conf sets on a wrapped image.
pub const LABEL_MRENCLAVE: &str = "dev.conf.mrenclave";
pub const LABEL_MRSIGNER: &str = "dev.conf.mrsigner";

/// The conf layer: an uncompressed tar with fixed owners and times.
pub fn conf_layer(
    conf_run: &[u8],
    manifest: &[u8],
    sig: &[u8],
    mtime: u64,
) -> std::io::Result<NewLayer> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    let mut add = |name: &str, mode: u32, data: &[u8], dir: bool| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, name, data)
    };
    add("conf/", 0o755, &[], true)?;
    add(&MANIFEST[1..], 0o644, manifest, false)?;
    add(&SIG[1..], 0o644, sig, false)?;
    add(&CONF_RUN[1..], 0o755, conf_run, false)?;
    Ok(NewLayer {
        tar: b.into_inner()?,
    })
}

/// Read layer `i` through a reader that checks, at the end, its digest
/// (when the image names it) and its uncompressed digest (diff_id).
/// `f` gets the uncompressed tar stream.
pub fn with_layer<T>(
    img: &Image,
    i: usize,
    bar: &indicatif::ProgressBar,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let layer = &img.layers[i];
    let compression = img.layer_compression(i)?;
    let mut raw = Hashing::new(bar.wrap_read(img.open_layer_raw(i)?));
    let mut plain = Hashing::new(
        compression
            .decoder(&mut raw)
            .with_context(|| format!("cannot read {}", img.describe_layer(i)))?,
    );
    let result = f(&mut plain);
    // Digests first: a layer that was tampered with is reported as such,
    // even when what it holds also made `f` fail.
    let digests = plain
        .finish()
        .and_then(|(diff, _)| raw.finish().map(|(d, n)| (diff, d, n)));
    let (diff, digest, n) = match (digests, &result) {
        (Ok(v), _) => v,
        (Err(e), Ok(_)) => {
            return Err(anyhow!(
                "{}: cannot read it: {e} (truncated or corrupt)",
                img.describe_layer(i)
            ))
        }
        (Err(_), Err(_)) => return result,
    };
    if let Some(want) = &layer.digest {
        if &digest != want {
            bail!(
                "{}: its content digest is {digest}, but the image says {want}: the layer was modified or is corrupt",
                img.describe_layer(i)
            );
        }
    }
    if diff != layer.diff_id {
        bail!(
            "{}: its uncompressed digest is {diff}, but the image config's rootfs.diff_ids says {}: the layer was modified or is corrupt",
            img.describe_layer(i),
            layer.diff_id
        );
    }
    if n != layer.size {
        bail!(
            "{}: read {n} bytes, expected {}",
            img.describe_layer(i),
            layer.size
        );
    }
    result
}

/// Apply the first `n` layers of `img` to the empty directory `dest`.
pub fn unpack_layers(
    img: &Image,
    n: usize,
    dest: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<Stats> {
    let mut u = Unpacker::new(dest);
    for i in 0..n {
        with_layer(img, i, bar, |r| {
            u.apply(r)
                .map_err(|e| anyhow!("{}: {e}", img.describe_layer(i)))
        })?;
    }
    u.finish()
        .with_context(|| format!("cannot set directory modes in {}", dest.display()))
}

/// The id of the root file system made by the first `n` layers: SHA-256
/// of their diff_ids.
pub fn chain_id(img: &Image, n: usize) -> String {
    let joined: Vec<&str> = img.layers[..n].iter().map(|l| l.diff_id.as_str()).collect();
    hex::encode(sha2::Sha256::digest(joined.join("\n").as_bytes()))
}

use sha2::Digest as _;

/// Where unpacked images are cached.
pub fn cache_root() -> PathBuf {
    conf_manifest::default_cache_dir().join("images")
}

/// A directory to unpack into, next to the cache (same file system, so it
/// can be renamed into it).
pub fn scratch_dir(cache: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(cache)
        .with_context(|| format!("cannot create the image cache {}", cache.display()))?;
    tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache)
        .with_context(|| format!("cannot create a directory in {}", cache.display()))
}

/// Keep an unpacked root file system (`dir`, a fully unpacked and checked
/// tree) in the cache as `id`, unless it is there already. Returns the
/// cached path.
pub fn keep_in_cache(cache: &Path, id: &str, dir: &Path) -> Result<PathBuf> {
    let dest = cache.join(id);
    if dest.is_dir() {
        return Ok(dest);
    }
    match std::fs::rename(dir, &dest) {
        Ok(()) => Ok(dest),
        Err(_) if dest.is_dir() => Ok(dest), // another process was faster
        Err(e) => Err(anyhow!(
            "cannot move {} to {}: {e}",
            dir.display(),
            dest.display()
        )),
    }
}

/// The root file system of the first `n` layers of `img`, from the cache or
/// unpacked into it.
pub fn cached_rootfs(img: &Image, n: usize, cache: &Path) -> Result<PathBuf> {
    let id = chain_id(img, n);
    let dest = cache.join(&id);
    if dest.is_dir() {
        return Ok(dest);
    }
    let total: u64 = img.layers[..n].iter().map(|l| l.size).sum();
    let bar = super::progress_bar(total, "unpacking");
    let tmp = scratch_dir(cache)?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
    unpack_layers(img, n, &root, &bar)?;
    bar.finish_and_clear();
    let kept = keep_in_cache(cache, &id, &root)?;
    Ok(kept)
}

/// What the conf layer of a wrapped image holds.
pub struct ConfLayer {
    pub manifest: Vec<u8>,
    pub sig: Sigstruct,
}

/// Read the conf layer (the last one) of a wrapped image.
pub fn read_conf_layer(img: &Image) -> Result<ConfLayer> {
    let Some(last) = img.layers.len().checked_sub(1) else {
        bail!(
            "{} has no layers; it is not an image made by `conf wrap`",
            img.name
        );
    };
    let (manifest, sig) = with_layer(img, last, &indicatif::ProgressBar::hidden(), |r| {
        let mut manifest = None;
        let mut sig = None;
        let mut ar = tar::Archive::new(r);
        for e in ar.entries()? {
            let mut e = e?;
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            let slot = if name == MANIFEST[1..] {
                &mut manifest
            } else if name == SIG[1..] {
                &mut sig
            } else {
                continue;
            };
            let mut v = Vec::new();
            e.by_ref().take(256 << 20).read_to_end(&mut v)?;
            *slot = Some(v);
        }
        Ok((manifest, sig))
    })?;
    let (Some(manifest), Some(sig)) = (manifest, sig) else {
        bail!(
            "{} is not an image made by `conf wrap`: its last layer has no {MANIFEST} and {SIG}; wrap it with `conf wrap`",
            img.name
        );
    };
    let sig = Sigstruct::parse(&sig)
        .map_err(|e| anyhow!("{}: {SIG} in the conf layer: {e}", img.name))?;
    Ok(ConfLayer { manifest, sig })
}

/// Open a wrapped image named on the command line (a bare path is a
/// docker-archive).
pub fn open(spec: &str) -> Result<Image> {
    let r = ImageRef::parse(spec, Some(Transport::DockerArchive)).map_err(|e| anyhow!(e))?;
    Image::open(&r)
}

/// Everything `conf-run --image` needs: check the image's signature and
/// that its MRENCLAVE is what this conf-run measures for the image's
/// manifest and `libos`, then unpack it (or find it in the cache).
/// `command_given`: arguments were given after the image, which only an
/// image whose manifest takes them from the command line accepts.
pub fn build_for_run(spec: &str, command_given: bool, libos: &'static [u8]) -> Result<BuiltImage> {
    let img = open(spec)?;
    let conf = read_conf_layer(&img)?;
    let resolved = ResolvedManifest::decode(&conf.manifest).map_err(|e| {
        anyhow!(
            "{}: {MANIFEST} in the conf layer is not a resolved manifest: {e}",
            img.name
        )
    })?;
    if command_given && !resolved.use_cmdline_argv {
        bail!(
            "the manifest of {} fixes the program's arguments (loader.argv); remove the command after the image, or wrap it with loader.insecure__use_cmdline_argv = true",
            img.name
        );
    }
    conf.sig.verify().with_context(|| {
        format!(
            "refusing to run {}: the signature in {SIG} is not valid",
            img.name
        )
    })?;
    let mut built = build_resolved(resolved, ChunkIndex::default(), libos)
        .with_context(|| format!("cannot lay out the enclave of {}", img.name))?;
    let ours = built.layout.mrenclave();
    if conf.sig.mrenclave() != ours {
        bail!(
            "refusing to run {}: its SIGSTRUCT covers MRENCLAVE {}, but this conf-run measures {} for the image's manifest; the image was wrapped with another version of conf, or its manifest was changed after signing. Wrap it again with this version (`conf wrap`)",
            img.name,
            hex::encode(conf.sig.mrenclave()),
            hex::encode(ours)
        );
    }
    let root = cached_rootfs(&img, img.layers.len() - 1, &cache_root())?;
    built.host_root = root;
    Ok(built)
}
