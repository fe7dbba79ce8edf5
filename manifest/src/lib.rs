//! The conf manifest format.
//!
//! A manifest (TOML, see `docs/manifest.md`) is parsed into a typed
//! [`Manifest`] ([`parse_str`], [`parse_file`]): templates are substituted,
//! every key is checked, defaults are filled in and relative host paths are
//! made absolute. [`resolve`] then expands and hashes the trusted files and
//! produces the [`ResolvedManifest`] whose canonical bytes
//! ([`ResolvedManifest::encode`]) are measured into the enclave.
//!
//! A [`Manifest`] can also be built in code (all fields are public and it
//! implements [`Default`]); [`resolve`] checks it the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use conf_abi::manifest::{EnvValue, LogLevel, Mount, MountKind, OcallMode, ResolvedManifest};
pub use conf_abi::trusted::Digest32;

mod cache;
mod cache_dir;
mod emit;
mod error;
mod hash;
mod parse;
mod paths;
mod resolve;
mod size;
mod snapshot;

pub use cache_dir::{keep_newest, mark_used};
pub use snapshot::Unchecked;
mod template;

pub use error::{Location, ManifestError, ResolveError};
pub use resolve::resolve;
pub use template::BUILTINS as TEMPLATE_BUILTINS;

/// Default `sgx.enclave_size`: 2 GiB.
pub const DEFAULT_ENCLAVE_SIZE: u64 = 2 << 30;
/// Default `sgx.max_threads`.
pub const DEFAULT_MAX_THREADS: u32 = 8;
/// Default `sys.stack.size`: 8 MiB.
pub const DEFAULT_STACK_SIZE: u64 = 8 << 20;
/// Default `sys.brk.max_size`: 64 MiB.
pub const DEFAULT_BRK_MAX_SIZE: u64 = 64 << 20;
/// Default `sys.max_processes`.
pub const DEFAULT_MAX_PROCESSES: u32 = 64;
/// Default `libos.ocall.workers`.
pub const DEFAULT_OCALL_WORKERS: u32 = 1;

/// One `sgx.trusted_files` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedEntry {
    /// Absolute, normalized host path of a file or directory, or a glob
    /// pattern (`*`, `?`, `[...]`, `**`) over host paths.
    pub path: String,
    /// Plain SHA-256 of the file's bytes (Gramine's `sha256`), checked at
    /// resolve time. Only for a single file.
    pub sha256: Option<Digest32>,
}

impl TrustedEntry {
    /// An entry without a `sha256` check.
    pub fn new(path: impl Into<String>) -> TrustedEntry {
        TrustedEntry {
            path: path.into(),
            sha256: None,
        }
    }
}

/// A parsed and checked manifest. Host paths are absolute and normalized;
/// enclave paths are absolute and normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Where the manifest came from (file path or a caller-chosen name);
    /// used in error messages.
    pub origin: String,
    /// `libos.entrypoint`: an absolute path inside the enclave, or `file:`
    /// followed by an absolute host path (mapped into the enclave through
    /// `fs_root` and `mounts` at resolve time).
    pub entrypoint: String,
    /// `loader.argv`, including `argv[0]`. Empty: `[entrypoint]`, unless
    /// `use_cmdline_argv`.
    pub argv: Vec<String>,
    /// `loader.insecure__use_cmdline_argv`.
    pub use_cmdline_argv: bool,
    /// `loader.env.NAME`.
    pub env: BTreeMap<String, EnvValue>,
    /// `loader.log_level`.
    pub log_level: LogLevel,
    /// `fs.root`: host directory shown as `/`.
    pub fs_root: String,
    /// `fs.mounts`; `uri` is an absolute host path (empty for tmpfs).
    pub mounts: Vec<Mount>,
    /// `fs.start_dir`: initial working directory inside the enclave.
    pub start_dir: String,
    /// `sgx.trusted_files`.
    pub trusted_files: Vec<TrustedEntry>,
    /// `sgx.allowed_files`: host paths (a directory allows everything below it).
    pub allowed_files: Vec<String>,
    /// `sgx.enclave_size` in bytes (a power of two).
    pub enclave_size: u64,
    /// `sgx.max_threads` (Gramine: `sgx.thread_num`).
    pub max_threads: u32,
    /// `sgx.edmm_enable`.
    pub edmm: bool,
    /// `sgx.debug`.
    pub debug: bool,
    /// `sgx.isvprodid`.
    pub isvprodid: u16,
    /// `sgx.isvsvn`.
    pub isvsvn: u16,
    /// `sys.stack.size` in bytes.
    pub stack_size: u64,
    /// `sys.brk.max_size` in bytes.
    pub brk_max_size: u64,
    /// `sys.max_processes` (1 with Gramine's `sys.disallow_subprocesses`).
    pub max_processes: u32,
    /// `libos.ocall.mode`.
    pub ocall_mode: OcallMode,
    /// `libos.ocall.workers`.
    pub ocall_workers: u32,
    /// Keys that were accepted but ignored (Gramine-only settings), one
    /// line each, `file:line:column: ...`. Not part of the manifest's meaning.
    pub warnings: Vec<String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            origin: "<synthesized manifest>".to_string(),
            entrypoint: String::new(),
            argv: Vec::new(),
            use_cmdline_argv: false,
            env: BTreeMap::new(),
            log_level: LogLevel::Error,
            fs_root: "/".to_string(),
            mounts: Vec::new(),
            start_dir: "/".to_string(),
            trusted_files: Vec::new(),
            allowed_files: Vec::new(),
            enclave_size: DEFAULT_ENCLAVE_SIZE,
            max_threads: DEFAULT_MAX_THREADS,
            edmm: true,
            debug: false,
            isvprodid: 0,
            isvsvn: 0,
            stack_size: DEFAULT_STACK_SIZE,
            brk_max_size: DEFAULT_BRK_MAX_SIZE,
            max_processes: DEFAULT_MAX_PROCESSES,
            ocall_mode: OcallMode::Exit,
            ocall_workers: DEFAULT_OCALL_WORKERS,
            warnings: Vec::new(),
        }
    }
}

impl Manifest {
    /// The manifest as TOML. Every setting is written out explicitly, so
    /// `parse_str(&m.to_toml(), ..)` gives back `m` (apart from `origin` and
    /// `warnings`).
    pub fn to_toml(&self) -> String {
        emit::to_toml(self)
    }
}

/// Parse a manifest held in memory. `origin` names it in error messages;
/// relative host paths are relative to the current directory.
pub fn parse_str(
    text: &str,
    origin: &str,
    defines: &BTreeMap<String, String>,
) -> Result<Manifest, ManifestError> {
    let base = std::env::current_dir().map_err(|e| ManifestError::BaseDir {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    parse::parse(text, origin, base.to_str(), defines)
}

/// Parse a manifest file; relative host paths are relative to the file's
/// directory.
pub fn parse_file(
    path: &Path,
    defines: &BTreeMap<String, String>,
) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| ManifestError::BaseDir {
                origin: origin.clone(),
                message: e.to_string(),
            })?
            .join(path)
    };
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let dir = dir.to_str().map(paths::normalize_abs);
    parse::parse(&text, &origin, dir.as_deref(), defines)
}

/// Whether [`resolve`] may draw a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr while hashing, only if stderr is a terminal.
    #[default]
    Auto,
    /// Never draw anything.
    Never,
}

/// How [`resolve`] works.
#[derive(Clone, Debug, Default)]
pub struct ResolveOptions {
    pub progress: Progress,
    /// Directory of the digest cache; `None`: [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Hashing threads; 0: one per available core.
    pub threads: usize,
    /// Use a snapshot without checking the trusted files outside the
    /// working directory; they come back in [`Resolution::unchecked`] (see
    /// [`Unchecked`]). For conf-run's start only: a manifest that is signed
    /// or measured must reflect every file as it is now.
    pub defer_checks: bool,
}

/// The chunk digests of every trusted file, by its enclave path (as in
/// `ResolvedManifest::trusted_files`). The host serves them to the LibOS,
/// which checks them against the file's root digest.
#[derive(Clone, Debug, Default)]
pub struct ChunkIndex {
    map: std::collections::HashMap<String, Arc<[Digest32]>>,
}

impl ChunkIndex {
    /// The chunk digests of the trusted file at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<[Digest32]>> {
        self.map.get(path).cloned()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Every (path, chunk digests) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<[Digest32]>)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// What [`resolve`] did.
#[derive(Clone, Debug, Default)]
pub struct ResolveStats {
    /// Trusted files.
    pub files: usize,
    /// Trusted symbolic links.
    pub symlinks: usize,
    /// Total size of the trusted files.
    pub bytes: u64,
    /// Bytes read and hashed (cache misses).
    pub bytes_hashed: u64,
    /// Files whose digests came from the cache.
    pub cache_hits: usize,
    /// Wall-clock time of the whole resolution.
    pub elapsed: Duration,
    /// Things skipped or worth knowing (non-UTF-8 file names, special files,
    /// a cache that could not be written, ...), one line each.
    pub warnings: Vec<String>,
}

/// The outcome of [`resolve`].
#[derive(Clone, Debug)]
pub struct Resolution {
    /// Every path in it is an enclave path; `fs_root` is always `/`.
    pub manifest: ResolvedManifest,
    pub chunks: ChunkIndex,
    pub stats: ResolveStats,
    /// The host directory shown as `/` (the manifest's fs.root, absolute
    /// and normalized). Not measured: conf-run hands it to the LibOS at boot.
    pub host_root: PathBuf,
    /// Trusted files used from a snapshot without a check (only with
    /// [`ResolveOptions::defer_checks`]).
    pub unchecked: Arc<Unchecked>,
    /// Names what was resolved: the manifest without its environment and
    /// arguments (the key of its snapshot). Caches of what depends only on
    /// the files, such as conf-run's fill hints, are keyed by it: zero-config
    /// carries the shell's environment, which changes from start to start.
    pub files_key: String,
}

/// The digest cache, read-only: chunk digests of files an earlier
/// resolution hashed. A child process's conf-run uses it so that opening a
/// trusted file does not hash it again (the LibOS still checks the digests
/// against the measured manifest, so a wrong cache costs a refusal, never
/// trust).
pub struct DigestCache(cache::Cache);

impl DigestCache {
    pub fn open(dir: &std::path::Path) -> DigestCache {
        DigestCache(cache::Cache::open(dir))
    }

    /// The chunk digests recorded for the host file `path` as it is now
    /// (same device, inode, size and times), if any.
    pub fn chunks(&self, path: &str) -> Option<std::sync::Arc<[Digest32]>> {
        let md = std::fs::metadata(path).ok()?;
        self.0
            .lookup(path, &cache::FileKey::of(&md))
            .map(|r| r.chunks)
    }
}

/// How many CPUs this process may run on (its affinity mask; at least 1).
/// `std::thread::available_parallelism` also reads the cgroup's CPU quota
/// from /proc and /sys: about 0.1 ms at every start, for a number that
/// only sizes the hashing threads and the enclave's worker.
pub fn cpus() -> usize {
    // SAFETY: sched_getaffinity writes at most the set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        (libc::CPU_COUNT(&set) as usize).max(1)
    }
}

/// Where digests are cached: `$CONF_CACHE_DIR`, else `$XDG_CACHE_HOME/conf`,
/// else `~/.cache/conf` (else a per-user directory under the temp dir).
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("CONF_CACHE_DIR") {
        return d;
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return d.join("conf");
    }
    if let Some(h) = var("HOME") {
        return h.join(".cache").join("conf");
    }
    // SAFETY: getuid cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("conf-cache-{uid}"))
}

#[cfg(test)]
mod tests {
    /// The kernel's own count of the CPUs this process may use.
    #[test]
    fn cpus_are_those_the_affinity_mask_allows() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed:"))
            .unwrap();
        let allowed: u32 = mask
            .trim()
            .chars()
            .filter_map(|c| c.to_digit(16))
            .map(|d| d.count_ones())
            .sum();
        assert_eq!(super::cpus(), allowed as usize);
    }
}
