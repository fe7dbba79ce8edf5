//! System calls that fit no family: randomness, futexes (single thread).

use conf_abi::Errno;

use super::{uaccess, Ctx};

/// implements getrandom(2) from RDRAND.
pub fn sys_getrandom(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    if a[2] & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let len = (a[1] as usize).min(32 << 20);
    let buf = uaccess::slice_mut(a[0], len)?;
    crate::arch::fill_random(buf);
    Ok(len as u64)
}

/// implements futex(2)
pub fn sys_futex(_: &mut Ctx<'_>, a: [u64; 6]) -> Result<u64, Errno> {
    crate::sync::futex::futex(a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32)
}

/// implements rseq(2): not provided; glibc falls back.
pub fn sys_rseq(_: &mut Ctx<'_>, _a: [u64; 6]) -> Result<u64, Errno> {
    Err(Errno::ENOSYS)
}
