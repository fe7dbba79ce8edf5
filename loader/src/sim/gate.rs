//! The host gate: the only host code that runs with the enclave's registers,
//! and the only page from which an enclave thread may make system calls
//! (Syscall User Dispatch allows exactly this range).
//!
//! * `conf_sim_eenter` emulates EENTER: saves the host's callee-saved
//!   registers, stack and FS base, loads FS/GS from the TCS, blocks system
//!   calls and jumps to OENTRY.
//! * `conf_sim_eexit_landing` is where the enclave's EEXIT jumps (the AEP it
//!   was given): it undoes the above and returns from `conf_sim_eenter`.
//! * `conf_sim_signal_entry` runs first on every signal, on the thread's
//!   aligned alternate stack: it finds the thread's `SimThread` from the stack
//!   address, allows system calls, puts the host FS base back and calls the
//!   Rust handler, which may rewrite the interrupted context (AEX emulation).
//! * `conf_sim_sigreturn` is the signal restorer; its `syscall` is the one
//!   system call instruction inside the allowed range.

/// Size and alignment of each enclave thread's alternate signal stack; the
/// `SimThread` sits at its base.
pub const ALTSTACK_SIZE: usize = 256 * 1024;

/// SUD selector values (linux/prctl.h).
pub const SELECTOR_ALLOW: u8 = 0;
pub const SELECTOR_BLOCK: u8 = 1;

pub mod off {
    pub const HOST_FS: usize = 0x08;
    pub const HOST_RSP: usize = 0x10;
    pub const SELECTOR: usize = 0x18;
    pub const RESUME_FS: usize = 0x20;
    pub const RESUME_GS: usize = 0x28;
    pub const RESUME_SEL: usize = 0x30;
    pub const TCS: usize = 0x38;
    pub const TLS: usize = 0x40;
    pub const OENTRY: usize = 0x48;
}

/// Where the kernel's ucontext says whether the thread had an alternate
/// signal stack (`uc_stack.ss_flags`).
const UC_SS_FLAGS: usize = std::mem::offset_of!(libc::ucontext_t, uc_stack)
    + std::mem::offset_of!(libc::stack_t, ss_flags);

core::arch::global_asm!(
    ".pushsection .text.conf_gate, \"ax\"",
    ".balign 4096",
    ".globl conf_gate_start",
    "conf_gate_start:",
    "",
    ".globl conf_sim_eenter",
    ".type conf_sim_eenter, @function",
    "conf_sim_eenter:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "mov [rdi + {host_rsp}], rsp",
    "rdfsbase rax",
    "mov [rdi + {host_fs}], rax",
    "mov r8, rdi",
    "mov rdi, rsi",
    "mov rsi, rdx",
    "mov rdx, rcx",
    "mov rbx, [r8 + {tcs}]",
    "lea rcx, [rip + conf_sim_eexit_landing]",
    "xor eax, eax",
    "mov r9, [r8 + {tls}]",
    "wrgsbase r9",
    "wrfsbase r9",
    "mov r10, [r8 + {oentry}]",
    "mov byte ptr [r8 + {sel}], {block}",
    "jmp r10",
    ".size conf_sim_eenter, . - conf_sim_eenter",
    "",
    ".globl conf_sim_eexit_landing",
    ".type conf_sim_eexit_landing, @function",
    "conf_sim_eexit_landing:",
    "mov rcx, [rsp]",
    "mov byte ptr [rcx + {sel}], {allow}",
    "mov rax, [rcx + {host_fs}]",
    "wrfsbase rax",
    "xor eax, eax",
    "wrgsbase rax",
    "mov rax, rdi",
    "mov rdx, rsi",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".size conf_sim_eexit_landing, . - conf_sim_eexit_landing",
    "",
    ".globl conf_sim_signal_entry",
    ".type conf_sim_signal_entry, @function",
    "conf_sim_signal_entry:",
    // No alternate stack (uc_stack.ss_flags has SS_DISABLE): not a thread
    // running a slot, whose SimThread is at the bottom of its alternate
    // stack, but conf-run's main thread after Rust's runtime took its own
    // alternate stack down on the way out. Nothing here may be touched.
    "test dword ptr [rdx + {uc_ss_flags}], {ss_disable}",
    "jnz {foreign}",
    "mov rax, rsp",
    "and rax, -{altstack}",
    "mov r11b, byte ptr [rax + {sel}]",
    "mov byte ptr [rax + {resume_sel}], r11b",
    "mov byte ptr [rax + {sel}], {allow}",
    "rdfsbase r8",
    "rdgsbase r9",
    "mov [rax + {resume_fs}], r8",
    "mov [rax + {resume_gs}], r9",
    "mov r10, [rax + {host_fs}]",
    "wrfsbase r10",
    "mov rcx, rax",
    "push rax",
    "call {handler}",
    "pop rax",
    "mov r8, [rax + {resume_fs}]",
    "wrfsbase r8",
    "mov r9, [rax + {resume_gs}]",
    "wrgsbase r9",
    "mov r10b, byte ptr [rax + {resume_sel}]",
    "mov byte ptr [rax + {sel}], r10b",
    "ret",
    ".size conf_sim_signal_entry, . - conf_sim_signal_entry",
    "",
    ".globl conf_sim_sigreturn",
    ".type conf_sim_sigreturn, @function",
    "conf_sim_sigreturn:",
    "mov eax, 15",
    "syscall",
    "ud2",
    ".size conf_sim_sigreturn, . - conf_sim_sigreturn",
    // SUD compares the address after `syscall`: keep it inside the range.
    ".fill 16, 1, 0xcc",
    ".globl conf_gate_end",
    "conf_gate_end:",
    ".popsection",
    host_rsp = const off::HOST_RSP,
    host_fs = const off::HOST_FS,
    sel = const off::SELECTOR,
    resume_fs = const off::RESUME_FS,
    resume_gs = const off::RESUME_GS,
    resume_sel = const off::RESUME_SEL,
    tcs = const off::TCS,
    tls = const off::TLS,
    oentry = const off::OENTRY,
    block = const SELECTOR_BLOCK,
    allow = const SELECTOR_ALLOW,
    altstack = const ALTSTACK_SIZE,
    handler = sym super::signals::conf_sim_signal_rust,
    foreign = sym super::signals::conf_sim_signal_foreign,
    uc_ss_flags = const UC_SS_FLAGS,
    ss_disable = const libc::SS_DISABLE,
);

/// Registers the enclave left at EEXIT.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRegs {
    pub reason: u64,
    pub arg: u64,
}

extern "C" {
    pub fn conf_sim_eenter(
        sim: *mut super::thread::SimThread,
        reason: u64,
        a1: u64,
        a2: u64,
    ) -> ExitRegs;
    pub fn conf_sim_eexit_landing();
    pub fn conf_sim_signal_entry(sig: i32, info: *mut libc::siginfo_t, uc: *mut libc::c_void);
    pub fn conf_sim_sigreturn();
    static conf_gate_start: u8;
    static conf_gate_end: u8;
}

/// The address range of the gate (what Syscall User Dispatch allows).
pub fn gate_range() -> (u64, u64) {
    (
        &raw const conf_gate_start as u64,
        &raw const conf_gate_end as u64,
    )
}
