//! The allow-listed host operations, one arm per OCALL.
//!
//! Each checks its arguments before doing anything: data offsets and lengths
//! inside the slot's data area, fds in the set the enclave owns, addresses
//! inside the enclave heap, and request codes pinned to the few the LibOS
//! needs (ioctl, fcntl). Results are Linux's: a value, or -errno.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use conf_abi::ocall::{Ocall, SLOT_DATA_SIZE};
use conf_abi::trusted::{chunk_count, chunk_digest, CHUNK_SIZE};

use super::{process, Host};

type Reply = (i64, u64);

fn err(e: i32) -> Reply {
    (-(e as i64), 0)
}

fn last_err() -> Reply {
    io_err(&std::io::Error::last_os_error())
}

fn io_err(e: &std::io::Error) -> Reply {
    err(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A protection argument: read, write and execute bits only.
fn prot_arg(v: u64) -> i32 {
    v as i32 & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)
}

fn sys(r: i64) -> Reply {
    if r < 0 {
        last_err()
    } else {
        (r, 0)
    }
}

/// A range of the data area, or EFAULT.
fn range(off: u64, len: u64) -> Result<std::ops::Range<usize>, Reply> {
    match off.checked_add(len) {
        Some(end) if end <= SLOT_DATA_SIZE => Ok(off as usize..end as usize),
        _ => Err(err(libc::EFAULT)),
    }
}

fn path_at(data: &[u8], off: u64, len: u64) -> Result<CString, Reply> {
    let r = range(off, len)?;
    CString::new(&data[r]).map_err(|_| err(libc::EINVAL))
}

/// An fd argument the enclave is allowed to use.
fn fd_arg(host: &Host, v: u64) -> Result<i32, Reply> {
    let fd = v as i64;
    if host.fds.contains(fd) {
        Ok(fd as i32)
    } else {
        Err(err(libc::EBADF))
    }
}

/// Pages inside the enclave heap.
fn heap_range(host: &Host, addr: u64, len: u64) -> Result<(), Reply> {
    if !addr.is_multiple_of(4096) || !len.is_multiple_of(4096) {
        return Err(err(libc::EINVAL));
    }
    heap_bytes(host, addr, len)
}

/// Bytes inside the enclave heap.
fn heap_bytes(host: &Host, addr: u64, len: u64) -> Result<(), Reply> {
    match addr.checked_add(len) {
        Some(end) if addr >= host.heap_lo && end <= host.heap_hi => Ok(()),
        _ => Err(err(libc::EINVAL)),
    }
}

/// Terminal ioctls the LibOS forwards for the program's std streams, with
/// the size of their argument.
const IOCTLS: &[(u64, usize, &str)] = &[
    (
        libc::TCGETS,
        36,
        "read terminal attributes (isatty, line editing)",
    ),
    (
        libc::TCSETS,
        36,
        "set terminal attributes (raw mode for REPLs)",
    ),
    (
        libc::TCSETSW,
        36,
        "set terminal attributes after draining output",
    ),
    (
        libc::TCSETSF,
        36,
        "set terminal attributes after flushing input",
    ),
    (libc::TIOCGWINSZ, 8, "read the window size"),
    (libc::TIOCSWINSZ, 8, "set the window size"),
    (libc::TIOCGPGRP, 4, "foreground process group (job control)"),
    (libc::TIOCSPGRP, 4, "set the foreground process group"),
    (libc::FIONREAD, 4, "bytes available to read"),
    (libc::TIOCOUTQ, 4, "bytes not yet sent (SIOCOUTQ)"),
];

/// fcntl commands forwarded to host fds.
const FCNTLS: &[(u32, &str)] = &[
    (libc::F_GETFL as u32, "read status flags"),
    (libc::F_SETFL as u32, "set O_NONBLOCK / O_APPEND"),
    (libc::F_GETLK as u32, "query a POSIX record lock"),
    (libc::F_SETLK as u32, "take a POSIX record lock"),
    (libc::F_SETLKW as u32, "take a POSIX record lock, waiting"),
    (
        libc::F_OFD_GETLK as u32,
        "query an open-file-description lock",
    ),
    (
        libc::F_OFD_SETLK as u32,
        "take an open-file-description lock",
    ),
    (
        libc::F_OFD_SETLKW as u32,
        "take an open-file-description lock, waiting",
    ),
];

const CLOCKS: &[i32] = &[
    libc::CLOCK_REALTIME,
    libc::CLOCK_MONOTONIC,
    libc::CLOCK_PROCESS_CPUTIME_ID,
    libc::CLOCK_THREAD_CPUTIME_ID,
    libc::CLOCK_MONOTONIC_RAW,
    libc::CLOCK_REALTIME_COARSE,
    libc::CLOCK_MONOTONIC_COARSE,
    libc::CLOCK_BOOTTIME,
];

pub fn execute(host: &Host, slot: u64, op: Ocall, a: [u64; 6]) -> Reply {
    match run(host, slot, op, a) {
        Ok(r) | Err(r) => r,
    }
}

fn run(host: &Host, slot: u64, op: Ocall, a: [u64; 6]) -> Result<Reply, Reply> {
    let data = host.ring.data(slot);
    // SAFETY (for the libc calls below): every pointer handed to the kernel
    // is into `data` within a range checked by `range`, or a local.
    Ok(match op {
        Ocall::Write => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            sys(unsafe { libc::write(fd, data[r.clone()].as_ptr() as *const _, r.len()) } as i64)
        }
        Ocall::Read => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            sys(host.blocking(slot, || unsafe {
                libc::read(fd, data[r.clone()].as_mut_ptr() as *mut _, r.len())
            }) as i64)
        }
        Ocall::Pread => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            sys(unsafe {
                libc::pread(
                    fd,
                    data[r.clone()].as_mut_ptr() as *mut _,
                    r.len(),
                    a[3] as i64,
                )
            } as i64)
        }
        Ocall::Pwrite => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            sys(unsafe {
                libc::pwrite(
                    fd,
                    data[r.clone()].as_ptr() as *const _,
                    r.len(),
                    a[3] as i64,
                )
            } as i64)
        }
        Ocall::Open => {
            let p = path_at(data, a[0], a[1])?;
            // Host fds never leak into processes conf-run starts.
            let fd = unsafe {
                libc::open(
                    p.as_ptr(),
                    (a[2] as i32) | libc::O_CLOEXEC,
                    a[3] as libc::c_uint,
                )
            };
            if fd < 0 {
                last_err()
            } else {
                host.fds.insert(fd);
                check_unchecked(host, &p, fd);
                host.remember_path(fd, PathBuf::from(std::ffi::OsStr::from_bytes(p.as_bytes())));
                (fd as i64, 0)
            }
        }
        Ocall::Close => {
            let fd = fd_arg(host, a[0])?;
            if fd <= 2 {
                // The enclave's std streams stay open on the host.
                (0, 0)
            } else {
                host.fds.remove(fd);
                host.forget_path(fd);
                sys(unsafe { libc::close(fd) } as i64)
            }
        }
        Ocall::Fstat => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], 144)?;
            sys(unsafe { libc::fstat(fd, data[r].as_mut_ptr() as *mut libc::stat) } as i64)
        }
        Ocall::Stat => {
            let p = path_at(data, a[0], a[1])?;
            let r = range(a[2], 144)?;
            let out = data[r].as_mut_ptr() as *mut libc::stat;
            sys(unsafe {
                if a[3] != 0 {
                    libc::lstat(p.as_ptr(), out)
                } else {
                    libc::stat(p.as_ptr(), out)
                }
            } as i64)
        }
        Ocall::Lseek => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::lseek(fd, a[1] as i64, a[2] as i32) })
        }
        Ocall::Getdents64 => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            sys(unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd,
                    data[r.clone()].as_mut_ptr(),
                    r.len(),
                )
            })
        }
        Ocall::Readlink => {
            let p = path_at(data, a[0], a[1])?;
            let r = range(a[2], a[3])?;
            sys(unsafe {
                libc::readlink(p.as_ptr(), data[r.clone()].as_mut_ptr() as *mut _, r.len())
            } as i64)
        }
        Ocall::Ioctl => {
            let fd = fd_arg(host, a[0])?;
            let Some(&(req, size, _)) = IOCTLS.iter().find(|(r, _, _)| *r == a[1]) else {
                return Err(err(libc::ENOTTY));
            };
            let r = range(a[2], size as u64)?;
            sys(unsafe { libc::ioctl(fd, req, data[r].as_mut_ptr()) } as i64)
        }
        Ocall::Fcntl => {
            let fd = fd_arg(host, a[0])?;
            let cmd = a[1] as u32;
            if !FCNTLS.iter().any(|(c, _)| *c == cmd) {
                return Err(err(libc::EINVAL));
            }
            let is_lock = ![libc::F_GETFL as u32, libc::F_SETFL as u32].contains(&cmd);
            if is_lock {
                let r = range(a[2], std::mem::size_of::<libc::flock>() as u64)?;
                sys(unsafe { libc::fcntl(fd, cmd as i32, data[r].as_mut_ptr()) } as i64)
            } else {
                sys(unsafe { libc::fcntl(fd, cmd as i32, a[2] as libc::c_int) } as i64)
            }
        }
        Ocall::Pipe2 => {
            let mut fds = [0i32; 2];
            let flags = (a[0] as i32 & (libc::O_NONBLOCK | libc::O_DIRECT)) | libc::O_CLOEXEC;
            if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } < 0 {
                last_err()
            } else {
                host.fds.insert(fds[0]);
                host.fds.insert(fds[1]);
                (0, fds[0] as u32 as u64 | (fds[1] as u32 as u64) << 32)
            }
        }
        Ocall::SyncCore => sync_core(),
        Ocall::Cpuid => {
            let r = range(a[2], 16)?;
            let regs = crate::sim::cpuid::host_cpuid(a[0] as u32, a[1] as u32);
            for (i, v) in regs.iter().enumerate() {
                data[r.start + 4 * i..r.start + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            (0, 0)
        }
        Ocall::FillHints => {
            let size = conf_abi::ocall::FillHint::SIZE;
            let r = range(a[1], a[2].saturating_mul(size as u64))?;
            if a[0] == 1 {
                crate::host::hints::publish(host, &data[r]);
                (0, 0)
            } else if a[0] == 2 {
                (crate::host::hints::still_waiting_for_work(host) as i64, 0)
            } else {
                (
                    (crate::host::hints::read(host, &mut data[r]) / size) as i64,
                    0,
                )
            }
        }
        Ocall::TrapCpuid => match crate::sim::cpuid::trap_from_now_on() {
            Ok(()) => (0, 0),
            Err(e) => err(e),
        },
        Ocall::StopProcess => stop_process(a[0] as i32)?,
        Ocall::SharedAnon => {
            let len = a[0];
            if len == 0 || !len.is_multiple_of(4096) || len > 1 << 40 {
                return Err(err(libc::EINVAL));
            }
            // SAFETY: a NUL-terminated name; the fd is ours until handed over.
            let fd = unsafe { libc::memfd_create(c"conf-shared-anon".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(last_err());
            }
            // SAFETY: ftruncate of the memfd just created.
            if unsafe { libc::ftruncate(fd, len as i64) } != 0 {
                let e = last_err();
                // SAFETY: our own fd.
                unsafe { libc::close(fd) };
                return Err(e);
            }
            new_fd(host, fd)
        }
        Ocall::FillPages => {
            let (dst, len, src) = (a[0], a[1], a[2]);
            heap_range(host, dst, len)?;
            heap_bytes(host, src, len)?;
            // SAFETY: enclave heap memory (checked above), which the sim
            // host may read.
            let bytes = unsafe { std::slice::from_raw_parts(src as *const u8, len as usize) };
            const PAGE: u64 = conf_abi::layout::PAGE_SIZE;
            let runs: Vec<(u64, u64)> = match a[5] {
                0 => vec![(0, len)],
                mask => conf_abi::ocall::page_runs(mask)
                    .map(|(first, n)| (first * PAGE, n * PAGE))
                    .filter(|&(off, _)| off < len)
                    .map(|(off, n)| (off, n.min(len - off)))
                    .collect(),
            };
            // a4 = 1 or 2: pages registered with the userfaultfd.
            let lf = if a[4] == 1 || a[4] == 2 {
                Some(host.lazy_fill().ok_or_else(|| err(libc::EINVAL))?)
            } else {
                None
            };
            let present = |at, page: &[u8]| {
                if a[4] == 1 {
                    return Ok(());
                }
                write_enclave(host, at, page)
                    .map_err(|(e, _)| std::io::Error::from_raw_os_error(-e as i32))
            };
            let prot = prot_arg(a[3]);
            for (off, n) in runs {
                let (at, part) = (dst + off, &bytes[off as usize..(off + n) as usize]);
                if let Some(lf) = lf {
                    lf.copy(at, part, present).map_err(|e| io_err(&e))?;
                    continue;
                }
                // Written whatever the pages' protection: they become
                // accessible only afterwards.
                write_enclave(host, at, part)?;
                // SAFETY: enclave heap pages (checked above).
                if unsafe { libc::mprotect(at as *mut _, n as usize, prot) } < 0 {
                    return Err(last_err());
                }
            }
            (0, 0)
        }
        Ocall::LazyPages => {
            heap_range(host, a[0], a[1])?;
            let prot = prot_arg(a[2]);
            let Some(lf) = host.lazy_fill() else {
                return Ok((0, 0));
            };
            // Registered while still inaccessible: if it cannot be, the
            // pages stay as the LibOS expects of an answer of 0.
            if lf.register(a[0], a[1]).is_err() {
                return Ok((0, 0));
            }
            // SAFETY: enclave heap pages (checked above).
            if unsafe { libc::mprotect(a[0] as *mut _, a[1] as usize, prot) } < 0 {
                let e = last_err();
                let _ = lf.unregister(a[0], a[1]);
                return Err(e);
            }
            (1, 0)
        }
        Ocall::PokeCode => {
            if a[1] > 64 {
                return Err(err(libc::EINVAL));
            }
            write_enclave(host, a[0], &data[range(a[2], a[1])?])?;
            (0, 0)
        }
        Ocall::Mprotect => {
            heap_range(host, a[0], a[1])?;
            let prot = prot_arg(a[2]);
            sys(unsafe { libc::mprotect(a[0] as *mut _, a[1] as usize, prot) } as i64)
        }
        Ocall::Decommit => {
            heap_range(host, a[0], a[1])?;
            let prot = prot_arg(a[2]);
            if a[3] == 1 {
                if let Some(lf) = host.lazy_fill() {
                    if let Err(e) = lf.unregister(a[0], a[1]) {
                        return Err(io_err(&e));
                    }
                }
            }
            if unsafe { libc::madvise(a[0] as *mut _, a[1] as usize, libc::MADV_DONTNEED) } < 0 {
                last_err()
            } else {
                sys(unsafe { libc::mprotect(a[0] as *mut _, a[1] as usize, prot) } as i64)
            }
        }
        Ocall::ClockGettime => {
            let clock = a[0] as i32;
            if !CLOCKS.contains(&clock) {
                return Err(err(libc::EINVAL));
            }
            let r = range(a[1], 16)?;
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if unsafe { libc::clock_gettime(clock, &mut ts) } < 0 {
                last_err()
            } else {
                data[r.start..r.start + 8].copy_from_slice(&(ts.tv_sec as u64).to_le_bytes());
                data[r.start + 8..r.end].copy_from_slice(&(ts.tv_nsec as u64).to_le_bytes());
                (0, 0)
            }
        }
        Ocall::Sleep => {
            let ts = libc::timespec {
                tv_sec: (a[0] / 1_000_000_000) as i64,
                tv_nsec: (a[0] % 1_000_000_000) as i64,
            };
            sys(host.blocking(slot, || unsafe {
                libc::nanosleep(&ts, std::ptr::null_mut())
            }) as i64)
        }
        Ocall::Mkdir => {
            let p = path_at(data, a[0], a[1])?;
            sys(unsafe { libc::mkdir(p.as_ptr(), a[2] as libc::mode_t) } as i64)
        }
        Ocall::Unlink => {
            let p = path_at(data, a[0], a[1])?;
            let flags = a[2] as i32 & libc::AT_REMOVEDIR;
            sys(unsafe { libc::unlinkat(libc::AT_FDCWD, p.as_ptr(), flags) } as i64)
        }
        Ocall::Rename | Ocall::Symlink | Ocall::Link => {
            let p1 = path_at(data, a[0], a[1])?;
            let p2 = path_at(data, a[2], a[3])?;
            sys(unsafe {
                match op {
                    Ocall::Rename => libc::rename(p1.as_ptr(), p2.as_ptr()),
                    Ocall::Symlink => libc::symlink(p1.as_ptr(), p2.as_ptr()),
                    _ => libc::link(p1.as_ptr(), p2.as_ptr()),
                }
            } as i64)
        }
        Ocall::Ftruncate => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::ftruncate(fd, a[1] as i64) } as i64)
        }
        Ocall::Truncate => {
            let p = path_at(data, a[0], a[1])?;
            sys(unsafe { libc::truncate(p.as_ptr(), a[2] as i64) } as i64)
        }
        Ocall::Fsync => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe {
                if a[1] != 0 {
                    libc::fdatasync(fd)
                } else {
                    libc::fsync(fd)
                }
            } as i64)
        }
        Ocall::Utimens => {
            let times = range(a[2], 32)?;
            let flags = a[3] as i32 & libc::AT_SYMLINK_NOFOLLOW;
            let ts = data[times].as_ptr() as *const libc::timespec;
            if a[4] as i64 >= 0 {
                let fd = fd_arg(host, a[4])?;
                sys(unsafe { libc::futimens(fd, ts) } as i64)
            } else {
                let p = path_at(data, a[0], a[1])?;
                sys(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), ts, flags) } as i64)
            }
        }
        Ocall::Fchmod => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::fchmod(fd, (a[1] & 0o7777) as libc::mode_t) } as i64)
        }
        Ocall::Chmod => {
            let p = path_at(data, a[0], a[1])?;
            sys(unsafe { libc::chmod(p.as_ptr(), (a[2] & 0o7777) as libc::mode_t) } as i64)
        }
        Ocall::Statfs => {
            let p = path_at(data, a[0], a[1])?;
            let r = range(a[2], 120)?;
            sys(
                unsafe { libc::statfs(p.as_ptr(), data[r].as_mut_ptr() as *mut libc::statfs) }
                    as i64,
            )
        }
        Ocall::Flock => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::flock(fd, a[1] as i32) } as i64)
        }
        Ocall::Poll => {
            let n = a[1];
            let r = range(a[0], n.checked_mul(8).ok_or(err(libc::EINVAL))?)?;
            let fds = data[r].as_mut_ptr() as *mut libc::pollfd;
            for i in 0..n as usize {
                // SAFETY: inside the checked range.
                let fd = unsafe { (*fds.add(i)).fd };
                if fd >= 0 && !host.fds.contains(fd as i64) {
                    return Err(err(libc::EBADF));
                }
            }
            sys(host.blocking(slot, || unsafe {
                libc::poll(fds, n as libc::nfds_t, a[2] as i64 as i32)
            }) as i64)
        }
        Ocall::SpawnThread => {
            let Some(spawn) = host.spawner.get() else {
                return Err(err(libc::EAGAIN));
            };
            if a[0] == 0 || a[0] >= host.ring.layout.nslots {
                return Err(err(libc::EINVAL));
            }
            match spawn(a[0]) {
                Ok(()) => (0, 0),
                Err(e) => err(e.raw_os_error().unwrap_or(libc::EAGAIN)),
            }
        }
        Ocall::ThreadSleep => {
            let s = host.ring.slot(slot);
            let timeout = (a[1] != u64::MAX).then(|| libc::timespec {
                tv_sec: (a[1] / 1_000_000_000) as i64,
                tv_nsec: (a[1] % 1_000_000_000) as i64,
            });
            let r = super::futex_wait(&s.wake_seq, a[0] as u32, timeout);
            match r {
                r if r == -(libc::ETIMEDOUT as i64) => (r, 0),
                r if r == -(libc::EINTR as i64) => (r, 0),
                _ => (0, 0),
            }
        }
        Ocall::ThreadWake => {
            if a[0] >= host.ring.layout.nslots {
                return Err(err(libc::EINVAL));
            }
            let s = host.ring.slot(a[0]);
            s.wake_seq.fetch_add(1, Ordering::SeqCst);
            super::futex_wake(&s.wake_seq);
            (0, 0)
        }
        Ocall::ChunkDigests => {
            let fd = fd_arg(host, a[0])?;
            let (first, count) = (a[1], a[2]);
            let r = range(a[3], count.checked_mul(32).ok_or(err(libc::EINVAL))?)?;
            let digests = chunk_digests_for(host, fd)?;
            let end = first.checked_add(count).ok_or(err(libc::EINVAL))?;
            if end > digests.len() as u64 {
                return Err(err(libc::EINVAL));
            }
            for (i, d) in digests[first as usize..end as usize].iter().enumerate() {
                data[r.start + i * 32..r.start + i * 32 + 32].copy_from_slice(d);
            }
            (0, 0)
        }
        Ocall::Yield => sys(unsafe { libc::sched_yield() } as i64),
        Ocall::Realpath => {
            let p = path_at(data, a[0], a[1])?;
            let r = range(a[2], a[3])?;
            match std::fs::canonicalize(std::ffi::OsStr::from_bytes(p.as_bytes())) {
                Err(e) => err(e.raw_os_error().unwrap_or(libc::ENOENT)),
                Ok(real) => {
                    let b = real.as_os_str().as_bytes();
                    if b.len() > r.len() {
                        return Err(err(libc::ENAMETOOLONG));
                    }
                    data[r.start..r.start + b.len()].copy_from_slice(b);
                    (b.len() as i64, 0)
                }
            }
        }
        Ocall::Kick => {
            if a[0] >= host.ring.layout.nslots {
                return Err(err(libc::EINVAL));
            }
            host.kick(a[0]);
            (0, 0)
        }
        Ocall::Alarm => {
            host.set_alarm(a[0]);
            (0, 0)
        }
        Ocall::Socket => {
            let ty = a[1] as i32 | libc::SOCK_CLOEXEC;
            new_fd(host, unsafe { libc::socket(a[0] as i32, ty, a[2] as i32) })
        }
        Ocall::Socketpair => {
            let mut fds = [0i32; 2];
            if unsafe {
                libc::socketpair(
                    a[0] as i32,
                    a[1] as i32 | libc::SOCK_CLOEXEC,
                    a[2] as i32,
                    fds.as_mut_ptr(),
                )
            } < 0
            {
                last_err()
            } else {
                host.fds.insert(fds[0]);
                host.fds.insert(fds[1]);
                (0, fds[0] as u32 as u64 | (fds[1] as u32 as u64) << 32)
            }
        }
        Ocall::Bind | Ocall::Connect => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2].min(128))?;
            let addr = data[r.clone()].as_ptr() as *const libc::sockaddr;
            sys(unsafe {
                if op == Ocall::Bind {
                    libc::bind(fd, addr, r.len() as u32)
                } else {
                    libc::connect(fd, addr, r.len() as u32)
                }
            } as i64)
        }
        Ocall::Listen => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::listen(fd, a[1] as i32) } as i64)
        }
        Ocall::Accept => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[2], a[3].min(128))?;
            let mut len = r.len() as libc::socklen_t;
            let flags = (a[1] as i32 & libc::SOCK_NONBLOCK) | libc::SOCK_CLOEXEC;
            let nfd = host.blocking(slot, || unsafe {
                libc::accept4(
                    fd,
                    data[r.clone()].as_mut_ptr() as *mut libc::sockaddr,
                    &mut len,
                    flags,
                )
            });
            let (ret, _) = new_fd(host, nfd);
            (ret, len as u64)
        }
        Ocall::Getsockname | Ocall::Getpeername => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2].min(128))?;
            let mut len = r.len() as libc::socklen_t;
            let p = data[r].as_mut_ptr() as *mut libc::sockaddr;
            let rc = unsafe {
                if op == Ocall::Getsockname {
                    libc::getsockname(fd, p, &mut len)
                } else {
                    libc::getpeername(fd, p, &mut len)
                }
            };
            if rc < 0 {
                last_err()
            } else {
                (0, len as u64)
            }
        }
        Ocall::Setsockopt => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[3], a[4].min(1024))?;
            sys(unsafe {
                libc::setsockopt(
                    fd,
                    a[1] as i32,
                    a[2] as i32,
                    data[r.clone()].as_ptr() as *const _,
                    r.len() as u32,
                )
            } as i64)
        }
        Ocall::Getsockopt => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[3], a[4].min(1024))?;
            let mut len = r.len() as libc::socklen_t;
            if unsafe {
                libc::getsockopt(
                    fd,
                    a[1] as i32,
                    a[2] as i32,
                    data[r].as_mut_ptr() as *mut _,
                    &mut len,
                )
            } < 0
            {
                last_err()
            } else {
                (0, len as u64)
            }
        }
        Ocall::Sendto => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            let (addr, alen) = if a[5] > 0 {
                let ar = range(a[4], a[5].min(128))?;
                (
                    data[ar.clone()].as_ptr() as *const libc::sockaddr,
                    ar.len() as u32,
                )
            } else {
                (std::ptr::null(), 0)
            };
            let flags = a[3] as i32 | libc::MSG_NOSIGNAL;
            sys(unsafe {
                libc::sendto(
                    fd,
                    data[r.clone()].as_ptr() as *const _,
                    r.len(),
                    flags,
                    addr,
                    alen,
                )
            } as i64)
        }
        Ocall::Recvfrom => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            let ar = range(a[4], 128)?;
            let mut alen: libc::socklen_t = 128;
            let (buf, abuf) = split_two(data, r, ar)?;
            let n = host.blocking(slot, || unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr() as *mut _,
                    buf.len(),
                    a[3] as i32,
                    abuf.as_mut_ptr() as *mut libc::sockaddr,
                    &mut alen,
                )
            });
            if n < 0 {
                last_err()
            } else {
                (n as i64, alen as u64)
            }
        }
        Ocall::Recvmsg => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            let ar = range(a[4], 128)?;
            let cr = range(a[5], 4096)?;
            if r.end > ar.start && ar.end > r.start
                || r.end > cr.start && cr.end > r.start
                || ar.end > cr.start && cr.end > ar.start
            {
                return Err(err(libc::EINVAL));
            }
            let base = data.as_mut_ptr();
            let mut iov = libc::iovec {
                iov_base: unsafe { base.add(r.start) } as *mut _,
                iov_len: r.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = unsafe { base.add(ar.start) } as *mut _;
            msg.msg_namelen = 128;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = unsafe { base.add(cr.start) } as *mut _;
            msg.msg_controllen = 4096;
            let n = host.blocking(slot, || unsafe {
                libc::recvmsg(fd, &mut msg, (a[3] as i32) | libc::MSG_CMSG_CLOEXEC)
            });
            if n < 0 {
                last_err()
            } else {
                // Descriptors passed in: the enclave may use them.
                track_passed_fds(host, &msg);
                (
                    n as i64,
                    msg.msg_namelen as u64
                        | (msg.msg_controllen as u64) << 16
                        | (msg.msg_flags as u32 as u64) << 32,
                )
            }
        }
        Ocall::Sendmsg => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], a[2])?;
            let (aoff, alen) = (a[4] & 0xffff_ffff, (a[4] >> 32).min(128));
            let (coff, clen) = (a[5] & 0xffff_ffff, a[5] >> 32);
            if clen > 4096 {
                return Err(err(libc::ENOBUFS));
            }
            // Our own copies: the data area is shared with the enclave.
            let addr = data[range(aoff, alen)?].to_vec();
            let mut control = vec![0u64; (clen as usize).div_ceil(8)];
            // SAFETY: `control` holds at least clen bytes (u64s keep the
            // cmsg headers aligned).
            let cbytes = unsafe {
                std::slice::from_raw_parts_mut(control.as_mut_ptr() as *mut u8, clen as usize)
            };
            cbytes.copy_from_slice(&data[range(coff, clen)?]);
            check_passed_fds(host, cbytes)?;
            let mut iov = libc::iovec {
                iov_base: data[r.clone()].as_mut_ptr() as *mut _,
                iov_len: r.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            if alen > 0 {
                msg.msg_name = addr.as_ptr() as *mut _;
                msg.msg_namelen = alen as u32;
            }
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if clen > 0 {
                msg.msg_control = control.as_mut_ptr() as *mut _;
                msg.msg_controllen = clen as usize;
            }
            let flags = a[3] as i32 | libc::MSG_NOSIGNAL;
            sys(host.blocking(slot, || unsafe { libc::sendmsg(fd, &msg, flags) }) as i64)
        }
        Ocall::SocketDir => {
            let Some(count) = host.processes.get() else {
                return Err(err(libc::ENOSYS));
            };
            let dir = count
                .socket_dir()
                .ensure()
                .map_err(|e| err(e.raw_os_error().unwrap_or(libc::EACCES)))?;
            let b = dir.as_os_str().as_bytes();
            let r = range(a[0], a[1])?;
            if b.len() > r.len() {
                return Err(err(libc::ENAMETOOLONG));
            }
            data[r.start..r.start + b.len()].copy_from_slice(b);
            (b.len() as i64, 0)
        }
        Ocall::Shutdown => {
            let fd = fd_arg(host, a[0])?;
            sys(unsafe { libc::shutdown(fd, a[1] as i32) } as i64)
        }
        Ocall::EpollCreate => new_fd(host, unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }),
        Ocall::EpollCtl => {
            let epfd = fd_arg(host, a[0])?;
            let fd = fd_arg(host, a[2])?;
            let mut ev = libc::epoll_event {
                events: a[3] as u32,
                u64: a[4],
            };
            sys(unsafe { libc::epoll_ctl(epfd, a[1] as i32, fd, &mut ev) } as i64)
        }
        Ocall::EpollWait => {
            let epfd = fd_arg(host, a[0])?;
            let max = a[1].clamp(1, 4096);
            let r = range(a[3], max * 16)?;
            let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; max as usize];
            let n = host.blocking(slot, || unsafe {
                libc::epoll_wait(epfd, evs.as_mut_ptr(), max as i32, a[2] as i64 as i32)
            });
            if n < 0 {
                last_err()
            } else {
                for (i, e) in evs.iter().take(n as usize).enumerate() {
                    let o = r.start + i * 16;
                    data[o..o + 4].copy_from_slice(&{ e.events }.to_le_bytes());
                    data[o + 4..o + 8].fill(0);
                    data[o + 8..o + 16].copy_from_slice(&{ e.u64 }.to_le_bytes());
                }
                (n as i64, 0)
            }
        }
        Ocall::Eventfd => new_fd(host, unsafe {
            libc::eventfd(
                a[0] as u32,
                (a[1] as i32 & (libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE)) | libc::EFD_CLOEXEC,
            )
        }),
        Ocall::TimerfdCreate => new_fd(host, unsafe {
            libc::timerfd_create(
                a[0] as i32,
                (a[1] as i32 & libc::TFD_NONBLOCK) | libc::TFD_CLOEXEC,
            )
        }),
        Ocall::TimerfdSettime => {
            let fd = fd_arg(host, a[0])?;
            let nr = range(a[2], 32)?;
            let or = range(a[3], 32)?;
            let new: libc::itimerspec =
                unsafe { std::ptr::read_unaligned(data[nr].as_ptr() as *const _) };
            let mut old: libc::itimerspec = unsafe { std::mem::zeroed() };
            if unsafe { libc::timerfd_settime(fd, a[1] as i32, &new, &mut old) } < 0 {
                last_err()
            } else {
                unsafe {
                    std::ptr::write_unaligned(data[or].as_mut_ptr() as *mut libc::itimerspec, old)
                };
                (0, 0)
            }
        }
        Ocall::TimerfdGettime => {
            let fd = fd_arg(host, a[0])?;
            let r = range(a[1], 32)?;
            let mut cur: libc::itimerspec = unsafe { std::mem::zeroed() };
            if unsafe { libc::timerfd_gettime(fd, &mut cur) } < 0 {
                last_err()
            } else {
                unsafe {
                    std::ptr::write_unaligned(data[r].as_mut_ptr() as *mut libc::itimerspec, cur)
                };
                (0, 0)
            }
        }
        Ocall::Kill => {
            let sig = a[0] as i32;
            if !(0..=64).contains(&sig) {
                return Err(err(libc::EINVAL));
            }
            let target = a[1] as i64 as i32;
            let pid = if target == 0 {
                unsafe { libc::getpid() }
            } else if target == -1 {
                unsafe { libc::getppid() }
            } else if host
                .children
                .lock()
                .unwrap()
                .contains(&(target.unsigned_abs()))
            {
                target
            } else if target > 0 {
                // Another process of the run (multiprocessing's forkserver
                // starts workers its clients then signal): pinned with a
                // pidfd, then checked, so a reused pid is never signalled.
                let Some(count) = host.processes.get() else {
                    return Err(err(libc::ESRCH));
                };
                let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, target, 0) } as i32;
                if pidfd < 0 {
                    return Err(last_err());
                }
                let r = if count.is_member(target) {
                    sys(unsafe {
                        libc::syscall(
                            libc::SYS_pidfd_send_signal,
                            pidfd,
                            sig,
                            std::ptr::null::<libc::siginfo_t>(),
                            0,
                        )
                    })
                } else {
                    err(libc::ESRCH)
                };
                unsafe { libc::close(pidfd) };
                return Ok(r);
            } else {
                return Err(err(libc::ESRCH));
            };
            sys(unsafe { libc::kill(pid, sig) } as i64)
        }
        Ocall::SpawnProcess => {
            let n = a[1].min(4096);
            let r = range(a[0], n * 4)?;
            let mut fds = Vec::new();
            for c in data[r].chunks_exact(4) {
                let fd = i32::from_le_bytes(c.try_into().unwrap());
                fds.push(fd_arg(host, fd as u32 as u64)?);
            }
            let Some(base) = host.child_spec.get() else {
                return Err(err(libc::ENOSYS));
            };
            let Some(count) = host.processes.get() else {
                return Err(err(libc::ENOSYS));
            };
            if !count.try_add() {
                return Err(err(libc::EAGAIN));
            }
            let spec = process::ChildSpec {
                fds,
                mrenclave: host.mrenclave(),
                ..base.clone()
            };
            // A conf-run started ahead of need has its enclave booted
            // already; otherwise start one now. Either way, start the one
            // for next time: a program that starts one process usually
            // starts more.
            reap_reported(host);
            let warm = host.warm.lock().unwrap().take();
            let on_demand = |spec| process::spawn(spec).map(|(pid, chan)| (pid, chan, -1));
            let started = match warm {
                // One that died meanwhile is replaced by a new start.
                Some(w) => w.activate(&spec.fds).or_else(|_| on_demand(&spec)),
                None => on_demand(&spec),
            };
            if started.is_ok() {
                start_warm(host, &spec);
            }
            match started {
                Ok((pid, chan, report)) => {
                    host.fds.insert(chan);
                    host.children.lock().unwrap().insert(pid);
                    if report >= 0 {
                        host.exit_reports.lock().unwrap().insert(pid, report);
                    }
                    (pid as i64, chan as u64)
                }
                Err(e) => {
                    count.remove();
                    err(e.raw_os_error().unwrap_or(libc::EAGAIN))
                }
            }
        }
        Ocall::Wait => {
            let pid = a[0] as i64 as i32;
            if pid > 0 && !host.children.lock().unwrap().contains(&(pid as u32)) {
                return Err(err(libc::ECHILD));
            }
            let options = a[1] as i32 & (libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED);
            if let Some(r) = reported_exit(host, slot, pid, options) {
                return Ok(r);
            }
            let mut status = 0;
            // Only processes the program started are its children: a
            // conf-run started ahead of need (or being started) that ends
            // is reaped here, and the wait goes on.
            let r = loop {
                let r = host.blocking(slot, || unsafe { libc::waitpid(pid, &mut status, options) });
                if r <= 0 || host.children.lock().unwrap().contains(&(r as u32)) {
                    break r;
                }
                let mut warm = host.warm.lock().unwrap();
                if warm.as_ref().is_some_and(|w| w.pid as i32 == r) {
                    *warm = None;
                }
                drop(warm);
                let mut zygote = host.zygote.lock().unwrap();
                if matches!(&*zygote, crate::host::zygote::ZygoteState::Running(z) if z.pid as i32 == r)
                {
                    *zygote = crate::host::zygote::ZygoteState::Untried;
                }
            };
            if r < 0 {
                last_err()
            } else {
                if r > 0 && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
                    child_ended(host, r as u32);
                }
                (r as i64, status as u32 as u64)
            }
        }
        Ocall::MapShared => {
            let fd = fd_arg(host, a[0])?;
            let (len, off) = (a[1], a[2]);
            if len == 0 || len % 4096 != 0 || off % 4096 != 0 || len > 1 << 40 {
                return Err(err(libc::EINVAL));
            }
            let prot = a[3] as i32 & (libc::PROT_READ | libc::PROT_WRITE);
            let (hint, flags) = if a[4] != 0 {
                (
                    a[4] as *mut libc::c_void,
                    libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                )
            } else {
                (std::ptr::null_mut(), libc::MAP_SHARED)
            };
            // Never inside ELRANGE.
            if a[4] != 0 && a[4] < host.heap_hi.next_power_of_two() {
                return Err(err(libc::EINVAL));
            }
            let p = unsafe { libc::mmap(hint, len as usize, prot, flags, fd, off as i64) };
            if p == libc::MAP_FAILED {
                last_err()
            } else {
                let id = host
                    .next_map_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                host.shared_maps.lock().unwrap().insert(id, (p as u64, len));
                (id as i64, p as u64)
            }
        }
        Ocall::UnmapShared => match host.shared_maps.lock().unwrap().remove(&a[0]) {
            Some((addr, len)) => sys(unsafe { libc::munmap(addr as *mut _, len as usize) } as i64),
            None => err(libc::EINVAL),
        },
        Ocall::FutexShared => {
            let Some(&(addr, len)) = host.shared_maps.lock().unwrap().get(&a[0]) else {
                return Err(err(libc::EINVAL));
            };
            if !a[1].is_multiple_of(4) || a[1] + 4 > len {
                return Err(err(libc::EINVAL));
            }
            let uaddr = (addr + a[1]) as *mut u32;
            // Only the shared (not PRIVATE) wait/wake family.
            let op = a[2] as i32 & !(libc::FUTEX_PRIVATE_FLAG);
            let cmd = op & 0x7f;
            if ![
                libc::FUTEX_WAIT,
                libc::FUTEX_WAKE,
                libc::FUTEX_WAIT_BITSET,
                libc::FUTEX_WAKE_BITSET,
            ]
            .contains(&cmd)
            {
                return Err(err(libc::ENOSYS));
            }
            let ts;
            let tsp =
                if a[4] == u64::MAX || cmd == libc::FUTEX_WAKE || cmd == libc::FUTEX_WAKE_BITSET {
                    std::ptr::null()
                } else {
                    ts = libc::timespec {
                        tv_sec: (a[4] / 1_000_000_000) as i64,
                        tv_nsec: (a[4] % 1_000_000_000) as i64,
                    };
                    &ts as *const libc::timespec
                };
            // Relative timeouts only: WAIT_BITSET wants absolute, use WAIT.
            let (cmd, bits) = if cmd == libc::FUTEX_WAIT_BITSET {
                (libc::FUTEX_WAIT, 0)
            } else {
                (cmd, a[5] as u32)
            };
            let r = host.blocking(slot, || unsafe {
                libc::syscall(libc::SYS_futex, uaddr, cmd, a[3] as u32, tsp, 0, bits)
            });
            sys(r)
        }
        Ocall::ChildStart => {
            let Some(from) = host.child_start.lock().unwrap().take() else {
                return Err(err(libc::EINVAL));
            };
            // The channel key comes next: a process kept ready derives it
            // (reading the sim's CPU secret; MRENCLAVE too if the parent did
            // not pass it) while it waits, not after the parent asked.
            let _ = host.seal_key();
            let got = match from.wait() {
                Ok(Some(x)) => Ok(x),
                // The parent ended before it needed this process: nothing
                // to report, nobody to report it to.
                Ok(None) => std::process::exit(0),
                Err(e) => Err(e),
            };
            let (chan, fds) = match got {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("[conf] error: a child process could not start: {e}");
                    return Err(err(libc::EIO));
                }
            };
            let n = (fds.len() as u64).min(a[1]);
            let r = range(a[0], n * 4)?;
            for (c, fd) in data[r].chunks_exact_mut(4).zip(&fds) {
                c.copy_from_slice(&fd.to_le_bytes());
            }
            host.fds.insert(chan);
            for &fd in &fds {
                host.fds.insert(fd);
            }
            (chan as i64, n)
        }
        Ocall::SimGetKey => {
            let r = range(a[0], 32)?;
            match host.seal_key() {
                Some(k) => {
                    data[r].copy_from_slice(&k);
                    (0, 0)
                }
                None => err(libc::ENOSYS),
            }
        }
    })
}

/// The program has had child `pid`'s end: it is no longer its child, its
/// report pipe (if any) is closed, and it no longer counts against
/// sys.max_processes.
fn child_ended(host: &Host, pid: u32) {
    if !host.children.lock().unwrap().remove(&pid) {
        return;
    }
    if let Some(fd) = host.exit_reports.lock().unwrap().remove(&pid) {
        // SAFETY: the read end of its report pipe, ours.
        unsafe { libc::close(fd) };
    }
    if let Some(count) = host.processes.get() {
        count.remove();
    }
}

/// Reap the children whose status the program already had and that have
/// ended since (so that no zombies pile up behind a program that waits for
/// each child by pid).
fn reap_reported(host: &Host) {
    host.unreaped.lock().unwrap().retain(|&pid| {
        // SAFETY: reaps our own child if it has ended; no status wanted.
        let r = unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        r == 0
    });
}

/// A wait for child `pid` answered by the status it reported before its
/// conf-run ended (`process::report_exit`), or `None` to wait for the
/// process itself: a child without a report pipe, a wait for any child or
/// a group, a wait for stops too, or a child that ended without reporting.
/// The reported child is reaped now if it is gone already, else at a later
/// spawn or wait (`reap_reported`).
fn reported_exit(host: &Host, slot: u64, pid: i32, options: i32) -> Option<Reply> {
    if pid <= 0 || options & (libc::WUNTRACED | libc::WCONTINUED) != 0 {
        return None;
    }
    let fd = *host.exit_reports.lock().unwrap().get(&(pid as u32))?;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = if options & libc::WNOHANG != 0 { 0 } else { -1 };
    // SAFETY: one pollfd on the stack.
    let n = host.blocking(slot, || unsafe { libc::poll(&mut pfd, 1, timeout) });
    if n < 0 {
        return Some(last_err());
    }
    if n == 0 {
        return Some((0, 0)); // WNOHANG: still running
    }
    let mut b = [0u8; 4];
    // SAFETY: reads at most 4 bytes into a local.
    let got = unsafe { libc::read(fd, b.as_mut_ptr() as *mut _, 4) };
    host.exit_reports.lock().unwrap().remove(&(pid as u32));
    // SAFETY: our pipe's read end, not used again.
    unsafe { libc::close(fd) };
    if got != 4 {
        return None; // it ended without reporting: wait for it
    }
    let status = u32::from_le_bytes(b);
    child_ended(host, pid as u32);
    host.unreaped.lock().unwrap().push(pid as u32);
    reap_reported(host);
    // A child's SIGCHLD comes before its wait returns: raise it now. The
    // kernel's, when the conf-run ends, comes as one more, which programs
    // take as they take coalesced ones (a wait that finds nothing).
    host.ring.header().pending_signals.fetch_or(
        1 << (libc::SIGCHLD - 1),
        std::sync::atomic::Ordering::SeqCst,
    );
    Some((pid as i64, status as u64))
}

/// Start the conf-run kept ready for the program's next process, on a
/// thread of its own: starting it (a posix_spawn, and half a megabyte of
/// manifest written to it as it reads) would otherwise delay the process
/// being started now, whose parent side goes on only when this OCALL returns.
fn start_warm(host: &Host, base: &process::ChildSpec) {
    use std::sync::atomic::Ordering;
    if host.warm.lock().unwrap().is_some() || host.warm_starting.swap(true, Ordering::AcqRel) {
        return;
    }
    let (slot, starting, base) = (host.warm.clone(), host.warm_starting.clone(), base.clone());
    let zygote = host.zygote.clone();
    let spawned = crate::sim::signals::spawn_blocked(
        std::thread::Builder::new().name("conf-warm".into()),
        move || {
            let warm = crate::host::zygote::warm_from(&zygote, &base)
                .or_else(|| process::Warm::start(&base).ok());
            *slot.lock().unwrap() = warm;
            starting.store(false, Ordering::Release);
        },
    );
    if spawned.is_err() {
        host.warm_starting.store(false, Ordering::Release);
    }
}

/// Stop conf-run (every thread) with stop signal `sig`, as the program's
/// default action asks; returns once something continues it. SIGTSTP, which
/// the sim catches to forward, gets its default disposition for the moment
/// of the raise, so that the parent (or the shell) sees the real signal.
fn stop_process(sig: i32) -> Result<Reply, Reply> {
    if ![libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&sig) {
        return Err(err(libc::EINVAL));
    }
    // SAFETY: sigaction with valid structures; kill of this process.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        let mut old: libc::sigaction = std::mem::zeroed();
        let caught = libc::sigaction(sig, &dfl, &mut old) == 0 && old.sa_sigaction != libc::SIG_DFL;
        // The stop takes effect when this thread takes the signal, on the
        // way back from kill: before the handler is put back.
        let r = libc::kill(libc::getpid(), sig);
        if caught {
            libc::sigaction(sig, &old, std::ptr::null_mut());
        }
        Ok(sys(r as i64))
    }
}

/// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) for the whole
/// conf-run process (registered on first use); ENOSYS where the kernel
/// has no such command.
fn sync_core() -> Reply {
    const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 6;
    const PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 5;
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // SAFETY: membarrier takes no pointers.
    let ok = *REGISTERED.get_or_init(|| unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
            0,
            0,
        ) == 0
    });
    if !ok {
        return err(libc::ENOSYS);
    }
    // SAFETY: as above.
    sys(unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) })
}

/// A new host fd the enclave may use from now on.
fn new_fd(host: &Host, fd: i32) -> Reply {
    if fd < 0 {
        last_err()
    } else {
        host.fds.insert(fd);
        (fd as i64, 0)
    }
}

/// Two disjoint mutable ranges of the data area.
fn split_two(
    data: &mut [u8],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> Result<(&mut [u8], &mut [u8]), Reply> {
    if a.end > b.start && b.end > a.start {
        return Err(err(libc::EINVAL));
    }
    if a.start < b.start {
        let (lo, hi) = data.split_at_mut(b.start);
        Ok((&mut lo[a], &mut hi[..b.end - b.start]))
    } else {
        let (lo, hi) = data.split_at_mut(a.start);
        let bl = b.end - b.start;
        let (bb, _) = lo[b.start..].split_at_mut(bl);
        Ok((&mut hi[..a.end - a.start], bb))
    }
}

/// The fds in the SCM_RIGHTS messages of a control buffer the enclave
/// wants to send must be its own (never conf-run's ring, channels, ...);
/// the headers must be well formed.
fn check_passed_fds(host: &Host, control: &[u8]) -> Result<(), Reply> {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let mut at = 0;
    while at + hdr <= control.len() {
        let len = u64::from_ne_bytes(control[at..at + 8].try_into().unwrap()) as usize;
        let level = i32::from_ne_bytes(control[at + 8..at + 12].try_into().unwrap());
        let ty = i32::from_ne_bytes(control[at + 12..at + 16].try_into().unwrap());
        if len < hdr || len > control.len() - at {
            return Err(err(libc::EINVAL));
        }
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            for c in control[at + hdr..at + len].chunks(4) {
                let fd = i32::from_ne_bytes(c.try_into().map_err(|_| err(libc::EINVAL))?);
                fd_arg(host, fd as u32 as u64)?;
            }
        }
        at += len.next_multiple_of(8);
    }
    Ok(())
}

/// Register fds received with SCM_RIGHTS as usable by the enclave.
fn track_passed_fds(host: &Host, msg: &libc::msghdr) {
    // SAFETY: walks the control buffer the kernel just filled.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..n {
                    host.fds.insert(p.add(i).read_unaligned());
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
}

/// A trusted file the start did not check (see conf_manifest::Unchecked)
/// is checked as the program opens it; one that changed cannot be used in
/// this run (the LibOS refuses it), so say what to do.
fn check_unchecked(host: &Host, path: &std::ffi::CStr, fd: i32) {
    let Some(u) = host.unchecked.get() else {
        return;
    };
    let Ok(path) = path.to_str() else { return };
    // SAFETY: fd was opened just now and stays open; ManuallyDrop keeps it so.
    let file = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    if u.check(path, &file) {
        return;
    }
    // Said once per file: a program may open it again and again.
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.iter().any(|p| p == path) {
        return;
    }
    said.push(path.to_string());
    // Only the stamp is known to differ (a chmod, or a sandbox that writes
    // access times back, changes it too); the LibOS checks the bytes.
    eprintln!(
        "[conf] {path} changed since conf-run measured it for an earlier start (its metadata at least): if its contents changed, this run holds the old digest and the program cannot read it. Run the command again: the next start measures it again"
    );
}

/// Chunk digests of the file open as `fd`: from the resolver's index when it
/// has them, else computed now (the LibOS checks them against the root).
fn chunk_digests_for(host: &Host, fd: i32) -> Result<std::sync::Arc<[[u8; 32]]>, Reply> {
    let path = host.path_of(fd).ok_or(err(libc::EBADF))?;
    if let Some(d) = path.to_str().and_then(|p| (host.chunks)(p)) {
        return Ok(d);
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(last_err());
    }
    let size = st.st_size as u64;
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    let mut out = Vec::with_capacity(chunk_count(size) as usize);
    for i in 0..chunk_count(size) {
        let off = i * CHUNK_SIZE;
        let len = (size - off).min(CHUNK_SIZE) as usize;
        let mut done = 0;
        while done < len {
            let n = unsafe {
                libc::pread(
                    fd,
                    buf[done..].as_mut_ptr() as *mut _,
                    len - done,
                    (off + done as u64) as i64,
                )
            };
            if n <= 0 {
                return Err(if n < 0 { last_err() } else { err(libc::EIO) });
            }
            done += n as usize;
        }
        out.push(chunk_digest(&buf[..len]));
    }
    Ok(out.into())
}

/// Write `bytes` to enclave memory at `dst` (in the heap) through
/// /proc/self/mem, which reaches pages whatever their protection. ENOSYS
/// without /proc (a chroot): the LibOS then makes the pages writable and
/// writes itself.
fn write_enclave(host: &Host, dst: u64, bytes: &[u8]) -> Result<(), Reply> {
    heap_bytes(host, dst, bytes.len() as u64)?;
    let mem = host.self_mem().map_err(|_| err(libc::ENOSYS))?;
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        // SAFETY: writes from a live slice; /proc/self/mem checks the
        // destination's mapping itself.
        let n = unsafe {
            libc::pwrite(
                mem,
                rest.as_ptr() as *const libc::c_void,
                rest.len(),
                (dst + done as u64) as i64,
            )
        };
        if n <= 0 {
            return Err(if n < 0 { last_err() } else { err(libc::EIO) });
        }
        done += n as usize;
    }
    Ok(())
}
