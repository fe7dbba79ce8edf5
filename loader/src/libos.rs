//! The LibOS enclave binary, built by build.rs and carried inside conf-run.

/// The LibOS ELF (static PIE); its loadable segments are the measured LibOS
/// pages of every enclave.
pub static LIBOS_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/conf-libos.elf"));
