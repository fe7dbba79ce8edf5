//! One run of a program in an enclave: create the enclave, connect the ring,
//! enter on the first thread slot, serve OCALLs until the program exits.

use std::sync::Arc;

use conf_abi::entry::{AbortCode, EnterReason, ExitReason};
use conf_abi::manifest::{LogLevel, OcallMode};
use conf_abi::ocall::BACKEND_SIM;

use crate::host::process::{ChildSpec, ProcessCount};
use crate::host::{hostile, ring::BootInfo, ChunkLookup, Host, Ring};
use crate::image::EnclaveLayout;
use crate::sim::{self, gate, signals, thread::SimThread, SimEnclave};

/// Which enclave implementation runs the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Emulated enclave in this process (any Linux x86-64 ≥ 5.11).
    Sim,
    /// Intel SGX through the Linux driver (/dev/sgx_enclave).
    Sgx,
}

pub struct RunOptions {
    pub backend: Backend,
    /// Command-line argv, passed to the enclave (used only where the
    /// manifest allows).
    pub argv: Vec<Vec<u8>>,
    /// `NAME=value` of host variables the manifest passes through.
    pub env: Vec<Vec<u8>>,
    pub log_level: Option<LogLevel>,
    pub hostile: Option<(hostile::Mode, u64)>,
    pub ocall_mode: OcallMode,
    pub ocall_workers: u32,
    /// Host directory shown as `/` in the enclave.
    pub root: Vec<u8>,
    /// This run is a child process of another enclave process.
    pub child: Option<ChildRun>,
    /// What a child of this enclave needs (set for every run).
    pub child_spec: crate::host::process::ChildSpec,
    /// `sys.max_processes`.
    pub max_processes: u32,
    /// Trusted files the start did not check.
    pub unchecked: std::sync::Arc<conf_manifest::Unchecked>,
    /// What the fill hints of this program are kept under
    /// ([`conf_manifest::Resolution::files_key`]); without it, the
    /// manifest's bytes.
    pub hints_key: Option<String>,
}

/// A child process: where its state comes from.
pub struct ChildRun {
    /// Where the state channel and the inherited host fds come from.
    pub start: crate::host::process::StartFrom,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the sgx backend needs /dev/sgx_enclave, which this machine does not have (no SGX, or the Linux SGX driver is not loaded); use --backend sim to run in the emulated enclave")]
    NoSgxDevice,
    #[error("the sgx backend is not implemented yet; use --backend sim")]
    SgxNotImplemented,
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error("could not set up the OCALL ring: {0}")]
    Ring(std::io::Error),
    #[error("{0}")]
    Boot(String),
}

/// Exit status of conf-run for a Linux wait status, as a shell reports it.
pub fn exit_code_of(wait_status: u64) -> i32 {
    let sig = (wait_status & 0x7f) as i32;
    if sig != 0 {
        128 + sig
    } else {
        ((wait_status >> 8) & 0xff) as i32
    }
}

/// This conf-run is a child enclave process: its parent enclave reads its
/// wait status, which must say "killed by signal N" when the program was.
static AS_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Is this conf-run a child process of a program (not the run's first)?
pub fn is_child() -> bool {
    AS_CHILD.load(std::sync::atomic::Ordering::Relaxed)
}

/// If `wait_status` is a death by signal, die of that signal (no core
/// file: it would hold the whole enclave range). Returns otherwise.
fn die_like(wait_status: u64) {
    let sig = (wait_status & 0x7f) as i32;
    if sig == 0 || sig == 0x7f {
        return;
    }
    // SAFETY: plain process-wide calls; this thread is about to end the process.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
}

/// How an enclave thread's host loop ended.
enum ThreadEnd {
    Thread,
    Process(u64),
    Abort(u64),
}

fn thread_loop(
    host: &Host,
    sim: *mut SimThread,
    slot: u64,
    first: EnterReason,
    arg: u64,
) -> ThreadEnd {
    let (mut reason, mut a1) = (first as u64, arg);
    loop {
        // SAFETY: `sim` is this thread's attached SimThread; the enclave is loaded.
        let regs = unsafe { gate::conf_sim_eenter(sim, reason, a1, 0) };
        match ExitReason::from_raw(regs.reason) {
            Some(ExitReason::Ocall) => {
                if !host.serve_inline(slot) {
                    // Not posted for us: let the enclave's own checks decide.
                }
            }
            Some(ExitReason::WaitOcall) => host.wait_or_steal(slot),
            Some(ExitReason::ExitThread) => return ThreadEnd::Thread,
            Some(ExitReason::ExitProcess) => return ThreadEnd::Process(regs.arg),
            Some(ExitReason::Abort) => return ThreadEnd::Abort(regs.arg),
            Some(ExitReason::Resume) | None => return ThreadEnd::Abort(AbortCode::BadImage as u64),
        }
        reason = EnterReason::OcallReturn as u64;
        a1 = 0;
    }
}

/// Report how the enclave ended and leave the process with the right status.
fn finish(host: &Host, end: ThreadEnd) -> i32 {
    if let Some(t) = &host.ocall_times {
        eprint!("{}", t.report());
    }
    // The first process owns the run's socket directory.
    if !is_child() {
        if let Some(count) = host.processes.get() {
            count.socket_dir().remove();
        }
    }
    match end {
        ThreadEnd::Process(status) => {
            if is_child() {
                crate::host::process::report_exit(status);
                die_like(status);
                // Nothing of this process is needed any more: no destructors.
                // SAFETY: ends the process.
                unsafe { libc::_exit(exit_code_of(status)) };
            }
            // This thread runs no enclave code again: signals from now on
            // (children exiting) go to the enclave's other threads, if any.
            signals::block_all();
            exit_code_of(status)
        }
        ThreadEnd::Thread => 0,
        ThreadEnd::Abort(code) => {
            let msg = host.ring.abort_message();
            let what = match AbortCode::from_raw(code) {
                Some(AbortCode::Panic) => "the LibOS hit a bug",
                Some(AbortCode::HostileHost) => "the host broke the OCALL contract",
                Some(AbortCode::LibosSyscall) => "the LibOS made a raw system call",
                Some(AbortCode::LibosFault) => "the LibOS faulted",
                Some(AbortCode::BadImage) => "the enclave image or entry was invalid",
                Some(AbortCode::BootFailed) => "the program could not be started",
                None => "unknown reason",
            };
            if msg.is_empty() {
                eprintln!("[conf] error: the enclave stopped: {what}");
            } else {
                eprintln!("[conf] error: the enclave stopped: {msg}");
            }
            if code == AbortCode::BootFailed as u64 {
                crate::exit::ExitCode::CannotRun as i32
            } else {
                crate::exit::ExitCode::SetupFailed as i32
            }
        }
    }
}

fn tty_mask() -> u64 {
    (0..3)
        .filter(|&fd| unsafe { libc::isatty(fd) } == 1)
        .fold(0, |m, fd| m | 1 << fd)
}

/// Run the enclave described by `layout` to completion; returns conf-run's
/// exit status. Other threads are stopped by the process exit.
///
/// `layout` is shared, not copied: its pages (the LibOS, the manifest) are
/// megabytes, and the sealing key needs them again only if the program
/// forks.
pub fn run(
    layout: Arc<EnclaveLayout>,
    chunks: ChunkLookup,
    opts: RunOptions,
) -> Result<i32, RunError> {
    if opts.backend == Backend::Sgx {
        if !std::path::Path::new("/dev/sgx_enclave").exists() {
            return Err(RunError::NoSgxDevice);
        }
        return Err(RunError::SgxNotImplemented);
    }
    AS_CHILD.store(opts.child.is_some(), std::sync::atomic::Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    let enclave = SimEnclave::create(&layout)?;
    crate::cli::timing("create enclave", t0);
    crate::libos::write_perf_map(enclave.base + layout.info.libos_offset);
    let nslots = layout.info.nslots as u64;
    let ring = Ring::new(nslots).map_err(RunError::Ring)?;
    ring.write_boot(&BootInfo {
        backend: BACKEND_SIM,
        argv: &opts.argv,
        env: &opts.env,
        log_level: opts.log_level.map(|l| l as u8),
        tty_mask: tty_mask(),
        root: &opts.root,
        chan_fd: opts.child.as_ref().map(|_| 0),
    })
    .map_err(RunError::Boot)?;
    let ring_base = ring.base;
    let hostile = opts.hostile.map(|(m, seed)| hostile::Hostile::new(m, seed));
    let heap_lo = enclave.base + layout.info.heap_offset;
    let heap_hi = heap_lo + layout.info.heap_size;
    let host = Arc::new(Host::new(ring, heap_lo, heap_hi, chunks, hostile));
    let is_child = opts.child.is_some();
    if let Some(c) = opts.child {
        *host.child_start.lock().unwrap() = Some(c.start);
    }
    // The first process counts the program's processes; children share
    // the count their parent passed.
    let count = if is_child {
        ProcessCount::inherit(opts.child_spec.count_fd, opts.max_processes)
    } else {
        ProcessCount::new(opts.max_processes)
    }
    .map_err(RunError::Ring)?;
    let _ = host.child_spec.set(ChildSpec {
        count_fd: count.fd(),
        ..opts.child_spec.clone()
    });
    let _ = host.processes.set(count);
    if !opts.unchecked.is_empty() {
        let _ = host.unchecked.set(opts.unchecked.clone());
    }
    if let Some(k) = &opts.hints_key {
        let _ = host.hints_key.set(k.clone());
    }
    let key_layout = layout.clone();
    let _ = host.measure.set(Box::new(move || key_layout.mrenclave()));
    // A child of the same enclave: the parent measured it already (sim
    // emulates EGETKEY on the host, which protects nothing anyway).
    if let Some(m) = opts.child_spec.mrenclave {
        let _ = host.mrenclave_value.set(m);
    }
    let _ = signals::GLOBALS.set(signals::SimGlobals {
        enclave_lo: enclave.base,
        enclave_hi: enclave.base + enclave.size,
        libos_lo: enclave.base + layout.info.libos_offset,
        libos_hi: enclave.base + layout.info.libos_offset + layout.info.libos_size,
        ring: ring_base as *const _,
    });

    let slot_addrs = {
        let base = enclave.base;
        let l = Arc::clone(&layout);
        move |slot: u64| {
            (
                base + l.tcs_offset(slot),
                base + l.tls_offset(slot),
                base + l.entry_offset,
                base + l.ssa_offset(slot),
            )
        }
    };
    let spawn_host = host.clone();
    let spawn_addrs = slot_addrs.clone();
    // A slot's previous OS thread must have left it (EEXIT done) before a
    // new one enters: SGX refuses EENTER on a busy TCS, the sim must too.
    let busy: Arc<Vec<std::sync::atomic::AtomicBool>> = Arc::new(
        (0..nslots)
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect(),
    );
    let _ = host.spawner.set(Box::new(move |slot| {
        let h = spawn_host.clone();
        let busy = busy.clone();
        while busy[slot as usize].load(std::sync::atomic::Ordering::Acquire) {
            std::thread::yield_now();
        }
        busy[slot as usize].store(true, std::sync::atomic::Ordering::Release);
        let (tcs, tls, oentry, ssa) = spawn_addrs(slot);
        // The new thread starts with every signal blocked and unblocks them
        // once its alternate stack is in place.
        let busy_on_error = busy.clone();
        let builder = std::thread::Builder::new()
            .name(format!("conf-slot-{slot}"))
            .stack_size(256 * 1024);
        let spawned = sim::signals::spawn_blocked(builder, move || {
            let sim = match sim::thread::attach_current(slot, tcs, tls, oentry, ssa) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("[conf] error: could not start enclave thread {slot}: {e}");
                    std::process::exit(crate::exit::ExitCode::SetupFailed as i32);
                }
            };
            // Enclave threads take every signal the sim handles, whatever
            // the mask of the thread that created them (often a worker, with
            // all signals blocked).
            // SAFETY: sets this thread's signal mask.
            unsafe {
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            }
            // SAFETY: pthread_self has no preconditions.
            h.set_slot_thread(slot, Some(unsafe { libc::pthread_self() }));
            let end = thread_loop(&h, sim, slot, EnterReason::ThreadStart, 0);
            h.set_slot_thread(slot, None);
            if matches!(end, ThreadEnd::Thread) {
                sim::thread::detach_current();
            }
            busy[slot as usize].store(false, std::sync::atomic::Ordering::Release);
            match end {
                ThreadEnd::Thread => {}
                end => std::process::exit(finish(&h, end)),
            }
        });
        if spawned.is_err() {
            busy_on_error[slot as usize].store(false, std::sync::atomic::Ordering::Release);
        }
        spawned.map(|_| ())
    }));

    if opts.ocall_mode != OcallMode::Exit && opts.ocall_workers > 0 {
        crate::host::workers::start(host.clone(), opts.ocall_workers).map_err(RunError::Ring)?;
    }
    let (tcs, tls, oentry, ssa) = slot_addrs(0);
    host.start_alarm_thread().map_err(RunError::Ring)?;
    let sim = sim::thread::attach_current(0, tcs, tls, oentry, ssa)
        .map_err(|e| RunError::Sim(sim::SimError::Setup(e)))?;
    signals::install().map_err(|e| RunError::Sim(sim::SimError::Setup(e)))?;
    // SAFETY: pthread_self has no preconditions.
    host.set_slot_thread(0, Some(unsafe { libc::pthread_self() }));
    let end = thread_loop(&host, sim, 0, EnterReason::Boot, ring_base);
    Ok(finish(&host, end))
}
