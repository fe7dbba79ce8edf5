//! Writing an image: the layers of a source image (copied byte for byte
//! where the format allows, checked against their digests on the way) plus
//! one new layer, with a new config, as a Docker archive, an OCI layout
//! directory or an OCI layout in a tar file.
//!
//! Everything written is a function of the inputs: JSON with sorted keys,
//! tar headers with fixed owners and times. The same inputs give the same
//! bytes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::source::Image;
use super::{sha256_digest, Compression, Hashing, ImageRef, Transport};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A layer to add, held in memory (uncompressed tar).
pub struct NewLayer {
    pub tar: Vec<u8>,
}

impl NewLayer {
    pub fn diff_id(&self) -> String {
        sha256_digest(&self.tar)
    }
}

/// What to write.
pub struct Output<'a> {
    pub dest: &'a ImageRef,
    pub source: &'a Image,
    /// The new config (its `rootfs.diff_ids` already lists the new layer).
    pub config: &'a Value,
    pub layer: &'a NewLayer,
    /// The image's name: `RepoTags` of a Docker archive, the ref name of an
    /// OCI layout.
    pub name: &'a str,
    /// Time of every tar header written.
    pub mtime: u64,
}

/// Canonical JSON: keys sorted (serde_json's map is ordered), compact.
pub fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

fn oci_layer_type(src_type: &str, c: Compression) -> String {
    match (src_type, c) {
        (t, _) if t.starts_with("application/vnd.oci.image.layer.") => t.to_string(),
        (_, Compression::None) => OCI_LAYER.to_string(),
        (_, Compression::Gzip) => format!("{OCI_LAYER}+gzip"),
        (_, Compression::Zstd) => format!("{OCI_LAYER}+zstd"),
    }
}

/// A file in the output under construction: an archive or a directory.
enum Sink {
    Tar(tar::Builder<BufWriter<File>>, u64),
    Dir(PathBuf),
}

impl Sink {
    fn header(size: u64, mtime: u64, dir: bool) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        match self {
            Sink::Tar(b, mtime) => {
                let mut h = Sink::header(0, *mtime, true);
                b.append_data(&mut h, name, io::empty())
            }
            Sink::Dir(root) => fs::create_dir_all(root.join(name)),
        }
    }

    /// Write `size` bytes from `r` as `name`.
    fn file(&mut self, name: &str, size: u64, r: &mut dyn Read) -> io::Result<()> {
        match self {
            Sink::Tar(b, mtime) => {
                let mut h = Sink::header(size, *mtime, false);
                let mut limited = Exact {
                    inner: r,
                    left: size,
                };
                b.append_data(&mut h, name, &mut limited)?;
                if limited.left != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name}: the source ended early"),
                    ));
                }
                Ok(())
            }
            Sink::Dir(root) => {
                let path = root.join(name);
                if path.exists() && name.starts_with("blobs/") {
                    // Same name, same digest: the blob is already there.
                    io::copy(r, &mut io::sink())?;
                    return Ok(());
                }
                let tmp = root.join(format!("{name}.tmp-{}", std::process::id()));
                let res = (|| {
                    let mut f = BufWriter::new(File::create(&tmp)?);
                    io::copy(r, &mut f)?;
                    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    fs::rename(&tmp, &path)
                })();
                if res.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                res
            }
        }
    }
}

/// A reader that gives exactly `left` bytes of `inner` (fewer if it ends).
struct Exact<'a> {
    inner: &'a mut dyn Read,
    left: u64,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.left.min(buf.len() as u64)) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", &digest[7..])
}

/// Check a digest computed while copying.
fn check(src: &Image, i: usize, what: &str, got: &str, want: &str) -> Result<()> {
    if got != want {
        bail!(
            "{}: its {what} is {got}, but the image says {want}: the layer was modified or is corrupt",
            src.describe_layer(i)
        );
    }
    Ok(())
}

/// Write the image described by `out`.
pub fn write_image(out: &Output, bar: &indicatif::ProgressBar) -> Result<()> {
    match out.dest.transport {
        Transport::Oci => {
            fs::create_dir_all(&out.dest.path)
                .with_context(|| format!("cannot create {}", out.dest.path.display()))?;
            let mut sink = Sink::Dir(out.dest.path.clone());
            write_oci(out, &mut sink, bar)
        }
        Transport::DockerArchive | Transport::OciArchive => {
            let dest = &out.dest.path;
            let dir = match dest.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let fname = dest
                .file_name()
                .ok_or_else(|| anyhow!("{} is not a file path", dest.display()))?;
            let tmp = dir.join(format!(
                ".{}.tmp-{}",
                fname.to_string_lossy(),
                std::process::id()
            ));
            let res = (|| -> Result<()> {
                let file = File::create(&tmp).with_context(|| {
                    format!(
                        "cannot create {} (does its directory exist?)",
                        tmp.display()
                    )
                })?;
                let mut b = tar::Builder::new(BufWriter::new(file));
                b.mode(tar::HeaderMode::Deterministic);
                let mut sink = Sink::Tar(b, out.mtime);
                if out.dest.transport == Transport::DockerArchive {
                    write_docker(out, &mut sink, &dir, bar)?;
                } else {
                    write_oci(out, &mut sink, bar)?;
                }
                let Sink::Tar(b, _) = sink else {
                    unreachable!()
                };
                let w = b.into_inner()?;
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                fs::rename(&tmp, dest)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                Ok(())
            })();
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res
        }
    }
}

/// The source's layers and the new one as OCI blobs; returns the manifest.
fn write_oci(out: &Output, sink: &mut Sink, bar: &indicatif::ProgressBar) -> Result<()> {
    let src = out.source;
    let werr = |what: String| move |e: io::Error| anyhow!("cannot write {what}: {e}");
    sink.dir("blobs").map_err(werr("blobs".into()))?;
    sink.dir("blobs/sha256")
        .map_err(werr("blobs/sha256".into()))?;
    let mut layers = Vec::new();
    for (i, l) in src.layers.iter().enumerate() {
        let compression = src.layer_compression(i)?;
        // The blob's digest names it, so it must be known before it is
        // written: from the image, or by reading the blob once first.
        let digest = match &l.digest {
            Some(d) => d.clone(),
            None => {
                let (d, _) = Hashing::new(src.open_layer_raw(i)?)
                    .finish()
                    .with_context(|| format!("cannot read {}", src.describe_layer(i)))?;
                if compression == Compression::None {
                    check(src, i, "content digest", &d, &l.diff_id)?;
                }
                d
            }
        };
        let mut r = Hashing::new(bar.wrap_read(src.open_layer_raw(i)?));
        sink.file(&blob_name(&digest), l.size, &mut r)
            .with_context(|| format!("cannot copy {}", src.describe_layer(i)))?;
        let (got, n) = r
            .finish()
            .with_context(|| format!("cannot read {}", src.describe_layer(i)))?;
        if n != l.size {
            bail!(
                "{} is {n} bytes, expected {}: truncated",
                src.describe_layer(i),
                l.size
            );
        }
        check(src, i, "content digest", &got, &digest)?;
        if compression == Compression::None {
            check(src, i, "content digest", &got, &l.diff_id)?;
        }
        layers.push(json!({ "mediaType": oci_layer_type(&l.media_type, compression), "digest": digest, "size": l.size }));
    }
    let diff = out.layer.diff_id();
    sink.file(
        &blob_name(&diff),
        out.layer.tar.len() as u64,
        &mut out.layer.tar.as_slice(),
    )
    .map_err(werr("the conf layer".into()))?;
    layers.push(json!({ "mediaType": OCI_LAYER, "digest": diff, "size": out.layer.tar.len() }));

    let config = json_bytes(out.config);
    let config_digest = sha256_digest(&config);
    sink.file(
        &blob_name(&config_digest),
        config.len() as u64,
        &mut config.as_slice(),
    )
    .map_err(werr("the image config".into()))?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    });
    let manifest = json_bytes(&manifest);
    let manifest_digest = sha256_digest(&manifest);
    sink.file(
        &blob_name(&manifest_digest),
        manifest.len() as u64,
        &mut manifest.as_slice(),
    )
    .map_err(werr("the image manifest".into()))?;

    let desc = json!({
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest,
        "size": manifest.len(),
        "annotations": { "org.opencontainers.image.ref.name": out.name },
    });
    // An existing layout keeps its other images; one of the same name is replaced.
    let mut manifests = vec![];
    if let Sink::Dir(root) = sink {
        if let Ok(old) = fs::read(root.join("index.json")) {
            let old: Value = serde_json::from_slice(&old).with_context(|| {
                format!("{} is not valid JSON", root.join("index.json").display())
            })?;
            for d in old
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if d.pointer("/annotations/org.opencontainers.image.ref.name")
                    .and_then(Value::as_str)
                    != Some(out.name)
                {
                    manifests.push(d.clone());
                }
            }
        }
    }
    manifests.push(desc);
    let index =
        json_bytes(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }));
    let layout = json_bytes(&json!({ "imageLayoutVersion": "1.0.0" }));
    sink.file("oci-layout", layout.len() as u64, &mut layout.as_slice())
        .map_err(werr("oci-layout".into()))?;
    sink.file("index.json", index.len() as u64, &mut index.as_slice())
        .map_err(werr("index.json".into()))?;
    Ok(())
}

/// A Docker archive: uncompressed layers named by their digest, the
/// config, and manifest.json.
fn write_docker(
    out: &Output,
    sink: &mut Sink,
    tmp_dir: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let src = out.source;
    let werr = |what: String| move |e: io::Error| anyhow!("cannot write {what}: {e}");
    sink.dir("blobs").map_err(werr("blobs".into()))?;
    sink.dir("blobs/sha256")
        .map_err(werr("blobs/sha256".into()))?;
    let mut names = Vec::new();
    for (i, l) in src.layers.iter().enumerate() {
        let compression = src.layer_compression(i)?;
        let name = blob_name(&l.diff_id);
        if compression == Compression::None {
            let mut r = Hashing::new(bar.wrap_read(src.open_layer_raw(i)?));
            sink.file(&name, l.size, &mut r)
                .with_context(|| format!("cannot copy {}", src.describe_layer(i)))?;
            let (got, n) = r
                .finish()
                .with_context(|| format!("cannot read {}", src.describe_layer(i)))?;
            if n != l.size {
                bail!(
                    "{} is {n} bytes, expected {}: truncated",
                    src.describe_layer(i),
                    l.size
                );
            }
            if let Some(d) = &l.digest {
                check(src, i, "content digest", &got, d)?;
            }
            check(src, i, "content digest", &got, &l.diff_id)?;
        } else {
            // Docker archives hold uncompressed layers: decompress into a
            // temporary file (the size goes in the tar header first).
            let mut tmp = tempfile::tempfile_in(tmp_dir).with_context(|| {
                format!("cannot create a temporary file in {}", tmp_dir.display())
            })?;
            let mut raw = Hashing::new(bar.wrap_read(src.open_layer_raw(i)?));
            let mut plain = Hashing::new(compression.decoder(&mut raw)?);
            io::copy(&mut plain, &mut tmp)
                .with_context(|| format!("cannot decompress {}", src.describe_layer(i)))?;
            let (diff, size) = plain.finish()?;
            let (got, _) = raw.finish()?;
            if let Some(d) = &l.digest {
                check(src, i, "content digest", &got, d)?;
            }
            check(src, i, "uncompressed digest (diff_id)", &diff, &l.diff_id)?;
            tmp.rewind()?;
            sink.file(&name, size, &mut tmp)
                .map_err(werr(src.describe_layer(i)))?;
        }
        names.push(name);
    }
    let diff = out.layer.diff_id();
    let name = blob_name(&diff);
    sink.file(
        &name,
        out.layer.tar.len() as u64,
        &mut out.layer.tar.as_slice(),
    )
    .map_err(werr("the conf layer".into()))?;
    names.push(name);
    let config = json_bytes(out.config);
    let config_name = blob_name(&sha256_digest(&config));
    sink.file(&config_name, config.len() as u64, &mut config.as_slice())
        .map_err(werr("the image config".into()))?;
    let manifest =
        json_bytes(&json!([{ "Config": config_name, "RepoTags": [out.name], "Layers": names }]));
    sink.file(
        "manifest.json",
        manifest.len() as u64,
        &mut manifest.as_slice(),
    )
    .map_err(werr("manifest.json".into()))?;
    Ok(())
}
