//! conf-abi: the only contract between the conf host side (`conf-loader`) and
//! the LibOS inside the enclave. Everything that crosses the boundary is
//! defined here, as fixed-size `repr(C)` types, offsets (never pointers) and
//! explicit encodings; the other side is assumed to lie.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod entry;
pub mod errno;
pub mod layout;
pub mod manifest;
pub mod ocall;
pub mod trusted;

/// Version of this contract. Bumped on any incompatible change; the LibOS
/// refuses a ring or enclave info of another version.
pub const ABI_VERSION: u32 = 1;

pub use errno::Errno;
