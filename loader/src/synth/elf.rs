//! What a program file is: an x86-64 ELF (its interpreter, DT_NEEDED,
//! DT_RPATH, DT_RUNPATH), a `#!` script, or something else.
//!
//! Only the parts the dynamic loader looks at are read: the ELF header,
//! the program headers, PT_INTERP, PT_DYNAMIC and the few strings of the
//! dynamic string table that the dynamic entries name. A 20 MB library
//! costs a handful of small reads, never the whole file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::Elf;

use super::observe;

/// The dynamic-linking facts of an ELF file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ElfInfo {
    /// PT_INTERP: the dynamic loader (`/lib64/ld-linux-x86-64.so.2`).
    pub interp: Option<String>,
    /// DT_NEEDED, in order.
    pub needed: Vec<String>,
    /// DT_SONAME.
    pub soname: Option<String>,
    /// DT_RPATH, split at `:`, not yet expanded (`$ORIGIN` ...).
    pub rpath: Vec<String>,
    /// DT_RUNPATH, split at `:`, not yet expanded.
    pub runpath: Vec<String>,
    /// DF_1_NODEFLIB: the cache and the default directories are not searched.
    pub nodeflib: bool,
}

/// A `#!` line, as the kernel reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shebang {
    /// The interpreter path as written.
    pub interp: String,
    /// The one optional argument (everything after the interpreter, trimmed).
    pub arg: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum FileKind {
    Elf(ElfInfo),
    Script(Shebang),
    /// Empty `#!` line.
    EmptyShebang,
    Other,
}

#[derive(Debug)]
pub(crate) enum ElfError {
    Io(io::Error),
    /// An ELF file conf cannot run or load (32-bit, other machine, corrupt).
    Unsupported(String),
}

impl From<io::Error> for ElfError {
    fn from(e: io::Error) -> Self {
        ElfError::Io(e)
    }
}

/// Size of an ELF64 program header.
const PHDR_SIZE: usize = goblin::elf64::program_header::SIZEOF_PHDR;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_NODEFLIB: u64 = 0x800;

/// Linux reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
const SHEBANG_MAX: usize = 256;
/// Bounds that keep a corrupt file from making us allocate much.
const MAX_DYNAMIC: u64 = 1 << 20;
const MAX_STRING: usize = 4096;

/// Read as much of `buf` as the file has from `offset`.
fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What the file at `path` is.
pub(crate) fn read_kind(path: &Path) -> Result<FileKind, ElfError> {
    let f = observe::open(path)?;
    let mut buf = vec![0u8; 4096];
    let n = read_at_most(&f, &mut buf, 0)?;
    buf.truncate(n);
    if buf.starts_with(b"#!") {
        return Ok(parse_shebang(&buf));
    }
    if buf.starts_with(b"\x7fELF") {
        return parse_elf(&f, &buf).map(FileKind::Elf);
    }
    Ok(FileKind::Other)
}

/// Whether `path` is an x86-64 ELF shared object or executable, as the
/// dynamic loader checks a candidate before taking it (a 32-bit library in
/// a search directory is skipped, not an error).
pub(crate) fn is_x86_64_elf(path: &Path) -> bool {
    let Ok(f) = observe::open(path) else {
        return false;
    };
    let mut buf = [0u8; 64];
    match read_at_most(&f, &mut buf, 0) {
        Ok(64) => check_header(&buf).is_ok(),
        _ => false,
    }
}

fn parse_shebang(buf: &[u8]) -> FileKind {
    let line = &buf[2..buf.len().min(SHEBANG_MAX)];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(i) => &line[..i],
        None => line,
    };
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !is_blank(b)).unwrap_or(line.len());
    let line = &line[start..];
    let end = line
        .iter()
        .position(|b| is_blank(b) || *b == 0)
        .unwrap_or(line.len());
    if end == 0 {
        return FileKind::EmptyShebang;
    }
    let interp = String::from_utf8_lossy(&line[..end]).into_owned();
    let rest = &line[end..];
    let rest_start = rest.iter().position(|b| !is_blank(b)).unwrap_or(rest.len());
    let rest = &rest[rest_start..];
    let rest_end = rest
        .iter()
        .rposition(|b| !is_blank(b) && *b != b'\r')
        .map_or(0, |i| i + 1);
    let arg = (rest_end > 0).then(|| String::from_utf8_lossy(&rest[..rest_end]).into_owned());
    FileKind::Script(Shebang { interp, arg })
}

fn check_header(buf: &[u8]) -> Result<Header, ElfError> {
    if buf.len() < 64 || !buf.starts_with(b"\x7fELF") {
        return Err(ElfError::Unsupported(
            "the file is too short to be an ELF file".into(),
        ));
    }
    if buf[header::EI_CLASS] != header::ELFCLASS64 {
        return Err(ElfError::Unsupported("it is a 32-bit ELF file".into()));
    }
    if buf[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(ElfError::Unsupported("it is a big-endian ELF file".into()));
    }
    let h = Elf::parse_header(buf)
        .map_err(|e| ElfError::Unsupported(format!("its ELF header is invalid ({e})")))?;
    if h.e_machine != header::EM_X86_64 {
        return Err(ElfError::Unsupported(format!(
            "it is an ELF file for {} (machine {}), not x86-64",
            header::machine_to_str(h.e_machine),
            h.e_machine
        )));
    }
    if h.e_type != header::ET_EXEC && h.e_type != header::ET_DYN {
        return Err(ElfError::Unsupported(format!(
            "it is an ELF {} file, not an executable or shared object",
            header::et_to_str(h.e_type)
        )));
    }
    Ok(h)
}

fn corrupt(what: &str) -> ElfError {
    ElfError::Unsupported(format!("its {what} is damaged"))
}

fn parse_elf(f: &File, head: &[u8]) -> Result<ElfInfo, ElfError> {
    let h = check_header(head)?;
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phsize = h.e_phentsize as usize;
    if h.e_phnum > 0 && phsize < PHDR_SIZE {
        return Err(corrupt("program header table"));
    }
    let phoff = h.e_phoff as usize;
    let phlen = phsize * h.e_phnum as usize;
    let table: Vec<u8>;
    let (bytes, off) = if phoff.checked_add(phlen).is_some_and(|e| e <= head.len()) {
        (head, phoff)
    } else {
        let mut t = vec![0u8; phlen];
        if read_at_most(f, &mut t, h.e_phoff)? != phlen {
            return Err(corrupt("program header table"));
        }
        table = t;
        (&table[..], 0)
    };
    let phdrs = if phsize == PHDR_SIZE {
        ProgramHeader::parse(bytes, off, h.e_phnum as usize, ctx)
            .map_err(|_| corrupt("program header table"))?
    } else {
        // Entries larger than the structure: parse them one at a time.
        let mut v = Vec::with_capacity(h.e_phnum as usize);
        for i in 0..h.e_phnum as usize {
            v.extend(
                ProgramHeader::parse(bytes, off + i * phsize, 1, ctx)
                    .map_err(|_| corrupt("program header table"))?,
            );
        }
        v
    };

    let mut info = ElfInfo::default();
    for p in &phdrs {
        if p.p_type == ph::PT_INTERP {
            let len = (p.p_filesz as usize).min(MAX_STRING);
            let mut s = vec![0u8; len];
            let n = read_at_most(f, &mut s, p.p_offset)?;
            s.truncate(n);
            if let Some(z) = s.iter().position(|&b| b == 0) {
                s.truncate(z);
            }
            if s.is_empty() {
                return Err(corrupt("PT_INTERP"));
            }
            info.interp = Some(String::from_utf8_lossy(&s).into_owned());
        }
    }
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC) else {
        return Ok(info);
    };
    let len = dynamic.p_filesz.min(MAX_DYNAMIC) as usize;
    let mut d = vec![0u8; len];
    let n = read_at_most(f, &mut d, dynamic.p_offset)?;
    d.truncate(n - n % 16);

    let (mut strtab, mut strsz) = (None, 0u64);
    let mut needed = Vec::new();
    let (mut rpath, mut runpath, mut soname) = (None, None, None);
    for e in d.chunks_exact(16) {
        let tag = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let val = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed.push(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = val,
            DT_RPATH => rpath = Some(val),
            DT_SONAME => soname = Some(val),
            DT_RUNPATH => runpath = Some(val),
            DT_FLAGS_1 => info.nodeflib = val & DF_1_NODEFLIB != 0,
            _ => {}
        }
    }
    if needed.is_empty() && rpath.is_none() && runpath.is_none() && soname.is_none() {
        return Ok(info);
    }
    // DT_STRTAB is an address: find the file offset of the segment it is in.
    let addr = strtab.ok_or_else(|| corrupt("dynamic section (no DT_STRTAB)"))?;
    let load = phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_LOAD && p.p_vaddr <= addr && addr - p.p_vaddr < p.p_filesz)
        .ok_or_else(|| corrupt("dynamic section (DT_STRTAB outside the file)"))?;
    let str_off = addr - load.p_vaddr + load.p_offset;
    let str_end = (load.p_offset + load.p_filesz).min(str_off.saturating_add(strsz));
    let strings = Strings {
        f,
        base: str_off,
        end: str_end,
    };
    for off in needed {
        info.needed.push(strings.get(off)?);
    }
    let split = |s: String| -> Vec<String> {
        s.split(':')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    if let Some(off) = rpath {
        info.rpath = split(strings.get(off)?);
    }
    if let Some(off) = runpath {
        info.runpath = split(strings.get(off)?);
    }
    if let Some(off) = soname {
        info.soname = Some(strings.get(off)?);
    }
    Ok(info)
}

/// The dynamic string table, read one string at a time.
struct Strings<'a> {
    f: &'a File,
    base: u64,
    end: u64,
}

impl Strings<'_> {
    fn get(&self, off: u64) -> Result<String, ElfError> {
        let start = self
            .base
            .checked_add(off)
            .filter(|s| *s < self.end)
            .ok_or_else(|| corrupt("dynamic string table"))?;
        let len = ((self.end - start) as usize).min(MAX_STRING);
        let mut buf = vec![0u8; len.min(256)];
        loop {
            let n = read_at_most(self.f, &mut buf, start)?;
            if let Some(z) = buf[..n].iter().position(|&b| b == 0) {
                buf.truncate(z);
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
            if n < buf.len() || buf.len() >= len {
                return Err(corrupt("dynamic string table"));
            }
            buf.resize((buf.len() * 4).min(len), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shebang(s: &[u8]) -> Option<(String, Option<String>)> {
        match parse_shebang(s) {
            FileKind::Script(sb) => Some((sb.interp, sb.arg)),
            _ => None,
        }
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            shebang(b"#! /usr/bin/env  python3 -u \r\n"),
            Some(("/usr/bin/env".into(), Some("python3 -u".into())))
        );
        assert_eq!(shebang(b"#!/bin/bash"), Some(("/bin/bash".into(), None)));
        assert!(matches!(
            parse_shebang(b"#!   \n/bin/sh"),
            FileKind::EmptyShebang
        ));
    }

    #[test]
    fn own_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let FileKind::Elf(info) = read_kind(&exe).unwrap() else {
            panic!("the test binary is an ELF file");
        };
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
        assert!(is_x86_64_elf(&exe));
        assert!(!is_x86_64_elf(Path::new("/etc/passwd")));
    }
}
