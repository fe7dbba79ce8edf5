//! Device files the LibOS provides itself: /dev/null, /dev/zero,
//! /dev/full, /dev/random and /dev/urandom (from RDRAND, never the host).

use conf_abi::Errno;

use super::file::File;
use super::host::KernelStat;
use super::mode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Null,
    Zero,
    Full,
    Random,
}

impl Device {
    pub fn by_name(name: &str) -> Option<Device> {
        Some(match name {
            "null" => Device::Null,
            "zero" => Device::Zero,
            "full" => Device::Full,
            "random" | "urandom" => Device::Random,
            _ => return None,
        })
    }

    /// (major, minor) as Linux numbers them.
    fn rdev(self) -> (u64, u64) {
        match self {
            Device::Null => (1, 3),
            Device::Zero => (1, 5),
            Device::Full => (1, 7),
            Device::Random => (1, 9),
        }
    }
}

impl File for Device {
    fn read_at(&self, _off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Device::Null => Ok(0),
            Device::Zero | Device::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Device::Random => {
                crate::arch::fill_random(buf);
                Ok(buf.len())
            }
        }
    }

    fn write_at(&self, _off: u64, buf: &[u8]) -> Result<usize, Errno> {
        match self {
            Device::Full => Err(Errno::ENOSPC),
            _ => Ok(buf.len()),
        }
    }

    fn is_stream(&self) -> bool {
        true
    }

    fn stat(&self) -> Result<KernelStat, Errno> {
        let (maj, min) = self.rdev();
        Ok(KernelStat {
            st_dev: 5,
            st_ino: 1000 + min,
            st_nlink: 1,
            st_mode: mode::S_IFCHR | 0o666,
            st_rdev: (maj << 8) | min,
            st_blksize: 4096,
            ..Default::default()
        })
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(0)
    }

    fn transfer(&self) -> crate::fs::file::Transfer {
        crate::fs::file::Transfer::Reopen
    }
}
