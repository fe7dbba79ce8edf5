//! The OCALL ring: untrusted shared memory outside ELRANGE through which the
//! LibOS asks the host to do what it cannot do itself.
//!
//! Layout (from the ring base, see [`RingLayout`]): one header page, the boot
//! block, one [`OcallSlot`] per thread slot, then one data area of
//! [`SLOT_DATA_SIZE`] bytes per thread slot. The number of slots comes from
//! the measured enclave info, never from the host, so both sides compute the
//! same layout and the host cannot move anything.
//!
//! A request carries a call number ([`Ocall`]), six scalar arguments and
//! *offsets into its own data area* — never host or enclave pointers. The
//! host checks that every offset and length stays inside the data area; the
//! LibOS checks every reply (see `libos/src/host/`), and treats a reply that
//! cannot be true as an attack.

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

use crate::layout::PAGE_SIZE;

/// Magic value at the start of the ring header.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"CONFRING");
/// Bytes of data area each thread slot owns.
pub const SLOT_DATA_SIZE: u64 = 256 * 1024;
/// Bytes reserved for the boot block (argv, env passthrough, abort message).
pub const BOOT_BLOCK_SIZE: u64 = 256 * 1024;
/// Largest host file descriptor the LibOS accepts from a reply.
pub const MAX_HOST_FD: i64 = 1 << 20;

/// Request states, in [`OcallSlot::state`].
pub mod state {
    pub const FREE: u32 = 0;
    /// The enclave wrote a request; a worker may take it.
    pub const POSTED: u32 = 1;
    /// A worker is running it.
    pub const TAKEN: u32 = 2;
    /// The result is in `ret`/`aux` (and the data area).
    pub const DONE: u32 = 3;
    /// The enclave wrote a request and exits for the host to run it on the
    /// same thread; workers leave it alone.
    pub const POSTED_INLINE: u32 = 4;
}

/// Where each part of the ring lives, relative to the ring base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    pub nslots: u64,
    pub boot_offset: u64,
    pub slots_offset: u64,
    pub data_offset: u64,
    pub total_size: u64,
}

impl RingLayout {
    pub const fn new(nslots: u64) -> RingLayout {
        let boot_offset = PAGE_SIZE;
        let slots_offset = boot_offset + BOOT_BLOCK_SIZE;
        let slots_bytes = nslots * core::mem::size_of::<OcallSlot>() as u64;
        let data_offset = (slots_offset + slots_bytes).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        RingLayout {
            nslots,
            boot_offset,
            slots_offset,
            data_offset,
            total_size: data_offset + nslots * SLOT_DATA_SIZE,
        }
    }

    pub const fn slot_offset(&self, slot: u64) -> u64 {
        self.slots_offset + slot * core::mem::size_of::<OcallSlot>() as u64
    }

    pub const fn data_area_offset(&self, slot: u64) -> u64 {
        self.data_offset + slot * SLOT_DATA_SIZE
    }
}

/// The first bytes of the ring.
#[repr(C)]
pub struct RingHeader {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub nslots: AtomicU32,
    /// Number of host workers currently parked (asleep); the enclave exits to
    /// wake one when it posts while all are parked.
    pub parked_workers: AtomicU32,
    pub _pad: AtomicU32,
    /// Futex word the parked workers sleep on.
    pub worker_wake: AtomicU32,
    pub _pad1: AtomicU32,
    /// Bit n-1 set: the host received signal n for the enclave (a hint; the
    /// LibOS decides what it means). Cleared by the LibOS as it takes them.
    pub pending_signals: AtomicU64,
    /// Set by the host when the time asked for with `Alarm` has come.
    pub alarm_fired: AtomicU64,
}

/// One thread slot's request. Everything here is shared with the host and
/// may change under the enclave's feet: the LibOS reads each field once.
#[repr(C, align(64))]
pub struct OcallSlot {
    pub state: AtomicU32,
    /// 1 while the enclave thread sleeps on `state` (exited with `WaitOcall`).
    pub sleeping: AtomicU32,
    pub nr: AtomicU32,
    /// Counter the host increments to wake this thread from `ThreadSleep`.
    pub wake_seq: AtomicU32,
    pub args: [AtomicU64; 6],
    pub ret: AtomicI64,
    pub aux: AtomicU64,
    /// Bit n-1 set: the host saw signal n for the enclave (a hint).
    pub signals: AtomicU64,
}

/// The boot block, filled by the host before the first EENTER. Untrusted: the
/// LibOS uses the host-supplied argv and environment only where the manifest
/// allows it.
#[repr(C)]
pub struct BootBlock {
    pub magic: u64,
    /// [`BACKEND_SIM`] or [`BACKEND_SGX`]. Under sim, EEXIT is a jump to the
    /// host's exit address; a host that lies about it only stops the enclave.
    pub backend: u64,
    /// Host process id (for logs only).
    pub host_pid: u64,
    /// Log level the command line asked for, or u64::MAX for the manifest's.
    pub log_level: u64,
    /// NUL-separated command-line arguments, at `data[argv_off..argv_off+argv_len]`
    /// relative to the boot block.
    pub argv_off: u64,
    pub argv_len: u64,
    pub argc: u64,
    /// NUL-separated `NAME=value` strings of the host environment for
    /// passthrough variables.
    pub env_off: u64,
    pub env_len: u64,
    /// Bit n set: host fd n (0..2) is a terminal.
    pub tty_mask: u64,
    /// Number of CPUs the host offers (a hint for sched_getaffinity).
    pub ncpus: u64,
    /// Host-side resolution of the current time at boot, ns since the epoch.
    pub realtime_ns: u64,
    /// Where the LibOS writes an abort message (offset/len in the boot block).
    pub abort_msg_off: u64,
    pub abort_msg_cap: u64,
    /// Host directory shown as `/` (offset/len in the boot block). Not
    /// measured: where the files are is the host's business, what they
    /// contain is checked against the manifest.
    pub root_off: u64,
    pub root_len: u64,
    /// u64::MAX for the first process of a program; anything else marks a
    /// child process, which asks for its state channel with `ChildStart`.
    pub chan_fd: u64,
}

pub const BACKEND_SIM: u64 = 1;
pub const BACKEND_SGX: u64 = 2;

/// Magic of the [`BootBlock`].
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"CONFBOOT");

macro_rules! ocalls {
    ($($(#[$doc:meta])* $name:ident = $num:literal,)*) => {
        /// The host operations the LibOS may ask for. The host runs only these;
        /// an unknown number is refused with ENOSYS.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Ocall { $($(#[$doc])* $name = $num,)* }

        impl Ocall {
            pub fn from_raw(raw: u32) -> Option<Ocall> {
                match raw { $($num => Some(Ocall::$name),)* _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $(Ocall::$name => stringify!($name),)* }
            }
        }
    };
}

ocalls! {
    /// write(fd, data[a1..a1+a2]) → bytes written.
    Write = 1,
    /// read(fd, len a2) into data[a1..] → bytes read.
    Read = 2,
    /// pread(fd, len a2, offset a3) into data[a1..].
    Pread = 3,
    /// pwrite(fd, data[a1..a1+a2], offset a3).
    Pwrite = 4,
    /// openat(AT_FDCWD, path data[a0..a0+a1], flags a2, mode a3) → host fd.
    Open = 5,
    /// close(fd).
    Close = 6,
    /// fstat(fd) → struct stat at data[a1..a1+144].
    Fstat = 7,
    /// stat/lstat(path data[a0..a0+a1]) → struct stat at data[a2..]; a3 = 1 for lstat.
    Stat = 8,
    /// lseek(fd, off a1, whence a2).
    Lseek = 9,
    /// getdents64(fd) into data[a1..a1+a2] → bytes.
    Getdents64 = 10,
    /// readlink(path data[a0..a0+a1]) into data[a2..a2+a3] → bytes.
    Readlink = 11,
    /// ioctl(fd, request a1, argument data[a2..]) — terminal requests only.
    Ioctl = 12,
    /// fcntl(fd, cmd a1, arg a2) — F_GETFL/F_SETFL/F_SETLK/F_SETLKW/F_GETLK
    /// (lock struct at data[a3..]).
    Fcntl = 13,
    /// pipe2(flags a0) → aux = read fd | write fd << 32.
    Pipe2 = 14,
    /// mprotect(enclave address a0, len a1, prot a2): only inside ELRANGE.
    Mprotect = 15,
    /// Give back enclave pages a0..a0+a1: they read as zero afterwards (as
    /// after EREMOVE + EAUG) and get protection a2. Only inside the heap.
    /// a3 = 1: the pages were made with `LazyPages` and are to be ordinary
    /// pages again; with a3 = 0 pages made so stay so (empty until filled).
    Decommit = 16,
    /// clock_gettime(clock a0) → timespec at data[a1..a1+16].
    ClockGettime = 17,
    /// Sleep a0 nanoseconds (relative), waking early if signal hint arrives.
    Sleep = 18,
    /// mkdir(path data[a0..a0+a1], mode a2).
    Mkdir = 19,
    /// unlinkat(AT_FDCWD, path data[a0..a0+a1], flags a2).
    Unlink = 20,
    /// rename(data[a0..a0+a1], data[a2..a2+a3]).
    Rename = 21,
    /// symlink(target data[a0..a0+a1], path data[a2..a2+a3]).
    Symlink = 22,
    /// link(data[a0..a0+a1], data[a2..a2+a3]).
    Link = 23,
    /// ftruncate(fd, len a1).
    Ftruncate = 24,
    /// fsync(fd) (a1 = 1: fdatasync).
    Fsync = 25,
    /// utimensat(AT_FDCWD or fd, path data[a0..a0+a1] or empty, times data[a2..a2+32], flags a3, fd a4).
    Utimens = 26,
    /// fchmod(fd, mode a1).
    Fchmod = 27,
    /// chmod(path data[a0..a0+a1], mode a2).
    Chmod = 28,
    /// statfs(path data[a0..a0+a1]) → struct statfs at data[a2..a2+120].
    Statfs = 29,
    /// flock(fd, op a1).
    Flock = 30,
    /// poll(pollfd array data[a0..a0+8*a1], timeout ms a2) → ready count.
    Poll = 31,
    /// truncate(path data[a0..a0+a1], len a2).
    Truncate = 32,
    /// Start a host thread that enters thread slot a0 with `ThreadStart`.
    SpawnThread = 40,
    /// Sleep until this slot's `wake_seq` differs from a0, or a1 ns pass
    /// (u64::MAX: no timeout) → 0, or -ETIMEDOUT.
    ThreadSleep = 41,
    /// Increment slot a0's `wake_seq` and wake it.
    ThreadWake = 42,
    /// Chunk digests of the trusted file open as host fd a0: chunks a1..a1+a2
    /// into data[a3..a3+32*a2]. The host may compute them; the LibOS checks
    /// them against the manifest's root.
    ChunkDigests = 43,
    /// Send signal a0 to enclave process a1 (its conf-run; 0: this one).
    Kill = 44,
    /// sched_yield on the host.
    Yield = 45,
    /// Interrupt slot a0's host thread (a host signal): a blocking host call
    /// it is in returns EINTR; program code it runs is interrupted (AEX) so
    /// the LibOS can deliver signals.
    Kick = 46,
    /// Ask the host to kick some enclave thread at monotonic time a0 (ns);
    /// a0 = 0 cancels. Replaces any earlier request.
    Alarm = 47,
    /// realpath(path data[a0..a0+a1]) into data[a2..a2+a3] → length. A hint:
    /// the LibOS only uses the answer to find a trusted or allowed file by
    /// its real name, whose contents it then checks as usual.
    Realpath = 48,
    /// socket(domain a0, type a1, protocol a2) → host fd.
    Socket = 50,
    /// socketpair(a0, a1, a2) → aux = fd0 | fd1 << 32.
    Socketpair = 51,
    /// bind(fd, sockaddr data[a1..a1+a2]).
    Bind = 52,
    /// listen(fd, backlog a1).
    Listen = 53,
    /// accept4(fd, flags a1) → host fd; peer address at data[a2..a2+a3],
    /// its length in aux.
    Accept = 54,
    /// connect(fd, sockaddr data[a1..a1+a2]).
    Connect = 55,
    /// getsockname(fd) into data[a1..a1+a2]; length in aux.
    Getsockname = 56,
    /// getpeername(fd) into data[a1..a1+a2]; length in aux.
    Getpeername = 57,
    /// setsockopt(fd, level a1, name a2, value data[a3..a3+a4]).
    Setsockopt = 58,
    /// getsockopt(fd, level a1, name a2) into data[a3..a3+a4]; length in aux.
    Getsockopt = 59,
    /// sendto(fd, data[a1..a1+a2], flags a3, address data[a4..a4+a5]).
    Sendto = 60,
    /// recvfrom(fd, len a2 into data[a1..], flags a3); address into
    /// data[a4..a4+128], its length in aux.
    Recvfrom = 61,
    /// shutdown(fd, how a1).
    Shutdown = 62,
    /// recvmsg with ancillary data: payload into data[a1..a1+a2], flags a3,
    /// address into data[a4..a4+128], control into data[a5..a5+4096];
    /// aux = addrlen | controllen << 16 | msg_flags << 32.
    Recvmsg = 63,
    /// sendmsg with ancillary data: payload data[a1..a1+a2], flags a3,
    /// address at data offset (a4 & 0xffff_ffff), length a4 >> 32 (0: none),
    /// control at data offset (a5 & 0xffff_ffff), length a5 >> 32 (at most
    /// 4096). Descriptors in SCM_RIGHTS messages are host fds, each one the
    /// enclave may use. → bytes sent.
    Sendmsg = 64,
    /// epoll_create1(flags a0) → host fd.
    EpollCreate = 65,
    /// epoll_ctl(epfd, op a1, fd a2, events a3, data a4).
    EpollCtl = 66,
    /// epoll_wait(epfd, max a1, timeout ms a2) → n events at data[a3..],
    /// 16 bytes each (events u32, pad u32, data u64).
    EpollWait = 67,
    /// eventfd2(initval a0, flags a1) → host fd.
    Eventfd = 68,
    /// timerfd_create(clock a0, flags a1) → host fd.
    TimerfdCreate = 69,
    /// timerfd_settime(fd, flags a1, new itimerspec data[a2..a2+32]) → old
    /// itimerspec at data[a3..a3+32].
    TimerfdSettime = 70,
    /// timerfd_gettime(fd) → itimerspec at data[a1..a1+32].
    TimerfdGettime = 71,
    /// Start a child enclave process with this enclave's measurement; the
    /// host fds listed at data[a0..a0+4*a1] (i32 each) are passed to it.
    /// → child pid; aux = host fd of this side of the state channel.
    SpawnProcess = 80,
    /// waitpid(a0 as pid, options a1) on a child enclave process → pid;
    /// aux = wait status.
    Wait = 81,
    /// Sim backend: the key EGETKEY would give for this enclave's
    /// MRENCLAVE (sealing key, MRENCLAVE policy) → 32 bytes at data[a0..].
    SimGetKey = 82,
    /// Map host file fd a0 shared (MAP_SHARED), length a1, offset a2,
    /// protection a3, outside ELRANGE; at address a4 exactly if non-zero
    /// (a forked child mapping its parent's) → mapping id; aux = address.
    /// Untrusted memory: the program shares it with other processes.
    MapShared = 83,
    /// Unmap shared mapping a0.
    UnmapShared = 84,
    /// futex on shared mapping a0 at byte offset a1: op a2, val a3, timeout
    /// ns a4 (u64::MAX: none), bitset a5 → as futex(2).
    FutexShared = 85,
    /// A child process's first call: wait until the parent hands this
    /// process its work (a conf-run started ahead of need waits here), then
    /// → host fd of the state channel; aux = number of inherited host fds,
    /// written at data[a0..] (i32 each, at most a1), in the parent's order.
    ChildStart = 86,
    /// Copy a1 bytes from enclave address a2 to enclave pages at a0 that
    /// the program cannot touch yet, then give them protection a3 — what
    /// SGX2's EACCEPTCOPY does: no other thread ever sees them half filled.
    /// a4 = 1: the pages were made with `LazyPages`; they keep the
    /// protection they have (a3 is not used), and one already filled is
    /// left as it is (another thread filled it, and the program may have
    /// written it since). a4 = 2: the same, but pages already filled are
    /// overwritten too (a forked child taking its parent's pages). a5, if
    /// not 0: only the pages whose bits are set (bit i: page i of the
    /// range, `page_runs`), the others are left as they are; one call for
    /// the pages of a chunk the program uses.
    FillPages = 87,
    /// The run's private host directory for the AF_UNIX sockets the program
    /// binds in tmpfs (one per run, shared by all its processes, mode 0700,
    /// created on first use) → its path at data[a0..a0+a1], the length.
    SocketDir = 88,
    /// Make every thread of the enclave serialize its instruction stream
    /// before it runs program code again (membarrier SYNC_CORE), after the
    /// LibOS changed code other threads may run → 0, or ENOSYS.
    SyncCore = 89,
    /// Stop the whole process as signal a0 (SIGSTOP, SIGTSTP, SIGTTIN or
    /// SIGTTOU) with its default action would: the parent's wait sees it
    /// stopped → 0 once it is continued (SIGCONT).
    StopProcess = 90,
    /// A new anonymous host file of a0 bytes (memfd) for a shared anonymous
    /// mapping, which processes of the program share after fork → its fd.
    /// Untrusted host memory, like MapShared of a file.
    SharedAnon = 91,
    /// CPUID leaf a0, subleaf a1 as the host CPU answers it → 0; EAX, EBX,
    /// ECX, EDX (u32 each) at data[a2..a2+16]. Untrusted, as on SGX, where
    /// the enclave cannot execute CPUID and must ask.
    Cpuid = 92,
    /// From now on CPUID executed in the enclave raises #UD, as it does in an
    /// SGX enclave, for every enclave thread of the process (sim: CPUID
    /// faulting, arch_prctl ARCH_SET_CPUID) → 0; ENOSYS where the backend
    /// does not (the sim unless asked to), ENODEV where the CPU cannot:
    /// CPUID then keeps running natively.
    TrapCpuid = 93,
    /// Which trusted file chunks a program loaded as it started (`FillHint`
    /// entries, 12 bytes each). a0 = 0: read them into data[a1..], at most a2
    /// → how many: for the run's first process, those of the last run of
    /// this manifest; for a child started ahead of need whose work has not
    /// come, those the run's last exec'd child published; none otherwise.
    /// a0 = 1: publish the a2 entries at data[a1..] → 0. a0 = 2: is this a
    /// child still waiting for its work → 1 or 0. Untrusted: they only say
    /// what to verify ahead.
    FillHints = 94,
    /// Write the a1 bytes (at most 64) at data[a2..] into program code at
    /// a0, whatever the pages' protection, leaving it unchanged →
    /// 0; ENOSYS where the backend cannot (the sim without /proc). The
    /// LibOS uses it to rewrite a system call site while the program has
    /// one thread: one call where making the page writable and read-only
    /// again took two, each restriction a TLB shootdown. (On SGX2 the
    /// LibOS extends the page's EPCM permissions itself, EMODPE, and asks
    /// the host only to restrict them again.)
    PokeCode = 95,
    /// Make the enclave pages a0..a0+a1 empty pages with protection a2 that
    /// the host fills only with `FillPages` (a4 = 1): until then a touch
    /// by the program faults at the page, reported with the bus-fault
    /// vector (sim: userfaultfd, SIGBUS), and the host's own system calls
    /// fail there with EFAULT → 1; 0 where the backend cannot (the LibOS
    /// then keeps such pages inaccessible until filled). A fill is then one
    /// copy straight into the new page with no protection change per fill.
    LazyPages = 96,
}

/// The runs of set bits in `mask` (bit i: page i): (first page, pages).
pub fn page_runs(mut mask: u64) -> impl Iterator<Item = (u64, u64)> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let first = mask.trailing_zeros() as u64;
        let len = (mask >> first).trailing_ones() as u64;
        mask &= !(((1u128 << (first + len)) - 1) as u64);
        Some((first, len))
    })
}

/// One entry of `Ocall::FillHints`: a trusted file (its index in the
/// resolved manifest's list), a 64 KiB chunk of it, and which of the
/// chunk's 16 pages the program had put into its mappings one by one (bit
/// i: page i; 0: not known, the chunk was read or filled whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillHint {
    pub file: u32,
    pub chunk: u32,
    pub pages: u16,
}

impl FillHint {
    pub const SIZE: usize = 12;

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&self.file.to_le_bytes());
        b[4..8].copy_from_slice(&self.chunk.to_le_bytes());
        b[8..10].copy_from_slice(&self.pages.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; Self::SIZE]) -> FillHint {
        FillHint {
            file: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            chunk: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            pages: u16::from_le_bytes([b[8], b[9]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_layout_is_disjoint_and_aligned() {
        for n in [1u64, 2, 7, 64, 1024] {
            let l = RingLayout::new(n);
            assert!(l.boot_offset >= core::mem::size_of::<RingHeader>() as u64);
            assert!(l.slots_offset >= l.boot_offset + BOOT_BLOCK_SIZE);
            assert!(l.data_offset >= l.slot_offset(n));
            assert_eq!(l.data_offset % PAGE_SIZE, 0);
            assert_eq!(l.total_size, l.data_area_offset(n));
        }
    }

    #[test]
    fn page_runs_are_the_set_bits() {
        let runs = |m| page_runs(m).collect::<alloc::vec::Vec<_>>();
        assert_eq!(runs(0), []);
        assert_eq!(runs(0b1011_0110), [(1, 2), (4, 2), (7, 1)]);
        assert_eq!(runs(u64::MAX), [(0, 64)]);
        assert_eq!(runs(1 << 63 | 1), [(0, 1), (63, 1)]);
    }

    #[test]
    fn fill_hints_round_trip() {
        let h = FillHint {
            file: 0x0102_0304,
            chunk: 0x0a0b_0c0d,
            pages: 0x8421,
        };
        assert_eq!(FillHint::from_bytes(h.to_bytes()), h);
        assert_eq!(h.to_bytes()[10..], [0, 0]);
    }

    #[test]
    fn ocall_numbers_round_trip() {
        for raw in 0..100 {
            if let Some(o) = Ocall::from_raw(raw) {
                assert_eq!(o as u32, raw);
            }
        }
    }
}
