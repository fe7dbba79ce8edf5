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
//! for it, verifying the chunks the hints name next meanwhile (which the
//! worker then skips), and the worker skips chunks the program has loaded.
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
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use conf_abi::ocall::FillHint;

use super::trusted::TrustedFile;
use crate::sync::SpinLock;

/// Most hints one process publishes (3.5 KiB in the cache directory).
const MAX_HINTS: usize = 440;
/// Most bytes kept verified ahead.
const MAX_BYTES: usize = 16 << 20;

/// A verified chunk, and whether the program has used it (only a chunk
/// whose pages are being learned stays after its first use: see
/// `Fill::Pages`).
type Verified = (Arc<Vec<u8>>, bool);

/// Verified chunks by (file index, chunk).
static READY: SpinLock<BTreeMap<(u32, u32), Verified>> = SpinLock::new(BTreeMap::new());
/// The chunk the worker is verifying now (`in_progress_key`), or 0.
static IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
/// Where each hinted chunk comes in the hints (the order the program
/// loaded them at its last start), and the pages of it the program put
/// into its mappings one by one (`FillHint::pages`).
static HINTED: SpinLock<BTreeMap<(u32, u32), (usize, u16)>> = SpinLock::new(BTreeMap::new());

fn in_progress_key(file: u32, chunk: u32) -> u64 {
    ((file as u64) << 32 | chunk as u64) + 1
}

/// If the worker is verifying chunk `chunk` of `file` right now, wait for
/// it: it is further along than the caller would be starting over. While
/// it waits, the caller verifies the chunks the hints name next, which the
/// program is about to need: a program that has caught up with the worker
/// (Python's start did, 40-60 times, waiting 1-1.6 ms in all) then has two
/// threads verifying its chunks instead of one.
fn wait_if_in_progress(file: u32, chunk: u32) {
    let key = in_progress_key(file, chunk);
    let mut spins = 0u32;
    while IN_PROGRESS.load(Ordering::Acquire) == key {
        if verify_one_ahead(file, chunk) {
            continue;
        }
        spins += 1;
        if spins.is_multiple_of(1 << 12) {
            crate::host::calls::sched_yield();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// How many hints past the chunk it waits for the program's thread looks
/// for one to verify.
const HELP_AHEAD: usize = 4;
/// The hints in their order (for `verify_one_ahead`).
static ORDER: SpinLock<Vec<FillHint>> = SpinLock::new(Vec::new());
/// The chunk the program's thread is verifying ahead (`in_progress_key`),
/// or 0.
static HELPING: AtomicU64 = AtomicU64::new(0);
/// Chunks the program's thread verified ahead while it waited (for the
/// debug log).
static HELPED: AtomicU32 = AtomicU32::new(0);

/// Verify one of the few chunks the hints name after chunk `chunk` of
/// `file` that neither thread has verified or is verifying: whether there
/// was one.
fn verify_one_ahead(file: u32, chunk: u32) -> bool {
    let Some(&(at, _)) = HINTED.lock().get(&(file, chunk)) else {
        return false;
    };
    let next: Vec<FillHint> = ORDER
        .lock()
        .iter()
        .skip(at + 1)
        .take(HELP_AHEAD)
        .copied()
        .collect();
    for h in next {
        if READY.lock().contains_key(&(h.file, h.chunk)) || was_loaded(h.file, h.chunk) {
            continue;
        }
        // The worker does the mirror image (`Verifying::claim`): at most
        // one of the two verifies a chunk, or neither if both back off.
        let key = in_progress_key(h.file, h.chunk);
        HELPING.store(key, Ordering::SeqCst);
        if IN_PROGRESS.load(Ordering::SeqCst) == key {
            HELPING.store(0, Ordering::Release);
            continue;
        }
        if let Some(b) = open_trusted(h.file).and_then(|f| f.verified_chunk(h.chunk as u64)) {
            READY
                .lock()
                .entry((h.file, h.chunk))
                .or_insert((Arc::new(b), false));
            HELPED.fetch_add(1, Ordering::Relaxed);
        }
        HELPING.store(0, Ordering::Release);
        return true;
    }
    false
}

/// Trusted files opened to verify hinted chunks, by index (shared by the
/// worker and the program's thread; closed when the worker is done).
static OPEN: SpinLock<BTreeMap<u32, Option<Arc<TrustedFile>>>> = SpinLock::new(BTreeMap::new());
/// The worker has finished: a file the program's thread opens to verify
/// ahead (in the moment before it sees that) is not kept open after.
static WORKER_DONE: AtomicBool = AtomicBool::new(false);

/// Trusted file `file`, opened for verifying chunks ahead.
fn open_trusted(file: u32) -> Option<Arc<TrustedFile>> {
    if let Some(f) = OPEN.lock().get(&file) {
        return f.clone();
    }
    let entry = crate::boot::enclave()
        .manifest
        .trusted_files
        .get(file as usize)?;
    let host_path = super::policy::ns().host_path(entry.path);
    let f = TrustedFile::open(entry, &host_path).ok().map(Arc::new);
    let mut open = OPEN.lock();
    if WORKER_DONE.load(Ordering::Acquire) {
        return f;
    }
    open.entry(file).or_insert(f).clone()
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
    match get(file, chunk, dst.len(), Keep::No) {
        Some(b) => {
            dst.copy_from_slice(&b);
            true
        }
        None => false,
    }
}

/// Whether a chunk stays verified after a use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// It is used once (read, or filled into a mapping).
    No,
    /// Its pages are filled one by one as the program touches them.
    Yes,
}

/// Chunk `chunk` of trusted file `file`, if verified ahead and `len`
/// bytes long: handed over (a file mapping fills its pages straight from
/// it) and, unless `keep`, forgotten.
pub fn take_whole(file: u32, chunk: u32, len: usize, keep: Keep) -> Option<Arc<Vec<u8>>> {
    wait_if_in_progress(file, chunk);
    let b = get(file, chunk, len, keep)?;
    loaded(file, chunk);
    Some(b)
}

/// Chunk `chunk` of `file` from `READY`, if it is there and `len` bytes;
/// left there if `keep`.
fn get(file: u32, chunk: u32, len: usize, keep: Keep) -> Option<Arc<Vec<u8>>> {
    let mut r = READY.lock();
    let (b, used) = r.get_mut(&(file, chunk))?;
    if b.len() != len {
        return None;
    }
    if !*used {
        TAKEN.fetch_add(1, Ordering::Relaxed);
    }
    *used = true;
    let b = b.clone();
    if keep == Keep::No {
        r.remove(&(file, chunk));
    }
    Some(b)
}

/// Keep chunk `chunk` of `file`, verified just now by the program's thread,
/// for the faults on its other pages (see `Fill::Pages`).
pub fn keep_for_pages(file: u32, chunk: u32, bytes: Arc<Vec<u8>>) {
    let mut r = READY.lock();
    // Past the bound, the other pages are read and verified again.
    if r.len() < MAX_BYTES / conf_abi::trusted::CHUNK_SIZE as usize {
        r.insert((file, chunk), (bytes, true));
    }
}

/// How a first touch of a chunk of a trusted file in a mapping fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// All its pages in the mapping: nothing is known of which the program
    /// uses (no hint for the chunk).
    Whole,
    /// These pages (`FillHint::pages`) and the one touched: those the
    /// program used at its last start. Other pages are filled as they are
    /// touched, one by one, and the next start fills them too. With no
    /// pages known (0) the pages are learned: each is filled as it is
    /// touched, and the chunk kept verified meanwhile.
    Pages(u16),
}

/// How a first touch of chunk `chunk` of trusted file `file` fills it.
pub fn fill_plan(file: u32, chunk: u32) -> Fill {
    match HINTED.lock().get(&(file, chunk)) {
        Some(&(_, pages)) => Fill::Pages(pages),
        None => Fill::Whole,
    }
}

/// File pages put into mappings (for the debug log).
static PAGES_FILLED: AtomicU32 = AtomicU32::new(0);

/// Note that `n` pages of a file mapping were filled.
pub fn pages_filled(n: u32) {
    PAGES_FILLED.fetch_add(n, Ordering::Relaxed);
}

/// The chunks of trusted file `file` verified ahead and not used yet.
pub fn ready_chunks(file: u32) -> Vec<u32> {
    let r = READY.lock();
    if r.is_empty() {
        return Vec::new();
    }
    r.range((file, 0)..=(file, u32::MAX))
        .filter(|(_, (_, used))| !used)
        .map(|(&(_, chunk), _)| chunk)
        .collect()
}

/// Note that a chunk was loaded (for this process's hints).
pub fn loaded(file: u32, chunk: u32) {
    loaded_pages(file, chunk, 0);
}

/// Note that `pages` of a chunk (`FillHint::pages`) were put into a
/// mapping one by one.
pub fn loaded_pages(file: u32, chunk: u32, pages: u16) {
    let mut l = LOADED.lock();
    if !l.1 {
        return;
    }
    let hints = &mut l.0;
    if let Some(h) = hints
        .iter_mut()
        .find(|h| (h.file, h.chunk) == (file, chunk))
    {
        h.pages |= pages;
    } else if hints.len() < MAX_HINTS {
        hints.push(FillHint { file, chunk, pages });
    }
}

/// Whether the program has loaded chunk `chunk` of `file` since its exec.
fn was_loaded(file: u32, chunk: u32) -> bool {
    LOADED
        .lock()
        .0
        .iter()
        .any(|h| (h.file, h.chunk) == (file, chunk))
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
        "prefetch: the program loaded {} file chunks, {} of them verified ahead, {} before it touched them ({} by the worker); {} chunks verified as needed, {} pages filled; {} chunks verified ahead by the program's thread while it waited for the worker",
        hints.len(),
        TAKEN.load(Ordering::Relaxed),
        LOADED_AHEAD.load(Ordering::Relaxed),
        INSTALLED.load(Ordering::Relaxed),
        ON_DEMAND.load(Ordering::Relaxed),
        PAGES_FILLED.load(Ordering::Relaxed),
        HELPED.load(Ordering::Relaxed)
    );
    let _ = crate::host::calls::put_fill_hints(&hints);
}

/// Hints the worker has not taken yet.
static HINTS: SpinLock<Vec<FillHint>> = SpinLock::new(Vec::new());

/// A program is about to start: verify the chunks the hints name on a
/// worker thread (if there are hints, two CPUs, and a free thread slot).
pub fn start() {
    let Some(hints) = hints() else {
        return;
    };
    // Which pages to fill counts on one CPU too.
    learn_order(&hints);
    if crate::boot::host_cpus() < 2 {
        return;
    }
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
    learn_order(&hints);
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

/// Note where each hinted chunk comes and which of its pages to fill.
fn learn_order(hints: &[FillHint]) {
    *ORDER.lock() = hints.to_vec();
    *HINTED.lock() = hints
        .iter()
        .enumerate()
        .map(|(i, h)| ((h.file, h.chunk), (i, h.pages)))
        .collect();
}

fn verify(hints: Vec<FillHint>, install: Install, keep_going: impl FnMut() -> bool) {
    WORKER_DONE.store(false, Ordering::Release);
    verify_in_order(hints, install, keep_going);
    let files = {
        let mut open = OPEN.lock();
        WORKER_DONE.store(true, Ordering::Release);
        core::mem::take(&mut *open)
    };
    // Closed (host calls) with the lock released.
    drop(files);
}

fn verify_in_order(hints: Vec<FillHint>, install: Install, mut keep_going: impl FnMut() -> bool) {
    let mut bytes = 0usize;
    for h in hints {
        if !keep_going() {
            break;
        }
        // Loaded by the program's thread already.
        if was_loaded(h.file, h.chunk) {
            continue;
        }
        let Some(f) = open_trusted(h.file) else {
            continue;
        };
        // Until the end of this round: into a mapping or `READY` first.
        // Not if the program's thread verified it, or is verifying it,
        // while it waited for another.
        let Some(_verifying) = Verifying::claim(h) else {
            continue;
        };
        let Some(b) = f.verified_chunk(h.chunk as u64) else {
            continue;
        };
        // A chunk whose pages are being learned waits for the program's
        // touches.
        if install == Install::IntoMappings && h.pages != 0 && install_now(h, &b) {
            continue;
        }
        bytes += b.len();
        if bytes > MAX_BYTES {
            break;
        }
        READY.lock().insert((h.file, h.chunk), (Arc::new(b), false));
    }
}

/// `IN_PROGRESS` names a chunk while this lives.
struct Verifying;

impl Verifying {
    /// Claim chunk `h` for the worker, unless the program's thread has it
    /// (`verify_one_ahead` does the mirror image).
    fn claim(h: FillHint) -> Option<Verifying> {
        if READY.lock().contains_key(&(h.file, h.chunk)) {
            return None;
        }
        let key = in_progress_key(h.file, h.chunk);
        IN_PROGRESS.store(key, Ordering::SeqCst);
        let claimed = Verifying;
        (HELPING.load(Ordering::SeqCst) != key).then_some(claimed)
    }
}

impl Drop for Verifying {
    fn drop(&mut self) {
        IN_PROGRESS.store(0, Ordering::Release);
    }
}

/// Put the hinted pages of a verified chunk into the program's mappings
/// that show it (see `Mm::install_verified`): whether any did.
fn install_now(h: FillHint, bytes: &[u8]) -> bool {
    let mm = &crate::process::process().mm;
    if !mm.install_verified(h.file, h.chunk, bytes, h.pages) {
        return false;
    }
    loaded_pages(h.file, h.chunk, h.pages);
    loaded_before_touch();
    INSTALLED.fetch_add(1, Ordering::Relaxed);
    true
}
