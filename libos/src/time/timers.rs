//! Interval timers (setitimer, alarm) and POSIX timers (timer_create):
//! the LibOS keeps the timers; the host is only asked to kick the enclave
//! when the earliest one is due (`Alarm`), and the LibOS checks due times
//! against its own monotonic clock before firing anything.

use alloc::vec::Vec;

use conf_abi::Errno;

use crate::signal::{self, SigInfo, SI_TIMER};
use crate::sync::SpinLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Signal to the process.
    Process,
    /// Signal to one thread (SIGEV_THREAD_ID).
    Thread(u32),
    /// No notification (SIGEV_NONE): only timer_gettime shows it.
    None,
}

#[derive(Clone, Copy, Debug)]
pub struct Timer {
    /// Monotonic deadline in ns; 0 = disarmed.
    pub deadline: u64,
    pub interval: u64,
    pub signo: u32,
    pub notify: Notify,
    pub value: u64,
    pub overrun: i32,
    /// Clock the program set it with (for absolute times and gettime).
    pub clock: u32,
}

/// Index 0..3: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF; then POSIX timers
/// (timer id = index - 3).
static TIMERS: SpinLock<Vec<Option<Timer>>> = SpinLock::new(Vec::new());
pub const ITIMERS: usize = 3;

fn with_timers<R>(f: impl FnOnce(&mut Vec<Option<Timer>>) -> R) -> R {
    let mut g = TIMERS.lock();
    if g.is_empty() {
        g.resize(ITIMERS, None);
    }
    f(&mut g)
}

/// Ask the host to kick us at the earliest deadline.
fn rearm(timers: &[Option<Timer>]) {
    let next = timers
        .iter()
        .flatten()
        .filter(|t| t.deadline != 0)
        .map(|t| t.deadline)
        .min()
        .unwrap_or(0);
    crate::host::calls::alarm(next);
}

/// Fire every timer whose deadline has passed.
pub fn run_expired() {
    let now = crate::time::monotonic_ns();
    let mut fire: Vec<(usize, Timer)> = Vec::new();
    let any_armed = with_timers(|ts| {
        for (i, slot) in ts.iter_mut().enumerate() {
            if let Some(t) = slot {
                if t.deadline != 0 && t.deadline <= now {
                    let mut overrun = 0;
                    if let Some(missed) = (now - t.deadline).checked_div(t.interval) {
                        overrun = missed.min(i32::MAX as u64) as i32;
                        t.deadline += (missed + 1) * t.interval;
                    } else {
                        t.deadline = 0;
                    }
                    t.overrun = overrun;
                    fire.push((i, *t));
                }
            }
        }
        let armed = ts.iter().flatten().any(|t| t.deadline != 0);
        if !fire.is_empty() || armed {
            rearm(ts);
        }
        armed
    });
    let _ = any_armed;
    for (i, t) in fire {
        let info = if i < ITIMERS {
            SigInfo {
                signo: t.signo,
                code: SI_TIMER,
                timerid: 0,
                ..Default::default()
            }
        } else {
            SigInfo {
                signo: t.signo,
                code: SI_TIMER,
                timerid: (i - ITIMERS) as i32,
                overrun: t.overrun,
                value: t.value,
                ..Default::default()
            }
        };
        match t.notify {
            Notify::None => {}
            Notify::Process => signal::send_to_process(info),
            Notify::Thread(tid) => {
                let _ = signal::send_to_thread(tid, info);
            }
        }
    }
}

/// Set timer `index`; returns the previous (remaining, interval) in ns.
pub fn set(index: usize, deadline: u64, interval: u64) -> Result<(u64, u64), Errno> {
    let now = crate::time::monotonic_ns();
    with_timers(|ts| {
        let t = ts
            .get_mut(index)
            .and_then(|t| t.as_mut())
            .ok_or(Errno::EINVAL)?;
        let old = (
            if t.deadline > now {
                t.deadline - now
            } else if t.deadline != 0 {
                1
            } else {
                0
            },
            t.interval,
        );
        t.deadline = deadline;
        t.interval = interval;
        t.overrun = 0;
        rearm(ts);
        Ok(old)
    })
}

/// (remaining ns, interval ns) of timer `index`.
pub fn get(index: usize) -> Result<(u64, u64), Errno> {
    let now = crate::time::monotonic_ns();
    with_timers(|ts| {
        let t = ts
            .get(index)
            .and_then(|t| t.as_ref())
            .ok_or(Errno::EINVAL)?;
        let rem = if t.deadline == 0 {
            0
        } else {
            t.deadline.saturating_sub(now).max(1)
        };
        Ok((rem, t.interval))
    })
}

/// Make sure an interval timer exists (they always do, disarmed).
pub fn ensure_itimer(which: usize, signo: u32) {
    with_timers(|ts| {
        if ts[which].is_none() {
            ts[which] = Some(Timer {
                deadline: 0,
                interval: 0,
                signo,
                notify: Notify::Process,
                value: 0,
                overrun: 0,
                clock: crate::time::CLOCK_MONOTONIC,
            });
        }
    });
}

/// Create a POSIX timer; returns its id.
pub fn create(t: Timer) -> Result<usize, Errno> {
    with_timers(|ts| {
        let free = ts
            .iter()
            .skip(ITIMERS)
            .position(|t| t.is_none())
            .map(|i| i + ITIMERS);
        let i = match free {
            Some(i) => i,
            None => {
                if ts.len() >= ITIMERS + 4096 {
                    return Err(Errno::EAGAIN);
                }
                ts.push(None);
                ts.len() - 1
            }
        };
        ts[i] = Some(t);
        Ok(i - ITIMERS)
    })
}

pub fn delete(id: usize) -> Result<(), Errno> {
    with_timers(|ts| {
        let slot = ts.get_mut(id + ITIMERS).ok_or(Errno::EINVAL)?;
        if slot.take().is_none() {
            return Err(Errno::EINVAL);
        }
        rearm(ts);
        Ok(())
    })
}

pub fn overrun(id: usize) -> Result<i32, Errno> {
    with_timers(|ts| {
        ts.get(id + ITIMERS)
            .and_then(|t| t.as_ref())
            .map(|t| t.overrun)
            .ok_or(Errno::EINVAL)
    })
}

pub fn clock_of(id: usize) -> Result<u32, Errno> {
    with_timers(|ts| {
        ts.get(id + ITIMERS)
            .and_then(|t| t.as_ref())
            .map(|t| t.clock)
            .ok_or(Errno::EINVAL)
    })
}

/// execve: POSIX timers are deleted; interval timers (alarm) survive.
pub fn reset_for_exec() {
    with_timers(|ts| {
        ts.truncate(ITIMERS);
        rearm(ts);
    });
}
