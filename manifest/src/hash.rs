//! Parallel hashing of trusted files, with the digest cache in front.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use conf_abi::trusted::{chunk_count, chunk_digest, Digest32, RootHasher, CHUNK_SIZE};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::cache::{self, Cache, FileKey, Record};
use crate::{Progress, ResolveError};

/// Bytes read at a time (a whole number of chunks).
const READ_SIZE: usize = 64 * CHUNK_SIZE as usize;

/// One file to hash.
pub(crate) struct Job<'a> {
    /// Real path (no symlink in it).
    pub path: &'a str,
    /// The manifest entry that named it (for messages).
    pub entry: &'a str,
    /// Whether the plain SHA-256 of the content is needed too.
    pub want_plain: bool,
}

/// The digests of one file.
#[derive(Clone, Debug)]
pub(crate) struct Digests {
    pub size: u64,
    pub root: Digest32,
    pub chunks: Arc<[Digest32]>,
    pub plain: Option<Digest32>,
}

pub(crate) struct Outcome {
    /// In the order of the jobs.
    pub digests: Vec<Digests>,
    pub cache_hits: usize,
    pub bytes_hashed: u64,
    pub warnings: Vec<String>,
}

/// Run `f` on 0..n over `threads` threads; the results in order, or the
/// first error (the others stop taking work).
fn parallel<T: Send, E: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<T, E> + Sync,
) -> Result<Result<Vec<T>, E>, io::Error> {
    let threads = threads.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || -> Result<Vec<(usize, T)>, E> {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            match f(i) {
                Ok(v) => out.push((i, v)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(out)
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads - 1);
        for _ in 1..threads {
            handles.push(
                std::thread::Builder::new()
                    .name("conf-hash".into())
                    .spawn_scoped(s, worker)?,
            );
        }
        let mut results = vec![worker()];
        for h in handles {
            results.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        let mut all: Vec<(usize, T)> = Vec::with_capacity(n);
        for r in results {
            match r {
                Ok(v) => all.extend(v),
                Err(e) => return Ok(Err(e)),
            }
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(Ok(all.into_iter().map(|(_, v)| v).collect()))
    })
}

fn unreadable(job: &Job, origin: &str, source: io::Error) -> ResolveError {
    ResolveError::Unreadable {
        origin: origin.to_string(),
        entry: job.entry.to_string(),
        path: job.path.to_string(),
        source,
    }
}

/// Read into `buf` until it is full or the file ends.
fn fill(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum HashError {
    Io(io::Error),
    Unstable,
}

/// Hash one file: its version key (stable across the read) and digests.
fn hash_file(
    path: &str,
    want_plain: bool,
    buf: &mut [u8],
    pb: &ProgressBar,
) -> Result<(FileKey, Digests), HashError> {
    for _ in 0..3 {
        let mut f = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(HashError::Io)?;
        let md = f.metadata().map_err(HashError::Io)?;
        if !md.is_file() {
            return Err(HashError::Io(io::Error::other("not a regular file")));
        }
        let key = FileKey::of(&md);
        let mut chunks = Vec::with_capacity(chunk_count(key.size).min(1 << 24) as usize);
        let mut plain = want_plain.then(Sha256::new);
        let mut total = 0u64;
        loop {
            let n = fill(&mut f, buf).map_err(HashError::Io)?;
            for c in buf[..n].chunks(CHUNK_SIZE as usize) {
                chunks.push(chunk_digest(c));
            }
            if let Some(p) = &mut plain {
                p.update(&buf[..n]);
            }
            total += n as u64;
            pb.inc(n as u64);
            if n < buf.len() {
                break;
            }
        }
        let after = f.metadata().map_err(HashError::Io)?;
        if total != key.size || FileKey::of(&after) != key {
            continue;
        }
        let mut root = RootHasher::new(total);
        for c in &chunks {
            root.push(c);
        }
        let digests = Digests {
            size: total,
            root: root.finish(),
            chunks: chunks.into(),
            plain: plain.map(|p| p.finalize().into()),
        };
        return Ok((key, digests));
    }
    Err(HashError::Unstable)
}

fn progress_bar(progress: Progress, total: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if progress == Progress::Never || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "hashing trusted files [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style)
}

/// Digests of every job, from the cache where it is current, else by
/// reading the file; new digests are written back to the cache.
pub(crate) fn hash_all(
    jobs: &[Job],
    origin: &str,
    cache_dir: &Path,
    threads: usize,
    progress: Progress,
) -> Result<Outcome, ResolveError> {
    let cache = Cache::open(cache_dir);
    let today = cache::today();
    let mut warnings = Vec::new();

    // Phase 1: stat every file and look it up in the cache.
    enum Looked {
        Hit(Record),
        Miss(u64),
    }
    let looked = parallel(jobs.len(), threads, |i| {
        let job = &jobs[i];
        let md = std::fs::symlink_metadata(job.path).map_err(|e| unreadable(job, origin, e))?;
        let key = FileKey::of(&md);
        Ok(match cache.lookup(job.path, &key) {
            Some(rec) if !job.want_plain || rec.plain.is_some() => Looked::Hit(rec),
            _ => Looked::Miss(key.size),
        })
    })
    .map_err(ResolveError::Threads)??;

    let mut digests: Vec<Option<Digests>> = vec![None; jobs.len()];
    let mut to_store: Vec<Record> = Vec::new();
    let mut misses: Vec<(usize, u64)> = Vec::new();
    let mut cache_hits = 0;
    for (i, l) in looked.into_iter().enumerate() {
        match l {
            Looked::Hit(rec) => {
                cache_hits += 1;
                digests[i] = Some(Digests {
                    size: rec.key.size,
                    root: rec.root,
                    chunks: rec.chunks.clone(),
                    plain: rec.plain,
                });
                if rec.is_stale(today) {
                    to_store.push(Record { day: today, ..rec });
                }
            }
            Looked::Miss(size) => misses.push((i, size)),
        }
    }

    // Phase 2: hash the misses, largest first so the threads finish together.
    misses.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = misses.iter().map(|m| m.1).sum();
    let pb = if misses.is_empty() {
        ProgressBar::hidden()
    } else {
        progress_bar(progress, total)
    };
    let now = SystemTime::now();
    let bufs: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let hashed = parallel(misses.len(), threads, |k| {
        let job = &jobs[misses[k].0];
        let mut buf = bufs
            .lock()
            .ok()
            .and_then(|mut b| b.pop())
            .unwrap_or_else(|| vec![0u8; READ_SIZE]);
        let r = hash_file(job.path, job.want_plain, &mut buf, &pb);
        if let Ok(mut b) = bufs.lock() {
            b.push(buf);
        }
        match r {
            Ok(v) => Ok(v),
            Err(HashError::Io(e)) => Err(unreadable(job, origin, e)),
            Err(HashError::Unstable) => Err(ResolveError::Unstable {
                path: job.path.to_string(),
            }),
        }
    })
    .map_err(ResolveError::Threads)?;
    pb.finish_and_clear();
    let hashed = hashed?;
    let mut bytes_hashed = 0;
    for ((i, _), (key, d)) in misses.iter().zip(hashed) {
        bytes_hashed += d.size;
        if !key.is_racy(now) {
            to_store.push(Record {
                path: jobs[*i].path.to_string(),
                key,
                day: today,
                root: d.root,
                chunks: d.chunks.clone(),
                plain: d.plain,
            });
        }
        digests[*i] = Some(d);
    }

    if !to_store.is_empty() || cache.is_damaged() {
        if let Err(e) = cache.store(&to_store) {
            warnings.push(format!(
                "cannot write the digest cache in {}: {e} (the next start will hash again)",
                cache_dir.display()
            ));
        }
    }
    let digests = digests.into_iter().flatten().collect::<Vec<_>>();
    debug_assert_eq!(digests.len(), jobs.len());
    Ok(Outcome {
        digests,
        cache_hits,
        bytes_hashed,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_order_and_stops_on_error() {
        let r = parallel(1000, 4, |i| Ok::<_, ()>(i * 2)).unwrap().unwrap();
        assert_eq!(r, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        let r = parallel(1000, 4, |i| if i == 500 { Err(i) } else { Ok(i) }).unwrap();
        assert_eq!(r, Err(500));
        assert!(parallel(0, 4, Ok::<_, ()>).unwrap().unwrap().is_empty());
    }

    #[test]
    fn hashes_like_conf_abi() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = vec![0u8; READ_SIZE];
        for size in [
            0usize,
            1,
            65_535,
            65_536,
            65_537,
            READ_SIZE,
            READ_SIZE + 1,
            3 * READ_SIZE + 12_345,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).unwrap();
            let (key, d) = hash_file(p.to_str().unwrap(), true, &mut buf, &ProgressBar::hidden())
                .ok()
                .unwrap();
            assert_eq!(key.size, size as u64);
            assert_eq!(d.root, conf_abi::trusted::file_digest(&data));
            assert_eq!(d.chunks.len() as u64, chunk_count(size as u64));
            assert_eq!(d.plain.unwrap(), <[u8; 32]>::from(Sha256::digest(&data)));
        }
    }
}
