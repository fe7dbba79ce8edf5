//! New processes (fork, vfork, clone without CLONE_VM).

use conf_abi::Errno;

/// fork-like clones are not available yet: say so once, return ENOSYS so
/// callers (e.g. posix_spawn) report a clear error.
pub fn unsupported_fork(flags: u64) -> Errno {
    static LOGGED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !LOGGED.swap(true, core::sync::atomic::Ordering::Relaxed) {
        warn!("the program tried to start a new process (clone flags {flags:#x}); processes are not supported yet in this version of conf");
    }
    Errno::ENOSYS
}
