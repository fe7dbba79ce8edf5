//! Loading a program into the address space: the executable, its
//! interpreter (ld.so) and the initial stack. Used at boot and by execve.
//!
//! Only trusted files may be executed: every byte of every segment is
//! verified against the manifest before the program can run it.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use conf_abi::Errno;

use super::elf::{self, ElfError, ElfInfo};
use super::stack;
use super::Process;
use crate::arch::tls::UserRegs;
use crate::fs::policy::{self, Target};
use crate::fs::trusted::TrustedFile;
use crate::fs::File;
use crate::mm::{Placement, Vma, VmaName, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::util::align_up;

/// Where position-independent executables go (as traditional non-PIE
/// programs, leaving the rest of the heap to mmap).
const PIE_BASE: u64 = 0x40_0000;
/// Linux's limit on nested `#!` interpreters.
const MAX_SCRIPT_DEPTH: usize = 4;
/// Gap kept free below the main stack so it can be told apart from mmaps.
const STACK_GAP: u64 = 16 << 20;

/// Why a program could not be loaded: an errno for execve and a sentence
/// for the log when it is the entrypoint.
pub struct ExecError {
    pub errno: Errno,
    pub message: String,
}

fn fail(errno: Errno, message: String) -> ExecError {
    ExecError { errno, message }
}

/// Open `path` for execution: it must be a trusted file.
fn open_exec(proc: &Process, path: &[u8]) -> Result<(String, Arc<TrustedFile>), ExecError> {
    let cwd = proc.cwd();
    let shown = String::from_utf8_lossy(path).into_owned();
    let p = policy::resolve(&cwd, path, true)
        .map_err(|e| fail(e, format!("cannot resolve {shown}: {}", e.description())))?;
    let ns = policy::ns();
    let mut p = p;
    let mut target = ns.classify(&p);
    if let Target::Metadata(_) = target {
        if let Some((real, t)) = ns.real_name(&p) {
            p = real;
            target = t;
        }
    }
    match target {
        Target::Trusted(entry) => {
            let f = TrustedFile::open(entry, &ns.host_path(entry.path)).map_err(|e| fail(e, format!("cannot open {p}: {}", e.description())))?;
            Ok((p, Arc::new(f)))
        }
        Target::Allowed(host) | Target::Metadata(host) => match crate::host::calls::stat(host.as_bytes(), false) {
            Err(e) => Err(fail(e, format!("{p}: {}", e.description()))),
            Ok(_) => Err(fail(ns.deny_exec(&p), format!("{p} is not a trusted file"))),
        },
        Target::Device(_) | Target::Proc => Err(fail(Errno::EACCES, format!("{p} is not a program"))),
        Target::Tmp(..) => Err(fail(
            Errno::EACCES,
            format!("{p} is in a tmpfs mount and so cannot be executed: only trusted files run in the enclave"),
        )),
    }
}

fn elf_prot(flags: u32) -> u32 {
    let mut p = 0;
    if flags & goblin::elf::program_header::PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & goblin::elf::program_header::PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & goblin::elf::program_header::PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Map an ELF file's segments; returns the load bias. Segments are filled
/// from the file on first touch, unless two share a page (then at once).
fn map_elf(
    proc: &Process,
    file: &Arc<TrustedFile>,
    info: &ElfInfo,
    name: &str,
    place: Placement,
) -> Result<u64, ExecError> {
    let (lo, hi) = info
        .span()
        .map_err(|e| fail(Errno::ENOEXEC, format!("{name}: {e:?}")))?;
    let len = hi - lo;
    let inode = file.stat().map(|s| s.st_ino).unwrap_or(0);
    let vma = Vma {
        end: 0,
        prot: 0,
        shared: false,
        name: VmaName::File(Arc::from(name)),
        offset: 0,
        inode,
        lazy: None,
    };
    let place = match place {
        Placement::NoReplace(_) => Placement::NoReplace(lo),
        p => p,
    };
    let start = proc.mm.map(place, len, 0, vma, false).map_err(|e| {
        fail(e, format!("cannot map {name} ({} MiB) at {lo:#x}: {}; raise sgx.enclave_size if memory is short", len >> 20, e.description()))
    })?;
    let bias = start - lo;
    let mut shares_pages = false;
    let mut last_hi = 0;
    for p in info.loads() {
        let seg_lo = (bias + p.p_vaddr) & !(PAGE - 1);
        if seg_lo < last_hi {
            shares_pages = true;
        }
        last_hi = align_up(bias + p.p_vaddr + p.p_memsz, PAGE);
    }
    let err = |e: Errno| fail(e, format!("{name}: {}", e.description()));
    if !shares_pages {
        let src: Arc<dyn File> = file.clone();
        for p in info.loads() {
            let seg_lo = (bias + p.p_vaddr) & !(PAGE - 1);
            let seg_hi = align_up(bias + p.p_vaddr + p.p_memsz, PAGE);
            let lead = (bias + p.p_vaddr) - seg_lo;
            let v = Vma {
                end: 0,
                prot: 0,
                shared: false,
                name: VmaName::File(Arc::from(name)),
                offset: p.p_offset - lead,
                inode,
                lazy: None,
            };
            proc.mm
                .map_lazy(
                    Placement::Replace(seg_lo),
                    seg_hi - seg_lo,
                    elf_prot(p.p_flags),
                    v,
                    src.clone(),
                    p.p_offset - lead,
                    lead + p.p_filesz,
                )
                .map_err(err)?;
        }
        return Ok(bias);
    }
    let mut prev: Option<(u64, u32)> = None; // (last page, prot) of the previous segment
    for p in info.loads() {
        let seg_lo = (bias + p.p_vaddr) & !(PAGE - 1);
        let seg_hi = align_up(bias + p.p_vaddr + p.p_memsz, PAGE);
        proc.mm
            .protect(seg_lo, seg_hi - seg_lo, PROT_READ | PROT_WRITE)
            .map_err(err)?;
        if p.p_filesz > 0 {
            // SAFETY: the destination lies inside the segment just made writable.
            let dst = unsafe {
                core::slice::from_raw_parts_mut((bias + p.p_vaddr) as *mut u8, p.p_filesz as usize)
            };
            let got = file
                .read_for_map(p.p_offset, dst)
                .map_err(|e| fail(e, format!("cannot read {name}: {}", e.description())))?;
            if got as u64 != p.p_filesz {
                return Err(fail(Errno::ENOEXEC, format!("{name} is truncated")));
            }
        }
        let mut prot = elf_prot(p.p_flags);
        let mut from = seg_lo;
        if let Some((last_page, pprot)) = prev {
            if last_page == seg_lo {
                // A page shared with the previous segment keeps both rights.
                proc.mm.protect(seg_lo, PAGE, prot | pprot).map_err(err)?;
                from = seg_lo + PAGE;
                prot = elf_prot(p.p_flags);
            }
        }
        if from < seg_hi {
            proc.mm.protect(from, seg_hi - from, prot).map_err(err)?;
        }
        prev = Some((seg_hi - PAGE, prot));
    }
    Ok(bias)
}

fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let [a, b, c, d] = crate::arch::cpuid::cpuid(leaf, sub);
    (a, b, c, d)
}

/// A program ready to be loaded: found, trusted, its headers read, `#!`
/// interpreters followed. Nothing of the running program is touched yet,
/// so execve can still fail back to its caller.
pub struct Prepared {
    exe_path: String,
    file: Arc<TrustedFile>,
    info: ElfInfo,
    interp: Option<(String, Arc<TrustedFile>, ElfInfo)>,
    argv: Vec<Vec<u8>>,
}

/// Find and check `path` for execution with `argv`.
pub fn prepare(proc: &Process, path: &[u8], argv: Vec<Vec<u8>>) -> Result<Prepared, ExecError> {
    // What this program loads from here on is what its next start wants.
    crate::fs::prefetch::exec_started();
    let mut argv = argv;
    let mut path = path.to_vec();
    let mut depth = 0;
    let (exe_path, file, info) = loop {
        let (p, f) = open_exec(proc, &path)?;
        match elf::read(f.as_ref()) {
            Ok(info) => break (p, f, info),
            Err(ElfError::Script(interp, arg)) => {
                depth += 1;
                if depth > MAX_SCRIPT_DEPTH {
                    return Err(fail(
                        Errno::ELOOP,
                        format!("{p}: too many levels of #! interpreters"),
                    ));
                }
                // As the kernel does: interp [arg] script args[1..].
                let mut new = Vec::new();
                new.push(interp.clone().into_bytes());
                if let Some(a) = arg {
                    new.push(a.into_bytes());
                }
                new.push(p.clone().into_bytes());
                new.extend(argv.into_iter().skip(1));
                argv = new;
                path = interp.into_bytes();
            }
            Err(ElfError::NotElf) => {
                return Err(fail(
                    Errno::ENOEXEC,
                    format!("{p} is neither an ELF program nor a #! script"),
                ))
            }
            Err(ElfError::Io(e)) => {
                return Err(fail(e, format!("cannot read {p}: {}", e.description())))
            }
            Err(e) => return Err(fail(Errno::ENOEXEC, format!("{p} cannot be run: {e:?}"))),
        }
    };
    let interp = match &info.interp {
        None => None,
        Some(interp) => {
            let (ip, ifile) = open_exec(proc, interp.as_bytes())?;
            let iinfo = match elf::read(ifile.as_ref()) {
                Ok(i) => i,
                Err(e) => {
                    return Err(fail(
                        Errno::ENOEXEC,
                        format!("interpreter {ip} of {exe_path} cannot be loaded: {e:?}"),
                    ))
                }
            };
            Some((ip, ifile, iinfo))
        }
    };
    Ok(Prepared {
        exe_path,
        file,
        info,
        interp,
        argv,
    })
}

/// Replace the address space contents with `path` and return the registers
/// to start it with (boot: the address space is empty).
pub fn load(
    proc: &Process,
    path: &[u8],
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    stack_size: u64,
    brk_max: u64,
) -> Result<UserRegs, ExecError> {
    let p = prepare(proc, path, argv)?;
    commit(proc, p, envp, stack_size, brk_max)
}

/// Load a prepared program into an empty address space.
pub fn commit(
    proc: &Process,
    prepared: Prepared,
    envp: Vec<Vec<u8>>,
    stack_size: u64,
    brk_max: u64,
) -> Result<UserRegs, ExecError> {
    let Prepared {
        exe_path,
        file,
        info,
        interp,
        argv,
    } = prepared;
    // The main stack at the top of the program area.
    let stack_vma = Vma {
        end: 0,
        prot: 0,
        shared: false,
        name: VmaName::Stack,
        offset: 0,
        inode: 0,
        lazy: None,
    };
    let top = super::stack_top();
    let stack_lo = proc
        .mm
        .map(
            Placement::NoReplace(top - stack_size),
            stack_size,
            PROT_READ | PROT_WRITE,
            stack_vma,
            false,
        )
        .map_err(|e| {
            fail(
                e,
                format!(
                    "cannot map the {} MiB stack (sys.stack.size): {}",
                    stack_size >> 20,
                    e.description()
                ),
            )
        })?;
    proc.mm.set_mmap_top(stack_lo - STACK_GAP);

    let place = if info.is_pie() {
        Placement::Hint(PIE_BASE)
    } else {
        Placement::NoReplace(0)
    };
    let bias = map_elf(proc, &file, &info, &exe_path, place)?;
    let (_, exe_hi) = info
        .span()
        .map_err(|e| fail(Errno::ENOEXEC, format!("{e:?}")))?;
    proc.mm.init_brk(bias + exe_hi, brk_max);

    let mut entry = bias + info.header.e_entry;
    let mut interp_base = 0;
    if let Some((ip, ifile, iinfo)) = &interp {
        let ibias = map_elf(proc, ifile, iinfo, ip, Placement::Hint(0))?;
        interp_base = ibias + iinfo.span().map(|s| s.0).unwrap_or(0);
        entry = ibias + iinfo.header.e_entry;
    }

    let (_, _, _, hwcap) = cpuid(1, 0);
    let (_, xsave_size, _, _) = cpuid(0xd, 0);
    let auxv = [
        (stack::AT_PHDR, info.phdr_addr(bias)),
        (stack::AT_PHENT, 56),
        (stack::AT_PHNUM, info.header.e_phnum as u64),
        (stack::AT_PAGESZ, PAGE),
        (stack::AT_BASE, interp_base),
        (stack::AT_FLAGS, 0),
        (stack::AT_ENTRY, bias + info.header.e_entry),
        (stack::AT_UID, 0),
        (stack::AT_EUID, 0),
        (stack::AT_GID, 0),
        (stack::AT_EGID, 0),
        (stack::AT_SECURE, 0),
        (stack::AT_HWCAP, hwcap as u64),
        (stack::AT_HWCAP2, 2), // HWCAP2_FSGSBASE
        (stack::AT_CLKTCK, 100),
        (stack::AT_MINSIGSTKSZ, (xsave_size as u64 + 1024).max(2048)),
    ];
    let sp = stack::build(stack_lo, top, &argv, &envp, &auxv, exe_path.as_bytes())
        .map_err(|e| fail(e, String::from("argument list too long for the stack")))?;

    *proc.exe.lock() = exe_path;
    *proc.cmdline.lock() = argv
        .iter()
        .flat_map(|a| a.iter().copied().chain([0]))
        .collect();
    *proc.environ.lock() = envp
        .iter()
        .flat_map(|a| a.iter().copied().chain([0]))
        .collect();
    Ok(UserRegs {
        rsp: sp,
        rip: entry,
        rflags: 0x202,
        ..Default::default()
    })
}
