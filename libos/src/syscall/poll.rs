//! Waiting on many files: poll, select, epoll; eventfd and timerfd.

use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::ocall::Ocall;
use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::event::epoll::Epoll;
use crate::event::poll::{self, Entry, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI};
use crate::fs::host::{HostFile, HostKind};
use crate::fs::{oflags, OpenFile};
use crate::host::call;
use crate::process::{current, process};

fn entries_of(fds: &[(i32, i16)]) -> Vec<Entry> {
    let t = process().files.lock();
    fds.iter()
        .map(|&(fd, events)| Entry {
            file: if fd < 0 { None } else { t.get(fd).ok() },
            events,
            revents: 0,
        })
        .collect()
}

/// Run `f` with the signal mask temporarily set to `mask` (ppoll, pselect,
/// epoll_pwait): signals it unblocks interrupt the wait and are delivered
/// with the original mask restored after the handler.
fn with_mask<T>(mask: Option<u64>, f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    let Some(m) = mask else { return f() };
    let t = current();
    let old = t.sigmask.swap(
        m & !((1 << 8) | (1 << 18)),
        core::sync::atomic::Ordering::Relaxed,
    );
    let r = f();
    if r.as_ref().err() == Some(&Errno::EINTR) {
        // Deliver with the temporary mask; restore the old one on sigreturn.
        *t.saved_mask.lock() = Some(old);
    } else {
        t.sigmask.store(old, core::sync::atomic::Ordering::Relaxed);
    }
    r
}

fn do_poll(fds_ptr: u64, nfds: u64, timeout_ms: i64, mask: Option<u64>) -> Result<u64, Errno> {
    if nfds > 65536 {
        return Err(Errno::EINVAL);
    }
    let mut raw: Vec<(i32, i16)> = Vec::with_capacity(nfds as usize);
    for i in 0..nfds {
        let fd: i32 = uaccess::read(fds_ptr + i * 8)?;
        let ev: i16 = uaccess::read(fds_ptr + i * 8 + 4)?;
        raw.push((fd, ev));
    }
    let mut entries = entries_of(&raw);
    let n = with_mask(mask, || poll::poll(&mut entries, timeout_ms))?;
    for (i, e) in entries.iter().enumerate() {
        uaccess::write(fds_ptr + i as u64 * 8 + 6, &e.revents)?;
    }
    Ok(n as u64)
}

/// implements poll(2)
pub fn sys_poll(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    do_poll(a[0], a[1], a[2] as i32 as i64, None)
}

fn timeout_of(ts_ptr: u64) -> Result<i64, Errno> {
    if ts_ptr == 0 {
        return Ok(-1);
    }
    let [s, ns]: [i64; 2] = uaccess::read(ts_ptr)?;
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(Errno::EINVAL);
    }
    Ok(s.saturating_mul(1000)
        .saturating_add((ns + 999_999) / 1_000_000))
}

fn sigmask_arg(ptr: u64, size: u64) -> Result<Option<u64>, Errno> {
    if ptr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(uaccess::read(ptr)?))
}

/// implements ppoll(2)
pub fn sys_ppoll(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mask = sigmask_arg(a[3], a[4])?;
    do_poll(a[0], a[1], timeout_of(a[2])?, mask)
}

fn do_select(
    n: u64,
    rp: u64,
    wp: u64,
    ep: u64,
    timeout_ms: i64,
    mask: Option<u64>,
) -> Result<u64, Errno> {
    if n > 1024 * 64 {
        return Err(Errno::EINVAL);
    }
    let words = n.div_ceil(64) as usize;
    let read_set = |p: u64| -> Result<Vec<u64>, Errno> {
        if p == 0 {
            Ok(alloc::vec![0; words])
        } else {
            (0..words)
                .map(|i| uaccess::read::<u64>(p + i as u64 * 8))
                .collect()
        }
    };
    let (r, w, e) = (read_set(rp)?, read_set(wp)?, read_set(ep)?);
    let mut raw = Vec::new();
    for fd in 0..n as usize {
        let bit = |s: &[u64]| s[fd / 64] >> (fd % 64) & 1 != 0;
        let mut ev = 0;
        if bit(&r) {
            ev |= POLLIN;
        }
        if bit(&w) {
            ev |= POLLOUT;
        }
        if bit(&e) {
            ev |= POLLPRI;
        }
        if ev != 0 {
            raw.push((fd as i32, ev));
        }
    }
    let mut entries = entries_of(&raw);
    if entries.iter().any(|e| e.file.is_none()) {
        return Err(Errno::EBADF);
    }
    with_mask(mask, || poll::poll(&mut entries, timeout_ms))?;
    let (mut ro, mut wo, mut eo) = (
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
    );
    let mut count = 0;
    for ((fd, ev), e) in raw.iter().zip(&entries) {
        let (i, b) = (*fd as usize / 64, 1u64 << (*fd as usize % 64));
        if ev & POLLIN != 0 && e.revents & (POLLIN | POLLHUP | POLLERR) != 0 {
            ro[i] |= b;
            count += 1;
        }
        if ev & POLLOUT != 0 && e.revents & (POLLOUT | POLLERR) != 0 {
            wo[i] |= b;
            count += 1;
        }
        if ev & POLLPRI != 0 && e.revents & POLLPRI != 0 {
            eo[i] |= b;
            count += 1;
        }
    }
    for (p, v) in [(rp, &ro), (wp, &wo), (ep, &eo)] {
        if p != 0 {
            for (i, w) in v.iter().enumerate() {
                uaccess::write(p + i as u64 * 8, w)?;
            }
        }
    }
    Ok(count)
}

/// implements select(2)
pub fn sys_select(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let timeout = if a[4] == 0 {
        -1
    } else {
        let [s, us]: [i64; 2] = uaccess::read(a[4])?;
        if s < 0 || !(0..1_000_000).contains(&us) {
            return Err(Errno::EINVAL);
        }
        s * 1000 + (us + 999) / 1000
    };
    do_select(a[0], a[1], a[2], a[3], timeout, None)
}

/// implements pselect6(2)
pub fn sys_pselect6(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mask = if a[5] != 0 {
        let [p, size]: [u64; 2] = uaccess::read(a[5])?;
        sigmask_arg(p, size)?
    } else {
        None
    };
    do_select(a[0], a[1], a[2], a[3], timeout_of(a[4])?, mask)
}

fn new_epoll(flags: u64) -> Result<u64, Errno> {
    if flags & !(oflags::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let e = Epoll::create()?;
    let f = OpenFile::new(
        Arc::new(e),
        oflags::O_RDWR,
        alloc::string::String::from("anon_inode:[eventpoll]"),
    );
    process()
        .files
        .lock()
        .insert(f, flags != 0, 0)
        .map(|fd| fd as u64)
}

/// implements epoll_create(2)
pub fn sys_epoll_create(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[0] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    new_epoll(0)
}

/// implements epoll_create1(2)
pub fn sys_epoll_create1(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    new_epoll(a[0])
}

/// implements epoll_ctl(2)
pub fn sys_epoll_ctl(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (ep, target) = {
        let t = process().files.lock();
        (t.get(a[0] as i32)?, t.get(a[2] as i32)?)
    };
    let e = ep.file.as_epoll().ok_or(Errno::EINVAL)?;
    let (events, data) = if a[1] as u32 != crate::event::epoll::EPOLL_CTL_DEL {
        let ev: [u32; 3] = uaccess::read(a[3])?;
        (ev[0], ev[1] as u64 | (ev[2] as u64) << 32)
    } else {
        (0, 0)
    };
    e.ctl(a[1] as u32, a[2] as i32, &target, events, data)
        .map(|_| 0)
}

fn epoll_wait(a: [u64; 6], mask: Option<u64>) -> Result<u64, Errno> {
    if a[2] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    let ep = process().files.lock().get(a[0] as i32)?;
    let e = ep.file.as_epoll().ok_or(Errno::EINVAL)?;
    uaccess::slice_mut(a[1], a[2] as usize * 12)?;
    let evs = with_mask(mask, || e.wait(a[2] as usize, a[3] as i32))?;
    for (i, (ev, data)) in evs.iter().enumerate() {
        // struct epoll_event is packed on x86-64: 4 + 8 bytes.
        let mut rec = [0u8; 12];
        rec[..4].copy_from_slice(&ev.to_le_bytes());
        rec[4..].copy_from_slice(&data.to_le_bytes());
        uaccess::copy_out(a[1] + i as u64 * 12, &rec)?;
    }
    Ok(evs.len() as u64)
}

/// implements epoll_wait(2)
pub fn sys_epoll_wait(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    epoll_wait(a, None)
}

/// implements epoll_pwait(2)
pub fn sys_epoll_pwait(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mask = sigmask_arg(a[4], a[5])?;
    epoll_wait(a, mask)
}

/// implements epoll_pwait2(2)
pub fn sys_epoll_pwait2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mask = sigmask_arg(a[4], a[5])?;
    let t = timeout_of(a[3])?;
    epoll_wait(
        [a[0], a[1], a[2], t.clamp(-1, i32::MAX as i64) as u64, 0, 0],
        mask,
    )
}

fn install_host(fd: u64, flags: u64, name: &str) -> Result<u64, Errno> {
    if fd as i64 >= conf_abi::ocall::MAX_HOST_FD {
        crate::host::hostile(Ocall::Eventfd, "a file descriptor out of range");
    }
    let file = HostFile::new(
        crate::host::calls::HostFd(fd as i32),
        HostKind::Stream,
        alloc::string::String::new(),
    );
    let nb = if flags & oflags::O_NONBLOCK as u64 != 0 {
        oflags::O_NONBLOCK
    } else {
        0
    };
    let f = OpenFile::new(
        Arc::new(file),
        oflags::O_RDWR | nb,
        alloc::string::String::from(name),
    );
    process()
        .files
        .lock()
        .insert(f, flags & oflags::O_CLOEXEC as u64 != 0, 0)
        .map(|fd| fd as u64)
}

/// implements eventfd2(2) (a host eventfd)
pub fn sys_eventfd2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    const EFD_SEMAPHORE: u64 = 1;
    if a[1] & !(EFD_SEMAPHORE | oflags::O_NONBLOCK as u64 | oflags::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let fd = call(
        Ocall::Eventfd,
        [a[0], a[1] & !(oflags::O_CLOEXEC as u64), 0, 0, 0, 0],
    )
    .result(Ocall::Eventfd)?;
    install_host(fd, a[1], "anon_inode:[eventfd]")
}

/// implements eventfd(2)
pub fn sys_eventfd(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_eventfd2(ctx, [a[0], 0, 0, 0, 0, 0])
}

/// implements timerfd_create(2) (a host timerfd)
pub fn sys_timerfd_create(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let clock = crate::time::check_clock(a[0] as u32)?;
    if a[1] & !(oflags::O_NONBLOCK as u64 | oflags::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let fd = call(
        Ocall::TimerfdCreate,
        [clock as u64, a[1] & !(oflags::O_CLOEXEC as u64), 0, 0, 0, 0],
    )
    .result(Ocall::TimerfdCreate)?;
    install_host(fd, a[1], "anon_inode:[timerfd]")
}

fn timerfd_host(fd: u64) -> Result<crate::host::calls::HostFd, Errno> {
    let f = process().files.lock().get(fd as i32)?;
    if f.path != "anon_inode:[timerfd]" {
        return Err(Errno::EINVAL);
    }
    f.file.host_fd().ok_or(Errno::EINVAL)
}

/// implements timerfd_settime(2)
pub fn sys_timerfd_settime(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let h = timerfd_host(a[0])?;
    let new = uaccess::slice(a[2], 32)?.to_vec();
    let d = crate::host::Data::mine();
    d.put(8192, &new);
    call(
        Ocall::TimerfdSettime,
        [h.0 as u64, a[1], 8192, 8192 + 32, 0, 0],
    )
    .result(Ocall::TimerfdSettime)?;
    if a[3] != 0 {
        let mut old = [0u8; 32];
        d.get(8192 + 32, &mut old);
        uaccess::copy_out(a[3], &old)?;
    }
    Ok(0)
}

/// implements timerfd_gettime(2)
pub fn sys_timerfd_gettime(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let h = timerfd_host(a[0])?;
    call(Ocall::TimerfdGettime, [h.0 as u64, 8192, 0, 0, 0, 0]).result(Ocall::TimerfdGettime)?;
    let mut cur = [0u8; 32];
    crate::host::Data::mine().get(8192, &mut cur);
    uaccess::copy_out(a[1], &cur).map(|_| 0)
}
