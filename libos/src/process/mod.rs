//! The program's process and threads.

pub mod channel;
pub mod elf;
pub mod exec;
pub mod exit;
pub mod fdtable;
pub mod fork;
pub mod spawn;
pub mod stack;
pub mod threads;
pub mod vfork;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::mm::Mm;
use crate::signal::SignalState;
use crate::sync::SpinLock;
use crate::util::Global;
use fdtable::FdTable;

/// Resource limits (getrlimit/prlimit64), soft and hard.
#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

pub const RLIM_INFINITY: u64 = u64::MAX;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_AS: usize = 9;
pub const RLIM_NLIMITS: usize = 16;

pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub mm: Mm,
    pub files: SpinLock<FdTable>,
    pub cwd: SpinLock<String>,
    pub umask: AtomicU32,
    pub signals: SpinLock<SignalState>,
    /// Path of the running executable (enclave path), for /proc/self/exe.
    pub exe: SpinLock<String>,
    /// NUL-separated argv and environment, for /proc/self/cmdline|environ.
    pub cmdline: SpinLock<Vec<u8>>,
    pub environ: SpinLock<Vec<u8>>,
    pub rlimits: SpinLock<[Rlimit; RLIM_NLIMITS]>,
    next_tid: AtomicU32,
    /// Child processes not yet waited for.
    pub children: SpinLock<alloc::collections::BTreeMap<u32, Child>>,
    /// Process group and session (one of each per enclave process tree
    /// unless the program asks otherwise).
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
}

/// A child process.
pub struct Child {
    /// Known wait status (a vfork child that exited before exec); None:
    /// ask the host.
    pub status: Option<i32>,
}

static PROCESS: Global<Process> = Global::new();

pub fn process() -> &'static Process {
    PROCESS.get()
}

pub fn init(p: Process) {
    PROCESS.set(p);
}

impl Process {
    pub fn new(pid: u32, mm: Mm, cwd: String, stack_size: u64) -> Process {
        let mut rl = [Rlimit {
            cur: RLIM_INFINITY,
            max: RLIM_INFINITY,
        }; RLIM_NLIMITS];
        rl[RLIMIT_STACK] = Rlimit {
            cur: stack_size,
            max: RLIM_INFINITY,
        };
        rl[RLIMIT_NOFILE] = Rlimit {
            cur: 1024,
            max: fdtable::MAX_FDS as u64,
        };
        rl[4] = Rlimit {
            cur: 0,
            max: RLIM_INFINITY,
        }; // RLIMIT_CORE
        Process {
            pid,
            ppid: pid.saturating_sub(1),
            mm,
            files: SpinLock::new(FdTable::new()),
            cwd: SpinLock::new(cwd),
            umask: AtomicU32::new(0o022),
            signals: SpinLock::new(SignalState::new()),
            exe: SpinLock::new(String::new()),
            cmdline: SpinLock::new(Vec::new()),
            environ: SpinLock::new(Vec::new()),
            rlimits: SpinLock::new(rl),
            next_tid: AtomicU32::new(pid + 1),
            children: SpinLock::new(alloc::collections::BTreeMap::new()),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
        }
    }

    pub fn alloc_tid(&self) -> u32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    pub fn cwd(&self) -> String {
        self.cwd.lock().clone()
    }
}

/// Top of the main stack: the top of the program area.
pub fn stack_top() -> u64 {
    STACK_TOP.load(Ordering::Relaxed)
}

static STACK_TOP: AtomicU64 = AtomicU64::new(0);

pub fn set_stack_top(v: u64) {
    STACK_TOP.store(v, Ordering::Relaxed);
}

/// Per-thread state of the program.
pub struct Thread {
    pub tid: u32,
    /// Blocked signals (bit n-1 for signal n).
    pub sigmask: AtomicU64,
    /// set_tid_address: cleared and futex-woken when the thread exits.
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    /// sigaltstack: (sp, flags, size).
    pub altstack: SpinLock<(u64, i32, u64)>,
    /// Signals sent to this thread (tgkill), bit n-1 for signal n.
    pub pending: AtomicU64,
    pub pending_info: SpinLock<[crate::signal::SigInfo; 64]>,
    /// The thread slot it runs on.
    pub slot: AtomicU64,
    /// Mask to restore when the next signal handler returns (set by
    /// sigsuspend, ppoll and friends, which wait with a temporary mask).
    pub saved_mask: SpinLock<Option<u64>>,
    /// While this thread runs a vfork child: the parent's state to resume.
    pub vfork: SpinLock<Option<alloc::boxed::Box<vfork::Frame>>>,
}

impl Thread {
    pub fn new(tid: u32) -> Box<Thread> {
        Box::new(Thread {
            tid,
            sigmask: AtomicU64::new(0),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            altstack: SpinLock::new((0, 2 /* SS_DISABLE */, 0)),
            pending: AtomicU64::new(0),
            pending_info: SpinLock::new([crate::signal::SigInfo::default(); 64]),
            slot: AtomicU64::new(0),
            saved_mask: SpinLock::new(None),
            vfork: SpinLock::new(None),
        })
    }
}

/// The calling thread's state.
pub fn current() -> &'static Thread {
    let p = crate::arch::tls::tls().thread;
    assert!(p != 0, "no thread bound to this slot");
    // SAFETY: set from a leaked Box<Thread> when the slot started.
    unsafe { &*(p as *const Thread) }
}

/// Bind `t` to the calling slot.
pub fn bind(t: Box<Thread>) {
    let tls = crate::arch::tls::tls();
    t.slot.store(tls.record.slot_index, Ordering::Relaxed);
    threads::register(t.tid, &t);
    tls.thread = Box::into_raw(t) as u64;
}
