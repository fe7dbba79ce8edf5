//! CPUID as an SGX enclave sees it: an instruction that raises #UD.
//!
//! The LibOS asks for it (`Ocall::TrapCpuid`) once it has booted. With
//! `CONF_SIM_TRAP_CPUID=1` in conf-run's environment the sim grants it:
//! from then on every enclave thread runs with CPUID faulting (arch_prctl
//! ARCH_SET_CPUID), so a CPUID in program code arrives as a general
//! protection fault that the signal handler reports as #UD, and the LibOS
//! answers it from its cache — the path SGX takes. Otherwise the program's
//! CPUID runs natively: trapping costs more than it saves (on a virtual
//! machine the hypervisor intercepts CPUID anyway and then injects the
//! fault: 8.3 µs per CPUID instead of 6.2 here; on bare metal the
//! instruction is far cheaper than any fault).
//!
//! Host code running on an enclave thread (OCALL handlers, libraries
//! detecting CPU features on first use) still gets real answers: its faults
//! are emulated here by executing CPUID with faulting briefly off.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

const ARCH_GET_CPUID: libc::c_int = 0x1011;
const ARCH_SET_CPUID: libc::c_int = 0x1012;

/// Set once the LibOS asked for it: enclave threads attached later trap too.
static TRAPPING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread runs with CPUID faulting on.
    static FAULTING: Cell<bool> = const { Cell::new(false) };
}

fn set_cpuid_enabled(enabled: bool) -> bool {
    // SAFETY: arch_prctl with an integer argument changes only a flag of the
    // calling thread.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_SET_CPUID,
            enabled as libc::c_ulong,
        ) == 0
    }
}

/// Whether conf-run was asked to make CPUID trap (`CONF_SIM_TRAP_CPUID=1`).
fn wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var_os("CONF_SIM_TRAP_CPUID").is_some_and(|v| v == "1"))
}

/// Turn trapping on for the calling enclave thread and for every enclave
/// thread attached from now on. Err(errno): not asked for (ENOSYS), or the
/// CPU cannot fault on CPUID (ENODEV).
pub fn trap_from_now_on() -> Result<(), i32> {
    if !wanted() {
        return Err(libc::ENOSYS);
    }
    if !set_cpuid_enabled(false) {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENODEV));
    }
    FAULTING.with(|f| f.set(true));
    TRAPPING.store(true, Ordering::Release);
    Ok(())
}

/// For a thread about to run enclave code: trap CPUID if the LibOS asked.
pub fn on_attach() {
    if TRAPPING.load(Ordering::Acquire) && set_cpuid_enabled(false) {
        FAULTING.with(|f| f.set(true));
    }
}

/// For a thread that will run host code only (a new thread inherits its
/// creator's faulting; a thread leaving its enclave slot keeps running
/// host code).
pub fn on_host_only() {
    // SAFETY: arch_prctl reading a flag of the calling thread.
    let faulting = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_CPUID, 0) } == 0;
    if faulting {
        set_cpuid_enabled(true);
    }
    FAULTING.with(|f| f.set(false));
}

/// CPUID executed on the host CPU, whatever this thread's faulting.
pub fn host_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let faulting = FAULTING.with(|f| f.get());
    if faulting {
        set_cpuid_enabled(true);
    }
    // Faulting is off for this thread here.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    if faulting {
        set_cpuid_enabled(false);
    }
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Is the instruction at `rip` a CPUID (0f a2)? `rip` must be readable.
///
/// # Safety
/// `rip` points at two readable bytes (the instruction that faulted).
pub unsafe fn is_cpuid_at(rip: u64) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (rip as *const [u8; 2]).read_unaligned() == [0x0f, 0xa2] }
}

/// Emulate a faulting CPUID of host code in the interrupted context `uc`.
pub fn emulate_for_host(uc: &mut libc::ucontext_t) {
    let g = &mut uc.uc_mcontext.gregs;
    let [a, b, c, d] = host_cpuid(
        g[libc::REG_RAX as usize] as u32,
        g[libc::REG_RCX as usize] as u32,
    );
    // CPUID writes the low halves and zeroes the high ones.
    g[libc::REG_RAX as usize] = a as i64;
    g[libc::REG_RBX as usize] = b as i64;
    g[libc::REG_RCX as usize] = c as i64;
    g[libc::REG_RDX as usize] = d as i64;
    g[libc::REG_RIP as usize] += 2;
}
