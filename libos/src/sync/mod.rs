//! Locks for LibOS data shared between enclave threads.

mod spin;

pub use spin::{SpinLock, SpinLockGuard};
