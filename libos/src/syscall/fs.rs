//! Path system calls: open, stat, directories, links, permissions.

use alloc::string::String;

use conf_abi::Errno;

use super::{base_for, uaccess, Ctx, AT_FDCWD};
use crate::fs::policy::{self, Target};
use crate::fs::{oflags, KernelStat};
use crate::host::calls as hc;
use crate::process::process;

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;

fn do_open(dirfd: u64, path_ptr: u64, flags: u64, mode: u64) -> Result<u64, Errno> {
    let path = uaccess::path(path_ptr)?;
    let base = base_for(dirfd, &path)?;
    let proc = process();
    let mode = (mode as u32) & !proc.umask.load(core::sync::atomic::Ordering::Relaxed) & 0o7777;
    let f = policy::open(&base, &path, flags as u32, mode)?;
    proc.files
        .lock()
        .insert(f, flags as u32 & oflags::O_CLOEXEC != 0, 0)
        .map(|fd| fd as u64)
}

/// implements open(2)
pub fn sys_open(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    do_open(AT_FDCWD as i64 as u64, a[0], a[1], a[2])
}

/// implements openat(2)
pub fn sys_openat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    do_open(a[0], a[1], a[2], a[3])
}

/// implements creat(2)
pub fn sys_creat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    do_open(
        AT_FDCWD as i64 as u64,
        a[0],
        (oflags::O_CREAT | oflags::O_WRONLY | oflags::O_TRUNC) as u64,
        a[1],
    )
}

/// stat of (dirfd, path) honouring AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW.
fn stat_at(dirfd: u64, path_ptr: u64, flags: u64) -> Result<KernelStat, Errno> {
    let path = if flags & AT_EMPTY_PATH != 0 {
        uaccess::cstr(path_ptr, 4095)?
    } else {
        uaccess::path(path_ptr)?
    };
    if path.is_empty() {
        if dirfd as i32 == AT_FDCWD {
            return policy::stat(&process().cwd(), b".", true);
        }
        return super::file::fd_file(dirfd)?.file.stat();
    }
    let base = base_for(dirfd, &path)?;
    policy::stat(&base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

/// implements stat(2)
pub fn sys_stat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let st = stat_at(AT_FDCWD as i64 as u64, a[0], 0)?;
    uaccess::copy_out(a[1], st.as_bytes()).map(|_| 0)
}

/// implements lstat(2)
pub fn sys_lstat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let st = stat_at(AT_FDCWD as i64 as u64, a[0], AT_SYMLINK_NOFOLLOW)?;
    uaccess::copy_out(a[1], st.as_bytes()).map(|_| 0)
}

/// implements newfstatat(2)
pub fn sys_newfstatat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let st = stat_at(a[0], a[1], a[3])?;
    uaccess::copy_out(a[2], st.as_bytes()).map(|_| 0)
}

fn dev_major(d: u64) -> u32 {
    (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)) as u32
}

fn dev_minor(d: u64) -> u32 {
    ((d & 0xff) | ((d >> 12) & !0xff)) as u32
}

/// implements statx(2) from the same data as stat.
pub fn sys_statx(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let st = stat_at(a[0], a[1], a[2])?;
    let mut b = [0u8; 256];
    let put32 = |b: &mut [u8; 256], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut [u8; 256], o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut b, 0, 0x7ff); // STATX_BASIC_STATS
    put32(&mut b, 4, st.st_blksize as u32);
    put32(&mut b, 16, st.st_nlink as u32);
    put32(&mut b, 20, st.st_uid);
    put32(&mut b, 24, st.st_gid);
    b[28..30].copy_from_slice(&(st.st_mode as u16).to_le_bytes());
    put64(&mut b, 32, st.st_ino);
    put64(&mut b, 40, st.st_size as u64);
    put64(&mut b, 48, st.st_blocks as u64);
    for (off, s, ns) in [
        (64, st.st_atime, st.st_atime_nsec),
        (96, st.st_ctime, st.st_ctime_nsec),
        (112, st.st_mtime, st.st_mtime_nsec),
    ] {
        put64(&mut b, off, s as u64);
        put32(&mut b, off + 8, ns as u32);
    }
    put32(&mut b, 128, dev_major(st.st_rdev));
    put32(&mut b, 132, dev_minor(st.st_rdev));
    put32(&mut b, 136, dev_major(st.st_dev));
    put32(&mut b, 140, dev_minor(st.st_dev));
    uaccess::copy_out(a[4], &b).map(|_| 0)
}

fn access_at(dirfd: u64, path_ptr: u64, mode: u64, flags: u64) -> Result<u64, Errno> {
    let path = uaccess::path(path_ptr)?;
    let base = base_for(dirfd, &path)?;
    let ns = policy::ns();
    let p = policy::resolve(&base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    let st = policy::stat(&base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    const W_OK: u64 = 2;
    const X_OK: u64 = 1;
    if mode & W_OK != 0 {
        match ns.classify(&p) {
            Target::Trusted(_) | Target::Proc => return Err(Errno::EACCES),
            Target::Metadata(_)
                if st.st_mode & crate::fs::mode::S_IFMT != crate::fs::mode::S_IFDIR =>
            {
                return Err(Errno::EACCES)
            }
            _ => {}
        }
    }
    if mode & X_OK != 0
        && st.st_mode & 0o111 == 0
        && st.st_mode & crate::fs::mode::S_IFMT != crate::fs::mode::S_IFDIR
    {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// implements access(2)
pub fn sys_access(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    access_at(AT_FDCWD as i64 as u64, a[0], a[1], 0)
}

/// implements faccessat(2)
pub fn sys_faccessat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    access_at(a[0], a[1], a[2], 0)
}

/// implements faccessat2(2)
pub fn sys_faccessat2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    access_at(a[0], a[1], a[2], a[3])
}

fn readlink_at(dirfd: u64, path_ptr: u64, buf: u64, len: u64) -> Result<u64, Errno> {
    let path = uaccess::path(path_ptr)?;
    if (len as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let base = base_for(dirfd, &path)?;
    let mut tmp = alloc::vec![0u8; (len as usize).min(4096)];
    let n = policy::readlink(&base, &path, &mut tmp)?;
    uaccess::copy_out(buf, &tmp[..n])?;
    Ok(n as u64)
}

/// implements readlink(2)
pub fn sys_readlink(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    readlink_at(AT_FDCWD as i64 as u64, a[0], a[1], a[2])
}

/// implements readlinkat(2)
pub fn sys_readlinkat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    readlink_at(a[0], a[1], a[2], a[3])
}

/// implements getcwd(2)
pub fn sys_getcwd(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let cwd = process().cwd();
    let need = cwd.len() + 1;
    if (a[1] as usize) < need {
        return Err(Errno::ERANGE);
    }
    let mut b = cwd.into_bytes();
    b.push(0);
    uaccess::copy_out(a[0], &b)?;
    Ok(need as u64)
}

fn set_cwd(p: String) -> Result<u64, Errno> {
    let st = policy::stat("/", p.as_bytes(), true)?;
    if st.st_mode & crate::fs::mode::S_IFMT != crate::fs::mode::S_IFDIR {
        return Err(Errno::ENOTDIR);
    }
    *process().cwd.lock() = p;
    Ok(0)
}

/// implements chdir(2)
pub fn sys_chdir(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let path = uaccess::path(a[0])?;
    let p = policy::resolve(&process().cwd(), &path, true)?;
    set_cwd(p)
}

/// implements fchdir(2)
pub fn sys_fchdir(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = super::file::fd_file(a[0])?;
    if !f.file.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    set_cwd(f.path.clone())
}

fn cwd_for(dirfd: u64, path: &[u8]) -> Result<String, Errno> {
    base_for(dirfd, path)
}

/// implements mkdir(2)
pub fn sys_mkdir(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    mkdir_at(AT_FDCWD as i64 as u64, a[0], a[1])
}

/// implements mkdirat(2)
pub fn sys_mkdirat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    mkdir_at(a[0], a[1], a[2])
}

fn mkdir_at(dirfd: u64, path: u64, mode: u64) -> Result<u64, Errno> {
    let p = uaccess::path(path)?;
    let mode = mode as u32 & !process().umask.load(core::sync::atomic::Ordering::Relaxed) & 0o7777;
    policy::mkdir(&cwd_for(dirfd, &p)?, &p, mode).map(|_| 0)
}

/// implements unlink(2)
pub fn sys_unlink(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[0])?;
    policy::unlink(&process().cwd(), &p, false).map(|_| 0)
}

/// implements rmdir(2)
pub fn sys_rmdir(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[0])?;
    policy::unlink(&process().cwd(), &p, true).map(|_| 0)
}

/// implements unlinkat(2)
pub fn sys_unlinkat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[2] & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let p = uaccess::path(a[1])?;
    policy::unlink(&cwd_for(a[0], &p)?, &p, a[2] & AT_REMOVEDIR != 0).map(|_| 0)
}

fn rename_at(olddir: u64, old: u64, newdir: u64, new: u64, flags: u64) -> Result<u64, Errno> {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (from, to) = (uaccess::path(old)?, uaccess::path(new)?);
    policy::rename(&cwd_for(olddir, &from)?, &from, &cwd_for(newdir, &to)?, &to).map(|_| 0)
}

/// implements rename(2)
pub fn sys_rename(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let cwd = AT_FDCWD as i64 as u64;
    rename_at(cwd, a[0], cwd, a[1], 0)
}

/// implements renameat(2)
pub fn sys_renameat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    rename_at(a[0], a[1], a[2], a[3], 0)
}

/// implements renameat2(2) (flags 0 only)
pub fn sys_renameat2(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    rename_at(a[0], a[1], a[2], a[3], a[4])
}

/// implements symlink(2)
pub fn sys_symlink(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    symlink_at(a[0], AT_FDCWD as i64 as u64, a[1])
}

/// implements symlinkat(2)
pub fn sys_symlinkat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    symlink_at(a[0], a[1], a[2])
}

fn symlink_at(target: u64, dirfd: u64, path: u64) -> Result<u64, Errno> {
    let t = uaccess::path(target)?;
    let p = uaccess::path(path)?;
    policy::symlink(&t, &cwd_for(dirfd, &p)?, &p).map(|_| 0)
}

/// implements link(2)
pub fn sys_link(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let cwd = AT_FDCWD as i64 as u64;
    link_at(cwd, a[0], cwd, a[1], 0)
}

/// implements linkat(2)
pub fn sys_linkat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    link_at(a[0], a[1], a[2], a[3], a[4])
}

fn link_at(olddir: u64, old: u64, newdir: u64, new: u64, flags: u64) -> Result<u64, Errno> {
    let (from, to) = (uaccess::path(old)?, uaccess::path(new)?);
    policy::link(
        &cwd_for(olddir, &from)?,
        &from,
        &cwd_for(newdir, &to)?,
        &to,
        flags & AT_SYMLINK_FOLLOW != 0,
    )
    .map(|_| 0)
}

/// implements chmod(2)
pub fn sys_chmod(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[0])?;
    policy::chmod(&process().cwd(), &p, a[1] as u32).map(|_| 0)
}

/// implements fchmodat(2)
pub fn sys_fchmodat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[1])?;
    policy::chmod(&cwd_for(a[0], &p)?, &p, a[2] as u32).map(|_| 0)
}

/// implements fchmod(2)
pub fn sys_fchmod(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    super::file::fd_file(a[0])?
        .file
        .chmod(a[1] as u32)
        .map(|_| 0)
}

/// implements chown(2) family: identity is fixed inside the enclave, so
/// changing owners succeeds without effect.
pub fn sys_chown(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

/// implements truncate(2)
pub fn sys_truncate(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[0])?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    policy::truncate(&process().cwd(), &p, a[1]).map(|_| 0)
}

/// implements utimensat(2)
pub fn sys_utimensat(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let mut times = [0u8; 32];
    if a[2] == 0 {
        const UTIME_NOW: u64 = (1 << 30) - 1;
        times[8..16].copy_from_slice(&UTIME_NOW.to_le_bytes());
        times[24..32].copy_from_slice(&UTIME_NOW.to_le_bytes());
    } else {
        times.copy_from_slice(uaccess::slice(a[2], 32)?);
    }
    if a[1] == 0 {
        return super::file::fd_file(a[0])?.file.utimens(&times).map(|_| 0);
    }
    let p = uaccess::path(a[1])?;
    policy::utimens(
        &cwd_for(a[0], &p)?,
        &p,
        &times,
        a[3] & AT_SYMLINK_NOFOLLOW == 0,
    )
    .map(|_| 0)
}

/// implements statfs(2)
pub fn sys_statfs(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let p = uaccess::path(a[0])?;
    let mut b = [0u8; 120];
    policy::statfs(&process().cwd(), &p, &mut b)?;
    uaccess::copy_out(a[1], &b).map(|_| 0)
}

/// implements fstatfs(2)
pub fn sys_fstatfs(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let f = super::file::fd_file(a[0])?;
    let mut b = [0u8; 120];
    match f.file.host_path() {
        Some(h) => hc::statfs(h.as_bytes(), &mut b)?,
        None => policy::statfs("/", f.path.as_bytes(), &mut b)?,
    }
    uaccess::copy_out(a[1], &b).map(|_| 0)
}

/// implements umask(2)
pub fn sys_umask(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    Ok(process()
        .umask
        .swap(a[0] as u32 & 0o777, core::sync::atomic::Ordering::Relaxed) as u64)
}
