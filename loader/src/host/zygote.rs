//! The zygote: a child conf-run that prepares a child's enclave image once
//! and clones a ready child conf-run from itself for each process the
//! program starts.
//!
//! Every child conf-run used to be a new exec of conf-run: the dynamic
//! loader, glibc's start (on a virtual machine about a hundred CPUID exits,
//! ~0.6 ms), Rust's, reading half a megabyte of manifest for a Python,
//! decoding it and laying out the image — about 2 ms of CPU per process,
//! on a machine whose other CPU runs the program. The zygote does that
//! once; each clone starts where it left off.
//!
//! A clone is made with `CLONE_PARENT`, so it is the child of the conf-run
//! that asked, like an exec'd one: that conf-run waits for it, gets its
//! SIGCHLD, and sees it die of the signal its program died of. The clone
//! also has the kernel write its thread id into glibc's thread descriptor
//! (`CLONE_CHILD_SETTID`, at the address glibc registered with
//! set_tid_address), as glibc's own fork does. The zygote is single-threaded
//! whenever it clones, so no lock is held in the copy.

use super::process::{self, ChildKind, ChildSpec, Warm};

/// A running zygote, and the socket requests go over.
pub struct Zygote {
    pub pid: u32,
    sock: i32,
}

impl Zygote {
    /// Start a zygote for children described by `spec` (its fds are not
    /// used: each clone gets its own at hand-over).
    pub fn start(spec: &ChildSpec) -> std::io::Result<Zygote> {
        let (sock, child_end) = process::pair(libc::SOCK_SEQPACKET)?;
        let spec = ChildSpec {
            fds: Vec::new(),
            ..spec.clone()
        };
        let r = process::exec_child(&spec, child_end, ChildKind::Zygote);
        process::close(child_end);
        match r {
            Ok(pid) => Ok(Zygote { pid, sock }),
            Err(e) => {
                process::close(sock);
                Err(e)
            }
        }
    }

    /// A new child conf-run waiting for its work, cloned from the zygote.
    pub fn warm(&self) -> std::io::Result<Warm> {
        let (control, child_end) = process::pair(libc::SOCK_SEQPACKET)?;
        let sent = process::send_fds(self.sock, b"w", &[child_end]);
        process::close(child_end);
        let mut reply = [0u8; 8];
        let got = sent.and_then(|()| process::recv_fds(self.sock, &mut reply));
        match got {
            Ok((8, fds)) if fds.is_empty() => {
                let pid = i32::from_le_bytes(reply[..4].try_into().unwrap());
                let errno = i32::from_le_bytes(reply[4..].try_into().unwrap());
                if pid > 0 {
                    return Ok(Warm {
                        pid: pid as u32,
                        control,
                    });
                }
                process::close(control);
                Err(std::io::Error::from_raw_os_error(errno.max(1)))
            }
            Ok(_) => {
                process::close(control);
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the zygote conf-run went away",
                ))
            }
            Err(e) => {
                process::close(control);
                Err(e)
            }
        }
    }
}

/// Whether a zygote serves this conf-run's children.
#[derive(Default)]
pub enum ZygoteState {
    #[default]
    Untried,
    Running(Zygote),
    /// It could not be started or could not clone: children are exec'd.
    Unusable,
}

/// A child conf-run waiting for its work, cloned by the zygote (started on
/// first use); `None` if there is no usable zygote.
pub fn warm_from(state: &std::sync::Mutex<ZygoteState>, spec: &ChildSpec) -> Option<Warm> {
    let mut st = state.lock().unwrap();
    if matches!(*st, ZygoteState::Untried) {
        *st = match Zygote::start(spec) {
            Ok(z) => ZygoteState::Running(z),
            Err(_) => ZygoteState::Unusable,
        };
    }
    let ZygoteState::Running(z) = &*st else {
        return None;
    };
    match z.warm() {
        Ok(w) => Some(w),
        Err(e) => {
            // One that cannot clone never will; one that died is replaced.
            *st = if e.raw_os_error() == Some(libc::ENOSYS) {
                ZygoteState::Unusable
            } else {
                ZygoteState::Untried
            };
            None
        }
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // The zygote ends when it reads the end of its socket.
        process::close(self.sock);
    }
}

/// The zygote's loop: for each request on `sock`, clone this process; the
/// clone returns `Some(become_child(its control socket))`, the zygote goes
/// on until the parent goes away (`None`).
pub fn serve<T>(sock: i32, become_child: impl FnOnce(i32) -> T) -> Option<T> {
    // Named so it can be told from the conf-runs it makes (ps, tests).
    set_name(c"conf-zygote");
    loop {
        let control = match next_request(sock) {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => return None,
        };
        match clone_as_sibling() {
            Ok(0) => {
                // The zygote's socket, which the clone must not keep.
                process::close(sock);
                set_name(c"conf-run");
                return Some(become_child(control));
            }
            made => {
                // The clone has its own copy of the fd.
                process::close(control);
                if reply(sock, made).is_err() {
                    return None;
                }
            }
        }
    }
}

/// The zygote's side: wait for the next request on `sock`; `Ok(None)` when
/// the parent went away. The fd returned is the new child's control socket.
fn next_request(sock: i32) -> std::io::Result<Option<i32>> {
    let mut req = [0u8; 1];
    let (n, fds) = process::recv_fds(sock, &mut req)?;
    match (n, fds.as_slice()) {
        (0, _) => Ok(None),
        (1, [control]) if req[0] == b'w' => Ok(Some(*control)),
        (_, fds) => {
            fds.iter().for_each(|&fd| process::close(fd));
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "malformed request to the zygote conf-run",
            ))
        }
    }
}

/// Answer a request: the clone's pid, or the errno that stopped it.
fn reply(sock: i32, made: std::io::Result<u32>) -> std::io::Result<()> {
    let (pid, errno) = match made {
        Ok(pid) => (pid as i32, 0),
        Err(e) => (0, e.raw_os_error().unwrap_or(libc::EAGAIN)),
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&pid.to_le_bytes());
    b[4..].copy_from_slice(&errno.to_le_bytes());
    process::send_fds(sock, &b, &[])
}

/// Fork this (single-threaded) process into a child of its parent:
/// `Ok(0)` in the clone, `Ok(pid)` in the zygote.
fn clone_as_sibling() -> std::io::Result<u32> {
    const PR_GET_TID_ADDRESS: libc::c_int = 40;
    let mut tid_addr: *mut libc::pid_t = std::ptr::null_mut();
    // SAFETY: PR_GET_TID_ADDRESS writes one pointer to the given address.
    if unsafe { libc::prctl(PR_GET_TID_ADDRESS, &mut tid_addr as *mut _ as libc::c_ulong) } != 0
        || tid_addr.is_null()
    {
        // Without it glibc would keep the zygote's thread id in the clone.
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let flags =
        libc::CLONE_PARENT | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD;
    // SAFETY: a fork-like clone (no new stack, no shared memory): the child
    // continues on a copy of this thread's stack, as after fork(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            std::ptr::null_mut::<libc::pid_t>(),
            tid_addr,
            0usize,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as u32)
}

/// Set the calling process's name (the `comm` ps shows).
fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}
