//! poll(2) semantics over the LibOS's files.

use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::Errno;

use crate::fs::OpenFile;
use crate::host::calls::{self as hc, HostFd};

pub const POLLIN: i16 = 0x1;
pub const POLLPRI: i16 = 0x2;
pub const POLLOUT: i16 = 0x4;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const POLLNVAL: i16 = 0x20;
pub const POLLRDNORM: i16 = 0x40;
pub const POLLWRNORM: i16 = 0x100;

/// One entry: the file (None for an invalid fd), the events asked for, the
/// events that happened.
pub struct Entry {
    pub file: Option<Arc<OpenFile>>,
    pub events: i16,
    pub revents: i16,
}

/// Fill in `revents` for every entry, waiting up to `timeout_ms` (negative:
/// forever) for one to be ready. Returns the number of ready entries.
pub fn poll(entries: &mut [Entry], timeout_ms: i64) -> Result<usize, Errno> {
    let mut host: Vec<(HostFd, i16, i16)> = Vec::new();
    let mut host_idx: Vec<usize> = Vec::new();
    let mut ready = 0;
    for (i, e) in entries.iter_mut().enumerate() {
        e.revents = 0;
        match &e.file {
            None => {
                e.revents = POLLNVAL;
                ready += 1;
            }
            Some(f) if f.file.polls_on_host() => {
                host.push((f.file.host_fd().unwrap(), e.events, 0));
                host_idx.push(i);
            }
            Some(_) => {
                e.revents = e.events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
                if e.revents != 0 {
                    ready += 1;
                }
            }
        }
    }
    if host.is_empty() && (ready > 0 || timeout_ms == 0) {
        return Ok(ready);
    }
    let deadline =
        (timeout_ms > 0).then(|| crate::time::monotonic_ns() + timeout_ms as u64 * 1_000_000);
    loop {
        let t = if ready > 0 {
            0
        } else {
            match deadline {
                None if timeout_ms < 0 => -1,
                None => 0,
                Some(d) => {
                    let now = crate::time::monotonic_ns();
                    if now >= d {
                        0
                    } else {
                        ((d - now).div_ceil(1_000_000)).min(i32::MAX as u64) as i32
                    }
                }
            }
        };
        if host.is_empty() {
            // Only enclave files, none ready: sleep until the timeout.
            crate::syscall::interruptible(|| crate::time::sleep_ns(t.max(0) as u64 * 1_000_000))?;
            return Ok(0);
        }
        match hc::poll(&mut host, t) {
            Ok(_) => break,
            Err(Errno::EINTR) => {
                if crate::signal::interrupt_pending() {
                    return Err(Errno::EINTR);
                }
            }
            Err(e) => return Err(e),
        }
    }
    for ((_, ev, rev), &i) in host.iter().zip(&host_idx) {
        // What the host says happened, limited to what can be reported.
        let r = *rev & (*ev | POLLERR | POLLHUP | POLLNVAL);
        entries[i].revents = r;
        if r != 0 {
            ready += 1;
        }
    }
    Ok(ready)
}
