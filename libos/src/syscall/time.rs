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
        let res: [i64; 2] = if matches!(a[0], 5 | 6) { [0, 4_000_000] } else { [0, 1] };
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
    Ok((s as u64).saturating_mul(1_000_000_000).saturating_add(ns as u64))
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
