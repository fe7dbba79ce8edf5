//! Per-thread LibOS state reached through GS.
//!
//! The TLS page of each thread slot starts with the measured [`SlotRecord`];
//! the LibOS keeps the rest of its per-thread state after it. The assembly in
//! `entry.rs` addresses these fields by the offsets checked below, so field
//! order is part of that contract.

use conf_abi::layout::SlotRecord;

/// Registers of the program at the moment it entered the LibOS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rflags: u64,
    pub rip: u64,
    pub fsbase: u64,
    pub _pad: u64,
}

#[repr(C, align(16))]
pub struct Tls {
    pub record: SlotRecord,
    pub self_addr: u64,
    /// Host stack pointer at the latest EENTER (restored before EEXIT).
    pub host_rsp: u64,
    /// Host address to EEXIT to (RCX at the latest EENTER).
    pub aep: u64,
    /// LibOS stack pointer saved while this thread is out for an OCALL.
    pub libos_rsp: u64,
    /// Scratch: the program's stack pointer on the fast syscall path.
    pub user_rsp: u64,
    /// Where `return_to_user` jumps.
    pub resume_rip: u64,
    /// Non-zero under the sim backend: EEXIT is a jump, not ENCLU.
    pub sim: u64,
    /// ELRANGE bounds; an EEXIT target inside them is refused.
    pub enclave_lo: u64,
    pub enclave_hi: u64,
    /// The Rust `Thread` this slot runs, or 0.
    pub thread: u64,
    /// Non-zero while LibOS code runs on this slot.
    pub in_libos: u64,
    /// Program XMM0-15 and MXCSR, saved at entry because LibOS code uses SSE.
    pub xmm: [u8; 256],
    pub mxcsr: u32,
    pub _pad0: u32,
    pub _pad1: u64,
    /// The program's registers while the LibOS serves it.
    pub user: UserRegs,
    /// Page-fault error code of the last fault (for the signal frame).
    pub fault_err: u64,
    _pad2: [u8; 0x38],
    /// The program's AVX/AVX-512 state while the thread is out in the host
    /// (XSAVEC image, compacted: legacy area unused, header, components).
    pub xsave: [u8; XSAVE_AREA],
}

/// Room for the compacted XSAVE image of AVX, opmask, ZMM_Hi256 and
/// Hi16_ZMM (512 + 64 + 256 + 64 + 512 + 1024 bytes, with alignment slack).
pub const XSAVE_AREA: usize = 0xb00;

pub mod off {
    pub const SELF_ADDR: usize = 0x38;
    pub const HOST_RSP: usize = 0x40;
    pub const AEP: usize = 0x48;
    pub const LIBOS_RSP: usize = 0x50;
    pub const USER_RSP: usize = 0x58;
    pub const RESUME_RIP: usize = 0x60;
    pub const SIM: usize = 0x68;
    pub const ENCLAVE_LO: usize = 0x70;
    pub const ENCLAVE_HI: usize = 0x78;
    pub const THREAD: usize = 0x80;
    pub const IN_LIBOS: usize = 0x88;
    pub const XMM: usize = 0x90;
    pub const MXCSR: usize = 0x190;
    pub const USER: usize = 0x1a0;
    pub const XSAVE: usize = 0x280;
}

const _: () = {
    assert!(core::mem::offset_of!(Tls, self_addr) == off::SELF_ADDR);
    assert!(core::mem::offset_of!(Tls, host_rsp) == off::HOST_RSP);
    assert!(core::mem::offset_of!(Tls, aep) == off::AEP);
    assert!(core::mem::offset_of!(Tls, libos_rsp) == off::LIBOS_RSP);
    assert!(core::mem::offset_of!(Tls, user_rsp) == off::USER_RSP);
    assert!(core::mem::offset_of!(Tls, resume_rip) == off::RESUME_RIP);
    assert!(core::mem::offset_of!(Tls, sim) == off::SIM);
    assert!(core::mem::offset_of!(Tls, enclave_lo) == off::ENCLAVE_LO);
    assert!(core::mem::offset_of!(Tls, enclave_hi) == off::ENCLAVE_HI);
    assert!(core::mem::offset_of!(Tls, thread) == off::THREAD);
    assert!(core::mem::offset_of!(Tls, in_libos) == off::IN_LIBOS);
    assert!(core::mem::offset_of!(Tls, xmm) == off::XMM);
    assert!(core::mem::offset_of!(Tls, mxcsr) == off::MXCSR);
    assert!(core::mem::offset_of!(Tls, user) == off::USER);
    assert!(core::mem::offset_of!(Tls, xsave) == off::XSAVE);
    assert!(off::XSAVE.is_multiple_of(64));
    assert!(core::mem::size_of::<Tls>() <= 4096);
};

/// This thread's TLS page.
#[inline(always)]
pub fn tls() -> &'static mut Tls {
    let addr: u64;
    // SAFETY: GS base is this slot's TLS page whenever LibOS code runs (EENTER
    // sets it and nothing in the LibOS changes it).
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) addr, off = const off::SELF_ADDR, options(nostack, readonly, preserves_flags));
        &mut *(addr as *mut Tls)
    }
}

/// Address of the TLS page straight from the GS base (valid before
/// `self_addr` is filled in).
#[inline(always)]
pub fn gs_base() -> u64 {
    let v: u64;
    // SAFETY: rdgsbase reads a register.
    unsafe {
        core::arch::asm!("rdgsbase {}", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Set the FS base (the program's TLS pointer).
#[inline(always)]
pub fn set_fsbase(v: u64) {
    // SAFETY: writes a register the LibOS itself never relies on.
    unsafe { core::arch::asm!("wrfsbase {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}
