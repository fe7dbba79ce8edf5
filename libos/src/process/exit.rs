//! Ending threads and the process.

/// End the whole program with a Linux wait status (`code << 8`, or the
/// number of the signal that killed it).
pub fn exit_group(wait_status: u64) -> ! {
    crate::fs::prefetch::publish();
    crate::host::exit_process(wait_status)
}

/// End the calling thread; the last thread ends the process.
pub fn exit_thread(wait_status: u64) -> ! {
    if crate::process::threads::live_threads() <= 1 {
        exit_group(wait_status);
    }
    crate::process::threads::exit_current()
}
