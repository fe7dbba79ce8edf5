//! Checked access to program memory. Pointers from system call arguments
//! stop here: handlers below get slices, strings and values.

use alloc::vec::Vec;

use conf_abi::Errno;

use crate::mm::{PROT_READ, PROT_WRITE};
use crate::process::process;

/// The program bytes `[addr, addr+len)`, which must be mapped readable.
pub fn slice<'a>(addr: u64, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    if addr == 0 || !process().mm.check(addr, len as u64, PROT_READ) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the range is mapped and readable program memory.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// The program bytes `[addr, addr+len)`, which must be mapped writable.
pub fn slice_mut<'a>(addr: u64, len: usize) -> Result<&'a mut [u8], Errno> {
    if len == 0 {
        return Ok(&mut []);
    }
    if addr == 0 || !process().mm.check(addr, len as u64, PROT_WRITE) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the range is mapped and writable program memory.
    Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
}

/// Read a `T` (plain data) from program memory.
pub fn read<T: Copy>(addr: u64) -> Result<T, Errno> {
    let b = slice(addr, core::mem::size_of::<T>())?;
    // SAFETY: T is plain data and the bytes are readable; unaligned read.
    Ok(unsafe { core::ptr::read_unaligned(b.as_ptr() as *const T) })
}

/// Write a `T` (plain data) to program memory.
pub fn write<T: Copy>(addr: u64, v: &T) -> Result<(), Errno> {
    let b = slice_mut(addr, core::mem::size_of::<T>())?;
    // SAFETY: as above.
    unsafe { core::ptr::write_unaligned(b.as_mut_ptr() as *mut T, *v) };
    Ok(())
}

/// Copy `bytes` to program memory at `addr`.
pub fn copy_out(addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    slice_mut(addr, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

/// A NUL-terminated string of at most `max` bytes (without the NUL).
pub fn cstr(addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        // Check a page at a time so a string near the end of a mapping works.
        let page_end = (at | 0xfff) + 1;
        let chunk = slice(at, (page_end - at) as usize)?;
        if let Some(i) = chunk.iter().position(|&c| c == 0) {
            out.extend_from_slice(&chunk[..i]);
            break;
        }
        out.extend_from_slice(chunk);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        at = page_end;
    }
    if out.len() > max {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(out)
}

/// A path argument (PATH_MAX).
pub fn path(addr: u64) -> Result<Vec<u8>, Errno> {
    let p = cstr(addr, 4095)?;
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    Ok(p)
}

/// A NULL-terminated array of string pointers (argv, envp).
pub fn string_array(addr: u64) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        let p: u64 = read(addr + i * 8)?;
        if p == 0 {
            break;
        }
        let s = cstr(p, 128 * 1024)?;
        total += s.len() + 1;
        if total > 2 << 20 || i > 65536 {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

/// An iovec array: (base, len) pairs.
pub fn iovecs(addr: u64, count: u64) -> Result<Vec<(u64, usize)>, Errno> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let base: u64 = read(addr + i * 16)?;
        let len: u64 = read(addr + i * 16 + 8)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push((base, len as usize));
    }
    Ok(out)
}
