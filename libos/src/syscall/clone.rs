//! Thread creation: clone(2) and clone3(2) for threads (CLONE_VM|CLONE_THREAD).
//! Processes (fork, vfork, clone without CLONE_VM) come with enclave
//! processes.

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::arch::tls::tls;
use crate::process::threads::{self, StartInfo};
use crate::process::{process, Thread};

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_DETACHED: u64 = 0x400000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// The clone flags a thread may be created with.
const THREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_CHILD_SETTID
    | CLONE_DETACHED;

struct Args {
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
}

fn do_clone(ctx: &mut Ctx<'_>, a: Args) -> Result<u64, Errno> {
    let flags = a.flags & !0xff; // low byte: exit signal
    if flags & CLONE_VM != 0 && flags & CLONE_VFORK != 0 {
        return vfork_into(ctx, a.stack);
    }
    if flags & CLONE_VM == 0 {
        if flags & (CLONE_THREAD | CLONE_SIGHAND) != 0 {
            return Err(Errno::EINVAL);
        }
        return fork(ctx);
    }
    if flags & CLONE_THREAD == 0 {
        return Err(crate::process::spawn::unsupported_fork(flags));
    }
    if flags & !THREAD_FLAGS != 0
        || flags & (CLONE_SIGHAND | CLONE_FILES | CLONE_FS)
            != CLONE_SIGHAND | CLONE_FILES | CLONE_FS
    {
        return Err(Errno::EINVAL);
    }
    let tid = process().alloc_tid();
    let th = Thread::new(tid);
    if flags & CLONE_CHILD_CLEARTID != 0 {
        th.clear_child_tid
            .store(a.child_tid, core::sync::atomic::Ordering::Relaxed);
    }
    th.sigmask.store(
        crate::process::current()
            .sigmask
            .load(core::sync::atomic::Ordering::Relaxed),
        core::sync::atomic::Ordering::Relaxed,
    );
    if flags & CLONE_PARENT_SETTID != 0 {
        uaccess::write(a.parent_tid, &tid)?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        uaccess::write(a.child_tid, &tid)?;
    }
    let mut regs = *ctx.regs;
    regs.rax = 0;
    if a.stack != 0 {
        regs.rsp = a.stack;
    }
    if flags & CLONE_SETTLS != 0 {
        regs.fsbase = a.tls;
    }
    // The child returns from the same syscall: past the instruction, with
    // RCX/R11 as `syscall` leaves them.
    regs.rcx = regs.rip;
    regs.r11 = regs.rflags;
    let t = tls();
    threads::spawn(StartInfo {
        thread: th,
        regs,
        xmm: t.xmm,
        mxcsr: t.mxcsr,
    })?;
    Ok(tid as u64)
}

/// implements clone(2) for threads
pub fn sys_clone(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    // x86-64 argument order: flags, stack, parent_tid, child_tid, tls.
    do_clone(
        ctx,
        Args {
            flags: a[0],
            stack: a[1],
            parent_tid: a[2],
            child_tid: a[3],
            tls: a[4],
        },
    )
}

/// implements clone3(2) for threads
pub fn sys_clone3(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[1] < 64 {
        return Err(Errno::EINVAL);
    }
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal,
    // stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let v: [u64; 8] = uaccess::read(a[0])?;
    if a[1] > 64 {
        // Fields beyond what we know must be zero.
        let extra = uaccess::slice(a[0] + 64, (a[1] - 64).min(4096) as usize)?;
        if extra.iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
    }
    if v[0] & CLONE_PIDFD != 0 {
        return Err(Errno::EINVAL);
    }
    let stack = if v[5] != 0 { v[5] + v[6] } else { 0 };
    do_clone(
        ctx,
        Args {
            flags: v[0] | (v[4] & 0xff),
            stack,
            parent_tid: v[3],
            child_tid: v[2],
            tls: v[7],
        },
    )
}

/// The vfork child starts on this thread: RAX = 0, on `stack` if given.
fn vfork_into(ctx: &mut Ctx<'_>, stack: u64) -> Result<u64, Errno> {
    crate::process::vfork::begin(ctx.regs, stack)?;
    ctx.regs.rax = 0;
    ctx.replaced = true;
    Ok(0)
}

/// fork: a child enclave process with a copy of this one.
fn fork(ctx: &mut Ctx<'_>) -> Result<u64, Errno> {
    if crate::process::vfork::child_pid().is_some() {
        return Err(Errno::EAGAIN);
    }
    let mut regs = *ctx.regs;
    regs.rax = 0;
    regs.rcx = regs.rip;
    regs.r11 = regs.rflags;
    let view = crate::process::vfork::view();
    crate::process::fork::spawn(&view, crate::process::fork::Start::Fork { regs })
        .map(|pid| pid as u64)
}

/// implements fork(2)
pub fn sys_fork(ctx: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    fork(ctx)
}

/// implements vfork(2)
pub fn sys_vfork(ctx: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    vfork_into(ctx, 0)
}
