//! execve(2): a new program in the same enclave.

use conf_abi::Errno;

use super::{uaccess, Ctx};
use crate::process::{exec, process, threads};

/// An execve the LibOS refuses (a program that may not run was reported
/// once already, by `exec::prepare`; a missing one is often just a PATH
/// search).
fn refused(path: &[u8], e: exec::ExecError) -> Errno {
    debug!(
        "execve {}: {}",
        alloc::string::String::from_utf8_lossy(path),
        e.message
    );
    e.errno
}

fn do_execve(
    ctx: &mut Ctx<'_>,
    path: &[u8],
    argv: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    envp: alloc::vec::Vec<alloc::vec::Vec<u8>>,
) -> Result<u64, Errno> {
    let proc = process();
    if crate::process::vfork::child_pid().is_some() {
        // A vfork child execs: the new program runs in a child enclave; the
        // parent resumes here. Check the program first so that a bad path
        // fails in the child as execve would.
        exec::prepare(proc, path, argv.clone()).map_err(|e| refused(path, e))?;
        let view = crate::process::vfork::view();
        let pid = crate::process::fork::spawn(
            &view,
            crate::process::fork::Start::Exec {
                path: path.to_vec(),
                argv,
                envp,
            },
        )?;
        crate::process::vfork::end(ctx.regs, pid);
        ctx.replaced = true;
        return Ok(0);
    }
    let prepared = exec::prepare(proc, path, argv).map_err(|e| refused(path, e))?;
    // From here on the old program is gone, as on Linux.
    threads::zap_others();
    if proc.mm.unmap_all().is_err() {
        crate::signal::die(crate::signal::SIGKILL);
    }
    super::rewrite::reset();
    drop(proc.files.lock().close_on_exec());
    crate::signal::reset_for_exec();
    crate::time::timers::reset_for_exec();
    let t = crate::process::current();
    t.clear_child_tid
        .store(0, core::sync::atomic::Ordering::Relaxed);
    t.robust_list
        .store(0, core::sync::atomic::Ordering::Relaxed);
    let tls = crate::arch::tls::tls();
    tls.xmm = [0; 256];
    tls.mxcsr = 0x1f80;
    let m = &crate::boot::enclave().manifest;
    match exec::commit(proc, prepared, envp, m.stack_size, m.brk_max_size) {
        Ok(regs) => {
            *ctx.regs = regs;
            ctx.replaced = true;
            Ok(0)
        }
        Err(e) => {
            error!(
                "execve {}: {}",
                alloc::string::String::from_utf8_lossy(path),
                e.message
            );
            crate::signal::die(crate::signal::SIGKILL)
        }
    }
}

/// implements execve(2)
pub fn sys_execve(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let path = uaccess::path(a[0])?;
    let argv = uaccess::string_array(a[1])?;
    let envp = uaccess::string_array(a[2])?;
    do_execve(ctx, &path, argv, envp)
}

/// implements execveat(2) (AT_EMPTY_PATH for fexecve included)
pub fn sys_execveat(ctx: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    const AT_EMPTY_PATH: u64 = 0x1000;
    let argv = uaccess::string_array(a[2])?;
    let envp = uaccess::string_array(a[3])?;
    let path = uaccess::cstr(a[1], 4095)?;
    let full = if path.is_empty() {
        if a[4] & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        super::file::fd_file(a[0])?.path.clone().into_bytes()
    } else if path[0] == b'/' {
        path
    } else {
        let mut b = super::base_dir(a[0])?.into_bytes();
        b.push(b'/');
        b.extend_from_slice(&path);
        b
    };
    do_execve(ctx, &full, argv, envp)
}
