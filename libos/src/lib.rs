//! conf-libos: the trusted library OS that runs inside the enclave.
//!
//! It is entered only through `arch::entry` (TCS.OENTRY): at boot, when the
//! program makes a system call (trapped, or through a rewritten call site),
//! when the program faults, and when the host returns from an OCALL. It
//! reaches the host only through the OCALL ring (`host`) and EEXIT.
#![cfg_attr(not(test), no_std)]
#![allow(clippy::missing_safety_doc)]

extern crate alloc;

#[macro_use]
pub mod log;
pub mod arch;
pub mod boot;
pub mod entry;
pub mod event;
pub mod fs;
pub mod host;
pub mod mm;
pub mod net;
pub mod process;
pub mod signal;
pub mod sync;
pub mod syscall;
pub mod time;
pub mod util;

#[cfg(feature = "enclave")]
#[global_allocator]
static HEAP: mm::heap::LibosHeap = mm::heap::LibosHeap::new();

/// The LibOS heap (for boot to hand it memory, and for statistics).
#[cfg(feature = "enclave")]
pub fn heap() -> &'static mm::heap::LibosHeap {
    &HEAP
}

/// Outside the enclave binary (unit tests, a host build of the library)
/// the host's allocator serves; this heap is unused.
#[cfg(not(feature = "enclave"))]
pub fn heap() -> &'static mm::heap::LibosHeap {
    static UNUSED: mm::heap::LibosHeap = mm::heap::LibosHeap::new();
    &UNUSED
}

#[cfg(feature = "enclave")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    host::abort(
        conf_abi::entry::AbortCode::Panic,
        format_args!("LibOS bug: {info}"),
    )
}

// core::fmt and friends call these; the Linux target expects libc to have them.
#[cfg(feature = "enclave")]
mod mem_builtins {
    #[no_mangle]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
        dst
    }

    #[no_mangle]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            return memcpy(dst, src, n);
        }
        // Overlapping with dst after src: copy backwards.
        core::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n).wrapping_sub(1) => _,
            inout("rsi") src.add(n).wrapping_sub(1) => _,
            options(nostack)
        );
        dst
    }

    #[no_mangle]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags));
        dst
    }

    #[no_mangle]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        let mut i = 0;
        while i < n {
            let (x, y) = (*a.add(i), *b.add(i));
            if x != y {
                return x as i32 - y as i32;
            }
            i += 1;
        }
        0
    }

    #[no_mangle]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        memcmp(a, b, n)
    }

    #[no_mangle]
    pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
        let mut n = 0;
        while *s.add(n) != 0 {
            n += 1;
        }
        n
    }
}

/// The precompiled `alloc` references the unwinding personality routine even
/// though the LibOS is built with panic=abort and never unwinds.
#[cfg(feature = "enclave")]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Landing pads in the precompiled `alloc` end in this call; with
/// panic=abort no unwinding ever starts, so it is never reached.
#[cfg(feature = "enclave")]
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    host::abort(
        conf_abi::entry::AbortCode::Panic,
        format_args!("unwinding is not supported in the LibOS"),
    )
}
