//! Snapshots of whole resolutions, so that starting the same program again
//! costs a few `lstat`s instead of a directory walk and a digest-cache
//! lookup per file.
//!
//! A snapshot is keyed by the (checked) manifest and holds the resolution
//! plus the `lstat` stamp of every path the resolver looked at: trusted
//! files, symlinks, every directory it walked, and paths it found missing.
//! Any change (a file edited, added to or removed from a walked directory,
//! a link retargeted) makes the resolver run again. A directory it only
//! passed through, on the way to a path below it, is stamped by identity
//! (still a directory, the same inode): files coming and going beside the
//! trusted ones (in a home directory, the parent of a working directory)
//! change nothing it resolved. A link or missing path inside a directory it
//! listed needs no stamp of its own: it cannot change without changing that
//! directory's entries. Stamps are taken before
//! hashing, so a file changed while it was hashed is caught on the next
//! start. Corrupt or foreign snapshot files are ignored (they carry a
//! checksum of their contents).
//!
//! Checking every stamp of an interpreter's library (5,000 files for
//! CPython) costs more than the rest of a start, so a caller may *defer*
//! the files outside the working directory (outside the system's own
//! directories when the manifest starts the program in `/`;
//! [`ResolveOptions::defer_checks`]):
//! only directories, links, missing paths and the working directory's
//! files are checked up front — adding, removing or renaming a file changes
//! its directory — and the deferred files come back in [`Unchecked`], for
//! conf-run to check when the program opens one. A file edited in place
//! after the snapshot is then refused by the LibOS (its digest no longer
//! matches), conf-run says which and drops the snapshot, and the next start
//! resolves afresh. Signing and measuring never defer.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conf_abi::manifest::ResolvedManifest;
use sha2::{Digest, Sha256};

use crate::{ChunkIndex, Digest32, Manifest, Resolution, ResolveStats};

const MAGIC: &[u8; 8] = b"CONFSNP3";
/// Most snapshots kept (one per manifest and working directory), and most
/// bytes they take together; the least recently used go first.
const MAX_SNAPSHOTS: usize = 64;
const MAX_SNAPSHOT_BYTES: u64 = 512 << 20;

/// What `lstat` says about a path; equal stamps mean "unchanged".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    kind: u8,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    const MISSING: Stamp = Stamp {
        kind: 0,
        dev: 0,
        ino: 0,
        size: 0,
        mtime_ns: 0,
        ctime_ns: 0,
    };

    fn of(m: &std::fs::Metadata) -> Stamp {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            1
        } else if ft.is_dir() {
            2
        } else if ft.is_symlink() {
            LINK
        } else {
            4
        };
        Stamp {
            kind,
            dev: m.dev(),
            ino: m.ino(),
            // A directory's size changes with its entries on some file
            // systems; its mtime does on all.
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind == 1
    }

    /// The stamp of a directory the resolution only passed through (to a
    /// path below it), without listing it: what is in it does not matter,
    /// only that it is still that directory. A home directory, the parent
    /// of a working directory, gains and loses files all day.
    fn passed_through(self) -> Stamp {
        if self.kind != 2 {
            return self;
        }
        Stamp {
            kind: PASSED_THROUGH,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            ..self
        }
    }

    /// Whether the path, stamped `now`, is as this stamp saved it.
    fn still(&self, now: &Stamp) -> bool {
        if self.kind == PASSED_THROUGH {
            return now.kind == 2 && now.dev == self.dev && now.ino == self.ino;
        }
        self == now
    }
}

/// `Stamp::kind` of a directory only passed through.
const PASSED_THROUGH: u8 = 5;
/// `Stamp::kind` of a symbolic link.
const LINK: u8 = 3;

pub(crate) fn stamp(path: &str) -> Stamp {
    std::fs::symlink_metadata(path).map_or(Stamp::MISSING, |m| Stamp::of(&m))
}

/// Paths stamped per helper thread: fewer cost less than starting one.
const STAMPS_PER_THREAD: usize = 2048;

/// Stamp many paths, in parallel when they are many.
pub(crate) fn stamp_all<S: AsRef<str> + Sync>(paths: &[S], threads: usize) -> Vec<Stamp> {
    let threads = threads
        .clamp(1, 16)
        .min(paths.len().div_ceil(STAMPS_PER_THREAD).max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    let mut out = vec![Stamp::MISSING; paths.len()];
    let stamp_some = |ps: &[S], os: &mut [Stamp]| {
        for (p, o) in ps.iter().zip(os.iter_mut()) {
            *o = stamp(p.as_ref());
        }
    };
    std::thread::scope(|s| {
        let mut parts = paths.chunks(chunk).zip(out.chunks_mut(chunk));
        let mine = parts.next();
        for (ps, os) in parts {
            s.spawn(move || stamp_some(ps, os));
        }
        if let Some((ps, os)) = mine {
            stamp_some(ps, os);
        }
    });
    out
}

/// Trusted files a snapshot was used for without checking them (see the
/// module documentation): conf-run checks each when the program opens it.
///
/// They stay in the snapshot as it stores them, sorted by path with the
/// offset of each entry, and are looked up there: parsing 5,000 of them
/// (CPython's library) at every start cost more than the lookups of the
/// few dozen a program opens.
#[derive(Debug, Default)]
pub struct Unchecked {
    snapshot: PathBuf,
    /// The snapshot file, whose bytes hold the entries.
    data: Option<Arc<memmap2::Mmap>>,
    /// Where in `data` the entries' offsets (u64 each) and the entries are.
    offsets: std::ops::Range<usize>,
    entries: std::ops::Range<usize>,
}

impl Unchecked {
    /// Files whose check was deferred.
    pub fn len(&self) -> usize {
        self.offsets.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Entry `i`: its host path and stamp (None if the bytes are not one;
    /// the snapshot's checksum makes that a foreign file).
    fn entry<'d>(&self, data: &'d [u8], i: usize) -> Option<(&'d [u8], Stamp)> {
        let at = self.offsets.start + 8 * i;
        let off = u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?) as usize;
        let entries = data.get(self.entries.clone())?;
        let mut r = R(entries.get(off..)?);
        let path = r.bytes()?;
        Some((path, r.stamp()?))
    }

    /// Whether the host file `path`, just opened as `file`, is as the
    /// snapshot recorded it. When it is not, the snapshot is removed (the
    /// next start resolves afresh) and false is returned: this run's
    /// manifest holds the old digest, so the LibOS will refuse the file.
    pub fn check(&self, path: &str, file: &std::fs::File) -> bool {
        let Some(data) = &self.data else {
            return true;
        };
        // Byte order is str order for UTF-8.
        let (mut lo, mut hi) = (0, self.len());
        let saved = loop {
            if lo >= hi {
                return true;
            }
            let mid = lo + (hi - lo) / 2;
            let Some((p, stamp)) = self.entry(data, mid) else {
                break None;
            };
            match p.cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => break Some(stamp),
            }
        };
        let now = file.metadata().map_or(Stamp::MISSING, |m| Stamp::of(&m));
        if saved == Some(now) {
            return true;
        }
        let _ = std::fs::remove_file(&self.snapshot);
        false
    }
}

/// The key of a manifest's snapshot. The environment and the arguments do
/// not change which files are resolved, so they are left out (zero-config
/// carries the shell's environment, and every new argument would otherwise
/// mean a full resolution); [`load`]'s caller puts the current ones in.
pub(crate) fn key(m: &Manifest, volatile: &crate::resolve::Volatile) -> String {
    let files_only = Manifest {
        env: Default::default(),
        argv: Vec::new(),
        ..m.clone()
    };
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update([0, m.argv.is_empty() as u8]);
    h.update(format!("{files_only:?}"));
    // Which files are checked up front is part of what was saved.
    h.update(format!("{volatile:?}"));
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_of(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("snapshots").join(format!("{key}.bin"))
}

/// A checksum against torn or damaged files, not against an adversary
/// (the host is not trusted with the digests anyway: the LibOS checks every
/// byte it reads). Eight bytes at a time, so a megabyte costs ~0.1 ms where
/// SHA-256 cost ~1 ms of every start.
fn checksum(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(K).rotate_left(29);
    // Four independent lanes: one chain's multiply latency bounded the
    // whole loop (a quarter of a millisecond for a Python snapshot).
    let mut lanes = [
        data.len() as u64 ^ K,
        K.rotate_left(16),
        K.rotate_left(32),
        K.rotate_left(48),
    ];
    let mut blocks = data.chunks_exact(32);
    for b in blocks.by_ref() {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = mix(
                *lane,
                u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()),
            );
        }
    }
    let mut h = lanes.iter().fold(0, |h, &l| mix(h, l));
    for &b in blocks.remainder() {
        h = mix(h, b as u64);
    }
    h ^ (h >> 32)
}

struct W(Vec<u8>);

impl W {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn stamp(&mut self, s: &Stamp) {
        self.u64(s.kind as u64);
        self.u64(s.dev);
        self.u64(s.ino);
        self.u64(s.size);
        self.u64(s.mtime_ns as u64);
        self.u64(s.ctime_ns as u64);
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (h, t) = self.0.split_first_chunk::<8>()?;
        self.0 = t;
        Some(u64::from_le_bytes(*h))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u64()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn stamp(&mut self) -> Option<Stamp> {
        Some(Stamp {
            kind: r8(self.u64()?)?,
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_ns: self.u64()? as i64,
            ctime_ns: self.u64()? as i64,
        })
    }
    /// A count of records of at least `min` bytes each, if that many fit.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u64()? as usize;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }
}

fn r8(v: u64) -> Option<u8> {
    u8::try_from(v).ok()
}

/// The paths a resolution looked at, with their stamps, split into those
/// checked at every start and those a caller may defer.
pub(crate) struct Looked {
    pub checked: Vec<(String, Stamp)>,
    pub deferrable: Vec<(String, Stamp)>,
}

impl Looked {
    /// Stamp `paths` now; regular files that are not `volatile` (files of
    /// the working directory, edited in place) may be deferred. `listed`
    /// says which of the paths are directories the resolution listed (the
    /// others it only passed through).
    pub fn stamp(
        paths: Vec<String>,
        listed: impl Fn(&str) -> bool,
        volatile: impl Fn(&str) -> bool,
        threads: usize,
    ) -> Looked {
        let stamps = stamp_all(&paths, threads);
        let mut looked = Looked {
            checked: Vec::new(),
            deferrable: Vec::new(),
        };
        for (p, s) in paths.into_iter().zip(stamps) {
            // A link or a missing path in a listed directory changes only
            // with that directory's entries (a link cannot be retargeted in
            // place), which the directory's own stamp sees: CA certificate
            // directories hold hundreds of links.
            let parent = p
                .rsplit_once('/')
                .map(|(d, _)| if d.is_empty() { "/" } else { d });
            if (s.kind == LINK || s == Stamp::MISSING) && parent.is_some_and(&listed) {
                continue;
            }
            let s = if listed(&p) { s } else { s.passed_through() };
            if s.is_file() && !volatile(&p) {
                looked.deferrable.push((p, s));
            } else {
                looked.checked.push((p, s));
            }
        }
        looked
    }

    fn all(&self) -> impl Iterator<Item = &(String, Stamp)> {
        self.checked.iter().chain(&self.deferrable)
    }
}

/// Save a resolution with the stamps taken before it was computed.
pub(crate) fn store(cache_dir: &Path, key: &str, looked: &Looked, res: &Resolution) {
    // Paths changed just now may change again within the timestamp
    // granularity without a visible difference: don't snapshot.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    if looked.all().any(|(_, s)| {
        s.kind != PASSED_THROUGH
            && crate::cache::changed_too_recently(s.mtime_ns as i128, s.ctime_ns as i128, now_ns)
    }) {
        return;
    }
    let mut w = W(Vec::with_capacity(
        64 * (looked.checked.len() + looked.deferrable.len()) + 1024,
    ));
    w.0.extend_from_slice(MAGIC);
    w.u64(looked.checked.len() as u64);
    for (p, s) in &looked.checked {
        w.bytes(p.as_bytes());
        w.stamp(s);
    }
    // The deferrable files sorted, with the offset of each, for `Unchecked`
    // to search in place.
    let mut deferrable: Vec<&(String, Stamp)> = looked.deferrable.iter().collect();
    deferrable.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entries = W(Vec::with_capacity(64 * deferrable.len()));
    w.u64(deferrable.len() as u64);
    for (p, s) in deferrable {
        w.u64(entries.0.len() as u64);
        entries.bytes(p.as_bytes());
        entries.stamp(s);
    }
    w.bytes(&entries.0);
    w.bytes(&res.manifest.encode());
    // Files of one chunk need no chunk digests (their root digest is
    // checked directly): leaving them out halves the snapshot.
    let multi: Vec<_> = res.chunks.iter().filter(|(_, c)| c.len() > 1).collect();
    w.u64(multi.len() as u64);
    for (p, c) in multi {
        w.bytes(p.as_bytes());
        w.u64(c.len() as u64);
        for d in c.iter() {
            w.0.extend_from_slice(d);
        }
    }
    let sum = checksum(&w.0);
    w.u64(sum);
    let path = file_of(cache_dir, key);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, &w.0).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    crate::cache_dir::keep_newest(dir, "", MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES);
}

/// The saved resolution for `key`, if every stamp still matches (with
/// `defer`, every stamp but the deferrable files', which come back in
/// [`Resolution::unchecked`]).
pub(crate) fn load(cache_dir: &Path, key: &str, threads: usize, defer: bool) -> Option<Resolution> {
    let started = std::time::Instant::now();
    let file = file_of(cache_dir, key);
    // SAFETY: snapshots are written to a temporary file and renamed into
    // place, never changed where they are, so the mapping's bytes stay put.
    // (A file truncated under us by someone else would end conf-run with
    // SIGBUS: the cache directory is the user's own.)
    let opened = std::fs::File::open(&file).ok()?;
    let data = Arc::new(unsafe { memmap2::Mmap::map(&opened) }.ok()?);
    if data.len() < 8 + 8 || &data[..8] != MAGIC {
        return None;
    }
    let (body, sum) = data.split_at(data.len() - 8);
    if checksum(body).to_le_bytes() != sum {
        return None;
    }
    let mut r = R(&body[8..]);
    // Paths as ranges of `data`: thousands of them, not worth a String each.
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - data.as_ptr() as usize;
        start..start + s.len()
    };
    let n = r.count(8 + 48)?;
    let mut checked = Vec::with_capacity(n);
    for _ in 0..n {
        // Checked as UTF-8 when stamped (`path_of`).
        let path = r.bytes()?;
        checked.push((at(path), r.stamp()?));
    }
    let n = r.count(8)?;
    let offsets = at(r.0.get(..8 * n)?);
    r.0 = &r.0[8 * n..];
    let entries = at(r.bytes()?);
    let deferred = Unchecked {
        snapshot: file,
        data: Some(data.clone()),
        offsets,
        entries,
    };
    // The trusted-file list stays in the mapping.
    let shared: conf_abi::manifest::SharedBytes = data.clone();
    let manifest = ResolvedManifest::decode_shared(&shared, at(r.bytes()?)).ok()?;
    let nchunks = r.count(16)?;
    let mut map: HashMap<String, Arc<[Digest32]>> = HashMap::with_capacity(nchunks);
    for _ in 0..nchunks {
        let p = r.string()?;
        let k = r.count(32)?;
        let (ds, rest) = r.0.split_at(k * 32);
        r.0 = rest;
        map.insert(
            p,
            ds.chunks_exact(32)
                .map(|c| <[u8; 32]>::try_from(c).unwrap())
                .collect(),
        );
    }
    if !r.0.is_empty() {
        return None;
    }
    let path_of = |p: &std::ops::Range<usize>| std::str::from_utf8(&data[p.clone()]).unwrap_or("");
    let (now, unchecked) = if defer {
        (checked, deferred)
    } else {
        let mut all = checked;
        for i in 0..deferred.len() {
            let (path, stamp) = deferred.entry(&data, i)?;
            all.push((at(path), stamp));
        }
        (all, Unchecked::default())
    };
    let paths: Vec<&str> = now.iter().map(|(p, _)| path_of(p)).collect();
    let stamps = stamp_all(&paths, threads);
    if now
        .iter()
        .zip(&stamps)
        .any(|((_, saved), now)| !saved.still(now))
    {
        return None;
    }
    crate::cache_dir::mark_used(&opened);
    let bytes = manifest.trusted_files.total_size();
    let stats = ResolveStats {
        files: manifest.trusted_files.len(),
        symlinks: manifest.trusted_symlinks.len(),
        bytes,
        bytes_hashed: 0,
        cache_hits: manifest.trusted_files.len(),
        elapsed: started.elapsed(),
        warnings: Vec::new(),
    };
    // The caller sets host_root (the key covers fs.root).
    Some(Resolution {
        manifest,
        chunks: ChunkIndex { map },
        stats,
        host_root: PathBuf::new(),
        unchecked: Arc::new(unchecked),
        files_key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn the_checksum_sees_any_flipped_bit_and_the_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 31, 32, 33, 999, 1000] {
            let base = checksum(&data[..len]);
            for at in 0..len {
                let mut d = data[..len].to_vec();
                d[at] ^= 1 << (at % 8);
                assert_ne!(checksum(&d), base, "bit flip at {at} of {len}");
            }
        }
        assert_ne!(checksum(&[0; 32]), checksum(&[0; 33]));
    }
}
