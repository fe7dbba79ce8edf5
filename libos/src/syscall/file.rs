//! File descriptor system calls: I/O, duplication, control.

use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::fs::{oflags, OpenFile};
use crate::process::fdtable::FdEntry;
use crate::process::process;

pub(crate) fn fd_file(fd: u64) -> Result<Arc<OpenFile>, Errno> {
    process().files.lock().get(fd as i32)
}

/// Largest single transfer (Linux caps read/write at 2 GiB - 4 KiB).
const MAX_RW: usize = 0x7fff_f000;

/// implements read(2)
pub fn sys_read(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    let buf = uaccess::slice_mut(a[1], (a[2] as usize).min(MAX_RW))?;
    f.read(buf).map(|n| n as u64)
}

/// implements write(2)
pub fn sys_write(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    let buf = uaccess::slice(a[1], (a[2] as usize).min(MAX_RW))?;
    sigpipe(&f, write_all_or_some(&f, buf)).map(|n| n as u64)
}

/// Writing to a pipe or socket nobody reads raises SIGPIPE, as on Linux.
pub(crate) fn sigpipe<T>(f: &OpenFile, r: Result<T, Errno>) -> Result<T, Errno> {
    if r.as_ref().err() == Some(&Errno::EPIPE) && f.file.is_stream() {
        let tid = crate::process::current().tid;
        let _ = crate::signal::send_to_thread(
            tid,
            crate::signal::SigInfo {
                signo: crate::signal::SIGPIPE,
                code: crate::signal::SI_USER,
                ..Default::default()
            },
        );
    }
    r
}

/// Write as much as the file takes in one call, looping over partial host
/// writes of regular files so a large write is not cut at the ring's size.
fn write_all_or_some(f: &OpenFile, buf: &[u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        match f.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        if f.file.is_stream() && done < buf.len() && f.flags() & oflags::O_NONBLOCK != 0 {
            break;
        }
    }
    Ok(done)
}

/// implements pread64(2)
pub fn sys_pread64(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let buf = uaccess::slice_mut(a[1], (a[2] as usize).min(MAX_RW))?;
    f.pread(buf, a[3]).map(|n| n as u64)
}

/// implements pwrite64(2)
pub fn sys_pwrite64(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let buf = uaccess::slice(a[1], (a[2] as usize).min(MAX_RW))?;
    f.pwrite(buf, a[3]).map(|n| n as u64)
}

/// Most bytes a writev gathers into one write.
const GATHER_MAX: usize = 64 << 10;

fn vec_io(f: &OpenFile, iov: &[(u64, usize)], write: bool, at: Option<u64>) -> Result<u64, Errno> {
    // Several small pieces go out as one write: one host call instead of
    // one per piece, and a pipe or socket sees them together, as writev
    // promises (atomic up to PIPE_BUF on a pipe).
    let len: usize = iov.iter().map(|&(_, l)| l).sum();
    if write && at.is_none() && iov.len() > 1 && len <= GATHER_MAX {
        let mut buf = Vec::with_capacity(len);
        for &(base, l) in iov {
            buf.extend_from_slice(uaccess::slice(base, l)?);
        }
        return write_all_or_some(f, &buf).map(|n| n as u64);
    }
    let mut total = 0u64;
    for &(base, len) in iov {
        if len == 0 {
            continue;
        }
        let r = if write {
            let b = uaccess::slice(base, len)?;
            match at {
                Some(off) => f.pwrite(b, off + total),
                None => write_all_or_some(f, b),
            }
        } else {
            let b = uaccess::slice_mut(base, len)?;
            match at {
                Some(off) => f.pread(b, off + total),
                None => f.read(b),
            }
        };
        match r {
            Ok(n) => {
                total += n as u64;
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// implements readv(2)
pub fn sys_readv(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    vec_io(&f, &uaccess::iovecs(a[1], a[2])?, false, None)
}

/// implements writev(2)
pub fn sys_writev(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    let r = vec_io(&f, &uaccess::iovecs(a[1], a[2])?, true, None);
    sigpipe(&f, r)
}

/// implements preadv(2)
pub fn sys_preadv(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    vec_io(&f, &uaccess::iovecs(a[1], a[2])?, false, Some(a[3]))
}

/// implements pwritev(2)
pub fn sys_pwritev(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    vec_io(&f, &uaccess::iovecs(a[1], a[2])?, true, Some(a[3]))
}

/// implements lseek(2)
pub fn sys_lseek(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    fd_file(a[0])?.seek(a[1] as i64, a[2] as u32)
}

/// implements close(2)
pub fn sys_close(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let e = process().files.lock().remove(a[0] as i32)?;
    drop(e);
    Ok(0)
}

/// implements close_range(2)
pub fn sys_close_range(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    const CLOSE_RANGE_CLOEXEC: u64 = 4;
    if a[0] > a[1] || a[2] & !(CLOSE_RANGE_CLOEXEC | 2) != 0 {
        return Err(Errno::EINVAL);
    }
    let closed = process().files.lock().close_range(
        a[0] as usize,
        a[1] as usize,
        a[2] & CLOSE_RANGE_CLOEXEC != 0,
    );
    drop(closed);
    Ok(0)
}

/// implements dup(2)
pub fn sys_dup(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mut t = process().files.lock();
    let f = t.get(a[0] as i32)?;
    t.insert(f, false, 0).map(|fd| fd as u64)
}

fn dup_to(old: u64, new: u64, cloexec: bool, same_ok: bool) -> Result<u64, Errno> {
    let proc = process();
    let mut t = proc.files.lock();
    let f = t.get(old as i32)?;
    if old == new {
        return if same_ok { Ok(new) } else { Err(Errno::EINVAL) };
    }
    if new as usize >= t.limit {
        return Err(Errno::EBADF);
    }
    let prev = t.put(new as usize, FdEntry { file: f, cloexec });
    drop(t);
    drop(prev);
    Ok(new)
}

/// implements dup2(2)
pub fn sys_dup2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    dup_to(a[0], a[1], false, true)
}

/// implements dup3(2)
pub fn sys_dup3(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[2] & !(oflags::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    dup_to(a[0], a[1], a[2] != 0, false)
}

const F_DUPFD: u64 = 0;
const F_GETFD: u64 = 1;
const F_SETFD: u64 = 2;
const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const F_GETLK: u64 = 5;
const F_SETLK: u64 = 6;
const F_SETLKW: u64 = 7;
const F_OFD_GETLK: u64 = 36;
const F_OFD_SETLK: u64 = 37;
const F_OFD_SETLKW: u64 = 38;
const F_DUPFD_CLOEXEC: u64 = 1030;
const F_GETPIPE_SZ: u64 = 1032;
const FD_CLOEXEC: u64 = 1;

/// implements fcntl(2)
pub fn sys_fcntl(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let proc = process();
    let fd = a[0] as i32;
    match a[1] {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let mut t = proc.files.lock();
            let f = t.get(fd)?;
            if a[2] as usize >= t.limit {
                return Err(Errno::EINVAL);
            }
            t.insert(f, a[1] == F_DUPFD_CLOEXEC, a[2] as usize).map(|fd| fd as u64)
        }
        F_GETFD => Ok(if proc.files.lock().entry(fd)?.cloexec { FD_CLOEXEC } else { 0 }),
        F_SETFD => {
            proc.files.lock().entry_mut(fd)?.cloexec = a[2] & FD_CLOEXEC != 0;
            Ok(0)
        }
        F_GETFL => Ok(proc.files.lock().get(fd)?.flags() as u64),
        F_SETFL => {
            let f = proc.files.lock().get(fd)?;
            f.set_status_flags(a[2] as u32)?;
            Ok(0)
        }
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            let f = proc.files.lock().get(fd)?;
            let Some(hfd) = f.file.host_fd() else {
                // Files only this enclave sees: locks cannot conflict.
                if a[1] == F_GETLK || a[1] == F_OFD_GETLK {
                    let mut fl: [u8; 32] = uaccess::read(a[2])?;
                    fl[0..2].copy_from_slice(&2u16.to_le_bytes()); // F_UNLCK
                    uaccess::write(a[2], &fl)?;
                }
                return Ok(0);
            };
            let mut fl: [u8; 32] = uaccess::read(a[2])?;
            lock_call(hfd, a[1] as u32, &mut fl)?;
            if a[1] == F_GETLK || a[1] == F_OFD_GETLK {
                uaccess::write(a[2], &fl)?;
            }
            Ok(0)
        }
        F_GETPIPE_SZ => Ok(65536),
        1031 /* F_SETPIPE_SZ */ => Ok(a[2].max(4096)),
        1033 | 1034 /* F_ADD_SEALS, F_GET_SEALS */ => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

/// A record lock on a host fd; the flock struct travels in the data area.
fn lock_call(fd: crate::host::calls::HostFd, cmd: u32, fl: &mut [u8; 32]) -> Result<(), Errno> {
    use crate::host::{call, Data};
    use conf_abi::ocall::Ocall;
    const OFF: u64 = 8192;
    let d = Data::mine();
    d.put(OFF, fl);
    call(Ocall::Fcntl, [fd.0 as u64, cmd as u64, OFF, 0, 0, 0]).result(Ocall::Fcntl)?;
    d.get(OFF, fl);
    Ok(())
}

const FIONBIO: u64 = 0x5421;
const FIOCLEX: u64 = 0x5451;
const FIONCLEX: u64 = 0x5450;
const FIOASYNC: u64 = 0x5452;

/// implements ioctl(2): terminal requests on host streams, FIONBIO,
/// FIOCLEX/FIONCLEX.
pub fn sys_ioctl(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let proc = process();
    let fd = a[0] as i32;
    match a[1] {
        FIONBIO => {
            let f = proc.files.lock().get(fd)?;
            let on: i32 = uaccess::read(a[2])?;
            let fl = if on != 0 {
                f.flags() | oflags::O_NONBLOCK
            } else {
                f.flags() & !oflags::O_NONBLOCK
            };
            f.set_status_flags(fl)?;
            Ok(0)
        }
        FIOCLEX | FIONCLEX => {
            proc.files.lock().entry_mut(fd)?.cloexec = a[1] == FIOCLEX;
            Ok(0)
        }
        FIOASYNC => Ok(0),
        req => {
            let f = proc.files.lock().get(fd)?;
            let size = f.file.ioctl_arg_size(req).ok_or(Errno::ENOTTY)?;
            let mut arg: Vec<u8> = uaccess::slice(a[2], size)?.to_vec();
            let r = f.file.ioctl(req, &mut arg)?;
            uaccess::copy_out(a[2], &arg)?;
            Ok(r)
        }
    }
}

/// implements pipe2(2)
pub fn sys_pipe2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let flags = a[1] as u32;
    if flags & !(oflags::O_CLOEXEC | oflags::O_NONBLOCK | oflags::O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    uaccess::slice_mut(a[0], 8)?;
    let (r, w) =
        crate::host::calls::pipe2((flags & (oflags::O_NONBLOCK | oflags::O_DIRECT)) as i32)?;
    use crate::fs::host::{HostFile, HostKind};
    let rf = OpenFile::new(
        Arc::new(HostFile::new(
            r,
            HostKind::Stream,
            alloc::string::String::new(),
        )),
        oflags::O_RDONLY | (flags & oflags::O_NONBLOCK),
        alloc::string::String::from("pipe:"),
    );
    let wf = OpenFile::new(
        Arc::new(HostFile::new(
            w,
            HostKind::Stream,
            alloc::string::String::new(),
        )),
        oflags::O_WRONLY | (flags & oflags::O_NONBLOCK),
        alloc::string::String::from("pipe:"),
    );
    let cloexec = flags & oflags::O_CLOEXEC != 0;
    let mut t = process().files.lock();
    let rfd = t.insert(rf, cloexec, 0)?;
    let wfd = match t.insert(wf, cloexec, 0) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.remove(rfd);
            return Err(e);
        }
    };
    drop(t);
    uaccess::write(a[0], &[rfd, wfd])?;
    Ok(0)
}

/// implements pipe(2)
pub fn sys_pipe(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_pipe2(ctx, [a[0], 0, 0, 0, 0, 0])
}

/// implements getdents64(2)
pub fn sys_getdents64(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    if !f.file.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let out = uaccess::slice_mut(a[1], (a[2] as usize).min(1 << 20))?;
    let mut dir = f.dir.lock();
    if dir.is_none() {
        *dir = Some((f.file.readdir()?, 0));
    }
    let (entries, at) = dir.as_mut().unwrap();
    let mut written = 0usize;
    while *at < entries.len() {
        let e = &entries[*at];
        let reclen = (19 + e.name.len() + 1).next_multiple_of(8);
        if written + reclen > out.len() {
            if written == 0 {
                return Err(Errno::EINVAL);
            }
            break;
        }
        let r = &mut out[written..written + reclen];
        r.fill(0);
        r[0..8].copy_from_slice(&e.ino.to_le_bytes());
        r[8..16].copy_from_slice(&((*at + 1) as u64).to_le_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        r[18] = e.kind;
        r[19..19 + e.name.len()].copy_from_slice(&e.name);
        written += reclen;
        *at += 1;
    }
    Ok(written as u64)
}

/// implements fsync(2)
pub fn sys_fsync(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    fd_file(a[0])?.file.sync(false).map(|_| 0)
}

/// implements fdatasync(2)
pub fn sys_fdatasync(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    fd_file(a[0])?.file.sync(true).map(|_| 0)
}

/// implements ftruncate(2)
pub fn sys_ftruncate(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    if !f.writable() {
        return Err(Errno::EINVAL);
    }
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    f.file.truncate(a[1]).map(|_| 0)
}

/// implements fstat(2)
pub fn sys_fstat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let st = fd_file(a[0])?.file.stat()?;
    uaccess::copy_out(a[1], st.as_bytes()).map(|_| 0)
}

/// implements flock(2)
pub fn sys_flock(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = fd_file(a[0])?;
    match f.file.host_fd() {
        Some(h) => crate::host::calls::flock(h, a[1] as u32).map(|_| 0),
        None => Ok(0),
    }
}

/// implements sendfile(2) by copying through the enclave.
pub fn sys_sendfile(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let out = fd_file(a[0])?;
    let inp = fd_file(a[1])?;
    let count = (a[3] as usize).min(MAX_RW);
    let mut off: Option<u64> = if a[2] != 0 {
        Some(uaccess::read::<u64>(a[2])?)
    } else {
        None
    };
    let mut buf = alloc::vec![0u8; count.min(128 * 1024)];
    let mut total = 0usize;
    while total < count {
        let want = (count - total).min(buf.len());
        let n = match off {
            Some(o) => inp.pread(&mut buf[..want], o)?,
            None => inp.read(&mut buf[..want])?,
        };
        if n == 0 {
            break;
        }
        let w = write_all_or_some(&out, &buf[..n])?;
        total += w;
        if let Some(o) = off.as_mut() {
            *o += w as u64;
        }
        if w < n {
            break;
        }
    }
    if let (Some(o), true) = (off, a[2] != 0) {
        uaccess::write(a[2], &o)?;
    }
    Ok(total as u64)
}
