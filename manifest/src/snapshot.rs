//! Snapshots of whole resolutions, so that starting the same program again
//! costs one `lstat` per path instead of a directory walk and a digest-cache
//! lookup per file.
//!
//! A snapshot is keyed by the (checked) manifest and holds the resolution
//! plus the `lstat` stamp of every path the resolver looked at: trusted
//! files, symlinks, every directory it walked, and paths it found missing.
//! It is used only if every stamp still matches; any change (a file edited,
//! added to or removed from a walked directory, a link retargeted) makes the
//! resolver run again. Stamps are taken before hashing, so a file changed
//! while it was hashed is caught on the next start. Corrupt or foreign
//! snapshot files are ignored (they carry a SHA-256 of their contents).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conf_abi::manifest::ResolvedManifest;
use sha2::{Digest, Sha256};

use crate::{ChunkIndex, Digest32, Manifest, Resolution, ResolveStats};

const MAGIC: &[u8; 8] = b"CONFSNP1";

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

pub(crate) fn stamp(path: &str) -> Stamp {
    match std::fs::symlink_metadata(path) {
        Err(_) => Stamp {
            kind: 0,
            dev: 0,
            ino: 0,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        },
        Ok(m) => {
            let ft = m.file_type();
            let kind = if ft.is_file() {
                1
            } else if ft.is_dir() {
                2
            } else if ft.is_symlink() {
                3
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
    }
}

/// Stamp many paths, in parallel.
pub(crate) fn stamp_all(paths: &[String], threads: usize) -> Vec<Stamp> {
    let threads = threads.clamp(1, 16).min(paths.len().max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    let mut out = vec![stamp_missing(); paths.len()];
    std::thread::scope(|s| {
        for (ps, os) in paths.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (p, o) in ps.iter().zip(os.iter_mut()) {
                    *o = stamp(p);
                }
            });
        }
    });
    out
}

fn stamp_missing() -> Stamp {
    Stamp {
        kind: 0,
        dev: 0,
        ino: 0,
        size: 0,
        mtime_ns: 0,
        ctime_ns: 0,
    }
}

/// The key of a manifest's snapshot. The environment and the arguments do
/// not change which files are resolved, so they are left out (zero-config
/// carries the shell's environment, and every new argument would otherwise
/// mean a full resolution); [`load`]'s caller puts the current ones in.
pub(crate) fn key(m: &Manifest) -> String {
    let files_only = Manifest {
        env: Default::default(),
        argv: Vec::new(),
        ..m.clone()
    };
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update([0, m.argv.is_empty() as u8]);
    h.update(format!("{files_only:?}"));
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_of(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("snapshots").join(format!("{key}.bin"))
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
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (h, t) = self.0.split_first_chunk::<8>()?;
        self.0 = t;
        Some(u64::from_le_bytes(*h))
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = self.u64()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
}

/// Save a resolution with the stamps taken before it was computed.
pub(crate) fn store(
    cache_dir: &Path,
    key: &str,
    paths: &[String],
    stamps: &[Stamp],
    res: &Resolution,
) {
    // Paths changed within the last second may change again within the
    // timestamp granularity without a visible difference: don't snapshot.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    if stamps
        .iter()
        .any(|s| now_ns - s.mtime_ns < 1_000_000_000 || now_ns - s.ctime_ns < 1_000_000_000)
    {
        return;
    }
    let mut w = W(Vec::with_capacity(64 * paths.len() + 1024));
    w.0.extend_from_slice(MAGIC);
    w.u64(paths.len() as u64);
    for (p, s) in paths.iter().zip(stamps) {
        w.bytes(p.as_bytes());
        w.u64(s.kind as u64);
        w.u64(s.dev);
        w.u64(s.ino);
        w.u64(s.size);
        w.u64(s.mtime_ns as u64);
        w.u64(s.ctime_ns as u64);
    }
    w.bytes(&res.manifest.encode());
    w.u64(res.chunks.len() as u64);
    for (p, c) in res.chunks.iter() {
        w.bytes(p.as_bytes());
        w.u64(c.len() as u64);
        for d in c.iter() {
            w.0.extend_from_slice(d);
        }
    }
    let sum: [u8; 32] = Sha256::digest(&w.0).into();
    w.0.extend_from_slice(&sum);
    let path = file_of(cache_dir, key);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, &w.0).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The saved resolution for `key`, if every stamp still matches.
pub(crate) fn load(cache_dir: &Path, key: &str, threads: usize) -> Option<Resolution> {
    let started = std::time::Instant::now();
    let data = std::fs::read(file_of(cache_dir, key)).ok()?;
    if data.len() < 8 + 32 || &data[..8] != MAGIC {
        return None;
    }
    let (body, sum) = data.split_at(data.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut r = R(&body[8..]);
    let n = r.u64()? as usize;
    if n > body.len() {
        return None;
    }
    let mut paths = Vec::with_capacity(n);
    let mut stamps = Vec::with_capacity(n);
    for _ in 0..n {
        paths.push(String::from_utf8(r.bytes()?.to_vec()).ok()?);
        stamps.push(Stamp {
            kind: r.u64()? as u8,
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
        });
    }
    let manifest = ResolvedManifest::decode(r.bytes()?).ok()?;
    let nchunks = r.u64()? as usize;
    let mut map: HashMap<String, Arc<[Digest32]>> = HashMap::new();
    for _ in 0..nchunks.min(body.len()) {
        let p = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let k = r.u64()? as usize;
        if k.checked_mul(32)? > r.0.len() {
            return None;
        }
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
    if stamp_all(&paths, threads) != stamps {
        return None;
    }
    let bytes = manifest.trusted_files.iter().map(|t| t.size).sum();
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
    })
}
