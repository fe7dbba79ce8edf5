//! The file descriptor table.

use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::Errno;

use crate::fs::OpenFile;

#[derive(Clone)]
pub struct FdEntry {
    pub file: Arc<OpenFile>,
    pub cloexec: bool,
}

#[derive(Clone)]
pub struct FdTable {
    entries: Vec<Option<FdEntry>>,
    /// RLIMIT_NOFILE soft limit: fds at or above it are refused with EMFILE.
    pub limit: usize,
}

/// Hard cap on the table (RLIMIT_NOFILE hard limit).
pub const MAX_FDS: usize = 65536;

impl FdTable {
    pub fn new() -> FdTable {
        FdTable {
            entries: Vec::new(),
            limit: 1024,
        }
    }

    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        self.entry(fd).map(|e| e.file.clone())
    }

    pub fn entry(&self, fd: i32) -> Result<&FdEntry, Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.entries
            .get(fd as usize)
            .and_then(|e| e.as_ref())
            .ok_or(Errno::EBADF)
    }

    pub fn entry_mut(&mut self, fd: i32) -> Result<&mut FdEntry, Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.entries
            .get_mut(fd as usize)
            .and_then(|e| e.as_mut())
            .ok_or(Errno::EBADF)
    }

    /// Install at the lowest free fd ≥ `min`.
    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool, min: usize) -> Result<i32, Errno> {
        let mut fd = min;
        while fd < self.entries.len() && self.entries[fd].is_some() {
            fd += 1;
        }
        if fd >= self.limit {
            return Err(Errno::EMFILE);
        }
        self.put(fd, FdEntry { file, cloexec });
        Ok(fd as i32)
    }

    /// Install at exactly `fd`, returning what was there.
    pub fn put(&mut self, fd: usize, e: FdEntry) -> Option<FdEntry> {
        if fd >= self.entries.len() {
            self.entries.resize(fd + 1, None);
        }
        self.entries[fd].replace(e)
    }

    pub fn remove(&mut self, fd: i32) -> Result<FdEntry, Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.entries
            .get_mut(fd as usize)
            .and_then(|e| e.take())
            .ok_or(Errno::EBADF)
    }

    /// Close every fd in `[lo, hi]` (close_range); with `only_cloexec`, mark
    /// them close-on-exec instead.
    pub fn close_range(&mut self, lo: usize, hi: usize, only_cloexec: bool) -> Vec<FdEntry> {
        let mut out = Vec::new();
        let end = hi.saturating_add(1).min(self.entries.len());
        for e in self.entries.iter_mut().take(end).skip(lo) {
            if only_cloexec {
                if let Some(e) = e.as_mut() {
                    e.cloexec = true;
                }
            } else if let Some(x) = e.take() {
                out.push(x);
            }
        }
        out
    }

    /// Open fds, in order.
    pub fn fds(&self) -> impl Iterator<Item = (i32, &FdEntry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as i32, e)))
    }

    /// Drop close-on-exec entries (execve).
    pub fn close_on_exec(&mut self) -> Vec<FdEntry> {
        let mut out = Vec::new();
        for e in self.entries.iter_mut() {
            if e.as_ref().is_some_and(|x| x.cloexec) {
                out.push(e.take().unwrap());
            }
        }
        out
    }
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}
