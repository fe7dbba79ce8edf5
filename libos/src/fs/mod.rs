//! Files as the program sees them.
//!
//! A path is resolved against the measured manifest (`path.rs`): the
//! trusted-symlink table is followed inside the enclave, the mount table
//! maps it to a host path, and the manifest decides what may be read:
//! trusted files are verified chunk by chunk against their digest
//! (`trusted.rs`), allowed files pass through (`host.rs`), anything else is
//! refused with a message naming the manifest key that would allow it.
//! Metadata (stat, directory listings) of paths under a host mount comes
//! from the host and is not trusted; only contents are protected.

pub mod dev;
pub mod file;
pub mod host;
pub mod path;
pub mod policy;
pub mod prefetch;
pub mod proc;
pub mod tmpfs;
pub mod trusted;

pub use file::{DirEntry, File, OpenFile};
pub use host::KernelStat;

/// File type bits of st_mode.
pub mod mode {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFSOCK: u32 = 0o140000;
    pub const S_IFLNK: u32 = 0o120000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFBLK: u32 = 0o060000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFIFO: u32 = 0o010000;
}

/// Linux open(2) flags the LibOS looks at.
pub mod oflags {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0o0;
    pub const O_WRONLY: u32 = 0o1;
    pub const O_RDWR: u32 = 0o2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_DIRECT: u32 = 0o40000;
    pub const O_LARGEFILE: u32 = 0o100000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_NOFOLLOW: u32 = 0o400000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_PATH: u32 = 0o10000000;
    pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;
}

/// Target of a /proc link (`/proc/self/exe`, `cwd`, `fd/N`).
pub fn proc_link(p: &str) -> Result<alloc::string::String, conf_abi::Errno> {
    proc::readlink(&proc::follow(p, false)?)
}
