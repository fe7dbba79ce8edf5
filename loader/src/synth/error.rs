//! Why a manifest could not be synthesized. Every message says what failed
//! and what the user can do about it.

use std::path::PathBuf;

use crate::exit::ExitCode;

/// What [`super::synthesize`] could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    #[error("no command was given; name the program to run, e.g. `conf-run python3 app.py`")]
    NoCommand,

    #[error(
        "{name} was not found on PATH ({path}); give a path (e.g. ./{name}) or use --manifest"
    )]
    NotOnPath { name: String, path: String },

    #[error(
        "{name} is on PATH ({path}) but not executable; fix its permissions or use --manifest"
    )]
    NotExecutableOnPath { name: String, path: String },

    #[error("{} does not exist{via}; check the path or use --manifest", path.display())]
    NoSuchFile { path: PathBuf, via: String },

    #[error("{} is {what}, not a program{via}; give the program file or use --manifest", path.display())]
    NotAFile {
        path: PathBuf,
        what: &'static str,
        via: String,
    },

    #[error("{} is not executable (no x permission){via}; run `chmod +x {}` or use --manifest", path.display(), path.display())]
    NotExecutable { path: PathBuf, via: String },

    #[error(
        "{} is neither an ELF program nor a script starting with #!{via}; add a #! line or run it \
         through its interpreter (e.g. `conf-run sh {}`)",
        path.display(), path.display()
    )]
    UnknownFormat { path: PathBuf, via: String },

    #[error("{} cannot run in conf: {reason}{via}; conf runs x86-64 Linux ELF programs", path.display())]
    UnsupportedElf {
        path: PathBuf,
        reason: String,
        via: String,
    },

    #[error(
        "{} has a #! line without an interpreter{via}; write the interpreter's path after #!",
        path.display()
    )]
    EmptyShebang { path: PathBuf, via: String },

    #[error(
        "{} starts a chain of #! interpreters more than {max} deep ({chain}); run the last \
         interpreter directly or use --manifest",
        path.display()
    )]
    ShebangTooDeep {
        path: PathBuf,
        max: usize,
        chain: String,
    },

    #[error(
        "{lib}, needed by {needed_by}, was not found (searched {searched}); install it, or write \
         a manifest with `conf manifest` and add it to sgx.trusted_files (conf-run ignores \
         LD_LIBRARY_PATH, see docs/zero-config.md)"
    )]
    MissingLibrary {
        lib: String,
        needed_by: String,
        searched: String,
    },

    #[error(
        "{what} {} is not valid UTF-8; conf manifests hold UTF-8 paths and strings only: rename \
         it or use --manifest",
        shown
    )]
    NotUtf8 { what: &'static str, shown: String },

    #[error(
        "cannot learn the module paths of {}: {reason}; check that `{} -c pass` works, or use \
         --manifest",
        python.display(), python.display()
    )]
    PythonProbe { python: PathBuf, reason: String },

    #[error(
        "the working directory {} {what}; conf-run trusts (measures) the whole working \
         directory, up to {max_files} files and {max_mb} MB: cd to your project's directory, or \
         write a manifest with `conf manifest` and run it with --manifest",
        dir.display()
    )]
    CwdTooLarge {
        dir: PathBuf,
        what: String,
        max_files: usize,
        max_mb: u64,
    },

    #[error("--allow {}: {} does not exist; create it first or drop the flag", given.display(), path.display())]
    AllowMissing { given: PathBuf, path: PathBuf },

    #[error("--trust {}: {} does not exist; fix the path or drop the flag", given.display(), path.display())]
    TrustMissing { given: PathBuf, path: PathBuf },

    #[error("the working directory {} is not an absolute path; this is a bug in the caller", cwd.display())]
    RelativeCwd { cwd: PathBuf },

    #[error("cannot read {}: {err}; check its permissions or use --manifest", path.display())]
    Io { path: PathBuf, err: std::io::Error },
}

impl SynthError {
    /// The exit status `conf-run` should end with (Docker's conventions:
    /// 127 not found, 126 cannot run, 125 anything else).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SynthError::NotOnPath { .. } | SynthError::NoSuchFile { .. } => ExitCode::NotFound,
            SynthError::NotExecutableOnPath { .. }
            | SynthError::NotAFile { .. }
            | SynthError::NotExecutable { .. }
            | SynthError::UnknownFormat { .. }
            | SynthError::UnsupportedElf { .. }
            | SynthError::EmptyShebang { .. }
            | SynthError::ShebangTooDeep { .. } => ExitCode::CannotRun,
            _ => ExitCode::SetupFailed,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> SynthError {
        SynthError::Io {
            path: path.into(),
            err,
        }
    }
}
