//! The resolved manifest: what the loader measures into the enclave and the
//! LibOS obeys. Its canonical bytes are the encoding below; identical inputs
//! give identical bytes, so MRENCLAVE is reproducible.
//!
//! Encoding (all integers little-endian): the 8-byte magic, a u32 version,
//! then each field in declaration order. A string is a u32 length and UTF-8
//! bytes; a list is a u32 count and its items; a bool is one byte (0 or 1).
//! [`ResolvedManifest::canonicalize`] sorts and de-duplicates every set-like
//! list, and `encode` calls it, so the order in which a caller built the
//! lists does not change the bytes. `decode` refuses trusted files out of
//! that order: they are looked up by binary search, in place
//! ([`TrustedFiles`]).

use alloc::string::String;
use alloc::vec::Vec;

use crate::trusted::Digest32;

mod trusted_files;
pub use trusted_files::{SharedBytes, TrustedFileRef, TrustedFiles};

pub const MANIFEST_MAGIC: &[u8; 8] = b"CONFMAN\0";
pub const MANIFEST_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum LogLevel {
    None = 0,
    #[default]
    Error = 1,
    Warning = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    pub fn from_raw(v: u8) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::None,
            1 => LogLevel::Error,
            2 => LogLevel::Warning,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            5 => LogLevel::Trace,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::None => "none",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "none" => LogLevel::None,
            "error" => LogLevel::Error,
            "warning" | "warn" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" | "all" => LogLevel::Trace,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum OcallMode {
    Exitless = 0,
    #[default]
    Exit = 1,
    Adaptive = 2,
}

impl OcallMode {
    pub fn from_raw(v: u8) -> Option<OcallMode> {
        Some(match v {
            0 => OcallMode::Exitless,
            1 => OcallMode::Exit,
            2 => OcallMode::Adaptive,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            OcallMode::Exitless => "exitless",
            OcallMode::Exit => "exit",
            OcallMode::Adaptive => "adaptive",
        }
    }
    pub fn parse(s: &str) -> Option<OcallMode> {
        Some(match s {
            "exitless" => OcallMode::Exitless,
            "exit" => OcallMode::Exit,
            "adaptive" => OcallMode::Adaptive,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum MountKind {
    /// A host directory (`uri`) shown at `path`.
    Chroot = 0,
    /// Enclave memory.
    Tmpfs = 1,
    /// Host directory whose files are AES-GCM protected with key `key_name`.
    Encrypted = 2,
}

impl MountKind {
    pub fn from_raw(v: u8) -> Option<MountKind> {
        Some(match v {
            0 => MountKind::Chroot,
            1 => MountKind::Tmpfs,
            2 => MountKind::Encrypted,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            MountKind::Chroot => "chroot",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Encrypted => "encrypted",
        }
    }
    /// The kind [`MountKind::name`] names.
    pub fn parse(s: &str) -> Option<MountKind> {
        Some(match s {
            "chroot" => MountKind::Chroot,
            "tmpfs" => MountKind::Tmpfs,
            "encrypted" => MountKind::Encrypted,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mount {
    /// Absolute path inside the enclave.
    pub path: String,
    pub kind: MountKind,
    /// Absolute host path (empty for tmpfs).
    pub uri: String,
    pub key_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EnvValue {
    Value(String),
    /// Take the value from the host environment at start (untrusted).
    Passthrough,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

/// A file whose contents are fixed by the manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrustedFile {
    /// Absolute host path, normalized (no `.`, `..` or repeated `/`), symlinks
    /// not followed in the last component (see `symlinks`).
    pub path: String,
    pub size: u64,
    /// Root digest per [`crate::trusted`].
    pub digest: Digest32,
}

/// A symbolic link met while resolving trusted files, recorded so that the
/// LibOS follows it without asking the host.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrustedSymlink {
    /// Absolute host path of the link.
    pub path: String,
    /// Its target, as readlink(2) returned it.
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedManifest {
    /// Absolute path (inside the enclave) of the program to run.
    pub entrypoint: String,
    /// argv, including argv[0]. Empty with `use_cmdline_argv` means "from the host".
    pub argv: Vec<String>,
    pub use_cmdline_argv: bool,
    pub env: Vec<EnvVar>,
    pub log_level: LogLevel,
    /// Host directory shown as `/`.
    pub fs_root: String,
    pub mounts: Vec<Mount>,
    /// Initial working directory inside the enclave.
    pub start_dir: String,
    pub trusted_files: TrustedFiles,
    pub trusted_symlinks: Vec<TrustedSymlink>,
    /// Host paths (files, or directories covering everything below them)
    /// readable and writable without protection.
    pub allowed_files: Vec<String>,
    pub enclave_size: u64,
    pub max_threads: u32,
    pub edmm: bool,
    pub debug: bool,
    pub isvprodid: u16,
    pub isvsvn: u16,
    pub stack_size: u64,
    pub brk_max_size: u64,
    /// Most processes of the program alive at once (the first included).
    pub max_processes: u32,
    pub ocall_mode: OcallMode,
    pub ocall_workers: u32,
}

impl Default for ResolvedManifest {
    fn default() -> Self {
        ResolvedManifest {
            entrypoint: String::new(),
            argv: Vec::new(),
            use_cmdline_argv: false,
            env: Vec::new(),
            log_level: LogLevel::Error,
            fs_root: String::from("/"),
            mounts: Vec::new(),
            start_dir: String::from("/"),
            trusted_files: TrustedFiles::new(),
            trusted_symlinks: Vec::new(),
            allowed_files: Vec::new(),
            enclave_size: 1 << 30,
            max_threads: 8,
            edmm: true,
            debug: true,
            isvprodid: 0,
            isvsvn: 0,
            stack_size: 8 << 20,
            brk_max_size: 64 << 20,
            max_processes: 64,
            ocall_mode: OcallMode::Exit,
            ocall_workers: 1,
        }
    }
}

/// Why bytes did not decode as a resolved manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    UnsupportedVersion(u32),
    Truncated { at: usize },
    BadUtf8 { at: usize },
    BadValue { at: usize, what: &'static str },
    TrailingBytes { at: usize },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "not a resolved conf manifest (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "resolved manifest version {v} is not supported (expected {MANIFEST_VERSION})"
            ),
            DecodeError::Truncated { at } => write!(f, "resolved manifest truncated at byte {at}"),
            DecodeError::BadUtf8 { at } => {
                write!(f, "invalid UTF-8 in resolved manifest at byte {at}")
            }
            DecodeError::BadValue { at, what } => {
                write!(f, "invalid {what} in resolved manifest at byte {at}")
            }
            DecodeError::TrailingBytes { at } => {
                write!(f, "unexpected bytes after resolved manifest at byte {at}")
            }
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue { at, what: "bool" }),
        }
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let at = self.pos;
        let b = self.take(n)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| DecodeError::BadUtf8 { at })
    }
    /// A list count, bounded by the bytes left so hostile counts cannot make
    /// us reserve huge vectors.
    fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.bytes.len() - self.pos {
            return Err(DecodeError::Truncated { at });
        }
        Ok(n)
    }
}

impl ResolvedManifest {
    /// Put every set-like list in its canonical order.
    pub fn canonicalize(&mut self) {
        self.env.sort();
        self.env.dedup_by(|a, b| a.name == b.name);
        self.mounts.sort();
        self.trusted_files.canonicalize();
        self.trusted_symlinks.sort();
        self.trusted_symlinks.dedup_by(|a, b| a.path == b.path);
        self.allowed_files.sort();
        self.allowed_files.dedup();
    }

    /// Whether `canonicalize` would change nothing.
    fn is_canonical(&self) -> bool {
        fn sorted_unique<T: Ord>(v: &[T], same: impl Fn(&T, &T) -> bool) -> bool {
            v.windows(2).all(|w| w[0] <= w[1] && !same(&w[0], &w[1]))
        }
        sorted_unique(&self.env, |a, b| a.name == b.name)
            && self.mounts.windows(2).all(|w| w[0] <= w[1])
            && self.trusted_files.is_canonical()
            && sorted_unique(&self.trusted_symlinks, |a, b| a.path == b.path)
            && sorted_unique(&self.allowed_files, |a, b| a == b)
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        // A resolution is canonical already: copying its thousands of
        // paths to sort them again cost a start a third of a millisecond.
        if self.is_canonical() {
            return self.encode_canonical();
        }
        let mut m = self.clone();
        m.canonicalize();
        m.encode_canonical()
    }

    fn encode_canonical(&self) -> Vec<u8> {
        let m = self;
        let mut w = Writer(Vec::with_capacity(
            256 + m.trusted_files.encoded().len() + m.trusted_symlinks.len() * 64,
        ));
        w.0.extend_from_slice(MANIFEST_MAGIC);
        w.u32(MANIFEST_VERSION);
        w.str(&m.entrypoint);
        w.len(m.argv.len());
        for a in &m.argv {
            w.str(a);
        }
        w.bool(m.use_cmdline_argv);
        w.len(m.env.len());
        for e in &m.env {
            w.str(&e.name);
            match &e.value {
                EnvValue::Value(v) => {
                    w.u8(0);
                    w.str(v);
                }
                EnvValue::Passthrough => w.u8(1),
            }
        }
        w.u8(m.log_level as u8);
        w.str(&m.fs_root);
        w.len(m.mounts.len());
        for mt in &m.mounts {
            w.str(&mt.path);
            w.u8(mt.kind as u8);
            w.str(&mt.uri);
            w.str(&mt.key_name);
        }
        w.str(&m.start_dir);
        w.len(m.trusted_files.len());
        w.0.extend_from_slice(m.trusted_files.encoded());
        w.len(m.trusted_symlinks.len());
        for s in &m.trusted_symlinks {
            w.str(&s.path);
            w.str(&s.target);
        }
        w.len(m.allowed_files.len());
        for a in &m.allowed_files {
            w.str(a);
        }
        w.u64(m.enclave_size);
        w.u32(m.max_threads);
        w.bool(m.edmm);
        w.bool(m.debug);
        w.u16(m.isvprodid);
        w.u16(m.isvsvn);
        w.u64(m.stack_size);
        w.u64(m.brk_max_size);
        w.u32(m.max_processes);
        w.u8(m.ocall_mode as u8);
        w.u32(m.ocall_workers);
        w.0
    }

    /// Parse canonical bytes. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<ResolvedManifest, DecodeError> {
        Self::decode_from(bytes, None)
    }

    /// As [`ResolvedManifest::decode`], of `shared[range]`; the trusted-file
    /// list stays in those bytes instead of being copied.
    pub fn decode_shared(
        shared: &SharedBytes,
        range: core::ops::Range<usize>,
    ) -> Result<ResolvedManifest, DecodeError> {
        let bytes = (**shared)
            .as_ref()
            .get(range.clone())
            .ok_or(DecodeError::Truncated { at: 0 })?;
        Self::decode_from(bytes, Some((shared, range.start)))
    }

    fn decode_from(
        bytes: &[u8],
        shared: Option<(&SharedBytes, usize)>,
    ) -> Result<ResolvedManifest, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8).map_err(|_| DecodeError::BadMagic)? != MANIFEST_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u32()?;
        if version != MANIFEST_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let entrypoint = r.str()?;
        let n = r.count(4)?;
        let mut argv = Vec::with_capacity(n);
        for _ in 0..n {
            argv.push(r.str()?);
        }
        let use_cmdline_argv = r.bool()?;
        let n = r.count(5)?;
        let mut env = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str()?;
            let at = r.pos;
            let value = match r.u8()? {
                0 => EnvValue::Value(r.str()?),
                1 => EnvValue::Passthrough,
                _ => {
                    return Err(DecodeError::BadValue {
                        at,
                        what: "environment value kind",
                    })
                }
            };
            env.push(EnvVar { name, value });
        }
        let at = r.pos;
        let log_level = LogLevel::from_raw(r.u8()?).ok_or(DecodeError::BadValue {
            at,
            what: "log level",
        })?;
        let fs_root = r.str()?;
        let n = r.count(13)?;
        let mut mounts = Vec::with_capacity(n);
        for _ in 0..n {
            let path = r.str()?;
            let at = r.pos;
            let kind = MountKind::from_raw(r.u8()?).ok_or(DecodeError::BadValue {
                at,
                what: "mount type",
            })?;
            let uri = r.str()?;
            let key_name = r.str()?;
            mounts.push(Mount {
                path,
                kind,
                uri,
                key_name,
            });
        }
        let start_dir = r.str()?;
        let n = r.count(trusted_files::MIN_RECORD)?;
        let trusted_files = TrustedFiles::decode(&mut r, n, shared)?;
        let n = r.count(8)?;
        let mut trusted_symlinks = Vec::with_capacity(n);
        for _ in 0..n {
            let path = r.str()?;
            let target = r.str()?;
            trusted_symlinks.push(TrustedSymlink { path, target });
        }
        let n = r.count(4)?;
        let mut allowed_files = Vec::with_capacity(n);
        for _ in 0..n {
            allowed_files.push(r.str()?);
        }
        let enclave_size = r.u64()?;
        let max_threads = r.u32()?;
        let edmm = r.bool()?;
        let debug = r.bool()?;
        let isvprodid = r.u16()?;
        let isvsvn = r.u16()?;
        let stack_size = r.u64()?;
        let brk_max_size = r.u64()?;
        let max_processes = r.u32()?;
        let at = r.pos;
        let ocall_mode = OcallMode::from_raw(r.u8()?).ok_or(DecodeError::BadValue {
            at,
            what: "OCALL mode",
        })?;
        let ocall_workers = r.u32()?;
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes { at: r.pos });
        }
        Ok(ResolvedManifest {
            entrypoint,
            argv,
            use_cmdline_argv,
            env,
            log_level,
            fs_root,
            mounts,
            start_dir,
            trusted_files,
            trusted_symlinks,
            allowed_files,
            enclave_size,
            max_threads,
            edmm,
            debug,
            isvprodid,
            isvsvn,
            stack_size,
            brk_max_size,
            max_processes,
            ocall_mode,
            ocall_workers,
        })
    }

    /// The trusted file at `path`, by binary search (the list is sorted once
    /// canonicalized, which decoding checks).
    pub fn trusted_file(&self, path: &str) -> Option<TrustedFileRef<'_>> {
        self.trusted_files.find(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn sample() -> ResolvedManifest {
        ResolvedManifest {
            entrypoint: "/usr/bin/python3".into(),
            argv: vec!["python3".into(), "-c".into(), "pass".into()],
            env: vec![
                EnvVar {
                    name: "PATH".into(),
                    value: EnvValue::Value("/usr/bin".into()),
                },
                EnvVar {
                    name: "HOME".into(),
                    value: EnvValue::Passthrough,
                },
            ],
            mounts: vec![Mount {
                path: "/tmp".into(),
                kind: MountKind::Tmpfs,
                uri: String::new(),
                key_name: String::new(),
            }],
            trusted_files: vec![
                TrustedFile {
                    path: "/usr/lib/b".into(),
                    size: 3,
                    digest: [2; 32],
                },
                TrustedFile {
                    path: "/usr/lib/a".into(),
                    size: 1,
                    digest: [1; 32],
                },
            ]
            .into(),
            trusted_symlinks: vec![TrustedSymlink {
                path: "/bin".into(),
                target: "usr/bin".into(),
            }],
            allowed_files: vec!["/data".into()],
            ..Default::default()
        }
    }

    #[test]
    fn mount_kinds_parse_from_their_names() {
        for k in [MountKind::Chroot, MountKind::Tmpfs, MountKind::Encrypted] {
            assert_eq!(MountKind::parse(k.name()), Some(k));
        }
        assert_eq!(MountKind::parse("bind"), None);
    }

    #[test]
    fn round_trip_is_canonical() {
        let m = sample();
        let bytes = m.encode();
        let back = ResolvedManifest::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.trusted_files.get(0).unwrap().path, "/usr/lib/a");
        assert_eq!(back.trusted_file("/usr/lib/b").unwrap().size, 3);
        assert!(back.trusted_file("/usr/lib/c").is_none());
        assert_eq!(back.env[0].name, "HOME");
    }

    /// Encoding a canonical manifest skips the copy; any order or
    /// duplicate in a list still encodes as its canonical form does.
    #[test]
    fn only_canonical_bytes_come_out_whatever_the_order() {
        let messy = sample();
        assert!(!messy.is_canonical());
        let mut tidy = messy.clone();
        tidy.canonicalize();
        assert!(tidy.is_canonical());
        let want = tidy.encode();
        assert_eq!(messy.encode(), want);
        let mut dup = tidy.clone();
        dup.trusted_files
            .push(dup.trusted_files.get(1).unwrap().to_owned());
        assert!(!dup.is_canonical());
        assert_eq!(dup.encode(), want);
        let mut dup_env = tidy.clone();
        dup_env.env.push(EnvVar {
            name: "PATH".into(),
            value: EnvValue::Value("/zzz".into()),
        });
        assert!(!dup_env.is_canonical());
        assert_eq!(dup_env.encode(), want);
        let mut unsorted_allowed = tidy.clone();
        unsorted_allowed.allowed_files.insert(0, "/zz".into());
        assert!(!unsorted_allowed.is_canonical());
    }

    /// A trusted file whose path is not UTF-8 decodes (checking thousands of
    /// paths cost every start, for the few it looks at) but is never found.
    #[test]
    fn a_trusted_path_that_is_not_utf8_is_never_found() {
        let mut m = sample();
        m.canonicalize();
        let mut bytes = m.encode();
        let at = bytes.windows(10).position(|w| w == b"/usr/lib/b").unwrap();
        bytes[at + 9] = 0xff;
        let back = ResolvedManifest::decode(&bytes).unwrap();
        assert_eq!(back.trusted_files.len(), 2);
        assert!(back.trusted_files.get(1).is_none());
        assert_eq!(back.trusted_files.iter().count(), 1);
        assert!(back.trusted_file("/usr/lib/a").is_some());
    }

    /// Decoding in place gives the same manifest as decoding a copy, and a
    /// push to its list leaves the bytes it was decoded from alone.
    #[test]
    fn shared_decoding_reads_in_place() {
        let bytes = sample().encode();
        let mut framed = alloc::vec![7u8; 5];
        framed.extend_from_slice(&bytes);
        framed.push(9);
        let shared: SharedBytes = alloc::sync::Arc::new(framed);
        let mut m = ResolvedManifest::decode_shared(&shared, 5..5 + bytes.len()).unwrap();
        assert_eq!(m, ResolvedManifest::decode(&bytes).unwrap());
        assert_eq!(m.trusted_file("/usr/lib/b").unwrap().size, 3);
        m.trusted_files.push(TrustedFile {
            path: "/usr/lib/c".into(),
            size: 5,
            digest: [5; 32],
        });
        assert_eq!(m.trusted_files.len(), 3);
        assert_eq!(
            ResolvedManifest::decode_shared(&shared, 5..5 + bytes.len())
                .unwrap()
                .trusted_files
                .len(),
            2
        );
        assert!(ResolvedManifest::decode_shared(&shared, 5..6 + bytes.len()).is_err());
        assert!(ResolvedManifest::decode_shared(&shared, 5..100_000).is_err());
    }

    /// The LibOS looks trusted files up by binary search: bytes listing
    /// them out of order (or a path twice) are refused, not misread.
    #[test]
    fn trusted_files_out_of_order_do_not_decode() {
        let messy = sample();
        let err = ResolvedManifest::decode(&messy.encode_canonical()).unwrap_err();
        assert!(
            matches!(err, DecodeError::BadValue { what, .. } if what.contains("order")),
            "{err:?}"
        );
        let mut twice = messy.clone();
        twice.canonicalize();
        twice
            .trusted_files
            .push(twice.trusted_files.get(1).unwrap().to_owned());
        assert!(ResolvedManifest::decode(&twice.encode_canonical()).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(
                ResolvedManifest::decode(&bytes[..n]).is_err(),
                "prefix {n} decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ResolvedManifest::decode(&longer),
            Err(DecodeError::TrailingBytes { at: bytes.len() })
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ResolvedManifest::decode(&bytes);
        }

        #[test]
        fn decode_of_mutated_manifest_never_panics(pos in 0usize..400, val in any::<u8>()) {
            let mut bytes = sample().encode();
            let p = pos % bytes.len();
            bytes[p] = val;
            if let Ok(m) = ResolvedManifest::decode(&bytes) {
                let _ = m.entrypoint.to_string();
            }
        }
    }
}
