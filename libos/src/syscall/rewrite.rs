//! The fast path: rewriting `mov $NR, %eax; syscall` sites so the program
//! enters the LibOS with a jump instead of a trap.
//!
//! Sites are patched lazily, when they first trap, so only instructions the
//! CPU really executed as `syscall` are touched, and the value of RAX at the
//! trap confirms the `mov` before it. Only the 5-byte `mov` is replaced (by
//! `jmp rel32` to a per-site stub); the `syscall` itself stays, so code that
//! jumps straight to it still works through the trap path. The stub sets EAX
//! back, puts the return address in RCX (as `syscall` would) and jumps to
//! `libos_syscall_entry`, which saves registers without touching the
//! program's stack (red zone safe) and switches to the LibOS stack.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::mm::{Placement, Vma, VmaName, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::process::process;
use crate::sync::SpinLock;

/// Bytes per stub (padded).
const STUB_SIZE: u64 = 32;
/// The first stub slot of each page holds the entry address.
const FIRST_STUB: u64 = 32;

struct StubPage {
    base: u64,
    next: u64,
}

static STUBS: SpinLock<Vec<StubPage>> = SpinLock::new(Vec::new());

/// One patch at a time: two patches on the same page would race on its
/// protection (one thread making it read-only while the other writes).
static PATCHING: SpinLock<()> = SpinLock::new(());

pub static PATCHED: AtomicU64 = AtomicU64::new(0);
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Turn the feature off (`CONF_NO_REWRITE`-like switch for tests is the
/// manifest's; the LibOS keeps it on).
pub static ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

fn within_rel32(from: u64, to: u64) -> bool {
    let d = to as i64 - from as i64;
    d >= i32::MIN as i64 && d <= i32::MAX as i64
}

/// A stub slot within ±2 GiB of `site`.
fn alloc_stub(site: u64) -> Option<u64> {
    let mut pages = STUBS.lock();
    for p in pages.iter_mut() {
        if p.next + STUB_SIZE <= p.base + PAGE
            && within_rel32(site, p.base)
            && within_rel32(site, p.base + PAGE)
        {
            let s = p.next;
            p.next += STUB_SIZE;
            return Some(s);
        }
    }
    let vma = Vma {
        end: 0,
        prot: 0,
        shared: false,
        name: VmaName::File(alloc::sync::Arc::from("[conf-syscall-stubs]")),
        offset: 0,
        inode: 0,
        lazy: None,
    };
    let base = process()
        .mm
        .map(
            Placement::Hint(site & !(PAGE - 1)),
            PAGE,
            PROT_READ | PROT_EXEC,
            vma,
            true,
        )
        .ok()?;
    if !within_rel32(site, base) || !within_rel32(site, base + PAGE) {
        let _ = process().mm.unmap(base, PAGE);
        return None;
    }
    // SAFETY: the page was just mapped writable for filling.
    unsafe {
        (base as *mut u64).write(crate::arch::entry::libos_syscall_entry as *const () as u64)
    };
    process()
        .mm
        .finish_fill(base, PAGE, PROT_READ | PROT_EXEC)
        .ok()?;
    pages.push(StubPage {
        base,
        next: base + FIRST_STUB + STUB_SIZE,
    });
    Some(base + FIRST_STUB)
}

/// Write `bytes` at `addr` inside program code, making it writable for the
/// moment (RWX, so other threads running this page keep executing).
fn poke_code(addr: u64, bytes: &[u8]) -> bool {
    let page_lo = addr & !(PAGE - 1);
    let page_hi = (addr + bytes.len() as u64 + PAGE - 1) & !(PAGE - 1);
    if crate::host::calls::mprotect(
        page_lo,
        page_hi - page_lo,
        PROT_READ | PROT_WRITE | PROT_EXEC,
    )
    .is_err()
    {
        return false;
    }
    let word = addr & !7;
    if addr + bytes.len() as u64 <= word + 8 {
        // One aligned 8-byte store: a thread fetching these bytes sees the
        // old or the new instruction, never half of each.
        // SAFETY: the word lies in program code just made writable.
        unsafe {
            let w = &*(word as *const AtomicU64);
            let mut v = w.load(Ordering::Relaxed).to_le_bytes();
            let o = (addr - word) as usize;
            v[o..o + bytes.len()].copy_from_slice(bytes);
            w.store(u64::from_le_bytes(v), Ordering::SeqCst);
        }
    } else {
        // SAFETY: as above; only used while the program is single-threaded.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
    }
    let _ = crate::host::calls::mprotect(page_lo, page_hi - page_lo, PROT_READ | PROT_EXEC);
    true
}

/// The program trapped on the `syscall` at `site` with RAX = `nr`: patch
/// the `mov $nr, %eax` just before it, if that is what it is.
pub fn on_trap(site: u64, nr: u64) {
    if !ENABLED.load(Ordering::Relaxed) || nr > u32::MAX as u64 {
        return;
    }
    let mov = site.wrapping_sub(5);
    let mm = &process().mm;
    if !mm.check(mov - 1, 8, PROT_READ | PROT_EXEC) {
        return;
    }
    // SAFETY: 8 readable bytes of program code (checked).
    let b = unsafe { ((mov - 1) as *const [u8; 8]).read_unaligned() };
    let is_mov = b[1] == 0xb8
        && u32::from_le_bytes([b[2], b[3], b[4], b[5]]) as u64 == nr
        && !(0x40..=0x4f).contains(&b[0]);
    if !is_mov || b[6..8] != [0x0f, 0x05] {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _one_at_a_time = PATCHING.lock();
    // Re-check under the lock: another thread may have patched this site.
    // SAFETY: as above.
    if unsafe { (mov as *const u8).read() } != 0xb8 {
        return;
    }
    let single = crate::process::threads::live_threads() <= 1;
    let atomic_ok = (mov & 7) + 5 <= 8;
    if !single && !atomic_ok {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some(stub) = alloc_stub(site) else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut code = [0xccu8; STUB_SIZE as usize];
    code[0] = 0xb8;
    code[1..5].copy_from_slice(&(nr as u32).to_le_bytes());
    // lea rcx, [rip + (site+2 - (stub+12))]
    code[5..8].copy_from_slice(&[0x48, 0x8d, 0x0d]);
    code[8..12].copy_from_slice(&(((site + 2) as i64 - (stub + 12) as i64) as i32).to_le_bytes());
    // jmp [rip + (page_base - (stub+18))]
    let page_base = stub & !(PAGE - 1);
    code[12..14].copy_from_slice(&[0xff, 0x25]);
    code[14..18].copy_from_slice(&((page_base as i64 - (stub + 18) as i64) as i32).to_le_bytes());
    if !poke_code(stub, &code) {
        return;
    }
    let mut jmp = [0u8; 5];
    jmp[0] = 0xe9;
    jmp[1..5].copy_from_slice(&((stub as i64 - (mov + 5) as i64) as i32).to_le_bytes());
    if poke_code(mov, &jmp) {
        PATCHED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Forget the stub pages (execve unmapped them with everything else).
pub fn reset() {
    STUBS.lock().clear();
}
