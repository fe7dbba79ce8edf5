//! Descriptors passed over AF_UNIX sockets (SCM_RIGHTS).
//!
//! A descriptor can be passed when a host object stands behind it — pipes,
//! sockets and socketpairs, eventfd and timerfd, allowed host files: its
//! host fd goes into the host's own SCM_RIGHTS message. The receiving
//! enclave wraps each host fd it gets as the same kind of file, judged from
//! the host's fstat and F_GETFL (and SO_DOMAIN / SO_TYPE for a socket): a
//! pipe's read end reads, a socket sends and receives. Like everything from
//! the host this is untrusted; a wrong kind only makes the program's calls
//! on that fd fail.
//!
//! Files that live in the enclave (tmpfs files, trusted files, epoll
//! instances, /proc, devices) have nothing the host could pass: sendmsg
//! refuses them with EOPNOTSUPP and an error line naming the file.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::ocall::{Ocall, MAX_HOST_FD};
use conf_abi::Errno;

use super::socket::{Socket, AF_UNIX};
use crate::fs::file::{File, Transfer};
use crate::fs::host::{HostFile, HostKind};
use crate::fs::{mode, oflags, OpenFile};
use crate::host::calls::{self as hc, HostFd};
use crate::host::{call, Data};
use crate::process::process;
use crate::sync::SpinLock;

pub const SOL_SOCKET: i32 = 1;
pub const SCM_RIGHTS: i32 = 1;
pub const MSG_CTRUNC: i32 = 0x8;
pub const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;
/// Largest control buffer passed on, in either direction.
pub const MAX_CONTROL: usize = 4096;
/// Most descriptors in one message (Linux's SCM_MAX_FD).
const SCM_MAX_FD: usize = 253;
/// struct cmsghdr.
const HDR: usize = 16;

fn align(n: usize) -> usize {
    n.next_multiple_of(8)
}

/// (length, level, type) of the cmsghdr at `at`.
fn header(c: &[u8], at: usize) -> (usize, i32, i32) {
    (
        u64::from_le_bytes(c[at..at + 8].try_into().unwrap()) as usize,
        i32::from_le_bytes(c[at + 8..at + 12].try_into().unwrap()),
        i32::from_le_bytes(c[at + 12..at + 16].try_into().unwrap()),
    )
}

/// The program's control messages for sendmsg with every SCM_RIGHTS
/// descriptor replaced by its host fd (same layout, byte for byte), and
/// the open files behind them, to be kept until the host has sent them (a
/// close in another thread must not free a host fd number meanwhile).
pub fn to_host(control: &[u8]) -> Result<(Vec<u8>, Vec<Arc<OpenFile>>), Errno> {
    if control.len() > MAX_CONTROL {
        return Err(Errno::ENOBUFS);
    }
    let mut out = control.to_vec();
    let mut keep = Vec::new();
    let mut at = 0;
    while at + HDR <= control.len() {
        let (len, level, ty) = header(control, at);
        if len < HDR || len > control.len() - at {
            return Err(Errno::EINVAL);
        }
        if level == SOL_SOCKET && ty == SCM_RIGHTS {
            let n = (len - HDR) / 4;
            if n > SCM_MAX_FD {
                return Err(Errno::EINVAL);
            }
            for i in 0..n {
                let o = at + HDR + 4 * i;
                let fd = i32::from_le_bytes(control[o..o + 4].try_into().unwrap());
                let (host, of) = host_fd_of(fd)?;
                out[o..o + 4].copy_from_slice(&host.0.to_le_bytes());
                keep.push(of);
            }
        }
        at += align(len);
    }
    Ok((out, keep))
}

/// The host fd behind program fd `fd`, or why it cannot be passed.
fn host_fd_of(fd: i32) -> Result<(HostFd, Arc<OpenFile>), Errno> {
    let of = process().files.lock().get(fd)?;
    match of.file.transfer() {
        Transfer::Host { fd: h, kind, .. } => {
            // A regular file whose position the enclave keeps: the receiver
            // reads on from where the sender is.
            if kind == 0 {
                let _ = hc::lseek(h, *of.pos.lock() as i64, 0);
            }
            Ok((h, of.clone()))
        }
        Transfer::Socket { fd: h, .. } => Ok((h, of.clone())),
        Transfer::Reopen | Transfer::Tmp { .. } | Transfer::Drop => {
            static LOGGED: SpinLock<BTreeSet<String>> = SpinLock::new(BTreeSet::new());
            let what = describe(&of);
            if LOGGED.lock().insert(what.clone()) {
                error!("sendmsg: descriptor {fd} ({what}) cannot be passed to another process with SCM_RIGHTS: it lives in the enclave, with no host object behind it; only pipes, sockets, eventfd, timerfd and files under sgx.allowed_files can be passed (the program gets EOPNOTSUPP)");
            }
            Err(Errno::EOPNOTSUPP)
        }
    }
}

/// What an open file is, for the refusal.
fn describe(of: &OpenFile) -> String {
    let kind = match of.file.transfer() {
        Transfer::Tmp { .. } => "a tmpfs file",
        Transfer::Reopen => "a trusted file or device",
        _ if of.file.as_epoll().is_some() => "an epoll instance",
        _ => "an in-enclave file",
    };
    if of.path.is_empty() {
        String::from(kind)
    } else {
        alloc::format!("{}, {kind}", of.path)
    }
}

/// The control data the host received (host fds in SCM_RIGHTS) as the
/// program gets it in a buffer of `cap` bytes: descriptors installed in its
/// fd table (close-on-exec if `cloexec`), what does not fit dropped and its
/// host fds closed. Returns the bytes and whether anything was cut
/// (MSG_CTRUNC), by Linux's rules (`put_cmsg`, `scm_detach_fds`).
pub fn from_host(ctrl: &[u8], cap: usize, cloexec: bool) -> (Vec<u8>, bool) {
    let mut out: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut at = 0;
    while at + HDR <= ctrl.len() {
        let (len, level, ty) = header(ctrl, at);
        if len < HDR || len > ctrl.len() - at {
            crate::host::hostile(Ocall::Recvmsg, "a malformed control message");
        }
        let room = cap.saturating_sub(out.len());
        if level == SOL_SOCKET && ty == SCM_RIGHTS {
            let hosts: Vec<HostFd> = ctrl[at + HDR..at + len]
                .chunks_exact(4)
                .map(|c| {
                    let fd = i32::from_le_bytes(c.try_into().unwrap());
                    if !(0..MAX_HOST_FD as i32).contains(&fd) {
                        crate::host::hostile(Ocall::Recvmsg, "a passed fd out of range");
                    }
                    HostFd(fd)
                })
                .collect();
            let fit = if room < HDR { 0 } else { (room - HDR) / 4 };
            let k = hosts.len();
            let mut fds: Vec<i32> = Vec::new();
            let mut rest = hosts.into_iter();
            while fds.len() < fit {
                let Some(h) = rest.next() else { break };
                match adopt(h, cloexec) {
                    Ok(fd) => fds.push(fd),
                    // The fd table is full: the rest is dropped.
                    Err(_) => break,
                }
            }
            for h in rest {
                hc::close(h);
            }
            if fds.len() < k {
                cut = true;
            }
            if !fds.is_empty() {
                let start = out.len();
                out.extend_from_slice(&((HDR + 4 * fds.len()) as u64).to_le_bytes());
                out.extend_from_slice(&SOL_SOCKET.to_le_bytes());
                out.extend_from_slice(&SCM_RIGHTS.to_le_bytes());
                for fd in &fds {
                    out.extend_from_slice(&fd.to_le_bytes());
                }
                out.resize((start + align(HDR + 4 * fds.len())).min(cap), 0);
            }
        } else {
            // Anything else (SCM_CREDENTIALS) as it came, cut to the room.
            if room < HDR {
                cut = true;
            } else {
                let n = len.min(room);
                if n < len {
                    cut = true;
                }
                let start = out.len();
                out.extend_from_slice(&(n as u64).to_le_bytes());
                out.extend_from_slice(&ctrl[at + 8..at + n]);
                out.resize((start + align(n)).min(cap), 0);
            }
        }
        at += align(len);
    }
    (out, cut)
}

/// Install host fd `h` (passed to us) in the fd table as the kind of file
/// it is. The host fd is closed if that fails.
fn adopt(h: HostFd, cloexec: bool) -> Result<i32, Errno> {
    let st = match hc::fstat(h) {
        Ok(st) => st,
        Err(e) => {
            hc::close(h);
            return Err(e);
        }
    };
    // F_GETFL: the access mode and status flags of the description.
    let fl = hc::fcntl(h, 3, 0).unwrap_or(oflags::O_RDWR as u64) as u32;
    let flags = fl & (oflags::O_ACCMODE | oflags::O_NONBLOCK | oflags::O_APPEND);
    let stream = |label: &str| -> (Arc<dyn File>, String) {
        (
            Arc::new(HostFile::new(h, HostKind::Stream, String::new())),
            String::from(label),
        )
    };
    let (file, label): (Arc<dyn File>, String) = match st.st_mode & mode::S_IFMT {
        mode::S_IFSOCK => (
            Arc::new(Socket {
                fd: h,
                domain: sockopt(h, SO_DOMAIN).unwrap_or(AF_UNIX as u32) as u16,
                kind: sockopt(h, SO_TYPE).unwrap_or(1) & 0xf,
            }),
            String::from("socket:"),
        ),
        mode::S_IFIFO => stream("pipe:"),
        mode::S_IFREG | mode::S_IFDIR => {
            // The host's name for it (for statfs and /proc/self/fd).
            let mut buf = alloc::vec![0u8; 4096];
            let link = alloc::format!("/proc/self/fd/{}", h.0);
            let path = hc::readlink(link.as_bytes(), &mut buf)
                .ok()
                .and_then(|n| String::from_utf8(buf[..n].to_vec()).ok())
                .unwrap_or_default();
            let kind = if st.st_mode & mode::S_IFMT == mode::S_IFDIR {
                HostKind::Dir
            } else {
                // The position is the sender's too: keep it on the host.
                HostKind::SharedRegular
            };
            (Arc::new(HostFile::new(h, kind, path.clone())), path)
        }
        // eventfd, timerfd (anonymous inodes), terminals.
        0 => stream("anon_inode:"),
        _ => stream(""),
    };
    let of = OpenFile::new(file, flags, label);
    // On failure the file is dropped, which closes the host fd.
    process().files.lock().insert(of, cloexec, 0)
}

const SO_TYPE: i32 = 3;
const SO_DOMAIN: i32 = 39;

/// An int socket option of host socket `h`.
fn sockopt(h: HostFd, name: i32) -> Option<u32> {
    let r = call(
        Ocall::Getsockopt,
        [h.0 as u64, SOL_SOCKET as u64, name as u64, 0, 4, 0],
    );
    r.result(Ocall::Getsockopt).ok()?;
    if r.aux != 4 {
        return None;
    }
    let mut b = [0u8; 4];
    Data::mine().get(0, &mut b);
    Some(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((HDR + body.len()) as u64).to_le_bytes());
        v.extend_from_slice(&level.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(body);
        v.resize(align(v.len()), 0);
        v
    }

    #[test]
    fn credentials_pass_and_are_cut_to_the_room() {
        let creds = cmsg(SOL_SOCKET, 2, &[7u8; 12]);
        let (out, cut) = from_host(&creds, 64, false);
        assert_eq!((out.as_slice(), cut), (creds.as_slice(), false));
        let (out, cut) = from_host(&creds, 20, false);
        assert!(cut);
        assert_eq!(out.len(), 20);
        assert_eq!(u64::from_le_bytes(out[..8].try_into().unwrap()), 20);
        let (out, cut) = from_host(&creds, 8, false);
        assert!(cut && out.is_empty());
    }

    #[test]
    fn malformed_program_control_is_einval() {
        let mut c = cmsg(SOL_SOCKET, 2, &[0u8; 12]);
        c[0] = 200;
        assert_eq!(to_host(&c).err(), Some(Errno::EINVAL));
        c[0] = 4;
        assert_eq!(to_host(&c).err(), Some(Errno::EINVAL));
        assert_eq!(to_host(&[0u8; 5000]).err(), Some(Errno::ENOBUFS));
        // Shorter than a header: no messages at all.
        assert!(to_host(&[1u8; 10]).unwrap().0.len() == 10);
    }
}
