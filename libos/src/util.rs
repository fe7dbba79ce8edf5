//! Small building blocks with no better home.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

/// A value set once at boot (by the first thread, before others start) and
/// read-only afterwards.
pub struct Global<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: written once before any concurrent reader exists, then shared.
unsafe impl<T: Send + Sync> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new() -> Self {
        Global {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    pub fn set(&self, v: T) {
        assert!(
            self.state
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            "global set twice"
        );
        // SAFETY: state 1 gives us exclusive access.
        unsafe { (*self.value.get()).write(v) };
        self.state.store(2, Ordering::Release);
    }

    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) == 2
    }

    pub fn get(&self) -> &T {
        assert!(self.is_set(), "global used before boot set it");
        // SAFETY: initialized (state 2) and never written again.
        unsafe { (*self.value.get()).assume_init_ref() }
    }
}

impl<T> Default for Global<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A fixed-capacity text buffer for formatting without the heap.
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    pub const fn new() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Round `v` up to a multiple of `align` (a power of two).
pub const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

/// Round `v` down to a multiple of `align` (a power of two).
pub const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}
