//! Trusted file chunks verified ahead of need, on a second thread.
//!
//! Starting a program reads and hashes one 64 KiB chunk of a trusted file
//! per first touch of a page: for `python3 -S -c pass` about 120 chunks,
//! 7 MB, several milliseconds on the thread that starts the program. Most
//! of that work is the same every time the same program starts, so the
//! run's first process publishes which chunks its program loaded
//! (`publish`, as it ends; the host keeps them for the next run of the same
//! manifest), and the next run verifies those chunks on a LibOS worker
//! thread (`start`, at boot) while its main thread starts the program; a
//! first touch then copies the chunk from here, or reads it itself if the
//! worker has not got there yet. The two must not do the same work: a
//! first touch of the chunk the worker is verifying at that moment waits
//! for it, and a worker that finds the program's thread has loaded chunks
//! further along the hints than it has come skips to there.
//!
//! A child conf-run started ahead of need does the same on its own thread
//! while it waits for its work (`verify_while_waiting`), with the chunks
//! the run's last exec'd child published, and stops as soon as the work
//! comes: a shell or a Python starting the same tool again and again finds
//! ld.so, libc and the tool verified (100 × `subprocess.run(['true'])`:
//! 370 → 337 ms). A worker thread in each child was tried instead and was
//! slower on two CPUs: it competed with the start of the next ready child.
//!
//! The hints come from the host and are untrusted: they only choose which
//! chunks to verify; every byte kept here was checked against its digest
//! in the measured manifest, as on first touch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use conf_abi::ocall::FillHint;

use super::trusted::TrustedFile;
use crate::sync::SpinLock;

/// Most hints one process publishes (3.5 KiB in the cache directory).
const MAX_HINTS: usize = 440;
/// Most bytes kept verified ahead.
const MAX_BYTES: usize = 16 << 20;

/// Verified chunks not used yet: (file index, chunk) → bytes.
static READY: SpinLock<BTreeMap<(u32, u32), Vec<u8>>> = SpinLock::new(BTreeMap::new());
/// The chunk the worker is verifying now (`in_progress_key`), or 0.
static IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
/// Where each hinted chunk comes in the hints (the order the program
/// loaded them at its last start).
static HINT_ORDER: SpinLock<BTreeMap<(u32, u32), usize>> = SpinLock::new(BTreeMap::new());
/// The program's thread has loaded a chunk this far into the hints: the
/// worker, behind it, skips to here instead of verifying chunks it has
/// passed (loaded already, or out of the order it loads them in now).
static PROGRAM_AT: AtomicUsize = AtomicUsize::new(0);

fn in_progress_key(file: u32, chunk: u32) -> u64 {
    ((file as u64) << 32 | chunk as u64) + 1
}

/// If the worker is verifying chunk `chunk` of `file` right now, wait for
/// it: it is further along than the caller would be starting over.
fn wait_if_in_progress(file: u32, chunk: u32) {
    let key = in_progress_key(file, chunk);
    let mut spins = 0u32;
    while IN_PROGRESS.load(Ordering::Acquire) == key {
        spins += 1;
        if spins.is_multiple_of(1 << 12) {
            crate::host::calls::sched_yield();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// Chunks loaded since this process's last exec, and whether it exec'd.
static LOADED: SpinLock<(Vec<FillHint>, bool)> = SpinLock::new((Vec::new(), false));

/// Chunks loaded into the program's memory before it touched them (for the
/// debug log).
static LOADED_AHEAD: AtomicU32 = AtomicU32::new(0);

/// Note that a chunk verified ahead was loaded before the program touched it.
pub fn loaded_before_touch() {
    LOADED_AHEAD.fetch_add(1, Ordering::Relaxed);
}

/// Chunks verified as the program needed them, not ahead (for the debug
/// log).
static ON_DEMAND: AtomicU32 = AtomicU32::new(0);

/// Note that a chunk was read and verified as the program needed it.
pub fn verified_on_demand() {
    ON_DEMAND.fetch_add(1, Ordering::Relaxed);
}

/// Chunks the worker put into the program's mappings itself (for the
/// debug log).
static INSTALLED: AtomicU32 = AtomicU32::new(0);

/// Chunks the program got from here (for the debug log).
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// The bytes of chunk `chunk` of trusted file `file`, if verified ahead:
/// copied into `dst` (which must be its length) and forgotten.
pub fn take(file: u32, chunk: u32, dst: &mut [u8]) -> bool {
    wait_if_in_progress(file, chunk);
    match remove(file, chunk, dst.len()) {
        Some(b) => {
            dst.copy_from_slice(&b);
            true
        }
        None => false,
    }
}

/// Chunk `chunk` of trusted file `file`, if verified ahead and `len`
/// bytes long: handed over (a file mapping fills its pages straight from
/// it) and forgotten.
pub fn take_whole(file: u32, chunk: u32, len: usize) -> Option<Vec<u8>> {
    wait_if_in_progress(file, chunk);
    let b = remove(file, chunk, len)?;
    loaded(file, chunk);
    Some(b)
}

/// Chunk `chunk` of `file` out of `READY`, if it is there and `len` bytes.
fn remove(file: u32, chunk: u32, len: usize) -> Option<Vec<u8>> {
    let mut r = READY.lock();
    if r.get(&(file, chunk))?.len() != len {
        return None;
    }
    let b = r.remove(&(file, chunk))?;
    TAKEN.fetch_add(1, Ordering::Relaxed);
    Some(b)
}

/// The chunks of trusted file `file` verified ahead and not used yet.
pub fn ready_chunks(file: u32) -> Vec<u32> {
    let r = READY.lock();
    if r.is_empty() {
        return Vec::new();
    }
    r.range((file, 0)..=(file, u32::MAX))
        .map(|(&(_, chunk), _)| chunk)
        .collect()
}

/// Note that a chunk was loaded (for this process's hints).
pub fn loaded(file: u32, chunk: u32) {
    if let Some(&at) = HINT_ORDER.lock().get(&(file, chunk)) {
        PROGRAM_AT.fetch_max(at + 1, Ordering::Relaxed);
    }
    let mut l = LOADED.lock();
    let h = FillHint { file, chunk };
    if l.1 && l.0.len() < MAX_HINTS && !l.0.contains(&h) {
        l.0.push(h);
    }
}

/// A new program starts: its loads are what the next process to exec it
/// will want.
pub fn exec_started() {
    let mut l = LOADED.lock();
    l.0.clear();
    l.1 = true;
}

/// As the process ends: tell the run which chunks its program loaded (only
/// a process that exec'd a program has anything worth telling).
pub fn publish() {
    let hints = {
        let l = LOADED.lock();
        if !l.1 || l.0.is_empty() {
            return;
        }
        l.0.clone()
    };
    crate::debug!(
        "prefetch: the program loaded {} file chunks, {} of them verified ahead, {} before it touched them ({} by the worker); {} chunks verified as needed",
        hints.len(),
        TAKEN.load(Ordering::Relaxed),
        LOADED_AHEAD.load(Ordering::Relaxed),
        INSTALLED.load(Ordering::Relaxed),
        ON_DEMAND.load(Ordering::Relaxed)
    );
    let _ = crate::host::calls::put_fill_hints(&hints);
}

/// Hints the worker has not taken yet.
static HINTS: SpinLock<Vec<FillHint>> = SpinLock::new(Vec::new());

/// A program is about to start: verify the chunks the hints name on a
/// worker thread (if there are hints, two CPUs, and a free thread slot).
pub fn start() {
    if crate::boot::host_cpus() < 2 {
        return;
    }
    let Some(hints) = hints() else {
        return;
    };
    *HINTS.lock() = hints;
    if crate::process::threads::spawn_worker(verify_hinted).is_err() {
        HINTS.lock().clear();
    }
}

fn verify_hinted() {
    let hints = core::mem::take(&mut *HINTS.lock());
    verify(hints, Install::IntoMappings, || true);
}

/// What the worker does with a chunk it has verified.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Install {
    /// Put it into the program's mappings that show it, if any do (else
    /// keep it for the first touch).
    IntoMappings,
    /// Keep it for the first touch (no program runs yet).
    Keep,
}

/// A child started ahead of need, before it waits for its work: verify the
/// chunks the run's last exec loaded, stopping as soon as the work comes
/// (the rest loads on first touch). The host gives no hints once it has.
pub fn verify_while_waiting() {
    let Some(hints) = hints() else {
        return;
    };
    let mut n = 0u32;
    verify(hints, Install::Keep, || {
        n += 1;
        !n.is_multiple_of(4) || crate::host::calls::still_waiting_for_work()
    });
}

/// The hints the host has for this process, if any.
fn hints() -> Option<Vec<FillHint>> {
    crate::host::calls::get_fill_hints(MAX_HINTS)
        .ok()
        .filter(|h| !h.is_empty())
}

fn verify(hints: Vec<FillHint>, install: Install, mut keep_going: impl FnMut() -> bool) {
    let m = &crate::boot::enclave().manifest;
    let ns = super::policy::ns();
    let mut open: BTreeMap<u32, Option<TrustedFile>> = BTreeMap::new();
    let mut bytes = 0usize;
    *HINT_ORDER.lock() = hints
        .iter()
        .enumerate()
        .map(|(i, h)| ((h.file, h.chunk), i))
        .collect();
    for (at, h) in hints.into_iter().enumerate() {
        if !keep_going() {
            break;
        }
        // Behind the program's thread, or already loaded by it.
        if at < PROGRAM_AT.load(Ordering::Relaxed) || LOADED.lock().0.contains(&h) {
            continue;
        }
        let Some(entry) = m.trusted_files.get(h.file as usize) else {
            continue;
        };
        let f = open
            .entry(h.file)
            .or_insert_with(|| TrustedFile::open(entry, &ns.host_path(entry.path)).ok());
        let Some(f) = f else {
            continue;
        };
        // Until the end of this round: into a mapping or `READY` first.
        let _verifying = Verifying::start(h);
        let Some(b) = f.verified_chunk(h.chunk as u64) else {
            continue;
        };
        if install == Install::IntoMappings && install_now(h, &b) {
            continue;
        }
        bytes += b.len();
        if bytes > MAX_BYTES {
            break;
        }
        READY.lock().insert((h.file, h.chunk), b);
    }
}

/// `IN_PROGRESS` names a chunk while this lives.
struct Verifying;

impl Verifying {
    fn start(h: FillHint) -> Verifying {
        IN_PROGRESS.store(in_progress_key(h.file, h.chunk), Ordering::Release);
        Verifying
    }
}

impl Drop for Verifying {
    fn drop(&mut self) {
        IN_PROGRESS.store(0, Ordering::Release);
    }
}

/// Put a verified chunk into the program's mappings that show it (see
/// `Mm::install_verified`): whether any did.
fn install_now(h: FillHint, bytes: &[u8]) -> bool {
    let mm = &crate::process::process().mm;
    if !mm.install_verified(h.file, h.chunk, bytes) {
        return false;
    }
    loaded(h.file, h.chunk);
    loaded_before_touch();
    INSTALLED.fetch_add(1, Ordering::Relaxed);
    true
}
