//! Time system calls.

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::time as t;

/// implements clock_gettime(2)
pub fn sys_clock_gettime(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (s, ns) = t::clock_gettime(a[0] as u32)?;
    uaccess::write(a[1], &[s, ns]).map(|_| 0)
}

/// implements clock_getres(2)
pub fn sys_clock_getres(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    t::check_clock(a[0] as u32)?;
    if a[1] != 0 {
        let res: [i64; 2] = if matches!(a[0], 5 | 6) {
            [0, 4_000_000]
        } else {
            [0, 1]
        };
        uaccess::write(a[1], &res)?;
    }
    Ok(0)
}

/// implements gettimeofday(2)
pub fn sys_gettimeofday(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (s, ns) = t::clock_gettime(0)?;
    if a[0] != 0 {
        uaccess::write(a[0], &[s, ns / 1000])?;
    }
    if a[1] != 0 {
        uaccess::write(a[1], &[0u32, 0u32])?;
    }
    Ok(0)
}

/// implements time(2)
pub fn sys_time(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (s, _) = t::clock_gettime(0)?;
    if a[0] != 0 {
        uaccess::write(a[0], &s)?;
    }
    Ok(s as u64)
}

fn read_timespec(addr: u64) -> Result<u64, Errno> {
    let [s, ns]: [i64; 2] = uaccess::read(addr)?;
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ns as u64))
}

/// implements nanosleep(2)
pub fn sys_nanosleep(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let ns = read_timespec(a[0])?;
    t::sleep_ns(ns)?;
    Ok(0)
}

const TIMER_ABSTIME: u64 = 1;

/// implements clock_nanosleep(2)
pub fn sys_clock_nanosleep(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    t::check_clock(a[0] as u32)?;
    let mut ns = read_timespec(a[2])?;
    if a[1] & TIMER_ABSTIME != 0 {
        let (s, n) = t::clock_gettime(a[0] as u32)?;
        let now = (s as u64) * 1_000_000_000 + n as u64;
        ns = ns.saturating_sub(now);
    }
    t::sleep_ns(ns)?;
    Ok(0)
}

use crate::time::timers::{self, Notify, Timer};

fn read_timeval(addr: u64) -> Result<u64, Errno> {
    let [s, us]: [i64; 2] = uaccess::read(addr)?;
    if s < 0 || !(0..1_000_000).contains(&us) {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(us as u64 * 1000))
}

fn write_itimerval(addr: u64, rem: u64, interval: u64) -> Result<(), Errno> {
    let tv = |ns: u64| {
        [
            (ns / 1_000_000_000) as i64,
            ((ns % 1_000_000_000) / 1000) as i64,
        ]
    };
    let [a, b] = tv(interval);
    let [c, d] = tv(rem);
    uaccess::write(addr, &[a, b, c, d])
}

const ITIMER_SIGNALS: [u32; 3] = [
    crate::signal::SIGALRM,
    crate::signal::SIGVTALRM,
    crate::signal::SIGPROF,
];

/// implements setitimer(2); ITIMER_VIRTUAL and ITIMER_PROF count wall time.
pub fn sys_setitimer(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let which = a[0] as usize;
    if which >= timers::ITIMERS {
        return Err(Errno::EINVAL);
    }
    timers::ensure_itimer(which, ITIMER_SIGNALS[which]);
    let (interval, value) = if a[1] != 0 {
        (read_timeval(a[1])?, read_timeval(a[1] + 16)?)
    } else {
        (0, 0)
    };
    let deadline = if value == 0 {
        0
    } else {
        crate::time::monotonic_ns() + value
    };
    let (rem, old_int) = timers::set(which, deadline, interval)?;
    if a[2] != 0 {
        write_itimerval(a[2], rem, old_int)?;
    }
    Ok(0)
}

/// implements getitimer(2)
pub fn sys_getitimer(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let which = a[0] as usize;
    if which >= timers::ITIMERS {
        return Err(Errno::EINVAL);
    }
    timers::ensure_itimer(which, ITIMER_SIGNALS[which]);
    let (rem, int) = timers::get(which)?;
    write_itimerval(a[1], rem, int).map(|_| 0)
}

/// implements alarm(2)
pub fn sys_alarm(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    timers::ensure_itimer(0, crate::signal::SIGALRM);
    let deadline = if a[0] == 0 {
        0
    } else {
        crate::time::monotonic_ns() + a[0] * 1_000_000_000
    };
    let (rem, _) = timers::set(0, deadline, 0)?;
    Ok(rem.div_ceil(1_000_000_000))
}

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;

/// implements timer_create(2) (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID;
/// glibc builds SIGEV_THREAD on SIGEV_THREAD_ID).
pub fn sys_timer_create(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let clock = crate::time::check_clock(a[0] as u32)?;
    let (signo, notify, value) = if a[1] == 0 {
        (crate::signal::SIGALRM, Notify::Process, 0)
    } else {
        let ev: [u64; 3] = uaccess::read(a[1])?;
        let value = ev[0];
        let signo = ev[1] as u32;
        let how = (ev[1] >> 32) as i32;
        let notify = match how {
            SIGEV_SIGNAL => Notify::Process,
            SIGEV_NONE => Notify::None,
            SIGEV_THREAD_ID => Notify::Thread(ev[2] as u32),
            _ => return Err(Errno::EINVAL),
        };
        if how != SIGEV_NONE && !(1..=64).contains(&signo) {
            return Err(Errno::EINVAL);
        }
        (signo, notify, value)
    };
    let id = timers::create(Timer {
        deadline: 0,
        interval: 0,
        signo,
        notify,
        value,
        overrun: 0,
        clock,
    })?;
    uaccess::write(a[2], &(id as i32))?;
    Ok(0)
}

fn ns_of(ts: [i64; 2]) -> Result<u64, Errno> {
    if ts[0] < 0 || !(0..1_000_000_000).contains(&ts[1]) {
        return Err(Errno::EINVAL);
    }
    Ok(ts[0] as u64 * 1_000_000_000 + ts[1] as u64)
}

fn ts_of(ns: u64) -> [i64; 2] {
    [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]
}

/// implements timer_settime(2)
pub fn sys_timer_settime(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let id = a[0] as usize;
    let clock = timers::clock_of(id)?;
    let v: [i64; 4] = uaccess::read(a[2])?;
    let interval = ns_of([v[0], v[1]])?;
    let value = ns_of([v[2], v[3]])?;
    let deadline = if value == 0 {
        0
    } else if a[1] & TIMER_ABSTIME != 0 {
        // An absolute time on the timer's clock, made monotonic.
        let (s, ns) = t::clock_gettime(clock)?;
        let now_clock = s as u64 * 1_000_000_000 + ns as u64;
        crate::time::monotonic_ns() + value.saturating_sub(now_clock).max(1)
    } else {
        crate::time::monotonic_ns() + value
    };
    let (rem, int) = timers::set(id + timers::ITIMERS, deadline, interval)?;
    if a[3] != 0 {
        let [a1, b1] = ts_of(int);
        let [c1, d1] = ts_of(rem);
        uaccess::write(a[3], &[a1, b1, c1, d1])?;
    }
    Ok(0)
}

/// implements timer_gettime(2)
pub fn sys_timer_gettime(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (rem, int) = timers::get(a[0] as usize + timers::ITIMERS)?;
    let [a1, b1] = ts_of(int);
    let [c1, d1] = ts_of(rem);
    uaccess::write(a[1], &[a1, b1, c1, d1]).map(|_| 0)
}

/// implements timer_getoverrun(2)
pub fn sys_timer_getoverrun(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    timers::overrun(a[0] as usize).map(|o| o as u64)
}

/// implements timer_delete(2)
pub fn sys_timer_delete(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    timers::delete(a[0] as usize).map(|_| 0)
}
