//! Clocks and sleeping.
//!
//! Time comes from the host (SGX has no trusted clock): values are checked
//! for sanity, and monotonic clocks are kept from going backwards whatever
//! the host says.

pub mod timers;
mod tsc;

use core::sync::atomic::{AtomicI64, Ordering};

use conf_abi::Errno;

use crate::host::calls as hc;

pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
pub const CLOCK_MONOTONIC_RAW: u32 = 4;
pub const CLOCK_REALTIME_COARSE: u32 = 5;
pub const CLOCK_MONOTONIC_COARSE: u32 = 6;
pub const CLOCK_BOOTTIME: u32 = 7;

/// Clock ids the program may use, mapped to what the host is asked for.
pub fn check_clock(id: u32) -> Result<u32, Errno> {
    match id as i32 {
        0..=7 => Ok(id),
        // CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, CLOCK_TAI
        8 => Ok(CLOCK_REALTIME),
        9 => Ok(CLOCK_BOOTTIME),
        11 => Ok(CLOCK_REALTIME),
        // Per-process/thread CPU clocks (pthread_getcpuclockid): the thread's.
        x if x < 0 => Ok(CLOCK_THREAD_CPUTIME_ID),
        _ => Err(Errno::EINVAL),
    }
}

/// Last monotonic value handed out, so the host cannot make time go back.
static LAST_MONO: AtomicI64 = AtomicI64::new(0);

pub fn clock_gettime(id: u32) -> Result<(i64, i64), Errno> {
    let host_id = check_clock(id)?;
    if let Some((mono, real)) = tsc::now() {
        let v = match host_id {
            CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Some(real),
            CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
                Some(mono)
            }
            _ => None,
        };
        if let Some(v) = v {
            let v = if host_id == CLOCK_REALTIME || host_id == CLOCK_REALTIME_COARSE {
                v
            } else {
                LAST_MONO.fetch_max(v, Ordering::Relaxed).max(v)
            };
            return Ok((v / 1_000_000_000, v % 1_000_000_000));
        }
    }
    let (s, ns) = hc::clock_gettime(host_id)?;
    if matches!(
        host_id,
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME
    ) {
        let v = s.saturating_mul(1_000_000_000).saturating_add(ns);
        let prev = LAST_MONO.fetch_max(v, Ordering::Relaxed);
        if v < prev {
            return Ok((prev / 1_000_000_000, prev % 1_000_000_000));
        }
    }
    Ok((s, ns))
}

/// Nanoseconds on the monotonic clock.
pub fn monotonic_ns() -> u64 {
    clock_gettime(CLOCK_MONOTONIC)
        .map(|(s, ns)| s as u64 * 1_000_000_000 + ns as u64)
        .unwrap_or(0)
}

/// Sleep `ns` nanoseconds on the host.
pub fn sleep_ns(ns: u64) -> Result<(), Errno> {
    if ns == 0 {
        return Ok(());
    }
    let deadline = monotonic_ns().saturating_add(ns);
    loop {
        let now = monotonic_ns();
        if now >= deadline {
            return Ok(());
        }
        match hc::sleep(deadline - now) {
            Ok(()) => {}
            Err(Errno::EINTR) => {
                if crate::signal::interrupt_pending() {
                    return Err(Errno::EINTR);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
