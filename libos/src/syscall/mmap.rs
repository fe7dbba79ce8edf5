//! Memory system calls.

use alloc::string::String;
use alloc::sync::Arc;

use conf_abi::Errno;

use super::Ctx;
use crate::mm::{Placement, Vma, VmaName, PAGE, PROT_WRITE};
use crate::process::process;

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;
const MAP_HUGETLB: u64 = 0x40000;

const PROT_GROWSDOWN: u64 = 0x0100_0000;
const PROT_GROWSUP: u64 = 0x0200_0000;

fn check_prot(p: u64) -> Result<u32, Errno> {
    if p & !(7 | PROT_GROWSDOWN | PROT_GROWSUP) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((p & 7) as u32)
}

/// implements mmap(2): anonymous mappings (shared ones in host memory, so
/// that forked processes share them), private file mappings (copied,
/// verified for trusted files), and shared mappings of host files (host
/// memory shared with the file).
pub fn sys_mmap(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let (addr, len, prot, flags, fd, off) = (a[0], a[1], a[2], a[3], a[4] as i32, a[5]);
    let prot = check_prot(prot)?;
    if len == 0 || off % PAGE != 0 || len > (1 << 46) {
        return Err(Errno::EINVAL);
    }
    let kind = flags & MAP_SHARED_VALIDATE;
    if kind != MAP_SHARED && kind != MAP_PRIVATE && kind != MAP_SHARED_VALIDATE {
        return Err(Errno::EINVAL);
    }
    if flags & MAP_HUGETLB != 0 {
        return Err(Errno::EINVAL);
    }
    let place = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::NoReplace(addr)
    } else if flags & MAP_FIXED != 0 {
        Placement::Replace(addr)
    } else {
        Placement::Hint(addr)
    };
    let proc = process();
    let shared = kind != MAP_PRIVATE;
    // Shared anonymous memory must stay shared with the processes forked
    // later (PostgreSQL's buffers, Python's mmap.mmap(-1, n)): host memory
    // behind a memfd, which fork hands to the child like a shared file.
    if flags & MAP_ANONYMOUS != 0 && shared && flags & MAP_FIXED == 0 {
        let len = crate::util::align_up(len, PAGE);
        let hfd = crate::host::calls::shared_anon(len)?;
        let file = crate::fs::host::HostFile::new(
            hfd,
            crate::fs::host::HostKind::Regular,
            String::from("/dev/zero (deleted)"),
        );
        let f = crate::fs::OpenFile::new(
            Arc::new(file),
            crate::fs::oflags::O_RDWR,
            String::from("/dev/zero (deleted)"),
        );
        return map_host_shared(&f, len, 0, prot);
    }
    if flags & MAP_ANONYMOUS != 0 {
        let mut vma = Vma::anon(0, prot);
        vma.shared = shared;
        if flags & MAP_GROWSDOWN != 0 {
            vma.name = VmaName::Stack;
        }
        return proc.mm.map(place, len, prot, vma, false);
    }
    let f = proc.files.lock().get(fd)?;
    if !f.readable() || f.file.is_dir() {
        return Err(Errno::EACCES);
    }
    if shared && prot & PROT_WRITE != 0 && !f.writable() {
        return Err(Errno::EACCES);
    }
    // A writable-shared mapping of a host file really is shared with the
    // file and other processes: host memory outside the enclave.
    if shared && f.file.is_host_regular() && flags & MAP_FIXED == 0 {
        return map_host_shared(&f, crate::util::align_up(len, PAGE), off, prot);
    }
    let st = f.file.stat()?;
    let vma = Vma {
        end: 0,
        prot,
        shared,
        name: VmaName::File(Arc::from(f.path.as_str())),
        offset: off,
        inode: st.st_ino,
        lazy: None,
    };
    // Pages come from the file when first touched (verified, for trusted
    // files); bytes past the end of the file read as zero.
    let file_len = f.file.size().unwrap_or(0).saturating_sub(off);
    proc.mm
        .map_lazy(place, len, prot, vma, f.file.clone(), off, file_len)
}

/// Map `len` bytes of the host file behind `f` shared, outside the
/// enclave (the host's memory, shared with the file and other processes).
fn map_host_shared(
    f: &Arc<crate::fs::OpenFile>,
    len: u64,
    off: u64,
    prot: u32,
) -> Result<u64, Errno> {
    let Some(hfd) = f.file.host_fd() else {
        return Err(Errno::ENODEV);
    };
    let (id, at) = crate::host::calls::map_shared(hfd, len, off, prot, 0)?;
    let lo = crate::boot::enclave().info.enclave_size;
    if at % PAGE != 0 || at < lo || at.checked_add(len).is_none() {
        crate::host::hostile(
            conf_abi::ocall::Ocall::MapShared,
            "a shared mapping inside the enclave or misaligned",
        );
    }
    process().mm.add_shared(
        at,
        crate::mm::SharedMap {
            end: at + len,
            prot,
            id,
            offset: off,
            file: f.clone(),
        },
    );
    Ok(at)
}

/// implements munmap(2)
pub fn sys_munmap(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    process().mm.unmap(a[0], a[1]).map(|_| 0)
}

/// implements mprotect(2)
pub fn sys_mprotect(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let prot = check_prot(a[2])?;
    process().mm.protect(a[0], a[1], prot).map(|_| 0)
}

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

/// implements mremap(2)
pub fn sys_mremap(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    let flags = a[3];
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
        || flags & MREMAP_DONTUNMAP != 0
    {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::EINVAL);
    }
    let fixed = (flags & MREMAP_FIXED != 0).then_some(a[4]);
    process()
        .mm
        .remap(a[0], a[1], a[2], flags & MREMAP_MAYMOVE != 0, fixed)
}

/// implements brk(2)
pub fn sys_brk(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    Ok(process().mm.brk(a[0]))
}

const MADV_DONTNEED: u64 = 4;
const MADV_FREE: u64 = 8;
const MADV_REMOVE: u64 = 9;

/// implements madvise(2): DONTNEED zeroes, the rest are hints.
pub fn sys_madvise(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if !a[0].is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    match a[2] {
        MADV_DONTNEED | MADV_REMOVE => process().mm.discard(a[0], a[1]).map(|_| 0),
        // FREE lets the kernel discard lazily: keeping the data is allowed.
        MADV_FREE => Ok(0),
        _ => Ok(0),
    }
}

/// implements msync(2): file mappings are private copies, nothing to write.
pub fn sys_msync(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if !a[0].is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    if !process().mm.check(a[0], a[1].max(1), 0) {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

/// implements mlock(2) and friends: enclave pages are never swapped by the
/// LibOS, so locking succeeds trivially.
pub fn sys_mlock(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Ok(0)
}

/// implements mincore(2): every mapped page is resident.
pub fn sys_mincore(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if !a[0].is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let pages = a[1].div_ceil(PAGE) as usize;
    if !process().mm.check(a[0], a[1].max(1), 0) {
        return Err(Errno::ENOMEM);
    }
    let v = super::uaccess::slice_mut(a[2], pages)?;
    v.fill(1);
    Ok(0)
}
