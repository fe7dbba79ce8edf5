//! What the manifest lets the program do with a path, and the path
//! operations that follow from it (open, stat, create, remove, rename...).
//!
//! Every path is resolved inside the enclave first (measured symlinks,
//! tmpfs symlinks, /proc links), then classified: a tmpfs mount, a device,
//! /proc or /sys, a trusted file, an allowed host path, or a host path the
//! manifest only lets the program look at (metadata and listings).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::manifest::{MountKind, ResolvedManifest, TrustedFileRef as Entry};
use conf_abi::Errno;

use super::dev::Device;
use super::file::{File, OpenFile};
use super::host::{HostFile, HostKind, KernelStat};
use super::path::{self, Symlinks};
use super::tmpfs::{self, TmpFile, Tmpfs};
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
    /// tmpfs mounts, longest first.
    tmpfs: Vec<(String, &'static Tmpfs)>,
    denied_logged: SpinLock<BTreeSet<String>>,
}

static NS: Global<Namespace> = Global::new();

/// Set up the namespace; refuses what this LibOS cannot provide.
pub fn init(manifest: &'static ResolvedManifest) -> Result<(), String> {
    let mut mounts: Vec<(String, String)> = Vec::new();
    let mut tmpfs: Vec<(String, &'static Tmpfs)> = Vec::new();
    for (i, m) in manifest.mounts.iter().enumerate() {
        match m.kind {
            MountKind::Chroot => mounts.push((m.path.clone(), m.uri.clone())),
            MountKind::Tmpfs => tmpfs.push((m.path.clone(), alloc::boxed::Box::leak(alloc::boxed::Box::new(Tmpfs::new(0x100 + i as u64))))),
            MountKind::Encrypted => {
                return Err(alloc::format!(
                    "fs.mounts: the encrypted mount at {} is not supported by this version of conf; use type \"chroot\" with sgx.allowed_files (unprotected) or \"tmpfs\" (in enclave memory) instead",
                    m.path
                ))
            }
        }
    }
    mounts.sort_by_key(|(p, _)| core::cmp::Reverse(p.len()));
    tmpfs.sort_by_key(|(p, _)| core::cmp::Reverse(p.len()));
    // Where `/` is on the host comes from the host (it is not measured:
    // contents are checked, not locations); the manifest's fs.root if not.
    let host_root = {
        use conf_abi::ocall::BootBlock;
        let off = crate::host::boot_field(core::mem::offset_of!(BootBlock, root_off));
        let len = crate::host::boot_field(core::mem::offset_of!(BootBlock, root_len));
        crate::host::boot_bytes(off, len.min(4096))
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|r| r.starts_with('/'))
    };
    let root = host_root.unwrap_or_else(|| manifest.fs_root.clone());
    let root = root.trim_end_matches('/');
    NS.set(Namespace {
        manifest,
        links: Symlinks::new(
            manifest
                .trusted_symlinks
                .iter()
                .map(|s| (s.path.clone(), s.target.clone())),
        ),
        root: String::from(root),
        mounts,
        tmpfs,
        denied_logged: SpinLock::new(BTreeSet::new()),
    });
    Ok(())
}

pub fn ns() -> &'static Namespace {
    NS.get()
}

/// What a resolved enclave path is.
pub enum Target {
    /// Fixed by the manifest; its bytes are at the host path `entry.path`.
    Trusted(Entry<'static>),
    /// Readable and writable, unprotected.
    Allowed(String),
    /// Under a host mount but neither trusted nor allowed: metadata and
    /// directory listings only.
    Metadata(String),
    Device(Device),
    /// In a tmpfs mount, at this path relative to the mount.
    Tmp(&'static Tmpfs, String),
    /// /proc or /sys.
    Proc,
}

/// Links the LibOS itself provides.
fn builtin_link(p: &str) -> Option<String> {
    Some(String::from(match p {
        "/dev/stdin" => "/proc/self/fd/0",
        "/dev/stdout" => "/proc/self/fd/1",
        "/dev/stderr" => "/proc/self/fd/2",
        "/dev/fd" => "/proc/self/fd",
        _ => return None,
    }))
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

    fn tmpfs_of(&self, p: &str) -> Option<(&'static Tmpfs, String)> {
        // The longest mount point wins, whatever its type: a host directory
        // mounted inside a tmpfs (zero-config's /tmp/project) shows through.
        let host_len = self
            .mounts
            .iter()
            .filter(|(mp, _)| path::is_within(p, mp))
            .map(|(mp, _)| mp.len())
            .max();
        for (mp, fs) in &self.tmpfs {
            if path::is_within(p, mp) {
                if host_len.is_some_and(|h| h > mp.len()) {
                    return None;
                }
                return Some((fs, String::from(p[mp.len()..].trim_start_matches('/'))));
            }
        }
        None
    }

    /// Is the enclave path `p` under sgx.allowed_files (enclave paths)?
    pub fn is_allowed(&self, p: &str) -> bool {
        self.manifest
            .allowed_files
            .iter()
            .any(|a| a == "/" || path::is_within(p, a.trim_end_matches('/')))
    }

    pub fn classify(&self, p: &str) -> Target {
        if super::proc::owns(p) {
            return Target::Proc;
        }
        if let Some((fs, rel)) = self.tmpfs_of(p) {
            return Target::Tmp(fs, rel);
        }
        if let Some(name) = p.strip_prefix("/dev/") {
            if let Some(d) = Device::by_name(name) {
                return Target::Device(d);
            }
        }
        if let Some(t) = self.manifest.trusted_file(p) {
            return Target::Trusted(t);
        }
        let host = self.host_path(p);
        if self.is_allowed(p) {
            return Target::Allowed(host);
        }
        Target::Metadata(host)
    }

    /// Is `p` a symlink the enclave knows (measured, tmpfs or built in)?
    fn link_of(&self, p: &str) -> Option<String> {
        if let Some(t) = builtin_link(p) {
            return Some(t);
        }
        if let Some((fs, rel)) = self.tmpfs_of(p) {
            return match fs.lookup(&rel).ok()?.kind {
                tmpfs::Kind::Symlink(ref t) => Some(t.clone()),
                _ => None,
            };
        }
        if self.links.is_empty() {
            return None;
        }
        self.links.get(p).map(String::from)
    }

    /// For a path the manifest does not cover, the path it really names on
    /// the host (through host symlinks such as `/bin` → `usr/bin`), if that
    /// one is trusted or allowed. Safe to take from the host: the result is
    /// checked like any path, and a trusted file's contents are verified.
    pub fn real_name(&self, p: &str) -> Option<(String, Target)> {
        if !self.mounts.is_empty() {
            return None;
        }
        let host = self.host_path(p);
        let real = hc::realpath(host.as_bytes()).ok()?;
        let real = core::str::from_utf8(&real).ok()?;
        let enclave = if self.root.is_empty() {
            real
        } else {
            real.strip_prefix(self.root.as_str())?
        };
        if enclave == p || !enclave.starts_with('/') {
            return None;
        }
        match self.classify(enclave) {
            t @ (Target::Trusted(_) | Target::Allowed(_)) => Some((String::from(enclave), t)),
            _ => None,
        }
    }

    /// The tmpfs mounts, by `fs.mounts` index.
    pub fn tmpfs_mounts(&self) -> impl Iterator<Item = &'static Tmpfs> + '_ {
        self.tmpfs.iter().map(|(_, t)| *t)
    }

    pub fn tmpfs_by_index(&self, i: u32) -> Option<&'static Tmpfs> {
        self.tmpfs.iter().map(|(_, t)| *t).find(|t| t.index == i)
    }

    /// Refuse access to `p`, saying once which manifest key would allow it.
    pub fn deny(&self, p: &str, write: bool) -> Errno {
        let mut seen = self.denied_logged.lock();
        if seen.insert(String::from(p)) {
            drop(seen);
            if write {
                error!("denied writing {p}: it is not under sgx.allowed_files (trusted files are read-only); add it, or its directory, to sgx.allowed_files in the manifest (without a manifest: conf-run --allow DIR)");
            } else {
                error!("denied reading {p}: it is neither in sgx.trusted_files nor in sgx.allowed_files; add it to sgx.trusted_files (contents verified) or sgx.allowed_files (unprotected) in the manifest (without a manifest: conf-run --trust PATH or --allow PATH)");
            }
        }
        Errno::EACCES
    }

    /// Refuse to run `p`, which is not trusted, saying once how to allow it.
    pub fn deny_exec(&self, p: &str) -> Errno {
        let mut seen = self.denied_logged.lock();
        if seen.insert(alloc::format!("exec {p}")) {
            drop(seen);
            error!("denied running {p}: only files in sgx.trusted_files run in the enclave; add it to sgx.trusted_files in the manifest (without a manifest: conf-run --trust {p})");
        }
        Errno::EACCES
    }

    /// Refuse creating `p` where nothing may be written. Programs try this
    /// on their own (history files, caches) and cope, so it is a warning.
    pub fn deny_create(&self, p: &str) -> Errno {
        let mut seen = self.denied_logged.lock();
        if seen.insert(String::from(p)) {
            drop(seen);
            warn!("denied creating {p}: its directory is not under sgx.allowed_files (without a manifest: conf-run --allow DIR)");
        }
        Errno::EACCES
    }
}

/// Resolve `path` (relative to `cwd`) to an enclave path.
pub fn resolve(cwd: &str, path: &[u8], follow: bool) -> Result<String, Errno> {
    let ns = ns();
    path::resolve_with(cwd, path, follow, &|p| ns.link_of(p))
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
    flags & oflags::O_ACCMODE != oflags::O_RDONLY
        || flags & oflags::O_TRUNC != 0
        || flags & oflags::O_TMPFILE == oflags::O_TMPFILE
}

fn open_tmp(fs: &'static Tmpfs, rel: &str, flags: u32, perm: u32) -> Result<Arc<dyn File>, Errno> {
    if flags & oflags::O_TMPFILE == oflags::O_TMPFILE {
        let dir = fs.lookup(rel)?;
        if !matches!(dir.kind, tmpfs::Kind::Dir(_)) {
            return Err(Errno::ENOTDIR);
        }
        // An unnamed file: created and immediately unlinked.
        let name = alloc::format!(
            "{}/.conf-tmpfile-{:x}",
            rel,
            crate::arch::rdrand64().unwrap_or(0)
        );
        let n = fs.create(name.trim_start_matches('/'), perm, true)?;
        fs.unlink(name.trim_start_matches('/'), false)?;
        return Ok(Arc::new(TmpFile { fs, node: n }));
    }
    let node = if flags & oflags::O_CREAT != 0 {
        match fs.create(rel, perm, flags & oflags::O_EXCL != 0) {
            Err(Errno::EEXIST) if rel.is_empty() => return Err(Errno::EISDIR),
            r => r?,
        }
    } else {
        fs.lookup(rel)?
    };
    match node.kind {
        tmpfs::Kind::Symlink(_) => return Err(Errno::ELOOP),
        tmpfs::Kind::Dir(_) if wants_write(flags) => return Err(Errno::EISDIR),
        // A socket file is reached with connect(2), not open(2).
        tmpfs::Kind::Socket(_) => return Err(Errno::ENXIO),
        _ => {}
    }
    let f = TmpFile { fs, node };
    if flags & oflags::O_TRUNC != 0 && !f.is_dir() {
        f.truncate(0)?;
    }
    Ok(Arc::new(f))
}

/// Open `path` (relative to `cwd`) as open(2) would.
pub fn open(cwd: &str, path: &[u8], flags: u32, create_mode: u32) -> Result<Arc<OpenFile>, Errno> {
    let ns = ns();
    let follow = flags & oflags::O_NOFOLLOW == 0;
    let mut p = resolve(cwd, path, follow)?;
    let mut target = ns.classify(&p);
    if let Target::Metadata(_) = target {
        if follow {
            if let Some((real, t)) = ns.real_name(&p) {
                p = real;
                target = t;
            }
        }
    }
    let file: Arc<dyn File> = match target {
        Target::Proc => return super::proc::open(&p, flags),
        Target::Tmp(fs, rel) => open_tmp(fs, &rel, flags, create_mode)?,
        Target::Device(d) => Arc::new(d),
        Target::Trusted(entry) => {
            if wants_write(flags) {
                return Err(ns.deny(&p, true));
            }
            if flags & oflags::O_CREAT != 0 && flags & oflags::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            if flags & oflags::O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            Arc::new(TrustedFile::open(entry, &ns.host_path(entry.path))?)
        }
        Target::Allowed(host) => {
            let fd = hc::open(
                host.as_bytes(),
                (flags & HOST_OPEN_FLAGS) as i32,
                create_mode,
            )?;
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
                Err(Errno::ENOENT) if flags & oflags::O_CREAT != 0 => {
                    return Err(ns.deny_create(&p))
                }
                Err(e) => return Err(e),
            };
            let is_dir = st.st_mode & mode::S_IFMT == mode::S_IFDIR;
            if !is_dir || wants_write(flags) {
                return Err(ns.deny(&p, wants_write(flags)));
            }
            let fd = hc::open(
                host.as_bytes(),
                (oflags::O_RDONLY | oflags::O_DIRECTORY) as i32,
                0,
            )?;
            Arc::new(HostFile::new(fd, HostKind::Dir, host))
        }
    };
    if flags & oflags::O_DIRECTORY != 0 && !file.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let keep = flags
        & !(oflags::O_CREAT
            | oflags::O_EXCL
            | oflags::O_TRUNC
            | oflags::O_NOCTTY
            | oflags::O_CLOEXEC);
    Ok(OpenFile::new(file, keep, p))
}

fn trusted_stat(entry: Entry<'_>) -> KernelStat {
    let mut st = hc::stat(ns().host_path(entry.path).as_bytes(), false).unwrap_or_default();
    st.st_size = entry.size as i64;
    st.st_blocks = entry.size.div_ceil(512) as i64;
    st.st_mode = (st.st_mode & 0o7777) | mode::S_IFREG;
    if st.st_nlink == 0 {
        st.st_nlink = 1;
    }
    st
}

/// stat/lstat of `path`.
pub fn stat(cwd: &str, path: &[u8], follow: bool) -> Result<KernelStat, Errno> {
    let ns = ns();
    let p = resolve(cwd, path, follow)?;
    match ns.classify(&p) {
        Target::Proc => super::proc::stat(&p, follow),
        Target::Tmp(fs, rel) => Ok(fs.stat_node(&*fs.lookup(&rel)?)),
        Target::Device(d) => d.stat(),
        target => {
            if !follow {
                // A measured symlink is reported as what it is.
                if let Some(t) = ns.link_of(&p) {
                    let mut st = hc::stat(ns.host_path(&p).as_bytes(), true).unwrap_or_default();
                    st.st_mode = mode::S_IFLNK | 0o777;
                    st.st_size = t.len() as i64;
                    return Ok(st);
                }
            }
            match target {
                Target::Trusted(entry) => Ok(trusted_stat(entry)),
                Target::Allowed(host) | Target::Metadata(host) => {
                    hc::stat(host.as_bytes(), !follow)
                }
                _ => Err(Errno::ENOENT),
            }
        }
    }
}

/// readlink of `path`: links the enclave knows, then the host for others.
pub fn readlink(cwd: &str, path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let ns = ns();
    let p = resolve(cwd, path, false)?;
    let copy = |t: &str, buf: &mut [u8]| {
        let n = t.len().min(buf.len());
        buf[..n].copy_from_slice(&t.as_bytes()[..n]);
        n
    };
    match ns.classify(&p) {
        Target::Proc => Ok(copy(
            &super::proc::readlink(&super::proc::follow(&p, false)?)?,
            buf,
        )),
        Target::Tmp(fs, rel) => match &fs.lookup(&rel)?.kind {
            tmpfs::Kind::Symlink(t) => Ok(copy(t, buf)),
            _ => Err(Errno::EINVAL),
        },
        Target::Device(_) => Err(Errno::EINVAL),
        target => {
            if let Some(t) = ns.link_of(&p) {
                return Ok(copy(&t, buf));
            }
            match target {
                Target::Trusted(_) => Err(Errno::EINVAL),
                Target::Allowed(host) | Target::Metadata(host) => {
                    hc::readlink(host.as_bytes(), buf)
                }
                _ => Err(Errno::EINVAL),
            }
        }
    }
}

/// Where a path the program wants to change lives.
enum Writable {
    Host(String),
    Tmp(&'static Tmpfs, String),
}

fn writable(cwd: &str, path: &[u8], follow: bool) -> Result<(String, Writable), Errno> {
    let ns = ns();
    let p = resolve(cwd, path, follow)?;
    let w = match ns.classify(&p) {
        Target::Allowed(host) => Writable::Host(host),
        Target::Tmp(fs, rel) => Writable::Tmp(fs, rel),
        Target::Proc | Target::Device(_) => return Err(Errno::EPERM),
        Target::Trusted(_) | Target::Metadata(_) => {
            // Creating something that exists is EEXIST whatever the policy.
            return Err(ns.deny(&p, true));
        }
    };
    Ok((p, w))
}

pub fn mkdir(cwd: &str, path: &[u8], perm: u32) -> Result<(), Errno> {
    match writable(cwd, path, false)?.1 {
        Writable::Host(h) => hc::mkdir(h.as_bytes(), perm),
        Writable::Tmp(fs, rel) => {
            if rel.is_empty() {
                return Err(Errno::EEXIST);
            }
            fs.mkdir(&rel, perm)
        }
    }
}

pub fn unlink(cwd: &str, path: &[u8], dir: bool) -> Result<(), Errno> {
    match writable(cwd, path, false)?.1 {
        Writable::Host(h) => hc::unlink(h.as_bytes(), if dir { 0x200 } else { 0 }),
        Writable::Tmp(fs, rel) => {
            if rel.is_empty() {
                return Err(Errno::EBUSY);
            }
            let node = fs.lookup(&rel)?;
            fs.unlink(&rel, dir)?;
            // A bound socket's last name gone: its host socket goes too, so
            // the name can be bound again (in any process of the run).
            if let tmpfs::Kind::Socket(host_name) = &node.kind {
                if node.meta.lock().nlink == 0 {
                    crate::net::unix::unlinked(host_name);
                }
            }
            Ok(())
        }
    }
}

pub fn rename(cwd1: &str, from: &[u8], cwd2: &str, to: &[u8]) -> Result<(), Errno> {
    match (writable(cwd1, from, false)?.1, writable(cwd2, to, false)?.1) {
        (Writable::Host(a), Writable::Host(b)) => hc::rename(a.as_bytes(), b.as_bytes()),
        (Writable::Tmp(f1, a), Writable::Tmp(f2, b)) if core::ptr::eq(f1, f2) => f1.rename(&a, &b),
        _ => Err(Errno::EXDEV),
    }
}

pub fn symlink(target: &[u8], cwd: &str, path: &[u8]) -> Result<(), Errno> {
    match writable(cwd, path, false)?.1 {
        Writable::Host(h) => hc::symlink(target, h.as_bytes()),
        Writable::Tmp(fs, rel) => fs.symlink(
            core::str::from_utf8(target).map_err(|_| Errno::EINVAL)?,
            &rel,
        ),
    }
}

pub fn link(cwd1: &str, from: &[u8], cwd2: &str, to: &[u8], follow: bool) -> Result<(), Errno> {
    match (
        writable(cwd1, from, follow)?.1,
        writable(cwd2, to, false)?.1,
    ) {
        (Writable::Host(a), Writable::Host(b)) => hc::link(a.as_bytes(), b.as_bytes()),
        (Writable::Tmp(f1, a), Writable::Tmp(f2, b)) if core::ptr::eq(f1, f2) => f1.link(&a, &b),
        _ => Err(Errno::EXDEV),
    }
}

pub fn chmod(cwd: &str, path: &[u8], perm: u32) -> Result<(), Errno> {
    match writable(cwd, path, true)?.1 {
        Writable::Host(h) => hc::chmod(h.as_bytes(), perm),
        Writable::Tmp(fs, rel) => TmpFile {
            fs,
            node: fs.lookup(&rel)?,
        }
        .chmod(perm),
    }
}

pub fn truncate(cwd: &str, path: &[u8], len: u64) -> Result<(), Errno> {
    match writable(cwd, path, true)?.1 {
        Writable::Host(h) => hc::truncate(h.as_bytes(), len),
        Writable::Tmp(fs, rel) => TmpFile {
            fs,
            node: fs.lookup(&rel)?,
        }
        .truncate(len),
    }
}

pub fn utimens(cwd: &str, path: &[u8], times: &[u8; 32], follow: bool) -> Result<(), Errno> {
    match writable(cwd, path, follow)?.1 {
        Writable::Host(h) => hc::utimens(h.as_bytes(), None, times, if follow { 0 } else { 0x100 }),
        Writable::Tmp(fs, rel) => {
            tmpfs::set_times(&*fs.lookup(&rel)?, times);
            Ok(())
        }
    }
}

/// statfs of `path`: the host's for host paths; tmpfs numbers otherwise.
pub fn statfs(cwd: &str, path: &[u8], out: &mut [u8; 120]) -> Result<(), Errno> {
    let ns = ns();
    let p = resolve(cwd, path, true)?;
    match ns.classify(&p) {
        Target::Tmp(..) | Target::Proc | Target::Device(_) => {
            const TMPFS_MAGIC: u64 = 0x0102_1994;
            const PROC_MAGIC: u64 = 0x9fa0;
            let magic = if matches!(ns.classify(&p), Target::Proc) {
                PROC_MAGIC
            } else {
                TMPFS_MAGIC
            };
            out.fill(0);
            out[0..8].copy_from_slice(&magic.to_le_bytes());
            out[8..16].copy_from_slice(&4096u64.to_le_bytes());
            let total = crate::boot::enclave().info.heap_size / 4096;
            out[16..24].copy_from_slice(&total.to_le_bytes());
            out[24..32].copy_from_slice(&total.to_le_bytes());
            out[32..40].copy_from_slice(&total.to_le_bytes());
            out[64..72].copy_from_slice(&255u64.to_le_bytes());
            Ok(())
        }
        Target::Trusted(e) => hc::statfs(ns.host_path(e.path).as_bytes(), out),
        Target::Allowed(h) | Target::Metadata(h) => hc::statfs(h.as_bytes(), out),
    }
}
