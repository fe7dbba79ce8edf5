//! A socket: a host socket fd plus what the LibOS needs to know about it.

use alloc::vec::Vec;

use conf_abi::ocall::Ocall;
use conf_abi::Errno;

use crate::fs::file::File;
use crate::fs::host::KernelStat;
use crate::fs::mode;
use crate::host::calls::{self as hc, HostFd};
use crate::host::{call, Data};

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

pub struct Socket {
    pub fd: HostFd,
    pub domain: u16,
    pub kind: u32,
}

impl Drop for Socket {
    fn drop(&mut self) {
        hc::close(self.fd);
    }
}

/// Offsets in the data area for socket calls.
const BUF: u64 = 8192;
const ADDR: u64 = 4096;
const CTRL: u64 = 0;

fn ret_len(nr: Ocall, r: crate::host::Reply, asked: usize) -> Result<usize, Errno> {
    let v = r.result(nr)?;
    if v > asked as u64 {
        crate::host::hostile(nr, "more bytes than were asked for");
    }
    Ok(v as usize)
}

/// Largest payload one call moves.
pub const MAX_IO: usize = hc::MAX_IO;

impl Socket {
    pub fn bind(&self, addr: &[u8]) -> Result<(), Errno> {
        self.addr_call(Ocall::Bind, addr)
    }

    pub fn connect(&self, addr: &[u8]) -> Result<(), Errno> {
        self.addr_call(Ocall::Connect, addr)
    }

    fn addr_call(&self, nr: Ocall, addr: &[u8]) -> Result<(), Errno> {
        if addr.len() > 128 {
            return Err(Errno::EINVAL);
        }
        Data::mine().put(ADDR, addr);
        call(nr, [self.fd.0 as u64, ADDR, addr.len() as u64, 0, 0, 0])
            .result(nr)
            .map(|_| ())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        call(
            Ocall::Listen,
            [self.fd.0 as u64, backlog as u64, 0, 0, 0, 0],
        )
        .result(Ocall::Listen)
        .map(|_| ())
    }

    /// accept4: the new host fd and the peer address.
    pub fn accept(&self, flags: i32) -> Result<(HostFd, Vec<u8>), Errno> {
        let r = call(
            Ocall::Accept,
            [self.fd.0 as u64, flags as u64, ADDR, 128, 0, 0],
        );
        let fd = r.result(Ocall::Accept)?;
        if fd as i64 >= conf_abi::ocall::MAX_HOST_FD {
            crate::host::hostile(Ocall::Accept, "a file descriptor out of range");
        }
        let alen = (r.aux as usize).min(128);
        let mut addr = alloc::vec![0u8; alen];
        Data::mine().get(ADDR, &mut addr);
        Ok((HostFd(fd as i32), addr))
    }

    pub fn name(&self, peer: bool) -> Result<Vec<u8>, Errno> {
        let nr = if peer {
            Ocall::Getpeername
        } else {
            Ocall::Getsockname
        };
        let r = call(nr, [self.fd.0 as u64, ADDR, 128, 0, 0, 0]);
        r.result(nr)?;
        let alen = (r.aux as usize).min(128);
        let mut addr = alloc::vec![0u8; alen];
        Data::mine().get(ADDR, &mut addr);
        Ok(addr)
    }

    pub fn setsockopt(&self, level: i32, name: i32, val: &[u8]) -> Result<(), Errno> {
        if val.len() > 1024 {
            return Err(Errno::EINVAL);
        }
        Data::mine().put(ADDR, val);
        call(
            Ocall::Setsockopt,
            [
                self.fd.0 as u64,
                level as u64,
                name as u64,
                ADDR,
                val.len() as u64,
                0,
            ],
        )
        .result(Ocall::Setsockopt)
        .map(|_| ())
    }

    pub fn getsockopt(&self, level: i32, name: i32, cap: usize) -> Result<Vec<u8>, Errno> {
        let cap = cap.min(1024);
        let r = call(
            Ocall::Getsockopt,
            [
                self.fd.0 as u64,
                level as u64,
                name as u64,
                ADDR,
                cap as u64,
                0,
            ],
        );
        r.result(Ocall::Getsockopt)?;
        let n = (r.aux as usize).min(cap);
        let mut v = alloc::vec![0u8; n];
        Data::mine().get(ADDR, &mut v);
        Ok(v)
    }

    pub fn sendto(&self, buf: &[u8], flags: i32, addr: Option<&[u8]>) -> Result<usize, Errno> {
        let n = buf.len().min(MAX_IO);
        let d = Data::mine();
        d.put(BUF, &buf[..n]);
        let (aoff, alen) = match addr {
            Some(a) if a.len() <= 128 => {
                d.put(ADDR, a);
                (ADDR, a.len() as u64)
            }
            Some(_) => return Err(Errno::EINVAL),
            None => (0, 0),
        };
        ret_len(
            Ocall::Sendto,
            call(
                Ocall::Sendto,
                [
                    self.fd.0 as u64,
                    BUF,
                    n as u64,
                    flags as u32 as u64,
                    aoff,
                    alen,
                ],
            ),
            n,
        )
    }

    /// sendmsg with control messages (host fds in SCM_RIGHTS already).
    pub fn sendmsg(
        &self,
        buf: &[u8],
        flags: i32,
        addr: Option<&[u8]>,
        control: &[u8],
    ) -> Result<usize, Errno> {
        let n = buf.len().min(MAX_IO);
        if control.len() > 4096 {
            return Err(Errno::ENOBUFS);
        }
        let d = Data::mine();
        d.put(BUF, &buf[..n]);
        d.put(CTRL, control);
        let a4 = match addr {
            Some(a) if a.len() <= 128 => {
                d.put(ADDR, a);
                ADDR | (a.len() as u64) << 32
            }
            Some(_) => return Err(Errno::EINVAL),
            None => 0,
        };
        ret_len(
            Ocall::Sendmsg,
            call(
                Ocall::Sendmsg,
                [
                    self.fd.0 as u64,
                    BUF,
                    n as u64,
                    flags as u32 as u64,
                    a4,
                    CTRL | (control.len() as u64) << 32,
                ],
            ),
            n,
        )
    }

    /// recvfrom: bytes into `buf`, and the sender's address.
    pub fn recvfrom(&self, buf: &mut [u8], flags: i32) -> Result<(usize, Vec<u8>), Errno> {
        let n = buf.len().min(MAX_IO);
        let r = call(
            Ocall::Recvfrom,
            [
                self.fd.0 as u64,
                BUF,
                n as u64,
                flags as u32 as u64,
                ADDR,
                0,
            ],
        );
        // MSG_TRUNC makes datagram sockets report the full length.
        let got = r.result(Ocall::Recvfrom)? as usize;
        if got > n && flags & 0x20 == 0 {
            crate::host::hostile(Ocall::Recvfrom, "more bytes than were asked for");
        }
        let d = Data::mine();
        d.get(BUF, &mut buf[..got.min(n)]);
        let alen = (r.aux as usize).min(128);
        let mut addr = alloc::vec![0u8; alen];
        d.get(ADDR, &mut addr);
        Ok((got, addr))
    }

    /// recvmsg: bytes, sender address, control data, msg_flags.
    pub fn recvmsg(
        &self,
        buf: &mut [u8],
        flags: i32,
    ) -> Result<(usize, Vec<u8>, Vec<u8>, i32), Errno> {
        let n = buf.len().min(MAX_IO);
        let r = call(
            Ocall::Recvmsg,
            [
                self.fd.0 as u64,
                BUF,
                n as u64,
                flags as u32 as u64,
                ADDR,
                CTRL,
            ],
        );
        let got = r.result(Ocall::Recvmsg)? as usize;
        if got > n && flags & 0x20 == 0 {
            crate::host::hostile(Ocall::Recvmsg, "more bytes than were asked for");
        }
        let d = Data::mine();
        d.get(BUF, &mut buf[..got.min(n)]);
        let alen = ((r.aux & 0xffff) as usize).min(128);
        let clen = (((r.aux >> 16) & 0xffff) as usize).min(4096);
        let mflags = (r.aux >> 32) as i32;
        let mut addr = alloc::vec![0u8; alen];
        d.get(ADDR, &mut addr);
        let mut ctrl = alloc::vec![0u8; clen];
        d.get(CTRL, &mut ctrl);
        Ok((got, addr, ctrl, mflags))
    }

    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        call(Ocall::Shutdown, [self.fd.0 as u64, how as u64, 0, 0, 0, 0])
            .result(Ocall::Shutdown)
            .map(|_| ())
    }
}

impl File for Socket {
    fn read_at(&self, _off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        crate::syscall::restartable(|| self.recvfrom(buf, 0).map(|(n, _)| n))
    }

    fn write_at(&self, _off: u64, buf: &[u8]) -> Result<usize, Errno> {
        crate::syscall::restartable(|| self.sendto(buf, 0, None))
    }

    fn stat(&self) -> Result<KernelStat, Errno> {
        let mut st = hc::fstat(self.fd)?;
        st.st_mode = mode::S_IFSOCK | 0o777;
        Ok(st)
    }

    fn is_stream(&self) -> bool {
        true
    }

    fn host_fd(&self) -> Option<HostFd> {
        Some(self.fd)
    }

    fn set_flags(&self, flags: u32) -> Result<(), Errno> {
        hc::fcntl(
            self.fd,
            4, /* F_SETFL */
            (flags & crate::fs::oflags::O_NONBLOCK) as u64,
        )
        .map(|_| ())
    }

    fn ioctl(&self, req: u64, arg: &mut [u8]) -> Result<u64, Errno> {
        hc::ioctl(self.fd, req, arg)
    }

    fn as_socket(&self) -> Option<&Socket> {
        Some(self)
    }

    fn transfer(&self) -> crate::fs::file::Transfer {
        crate::fs::file::Transfer::Socket {
            fd: self.fd,
            domain: self.domain,
            kind: self.kind,
        }
    }

    fn ioctl_arg_size(&self, req: u64) -> Option<usize> {
        // FIONREAD / SIOCINQ, SIOCOUTQ
        matches!(req, 0x541b | 0x5411).then_some(4)
    }
}
