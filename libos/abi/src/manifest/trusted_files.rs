//! The trusted files of a resolved manifest, kept as their encoding.
//!
//! A resolution of CPython's standard library lists 5,000 files. Decoded
//! into a `String` each, the list cost every start about half a millisecond
//! on the host (the snapshot's copy) and as much again in the LibOS (the
//! measured copy), for lookups that touch a dozen entries. Here the records
//! stay back to back as the manifest encodes them, with the offset of each:
//! decoding is one pass that checks their bounds and order (and a copy,
//! unless the bytes it decodes are kept anyway: [`SharedBytes`]), encoding
//! is a copy, and an entry is read (its path checked as UTF-8) where it
//! lies.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::{DecodeError, Reader, TrustedFile};
use crate::trusted::Digest32;

/// Bytes of a record besides its path: the path's length (u32), the file's
/// size (u64) and its root digest.
const FIXED: usize = 4 + 8 + 32;

/// One trusted file, read in place from a [`TrustedFiles`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedFileRef<'a> {
    /// Its position in the list, by which the LibOS and the host name it
    /// to each other (fill hints).
    pub index: u32,
    pub path: &'a str,
    pub size: u64,
    pub digest: Digest32,
}

impl TrustedFileRef<'_> {
    pub fn to_owned(&self) -> TrustedFile {
        TrustedFile {
            path: self.path.into(),
            size: self.size,
            digest: self.digest,
        }
    }
}

/// Bytes someone keeps for as long as a manifest decoded from them lives,
/// so that its trusted-file list can stay in them instead of being copied:
/// the host's mapped snapshot, the LibOS's measured manifest pages. (A copy
/// of a Python resolution's list is 450 KB of fresh pages, ~0.15 ms of page
/// faults on either side.)
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Where a list's records are.
#[derive(Clone)]
enum Records {
    Owned(Vec<u8>),
    Shared(SharedBytes, Range<usize>),
}

impl Default for Records {
    fn default() -> Self {
        Records::Owned(Vec::new())
    }
}

/// A list of trusted files: canonical (sorted by path, no path twice) once
/// decoded or canonicalized, which lookups by path rely on.
#[derive(Clone, Default)]
pub struct TrustedFiles {
    /// The records, each as the manifest encoding has it: path length (u32
    /// LE), path, size (u64 LE), digest.
    records: Records,
    /// Where each record starts in `records`.
    starts: Vec<u32>,
    /// Known to be canonical (decoded, or canonicalized since the last push).
    canonical: bool,
}

impl PartialEq for TrustedFiles {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for TrustedFiles {}

impl fmt::Debug for TrustedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl TrustedFiles {
    pub fn new() -> TrustedFiles {
        TrustedFiles {
            canonical: true,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    fn bytes(&self) -> &[u8] {
        match &self.records {
            Records::Owned(v) => v,
            // The range was checked against the bytes when decoded, and
            // shared bytes do not change.
            Records::Shared(b, r) => &(**b).as_ref()[r.clone()],
        }
    }

    fn owned(&mut self) -> &mut Vec<u8> {
        if let Records::Shared(..) = self.records {
            self.records = Records::Owned(self.bytes().to_vec());
        }
        match &mut self.records {
            Records::Owned(v) => v,
            Records::Shared(..) => unreachable!("made owned above"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Append a file (the list is canonical again after `canonicalize`).
    ///
    /// # Panics
    /// If the list would pass 4 GiB of records.
    pub fn push(&mut self, file: TrustedFile) {
        let bytes = self.owned();
        let start = u32::try_from(bytes.len()).expect("trusted file list above 4 GiB");
        let path_len = u32::try_from(file.path.len()).expect("trusted file path above 4 GiB");
        bytes.extend_from_slice(&path_len.to_le_bytes());
        bytes.extend_from_slice(file.path.as_bytes());
        bytes.extend_from_slice(&file.size.to_le_bytes());
        bytes.extend_from_slice(&file.digest);
        self.starts.push(start);
        self.canonical = self.len() == 1;
    }

    /// The record starting at `start`: its path's bytes (unchecked), the
    /// file's size and its digest's bytes. The one place that knows the
    /// layout after `push` and `decode` checked it.
    fn record(&self, start: u32) -> (&[u8], u64, &[u8]) {
        let bytes = self.bytes();
        let start = start as usize;
        let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap_or_default());
        let size_at = start + 4 + len as usize;
        let size = u64::from_le_bytes(bytes[size_at..size_at + 8].try_into().unwrap_or_default());
        (
            &bytes[start + 4..size_at],
            size,
            &bytes[size_at + 8..size_at + 40],
        )
    }

    /// Entry `index`.
    pub fn get(&self, index: usize) -> Option<TrustedFileRef<'_>> {
        let (path, size, digest) = self.record(*self.starts.get(index)?);
        Some(TrustedFileRef {
            index: index as u32,
            // Checked here, not as decoded: a start reads a few dozen of
            // the thousands of entries.
            path: core::str::from_utf8(path).ok()?,
            size,
            digest: digest.try_into().ok()?,
        })
    }

    /// The entries, in order (one whose path is not UTF-8, which only bytes
    /// no encoder wrote can hold, is left out, as `get` and `find` leave it).
    pub fn iter(&self) -> impl Iterator<Item = TrustedFileRef<'_>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The sum of the files' sizes.
    pub fn total_size(&self) -> u64 {
        self.starts.iter().map(|&s| self.record(s).1).sum()
    }

    /// The path bytes of entry `index`, without the UTF-8 check `get` makes.
    fn path_bytes(&self, index: usize) -> &[u8] {
        self.record(self.starts[index]).0
    }

    /// The file at `path`, by binary search (the list must be canonical).
    pub fn find(&self, path: &str) -> Option<TrustedFileRef<'_>> {
        // Byte order is str order for UTF-8.
        let i = self
            .starts
            .binary_search_by(|&s| self.record(s).0.cmp(path.as_bytes()))
            .ok()?;
        self.get(i)
    }

    /// Whether the paths strictly increase.
    pub fn is_canonical(&self) -> bool {
        self.canonical || (1..self.len()).all(|i| self.path_bytes(i - 1) < self.path_bytes(i))
    }

    /// Sort by path and keep one entry per path (the least, as the
    /// manifest's other lists do).
    pub fn canonicalize(&mut self) {
        if self.is_canonical() {
            self.canonical = true;
            return;
        }
        let mut all: Vec<TrustedFile> = self.iter().map(|t| t.to_owned()).collect();
        all.sort();
        all.dedup_by(|a, b| a.path == b.path);
        *self = all.into_iter().collect();
        self.canonical = true;
    }

    /// The records as the manifest encodes them (without the count).
    pub(super) fn encoded(&self) -> &[u8] {
        self.bytes()
    }

    /// `count` records from `r`, which must be in canonical order. With
    /// `shared`, `r` reads those bytes from offset `base` on, and the list
    /// stays in them.
    pub(super) fn decode(
        r: &mut Reader<'_>,
        count: usize,
        shared: Option<(&SharedBytes, usize)>,
    ) -> Result<TrustedFiles, DecodeError> {
        let first = r.pos;
        let mut starts = Vec::with_capacity(count);
        let mut last: Option<&[u8]> = None;
        for _ in 0..count {
            let start = u32::try_from(r.pos - first).map_err(|_| DecodeError::BadValue {
                at: r.pos,
                what: "trusted file list size",
            })?;
            let at = r.pos;
            let len = r.u32()? as usize;
            let path = r.take(len)?;
            if last.is_some_and(|l| l >= path) {
                return Err(DecodeError::BadValue {
                    at,
                    what: "trusted file order (paths must be sorted and unique)",
                });
            }
            last = Some(path);
            r.take(FIXED - 4)?;
            starts.push(start);
        }
        let records = match shared {
            Some((b, base)) => Records::Shared(b.clone(), base + first..base + r.pos),
            None => Records::Owned(r.bytes[first..r.pos].to_vec()),
        };
        Ok(TrustedFiles {
            records,
            starts,
            canonical: true,
        })
    }
}

impl FromIterator<TrustedFile> for TrustedFiles {
    fn from_iter<I: IntoIterator<Item = TrustedFile>>(files: I) -> TrustedFiles {
        let mut list = TrustedFiles::new();
        for f in files {
            list.push(f);
        }
        list
    }
}

impl From<Vec<TrustedFile>> for TrustedFiles {
    fn from(files: Vec<TrustedFile>) -> TrustedFiles {
        files.into_iter().collect()
    }
}

/// The smallest a record can be, for bounding hostile counts.
pub(super) const MIN_RECORD: usize = FIXED;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn file(path: &str, size: u64) -> TrustedFile {
        TrustedFile {
            path: String::from(path),
            size,
            digest: [size as u8; 32],
        }
    }

    #[test]
    fn entries_read_back_as_pushed() {
        let list: TrustedFiles = [file("/b", 2), file("/a", 1)].into_iter().collect();
        assert_eq!(list.len(), 2);
        let b = list.get(0).unwrap();
        assert_eq!((b.index, b.path, b.size, b.digest), (0, "/b", 2, [2; 32]));
        assert!(list.get(2).is_none());
        assert!(!list.is_canonical());
    }

    #[test]
    fn canonical_lists_are_sorted_unique_and_searchable() {
        let mut list: TrustedFiles = [file("/c", 3), file("/a", 1), file("/b", 2), file("/a", 9)]
            .into_iter()
            .collect();
        list.canonicalize();
        let paths: Vec<&str> = list.iter().map(|t| t.path).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        assert_eq!(
            list.find("/a").unwrap().size,
            1,
            "the least entry of a path stays"
        );
        assert_eq!(list.find("/c").unwrap().index, 2);
        assert!(list.find("/bb").is_none() && list.find("").is_none());
        list.push(file("/0", 0));
        assert!(!list.is_canonical());
    }
}
