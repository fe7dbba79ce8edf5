//! Program threads on enclave thread slots.
//!
//! Each program thread runs on its own slot (TCS, SSA, LibOS stack, TLS).
//! `clone` picks a free slot, leaves the new thread's registers and state in
//! that slot's start record, and asks the host for an OS thread that enters
//! the slot with `ThreadStart`. Running out of slots is EAGAIN with a log
//! line naming `sgx.max_threads`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use conf_abi::entry::AbortCode;
use conf_abi::Errno;

use super::Thread;
use crate::arch::tls::{tls, UserRegs};
use crate::sync::SpinLock;

static LIVE: AtomicU32 = AtomicU32::new(1);

/// Live threads by tid (pointers to their leaked `Thread`).
static BY_TID: SpinLock<alloc::collections::BTreeMap<u32, usize>> =
    SpinLock::new(alloc::collections::BTreeMap::new());

pub fn register(tid: u32, t: &Thread) {
    BY_TID.lock().insert(tid, t as *const Thread as usize);
}

/// Run `f` on the live thread `tid`, if there is one.
pub fn with_thread<R>(tid: u32, f: impl FnOnce(&Thread) -> R) -> Option<R> {
    let g = BY_TID.lock();
    // SAFETY: entries are removed (under this lock) before a Thread is freed.
    g.get(&tid).map(|p| f(unsafe { &*(*p as *const Thread) }))
}

/// Run `f` on every live thread until it returns true.
pub fn find_thread(mut f: impl FnMut(&Thread) -> bool) -> bool {
    let g = BY_TID.lock();
    // SAFETY: as above.
    g.values().any(|p| f(unsafe { &*(*p as *const Thread) }))
}

/// What a new thread starts with.
pub struct StartInfo {
    pub thread: Box<Thread>,
    pub regs: UserRegs,
    /// The creator's SSE state (Linux copies the FPU state to the child).
    pub xmm: [u8; 256],
    pub mxcsr: u32,
}

/// What a slot being started will run.
enum Start {
    Program(alloc::boxed::Box<StartInfo>),
    /// LibOS work on a thread of its own (no program thread: it is not
    /// counted, gets no signals and never runs program code).
    Worker(fn()),
}

struct Slots {
    /// Per slot: in use by a program thread or a worker.
    used: Vec<bool>,
    /// Per slot: the start record of a thread being created.
    pending: Vec<Option<Start>>,
}

static SLOTS: SpinLock<Option<Slots>> = SpinLock::new(None);
static LOGGED_FULL: AtomicBool = AtomicBool::new(false);

pub fn live_threads() -> u32 {
    LIVE.load(Ordering::Acquire)
}

/// Bind the boot thread (slot 0) to the program's main thread.
pub fn init_main(tid: u32) {
    let n = crate::boot::enclave().info.nslots as usize;
    let mut used = alloc::vec![false; n];
    used[0] = true;
    *SLOTS.lock() = Some(Slots {
        used,
        pending: (0..n).map(|_| None).collect(),
    });
    super::bind(Thread::new(tid));
}

/// Start a new thread with `info`: find a slot and ask the host for an OS
/// thread to run it.
pub fn spawn(info: StartInfo) -> Result<(), Errno> {
    start_slot(Start::Program(alloc::boxed::Box::new(info)))
}

/// Run `job` on a LibOS thread of its own, if a slot is free; the slot is
/// free again when `job` returns.
pub fn spawn_worker(job: fn()) -> Result<(), Errno> {
    start_slot(Start::Worker(job))
}

fn start_slot(start: Start) -> Result<(), Errno> {
    let worker = matches!(start, Start::Worker(_));
    let slot = {
        let mut g = SLOTS.lock();
        let s = g.as_mut().expect("threads not initialized");
        let Some(slot) = s.used.iter().position(|u| !u) else {
            drop(g);
            if !worker && !LOGGED_FULL.swap(true, Ordering::Relaxed) {
                warn!(
                    "cannot create a thread: all {} thread slots are in use; raise sgx.max_threads in the manifest",
                    crate::boot::enclave().info.nslots
                );
            }
            return Err(Errno::EAGAIN);
        };
        s.used[slot] = true;
        s.pending[slot] = Some(start);
        slot
    };
    if !worker {
        LIVE.fetch_add(1, Ordering::AcqRel);
    }
    if let Err(e) = crate::host::calls::spawn_thread(slot as u64) {
        let mut g = SLOTS.lock();
        let s = g.as_mut().unwrap();
        s.used[slot] = false;
        s.pending[slot] = None;
        if !worker {
            LIVE.fetch_sub(1, Ordering::AcqRel);
        }
        return Err(e);
    }
    Ok(())
}

/// First entry of a slot the host started for `spawn`.
pub fn start_current() -> ! {
    let t = crate::boot::init_thread_tls();
    let slot = t.record.slot_index as usize;
    let info = {
        let mut g = SLOTS.lock();
        g.as_mut()
            .and_then(|s| s.pending.get_mut(slot).and_then(|p| p.take()))
    };
    let info = match info {
        Some(Start::Program(info)) => info,
        Some(Start::Worker(job)) => {
            job();
            // The host does not re-enter a slot until this OS thread has
            // left it (as for exit_current).
            if let Some(s) = SLOTS.lock().as_mut() {
                s.used[slot] = false;
            }
            crate::host::exit_thread()
        }
        None => crate::host::abort(
            AbortCode::BadImage,
            format_args!("the host started thread slot {slot}, which no clone asked for"),
        ),
    };
    let t = tls();
    t.xmm = info.xmm;
    t.mxcsr = info.mxcsr;
    t.user = info.regs;
    super::bind(info.thread);
    crate::entry::return_to_program()
}

/// End the calling thread (not the last one): clear and wake its
/// clear_child_tid, free its slot, and leave the enclave.
pub fn exit_current() -> ! {
    let th = super::current();
    let ctid = th.clear_child_tid.load(Ordering::Relaxed);
    if ctid != 0 && crate::syscall::uaccess::write(ctid, &0u32).is_ok() {
        crate::sync::futex::wake(ctid, 1, u32::MAX);
    }
    let t = tls();
    let slot = t.record.slot_index as usize;
    BY_TID.lock().remove(&th.tid);
    let thread = core::mem::replace(&mut t.thread, 0);
    if thread != 0 {
        // SAFETY: the Box<Thread> leaked by `bind` for this slot.
        drop(unsafe { Box::from_raw(thread as *mut Thread) });
    }
    LIVE.fetch_sub(1, Ordering::AcqRel);
    // The host does not re-enter a slot until its previous OS thread has
    // left it, so the slot can be marked free before the EEXIT below.
    if let Some(s) = SLOTS.lock().as_mut() {
        s.used[slot] = false;
    }
    crate::host::exit_thread()
}

/// Set by execve: every thread but this tid ends at its next chance.
static ZAP_SURVIVOR: AtomicU32 = AtomicU32::new(0);

/// Should the calling thread end because another one called execve?
pub fn zapped() -> bool {
    let s = ZAP_SURVIVOR.load(Ordering::Acquire);
    s != 0 && crate::arch::tls::tls().thread != 0 && super::current().tid != s
}

/// End every other thread (execve): ask them to stop, kick them out of
/// whatever they wait for, and wait until they are gone.
pub fn zap_others() {
    if live_threads() <= 1 {
        return;
    }
    let me = super::current().tid;
    ZAP_SURVIVOR.store(me, Ordering::Release);
    let mut slots = Vec::new();
    find_thread(|t| {
        if t.tid != me {
            slots.push(t.slot.load(Ordering::Relaxed));
        }
        false
    });
    for s in &slots {
        crate::host::calls::kick(*s);
    }
    while live_threads() > 1 {
        let seq = crate::host::wake_seq();
        let _ = crate::host::calls::thread_sleep(seq, 1_000_000);
    }
    ZAP_SURVIVOR.store(0, Ordering::Release);
}
