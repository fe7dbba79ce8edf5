//! tmpfs: a file system in enclave memory (`fs.mounts` type "tmpfs").
//! Nothing of it ever reaches the host.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use conf_abi::Errno;

use super::file::{DirEntry, File};
use super::host::KernelStat;
use super::mode;
use crate::sync::SpinLock;

pub enum Kind {
    File(SpinLock<Vec<u8>>),
    Dir(SpinLock<BTreeMap<String, Arc<Node>>>),
    Symlink(String),
    /// An AF_UNIX socket bound here: the name of the host socket behind it
    /// in the run's socket directory (see `net::unix`).
    Socket(String),
}

#[derive(Clone, Copy)]
pub struct Meta {
    pub mode: u32,
    pub nlink: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

pub struct Node {
    pub ino: u64,
    pub kind: Kind,
    pub meta: SpinLock<Meta>,
}

pub struct Tmpfs {
    /// The root; replaced when a child process receives its parent's tmpfs.
    root: SpinLock<Arc<Node>>,
    next_ino: AtomicU64,
    dev: u64,
    /// Which `fs.mounts` entry this is (for handing it to a child).
    pub index: u32,
}

/// Largest file a tmpfs holds (the LibOS heap is the limit in practice).
const MAX_FILE: u64 = 1 << 34;

#[cfg(not(test))]
fn now() -> (i64, i64) {
    crate::time::clock_gettime(0).unwrap_or((0, 0))
}

/// Unit tests run without a host to ask for the time.
#[cfg(test)]
fn now() -> (i64, i64) {
    (0, 0)
}

fn dt(k: &Kind) -> u8 {
    match k {
        Kind::File(_) => 8,
        Kind::Dir(_) => 4,
        Kind::Symlink(_) => 10,
        Kind::Socket(_) => 12,
    }
}

impl Tmpfs {
    pub fn new(dev: u64) -> Tmpfs {
        let t = now();
        let root = Arc::new(Node {
            ino: 1,
            kind: Kind::Dir(SpinLock::new(BTreeMap::new())),
            meta: SpinLock::new(Meta {
                mode: mode::S_IFDIR | 0o1777,
                nlink: 2,
                atime: t,
                mtime: t,
                ctime: t,
            }),
        });
        Tmpfs {
            root: SpinLock::new(root),
            next_ino: AtomicU64::new(2),
            dev,
            index: (dev - 0x100) as u32,
        }
    }

    pub fn root(&self) -> Arc<Node> {
        self.root.lock().clone()
    }

    /// Every node reachable from the root, plus `extra` (open but
    /// unlinked), each once, parents before children.
    pub fn nodes(&self, extra: &[Arc<Node>]) -> Vec<Arc<Node>> {
        let mut out: Vec<Arc<Node>> = Vec::new();
        let mut seen = alloc::collections::BTreeSet::new();
        let mut todo = alloc::vec![self.root()];
        todo.extend(extra.iter().cloned());
        while let Some(n) = todo.pop() {
            if !seen.insert(n.ino) {
                continue;
            }
            if let Kind::Dir(d) = &n.kind {
                todo.extend(d.lock().values().cloned());
            }
            out.push(n);
        }
        out
    }

    /// Replace the whole tree (a child process receiving its parent's).
    pub fn install(&self, root: Arc<Node>, next_ino: u64) {
        *self.root.lock() = root;
        self.next_ino.store(next_ino, Ordering::Relaxed);
    }

    pub fn next_ino(&self) -> u64 {
        self.next_ino.load(Ordering::Relaxed)
    }

    fn new_node(&self, kind: Kind, perm: u32) -> Arc<Node> {
        let t = now();
        let fmt = match kind {
            Kind::File(_) => mode::S_IFREG,
            Kind::Dir(_) => mode::S_IFDIR,
            Kind::Symlink(_) => mode::S_IFLNK,
            Kind::Socket(_) => mode::S_IFSOCK,
        };
        let nlink = if matches!(kind, Kind::Dir(_)) { 2 } else { 1 };
        Arc::new(Node {
            ino: self.next_ino.fetch_add(1, Ordering::Relaxed),
            kind,
            meta: SpinLock::new(Meta {
                mode: fmt | (perm & 0o7777),
                nlink,
                atime: t,
                mtime: t,
                ctime: t,
            }),
        })
    }

    /// The node at `rel` ("" is the root; components separated by '/').
    /// Symlinks are not followed here: path resolution does that.
    pub fn lookup(&self, rel: &str) -> Result<Arc<Node>, Errno> {
        let mut cur = self.root();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            let next = match &cur.kind {
                Kind::Dir(d) => d.lock().get(c).cloned().ok_or(Errno::ENOENT)?,
                _ => return Err(Errno::ENOTDIR),
            };
            cur = next;
        }
        Ok(cur)
    }

    fn parent_of<'a>(&self, rel: &'a str) -> Result<(Arc<Node>, &'a str), Errno> {
        let rel = rel.trim_end_matches('/');
        let (dir, name) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        };
        if name.is_empty() {
            return Err(Errno::EEXIST);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let p = self.lookup(dir)?;
        if !matches!(p.kind, Kind::Dir(_)) {
            return Err(Errno::ENOTDIR);
        }
        Ok((p, name))
    }

    fn insert(
        &self,
        rel: &str,
        kind: Kind,
        perm: u32,
        exclusive: bool,
    ) -> Result<Arc<Node>, Errno> {
        let (parent, name) = self.parent_of(rel)?;
        let Kind::Dir(d) = &parent.kind else {
            return Err(Errno::ENOTDIR);
        };
        let mut d = d.lock();
        if let Some(existing) = d.get(name) {
            if exclusive {
                return Err(Errno::EEXIST);
            }
            return Ok(existing.clone());
        }
        let is_dir = matches!(kind, Kind::Dir(_));
        let n = self.new_node(kind, perm);
        d.insert(String::from(name), n.clone());
        drop(d);
        let t = now();
        let mut pm = parent.meta.lock();
        pm.mtime = t;
        pm.ctime = t;
        if is_dir {
            pm.nlink += 1;
        }
        Ok(n)
    }

    /// Open or create a regular file.
    pub fn create(&self, rel: &str, perm: u32, exclusive: bool) -> Result<Arc<Node>, Errno> {
        self.insert(rel, Kind::File(SpinLock::new(Vec::new())), perm, exclusive)
    }

    pub fn mkdir(&self, rel: &str, perm: u32) -> Result<(), Errno> {
        self.insert(rel, Kind::Dir(SpinLock::new(BTreeMap::new())), perm, true)
            .map(|_| ())
    }

    /// Could `rel` be created: its directory exists and the name is free
    /// (else EEXIST, ENOENT, ENOTDIR as creating it would say)?
    pub fn check_new(&self, rel: &str) -> Result<(), Errno> {
        let (parent, name) = self.parent_of(rel)?;
        let Kind::Dir(d) = &parent.kind else {
            return Err(Errno::ENOTDIR);
        };
        if d.lock().contains_key(name) {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    /// The file a bind(2) of an AF_UNIX socket makes (EADDRINUSE if the
    /// name exists, as Linux says).
    pub fn mksock(&self, rel: &str, perm: u32, host_name: String) -> Result<Arc<Node>, Errno> {
        match self.insert(rel, Kind::Socket(host_name), perm, true) {
            Err(Errno::EEXIST) => Err(Errno::EADDRINUSE),
            r => r,
        }
    }

    pub fn symlink(&self, target: &str, rel: &str) -> Result<(), Errno> {
        self.insert(rel, Kind::Symlink(String::from(target)), 0o777, true)
            .map(|_| ())
    }

    pub fn link(&self, from: &str, to: &str) -> Result<(), Errno> {
        let n = self.lookup(from)?;
        if matches!(n.kind, Kind::Dir(_)) {
            return Err(Errno::EPERM);
        }
        let (parent, name) = self.parent_of(to)?;
        let Kind::Dir(d) = &parent.kind else {
            return Err(Errno::ENOTDIR);
        };
        let mut d = d.lock();
        if d.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        d.insert(String::from(name), n.clone());
        n.meta.lock().nlink += 1;
        Ok(())
    }

    pub fn unlink(&self, rel: &str, dir: bool) -> Result<(), Errno> {
        let (parent, name) = self.parent_of(rel)?;
        let Kind::Dir(d) = &parent.kind else {
            return Err(Errno::ENOTDIR);
        };
        let mut d = d.lock();
        let n = d.get(name).cloned().ok_or(Errno::ENOENT)?;
        match (&n.kind, dir) {
            (Kind::Dir(c), true) => {
                if !c.lock().is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
                parent.meta.lock().nlink -= 1;
            }
            (Kind::Dir(_), false) => return Err(Errno::EISDIR),
            (_, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        d.remove(name);
        let mut m = n.meta.lock();
        m.nlink = m.nlink.saturating_sub(1);
        m.ctime = now();
        Ok(())
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), Errno> {
        if from == to {
            return Ok(());
        }
        if to.starts_with(from) && to.as_bytes().get(from.len()) == Some(&b'/') {
            return Err(Errno::EINVAL);
        }
        let (sp, sname) = self.parent_of(from)?;
        let (dp, dname) = self.parent_of(to)?;
        let node = {
            let Kind::Dir(sd) = &sp.kind else {
                return Err(Errno::ENOTDIR);
            };
            sd.lock().get(sname).cloned().ok_or(Errno::ENOENT)?
        };
        {
            let Kind::Dir(dd) = &dp.kind else {
                return Err(Errno::ENOTDIR);
            };
            let dd = dd.lock();
            if let Some(existing) = dd.get(dname) {
                match (&existing.kind, &node.kind) {
                    (Kind::Dir(c), Kind::Dir(_)) if !c.lock().is_empty() => {
                        return Err(Errno::ENOTEMPTY);
                    }
                    (Kind::Dir(_), _) => return Err(Errno::EISDIR),
                    (_, Kind::Dir(_)) => return Err(Errno::ENOTDIR),
                    _ => {}
                }
            }
        }
        if let Kind::Dir(sd) = &sp.kind {
            sd.lock().remove(sname);
        }
        if let Kind::Dir(dd) = &dp.kind {
            dd.lock().insert(String::from(dname), node.clone());
        }
        if matches!(node.kind, Kind::Dir(_)) && !Arc::ptr_eq(&sp, &dp) {
            sp.meta.lock().nlink -= 1;
            dp.meta.lock().nlink += 1;
        }
        node.meta.lock().ctime = now();
        Ok(())
    }

    pub fn stat_node(&self, n: &Node) -> KernelStat {
        let m = *n.meta.lock();
        let size = match &n.kind {
            Kind::File(d) => d.lock().len() as i64,
            Kind::Dir(_) => 4096,
            Kind::Symlink(t) => t.len() as i64,
            Kind::Socket(_) => 0,
        };
        KernelStat {
            st_dev: self.dev,
            st_ino: n.ino,
            st_nlink: m.nlink,
            st_mode: m.mode,
            st_size: size,
            st_blksize: 4096,
            st_blocks: (size as u64).div_ceil(512) as i64,
            st_atime: m.atime.0,
            st_atime_nsec: m.atime.1,
            st_mtime: m.mtime.0,
            st_mtime_nsec: m.mtime.1,
            st_ctime: m.ctime.0,
            st_ctime_nsec: m.ctime.1,
            ..Default::default()
        }
    }
}

/// An open tmpfs node.
pub struct TmpFile {
    pub fs: &'static Tmpfs,
    pub node: Arc<Node>,
}

impl File for TmpFile {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match &self.node.kind {
            Kind::File(d) => {
                let d = d.lock();
                let off = (off.min(d.len() as u64)) as usize;
                let n = buf.len().min(d.len() - off);
                buf[..n].copy_from_slice(&d[off..off + n]);
                Ok(n)
            }
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Symlink(_) | Kind::Socket(_) => Err(Errno::EINVAL),
        }
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> Result<usize, Errno> {
        let Kind::File(d) = &self.node.kind else {
            return Err(Errno::EISDIR);
        };
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= MAX_FILE)
            .ok_or(Errno::EFBIG)?;
        let mut d = d.lock();
        if d.len() < end as usize {
            let more = end as usize - d.len();
            d.try_reserve(more).map_err(|_| Errno::ENOSPC)?;
            d.resize(end as usize, 0);
        }
        d[off as usize..end as usize].copy_from_slice(buf);
        drop(d);
        let t = now();
        let mut m = self.node.meta.lock();
        m.mtime = t;
        m.ctime = t;
        Ok(buf.len())
    }

    fn stat(&self) -> Result<KernelStat, Errno> {
        Ok(self.fs.stat_node(&self.node))
    }

    fn is_dir(&self) -> bool {
        matches!(self.node.kind, Kind::Dir(_))
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let Kind::Dir(d) = &self.node.kind else {
            return Err(Errno::ENOTDIR);
        };
        let mut v = alloc::vec![
            DirEntry {
                ino: self.node.ino,
                kind: 4,
                name: b".".to_vec()
            },
            DirEntry {
                ino: self.node.ino,
                kind: 4,
                name: b"..".to_vec()
            }
        ];
        for (name, n) in d.lock().iter() {
            v.push(DirEntry {
                ino: n.ino,
                kind: dt(&n.kind),
                name: name.as_bytes().to_vec(),
            });
        }
        Ok(v)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        let Kind::File(d) = &self.node.kind else {
            return Err(Errno::EISDIR);
        };
        if len > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let mut d = d.lock();
        if len as usize > d.len() {
            let more = len as usize - d.len();
            d.try_reserve(more).map_err(|_| Errno::ENOSPC)?;
        }
        d.resize(len as usize, 0);
        drop(d);
        let t = now();
        let mut m = self.node.meta.lock();
        m.mtime = t;
        m.ctime = t;
        Ok(())
    }

    fn chmod(&self, perm: u32) -> Result<(), Errno> {
        let mut m = self.node.meta.lock();
        m.mode = (m.mode & mode::S_IFMT) | (perm & 0o7777);
        m.ctime = now();
        Ok(())
    }

    fn utimens(&self, times: &[u8; 32]) -> Result<(), Errno> {
        set_times(&self.node, times);
        Ok(())
    }

    fn transfer(&self) -> crate::fs::file::Transfer {
        crate::fs::file::Transfer::Tmp {
            mount: self.fs.index,
            node: self.node.clone(),
        }
    }
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// Apply utimensat times (two timespecs) to `n`.
pub fn set_times(n: &Node, times: &[u8; 32]) {
    let rd = |o: usize| i64::from_le_bytes(times[o..o + 8].try_into().unwrap());
    let t = now();
    let pick = |s: i64, ns: i64| {
        if ns == UTIME_NOW {
            Some(t)
        } else if ns == UTIME_OMIT {
            None
        } else {
            Some((s, ns))
        }
    };
    let mut m = n.meta.lock();
    if let Some(a) = pick(rd(0), rd(8)) {
        m.atime = a;
    }
    if let Some(mt) = pick(rd(16), rd(24)) {
        m.mtime = mt;
    }
    m.ctime = t;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> &'static Tmpfs {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(Tmpfs::new(9)))
    }

    #[test]
    fn create_write_read_rename_unlink() {
        let t = fs();
        t.mkdir("d", 0o755).unwrap();
        let n = t.create("d/f", 0o644, true).unwrap();
        let f = TmpFile { fs: t, node: n };
        assert_eq!(f.write_at(3, b"abc").unwrap(), 3);
        let mut b = [9u8; 8];
        assert_eq!(f.read_at(0, &mut b).unwrap(), 6);
        assert_eq!(&b[..6], b"\0\0\0abc");
        t.rename("d/f", "g").unwrap();
        assert!(t.lookup("d/f").is_err());
        assert!(t.lookup("g").is_ok());
        assert_eq!(t.unlink("d", true), Ok(()));
        assert_eq!(t.unlink("g", true), Err(Errno::ENOTDIR));
        t.unlink("g", false).unwrap();
        assert_eq!(t.create("x/y", 0o644, false).err(), Some(Errno::ENOENT));
    }

    #[test]
    fn rmdir_nonempty_and_exclusive_create() {
        let t = fs();
        t.mkdir("a", 0o755).unwrap();
        t.create("a/b", 0o600, true).unwrap();
        assert_eq!(t.unlink("a", true), Err(Errno::ENOTEMPTY));
        assert_eq!(t.create("a/b", 0o600, true).err(), Some(Errno::EEXIST));
        assert_eq!(t.mkdir("a", 0o755), Err(Errno::EEXIST));
    }
}
