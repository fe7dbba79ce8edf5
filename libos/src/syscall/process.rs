//! Process and identity system calls.

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::process::{self as p, process, Rlimit, RLIM_NLIMITS};

/// A vfork child that exits: the parent resumes with its pid, and a
/// later wait reports `status`.
fn vfork_child_exits(ctx: &mut Ctx<'_>, status: i32) -> bool {
    let Some(pid) = crate::process::vfork::child_pid() else {
        return false;
    };
    process().children.lock().insert(
        pid,
        crate::process::Child {
            status: Some(status),
        },
    );
    crate::process::vfork::end(ctx.regs, pid);
    ctx.replaced = true;
    crate::signal::raise(crate::signal::SIGCHLD);
    true
}

/// implements exit_group(2)
pub fn sys_exit_group(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let status = ((a[0] & 0xff) << 8) as i32;
    if vfork_child_exits(ctx, status) {
        return Ok(0);
    }
    crate::process::exit::exit_group(status as u64)
}

/// implements exit(2): the calling thread ends; the last one ends the process.
pub fn sys_exit(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let status = ((a[0] & 0xff) << 8) as i32;
    if vfork_child_exits(ctx, status) {
        return Ok(0);
    }
    crate::process::exit::exit_thread(status as u64)
}

/// implements getpid(2)
pub fn sys_getpid(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(crate::process::vfork::child_pid().unwrap_or(process().pid) as u64)
}

/// implements getppid(2)
pub fn sys_getppid(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    if crate::process::vfork::child_pid().is_some() {
        return Ok(process().pid as u64);
    }
    Ok(process().ppid as u64)
}

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WEXITED: u64 = 4;
const WNOWAIT: u64 = 0x0100_0000;

/// Wait for a child: (pid, wait status), or (0, 0) with WNOHANG.
fn wait_child(pid: i32, options: u64) -> Result<(i32, i32), Errno> {
    let proc = process();
    {
        let mut ch = proc.children.lock();
        if ch.is_empty() {
            return Err(Errno::ECHILD);
        }
        if pid > 0 && !ch.contains_key(&(pid as u32)) {
            return Err(Errno::ECHILD);
        }
        // Children whose status is already known (vfork children that exited).
        let known = ch
            .iter()
            .find(|(p, c)| c.status.is_some() && (pid <= 0 || **p == pid as u32))
            .map(|(p, c)| (*p, c.status.unwrap_or(0)));
        if let Some((p, st)) = known {
            if options & WNOWAIT == 0 {
                ch.remove(&p);
            }
            return Ok((p as i32, st));
        }
    }
    let host_pid = if pid > 0 { pid } else { -1 };
    let opts = (options & (WNOHANG | WUNTRACED | WCONTINUED)) as i32;
    let (got, status) = super::restartable(|| crate::host::calls::wait(host_pid, opts))?;
    if got > 0 {
        let exited = status & 0x7f == 0 || (status & 0x7f != 0x7f && status & 0xff != 0);
        let mut ch = proc.children.lock();
        if !ch.contains_key(&(got as u32)) {
            crate::host::hostile(conf_abi::ocall::Ocall::Wait, "a pid that is not a child");
        }
        if exited && options & WNOWAIT == 0 {
            ch.remove(&(got as u32));
        }
    }
    Ok((got, status))
}

/// implements wait4(2)
pub fn sys_wait4(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[2] & !(WNOHANG | WUNTRACED | WCONTINUED | 0x2000_0000 | 0x4000_0000 | 0x8000_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    let (pid, status) = wait_child(a[0] as i32, a[2])?;
    if a[1] != 0 && pid > 0 {
        uaccess::write(a[1], &status)?;
    }
    if a[3] != 0 {
        uaccess::write(a[3], &[0u64; 18])?;
    }
    Ok(pid as u64)
}

/// implements waitid(2) (P_ALL, P_PID)
pub fn sys_waitid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    let pid = match a[0] {
        P_ALL => -1,
        P_PID => a[1] as i32,
        _ => return Err(Errno::EINVAL),
    };
    if a[3] & (WEXITED | WUNTRACED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let (got, status) = wait_child(pid, a[3])?;
    if a[2] != 0 {
        let mut si = [0u8; 128];
        if got > 0 {
            // CLD_EXITED with the exit code, or CLD_KILLED with the signal.
            let (code, val) = if status & 0x7f == 0 {
                (1i32, (status >> 8) & 0xff)
            } else {
                (2, status & 0x7f)
            };
            si[0..4].copy_from_slice(&(crate::signal::SIGCHLD as i32).to_le_bytes());
            si[8..12].copy_from_slice(&code.to_le_bytes());
            si[16..20].copy_from_slice(&got.to_le_bytes());
            si[24..28].copy_from_slice(&val.to_le_bytes());
        }
        uaccess::copy_out(a[2], &si)?;
    }
    Ok(0)
}

/// implements gettid(2)
pub fn sys_gettid(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(p::current().tid as u64)
}

/// implements getuid(2), geteuid(2), getgid(2), getegid(2): the enclave's
/// identity is root, as in a container and in Gramine by default.
pub fn sys_getid(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

/// implements getresuid(2) / getresgid(2)
pub fn sys_getresid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    for ptr in &a[..3] {
        uaccess::write(*ptr, &0u32)?;
    }
    Ok(0)
}

/// implements setuid(2) and friends: only to the current identity.
pub fn sys_setid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[0] as u32 == 0 || a[0] as i32 == -1 {
        Ok(0)
    } else {
        Err(Errno::EPERM)
    }
}

/// implements getgroups(2)
pub fn sys_getgroups(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

/// The caller's pid (a vfork child has its own until it execs).
fn my_pid() -> u32 {
    crate::process::vfork::child_pid().unwrap_or(process().pid)
}

/// Is `pid` this process, or one it knows (parent, children)? Their
/// groups are not tracked here: children keep the group they started in.
fn known(pid: u32) -> Result<bool, Errno> {
    let proc = process();
    if pid == 0 || pid == my_pid() {
        return Ok(true);
    }
    if pid == proc.ppid || proc.children.lock().contains_key(&pid) {
        return Ok(false);
    }
    Err(Errno::ESRCH)
}

/// implements getpgrp(2), getpgid(2)
pub fn sys_getpgid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    known(a[0] as u32)?;
    Ok(process().pgid.load(core::sync::atomic::Ordering::Relaxed) as u64)
}

/// implements getsid(2)
pub fn sys_getsid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    known(a[0] as u32)?;
    Ok(process().sid.load(core::sync::atomic::Ordering::Relaxed) as u64)
}

/// implements setpgid(2)
pub fn sys_setpgid(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    use core::sync::atomic::Ordering::Relaxed;
    let (pid, pgid) = (a[0] as i32, a[1] as i32);
    if pgid < 0 || pid < 0 {
        return Err(Errno::EINVAL);
    }
    let me = my_pid();
    if !known(pid as u32)? {
        // A child: its group is its own business (not tracked).
        return Ok(0);
    }
    let proc = process();
    let pgid = if pgid == 0 { me } else { pgid as u32 };
    // A session leader stays in its group (asking for it again is fine).
    if proc.sid.load(Relaxed) == me && pgid != proc.pgid.load(Relaxed) {
        return Err(Errno::EPERM);
    }
    proc.pgid.store(pgid, Relaxed);
    Ok(0)
}

/// implements setsid(2)
pub fn sys_setsid(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    use core::sync::atomic::Ordering::Relaxed;
    let me = my_pid();
    let proc = process();
    if proc.pgid.load(Relaxed) == me {
        return Err(Errno::EPERM);
    }
    proc.pgid.store(me, Relaxed);
    proc.sid.store(me, Relaxed);
    Ok(me as u64)
}

/// implements setpriority(2): accepted, nothing changes.
pub fn sys_setpriority(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

fn fill_field(dst: &mut [u8], s: &[u8]) {
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s[..n]);
}

/// implements uname(2)
pub fn sys_uname(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mut u = [0u8; 65 * 6];
    fill_field(&mut u[0..65], b"Linux");
    fill_field(&mut u[65..130], b"localhost");
    fill_field(&mut u[130..195], b"6.6.0-conf");
    fill_field(&mut u[195..260], b"#1 SMP conf");
    fill_field(&mut u[260..325], b"x86_64");
    fill_field(&mut u[325..390], b"(none)");
    uaccess::copy_out(a[0], &u).map(|_| 0)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_SET_CPUID: u64 = 0x1012;

/// implements arch_prctl(2): FS belongs to the program; GS is the LibOS's.
pub fn sys_arch_prctl(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    match a[0] {
        ARCH_SET_FS => {
            ctx.regs.fsbase = a[1];
            Ok(0)
        }
        ARCH_GET_FS => uaccess::write(a[1], &ctx.regs.fsbase).map(|_| 0),
        ARCH_SET_GS => Err(Errno::EPERM),
        ARCH_GET_GS => uaccess::write(a[1], &0u64).map(|_| 0),
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

/// implements set_tid_address(2)
pub fn sys_set_tid_address(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let t = p::current();
    t.clear_child_tid
        .store(a[0], core::sync::atomic::Ordering::Relaxed);
    Ok(t.tid as u64)
}

/// implements set_robust_list(2)
pub fn sys_set_robust_list(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    p::current()
        .robust_list
        .store(a[0], core::sync::atomic::Ordering::Relaxed);
    Ok(0)
}

/// implements get_robust_list(2) for the calling thread
pub fn sys_get_robust_list(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let head = p::current()
        .robust_list
        .load(core::sync::atomic::Ordering::Relaxed);
    uaccess::write(a[1], &head)?;
    uaccess::write(a[2], &24u64)?;
    Ok(0)
}

fn rlimit_index(r: u64) -> Result<usize, Errno> {
    if (r as usize) < RLIM_NLIMITS {
        Ok(r as usize)
    } else {
        Err(Errno::EINVAL)
    }
}

/// implements prlimit64(2) for the calling process
pub fn sys_prlimit64(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let proc = process();
    if a[0] != 0 && a[0] != proc.pid as u64 {
        return Err(Errno::ESRCH);
    }
    let i = rlimit_index(a[1])?;
    let new = if a[2] != 0 {
        Some(uaccess::read::<[u64; 2]>(a[2])?)
    } else {
        None
    };
    let mut rl = proc.rlimits.lock();
    let old = rl[i];
    if let Some([cur, max]) = new {
        if cur > max || max > old.max {
            return Err(if cur > max {
                Errno::EINVAL
            } else {
                Errno::EPERM
            });
        }
        rl[i] = Rlimit { cur, max };
        if i == p::RLIMIT_NOFILE {
            proc.files.lock().limit = (cur as usize).min(p::fdtable::MAX_FDS);
        }
    }
    drop(rl);
    if a[3] != 0 {
        uaccess::write(a[3], &[old.cur, old.max])?;
    }
    Ok(0)
}

/// implements getrlimit(2)
pub fn sys_getrlimit(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let i = rlimit_index(a[0])?;
    let r = process().rlimits.lock()[i];
    uaccess::write(a[1], &[r.cur, r.max]).map(|_| 0)
}

/// implements setrlimit(2)
pub fn sys_setrlimit(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sys_prlimit64(ctx, [0, a[0], a[1], 0, 0, 0])
}

/// implements getrusage(2) (zeros but for the max RSS, from the mappings)
pub fn sys_getrusage(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mut r = [0u64; 18];
    r[4] = process().mm.mapped_bytes() / 1024;
    uaccess::write(a[1], &r).map(|_| 0)
}

/// implements personality(2): only querying and the default persona.
pub fn sys_personality(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[0] == 0xffff_ffff || a[0] == 0 {
        Ok(0)
    } else {
        Err(Errno::EINVAL)
    }
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
const PR_SET_VMA: u64 = 0x53564d41;
const PR_CAPBSET_READ: u64 = 23;

/// implements prctl(2) for the requests runtimes make.
pub fn sys_prctl(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    match a[0] {
        PR_SET_NAME | PR_SET_PDEATHSIG | PR_SET_DUMPABLE | PR_SET_NO_NEW_PRIVS | PR_SET_VMA => {
            Ok(0)
        }
        PR_GET_NAME => {
            let exe = process().exe.lock().clone();
            let base = exe.rsplit('/').next().unwrap_or("");
            let mut name = [0u8; 16];
            let n = base.len().min(15);
            name[..n].copy_from_slice(&base.as_bytes()[..n]);
            uaccess::copy_out(a[1], &name).map(|_| 0)
        }
        PR_GET_PDEATHSIG => uaccess::write(a[1], &0i32).map(|_| 0),
        PR_GET_DUMPABLE => Ok(0),
        PR_GET_NO_NEW_PRIVS => Ok(1),
        PR_CAPBSET_READ => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// implements sched_getaffinity(2): as many CPUs as the host reported.
pub fn sys_sched_getaffinity(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let n = crate::boot::host_cpus() as usize;
    let len = a[1] as usize;
    let bytes = n.div_ceil(64) * 8;
    if len < bytes || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let out = uaccess::slice_mut(a[2], bytes)?;
    out.fill(0);
    for cpu in 0..n {
        out[cpu / 8] |= 1 << (cpu % 8);
    }
    Ok(bytes as u64)
}

/// implements sched_setaffinity(2): accepted, without effect.
pub fn sys_sched_setaffinity(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

/// implements sched_yield(2)
pub fn sys_sched_yield(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    crate::host::calls::sched_yield();
    Ok(0)
}

/// implements getcpu(2)
pub fn sys_getcpu(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[0] != 0 {
        uaccess::write(a[0], &0u32)?;
    }
    if a[1] != 0 {
        uaccess::write(a[1], &0u32)?;
    }
    Ok(0)
}

/// implements sysinfo(2): memory as the enclave sees it.
pub fn sys_sysinfo(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let e = crate::boot::enclave();
    let total = e.info.heap_size;
    let used = process().mm.mapped_bytes();
    let mut s = [0u8; 112];
    let uptime = crate::time::monotonic_ns() / 1_000_000_000;
    s[0..8].copy_from_slice(&uptime.to_le_bytes());
    s[32..40].copy_from_slice(&total.to_le_bytes());
    s[40..48].copy_from_slice(&total.saturating_sub(used).to_le_bytes());
    s[80..82].copy_from_slice(&1u16.to_le_bytes());
    s[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    uaccess::copy_out(a[0], &s).map(|_| 0)
}
