//! First entry of the first thread: relocate, check the measured records,
//! connect to the ring, read the manifest, start the program.

use alloc::string::String;
use alloc::vec::Vec;
use conf_abi::entry::{AbortCode, EnterReason};
use conf_abi::layout::{EnclaveInfo, SlotRecord, ENCLAVE_INFO_MAGIC, SLOT_RECORD_MAGIC};
use conf_abi::manifest::{EnvValue, LogLevel, ResolvedManifest};
use conf_abi::ocall::{BootBlock, BACKEND_SIM};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::tls::{gs_base, tls, Tls};
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
    unsafe {
        crate::arch::entry::libos_exit_final(conf_abi::entry::ExitReason::Abort as u64, code as u64)
    }
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

/// Prepare the TLS of a slot entered for a new thread (after boot).
pub fn init_thread_tls() -> &'static mut Tls {
    if BOOTED.load(Ordering::Acquire) != 2 {
        early_abort(AbortCode::BadImage);
    }
    let t = init_tls(true);
    t.sim = (host::boot_field(core::mem::offset_of!(BootBlock, backend)) == BACKEND_SIM) as u64;
    t
}

/// Rust side of `enclave_entry` for every entry except an OCALL return.
#[no_mangle]
pub extern "C" fn libos_enter(reason: u64, arg1: u64, _arg2: u64, _cssa: u64) -> ! {
    match EnterReason::from_raw(reason) {
        Some(EnterReason::Boot) => boot(arg1),
        Some(EnterReason::Exception) => crate::entry::exception(true),
        Some(EnterReason::HostSignal) => crate::entry::exception(false),
        Some(EnterReason::ThreadStart) => crate::process::threads::start_current(),
        _ => {
            if BOOTED.load(Ordering::Acquire) == 2 {
                host::abort(
                    AbortCode::BadImage,
                    format_args!("the host entered the enclave with an unknown reason {reason}"),
                )
            }
            early_abort(AbortCode::BadImage)
        }
    }
}

/// Whether boot is done (the ring works, other threads may exist).
pub fn booted() -> bool {
    BOOTED.load(Ordering::Acquire) == 2
}

/// Number of CPUs the host says it has (a hint, clamped).
pub fn host_cpus() -> u64 {
    host::boot_field(core::mem::offset_of!(BootBlock, ncpus)).clamp(1, 1024)
}

/// argv and environment for the program, per the manifest.
fn program_args(m: &ResolvedManifest) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    // Each string ends with a NUL; empty strings are real arguments.
    let split = |bytes: Vec<u8>| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = bytes.split(|&c| c == 0).map(|s| s.to_vec()).collect();
        if bytes.last() == Some(&0) || bytes.is_empty() {
            v.pop();
        }
        v
    };
    let argv = if m.use_cmdline_argv {
        let off = host::boot_field(core::mem::offset_of!(BootBlock, argv_off));
        let len = host::boot_field(core::mem::offset_of!(BootBlock, argv_len));
        let argc = host::boot_field(core::mem::offset_of!(BootBlock, argc)) as usize;
        let mut v = host::boot_bytes(off, len).map(split).unwrap_or_default();
        v.truncate(argc);
        v
    } else {
        m.argv.iter().map(|a| a.clone().into_bytes()).collect()
    };
    let argv = if argv.is_empty() {
        alloc::vec![m.entrypoint.clone().into_bytes()]
    } else {
        argv
    };
    let host_env = {
        let off = host::boot_field(core::mem::offset_of!(BootBlock, env_off));
        let len = host::boot_field(core::mem::offset_of!(BootBlock, env_len));
        host::boot_bytes(off, len).map(split).unwrap_or_default()
    };
    let mut env = Vec::new();
    for v in &m.env {
        match &v.value {
            EnvValue::Value(s) => {
                let mut e = v.name.clone().into_bytes();
                e.push(b'=');
                e.extend_from_slice(s.as_bytes());
                env.push(e);
            }
            EnvValue::Passthrough => {
                let prefix = alloc::format!("{}=", v.name);
                if let Some(e) = host_env.iter().find(|e| e.starts_with(prefix.as_bytes())) {
                    env.push(e.clone());
                }
            }
        }
    }
    (argv, env)
}

/// Bytes of the enclave heap the LibOS keeps for itself.
fn libos_heap_size(heap: u64) -> u64 {
    crate::util::align_down((heap / 8).clamp(64 << 20, 1 << 30).min(heap / 2), 1 << 20)
}

fn boot(ring_addr: u64) -> ! {
    if BOOTED
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        early_abort(AbortCode::BadImage);
    }
    // SAFETY: first entry of the first thread; nothing else runs.
    if !unsafe { crate::arch::reloc::relocate_self() } {
        early_abort(AbortCode::BadImage);
    }
    crate::arch::entry::init_xsave_mask();
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
    crate::arch::cpuid::start_trapping();

    let heap_lo = base + info.heap_offset;
    let heap_hi = heap_lo + info.heap_size;
    let libos_heap = libos_heap_size(info.heap_size);
    crate::heap().init(heap_hi - libos_heap, heap_hi);

    // SAFETY: the manifest pages are measured and read-only, and stay
    // for the enclave's life.
    let mbytes: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            (base + info.manifest_offset) as *const u8,
            info.manifest_len as usize,
        )
    };
    // Decoded in place: its trusted-file list (thousands of entries for
    // an interpreter's library) is read from the measured pages.
    let shared: conf_abi::manifest::SharedBytes = alloc::sync::Arc::new(mbytes);
    let manifest = match ResolvedManifest::decode_shared(&shared, 0..mbytes.len()) {
        Ok(m) => m,
        Err(e) => host::abort(
            AbortCode::BadImage,
            format_args!("measured manifest does not decode: {e}"),
        ),
    };
    host::set_mode(manifest.ocall_mode);
    let level = host::boot_field(core::mem::offset_of!(BootBlock, log_level));
    let level = LogLevel::from_raw(level as u8)
        .filter(|_| level <= 5)
        .unwrap_or(manifest.log_level);
    crate::log::set_level(level);
    ENCLAVE.set(Enclave {
        base,
        info,
        manifest,
    });
    BOOTED.store(2, Ordering::Release);
    let m = &enclave().manifest;

    #[cfg(feature = "selftest-raw-syscall")]
    {
        // Test build only: break the boundary rule on purpose, to prove the
        // backend catches a LibOS that makes its own system call.
        // SAFETY: getpid has no effect; the point is that it must never run.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") 39u64 => _, out("rcx") _, out("r11") _, options(nostack))
        };
    }
    if let Err(e) = crate::fs::policy::init(m) {
        host::abort(AbortCode::BootFailed, format_args!("{e}"));
    }
    let prog_hi = heap_hi - libos_heap - (1 << 20);
    crate::process::set_stack_top(prog_hi);

    // A child process (the boot block says so): its state comes from the
    // parent over the channel the host hands over (`ChildStart`).
    let chan = host::boot_field(core::mem::offset_of!(BootBlock, chan_fd));
    if chan != u64::MAX {
        let regs = crate::process::fork::child_boot(m.stack_size, m.brk_max_size, |pid, ppid| {
            let mm = crate::mm::Mm::new(heap_lo, prog_hi, info.enclave_size);
            let mut p = crate::process::Process::new(pid, mm, String::from("/"), m.stack_size);
            p.ppid = ppid;
            crate::process::init(p);
            crate::process::threads::init_main(pid);
            crate::process::process()
        });
        match regs {
            Ok(r) => {
                tls().user = r;
                crate::entry::return_to_program()
            }
            Err(e) => host::abort(
                AbortCode::BootFailed,
                format_args!(
                    "a child process could not receive its parent's state: {}",
                    e.description()
                ),
            ),
        }
    }

    let mm = crate::mm::Mm::new(heap_lo, prog_hi, info.enclave_size);
    let proc = crate::process::Process::new(1, mm, m.start_dir.clone(), m.stack_size);
    crate::process::init(proc);
    let proc = crate::process::process();
    {
        use crate::fs::{host::HostFile, oflags, OpenFile};
        let mut files = proc.files.lock();
        for (fd, mode) in [
            (0, oflags::O_RDONLY),
            (1, oflags::O_WRONLY),
            (2, oflags::O_WRONLY),
        ] {
            let f = OpenFile::new(
                alloc::sync::Arc::new(HostFile::std_stream(fd)),
                mode,
                alloc::format!("/dev/pts/{fd}"),
            );
            let _ = files.insert(f, false, fd as usize);
        }
    }
    crate::process::threads::init_main(proc.pid);
    debug!(
        "booted: enclave {} MiB, program area {:#x}-{:#x}, {} thread slots",
        info.enclave_size >> 20,
        heap_lo,
        prog_hi,
        info.nslots
    );

    // The chunks the last start of this program loaded, verified on a
    // second thread while this one starts it.
    crate::fs::prefetch::start();
    let (argv, env) = program_args(m);
    let regs = match crate::process::exec::load(
        proc,
        m.entrypoint.as_bytes(),
        argv,
        env,
        m.stack_size,
        m.brk_max_size,
    ) {
        Ok(r) => r,
        Err(e) => host::abort(
            AbortCode::BootFailed,
            format_args!("cannot start {}: {}", m.entrypoint, e.message),
        ),
    };
    let t = tls();
    t.user = regs;
    crate::entry::return_to_program()
}
