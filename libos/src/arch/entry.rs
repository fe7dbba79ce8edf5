//! The enclave's entry and exit paths, in assembly because they run before a
//! stack exists or after the program's registers are back in place.
//!
//! * `enclave_entry` (TCS.OENTRY): every EENTER lands here. An OCALL return
//!   resumes the LibOS stack that `libos_ocall_exit` saved; every other entry
//!   starts a fresh LibOS stack at the top (the TLS page sits right above it)
//!   after saving the program's SSE state, and calls `libos_enter`.
//! * `libos_ocall_exit`: EEXIT to the host, to be resumed by an OCALL return.
//! * `libos_exit_final`: EEXIT for good (exit, abort).
//! * `libos_return_to_user`: restore the program's registers and jump back.
//! * `libos_syscall_entry`: where rewritten `syscall` sites jump.

use super::tls::off;

pub const TLS_USER_RAX: usize = off::USER;
pub const TLS_USER_RCX: usize = off::USER + 8;
pub const TLS_USER_RDX: usize = off::USER + 16;
pub const TLS_USER_RBX: usize = off::USER + 24;
pub const TLS_USER_RSP: usize = off::USER + 32;
pub const TLS_USER_RBP: usize = off::USER + 40;
pub const TLS_USER_RSI: usize = off::USER + 48;
pub const TLS_USER_RDI: usize = off::USER + 56;
pub const TLS_USER_R8: usize = off::USER + 64;
pub const TLS_USER_R15: usize = off::USER + 120;
pub const TLS_USER_RFLAGS: usize = off::USER + 128;
pub const TLS_USER_RIP: usize = off::USER + 136;
pub const TLS_USER_FSBASE: usize = off::USER + 144;

/// MXCSR value the LibOS runs with (all exceptions masked, round to nearest).
#[no_mangle]
static LIBOS_MXCSR: u32 = 0x1f80;

/// The XSAVE components of the program's that the LibOS itself never
/// touches but the host may (its memcpy uses AVX-512): AVX (upper halves of
/// YMM0-15), opmask, ZMM_Hi256, Hi16_ZMM — as far as XCR0 enables them.
/// They are saved (XSAVEC) and cleared before every exit to the host and
/// restored when it returns; the LibOS's own SSE use is covered by the XMM
/// copy taken at entry. 0: nothing to do (no XSAVEC, or no AVX).
#[no_mangle]
static LIBOS_XSAVE_MASK: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// An XSAVE image (standard form) whose header says "every component in
/// its initial state": XRSTOR from it clears what LIBOS_XSAVE_MASK names.
/// XRSTOR also loads MXCSR whenever it restores AVX state: the image holds
/// the default (every exception masked), or the host would run with all
/// of them unmasked and trap on its first inexact result.
#[repr(C, align(64))]
struct XsaveInit([u8; 576]);
#[no_mangle]
static LIBOS_XSAVE_INIT: XsaveInit = {
    let mut image = [0u8; 576];
    let mxcsr = 0x1f80u32.to_le_bytes();
    image[24] = mxcsr[0];
    image[25] = mxcsr[1];
    image[26] = mxcsr[2];
    image[27] = mxcsr[3];
    XsaveInit(image)
};

/// Decide LIBOS_XSAVE_MASK from CPUID and XCR0 (once, at boot).
pub fn init_xsave_mask() {
    const AVX_AND_AVX512: u64 = (1 << 2) | (1 << 5) | (1 << 6) | (1 << 7);
    // SAFETY: CPUID is always available; XGETBV only once CPUID says the OS
    // enabled XSAVE.
    let mask = unsafe {
        let osxsave = super::cpuid::cpuid(1, 0)[2] & (1 << 27) != 0;
        let xsavec = super::cpuid::cpuid(0xd, 1)[0] & (1 << 1) != 0;
        if !(osxsave && xsavec) {
            return;
        }
        core::arch::x86_64::_xgetbv(0) & AVX_AND_AVX512
    };
    LIBOS_XSAVE_MASK.store(mask as u32, core::sync::atomic::Ordering::Relaxed);
}

core::arch::global_asm!(
    ".pushsection .text.conf_entry, \"ax\"",
    ".globl enclave_entry",
    ".type enclave_entry, @function",
    "enclave_entry:",
    "mov gs:[{aep}], rcx",
    "mov gs:[{host_rsp}], rsp",
    "cmp rdi, 3",
    "je 2f",
    // A fresh entry while this slot is parked in an OCALL would overwrite the
    // parked LibOS stack: only a hostile host does that.
    "cmp qword ptr gs:[{libos_rsp}], 0",
    "jne 9f",
    "movdqu gs:[{xmm} + 0x00], xmm0",
    "movdqu gs:[{xmm} + 0x10], xmm1",
    "movdqu gs:[{xmm} + 0x20], xmm2",
    "movdqu gs:[{xmm} + 0x30], xmm3",
    "movdqu gs:[{xmm} + 0x40], xmm4",
    "movdqu gs:[{xmm} + 0x50], xmm5",
    "movdqu gs:[{xmm} + 0x60], xmm6",
    "movdqu gs:[{xmm} + 0x70], xmm7",
    "movdqu gs:[{xmm} + 0x80], xmm8",
    "movdqu gs:[{xmm} + 0x90], xmm9",
    "movdqu gs:[{xmm} + 0xa0], xmm10",
    "movdqu gs:[{xmm} + 0xb0], xmm11",
    "movdqu gs:[{xmm} + 0xc0], xmm12",
    "movdqu gs:[{xmm} + 0xd0], xmm13",
    "movdqu gs:[{xmm} + 0xe0], xmm14",
    "movdqu gs:[{xmm} + 0xf0], xmm15",
    "stmxcsr gs:[{mxcsr}]",
    "ldmxcsr [rip + LIBOS_MXCSR]",
    "cld",
    "rdgsbase rsp",
    "mov qword ptr gs:[{in_libos}], 1",
    "mov rcx, rax",
    "call libos_enter",
    "ud2",
    "2:",
    "mov rsp, gs:[{libos_rsp}]",
    "test rsp, rsp",
    "jz 9f",
    "mov qword ptr gs:[{libos_rsp}], 0",
    "mov qword ptr gs:[{in_libos}], 1",
    "mov eax, dword ptr [rip + LIBOS_XSAVE_MASK]",
    "test eax, eax",
    "jz 5f",
    "xor edx, edx",
    "xrstor64 gs:[{xsave}]",
    "5:",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 16",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    "9:",
    "ud2",
    ".size enclave_entry, . - enclave_entry",
    "",
    ".globl libos_ocall_exit",
    ".type libos_ocall_exit, @function",
    "libos_ocall_exit:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 16",
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    "mov eax, dword ptr [rip + LIBOS_XSAVE_MASK]",
    "test eax, eax",
    "jz 5f",
    "xor edx, edx",
    // XRSTOR wants header bytes 16..63 zero; XSAVEC writes only 0..15.
    "mov qword ptr gs:[{xsave} + 528], rdx",
    "mov qword ptr gs:[{xsave} + 536], rdx",
    "mov qword ptr gs:[{xsave} + 544], rdx",
    "mov qword ptr gs:[{xsave} + 552], rdx",
    "mov qword ptr gs:[{xsave} + 560], rdx",
    "mov qword ptr gs:[{xsave} + 568], rdx",
    "xsavec64 gs:[{xsave}]",
    // The host sees none of it (and cannot hand it back changed).
    "xrstor64 [rip + LIBOS_XSAVE_INIT]",
    "5:",
    "mov gs:[{libos_rsp}], rsp",
    "jmp libos_eexit_common",
    ".size libos_ocall_exit, . - libos_ocall_exit",
    "",
    ".globl libos_exit_final",
    ".type libos_exit_final, @function",
    "libos_exit_final:",
    "jmp libos_eexit_common",
    ".size libos_exit_final, . - libos_exit_final",
    "",
    "libos_eexit_common:",
    "mov qword ptr gs:[{in_libos}], 0",
    "mov rbx, gs:[{aep}]",
    "cmp rbx, gs:[{lo}]",
    "jb 3f",
    "cmp rbx, gs:[{hi}]",
    "jb 9b",
    "3:",
    "mov rsp, gs:[{host_rsp}]",
    // Leave nothing of the enclave's in registers the host can read.
    "xor eax, eax",
    "xor ecx, ecx",
    "xor edx, edx",
    "xor ebp, ebp",
    "xor r8d, r8d",
    "xor r9d, r9d",
    "xor r10d, r10d",
    "xor r11d, r11d",
    "xor r12d, r12d",
    "xor r13d, r13d",
    "xor r14d, r14d",
    "xor r15d, r15d",
    "pxor xmm0, xmm0",
    "pxor xmm1, xmm1",
    "pxor xmm2, xmm2",
    "pxor xmm3, xmm3",
    "pxor xmm4, xmm4",
    "pxor xmm5, xmm5",
    "pxor xmm6, xmm6",
    "pxor xmm7, xmm7",
    "pxor xmm8, xmm8",
    "pxor xmm9, xmm9",
    "pxor xmm10, xmm10",
    "pxor xmm11, xmm11",
    "pxor xmm12, xmm12",
    "pxor xmm13, xmm13",
    "pxor xmm14, xmm14",
    "pxor xmm15, xmm15",
    "cmp qword ptr gs:[{sim}], 0",
    "jne 4f",
    "mov eax, 4",
    "enclu",
    "4:",
    "jmp rbx",
    "",
    ".globl libos_return_to_user",
    ".type libos_return_to_user, @function",
    "libos_return_to_user:",
    "mov rax, [rdi + 144]",
    "wrfsbase rax",
    "mov rax, [rdi + 136]",
    "mov gs:[{resume_rip}], rax",
    "movdqu xmm0, gs:[{xmm} + 0x00]",
    "movdqu xmm1, gs:[{xmm} + 0x10]",
    "movdqu xmm2, gs:[{xmm} + 0x20]",
    "movdqu xmm3, gs:[{xmm} + 0x30]",
    "movdqu xmm4, gs:[{xmm} + 0x40]",
    "movdqu xmm5, gs:[{xmm} + 0x50]",
    "movdqu xmm6, gs:[{xmm} + 0x60]",
    "movdqu xmm7, gs:[{xmm} + 0x70]",
    "movdqu xmm8, gs:[{xmm} + 0x80]",
    "movdqu xmm9, gs:[{xmm} + 0x90]",
    "movdqu xmm10, gs:[{xmm} + 0xa0]",
    "movdqu xmm11, gs:[{xmm} + 0xb0]",
    "movdqu xmm12, gs:[{xmm} + 0xc0]",
    "movdqu xmm13, gs:[{xmm} + 0xd0]",
    "movdqu xmm14, gs:[{xmm} + 0xe0]",
    "movdqu xmm15, gs:[{xmm} + 0xf0]",
    "ldmxcsr gs:[{mxcsr}]",
    "mov qword ptr gs:[{in_libos}], 0",
    "push qword ptr [rdi + 128]",
    "popfq",
    "mov rax, [rdi + 0]",
    "mov rcx, [rdi + 8]",
    "mov rdx, [rdi + 16]",
    "mov rbx, [rdi + 24]",
    "mov rbp, [rdi + 40]",
    "mov rsi, [rdi + 48]",
    "mov r8, [rdi + 64]",
    "mov r9, [rdi + 72]",
    "mov r10, [rdi + 80]",
    "mov r11, [rdi + 88]",
    "mov r12, [rdi + 96]",
    "mov r13, [rdi + 104]",
    "mov r14, [rdi + 112]",
    "mov r15, [rdi + 120]",
    "mov rsp, [rdi + 32]",
    "mov rdi, [rdi + 56]",
    "jmp gs:[{resume_rip}]",
    ".size libos_return_to_user, . - libos_return_to_user",
    "",
    // Rewritten syscall sites arrive with RAX = number, RCX = address to
    // return to; RCX and R11 are ours, as after a real `syscall`.
    ".globl libos_syscall_entry",
    ".type libos_syscall_entry, @function",
    "libos_syscall_entry:",
    "mov gs:[{user} + 32], rsp",
    "rdgsbase rsp",
    "mov gs:[{user} + 0], rax",
    "mov gs:[{user} + 136], rcx",
    "mov gs:[{user} + 16], rdx",
    "mov gs:[{user} + 24], rbx",
    "mov gs:[{user} + 40], rbp",
    "mov gs:[{user} + 48], rsi",
    "mov gs:[{user} + 56], rdi",
    "mov gs:[{user} + 64], r8",
    "mov gs:[{user} + 72], r9",
    "mov gs:[{user} + 80], r10",
    "mov gs:[{user} + 96], r12",
    "mov gs:[{user} + 104], r13",
    "mov gs:[{user} + 112], r14",
    "mov gs:[{user} + 120], r15",
    "pushfq",
    "pop r11",
    "mov gs:[{user} + 128], r11",
    "mov gs:[{user} + 8], rcx",
    "mov gs:[{user} + 88], r11",
    "rdfsbase r11",
    "mov gs:[{user} + 144], r11",
    "movdqu gs:[{xmm} + 0x00], xmm0",
    "movdqu gs:[{xmm} + 0x10], xmm1",
    "movdqu gs:[{xmm} + 0x20], xmm2",
    "movdqu gs:[{xmm} + 0x30], xmm3",
    "movdqu gs:[{xmm} + 0x40], xmm4",
    "movdqu gs:[{xmm} + 0x50], xmm5",
    "movdqu gs:[{xmm} + 0x60], xmm6",
    "movdqu gs:[{xmm} + 0x70], xmm7",
    "movdqu gs:[{xmm} + 0x80], xmm8",
    "movdqu gs:[{xmm} + 0x90], xmm9",
    "movdqu gs:[{xmm} + 0xa0], xmm10",
    "movdqu gs:[{xmm} + 0xb0], xmm11",
    "movdqu gs:[{xmm} + 0xc0], xmm12",
    "movdqu gs:[{xmm} + 0xd0], xmm13",
    "movdqu gs:[{xmm} + 0xe0], xmm14",
    "movdqu gs:[{xmm} + 0xf0], xmm15",
    "stmxcsr gs:[{mxcsr}]",
    "ldmxcsr [rip + LIBOS_MXCSR]",
    "cld",
    "mov qword ptr gs:[{in_libos}], 1",
    "call libos_fast_syscall",
    "ud2",
    ".size libos_syscall_entry, . - libos_syscall_entry",
    ".popsection",
    aep = const off::AEP,
    host_rsp = const off::HOST_RSP,
    libos_rsp = const off::LIBOS_RSP,
    resume_rip = const off::RESUME_RIP,
    sim = const off::SIM,
    lo = const off::ENCLAVE_LO,
    hi = const off::ENCLAVE_HI,
    in_libos = const off::IN_LIBOS,
    xmm = const off::XMM,
    mxcsr = const off::MXCSR,
    user = const off::USER,
    xsave = const off::XSAVE,
);

extern "C" {
    /// EEXIT with `reason`/`arg`; returns when the host EENTERs with
    /// `OcallReturn`.
    pub fn libos_ocall_exit(reason: u64, arg: u64);
    /// EEXIT for good.
    pub fn libos_exit_final(reason: u64, arg: u64) -> !;
    /// Restore `regs` and the saved SSE state, and continue the program.
    pub fn libos_return_to_user(regs: *const super::tls::UserRegs) -> !;
    /// Entry for rewritten `syscall` sites.
    pub fn libos_syscall_entry();
}

#[cfg(test)]
mod tests {
    /// XRSTOR from the init image loads MXCSR too (with AVX state): the
    /// host must get the default, every SIMD exception masked.
    #[test]
    fn the_init_image_carries_the_default_mxcsr() {
        let image = &super::LIBOS_XSAVE_INIT.0;
        assert_eq!(
            u32::from_le_bytes(image[24..28].try_into().unwrap()),
            0x1f80
        );
        // The header (bytes 512..576) says "all components initial",
        // standard form.
        assert!(image[512..].iter().all(|&b| b == 0));
    }
}
