//! The x86-64 Linux signal frame (`struct rt_sigframe`): what the program's
//! handler sees, and what rt_sigreturn restores.
//!
//! Layout, from the new stack pointer up: the return address (the
//! handler's `sa_restorer`), `ucontext` (flags, link, stack_t, sigcontext,
//! sigmask), `siginfo` (128 bytes); the XSAVE image of the FPU/vector state
//! sits above, 64-byte aligned, pointed to by `sigcontext.fpstate`.

use core::sync::atomic::Ordering;

use conf_abi::Errno;

use super::{SigAction, SigInfo, SA_ONSTACK};
use crate::arch::tls::{tls, UserRegs};
use crate::process::current;
use crate::syscall::uaccess;

const UC_OFF: u64 = 8;
const UC_STACK: u64 = UC_OFF + 16;
const UC_MCONTEXT: u64 = UC_OFF + 40;
const UC_SIGMASK: u64 = UC_MCONTEXT + 256;
const INFO_OFF: u64 = UC_SIGMASK + 8;
const FRAME_SIZE: u64 = INFO_OFF + 128;

const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;

/// Size of the XSAVE area for the features the OS enabled, and XCR0.
fn xsave_geometry() -> (u64, u64) {
    // SAFETY: CPUID leaf 0xD and XGETBV are available wherever XSAVE is,
    // which every CPU SGX runs on has.
    unsafe {
        let size = crate::arch::cpuid::cpuid(0xd, 0)[1] as u64;
        let xcr0 = core::arch::x86_64::_xgetbv(0);
        (size, xcr0)
    }
}

/// Write the program's complete FPU/vector state at `dst` (64-byte
/// aligned, `size` bytes): XMM0-15 and MXCSR come from where the entry code
/// saved them, everything else is still in the registers.
unsafe fn save_user_fpstate(dst: *mut u8) {
    let t = tls();
    core::arch::asm!(
        "movdqu xmm0, [{x} + 0x00]",
        "movdqu xmm1, [{x} + 0x10]",
        "movdqu xmm2, [{x} + 0x20]",
        "movdqu xmm3, [{x} + 0x30]",
        "movdqu xmm4, [{x} + 0x40]",
        "movdqu xmm5, [{x} + 0x50]",
        "movdqu xmm6, [{x} + 0x60]",
        "movdqu xmm7, [{x} + 0x70]",
        "movdqu xmm8, [{x} + 0x80]",
        "movdqu xmm9, [{x} + 0x90]",
        "movdqu xmm10, [{x} + 0xa0]",
        "movdqu xmm11, [{x} + 0xb0]",
        "movdqu xmm12, [{x} + 0xc0]",
        "movdqu xmm13, [{x} + 0xd0]",
        "movdqu xmm14, [{x} + 0xe0]",
        "movdqu xmm15, [{x} + 0xf0]",
        "ldmxcsr [{m}]",
        "xsave64 [{d}]",
        "ldmxcsr [rip + LIBOS_MXCSR]",
        x = in(reg) t.xmm.as_ptr(),
        m = in(reg) &t.mxcsr,
        d = in(reg) dst,
        in("eax") 0xffff_ffffu32,
        in("edx") 0xffff_ffffu32,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
        out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
        out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        options(nostack)
    );
}

/// Load the program's FPU/vector state from `src` (checked) and keep
/// XMM0-15/MXCSR where the exit path restores them from.
unsafe fn load_user_fpstate(src: *const u8) {
    let t = tls();
    core::arch::asm!(
        "xrstor64 [{s}]",
        "movdqu [{x} + 0x00], xmm0",
        "movdqu [{x} + 0x10], xmm1",
        "movdqu [{x} + 0x20], xmm2",
        "movdqu [{x} + 0x30], xmm3",
        "movdqu [{x} + 0x40], xmm4",
        "movdqu [{x} + 0x50], xmm5",
        "movdqu [{x} + 0x60], xmm6",
        "movdqu [{x} + 0x70], xmm7",
        "movdqu [{x} + 0x80], xmm8",
        "movdqu [{x} + 0x90], xmm9",
        "movdqu [{x} + 0xa0], xmm10",
        "movdqu [{x} + 0xb0], xmm11",
        "movdqu [{x} + 0xc0], xmm12",
        "movdqu [{x} + 0xd0], xmm13",
        "movdqu [{x} + 0xe0], xmm14",
        "movdqu [{x} + 0xf0], xmm15",
        "stmxcsr [{m}]",
        "ldmxcsr [rip + LIBOS_MXCSR]",
        s = in(reg) src,
        x = in(reg) t.xmm.as_mut_ptr(),
        m = in(reg) &mut t.mxcsr,
        in("eax") 0xffff_ffffu32,
        in("edx") 0xffff_ffffu32,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
        out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
        out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        options(nostack)
    );
}

fn put64(b: &mut [u8], off: u64, v: u64) {
    b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn get64(b: &[u8], off: u64) -> u64 {
    u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
}

/// Order of general registers in `struct sigcontext`.
fn gregs(r: &UserRegs) -> [u64; 18] {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ]
}

/// Build the frame for `sig` and point `regs` at the handler.
pub fn push(
    regs: &mut UserRegs,
    sig: u32,
    info: &SigInfo,
    action: &SigAction,
    old_mask: u64,
) -> Result<(), Errno> {
    let (xsize, xcr0) = xsave_geometry();
    let t = current();
    let (ss_sp, ss_flags, ss_size) = *t.altstack.lock();
    let on_alt = ss_flags & 2 == 0 && regs.rsp > ss_sp && regs.rsp <= ss_sp + ss_size;
    let mut sp = regs.rsp;
    if action.flags & SA_ONSTACK != 0 && ss_flags & 2 == 0 && !on_alt {
        sp = ss_sp + ss_size;
    } else {
        sp = sp.wrapping_sub(128); // red zone
    }
    let fp = (sp.wrapping_sub(xsize + 4)) & !63;
    let frame = ((fp.wrapping_sub(FRAME_SIZE)) & !15).wrapping_sub(8);
    let total = (sp - frame) as usize;
    let mem = uaccess::slice_mut(frame, total).map_err(|_| Errno::EFAULT)?;
    mem.fill(0);

    // FPU state first: XSAVE writes straight into program memory.
    // SAFETY: [fp, fp+xsize) is writable program memory, 64-byte aligned.
    unsafe { save_user_fpstate(fp as *mut u8) };
    let fpo = fp - frame;
    // Software-reserved bytes of the FXSAVE area announce the XSAVE layout.
    let sw = (fpo + 464) as usize;
    mem[sw..sw + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    mem[sw + 4..sw + 8].copy_from_slice(&((xsize + 4) as u32).to_le_bytes());
    mem[sw + 8..sw + 16].copy_from_slice(&xcr0.to_le_bytes());
    mem[sw + 16..sw + 20].copy_from_slice(&(xsize as u32).to_le_bytes());
    let m2 = (fpo + xsize) as usize;
    mem[m2..m2 + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());

    put64(mem, 0, action.restorer);
    put64(
        mem,
        UC_OFF,
        UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
    );
    put64(mem, UC_STACK, ss_sp);
    put64(
        mem,
        UC_STACK + 8,
        if on_alt { 1 } else { ss_flags as u32 as u64 },
    );
    put64(mem, UC_STACK + 16, ss_size);
    for (i, v) in gregs(regs).iter().enumerate() {
        put64(mem, UC_MCONTEXT + i as u64 * 8, *v);
    }
    // cs, gs, fs, ss selectors as Linux reports them for 64-bit code.
    put64(mem, UC_MCONTEXT + 144, 0x33 | (0x2b << 48));
    let (err, trapno) = fault_codes(sig, info);
    put64(mem, UC_MCONTEXT + 152, err);
    put64(mem, UC_MCONTEXT + 160, trapno);
    put64(mem, UC_MCONTEXT + 168, old_mask);
    put64(mem, UC_MCONTEXT + 176, info.addr);
    put64(mem, UC_MCONTEXT + 184, fp);
    put64(mem, UC_SIGMASK, old_mask);
    let io = INFO_OFF as usize;
    mem[io..io + 4].copy_from_slice(&info.signo.to_le_bytes());
    mem[io + 8..io + 12].copy_from_slice(&info.code.to_le_bytes());
    if info.code > 0 {
        mem[io + 16..io + 24].copy_from_slice(&info.addr.to_le_bytes());
    } else if info.code == super::SI_TIMER {
        mem[io + 16..io + 20].copy_from_slice(&info.timerid.to_le_bytes());
        mem[io + 20..io + 24].copy_from_slice(&info.overrun.to_le_bytes());
        mem[io + 24..io + 32].copy_from_slice(&info.value.to_le_bytes());
    } else {
        mem[io + 16..io + 20].copy_from_slice(&info.pid.to_le_bytes());
        mem[io + 24..io + 32].copy_from_slice(&info.value.to_le_bytes());
    }

    regs.rsp = frame;
    regs.rip = action.handler;
    regs.rdi = sig as u64;
    regs.rsi = frame + INFO_OFF;
    regs.rdx = frame + UC_OFF;
    regs.rax = 0;
    // DF and TF cleared for the handler, as Linux does.
    regs.rflags &= !(0x400 | 0x100 | 0x40000);
    super::DELIVERED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Page-fault error code and trap number for the sigcontext.
fn fault_codes(sig: u32, info: &SigInfo) -> (u64, u64) {
    if info.code <= 0 {
        return (0, 0);
    }
    match sig {
        super::SIGSEGV | super::SIGBUS => (tls().fault_err, 14),
        super::SIGILL => (0, 6),
        super::SIGTRAP => (0, 3),
        _ => (0, 0),
    }
}

/// rt_sigreturn: restore what the frame at `regs.rsp - 8` holds.
pub fn sigreturn(regs: &mut UserRegs) -> Result<(), Errno> {
    let frame = regs.rsp.wrapping_sub(8);
    let mem = uaccess::slice(frame, FRAME_SIZE as usize)?;
    let mut g = [0u64; 18];
    for (i, v) in g.iter_mut().enumerate() {
        *v = get64(mem, UC_MCONTEXT + i as u64 * 8);
    }
    let fp = get64(mem, UC_MCONTEXT + 184);
    let mask = get64(mem, UC_SIGMASK);
    if fp != 0 {
        restore_fpstate(fp)?;
    }
    // Flags the program may change (Linux FIX_EFLAGS).
    const FIX: u64 = 0x40000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000;
    let fsbase = regs.fsbase;
    *regs = UserRegs {
        r8: g[0],
        r9: g[1],
        r10: g[2],
        r11: g[3],
        r12: g[4],
        r13: g[5],
        r14: g[6],
        r15: g[7],
        rdi: g[8],
        rsi: g[9],
        rbp: g[10],
        rbx: g[11],
        rdx: g[12],
        rax: g[13],
        rcx: g[14],
        rsp: g[15],
        rip: g[16],
        rflags: (regs.rflags & !FIX) | (g[17] & FIX) | 0x202,
        fsbase,
        _pad: 0,
    };
    let unblockable = (1 << (super::SIGKILL - 1)) | (1 << (super::SIGSTOP - 1));
    current()
        .sigmask
        .store(mask & !unblockable, Ordering::Relaxed);
    Ok(())
}

/// Check and load the XSAVE image the program's frame points to.
fn restore_fpstate(fp: u64) -> Result<(), Errno> {
    let (xsize, xcr0) = xsave_geometry();
    if !fp.is_multiple_of(64) {
        return Err(Errno::EFAULT);
    }
    let img = uaccess::slice(fp, xsize as usize)?;
    // Anything XRSTOR would fault on is refused here instead.
    let mxcsr = u32::from_le_bytes(img[24..28].try_into().unwrap());
    let mxcsr_mask = u32::from_le_bytes(img[28..32].try_into().unwrap());
    let mask = if mxcsr_mask == 0 { 0xffbf } else { mxcsr_mask };
    if mxcsr & !mask != 0 {
        return Err(Errno::EFAULT);
    }
    let bv = get64(img, 512);
    let comp = get64(img, 520);
    if bv & !xcr0 != 0 || comp != 0 || img[528..576].iter().any(|&b| b != 0) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: a readable, aligned, validated XSAVE image.
    unsafe { load_user_fpstate(fp as *const u8) };
    Ok(())
}
