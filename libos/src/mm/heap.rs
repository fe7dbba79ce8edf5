//! The LibOS's own heap: a buddy allocator over a region of the enclave heap
//! set aside at boot, made accessible a chunk at a time as it grows.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use buddy_system_allocator::Heap;

use crate::sync::SpinLock;

/// Bytes made accessible at a time (the host's page protection changes in
/// these steps, so fewer, larger steps mean fewer OCALLs).
const GROW_STEP: u64 = 8 << 20;

struct State {
    heap: Heap<40>,
    /// Next address not yet handed to the buddy allocator.
    next: u64,
    end: u64,
}

pub struct LibosHeap {
    state: SpinLock<State>,
}

impl LibosHeap {
    pub const fn new() -> Self {
        LibosHeap {
            state: SpinLock::new(State {
                heap: Heap::empty(),
                next: 0,
                end: 0,
            }),
        }
    }

    /// Give the heap the region `[start, end)`; nothing is touched yet.
    pub fn init(&self, start: u64, end: u64) {
        let mut s = self.state.lock();
        s.next = start;
        s.end = end;
    }

    /// Bytes in use and bytes made available, for /proc and logs.
    pub fn stats(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.heap.stats_alloc_actual(), s.heap.stats_total_bytes())
    }
}

impl Default for LibosHeap {
    fn default() -> Self {
        Self::new()
    }
}

fn grow(s: &mut State, need: &Layout) -> bool {
    let want = crate::util::align_up((need.size() as u64).max(need.align() as u64) * 2, GROW_STEP)
        .max(GROW_STEP);
    let start = s.next;
    let end = match start.checked_add(want) {
        Some(e) if e <= s.end => e,
        _ => return false,
    };
    if crate::host::calls::mprotect(start, want, 3).is_err() {
        return false;
    }
    s.next = end;
    // SAFETY: [start, end) is enclave memory reserved for this heap, now
    // readable and writable, and never handed out before.
    unsafe { s.heap.add_to_heap(start as usize, end as usize) };
    true
}

// SAFETY: the buddy allocator returns disjoint, suitably aligned blocks and
// the spin lock serializes all access to it.
unsafe impl GlobalAlloc for LibosHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = self.state.lock();
        loop {
            if let Ok(p) = s.heap.alloc(layout) {
                return p.as_ptr();
            }
            if !grow(&mut s, &layout) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            self.state.lock().heap.dealloc(p, layout);
        }
    }
}
