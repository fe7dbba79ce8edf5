//! vfork without copying anything: the child runs on the parent's thread, in
//! the parent's memory (as vfork allows), with its own copy of the fd table,
//! working directory, umask and signal state, until it calls execve (a
//! child enclave process is started for the new program) or _exit. Then
//! the parent resumes where it called vfork, with the child's pid.

use alloc::boxed::Box;
use alloc::string::String;
use core::sync::atomic::Ordering;

use conf_abi::Errno;

use super::fdtable::FdTable;
use super::fork::View;
use super::{current, process};
use crate::arch::tls::{tls, UserRegs};
use crate::signal::SigAction;

pub struct Frame {
    regs: UserRegs,
    xmm: [u8; 256],
    mxcsr: u32,
    files: FdTable,
    cwd: String,
    umask: u32,
    actions: [SigAction; 64],
    mask: u64,
    pgid: u32,
    sid: u32,
    /// The pid the child has until it execs.
    pub child_pid: u32,
}

/// Is the calling thread running a vfork child? Its pid then.
pub fn child_pid() -> Option<u32> {
    current().vfork.lock().as_ref().map(|f| f.child_pid)
}

/// vfork / clone(CLONE_VM|CLONE_VFORK): become the child. `regs` are the
/// caller's (RAX is set for the child: 0); `stack` is the child's stack, or
/// 0 to keep the caller's.
pub fn begin(regs: &mut UserRegs, stack: u64) -> Result<u64, Errno> {
    let t = current();
    if t.vfork.lock().is_some() {
        return Err(Errno::EAGAIN);
    }
    let proc = process();
    let child_pid = proc.alloc_tid();
    let child_files = proc.files.lock().clone();
    let parent_files = core::mem::replace(&mut *proc.files.lock(), child_files);
    let tl = tls();
    let frame = Frame {
        regs: *regs,
        xmm: tl.xmm,
        mxcsr: tl.mxcsr,
        files: parent_files,
        cwd: proc.cwd(),
        umask: proc.umask.load(Ordering::Relaxed),
        actions: proc.signals.lock().actions,
        mask: t.sigmask.load(Ordering::Relaxed),
        pgid: proc.pgid.load(Ordering::Relaxed),
        sid: proc.sid.load(Ordering::Relaxed),
        child_pid,
    };
    *t.vfork.lock() = Some(Box::new(frame));
    if stack != 0 {
        regs.rsp = stack;
    }
    Ok(0)
}

/// The state a new process gets: the vfork child's, when one is running
/// on this thread, else the process's.
pub fn view() -> View {
    let proc = process();
    // A group or session the child made for itself is named after its own
    // pid, which changes when it execs.
    let vfork_pid = child_pid();
    let own = |id: u32| if Some(id) == vfork_pid { 0 } else { id };
    View {
        pgid: own(proc.pgid.load(Ordering::Relaxed)),
        sid: own(proc.sid.load(Ordering::Relaxed)),
        files: proc.files.lock().clone(),
        cwd: proc.cwd(),
        umask: proc.umask.load(Ordering::Relaxed),
        actions: proc.signals.lock().actions,
        mask: current().sigmask.load(Ordering::Relaxed),
    }
}

/// The vfork child is done (exec'd as `pid`, or exited): put the parent
/// back and make its vfork return `pid`.
pub fn end(regs: &mut UserRegs, pid: u32) {
    let t = current();
    let Some(f) = t.vfork.lock().take() else {
        return;
    };
    let proc = process();
    let child_files = core::mem::replace(&mut *proc.files.lock(), f.files);
    drop(child_files);
    *proc.cwd.lock() = f.cwd;
    proc.umask.store(f.umask, Ordering::Relaxed);
    proc.signals.lock().actions = f.actions;
    t.sigmask.store(f.mask, Ordering::Relaxed);
    proc.pgid.store(f.pgid, Ordering::Relaxed);
    proc.sid.store(f.sid, Ordering::Relaxed);
    let tl = tls();
    tl.xmm = f.xmm;
    tl.mxcsr = f.mxcsr;
    *regs = f.regs;
    regs.rax = pid as u64;
}
