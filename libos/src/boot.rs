//! First entry of the first thread: relocate, check the measured records,
//! connect to the ring, read the manifest, start the program.

use conf_abi::entry::{AbortCode, EnterReason};
use conf_abi::layout::{EnclaveInfo, SlotRecord, ENCLAVE_INFO_MAGIC, SLOT_RECORD_MAGIC};
use conf_abi::manifest::ResolvedManifest;
use conf_abi::ocall::{BootBlock, BACKEND_SIM};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::tls::{gs_base, Tls};
use crate::host;
use crate::util::Global;

/// 0 until the boot thread has relocated the image; a second Boot entry (a
/// hostile host) must not relocate again.
static BOOTED: AtomicU32 = AtomicU32::new(0);

/// The measured enclave description and manifest, set once at boot.
pub struct Enclave {
    pub base: u64,
    pub info: EnclaveInfo,
    pub manifest: ResolvedManifest,
}

static ENCLAVE: Global<Enclave> = Global::new();

pub fn enclave() -> &'static Enclave {
    ENCLAVE.get()
}

/// Abort before the ring exists: nothing can be reported.
fn early_abort(code: AbortCode) -> ! {
    // SAFETY: leaves the enclave for good.
    unsafe { crate::arch::entry::libos_exit_final(conf_abi::entry::ExitReason::Abort as u64, code as u64) }
}

/// Fill in the parts of this slot's TLS that depend on where ELRANGE is.
fn init_tls(sim: bool) -> &'static mut Tls {
    let addr = gs_base();
    // SAFETY: GS base is this slot's TLS page (set by EENTER from the TCS).
    let t = unsafe { &mut *(addr as *mut Tls) };
    let rec: SlotRecord = t.record;
    if rec.magic != SLOT_RECORD_MAGIC {
        early_abort(AbortCode::BadImage);
    }
    let base = addr.wrapping_sub(rec.tls_offset);
    // SAFETY: info_offset is measured; it points at the enclave info page.
    let info = unsafe { &*((base + rec.info_offset) as *const EnclaveInfo) };
    if info.magic != ENCLAVE_INFO_MAGIC || info.abi_version != conf_abi::ABI_VERSION {
        early_abort(AbortCode::BadImage);
    }
    t.self_addr = addr;
    t.sim = sim as u64;
    t.enclave_lo = base;
    t.enclave_hi = base + info.enclave_size;
    t
}

/// Rust side of `enclave_entry` for every entry except an OCALL return.
#[no_mangle]
pub extern "C" fn libos_enter(reason: u64, arg1: u64, arg2: u64, cssa: u64) -> ! {
    let _ = (arg2, cssa);
    match EnterReason::from_raw(reason) {
        Some(EnterReason::Boot) => boot(arg1),
        _ => early_abort(AbortCode::BadImage),
    }
}

fn boot(ring_addr: u64) -> ! {
    if BOOTED.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
        early_abort(AbortCode::BadImage);
    }
    // SAFETY: first entry of the first thread; nothing else runs.
    if !unsafe { crate::arch::reloc::relocate_self() } {
        early_abort(AbortCode::BadImage);
    }
    // Until the boot block says which backend this is, exits take the sim
    // path; under SGX that faults, which stops the enclave just the same.
    let t = init_tls(true);
    let base = t.enclave_lo;
    // SAFETY: measured record, checked in init_tls.
    let info = unsafe { *((base + t.record.info_offset) as *const EnclaveInfo) };
    if host::init(ring_addr, info.nslots as u64, t.enclave_lo, t.enclave_hi).is_err() {
        early_abort(AbortCode::BadImage);
    }
    t.sim = (host::boot_field(core::mem::offset_of!(BootBlock, backend)) == BACKEND_SIM) as u64;
    // SAFETY: the manifest pages are measured and read-only.
    let mbytes = unsafe { core::slice::from_raw_parts((base + info.manifest_offset) as *const u8, info.manifest_len as usize) };
    let manifest = match ResolvedManifest::decode(mbytes) {
        Ok(m) => m,
        Err(e) => host::abort(AbortCode::BadImage, format_args!("measured manifest does not decode: {e}")),
    };
    host::set_mode(manifest.ocall_mode);
    crate::log::set_level(manifest.log_level);
    ENCLAVE.set(Enclave { base, info, manifest });
    crate::host::calls::write_all_host(1, b"hello from the enclave\n");
    host::exit_process(0)
}

/// Rust side of `libos_syscall_entry` (rewritten syscall sites).
#[no_mangle]
pub extern "C" fn libos_fast_syscall() -> ! {
    host::abort(AbortCode::Panic, format_args!("fast syscall path not enabled"))
}
