//! Files that pass through to the host: allowed files, directories (for
//! listing), the std streams and pipes. Nothing read from them is trusted.

use alloc::string::String;
use alloc::vec::Vec;

use conf_abi::Errno;

use super::file::{DirEntry, File};
use super::{mode, oflags};
use crate::host::calls::{self as hc, HostFd};

pub use crate::host::calls::KernelStat;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    Regular,
    /// Terminal, pipe, FIFO, socket: no file position.
    Stream,
    Dir,
    /// A regular file whose position lives on the host, shared with other
    /// processes (a std stream redirected to a file by the shell).
    SharedRegular,
}

pub struct HostFile {
    pub fd: HostFd,
    pub kind: HostKind,
    /// Host path (empty for std streams and pipes).
    pub path: String,
    /// Close the host fd when the last reference goes (not for std streams).
    own: bool,
}

impl HostFile {
    pub fn new(fd: HostFd, kind: HostKind, path: String) -> HostFile {
        HostFile {
            fd,
            kind,
            path,
            own: true,
        }
    }

    /// One of the host's std streams (never closed on the host).
    pub fn std_stream(fd: i32) -> HostFile {
        let kind = match hc::fstat(HostFd(fd)) {
            Ok(st) if st.st_mode & mode::S_IFMT == mode::S_IFREG => HostKind::SharedRegular,
            _ => HostKind::Stream,
        };
        HostFile {
            fd: HostFd(fd),
            kind,
            path: String::new(),
            own: false,
        }
    }

    /// Kind from a host stat.
    pub fn kind_of(st: &KernelStat) -> HostKind {
        match st.st_mode & mode::S_IFMT {
            mode::S_IFREG | mode::S_IFBLK => HostKind::Regular,
            mode::S_IFDIR => HostKind::Dir,
            _ => HostKind::Stream,
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        if self.own {
            hc::close(self.fd);
        }
    }
}

/// Terminal ioctls forwarded to host streams, with their argument sizes
/// (kernel struct termios is 36 bytes).
pub const TTY_IOCTLS: &[(u64, usize)] = &[
    (0x5401, 36), // TCGETS
    (0x5402, 36), // TCSETS
    (0x5403, 36), // TCSETSW
    (0x5404, 36), // TCSETSF
    (0x5413, 8),  // TIOCGWINSZ
    (0x5414, 8),  // TIOCSWINSZ
    (0x540f, 4),  // TIOCGPGRP
    (0x5410, 4),  // TIOCSPGRP
    (0x541b, 4),  // FIONREAD
];

impl File for HostFile {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.kind {
            HostKind::Regular => hc::pread(self.fd, buf, off),
            HostKind::Stream => crate::syscall::restartable(|| hc::read(self.fd, buf)),
            HostKind::SharedRegular => hc::read(self.fd, buf),
            HostKind::Dir => Err(Errno::EISDIR),
        }
    }

    fn write_at(&self, off: u64, buf: &[u8]) -> Result<usize, Errno> {
        match self.kind {
            HostKind::Regular => hc::pwrite(self.fd, buf, off),
            HostKind::Stream => crate::syscall::restartable(|| hc::write(self.fd, buf)),
            HostKind::SharedRegular => hc::write(self.fd, buf),
            HostKind::Dir => Err(Errno::EISDIR),
        }
    }

    fn positional_read(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.kind {
            HostKind::Regular | HostKind::SharedRegular => hc::pread(self.fd, buf, off),
            _ => Err(Errno::ESPIPE),
        }
    }

    fn positional_write(&self, off: u64, buf: &[u8]) -> Result<usize, Errno> {
        match self.kind {
            HostKind::Regular | HostKind::SharedRegular => hc::pwrite(self.fd, buf, off),
            _ => Err(Errno::ESPIPE),
        }
    }

    fn host_seek(&self, off: i64, whence: u32) -> Option<Result<u64, Errno>> {
        (self.kind == HostKind::SharedRegular).then(|| hc::lseek(self.fd, off, whence))
    }

    fn stat(&self) -> Result<KernelStat, Errno> {
        hc::fstat(self.fd)
    }

    fn is_stream(&self) -> bool {
        matches!(self.kind, HostKind::Stream | HostKind::SharedRegular)
    }

    fn is_dir(&self) -> bool {
        self.kind == HostKind::Dir
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        if self.kind != HostKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        hc::lseek(self.fd, 0, 0)?;
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; 64 * 1024];
        loop {
            let n = hc::getdents64(self.fd, &mut buf)?;
            if n == 0 {
                break;
            }
            parse_dirents(&buf[..n], &mut out)?;
        }
        Ok(out)
    }

    fn ioctl(&self, req: u64, arg: &mut [u8]) -> Result<u64, Errno> {
        if self.kind != HostKind::Stream {
            return Err(Errno::ENOTTY);
        }
        hc::ioctl(self.fd, req, arg)
    }

    fn ioctl_arg_size(&self, req: u64) -> Option<usize> {
        TTY_IOCTLS.iter().find(|(r, _)| *r == req).map(|(_, s)| *s)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        hc::ftruncate(self.fd, len)
    }

    fn sync(&self, data_only: bool) -> Result<(), Errno> {
        hc::fsync(self.fd, data_only)
    }

    fn chmod(&self, mode: u32) -> Result<(), Errno> {
        hc::fchmod(self.fd, mode)
    }

    fn utimens(&self, times: &[u8; 32]) -> Result<(), Errno> {
        hc::utimens(b"", Some(self.fd), times, 0)
    }

    fn host_fd(&self) -> Option<HostFd> {
        Some(self.fd)
    }

    fn set_flags(&self, flags: u32) -> Result<(), Errno> {
        hc::fcntl(
            self.fd,
            4, /* F_SETFL */
            (flags & (oflags::O_NONBLOCK | oflags::O_APPEND)) as u64,
        )
        .map(|_| ())
    }

    fn host_path(&self) -> Option<&str> {
        (!self.path.is_empty()).then_some(self.path.as_str())
    }

    fn is_host_regular(&self) -> bool {
        self.kind == HostKind::Regular
    }

    fn transfer(&self) -> super::file::Transfer {
        let kind = match self.kind {
            HostKind::Regular => 0,
            HostKind::Stream => 1,
            HostKind::Dir => 2,
            HostKind::SharedRegular => 3,
        };
        super::file::Transfer::Host {
            fd: self.fd,
            kind,
            path: self.path.clone(),
        }
    }
}

impl HostKind {
    pub fn from_code(c: u8) -> Option<HostKind> {
        Some(match c {
            0 => HostKind::Regular,
            1 => HostKind::Stream,
            2 => HostKind::Dir,
            3 => HostKind::SharedRegular,
            _ => return None,
        })
    }
}

impl HostFile {
    /// A host fd inherited from the parent process (not closed by us if it
    /// is one of the host's std streams).
    pub fn inherited(fd: HostFd, kind: HostKind, path: String) -> HostFile {
        HostFile {
            fd,
            kind,
            path,
            own: fd.0 > 2,
        }
    }
}

/// Parse linux_dirent64 records, refusing malformed ones.
pub fn parse_dirents(mut buf: &[u8], out: &mut Vec<DirEntry>) -> Result<(), Errno> {
    const HDR: usize = 19;
    while !buf.is_empty() {
        if buf.len() < HDR {
            return Err(Errno::EIO);
        }
        let ino = u64::from_le_bytes(buf[0..8].try_into().unwrap());
        let reclen = u16::from_le_bytes([buf[16], buf[17]]) as usize;
        if reclen < HDR + 1 || reclen > buf.len() {
            return Err(Errno::EIO);
        }
        let kind = buf[18];
        let name_area = &buf[HDR..reclen];
        let name_len = name_area.iter().position(|&c| c == 0).ok_or(Errno::EIO)?;
        let name = name_area[..name_len].to_vec();
        if name.is_empty() || name.contains(&b'/') {
            return Err(Errno::EIO);
        }
        out.push(DirEntry { ino, kind, name });
        buf = &buf[reclen..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64, kind: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = alloc::vec![0u8; reclen];
        r[0..8].copy_from_slice(&ino.to_le_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        r[18] = kind;
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn dirents_parse_and_reject_garbage() {
        let mut buf = rec(5, 4, b"usr");
        buf.extend(rec(6, 8, b"a.txt"));
        let mut out = Vec::new();
        parse_dirents(&buf, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, b"a.txt");
        let mut bad = rec(5, 4, b"x");
        bad[16] = 200;
        assert!(parse_dirents(&bad, &mut Vec::new()).is_err());
        assert!(parse_dirents(&rec(1, 1, b"a/b"), &mut Vec::new()).is_err());
        assert!(parse_dirents(&[0u8; 10], &mut Vec::new()).is_err());
    }
}
