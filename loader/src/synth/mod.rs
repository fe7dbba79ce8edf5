//! Zero-config manifests (placeholder until the synthesis lands).

use std::ffi::OsString;
use std::path::PathBuf;

pub struct SynthOptions {
    pub cwd: PathBuf,
    pub path_env: Option<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub allow: Vec<PathBuf>,
    pub trust: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{name} was not found")]
    NotFound { name: String },
}

pub struct Synthesized {
    pub manifest: conf_manifest::Manifest,
}

pub fn synthesize(argv: &[OsString], _opts: &SynthOptions) -> Result<Synthesized, SynthError> {
    Err(SynthError::NotFound { name: argv[0].to_string_lossy().into_owned() })
}
