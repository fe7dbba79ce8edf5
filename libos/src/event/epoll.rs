//! epoll: an epoll instance on the host holds the host fds; the LibOS keeps
//! what each registration means (the program's fd and data) and never
//! trusts the host's event data beyond looking it up.

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use conf_abi::ocall::Ocall;
use conf_abi::Errno;

use crate::fs::file::File;
use crate::fs::host::KernelStat;
use crate::fs::{mode, OpenFile};
use crate::host::calls::{self as hc, HostFd};
use crate::host::{call, Data};
use crate::sync::SpinLock;

pub const EPOLL_CTL_ADD: u32 = 1;
pub const EPOLL_CTL_DEL: u32 = 2;
pub const EPOLL_CTL_MOD: u32 = 3;

struct Reg {
    fd: i32,
    file: Weak<OpenFile>,
    events: u32,
    data: u64,
}

pub struct Epoll {
    pub fd: HostFd,
    regs: SpinLock<BTreeMap<u64, Reg>>,
    next_key: AtomicU64,
}

impl Drop for Epoll {
    fn drop(&mut self) {
        hc::close(self.fd);
    }
}

impl Epoll {
    pub fn create() -> Result<Epoll, Errno> {
        let fd = call(Ocall::EpollCreate, [0; 6]).result(Ocall::EpollCreate)?;
        if fd as i64 >= conf_abi::ocall::MAX_HOST_FD {
            crate::host::hostile(Ocall::EpollCreate, "a file descriptor out of range");
        }
        Ok(Epoll {
            fd: HostFd(fd as i32),
            regs: SpinLock::new(BTreeMap::new()),
            next_key: AtomicU64::new(1),
        })
    }

    fn host_ctl(&self, op: u32, hfd: HostFd, events: u32, key: u64) -> Result<(), Errno> {
        call(
            Ocall::EpollCtl,
            [
                self.fd.0 as u64,
                op as u64,
                hfd.0 as u64,
                events as u64,
                key,
                0,
            ],
        )
        .result(Ocall::EpollCtl)
        .map(|_| ())
    }

    /// epoll_ctl for the program's `fd` open as `file`.
    pub fn ctl(
        &self,
        op: u32,
        fd: i32,
        file: &Arc<OpenFile>,
        events: u32,
        data: u64,
    ) -> Result<(), Errno> {
        if file.file.as_epoll().is_some_and(|e| core::ptr::eq(e, self)) {
            return Err(Errno::EINVAL);
        }
        // Regular files are always ready; Linux refuses them in epoll.
        let Some(hfd) = file
            .file
            .host_fd()
            .filter(|_| file.file.polls_on_host() || file.file.as_epoll().is_some())
        else {
            return Err(Errno::EPERM);
        };
        let mut regs = self.regs.lock();
        let existing = regs
            .iter()
            .find(|(_, r)| r.fd == fd && r.file.upgrade().is_some_and(|f| Arc::ptr_eq(&f, file)))
            .map(|(k, _)| *k);
        // Registrations whose file is gone are dropped as we go.
        regs.retain(|_, r| r.file.strong_count() > 0);
        match op {
            EPOLL_CTL_ADD => {
                if existing.is_some() {
                    return Err(Errno::EEXIST);
                }
                let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                self.host_ctl(op, hfd, events, key)?;
                regs.insert(
                    key,
                    Reg {
                        fd,
                        file: Arc::downgrade(file),
                        events,
                        data,
                    },
                );
            }
            EPOLL_CTL_MOD => {
                let key = existing.ok_or(Errno::ENOENT)?;
                self.host_ctl(op, hfd, events, key)?;
                let r = regs.get_mut(&key).unwrap();
                r.events = events;
                r.data = data;
            }
            EPOLL_CTL_DEL => {
                let key = existing.ok_or(Errno::ENOENT)?;
                let _ = self.host_ctl(op, hfd, 0, key);
                regs.remove(&key);
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// Wait for up to `max` events; returns (events, data) pairs.
    pub fn wait(&self, max: usize, timeout_ms: i32) -> Result<Vec<(u32, u64)>, Errno> {
        const OUT: u64 = 8192;
        let max = max.clamp(1, (crate::host::calls::MAX_IO - 16) / 16);
        let n = crate::syscall::interruptible(|| {
            call(
                Ocall::EpollWait,
                [
                    self.fd.0 as u64,
                    max as u64,
                    timeout_ms as i64 as u64,
                    OUT,
                    0,
                    0,
                ],
            )
            .result(Ocall::EpollWait)
        })?;
        if n as usize > max {
            crate::host::hostile(Ocall::EpollWait, "more events than were asked for");
        }
        let d = Data::mine();
        let regs = self.regs.lock();
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut rec = [0u8; 16];
            d.get(OUT + i * 16, &mut rec);
            let ev = u32::from_le_bytes(rec[0..4].try_into().unwrap());
            let key = u64::from_le_bytes(rec[8..16].try_into().unwrap());
            // Unknown keys (stale or forged) are ignored.
            if let Some(r) = regs.get(&key) {
                if r.file.strong_count() > 0 {
                    out.push((ev & (r.events | 0x18), r.data));
                }
            }
        }
        Ok(out)
    }
}

impl File for Epoll {
    fn stat(&self) -> Result<KernelStat, Errno> {
        Ok(KernelStat {
            st_mode: mode::S_IFREG | 0o600,
            st_nlink: 1,
            st_blksize: 4096,
            ..Default::default()
        })
    }
    fn is_stream(&self) -> bool {
        true
    }
    fn host_fd(&self) -> Option<HostFd> {
        Some(self.fd)
    }
    fn as_epoll(&self) -> Option<&Epoll> {
        Some(self)
    }
}
