//! Locks for LibOS data shared between enclave threads.

pub mod futex;
mod spin;

pub use spin::{SpinLock, SpinLockGuard};
