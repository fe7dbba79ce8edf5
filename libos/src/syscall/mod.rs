//! System calls: how a call gets from the program to its handler.
//!
//! A program's `syscall` instruction reaches the LibOS either through a
//! trap (under sim: Syscall User Dispatch → SIGSYS → AEX → `Exception`
//! entry; under SGX: #UD → AEX) or through a rewritten call site that jumps
//! to `libos_syscall_entry`. Both end in [`dispatch`], which looks the
//! number up in the one table (`table.rs`), runs the handler with the
//! program's registers, and writes the result back as Linux would.
//!
//! Handlers live in one file per family; pointers stop at `uaccess.rs`.

pub mod clone;
pub mod exec;
pub mod file;
pub mod fs;
pub mod misc;
pub mod mmap;
pub mod names;
pub mod net;
pub mod poll;
pub mod process;
pub mod rewrite;
pub mod signal;
pub mod table;
pub mod time;
pub mod uaccess;

use core::sync::atomic::{AtomicU64, Ordering};

use conf_abi::manifest::LogLevel;
use conf_abi::Errno;

use crate::arch::tls::UserRegs;
use table::Entry;

/// What a handler sees besides its arguments.
pub struct Ctx<'a> {
    pub regs: &'a mut UserRegs,
    /// Set by handlers that replace the registers wholesale (execve,
    /// rt_sigreturn): the result is not written to RAX.
    pub replaced: bool,
}

pub type Handler = fn(&mut Ctx<'_>, [u64; 6]) -> Result<u64, Errno>;

/// One bit per syscall number already reported as unimplemented.
static REPORTED: [AtomicU64; names::COUNT.div_ceil(64) + 1] =
    [const { AtomicU64::new(0) }; names::COUNT.div_ceil(64) + 1];

/// Log an unimplemented (`expected` false: warning) or deliberately refused
/// (`expected` true: debug) call once per number.
fn report_once(nr: u64, what: &str, reason: &str, expected: bool) {
    let i = (nr as usize).min(names::COUNT);
    let bit = 1u64 << (i % 64);
    if REPORTED[i / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        let name = names::NAMES
            .get(nr as usize)
            .copied()
            .filter(|n| !n.is_empty())
            .unwrap_or("unknown");
        if expected {
            debug!("system call {name} ({nr}) {what}{reason}");
        } else {
            warn!("system call {name} ({nr}) {what}{reason}");
        }
    }
}

pub fn name_of(nr: u64) -> &'static str {
    names::NAMES
        .get(nr as usize)
        .copied()
        .filter(|n| !n.is_empty())
        .unwrap_or("?")
}

/// Run the system call described by `regs` (number in RAX, arguments in
/// RDI, RSI, RDX, R10, R8, R9) and store its result.
pub fn dispatch(regs: &mut UserRegs) {
    let nr = regs.rax;
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let mut ctx = Ctx {
        regs,
        replaced: false,
    };
    // Calls that do not return are traced before they run, as strace does.
    if matches!(nr, 60 | 231 | 59 | 322 | 15) && crate::log::enabled(LogLevel::Trace) {
        let tid = crate::process::current().tid;
        trace!(
            "[{tid}] {}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = ?",
            name_of(nr),
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            args[5]
        );
    }
    let result = match table::TABLE
        .get(nr as usize)
        .copied()
        .unwrap_or(Entry::Missing)
    {
        Entry::Supported(h) | Entry::Partial(h, _) => h(&mut ctx, args),
        Entry::Unsupported(e, reason) => {
            report_once(nr, "is not supported: ", reason, true);
            Err(e)
        }
        Entry::Missing => {
            report_once(nr, "is not implemented", "", false);
            Err(Errno::ENOSYS)
        }
    };
    if crate::log::enabled(LogLevel::Trace) {
        trace_call(nr, &args, &result);
    }
    if result == Err(Errno::ERESTARTSYS) {
        if crate::signal::should_restart() {
            // SA_RESTART: run the call again after the handler, by pointing
            // the program back at its `syscall` instruction.
            ctx.regs.rip -= 2;
            ctx.regs.rax = nr;
            return;
        }
        ctx.regs.rax = Errno::EINTR.as_return() as u64;
        return;
    }
    if !ctx.replaced {
        ctx.regs.rax = match result {
            Ok(v) => v,
            Err(e) => e.as_return() as u64,
        };
    }
}

fn trace_call(nr: u64, a: &[u64; 6], r: &Result<u64, Errno>) {
    let tid = crate::process::current().tid;
    match r {
        Ok(v) => trace!(
            "[{tid}] {}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = {:#x}",
            name_of(nr),
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
            v
        ),
        Err(e) => trace!(
            "[{tid}] {}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = -{} ({})",
            name_of(nr),
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
            e.name(),
            e.description()
        ),
    }
}

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

/// Directory a relative path argument is resolved against (`*at` calls).
pub fn base_dir(dirfd: u64) -> Result<alloc::string::String, Errno> {
    let dirfd = dirfd as i32;
    let proc = crate::process::process();
    if dirfd == AT_FDCWD {
        return Ok(proc.cwd());
    }
    let f = proc.files.lock().get(dirfd)?;
    if !f.file.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(f.path.clone())
}

/// Base directory for `path`: the cwd or dirfd only matter for relative paths.
pub fn base_for(dirfd: u64, path: &[u8]) -> Result<alloc::string::String, Errno> {
    if path.first() == Some(&b'/') {
        return Ok(alloc::string::String::from("/"));
    }
    base_dir(dirfd)
}

/// Run a blocking host operation, retrying when a kick interrupted it for
/// nothing, and reporting ERESTARTSYS when a signal is to be delivered (the
/// dispatcher then restarts the call or returns EINTR, per SA_RESTART).
pub fn restartable<T>(mut op: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match op() {
            Err(Errno::EINTR) => {
                if crate::signal::interrupt_pending() {
                    return Err(Errno::ERESTARTSYS);
                }
            }
            r => return r,
        }
    }
}

/// As `restartable`, for calls Linux never restarts (poll, epoll_wait,
/// nanosleep): EINTR when a signal is to be delivered.
pub fn interruptible<T>(mut op: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match op() {
            Err(Errno::EINTR) => {
                if crate::signal::interrupt_pending() {
                    return Err(Errno::EINTR);
                }
            }
            r => return r,
        }
    }
}
