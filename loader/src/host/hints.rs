//! Fill hints (`Ocall::FillHints`): which trusted file chunks a program
//! loaded as it started, so that its next start can verify them on a second
//! thread (`libos/src/fs/prefetch.rs`).
//!
//! The run's first process keeps them in the cache directory, under a key
//! of the resolved manifest. Child processes neither read nor write them:
//! on two CPUs a second thread in a child competed with the next ready
//! child's start and slowed `subprocess.run` down. They are hints: wrong or
//! stale ones cost only the work of verifying chunks no one uses.

use std::path::PathBuf;

use super::Host;

/// Keep the hints of the run's first process as it ends.
pub fn publish(host: &Host, entries: &[u8]) {
    if crate::run::is_child() {
        return;
    }
    if let Some(path) = file(host) {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path));
        if std::fs::write(&tmp, entries).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Read the hints for the program about to start into `out`; how many
/// bytes.
pub fn read(host: &Host, out: &mut [u8]) -> usize {
    if crate::run::is_child() {
        return 0;
    }
    let Some(b) = file(host).and_then(|p| std::fs::read(p).ok()) else {
        return 0;
    };
    let size = conf_abi::ocall::FillHint::SIZE;
    let n = b.len().min(out.len()) / size * size;
    out[..n].copy_from_slice(&b[..n]);
    n
}

/// The cache file of the hints: named by a hash of the resolved manifest's
/// length, head and tail (the whole of it is up to a megabyte; a collision
/// only costs useless hints).
fn file(host: &Host) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let m = &host.child_spec.get()?.manifest;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.len().hash(&mut h);
    m[..m.len().min(65536)].hash(&mut h);
    m[m.len().saturating_sub(65536)..].hash(&mut h);
    Some(
        conf_manifest::default_cache_dir()
            .join("fill-hints")
            .join(format!("{:016x}", h.finish())),
    )
}
