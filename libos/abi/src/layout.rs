//! Enclave layout: the SGX structures both sides agree on and the measured
//! records the loader writes for the LibOS to find its way at first entry.
//!
//! Offsets are always relative to the enclave base: SGX measures offsets, not
//! addresses, so nothing measured may depend on where ELRANGE lands.

/// Size of an enclave page.
pub const PAGE_SIZE: u64 = 4096;
/// SSA frames per thread slot: one for the running context, one so that an
/// exception while the LibOS copies the first frame out is still reported.
pub const NSSA: u32 = 2;
/// Pages per SSA frame. The XSAVE area with AVX-512 and AMX tile data is
/// about 11 KiB; 16 KiB leaves room for the MISC and GPR regions at the end.
pub const SSA_FRAME_PAGES: u32 = 4;
/// Pages of LibOS stack per thread slot.
pub const LIBOS_STACK_PAGES: u32 = 64;
/// The lowest enclave offset handed out as memory. The first 64 KiB stay
/// unmapped so that NULL dereferences fault even when ELRANGE starts at 0,
/// which it does so that non-PIE programs (linked at 0x400000) fit inside.
pub const HEAP_START: u64 = 0x10000;

/// Offsets inside a TCS page (SDM vol. 3D, 34.8 "Thread Control Structure").
pub mod tcs {
    pub const FLAGS: usize = 8;
    pub const OSSA: usize = 16;
    pub const CSSA: usize = 24;
    pub const NSSA: usize = 28;
    pub const OENTRY: usize = 32;
    pub const OFSBASE: usize = 48;
    pub const OGSBASE: usize = 56;
    pub const FSLIMIT: usize = 64;
    pub const GSLIMIT: usize = 68;
}

/// The GPRSGX region: the last 184 bytes of every SSA frame (SDM 34.9.1).
pub mod gpr {
    pub const SIZE: usize = 184;
    pub const RAX: usize = 0;
    pub const RCX: usize = 8;
    pub const RDX: usize = 16;
    pub const RBX: usize = 24;
    pub const RSP: usize = 32;
    pub const RBP: usize = 40;
    pub const RSI: usize = 48;
    pub const RDI: usize = 56;
    pub const R8: usize = 64;
    pub const R9: usize = 72;
    pub const R10: usize = 80;
    pub const R11: usize = 88;
    pub const R12: usize = 96;
    pub const R13: usize = 104;
    pub const R14: usize = 112;
    pub const R15: usize = 120;
    pub const RFLAGS: usize = 128;
    pub const RIP: usize = 136;
    pub const URSP: usize = 144;
    pub const URBP: usize = 152;
    pub const EXITINFO: usize = 160;
    pub const FSBASE: usize = 168;
    pub const GSBASE: usize = 176;
    /// EXINFO (MISC region, 16 bytes) sits just below GPRSGX: MADDR, ERRCD.
    pub const EXINFO_BELOW: usize = 16;
}

/// EXITINFO bits (SDM 34.9.1.1).
pub mod exitinfo {
    pub const VALID: u32 = 1 << 31;
    pub const TYPE_HW: u32 = 3 << 8;
    pub const TYPE_SW: u32 = 6 << 8;
    pub const VECTOR_DE: u32 = 0;
    pub const VECTOR_DB: u32 = 1;
    pub const VECTOR_BP: u32 = 3;
    pub const VECTOR_UD: u32 = 6;
    pub const VECTOR_GP: u32 = 13;
    pub const VECTOR_PF: u32 = 14;
    pub const VECTOR_MF: u32 = 16;
    pub const VECTOR_AC: u32 = 17;
    pub const VECTOR_XM: u32 = 19;
    /// Not an x86 vector: the sim backend reports a bus error (SIGBUS on a
    /// truncated file mapping) with it; SGX would report #PF.
    pub const VECTOR_SIM_BUS: u32 = 0x80;
    pub const VECTOR_MASK: u32 = 0xff;
}

/// Page permissions as SECINFO encodes them.
pub mod perm {
    pub const R: u8 = 1;
    pub const W: u8 = 2;
    pub const X: u8 = 4;
}

/// Layout of one thread slot, from its lowest page upward:
/// guard page (never added), LibOS stack, TLS page (GS base), TCS, SSA frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotGeometry;

impl SlotGeometry {
    pub const GUARD_PAGES: u64 = 1;
    pub const STACK_OFFSET: u64 = Self::GUARD_PAGES * PAGE_SIZE;
    pub const TLS_OFFSET: u64 = Self::STACK_OFFSET + LIBOS_STACK_PAGES as u64 * PAGE_SIZE;
    pub const TCS_OFFSET: u64 = Self::TLS_OFFSET + PAGE_SIZE;
    pub const SSA_OFFSET: u64 = Self::TCS_OFFSET + PAGE_SIZE;
    pub const SIZE: u64 = Self::SSA_OFFSET + (NSSA as u64 * SSA_FRAME_PAGES as u64) * PAGE_SIZE;
}

/// Magic value at the start of [`EnclaveInfo`].
pub const ENCLAVE_INFO_MAGIC: u64 = u64::from_le_bytes(*b"CONFINFO");
/// Magic value at the start of every [`SlotRecord`].
pub const SLOT_RECORD_MAGIC: u64 = u64::from_le_bytes(*b"CONFSLOT");

/// Measured description of the enclave, written by the loader into its own
/// page. Every TLS page points to it, so the LibOS trusts these numbers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnclaveInfo {
    pub magic: u64,
    pub abi_version: u32,
    pub nslots: u32,
    pub enclave_size: u64,
    pub heap_offset: u64,
    pub heap_size: u64,
    pub libos_offset: u64,
    pub libos_size: u64,
    pub manifest_offset: u64,
    pub manifest_len: u64,
    pub slots_offset: u64,
    pub slot_size: u64,
    /// 1 when heap pages are added at run time (EDMM), 0 when pre-added.
    pub edmm: u32,
    pub reserved: u32,
}

/// Measured initial contents of a slot's TLS page. The LibOS builds its
/// per-thread state on top of the rest of the page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotRecord {
    pub magic: u64,
    pub slot_index: u64,
    /// Offset of the enclave's [`EnclaveInfo`].
    pub info_offset: u64,
    pub tls_offset: u64,
    pub tcs_offset: u64,
    pub ssa_offset: u64,
    pub stack_top_offset: u64,
}

impl EnclaveInfo {
    /// Bytes of the record as measured.
    pub fn to_bytes(&self) -> [u8; core::mem::size_of::<EnclaveInfo>()] {
        // SAFETY: repr(C), only integer fields, no padding (checked by test).
        unsafe { core::mem::transmute_copy(self) }
    }
}

impl SlotRecord {
    /// Bytes of the record as measured.
    pub fn to_bytes(&self) -> [u8; core::mem::size_of::<SlotRecord>()] {
        // SAFETY: repr(C), only u64 fields, no padding.
        unsafe { core::mem::transmute_copy(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_no_padding() {
        assert_eq!(core::mem::size_of::<EnclaveInfo>(), 10 * 8 + 4 * 4);
        assert_eq!(core::mem::size_of::<SlotRecord>(), 7 * 8);
    }

    #[test]
    fn slot_geometry_is_page_aligned() {
        for off in [
            SlotGeometry::STACK_OFFSET,
            SlotGeometry::TLS_OFFSET,
            SlotGeometry::TCS_OFFSET,
            SlotGeometry::SSA_OFFSET,
            SlotGeometry::SIZE,
        ] {
            assert_eq!(off % PAGE_SIZE, 0);
        }
    }
}
