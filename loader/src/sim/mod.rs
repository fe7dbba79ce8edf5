//! The sim backend: an enclave emulated in this process.
//!
//! ELRANGE is reserved at address 0 (so non-PIE programs fit), the measured
//! pages are copied in with their permissions (the LibOS's read-only ones
//! mapped from this executable: `own_pages.rs`), and EENTER/EEXIT/AEX are
//! emulated by the gate (`gate.rs`) and the signal handler (`signals.rs`).
//! Enclave threads run with Syscall User Dispatch on and only the gate page
//! allowed, so a system call anywhere in the enclave traps — the program's
//! are served by the LibOS, the LibOS's own are caught as a bug.

pub mod cpuid;
pub mod gate;
mod own_pages;
pub mod signals;
pub mod thread;

use std::io;

use conf_abi::layout::perm;

use crate::image::{EnclaveLayout, Measure, PageType};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not reserve ELRANGE [{lo:#x}, {hi:#x}) in this process: {source}; lower sgx.enclave_size")]
    Reserve { lo: u64, hi: u64, source: io::Error },
    #[error("could not load enclave region {what} at {addr:#x}: {source}")]
    Load {
        what: String,
        addr: u64,
        source: io::Error,
    },
    #[error("could not start the sim backend: {0}")]
    Setup(io::Error),
}

/// An emulated enclave: ELRANGE in this process, pages loaded.
pub struct SimEnclave {
    pub base: u64,
    pub size: u64,
}

fn prot_of(perms: u8) -> i32 {
    let mut p = libc::PROT_NONE;
    if perms & perm::R != 0 {
        p |= libc::PROT_READ;
    }
    if perms & perm::W != 0 {
        p |= libc::PROT_WRITE;
    }
    if perms & perm::X != 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

/// madvise(2) advice (Linux 5.14), not in every libc crate version.
const MADV_POPULATE_WRITE: libc::c_int = 23;

impl SimEnclave {
    /// Reserve ELRANGE at 0 and add every page of `layout` (dynamic heap
    /// pages stay inaccessible until the LibOS asks for them).
    pub fn create(layout: &EnclaveLayout) -> Result<SimEnclave, SimError> {
        let lo = conf_abi::layout::HEAP_START;
        let hi = layout.size;
        // SAFETY: a fresh reservation; MAP_FIXED_NOREPLACE fails rather than
        // replace anything already mapped there.
        let p = unsafe {
            libc::mmap(
                lo as *mut _,
                (hi - lo) as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p as u64 != lo {
            return Err(SimError::Reserve {
                lo,
                hi,
                source: io::Error::last_os_error(),
            });
        }
        let own_exe = own_pages::OwnExe::open();
        for r in &layout.regions {
            if r.measure == Measure::Dynamic {
                continue;
            }
            let len = (r.pages * conf_abi::layout::PAGE_SIZE) as usize;
            let load_err = |what: &str| SimError::Load {
                what: what.to_string(),
                addr: r.offset,
                source: io::Error::last_os_error(),
            };
            // A TCS is only for the CPU: the enclave cannot read it either.
            let prot = if r.page_type == PageType::Tcs {
                libc::PROT_NONE
            } else {
                prot_of(r.perms)
            };
            let content = &r.content[..r.content.len().min(len)];
            // The LibOS's code and read-only data: whole pages of this
            // executable, mapped; the rest is copied.
            let mapped = match (&own_exe, &r.content) {
                (Some(exe), crate::image::layout::Content::Borrowed(_)) => {
                    exe.map(content, r.offset, prot)
                }
                _ => 0,
            };
            let addr = (r.offset + mapped as u64) as *mut libc::c_void;
            let (len, content) = (len - mapped, &content[mapped..]);
            if len == 0 {
                continue;
            }
            // SAFETY: inside our reservation; content length ≤ region length.
            unsafe {
                if libc::mprotect(addr, len, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                    return Err(load_err(&r.what));
                }
                // One call faults in the pages about to be written, instead
                // of one fault each. Older kernels say EINVAL and the copy
                // faults them in.
                if !content.is_empty() {
                    libc::madvise(addr, content.len(), MADV_POPULATE_WRITE);
                }
                std::ptr::copy_nonoverlapping(content.as_ptr(), addr as *mut u8, content.len());
                if libc::mprotect(addr, len, prot) != 0 {
                    return Err(load_err(&r.what));
                }
            }
        }
        Ok(SimEnclave {
            base: 0,
            size: layout.size,
        })
    }
}
