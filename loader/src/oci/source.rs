//! Reading an image: its config and its layers, from a Docker archive, an
//! OCI layout directory or an OCI layout in a tar file.
//!
//! Nothing read here is trusted: every blob named by digest is checked
//! against it when it is read (the config and OCI manifests at once, layers
//! while they are unpacked), sizes are bounded, and a truncated archive is
//! reported with the entry that is cut.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::{is_sha256_digest, sha256_digest, Compression, ImageRef, Transport};

/// Largest JSON document (config, manifest, index) read into memory.
const MAX_JSON: u64 = 64 << 20;

/// Where the blobs of an image are.
enum Store {
    /// A directory (an OCI layout).
    Dir(PathBuf),
    /// A tar file, with the position and size of each regular file in it.
    Tar {
        path: PathBuf,
        file: File,
        index: HashMap<String, (u64, u64)>,
    },
}

/// A byte range of a file, read with positioned reads (several can be
/// open at once on one file).
struct Section {
    file: File,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends early (truncated)",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn clean_name(name: &str) -> String {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest;
    }
    n.trim_start_matches('/').to_string()
}

/// `rel` (a link target) taken from the archive directory `dir`.
fn lexical_join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

impl Store {
    fn open_tar(path: &Path) -> Result<Store> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        let mut index = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        {
            let mut ar = tar::Archive::new(&file);
            let entries = ar
                .entries_with_seek()
                .with_context(|| format!("{} is not a tar archive", path.display()))?;
            for e in entries {
                let e = e.map_err(|err| {
                    anyhow!(
                        "{} is not a valid tar archive (truncated or corrupt): {err}",
                        path.display()
                    )
                })?;
                let name = String::from_utf8_lossy(&e.path_bytes()).to_string();
                let size = e.header().entry_size().unwrap_or(0);
                let pos = e.raw_file_position();
                if pos.checked_add(size).is_none_or(|end| end > len) {
                    bail!(
                        "{} is truncated: its entry {name} needs {size} bytes from offset {pos}, but the file has only {len} bytes",
                        path.display()
                    );
                }
                if e.header().entry_type().is_file() {
                    index.insert(clean_name(&name), (pos, size));
                } else if e.header().entry_type().is_symlink() {
                    // `docker save` stores a repeated layer as a link to the first.
                    if let Ok(Some(t)) = e.link_name() {
                        let dir = clean_name(&name)
                            .rsplit_once('/')
                            .map(|(d, _)| d.to_string())
                            .unwrap_or_default();
                        links.push((clean_name(&name), lexical_join(&dir, &t.to_string_lossy())));
                    }
                }
            }
        }
        for (link, target) in links {
            if let Some(&v) = index.get(&target) {
                index.insert(link, v);
            }
        }
        if index.is_empty() {
            bail!(
                "{} is not an image archive: it holds no files (empty or not a tar file)",
                path.display()
            );
        }
        Ok(Store::Tar {
            path: path.to_path_buf(),
            file,
            index,
        })
    }

    fn describe(&self, name: &str) -> String {
        match self {
            Store::Dir(d) => d.join(name).display().to_string(),
            Store::Tar { path, .. } => format!("{name} in {}", path.display()),
        }
    }

    fn size(&self, name: &str) -> Option<u64> {
        match self {
            Store::Dir(d) => std::fs::metadata(d.join(name))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Store::Tar { index, .. } => index.get(name).map(|&(_, s)| s),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        match self {
            Store::Dir(d) => {
                let p = d.join(name);
                Ok(Box::new(
                    File::open(&p).with_context(|| format!("cannot open {}", p.display()))?,
                ))
            }
            Store::Tar { path, file, index } => {
                let &(pos, size) = index
                    .get(name)
                    .ok_or_else(|| anyhow!("{} has no {name}", path.display()))?;
                let file = file
                    .try_clone()
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Ok(Box::new(Section {
                    file,
                    pos,
                    end: pos + size,
                }))
            }
        }
    }

    fn read(&self, name: &str, what: &str) -> Result<Vec<u8>> {
        let size = self
            .size(name)
            .ok_or_else(|| anyhow!("the {what} is missing: there is no {}", self.describe(name)))?;
        if size > MAX_JSON {
            bail!(
                "the {what} ({}) is {size} bytes; more than conf reads ({MAX_JSON})",
                self.describe(name)
            );
        }
        let mut v = Vec::with_capacity(size as usize);
        self.open(name)?
            .take(MAX_JSON)
            .read_to_end(&mut v)
            .with_context(|| format!("cannot read the {what} ({})", self.describe(name)))?;
        Ok(v)
    }
}

/// One layer of an image.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Its blob in the image (a path in the directory or archive).
    pub blob: String,
    /// The blob's digest when the image names it (OCI descriptors, and
    /// Docker archives that keep blobs under `blobs/sha256/`).
    pub digest: Option<String>,
    /// Its size, when the image says.
    pub size: u64,
    /// SHA-256 of the uncompressed tar (`rootfs.diff_ids` of the config).
    pub diff_id: String,
    /// Media type as the image gives it (empty in a Docker archive).
    pub media_type: String,
}

/// An image opened for reading.
pub struct Image {
    /// The image as named on the command line.
    pub name: String,
    pub transport: Transport,
    store: Store,
    /// The config blob's bytes, as stored (its digest is `config_digest`).
    pub config_raw: Vec<u8>,
    pub config: Value,
    pub config_digest: String,
    pub layers: Vec<Layer>,
    /// The image's name, if the archive or layout gives one.
    pub repo_tag: Option<String>,
}

impl Image {
    /// Open the image `r`: read and check its manifest and config.
    pub fn open(r: &ImageRef) -> Result<Image> {
        let name = r.to_string();
        let img = match r.transport {
            Transport::DockerArchive => {
                if !r.path.is_file() {
                    bail!(
                        "{name}: {} does not exist or is not a file",
                        r.path.display()
                    );
                }
                let store = Store::open_tar(&r.path)
                    .with_context(|| format!("cannot read image {name}"))?;
                docker_archive(name.clone(), store, r.reference.as_deref())
            }
            Transport::Oci => {
                if !r.path.is_dir() {
                    bail!(
                        "{name}: {} does not exist or is not a directory (an OCI image layout)",
                        r.path.display()
                    );
                }
                oci_layout(
                    name.clone(),
                    Transport::Oci,
                    Store::Dir(r.path.clone()),
                    r.reference.as_deref(),
                )
            }
            Transport::OciArchive => {
                if !r.path.is_file() {
                    bail!(
                        "{name}: {} does not exist or is not a file",
                        r.path.display()
                    );
                }
                let store = Store::open_tar(&r.path)
                    .with_context(|| format!("cannot read image {name}"))?;
                oci_layout(
                    name.clone(),
                    Transport::OciArchive,
                    store,
                    r.reference.as_deref(),
                )
            }
        };
        img.with_context(|| format!("cannot read image {name}"))
    }

    /// Where layer `i`'s blob is, for messages.
    pub fn describe_layer(&self, i: usize) -> String {
        format!(
            "layer {} of {} ({})",
            i + 1,
            self.layers.len(),
            self.store.describe(&self.layers[i].blob)
        )
    }

    /// The raw (possibly compressed) bytes of layer `i`.
    pub fn open_layer_raw(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        self.store
            .open(&self.layers[i].blob)
            .with_context(|| self.describe_layer(i))
    }

    /// The compression of layer `i`, from its first bytes.
    pub fn layer_compression(&self, i: usize) -> Result<Compression> {
        let mut head = [0u8; 4];
        let mut r = self.open_layer_raw(i)?;
        let mut n = 0;
        while n < head.len() {
            match r
                .read(&mut head[n..])
                .with_context(|| format!("cannot read {}", self.describe_layer(i)))?
            {
                0 => break,
                k => n += k,
            }
        }
        Ok(Compression::sniff(&head[..n]))
    }

    /// The config's `config` object (Entrypoint, Cmd, Env...), if any.
    pub fn run_config(&self) -> Option<&serde_json::Map<String, Value>> {
        self.config.get("config").and_then(Value::as_object)
    }
}

fn json(bytes: &[u8], what: &str, at: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| anyhow!("the {what} ({at}) is not valid JSON: {e}"))
}

/// Check the config: JSON, with `rootfs.diff_ids` matching the layers.
fn config(
    store: &Store,
    blob: &str,
    want_digest: Option<&str>,
    layer_count: usize,
) -> Result<(Vec<u8>, Value, String, Vec<String>)> {
    let raw = store.read(blob, "image config")?;
    let digest = sha256_digest(&raw);
    if let Some(want) = want_digest {
        if want != digest {
            bail!(
                "the image config ({}) has digest {digest}, but the image manifest says {want}: the image was modified or is corrupt",
                store.describe(blob)
            );
        }
    }
    let at = store.describe(blob);
    let v = json(&raw, "image config", &at)?;
    if !v.is_object() {
        bail!("the image config ({at}) is not a JSON object");
    }
    let diff_ids: Vec<String> = match v.pointer("/rootfs/diff_ids").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .map(|d| d.as_str().unwrap_or("").to_string())
            .collect(),
        None => bail!("the image config ({at}) has no rootfs.diff_ids; it is not an image config"),
    };
    if let Some(bad) = diff_ids.iter().find(|d| !is_sha256_digest(d)) {
        bail!("the image config ({at}) has a malformed rootfs.diff_ids entry {bad:?}; expected sha256:<64 hex digits>");
    }
    if diff_ids.len() != layer_count {
        bail!("the image config ({at}) lists {} layers in rootfs.diff_ids, but the image has {layer_count}", diff_ids.len());
    }
    Ok((raw, v, digest, diff_ids))
}

fn docker_archive(name: String, store: Store, reference: Option<&str>) -> Result<Image> {
    let manifest = store.read("manifest.json", "archive manifest (manifest.json)")?;
    let m = json(
        &manifest,
        "archive manifest",
        &store.describe("manifest.json"),
    )?;
    let entries = m
        .as_array()
        .ok_or_else(|| anyhow!("manifest.json is not a JSON array; not a docker-archive"))?;
    let tags = |e: &Value| -> Vec<String> {
        e.get("RepoTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| {
                tags(e)
                    .iter()
                    .any(|t| t == r || t.strip_prefix("localhost/") == Some(r))
            })
            .ok_or_else(|| anyhow!("the archive has no image tagged {r}"))?,
        None => match entries.as_slice() {
            [one] => one,
            [] => bail!("manifest.json lists no image"),
            more => bail!(
                "the archive holds {} images; name one with docker-archive:PATH:TAG (tags: {})",
                more.len(),
                more.iter().flat_map(tags).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let config_name = entry
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("manifest.json names no Config; the image config is missing"))?;
    let config_name = clean_name(config_name);
    let layer_names: Vec<String> = match entry.get("Layers").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .map(|l| {
                l.as_str()
                    .map(clean_name)
                    .ok_or_else(|| anyhow!("manifest.json: a Layers entry is not a string"))
            })
            .collect::<Result<_>>()?,
        None => bail!("manifest.json has no Layers"),
    };
    // Blobs named by digest (newer Docker writes blobs/sha256/HEX) are checked.
    let digest_of = |n: &str| -> Option<String> {
        let hex = n
            .strip_prefix("blobs/sha256/")
            .or_else(|| n.strip_suffix(".json"))?;
        let d = format!("sha256:{hex}");
        is_sha256_digest(&d).then_some(d)
    };
    let (config_raw, config, config_digest, diff_ids) = config(
        &store,
        &config_name,
        digest_of(&config_name).as_deref(),
        layer_names.len(),
    )?;
    let mut layers = Vec::with_capacity(layer_names.len());
    for (blob, diff_id) in layer_names.into_iter().zip(diff_ids) {
        let size = store.size(&blob).ok_or_else(|| {
            anyhow!("layer {blob} named in manifest.json is missing from the archive")
        })?;
        let digest = if blob.starts_with("blobs/") {
            digest_of(&blob)
        } else {
            None
        };
        layers.push(Layer {
            blob,
            digest,
            size,
            diff_id,
            media_type: String::new(),
        });
    }
    let repo_tag = tags(entry).into_iter().next();
    Ok(Image {
        name,
        transport: Transport::DockerArchive,
        store,
        config_raw,
        config,
        config_digest,
        layers,
        repo_tag,
    })
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn blob_path(digest: &str) -> Result<String> {
    if !is_sha256_digest(digest) {
        bail!("unsupported or malformed digest {digest:?}; conf reads sha256 digests only");
    }
    Ok(format!("blobs/sha256/{}", &digest[7..]))
}

/// Read a blob named by a descriptor and check its digest.
fn checked_blob(store: &Store, desc: &Value, what: &str) -> Result<Vec<u8>> {
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the {what} descriptor has no digest"))?;
    let path = blob_path(digest)?;
    let raw = store.read(&path, what)?;
    let got = sha256_digest(&raw);
    if got != digest {
        bail!("the {what} ({}) has digest {got}, but it is named {digest}: the image was modified or is corrupt", store.describe(&path));
    }
    Ok(raw)
}

fn oci_layout(
    name: String,
    transport: Transport,
    store: Store,
    reference: Option<&str>,
) -> Result<Image> {
    let layout = store.read("oci-layout", "OCI layout marker (oci-layout)")?;
    let layout = json(&layout, "oci-layout file", &store.describe("oci-layout"))?;
    if layout
        .get("imageLayoutVersion")
        .and_then(Value::as_str)
        .is_none()
    {
        bail!(
            "{} has no imageLayoutVersion; not an OCI image layout",
            store.describe("oci-layout")
        );
    }
    let index_raw = store.read("index.json", "image index (index.json)")?;
    let index = json(&index_raw, "image index", &store.describe("index.json"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("index.json has no manifests"))?;
    let ref_of = |d: &Value| {
        d.pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(Value::as_str)
            .map(String::from)
    };
    let desc = match reference {
        Some(r) => manifests
            .iter()
            .find(|d| ref_of(d).as_deref() == Some(r))
            .ok_or_else(|| {
                let refs: Vec<String> = manifests.iter().filter_map(ref_of).collect();
                anyhow!(
                    "the layout has no image named {r} (names: {})",
                    refs.join(", ")
                )
            })?,
        None => match manifests.as_slice() {
            [one] => one,
            [] => bail!("index.json lists no image"),
            more => bail!(
                "the layout holds {} images; name one with oci:DIR:NAME (names: {})",
                more.len(),
                more.iter()
                    .filter_map(ref_of)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let repo_tag = ref_of(desc);
    let mut desc = desc.clone();
    let mut manifest = Value::Null;
    // Follow nested indexes (multi-platform images) to linux/amd64.
    for _ in 0..4 {
        let raw = checked_blob(&store, &desc, "image manifest")?;
        let v = json(
            &raw,
            "image manifest",
            &store.describe(&blob_path(desc["digest"].as_str().unwrap_or(""))?),
        )?;
        let mt = v
            .get("mediaType")
            .and_then(Value::as_str)
            .or_else(|| desc.get("mediaType").and_then(Value::as_str))
            .unwrap_or("");
        if INDEX_TYPES.contains(&mt) || v.get("manifests").is_some() {
            let list = v
                .get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            desc = list
                .into_iter()
                .find(|d| {
                    d.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64")
                        && d.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                })
                .ok_or_else(|| anyhow!("the image index has no linux/amd64 image"))?;
            continue;
        }
        manifest = v;
        break;
    }
    if manifest.is_null() {
        bail!("image indexes nested too deeply");
    }
    let config_desc = manifest
        .get("config")
        .ok_or_else(|| anyhow!("the image manifest has no config; the image config is missing"))?;
    let config_digest = config_desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the image manifest's config has no digest"))?;
    let config_path = blob_path(config_digest)?;
    let layer_descs = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the image manifest has no layers"))?;
    let (config_raw, config, config_digest, diff_ids) =
        config(&store, &config_path, Some(config_digest), layer_descs.len())?;
    let mut layers = Vec::with_capacity(layer_descs.len());
    for (i, (d, diff_id)) in layer_descs.iter().zip(diff_ids).enumerate() {
        let digest = d
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("layer {} has no digest in the image manifest", i + 1))?;
        let blob = blob_path(digest)?;
        let size = store.size(&blob).ok_or_else(|| {
            anyhow!(
                "layer {} ({digest}) is missing: there is no {}",
                i + 1,
                store.describe(&blob)
            )
        })?;
        if let Some(want) = d.get("size").and_then(Value::as_u64) {
            if want != size {
                bail!("layer {} ({}) is {size} bytes, but the image manifest says {want}: truncated or modified", i + 1, store.describe(&blob));
            }
        }
        let media_type = d
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if media_type.contains("encrypted") {
            bail!(
                "layer {} is encrypted ({media_type}); conf cannot unpack it",
                i + 1
            );
        }
        layers.push(Layer {
            blob,
            digest: Some(digest.to_string()),
            size,
            diff_id,
            media_type,
        });
    }
    Ok(Image {
        name,
        transport,
        store,
        config_raw,
        config,
        config_digest,
        layers,
        repo_tag,
    })
}
