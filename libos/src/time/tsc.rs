//! Reading the clocks without leaving the enclave: the time-stamp counter,
//! calibrated against the host's clocks and re-synchronized with them every
//! so often. Until it is calibrated (a few milliseconds after boot) clocks
//! are read from the host.
//!
//! State is published with a sequence counter (even = stable) so readers on
//! any thread never take a lock.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::rdtsc;
use crate::host::calls as hc;

/// How long a calibration sample must span, in host nanoseconds.
const CALIBRATE_NS: i64 = 2_000_000;
/// How often (in TSC-derived ns) to re-synchronize with the host.
const RESYNC_NS: u64 = 200_000_000;

static SEQ: AtomicU64 = AtomicU64::new(0);
static TSC0: AtomicU64 = AtomicU64::new(0);
static MONO0: AtomicU64 = AtomicU64::new(0);
static REAL0: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number; 0 = not
/// calibrated.
static MULT: AtomicU64 = AtomicU64::new(0);
/// First sample taken for calibration.
static CAL_TSC: AtomicU64 = AtomicU64::new(0);
static CAL_MONO: AtomicU64 = AtomicU64::new(0);

fn host_ns(clock: u32) -> Option<i64> {
    let (s, ns) = hc::clock_gettime(clock).ok()?;
    Some(s.saturating_mul(1_000_000_000).saturating_add(ns))
}

fn publish(tsc: u64, mono: i64, real: i64, mult: u64) {
    SEQ.fetch_add(1, Ordering::AcqRel);
    TSC0.store(tsc, Ordering::Relaxed);
    MONO0.store(mono as u64, Ordering::Relaxed);
    REAL0.store(real as u64, Ordering::Relaxed);
    MULT.store(mult, Ordering::Relaxed);
    SEQ.fetch_add(1, Ordering::AcqRel);
}

/// Ask the host, calibrate or re-synchronize, and return (mono, real).
fn sync() -> Option<(i64, i64)> {
    let t = rdtsc();
    let mono = host_ns(super::CLOCK_MONOTONIC)?;
    let real = host_ns(super::CLOCK_REALTIME)?;
    let mult = MULT.load(Ordering::Relaxed);
    if mult == 0 {
        let (ct, cm) = (
            CAL_TSC.load(Ordering::Relaxed),
            CAL_MONO.load(Ordering::Relaxed) as i64,
        );
        if ct == 0 || t <= ct || mono <= cm {
            CAL_TSC.store(t, Ordering::Relaxed);
            CAL_MONO.store(mono as u64, Ordering::Relaxed);
            return Some((mono, real));
        }
        if mono - cm < CALIBRATE_NS {
            return Some((mono, real));
        }
        let m = (((mono - cm) as u128) << 32) / (t - ct) as u128;
        // A host that reports an absurd rate (over 100 GHz or under 10 MHz)
        // is not believed: keep asking it instead.
        if !((1u64 << 32) / 100..=(100u64 << 32)).contains(&(m as u64)) {
            return Some((mono, real));
        }
        publish(t, mono, real, m as u64);
    } else {
        publish(t, mono, real, mult);
    }
    Some((mono, real))
}

/// (monotonic ns, realtime ns) from the TSC, or from the host while not
/// calibrated or when a re-synchronization is due.
pub fn now() -> Option<(i64, i64)> {
    loop {
        let s1 = SEQ.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let mult = MULT.load(Ordering::Relaxed);
        if mult == 0 {
            return sync();
        }
        let (t0, m0, r0) = (
            TSC0.load(Ordering::Relaxed),
            MONO0.load(Ordering::Relaxed) as i64,
            REAL0.load(Ordering::Relaxed) as i64,
        );
        if SEQ.load(Ordering::Acquire) != s1 {
            continue;
        }
        let t = rdtsc();
        let d = ((t.saturating_sub(t0) as u128 * mult as u128) >> 32) as u64;
        if d >= RESYNC_NS {
            return sync();
        }
        return Some((m0 + d as i64, r0 + d as i64));
    }
}
