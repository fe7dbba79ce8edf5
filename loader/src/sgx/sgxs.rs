//! SGXS, the "SGX stream" file format: an enclave written down as the
//! sequence of measurement records that build it, so that any tool can load
//! or measure it without knowing where the pages came from.
//!
//! A stream is a sequence of 64-byte records, each starting with an 8-byte
//! tag:
//!
//! | tag         | rest of the 64 bytes                          | followed by |
//! |-------------|-----------------------------------------------|-------------|
//! | `ECREATE\0` | SSAFRAMESIZE u32, SIZE u64, zeros             |             |
//! | `UNSIZED\0` | as ECREATE, SIZE to be filled in later        |             |
//! | `EADD\0\0\0\0` | page offset u64, SECINFO (first 48 bytes)  |             |
//! | `EEXTEND\0` | chunk offset u64, zeros                       | 256 bytes   |
//! | `UNMEASRD`  | chunk offset u64, zeros                       | 256 bytes   |
//!
//! ECREATE, EADD and EEXTEND records are exactly the records SGX hashes into
//! MRENCLAVE, so MRENCLAVE is the SHA-256 of the stream with the UNMEASRD
//! records (contents loaded but not measured) left out. A canonical stream
//! starts with its only ECREATE, adds pages in increasing offset order, and
//! follows each EADD with the chunks of that page only. This module writes
//! canonical streams and accepts only those.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::hex;
use super::measure::{
    eadd_record, ecreate_record, eextend_record, secinfo, Measurement, CHUNKS_PER_PAGE, CHUNK_SIZE,
    PAGE_BYTES, RECORD_SIZE, TAG_EADD, TAG_ECREATE, TAG_EEXTEND,
};

/// Tag of a stream whose ECREATE size is not known yet.
pub const TAG_UNSIZED: [u8; 8] = *b"UNSIZED\0";
/// Tag of a chunk that is loaded but not measured.
pub const TAG_UNMEASURED: [u8; 8] = *b"UNMEASRD";

/// What reading an SGXS stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxsInfo {
    /// MRENCLAVE of the enclave the stream builds.
    pub mrenclave: [u8; 32],
    /// SECS.SIZE.
    pub size: u64,
    /// SECS.SSAFRAMESIZE, in pages.
    pub ssa_frame_pages: u32,
    /// Pages added (EADD records).
    pub pages: u64,
    /// Of those, TCS pages.
    pub tcs_pages: u64,
    /// 256-byte chunks measured (EEXTEND records).
    pub measured_chunks: u64,
    /// 256-byte chunks loaded without being measured (UNMEASRD records).
    pub unmeasured_chunks: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SgxsError {
    #[error("cannot read SGXS file {}: {err}", path.display())]
    Open { path: PathBuf, err: io::Error },
    #[error("{}: {err}", path.display())]
    InFile { path: PathBuf, err: Box<SgxsError> },
    #[error("reading the SGXS stream failed: {0}")]
    Io(io::Error),
    #[error("the SGXS stream is empty: it must start with an ECREATE record")]
    Empty,
    #[error(
        "truncated SGXS stream: the {what} at byte {at} has {have} of its {need} bytes; \
         the file was cut short; write it again (conf measure MANIFEST --write-sgxs FILE)"
    )]
    Truncated {
        what: &'static str,
        at: u64,
        have: usize,
        need: usize,
    },
    #[error(
        "byte {at}: unknown SGXS record tag {} (\"{}\"); this is not an SGXS stream, or it is corrupt",
        hex::encode(tag), tag.escape_ascii()
    )]
    UnknownTag { at: u64, tag: [u8; 8] },
    #[error("byte {at}: the SGXS stream must start with an ECREATE record, found {}", String::from_utf8_lossy(tag).trim_end_matches('\0'))]
    NoEcreate { at: u64, tag: [u8; 8] },
    #[error("byte {at}: a second ECREATE record; an SGXS stream describes one enclave")]
    SecondEcreate { at: u64 },
    #[error(
        "the SGXS stream is unsized (UNSIZED record): its enclave size, and so its MRENCLAVE, \
         is not fixed yet; produce a sized stream"
    )]
    Unsized,
    #[error("byte {at}: bad ECREATE record: {reason}")]
    BadEcreate { at: u64, reason: String },
    #[error("byte {at}: bad {what} record for offset {offset:#x}: {reason}")]
    BadRecord {
        at: u64,
        what: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("byte {at}: {what} record with nonzero reserved bytes; SGX requires them to be zero")]
    Reserved { at: u64, what: &'static str },
}

// Not `#[from]`: that would also make the io::Error the `source`, and
// error reports would print it twice.
impl From<io::Error> for SgxsError {
    fn from(e: io::Error) -> Self {
        SgxsError::Io(e)
    }
}

/// Read an SGXS stream, check that it is canonical and well formed, and
/// compute its MRENCLAVE.
pub fn read_sgxs(reader: impl Read) -> Result<SgxsInfo, SgxsError> {
    Reader::new(reader).run()
}

/// [`read_sgxs`] on the file at `path`; errors name the file.
pub fn read_sgxs_file(path: &Path) -> Result<SgxsInfo, SgxsError> {
    let file = File::open(path).map_err(|err| SgxsError::Open {
        path: path.to_owned(),
        err,
    })?;
    read_sgxs(BufReader::new(file)).map_err(|e| SgxsError::InFile {
        path: path.to_owned(),
        err: Box::new(e),
    })
}

struct Reader<R> {
    inner: R,
    at: u64,
}

impl<R: Read> Reader<R> {
    fn new(inner: R) -> Self {
        Reader { inner, at: 0 }
    }

    /// Fill `buf` completely; returns how many bytes were read (less than
    /// `buf.len()` only at the end of the stream).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// The next record, or `None` at a clean end of stream.
    fn record(&mut self) -> Result<Option<(u64, [u8; RECORD_SIZE])>, SgxsError> {
        let mut rec = [0u8; RECORD_SIZE];
        let at = self.at;
        let got = self.fill(&mut rec)?;
        self.at += got as u64;
        match got {
            0 => Ok(None),
            RECORD_SIZE => Ok(Some((at, rec))),
            have => Err(SgxsError::Truncated {
                what: "record",
                at,
                have,
                need: RECORD_SIZE,
            }),
        }
    }

    fn chunk(&mut self, what: &'static str) -> Result<[u8; CHUNK_SIZE], SgxsError> {
        let mut data = [0u8; CHUNK_SIZE];
        let at = self.at;
        let got = self.fill(&mut data)?;
        self.at += got as u64;
        if got != CHUNK_SIZE {
            return Err(SgxsError::Truncated {
                what,
                at,
                have: got,
                need: CHUNK_SIZE,
            });
        }
        Ok(data)
    }

    fn run(mut self) -> Result<SgxsInfo, SgxsError> {
        let (at, rec) = self.record()?.ok_or(SgxsError::Empty)?;
        let tag: [u8; 8] = rec[0..8].try_into().expect("8 bytes");
        if tag == TAG_UNSIZED {
            return Err(SgxsError::Unsized);
        }
        if tag != TAG_ECREATE {
            if is_known_tag(&tag) {
                return Err(SgxsError::NoEcreate { at, tag });
            }
            return Err(SgxsError::UnknownTag { at, tag });
        }
        let ssa_frame_pages = u32::from_le_bytes(rec[8..12].try_into().expect("4 bytes"));
        let size = u64::from_le_bytes(rec[12..20].try_into().expect("8 bytes"));
        if rec[20..].iter().any(|&b| b != 0) {
            return Err(SgxsError::Reserved {
                at,
                what: "ECREATE",
            });
        }
        if !size.is_power_of_two() || size < 2 * PAGE_BYTES as u64 {
            return Err(SgxsError::BadEcreate {
                at,
                reason: format!("enclave size {size:#x} is not a power of two of at least 8 KiB"),
            });
        }
        if ssa_frame_pages == 0 {
            return Err(SgxsError::BadEcreate {
                at,
                reason: "SSAFRAMESIZE is 0 pages".into(),
            });
        }
        debug_assert_eq!(rec, ecreate_record(ssa_frame_pages, size));
        let mut measurement = Measurement::ecreate(ssa_frame_pages, size);
        let mut info = SgxsInfo {
            mrenclave: [0; 32],
            size,
            ssa_frame_pages,
            pages: 0,
            tcs_pages: 0,
            measured_chunks: 0,
            unmeasured_chunks: 0,
        };
        // The page the chunks that follow belong to, and which of its chunks
        // were seen already.
        let mut current: Option<u64> = None;
        let mut seen = 0u16;

        while let Some((at, rec)) = self.record()? {
            let tag: [u8; 8] = rec[0..8].try_into().expect("8 bytes");
            let offset = u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes"));
            match tag {
                TAG_EADD => {
                    let bad = |reason: String| SgxsError::BadRecord {
                        at,
                        what: "EADD",
                        offset,
                        reason,
                    };
                    if rec[24..].iter().any(|&b| b != 0) {
                        return Err(SgxsError::Reserved { at, what: "EADD" });
                    }
                    let flags = u64::from_le_bytes(rec[16..24].try_into().expect("8 bytes"));
                    if !offset.is_multiple_of(PAGE_BYTES as u64) {
                        return Err(bad("the offset is not page aligned".into()));
                    }
                    if offset >= size {
                        return Err(bad(format!(
                            "the page lies outside the {size:#x}-byte enclave"
                        )));
                    }
                    if let Some(prev) = current {
                        if offset <= prev {
                            return Err(bad(format!(
                                "pages must be added in increasing offset order, and the previous one was at {prev:#x}"
                            )));
                        }
                    }
                    check_secinfo(flags).map_err(bad)?;
                    measurement.eadd(offset, flags);
                    debug_assert_eq!(rec, eadd_record(offset, flags));
                    info.pages += 1;
                    if secinfo::page_type(flags) == secinfo::PT_TCS {
                        info.tcs_pages += 1;
                    }
                    current = Some(offset);
                    seen = 0;
                }
                TAG_EEXTEND | TAG_UNMEASURED => {
                    let what = if tag == TAG_EEXTEND {
                        "EEXTEND"
                    } else {
                        "UNMEASRD"
                    };
                    let bad = |reason: String| SgxsError::BadRecord {
                        at,
                        what,
                        offset,
                        reason,
                    };
                    if rec[16..].iter().any(|&b| b != 0) {
                        return Err(SgxsError::Reserved { at, what });
                    }
                    let Some(page) = current else {
                        return Err(bad("a chunk before any EADD record".into()));
                    };
                    if !offset.is_multiple_of(CHUNK_SIZE as u64) {
                        return Err(bad("the offset is not 256-byte aligned".into()));
                    }
                    if offset < page || offset - page >= PAGE_BYTES as u64 {
                        return Err(bad(format!(
                            "the chunk is not inside the page just added at {page:#x}"
                        )));
                    }
                    let bit = 1u16 << ((offset - page) / CHUNK_SIZE as u64);
                    if seen & bit != 0 {
                        return Err(bad("this chunk of the page was given twice".into()));
                    }
                    seen |= bit;
                    let data = self.chunk(if tag == TAG_EEXTEND {
                        "EEXTEND data"
                    } else {
                        "UNMEASRD data"
                    })?;
                    if tag == TAG_EEXTEND {
                        debug_assert_eq!(rec, eextend_record(offset));
                        measurement.eextend(offset, &data);
                        info.measured_chunks += 1;
                    } else {
                        info.unmeasured_chunks += 1;
                    }
                }
                TAG_ECREATE | TAG_UNSIZED => return Err(SgxsError::SecondEcreate { at }),
                _ => return Err(SgxsError::UnknownTag { at, tag }),
            }
        }
        info.mrenclave = measurement.finish();
        Ok(info)
    }
}

fn is_known_tag(tag: &[u8; 8]) -> bool {
    [
        TAG_ECREATE,
        TAG_UNSIZED,
        TAG_EADD,
        TAG_EEXTEND,
        TAG_UNMEASURED,
    ]
    .contains(tag)
}

/// SECINFO.FLAGS as EADD accepts them: a page type that can be added, no
/// CPU-owned or reserved bits, and no permissions on a TCS.
fn check_secinfo(flags: u64) -> Result<(), String> {
    let known = secinfo::R | secinfo::W | secinfo::X | secinfo::PAGE_TYPE_MASK;
    if flags & !known != 0 {
        return Err(format!(
            "SECINFO.FLAGS {flags:#x} has reserved or CPU-owned bits set"
        ));
    }
    let pt = secinfo::page_type(flags);
    match pt {
        secinfo::PT_REG | secinfo::PT_SS_FIRST | secinfo::PT_SS_REST => Ok(()),
        secinfo::PT_TCS if flags & (secinfo::R | secinfo::W | secinfo::X) == 0 => Ok(()),
        secinfo::PT_TCS => Err("a TCS page must have no R/W/X permissions".into()),
        _ => Err(format!(
            "page type {pt} ({}) cannot be added with EADD",
            secinfo::page_type_name(pt)
        )),
    }
}

/// Writes a canonical, sized SGXS stream page by page.
pub struct SgxsWriter<W: Write> {
    out: BufWriter<W>,
    size: u64,
    next: u64,
}

impl<W: Write> SgxsWriter<W> {
    /// Start a stream for an enclave of `size` bytes with SSA frames of
    /// `ssa_frame_pages` pages.
    pub fn new(out: W, ssa_frame_pages: u32, size: u64) -> io::Result<Self> {
        let mut out = BufWriter::new(out);
        out.write_all(&ecreate_record(ssa_frame_pages, size))?;
        Ok(SgxsWriter { out, size, next: 0 })
    }

    /// Add the page at `offset` with SECINFO.FLAGS `secinfo_flags`. With
    /// `measured`, all of its 16 chunks are measured (EEXTEND); otherwise its
    /// nonzero chunks are recorded as loaded but unmeasured (UNMEASRD), and
    /// an all-zero page is a bare EADD.
    pub fn page(
        &mut self,
        offset: u64,
        secinfo_flags: u64,
        contents: &[u8; PAGE_BYTES],
        measured: bool,
    ) -> io::Result<()> {
        if !offset.is_multiple_of(PAGE_BYTES as u64) || offset < self.next || offset >= self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("SGXS page offset {offset:#x} is unaligned, out of order or outside the enclave"),
            ));
        }
        self.next = offset + PAGE_BYTES as u64;
        self.out.write_all(&eadd_record(offset, secinfo_flags))?;
        for i in 0..CHUNKS_PER_PAGE {
            let chunk = &contents[i * CHUNK_SIZE..][..CHUNK_SIZE];
            let chunk_offset = offset + (i * CHUNK_SIZE) as u64;
            if measured {
                self.out.write_all(&eextend_record(chunk_offset))?;
            } else if chunk.iter().any(|&b| b != 0) {
                let mut rec = eextend_record(chunk_offset);
                rec[0..8].copy_from_slice(&TAG_UNMEASURED);
                self.out.write_all(&rec)?;
            } else {
                continue;
            }
            self.out.write_all(chunk)?;
        }
        Ok(())
    }

    /// Flush the stream and return the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, [u8; 32]) {
        let mut data = [0u8; PAGE_BYTES];
        data[5] = 9;
        data[4000] = 1;
        let mut w = SgxsWriter::new(Vec::new(), 1, 0x8000).unwrap();
        w.page(0x1000, secinfo::flags(secinfo::PT_REG, 3), &data, true)
            .unwrap();
        w.page(0x2000, secinfo::flags(secinfo::PT_TCS, 0), &data, true)
            .unwrap();
        w.page(0x3000, secinfo::flags(secinfo::PT_REG, 3), &data, false)
            .unwrap();
        w.page(
            0x4000,
            secinfo::flags(secinfo::PT_REG, 3),
            &[0; PAGE_BYTES],
            false,
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        let mut m = Measurement::ecreate(1, 0x8000);
        m.add_page(0x1000, 0x203, Some(&data));
        m.add_page(0x2000, 0x100, Some(&data));
        m.add_page(0x3000, 0x203, None);
        m.add_page(0x4000, 0x203, None);
        (bytes, m.finish())
    }

    #[test]
    fn round_trip() {
        let (bytes, mrenclave) = sample();
        let info = read_sgxs(&bytes[..]).unwrap();
        assert_eq!(info.mrenclave, mrenclave);
        assert_eq!(
            (info.size, info.ssa_frame_pages, info.pages, info.tcs_pages),
            (0x8000, 1, 4, 1)
        );
        assert_eq!((info.measured_chunks, info.unmeasured_chunks), (32, 2));
    }

    #[test]
    fn truncation_anywhere_is_reported() {
        let (bytes, _) = sample();
        for cut in [0, 1, 63, 64 + 10, 128 + 64 + 100, bytes.len() - 1] {
            let e = read_sgxs(&bytes[..cut]).unwrap_err();
            let msg = e.to_string();
            if cut == 0 {
                assert!(matches!(e, SgxsError::Empty), "{msg}");
            } else {
                assert!(
                    matches!(e, SgxsError::Truncated { .. }),
                    "cut at {cut}: {msg}"
                );
                assert!(msg.contains("truncated"), "{msg}");
            }
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_tag() {
        let e = read_sgxs(&[0x41u8; 256][..]).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown SGXS record tag 4141414141414141"),
            "{e}"
        );
        let (mut bytes, _) = sample();
        bytes[64] = b'X';
        let e = read_sgxs(&bytes[..]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("byte 64: unknown SGXS record tag"),
            "{e}"
        );
    }

    #[test]
    fn non_canonical_streams_are_rejected() {
        let (bytes, _) = sample();
        // Stream starting with an EADD.
        let e = read_sgxs(&bytes[64..]).unwrap_err();
        assert!(matches!(e, SgxsError::NoEcreate { .. }), "{e}");
        // Pages out of order.
        let reg = secinfo::flags(secinfo::PT_REG, 3);
        let b = [
            ecreate_record(1, 0x8000),
            eadd_record(0x2000, reg),
            eadd_record(0x1000, reg),
        ]
        .concat();
        let e = read_sgxs(&b[..]).unwrap_err();
        assert!(e.to_string().contains("increasing offset order"), "{e}");
        let second = 64 + 64 + 16 * (64 + 256);
        // A TCS with permissions.
        let mut b = bytes.clone();
        b[second + 16] = 1;
        assert!(read_sgxs(&b[..]).unwrap_err().to_string().contains("TCS"));
        // A chunk outside its page.
        let mut b = bytes.clone();
        b[128 + 8..128 + 16].copy_from_slice(&0x2000u64.to_le_bytes());
        assert!(read_sgxs(&b[..])
            .unwrap_err()
            .to_string()
            .contains("not inside the page"));
        // An unsized stream.
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&TAG_UNSIZED);
        assert!(matches!(read_sgxs(&b[..]).unwrap_err(), SgxsError::Unsized));
        // Size not a power of two.
        let mut b = bytes;
        b[12..20].copy_from_slice(&0x7000u64.to_le_bytes());
        assert!(read_sgxs(&b[..])
            .unwrap_err()
            .to_string()
            .contains("power of two"));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sgxs");
        let e = read_sgxs_file(&missing).unwrap_err();
        assert!(e.to_string().contains("nope.sgxs"), "{e}");
        let short = dir.path().join("short.sgxs");
        std::fs::write(&short, &sample().0[..100]).unwrap();
        let e = read_sgxs_file(&short).unwrap_err().to_string();
        assert!(e.contains("short.sgxs") && e.contains("truncated"), "{e}");
    }
}
