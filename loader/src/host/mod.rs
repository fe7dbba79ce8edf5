//! The host side of OCALLs: the ring, the allow-listed operations, and the
//! workers that run them without the enclave thread leaving (exitless).
//!
//! The host trusts nothing the enclave sends either: every offset and length
//! is checked against the slot's data area, every fd against the set the
//! enclave was given, every address against the enclave heap.

pub mod hints;
pub mod hostile;
pub mod lazy_fill;
pub mod ocall_times;
pub mod ops;
pub mod process;
pub mod ring;
pub mod workers;
pub mod zygote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use conf_abi::ocall::{state, Ocall, MAX_HOST_FD};
use conf_abi::trusted::Digest32;

pub use ring::Ring;

/// Where chunk digests of trusted files come from (the resolver's index).
pub type ChunkLookup = Box<dyn Fn(&str) -> Option<Arc<[Digest32]>> + Send + Sync>;

/// Starts a host thread for an enclave thread slot.
pub type Spawner = Box<dyn Fn(u64) -> std::io::Result<()> + Send + Sync>;

/// A set of host fds, one bit each.
pub struct FdSet {
    bits: Vec<AtomicU64>,
}

impl FdSet {
    fn new() -> FdSet {
        FdSet {
            bits: (0..(MAX_HOST_FD as usize).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
    pub fn insert(&self, fd: i32) {
        if (0..MAX_HOST_FD as i32).contains(&fd) {
            self.bits[fd as usize / 64].fetch_or(1 << (fd % 64), Ordering::SeqCst);
        }
    }
    pub fn remove(&self, fd: i32) {
        if (0..MAX_HOST_FD as i32).contains(&fd) {
            self.bits[fd as usize / 64].fetch_and(!(1 << (fd % 64)), Ordering::SeqCst);
        }
    }
    pub fn contains(&self, fd: i64) -> bool {
        (0..MAX_HOST_FD).contains(&fd)
            && self.bits[fd as usize / 64].load(Ordering::SeqCst) & (1 << (fd % 64)) != 0
    }
}

pub struct Host {
    pub ring: Ring,
    /// The enclave heap: the only pages the enclave may ask to re-protect.
    pub heap_lo: u64,
    pub heap_hi: u64,
    pub chunks: ChunkLookup,
    /// Host path of each fd the enclave opened (to serve chunk digests).
    fd_paths: Mutex<HashMap<i32, PathBuf>>,
    /// Host fds the enclave may use: its std streams and what it opened.
    pub fds: FdSet,
    pub hostile: Option<hostile::Hostile>,
    pub spawner: OnceLock<Spawner>,
    /// Print every OCALL and its result (CONF_TRACE_OCALLS=1; debugging).
    pub trace_ocalls: bool,
    /// Host time per OCALL kind, reported at exit (CONF_TIMING=1).
    pub ocall_times: Option<Box<ocall_times::OcallTimes>>,
    /// The OS thread running each slot, for kicks.
    threads: Mutex<Vec<Option<libc::pthread_t>>>,
    /// Per slot: a kick arrived while the thread was not blocked on the
    /// host; its next blocking call returns EINTR at once.
    kicked: Vec<std::sync::atomic::AtomicBool>,
    alarm: Arc<(Mutex<u64>, std::sync::Condvar)>,
    /// How to start a child process for this enclave.
    pub child_spec: OnceLock<process::ChildSpec>,
    /// The program's live processes, against sys.max_processes.
    pub processes: OnceLock<process::ProcessCount>,
    /// For a child process: where its channel and fds come from (taken by
    /// the LibOS's `ChildStart`).
    pub child_start: Mutex<Option<process::StartFrom>>,
    /// A child conf-run started ahead of need, for the next process.
    pub warm: Arc<Mutex<Option<process::Warm>>>,
    /// A thread is starting the next such child.
    pub warm_starting: Arc<std::sync::atomic::AtomicBool>,
    /// The conf-run that clones those children from itself, once started.
    pub zygote: Arc<Mutex<zygote::ZygoteState>>,
    /// /proc/self/mem, opened on first use (FillPages).
    self_mem: OnceLock<i32>,
    /// The userfaultfd behind `LazyPages`, opened on first use; None where
    /// it cannot be (the LibOS then keeps unfilled pages inaccessible).
    lazy_fill: OnceLock<Option<lazy_fill::LazyFill>>,
    /// The sim sealing key of this enclave (computed on first use).
    /// How to compute this enclave's MRENCLAVE (hashing its measured
    /// pages, ~1 ms), done once and only if a process is started.
    pub measure: OnceLock<Box<dyn Fn() -> [u8; 32] + Send + Sync>>,
    /// MRENCLAVE, once computed — or as the parent process gave it.
    pub mrenclave_value: OnceLock<[u8; 32]>,
    seal_key_value: OnceLock<[u8; 32]>,
    /// Child processes started for this enclave (host pids).
    pub children: Mutex<std::collections::HashSet<u32>>,
    /// For the children that report their exit status ahead of their end
    /// (`process::report_exit`): pid → the read end of that pipe.
    pub exit_reports: Mutex<HashMap<u32, i32>>,
    /// Children whose reported status the program has had, not reaped yet.
    pub unreaped: Mutex<Vec<u32>>,
    /// Shared (MAP_SHARED) host mappings the program uses: id → (address, length).
    pub shared_maps: Mutex<HashMap<u64, (u64, u64)>>,
    pub next_map_id: AtomicU64,
    /// Trusted files used from a snapshot without a check: checked as the
    /// program opens them.
    pub unchecked: OnceLock<Arc<conf_manifest::Unchecked>>,
    /// Names the program's fill hints (see `hints.rs`).
    pub hints_key: OnceLock<String>,
}

/// The host signal that interrupts an enclave thread (never shown to the
/// program: its own signals are the LibOS's business).
pub const SIG_KICK: i32 = 40;

impl Host {
    /// The fd of /proc/self/mem (opened once), or -errno.
    pub fn self_mem(&self) -> Result<i32, (i64, u64)> {
        if let Some(&fd) = self.self_mem.get() {
            return Ok(fd);
        }
        // SAFETY: opening a path with a NUL-terminated literal.
        let fd = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err((
                -(std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO) as i64),
                0,
            ));
        }
        match self.self_mem.set(fd) {
            Ok(()) => Ok(fd),
            Err(_) => {
                // SAFETY: our own fd; another thread opened it first.
                unsafe { libc::close(fd) };
                Ok(*self.self_mem.get().unwrap())
            }
        }
    }

    /// This process's userfaultfd for `LazyPages`, if it has one.
    pub fn lazy_fill(&self) -> Option<&lazy_fill::LazyFill> {
        self.lazy_fill
            .get_or_init(|| lazy_fill::LazyFill::open().ok())
            .as_ref()
    }

    pub fn new(
        ring: Ring,
        heap_lo: u64,
        heap_hi: u64,
        chunks: ChunkLookup,
        hostile: Option<hostile::Hostile>,
    ) -> Host {
        let nslots = ring.layout.nslots as usize;
        let mut h = Host::new_inner(ring, heap_lo, heap_hi, chunks, hostile);
        h.kicked = (0..nslots)
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect();
        *h.threads.lock().unwrap() = vec![None; nslots];
        h
    }

    fn new_inner(
        ring: Ring,
        heap_lo: u64,
        heap_hi: u64,
        chunks: ChunkLookup,
        hostile: Option<hostile::Hostile>,
    ) -> Host {
        let fds = FdSet::new();
        for fd in 0..3 {
            fds.insert(fd);
        }
        Host {
            ring,
            heap_lo,
            heap_hi,
            chunks,
            fd_paths: Mutex::new(HashMap::new()),
            fds,
            hostile,
            spawner: OnceLock::new(),
            trace_ocalls: std::env::var_os("CONF_TRACE_OCALLS").is_some(),
            ocall_times: std::env::var_os("CONF_TIMING").map(|_| Box::default()),
            threads: Mutex::new(Vec::new()),
            kicked: Vec::new(),
            alarm: Arc::new((Mutex::new(0), std::sync::Condvar::new())),
            child_spec: OnceLock::new(),
            processes: OnceLock::new(),
            child_start: Mutex::new(None),
            warm: Arc::new(Mutex::new(None)),
            warm_starting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            zygote: Arc::new(Mutex::new(zygote::ZygoteState::default())),
            self_mem: OnceLock::new(),
            lazy_fill: OnceLock::new(),
            measure: OnceLock::new(),
            mrenclave_value: OnceLock::new(),
            seal_key_value: OnceLock::new(),
            children: Mutex::new(std::collections::HashSet::new()),
            exit_reports: Mutex::new(HashMap::new()),
            unreaped: Mutex::new(Vec::new()),
            shared_maps: Mutex::new(HashMap::new()),
            next_map_id: AtomicU64::new(1),
            unchecked: OnceLock::new(),
            hints_key: OnceLock::new(),
        }
    }

    /// This enclave's MRENCLAVE (sim: what EGETKEY derives keys from).
    pub fn mrenclave(&self) -> Option<[u8; 32]> {
        if let Some(m) = self.mrenclave_value.get() {
            return Some(*m);
        }
        let m = (self.measure.get()?)();
        let _ = self.mrenclave_value.set(m);
        Some(m)
    }

    /// The sealing key of this enclave (sim emulation of EGETKEY).
    pub fn seal_key(&self) -> Option<[u8; 32]> {
        if let Some(k) = self.seal_key_value.get() {
            return Some(*k);
        }
        let k = process::sim_seal_key(&self.mrenclave()?);
        let _ = self.seal_key_value.set(k);
        Some(k)
    }

    /// Record which OS thread runs `slot` (None when it has left).
    pub fn set_slot_thread(&self, slot: u64, t: Option<libc::pthread_t>) {
        if let Some(e) = self.threads.lock().unwrap().get_mut(slot as usize) {
            *e = t;
        }
    }

    /// Interrupt the thread running `slot`: wake it from ThreadSleep, and
    /// signal it so a blocking host call returns EINTR and program code is
    /// interrupted for the LibOS.
    pub fn kick(&self, slot: u64) {
        let s = self.ring.slot(slot);
        s.wake_seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(&s.wake_seq);
        if let Some(k) = self.kicked.get(slot as usize) {
            k.store(true, Ordering::SeqCst);
        }
        let t = self
            .threads
            .lock()
            .unwrap()
            .get(slot as usize)
            .copied()
            .flatten();
        if let Some(t) = t {
            // SAFETY: t is a live thread of this process (cleared before exit).
            unsafe { libc::pthread_kill(t, SIG_KICK) };
        }
    }

    /// Run a blocking host call for `slot`, returning EINTR at once if a
    /// kick came since the last one (so a kick just before the call is not
    /// lost).
    pub fn blocking<T: From<i8> + PartialOrd>(&self, slot: u64, f: impl FnOnce() -> T) -> T {
        if let Some(k) = self.kicked.get(slot as usize) {
            if k.swap(false, Ordering::SeqCst) {
                // SAFETY: sets errno for the caller's error path.
                unsafe { *libc::__errno_location() = libc::EINTR };
                return T::from(-1);
            }
        }
        f()
    }

    /// Kick some enclave thread at monotonic time `deadline_ns` (0 cancels).
    pub fn set_alarm(self: &Host, deadline_ns: u64) {
        let (m, cv) = &*self.alarm;
        *m.lock().unwrap() = deadline_ns;
        cv.notify_all();
    }

    /// The host thread that fires alarms.
    pub fn start_alarm_thread(self: &Arc<Host>) -> std::io::Result<()> {
        let h = self.clone();
        crate::sim::signals::spawn_blocked(
            std::thread::Builder::new().name("conf-alarm".into()),
            move || {
                let (m, cv) = &*h.alarm;
                let mut g = m.lock().unwrap();
                loop {
                    let deadline = *g;
                    if deadline == 0 {
                        g = cv.wait(g).unwrap();
                        continue;
                    }
                    let now = monotonic_ns();
                    if now < deadline {
                        g = cv
                            .wait_timeout(g, std::time::Duration::from_nanos(deadline - now))
                            .unwrap()
                            .0;
                        continue;
                    }
                    *g = 0;
                    drop(g);
                    h.ring.header().alarm_fired.store(1, Ordering::SeqCst);
                    let first = h.threads.lock().unwrap().iter().position(|t| t.is_some());
                    if let Some(slot) = first {
                        h.kick(slot as u64);
                    }
                    g = m.lock().unwrap();
                }
            },
        )?;
        Ok(())
    }

    pub(crate) fn remember_path(&self, fd: i32, path: PathBuf) {
        self.fd_paths.lock().unwrap().insert(fd, path);
    }

    pub(crate) fn forget_path(&self, fd: i32) {
        self.fd_paths.lock().unwrap().remove(&fd);
    }

    pub(crate) fn path_of(&self, fd: i32) -> Option<PathBuf> {
        self.fd_paths.lock().unwrap().get(&fd).cloned()
    }

    /// Run the request posted in `slot` for workers, if it is still
    /// waiting. Returns false if someone else has taken it.
    pub fn serve(&self, slot: u64) -> bool {
        self.serve_posted(slot, state::POSTED)
    }

    /// Run the request the enclave thread of `slot` exited for (posted for
    /// this host thread only).
    pub fn serve_inline(&self, slot: u64) -> bool {
        self.serve_posted(slot, state::POSTED_INLINE)
    }

    fn serve_posted(&self, slot: u64, posted: u32) -> bool {
        let s = self.ring.slot(slot);
        if s.state
            .compare_exchange(posted, state::TAKEN, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        let nr = s.nr.load(Ordering::Relaxed);
        let args: [u64; 6] = std::array::from_fn(|i| s.args[i].load(Ordering::Relaxed));
        let started = self.ocall_times.as_ref().map(|_| std::time::Instant::now());
        let (mut ret, mut aux): (i64, u64) = match Ocall::from_raw(nr) {
            Some(op) => ops::execute(self, slot, op, args),
            None => (-(libc::ENOSYS as i64), 0),
        };
        if let (Some(t), Some(since)) = (&self.ocall_times, started) {
            t.record(nr, since);
        }
        if self.trace_ocalls {
            eprintln!(
                "[conf-host] slot {slot} {:?}({:#x?}) = {ret} aux {aux:#x}",
                Ocall::from_raw(nr),
                &args[..4]
            );
        }
        let mut final_state = state::DONE;
        if let Some(h) = &self.hostile {
            h.corrupt(
                nr,
                &args,
                &mut ret,
                &mut aux,
                &mut final_state,
                self.ring.data(slot),
            );
        }
        s.ret.store(ret, Ordering::Relaxed);
        s.aux.store(aux, Ordering::Relaxed);
        s.state.store(final_state, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst) != 0 {
            futex_wake(&s.state);
        }
        true
    }

    /// The enclave thread of `slot` exited to wait for an exitless request:
    /// run it here if no worker took it, else sleep until it is done.
    pub fn wait_or_steal(&self, slot: u64) {
        if self.serve(slot) {
            workers::poke(self);
            return;
        }
        let s = self.ring.slot(slot);
        s.sleeping.store(1, Ordering::SeqCst);
        loop {
            let st = s.state.load(Ordering::SeqCst);
            if st != state::TAKEN {
                break;
            }
            futex_wait(&s.state, st, None);
        }
        s.sleeping.store(0, Ordering::SeqCst);
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// futex(FUTEX_WAIT) on a shared word.
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<libc::timespec>,
) -> i64 {
    let ts = timeout
        .as_ref()
        .map(|t| t as *const _)
        .unwrap_or(std::ptr::null());
    // SAFETY: futex on a valid, aligned u32.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts,
            0,
            0,
        )
    };
    if r < 0 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL) as i64)
    } else {
        r
    }
}

/// futex(FUTEX_WAKE) all waiters on a shared word.
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: futex on a valid, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0,
            0,
            0,
        )
    };
}
