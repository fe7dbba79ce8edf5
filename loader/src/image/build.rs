//! From a manifest to a laid-out enclave image.

use std::collections::BTreeMap;
use std::path::Path;

use conf_abi::manifest::ResolvedManifest;
use conf_manifest::{ChunkIndex, Manifest, ResolveOptions, ResolveStats};

use super::EnclaveLayout;

/// Everything known about an enclave before it runs.
pub struct BuiltImage {
    pub resolved: ResolvedManifest,
    /// Canonical bytes of `resolved` (what is measured).
    pub manifest_bytes: std::sync::Arc<Vec<u8>>,
    pub layout: EnclaveLayout,
    /// Chunk digests of the trusted files, served to the LibOS at run time.
    pub chunks: ChunkIndex,
    pub stats: Option<ResolveStats>,
    /// Host directory shown as `/` (fs.root; for a wrapped image, where it
    /// was unpacked). Not measured.
    pub host_root: std::path::PathBuf,
    /// Trusted files the resolution did not check (conf-run checks them as
    /// the program opens them).
    pub unchecked: std::sync::Arc<conf_manifest::Unchecked>,
    /// [`conf_manifest::Resolution::files_key`], when resolved here.
    pub files_key: Option<String>,
}

/// The LibOS every image carries unless a test build overrides it.
pub fn default_libos() -> &'static [u8] {
    crate::libos::LIBOS_ELF
}

/// Lay out an image for an already resolved manifest.
pub fn build_resolved(
    resolved: ResolvedManifest,
    chunks: ChunkIndex,
    libos: &'static [u8],
) -> anyhow::Result<BuiltImage> {
    let manifest_bytes = std::sync::Arc::new(resolved.encode());
    build_resolved_bytes(resolved, manifest_bytes, chunks, libos)
}

/// As [`build_resolved`], for a manifest already in its canonical bytes
/// (a child process gets its parent's: encoding them again cost every child
/// a pass over half a megabyte for a Python).
pub fn build_resolved_bytes(
    resolved: ResolvedManifest,
    manifest_bytes: std::sync::Arc<Vec<u8>>,
    chunks: ChunkIndex,
    libos: &'static [u8],
) -> anyhow::Result<BuiltImage> {
    let layout = EnclaveLayout::build(libos, &resolved, &manifest_bytes)?;
    let host_root = std::path::PathBuf::from(&resolved.fs_root);
    Ok(BuiltImage {
        resolved,
        manifest_bytes,
        layout,
        chunks,
        stats: None,
        host_root,
        unchecked: Default::default(),
        files_key: None,
    })
}

/// Resolve `manifest` (hash its trusted files) and lay out its image.
pub fn build_from_manifest(
    manifest: &Manifest,
    opts: &ResolveOptions,
    libos: &'static [u8],
) -> anyhow::Result<BuiltImage> {
    let t0 = std::time::Instant::now();
    let res = conf_manifest::resolve(manifest, opts)?;
    crate::cli::timing("resolve", t0);
    let t0 = std::time::Instant::now();
    let mut img = build_resolved(res.manifest, res.chunks, libos)?;
    crate::cli::timing("lay out", t0);
    img.stats = Some(res.stats);
    img.host_root = res.host_root;
    img.unchecked = res.unchecked;
    img.files_key = Some(res.files_key);
    Ok(img)
}

/// Parse, resolve and lay out the manifest at `path` with template
/// variables `defines`. A file holding resolved canonical bytes (as `conf
/// sign --resolved-out` writes) is used as is, without re-hashing.
pub fn build_image(path: &Path, defines: &BTreeMap<String, String>) -> anyhow::Result<BuiltImage> {
    build_image_with(path, defines, &ResolveOptions::default(), default_libos())
}

pub fn build_image_with(
    path: &Path,
    defines: &BTreeMap<String, String>,
    opts: &ResolveOptions,
    libos: &'static [u8],
) -> anyhow::Result<BuiltImage> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read manifest {}: {e}", path.display()))?;
    if bytes.starts_with(conf_abi::manifest::MANIFEST_MAGIC) {
        let resolved = ResolvedManifest::decode(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return build_resolved(resolved, ChunkIndex::default(), libos);
    }
    let manifest = conf_manifest::parse_file(path, defines)?;
    for w in &manifest.warnings {
        eprintln!("[conf] warning: {w}");
    }
    build_from_manifest(&manifest, opts, libos)
}
