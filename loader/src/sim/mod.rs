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

/// What is left to load of a region once its pages that could be mapped
/// are: where, how much, its bytes and its final protection.
struct Unmapped<'a> {
    addr: u64,
    len: usize,
    content: &'a [u8],
    prot: i32,
    what: &'a str,
}

impl Unmapped<'_> {
    fn end(&self) -> u64 {
        self.addr + self.len as u64
    }

    fn error(&self) -> SimError {
        SimError::Load {
            what: self.what.to_string(),
            addr: self.addr,
            source: io::Error::last_os_error(),
        }
    }
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

const PAGE: usize = conf_abi::layout::PAGE_SIZE as usize;

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
        let mut rest: Vec<Unmapped> = Vec::new();
        for r in &layout.regions {
            if r.measure == Measure::Dynamic {
                continue;
            }
            let len = (r.pages * conf_abi::layout::PAGE_SIZE) as usize;
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
            if len > mapped {
                rest.push(Unmapped {
                    addr: r.offset + mapped as u64,
                    len: len - mapped,
                    content: &content[mapped..],
                    prot,
                    what: &r.what,
                });
            }
        }
        // Adjacent regions (a thread slot's stack, TLS, TCS and SSA) are
        // made writable in one call, filled, and restricted where they must
        // be: two calls a slot where there were ten (a JVM has 64 slots).
        rest.sort_by_key(|u| u.addr);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        for run in rest.chunk_by(|a, b| a.end() == b.addr) {
            let (lo, hi) = (run[0].addr, run[run.len() - 1].end());
            // SAFETY: inside our reservation.
            if unsafe { libc::mprotect(lo as *mut _, (hi - lo) as usize, rw) } != 0 {
                return Err(run[0].error());
            }
            for u in run {
                // SAFETY: writable pages of our reservation just made so;
                // content length ≤ region length.
                unsafe {
                    // One call faults in the pages about to be written,
                    // instead of one fault each. Older kernels say EINVAL
                    // and the copy faults them in.
                    if u.content.len() > PAGE {
                        libc::madvise(u.addr as *mut _, u.content.len(), MADV_POPULATE_WRITE);
                    }
                    std::ptr::copy_nonoverlapping(
                        u.content.as_ptr(),
                        u.addr as *mut u8,
                        u.content.len(),
                    );
                    if u.prot != rw && libc::mprotect(u.addr as *mut _, u.len, u.prot) != 0 {
                        return Err(u.error());
                    }
                }
            }
        }
        Ok(SimEnclave {
            base: 0,
            size: layout.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use conf_abi::layout::{SlotGeometry, PAGE_SIZE};
    use conf_abi::manifest::ResolvedManifest;

    use super::SimEnclave;
    use crate::image::EnclaveLayout;

    /// The protection /proc/self/maps shows at `addr` ("r-xp", "---p", ...).
    fn prot_at(addr: u64) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (
                u64::from_str_radix(lo, 16).unwrap(),
                u64::from_str_radix(hi, 16).unwrap(),
            );
            if (lo..hi).contains(&addr) {
                return perms.to_string();
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    /// Each region gets its own protection, and a slot's pages theirs, when
    /// adjacent regions are loaded together: the guard page and the TCS stay
    /// out of reach, the LibOS code is read-only and executable and holds
    /// the LibOS's bytes.
    #[test]
    fn created_pages_have_the_layouts_protections_and_bytes() {
        let m = ResolvedManifest {
            max_threads: 3,
            ..Default::default()
        };
        let bytes = Arc::new(m.encode());
        let layout = EnclaveLayout::build(crate::libos::LIBOS_ELF, &m, &bytes).unwrap();
        let e = SimEnclave::create(&layout).unwrap();
        let info = &layout.info;
        for slot in 0..info.nslots as u64 {
            let base = e.base + info.slots_offset + slot * SlotGeometry::SIZE;
            let expect = [
                (0, "---p", "guard"),
                (SlotGeometry::STACK_OFFSET, "rw-p", "stack"),
                (SlotGeometry::TLS_OFFSET, "rw-p", "TLS"),
                (SlotGeometry::TCS_OFFSET, "---p", "TCS"),
                (SlotGeometry::SSA_OFFSET, "rw-p", "SSA"),
            ];
            for (offset, perms, what) in expect {
                assert_eq!(prot_at(base + offset), perms, "slot {slot} {what}");
            }
            // SAFETY: the TLS page is readable; its record was copied in.
            let tls =
                unsafe { std::ptr::read((base + SlotGeometry::TLS_OFFSET + 8) as *const u64) };
            assert_eq!(tls, slot, "slot {slot} TLS record");
        }
        let code = layout.regions.iter().filter(|r| {
            r.measure == crate::image::Measure::Measured && r.perms & conf_abi::layout::perm::X != 0
        });
        for r in code {
            let addr = e.base + r.offset;
            assert_eq!(prot_at(addr), "r-xp", "{}", r.what);
            // SAFETY: mapped readable just above.
            let got = unsafe { std::slice::from_raw_parts(addr as *const u8, r.content.len()) };
            assert!(got == &r.content[..], "{} holds the LibOS's bytes", r.what);
            let end = addr + r.pages * PAGE_SIZE;
            // SAFETY: the region's last page, readable.
            let tail = unsafe {
                std::slice::from_raw_parts(
                    (addr + r.content.len() as u64) as *const u8,
                    (end - addr) as usize - r.content.len(),
                )
            };
            assert!(tail.iter().all(|&b| b == 0), "{} ends in zeros", r.what);
        }
    }
}
