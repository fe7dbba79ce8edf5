//! Enclave memory: the LibOS heap and the program's address space.
//!
//! The program's mappings live in the enclave heap below the LibOS heap. The
//! LibOS keeps the map of areas (`vmas`) and asks the host only to change
//! page protections (so guard pages and W^X flips really fault) and to give
//! pages back on unmap, which also guarantees they read as zero when they
//! are mapped again (SGX2: EREMOVE, then EAUG gives zeroed pages).

pub mod heap;
pub mod lazy;
pub mod vmas;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use conf_abi::Errno;

use crate::host::calls as hc;
use crate::sync::SpinLock;
use crate::util::{align_down, align_up};
pub use vmas::{Vma, VmaName, Vmas, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE};

use crate::fs::prefetch::{Fill, Keep};
use crate::host::calls::Unfilled;
use alloc::sync::Arc;
use lazy::LazyMap;

/// Where a new mapping may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere; `addr` is a hint.
    Hint(u64),
    /// Exactly at `addr`, replacing what is there (MAP_FIXED).
    Replace(u64),
    /// Exactly at `addr`, failing if anything is there (MAP_FIXED_NOREPLACE).
    NoReplace(u64),
}

/// What a page fault in the program's memory comes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// The page is there now: run the instruction again.
    Resolved,
    /// Not mapped, or not with this access: SIGSEGV.
    Segv,
    /// A file mapping whose pages cannot be loaded (a trusted file that no
    /// longer matches, a host read error): SIGBUS, as Linux gives for an
    /// I/O error on a mapped file.
    Bus,
}

/// A MAP_SHARED mapping of a host file: host memory outside ELRANGE that
/// the program shares with other processes (unprotected, like the file).
#[derive(Clone)]
pub struct SharedMap {
    pub end: u64,
    pub prot: u32,
    pub id: u64,
    pub offset: u64,
    /// Keeps the file (and its host fd) alive while mapped.
    pub file: Arc<crate::fs::OpenFile>,
}

struct Inner {
    vmas: Vmas,
    shared: alloc::collections::BTreeMap<u64, SharedMap>,
    brk_start: u64,
    brk: u64,
    brk_limit: u64,
    /// New mappings go below this address, top down.
    mmap_top: u64,
}

pub struct Mm {
    inner: SpinLock<Inner>,
    enclave_size: u64,
}

static OOM_LOGGED: AtomicBool = AtomicBool::new(false);

fn out_of_memory(size: u64, want: u64, enclave_size: u64) -> Errno {
    if !OOM_LOGGED.swap(true, Ordering::Relaxed) {
        error!(
            "out of enclave memory: cannot map {} bytes (program area is {} MiB); raise sgx.enclave_size (now {} MiB) in the manifest",
            want,
            size >> 20,
            enclave_size >> 20
        );
    }
    Errno::ENOMEM
}

/// Say once, at debug level, how lazy pages are filled: the two ways
/// differ in cost (see `Ocall::LazyPages`).
fn log_fill_mode_once(unfilled: Unfilled) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        match unfilled {
            Unfilled::HostFilled => debug!("file pages load on first touch, filled by the host"),
            Unfilled::Inaccessible => debug!(
                "file pages load on first touch, kept inaccessible until then (the host cannot fill pages itself)"
            ),
        }
    }
}

/// Whether `v` is a lazy mapping whose pages the host fills.
fn host_fills(v: &Vma) -> bool {
    v.lazy.as_ref().is_some_and(|lz| lz.host_fills())
}

fn host_prot(prot: u32) -> u32 {
    prot & (PROT_READ | PROT_WRITE | PROT_EXEC)
}

impl Mm {
    /// The program area `[lo, hi)`.
    pub fn new(lo: u64, hi: u64, enclave_size: u64) -> Mm {
        Mm {
            inner: SpinLock::new(Inner {
                vmas: Vmas::new(lo, hi),
                shared: alloc::collections::BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                brk_limit: 0,
                mmap_top: hi,
            }),
            enclave_size,
        }
    }

    /// Set where top-down mappings start (below the main stack).
    pub fn set_mmap_top(&self, top: u64) {
        self.inner.lock().mmap_top = top;
    }

    /// Map `len` bytes with `prot` and zero contents. The pages are made
    /// writable first when `fill_prot` is given, so the caller can copy file
    /// contents in before `finish_fill` sets the final protection.
    pub fn map(
        &self,
        place: Placement,
        len: u64,
        prot: u32,
        vma: Vma,
        writable_for_fill: bool,
    ) -> Result<u64, Errno> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = align_up(len, PAGE);
        let mut g = self.inner.lock();
        let start = match place {
            Placement::Replace(a) | Placement::NoReplace(a) => {
                if a % PAGE != 0 {
                    return Err(Errno::EINVAL);
                }
                let end = a.checked_add(len).ok_or(Errno::ENOMEM)?;
                if a < g.vmas.lo || end > g.vmas.hi {
                    return Err(Errno::ENOMEM);
                }
                if !g.vmas.is_free(a, end) {
                    if matches!(place, Placement::NoReplace(_)) {
                        return Err(Errno::EEXIST);
                    }
                    self.unmap_locked(&mut g, a, end)?;
                }
                a
            }
            Placement::Hint(h) => {
                let h = align_down(h, PAGE);
                if h != 0 && h.checked_add(len).is_some_and(|e| g.vmas.is_free(h, e)) {
                    h
                } else {
                    let top = g.mmap_top;
                    match g.vmas.find_free_below(top, len, PAGE) {
                        Some(a) => a,
                        None => {
                            return Err(out_of_memory(
                                g.vmas.hi - g.vmas.lo,
                                len,
                                self.enclave_size,
                            ))
                        }
                    }
                }
            }
        };
        let first_prot = if writable_for_fill {
            PROT_READ | PROT_WRITE
        } else {
            host_prot(prot)
        };
        if first_prot != 0 {
            hc::mprotect(start, len, first_prot)?;
        }
        let mut vma = vma;
        vma.end = start + len;
        vma.prot = prot;
        g.vmas.insert(start, vma);
        Ok(start)
    }

    /// Map `len` bytes whose contents come from `file` at `file_off`
    /// (`file_len` bytes of it; zeros after), loaded on first touch.
    #[allow(clippy::too_many_arguments)]
    pub fn map_lazy(
        &self,
        place: Placement,
        len: u64,
        prot: u32,
        vma: Vma,
        file: Arc<dyn crate::fs::File>,
        file_off: u64,
        file_len: u64,
    ) -> Result<u64, Errno> {
        let (start, unfilled) = match self.remap_host_filled(place, len, prot, &vma)? {
            Some(start) => (start, Unfilled::HostFilled),
            None => {
                let start = self.map(place, len, 0, vma, false)?;
                let size = align_up(len, PAGE);
                match hc::lazy_pages(start, size, host_prot(prot)) {
                    Ok(u) => (start, u),
                    Err(e) => {
                        let _ = self.unmap(start, size);
                        return Err(e);
                    }
                }
            }
        };
        let end = start + align_up(len, PAGE);
        log_fill_mode_once(unfilled);
        let mut g = self.inner.lock();
        let lz = Arc::new(LazyMap::new(
            file,
            start,
            end - start,
            file_off,
            file_len,
            unfilled,
        ));
        if prot & PROT_WRITE != 0 {
            lz.mark_writable();
        }
        // `map` recorded protection 0 (nothing is accessible yet); record the
        // real one now, with the lazy source.
        let removed = g.vmas.remove(start, end);
        for (s0, mut v) in removed {
            v.prot = prot;
            v.lazy = Some(lz.clone());
            g.vmas.insert(s0, v);
        }
        Ok(start)
    }

    /// A file mapping placed exactly over pages the host fills already (a
    /// dynamic loader maps each segment over its first mapping of the whole
    /// file): those pages are emptied and given `prot` in one call and
    /// stay the host's to fill, instead of being made ordinary and then
    /// registered again. The new mapping's start, with `vma` in place
    /// (protection 0 recorded, as `map` leaves it), or None if the pages
    /// are anything else.
    fn remap_host_filled(
        &self,
        place: Placement,
        len: u64,
        prot: u32,
        vma: &Vma,
    ) -> Result<Option<u64>, Errno> {
        let Placement::Replace(start) = place else {
            return Ok(None);
        };
        let Some(end) = start.checked_add(align_up(len, PAGE)) else {
            return Ok(None);
        };
        let mut g = self.inner.lock();
        if !start.is_multiple_of(PAGE) || len == 0 || start < g.vmas.lo || end > g.vmas.hi {
            return Ok(None);
        }
        let mut at = start;
        while at < end {
            match g.vmas.find(at) {
                Some((_, v)) if host_fills(v) => at = v.end,
                _ => return Ok(None),
            }
        }
        Self::remove_retiring(&mut g, start, end);
        hc::decommit(start, end - start, host_prot(prot), false)?;
        let mut vma = vma.clone();
        vma.end = end;
        vma.prot = 0;
        g.vmas.insert(start, vma);
        Ok(Some(start))
    }

    /// Load the unloaded pages of lazy mappings in `[lo, hi)`.
    fn populate_locked(&self, g: &Inner, lo: u64, hi: u64) -> Result<(), Errno> {
        let mut at = lo & !(PAGE - 1);
        while at < hi {
            let Some((vs, v)) = g.vmas.find(at) else {
                at += PAGE;
                continue;
            };
            let stop = v.end.min(hi);
            if let Some(lz) = &v.lazy {
                let mut a = at.max(vs);
                while a < stop {
                    if lz.is_loaded(a) {
                        a += PAGE;
                        continue;
                    }
                    let mut b = a + PAGE;
                    while b < stop && !lz.is_loaded(b) {
                        b += PAGE;
                    }
                    // Looked at again: another thread may have loaded
                    // part of the run meanwhile, and then this one did not.
                    Self::load_run(lz, v.prot, a, b)?;
                }
            }
            at = stop.max(at + PAGE);
        }
        Ok(())
    }

    /// Load `[a, b)` of a lazy mapping, unless another thread (the prefetch
    /// worker) has loaded any of it meanwhile. The pages stay unreadable
    /// until they hold their verified bytes: made writable in place,
    /// another thread could read them half filled without faulting.
    fn load_run(lz: &LazyMap, prot: u32, a: u64, b: u64) -> Result<(), Errno> {
        let buf = match lz.take_verified(a, b, Keep::No) {
            Some(chunk) => chunk,
            // The prefetch worker put the chunk in while this thread
            // waited for it.
            None if lz.any_loaded(a, b) => return Ok(()),
            None => {
                let mut buf = alloc::vec![0u8; (b - a) as usize];
                lz.fill_into(a, &mut buf)?;
                Arc::new(buf)
            }
        };
        lz.fill_unloaded(a, b, || {
            crate::fs::prefetch::pages_filled(((b - a) / PAGE) as u32);
            Self::fill_run(lz, prot, a, &buf)
        })?;
        Ok(())
    }

    /// Put `bytes` into the unloaded pages at `a` of a lazy mapping, with
    /// protection `prot`.
    fn fill_run(lz: &LazyMap, prot: u32, a: u64, bytes: &[u8]) -> Result<(), Errno> {
        match hc::fill_pages(a, bytes, host_prot(prot), lz.unfilled) {
            Err(Errno::ENOSYS) if lz.unfilled == Unfilled::Inaccessible => {
                Self::write_in_place(a, bytes, prot)
            }
            r => r,
        }
    }

    /// Put `bytes` into inaccessible pages at `a` through the program's own
    /// view, for a host that cannot fill them (no /proc in a chroot):
    /// writable in place, which another thread may see half filled for
    /// the copy.
    fn write_in_place(a: u64, bytes: &[u8], prot: u32) -> Result<(), Errno> {
        let len = bytes.len() as u64;
        hc::mprotect(a, len, PROT_READ | PROT_WRITE)?;
        // SAFETY: [a, a + len) is program memory made writable just now.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), a as *mut u8, bytes.len()) };
        hc::mprotect(a, len, host_prot(prot))
    }

    /// Load the pages of `[lo, hi)` (the pages of chunk `chunk` of trusted
    /// file `file` that a lazy mapping shows) whose bits are in `pages`
    /// (see `prefetch::Fill::Pages`), unless loaded already. `keep`: the
    /// chunk's pages are being learned, so keep it verified for the next.
    fn load_pages(
        lz: &LazyMap,
        prot: u32,
        (lo, hi): (u64, u64),
        (file, chunk): (u32, u32),
        pages: u16,
        keep: Keep,
    ) -> Result<(), Errno> {
        if lz.unloaded_mask(lo, hi, pages) == 0 {
            return Ok(());
        }
        let bytes = match lz.take_verified(lo, hi, keep) {
            Some(b) => b,
            None => {
                let mut buf = alloc::vec![0u8; (hi - lo) as usize];
                lz.fill_into(lo, &mut buf)?;
                let b = Arc::new(buf);
                if keep == Keep::Yes && hi - lo == conf_abi::trusted::CHUNK_SIZE {
                    crate::fs::prefetch::keep_for_pages(file, chunk, b.clone());
                }
                b
            }
        };
        let filled = lz.fill_unloaded_pages(lo, hi, pages, |mask| {
            crate::fs::prefetch::pages_filled(mask.count_ones());
            match hc::fill_some_pages(lo, &bytes, host_prot(prot), lz.unfilled, mask) {
                // As in `fill_run`, run by run.
                Err(Errno::ENOSYS) if lz.unfilled == Unfilled::Inaccessible => {
                    conf_abi::ocall::page_runs(mask).try_for_each(|(first, n)| {
                        let (off, len) = ((first * PAGE) as usize, (n * PAGE) as usize);
                        let src = &bytes[off..(off + len).min(bytes.len())];
                        Self::write_in_place(lo + off as u64, src, prot)
                    })
                }
                r => r,
            }
        })?;
        crate::fs::prefetch::loaded_pages(file, chunk, filled);
        Ok(())
    }

    /// A page fault at `addr` in program code: if it hit a page of a lazy
    /// mapping not loaded yet, load it (and the rest of its file chunk) and
    /// return true: the faulting instruction can run again.
    ///
    /// `err` is the x86 page-fault error code (bit 1: write, bit 4: fetch):
    /// a fault on a page another thread has just loaded is retried if the
    /// access is one the mapping allows.
    pub fn fault(&self, addr: u64, err: u64) -> Fault {
        let g = self.inner.lock();
        self.fault_locked(&g, addr, err)
    }

    /// A bus fault at `addr` in program code: if it hit a page of a lazy
    /// mapping the host fills (`Unfilled::HostFilled`), as `fault`; None
    /// for any other bus error, which is the program's.
    pub fn bus_fault(&self, addr: u64, err: u64) -> Option<Fault> {
        let g = self.inner.lock();
        let (_, v) = g.vmas.find(addr)?;
        host_fills(v).then(|| self.fault_locked(&g, addr, err))
    }

    fn fault_locked(&self, g: &Inner, addr: u64, err: u64) -> Fault {
        let Some((vs, v)) = g.vmas.find(addr) else {
            return Fault::Segv;
        };
        let Some(lz) = &v.lazy else {
            return Fault::Segv;
        };
        if v.prot == 0 {
            return Fault::Segv;
        }
        if lz.is_loaded(addr) {
            let want = if err & 2 != 0 {
                PROT_WRITE
            } else if err & 0x10 != 0 {
                PROT_EXEC
            } else {
                PROT_READ
            };
            return if v.prot & want != 0 {
                Fault::Resolved
            } else {
                Fault::Segv
            };
        }
        let (wlo, whi) = lz.window(addr);
        let (lo, hi) = (wlo.max(vs), whi.min(v.end));
        let chunk = lz.chunk_of(addr) as u32;
        let plan = lz
            .file
            .trusted_index()
            .map(|file| (file, crate::fs::prefetch::fill_plan(file, chunk)));
        let loaded = match plan {
            Some((file, Fill::Pages(pages))) => {
                let keep = if pages == 0 { Keep::Yes } else { Keep::No };
                let want = pages | lz.page_bit(addr);
                Self::load_pages(lz, v.prot, (lo, hi), (file, chunk), want, keep)
            }
            _ => self.populate_locked(g, lo, hi),
        };
        match loaded {
            Ok(()) => {
                Self::load_verified_ahead(vs, v, lz);
                Fault::Resolved
            }
            Err(e) => {
                debug!(
                    "loading {:#x}..{:#x} of a file mapping failed: {}",
                    lo,
                    hi,
                    e.name()
                );
                Fault::Bus
            }
        }
    }

    /// After a fault in `v` (at `vs`): load the chunks of its file that the
    /// prefetch worker has verified meanwhile and that lie whole in `v`.
    /// The program loaded them at its last start, so it is about to touch
    /// them again; loading them now spares it a fault each (a signal, the
    /// LibOS's fault path and the return: ~4 us).
    fn load_verified_ahead(vs: u64, v: &Vma, lz: &LazyMap) {
        let Some(file) = lz.file.trusted_index() else {
            return;
        };
        for chunk in crate::fs::prefetch::ready_chunks(file) {
            let Some((lo, hi)) = lz.chunk_pages(chunk as u64) else {
                continue;
            };
            let whole = lo >= vs && hi <= v.end && hi - lo == conf_abi::trusted::CHUNK_SIZE;
            if !whole || lz.any_loaded(lo, hi) {
                continue;
            }
            // A chunk that cannot be loaded now fails on first touch, as
            // it would have without this. One whose pages are being
            // learned waits for the touches.
            let loaded = match crate::fs::prefetch::fill_plan(file, chunk) {
                Fill::Whole => Self::load_run(lz, v.prot, lo, hi),
                Fill::Pages(0) => continue,
                Fill::Pages(pages) => {
                    Self::load_pages(lz, v.prot, (lo, hi), (file, chunk), pages, Keep::No)
                }
            };
            if loaded.is_ok() {
                crate::fs::prefetch::loaded_before_touch();
            }
        }
    }

    /// The pages `pages` (`FillHint::pages`) of chunk `chunk` of trusted
    /// file `file`, verified ahead (`bytes`), into the lazy mappings that
    /// show the chunk whole and have not loaded those pages, where the host
    /// fills pages (one copy each, no protection change
    /// other threads would have to see): called by the prefetch worker, so
    /// that the program's thread finds the pages there instead of faulting
    /// and filling them itself. The address space stays unlocked while the
    /// pages are copied: each mapping's own lock keeps them from being
    /// filled twice or after they are unmapped (`LazyMap::retire`). False
    /// if no mapping took it (none shows it yet, pages are kept
    /// inaccessible, or the program's thread held the address space).
    pub fn install_verified(&self, file: u32, chunk: u32, bytes: &[u8], pages: u16) -> bool {
        let targets: Vec<(Arc<LazyMap>, u64, u64)> = {
            // Never wait for the program's thread: it may hold the lock
            // for a fault of its own (waiting for this very chunk), and
            // the chunk is kept for it then.
            let Some(g) = self.inner.try_lock() else {
                return false;
            };
            g.vmas
                .iter()
                .filter_map(|(vs, v)| {
                    let lz = v.lazy.as_ref()?;
                    if !lz.host_fills() || lz.file.trusted_index() != Some(file) {
                        return None;
                    }
                    let (lo, hi) = lz.chunk_pages(chunk as u64)?;
                    let whole = lo >= vs && hi <= v.end && hi - lo == bytes.len() as u64;
                    whole.then(|| (lz.clone(), lo, hi))
                })
                .collect()
        };
        let mut installed = false;
        for (lz, lo, hi) in targets {
            let fill = |mask: u64| {
                crate::fs::prefetch::pages_filled(mask.count_ones());
                hc::fill_some_pages(lo, bytes, 0, Unfilled::HostFilled, mask)
            };
            installed |= lz
                .fill_unloaded_pages(lo, hi, pages, fill)
                .is_ok_and(|f| f != 0);
        }
        installed
    }

    /// Set the final protection after filling a mapping made with
    /// `writable_for_fill`.
    pub fn finish_fill(&self, start: u64, len: u64, prot: u32) -> Result<(), Errno> {
        let len = align_up(len, PAGE);
        if host_prot(prot) != PROT_READ | PROT_WRITE {
            hc::mprotect(start, len, host_prot(prot))?;
        }
        Ok(())
    }

    /// Take the areas in `[start, end)` out of the map, retiring the lazy
    /// pages among them first (see `LazyMap::retire`).
    fn remove_retiring(g: &mut Inner, start: u64, end: u64) -> Vec<(u64, Vma)> {
        let removed = g.vmas.remove(start, end);
        for (s, v) in &removed {
            if let Some(lz) = &v.lazy {
                lz.retire(*s, v.end);
            }
        }
        removed
    }

    fn unmap_locked(&self, g: &mut Inner, start: u64, end: u64) -> Result<(), Errno> {
        let removed = Self::remove_retiring(g, start, end);
        // Give back each removed piece; contiguous pieces in one call,
        // which makes pages the host filled ordinary if any piece had them.
        let mut run: Option<(u64, u64, bool)> = None;
        for (s, v) in removed {
            let host_filled = host_fills(&v);
            match run {
                Some((rs, re, hf)) if re == s => run = Some((rs, v.end, hf || host_filled)),
                Some((rs, re, hf)) => {
                    hc::decommit(rs, re - rs, 0, hf)?;
                    run = Some((s, v.end, host_filled));
                }
                None => run = Some((s, v.end, host_filled)),
            }
        }
        if let Some((rs, re, hf)) = run {
            hc::decommit(rs, re - rs, 0, hf)?;
        }
        Ok(())
    }

    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(align_up(len, PAGE)).ok_or(Errno::EINVAL)?;
        let mut g = self.inner.lock();
        Self::unmap_shared_locked(&mut g, addr, end);
        self.unmap_locked(&mut g, addr, end)
    }

    /// Drop the shared mappings `[start, end)` covers whole. One only partly
    /// covered stays mapped: the host keeps it as one piece, and leaving a
    /// few pages reachable is harmless where removing too many is not.
    fn unmap_shared_locked(g: &mut Inner, start: u64, end: u64) {
        let gone: Vec<u64> = g
            .shared
            .range(start..end)
            .filter(|(_, m)| m.end <= end)
            .map(|(s, _)| *s)
            .collect();
        for s in gone {
            if let Some(m) = g.shared.remove(&s) {
                hc::unmap_shared(m.id);
            }
        }
    }

    /// Record a MAP_SHARED host mapping at `start`.
    pub fn add_shared(&self, start: u64, map: SharedMap) {
        self.inner.lock().shared.insert(start, map);
    }

    /// The shared mapping holding `addr`, with its start.
    pub fn shared_at(&self, addr: u64) -> Option<(u64, SharedMap)> {
        let g = self.inner.lock();
        g.shared
            .range(..=addr)
            .next_back()
            .filter(|(_, m)| addr < m.end)
            .map(|(s, m)| (*s, m.clone()))
    }

    /// Every shared mapping (fork hands them to the child).
    pub fn shared_maps(&self) -> Vec<(u64, SharedMap)> {
        self.inner
            .lock()
            .shared
            .iter()
            .map(|(s, m)| (*s, m.clone()))
            .collect()
    }

    pub fn protect(&self, addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let len = align_up(len, PAGE);
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut g = self.inner.lock();
        if addr >= g.vmas.hi {
            // Shared host mappings keep the protection they were made with;
            // the host enforces nothing for the enclave there anyway.
            let inside = g
                .shared
                .range(..=addr)
                .next_back()
                .is_some_and(|(_, m)| end <= m.end);
            return if inside { Ok(()) } else { Err(Errno::ENOMEM) };
        }
        if !g.vmas.protect(addr, end, prot) {
            return Err(Errno::ENOMEM);
        }
        // Unloaded pages kept inaccessible stay so until touched.
        let mut at = addr;
        while at < end {
            let (_, v) = g.vmas.find(at).ok_or(Errno::ENOMEM)?;
            let stop = v.end.min(end);
            if let Some(lz) = v.lazy.as_ref().filter(|_| prot & PROT_WRITE != 0) {
                lz.mark_writable();
            }
            match &v.lazy {
                Some(lz) if lz.unfilled == Unfilled::Inaccessible => {
                    let mut a = at;
                    while a < stop {
                        let loaded = lz.is_loaded(a);
                        let mut b = a + PAGE;
                        while b < stop && lz.is_loaded(b) == loaded {
                            b += PAGE;
                        }
                        if loaded {
                            hc::mprotect(a, b - a, host_prot(prot))?;
                        }
                        a = b;
                    }
                }
                _ => hc::mprotect(at, stop - at, host_prot(prot))?,
            }
            at = stop;
        }
        Ok(())
    }

    /// MADV_DONTNEED: the range reads as zero afterwards.
    pub fn discard(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let len = align_up(len, PAGE);
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        let g = self.inner.lock();
        if !g.vmas.covered(addr, end, 0) {
            return Err(Errno::ENOMEM);
        }
        let mut at = addr;
        while at < end {
            let (_, v) = g.vmas.find(at).ok_or(Errno::ENOMEM)?;
            let stop = v.end.min(end);
            match &v.lazy {
                // A private file mapping reads the file again afterwards.
                Some(lz) => {
                    let prot = match lz.unfilled {
                        Unfilled::HostFilled => host_prot(v.prot),
                        Unfilled::Inaccessible => 0,
                    };
                    hc::decommit(at, stop - at, prot, false)?;
                    lz.set_loaded(at, stop, false);
                }
                None => hc::decommit(at, stop - at, host_prot(v.prot), false)?,
            }
            at = stop;
        }
        Ok(())
    }

    /// mremap: grow or shrink in place, or move when allowed.
    pub fn remap(
        &self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> Result<u64, Errno> {
        if !old.is_multiple_of(PAGE) || new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let (old_len, new_len) = (align_up(old_len, PAGE), align_up(new_len, PAGE));
        let mut g = self.inner.lock();
        self.populate_locked(&g, old, old.saturating_add(old_len))?;
        let (vstart, vma) = g
            .vmas
            .find(old)
            .map(|(s, v)| (s, v.clone()))
            .ok_or(Errno::EFAULT)?;
        if old + old_len > vma.end && old_len != 0 {
            return Err(Errno::EFAULT);
        }
        if fixed.is_none() {
            if new_len <= old_len {
                if new_len < old_len {
                    self.unmap_locked(&mut g, old + new_len, old + old_len)?;
                }
                return Ok(old);
            }
            if old + old_len == vma.end && g.vmas.is_free(old + old_len, old + new_len) {
                hc::mprotect(old + old_len, new_len - old_len, host_prot(vma.prot))?;
                g.vmas.remove(vstart, vma.end);
                let mut grown = vma.clone();
                grown.end = old + new_len;
                g.vmas.insert(vstart, grown);
                return Ok(old);
            }
        }
        if !may_move {
            return Err(Errno::ENOMEM);
        }
        let dest = match fixed {
            Some(d) => {
                if d % PAGE != 0 {
                    return Err(Errno::EINVAL);
                }
                if !g.vmas.is_free(d, d + new_len) {
                    self.unmap_locked(&mut g, d, d + new_len)?;
                }
                d
            }
            None => {
                let top = g.mmap_top;
                g.vmas.find_free_below(top, new_len, PAGE).ok_or_else(|| {
                    out_of_memory(g.vmas.hi - g.vmas.lo, new_len, self.enclave_size)
                })?
            }
        };
        hc::mprotect(dest, new_len, PROT_READ | PROT_WRITE)?;
        let copy = old_len.min(new_len);
        let readable = vma.prot & PROT_READ != 0;
        if !readable {
            hc::mprotect(old, copy, PROT_READ)?;
        }
        // SAFETY: both ranges are mapped enclave memory of at least `copy`
        // bytes and do not overlap (dest was free).
        unsafe { core::ptr::copy_nonoverlapping(old as *const u8, dest as *mut u8, copy as usize) };
        if host_prot(vma.prot) != PROT_READ | PROT_WRITE {
            hc::mprotect(dest, new_len, host_prot(vma.prot))?;
        }
        let mut moved = vma.clone();
        moved.offset += old - vstart;
        moved.end = dest + new_len;
        moved.lazy = None;
        self.unmap_locked(&mut g, old, old + old_len)?;
        g.vmas.insert(dest, moved);
        Ok(dest)
    }

    /// Set up the program break after the executable.
    pub fn init_brk(&self, start: u64, max: u64) {
        let mut g = self.inner.lock();
        g.brk_start = start;
        g.brk = start;
        g.brk_limit = start.saturating_add(max);
    }

    /// brk(2): move the break; returns the (possibly unchanged) break.
    pub fn brk(&self, want: u64) -> u64 {
        let mut g = self.inner.lock();
        let cur = g.brk;
        if want < g.brk_start || want > g.brk_limit {
            if want > g.brk_limit && want != 0 {
                debug!("brk to {want:#x} refused: above sys.brk.max_size");
            }
            return cur;
        }
        let (old_end, new_end) = (align_up(cur, PAGE), align_up(want, PAGE));
        if new_end > old_end {
            if !g.vmas.is_free(old_end, new_end) {
                return cur;
            }
            if hc::mprotect(old_end, new_end - old_end, PROT_READ | PROT_WRITE).is_err() {
                return cur;
            }
            let start = g.brk_start;
            let grows_existing = g
                .vmas
                .find(old_end.saturating_sub(1))
                .is_some_and(|(s, v)| v.name == VmaName::Heap && s >= align_down(start, PAGE));
            if grows_existing {
                let (s, v) = g
                    .vmas
                    .find(old_end - 1)
                    .map(|(s, v)| (s, v.clone()))
                    .unwrap();
                g.vmas.remove(s, v.end);
                let mut v = v;
                v.end = new_end;
                g.vmas.insert(s, v);
            } else {
                let mut v = Vma::anon(new_end, PROT_READ | PROT_WRITE);
                v.name = VmaName::Heap;
                g.vmas.insert(old_end, v);
            }
        } else if new_end < old_end && self.unmap_locked(&mut g, new_end, old_end).is_err() {
            return cur;
        }
        g.brk = want;
        want
    }

    /// Is `[addr, addr+len)` mapped with at least `prot`?
    pub fn check(&self, addr: u64, len: u64, prot: u32) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let g = self.inner.lock();
        if addr >= g.vmas.hi {
            return g
                .shared
                .range(..=addr)
                .next_back()
                .is_some_and(|(_, m)| end <= m.end && m.prot & prot == prot);
        }
        g.vmas.covered(addr, end, prot) && self.populate_locked(&g, addr, end).is_ok()
    }

    /// (brk start, brk, brk limit, mmap top), for fork.
    pub fn brk_state(&self) -> (u64, u64, u64, u64) {
        let g = self.inner.lock();
        (g.brk_start, g.brk, g.brk_limit, g.mmap_top)
    }

    pub fn set_brk_state(&self, start: u64, brk: u64, limit: u64, mmap_top: u64) {
        let mut g = self.inner.lock();
        g.brk_start = start;
        g.brk = brk;
        g.brk_limit = limit;
        g.mmap_top = mmap_top;
    }

    /// Make `[addr, addr+len)` loaded and readable for the LibOS (fork
    /// copies it); `restore_prot` puts the program's protection back.
    pub fn readable(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let g = self.inner.lock();
        self.populate_locked(&g, addr, addr + len)?;
        let (_, v) = g.vmas.find(addr).ok_or(Errno::EFAULT)?;
        if v.prot & PROT_READ == 0 {
            hc::mprotect(addr, len, PROT_READ)?;
        }
        Ok(())
    }

    /// Put `bytes` (whole pages) at `addr` in a file mapping whose pages
    /// load lazily, and count them as loaded: a forked child taking the
    /// pages its parent had loaded (and maybe changed) as they are.
    pub fn install_pages(&self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        let len = bytes.len() as u64;
        if !len.is_multiple_of(PAGE) || !addr.is_multiple_of(PAGE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        let g = self.inner.lock();
        let (_, v) = g.vmas.find(addr).ok_or(Errno::EFAULT)?;
        let lz = v.lazy.as_ref().ok_or(Errno::EFAULT)?;
        if end > v.end {
            return Err(Errno::EFAULT);
        }
        if lz.host_fills() {
            hc::replace_pages(addr, bytes)?;
            lz.set_loaded(addr, end, true);
            lz.mark_writable();
            return Ok(());
        }
        hc::mprotect(addr, len, PROT_READ | PROT_WRITE)?;
        // SAFETY: mapped pages of the program, writable just now.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
        lz.set_loaded(addr, end, true);
        // The bytes came from a parent process, which may have changed
        // them (relocations in RELRO, read-only by now): a fork from here
        // must send them on, not let its child load the file's.
        lz.mark_writable();
        if host_prot(v.prot) != PROT_READ | PROT_WRITE {
            hc::mprotect(addr, len, host_prot(v.prot))?;
        }
        Ok(())
    }

    pub fn restore_prot(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let g = self.inner.lock();
        let (_, v) = g.vmas.find(addr).ok_or(Errno::EFAULT)?;
        if v.prot & PROT_READ == 0 {
            hc::mprotect(addr, len, host_prot(v.prot))?;
        }
        Ok(())
    }

    /// Remove every mapping (execve) and reset the break.
    pub fn unmap_all(&self) -> Result<(), Errno> {
        let mut g = self.inner.lock();
        let (lo, hi) = (g.vmas.lo, g.vmas.hi);
        Self::unmap_shared_locked(&mut g, 0, u64::MAX);
        self.unmap_locked(&mut g, lo, hi)?;
        g.brk_start = 0;
        g.brk = 0;
        g.brk_limit = 0;
        g.mmap_top = hi;
        Ok(())
    }

    /// Lines of /proc/self/maps.
    pub fn maps(&self) -> String {
        use core::fmt::Write;
        let g = self.inner.lock();
        let mut out = String::new();
        for (s, v) in g.vmas.iter() {
            let p = |b: u32, c: char| if v.prot & b != 0 { c } else { '-' };
            let name = match &v.name {
                VmaName::Anon => "",
                VmaName::Stack => "[stack]",
                VmaName::Heap => "[heap]",
                VmaName::File(f) => f,
            };
            let _ = writeln!(
                out,
                "{:08x}-{:08x} {}{}{}{} {:08x} 00:00 {:<10} {}",
                s,
                v.end,
                p(PROT_READ, 'r'),
                p(PROT_WRITE, 'w'),
                p(PROT_EXEC, 'x'),
                if v.shared { 's' } else { 'p' },
                v.offset,
                v.inode,
                name
            );
        }
        for (s, m) in g.shared.iter() {
            let p = |b: u32, c: char| if m.prot & b != 0 { c } else { '-' };
            let _ = writeln!(
                out,
                "{:08x}-{:08x} {}{}{}s {:08x} 00:00 0          {}",
                s,
                m.end,
                p(PROT_READ, 'r'),
                p(PROT_WRITE, 'w'),
                p(PROT_EXEC, 'x'),
                m.offset,
                m.file.path
            );
        }
        out
    }

    /// Total bytes mapped (for /proc/self/status and sysinfo).
    pub fn mapped_bytes(&self) -> u64 {
        self.inner.lock().vmas.iter().map(|(s, v)| v.end - s).sum()
    }

    /// Snapshot of the areas (for core-dump-like diagnostics).
    pub fn areas(&self) -> Vec<(u64, Vma)> {
        self.inner
            .lock()
            .vmas
            .iter()
            .map(|(s, v)| (s, v.clone()))
            .collect()
    }
}
