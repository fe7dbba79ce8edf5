//! From a manifest file to a laid-out, measured enclave image.

use std::collections::BTreeMap;
use std::path::Path;

use conf_abi::manifest::ResolvedManifest;

use super::EnclaveLayout;

/// Everything known about an enclave before it runs.
pub struct BuiltImage {
    pub resolved: ResolvedManifest,
    /// Canonical bytes of `resolved`.
    pub manifest_bytes: Vec<u8>,
    pub layout: EnclaveLayout,
}

/// Parse, resolve and lay out the manifest at `path` with template variables
/// `defines`.
pub fn build_image(path: &Path, defines: &BTreeMap<String, String>) -> anyhow::Result<BuiltImage> {
    let _ = (path, defines);
    anyhow::bail!("building an image from a manifest is not wired up yet")
}
