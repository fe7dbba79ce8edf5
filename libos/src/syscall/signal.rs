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

use crate::signal::{SigInfo, SI_QUEUE, SI_TKILL, SI_USER};

fn check_sig(sig: u64) -> Result<u32, Errno> {
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

/// implements kill(2): this process, its children, its parent, its group,
/// and any other process of the program (the host checks it is one).
pub fn sys_kill(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let pid = a[0] as i32;
    let sig = check_sig(a[1])?;
    let proc = process();
    let me = proc.pid as i32;
    let to_self = || {
        if sig != 0 {
            crate::signal::send_to_process(SigInfo {
                signo: sig,
                code: SI_USER,
                pid: me as u32,
                ..Default::default()
            });
        }
    };
    if pid == me {
        to_self();
        return Ok(0);
    }
    if pid > 0 && proc.children.lock().contains_key(&(pid as u32)) {
        return crate::host::calls::kill_process(pid, sig).map(|_| 0);
    }
    if pid > 0 && pid as u32 == proc.ppid {
        return crate::host::calls::kill_process(-1, sig).map(|_| 0);
    }
    if pid == 0
        || pid == -1
        || pid == -(proc.pgid.load(core::sync::atomic::Ordering::Relaxed) as i32)
    {
        // The group: this process and the children it started.
        let children: alloc::vec::Vec<u32> = proc
            .children
            .lock()
            .iter()
            .filter(|(_, c)| c.status.is_none())
            .map(|(p, _)| *p)
            .collect();
        for c in children {
            let _ = crate::host::calls::kill_process(c as i32, sig);
        }
        to_self();
        return Ok(0);
    }
    if pid > 0 {
        // Another process of the program (a sibling, a forkserver's
        // worker): the host checks it is one and signals it, or says ESRCH.
        return crate::host::calls::kill_process(pid, sig).map(|_| 0);
    }
    Err(Errno::ESRCH)
}

/// implements tgkill(2)
pub fn sys_tgkill(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let me = process().pid;
    if a[0] as u32 != me {
        return Err(Errno::ESRCH);
    }
    let sig = check_sig(a[2])?;
    if sig == 0 {
        return crate::process::threads::with_thread(a[1] as u32, |_| 0).ok_or(Errno::ESRCH);
    }
    crate::signal::send_to_thread(
        a[1] as u32,
        SigInfo {
            signo: sig,
            code: SI_TKILL,
            pid: me,
            ..Default::default()
        },
    )
    .map(|_| 0)
}

/// implements tkill(2)
pub fn sys_tkill(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_tgkill(ctx, [process().pid as u64, a[0], a[1], 0, 0, 0])
}

/// implements rt_sigqueueinfo(2) towards this process
pub fn sys_rt_sigqueueinfo(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let me = process().pid;
    if a[0] as u32 != me {
        return Err(Errno::ESRCH);
    }
    let sig = check_sig(a[1])?;
    let raw: [u64; 4] = uaccess::read(a[2])?;
    if sig != 0 {
        crate::signal::send_to_process(SigInfo {
            signo: sig,
            code: SI_QUEUE,
            pid: me,
            value: raw[3],
            ..Default::default()
        });
    }
    Ok(0)
}

/// implements rt_sigsuspend(2)
pub fn sys_rt_sigsuspend(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let set: u64 = uaccess::read(a[0])?;
    let t = current();
    let unblockable = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));
    let old = t
        .sigmask
        .swap(set & !unblockable, core::sync::atomic::Ordering::Relaxed);
    *t.saved_mask.lock() = Some(old);
    crate::signal::wait_for_signal();
    Err(Errno::EINTR)
}

/// implements pause(2)
pub fn sys_pause(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    crate::signal::wait_for_signal();
    Err(Errno::EINTR)
}

/// implements rt_sigpending(2)
pub fn sys_rt_sigpending(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mask = current()
        .sigmask
        .load(core::sync::atomic::Ordering::Relaxed);
    uaccess::write(a[0], &(crate::signal::pending_set() & mask)).map(|_| 0)
}

/// implements rt_sigtimedwait(2)
pub fn sys_rt_sigtimedwait(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let set: u64 = uaccess::read(a[0])?;
    let deadline = if a[2] != 0 {
        let [s, ns]: [i64; 2] = uaccess::read(a[2])?;
        if s < 0 || !(0..1_000_000_000).contains(&ns) {
            return Err(Errno::EINVAL);
        }
        Some(crate::time::monotonic_ns() + s as u64 * 1_000_000_000 + ns as u64)
    } else {
        None
    };
    loop {
        let seq = crate::host::wake_seq();
        if let Some(info) = crate::signal::dequeue(set) {
            if a[1] != 0 {
                let mut b = [0u8; 128];
                b[0..4].copy_from_slice(&info.signo.to_le_bytes());
                b[8..12].copy_from_slice(&info.code.to_le_bytes());
                b[16..20].copy_from_slice(&info.pid.to_le_bytes());
                b[24..32].copy_from_slice(&info.value.to_le_bytes());
                uaccess::copy_out(a[1], &b)?;
            }
            return Ok(info.signo as u64);
        }
        if crate::signal::interrupt_pending() {
            return Err(Errno::EINTR);
        }
        let timeout = match deadline {
            None => u64::MAX,
            Some(d) => {
                let now = crate::time::monotonic_ns();
                if now >= d {
                    return Err(Errno::EAGAIN);
                }
                d - now
            }
        };
        let _ = crate::host::calls::thread_sleep(seq, timeout);
    }
}

/// implements rt_sigreturn(2)
pub fn sys_rt_sigreturn(ctx: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    ctx.replaced = true;
    if crate::signal::frame::sigreturn(ctx.regs).is_err() {
        crate::signal::die(crate::signal::SIGSEGV);
    }
    Ok(0)
}
