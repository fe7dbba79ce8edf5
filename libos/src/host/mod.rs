//! The LibOS side of the OCALL ring: posting requests, leaving the enclave
//! while the host works, and checking every reply as if the host lied.
//!
//! A reply that cannot be true (a length above what was asked, an errno Linux
//! does not have, a request state nobody set) is an attack: the LibOS aborts
//! rather than turning it into an error the program might mishandle.

pub mod calls;

use core::sync::atomic::Ordering;

use conf_abi::entry::{AbortCode, ExitReason};
use conf_abi::manifest::OcallMode;
use conf_abi::ocall::{state, BootBlock, Ocall, OcallSlot, RingLayout, BOOT_MAGIC, SLOT_DATA_SIZE};
use conf_abi::Errno;

use crate::arch::entry::{libos_exit_final, libos_ocall_exit};
use crate::arch::tls::tls;
use crate::util::Global;

pub struct Ring {
    base: u64,
    layout: RingLayout,
}

/// How requests are carried (`libos.ocall.mode`); exit until the manifest is read.
static MODE: core::sync::atomic::AtomicU8 =
    core::sync::atomic::AtomicU8::new(OcallMode::Exit as u8);

pub fn set_mode(m: OcallMode) {
    MODE.store(m as u8, Ordering::Relaxed);
}

static RING: Global<Ring> = Global::new();

/// Why a ring could not be set up.
#[derive(Debug)]
pub enum RingError {
    Overlaps,
    BadBootBlock,
}

/// Set up the ring at `base` (host-chosen, checked here) for `nslots` slots.
/// Called once by the boot thread.
pub fn init(base: u64, nslots: u64, enclave_lo: u64, enclave_hi: u64) -> Result<(), RingError> {
    let layout = RingLayout::new(nslots);
    let end = base
        .checked_add(layout.total_size)
        .ok_or(RingError::Overlaps)?;
    // The ring must lie wholly outside ELRANGE, or the host could make the
    // LibOS write its replies over enclave memory.
    if !base.is_multiple_of(4096) || !(end <= enclave_lo || base >= enclave_hi) || base == 0 {
        return Err(RingError::Overlaps);
    }
    let boot = (base + layout.boot_offset) as *const BootBlock;
    // SAFETY: inside the ring, checked above to be outside the enclave.
    if unsafe { core::ptr::read_volatile(&(*boot).magic) } != BOOT_MAGIC {
        return Err(RingError::BadBootBlock);
    }
    RING.set(Ring { base, layout });
    Ok(())
}

fn ring() -> &'static Ring {
    RING.get()
}

/// A copy of the boot-block field at byte offset `field` (untrusted), e.g.
/// `boot_field(offset_of!(BootBlock, argc))`.
pub fn boot_field(field: usize) -> u64 {
    let r = ring();
    debug_assert!(field + 8 <= core::mem::size_of::<BootBlock>());
    // SAFETY: the boot block is inside the ring (outside ELRANGE); a volatile
    // read because the host may change it at any time.
    unsafe {
        core::ptr::read_volatile((r.base + r.layout.boot_offset + field as u64) as *const u64)
    }
}

/// Copy `len` bytes at `off` of the boot block into enclave memory.
pub fn boot_bytes(off: u64, len: u64) -> Option<alloc::vec::Vec<u8>> {
    let r = ring();
    let end = off.checked_add(len)?;
    if end > conf_abi::ocall::BOOT_BLOCK_SIZE {
        return None;
    }
    let mut v = alloc::vec![0u8; len as usize];
    // SAFETY: bounds checked against the boot block size.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (r.base + r.layout.boot_offset + off) as *const u8,
            v.as_mut_ptr(),
            len as usize,
        )
    };
    Some(v)
}

/// The OCALL slot of the calling thread.
fn my_slot() -> (&'static OcallSlot, u64) {
    let r = ring();
    let i = tls().record.slot_index;
    let slot = (r.base + r.layout.slot_offset(i)) as *const OcallSlot;
    // SAFETY: slot i exists (i < nslots, from the measured slot record).
    (unsafe { &*slot }, r.base + r.layout.data_area_offset(i))
}

/// The calling thread's data area.
pub struct Data {
    base: u64,
}

impl Data {
    pub fn mine() -> Data {
        Data { base: my_slot().1 }
    }

    /// Copy `bytes` into the data area at `off`.
    pub fn put(&self, off: u64, bytes: &[u8]) {
        assert!(
            off + bytes.len() as u64 <= SLOT_DATA_SIZE,
            "OCALL data overflow"
        );
        // SAFETY: bounds checked; the area is untrusted memory we own.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.base + off) as *mut u8,
                bytes.len(),
            )
        };
    }

    /// Copy `out.len()` bytes from the data area at `off` into enclave memory.
    pub fn get(&self, off: u64, out: &mut [u8]) {
        assert!(
            off + out.len() as u64 <= SLOT_DATA_SIZE,
            "OCALL data overflow"
        );
        // SAFETY: bounds checked; copied once, then only the copy is used.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.base + off) as *const u8,
                out.as_mut_ptr(),
                out.len(),
            )
        };
    }

    /// Write a u64 into the data area.
    pub fn put_u64(&self, off: u64, v: u64) {
        self.put(off, &v.to_le_bytes());
    }

    pub fn get_u64(&self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        self.get(off, &mut b);
        u64::from_le_bytes(b)
    }
}

/// A reply as the host gave it, before interpretation.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub ret: i64,
    pub aux: u64,
}

impl Reply {
    /// `ret` as a result: non-negative values pass, `-errno` becomes an
    /// errno if Linux has it; anything else is hostile.
    pub fn result(self, nr: Ocall) -> Result<u64, Errno> {
        if self.ret >= 0 {
            return Ok(self.ret as u64);
        }
        let e = self
            .ret
            .checked_neg()
            .filter(|e| *e <= conf_abi::errno::MAX_HOST_ERRNO as i64);
        match e.and_then(|e| Errno::from_raw(e as i32)) {
            Some(Errno::ERESTARTSYS | Errno::ERESTARTNOINTR | Errno::ERESTARTNOHAND) | None => {
                hostile(nr, "an error number Linux does not return")
            }
            Some(e) => Err(e),
        }
    }
}

/// Spins before an exitless request gives up and leaves the enclave.
const EXITLESS_SPINS: u32 = 4000;

/// Ask the host to run `nr` with `args`. The data area must hold whatever
/// the call reads; what it writes is there afterwards.
pub fn call(nr: Ocall, args: [u64; 6]) -> Reply {
    let (slot, _) = my_slot();
    // A stale state means the host scribbled on our slot.
    if slot.state.load(Ordering::Acquire) != state::FREE {
        hostile(nr, "the request slot was not free");
    }
    slot.nr.store(nr as u32, Ordering::Relaxed);
    for (a, v) in slot.args.iter().zip(args) {
        a.store(v, Ordering::Relaxed);
    }
    slot.ret.store(0, Ordering::Relaxed);
    slot.aux.store(0, Ordering::Relaxed);
    let mode = OcallMode::from_raw(MODE.load(Ordering::Relaxed)).unwrap_or_default();
    let exitless = match mode {
        OcallMode::Exit => false,
        OcallMode::Exitless => !always_exits(nr),
        OcallMode::Adaptive => !always_exits(nr) && !blocks(nr),
    };
    let posted = if exitless {
        state::POSTED
    } else {
        state::POSTED_INLINE
    };
    slot.state.store(posted, Ordering::SeqCst);
    let mut done = false;
    if exitless {
        for _ in 0..EXITLESS_SPINS {
            if slot.state.load(Ordering::Acquire) == state::DONE {
                done = true;
                break;
            }
            core::hint::spin_loop();
        }
    }
    if !done {
        let reason = if exitless {
            ExitReason::WaitOcall
        } else {
            ExitReason::Ocall
        };
        // SAFETY: returns when the host re-enters with OcallReturn.
        unsafe { libos_ocall_exit(reason as u64, 0) };
    }
    if slot.state.load(Ordering::Acquire) != state::DONE {
        hostile(nr, "the host returned before completing the request");
    }
    let reply = Reply {
        ret: slot.ret.load(Ordering::Relaxed),
        aux: slot.aux.load(Ordering::Relaxed),
    };
    slot.state.store(state::FREE, Ordering::Release);
    reply
}

/// Calls that may block for long: under `adaptive` these leave the enclave
/// at once instead of spinning.
fn blocks(nr: Ocall) -> bool {
    matches!(nr, Ocall::Read | Ocall::Write)
}

/// Calls that wait by design (sleeping, waiting for another thread, polling
/// with a timeout) always run on the caller's own host thread, so they never
/// tie up an exitless worker; so does `TrapCpuid`, which changes the calling
/// thread.
fn always_exits(nr: Ocall) -> bool {
    matches!(
        nr,
        Ocall::TrapCpuid
            | Ocall::Poll
            | Ocall::Sleep
            | Ocall::ThreadSleep
            | Ocall::SpawnThread
            | Ocall::Accept
            | Ocall::Recvfrom
            | Ocall::Recvmsg
            | Ocall::EpollWait
            | Ocall::Connect
    )
}

/// The host gave a reply that cannot be true: stop the enclave.
#[cold]
pub fn hostile(nr: Ocall, what: &str) -> ! {
    abort(
        AbortCode::HostileHost,
        format_args!(
            "host reply to OCALL {} is impossible ({}); stopping the enclave",
            nr.name(),
            what
        ),
    )
}

/// Write `msg` to the abort buffer and leave the enclave for good.
#[cold]
pub fn abort(code: AbortCode, msg: core::fmt::Arguments<'_>) -> ! {
    if RING.is_set() {
        let r = ring();
        let (off, cap) = (
            boot_field(core::mem::offset_of!(BootBlock, abort_msg_off)),
            boot_field(core::mem::offset_of!(BootBlock, abort_msg_cap)),
        );
        if let Some(end) = off.checked_add(cap) {
            if end <= conf_abi::ocall::BOOT_BLOCK_SIZE && cap > 0 {
                let mut w = crate::util::FixedBuf::<1024>::new();
                let _ = core::fmt::write(&mut w, msg);
                let n = w.len().min(cap as usize - 1);
                // SAFETY: bounds checked against the boot block.
                unsafe {
                    let dst = (r.base + r.layout.boot_offset + off) as *mut u8;
                    core::ptr::copy_nonoverlapping(w.as_bytes().as_ptr(), dst, n);
                    dst.add(n).write(0);
                }
            }
        }
    }
    // SAFETY: leaves the enclave; never returns.
    unsafe { libos_exit_final(ExitReason::Abort as u64, code as u64) }
}

/// Leave the enclave for good with a wait status.
pub fn exit_process(wait_status: u64) -> ! {
    // SAFETY: leaves the enclave; never returns.
    unsafe { libos_exit_final(ExitReason::ExitProcess as u64, wait_status) }
}

/// Leave the enclave because this thread has ended.
pub fn exit_thread() -> ! {
    // SAFETY: leaves the enclave; never returns.
    unsafe { libos_exit_final(ExitReason::ExitThread as u64, 0) }
}

/// This thread's wake counter in the ring (a hint: re-check after waking).
pub fn wake_seq() -> u32 {
    my_slot().0.wake_seq.load(Ordering::Acquire)
}

/// Take the signals the host recorded for the enclave (a hint).
pub fn take_host_signals() -> u64 {
    if !RING.is_set() {
        return 0;
    }
    // SAFETY: the header is at the ring base (outside the enclave).
    let hdr = unsafe { &*(ring().base as *const conf_abi::ocall::RingHeader) };
    if hdr.pending_signals.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    hdr.pending_signals.swap(0, Ordering::AcqRel)
}

/// Did the host's alarm fire since the last call? (A hint: the LibOS checks
/// its own timers against its own clock.)
pub fn take_alarm() -> bool {
    if !RING.is_set() {
        return false;
    }
    // SAFETY: the header is at the ring base (outside the enclave).
    let hdr = unsafe { &*(ring().base as *const conf_abi::ocall::RingHeader) };
    hdr.alarm_fired.load(Ordering::Relaxed) != 0 && hdr.alarm_fired.swap(0, Ordering::AcqRel) != 0
}
