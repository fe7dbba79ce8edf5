//! Signal handling for the sim backend: what the CPU and the host kernel do
//! for a real enclave on an AEX, emulated in a host signal handler.
//!
//! * A trapped `syscall` (SIGSYS from Syscall User Dispatch) or a fault in
//!   program code inside ELRANGE: save the context into the slot's SSA frame
//!   as SGX would (a `syscall` in an enclave is #UD, reported at the
//!   instruction), then re-enter the enclave at OENTRY with `Exception`.
//! * The same in LibOS code: the LibOS broke the boundary rule or crashed;
//!   report it and stop.
//! * Asynchronous signals: record them in the ring for the LibOS; if program
//!   code was interrupted, enter the enclave with `HostSignal` so the LibOS
//!   can deliver them at once.
//!
//! Everything here runs in a signal handler: no allocation, no locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use conf_abi::entry::EnterReason;
use conf_abi::layout::{exitinfo, gpr, PAGE_SIZE, SSA_FRAME_PAGES};
use conf_abi::ocall::RingHeader;

use super::gate::{self, SELECTOR_BLOCK};
use super::thread::{SimThread, SIM_THREAD_MAGIC};

/// What the handler needs to know about the enclave.
pub struct SimGlobals {
    pub enclave_lo: u64,
    pub enclave_hi: u64,
    pub libos_lo: u64,
    pub libos_hi: u64,
    pub ring: *const RingHeader,
}

// SAFETY: plain addresses; the ring header is only touched through atomics.
unsafe impl Send for SimGlobals {}
unsafe impl Sync for SimGlobals {}

pub static GLOBALS: OnceLock<SimGlobals> = OnceLock::new();

/// Signals seen while no enclave thread could take them (counted for tests
/// and logs).
pub static STRAY_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// Signals the sim handles. Synchronous ones become AEXs; the others are
/// forwarded to the enclave.
pub const SYNC_SIGNALS: &[i32] = &[
    libc::SIGSYS,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
];
pub const ASYNC_SIGNALS: &[i32] = &[
    crate::host::SIG_KICK,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGCHLD,
];

/// The kernel's `struct sigaction` (glibc's wrapper would replace our
/// restorer with its own, whose `syscall` lies outside the gate).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Install the gate's handler for every signal the sim handles, and ignore
/// SIGPIPE (a write to a closed pipe must come back to the LibOS as EPIPE).
pub fn install() -> std::io::Result<()> {
    let mut mask = 0u64;
    // Async signals must not interrupt the AEX emulation of a sync one.
    for &s in ASYNC_SIGNALS {
        mask |= 1 << (s - 1);
    }
    for &sig in SYNC_SIGNALS.iter().chain(ASYNC_SIGNALS) {
        let act = KernelSigaction {
            handler: gate::conf_sim_signal_entry as *const () as usize,
            flags: (libc::SA_SIGINFO | libc::SA_ONSTACK | SA_RESTORER) as u64,
            restorer: gate::conf_sim_sigreturn as *const () as usize,
            mask,
        };
        // SAFETY: rt_sigaction with a valid kernel sigaction of 8-byte masks.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &act as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: setting a disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

const SA_RESTORER: libc::c_int = 0x0400_0000;
/// si_code of a SIGSEGV the kernel sends for a general protection fault.
const SI_KERNEL: i32 = 0x80;
const FPE_INTDIV: i32 = 1;
const FPE_INTOVF: i32 = 2;

/// Block every signal on the calling thread; the mask it had before.
pub fn block_all() -> libc::sigset_t {
    // SAFETY: changes the calling thread's signal mask only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Start a thread with every signal blocked from its first instruction (a
/// thread inherits its creator's mask): a signal must never land on a
/// thread before it has the gate's alternate stack, and never on a
/// host-only thread at all.
pub fn spawn_blocked<F>(
    builder: std::thread::Builder,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let old = block_all();
    let spawned = builder.spawn(move || {
        super::cpuid::on_host_only();
        f()
    });
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned
}

/// A stack-only formatter for messages written from the handler.
struct StackBuf {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Report a fatal event from inside a signal handler and exit.
fn fatal(args: std::fmt::Arguments<'_>) -> ! {
    let mut b = StackBuf {
        buf: [0; 512],
        len: 0,
    };
    let _ = std::fmt::write(&mut b, format_args!("[conf] error: {args}\n"));
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, b.buf.as_ptr() as *const _, b.len);
        libc::_exit(crate::exit::ExitCode::SetupFailed as i32);
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSYS => "SIGSYS",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}

/// EXITINFO for a synchronous signal, as SGX would report the exception.
fn exit_info(sig: i32, code: i32) -> u32 {
    use exitinfo::*;
    let vector = match sig {
        libc::SIGSYS | libc::SIGILL => VECTOR_UD,
        libc::SIGSEGV => VECTOR_PF,
        libc::SIGBUS => VECTOR_SIM_BUS,
        libc::SIGFPE if code == FPE_INTDIV || code == FPE_INTOVF => VECTOR_DE,
        libc::SIGFPE => VECTOR_XM,
        libc::SIGTRAP if code == libc::TRAP_BRKPT || code == 0x80 => VECTOR_BP,
        libc::SIGTRAP => VECTOR_DB,
        _ => VECTOR_GP,
    };
    let kind = if vector == VECTOR_BP {
        TYPE_SW
    } else {
        TYPE_HW
    };
    VALID | kind | vector
}

/// Save the interrupted context into SSA frame 0 of `sim`'s slot.
///
/// # Safety
/// `uc` is the kernel's ucontext for this signal; `sim.ssa` is the slot's SSA.
unsafe fn write_ssa(
    sim: &SimThread,
    uc: &libc::ucontext_t,
    rip: u64,
    fs: u64,
    gs: u64,
    info: u32,
    maddr: u64,
) {
    let g = &uc.uc_mcontext.gregs;
    let frame_end = sim.ssa + SSA_FRAME_PAGES as u64 * PAGE_SIZE;
    let gpr_base = (frame_end - gpr::SIZE as u64) as *mut u8;
    let put = |off: usize, v: u64| (gpr_base.add(off) as *mut u64).write_unaligned(v);
    put(gpr::RAX, g[libc::REG_RAX as usize] as u64);
    put(gpr::RCX, g[libc::REG_RCX as usize] as u64);
    put(gpr::RDX, g[libc::REG_RDX as usize] as u64);
    put(gpr::RBX, g[libc::REG_RBX as usize] as u64);
    put(gpr::RSP, g[libc::REG_RSP as usize] as u64);
    put(gpr::RBP, g[libc::REG_RBP as usize] as u64);
    put(gpr::RSI, g[libc::REG_RSI as usize] as u64);
    put(gpr::RDI, g[libc::REG_RDI as usize] as u64);
    put(gpr::R8, g[libc::REG_R8 as usize] as u64);
    put(gpr::R9, g[libc::REG_R9 as usize] as u64);
    put(gpr::R10, g[libc::REG_R10 as usize] as u64);
    put(gpr::R11, g[libc::REG_R11 as usize] as u64);
    put(gpr::R12, g[libc::REG_R12 as usize] as u64);
    put(gpr::R13, g[libc::REG_R13 as usize] as u64);
    put(gpr::R14, g[libc::REG_R14 as usize] as u64);
    put(gpr::R15, g[libc::REG_R15 as usize] as u64);
    put(gpr::RFLAGS, g[libc::REG_EFL as usize] as u64);
    put(gpr::RIP, rip);
    put(gpr::FSBASE, fs);
    put(gpr::GSBASE, gs);
    (gpr_base.add(gpr::EXITINFO) as *mut u32).write_unaligned(info);
    let exinfo = gpr_base.sub(gpr::EXINFO_BELOW);
    (exinfo as *mut u64).write_unaligned(maddr);
    (exinfo.add(8) as *mut u32).write_unaligned(g[libc::REG_ERR as usize] as u32);
}

/// Rewrite the interrupted context so that returning from the handler
/// performs EENTER at OENTRY with `reason`.
///
/// # Safety
/// As for `write_ssa`.
unsafe fn enter_on_return(
    sim: &mut SimThread,
    uc: &mut libc::ucontext_t,
    reason: EnterReason,
    arg: u64,
) {
    let g = &mut uc.uc_mcontext.gregs;
    g[libc::REG_RIP as usize] = sim.oentry as i64;
    g[libc::REG_RDI as usize] = reason as u64 as i64;
    g[libc::REG_RSI as usize] = arg as i64;
    g[libc::REG_RDX as usize] = 0;
    g[libc::REG_RAX as usize] = 1; // CSSA after the AEX
    g[libc::REG_RBX as usize] = sim.tcs as i64;
    g[libc::REG_RCX as usize] = gate::conf_sim_eexit_landing as *const () as usize as i64;
    g[libc::REG_RSP as usize] = sim.host_rsp as i64;
    g[libc::REG_EFL as usize] = 0x202;
    sim.resume_fs = sim.tls;
    sim.resume_gs = sim.tls;
    sim.resume_sel = SELECTOR_BLOCK;
}

/// A signal on a thread without an alternate stack, which is never one
/// running a slot: conf-run's main thread once it has left the enclave for
/// good (the root conf-run returns from `main`, and Rust's runtime takes
/// down the alternate stack it thinks is its own) while children still
/// exit. An asynchronous signal is kept for the enclave as usual; a
/// synchronous one is a crash of conf-run itself: the default action
/// produces it. `conf_sim_signal_entry` jumps here with the host's FS
/// base untouched.
///
/// # Safety
/// Called only by the signal trampoline, with the kernel's arguments.
#[no_mangle]
pub unsafe extern "C" fn conf_sim_signal_foreign(
    sig: i32,
    _info: *mut libc::siginfo_t,
    _uc: *mut libc::c_void,
) {
    // SAFETY: async-signal-safe calls; the ring outlives every thread.
    unsafe {
        if SYNC_SIGNALS.contains(&sig) {
            libc::signal(sig, libc::SIG_DFL);
            return;
        }
        if let Some(g) = GLOBALS.get() {
            if sig != crate::host::SIG_KICK {
                (*g.ring)
                    .pending_signals
                    .fetch_or(1 << (sig - 1), Ordering::SeqCst);
            }
        }
    }
}

/// The handler proper, called by `conf_sim_signal_entry` with the host FS
/// base restored. `fs`/`gs` are the bases at the moment of the signal.
/// # Safety
/// Called only by the signal trampoline, with the kernel's `info` and
/// `uc` and this thread's `SimThread`.
#[no_mangle]
pub unsafe extern "C" fn conf_sim_signal_rust(
    sig: i32,
    info: *mut libc::siginfo_t,
    uc: *mut libc::c_void,
    sim: *mut SimThread,
    fs: u64,
    gs: u64,
) {
    // SAFETY: the kernel passes valid info/ucontext pointers; `sim` is the
    // base of this thread's aligned alternate stack (checked by magic).
    unsafe {
        let sim = &mut *sim;
        let uc = &mut *(uc as *mut libc::ucontext_t);
        let info = &*info;
        if sim.magic != SIM_THREAD_MAGIC {
            fatal(format_args!(
                "signal {sig} on a thread without enclave state"
            ));
        }
        let Some(g) = GLOBALS.get() else {
            fatal(format_args!("signal {sig} before the enclave was set up"));
        };
        let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        let in_enclave = rip >= g.enclave_lo && rip < g.enclave_hi;
        let in_libos = rip >= g.libos_lo && rip < g.libos_hi;
        let sync = SYNC_SIGNALS.contains(&sig);

        if !sync {
            if sig != crate::host::SIG_KICK {
                (*g.ring)
                    .pending_signals
                    .fetch_or(1 << (sig - 1), Ordering::SeqCst);
            }
            if in_enclave && !in_libos && gs == sim.tls {
                write_ssa(sim, uc, rip, fs, gs, 0, 0);
                enter_on_return(sim, uc, EnterReason::HostSignal, sig as u64);
            } else {
                STRAY_SIGNALS.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let gp_fault = sig == libc::SIGSEGV && info.si_code == SI_KERNEL;
        // The faulting instruction was just fetched from `rip`: readable.
        let cpuid = gp_fault && super::cpuid::is_cpuid_at(rip);
        if cpuid && !in_enclave {
            super::cpuid::emulate_for_host(uc);
            return;
        }
        if !in_enclave {
            if sig == libc::SIGSYS {
                fatal(format_args!(
                    "host code made a system call with dispatch blocked (rip {rip:#x}, rax {})",
                    uc.uc_mcontext.gregs[libc::REG_RAX as usize]
                ));
            }
            // A crash of conf-run itself: let the default action produce it.
            libc::signal(sig, libc::SIG_DFL);
            return;
        }
        if in_libos {
            let off = rip - g.libos_lo;
            if sig == libc::SIGSYS {
                let nr = uc.uc_mcontext.gregs[libc::REG_RAX as usize];
                fatal(format_args!(
                    "boundary violation: the LibOS executed a raw system call (number {nr}) at LibOS+{off:#x}; the LibOS must reach the host only through the OCALL ring"
                ));
            }
            if cpuid {
                fatal(format_args!(
                    "the LibOS executed CPUID at LibOS+{off:#x} after asking for it to trap (an SGX enclave cannot execute it); the LibOS must use its CPUID cache"
                ));
            }
            fatal(format_args!(
                "the LibOS crashed: {} at LibOS+{off:#x} (address {:#x}); this is a conf bug, please report it with `--log-level debug` output",
                signal_name(sig),
                info.si_addr() as u64
            ));
        }
        // Program code: emulate AEX + EENTER(Exception).
        let (report_rip, maddr) = if sig == libc::SIGSYS {
            // SGX reports #UD at the `syscall` instruction itself.
            (rip - 2, 0)
        } else {
            (rip, info.si_addr() as u64)
        };
        let info_bits = if cpuid {
            // CPUID is illegal in an SGX enclave: #UD at the instruction.
            exitinfo::VALID | exitinfo::TYPE_HW | exitinfo::VECTOR_UD
        } else {
            exit_info(sig, info.si_code)
        };
        write_ssa(sim, uc, report_rip, fs, gs, info_bits, maddr);
        enter_on_return(sim, uc, EnterReason::Exception, sig as u64);
    }
}
