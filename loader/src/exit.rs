//! Exit codes shared by `conf` and `conf-run`.
//!
//! `conf-run` passes the program's own exit status through, so its own
//! failures use the codes container engines use for the same situations
//! (Docker: 125 engine error, 126 cannot invoke, 127 not found).

/// A fixed exit code with its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    /// `conf`: the checked thing is invalid (signature, MRENCLAVE mismatch...).
    Invalid = 1,
    /// Bad command-line usage.
    Usage = 2,
    /// conf-run could not set up the enclave (manifest, signature, backend).
    SetupFailed = 125,
    /// The entrypoint exists but cannot run (not trusted, not an ELF...).
    CannotRun = 126,
    /// The entrypoint was not found.
    NotFound = 127,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}
