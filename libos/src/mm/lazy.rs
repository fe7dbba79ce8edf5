//! File mappings filled on first touch.
//!
//! Mapping a large trusted file (a 7 MB interpreter, a 100 MB Node.js, the
//! JVM's class archive) would otherwise read and verify all of it before
//! the program starts, though a run touches a fraction. A lazy mapping's
//! unloaded pages cannot be read: where the host can (`Ocall::LazyPages`)
//! they are absent pages with the mapping's protection, and a touch is a
//! bus fault; elsewhere they are inaccessible, and a touch is a page fault.
//! Either way the LibOS then reads and verifies the file chunk behind the
//! page and has the host put the bytes in (and, for inaccessible pages,
//! give them the mapping's protection). Accesses by the LibOS itself
//! (system call buffers) load the pages first (`Mm::check`).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use conf_abi::trusted::CHUNK_SIZE;
use conf_abi::Errno;

use super::vmas::PAGE;
use crate::fs::prefetch::Keep;
use crate::fs::File;
use crate::host::calls::Unfilled;
use crate::sync::SpinLock;

pub struct LazyMap {
    pub file: Arc<dyn File>,
    /// Address of the mapping's first page, and the file offset there.
    pub start: u64,
    pub file_off: u64,
    /// Bytes of file data from `start`; pages beyond are zero.
    pub file_len: u64,
    /// What the host made of the pages not loaded yet.
    pub unfilled: Unfilled,
    /// One bit per page from `start`: loaded.
    loaded: SpinLock<Vec<u64>>,
    pages: u64,
    /// The mapping was writable at some time: its loaded pages may differ
    /// from the file. Until then a copy of the process (fork) can load them
    /// from the file again instead of receiving them.
    ever_writable: core::sync::atomic::AtomicBool,
}

impl fmt::Debug for LazyMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LazyMap({:#x}, {} pages)", self.start, self.pages)
    }
}

impl LazyMap {
    pub fn new(
        file: Arc<dyn File>,
        start: u64,
        len: u64,
        file_off: u64,
        file_len: u64,
        unfilled: Unfilled,
    ) -> LazyMap {
        let pages = len.div_ceil(PAGE);
        LazyMap {
            file,
            start,
            file_off,
            file_len,
            unfilled,
            loaded: SpinLock::new(alloc::vec![0; pages.div_ceil(64) as usize]),
            pages,
            ever_writable: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the host fills the pages (see `Unfilled::HostFilled`).
    pub fn host_fills(&self) -> bool {
        self.unfilled == Unfilled::HostFilled
    }

    /// Note that the mapping is (or was) writable.
    pub fn mark_writable(&self) {
        self.ever_writable
            .store(true, core::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the loaded pages are still the file's bytes (the mapping was
    /// never writable: the LibOS's own code patches aside, which a copy
    /// without them redoes).
    pub fn pristine(&self) -> bool {
        !self
            .ever_writable
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    fn index(&self, addr: u64) -> Option<u64> {
        let i = addr.checked_sub(self.start)? / PAGE;
        (i < self.pages).then_some(i)
    }

    /// The indices of this mapping's pages in `[lo, hi)`.
    fn indices(&self, lo: u64, hi: u64) -> impl Iterator<Item = u64> + '_ {
        (lo..hi)
            .step_by(PAGE as usize)
            .filter_map(|a| self.index(a))
    }

    pub fn is_loaded(&self, addr: u64) -> bool {
        match self.index(addr) {
            Some(i) => bit(&self.loaded.lock(), i),
            None => true,
        }
    }

    /// Whether any page of `[lo, hi)` is loaded.
    pub fn any_loaded(&self, lo: u64, hi: u64) -> bool {
        let l = self.loaded.lock();
        self.indices(lo, hi).any(|i| bit(&l, i))
    }

    pub fn set_loaded(&self, lo: u64, hi: u64, on: bool) {
        let mut l = self.loaded.lock();
        for i in self.indices(lo, hi) {
            put_bit(&mut l, i, on);
        }
    }

    /// Fill `[lo, hi)` with `fill` unless a page of it is loaded already
    /// (another thread got there first, or the pages left the mapping):
    /// whether it did. No other thread fills or retires these pages until
    /// `fill` has put them in and they count as loaded.
    pub fn fill_unloaded(
        &self,
        lo: u64,
        hi: u64,
        fill: impl FnOnce() -> Result<(), Errno>,
    ) -> Result<bool, Errno> {
        let mut l = self.loaded.lock();
        if self.indices(lo, hi).any(|i| bit(&l, i)) {
            return Ok(false);
        }
        fill()?;
        for i in self.indices(lo, hi) {
            put_bit(&mut l, i, true);
        }
        Ok(true)
    }

    /// `[lo, hi)` is unmapped: nothing may fill it any more (a fill under
    /// way finishes first, and the unmap then takes its pages back).
    pub fn retire(&self, lo: u64, hi: u64) {
        self.set_loaded(lo, hi, true);
    }

    /// The window to load for a fault at `addr`: the file chunk behind it,
    /// so each load reads and verifies exactly one chunk.
    pub fn window(&self, addr: u64) -> (u64, u64) {
        let rel = addr - self.start;
        let chunk = (self.file_off + rel) / CHUNK_SIZE;
        let lo_file = chunk * CHUNK_SIZE;
        let lo = self.start + lo_file.saturating_sub(self.file_off);
        let hi = self.start + (lo_file + CHUNK_SIZE - self.file_off);
        (lo & !(PAGE - 1), (hi + PAGE - 1) & !(PAGE - 1))
    }

    /// The pages holding chunk `chunk` of the file, if this mapping shows
    /// any of it.
    pub fn chunk_pages(&self, chunk: u64) -> Option<(u64, u64)> {
        let lo_file = chunk.checked_mul(CHUNK_SIZE)?.max(self.file_off);
        let hi_file = ((chunk + 1) * CHUNK_SIZE).min(self.file_off + self.file_len);
        if lo_file >= hi_file {
            return None;
        }
        let lo = self.start + (lo_file - self.file_off);
        let hi = self.start + (hi_file - self.file_off);
        Some((lo & !(PAGE - 1), (hi + PAGE - 1) & !(PAGE - 1)))
    }

    /// The chunk of the file behind the page at `addr`.
    pub fn chunk_of(&self, addr: u64) -> u64 {
        (self.file_off + (addr - self.start)) / CHUNK_SIZE
    }

    /// The bit of the page at `addr` among its chunk's pages
    /// (`FillHint::pages`).
    pub fn page_bit(&self, addr: u64) -> u16 {
        let off = self.file_off + (addr - self.start);
        1 << ((off % CHUNK_SIZE) / PAGE)
    }

    /// The pages of `[lo, hi)` (pages of one chunk) whose bit is in
    /// `pages` and that are not loaded: bit i for the page at lo + i pages.
    pub fn unloaded_mask(&self, lo: u64, hi: u64, pages: u16) -> u64 {
        Self::unloaded_in(self, &self.loaded.lock(), lo, hi, pages)
    }

    fn unloaded_in(&self, l: &[u64], lo: u64, hi: u64, pages: u16) -> u64 {
        self.indices(lo, hi)
            .filter(|&i| !bit(l, i))
            .map(|i| self.start + i * PAGE)
            .filter(|&a| self.page_bit(a) & pages != 0)
            .fold(0, |m, a| m | 1 << ((a - lo) / PAGE))
    }

    /// Fill the pages of `[lo, hi)` whose bit is in `pages` and that are
    /// not loaded with one `fill` (given them as `unloaded_mask` does):
    /// which it filled, as chunk page bits. No other thread fills or
    /// retires these pages meanwhile (see `fill_unloaded`).
    pub fn fill_unloaded_pages(
        &self,
        lo: u64,
        hi: u64,
        pages: u16,
        fill: impl FnOnce(u64) -> Result<(), Errno>,
    ) -> Result<u16, Errno> {
        let mut l = self.loaded.lock();
        let mask = self.unloaded_in(&l, lo, hi, pages);
        if mask == 0 {
            return Ok(0);
        }
        fill(mask)?;
        let mut filled = 0;
        for (first, n) in conf_abi::ocall::page_runs(mask) {
            let a = lo + first * PAGE;
            for i in self.indices(a, a + n * PAGE) {
                put_bit(&mut l, i, true);
                filled |= self.page_bit(self.start + i * PAGE);
            }
        }
        Ok(filled)
    }

    /// The bytes of `[lo, hi)` if they are exactly one whole chunk of the
    /// file that `fs/prefetch.rs` verified ahead: handed over, so filling
    /// the pages needs no buffer to clear and copy into.
    pub fn take_verified(&self, lo: u64, hi: u64, keep: Keep) -> Option<Arc<Vec<u8>>> {
        let rel = lo.checked_sub(self.start)?;
        let off = self.file_off + rel;
        if hi - lo != CHUNK_SIZE
            || !off.is_multiple_of(CHUNK_SIZE)
            || rel + CHUNK_SIZE > self.file_len
        {
            return None;
        }
        let file = self.file.trusted_index()?;
        crate::fs::prefetch::take_whole(file, (off / CHUNK_SIZE) as u32, CHUNK_SIZE as usize, keep)
    }

    /// The bytes of `[lo, lo + dst.len())` from the file into `dst` (zero
    /// past the end of the file).
    pub fn fill_into(&self, lo: u64, dst: &mut [u8]) -> Result<(), Errno> {
        let rel = lo - self.start;
        let avail = self.file_len.saturating_sub(rel);
        let n = avail.min(dst.len() as u64) as usize;
        if n > 0 {
            self.file.read_for_map(self.file_off + rel, &mut dst[..n])?;
        }
        Ok(())
    }
}

/// Bit `i` of a page bitmap.
fn bit(bits: &[u64], i: u64) -> bool {
    bits[(i / 64) as usize] >> (i % 64) & 1 != 0
}

fn put_bit(bits: &mut [u64], i: u64, on: bool) {
    let word = &mut bits[(i / 64) as usize];
    if on {
        *word |= 1 << (i % 64);
    } else {
        *word &= !(1 << (i % 64));
    }
}
