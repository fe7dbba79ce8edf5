//! Errors of parsing ([`ManifestError`]) and of resolution ([`ResolveError`]).
//!
//! Every message is meant to be shown to a user as it is: it names the file,
//! the position and the key, and says what to change.

use std::fmt;
use std::path::PathBuf;

/// A position in a manifest file: `origin:line:column`, 1-based, the column
/// counted in characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub origin: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

impl Location {
    /// The location of byte `offset` of `text` (clamped to the text).
    pub(crate) fn at(origin: &str, text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            origin: origin.to_string(),
            line,
            column,
        }
    }
}

/// Why a manifest could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: cannot use relative paths: {message}")]
    BaseDir { origin: String, message: String },
    #[error("{at}: invalid TOML: {message}{hint}")]
    Syntax {
        at: Location,
        message: String,
        hint: String,
    },
    #[error(
        "{at}: template variable `{name}` is not defined; pass it with -D {name}=VALUE \
         (defined: {defined})"
    )]
    UndefinedVariable {
        at: Location,
        name: String,
        defined: String,
    },
    #[error("{at}: {message}")]
    Template { at: Location, message: String },
    #[error("{at}: unknown key `{key}`{}", suggestion_text(suggestion))]
    UnknownKey {
        at: Location,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{at}: `{key}` must be {expected}, found {found}")]
    WrongType {
        at: Location,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{at}: `{key}`: {message}")]
    InvalidValue {
        at: Location,
        key: String,
        message: String,
    },
    #[error("{at}: missing required key `{key}`; {hint}")]
    MissingKey {
        at: Location,
        key: String,
        hint: &'static str,
    },
    #[error("{at}: conf does not support `{key}`; remove it ({hint})")]
    Unsupported {
        at: Location,
        key: String,
        hint: &'static str,
    },
    #[error("{at}: `{key}` conflicts with `{other}` (set at {other_at}); {hint}")]
    Conflict {
        at: Location,
        key: String,
        other: String,
        other_at: Box<Location>,
        hint: &'static str,
    },
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(k) => format!("; did you mean `{k}`?"),
        None => "; see docs/manifest.md for the keys conf understands".to_string(),
    }
}

impl ManifestError {
    /// Where in the manifest the error is, when it is about a position.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ManifestError::Read { .. } | ManifestError::BaseDir { .. } => None,
            ManifestError::Syntax { at, .. }
            | ManifestError::UndefinedVariable { at, .. }
            | ManifestError::Template { at, .. }
            | ManifestError::UnknownKey { at, .. }
            | ManifestError::WrongType { at, .. }
            | ManifestError::InvalidValue { at, .. }
            | ManifestError::MissingKey { at, .. }
            | ManifestError::Unsupported { at, .. }
            | ManifestError::Conflict { at, .. } => Some(at),
        }
    }

    /// The manifest key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ManifestError::UnknownKey { key, .. }
            | ManifestError::WrongType { key, .. }
            | ManifestError::InvalidValue { key, .. }
            | ManifestError::MissingKey { key, .. }
            | ManifestError::Unsupported { key, .. }
            | ManifestError::Conflict { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Why a manifest could not be resolved into a [`conf_abi::manifest::ResolvedManifest`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// A manifest built in code breaks a rule the parser would have enforced.
    #[error("{origin}: invalid manifest: {message}")]
    Invalid { origin: String, message: String },
    #[error("{origin}: sgx.trusted_files entry \"{entry}\": {path} does not exist{detail}; fix or remove the entry")]
    NotFound {
        origin: String,
        entry: String,
        path: String,
        detail: String,
    },
    #[error("{origin}: sgx.trusted_files entry \"{entry}\": cannot read {path}: {source}")]
    Unreadable {
        origin: String,
        entry: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: sgx.trusted_files entry \"{entry}\": {path} is {what}; only regular files, directories and symbolic links can be trusted")]
    NotAFile {
        origin: String,
        entry: String,
        path: String,
        what: &'static str,
    },
    #[error("{origin}: sgx.trusted_files entry \"{entry}\": the pattern matches no file; fix the pattern or remove the entry")]
    NoMatch { origin: String, entry: String },
    #[error("{origin}: sgx.trusted_files entry \"{entry}\": sha256 can only be given for a single file, but {path} is {what}")]
    Sha256NotAFile {
        origin: String,
        entry: String,
        path: String,
        what: &'static str,
    },
    #[error(
        "{origin}: sgx.trusted_files entry \"{entry}\": SHA-256 of {path} is {actual}, but the manifest \
         says {expected}; the file changed or the manifest is stale: update `sha256` (or remove it)"
    )]
    Sha256Mismatch {
        origin: String,
        entry: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{origin}: libos.entrypoint {path} is outside fs.root ({root}) and every fs.mounts uri, so the enclave cannot see it; mount its directory or change fs.root")]
    EntrypointNotVisible {
        origin: String,
        path: String,
        root: String,
    },
    /// A host path in a trusted or allowed entry that no part of the
    /// enclave's file system shows.
    #[error("{origin}: {key} entry \"file:{path}\": {path} is outside fs.root ({root}) and every mount; the enclave cannot see it; move it below fs.root, mount its directory (fs.mounts) or change fs.root")]
    NotVisible {
        origin: String,
        key: &'static str,
        path: String,
        root: String,
    },
    /// A host path that maps into the enclave at a path another mount covers.
    #[error("{origin}: {key} entry \"file:{path}\": {path} would be {enclave} in the enclave, but the mount at {mount} hides it; the enclave cannot see it; remove the entry or change fs.mounts")]
    Hidden {
        origin: String,
        key: &'static str,
        path: String,
        enclave: String,
        mount: String,
    },
    #[error("{path} kept changing while it was hashed; stop whatever is writing it and try again")]
    Unstable { path: String },
    #[error("cannot start hashing threads: {0}")]
    Threads(#[source] std::io::Error),
}
