//! The initial stack of a program: argc, argv, envp, the auxiliary vector
//! and the strings they point to, laid out as the Linux kernel does.

use alloc::vec::Vec;

use conf_abi::Errno;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// Writes downward from the top of the stack mapping.
struct Builder {
    lo: u64,
    sp: u64,
}

impl Builder {
    fn push_bytes(&mut self, b: &[u8]) -> Result<u64, Errno> {
        let new = self
            .sp
            .checked_sub(b.len() as u64)
            .filter(|&s| s >= self.lo)
            .ok_or(Errno::E2BIG)?;
        // SAFETY: [new, sp) is inside the freshly mapped, writable stack.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), new as *mut u8, b.len()) };
        self.sp = new;
        Ok(new)
    }

    fn push_cstr(&mut self, s: &[u8]) -> Result<u64, Errno> {
        self.push_bytes(&[0])?;
        self.push_bytes(s)
    }
}

/// Build the initial stack in `[lo, top)`; returns the initial stack pointer.
pub fn build(
    lo: u64,
    top: u64,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    auxv: &[(u64, u64)],
    execfn: &[u8],
) -> Result<u64, Errno> {
    let mut b = Builder { lo, sp: top };
    let execfn_addr = b.push_cstr(execfn)?;
    let mut env_addrs = Vec::with_capacity(envp.len());
    for e in envp.iter().rev() {
        env_addrs.push(b.push_cstr(e)?);
    }
    env_addrs.reverse();
    let mut arg_addrs = Vec::with_capacity(argv.len());
    for a in argv.iter().rev() {
        arg_addrs.push(b.push_cstr(a)?);
    }
    arg_addrs.reverse();
    let platform = b.push_cstr(b"x86_64")?;
    let mut random = [0u8; 16];
    crate::arch::fill_random(&mut random);
    let random_addr = b.push_bytes(&random)?;

    let mut aux: Vec<(u64, u64)> = auxv.to_vec();
    aux.push((AT_RANDOM, random_addr));
    aux.push((AT_PLATFORM, platform));
    aux.push((AT_EXECFN, execfn_addr));
    aux.push((AT_NULL, 0));

    let words = 1 + arg_addrs.len() + 1 + env_addrs.len() + 1 + aux.len() * 2;
    let mut sp = (b.sp - words as u64 * 8) & !0xf;
    if sp < lo {
        return Err(Errno::E2BIG);
    }
    let start = sp;
    let mut put = |v: u64| {
        // SAFETY: [start, start + words*8) is inside the stack (checked).
        unsafe { (sp as *mut u64).write(v) };
        sp += 8;
    };
    put(arg_addrs.len() as u64);
    for a in &arg_addrs {
        put(*a);
    }
    put(0);
    for e in &env_addrs {
        put(*e);
    }
    put(0);
    for (k, v) in &aux {
        put(*k);
        put(*v);
    }
    Ok(start)
}
