//! MRENCLAVE, computed the way the CPU computes it.
//!
//! SGX keeps a running SHA-256 in the SECS while an enclave is built. Each of
//! ECREATE, EADD and EEXTEND feeds it one 64-byte record (SDM vol. 3D, the
//! pseudocode of each leaf); EEXTEND follows its record with the 256 bytes it
//! measures. EINIT finalizes the hash into MRENCLAVE. Offsets are relative to
//! the enclave base, so the value does not depend on where ELRANGE lands.
//!
//! The same 64-byte records are the building blocks of the SGXS stream format
//! (see [`super::sgxs`]), which is why the record builders are public.

use sha2::{Digest, Sha256};

/// Size of one measurement record.
pub const RECORD_SIZE: usize = 64;
/// Bytes measured by one EEXTEND.
pub const CHUNK_SIZE: usize = 256;
/// Bytes in an enclave page.
pub const PAGE_BYTES: usize = 4096;
/// EEXTENDs needed to measure a whole page.
pub const CHUNKS_PER_PAGE: usize = PAGE_BYTES / CHUNK_SIZE;

/// Tag of the ECREATE record ("ECREATE" and a NUL, as a little-endian u64).
pub const TAG_ECREATE: [u8; 8] = *b"ECREATE\0";
/// Tag of the EADD record.
pub const TAG_EADD: [u8; 8] = *b"EADD\0\0\0\0";
/// Tag of the EEXTEND record.
pub const TAG_EEXTEND: [u8; 8] = *b"EEXTEND\0";

/// SECINFO.FLAGS (SDM vol. 3D, "Security Information (SECINFO)").
pub mod secinfo {
    /// Readable.
    pub const R: u64 = 1 << 0;
    /// Writable.
    pub const W: u64 = 1 << 1;
    /// Executable.
    pub const X: u64 = 1 << 2;
    /// Set by the CPU for EAUG'ed pages (never in an EADD).
    pub const PENDING: u64 = 1 << 3;
    /// Set by the CPU for EMODT'ed pages (never in an EADD).
    pub const MODIFIED: u64 = 1 << 4;
    /// Set by the CPU for EMODPR'ed pages (never in an EADD).
    pub const PR: u64 = 1 << 5;
    /// PAGE_TYPE occupies bits 15:8.
    pub const PAGE_TYPE_SHIFT: u32 = 8;
    pub const PAGE_TYPE_MASK: u64 = 0xff << PAGE_TYPE_SHIFT;

    /// Page types (SDM vol. 3D, "Supported PAGE_TYPE").
    pub const PT_SECS: u8 = 0;
    pub const PT_TCS: u8 = 1;
    pub const PT_REG: u8 = 2;
    pub const PT_VA: u8 = 3;
    pub const PT_TRIM: u8 = 4;
    /// First page of a CET shadow stack.
    pub const PT_SS_FIRST: u8 = 5;
    /// Other pages of a CET shadow stack.
    pub const PT_SS_REST: u8 = 6;

    /// SECINFO.FLAGS for a page of type `page_type` with R/W/X bits `perms`
    /// (only the low three bits of `perms` are used).
    pub const fn flags(page_type: u8, perms: u8) -> u64 {
        ((page_type as u64) << PAGE_TYPE_SHIFT) | (perms as u64 & (R | W | X))
    }

    /// The PAGE_TYPE field of SECINFO.FLAGS.
    pub const fn page_type(flags: u64) -> u8 {
        ((flags & PAGE_TYPE_MASK) >> PAGE_TYPE_SHIFT) as u8
    }

    /// Name of a page type, for messages.
    pub fn page_type_name(page_type: u8) -> &'static str {
        match page_type {
            PT_SECS => "SECS",
            PT_TCS => "TCS",
            PT_REG => "REG",
            PT_VA => "VA",
            PT_TRIM => "TRIM",
            PT_SS_FIRST => "SS_FIRST",
            PT_SS_REST => "SS_REST",
            _ => "unknown",
        }
    }
}

/// The record ECREATE measures: tag, SECS.SSAFRAMESIZE (u32), SECS.SIZE
/// (u64), zero padding.
pub fn ecreate_record(ssa_frame_pages: u32, size: u64) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    r[0..8].copy_from_slice(&TAG_ECREATE);
    r[8..12].copy_from_slice(&ssa_frame_pages.to_le_bytes());
    r[12..20].copy_from_slice(&size.to_le_bytes());
    r
}

/// The record EADD measures: tag, page offset (u64), the first 48 bytes of
/// SECINFO (FLAGS and 40 reserved bytes, which are zero).
pub fn eadd_record(offset: u64, secinfo_flags: u64) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    r[0..8].copy_from_slice(&TAG_EADD);
    r[8..16].copy_from_slice(&offset.to_le_bytes());
    r[16..24].copy_from_slice(&secinfo_flags.to_le_bytes());
    r
}

/// The record EEXTEND measures before the 256 data bytes: tag, chunk offset
/// (u64), 48 zero bytes.
pub fn eextend_record(offset: u64) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    r[0..8].copy_from_slice(&TAG_EEXTEND);
    r[8..16].copy_from_slice(&offset.to_le_bytes());
    r
}

/// A running MRENCLAVE, as kept in SECS.MRENCLAVE while the enclave is built.
///
/// ```
/// use conf_loader::sgx::measure::{secinfo, Measurement};
/// let mut m = Measurement::ecreate(1, 0x2000);
/// m.add_page(0, secinfo::flags(secinfo::PT_REG, 0b011), Some(&[0u8; 4096]));
/// let mrenclave: [u8; 32] = m.finish();
/// ```
#[derive(Clone)]
pub struct Measurement {
    hash: Sha256,
}

impl std::fmt::Debug for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measurement").finish_non_exhaustive()
    }
}

impl Measurement {
    /// Start a measurement as ECREATE does, for an enclave of `size` bytes
    /// whose SSA frames are `ssa_frame_pages` pages each.
    pub fn ecreate(ssa_frame_pages: u32, size: u64) -> Measurement {
        let mut hash = Sha256::new();
        hash.update(ecreate_record(ssa_frame_pages, size));
        Measurement { hash }
    }

    /// Measure an EADD of the page at `offset` with SECINFO.FLAGS
    /// `secinfo_flags` (see [`secinfo::flags`]).
    pub fn eadd(&mut self, offset: u64, secinfo_flags: u64) {
        debug_assert_eq!(
            offset % PAGE_BYTES as u64,
            0,
            "EADD offset must be page aligned"
        );
        self.hash.update(eadd_record(offset, secinfo_flags));
    }

    /// Measure an EEXTEND of the 256 bytes `chunk` at `offset`.
    pub fn eextend(&mut self, offset: u64, chunk: &[u8; CHUNK_SIZE]) {
        debug_assert_eq!(
            offset % CHUNK_SIZE as u64,
            0,
            "EEXTEND offset must be 256-byte aligned"
        );
        self.hash.update(eextend_record(offset));
        self.hash.update(chunk);
    }

    /// EADD a page and, when `contents` is given, EEXTEND all of it.
    pub fn add_page(
        &mut self,
        offset: u64,
        secinfo_flags: u64,
        contents: Option<&[u8; PAGE_BYTES]>,
    ) {
        self.eadd(offset, secinfo_flags);
        if let Some(page) = contents {
            for (i, chunk) in page.chunks_exact(CHUNK_SIZE).enumerate() {
                let chunk: &[u8; CHUNK_SIZE] =
                    chunk.try_into().expect("chunks_exact yields whole chunks");
                self.eextend(offset + (i * CHUNK_SIZE) as u64, chunk);
            }
        }
    }

    /// The final MRENCLAVE, as EINIT computes it.
    pub fn finish(self) -> [u8; 32] {
        self.hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn records_have_the_sdm_layout() {
        let r = ecreate_record(4, 0x1_0000_0000);
        // "ECREATE\0" read as a little-endian u64 is the SDM's 0045544145524345h.
        assert_eq!(
            u64::from_le_bytes(r[0..8].try_into().unwrap()),
            0x0045_5441_4552_4345
        );
        assert_eq!(&r[8..12], &[4, 0, 0, 0]);
        assert_eq!(&r[12..20], &[0, 0, 0, 0, 1, 0, 0, 0]);
        assert!(r[20..].iter().all(|&b| b == 0));

        let r = eadd_record(0x3000, secinfo::flags(secinfo::PT_REG, 0b101));
        assert_eq!(
            u64::from_le_bytes(r[0..8].try_into().unwrap()),
            0x0000_0000_4444_4145
        );
        assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 0x3000);
        assert_eq!(u64::from_le_bytes(r[16..24].try_into().unwrap()), 0x205);
        assert!(r[24..].iter().all(|&b| b == 0));

        let r = eextend_record(0x3100);
        assert_eq!(
            u64::from_le_bytes(r[0..8].try_into().unwrap()),
            0x0044_4E45_5458_4545
        );
        assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 0x3100);
        assert!(r[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn secinfo_flags_encode_type_and_permissions() {
        assert_eq!(secinfo::flags(secinfo::PT_TCS, 0), 0x100);
        assert_eq!(secinfo::flags(secinfo::PT_REG, 7), 0x207);
        assert_eq!(
            secinfo::flags(secinfo::PT_REG, 0xff),
            0x207,
            "only R/W/X come from perms"
        );
        assert_eq!(secinfo::page_type(0x207), secinfo::PT_REG);
    }

    #[test]
    fn matches_a_hand_assembled_record_stream() {
        // One TCS page (EADD only) and one measured REG page.
        let mut data = [0u8; PAGE_BYTES];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut m = Measurement::ecreate(1, 0x4000);
        m.eadd(0, 0x100);
        m.add_page(0x1000, 0x203, Some(&data));

        // The same bytes, spelled out.
        let mut stream = Vec::new();
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"ECREATE\0");
        rec[8] = 1;
        rec[12..20].copy_from_slice(&0x4000u64.to_le_bytes());
        stream.extend_from_slice(&rec);
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"EADD\0\0\0\0");
        rec[16] = 0x00;
        rec[17] = 0x01;
        stream.extend_from_slice(&rec);
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"EADD\0\0\0\0");
        rec[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        rec[16] = 0x03;
        rec[17] = 0x02;
        stream.extend_from_slice(&rec);
        for i in 0..16u64 {
            let mut rec = [0u8; 64];
            rec[..8].copy_from_slice(b"EEXTEND\0");
            rec[8..16].copy_from_slice(&(0x1000 + i * 256).to_le_bytes());
            stream.extend_from_slice(&rec);
            stream.extend_from_slice(&data[i as usize * 256..][..256]);
        }
        assert_eq!(stream.len(), 3 * 64 + 16 * (64 + 256));
        assert_eq!(m.finish(), sha256(&[&stream]));
    }

    #[test]
    fn empty_enclave_vector() {
        // SHA-256 of the lone ECREATE record of a 4 KiB enclave with 1-page
        // SSA frames. The 64 record bytes are fixed by the SDM; the digest was
        // computed once outside Rust (`printf 'ECREATE\0\x01\0\0\0\0\x10'
        // ...| sha256sum`) and is pinned here.
        let m = Measurement::ecreate(1, 0x1000).finish();
        assert_eq!(
            crate::sgx::hex::encode(m),
            "3cc716a42c8d707da48a173278d39d80855ee5f77b881eeba5810349e50127c2"
        );
    }
}
