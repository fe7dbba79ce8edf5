//! Fill hints (`Ocall::FillHints`): which trusted file chunks a program
//! loaded as it started, so that its next start can verify them on a second
//! thread (`libos/src/fs/prefetch.rs`).
//!
//! The run's first process keeps them in the cache directory, under a key
//! of the resolved manifest, for the next run. A child publishes its in the
//! run's shared page, where the next child started ahead of need reads them
//! while it waits for its work. They are hints: wrong or stale ones cost
//! only the work of verifying chunks no one uses.

use std::path::PathBuf;

use super::Host;

/// Keep the hints of a process as it ends: a child's for the run's next
/// ready child, the first process's for the next run.
pub fn publish(host: &Host, entries: &[u8]) {
    if crate::run::is_child() {
        if let Some(count) = host.processes.get() {
            count.put_hints(entries);
        }
        return;
    }
    if same_entries(entries, READ.get().map_or(&[][..], |b| b)) {
        // The file already says this: spare the write and rename.
        return;
    }
    if let Some(path) = file(host) {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path));
        if std::fs::write(&tmp, entries).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        if let Some(dir) = path.parent() {
            conf_manifest::keep_newest(dir, "", MAX_FILES, MAX_BYTES);
        }
    }
}

/// Read the hints for the program about to start into `out`; how many
/// bytes.
pub fn read(host: &Host, out: &mut [u8]) -> usize {
    if crate::run::is_child() {
        if !still_waiting_for_work(host) {
            return 0;
        }
        return host.processes.get().map_or(0, |c| c.get_hints(out));
    }
    let Some(b) = file(host).and_then(|p| read_marking_used(&p)) else {
        return 0;
    };
    let size = conf_abi::ocall::FillHint::SIZE;
    let n = b.len().min(out.len()) / size * size;
    out[..n].copy_from_slice(&b[..n]);
    let _ = READ.set(b[..n].to_vec());
    n
}

/// Most programs' hints kept (each a few KB), and most bytes; the least
/// recently used go first.
const MAX_FILES: usize = 256;
const MAX_BYTES: u64 = 16 << 20;

/// The file at `path`, marked as used (a program's hints are rewritten
/// only when they change).
fn read_marking_used(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut b = Vec::new();
    f.read_to_end(&mut b).ok()?;
    conf_manifest::mark_used(&f);
    Some(b)
}

/// The hints the run's first process read at boot.
static READ: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Whether two lists of hints name the same chunks, in any order (the
/// worker and the program's thread race to load them).
fn same_entries(a: &[u8], b: &[u8]) -> bool {
    let size = conf_abi::ocall::FillHint::SIZE;
    fn sorted(x: &[u8], size: usize) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = x.chunks(size).collect();
        v.sort_unstable();
        v
    }
    a.len() == b.len() && sorted(a, size) == sorted(b, size)
}

/// Is this a child conf-run started ahead of need whose work has not come
/// yet (so that time spent now is not time its parent waits)?
pub fn still_waiting_for_work(host: &Host) -> bool {
    match &*host.child_start.lock().unwrap() {
        Some(super::process::StartFrom::Warm { control }) => {
            let mut pfd = libc::pollfd {
                fd: *control,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd on the stack, no waiting.
            unsafe { libc::poll(&mut pfd, 1, 0) == 0 }
        }
        _ => false,
    }
}

/// The cache file of the hints: named by the resolution's files key, or
/// (an image resolved elsewhere) by a hash of the resolved manifest's
/// length, head and tail (the whole of it is up to a megabyte; a collision
/// only costs useless hints). Worked out once: at boot and again at exit.
fn file(host: &Host) -> Option<PathBuf> {
    static FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| name_of(host)).clone()
}

fn name_of(host: &Host) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let dir = conf_manifest::default_cache_dir().join("fill-hints");
    // The resolution's key leaves out the environment and the arguments,
    // which do not change what a program loads as it starts (and change
    // from start to start under zero-config, which carries the shell's).
    // "-v2": entries with page masks (`FillHint::SIZE` 12, was 8).
    if let Some(key) = host.hints_key.get() {
        return Some(dir.join(format!("{key}-v2")));
    }
    let m = &host.child_spec.get()?.manifest;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.len().hash(&mut h);
    m[..m.len().min(65536)].hash(&mut h);
    m[m.len().saturating_sub(65536)..].hash(&mut h);
    Some(dir.join(format!("{:016x}-v2", h.finish())))
}

#[cfg(test)]
mod tests {
    use super::same_entries;

    #[test]
    fn hints_are_the_same_in_any_order_but_not_with_one_more_or_less() {
        let e = |xs: &[(u32, u32)]| -> Vec<u8> {
            xs.iter()
                .flat_map(|&(file, chunk)| {
                    conf_abi::ocall::FillHint {
                        file,
                        chunk,
                        pages: 0,
                    }
                    .to_bytes()
                })
                .collect()
        };
        let a = e(&[(1, 0), (1, 1), (7, 3)]);
        assert!(same_entries(&a, &e(&[(7, 3), (1, 0), (1, 1)])));
        assert!(!same_entries(&a, &e(&[(1, 0), (1, 1)])));
        assert!(!same_entries(&a, &e(&[(1, 0), (1, 1), (7, 4)])));
        assert!(!same_entries(&a, &[]));
        assert!(same_entries(&[], &[]));
    }
}
