//! Host threads that run enclave thread slots.
//!
//! Each has a `SimThread` at the base of a size-aligned alternate signal
//! stack, so the signal gate finds it from the stack pointer alone (the FS
//! base may belong to the program when a signal arrives).

use std::io;
use std::ptr;

use super::gate::{self, off, ALTSTACK_SIZE, SELECTOR_ALLOW};

pub const SIM_THREAD_MAGIC: u64 = u64::from_le_bytes(*b"CONFSIMT");

/// Per-thread emulated CPU state for the sim backend. The first fields are
/// read by the gate assembly at the offsets in `gate::off`.
#[repr(C)]
pub struct SimThread {
    pub magic: u64,
    pub host_fs: u64,
    pub host_rsp: u64,
    pub selector: u8,
    _pad0: [u8; 7],
    pub resume_fs: u64,
    pub resume_gs: u64,
    pub resume_sel: u8,
    _pad1: [u8; 7],
    /// Absolute addresses of this slot's TCS and TLS page, and OENTRY.
    pub tcs: u64,
    pub tls: u64,
    pub oentry: u64,
    /// The thread slot this host thread runs.
    pub slot: u64,
    /// Absolute address of this slot's first SSA frame.
    pub ssa: u64,
}

const _: () = {
    assert!(std::mem::offset_of!(SimThread, host_fs) == off::HOST_FS);
    assert!(std::mem::offset_of!(SimThread, host_rsp) == off::HOST_RSP);
    assert!(std::mem::offset_of!(SimThread, selector) == off::SELECTOR);
    assert!(std::mem::offset_of!(SimThread, resume_fs) == off::RESUME_FS);
    assert!(std::mem::offset_of!(SimThread, resume_gs) == off::RESUME_GS);
    assert!(std::mem::offset_of!(SimThread, resume_sel) == off::RESUME_SEL);
    assert!(std::mem::offset_of!(SimThread, tcs) == off::TCS);
    assert!(std::mem::offset_of!(SimThread, tls) == off::TLS);
    assert!(std::mem::offset_of!(SimThread, oentry) == off::OENTRY);
};

const PR_SET_SYSCALL_USER_DISPATCH: libc::c_int = 59;
const PR_SYS_DISPATCH_ON: libc::c_ulong = 1;
const PR_SYS_DISPATCH_OFF: libc::c_ulong = 0;

/// Undo [`attach_current`] for the calling thread before it lets another
/// OS thread take its slot: that thread reuses the slot's alternate stack,
/// with the Syscall User Dispatch selector in it. Left on, this thread's
/// last system calls (its stack's munmap, exit) would read the new
/// thread's selector — BLOCK once it runs the enclave — and be dispatched,
/// or the kernel, finding a value in the middle of being rewritten, kills
/// the process with SIGSYS; and a signal could land on the shared stack.
pub fn detach_current() {
    super::signals::block_all();
    // SAFETY: dispatch and altstack changes of this thread only; it runs no
    // enclave code again.
    unsafe {
        libc::prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
        let off = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        libc::sigaltstack(&off, ptr::null_mut());
    }
    super::cpuid::on_host_only();
}

/// Set up the calling host thread to run slot `slot`: allocate its aligned
/// alternate signal stack with the `SimThread` at the bottom, install it,
/// and turn on Syscall User Dispatch with only the gate allowed.
///
/// The returned pointer stays valid for the life of the process.
pub fn attach_current(
    slot: u64,
    tcs: u64,
    tls: u64,
    oentry: u64,
    ssa: u64,
) -> io::Result<*mut SimThread> {
    // Each slot keeps its alternate stack for the life of the process: the
    // OS threads that run a slot come and go, one at a time.
    static STACKS: std::sync::Mutex<Vec<(u64, usize)>> = std::sync::Mutex::new(Vec::new());
    let reused = STACKS
        .lock()
        .unwrap()
        .iter()
        .find(|(s, _)| *s == slot)
        .map(|(_, b)| *b);
    let base = match reused {
        Some(b) => b,
        None => {
            let b = alloc_altstack()?;
            STACKS.lock().unwrap().push((slot, b));
            b
        }
    };
    attach_at(base, slot, tcs, tls, oentry, ssa)
}

/// A size-aligned alternate signal stack.
fn alloc_altstack() -> io::Result<usize> {
    // SAFETY: anonymous mapping; we keep the aligned part and unmap the rest.
    let base = unsafe {
        let raw = libc::mmap(
            ptr::null_mut(),
            ALTSTACK_SIZE * 2,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let raw = raw as usize;
        let aligned = (raw + ALTSTACK_SIZE - 1) & !(ALTSTACK_SIZE - 1);
        if aligned > raw {
            libc::munmap(raw as *mut _, aligned - raw);
        }
        let tail = raw + ALTSTACK_SIZE * 2 - (aligned + ALTSTACK_SIZE);
        if tail > 0 {
            libc::munmap((aligned + ALTSTACK_SIZE) as *mut _, tail);
        }
        aligned
    };
    Ok(base)
}

fn attach_at(
    base: usize,
    slot: u64,
    tcs: u64,
    tls: u64,
    oentry: u64,
    ssa: u64,
) -> io::Result<*mut SimThread> {
    let sim = base as *mut SimThread;
    // SAFETY: fresh, writable, aligned memory of sufficient size.
    unsafe {
        sim.write(SimThread {
            magic: SIM_THREAD_MAGIC,
            host_fs: 0,
            host_rsp: 0,
            selector: SELECTOR_ALLOW,
            _pad0: [0; 7],
            resume_fs: 0,
            resume_gs: 0,
            resume_sel: SELECTOR_ALLOW,
            _pad1: [0; 7],
            tcs,
            tls,
            oentry,
            slot,
            ssa,
        });
        let stack = libc::stack_t {
            ss_sp: (base + 4096) as *mut _,
            ss_flags: 0,
            ss_size: ALTSTACK_SIZE - 4096,
        };
        if libc::sigaltstack(&stack, ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let (start, end) = gate::gate_range();
        let r = libc::prctl(
            PR_SET_SYSCALL_USER_DISPATCH,
            PR_SYS_DISPATCH_ON,
            start as libc::c_ulong,
            (end - start) as libc::c_ulong,
            &raw mut (*sim).selector as libc::c_ulong,
        );
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("Syscall User Dispatch is not available ({e}); the sim backend needs Linux 5.11 or later"),
            ));
        }
    }
    super::cpuid::on_attach();
    Ok(sim)
}
