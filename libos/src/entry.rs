//! From an enclave entry to the program and back: system calls trapped as
//! exceptions, faults turned into signals, and the way out.

use conf_abi::entry::AbortCode;
use conf_abi::layout::{exitinfo, gpr, PAGE_SIZE, SSA_FRAME_PAGES};

use crate::arch::entry::libos_return_to_user;
use crate::arch::tls::{tls, UserRegs};
use crate::host;
use crate::mm::{Fault, PROT_EXEC, PROT_READ};
use crate::process::process;
use crate::signal;

/// Deliver pending signals and continue the program with `tls().user`.
pub fn return_to_program() -> ! {
    let t = tls();
    signal::deliver_pending(&mut t.user);
    // SAFETY: `user` holds a complete program context.
    unsafe { libos_return_to_user(&t.user) }
}

/// Copy the context SGX (or the sim) saved in SSA frame 0 into `tls().user`;
/// returns EXITINFO and the fault address.
fn take_ssa() -> (u32, u64) {
    let t = tls();
    let frame_end = t.enclave_lo + t.record.ssa_offset + SSA_FRAME_PAGES as u64 * PAGE_SIZE;
    let g = (frame_end - gpr::SIZE as u64) as *const u8;
    // SAFETY: the SSA frame is enclave memory of this slot.
    let rd = |off: usize| unsafe { (g.add(off) as *const u64).read_unaligned() };
    t.user = UserRegs {
        rax: rd(gpr::RAX),
        rcx: rd(gpr::RCX),
        rdx: rd(gpr::RDX),
        rbx: rd(gpr::RBX),
        rsp: rd(gpr::RSP),
        rbp: rd(gpr::RBP),
        rsi: rd(gpr::RSI),
        rdi: rd(gpr::RDI),
        r8: rd(gpr::R8),
        r9: rd(gpr::R9),
        r10: rd(gpr::R10),
        r11: rd(gpr::R11),
        r12: rd(gpr::R12),
        r13: rd(gpr::R13),
        r14: rd(gpr::R14),
        r15: rd(gpr::R15),
        rflags: rd(gpr::RFLAGS),
        rip: rd(gpr::RIP),
        fsbase: rd(gpr::FSBASE),
        _pad: 0,
    };
    // SAFETY: as above; EXITINFO and EXINFO sit at fixed offsets.
    let (info, maddr, err) = unsafe {
        (
            (g.add(gpr::EXITINFO) as *const u32).read_unaligned(),
            (g.sub(gpr::EXINFO_BELOW) as *const u64).read_unaligned(),
            (g.sub(gpr::EXINFO_BELOW).add(8) as *const u32).read_unaligned(),
        )
    };
    t.fault_err = err as u64;
    (info, maddr)
}

const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;
const FPE_FLTINV: i32 = 7;
const TRAP_BRKPT: i32 = 1;
const TRAP_TRACE: i32 = 2;
const BUS_ADRERR: i32 = 2;

/// Are the two bytes at `rip` `opcode`?
fn insn_is(rip: u64, opcode: [u8; 2]) -> bool {
    if !process().mm.check(rip, 2, PROT_EXEC) && !process().mm.check(rip, 2, PROT_READ) {
        return false;
    }
    // SAFETY: two mapped, readable bytes of program code.
    unsafe { (rip as *const [u8; 2]).read_unaligned() == opcode }
}

const SYSCALL: [u8; 2] = [0x0f, 0x05];
const CPUID: [u8; 2] = [0x0f, 0xa2];

/// An exception (or host signal) interrupted the program.
pub fn exception(is_exception: bool) -> ! {
    let t = tls();
    if t.thread == 0 {
        host::abort(
            AbortCode::BadImage,
            format_args!("exception entry on a thread slot that runs no program thread"),
        );
    }
    let (info, maddr) = take_ssa();
    if !is_exception || info & exitinfo::VALID == 0 {
        return_to_program();
    }
    let rip = t.user.rip;
    match info & exitinfo::VECTOR_MASK {
        exitinfo::VECTOR_UD if insn_is(rip, CPUID) => {
            let [a, b, c, d] = crate::arch::cpuid::cpuid(t.user.rax as u32, t.user.rcx as u32);
            // CPUID writes the low halves and zeroes the high ones.
            (t.user.rax, t.user.rbx, t.user.rcx, t.user.rdx) =
                (a as u64, b as u64, c as u64, d as u64);
            t.user.rip = rip + 2;
        }
        exitinfo::VECTOR_UD if insn_is(rip, SYSCALL) => {
            // As the CPU would have: RCX = next instruction, R11 = RFLAGS.
            crate::syscall::rewrite::on_trap(rip, t.user.rax);
            t.user.rip = rip + 2;
            t.user.rcx = rip + 2;
            t.user.r11 = t.user.rflags;
            crate::syscall::dispatch(&mut t.user);
        }
        exitinfo::VECTOR_UD => signal::fault(&mut t.user, signal::SIGILL, ILL_ILLOPN, rip),
        exitinfo::VECTOR_PF => {
            let fault = process().mm.fault(maddr, t.fault_err);
            memory_fault(&mut t.user, fault, maddr)
        }
        exitinfo::VECTOR_GP => signal::fault(&mut t.user, signal::SIGSEGV, signal::SI_KERNEL, 0),
        exitinfo::VECTOR_DE => signal::fault(&mut t.user, signal::SIGFPE, FPE_INTDIV, rip),
        exitinfo::VECTOR_MF | exitinfo::VECTOR_XM => {
            signal::fault(&mut t.user, signal::SIGFPE, FPE_FLTINV, rip)
        }
        // An `int3` the rewriter put at a `mov $nr, %eax` while patching
        // it: go on as if the `mov` ran (RIP is past the `int3`).
        exitinfo::VECTOR_BP => match crate::syscall::rewrite::int3_site(rip.wrapping_sub(1)) {
            Some(nr) => {
                t.user.rax = nr as u64;
                t.user.rip = rip - 1 + 5;
            }
            None => signal::fault(&mut t.user, signal::SIGTRAP, TRAP_BRKPT, rip),
        },
        exitinfo::VECTOR_DB => signal::fault(&mut t.user, signal::SIGTRAP, TRAP_TRACE, rip),
        // A page of a lazy mapping the host fills, not filled yet; or a
        // real bus error (a shared mapping past the end of its file).
        exitinfo::VECTOR_SIM_BUS => match process().mm.bus_fault(maddr, t.fault_err) {
            Some(fault) => memory_fault(&mut t.user, fault, maddr),
            None => signal::fault(&mut t.user, signal::SIGBUS, BUS_ADRERR, maddr),
        },
        v => host::abort(
            AbortCode::BadImage,
            format_args!("unexpected exception vector {v} at {rip:#x}"),
        ),
    }
    return_to_program()
}

/// What a fault at `addr` in the program's memory comes to for the program:
/// nothing (the page is there now), SIGBUS or SIGSEGV.
fn memory_fault(regs: &mut UserRegs, fault: Fault, addr: u64) {
    match fault {
        Fault::Resolved => {}
        Fault::Bus => signal::fault(regs, signal::SIGBUS, BUS_ADRERR, addr),
        Fault::Segv => {
            let code = if process().mm.check(addr & !0xfff, 1, 0) {
                SEGV_ACCERR
            } else {
                SEGV_MAPERR
            };
            signal::fault(regs, signal::SIGSEGV, code, addr)
        }
    }
}

/// Rust side of `libos_syscall_entry` (rewritten syscall sites).
#[no_mangle]
pub extern "C" fn libos_fast_syscall() -> ! {
    let t = tls();
    crate::syscall::dispatch(&mut t.user);
    // Linux leaves RCX = return address and R11 = RFLAGS after `syscall`.
    t.user.rcx = t.user.rip;
    t.user.r11 = t.user.rflags;
    return_to_program()
}
