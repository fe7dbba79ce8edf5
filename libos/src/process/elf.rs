//! Reading ELF headers of programs to load.

use alloc::string::String;
use alloc::vec::Vec;

use goblin::container::Endian;
use goblin::elf64::header::{Header, EM_X86_64, ET_DYN, ET_EXEC, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, PT_INTERP, PT_LOAD, PT_PHDR, SIZEOF_PHDR};

use crate::fs::File;

/// Why a file cannot be loaded as a program.
#[derive(Debug)]
pub enum ElfError {
    NotElf,
    /// Starts with `#!`: interpreter and optional argument.
    Script(String, Option<String>),
    Unsupported(&'static str),
    Malformed(&'static str),
    Io(conf_abi::Errno),
}

pub struct ElfInfo {
    pub header: Header,
    pub phdrs: Vec<ProgramHeader>,
    pub interp: Option<String>,
}

impl ElfInfo {
    pub fn is_pie(&self) -> bool {
        self.header.e_type == ET_DYN
    }

    pub fn loads(&self) -> impl Iterator<Item = &ProgramHeader> {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// Lowest page and highest end of the loadable segments (unbiased).
    pub fn span(&self) -> Result<(u64, u64), ElfError> {
        let mut lo = u64::MAX;
        let mut hi = 0u64;
        for p in self.loads() {
            let end = p
                .p_vaddr
                .checked_add(p.p_memsz)
                .ok_or(ElfError::Malformed("segment end overflows"))?;
            lo = lo.min(p.p_vaddr & !0xfff);
            hi = hi.max(end);
        }
        if lo == u64::MAX {
            return Err(ElfError::Malformed("no loadable segments"));
        }
        Ok((lo, (hi + 0xfff) & !0xfff))
    }

    /// Address of the program headers once loaded with `bias`.
    pub fn phdr_addr(&self, bias: u64) -> u64 {
        if let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            return bias + p.p_vaddr;
        }
        for p in self.loads() {
            if p.p_offset <= self.header.e_phoff && self.header.e_phoff < p.p_offset + p.p_filesz {
                return bias + p.p_vaddr + (self.header.e_phoff - p.p_offset);
            }
        }
        0
    }
}

fn parse_shebang(head: &[u8]) -> ElfError {
    let line_end = head.iter().position(|&c| c == b'\n').unwrap_or(head.len());
    let line = &head[2..line_end];
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    let (interp, arg) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], Some(text[i..].trim())),
        None => (text, None),
    };
    if interp.is_empty() {
        return ElfError::Malformed("#! line names no interpreter");
    }
    ElfError::Script(
        String::from(interp),
        arg.filter(|a| !a.is_empty()).map(String::from),
    )
}

/// Read and check the headers of `file`.
pub fn read(file: &dyn File) -> Result<ElfInfo, ElfError> {
    let mut head = alloc::vec![0u8; 4096];
    let n = file.read_for_map(0, &mut head).map_err(ElfError::Io)?;
    head.truncate(n);
    if head.starts_with(b"#!") {
        return Err(parse_shebang(&head));
    }
    if n < SIZEOF_EHDR || &head[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let header = Header::parse(&head).map_err(|_| ElfError::Malformed("bad ELF header"))?;
    if header.e_ident[4] != 2 || header.e_ident[5] != 1 {
        return Err(ElfError::Unsupported("not a 64-bit little-endian ELF file"));
    }
    if header.e_machine != EM_X86_64 {
        return Err(ElfError::Unsupported("not an x86-64 program"));
    }
    if header.e_type != ET_EXEC && header.e_type != ET_DYN {
        return Err(ElfError::Unsupported(
            "not an executable (ET_EXEC or ET_DYN)",
        ));
    }
    if header.e_phentsize as usize != SIZEOF_PHDR || header.e_phnum == 0 || header.e_phnum > 256 {
        return Err(ElfError::Malformed("bad program header table"));
    }
    let ph_len = header.e_phnum as usize * SIZEOF_PHDR;
    let ph_off = header.e_phoff as usize;
    let mut ph_bytes = alloc::vec![0u8; ph_len];
    if ph_off.checked_add(ph_len).is_some_and(|e| e <= head.len()) {
        ph_bytes.copy_from_slice(&head[ph_off..ph_off + ph_len]);
    } else {
        let got = file
            .read_for_map(header.e_phoff, &mut ph_bytes)
            .map_err(ElfError::Io)?;
        if got != ph_len {
            return Err(ElfError::Malformed(
                "program headers past the end of the file",
            ));
        }
    }
    let phdrs = ProgramHeader::parse(&ph_bytes, 0, header.e_phnum as usize, Endian::Little)
        .map_err(|_| ElfError::Malformed("bad program headers"))?;
    let mut interp = None;
    for p in &phdrs {
        if p.p_type == PT_LOAD
            && (p.p_filesz > p.p_memsz || (p.p_vaddr % 4096) != (p.p_offset % 4096))
        {
            return Err(ElfError::Malformed("bad loadable segment"));
        }
        if p.p_type == PT_INTERP {
            if p.p_filesz == 0 || p.p_filesz > 4096 {
                return Err(ElfError::Malformed("bad PT_INTERP"));
            }
            let mut b = alloc::vec![0u8; p.p_filesz as usize];
            let got = file
                .read_for_map(p.p_offset, &mut b)
                .map_err(ElfError::Io)?;
            b.truncate(got);
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            interp = Some(
                String::from_utf8(b[..end].to_vec())
                    .map_err(|_| ElfError::Malformed("PT_INTERP is not UTF-8"))?,
            );
        }
    }
    Ok(ElfInfo {
        header,
        phdrs,
        interp,
    })
}
