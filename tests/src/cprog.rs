//! Compiling the C test programs of `tests/c/` with the system C compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bins::workspace_root;

/// How a C test program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `-static -no-pie`: an ET_EXEC at a fixed address, no interpreter.
    Static,
    /// `-static-pie`: an ET_DYN that relocates itself, no interpreter.
    StaticPie,
    /// The compiler's default: a PIE loaded by ld.so with libc.so.
    Dynamic,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Static, Variant::StaticPie, Variant::Dynamic];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Static => "static",
            Variant::StaticPie => "static-pie",
            Variant::Dynamic => "dynamic",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Variant::Static => &["-fno-pie", "-no-pie", "-static", "-DCONF_VARIANT_STATIC"],
            Variant::StaticPie => &["-fPIE", "-static-pie", "-DCONF_VARIANT_STATIC_PIE"],
            Variant::Dynamic => &["-fPIE", "-pie", "-DCONF_VARIANT_DYNAMIC"],
        }
    }
}

/// The directory of the C sources.
pub fn c_dir() -> PathBuf {
    workspace_root().join("tests").join("c")
}

/// What the ELF header and program headers say about a binary.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfKind {
    pub e_type: u16,
    pub has_interp: bool,
}

/// Read the ELF type and whether there is a PT_INTERP, to make sure a
/// variant is what its name says.
pub fn elf_kind(path: &Path) -> ElfKind {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        b.len() > 64 && &b[..4] == b"\x7fELF" && b[4] == 2,
        "{} is not a 64-bit ELF",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let e_type = u16_at(16);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    let has_interp = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3);
    ElfKind { e_type, has_interp }
}

/// Compile `tests/c/<name>.c` as `variant` into `out_dir/<name>-<variant>`
/// and check the result's ELF type. Returns the binary's path.
pub fn compile(name: &str, variant: Variant, out_dir: &Path) -> PathBuf {
    let src = c_dir().join(format!("{name}.c"));
    assert!(src.is_file(), "no C test program {}", src.display());
    let out = out_dir.join(format!("{name}-{}", variant.name()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = Command::new(&cc)
        .args(["-std=gnu11", "-O1", "-g0", "-Wall", "-D_GNU_SOURCE"])
        .args(variant.flags())
        .arg("-I")
        .arg(c_dir())
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    if !res.status.success() {
        panic!(
            "compiling {} ({}) failed:\n{}",
            src.display(),
            variant.name(),
            String::from_utf8_lossy(&res.stderr)
        );
    }
    let kind = elf_kind(&out);
    let want = match variant {
        Variant::Static => ElfKind {
            e_type: 2,
            has_interp: false,
        },
        Variant::StaticPie => ElfKind {
            e_type: 3,
            has_interp: false,
        },
        Variant::Dynamic => ElfKind {
            e_type: 3,
            has_interp: true,
        },
    };
    assert_eq!(
        kind,
        want,
        "{} is not the {} variant it should be",
        out.display(),
        variant.name()
    );
    out
}
