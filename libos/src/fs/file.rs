//! The file interface every kind of file implements, and open file
//! descriptions (what fds point to).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use conf_abi::Errno;

use super::host::KernelStat;
use super::oflags;
use crate::host::calls::HostFd;
use crate::sync::SpinLock;

/// What a child process needs to open the same file.
pub enum Transfer {
    /// A host fd: passed to the child; `kind` says how to wrap it.
    Host {
        fd: HostFd,
        kind: u8,
        path: String,
    },
    Socket {
        fd: HostFd,
        domain: u16,
        kind: u32,
    },
    /// Reopened by its enclave path (trusted files, devices).
    Reopen,
    /// A tmpfs node (its contents go with the tmpfs).
    Tmp {
        mount: u32,
        node: alloc::sync::Arc<super::tmpfs::Node>,
    },
    /// Not inherited (closed in the child).
    Drop,
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: u64,
    /// DT_* type.
    pub kind: u8,
    pub name: Vec<u8>,
}

/// Something that can be opened. Defaults refuse the operation the way
/// Linux does for a file that does not support it.
pub trait File: Send + Sync {
    /// Read at `off` (seekable files) or from the stream (`is_stream`).
    fn read_at(&self, _off: u64, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    fn write_at(&self, _off: u64, _buf: &[u8]) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    fn stat(&self) -> Result<KernelStat, Errno>;
    /// Streams (pipes, terminals, sockets) ignore the file position.
    fn is_stream(&self) -> bool {
        false
    }
    fn is_dir(&self) -> bool {
        false
    }
    /// Current size, for SEEK_END and O_APPEND.
    fn size(&self) -> Result<u64, Errno> {
        Ok(self.stat()?.st_size as u64)
    }
    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }
    fn ioctl(&self, _req: u64, _arg: &mut [u8]) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }
    /// Size of the argument of ioctl `req`, if this file handles it.
    fn ioctl_arg_size(&self, _req: u64) -> Option<usize> {
        None
    }
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
    fn sync(&self, _data_only: bool) -> Result<(), Errno> {
        Ok(())
    }
    fn chmod(&self, _mode: u32) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    fn utimens(&self, _times: &[u8; 32]) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// The host fd behind this file, if any (for poll and locks).
    fn host_fd(&self) -> Option<HostFd> {
        None
    }
    /// Change O_NONBLOCK / O_APPEND on the host side too.
    fn set_flags(&self, _flags: u32) -> Result<(), Errno> {
        Ok(())
    }
    /// Its index in the measured manifest's list of trusted files, for a
    /// trusted file listed there (fill hints name chunks by it).
    fn trusted_index(&self) -> Option<u32> {
        None
    }

    /// Fill `buf` with the bytes at `off` for a private file mapping
    /// (short at end of file; the rest stays zero).
    fn read_for_map(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(off + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
    /// pread on a file whose position lives elsewhere (`host_seek`).
    fn positional_read(&self, _off: u64, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }
    fn positional_write(&self, _off: u64, _buf: &[u8]) -> Result<usize, Errno> {
        Err(Errno::ESPIPE)
    }
    /// For files whose position the host keeps: lseek there.
    fn host_seek(&self, _off: i64, _whence: u32) -> Option<Result<u64, Errno>> {
        None
    }
    /// Host path for statfs and for naming in /proc (if any).
    fn host_path(&self) -> Option<&str> {
        None
    }
    /// How a child process gets this file (fork, exec of a vfork child).
    fn transfer(&self) -> Transfer {
        Transfer::Drop
    }
    /// A regular host file (allowed files): MAP_SHARED maps it for real.
    fn is_host_regular(&self) -> bool {
        false
    }
    /// This file as a socket, if it is one.
    fn as_socket(&self) -> Option<&crate::net::Socket> {
        None
    }
    /// This file as an epoll instance, if it is one.
    fn as_epoll(&self) -> Option<&crate::event::epoll::Epoll> {
        None
    }
    /// Whether readiness comes from the host (poll it there) rather than
    /// being always ready (regular files, devices, tmpfs).
    fn polls_on_host(&self) -> bool {
        self.is_stream() && self.host_fd().is_some()
    }
}

/// An open file description: shared by dup'ed fds and across fork.
pub struct OpenFile {
    pub file: Arc<dyn File>,
    pub pos: SpinLock<u64>,
    flags: AtomicU32,
    /// Enclave path it was opened by (for /proc/self/fd and fchdir).
    pub path: String,
    /// Directory listing being read with getdents, and how far.
    pub dir: SpinLock<Option<(Vec<DirEntry>, usize)>>,
}

impl OpenFile {
    pub fn new(file: Arc<dyn File>, flags: u32, path: String) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            file,
            pos: SpinLock::new(0),
            flags: AtomicU32::new(flags),
            path,
            dir: SpinLock::new(None),
        })
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_status_flags(&self, f: u32) -> Result<(), Errno> {
        let changeable =
            oflags::O_APPEND | oflags::O_NONBLOCK | oflags::O_DIRECT | oflags::O_NOATIME;
        let new = (self.flags() & !changeable) | (f & changeable);
        self.file.set_flags(new)?;
        self.flags.store(new, Ordering::Relaxed);
        Ok(())
    }

    pub fn readable(&self) -> bool {
        let m = self.flags() & oflags::O_ACCMODE;
        m == oflags::O_RDONLY || m == oflags::O_RDWR
    }

    pub fn writable(&self) -> bool {
        let m = self.flags() & oflags::O_ACCMODE;
        m == oflags::O_WRONLY || m == oflags::O_RDWR
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if !self.readable() || self.flags() & oflags::O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        if self.file.is_dir() {
            return Err(Errno::EISDIR);
        }
        if self.file.is_stream() {
            return self.file.read_at(0, buf);
        }
        let mut pos = self.pos.lock();
        let n = self.file.read_at(*pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    pub fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if self.file.is_stream() {
            return self.file.write_at(0, buf);
        }
        let mut pos = self.pos.lock();
        if self.flags() & oflags::O_APPEND != 0 {
            *pos = self.file.size()?;
        }
        let n = self.file.write_at(*pos, buf)?;
        *pos += n as u64;
        Ok(n)
    }

    pub fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if self.file.is_stream() {
            return self.file.positional_read(off, buf);
        }
        if self.file.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.file.read_at(off, buf)
    }

    pub fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if self.file.is_stream() {
            return self.file.positional_write(off, buf);
        }
        self.file.write_at(off, buf)
    }

    pub fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        if let Some(r) = self.file.host_seek(off, whence) {
            return r;
        }
        if self.file.is_stream() {
            return Err(Errno::ESPIPE);
        }
        let mut pos = self.pos.lock();
        let base = match whence {
            0 => 0i64,
            1 => *pos as i64,
            2 => self.file.size()? as i64,
            // SEEK_DATA / SEEK_HOLE: no holes here.
            3 => {
                let size = self.file.size()? as i64;
                if off >= size {
                    return Err(Errno::ENXIO);
                }
                *pos = off as u64;
                return Ok(*pos);
            }
            4 => {
                let size = self.file.size()? as i64;
                if off >= size {
                    return Err(Errno::ENXIO);
                }
                *pos = size as u64;
                return Ok(*pos);
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(off).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = new as u64;
        if self.file.is_dir() {
            // Seeking a directory restarts (or positions) the listing.
            if let Some((_, at)) = self.dir.lock().as_mut() {
                *at = new as usize;
            }
        }
        Ok(*pos)
    }
}
