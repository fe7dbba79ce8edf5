//! The fast path: rewriting `mov $NR, %eax; syscall` sites so the program
//! enters the LibOS with a jump instead of a trap.
//!
//! Sites are patched lazily, when they first trap, so only instructions the
//! CPU really executed as `syscall` are touched, and the value of RAX at the
//! trap confirms the `mov` before it. Only the 5-byte `mov` is replaced (by
//! `jmp rel32` to a per-site stub); the `syscall` itself stays, so code that
//! jumps straight to it still works through the trap path. The stub sets EAX
//! back, runs the few register-only instructions compilers put between the
//! `mov` and the `syscall` (glibc's futex calls: `xor $0x80,%sil`), puts the
//! return address in RCX (as `syscall` would) and jumps to
//! `libos_syscall_entry`, which saves registers without touching the
//! program's stack (red zone safe) and switches to the LibOS stack.
//!
//! With other threads running, the `mov` must change so that no thread
//! fetches half of the old and half of the new instruction. Within one
//! aligned 8-byte word, one store does it. Otherwise the site is patched as
//! Linux patches its own text: an `int3` first, the other four bytes, then
//! the `jmp` opcode, with every thread's instruction stream serialized
//! (membarrier SYNC_CORE through the host) between steps. A thread that
//! meets the `int3` meanwhile is sent on as if it had run the `mov`.

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

/// Sites patched through an `int3` (mov address, syscall number): a thread
/// may report the breakpoint after the patch is done.
static INT3_SITES: SpinLock<Vec<(u64, u32)>> = SpinLock::new(Vec::new());

/// Most bytes of other instructions between the `mov` and the `syscall`
/// (the stub holds them: 5 + 12 + 13 bytes fit its 32).
const MAX_BETWEEN: u64 = 12;

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

/// Write `bytes` at `addr` inside program code. When no other thread can
/// be running those bytes (`unseen`: a stub not jumped to yet, or a site
/// while the program has one thread), the host writes them without
/// touching the page's protection (`PokeCode`: one call, no TLB
/// shootdown); otherwise the page is made writable for the moment (RWX,
/// so other threads running it keep executing) and the store is atomic
/// where it can be.
fn poke_code(addr: u64, bytes: &[u8], unseen: bool) -> bool {
    if unseen {
        match crate::host::calls::poke_code(addr, bytes) {
            Ok(()) => return true,
            Err(conf_abi::Errno::ENOSYS) => {}
            Err(_) => return false,
        }
    }
    with_code_writable(addr, bytes.len() as u64, || poke_writable(addr, bytes))
}

/// Run `write` with the pages of `[addr, addr + len)` writable (RWX, so
/// other threads running them keep executing), then make them RX again.
/// False if they could not be made writable (or `write` says it failed).
fn with_code_writable(addr: u64, len: u64, write: impl FnOnce() -> bool) -> bool {
    let page_lo = addr & !(PAGE - 1);
    let page_hi = (addr + len + PAGE - 1) & !(PAGE - 1);
    if crate::host::calls::mprotect(
        page_lo,
        page_hi - page_lo,
        PROT_READ | PROT_WRITE | PROT_EXEC,
    )
    .is_err()
    {
        return false;
    }
    let ok = write();
    let _ = crate::host::calls::mprotect(page_lo, page_hi - page_lo, PROT_READ | PROT_EXEC);
    ok
}

fn poke_writable(addr: u64, bytes: &[u8]) -> bool {
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
    true
}

/// Length of the instruction at the start of `code` if the stub may run a
/// copy of it elsewhere: register operands only (nothing RIP-relative, no
/// memory), and EAX/RAX left alone (it holds the system call number).
fn register_only_len(code: &[u8]) -> Option<usize> {
    let (rex, rest) = match code.first()? {
        r @ 0x40..=0x4f => (*r, &code[1..]),
        _ => (0, code),
    };
    let pre = (rex != 0) as usize;
    let (rex_w, rex_r, rex_b) = (rex & 8 != 0, (rex >> 2) & 1, rex & 1);
    let op = *rest.first()?;
    let modrm = rest.get(1).copied();
    let direct = |m: u8| m >> 6 == 3;
    let rm = |m: u8| (m & 7) | (rex_b << 3);
    let reg = |m: u8| ((m >> 3) & 7) | (rex_r << 3);
    match op {
        // mov r/m, r and xor r/m, r: the r/m register is written.
        0x89 | 0x31 => {
            let m = modrm?;
            (direct(m) && rm(m) != 0).then_some(pre + 2)
        }
        // mov r, r/m and xor r, r/m: the reg register is written.
        0x8b | 0x33 => {
            let m = modrm?;
            (direct(m) && reg(m) != 0).then_some(pre + 2)
        }
        // xor r/m8, imm8: without a REX prefix, r/m 4 is AH (part of EAX).
        0x80 => {
            let m = modrm?;
            let ok = direct(m) && (m >> 3) & 7 == 6 && rm(m) != 0 && (rex != 0 || rm(m) < 4);
            ok.then_some(pre + 3)
        }
        // mov r/m, imm32.
        0xc7 => {
            let m = modrm?;
            (direct(m) && (m >> 3) & 7 == 0 && rm(m) != 0).then_some(pre + 6)
        }
        // mov r, imm32 (imm64 with REX.W).
        0xb8..=0xbf => {
            let r = (op - 0xb8) | (rex_b << 3);
            (r != 0).then_some(pre + if rex_w { 9 } else { 5 })
        }
        _ => None,
    }
}

/// Where the `mov $nr, %eax` for the `syscall` at `site` is, and how many
/// bytes of register-only instructions follow it before the `syscall`.
fn find_mov(site: u64, nr: u32) -> Option<(u64, u64)> {
    let from = site.checked_sub(5 + MAX_BETWEEN + 1)?;
    if !process()
        .mm
        .check(from, site + 2 - from, PROT_READ | PROT_EXEC)
    {
        return None;
    }
    // SAFETY: the range was checked readable program code just now.
    let code =
        unsafe { core::slice::from_raw_parts(from as *const u8, (site + 2 - from) as usize) };
    let at = |a: u64| (a - from) as usize;
    if code[at(site)..] != [0x0f, 0x05] {
        return None;
    }
    let imm = nr.to_le_bytes();
    (0..=MAX_BETWEEN).find_map(|between| {
        let mov = site - 5 - between;
        let m = at(mov);
        let is_mov =
            code[m] == 0xb8 && code[m + 1..m + 5] == imm && !(0x40..=0x4f).contains(&code[m - 1]);
        if !is_mov {
            return None;
        }
        let mut p = m + 5;
        while p < at(site) {
            p += register_only_len(&code[p..at(site)])?;
        }
        (p == at(site)).then_some((mov, between))
    })
}

/// The system call number of a site patched through an `int3` whose `mov`
/// is at `addr`.
pub fn int3_site(addr: u64) -> Option<u32> {
    INT3_SITES
        .lock()
        .iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, nr)| *nr)
}

/// Replace the 5-byte `mov` at `mov` with `jmp` while other threads may run
/// it: `int3`, the rest, then the opcode, serializing every thread's
/// instruction stream between steps.
fn poke_under_threads(mov: u64, nr: u32, jmp: &[u8; 5]) -> bool {
    use crate::host::calls as hc;
    with_code_writable(mov, 5, || {
        INT3_SITES.lock().push((mov, nr));
        let p = mov as *mut u8;
        // SAFETY: program code made writable just now; single-byte stores
        // are atomic, and no thread runs from inside the 5 bytes (only from
        // their start), which holds `int3` while the others change.
        unsafe {
            p.write_volatile(0xcc);
            let ok = hc::sync_core().is_ok();
            if ok {
                for (i, b) in jmp.iter().enumerate().skip(1) {
                    p.add(i).write_volatile(*b);
                }
                let _ = hc::sync_core();
                p.write_volatile(jmp[0]);
            } else {
                p.write_volatile(0xb8);
            }
            ok
        }
    })
}

/// The program trapped on the `syscall` at `site` with RAX = `nr`: patch
/// the `mov $nr, %eax` before it, if that is what it is.
pub fn on_trap(site: u64, nr: u64) {
    if !ENABLED.load(Ordering::Relaxed) || nr > u32::MAX as u64 {
        return;
    }
    let nr = nr as u32;
    let Some((mov, between)) = find_mov(site, nr) else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _one_at_a_time = PATCHING.lock();
    // Re-check under the lock: another thread may have patched this site.
    // SAFETY: checked readable by find_mov.
    if unsafe { (mov as *const u8).read() } != 0xb8 {
        return;
    }
    let Some(stub) = alloc_stub(site) else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // mov $nr, %eax; the instructions between; lea rcx, [rip + to the
    // instruction after the syscall]; jmp [rip + to the page's first word,
    // which holds the entry address].
    let lea = 5 + between as usize;
    let lea_end = stub + lea as u64 + 7;
    let jmp_end = lea_end + 6;
    let mut code = [0xccu8; STUB_SIZE as usize];
    code[0] = 0xb8;
    code[1..5].copy_from_slice(&nr.to_le_bytes());
    // SAFETY: readable program code (find_mov checked it).
    code[5..lea].copy_from_slice(unsafe {
        core::slice::from_raw_parts((mov + 5) as *const u8, between as usize)
    });
    code[lea..lea + 3].copy_from_slice(&[0x48, 0x8d, 0x0d]);
    code[lea + 3..lea + 7]
        .copy_from_slice(&(((site + 2) as i64 - lea_end as i64) as i32).to_le_bytes());
    let page_base = stub & !(PAGE - 1);
    code[lea + 7..lea + 9].copy_from_slice(&[0xff, 0x25]);
    code[lea + 9..lea + 13]
        .copy_from_slice(&((page_base as i64 - jmp_end as i64) as i32).to_le_bytes());
    // No thread runs the stub before the `jmp` to it is written.
    if !poke_code(stub, &code, true) {
        return;
    }
    let mut jmp = [0u8; 5];
    jmp[0] = 0xe9;
    jmp[1..5].copy_from_slice(&((stub as i64 - (mov + 5) as i64) as i32).to_le_bytes());
    let single = crate::process::threads::live_threads() <= 1;
    let atomic_ok = (mov & 7) + 5 <= 8;
    let patched = if single || atomic_ok {
        poke_code(mov, &jmp, single)
    } else {
        poke_under_threads(mov, nr, &jmp)
    };
    if patched {
        PATCHED.fetch_add(1, Ordering::Relaxed);
    } else {
        REFUSED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Forget the stub pages (execve unmapped them with everything else).
pub fn reset() {
    STUBS.lock().clear();
    INT3_SITES.lock().clear();
}
