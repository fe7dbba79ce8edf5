//! futex(2): waiting on a word of program memory until another thread
//! wakes it. Waiters sleep on the host (ThreadSleep) and are woken by slot
//! (ThreadWake); whether a waiter was really woken is decided here, so a
//! host that wakes threads early only causes a re-check.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use conf_abi::Errno;

use super::SpinLock;
use crate::syscall::uaccess;

struct Waiter {
    slot: u64,
    bitset: u32,
    /// Set to 1 by a waker; the waiter owns the Arc until it returns.
    woken: alloc::sync::Arc<AtomicU32>,
}

static QUEUES: SpinLock<BTreeMap<u64, Vec<Waiter>>> = SpinLock::new(BTreeMap::new());

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const FUTEX_REQUEUE: u32 = 3;
const FUTEX_CMP_REQUEUE: u32 = 4;
const FUTEX_WAKE_OP: u32 = 5;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;
const FUTEX_CLOCK_REALTIME: u32 = 256;
const BITSET_ALL: u32 = u32::MAX;

fn read_word(uaddr: u64) -> Result<u32, Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let w: &AtomicU32 = {
        let b = uaccess::slice(uaddr, 4)?;
        // SAFETY: 4 aligned, readable bytes of program memory.
        unsafe { &*(b.as_ptr() as *const AtomicU32) }
    };
    Ok(w.load(Ordering::SeqCst))
}

/// Wake up to `n` waiters on `uaddr` whose bitset matches.
pub fn wake(uaddr: u64, n: u32, bitset: u32) -> u32 {
    let mut woken = Vec::new();
    {
        let mut q = QUEUES.lock();
        if let Some(list) = q.get_mut(&uaddr) {
            let mut i = 0;
            while i < list.len() && (woken.len() as u32) < n {
                if list[i].bitset & bitset != 0 {
                    let w = list.remove(i);
                    w.woken.store(1, Ordering::Release);
                    woken.push(w.slot);
                } else {
                    i += 1;
                }
            }
            if list.is_empty() {
                q.remove(&uaddr);
            }
        }
    }
    for slot in &woken {
        let _ = crate::host::calls::thread_wake(*slot);
    }
    woken.len() as u32
}

/// Block until woken on `uaddr` (if it still holds `val`) or `deadline_ns`
/// (monotonic or realtime, absolute) passes.
pub fn wait(
    uaddr: u64,
    val: u32,
    bitset: u32,
    deadline: Option<(u64, bool)>,
) -> Result<u64, Errno> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let slot = crate::arch::tls::tls().record.slot_index;
    let woken = alloc::sync::Arc::new(AtomicU32::new(0));
    {
        let mut q = QUEUES.lock();
        if read_word(uaddr)? != val {
            return Err(Errno::EAGAIN);
        }
        q.entry(uaddr).or_default().push(Waiter {
            slot,
            bitset,
            woken: woken.clone(),
        });
    }
    let remove_self = || {
        let mut q = QUEUES.lock();
        if let Some(list) = q.get_mut(&uaddr) {
            list.retain(|w| !alloc::sync::Arc::ptr_eq(&w.woken, &woken));
            if list.is_empty() {
                q.remove(&uaddr);
            }
        }
    };
    loop {
        let seq = crate::host::wake_seq();
        if woken.load(Ordering::Acquire) != 0 {
            return Ok(0);
        }
        if crate::process::threads::zapped() {
            remove_self();
            return Err(Errno::EINTR);
        }
        let timeout = match deadline {
            None => u64::MAX,
            Some((at, realtime)) => {
                let now = if realtime {
                    crate::time::clock_gettime(0)
                        .map(|(s, ns)| s as u64 * 1_000_000_000 + ns as u64)
                        .unwrap_or(0)
                } else {
                    crate::time::monotonic_ns()
                };
                if now >= at {
                    remove_self();
                    return if woken.load(Ordering::Acquire) != 0 {
                        Ok(0)
                    } else {
                        Err(Errno::ETIMEDOUT)
                    };
                }
                at - now
            }
        };
        match crate::host::calls::thread_sleep(seq, timeout) {
            Ok(()) | Err(Errno::ETIMEDOUT) => {}
            Err(Errno::EINTR) => {
                if crate::signal::interrupt_pending() && woken.load(Ordering::Acquire) == 0 {
                    remove_self();
                    return Err(Errno::EINTR);
                }
            }
            Err(e) => {
                remove_self();
                return Err(e);
            }
        }
    }
}

fn timespec_ns(addr: u64) -> Result<u64, Errno> {
    let [s, ns]: [i64; 2] = uaccess::read(addr)?;
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(Errno::EINVAL);
    }
    Ok((s as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ns as u64))
}

/// Move up to `n` waiters from `from` to `to` (after waking `wake_n`).
fn requeue(from: u64, to: u64, wake_n: u32, n: u32) -> u32 {
    let woke = wake(from, wake_n, BITSET_ALL);
    let mut q = QUEUES.lock();
    let mut moved = Vec::new();
    if let Some(list) = q.get_mut(&from) {
        let k = (n as usize).min(list.len());
        moved = list.drain(..k).collect();
        if list.is_empty() {
            q.remove(&from);
        }
    }
    let count = moved.len() as u32;
    if !moved.is_empty() {
        q.entry(to).or_default().extend(moved);
    }
    woke + count
}

pub fn futex(
    uaddr: u64,
    op: u32,
    val: u32,
    timeout: u64,
    uaddr2: u64,
    val3: u32,
) -> Result<u64, Errno> {
    let cmd = op & 0x7f;
    // Futexes in memory shared with other processes wait on the host.
    if uaddr >= crate::boot::enclave().info.enclave_size {
        let (start, m) = crate::process::process()
            .mm
            .shared_at(uaddr)
            .ok_or(Errno::EFAULT)?;
        let t = match cmd {
            FUTEX_WAIT if timeout != 0 => timespec_ns(timeout)?,
            FUTEX_WAIT_BITSET if timeout != 0 => {
                let at = timespec_ns(timeout)?;
                let now = if op & FUTEX_CLOCK_REALTIME != 0 {
                    crate::time::clock_gettime(0)
                        .map(|(s, ns)| s as u64 * 1_000_000_000 + ns as u64)
                        .unwrap_or(0)
                } else {
                    crate::time::monotonic_ns()
                };
                at.saturating_sub(now)
            }
            _ => u64::MAX,
        };
        return crate::syscall::interruptible(|| {
            crate::host::calls::futex_shared(m.id, uaddr - start, cmd, val, t, val3)
        });
    }
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    match cmd {
        FUTEX_WAIT => {
            let deadline = if timeout != 0 {
                Some((
                    crate::time::monotonic_ns().saturating_add(timespec_ns(timeout)?),
                    false,
                ))
            } else {
                None
            };
            wait(uaddr, val, BITSET_ALL, deadline)
        }
        FUTEX_WAIT_BITSET => {
            let deadline = if timeout != 0 {
                Some((timespec_ns(timeout)?, realtime))
            } else {
                None
            };
            wait(uaddr, val, val3, deadline)
        }
        FUTEX_WAKE => Ok(wake(uaddr, val, BITSET_ALL) as u64),
        FUTEX_WAKE_BITSET => {
            if val3 == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(wake(uaddr, val, val3) as u64)
        }
        FUTEX_REQUEUE => Ok(requeue(uaddr, uaddr2, val, timeout as u32) as u64),
        FUTEX_CMP_REQUEUE => {
            if read_word(uaddr)? != val3 {
                return Err(Errno::EAGAIN);
            }
            Ok(requeue(uaddr, uaddr2, val, timeout as u32) as u64)
        }
        FUTEX_WAKE_OP => {
            // *uaddr2 = op(*uaddr2, oparg); wake uaddr; maybe wake uaddr2.
            let opcode = (val3 >> 28) & 7;
            let cmp = (val3 >> 24) & 15;
            let mut oparg = (val3 >> 12) & 0xfff;
            let cmparg = val3 & 0xfff;
            if (val3 >> 28) & 8 != 0 {
                oparg = 1 << oparg.min(31);
            }
            let b = uaccess::slice_mut(uaddr2, 4)?;
            // SAFETY: 4 writable bytes of program memory.
            let w = unsafe { &*(b.as_ptr() as *const AtomicU32) };
            let old = match opcode {
                0 => w.swap(oparg, Ordering::SeqCst),
                1 => w.fetch_add(oparg, Ordering::SeqCst),
                2 => w.fetch_or(oparg, Ordering::SeqCst),
                3 => w.fetch_and(!oparg, Ordering::SeqCst),
                4 => w.fetch_xor(oparg, Ordering::SeqCst),
                _ => return Err(Errno::ENOSYS),
            };
            let mut n = wake(uaddr, val, BITSET_ALL);
            let hit = match cmp {
                0 => old == cmparg,
                1 => old != cmparg,
                2 => (old as i32) < cmparg as i32,
                3 => (old as i32) <= cmparg as i32,
                4 => (old as i32) > cmparg as i32,
                5 => (old as i32) >= cmparg as i32,
                _ => return Err(Errno::ENOSYS),
            };
            if hit {
                n += wake(uaddr2, timeout as u32, BITSET_ALL);
            }
            Ok(n as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}
