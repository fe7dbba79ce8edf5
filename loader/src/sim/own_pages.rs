//! Enclave pages mapped from conf-run's own executable instead of copied.
//!
//! The LibOS's code and read-only data (~200 pages) are bytes of this
//! executable (`crate::libos::LIBOS_ELF`, page-aligned in it). Copying them
//! into ELRANGE cost every start a fresh page each, allocated, cleared and
//! filled (~1 us a page on the development VM); mapping the executable's
//! pages privately at the same place shares the page cache, as the kernel
//! does for conf-run's own code. The enclave sees the same bytes: they are
//! the measured ones, read from the file this process runs, which cannot
//! be written while it runs (ETXTBSY).

use std::os::fd::{AsRawFd, OwnedFd};

const PAGE: usize = 4096;

/// A loaded segment of the executable: where its file bytes are in memory
/// and in the file.
struct Segment {
    addr: usize,
    file_len: usize,
    offset: usize,
}

pub struct OwnExe {
    file: OwnedFd,
    segments: Vec<Segment>,
}

unsafe extern "C" fn main_program_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    out: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader hands a valid info whose phdrs array has
    // dlpi_phnum entries; `out` is the Vec passed below.
    unsafe {
        let info = &*info;
        let out = &mut *(out as *mut Vec<Segment>);
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type == libc::PT_LOAD {
                out.push(Segment {
                    addr: info.dlpi_addr as usize + ph.p_vaddr as usize,
                    file_len: ph.p_filesz as usize,
                    offset: ph.p_offset as usize,
                });
            }
        }
    }
    // The main program comes first: stop there.
    1
}

impl OwnExe {
    /// The running executable and its segments; None without /proc.
    pub fn open() -> Option<OwnExe> {
        let file = std::fs::File::open("/proc/self/exe").ok()?;
        let mut segments: Vec<Segment> = Vec::new();
        // SAFETY: the callback only reads what the loader gives it and
        // writes to `segments`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(main_program_segments),
                &mut segments as *mut Vec<Segment> as *mut libc::c_void,
            );
        }
        Some(OwnExe {
            file: file.into(),
            segments,
        })
    }

    /// Where `bytes` are in the executable, if they lie whole in the file
    /// part of one of its segments and start on a page.
    fn offset_of(&self, bytes: &[u8]) -> Option<usize> {
        let at = bytes.as_ptr() as usize;
        if !at.is_multiple_of(PAGE) {
            return None;
        }
        let s = self
            .segments
            .iter()
            .find(|s| at >= s.addr && at + bytes.len() <= s.addr + s.file_len)?;
        let offset = s.offset + (at - s.addr);
        offset.is_multiple_of(PAGE).then_some(offset)
    }

    /// Map the whole pages of `bytes` (bytes of this executable) at `addr`
    /// with protection `prot`, replacing what is there. Returns how many
    /// bytes it mapped: a multiple of the page size, 0 when it cannot. The
    /// caller copies the rest (the last, partial page must read as zeros
    /// past `bytes`, where the file goes on).
    pub fn map(&self, bytes: &[u8], addr: u64, prot: i32) -> usize {
        let whole = bytes.len() / PAGE * PAGE;
        if whole == 0 || prot & libc::PROT_WRITE != 0 {
            return 0;
        }
        let Some(offset) = self.offset_of(bytes) else {
            return 0;
        };
        // SAFETY: `addr` is inside the caller's reservation, which it
        // replaces; the file range is part of this executable's image.
        // MAP_POPULATE maps the page-cache pages now (no allocation), so
        // the LibOS does not fault on each first touch.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                whole,
                prot,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_POPULATE,
                self.file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p as u64 == addr {
            whole
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libos_is_mapped_from_this_executable_as_it_is_in_memory() {
        let exe = OwnExe::open().expect("/proc/self/exe");
        let elf = crate::libos::LIBOS_ELF;
        assert!(
            exe.offset_of(elf).is_some(),
            "LIBOS_ELF is page-aligned in the file"
        );
        // SAFETY: a fresh private mapping for the test.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                elf.len() + PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as u64;
        let n = exe.map(elf, at, libc::PROT_READ);
        assert_eq!(n, elf.len() / PAGE * PAGE);
        // SAFETY: just mapped readable.
        let mapped = unsafe { std::slice::from_raw_parts(at as *const u8, n) };
        assert!(mapped == &elf[..n]);
        assert_eq!(
            exe.map(elf, at, libc::PROT_READ | libc::PROT_WRITE),
            0,
            "never writable"
        );
        assert_eq!(
            exe.map(&elf[1..], at, libc::PROT_READ),
            0,
            "whole pages only"
        );
        // SAFETY: our mapping.
        unsafe { libc::munmap(at as *mut libc::c_void, elf.len() + PAGE) };
    }
}
