//! Signals: dispositions, pending sets, and delivery to the program with a
//! Linux signal frame (`frame.rs`).
//!
//! Signals reach a thread from three places: the program itself (kill,
//! tgkill, raise), the host (SIGINT/SIGTERM to conf-run, recorded in the
//! ring as a hint), and synchronous faults in program code (SIGSEGV, SIGFPE,
//! SIGILL, SIGBUS, SIGTRAP). They are delivered when the thread next
//! returns to the program.

pub mod frame;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::tls::UserRegs;
use crate::process::{current, process};

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGSEGV: u32 = 11;
pub const SIGUSR2: u32 = 12;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGVTALRM: u32 = 26;
pub const SIGPROF: u32 = 27;
pub const SIGWINCH: u32 = 28;
pub const SIGIO: u32 = 29;
pub const SIGPWR: u32 = 30;
pub const SIGSYS: u32 = 31;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_SIGINFO: u64 = 0x4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

/// The kernel's `struct sigaction` for rt_sigaction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// Details of one signal occurrence (fields of siginfo_t that matter).
#[derive(Clone, Copy, Debug, Default)]
pub struct SigInfo {
    pub signo: u32,
    pub code: i32,
    /// Fault address (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
    pub addr: u64,
    /// Sender (kill, tgkill, sigqueue).
    pub pid: u32,
    /// POSIX timers: timer id, overrun count and sigev_value; sigqueue: value.
    pub timerid: i32,
    pub overrun: i32,
    pub value: u64,
}

/// SI_TIMER: sent by a POSIX timer.
pub const SI_TIMER: i32 = -2;
/// SI_QUEUE: sent by sigqueue.
pub const SI_QUEUE: i32 = -1;

pub struct SignalState {
    pub actions: [SigAction; 64],
    /// Process-directed pending signals.
    pub pending: u64,
    pub info: [SigInfo; 64],
}

impl SignalState {
    pub fn new() -> SignalState {
        SignalState {
            actions: [SigAction::default(); 64],
            pending: 0,
            info: [SigInfo::default(); 64],
        }
    }
}

impl Default for SignalState {
    fn default() -> Self {
        Self::new()
    }
}

fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// What a signal does with SIG_DFL.
#[derive(PartialEq, Eq)]
enum Default_ {
    Terminate,
    Ignore,
    Stop,
}

fn default_action(sig: u32) -> Default_ {
    match sig {
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH => Default_::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Default_::Stop,
        _ => Default_::Terminate,
    }
}

/// SI_USER: sent by kill().
pub const SI_USER: i32 = 0;
/// SI_TKILL: sent by tgkill().
pub const SI_TKILL: i32 = -6;
/// SI_KERNEL.
pub const SI_KERNEL: i32 = 0x80;

/// Make `sig` pending for the process (kill/raise).
pub fn raise(sig: u32) {
    let pid = process().pid;
    send_to_process(SigInfo {
        signo: sig,
        code: SI_USER,
        pid,
        ..Default::default()
    });
}

/// A signal for the whole process: any thread that does not block it takes
/// it; one is kicked so that it does so soon.
pub fn send_to_process(info: SigInfo) {
    let sig = info.signo;
    let proc = process();
    {
        let mut st = proc.signals.lock();
        if st.pending & bit(sig) != 0 && sig < 32 {
            return; // standard signals do not queue
        }
        st.pending |= bit(sig);
        st.info[sig as usize - 1] = info;
    }
    let me = crate::arch::tls::tls().thread;
    if me != 0 && current().sigmask.load(Ordering::Relaxed) & bit(sig) == 0 {
        return; // this thread delivers it on its way back to the program
    }
    let mut target = None;
    crate::process::threads::find_thread(|t| {
        if t.sigmask.load(Ordering::Relaxed) & bit(sig) == 0 {
            target = Some(t.slot.load(Ordering::Relaxed));
            true
        } else {
            false
        }
    });
    if let Some(slot) = target {
        crate::host::calls::kick(slot);
    }
}

/// A signal for thread `tid` (tgkill): ESRCH if there is no such thread.
pub fn send_to_thread(tid: u32, info: SigInfo) -> Result<(), conf_abi::Errno> {
    let sig = info.signo;
    let slot = crate::process::threads::with_thread(tid, |t| {
        t.pending_info.lock()[sig as usize - 1] = info;
        t.pending.fetch_or(bit(sig), Ordering::SeqCst);
        t.slot.load(Ordering::Relaxed)
    })
    .ok_or(conf_abi::Errno::ESRCH)?;
    if tid != current().tid {
        crate::host::calls::kick(slot);
    }
    Ok(())
}

/// Signals the host has seen for the enclave, folded into the pending set.
fn take_host_signals() {
    let hint = crate::host::take_host_signals();
    if hint == 0 {
        return;
    }
    let mut st = process().signals.lock();
    for sig in 1..=64u32 {
        if hint & bit(sig) != 0 && st.pending & bit(sig) == 0 {
            st.pending |= bit(sig);
            st.info[sig as usize - 1] = SigInfo {
                signo: sig,
                code: SI_USER,
                ..Default::default()
            };
        }
    }
}

/// Is a signal pending that would interrupt a blocking call?
pub fn interrupt_pending() -> bool {
    if crate::process::threads::zapped() {
        return true;
    }
    take_host_signals();
    // A thread blocked on the host was woken for this signal: a stop (^Z
    // at a prompt) happens now, and the call goes on after SIGCONT.
    stop_if_pending();
    crate::time::timers::run_expired();
    let t = current();
    let mask = t.sigmask.load(Ordering::Relaxed);
    let st = process().signals.lock();
    let mut pend = (st.pending | t.pending.load(Ordering::Relaxed)) & !mask;
    while pend != 0 {
        let sig = pend.trailing_zeros() + 1;
        pend &= pend - 1;
        let a = st.actions[sig as usize - 1];
        let ignored = a.handler == SIG_IGN
            || (a.handler == SIG_DFL && default_action(sig) != Default_::Terminate);
        if !ignored {
            return true;
        }
    }
    false
}

/// Would an interrupted call be restarted (SA_RESTART) for the signal that
/// will be delivered next?
pub fn should_restart() -> bool {
    let t = current();
    let mask = t.sigmask.load(Ordering::Relaxed);
    let st = process().signals.lock();
    let pend = (st.pending | t.pending.load(Ordering::Relaxed)) & !mask;
    if pend == 0 {
        return true;
    }
    let sig = pend.trailing_zeros() + 1;
    st.actions[sig as usize - 1].flags & SA_RESTART != 0
}

/// Sleep until a signal that interrupts waits is pending.
pub fn wait_for_signal() {
    loop {
        let seq = crate::host::wake_seq();
        if interrupt_pending() {
            return;
        }
        let _ = crate::host::calls::thread_sleep(seq, u64::MAX);
    }
}

/// After a wait with a temporary mask that no signal interrupted, put the
/// thread's own mask back.
pub fn restore_saved_mask() {
    let t = current();
    if let Some(m) = t.saved_mask.lock().take() {
        t.sigmask.store(m, Ordering::Relaxed);
    }
}

/// Take a pending signal in `set` (whatever the mask), for sigtimedwait.
pub fn dequeue(set: u64) -> Option<SigInfo> {
    take_host_signals();
    let t = current();
    let tp = t.pending.load(Ordering::Acquire) & set;
    if tp != 0 {
        let sig = tp.trailing_zeros() + 1;
        t.pending.fetch_and(!bit(sig), Ordering::AcqRel);
        return Some(t.pending_info.lock()[sig as usize - 1]);
    }
    let mut st = process().signals.lock();
    let pp = st.pending & set;
    if pp != 0 {
        let sig = pp.trailing_zeros() + 1;
        st.pending &= !bit(sig);
        return Some(st.info[sig as usize - 1]);
    }
    None
}

/// Pending signals of this thread and the process.
pub fn pending_set() -> u64 {
    take_host_signals();
    current().pending.load(Ordering::Relaxed) | process().signals.lock().pending
}

/// Terminate the process because of `sig` (default action).
pub fn die(sig: u32) -> ! {
    debug!("program terminated by signal {sig}");
    crate::process::exit::exit_group(sig as u64)
}

/// A pending stop signal with the default action (SIGSTOP always; SIGTSTP,
/// SIGTTIN, SIGTTOU unless caught or ignored) stops the whole process:
/// conf-run stops on the host, where the parent's wait sees it (WUNTRACED)
/// and a shell's job control too, until SIGCONT.
fn stop_if_pending() {
    let t = current();
    let mask = t.sigmask.load(Ordering::Relaxed);
    let mut st = process().signals.lock();
    let tpend = t.pending.load(Ordering::Acquire);
    let stop = [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU]
        .into_iter()
        .find(|&sig| {
            let pending = (st.pending | tpend) & bit(sig) != 0;
            let blocked = sig != SIGSTOP && mask & bit(sig) != 0;
            let default = sig == SIGSTOP || st.actions[sig as usize - 1].handler == SIG_DFL;
            pending && !blocked && default
        });
    let Some(sig) = stop else { return };
    st.pending &= !bit(sig);
    t.pending.fetch_and(!bit(sig), Ordering::AcqRel);
    drop(st);
    debug!("stopped by signal {sig}");
    if let Err(e) = crate::host::calls::stop_process(sig) {
        debug!("the host could not stop this process: {}", e.name());
    }
}

/// Deliver pending unblocked signals before returning to the program:
/// run default actions, or set `regs` up to enter the handler.
pub fn deliver_pending(regs: &mut UserRegs) {
    if crate::process::threads::zapped() {
        crate::process::threads::exit_current();
    }
    take_host_signals();
    if crate::host::take_alarm() {
        crate::time::timers::run_expired();
    }
    let t = current();
    loop {
        let mask = t.sigmask.load(Ordering::Relaxed);
        let proc = process();
        let mut st = proc.signals.lock();
        let tpend = t.pending.load(Ordering::Acquire) & !mask;
        let pend = (st.pending & !mask) | tpend;
        if pend == 0 {
            return;
        }
        // Lowest number first, as Linux; the thread's own before the process's.
        let sig = pend.trailing_zeros() + 1;
        let info = if tpend & bit(sig) != 0 {
            t.pending.fetch_and(!bit(sig), Ordering::AcqRel);
            t.pending_info.lock()[sig as usize - 1]
        } else {
            st.pending &= !bit(sig);
            st.info[sig as usize - 1]
        };
        let action = st.actions[sig as usize - 1];
        if action.flags & SA_RESETHAND != 0 && action.handler > SIG_IGN {
            st.actions[sig as usize - 1] = SigAction::default();
        }
        drop(st);
        match action.handler {
            SIG_IGN => continue,
            SIG_DFL => match default_action(sig) {
                Default_::Ignore => continue,
                Default_::Stop => {
                    if let Err(e) = crate::host::calls::stop_process(sig) {
                        debug!("the host could not stop this process: {}", e.name());
                    }
                    continue;
                }
                Default_::Terminate => die(sig),
            },
            _ => {
                let restore = t.saved_mask.lock().take().unwrap_or(mask);
                if frame::push(regs, sig, &info, &action, restore).is_err() {
                    // No room for the frame: Linux kills with SIGSEGV.
                    die(SIGSEGV);
                }
                let mut new_mask = mask | action.mask;
                if action.flags & SA_NODEFER == 0 {
                    new_mask |= bit(sig);
                }
                t.sigmask
                    .store(new_mask & !(bit(SIGKILL) | bit(SIGSTOP)), Ordering::Relaxed);
                return;
            }
        }
    }
}

/// A synchronous fault in program code: deliver `sig` now (it cannot be
/// blocked or ignored, as in Linux), or terminate.
pub fn fault(regs: &mut UserRegs, sig: u32, code: i32, addr: u64) {
    let proc = process();
    let t = current();
    let mask = t.sigmask.load(Ordering::Relaxed);
    let action = proc.signals.lock().actions[sig as usize - 1];
    if action.handler <= SIG_IGN || mask & bit(sig) != 0 {
        die(sig);
    }
    let info = SigInfo {
        signo: sig,
        code,
        addr,
        ..Default::default()
    };
    {
        let mut st = proc.signals.lock();
        if action.flags & SA_RESETHAND != 0 {
            st.actions[sig as usize - 1] = SigAction::default();
        }
    }
    if frame::push(regs, sig, &info, &action, mask).is_err() {
        die(SIGSEGV);
    }
    let mut new_mask = mask | action.mask;
    if action.flags & SA_NODEFER == 0 {
        new_mask |= bit(sig);
    }
    t.sigmask
        .store(new_mask & !(bit(SIGKILL) | bit(SIGSTOP)), Ordering::Relaxed);
}

/// Count of signals delivered (diagnostics).
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// execve: handlers go back to the default action (ignored signals stay
/// ignored); pending signals and the mask are kept.
pub fn reset_for_exec() {
    let mut st = process().signals.lock();
    for a in st.actions.iter_mut() {
        if a.handler != SIG_IGN {
            *a = SigAction::default();
        }
    }
    drop(st);
    *current().altstack.lock() = (0, 2, 0);
}
