//! Socket system calls.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::ocall::Ocall;
use conf_abi::Errno;

use super::{restartable, uaccess, Ctx};
use crate::fs::{oflags, OpenFile};
use crate::host::call;
use crate::net::socket::{Socket, AF_INET, AF_INET6, AF_UNIX};
use crate::net::{scm, unix};
use crate::process::process;

const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const MSG_NOSIGNAL: i32 = 0x4000;

/// The open file of socket `fd`, checked to be a socket.
fn sock_file(fd: u64) -> Result<Arc<OpenFile>, Errno> {
    let f = process().files.lock().get(fd as i32)?;
    if f.file.as_socket().is_none() {
        return Err(Errno::ENOTSOCK);
    }
    Ok(f)
}

macro_rules! sock {
    ($f:ident, $s:ident, $fd:expr) => {
        let $f = sock_file($fd)?;
        let $s = $f.file.as_socket().ok_or(Errno::ENOTSOCK)?;
    };
}

fn install(s: Socket, flags: u64) -> Result<u64, Errno> {
    let oflag = oflags::O_RDWR
        | if flags & SOCK_NONBLOCK != 0 {
            oflags::O_NONBLOCK
        } else {
            0
        };
    let f = OpenFile::new(Arc::new(s), oflag, alloc::string::String::from("socket:"));
    process()
        .files
        .lock()
        .insert(f, flags & SOCK_CLOEXEC != 0, 0)
        .map(|fd| fd as u64)
}

fn new_host_socket(domain: u64, ty: u64, proto: u64) -> Result<crate::host::calls::HostFd, Errno> {
    let fd =
        call(Ocall::Socket, [domain, ty & !SOCK_CLOEXEC, proto, 0, 0, 0]).result(Ocall::Socket)?;
    if fd as i64 >= conf_abi::ocall::MAX_HOST_FD {
        crate::host::hostile(Ocall::Socket, "a file descriptor out of range");
    }
    Ok(crate::host::calls::HostFd(fd as i32))
}

/// implements socket(2) for AF_INET, AF_INET6, AF_UNIX
pub fn sys_socket(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let domain = a[0] as u16;
    if ![AF_INET, AF_INET6, AF_UNIX].contains(&domain) {
        return Err(Errno::EAFNOSUPPORT);
    }
    let fd = new_host_socket(a[0], a[1], a[2])?;
    install(
        Socket {
            fd,
            domain,
            kind: (a[1] & 0xf) as u32,
        },
        a[1],
    )
}

/// implements socketpair(2) (AF_UNIX)
pub fn sys_socketpair(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[0] as u16 != AF_UNIX {
        return Err(Errno::EOPNOTSUPP);
    }
    uaccess::slice_mut(a[3], 8)?;
    let r = call(
        Ocall::Socketpair,
        [a[0], a[1] & !SOCK_CLOEXEC, a[2], 0, 0, 0],
    );
    r.result(Ocall::Socketpair)?;
    let (x, y) = ((r.aux & 0xffff_ffff) as i64, (r.aux >> 32) as i64);
    if x >= conf_abi::ocall::MAX_HOST_FD || y >= conf_abi::ocall::MAX_HOST_FD || x == y {
        crate::host::hostile(Ocall::Socketpair, "descriptors out of range");
    }
    let kind = (a[1] & 0xf) as u32;
    let f0 = install(
        Socket {
            fd: crate::host::calls::HostFd(x as i32),
            domain: AF_UNIX,
            kind,
        },
        a[1],
    )?;
    let f1 = match install(
        Socket {
            fd: crate::host::calls::HostFd(y as i32),
            domain: AF_UNIX,
            kind,
        },
        a[1],
    ) {
        Ok(f) => f,
        Err(e) => {
            let _ = process().files.lock().remove(f0 as i32);
            return Err(e);
        }
    };
    uaccess::write(a[3], &[f0 as i32, f1 as i32]).map(|_| 0)
}

/// A program's sockaddr as the host must get it.
struct Addr {
    host: Vec<u8>,
    /// An AF_UNIX path in a tmpfs mount (see `net::unix`).
    tmp: Option<TmpSock>,
}

struct TmpSock {
    fs: &'static crate::fs::tmpfs::Tmpfs,
    /// Path inside the mount (where bind makes the socket file).
    rel: String,
    /// The host socket's name in the run's socket directory.
    name: String,
    /// The path as the program gave it (what getsockname reports).
    given: Vec<u8>,
}

/// Read a sockaddr from the program, mapping AF_UNIX paths to the host;
/// `bind`: the path names a socket to create (a final symlink is not
/// followed, and a tmpfs path gets a new host name).
fn sockaddr_in(ptr: u64, len: u64, bind: bool) -> Result<Addr, Errno> {
    if !(2..=128).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let addr = uaccess::slice(ptr, len as usize)?.to_vec();
    let family = u16::from_le_bytes([addr[0], addr[1]]);
    if family != AF_UNIX || len <= 2 || addr[2] == 0 {
        return Ok(Addr {
            host: addr,
            tmp: None,
        });
    }
    let path = &addr[2..];
    let path = &path[..path.iter().position(|&c| c == 0).unwrap_or(path.len())];
    if path.len() > 107 {
        return Err(Errno::EINVAL);
    }
    if !bind && unix::is_run_socket(path) {
        return Ok(Addr {
            host: addr,
            tmp: None,
        });
    }
    use crate::fs::policy::{self, Target};
    use crate::fs::tmpfs::Kind;
    let ns = policy::ns();
    let p = policy::resolve(&process().cwd(), path, !bind)?;
    match ns.classify(&p) {
        Target::Allowed(host) => {
            let mut out = alloc::vec![0u8; 2];
            out[..2].copy_from_slice(&AF_UNIX.to_le_bytes());
            out.extend_from_slice(host.as_bytes());
            out.push(0);
            if out.len() > 110 {
                return Err(Errno::ENAMETOOLONG);
            }
            Ok(Addr {
                host: out,
                tmp: None,
            })
        }
        Target::Tmp(fs, rel) => {
            // A socket file here (bound by this process, or by an ancestor
            // before the fork) knows its host name, even if renamed since;
            // otherwise the name is the path's, and the host says whether
            // another process of the run bound it.
            let name = match fs.lookup(&rel) {
                _ if bind => unix::host_name(&p),
                Ok(n) => match &n.kind {
                    Kind::Socket(name) => name.clone(),
                    _ => return Err(Errno::ECONNREFUSED),
                },
                Err(Errno::ENOENT) => unix::host_name(&p),
                Err(e) => return Err(e),
            };
            Ok(Addr {
                host: unix::host_addr(&name)?,
                tmp: Some(TmpSock {
                    fs,
                    rel,
                    name,
                    given: path.to_vec(),
                }),
            })
        }
        Target::Metadata(host) => match crate::host::calls::stat(host.as_bytes(), false) {
            // Nothing listens there (glibc probing for nscd, say): no noise.
            Err(Errno::ENOENT) => Err(Errno::ENOENT),
            _ => Err(ns.deny(&p, true)),
        },
        _ => Err(ns.deny(&p, true)),
    }
}

/// A program's destination address (connect, sendto, sendmsg).
fn dest_addr(ptr: u64, len: u64) -> Result<Vec<u8>, Errno> {
    let a = sockaddr_in(ptr, len, false)?;
    if let Some(t) = &a.tmp {
        unix::remember_if_new(&t.name, &t.given);
    }
    Ok(a.host)
}

/// An address from the host, as the program sees it.
fn addr_out(s: &Socket, addr: Vec<u8>) -> Vec<u8> {
    if s.domain == AF_UNIX {
        unix::to_enclave(addr)
    } else {
        addr
    }
}

/// Copy an address out to (ptr, lenptr) as accept/getsockname do.
fn sockaddr_out(ptr: u64, lenptr: u64, addr: &[u8]) -> Result<(), Errno> {
    if ptr == 0 || lenptr == 0 {
        return Ok(());
    }
    let cap: u32 = uaccess::read(lenptr)?;
    let n = (cap as usize).min(addr.len());
    uaccess::copy_out(ptr, &addr[..n])?;
    uaccess::write(lenptr, &(addr.len() as u32))
}

/// implements bind(2); an AF_UNIX path in a tmpfs mount becomes a socket
/// file there and a host socket in the run's socket directory.
pub fn sys_bind(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let addr = sockaddr_in(a[1], a[2], true)?;
    let Some(t) = addr.tmp else {
        return s.bind(&addr.host).map(|_| 0);
    };
    // Linux's order: the name must be free and its directory exist.
    t.fs.check_new(&t.rel).map_err(|e| match e {
        Errno::EEXIST => Errno::EADDRINUSE,
        e => e,
    })?;
    s.bind(&addr.host)?;
    let perm = 0o777 & !process().umask.load(core::sync::atomic::Ordering::Relaxed);
    if let Err(e) = t.fs.mksock(&t.rel, perm, t.name.clone()) {
        unix::unlinked(&t.name);
        return Err(e);
    }
    unix::remember(&t.name, &t.given);
    Ok(0)
}

/// implements listen(2)
pub fn sys_listen(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    s.listen(a[1] as i32).map(|_| 0)
}

/// implements connect(2)
pub fn sys_connect(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let addr = dest_addr(a[1], a[2])?;
    restartable(|| s.connect(&addr)).map(|_| 0)
}

fn accept(a: [u64; 6], flags: u64) -> Result<u64, Errno> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    sock!(f, s, a[0]);
    let (fd, addr) = restartable(|| s.accept((flags & SOCK_NONBLOCK) as i32))?;
    let newfd = install(
        Socket {
            fd,
            domain: s.domain,
            kind: s.kind,
        },
        flags,
    )?;
    if let Err(e) = sockaddr_out(a[1], a[2], &addr_out(s, addr)) {
        let _ = process().files.lock().remove(newfd as i32);
        return Err(e);
    }
    Ok(newfd)
}

/// implements accept(2)
pub fn sys_accept(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    accept(a, 0)
}

/// implements accept4(2)
pub fn sys_accept4(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    accept(a, a[3])
}

/// implements getsockname(2)
pub fn sys_getsockname(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    sockaddr_out(a[1], a[2], &addr_out(s, s.name(false)?)).map(|_| 0)
}

/// implements getpeername(2)
pub fn sys_getpeername(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    sockaddr_out(a[1], a[2], &addr_out(s, s.name(true)?)).map(|_| 0)
}

/// implements setsockopt(2)
pub fn sys_setsockopt(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    if a[4] > 1024 {
        return Err(Errno::EINVAL);
    }
    let v = uaccess::slice(a[3], a[4] as usize)?.to_vec();
    s.setsockopt(a[1] as i32, a[2] as i32, &v).map(|_| 0)
}

/// implements getsockopt(2)
pub fn sys_getsockopt(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let cap: u32 = uaccess::read(a[4])?;
    let v = s.getsockopt(a[1] as i32, a[2] as i32, cap as usize)?;
    uaccess::copy_out(a[3], &v)?;
    uaccess::write(a[4], &(v.len() as u32)).map(|_| 0)
}

fn sigpipe_on_epipe<T>(r: Result<T, Errno>, flags: i32) -> Result<T, Errno> {
    if r.as_ref().err() == Some(&Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        let tid = crate::process::current().tid;
        let _ = crate::signal::send_to_thread(
            tid,
            crate::signal::SigInfo {
                signo: crate::signal::SIGPIPE,
                code: crate::signal::SI_USER,
                ..Default::default()
            },
        );
    }
    r
}

/// implements sendto(2)
pub fn sys_sendto(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let buf = uaccess::slice(a[1], a[2] as usize)?;
    let addr = if a[4] != 0 {
        Some(dest_addr(a[4], a[5])?)
    } else {
        None
    };
    let flags = a[3] as i32;
    sigpipe_on_epipe(restartable(|| s.sendto(buf, flags, addr.as_deref())), flags).map(|n| n as u64)
}

/// implements recvfrom(2)
pub fn sys_recvfrom(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let buf = uaccess::slice_mut(a[1], a[2] as usize)?;
    let (n, addr) = restartable(|| s.recvfrom(buf, a[3] as i32))?;
    if a[4] != 0 {
        sockaddr_out(a[4], a[5], &addr_out(s, addr))?;
    }
    Ok(n as u64)
}

/// struct msghdr
#[derive(Clone, Copy)]
#[repr(C)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    _pad: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
    flags: i32,
    _pad2: u32,
}

fn sendmsg(s: &Socket, m: &MsgHdr, flags: i32) -> Result<usize, Errno> {
    let iov = uaccess::iovecs(m.iov, m.iovlen)?;
    let mut buf = Vec::new();
    for (base, len) in iov {
        buf.extend_from_slice(uaccess::slice(base, len)?);
        if buf.len() > crate::net::socket::MAX_IO {
            buf.truncate(crate::net::socket::MAX_IO);
            break;
        }
    }
    let addr = if m.name != 0 && m.namelen > 0 {
        Some(dest_addr(m.name, m.namelen as u64)?)
    } else {
        None
    };
    if m.controllen == 0 {
        return sigpipe_on_epipe(
            restartable(|| s.sendto(&buf, flags, addr.as_deref())),
            flags,
        );
    }
    if m.controllen > scm::MAX_CONTROL as u64 {
        return Err(Errno::ENOBUFS);
    }
    let control = uaccess::slice(m.control, m.controllen as usize)?;
    // `_files` keeps the passed descriptors' host fds open until sent.
    let (control, _files) = scm::to_host(control)?;
    sigpipe_on_epipe(
        restartable(|| s.sendmsg(&buf, flags, addr.as_deref(), &control)),
        flags,
    )
}

/// implements sendmsg(2); SCM_RIGHTS passes descriptors with a host object
/// behind them (see `net::scm`)
pub fn sys_sendmsg(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let m: MsgHdr = uaccess::read(a[1])?;
    sendmsg(s, &m, a[2] as i32).map(|n| n as u64)
}

/// implements sendmmsg(2)
pub fn sys_sendmmsg(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let n = a[2].min(1024);
    let mut done = 0u64;
    for i in 0..n {
        let at = a[1] + i * 64;
        let m: MsgHdr = uaccess::read(at)?;
        match sendmsg(s, &m, a[3] as i32) {
            Ok(len) => uaccess::write(at + 56, &(len as u32))?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done)
}

/// implements recvmsg(2); descriptors received with SCM_RIGHTS are
/// installed as the kind of file they are (see `net::scm`)
pub fn sys_recvmsg(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    let flags = a[2] as i32;
    let mut m: MsgHdr = uaccess::read(a[1])?;
    let iov = uaccess::iovecs(m.iov, m.iovlen)?;
    let total: usize = iov
        .iter()
        .map(|(_, l)| *l)
        .sum::<usize>()
        .min(crate::net::socket::MAX_IO);
    let mut buf = alloc::vec![0u8; total];
    let (n, addr, ctrl, mut mflags) = restartable(|| s.recvmsg(&mut buf, flags))?;
    // Descriptors first: once installed they are the program's, whatever
    // happens to the rest of the copy-out (as in Linux).
    let cap = if m.control != 0 {
        m.controllen as usize
    } else {
        0
    };
    let (control, cut) = scm::from_host(&ctrl, cap, flags & scm::MSG_CMSG_CLOEXEC != 0);
    if cut {
        mflags |= scm::MSG_CTRUNC;
    }
    let mut off = 0;
    for (base, len) in iov {
        if off >= n.min(total) {
            break;
        }
        let k = len.min(n.min(total) - off);
        uaccess::copy_out(base, &buf[off..off + k])?;
        off += k;
    }
    if m.name != 0 {
        let addr = addr_out(s, addr);
        let k = (m.namelen as usize).min(addr.len());
        uaccess::copy_out(m.name, &addr[..k])?;
        m.namelen = addr.len() as u32;
    }
    if !control.is_empty() {
        uaccess::copy_out(m.control, &control)?;
    }
    m.controllen = control.len() as u64;
    m.flags = mflags;
    uaccess::write(a[1], &m)?;
    Ok(n as u64)
}

/// implements shutdown(2)
pub fn sys_shutdown(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    sock!(f, s, a[0]);
    s.shutdown(a[1] as i32).map(|_| 0)
}
