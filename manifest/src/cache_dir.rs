//! Keeping the cache directory's record sets bounded. Snapshots, fill
//! hints and synthesis records are written per manifest, working directory
//! or interpreter; without a bound every directory a program was ever
//! started in would leave its snapshot behind (17 MB each for a Python
//! with a large site-packages).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Remove the least recently written files of `dir` whose names start with
/// `prefix` until at most `keep` remain and they hold at most `max_bytes`
/// together. Files being written (names starting with `.`) are left alone,
/// and so is the newest file whatever its size. Errors are ignored: a
/// cache that cannot be trimmed costs disk space, never correctness.
pub fn keep_newest(dir: &Path, prefix: &str, keep: usize, max_bytes: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(prefix) && !name.starts_with('.')
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut total = 0u64;
    for (i, (_, len, path)) in files.iter().enumerate() {
        total = total.saturating_add(*len);
        if i > 0 && (i >= keep || total > max_bytes) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Mark `file` as used now, so that [`keep_newest`] keeps it: at most once
/// an hour per file (a record read at every start need not be written at
/// every start).
pub fn mark_used(file: &std::fs::File) {
    let Ok(m) = file.metadata() else { return };
    let now = SystemTime::now();
    let stale = m
        .modified()
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age.as_secs() > 3600);
    if stale {
        let _ = file.set_modified(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write_aged(dir: &Path, name: &str, len: usize, age_s: u64) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; len]).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        p
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_newest_are_kept_by_count_and_size() {
        let d = tempfile::tempdir().unwrap();
        for (i, age) in [50, 10, 40, 20, 30].iter().enumerate() {
            write_aged(d.path(), &format!("s{i}"), 100, *age);
        }
        write_aged(d.path(), "other", 100, 99);
        write_aged(d.path(), ".s9.tmp", 100, 99);
        keep_newest(d.path(), "s", 3, u64::MAX);
        assert_eq!(names(d.path()), [".s9.tmp", "other", "s1", "s3", "s4"]);
        keep_newest(d.path(), "s", 3, 250);
        assert_eq!(names(d.path()), [".s9.tmp", "other", "s1", "s3"]);
        // The newest stays even when it alone is over the limit.
        keep_newest(d.path(), "s", 3, 10);
        assert_eq!(names(d.path()), [".s9.tmp", "other", "s1"]);
    }

    #[test]
    fn a_file_in_use_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let used = write_aged(d.path(), "s-used", 10, 7200);
        write_aged(d.path(), "s-new", 10, 60);
        mark_used(&std::fs::File::open(&used).unwrap());
        keep_newest(d.path(), "s", 1, u64::MAX);
        assert_eq!(names(d.path()), ["s-used"]);
    }
}
