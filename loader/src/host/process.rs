//! Child enclave processes, host side: starting a new conf-run for the same
//! enclave (same LibOS, same resolved manifest, hence same MRENCLAVE),
//! handing it the channel its state comes over and the host fds it
//! inherits; waiting for children; the sim backend's sealing key.
//!
//! The state itself never passes through here in the clear: the two
//! enclaves encrypt it with a key derived from the key EGETKEY gives
//! enclaves with the same MRENCLAVE. Under sim that key is emulated from a
//! per-machine secret conf-run keeps (sim is not a security boundary).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use conf_abi::ocall::FillHint;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use sha2::{Digest, Sha256};

/// What a child conf-run needs to build the same enclave.
#[derive(Clone, Debug, Default)]
pub struct ChildSpec {
    /// The resolved manifest's canonical bytes, shared with the image (half
    /// a megabyte or more: a spec is cloned for every process started).
    pub manifest: std::sync::Arc<Vec<u8>>,
    pub root: Vec<u8>,
    pub log_level: Option<u8>,
    /// Host fds the child may use (passed at the same numbers).
    pub fds: Vec<i32>,
    /// The program's process count ([`ProcessCount`]), at this fd number.
    pub count_fd: i32,
    /// The enclave's MRENCLAVE, when the parent has computed it: the
    /// child's is the same (same LibOS, same manifest), and computing it
    /// again cost every child ~1 ms of hashing.
    pub mrenclave: Option<[u8; 32]>,
}

/// How many processes of one program are alive: a page of a memfd every
/// conf-run of the program maps (children inherit the fd), checked against
/// `sys.max_processes` before a child starts. The host keeps it, so a
/// hostile host can ignore it — it could refuse to start processes anyway;
/// what it protects is the machine from a runaway program.
///
/// The same page carries the rest of the per-run state the first conf-run
/// decides for all of them: the path of the run's socket directory
/// ([`SocketDir`]). And holding the memfd is what makes a host process one
/// of the run's ([`ProcessCount::is_member`]).
pub struct ProcessCount {
    fd: i32,
    count: &'static AtomicU32,
    max: u32,
    told: AtomicBool,
    sockets: SocketDir,
}

/// Where in the shared page the socket directory's path is: its length
/// (u16) at `DIR_LEN_AT`, its bytes from `DIR_AT`.
const DIR_LEN_AT: usize = 64;
const DIR_AT: usize = 66;
const DIR_MAX: usize = 256;
/// The fill hints children publish for the run's next ready child
/// (`Ocall::FillHints`): a sequence number (odd while being written) at
/// `HINTS_AT`, the count after it, then the entries.
const HINTS_AT: usize = 512;
const HINTS_MAX: usize = (4096 - HINTS_AT - 8) / FillHint::SIZE;

impl ProcessCount {
    /// The count for a new program: one process, this one.
    pub fn new(max: u32) -> std::io::Result<ProcessCount> {
        // SAFETY: plain syscalls on a new fd.
        let fd = unsafe { libc::memfd_create(c"conf-processes".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 || unsafe { libc::ftruncate(fd, 4096) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dir = SocketDir::choose();
        let b = dir.path.as_os_str().as_bytes();
        let mut page = vec![0u8; DIR_AT + b.len()];
        page[DIR_LEN_AT..DIR_AT].copy_from_slice(&(b.len() as u16).to_le_bytes());
        page[DIR_AT..].copy_from_slice(b);
        // SAFETY: writes a local buffer into the new memfd.
        if unsafe { libc::pwrite(fd, page.as_ptr() as *const _, page.len(), 0) }
            != page.len() as isize
        {
            return Err(std::io::Error::last_os_error());
        }
        let pc = Self::inherit(fd, max)?;
        pc.count.store(1, Ordering::SeqCst);
        Ok(pc)
    }

    /// The count a parent conf-run passed at `fd`.
    pub fn inherit(fd: i32, max: u32) -> std::io::Result<ProcessCount> {
        // SAFETY: maps one shared page of the memfd; the mapping is never
        // unmapped, so the reference lives as long as the process.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: page-aligned, mapped for the life of the process.
        let count = unsafe { &*(p as *const AtomicU32) };
        // SAFETY: the page is mapped and 4096 bytes long; the path was
        // written once, before any child existed.
        let page = unsafe { std::slice::from_raw_parts(p as *const u8, 4096) };
        let n =
            (u16::from_le_bytes([page[DIR_LEN_AT], page[DIR_LEN_AT + 1]]) as usize).min(DIR_MAX);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&page[DIR_AT..DIR_AT + n]));
        Ok(ProcessCount {
            fd,
            count,
            max,
            told: AtomicBool::new(false),
            sockets: SocketDir {
                path,
                made: AtomicBool::new(false),
            },
        })
    }

    /// The run's socket directory.
    pub fn socket_dir(&self) -> &SocketDir {
        &self.sockets
    }

    fn page(&self) -> *mut u8 {
        self.count as *const AtomicU32 as *mut u8
    }

    fn hints_seq(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 inside the mapped page.
        unsafe { &*(self.page().add(HINTS_AT) as *const AtomicU32) }
    }

    /// Replace the run's fill hints with `entries` (`FillHint` bytes); a
    /// process that finds another one writing them leaves them to it.
    pub fn put_hints(&self, entries: &[u8]) {
        let seq = self.hints_seq();
        let s = seq.load(Ordering::Acquire);
        if s % 2 == 1
            || seq
                .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let n = (entries.len() / FillHint::SIZE).min(HINTS_MAX);
        // SAFETY: inside the mapped page (HINTS_MAX bounds the entries);
        // this process holds the odd sequence number.
        unsafe {
            let at = self.page().add(HINTS_AT + 4);
            (at as *mut u32).write_volatile(n as u32);
            std::ptr::copy_nonoverlapping(entries.as_ptr(), at.add(4), n * FillHint::SIZE);
        }
        seq.store(s + 2, Ordering::Release);
    }

    /// Copy the run's fill hints into `out`; how many bytes (0 if there are
    /// none, or they were being written).
    pub fn get_hints(&self, out: &mut [u8]) -> usize {
        let seq = self.hints_seq();
        let s = seq.load(Ordering::Acquire);
        if s % 2 == 1 {
            return 0;
        }
        // SAFETY: inside the mapped page; a concurrent writer is detected by
        // the sequence number below and the copy dropped.
        let len = unsafe {
            let at = self.page().add(HINTS_AT + 4);
            let n = ((at as *const u32).read_volatile() as usize).min(HINTS_MAX);
            let len = (n * FillHint::SIZE).min(out.len() / FillHint::SIZE * FillHint::SIZE);
            std::ptr::copy_nonoverlapping(at.add(4), out.as_mut_ptr(), len);
            len
        };
        std::sync::atomic::fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) != s {
            return 0;
        }
        len
    }

    /// Is host process `pid` a conf-run of this run? It is if it holds the
    /// run's memfd at the same number (every child conf-run gets it there).
    /// Asked through /proc; without /proc the answer is no.
    pub fn is_member(&self, pid: i32) -> bool {
        let mut mine: libc::stat = unsafe { std::mem::zeroed() };
        let mut theirs: libc::stat = unsafe { std::mem::zeroed() };
        let Ok(p) = std::ffi::CString::new(format!("/proc/{pid}/fd/{}", self.fd)) else {
            return false;
        };
        // SAFETY: stat into locals.
        unsafe {
            libc::fstat(self.fd, &mut mine) == 0
                && libc::stat(p.as_ptr(), &mut theirs) == 0
                && mine.st_dev == theirs.st_dev
                && mine.st_ino == theirs.st_ino
        }
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Count one more process, unless the limit is reached (then say so,
    /// once per conf-run).
    pub fn try_add(&self) -> bool {
        let ok = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                (c < self.max).then_some(c + 1)
            })
            .is_ok();
        if !ok && !self.told.swap(true, Ordering::Relaxed) {
            eprintln!(
                "[conf] error: the program tried to start more than {} processes at once, the limit sys.max_processes sets; \
                 it gets EAGAIN (raise sys.max_processes in the manifest if it needs more)",
                self.max
            );
        }
        ok
    }

    /// A process ended (and was waited for), or did not start.
    pub fn remove(&self) {
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1));
    }
}

/// The run's private host directory for the AF_UNIX sockets its programs
/// bind in tmpfs (tmpfs is per enclave process, so a path there names
/// nothing another process could reach): chosen by the first conf-run,
/// created with mode 0700 by whichever process needs it first, removed when
/// the first conf-run ends. The sockets in it have opaque names (the LibOS
/// hashes the enclave path with a key only the run's enclaves know).
pub struct SocketDir {
    pub path: PathBuf,
    made: AtomicBool,
}

impl SocketDir {
    /// `$TMPDIR/conf-PID-RANDOM`, or under /tmp if `$TMPDIR` is so long that
    /// socket paths in it would not fit sun_path (108 bytes).
    fn choose() -> SocketDir {
        let mut base = std::env::temp_dir();
        if !base.is_absolute() || base.as_os_str().len() > 40 {
            base = PathBuf::from("/tmp");
        }
        let mut r = [0u8; 6];
        // SAFETY: getrandom into a local buffer.
        unsafe { libc::getrandom(r.as_mut_ptr() as *mut _, r.len(), 0) };
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        SocketDir {
            path: base.join(format!("conf-{}-{hex}", std::process::id())),
            made: AtomicBool::new(false),
        }
    }

    /// Make sure the directory exists, is ours and nobody else's: created
    /// here (0700), or found as a directory of our user that no one else
    /// may enter.
    pub fn ensure(&self) -> std::io::Result<&std::path::Path> {
        if self.made.load(Ordering::Acquire) {
            return Ok(&self.path);
        }
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        match std::fs::DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let m = std::fs::symlink_metadata(&self.path)?;
                // SAFETY: geteuid has no preconditions.
                let me = unsafe { libc::geteuid() };
                if !m.file_type().is_dir() || m.uid() != me || m.mode() & 0o077 != 0 {
                    eprintln!(
                        "[conf] error: {} is not this run's private socket directory (not a directory of this user with mode 0700); AF_UNIX sockets in tmpfs are refused",
                        self.path.display()
                    );
                    return Err(std::io::Error::from_raw_os_error(libc::EACCES));
                }
            }
            Err(e) => return Err(e),
        }
        self.made.store(true, Ordering::Release);
        Ok(&self.path)
    }

    /// Remove it and the sockets in it (the first conf-run, at its end).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn take<'a>(inp: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (n, rest) = inp.split_first_chunk::<8>()?;
    let n = u64::from_le_bytes(*n) as usize;
    if n > rest.len() {
        return None;
    }
    let (v, rest) = rest.split_at(n);
    *inp = rest;
    Some(v)
}

impl ChildSpec {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, &self.manifest);
        put(&mut out, &self.root);
        put(&mut out, &[self.log_level.unwrap_or(255)]);
        let fds: Vec<u8> = self.fds.iter().flat_map(|f| f.to_le_bytes()).collect();
        put(&mut out, &fds);
        put(&mut out, &self.count_fd.to_le_bytes());
        put(
            &mut out,
            self.mrenclave.as_ref().map_or(&[][..], |m| &m[..]),
        );
        out
    }

    pub fn decode(mut b: &[u8]) -> Option<ChildSpec> {
        let manifest = std::sync::Arc::new(take(&mut b)?.to_vec());
        let root = take(&mut b)?.to_vec();
        let level = *take(&mut b)?.first()?;
        let fds = take(&mut b)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let count_fd = i32::from_le_bytes(take(&mut b)?.try_into().ok()?);
        let mrenclave = match take(&mut b)? {
            [] => None,
            m => Some(<[u8; 32]>::try_from(m).ok()?),
        };
        Some(ChildSpec {
            manifest,
            root,
            log_level: (level != 255).then_some(level),
            fds,
            count_fd,
            mrenclave,
        })
    }
}

pub(super) fn close(fd: i32) {
    // SAFETY: closing an fd this module owns.
    unsafe { libc::close(fd) };
}

/// A pipe (close-on-exec): its read and write ends.
fn pipe() -> std::io::Result<(i32, i32)> {
    let mut p = [0i32; 2];
    // SAFETY: creates two fds in `p`.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((p[0], p[1]))
}

/// A connected pair of `kind` sockets (close-on-exec).
pub(super) fn pair(kind: i32) -> std::io::Result<(i32, i32)> {
    let mut p = [0i32; 2];
    // SAFETY: creates two fds in `p`.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, p.as_mut_ptr()) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok((p[0], p[1]))
}

/// How a child conf-run starts (the prefix of `--insecure-child`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// Its process's channel and fds come with it.
    Ready,
    /// Ahead of need: it waits for them on `link` (`warm:`).
    Warm,
    /// A zygote: it prepares the enclave image once and clones a waiting
    /// conf-run from itself for each request on `link` (`zygote:`).
    Zygote,
}

/// Exec a child conf-run (`--insecure-child [warm:|zygote:]LINK,SPEC`) that
/// gets `link` and `spec.fds` at the same numbers, and write it `spec`.
pub(super) fn exec_child(spec: &ChildSpec, link: i32, kind: ChildKind) -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let (spec_r, spec_w) = pipe()?;
    let mut keep: Vec<i32> = spec.fds.clone();
    keep.extend([link, spec_r, spec.count_fd]);
    let prefix = match kind {
        ChildKind::Ready => "",
        ChildKind::Warm => "warm:",
        ChildKind::Zygote => "zygote:",
    };
    let child = spawn_keeping(
        &exe,
        &[
            "--insecure-child".into(),
            format!("{prefix}{link},{spec_r}"),
        ],
        &keep,
    );
    close(spec_r);
    let pid = match child {
        Ok(pid) => pid,
        Err(e) => {
            close(spec_w);
            return Err(e);
        }
    };
    // SAFETY: spec_w is ours; File takes ownership and closes it.
    let mut w = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(spec_w) };
    w.write_all(&spec.encode())?;
    drop(w);
    // The child is reaped by waitpid through the Wait OCALL.
    Ok(pid)
}

/// posix_spawn `exe` with `args`, the fds `keep` inherited at the same
/// numbers (everything else is close-on-exec) and no signal blocked.
///
/// Not fork + exec (std's Command with pre_exec): forking conf-run copies
/// the page tables of the whole enclave and makes every page the program
/// writes afterwards fault once more — per process started, several
/// milliseconds for a Python that runs subprocesses. posix_spawn shares
/// the address space until the exec (CLONE_VM | CLONE_VFORK).
fn spawn_keeping(exe: &std::path::Path, args: &[String], keep: &[i32]) -> std::io::Result<u32> {
    use std::ffi::CString;
    let invalid = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let exe = CString::new(exe.as_os_str().as_bytes()).map_err(invalid)?;
    let mut argv: Vec<CString> = vec![exe.clone()];
    for a in args {
        argv.push(CString::new(a.as_bytes()).map_err(invalid)?);
    }
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(rc))
        }
    };
    // SAFETY: the attribute and action objects are initialized before use
    // and destroyed on every path; every pointer passed lives until
    // posix_spawn returns.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let mut r = Ok(());
        for &fd in keep.iter().filter(|&&fd| fd >= 0) {
            // dup2 onto itself clears FD_CLOEXEC (POSIX 2024; glibc ≥ 2.29).
            r = r.and(check(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                fd,
                fd,
            )));
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        r = r
            .and(check(libc::posix_spawnattr_setsigmask(&mut attr, &none)))
            .and(check(libc::posix_spawnattr_setflags(
                &mut attr,
                libc::POSIX_SPAWN_SETSIGMASK as libc::c_short,
            )));
        let mut pid: libc::pid_t = 0;
        if r.is_ok() {
            r = check(libc::posix_spawn(
                &mut pid,
                exe.as_ptr(),
                &actions,
                &attr,
                argv_ptrs.as_ptr(),
                environ,
            ));
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        r.map(|()| pid as u32)
    }
}

/// Start a child conf-run for `spec` now; returns its pid and this side of
/// the state channel.
pub fn spawn(spec: &ChildSpec) -> std::io::Result<(u32, i32)> {
    let (parent_end, child_end) = pair(libc::SOCK_STREAM)?;
    let r = exec_child(spec, child_end, ChildKind::Ready);
    close(child_end);
    match r {
        Ok(pid) => Ok((pid, parent_end)),
        Err(e) => {
            close(parent_end);
            Err(e)
        }
    }
}

/// A child conf-run started ahead of need: it builds and boots the enclave
/// (most of what starting a process costs) and then waits on `control`
/// for the channel and fds of the process it is to become.
pub struct Warm {
    pub pid: u32,
    pub(super) control: i32,
}

/// Most fds in one SCM_RIGHTS message (the kernel allows 253).
const FDS_PER_MESSAGE: usize = 200;

impl Warm {
    pub fn start(spec: &ChildSpec) -> std::io::Result<Warm> {
        let (control, child_end) = pair(libc::SOCK_SEQPACKET)?;
        let spec = ChildSpec {
            fds: Vec::new(),
            ..spec.clone()
        };
        let r = exec_child(&spec, child_end, ChildKind::Warm);
        close(child_end);
        match r {
            Ok(pid) => Ok(Warm { pid, control }),
            Err(e) => {
                close(control);
                Err(e)
            }
        }
    }

    /// Give the waiting child its work: a new state channel and the host fds
    /// `fds`. Returns its pid, this side of the channel and the read end of
    /// the pipe it reports its exit status on (see [`report_exit`]).
    pub fn activate(self, fds: &[i32]) -> std::io::Result<(u32, i32, i32)> {
        let (parent_end, child_end) = pair(libc::SOCK_STREAM)?;
        let (report_r, report_w) = pipe().inspect_err(|_| {
            close(parent_end);
            close(child_end);
        })?;
        // First message: how many fds follow, with the channel and the
        // exit report pipe; then the fds in pieces.
        let mut r = send_fds(
            self.control,
            &(fds.len() as u32).to_le_bytes(),
            &[child_end, report_w],
        );
        for piece in fds.chunks(FDS_PER_MESSAGE) {
            if r.is_err() {
                break;
            }
            r = send_fds(self.control, &[1], piece);
        }
        close(child_end);
        close(report_w);
        close(self.control);
        match r {
            Ok(()) => Ok((self.pid, parent_end, report_r)),
            Err(e) => {
                close(parent_end);
                close(report_r);
                // It is of no use now; end and reap it here, so that the
                // program never waits for it.
                // SAFETY: kill and waitpid of our own child.
                unsafe {
                    libc::kill(self.pid as i32, libc::SIGKILL);
                    libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
                }
                Err(e)
            }
        }
    }
}

pub(super) fn send_fds(sock: i32, payload: &[u8], fds: &[i32]) -> std::io::Result<()> {
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut _,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr points at live buffers of the given sizes; the cmsg is
    // written inside `control`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr() as *mut _;
            msg.msg_controllen = space;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut i32, fds.len());
        }
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One message from `sock`: its payload length and the fds it carried
/// (0 payload bytes: the parent went away).
pub(super) fn recv_fds(sock: i32, payload: &mut [u8]) -> std::io::Result<(usize, Vec<i32>)> {
    let space = unsafe { libc::CMSG_SPACE((FDS_PER_MESSAGE * 4) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr() as *mut _,
        iov_len: payload.len(),
    };
    let mut fds = Vec::new();
    // SAFETY: as in send_fds; cmsg headers are walked with the libc macros
    // inside the `msg_controllen` the kernel reports.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut _;
        msg.msg_controllen = space;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..k {
                    fds.push(p.add(i).read_unaligned());
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        n as usize
    };
    Ok((n, fds))
}

/// The pipe this child conf-run reports its program's exit status on
/// (-1: none, a child started on demand).
static EXIT_REPORT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Tell the parent conf-run the program's wait status before this process
/// ends: tearing down a child conf-run (its enclave memory, its threads)
/// takes about half a millisecond, which the parent's wait no longer has
/// to sit through.
pub fn report_exit(wait_status: u64) {
    let fd = EXIT_REPORT.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let b = (wait_status as u32).to_le_bytes();
        // SAFETY: writes 4 bytes from a local to our own pipe.
        unsafe { libc::write(fd, b.as_ptr() as *const _, 4) };
    }
}

/// Where a child process gets its channel and inherited fds.
pub enum StartFrom {
    /// Given on the command line (a child started on demand).
    Ready { chan: i32, fds: Vec<i32> },
    /// Sent over this control socket when the parent needs the process.
    Warm { control: i32 },
}

impl StartFrom {
    /// The channel and the inherited fds; `None` if the parent went away
    /// without giving this process work.
    pub fn wait(self) -> std::io::Result<Option<(i32, Vec<i32>)>> {
        let control = match self {
            StartFrom::Ready { chan, fds } => return Ok(Some((chan, fds))),
            StartFrom::Warm { control } => control,
        };
        let mut head = [0u8; 4];
        let (n, first) = recv_fds(control, &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "malformed hand-over from the parent conf-run",
            )
        };
        if n != 4 || !(1..=2).contains(&first.len()) {
            return Err(bad());
        }
        if let Some(&report) = first.get(1) {
            EXIT_REPORT.store(report, std::sync::atomic::Ordering::Relaxed);
        }
        let want = u32::from_le_bytes(head) as usize;
        let mut fds = Vec::with_capacity(want);
        while fds.len() < want {
            let (n, more) = recv_fds(control, &mut [0u8; 1])?;
            if n == 0 || more.is_empty() {
                return Err(bad());
            }
            fds.extend(more);
        }
        close(control);
        if fds.len() != want {
            return Err(bad());
        }
        Ok(Some((first[0], fds)))
    }
}

/// Read a child's spec from `fd` (conf-run --insecure-child).
pub fn read_spec(fd: i32) -> std::io::Result<ChildSpec> {
    use std::io::Read;
    // SAFETY: fd was passed to us for this purpose; File closes it.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut b = Vec::new();
    f.read_to_end(&mut b)?;
    ChildSpec::decode(&b).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "malformed child process description",
        )
    })
}

/// The sim backend's stand-in for the CPU's key-derivation secret: random,
/// per machine, kept in the conf cache directory (mode 0600).
fn sim_cpu_secret() -> [u8; 32] {
    let dir = conf_manifest::default_cache_dir();
    let path: PathBuf = dir.join("sim-cpu-secret");
    if let Ok(b) = std::fs::read(&path) {
        if let Ok(k) = <[u8; 32]>::try_from(b.as_slice()) {
            return k;
        }
    }
    let mut k = [0u8; 32];
    // SAFETY: getrandom into a local buffer.
    unsafe { libc::getrandom(k.as_mut_ptr() as *mut _, 32, 0) };
    let _ = std::fs::create_dir_all(&dir);
    let tmp = dir.join(format!(".sim-cpu-secret.{}", std::process::id()));
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
    {
        if f.write_all(&k).is_ok() && std::fs::hard_link(&tmp, &path).is_err() {
            // Someone else made it first: use theirs.
            if let Ok(b) = std::fs::read(&path) {
                if let Ok(theirs) = <[u8; 32]>::try_from(b.as_slice()) {
                    k = theirs;
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
    }
    k
}

/// EGETKEY (sealing key, MRENCLAVE policy) as the sim backend emulates it.
pub fn sim_seal_key(mrenclave: &[u8; 32]) -> [u8; 32] {
    let secret = sim_cpu_secret();
    let mut h = Sha256::new();
    h.update(b"conf-sim-egetkey-seal-mrenclave\0");
    h.update(secret);
    h.update(mrenclave);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mrenclave: Option<[u8; 32]>) -> ChildSpec {
        ChildSpec {
            manifest: std::sync::Arc::new(b"CONFMAN...".to_vec()),
            root: b"/srv/root".to_vec(),
            log_level: Some(3),
            fds: vec![0, 1, 2, 17],
            count_fd: 9,
            mrenclave,
        }
    }

    #[test]
    fn child_specs_round_trip_with_and_without_a_measurement() {
        for m in [None, Some([7u8; 32])] {
            let s = spec(m);
            let d = ChildSpec::decode(&s.encode()).unwrap();
            assert_eq!(
                (
                    d.manifest,
                    d.root,
                    d.log_level,
                    d.fds,
                    d.count_fd,
                    d.mrenclave
                ),
                (
                    s.manifest,
                    s.root,
                    s.log_level,
                    s.fds,
                    s.count_fd,
                    s.mrenclave
                )
            );
        }
    }

    #[test]
    fn damaged_child_specs_are_refused() {
        let bytes = spec(Some([7u8; 32])).encode();
        for cut in 0..bytes.len() {
            assert!(ChildSpec::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        // A measurement must be 32 bytes or absent.
        let mut odd = spec(None).encode();
        odd.truncate(odd.len() - 8);
        put(&mut odd, &[1u8; 31]);
        assert!(ChildSpec::decode(&odd).is_none());
    }
}
