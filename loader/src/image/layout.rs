//! Page layout of an enclave: where the LibOS, the resolved manifest, the
//! thread slots and the heap go, and how each page is added and measured.
//!
//! ELRANGE starts at offset 0 and everything the loader adds sits at the top
//! of it, so the bottom (from [`HEAP_START`]) is free for the program: non-PIE
//! executables, which are linked at 0x400000, load at their own addresses
//! when the enclave base is 0.

use conf_abi::layout::{
    perm, tcs, EnclaveInfo, SlotGeometry, SlotRecord, ENCLAVE_INFO_MAGIC, HEAP_START,
    LIBOS_STACK_PAGES, NSSA, PAGE_SIZE, SLOT_RECORD_MAGIC, SSA_FRAME_PAGES,
};
use std::sync::Arc;

use conf_abi::manifest::ResolvedManifest;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::{header, program_header::PT_LOAD, Elf, ProgramHeader};

/// SGX page type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    Reg,
    Tcs,
}

/// How a page enters the enclave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// EADD and EEXTEND: its offset, permissions and contents are in MRENCLAVE.
    Measured,
    /// EADD only: offset and permissions are in MRENCLAVE, contents are not
    /// (they are zero when the loader adds them).
    Added,
    /// Added at run time (SGX2 EAUG, zero-filled by the CPU): not in MRENCLAVE.
    Dynamic,
}

/// A run of pages with the same type, permissions and treatment.
#[derive(Clone, Debug)]
pub struct Region {
    pub offset: u64,
    pub pages: u64,
    pub page_type: PageType,
    /// `perm::R | perm::W | perm::X` bits.
    pub perms: u8,
    pub measure: Measure,
    /// Bytes at the start of the region; the rest is zero.
    pub content: Content,
    /// What the region is, for `conf inspect --layout` and errors.
    pub what: String,
}

/// A region's bytes, without copying the big ones: the LibOS segments are
/// borrowed from the image conf-run carries, the manifest is shared with
/// the image that holds it (a copy of each cost every start ~1.4 MB of
/// fresh memory for Python).
#[derive(Clone, Debug, Default)]
pub enum Content {
    #[default]
    Empty,
    Borrowed(&'static [u8]),
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl std::ops::Deref for Content {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Content::Empty => &[],
            Content::Borrowed(b) => b,
            Content::Owned(v) => v,
            Content::Shared(v) => v,
        }
    }
}

impl Content {
    /// The bytes, made the region's own to change.
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Content::Owned(_)) {
            *self = Content::Owned(self.to_vec());
        }
        match self {
            Content::Owned(v) => v,
            _ => unreachable!("made owned just above"),
        }
    }
}

impl From<Vec<u8>> for Content {
    fn from(v: Vec<u8>) -> Content {
        Content::Owned(v)
    }
}

impl Region {
    pub fn end(&self) -> u64 {
        self.offset + self.pages * PAGE_SIZE
    }

    /// The bytes of page `index` of this region (zero-padded).
    pub fn page(&self, index: u64) -> [u8; PAGE_SIZE as usize] {
        let mut page = [0u8; PAGE_SIZE as usize];
        let start = (index * PAGE_SIZE) as usize;
        if start < self.content.len() {
            let end = (start + PAGE_SIZE as usize).min(self.content.len());
            page[..end - start].copy_from_slice(&self.content[start..end]);
        }
        page
    }
}

/// Every page of an enclave, in offset order.
#[derive(Clone, Debug)]
pub struct EnclaveLayout {
    /// ELRANGE size in bytes (a power of two).
    pub size: u64,
    /// SSA frame size in pages (SECS.SSAFRAMESIZE).
    pub ssa_frame_pages: u32,
    pub regions: Vec<Region>,
    pub info: EnclaveInfo,
    /// Offset of the LibOS entry point (TCS.OENTRY).
    pub entry_offset: u64,
    pub debug: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("the LibOS image is not a valid ELF file: {0}")]
    BadLibos(String),
    #[error("sgx.enclave_size = {size:#x} is not a power of two; use one such as \"1G\", \"2G\" or \"4G\"")]
    SizeNotPowerOfTwo { size: u64 },
    #[error("sgx.enclave_size = {size:#x} leaves no room for the program: the LibOS, manifest and {threads} thread slots need {needed:#x} bytes; raise sgx.enclave_size or lower sgx.max_threads")]
    TooSmall {
        size: u64,
        needed: u64,
        threads: u32,
    },
    #[error("sgx.max_threads must be at least 1")]
    NoThreads,
}

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

fn elf_perms(flags: u32) -> u8 {
    let mut p = 0;
    if flags & goblin::elf::program_header::PF_R != 0 {
        p |= perm::R;
    }
    if flags & goblin::elf::program_header::PF_W != 0 {
        p |= perm::W;
    }
    if flags & goblin::elf::program_header::PF_X != 0 {
        p |= perm::X;
    }
    p
}

/// The LibOS ELF's loadable image: regions relative to the LibOS base.
fn libos_regions(elf_bytes: &'static [u8]) -> Result<(Vec<Region>, u64, u64), LayoutError> {
    // Only the headers: a full parse reads the symbol and string tables too.
    if elf_bytes.len() < header::header64::SIZEOF_EHDR
        || elf_bytes[header::EI_CLASS] != header::ELFCLASS64
        || elf_bytes[header::EI_DATA] != header::ELFDATA2LSB
    {
        return Err(LayoutError::BadLibos(
            "not a 64-bit little-endian ELF file".into(),
        ));
    }
    let eh = Elf::parse_header(elf_bytes).map_err(|e| LayoutError::BadLibos(e.to_string()))?;
    let phdrs = ProgramHeader::parse(
        elf_bytes,
        eh.e_phoff as usize,
        eh.e_phnum as usize,
        Ctx::new(Container::Big, Endian::Little),
    )
    .map_err(|e| LayoutError::BadLibos(format!("program headers: {e}")))?;
    let mut regions = Vec::new();
    let mut span = 0u64;
    for ph in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        if ph.p_vaddr % PAGE_SIZE != ph.p_offset % PAGE_SIZE {
            return Err(LayoutError::BadLibos(
                "segment offset and address are not congruent modulo the page size".into(),
            ));
        }
        let start = ph.p_vaddr / PAGE_SIZE * PAGE_SIZE;
        let end = page_up(
            ph.p_vaddr
                .checked_add(ph.p_memsz)
                .ok_or_else(|| LayoutError::BadLibos("segment overflows".into()))?,
        );
        let lead = (ph.p_vaddr - start) as usize;
        let file_end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or_else(|| LayoutError::BadLibos("segment overflows".into()))?;
        let bytes = elf_bytes
            .get(ph.p_offset as usize..file_end as usize)
            .ok_or_else(|| {
                LayoutError::BadLibos("segment extends past the end of the file".into())
            })?;
        let content = if lead == 0 {
            Content::Borrowed(bytes)
        } else {
            let mut v = vec![0u8; lead];
            v.extend_from_slice(bytes);
            Content::Owned(v)
        };
        if let Some(prev) = regions.last() {
            let prev: &Region = prev;
            if start < prev.end() {
                return Err(LayoutError::BadLibos("segments overlap within a page; link with -z separate-code and page-aligned segments".into()));
            }
        }
        regions.push(Region {
            offset: start,
            pages: (end - start) / PAGE_SIZE,
            page_type: PageType::Reg,
            perms: elf_perms(ph.p_flags),
            measure: Measure::Measured,
            content,
            what: format!("LibOS segment {}", regions.len()),
        });
        span = span.max(end);
    }
    if regions.is_empty() {
        return Err(LayoutError::BadLibos("no loadable segments".into()));
    }
    Ok((regions, span, eh.e_entry))
}

impl EnclaveLayout {
    /// Lay out an enclave for the LibOS image `libos_elf` and the resolved
    /// manifest whose canonical bytes are `manifest_bytes`.
    pub fn build(
        libos_elf: &'static [u8],
        manifest: &ResolvedManifest,
        manifest_bytes: &Arc<Vec<u8>>,
    ) -> Result<EnclaveLayout, LayoutError> {
        let size = manifest.enclave_size;
        if !size.is_power_of_two() {
            return Err(LayoutError::SizeNotPowerOfTwo { size });
        }
        if manifest.max_threads == 0 {
            return Err(LayoutError::NoThreads);
        }
        let (libos, libos_span, entry) = libos_regions(libos_elf)?;
        let nslots = manifest.max_threads as u64;
        let info_size = PAGE_SIZE;
        let manifest_size = page_up(manifest_bytes.len() as u64);
        let slots_size = nslots * SlotGeometry::SIZE;
        let runtime = libos_span + info_size + manifest_size + slots_size;
        // Keep at least 16 MiB for the program, or nothing useful can run.
        let needed = runtime + HEAP_START + (16 << 20);
        if needed > size {
            return Err(LayoutError::TooSmall {
                size,
                needed,
                threads: manifest.max_threads,
            });
        }
        let libos_offset = size - runtime;
        let info_offset = libos_offset + libos_span;
        let manifest_offset = info_offset + info_size;
        let slots_offset = manifest_offset + manifest_size;

        let info = EnclaveInfo {
            magic: ENCLAVE_INFO_MAGIC,
            abi_version: conf_abi::ABI_VERSION,
            nslots: manifest.max_threads,
            enclave_size: size,
            heap_offset: HEAP_START,
            heap_size: libos_offset - HEAP_START,
            libos_offset,
            libos_size: libos_span,
            manifest_offset,
            manifest_len: manifest_bytes.len() as u64,
            slots_offset,
            slot_size: SlotGeometry::SIZE,
            edmm: manifest.edmm as u32,
            reserved: 0,
        };

        let mut regions = Vec::new();
        regions.push(Region {
            offset: HEAP_START,
            pages: info.heap_size / PAGE_SIZE,
            page_type: PageType::Reg,
            perms: perm::R | perm::W | perm::X,
            measure: if manifest.edmm {
                Measure::Dynamic
            } else {
                Measure::Added
            },
            content: Content::Empty,
            what: "heap".into(),
        });
        for mut r in libos {
            r.offset += libos_offset;
            regions.push(r);
        }
        regions.push(Region {
            offset: info_offset,
            pages: 1,
            page_type: PageType::Reg,
            perms: perm::R,
            measure: Measure::Measured,
            content: info.to_bytes().to_vec().into(),
            what: "enclave info".into(),
        });
        regions.push(Region {
            offset: manifest_offset,
            pages: manifest_size / PAGE_SIZE,
            page_type: PageType::Reg,
            perms: perm::R,
            measure: Measure::Measured,
            content: Content::Shared(manifest_bytes.clone()),
            what: "resolved manifest".into(),
        });
        for slot in 0..nslots {
            let base = slots_offset + slot * SlotGeometry::SIZE;
            let tls = base + SlotGeometry::TLS_OFFSET;
            let tcs_off = base + SlotGeometry::TCS_OFFSET;
            let ssa = base + SlotGeometry::SSA_OFFSET;
            regions.push(Region {
                offset: base + SlotGeometry::STACK_OFFSET,
                pages: LIBOS_STACK_PAGES as u64,
                page_type: PageType::Reg,
                perms: perm::R | perm::W,
                measure: Measure::Added,
                content: Content::Empty,
                what: format!("slot {slot} LibOS stack"),
            });
            let record = SlotRecord {
                magic: SLOT_RECORD_MAGIC,
                slot_index: slot,
                info_offset,
                tls_offset: tls,
                tcs_offset: tcs_off,
                ssa_offset: ssa,
                stack_top_offset: tls,
            };
            regions.push(Region {
                offset: tls,
                pages: 1,
                page_type: PageType::Reg,
                perms: perm::R | perm::W,
                measure: Measure::Measured,
                content: record.to_bytes().to_vec().into(),
                what: format!("slot {slot} TLS"),
            });
            let mut tcs_page = vec![0u8; 72];
            let put64 = |p: &mut Vec<u8>, at: usize, v: u64| {
                p[at..at + 8].copy_from_slice(&v.to_le_bytes())
            };
            let put32 = |p: &mut Vec<u8>, at: usize, v: u32| {
                p[at..at + 4].copy_from_slice(&v.to_le_bytes())
            };
            put64(&mut tcs_page, tcs::FLAGS, manifest.debug as u64);
            put64(&mut tcs_page, tcs::OSSA, ssa);
            put32(&mut tcs_page, tcs::CSSA, 0);
            put32(&mut tcs_page, tcs::NSSA, NSSA);
            put64(&mut tcs_page, tcs::OENTRY, libos_offset + entry);
            put64(&mut tcs_page, tcs::OFSBASE, tls);
            put64(&mut tcs_page, tcs::OGSBASE, tls);
            put32(&mut tcs_page, tcs::FSLIMIT, 0xfff);
            put32(&mut tcs_page, tcs::GSLIMIT, 0xfff);
            regions.push(Region {
                offset: tcs_off,
                pages: 1,
                page_type: PageType::Tcs,
                perms: 0,
                measure: Measure::Measured,
                content: tcs_page.into(),
                what: format!("slot {slot} TCS"),
            });
            regions.push(Region {
                offset: ssa,
                pages: (NSSA * SSA_FRAME_PAGES) as u64,
                page_type: PageType::Reg,
                perms: perm::R | perm::W,
                measure: Measure::Added,
                content: Content::Empty,
                what: format!("slot {slot} SSA"),
            });
        }
        Ok(EnclaveLayout {
            size,
            ssa_frame_pages: SSA_FRAME_PAGES,
            regions,
            info,
            entry_offset: libos_offset + entry,
            debug: manifest.debug,
        })
    }

    /// Offset of slot `n`'s TCS page.
    pub fn tcs_offset(&self, slot: u64) -> u64 {
        self.info.slots_offset + slot * SlotGeometry::SIZE + SlotGeometry::TCS_OFFSET
    }

    /// Offset of slot `n`'s TLS page (the GS base while it runs in the enclave).
    pub fn tls_offset(&self, slot: u64) -> u64 {
        self.info.slots_offset + slot * SlotGeometry::SIZE + SlotGeometry::TLS_OFFSET
    }

    /// Offset of slot `n`'s first SSA frame.
    pub fn ssa_offset(&self, slot: u64) -> u64 {
        self.info.slots_offset + slot * SlotGeometry::SIZE + SlotGeometry::SSA_OFFSET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF with one RX and one RW segment, enough for layout tests.
    pub(crate) fn tiny_elf() -> Vec<u8> {
        let mut f = vec![0u8; 0x3000];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&0x1000u64.to_le_bytes()); // entry
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, at: usize, flags: u32, off: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            f[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&off.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&off.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            f[at + 48..at + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        };
        ph(&mut f, 64, 5, 0x1000, 0x10, 0x10);
        ph(&mut f, 120, 6, 0x2000, 0x8, 0x3000);
        f[0x1000] = 0xcc;
        f
    }

    #[test]
    fn layout_is_ordered_disjoint_and_at_the_top() {
        let m = ResolvedManifest {
            enclave_size: 1 << 28,
            max_threads: 3,
            ..Default::default()
        };
        let bytes = m.encode();
        let l = EnclaveLayout::build(tiny_elf().leak(), &m, &Arc::new(bytes)).unwrap();
        let mut prev_end = 0;
        for r in &l.regions {
            assert!(r.offset >= prev_end, "{} overlaps", r.what);
            assert_eq!(r.offset % PAGE_SIZE, 0);
            prev_end = r.end();
        }
        assert!(prev_end <= l.size);
        assert_eq!(
            l.regions
                .iter()
                .filter(|r| r.page_type == PageType::Tcs)
                .count(),
            3
        );
        assert_eq!(l.info.heap_offset, HEAP_START);
        assert_eq!(l.entry_offset, l.info.libos_offset + 0x1000);
    }

    #[test]
    fn bad_sizes_are_refused_with_the_key() {
        let m = ResolvedManifest {
            enclave_size: 3 << 20,
            ..Default::default()
        };
        let e = EnclaveLayout::build(tiny_elf().leak(), &m, &Arc::new(m.encode())).unwrap_err();
        assert!(e.to_string().contains("sgx.enclave_size"));
        let m = ResolvedManifest {
            enclave_size: 1 << 20,
            max_threads: 64,
            ..Default::default()
        };
        let e = EnclaveLayout::build(tiny_elf().leak(), &m, &Arc::new(m.encode())).unwrap_err();
        assert!(e.to_string().contains("sgx.max_threads"), "{e}");
    }
}
