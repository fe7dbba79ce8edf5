//! Signal system calls.

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::process::{current, process};
use crate::signal::{SigAction, SIGKILL, SIGSTOP};

/// implements rt_sigaction(2): dispositions are recorded and used when a
/// signal is delivered.
pub fn sys_rt_sigaction(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let sig = a[0] as u32;
    if !(1..=64).contains(&sig) || a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if a[1] != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        Some(uaccess::read::<SigAction>(a[1])?)
    } else {
        None
    };
    let mut st = process().signals.lock();
    let old = st.actions[sig as usize - 1];
    if let Some(n) = new {
        st.actions[sig as usize - 1] = n;
    }
    drop(st);
    if a[2] != 0 {
        uaccess::write(a[2], &old)?;
    }
    Ok(0)
}

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

/// implements rt_sigprocmask(2)
pub fn sys_rt_sigprocmask(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let t = current();
    let old = t.sigmask.load(core::sync::atomic::Ordering::Relaxed);
    if a[1] != 0 {
        let set: u64 = uaccess::read(a[1])?;
        let unblockable = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));
        let new = match a[0] {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        } & !unblockable;
        t.sigmask.store(new, core::sync::atomic::Ordering::Relaxed);
    }
    if a[2] != 0 {
        uaccess::write(a[2], &old)?;
    }
    Ok(0)
}

/// implements sigaltstack(2)
pub fn sys_sigaltstack(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let t = current();
    let old = *t.altstack.lock();
    if a[0] != 0 {
        let (sp, flags, size): (u64, i32, u64) = {
            let raw: [u64; 3] = uaccess::read(a[0])?;
            (raw[0], raw[1] as i32, raw[2])
        };
        const SS_DISABLE: i32 = 2;
        if flags & !(SS_DISABLE | (1 << 31)) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & SS_DISABLE == 0 && size < 2048 {
            return Err(Errno::ENOMEM);
        }
        *t.altstack.lock() = (sp, flags, size);
    }
    if a[1] != 0 {
        let raw = [old.0, old.1 as u32 as u64, old.2];
        uaccess::write(a[1], &raw)?;
    }
    Ok(0)
}

/// implements kill(2), tkill(2), tgkill(2) towards this process.
pub fn sys_kill(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let pid = a[0] as i32;
    let sig = a[1] as u32;
    let me = process().pid as i32;
    if pid != me && pid != 0 && pid != -1 {
        return Err(Errno::ESRCH);
    }
    if sig == 0 {
        return Ok(0);
    }
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    crate::signal::raise(sig);
    Ok(0)
}

/// implements tgkill(2)
pub fn sys_tgkill(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_kill(ctx, [a[0], a[2], 0, 0, 0, 0])
}

/// implements tkill(2)
pub fn sys_tkill(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_kill(ctx, [process().pid as u64, a[1], 0, 0, 0, 0])
}

/// implements rt_sigreturn(2)
pub fn sys_rt_sigreturn(ctx: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    ctx.replaced = true;
    if crate::signal::frame::sigreturn(ctx.regs).is_err() {
        crate::signal::die(crate::signal::SIGSEGV);
    }
    Ok(0)
}
