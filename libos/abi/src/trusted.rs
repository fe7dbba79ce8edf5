//! How a trusted file's digest is computed, on both sides of the boundary.
//!
//! A file is cut into [`CHUNK_SIZE`] chunks; each chunk has a SHA-256 digest,
//! and the file's digest (the one in the resolved manifest, hence in
//! MRENCLAVE) is SHA-256 over a domain tag, the file size and the chunk
//! digests in order. The LibOS can therefore verify any chunk on its own once
//! it holds the (host-supplied, root-checked) list of chunk digests: opening
//! a large file does not read it whole.

use sha2::{Digest, Sha256};

/// Bytes per chunk.
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Domain separation tag of the root digest.
pub const ROOT_TAG: &[u8; 16] = b"conf-trusted-v1\0";

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// Number of chunks a file of `size` bytes has (an empty file has none).
pub const fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

/// Digest of one chunk's bytes.
pub fn chunk_digest(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// Incremental computation of a file's root digest from chunk digests.
pub struct RootHasher {
    inner: Sha256,
}

impl RootHasher {
    pub fn new(size: u64) -> RootHasher {
        let mut inner = Sha256::new();
        inner.update(ROOT_TAG);
        inner.update(size.to_le_bytes());
        RootHasher { inner }
    }

    pub fn push(&mut self, chunk: &Digest32) {
        self.inner.update(chunk);
    }

    pub fn finish(self) -> Digest32 {
        self.inner.finalize().into()
    }
}

/// Root digest of a file given its size and all chunk digests.
pub fn root_digest(size: u64, chunks: &[Digest32]) -> Digest32 {
    let mut h = RootHasher::new(size);
    for c in chunks {
        h.push(c);
    }
    h.finish()
}

/// Root digest of a file held in memory.
pub fn file_digest(bytes: &[u8]) -> Digest32 {
    let mut h = RootHasher::new(bytes.len() as u64);
    for chunk in bytes.chunks(CHUNK_SIZE as usize) {
        h.push(&chunk_digest(chunk));
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_multi_chunk_files() {
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK_SIZE), 1);
        assert_eq!(chunk_count(CHUNK_SIZE + 1), 2);
        let data: alloc::vec::Vec<u8> = (0..(CHUNK_SIZE as usize * 2 + 5))
            .map(|i| i as u8)
            .collect();
        let chunks: alloc::vec::Vec<_> =
            data.chunks(CHUNK_SIZE as usize).map(chunk_digest).collect();
        assert_eq!(file_digest(&data), root_digest(data.len() as u64, &chunks));
        assert_ne!(file_digest(&data), file_digest(&data[1..]));
        // Size is bound into the root: a truncated final chunk changes it.
        assert_ne!(root_digest(10, &chunks), root_digest(11, &chunks));
    }
}
