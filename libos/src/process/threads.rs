//! Thread slots: which enclave thread slots are in use.

use core::sync::atomic::{AtomicU32, Ordering};

static LIVE: AtomicU32 = AtomicU32::new(1);

pub fn live_threads() -> u32 {
    LIVE.load(Ordering::Acquire)
}

/// End the calling thread (not the last one).
pub fn exit_current() -> ! {
    LIVE.fetch_sub(1, Ordering::AcqRel);
    crate::host::exit_thread()
}

/// Bind the boot thread (slot 0) to the program's main thread.
pub fn init_main(tid: u32) {
    super::bind(super::Thread::new(tid));
}

/// A slot started by the host for a new thread (clone).
pub fn start_current() -> ! {
    crate::host::abort(conf_abi::entry::AbortCode::BadImage, format_args!("thread start without a pending clone"))
}
