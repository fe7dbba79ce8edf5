//! Enclave pages the host fills on request (`Ocall::LazyPages`), with a
//! userfaultfd.
//!
//! A lazy file mapping's pages used to stay inaccessible until the LibOS
//! filled them: writing them through /proc/self/mem (a copy into pages the
//! kernel allocates and clears first) and then an mprotect, whose TLB
//! shootdown reaches every CPU the process ran on. Registered with a
//! userfaultfd instead, the pages carry their final protection from the
//! start and are simply absent: a touch raises SIGBUS (UFFD_FEATURE_SIGBUS,
//! so no thread waits on the descriptor), and UFFDIO_COPY installs a
//! filled page in one copy with nothing to flush.
//!
//! UFFD_USER_MODE_ONLY lets an unprivileged process use it whatever
//! vm.unprivileged_userfaultfd says; the kernel's own accesses (a host
//! system call reading a buffer there) then fail with EFAULT, which is why
//! the LibOS fills pages before it hands them to the host.

use std::io;

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFDIO_COPY_BIT: u64 = 1 << 3;

const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_aa01;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// Whether conf-run was told not to use userfaultfd
/// (`CONF_SIM_USERFAULTFD=0`: to compare, or where it misbehaves).
fn turned_off() -> bool {
    std::env::var_os("CONF_SIM_USERFAULTFD").is_some_and(|v| v == "0")
}

/// A userfaultfd of this process whose registered ranges raise SIGBUS
/// when touched before they are filled.
pub struct LazyFill {
    fd: libc::c_int,
}

impl LazyFill {
    /// Open one, or say why not (seccomp, an old kernel, turned off).
    pub fn open() -> io::Result<LazyFill> {
        if turned_off() {
            return Err(io::Error::other("turned off by CONF_SIM_USERFAULTFD=0"));
        }
        // SAFETY: userfaultfd(2) with flags only.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_userfaultfd,
                libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let lf = LazyFill { fd: fd as i32 };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_SIGBUS,
            ioctls: 0,
        };
        lf.ioctl(UFFDIO_API, &mut api)?;
        Ok(lf)
    }

    fn ioctl<T>(&self, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is the structure `request` reads and writes.
        if unsafe { libc::ioctl(self.fd, request, arg as *mut T) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Make `[addr, addr + len)` (private anonymous memory) raise SIGBUS
    /// where no page is present.
    pub fn register(&self, addr: u64, len: u64) -> io::Result<()> {
        let mut reg = UffdioRegister {
            range: UffdioRange { start: addr, len },
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        self.ioctl(UFFDIO_REGISTER, &mut reg)?;
        if reg.ioctls & UFFDIO_COPY_BIT == 0 {
            let _ = self.unregister(addr, len);
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        Ok(())
    }

    /// Make `[addr, addr + len)` ordinary memory again (parts never
    /// registered are left as they are).
    pub fn unregister(&self, addr: u64, len: u64) -> io::Result<()> {
        let mut range = UffdioRange { start: addr, len };
        self.ioctl(UFFDIO_UNREGISTER, &mut range)
    }

    /// Install pages at `dst` holding `src`. A page already present is
    /// handed to `present` (with its bytes from `src`), which may leave it
    /// or write it in place.
    pub fn copy(
        &self,
        dst: u64,
        src: &[u8],
        mut present: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        const PAGE: usize = conf_abi::layout::PAGE_SIZE as usize;
        let mut done = 0usize;
        // One copy must stay within one of the kernel's areas, and the
        // range may span several (split by an mprotect of part of it, or
        // where earlier mappings had their edges): refused so, a copy is
        // tried again with half the length, until it fits.
        let mut most = src.len();
        while done < src.len() {
            let len = most.min(src.len() - done);
            let mut c = UffdioCopy {
                dst: dst + done as u64,
                src: src[done..].as_ptr() as u64,
                len: len as u64,
                mode: 0,
                copy: 0,
            };
            let Err(e) = self.ioctl(UFFDIO_COPY, &mut c) else {
                done += len;
                most = src.len();
                continue;
            };
            if c.copy > 0 {
                done += c.copy as usize;
                continue;
            }
            match e.raw_os_error() {
                // The mappings changed meanwhile: try again.
                Some(libc::EAGAIN) => {}
                Some(libc::EEXIST) => {
                    let end = (done + PAGE).min(src.len());
                    present(dst + done as u64, &src[done..end])?;
                    done = end;
                }
                Some(libc::ENOENT) if len > PAGE => most = (len / 2).next_multiple_of(PAGE),
                _ => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for LazyFill {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn anon(len: usize, prot: i32) -> *mut u8 {
        // SAFETY: a fresh private mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p as *mut u8
    }

    /// A userfaultfd, or None (said on stderr) where this machine refuses
    /// one: the fallback is what the end-to-end tests run then.
    fn opened() -> Option<LazyFill> {
        let lf = LazyFill::open();
        if let Err(e) = &lf {
            eprintln!("userfaultfd unavailable here ({e}); the fallback is tested end to end");
        }
        lf.ok()
    }

    fn resident(addr: *mut u8, len: usize) -> Vec<bool> {
        let mut v = vec![0u8; len / PAGE];
        // SAFETY: mincore over our own mapping into a vector of its pages.
        assert_eq!(
            unsafe { libc::mincore(addr as *mut _, len, v.as_mut_ptr()) },
            0
        );
        v.into_iter().map(|b| b & 1 != 0).collect()
    }

    /// Filled pages hold the bytes and keep the mapping's protection;
    /// the others stay absent (a touch would raise SIGBUS, which the host
    /// kernel reports to a system call as EFAULT); a page already present
    /// is handed to the caller's `present`; after unregistering, absent
    /// pages are ordinary zero pages again.
    #[test]
    fn pages_appear_only_when_filled() {
        let Some(lf) = opened() else {
            return;
        };
        let len = 4 * PAGE;
        let p = anon(len, libc::PROT_READ);
        lf.register(p as u64, len as u64).unwrap();
        let src = vec![0x5au8; 2 * PAGE];
        lf.copy(p as u64 + PAGE as u64, &src, |_, _| {
            panic!("nothing was present")
        })
        .unwrap();
        assert_eq!(resident(p, len), [false, true, true, false]);
        // SAFETY: pages filled just now, readable.
        assert_eq!(unsafe { *p.add(PAGE + 7) }, 0x5a);
        // The kernel reading an absent page (write(2) from it) fails.
        let mut fds = [0; 2];
        // SAFETY: pipe(2) into an array of two.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: write(2) from a registered range, which the kernel checks.
        let n = unsafe { libc::write(fds[1], p as *const _, 16) };
        assert_eq!(n, -1);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EFAULT)
        );

        let mut overwritten = Vec::new();
        let again = vec![0x33u8; 3 * PAGE];
        lf.copy(p as u64, &again, |at, bytes| {
            overwritten.push(at);
            assert_eq!(bytes.len(), PAGE);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            overwritten,
            [p as u64 + PAGE as u64, p as u64 + 2 * PAGE as u64]
        );
        // SAFETY: filled pages.
        assert_eq!(unsafe { *p }, 0x33);

        lf.unregister(p as u64, len as u64).unwrap();
        // SAFETY: an ordinary readable page now: the zero page.
        assert_eq!(unsafe { *p.add(3 * PAGE) }, 0);
        // SAFETY: write(2) from readable memory.
        assert_eq!(
            unsafe { libc::write(fds[1], p.add(3 * PAGE) as *const _, 16) },
            16
        );
        // SAFETY: our own descriptors and mapping.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
            libc::munmap(p as *mut _, len);
        }
    }

    /// A range the kernel keeps as several areas (part of it given
    /// another protection) is filled whole.
    #[test]
    fn a_fill_may_span_several_areas() {
        let Some(lf) = opened() else {
            return;
        };
        let len = 8 * PAGE;
        let p = anon(len, libc::PROT_READ);
        lf.register(p as u64, len as u64).unwrap();
        // SAFETY: part of our own mapping.
        assert_eq!(
            unsafe {
                libc::mprotect(
                    p.add(5 * PAGE) as *mut _,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            },
            0
        );
        let src: Vec<u8> = (0..len).map(|i| (i / PAGE) as u8 + 1).collect();
        lf.copy(p as u64, &src, |_, _| panic!("nothing was present"))
            .unwrap();
        assert_eq!(resident(p, len), [true; 8]);
        for page in 0..8 {
            // SAFETY: filled, readable pages.
            assert_eq!(unsafe { *p.add(page * PAGE + 9) }, page as u8 + 1);
        }
        // SAFETY: our own mapping.
        unsafe { libc::munmap(p as *mut _, len) };
    }

    /// A fill over pages one of which is present already (filled before,
    /// and written by the program since) fills the others and, told to
    /// leave present pages, keeps what was written there.
    #[test]
    fn a_present_page_keeps_what_the_program_wrote() {
        let Some(lf) = opened() else {
            return;
        };
        let len = 3 * PAGE;
        let p = anon(len, libc::PROT_READ | libc::PROT_WRITE);
        lf.register(p as u64, len as u64).unwrap();
        lf.copy(p as u64 + PAGE as u64, &[1u8; PAGE], |_, _| {
            panic!("nothing was present")
        })
        .unwrap();
        // SAFETY: the page filled just now, writable.
        unsafe { *p.add(PAGE + 5) = 99 };
        let mut seen = 0;
        lf.copy(p as u64, &vec![7u8; len], |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 1);
        // SAFETY: all three pages are present and readable now.
        unsafe {
            assert_eq!(*p.add(5), 7);
            assert_eq!(*p.add(PAGE + 5), 99);
            assert_eq!(*p.add(2 * PAGE + 5), 7);
            libc::munmap(p as *mut _, len);
        }
    }
}
