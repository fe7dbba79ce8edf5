//! Typed wrappers around each OCALL, with the reply checks each needs.
//!
//! Layout of the data area per call follows the doc comments of
//! `conf_abi::ocall::Ocall`. Paths go first (offset 0), output buffers after.

use conf_abi::ocall::{Ocall, MAX_HOST_FD, SLOT_DATA_SIZE};
use conf_abi::Errno;

use super::{call, hostile, Data};

/// Where output buffers start when a path is also passed.
const OUT: u64 = 8192;
/// Longest path accepted (Linux PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// Largest transfer one call moves.
pub const MAX_IO: usize = (SLOT_DATA_SIZE - OUT) as usize;

/// A file descriptor in the host's table (never shown to the program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFd(pub i32);

fn put_path(d: &Data, path: &[u8], at: u64) -> Result<(), Errno> {
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    d.put(at, path);
    Ok(())
}

fn fd_result(nr: Ocall, r: super::Reply) -> Result<HostFd, Errno> {
    let v = r.result(nr)?;
    if v as i64 >= MAX_HOST_FD {
        hostile(nr, "a file descriptor out of range");
    }
    Ok(HostFd(v as i32))
}

/// A byte count that must not exceed `asked`.
fn len_result(nr: Ocall, r: super::Reply, asked: usize) -> Result<usize, Errno> {
    let v = r.result(nr)?;
    if v > asked as u64 {
        hostile(nr, "more bytes than were asked for");
    }
    Ok(v as usize)
}

fn zero_result(nr: Ocall, r: super::Reply) -> Result<(), Errno> {
    match r.result(nr)? {
        0 => Ok(()),
        _ => hostile(nr, "a non-zero success value"),
    }
}

/// write(2) on a host fd; moves at most [`MAX_IO`] bytes.
pub fn write(fd: HostFd, bytes: &[u8]) -> Result<usize, Errno> {
    let n = bytes.len().min(MAX_IO);
    let d = Data::mine();
    d.put(OUT, &bytes[..n]);
    len_result(
        Ocall::Write,
        call(Ocall::Write, [fd.0 as u64, OUT, n as u64, 0, 0, 0]),
        n,
    )
}

/// Write all of `bytes` to host fd `fd`, ignoring errors (used for logs).
pub fn write_all_host(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match write(HostFd(fd), bytes) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

/// read(2) into `buf` (at most [`MAX_IO`] bytes).
pub fn read(fd: HostFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let n = buf.len().min(MAX_IO);
    let got = len_result(
        Ocall::Read,
        call(Ocall::Read, [fd.0 as u64, OUT, n as u64, 0, 0, 0]),
        n,
    )?;
    Data::mine().get(OUT, &mut buf[..got]);
    Ok(got)
}

pub fn pread(fd: HostFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let n = buf.len().min(MAX_IO);
    let got = len_result(
        Ocall::Pread,
        call(Ocall::Pread, [fd.0 as u64, OUT, n as u64, offset, 0, 0]),
        n,
    )?;
    Data::mine().get(OUT, &mut buf[..got]);
    Ok(got)
}

pub fn pwrite(fd: HostFd, bytes: &[u8], offset: u64) -> Result<usize, Errno> {
    let n = bytes.len().min(MAX_IO);
    Data::mine().put(OUT, &bytes[..n]);
    len_result(
        Ocall::Pwrite,
        call(Ocall::Pwrite, [fd.0 as u64, OUT, n as u64, offset, 0, 0]),
        n,
    )
}

/// Read exactly `buf.len()` bytes at `offset`, or fail with EIO on a short file.
pub fn pread_exact(fd: HostFd, buf: &mut [u8], mut offset: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = pread(fd, &mut buf[done..], offset)?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n;
        offset += n as u64;
    }
    Ok(())
}

pub fn open(path: &[u8], flags: i32, mode: u32) -> Result<HostFd, Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    fd_result(
        Ocall::Open,
        call(
            Ocall::Open,
            [0, path.len() as u64, flags as u32 as u64, mode as u64, 0, 0],
        ),
    )
}

pub fn close(fd: HostFd) {
    let _ = call(Ocall::Close, [fd.0 as u64, 0, 0, 0, 0, 0]);
}

/// Linux's `struct stat` (x86-64), as the host's kernel fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelStat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub _pad0: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub _unused: [i64; 3],
}

const STAT_SIZE: usize = core::mem::size_of::<KernelStat>();
const _: () = assert!(STAT_SIZE == 144);

impl KernelStat {
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: plain integers, no padding beyond the explicit fields.
        unsafe { core::slice::from_raw_parts(self as *const _ as *const u8, STAT_SIZE) }
    }
}

fn read_stat(d: &Data, at: u64) -> KernelStat {
    let mut st = KernelStat::default();
    // SAFETY: KernelStat is plain integers; any bit pattern is valid.
    let bytes = unsafe { core::slice::from_raw_parts_mut(&mut st as *mut _ as *mut u8, STAT_SIZE) };
    d.get(at, bytes);
    st
}

pub fn fstat(fd: HostFd) -> Result<KernelStat, Errno> {
    zero_result(
        Ocall::Fstat,
        call(Ocall::Fstat, [fd.0 as u64, OUT, 0, 0, 0, 0]),
    )?;
    Ok(read_stat(&Data::mine(), OUT))
}

pub fn stat(path: &[u8], nofollow: bool) -> Result<KernelStat, Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Stat,
        call(
            Ocall::Stat,
            [0, path.len() as u64, OUT, nofollow as u64, 0, 0],
        ),
    )?;
    Ok(read_stat(&d, OUT))
}

pub fn lseek(fd: HostFd, off: i64, whence: u32) -> Result<u64, Errno> {
    let v = call(
        Ocall::Lseek,
        [fd.0 as u64, off as u64, whence as u64, 0, 0, 0],
    )
    .result(Ocall::Lseek)?;
    Ok(v)
}

/// getdents64 into `buf`; the caller parses the records defensively.
pub fn getdents64(fd: HostFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let n = buf.len().min(MAX_IO);
    let got = len_result(
        Ocall::Getdents64,
        call(Ocall::Getdents64, [fd.0 as u64, OUT, n as u64, 0, 0, 0]),
        n,
    )?;
    Data::mine().get(OUT, &mut buf[..got]);
    Ok(got)
}

pub fn readlink(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    let n = buf.len().min(PATH_MAX);
    let got = len_result(
        Ocall::Readlink,
        call(Ocall::Readlink, [0, path.len() as u64, OUT, n as u64, 0, 0]),
        n,
    )?;
    d.get(OUT, &mut buf[..got]);
    Ok(got)
}

/// A terminal ioctl whose argument is `arg_len` bytes in and out.
pub fn ioctl(fd: HostFd, request: u64, arg: &mut [u8]) -> Result<u64, Errno> {
    let d = Data::mine();
    d.put(OUT, arg);
    let v = call(
        Ocall::Ioctl,
        [fd.0 as u64, request, OUT, arg.len() as u64, 0, 0],
    )
    .result(Ocall::Ioctl)?;
    d.get(OUT, arg);
    Ok(v)
}

pub fn fcntl(fd: HostFd, cmd: u32, arg: u64) -> Result<u64, Errno> {
    call(Ocall::Fcntl, [fd.0 as u64, cmd as u64, arg, 0, 0, 0]).result(Ocall::Fcntl)
}

pub fn pipe2(flags: i32) -> Result<(HostFd, HostFd), Errno> {
    let r = call(Ocall::Pipe2, [flags as u32 as u64, 0, 0, 0, 0, 0]);
    zero_result(Ocall::Pipe2, r)?;
    let (a, b) = ((r.aux & 0xffff_ffff) as i64, (r.aux >> 32) as i64);
    if a >= MAX_HOST_FD || b >= MAX_HOST_FD || a == b {
        hostile(Ocall::Pipe2, "pipe descriptors out of range");
    }
    Ok((HostFd(a as i32), HostFd(b as i32)))
}

/// Change the host page protection of enclave pages.
pub fn mprotect(addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
    zero_result(
        Ocall::Mprotect,
        call(Ocall::Mprotect, [addr, len, prot as u64, 0, 0, 0]),
    )
}

/// How the host made the pages of a lazy mapping (`lazy_pages`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unfilled {
    /// Inaccessible until filled: a touch is a page fault.
    Inaccessible,
    /// Absent, with their final protection: a touch is a bus fault, and a
    /// fill changes no protection.
    HostFilled,
}

/// Fill unfilled pages at `addr` with `bytes`, all at once for every other
/// thread (see `Ocall::FillPages`); inaccessible ones get `prot`. Pages
/// the host fills that are filled already are left as they are.
pub fn fill_pages(addr: u64, bytes: &[u8], prot: u32, unfilled: Unfilled) -> Result<(), Errno> {
    fill_some_pages(addr, bytes, prot, unfilled, 0)
}

/// Put the pages of `bytes` whose bits are set in `mask` (bit i: page i;
/// 0: all of them) into pages at `addr` (see `Ocall::FillPages`, a5),
/// leaving the others as they are.
pub fn fill_some_pages(
    addr: u64,
    bytes: &[u8],
    prot: u32,
    unfilled: Unfilled,
    mask: u64,
) -> Result<(), Errno> {
    let mode = match unfilled {
        Unfilled::Inaccessible => 0,
        Unfilled::HostFilled => 1,
    };
    fill_pages_call(addr, bytes, prot, mode, mask)
}

/// Put `bytes` into pages the host fills at `addr`, over those filled
/// already too (a forked child taking its parent's pages).
pub fn replace_pages(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    fill_pages_call(addr, bytes, 0, 2, 0)
}

fn fill_pages_call(addr: u64, bytes: &[u8], prot: u32, mode: u64, mask: u64) -> Result<(), Errno> {
    let args = [
        addr,
        bytes.len() as u64,
        bytes.as_ptr() as u64,
        prot as u64,
        mode,
        mask,
    ];
    zero_result(Ocall::FillPages, call(Ocall::FillPages, args))
}

/// Make `[addr, addr + len)` pages that stay empty until `fill_pages`
/// (see `Ocall::LazyPages`): how the host did it.
pub fn lazy_pages(addr: u64, len: u64, prot: u32) -> Result<Unfilled, Errno> {
    let r = call(Ocall::LazyPages, [addr, len, prot as u64, 0, 0, 0]);
    match r.result(Ocall::LazyPages)? {
        0 => Ok(Unfilled::Inaccessible),
        1 => Ok(Unfilled::HostFilled),
        _ => hostile(Ocall::LazyPages, "an answer other than 0 or 1"),
    }
}

/// Write `bytes` into program code at `addr` without changing the pages'
/// protection (see `Ocall::PokeCode`).
pub fn poke_code(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    if bytes.len() > 64 {
        return Err(Errno::EINVAL);
    }
    Data::mine().put(OUT, bytes);
    zero_result(
        Ocall::PokeCode,
        call(Ocall::PokeCode, [addr, bytes.len() as u64, OUT, 0, 0, 0]),
    )
}

/// CPUID `leaf`/`subleaf` as the host CPU answers it (untrusted).
pub fn cpuid(leaf: u32, subleaf: u32) -> Result<[u32; 4], Errno> {
    zero_result(
        Ocall::Cpuid,
        call(Ocall::Cpuid, [leaf as u64, subleaf as u64, OUT, 0, 0, 0]),
    )?;
    let mut b = [0u8; 16];
    Data::mine().get(OUT, &mut b);
    let word = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    Ok([word(0), word(1), word(2), word(3)])
}

/// The fill hints for a program about to start (at most `max`).
pub fn get_fill_hints(max: usize) -> Result<alloc::vec::Vec<conf_abi::ocall::FillHint>, Errno> {
    use conf_abi::ocall::FillHint;
    let max = max.min(MAX_IO / FillHint::SIZE);
    let n =
        call(Ocall::FillHints, [0, OUT, max as u64, 0, 0, 0]).result(Ocall::FillHints)? as usize;
    if n > max {
        hostile(Ocall::FillHints, "more hints than were asked for");
    }
    let d = Data::mine();
    let mut out = alloc::vec::Vec::with_capacity(n);
    for i in 0..n {
        let mut b = [0u8; FillHint::SIZE];
        d.get(OUT + (i * FillHint::SIZE) as u64, &mut b);
        out.push(FillHint::from_bytes(b));
    }
    Ok(out)
}

/// Is this process (started ahead of need) still without its work?
pub fn still_waiting_for_work() -> bool {
    matches!(
        call(Ocall::FillHints, [2, OUT, 0, 0, 0, 0]).result(Ocall::FillHints),
        Ok(1)
    )
}

/// Publish which chunks this process's program loaded.
pub fn put_fill_hints(hints: &[conf_abi::ocall::FillHint]) -> Result<(), Errno> {
    use conf_abi::ocall::FillHint;
    let n = hints.len().min(MAX_IO / FillHint::SIZE);
    let d = Data::mine();
    for (i, h) in hints[..n].iter().enumerate() {
        d.put(OUT + (i * FillHint::SIZE) as u64, &h.to_bytes());
    }
    zero_result(
        Ocall::FillHints,
        call(Ocall::FillHints, [1, OUT, n as u64, 0, 0, 0]),
    )
}

/// Have CPUID in the enclave raise #UD from now on, as on SGX.
pub fn trap_cpuid() -> Result<(), Errno> {
    zero_result(Ocall::TrapCpuid, call(Ocall::TrapCpuid, [0; 6]))
}

/// Have every enclave thread serialize its instruction fetch before it runs
/// program code again (after code was changed under running threads).
pub fn sync_core() -> Result<(), Errno> {
    zero_result(Ocall::SyncCore, call(Ocall::SyncCore, [0; 6]))
}

/// Return enclave pages to the host; they read as zero afterwards and get
/// protection `prot`. `ordinary`: pages made with `lazy_pages` among them
/// become ordinary pages again (else they stay empty until filled).
pub fn decommit(addr: u64, len: u64, prot: u32, ordinary: bool) -> Result<(), Errno> {
    zero_result(
        Ocall::Decommit,
        call(
            Ocall::Decommit,
            [addr, len, prot as u64, ordinary as u64, 0, 0],
        ),
    )
}

/// clock_gettime on the host: (seconds, nanoseconds).
pub fn clock_gettime(clock: u32) -> Result<(i64, i64), Errno> {
    zero_result(
        Ocall::ClockGettime,
        call(Ocall::ClockGettime, [clock as u64, OUT, 0, 0, 0, 0]),
    )?;
    let d = Data::mine();
    let (s, ns) = (d.get_u64(OUT) as i64, d.get_u64(OUT + 8) as i64);
    if !(0..1_000_000_000).contains(&ns) {
        hostile(Ocall::ClockGettime, "nanoseconds out of range");
    }
    Ok((s, ns))
}

/// Sleep on the host for `ns` nanoseconds.
pub fn sleep(ns: u64) -> Result<(), Errno> {
    zero_result(Ocall::Sleep, call(Ocall::Sleep, [ns, 0, 0, 0, 0, 0]))
}

pub fn mkdir(path: &[u8], mode: u32) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Mkdir,
        call(Ocall::Mkdir, [0, path.len() as u64, mode as u64, 0, 0, 0]),
    )
}

pub fn unlink(path: &[u8], flags: u32) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Unlink,
        call(Ocall::Unlink, [0, path.len() as u64, flags as u64, 0, 0, 0]),
    )
}

fn two_paths(nr: Ocall, a: &[u8], b: &[u8]) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, a, 0)?;
    put_path(&d, b, PATH_MAX as u64)?;
    zero_result(
        nr,
        call(
            nr,
            [0, a.len() as u64, PATH_MAX as u64, b.len() as u64, 0, 0],
        ),
    )
}

pub fn rename(from: &[u8], to: &[u8]) -> Result<(), Errno> {
    two_paths(Ocall::Rename, from, to)
}

pub fn symlink(target: &[u8], path: &[u8]) -> Result<(), Errno> {
    two_paths(Ocall::Symlink, target, path)
}

pub fn link(from: &[u8], to: &[u8]) -> Result<(), Errno> {
    two_paths(Ocall::Link, from, to)
}

pub fn ftruncate(fd: HostFd, len: u64) -> Result<(), Errno> {
    zero_result(
        Ocall::Ftruncate,
        call(Ocall::Ftruncate, [fd.0 as u64, len, 0, 0, 0, 0]),
    )
}

pub fn truncate(path: &[u8], len: u64) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Truncate,
        call(Ocall::Truncate, [0, path.len() as u64, len, 0, 0, 0]),
    )
}

pub fn fsync(fd: HostFd, datasync: bool) -> Result<(), Errno> {
    zero_result(
        Ocall::Fsync,
        call(Ocall::Fsync, [fd.0 as u64, datasync as u64, 0, 0, 0, 0]),
    )
}

pub fn fchmod(fd: HostFd, mode: u32) -> Result<(), Errno> {
    zero_result(
        Ocall::Fchmod,
        call(Ocall::Fchmod, [fd.0 as u64, mode as u64, 0, 0, 0, 0]),
    )
}

pub fn chmod(path: &[u8], mode: u32) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Chmod,
        call(Ocall::Chmod, [0, path.len() as u64, mode as u64, 0, 0, 0]),
    )
}

/// utimensat on a path (fd < 0) or an fd (empty path); `times` is two timespecs.
pub fn utimens(path: &[u8], fd: Option<HostFd>, times: &[u8; 32], flags: u32) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    d.put(OUT, times);
    let fdv = fd.map(|f| f.0 as i64).unwrap_or(-1);
    zero_result(
        Ocall::Utimens,
        call(
            Ocall::Utimens,
            [0, path.len() as u64, OUT, flags as u64, fdv as u64, 0],
        ),
    )
}

pub fn statfs(path: &[u8], out: &mut [u8; 120]) -> Result<(), Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    zero_result(
        Ocall::Statfs,
        call(Ocall::Statfs, [0, path.len() as u64, OUT, 0, 0, 0]),
    )?;
    d.get(OUT, out);
    Ok(())
}

pub fn flock(fd: HostFd, op: u32) -> Result<(), Errno> {
    zero_result(
        Ocall::Flock,
        call(Ocall::Flock, [fd.0 as u64, op as u64, 0, 0, 0, 0]),
    )
}

/// poll(2) over host fds: `fds` holds (fd, events) pairs; revents are written back.
pub fn poll(fds: &mut [(HostFd, i16, i16)], timeout_ms: i32) -> Result<usize, Errno> {
    let d = Data::mine();
    if fds.len() * 8 > MAX_IO {
        return Err(Errno::EINVAL);
    }
    for (i, (fd, ev, _)) in fds.iter().enumerate() {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&fd.0.to_le_bytes());
        rec[4..6].copy_from_slice(&ev.to_le_bytes());
        d.put(OUT + i as u64 * 8, &rec);
    }
    let n = len_result(
        Ocall::Poll,
        call(
            Ocall::Poll,
            [OUT, fds.len() as u64, timeout_ms as i64 as u64, 0, 0, 0],
        ),
        fds.len(),
    )?;
    for (i, f) in fds.iter_mut().enumerate() {
        let mut rec = [0u8; 8];
        d.get(OUT + i as u64 * 8, &mut rec);
        f.2 = i16::from_le_bytes([rec[6], rec[7]]);
    }
    Ok(n)
}

/// Chunk digests `first..first+out.len()` of the trusted file open as `fd`.
pub fn chunk_digests(fd: HostFd, first: u64, out: &mut [[u8; 32]]) -> Result<(), Errno> {
    let max = MAX_IO / 32;
    let mut done = 0;
    while done < out.len() {
        let n = (out.len() - done).min(max);
        let r = call(
            Ocall::ChunkDigests,
            [fd.0 as u64, first + done as u64, n as u64, OUT, 0, 0],
        );
        zero_result(Ocall::ChunkDigests, r)?;
        let d = Data::mine();
        for (i, dig) in out[done..done + n].iter_mut().enumerate() {
            d.get(OUT + i as u64 * 32, dig);
        }
        done += n;
    }
    Ok(())
}

pub fn spawn_thread(slot: u64) -> Result<(), Errno> {
    zero_result(
        Ocall::SpawnThread,
        call(Ocall::SpawnThread, [slot, 0, 0, 0, 0, 0]),
    )
}

/// Sleep until woken (wake sequence differs from `seq`) or `timeout_ns` passes.
pub fn thread_sleep(seq: u32, timeout_ns: u64) -> Result<(), Errno> {
    zero_result(
        Ocall::ThreadSleep,
        call(Ocall::ThreadSleep, [seq as u64, timeout_ns, 0, 0, 0, 0]),
    )
}

pub fn thread_wake(slot: u64) -> Result<(), Errno> {
    zero_result(
        Ocall::ThreadWake,
        call(Ocall::ThreadWake, [slot, 0, 0, 0, 0, 0]),
    )
}

pub fn kill_host(sig: u32) -> Result<(), Errno> {
    zero_result(Ocall::Kill, call(Ocall::Kill, [sig as u64, 0, 0, 0, 0, 0]))
}

pub fn sched_yield() {
    let _ = call(Ocall::Yield, [0; 6]);
}

/// Interrupt the thread on `slot` (wake it, EINTR its blocking host call).
pub fn kick(slot: u64) {
    let _ = call(Ocall::Kick, [slot, 0, 0, 0, 0, 0]);
}

/// Ask to be kicked at monotonic `deadline_ns` (0 cancels).
pub fn alarm(deadline_ns: u64) {
    let _ = call(Ocall::Alarm, [deadline_ns, 0, 0, 0, 0, 0]);
}

/// The host's realpath of `path` (a hint, see `Ocall::Realpath`).
pub fn realpath(path: &[u8]) -> Result<alloc::vec::Vec<u8>, Errno> {
    let d = Data::mine();
    put_path(&d, path, 0)?;
    let n = len_result(
        Ocall::Realpath,
        call(
            Ocall::Realpath,
            [0, path.len() as u64, OUT, PATH_MAX as u64, 0, 0],
        ),
        PATH_MAX,
    )?;
    let mut b = alloc::vec![0u8; n];
    d.get(OUT, &mut b);
    Ok(b)
}

/// Start a child enclave process inheriting `fds`; (child pid, channel fd).
pub fn spawn_process(fds: &[HostFd]) -> Result<(u32, HostFd), Errno> {
    let d = Data::mine();
    if fds.len() * 4 > MAX_IO {
        return Err(Errno::EMFILE);
    }
    for (i, f) in fds.iter().enumerate() {
        d.put(OUT + i as u64 * 4, &f.0.to_le_bytes());
    }
    let r = call(Ocall::SpawnProcess, [OUT, fds.len() as u64, 0, 0, 0, 0]);
    let pid = r.result(Ocall::SpawnProcess)?;
    if pid == 0 || pid > i32::MAX as u64 || r.aux as i64 >= MAX_HOST_FD {
        hostile(Ocall::SpawnProcess, "a pid or channel fd out of range");
    }
    Ok((pid as u32, HostFd(r.aux as i32)))
}

/// waitpid on a child enclave process: (pid, wait status).
pub fn wait(pid: i32, options: i32) -> Result<(i32, i32), Errno> {
    let r = call(
        Ocall::Wait,
        [pid as i64 as u64, options as u32 as u64, 0, 0, 0, 0],
    );
    let got = r.result(Ocall::Wait)?;
    if got > i32::MAX as u64 {
        hostile(Ocall::Wait, "a pid out of range");
    }
    Ok((got as i32, r.aux as u32 as i32))
}

/// Send `sig` to enclave process `pid` (0: this one; -1: the parent).
pub fn kill_process(pid: i32, sig: u32) -> Result<(), Errno> {
    zero_result(
        Ocall::Kill,
        call(Ocall::Kill, [sig as u64, pid as i64 as u64, 0, 0, 0, 0]),
    )
}

/// Stop this process (all its threads) as stop signal `sig` does; returns
/// when it is continued.
pub fn stop_process(sig: u32) -> Result<(), Errno> {
    zero_result(
        Ocall::StopProcess,
        call(Ocall::StopProcess, [sig as u64, 0, 0, 0, 0, 0]),
    )
}

/// A child process's start: (state channel, the host fds inherited from
/// the parent, in the parent's order).
pub fn child_start() -> Result<(HostFd, alloc::vec::Vec<HostFd>), Errno> {
    let max = MAX_IO / 4;
    let r = call(Ocall::ChildStart, [OUT, max as u64, 0, 0, 0, 0]);
    let chan = r.result(Ocall::ChildStart)?;
    if chan as i64 >= MAX_HOST_FD || r.aux > max as u64 {
        hostile(Ocall::ChildStart, "a channel fd or fd count out of range");
    }
    let d = Data::mine();
    let mut fds = alloc::vec::Vec::with_capacity(r.aux as usize);
    for i in 0..r.aux {
        let mut b = [0u8; 4];
        d.get(OUT + i * 4, &mut b);
        let fd = i32::from_le_bytes(b);
        if fd < 0 || fd as i64 >= MAX_HOST_FD {
            hostile(Ocall::ChildStart, "an inherited fd out of range");
        }
        fds.push(HostFd(fd));
    }
    Ok((HostFd(chan as i32), fds))
}

/// The sealing key of this enclave (sim: emulated EGETKEY).
pub fn seal_key() -> Result<[u8; 32], Errno> {
    zero_result(
        Ocall::SimGetKey,
        call(Ocall::SimGetKey, [OUT, 0, 0, 0, 0, 0]),
    )?;
    let mut k = [0u8; 32];
    Data::mine().get(OUT, &mut k);
    Ok(k)
}

/// Write all of `bytes` to a host fd.
pub fn write_all(fd: HostFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match write(fd, bytes) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read exactly `buf.len()` bytes from a host fd.
pub fn read_exact(fd: HostFd, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        match read(fd, &mut buf[done..]) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// mmap(MAP_SHARED) of a host file outside ELRANGE: (mapping id, address).
pub fn map_shared(fd: HostFd, len: u64, off: u64, prot: u32, at: u64) -> Result<(u64, u64), Errno> {
    let r = call(
        Ocall::MapShared,
        [fd.0 as u64, len, off, prot as u64, at, 0],
    );
    let id = r.result(Ocall::MapShared)?;
    Ok((id, r.aux))
}

/// A host memfd of `len` bytes to back a shared anonymous mapping.
pub fn shared_anon(len: u64) -> Result<HostFd, Errno> {
    let r = call(Ocall::SharedAnon, [len, 0, 0, 0, 0, 0]);
    let fd = r.result(Ocall::SharedAnon)?;
    i32::try_from(fd)
        .map(HostFd)
        .or_else(|_| hostile(Ocall::SharedAnon, "an fd out of range"))
}

pub fn unmap_shared(id: u64) {
    let _ = call(Ocall::UnmapShared, [id, 0, 0, 0, 0, 0]);
}

/// futex on a shared mapping (other processes may wait or wake there).
pub fn futex_shared(
    id: u64,
    off: u64,
    op: u32,
    val: u32,
    timeout_ns: u64,
    bitset: u32,
) -> Result<u64, Errno> {
    call(
        Ocall::FutexShared,
        [id, off, op as u64, val as u64, timeout_ns, bitset as u64],
    )
    .result(Ocall::FutexShared)
}
