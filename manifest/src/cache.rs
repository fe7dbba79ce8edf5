//! The on-disk digest cache: `hashes-v1.bin` in the cache directory.
//!
//! A file's digests are reused only if its path, device, inode, size, mtime
//! and ctime (both to the nanosecond) are what they were when it was hashed.
//!
//! Layout (little-endian):
//! - header, 48 bytes: magic, u32 version, u32 record count, u64 total file
//!   length, 16-byte checksum (SHA-256 prefix) of count, length and index,
//!   8 reserved bytes;
//! - index: one 24-byte entry per record, sorted by path hash: u64 FNV-1a
//!   of the path, u64 offset, u32 length, u32 reserved;
//! - records, each starting with a 16-byte SHA-256 prefix of the rest of it.
//!
//! Start-up reads only the header and the index; each lookup reads and
//! checks one record, so a large cache costs little. Any damage (bad magic,
//! checksum, bounds, truncation) turns the affected part into misses and
//! marks the cache for rewriting; nothing read from it is used unchecked.
//! Writes take an exclusive `flock` on `hashes-v1.lock`, merge with the file
//! currently on disk, write a temporary file and rename it over, so readers
//! always see a whole file and concurrent writers do not lose entries.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use conf_abi::trusted::{chunk_count, root_digest, Digest32};
use sha2::{Digest, Sha256};

pub(crate) const FILE_NAME: &str = "hashes-v1.bin";
const LOCK_NAME: &str = "hashes-v1.lock";
const MAGIC: &[u8; 8] = b"CONFHC\0\x01";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 48;
const INDEX_ENTRY_LEN: usize = 24;
/// Records not refreshed for this many days are dropped when the cache is
/// next written.
const EXPIRE_DAYS: u32 = 90;
/// A hit whose record is older than this is written again with today's date.
const REFRESH_DAYS: u32 = 7;
/// Largest record considered (a 512 GiB file).
const MAX_RECORD: u64 = 256 << 20;

/// The identity of one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileKey {
    pub fn of(md: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }

    /// Whether the file changed so recently (relative to `now`) that a
    /// change right after we read it could keep the same timestamps; such
    /// digests are used but not cached.
    pub fn is_racy(&self, now: SystemTime) -> bool {
        let ns = |(s, n): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(n);
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        changed_too_recently(ns(self.mtime), ns(self.ctime), now)
    }
}

/// Whether a path whose timestamps are `mtime`/`ctime` (ns since the
/// epoch) changed so shortly before `now` that a change right after could
/// leave them as they are: within 100 ms (the kernel stamps files from a
/// clock that ticks every few milliseconds), or within two seconds on a
/// file system that keeps whole seconds only (no nanoseconds in either).
pub(crate) fn changed_too_recently(mtime: i128, ctime: i128, now: i128) -> bool {
    const SECOND: i128 = 1_000_000_000;
    let coarse = mtime % SECOND == 0 && ctime % SECOND == 0;
    let margin = if coarse { 2 * SECOND } else { SECOND / 10 };
    mtime.max(ctime) > now - margin
}

/// Digests of one file version, as cached.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub path: String,
    pub key: FileKey,
    /// Days since the epoch when the record was written.
    pub day: u32,
    pub root: Digest32,
    pub chunks: Arc<[Digest32]>,
    /// Plain SHA-256 of the content, when it was computed.
    pub plain: Option<Digest32>,
}

impl Record {
    pub fn is_stale(&self, today: u32) -> bool {
        self.day.saturating_add(REFRESH_DAYS) < today
    }
}

pub(crate) fn today() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as u32)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn checksum16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn encode_record(r: &Record) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 4 + r.path.len() + 100 + r.chunks.len() * 32);
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&(r.path.len() as u32).to_le_bytes());
    b.extend_from_slice(r.path.as_bytes());
    for v in [r.key.dev, r.key.ino, r.key.size] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [r.key.mtime.0, r.key.mtime.1, r.key.ctime.0, r.key.ctime.1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&r.day.to_le_bytes());
    match &r.plain {
        Some(p) => {
            b.push(1);
            b.extend_from_slice(p);
        }
        None => b.push(0),
    }
    b.extend_from_slice(&r.root);
    b.extend_from_slice(&(r.chunks.len() as u32).to_le_bytes());
    for c in r.chunks.iter() {
        b.extend_from_slice(c);
    }
    let sum = checksum16(&[&b[16..]]);
    b[..16].copy_from_slice(&sum);
    b
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn digest(&mut self) -> Option<Digest32> {
        self.take(32)?.try_into().ok()
    }
}

/// A record from its bytes, or `None` if they are not a whole, intact record.
fn decode_record(b: &[u8]) -> Option<Record> {
    if b.len() < 16 || checksum16(&[&b[16..]]) != b[..16] {
        return None;
    }
    let mut c = Cursor { b, pos: 16 };
    let plen = c.u32()? as usize;
    let path = std::str::from_utf8(c.take(plen)?).ok()?.to_string();
    let key = FileKey {
        dev: c.u64()?,
        ino: c.u64()?,
        size: c.u64()?,
        mtime: (c.i64()?, c.i64()?),
        ctime: (c.i64()?, c.i64()?),
    };
    let day = c.u32()?;
    let plain = match c.u8()? {
        0 => None,
        1 => Some(c.digest()?),
        _ => return None,
    };
    let root = c.digest()?;
    let n = c.u32()? as usize;
    if n as u64 != chunk_count(key.size) || n.checked_mul(32)? != b.len() - c.pos {
        return None;
    }
    let chunks: Arc<[Digest32]> = (0..n)
        .map(|_| c.digest())
        .collect::<Option<Vec<_>>>()?
        .into();
    if root_digest(key.size, &chunks) != root {
        return None;
    }
    Some(Record {
        path,
        key,
        day,
        root,
        chunks,
        plain,
    })
}

#[derive(Clone, Copy)]
struct IndexEntry {
    hash: u64,
    offset: u64,
    len: u32,
}

/// The index length a header announces, if it is the header of a cache
/// file of `file_len` bytes.
fn index_len(h: &[u8], file_len: u64) -> Option<usize> {
    let mut c = Cursor { b: h, pos: 0 };
    if c.take(8)? != MAGIC || c.u32()? != VERSION {
        return None;
    }
    let count = c.u32()? as usize;
    let total = c.u64()?;
    let len = count.checked_mul(INDEX_ENTRY_LEN)?;
    if total != file_len || (HEADER_LEN as u64).checked_add(len as u64)? > total {
        return None;
    }
    Some(len)
}

/// The index entries, if the header's checksum over them holds and every
/// entry lies inside the file.
fn parse_index(h: &[u8], idx: &[u8], file_len: u64) -> Option<Vec<IndexEntry>> {
    if h.len() != HEADER_LEN || checksum16(&[&h[8..24], idx]) != h[24..40] {
        return None;
    }
    let data_start = (HEADER_LEN + idx.len()) as u64;
    let mut out = Vec::with_capacity(idx.len() / INDEX_ENTRY_LEN);
    for e in idx.chunks_exact(INDEX_ENTRY_LEN) {
        let mut c = Cursor { b: e, pos: 0 };
        let ent = IndexEntry {
            hash: c.u64()?,
            offset: c.u64()?,
            len: c.u32()?,
        };
        let end = ent.offset.checked_add(u64::from(ent.len))?;
        if ent.offset < data_start || end > file_len || u64::from(ent.len) > MAX_RECORD {
            return None;
        }
        out.push(ent);
    }
    if !out.windows(2).all(|w| w[0].hash <= w[1].hash) {
        return None;
    }
    Some(out)
}

/// Header and index of an open cache file, checked.
fn read_index(file: &File, file_len: u64) -> Option<Vec<IndexEntry>> {
    let mut h = [0u8; HEADER_LEN];
    file.read_exact_at(&mut h, 0).ok()?;
    let mut idx = vec![0u8; index_len(&h, file_len)?];
    file.read_exact_at(&mut idx, HEADER_LEN as u64).ok()?;
    parse_index(&h, &idx, file_len)
}

/// Header and index of a cache file held in memory, checked.
fn read_index_bytes(all: &[u8]) -> Option<Vec<IndexEntry>> {
    let h = all.get(..HEADER_LEN)?;
    let len = index_len(h, all.len() as u64)?;
    parse_index(h, all.get(HEADER_LEN..HEADER_LEN + len)?, all.len() as u64)
}

/// An open cache, ready for lookups from many threads.
pub(crate) struct Cache {
    dir: PathBuf,
    file: Option<File>,
    index: Vec<IndexEntry>,
    damaged: AtomicBool,
}

impl Cache {
    /// Open the cache in `dir`. Never fails: a missing cache is empty, a
    /// damaged one is empty and marked for rewriting.
    pub fn open(dir: &Path) -> Cache {
        let mut cache = Cache {
            dir: dir.to_path_buf(),
            file: None,
            index: Vec::new(),
            damaged: AtomicBool::new(false),
        };
        let Ok(file) = File::open(dir.join(FILE_NAME)) else {
            return cache;
        };
        let Ok(md) = file.metadata() else {
            return cache;
        };
        match read_index(&file, md.len()) {
            Some(index) => {
                cache.index = index;
                cache.file = Some(file);
            }
            None => cache.damaged.store(true, Ordering::Relaxed),
        }
        cache
    }

    /// Whether something read was damaged (the cache should be rewritten).
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    /// The record for `path`, if it is cached for exactly this file version.
    pub fn lookup(&self, path: &str, key: &FileKey) -> Option<Record> {
        let file = self.file.as_ref()?;
        let h = fnv1a(path);
        let start = self.index.partition_point(|e| e.hash < h);
        for e in self.index[start..].iter().take_while(|e| e.hash == h) {
            let mut buf = vec![0u8; e.len as usize];
            let rec = file
                .read_exact_at(&mut buf, e.offset)
                .ok()
                .and_then(|()| decode_record(&buf));
            let Some(rec) = rec else {
                self.damaged.store(true, Ordering::Relaxed);
                continue;
            };
            if rec.path == path {
                return (rec.key == *key).then_some(rec);
            }
        }
        None
    }

    /// Add `records` (replacing any for the same paths) to the cache on
    /// disk, merging with whatever is there now.
    pub fn store(&self, records: &[Record]) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_NAME))?;
        // SAFETY: flock on a valid, open descriptor; the lock is released
        // when `lock` is closed at the end of this function.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let today = today();
        let new_paths: std::collections::HashSet<&str> =
            records.iter().map(|r| r.path.as_str()).collect();
        let mut out: Vec<(u64, Vec<u8>)> = records
            .iter()
            .map(|r| (fnv1a(&r.path), encode_record(r)))
            .collect();
        // Keep the intact, unexpired, not superseded records of the current file.
        if let Ok(mut f) = File::open(self.dir.join(FILE_NAME)) {
            let mut all = Vec::new();
            if f.read_to_end(&mut all).is_ok() {
                if let Some(index) = read_index_bytes(&all) {
                    for e in index {
                        let b = &all[e.offset as usize..(e.offset + u64::from(e.len)) as usize];
                        let Some(rec) = decode_record(b) else {
                            continue;
                        };
                        if new_paths.contains(rec.path.as_str())
                            || rec.day.saturating_add(EXPIRE_DAYS) < today
                        {
                            continue;
                        }
                        out.push((e.hash, b.to_vec()));
                    }
                }
            }
        }
        out.sort_by_key(|a| a.0);
        let index_len = out.len() * INDEX_ENTRY_LEN;
        let data_start = (HEADER_LEN + index_len) as u64;
        let total = data_start + out.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let mut index = Vec::with_capacity(index_len);
        let mut off = data_start;
        for (h, b) in &out {
            index.extend_from_slice(&h.to_le_bytes());
            index.extend_from_slice(&off.to_le_bytes());
            index.extend_from_slice(&(b.len() as u32).to_le_bytes());
            index.extend_from_slice(&0u32.to_le_bytes());
            off += b.len() as u64;
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&(out.len() as u32).to_le_bytes());
        header.extend_from_slice(&total.to_le_bytes());
        let sum = checksum16(&[&header[8..24], &index]);
        header.extend_from_slice(&sum);
        header.extend_from_slice(&[0u8; 8]);

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = self
            .dir
            .join(format!("{FILE_NAME}.{}.{nanos}.tmp", std::process::id()));
        let result = (|| {
            let mut w = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
            w.write_all(&header)?;
            w.write_all(&index)?;
            for (_, b) in &out {
                w.write_all(b)?;
            }
            // No fsync: after a crash a torn file fails its checksums and is
            // ignored, which costs a re-hash, never a wrong digest.
            w.into_inner().map_err(|e| e.into_error())?;
            std::fs::rename(&tmp, self.dir.join(FILE_NAME))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        drop(lock);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf_abi::trusted::chunk_digest;

    fn record(path: &str, content: &[u8]) -> Record {
        let chunks: Vec<Digest32> = content.chunks(64 * 1024).map(chunk_digest).collect();
        Record {
            path: path.to_string(),
            key: FileKey {
                dev: 1,
                ino: 2,
                size: content.len() as u64,
                mtime: (3, 4),
                ctime: (5, 6),
            },
            day: today(),
            root: root_digest(content.len() as u64, &chunks),
            chunks: chunks.into(),
            plain: None,
        }
    }

    #[test]
    fn record_round_trip_and_damage() {
        let r = record("/a/b", &[7u8; 70_000]);
        let b = encode_record(&r);
        let back = decode_record(&b).unwrap();
        assert_eq!(back.path, "/a/b");
        assert_eq!(back.key, r.key);
        assert_eq!(back.chunks.len(), 2);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(decode_record(&bad).is_none(), "flipped byte {i} accepted");
        }
        for n in 0..b.len() {
            assert!(decode_record(&b[..n]).is_none());
        }
    }

    #[test]
    fn store_lookup_merge() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path());
        assert!(!c.is_damaged());
        let a = record("/x/a", b"hello");
        let b = record("/x/b", b"");
        c.store(&[a.clone(), b.clone()]).unwrap();
        let c = Cache::open(dir.path());
        assert_eq!(c.lookup("/x/a", &a.key).unwrap().root, a.root);
        assert_eq!(c.lookup("/x/b", &b.key).unwrap().chunks.len(), 0);
        let mut other = a.key;
        other.mtime.1 += 1;
        assert!(c.lookup("/x/a", &other).is_none());
        assert!(c.lookup("/x/c", &a.key).is_none());
        // A second writer adds a record; the first ones stay.
        let d = record("/x/d", b"more");
        c.store(std::slice::from_ref(&d)).unwrap();
        let c = Cache::open(dir.path());
        assert!(c.lookup("/x/a", &a.key).is_some());
        assert!(c.lookup("/x/d", &d.key).is_some());
        assert!(!c.is_damaged());
        // Expired records are dropped at the next write.
        let mut old = record("/x/old", b"o");
        old.day = today() - EXPIRE_DAYS - 1;
        c.store(&[old.clone()]).unwrap();
        assert!(Cache::open(dir.path()).lookup("/x/old", &old.key).is_some());
        c.store(&[record("/x/e", b"e")]).unwrap();
        let c = Cache::open(dir.path());
        assert!(c.lookup("/x/old", &old.key).is_none());
        assert!(c.lookup("/x/a", &a.key).is_some());
    }

    #[test]
    fn damaged_files_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let a = record("/x/a", b"hello");
        Cache::open(dir.path())
            .store(std::slice::from_ref(&a))
            .unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        // Every single-byte corruption and every truncation is either
        // detected or harmless (the reserved bytes); none gives a wrong hit.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let c = Cache::open(dir.path());
            if let Some(hit) = c.lookup("/x/a", &a.key) {
                assert_eq!(hit.root, a.root);
                assert!((40..48).contains(&i), "byte {i}: damage not noticed");
            } else {
                assert!(c.is_damaged(), "byte {i}: miss without noticing damage");
            }
        }
        for n in 0..good.len() {
            std::fs::write(&path, &good[..n]).unwrap();
            let c = Cache::open(dir.path());
            assert!(c.lookup("/x/a", &a.key).is_none());
        }
        std::fs::write(&path, b"something else entirely").unwrap();
        let c = Cache::open(dir.path());
        assert!(c.is_damaged());
        c.store(std::slice::from_ref(&a)).unwrap();
        assert!(Cache::open(dir.path()).lookup("/x/a", &a.key).is_some());
    }

    #[test]
    fn racy_timestamps() {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let k = |s: i64| FileKey {
            dev: 0,
            ino: 0,
            size: 0,
            mtime: (s, 0),
            ctime: (s, 0),
        };
        assert!(k(secs + 1).is_racy(now));
        assert!(!k(secs - 3).is_racy(now));
        assert!(!k(i64::MIN).is_racy(now));
        assert!(k(i64::MAX).is_racy(now));
        // Whole seconds only: a file system that keeps no more; a second
        // ago may still be this second's tick of it.
        assert!(k(secs - 1).is_racy(now));
    }

    #[test]
    fn fine_grained_timestamps_are_settled_after_a_tenth_of_a_second() {
        let s = 1_000_000_000i128;
        let now = 1_700_000_000 * s + 500_000_000;
        let t = |ago_ms: i128| now - ago_ms * 1_000_000 + 7; // with nanoseconds
        assert!(changed_too_recently(t(50), t(5000), now));
        assert!(changed_too_recently(t(5000), t(50), now));
        assert!(!changed_too_recently(t(150), t(150), now));
        // Whole seconds: two of them.
        let whole = |ago_s: i128| (now / s - ago_s) * s;
        assert!(changed_too_recently(whole(1), whole(1), now));
        assert!(!changed_too_recently(whole(3), whole(3), now));
    }
}
