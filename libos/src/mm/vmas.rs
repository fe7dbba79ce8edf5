//! The program's virtual memory areas: a sorted map of disjoint ranges with
//! their protection and origin. Pure bookkeeping; `mm::Mm` applies changes
//! to the enclave pages.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

pub const PAGE: u64 = 4096;
pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// What a mapping shows in /proc/self/maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmaName {
    Anon,
    Stack,
    Heap,
    File(Arc<str>),
}

#[derive(Clone, Debug)]
pub struct Vma {
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub name: VmaName,
    /// File offset of the start of this area (file mappings), for /proc.
    pub offset: u64,
    /// Device and inode for /proc/self/maps.
    pub inode: u64,
    /// Pages filled from a file on first touch (see `mm::lazy`); shared by
    /// the pieces of a mapping that mprotect or munmap split.
    pub lazy: Option<Arc<super::lazy::LazyMap>>,
}

impl Vma {
    pub fn anon(end: u64, prot: u32) -> Vma {
        Vma {
            end,
            prot,
            shared: false,
            name: VmaName::Anon,
            offset: 0,
            inode: 0,
            lazy: None,
        }
    }

    /// Can two neighbouring areas be one?
    fn alike(&self, o: &Vma) -> bool {
        self.prot == o.prot
            && self.shared == o.shared
            && self.name == o.name
            && self.inode == o.inode
            && match (&self.lazy, &o.lazy) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

/// Disjoint areas inside `[lo, hi)`.
#[derive(Debug)]
pub struct Vmas {
    pub lo: u64,
    pub hi: u64,
    map: BTreeMap<u64, Vma>,
}

impl Vmas {
    pub fn new(lo: u64, hi: u64) -> Vmas {
        Vmas {
            lo,
            hi,
            map: BTreeMap::new(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Vma)> {
        self.map.iter().map(|(s, v)| (*s, v))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The area containing `addr`.
    pub fn find(&self, addr: u64) -> Option<(u64, &Vma)> {
        self.map
            .range(..=addr)
            .next_back()
            .filter(|(_, v)| addr < v.end)
            .map(|(s, v)| (*s, v))
    }

    /// True if `[start, end)` is wholly covered by areas that all allow `prot`.
    pub fn covered(&self, start: u64, end: u64, prot: u32) -> bool {
        let mut at = start;
        while at < end {
            match self.find(at) {
                Some((_, v)) if v.prot & prot == prot => at = v.end,
                _ => return false,
            }
        }
        true
    }

    /// True if nothing is mapped in `[start, end)`.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        if start < self.lo || end > self.hi || start >= end {
            return false;
        }
        if self.find(start).is_some() {
            return false;
        }
        self.map.range(start..end).next().is_none()
    }

    /// Highest free range of `len` bytes ending at or below `top`, aligned to
    /// `align`.
    pub fn find_free_below(&self, top: u64, len: u64, align: u64) -> Option<u64> {
        let mut ceiling = top.min(self.hi);
        for (s, v) in self.map.range(..top).rev() {
            if v.end <= ceiling {
                if let Some(start) = ceiling.checked_sub(len).map(|a| a & !(align - 1)) {
                    if start >= v.end && start >= self.lo {
                        return Some(start);
                    }
                }
            }
            ceiling = ceiling.min(*s);
        }
        let start = ceiling.checked_sub(len)? & !(align - 1);
        (start >= self.lo).then_some(start)
    }

    /// Lowest free range of `len` bytes at or above `bottom`.
    pub fn find_free_above(&self, bottom: u64, len: u64) -> Option<u64> {
        let mut floor = bottom.max(self.lo);
        if let Some((_, v)) = self.find(floor) {
            floor = v.end;
        }
        for (s, v) in self.map.range(floor..) {
            if *s >= floor + len {
                break;
            }
            floor = floor.max(v.end);
        }
        (floor.checked_add(len)? <= self.hi).then_some(floor)
    }

    /// Add an area; the range must be free.
    pub fn insert(&mut self, start: u64, vma: Vma) {
        debug_assert!(self.is_free(start, vma.end));
        self.map.insert(start, vma);
    }

    /// Split so that `at` is an area boundary (if it falls inside one).
    fn split_at(&mut self, at: u64) {
        if let Some((s, v)) = self.find(at) {
            if s < at {
                let mut tail = v.clone();
                tail.offset += at - s;
                self.map.get_mut(&s).unwrap().end = at;
                self.map.insert(at, tail);
            }
        }
    }

    /// Remove everything in `[start, end)`; returns the removed pieces.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<(u64, Vma)> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(s, _)| *s).collect();
        keys.into_iter()
            .map(|k| (k, self.map.remove(&k).unwrap()))
            .collect()
    }

    /// Set the protection of `[start, end)`, which must be fully mapped.
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) -> bool {
        if !self.covered(start, end, 0) {
            return false;
        }
        self.split_at(start);
        self.split_at(end);
        for (_, v) in self.map.range_mut(start..end) {
            v.prot = prot;
        }
        self.merge_around(start, end);
        true
    }

    /// Join neighbours that are alike, so long runs of mprotect calls do
    /// not fragment the map without bound.
    fn merge_around(&mut self, start: u64, end: u64) {
        let lo = self
            .map
            .range(..start)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(start);
        let keys: Vec<u64> = self.map.range(lo..=end).map(|(s, _)| *s).collect();
        let mut prev: Option<u64> = None;
        for k in keys {
            if let Some(p) = prev {
                let (pv, kv) = (&self.map[&p], &self.map[&k]);
                let contiguous_file = match (&pv.name, &kv.name) {
                    (VmaName::File(_), _) => pv.offset + (pv.end - p) == kv.offset,
                    _ => true,
                };
                if pv.end == k && pv.alike(kv) && contiguous_file {
                    let e = kv.end;
                    self.map.remove(&k);
                    self.map.get_mut(&p).unwrap().end = e;
                    continue;
                }
            }
            prev = Some(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_split() {
        let mut v = Vmas::new(0x10000, 0x100000);
        v.insert(0x20000, Vma::anon(0x30000, PROT_READ));
        assert!(v.find(0x20000).is_some());
        assert!(v.find(0x30000).is_none());
        let removed = v.remove(0x24000, 0x26000);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, 0x24000);
        assert_eq!(v.len(), 2);
        assert!(v.is_free(0x24000, 0x26000));
        assert!(!v.is_free(0x23000, 0x25000));
    }

    #[test]
    fn free_ranges_top_down_and_bottom_up() {
        let mut v = Vmas::new(0x10000, 0x100000);
        v.insert(0xf0000, Vma::anon(0x100000, PROT_READ));
        assert_eq!(v.find_free_below(0x100000, 0x10000, PAGE), Some(0xe0000));
        v.insert(0xe0000, Vma::anon(0xf0000, PROT_READ));
        assert_eq!(v.find_free_below(0x100000, 0x10000, PAGE), Some(0xd0000));
        assert_eq!(v.find_free_above(0x10000, 0x1000), Some(0x10000));
        v.insert(0x10000, Vma::anon(0x20000, PROT_READ));
        assert_eq!(v.find_free_above(0x10000, 0x1000), Some(0x20000));
        assert_eq!(v.find_free_below(0x100000, 0x1000000, PAGE), None);
    }

    #[test]
    fn protect_splits_and_merges() {
        let mut v = Vmas::new(0x10000, 0x100000);
        v.insert(0x20000, Vma::anon(0x30000, PROT_READ | PROT_WRITE));
        assert!(v.protect(0x22000, 0x23000, PROT_READ));
        assert_eq!(v.len(), 3);
        assert!(v.protect(0x22000, 0x23000, PROT_READ | PROT_WRITE));
        assert_eq!(v.len(), 1);
        assert!(!v.protect(0x30000, 0x31000, PROT_READ));
        assert!(v.covered(0x20000, 0x30000, PROT_WRITE));
        assert!(!v.covered(0x20000, 0x30001, PROT_READ));
    }
}
