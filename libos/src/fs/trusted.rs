//! Trusted files: read-only, every byte checked against the digest the
//! manifest (and so MRENCLAVE) fixes, one 64 KiB chunk at a time.
//!
//! The chunk digests come from the host and are checked against the root
//! digest once per file; each chunk read is then checked against its
//! digest before any byte of it is used. A file that changed on the host
//! fails with EIO and a log line naming it.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::manifest::TrustedFileRef as Entry;
use conf_abi::trusted::{chunk_count, chunk_digest, root_digest, Digest32, CHUNK_SIZE};
use conf_abi::Errno;

use super::file::File;
use super::host::KernelStat;
use super::mode;
use crate::host::calls::{self as hc, HostFd};
use crate::sync::SpinLock;

/// How many chunks each open trusted file keeps after reading them.
const RECENT: usize = 4;

/// A chunk's index and its verified bytes.
type RecentChunk = (u64, Arc<Vec<u8>>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    No,
}

pub struct TrustedFile {
    fd: HostFd,
    /// Its index in the measured manifest's list (names it in fill hints).
    index: u32,
    path: String,
    size: u64,
    root: Digest32,
    stat: KernelStat,
    digests: SpinLock<Option<Arc<Vec<Digest32>>>>,
    /// The chunks read last, newest first: for runs of small sequential
    /// reads, and for a program that reads a library's headers (and a
    /// note or two further on) and then maps the same chunks.
    recent: SpinLock<[Option<RecentChunk>; RECENT]>,
}

fn changed(path: &str) -> Errno {
    error!(
        "trusted file {path} does not match its digest in the manifest: it changed after the manifest was resolved (or the host altered it); refusing to use it. If the change is intended, resolve or sign the manifest again"
    );
    Errno::EIO
}

impl TrustedFile {
    /// Open the trusted file described by `entry` (of the measured
    /// manifest), whose bytes the host keeps at `host_path`.
    pub fn open(entry: Entry<'_>, host_path: &str) -> Result<TrustedFile, Errno> {
        let fd = hc::open(host_path.as_bytes(), 0 /* O_RDONLY */, 0)?;
        let mut stat = match hc::fstat(fd) {
            Ok(s) => s,
            Err(e) => {
                hc::close(fd);
                return Err(e);
            }
        };
        // Size and type come from the manifest, not the host.
        stat.st_size = entry.size as i64;
        stat.st_blocks = entry.size.div_ceil(512) as i64;
        stat.st_mode = (stat.st_mode & 0o7777) | mode::S_IFREG;
        Ok(TrustedFile {
            fd,
            index: entry.index,
            path: String::from(entry.path),
            size: entry.size,
            root: entry.digest,
            stat,
            digests: SpinLock::new(None),
            recent: SpinLock::new([const { None }; RECENT]),
        })
    }

    fn digests(&self) -> Result<Arc<Vec<Digest32>>, Errno> {
        if let Some(d) = self.digests.lock().as_ref() {
            return Ok(d.clone());
        }
        let n = chunk_count(self.size) as usize;
        let mut d = alloc::vec![[0u8; 32]; n];
        hc::chunk_digests(self.fd, 0, &mut d).map_err(|_| changed(&self.path))?;
        if root_digest(self.size, &d) != self.root {
            return Err(changed(&self.path));
        }
        let d = Arc::new(d);
        *self.digests.lock() = Some(d.clone());
        Ok(d)
    }

    /// Chunk `idx`, verified.
    fn chunk(&self, idx: u64) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some(c) = self.recent_chunk(idx, Keep::Yes) {
            return Ok(c);
        }
        let mut buf = alloc::vec![0u8; self.chunk_len(idx)];
        self.read_chunk_into(idx, &mut buf)?;
        let c = Arc::new(buf);
        let mut r = self.recent.lock();
        r.rotate_right(1);
        r[0] = Some((idx, c.clone()));
        Ok(c)
    }

    /// Chunk `idx` if it was read lately; `Keep::No` forgets it (a mapping
    /// took it: nothing reads a chunk again once it is mapped).
    fn recent_chunk(&self, idx: u64, keep: Keep) -> Option<Arc<Vec<u8>>> {
        let mut r = self.recent.lock();
        let at = r
            .iter()
            .position(|e| e.as_ref().is_some_and(|(i, _)| *i == idx))?;
        match keep {
            Keep::Yes => r[at].as_ref().map(|(_, c)| c.clone()),
            Keep::No => r[at].take().map(|(_, c)| c),
        }
    }

    fn chunk_len(&self, idx: u64) -> usize {
        (self.size - idx * CHUNK_SIZE).min(CHUNK_SIZE) as usize
    }

    /// Read chunk `idx` into `dst` (exactly its length) and check it there.
    fn read_chunk_into(&self, idx: u64, dst: &mut [u8]) -> Result<(), Errno> {
        if !super::prefetch::take(self.index, idx as u32, dst) {
            self.read_and_check(idx, dst)?;
            super::prefetch::verified_on_demand();
        }
        super::prefetch::loaded(self.index, idx as u32);
        Ok(())
    }

    /// Chunk `idx` into `dst` (exactly its length): from the chunks read
    /// lately if it is one of them, else read and checked there.
    fn whole_chunk_into(&self, idx: u64, dst: &mut [u8]) -> Result<(), Errno> {
        match self.recent_chunk(idx, Keep::No) {
            Some(c) => {
                dst.copy_from_slice(&c);
                Ok(())
            }
            None => self.read_chunk_into(idx, dst),
        }
    }

    /// Chunk `idx`, read and checked now (for `prefetch`).
    pub fn verified_chunk(&self, idx: u64) -> Option<Vec<u8>> {
        if idx >= chunk_count(self.size) {
            return None;
        }
        let mut b = alloc::vec![0u8; self.chunk_len(idx)];
        self.read_and_check(idx, &mut b).ok()?;
        Some(b)
    }

    fn read_and_check(&self, idx: u64, dst: &mut [u8]) -> Result<(), Errno> {
        hc::pread_exact(self.fd, dst, idx * CHUNK_SIZE).map_err(|_| changed(&self.path))?;
        let got = chunk_digest(dst);
        let ok = if chunk_count(self.size) == 1 {
            root_digest(self.size, &[got]) == self.root
        } else {
            self.digests()?[idx as usize] == got
        };
        if ok {
            Ok(())
        } else {
            Err(changed(&self.path))
        }
    }

    /// Check the whole file now (used for executables, so that a changed
    /// program is refused before it starts).
    pub fn verify_all(&self) -> Result<(), Errno> {
        for i in 0..chunk_count(self.size) {
            self.chunk(i)?;
        }
        Ok(())
    }
}

impl Drop for TrustedFile {
    fn drop(&mut self) {
        hc::close(self.fd);
    }
}

impl File for TrustedFile {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        if off >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        let mut at = off;
        while done < buf.len() && at < self.size {
            let idx = at / CHUNK_SIZE;
            let c = self.chunk(idx)?;
            let in_chunk = (at - idx * CHUNK_SIZE) as usize;
            let n = (c.len() - in_chunk).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&c[in_chunk..in_chunk + n]);
            done += n;
            at += n as u64;
        }
        Ok(done)
    }

    /// Whole chunks go straight into `buf` and are checked there: lazily
    /// mapped programs load a chunk per fault, and the detour through a
    /// chunk buffer cost an allocation, a clear and a copy of 64 KiB each.
    fn read_for_map(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut done = 0;
        while done < buf.len() && off + (done as u64) < self.size {
            let at = off + done as u64;
            let idx = at / CHUNK_SIZE;
            let len = self.chunk_len(idx);
            if at == idx * CHUNK_SIZE && buf.len() - done >= len {
                self.whole_chunk_into(idx, &mut buf[done..done + len])?;
                done += len;
            } else {
                done += self.read_at(at, &mut buf[done..])?;
            }
        }
        Ok(done)
    }

    fn trusted_index(&self) -> Option<u32> {
        Some(self.index)
    }

    fn write_at(&self, _off: u64, _buf: &[u8]) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }

    fn stat(&self) -> Result<KernelStat, Errno> {
        Ok(self.stat)
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(self.size)
    }

    fn host_fd(&self) -> Option<HostFd> {
        Some(self.fd)
    }

    fn host_path(&self) -> Option<&str> {
        Some(&self.path)
    }

    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }

    fn transfer(&self) -> crate::fs::file::Transfer {
        crate::fs::file::Transfer::Reopen
    }
}
