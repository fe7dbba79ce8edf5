//! The enclave layout as SGX builds it: the pages in EADD order with their
//! SECINFO, MRENCLAVE, and the same page stream as an SGXS file.

use std::io::{self, Write};

use conf_abi::layout::PAGE_SIZE;

use super::layout::{EnclaveLayout, Measure, PageType, Region};
use crate::sgx::measure::{secinfo, Measurement, PAGE_BYTES};
use crate::sgx::sgxs::SgxsWriter;

/// One page the loader adds before EINIT.
#[derive(Clone, Copy, Debug)]
pub struct AddedPage<'a> {
    /// Offset from the enclave base.
    pub offset: u64,
    /// SECINFO.FLAGS of the EADD.
    pub secinfo_flags: u64,
    /// Whether its contents are measured (EEXTEND of all 16 chunks).
    pub measured: bool,
    /// The region it belongs to, and its index there.
    pub region: &'a Region,
    pub index: u64,
}

impl AddedPage<'_> {
    /// The page's bytes.
    pub fn contents(&self) -> [u8; PAGE_BYTES] {
        self.region.page(self.index)
    }

    /// Whether the page is all zeros (without building it).
    pub fn is_zero(&self) -> bool {
        let start = self.index * PAGE_SIZE;
        let content = &self.region.content;
        (start as usize) >= content.len() || {
            let end = ((start + PAGE_SIZE) as usize).min(content.len());
            content[start as usize..end].iter().all(|&b| b == 0)
        }
    }
}

/// SECINFO.FLAGS for the pages of `region`: TCS pages carry no permissions.
pub fn region_secinfo(region: &Region) -> u64 {
    match region.page_type {
        PageType::Tcs => secinfo::flags(secinfo::PT_TCS, 0),
        PageType::Reg => secinfo::flags(secinfo::PT_REG, region.perms),
    }
}

impl EnclaveLayout {
    /// Every page added before EINIT, in the order it is added and measured.
    /// Pages added at run time ([`Measure::Dynamic`]) are not included.
    pub fn added_pages(&self) -> impl Iterator<Item = AddedPage<'_>> + '_ {
        self.regions
            .iter()
            .filter(|r| r.measure != Measure::Dynamic)
            .flat_map(|region| {
                let secinfo_flags = region_secinfo(region);
                let measured = region.measure == Measure::Measured;
                (0..region.pages).map(move |index| AddedPage {
                    offset: region.offset + index * PAGE_SIZE,
                    secinfo_flags,
                    measured,
                    region,
                    index,
                })
            })
    }

    /// MRENCLAVE of this layout: ECREATE, then EADD for every added page
    /// and EEXTEND for every chunk of every measured page, in layout order.
    pub fn mrenclave(&self) -> [u8; 32] {
        let mut m = Measurement::ecreate(self.ssa_frame_pages, self.size);
        for page in self.added_pages() {
            if page.measured {
                m.add_page(page.offset, page.secinfo_flags, Some(&page.contents()));
            } else {
                m.eadd(page.offset, page.secinfo_flags);
            }
        }
        m.finish()
    }

    /// Write the page stream as a canonical SGXS file. Pages that are added
    /// but not measured appear with their nonzero chunks as UNMEASRD records
    /// (today they are all zero, so as bare EADDs).
    pub fn write_sgxs(&self, w: impl Write) -> io::Result<()> {
        let mut out = SgxsWriter::new(w, self.ssa_frame_pages, self.size)?;
        const ZERO: [u8; PAGE_BYTES] = [0; PAGE_BYTES];
        for page in self.added_pages() {
            if page.measured || !page.is_zero() {
                out.page(
                    page.offset,
                    page.secinfo_flags,
                    &page.contents(),
                    page.measured,
                )?;
            } else {
                out.page(page.offset, page.secinfo_flags, &ZERO, false)?;
            }
        }
        out.finish()?.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layout::Region;
    use crate::sgx::sgxs::read_sgxs;
    use conf_abi::layout::perm;
    use sha2::{Digest, Sha256};

    fn region(
        offset: u64,
        pages: u64,
        page_type: PageType,
        perms: u8,
        measure: Measure,
        content: Vec<u8>,
    ) -> Region {
        Region {
            offset,
            pages,
            page_type,
            perms,
            measure,
            content: content.into(),
            what: String::new(),
        }
    }

    /// A small layout with every kind of page, built by hand so the test does
    /// not depend on the LibOS or the manifest encoding.
    fn tiny_layout() -> EnclaveLayout {
        let code: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        EnclaveLayout {
            size: 0x20000,
            ssa_frame_pages: 2,
            regions: vec![
                region(
                    0x1000,
                    2,
                    PageType::Reg,
                    perm::R | perm::W | perm::X,
                    Measure::Dynamic,
                    vec![],
                ),
                region(
                    0x4000,
                    2,
                    PageType::Reg,
                    perm::R | perm::W,
                    Measure::Added,
                    vec![],
                ),
                region(
                    0x8000,
                    2,
                    PageType::Reg,
                    perm::R | perm::X,
                    Measure::Measured,
                    code,
                ),
                region(
                    0xa000,
                    1,
                    PageType::Tcs,
                    perm::R | perm::W,
                    Measure::Measured,
                    vec![1, 2, 3],
                ),
            ],
            info: Default::default(),
            entry_offset: 0x8000,
            debug: false,
        }
    }

    /// The measurement records of `tiny_layout`, spelled out byte by byte
    /// from the SDM's definitions of ECREATE, EADD and EEXTEND.
    fn hand_built_mrenclave(layout: &EnclaveLayout) -> [u8; 32] {
        fn rec(tag: &[u8; 8], a: u64, b: Option<u64>) -> [u8; 64] {
            let mut r = [0u8; 64];
            r[..8].copy_from_slice(tag);
            r[8..16].copy_from_slice(&a.to_le_bytes());
            if let Some(b) = b {
                r[16..24].copy_from_slice(&b.to_le_bytes());
            }
            r
        }
        let mut h = Sha256::new();
        let mut ecreate = [0u8; 64];
        ecreate[..8].copy_from_slice(b"ECREATE\0");
        ecreate[8..12].copy_from_slice(&2u32.to_le_bytes());
        ecreate[12..20].copy_from_slice(&0x20000u64.to_le_bytes());
        h.update(ecreate);
        // Added (stack-like) pages: RW, PT_REG = 2 -> flags 0x203.
        h.update(rec(b"EADD\0\0\0\0", 0x4000, Some(0x203)));
        h.update(rec(b"EADD\0\0\0\0", 0x5000, Some(0x203)));
        // Measured code pages: RX -> 0x205.
        let code = &layout.regions[2].content;
        for page in 0..2u64 {
            h.update(rec(b"EADD\0\0\0\0", 0x8000 + page * 0x1000, Some(0x205)));
            for chunk in 0..16u64 {
                let off = page * 0x1000 + chunk * 256;
                h.update(rec(b"EEXTEND\0", 0x8000 + off, None));
                let mut data = [0u8; 256];
                for (i, d) in data.iter_mut().enumerate() {
                    *d = code.get(off as usize + i).copied().unwrap_or(0);
                }
                h.update(data);
            }
        }
        // TCS: PT_TCS = 1, no permissions whatever the region says -> 0x100.
        h.update(rec(b"EADD\0\0\0\0", 0xa000, Some(0x100)));
        for chunk in 0..16u64 {
            h.update(rec(b"EEXTEND\0", 0xa000 + chunk * 256, None));
            let mut data = [0u8; 256];
            if chunk == 0 {
                data[..3].copy_from_slice(&[1, 2, 3]);
            }
            h.update(data);
        }
        h.finalize().into()
    }

    #[test]
    fn mrenclave_matches_the_hand_built_records() {
        let l = tiny_layout();
        assert_eq!(l.mrenclave(), hand_built_mrenclave(&l));
    }

    #[test]
    fn dynamic_pages_are_not_added() {
        let l = tiny_layout();
        let offsets: Vec<u64> = l.added_pages().map(|p| p.offset).collect();
        assert_eq!(offsets, [0x4000, 0x5000, 0x8000, 0x9000, 0xa000]);
    }

    #[test]
    fn sgxs_stream_measures_the_same() {
        let l = tiny_layout();
        let mut bytes = Vec::new();
        l.write_sgxs(&mut bytes).unwrap();
        let info = read_sgxs(&bytes[..]).unwrap();
        assert_eq!(info.mrenclave, l.mrenclave());
        assert_eq!(
            (info.pages, info.tcs_pages, info.measured_chunks),
            (5, 1, 48)
        );
        // ECREATE + 5 EADD + 48 EEXTEND with their data.
        assert_eq!(bytes.len(), 64 + 5 * 64 + 48 * (64 + 256));
    }

    #[test]
    fn any_change_changes_mrenclave() {
        let base = tiny_layout().mrenclave();
        let mut l = tiny_layout();
        l.regions[2].content.to_mut()[4999] ^= 1;
        assert_ne!(l.mrenclave(), base, "content of a measured page");
        let mut l = tiny_layout();
        l.regions[1].perms = perm::R;
        assert_ne!(l.mrenclave(), base, "permissions of an added page");
        let mut l = tiny_layout();
        l.regions[1].content = vec![7].into();
        assert_eq!(
            l.mrenclave(),
            base,
            "content of an added page is not measured"
        );
        let mut l = tiny_layout();
        l.size *= 2;
        assert_ne!(l.mrenclave(), base, "enclave size");
        let mut l = tiny_layout();
        l.ssa_frame_pages = 1;
        assert_ne!(l.mrenclave(), base, "SSA frame size");
    }
}
