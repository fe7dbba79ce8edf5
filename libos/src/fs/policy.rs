//! What the manifest lets the program do with a path, and opening files
//! accordingly.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::manifest::{MountKind, ResolvedManifest, TrustedFile as Entry};
use conf_abi::Errno;

use super::dev::Device;
use super::file::{File, OpenFile};
use super::host::{HostFile, HostKind, KernelStat};
use super::path::{self, Symlinks};
use super::trusted::TrustedFile;
use super::{mode, oflags};
use crate::host::calls as hc;
use crate::sync::SpinLock;
use crate::util::Global;

/// The file-system view the measured manifest defines.
pub struct Namespace {
    pub manifest: &'static ResolvedManifest,
    pub links: Symlinks,
    /// Host directory shown as `/`.
    root: String,
    /// Chroot mounts: enclave path → host path, longest first.
    mounts: Vec<(String, String)>,
    denied_logged: SpinLock<BTreeSet<String>>,
}

static NS: Global<Namespace> = Global::new();

pub fn init(manifest: &'static ResolvedManifest) {
    let mut mounts: Vec<(String, String)> = manifest
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Chroot)
        .map(|m| (m.path.clone(), m.uri.clone()))
        .collect();
    mounts.sort_by_key(|(p, _)| core::cmp::Reverse(p.len()));
    let root = manifest.fs_root.trim_end_matches('/');
    NS.set(Namespace {
        manifest,
        links: Symlinks::new(manifest.trusted_symlinks.iter().map(|s| (s.path.clone(), s.target.clone()))),
        root: String::from(root),
        mounts,
        denied_logged: SpinLock::new(BTreeSet::new()),
    });
}

pub fn ns() -> &'static Namespace {
    NS.get()
}

/// What a resolved enclave path is.
pub enum Target {
    /// Fixed by the manifest; `host` is where its bytes are.
    Trusted(&'static Entry),
    /// Readable and writable, unprotected.
    Allowed(String),
    /// Under a host mount but neither trusted nor allowed: metadata and
    /// directory listings only.
    Metadata(String),
    Device(Device),
}

impl Namespace {
    /// Host path for an enclave path under a chroot mount.
    pub fn host_path(&self, p: &str) -> String {
        for (mp, uri) in &self.mounts {
            if path::is_within(p, mp) {
                let rest = &p[mp.len()..];
                let mut h = String::from(uri.trim_end_matches('/'));
                h.push_str(rest);
                if h.is_empty() {
                    h.push('/');
                }
                return h;
            }
        }
        let mut h = self.root.clone();
        h.push_str(p);
        if h.is_empty() {
            h.push('/');
        }
        h
    }

    pub fn is_allowed(&self, host: &str) -> bool {
        self.manifest.allowed_files.iter().any(|a| path::is_within(host, a.trim_end_matches('/')) || a == "/")
    }

    pub fn classify(&self, p: &str) -> Target {
        if let Some(name) = p.strip_prefix("/dev/") {
            if let Some(d) = Device::by_name(name) {
                return Target::Device(d);
            }
        }
        let host = self.host_path(p);
        if let Some(t) = self.manifest.trusted_file(&host) {
            return Target::Trusted(t);
        }
        if self.is_allowed(&host) {
            return Target::Allowed(host);
        }
        Target::Metadata(host)
    }

    /// Refuse access to `p`, saying once which manifest key would allow it.
    pub fn deny(&self, p: &str, write: bool) -> Errno {
        let mut seen = self.denied_logged.lock();
        if seen.insert(String::from(p)) {
            drop(seen);
            if write {
                error!("denied writing {p}: it is not under sgx.allowed_files (trusted files are read-only); add it, or its directory, to sgx.allowed_files in the manifest to make it writable");
            } else {
                error!("denied reading {p}: it is neither in sgx.trusted_files nor in sgx.allowed_files; add it to sgx.trusted_files (contents verified) or sgx.allowed_files (unprotected) in the manifest");
            }
        }
        Errno::EACCES
    }
}

/// Flags passed on to the host when opening an allowed file.
const HOST_OPEN_FLAGS: u32 = oflags::O_ACCMODE
    | oflags::O_CREAT
    | oflags::O_EXCL
    | oflags::O_TRUNC
    | oflags::O_APPEND
    | oflags::O_NONBLOCK
    | oflags::O_DIRECTORY
    | oflags::O_NOFOLLOW
    | oflags::O_DSYNC
    | oflags::O_DIRECT
    | oflags::O_TMPFILE
    | oflags::O_NOCTTY;

fn wants_write(flags: u32) -> bool {
    flags & oflags::O_ACCMODE != oflags::O_RDONLY || flags & (oflags::O_TRUNC | oflags::O_TMPFILE & !oflags::O_DIRECTORY) != 0
}

/// Open `path` (relative to `cwd`) as open(2) would.
pub fn open(cwd: &str, path: &[u8], flags: u32, create_mode: u32) -> Result<Arc<OpenFile>, Errno> {
    let ns = ns();
    let follow = flags & oflags::O_NOFOLLOW == 0;
    let p = path::resolve(cwd, path, follow, &ns.links)?;
    if super::proc::owns(&p) {
        return super::proc::open(&p, flags);
    }
    let file: Arc<dyn File> = match ns.classify(&p) {
        Target::Device(d) => Arc::new(d),
        Target::Trusted(entry) => {
            if wants_write(flags) {
                return Err(ns.deny(&p, true));
            }
            if flags & oflags::O_CREAT != 0 && flags & oflags::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            let t = TrustedFile::open(entry)?;
            if flags & oflags::O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            Arc::new(t)
        }
        Target::Allowed(host) => {
            let fd = hc::open(host.as_bytes(), (flags & HOST_OPEN_FLAGS) as i32, create_mode)?;
            let kind = match hc::fstat(fd) {
                Ok(st) => HostFile::kind_of(&st),
                Err(e) => {
                    hc::close(fd);
                    return Err(e);
                }
            };
            Arc::new(HostFile::new(fd, kind, host))
        }
        Target::Metadata(host) => {
            // Directories may be listed; files need the manifest's consent.
            let st = match hc::stat(host.as_bytes(), !follow) {
                Ok(st) => st,
                Err(Errno::ENOENT) if flags & oflags::O_CREAT != 0 => return Err(ns.deny(&p, true)),
                Err(e) => return Err(e),
            };
            let is_dir = st.st_mode & mode::S_IFMT == mode::S_IFDIR;
            if !is_dir || wants_write(flags) {
                return Err(ns.deny(&p, wants_write(flags)));
            }
            let fd = hc::open(host.as_bytes(), (oflags::O_RDONLY | oflags::O_DIRECTORY) as i32, 0)?;
            Arc::new(HostFile::new(fd, HostKind::Dir, host))
        }
    };
    if flags & oflags::O_DIRECTORY != 0 && !file.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let keep = flags & !(oflags::O_CREAT | oflags::O_EXCL | oflags::O_TRUNC | oflags::O_NOCTTY | oflags::O_CLOEXEC);
    Ok(OpenFile::new(file, keep, p))
}

/// stat/lstat of `path`.
pub fn stat(cwd: &str, path: &[u8], follow: bool) -> Result<KernelStat, Errno> {
    let ns = ns();
    let p = path::resolve(cwd, path, follow, &ns.links)?;
    if super::proc::owns(&p) {
        return super::proc::stat(&p, follow);
    }
    if !follow {
        // A measured symlink is reported as what it is.
        if let Some(target) = ns.links.get(&ns.host_path(&p)) {
            let mut st = hc::stat(ns.host_path(&p).as_bytes(), true).unwrap_or_default();
            st.st_mode = mode::S_IFLNK | 0o777;
            st.st_size = target.len() as i64;
            return Ok(st);
        }
    }
    match ns.classify(&p) {
        Target::Device(d) => d.stat(),
        Target::Trusted(entry) => {
            let mut st = hc::stat(entry.path.as_bytes(), false).unwrap_or_default();
            st.st_size = entry.size as i64;
            st.st_blocks = entry.size.div_ceil(512) as i64;
            st.st_mode = (st.st_mode & 0o7777 & !0o222) | mode::S_IFREG;
            if st.st_nlink == 0 {
                st.st_nlink = 1;
            }
            Ok(st)
        }
        Target::Allowed(host) | Target::Metadata(host) => hc::stat(host.as_bytes(), !follow),
    }
}

/// readlink of `path`: measured links first, then the host for others.
pub fn readlink(cwd: &str, path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let ns = ns();
    let p = path::resolve(cwd, path, false, &ns.links)?;
    if super::proc::owns(&p) {
        let t = super::proc::readlink(&super::proc::follow(&p, false)?)?;
        let n = t.len().min(buf.len());
        buf[..n].copy_from_slice(&t.as_bytes()[..n]);
        return Ok(n);
    }
    let host = ns.host_path(&p);
    if let Some(t) = ns.links.get(&host) {
        let n = t.len().min(buf.len());
        buf[..n].copy_from_slice(&t.as_bytes()[..n]);
        return Ok(n);
    }
    if ns.manifest.trusted_file(&host).is_some() {
        return Err(Errno::EINVAL);
    }
    hc::readlink(host.as_bytes(), buf)
}

/// The enclave path `path` resolves to (for chdir, execve and friends).
pub fn resolve(cwd: &str, path: &[u8], follow: bool) -> Result<String, Errno> {
    path::resolve(cwd, path, follow, &ns().links)
}
