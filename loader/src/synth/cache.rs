//! A small on-disk cache of what synthesis learned by running or walking
//! things (the Python probe), so that later starts do not pay for it.
//!
//! Records are files (JSON, or the ELF facts' own binary form:
//! `elf_memory.rs`) under `<cache dir>/synth-v1/`, written to a
//! temporary file and renamed into place. Each record carries the stamps
//! (size, mtime, inode) of the files it was derived from and is used only
//! while they all still match. A record that cannot be read or parsed is
//! ignored and rewritten; a cache that cannot be written costs speed, never
//! correctness.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SUBDIR: &str = "synth-v1";

/// Enough of a file's metadata to tell that it changed. Stored as a
/// plain array: records hold hundreds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StampArray", into = "StampArray")]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub ino: u64,
    pub dev: u64,
}

/// size, mtime, mtime_nsec, ctime, ctime_nsec, ino, dev
type StampArray = (u64, i64, i64, i64, i64, u64, u64);

impl From<StampArray> for Stamp {
    fn from((size, mtime, mtime_nsec, ctime, ctime_nsec, ino, dev): StampArray) -> Stamp {
        Stamp {
            size,
            mtime,
            mtime_nsec,
            ctime,
            ctime_nsec,
            ino,
            dev,
        }
    }
}

impl From<Stamp> for StampArray {
    fn from(s: Stamp) -> StampArray {
        (
            s.size,
            s.mtime,
            s.mtime_nsec,
            s.ctime,
            s.ctime_nsec,
            s.ino,
            s.dev,
        )
    }
}

/// The stamp of what is at `path` (following symbolic links); `None` when
/// nothing is there.
pub(crate) fn stamp(path: &str) -> Option<Stamp> {
    Some(stamp_of(&super::observe::metadata(path).ok()?))
}

/// The stamp of what `m` describes.
pub(crate) fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
        ino: m.ino(),
        dev: m.dev(),
    }
}

/// The stamps of `paths`, in order.
pub(crate) fn stamps(paths: &[String]) -> Vec<(String, Option<Stamp>)> {
    paths.iter().map(|p| (p.clone(), stamp(p))).collect()
}

/// What a cached answer answered (`key`), the stamps of what it was
/// derived from, and the answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stamped<K, V> {
    pub key: K,
    pub stamps: Vec<(String, Option<Stamp>)>,
    pub value: V,
}

/// The answer recorded at `path`, if it answered `key` and every stamp
/// still holds.
pub(crate) fn load_current<K, V>(path: &Path, key: &K) -> Option<V>
where
    K: DeserializeOwned + PartialEq,
    V: DeserializeOwned,
{
    let rec = load::<Stamped<K, V>>(path)?;
    (rec.key == *key && stamps_hold(&rec.stamps)).then_some(rec.value)
}

/// Whether every recorded stamp still holds.
pub(crate) fn stamps_hold(recorded: &[(String, Option<Stamp>)]) -> bool {
    recorded.iter().all(|(p, s)| stamp(p) == *s)
}

/// Make the directory records are written to, if it is missing. Done
/// before synthesis looks at anything: making it later would change a
/// directory synthesis may have looked at (the cache's parent, say), and
/// its own record would be out of date at once.
pub(crate) fn prepare(dir: &Path) {
    let _ = std::fs::create_dir_all(dir.join(SUBDIR));
}

/// A record's file: `<dir>/synth-v1/<kind>-<hash of key>.json`.
pub(crate) fn record_path(dir: &Path, kind: &str, key: &str) -> PathBuf {
    record_path_as(dir, kind, key, "json")
}

/// A record's file with the extension `ext`.
pub(crate) fn record_path_as(dir: &Path, kind: &str, key: &str, ext: &str) -> PathBuf {
    let h = Sha256::digest(key.as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(SUBDIR).join(format!("{kind}-{hex}.{ext}"))
}

// Records are conf's own memory, not what synthesis depends on: not
// observed.
#[allow(clippy::disallowed_methods)]
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).ok()?;
    conf_manifest::mark_used(&f);
    serde_json::from_slice(&data).ok()
}

pub(crate) fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    store_bytes(
        path,
        &serde_json::to_vec(value).map_err(std::io::Error::other)?,
    )
}

/// Keep the `keep` most recently used records whose names start with
/// `prefix` in the directory of `path`, removing the others.
pub(crate) fn keep_newest(path: &Path, prefix: &str, keep: usize) {
    if let Some(dir) = path.parent() {
        conf_manifest::keep_newest(dir, prefix, keep, u64::MAX);
    }
}

/// Write `bytes` as the record at `path` (a temporary file renamed into
/// place).
pub(crate) fn store_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("record paths have a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .expect("record paths have a name")
            .to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_records_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let at = |i: u32| d.path().join(format!("python-{i}.json"));
        for i in 0..5 {
            std::fs::write(at(i), "{}").unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(at(i))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::fs::write(d.path().join("elf-1.bin"), "x").unwrap();
        keep_newest(&at(4), "python-", 3);
        let left: Vec<bool> = (0..5).map(|i| at(i).exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
        assert!(d.path().join("elf-1.bin").exists(), "other kinds stay");
    }
}
