//! x86-64 specifics: entry/exit assembly, per-thread TLS, self-relocation.

pub mod cpuid;
pub mod entry;
pub mod reloc;
pub mod tls;

/// A random 64-bit value from the CPU (RDRAND), retried as Intel advises.
pub fn rdrand64() -> Option<u64> {
    for _ in 0..10 {
        let v: u64;
        let ok: u8;
        // SAFETY: RDRAND writes a register and CF.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
        };
        if ok != 0 {
            return Some(v);
        }
    }
    None
}

/// Fill `buf` from RDRAND. Panics (aborting the enclave) if the CPU's
/// generator fails repeatedly, which SGX's threat model treats as fatal.
pub fn fill_random(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = rdrand64().expect("RDRAND failed 10 times in a row");
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
}

/// Read the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}
