//! CPUID for the program and for the LibOS, from a cache.
//!
//! An SGX enclave cannot execute CPUID (#UD), so a program's CPUID is
//! answered here: from the cache, or by asking the host once per leaf.
//! Once booted, the LibOS asks the host to make CPUID trap
//! (`start_trapping`); the sim backend does so only when asked to
//! (`CONF_SIM_TRAP_CPUID=1`, for testing this path: the trap costs more
//! than a native CPUID), otherwise the program's CPUID keeps running
//! natively. A child process gets its parent's cache with the rest of its
//! state, so it asks for nothing.
//!
//! The leaves the LibOS relies on itself (XSAVE geometry, feature bits) are
//! read with the real instruction before trapping starts; everything asked
//! later comes from the host, untrusted, and is only handed to the program.

use crate::sync::SpinLock;

/// EAX, EBX, ECX, EDX.
pub type Regs = [u32; 4];

const CAPACITY: usize = 128;

struct Cache {
    entries: [(u32, u32, Regs); CAPACITY],
    len: usize,
}

static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    entries: [(0, 0, [0; 4]); CAPACITY],
    len: 0,
});

/// Whether CPUID now traps (after which the LibOS must not execute it).
static TRAPPING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Leaves whose answer depends on ECX (the subleaf); for the others the CPU
/// ignores ECX, which programs often leave uninitialized.
fn uses_subleaf(leaf: u32) -> bool {
    matches!(
        leaf,
        0x4 | 0x7
            | 0xb
            | 0xd
            | 0xf
            | 0x10
            | 0x12
            | 0x14
            | 0x17
            | 0x18
            | 0x1b
            | 0x1d
            | 0x1e
            | 0x1f
            | 0x20
            | 0x23
            | 0x24
            | 0x8000_001d
            | 0x8000_0020
            | 0x8000_0026
    )
}

fn key(leaf: u32, subleaf: u32) -> (u32, u32) {
    (leaf, if uses_subleaf(leaf) { subleaf } else { 0 })
}

fn lookup(k: (u32, u32)) -> Option<Regs> {
    let c = CACHE.lock();
    c.entries[..c.len]
        .iter()
        .find(|e| (e.0, e.1) == k)
        .map(|e| e.2)
}

fn remember(k: (u32, u32), regs: Regs) {
    let mut c = CACHE.lock();
    if c.entries[..c.len].iter().any(|e| (e.0, e.1) == k) || c.len == CAPACITY {
        return;
    }
    let n = c.len;
    c.entries[n] = (k.0, k.1, regs);
    c.len += 1;
}

fn native(leaf: u32, subleaf: u32) -> Regs {
    // Only called before the LibOS asks for CPUID to trap.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// CPUID `leaf`/`subleaf` as the program should see it.
pub fn cpuid(leaf: u32, subleaf: u32) -> Regs {
    let k = key(leaf, subleaf);
    if let Some(r) = lookup(k) {
        return r;
    }
    let regs = if TRAPPING.load(core::sync::atomic::Ordering::Acquire) {
        crate::debug!("cpuid: leaf {:#x}/{} asked of the host", k.0, k.1);
        // A host that cannot answer gets the answer of a CPU without the
        // leaf: zeros.
        crate::host::calls::cpuid(k.0, k.1).unwrap_or([0; 4])
    } else {
        native(k.0, k.1)
    };
    remember(k, regs);
    regs
}

/// Read what the LibOS itself relies on, then have CPUID trap from now on.
pub fn start_trapping() {
    // Feature bits (auxv's AT_HWCAP, XSAVE's presence) and the XSAVE
    // geometry signal frames are sized by: not taken from the host.
    for (leaf, subleaf) in [(1, 0), (0xd, 0), (0xd, 1)] {
        cpuid(leaf, subleaf);
    }
    // The crypto crates pick their implementation by CPUID on first use:
    // SHA-256, and AES and GHASH (the process channel's AES-GCM).
    let _ = <sha2::Sha256 as sha2::Digest>::digest(b"");
    let _ = <aes_gcm::Aes256Gcm as aes_gcm::aead::KeyInit>::new(&[0u8; 32].into());
    match crate::host::calls::trap_cpuid() {
        Ok(()) => TRAPPING.store(true, core::sync::atomic::Ordering::Release),
        // Not wanted by the backend, or the CPU cannot fault on CPUID: it
        // keeps running natively.
        Err(conf_abi::Errno::ENOSYS | conf_abi::Errno::ENODEV) => {}
        Err(e) => crate::debug!("CPUID stays native: {}", e.name()),
    }
}

/// Everything learned so far, for a child process.
pub fn known() -> alloc::vec::Vec<(u32, u32, Regs)> {
    let c = CACHE.lock();
    c.entries[..c.len].to_vec()
}

/// Take in what a parent process learned; leaves read here stay as read.
pub fn learn(entries: &[(u32, u32, Regs)]) {
    for &(leaf, subleaf, regs) in entries {
        remember(key(leaf, subleaf), regs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subleaf_leaves_are_keyed_by_ecx() {
        assert_eq!(key(1, 0xdead), (1, 0));
        assert_eq!(key(0x8000_0002, 7), (0x8000_0002, 0));
        assert_eq!(key(4, 3), (4, 3));
        assert_eq!(key(0xd, 1), (0xd, 1));
        assert_eq!(key(0x8000_001d, 2), (0x8000_001d, 2));
    }
}
