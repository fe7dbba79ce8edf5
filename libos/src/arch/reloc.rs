//! Self-relocation of the LibOS image.
//!
//! The LibOS is a static PIE whose pages are measured before anyone knows
//! where ELRANGE will be, so the image carries R_X86_64_RELATIVE relocations
//! that the first thread applies at boot. Until then no pointer stored in a
//! static may be used; this code reads only RIP-relative linker symbols.

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

const DT_NULL: i64 = 0;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_RELAENT: i64 = 9;
const DT_RELRSZ: i64 = 35;
const DT_RELR: i64 = 36;
const R_X86_64_NONE: u64 = 0;
const R_X86_64_RELATIVE: u64 = 8;

/// Load address of the LibOS image.
///
/// Taken with a RIP-relative `lea`: a Rust `extern static` would be reached
/// through the GOT, which is not relocated yet.
pub fn image_base() -> u64 {
    let v: u64;
    // SAFETY: computes an address.
    unsafe {
        core::arch::asm!("lea {}, [rip + __ehdr_start]", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

fn dynamic_section() -> *const Dyn {
    let v: u64;
    // SAFETY: computes an address.
    unsafe {
        core::arch::asm!("lea {}, [rip + _DYNAMIC]", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v as *const Dyn
}

/// Apply the image's relocations. Returns false if it holds a relocation
/// other than RELATIVE (a build problem, not a runtime one).
///
/// # Safety
/// Call once, on the first entry, before any other thread runs.
pub unsafe fn relocate_self() -> bool {
    let base = image_base();
    let mut d = dynamic_section();
    let (mut rela, mut relasz, mut relaent) = (0u64, 0u64, core::mem::size_of::<Rela>() as u64);
    let (mut relr, mut relrsz) = (0u64, 0u64);
    loop {
        let tag = (*d).tag;
        let val = (*d).val;
        match tag {
            DT_NULL => break,
            DT_RELA => rela = val,
            DT_RELASZ => relasz = val,
            DT_RELAENT => relaent = val,
            DT_RELR => relr = val,
            DT_RELRSZ => relrsz = val,
            _ => {}
        }
        d = d.add(1);
    }
    if relaent != core::mem::size_of::<Rela>() as u64 {
        return false;
    }
    let mut i = 0;
    while i < relasz / relaent {
        let r = (base + rela + i * relaent) as *const Rela;
        match (*r).info & 0xffff_ffff {
            R_X86_64_RELATIVE => {
                let at = (base + (*r).offset) as *mut u64;
                at.write((base as i64).wrapping_add((*r).addend) as u64);
            }
            R_X86_64_NONE => {}
            _ => return false,
        }
        i += 1;
    }
    // DT_RELR: packed relative relocations (ld -z pack-relative-relocs).
    let mut where_: *mut u64 = core::ptr::null_mut();
    let mut j = 0;
    while j < relrsz / 8 {
        let entry = *((base + relr + j * 8) as *const u64);
        if entry & 1 == 0 {
            where_ = (base + entry) as *mut u64;
            *where_ += base;
            where_ = where_.add(1);
        } else {
            let mut bits = entry >> 1;
            let mut k = 0;
            while bits != 0 {
                if bits & 1 != 0 {
                    *where_.add(k) += base;
                }
                bits >>= 1;
                k += 1;
            }
            where_ = where_.add(63);
        }
        j += 1;
    }
    true
}
