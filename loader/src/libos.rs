//! The LibOS enclave binary, built by build.rs and carried inside conf-run.

const LIBOS_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/conf-libos.elf"));

/// Bytes starting on a page.
#[repr(C, align(4096))]
struct PageAligned<T>(T);

/// Page-aligned in conf-run's file, so that the sim maps the LibOS's code
/// from it instead of copying it (`sim/own_pages.rs`).
static LIBOS_PAGES: PageAligned<[u8; LIBOS_BYTES.len()]> =
    PageAligned(*include_bytes!(concat!(env!("OUT_DIR"), "/conf-libos.elf")));

/// The LibOS ELF (static PIE); its loadable segments are the measured LibOS
/// pages of every enclave.
pub static LIBOS_ELF: &[u8] = &LIBOS_PAGES.0;

/// Write the LibOS's function symbols, relocated to `base`, as a perf map
/// (`/tmp/perf-PID.map`) when CONF_PERFMAP is set: enclave memory is
/// anonymous to `perf`, which otherwise shows LibOS time as bare addresses.
pub fn write_perf_map(base: u64) {
    if std::env::var_os("CONF_PERFMAP").is_none() {
        return;
    }
    let Ok(elf) = goblin::elf::Elf::parse(LIBOS_ELF) else {
        return;
    };
    let mut out = String::new();
    for sym in elf.syms.iter().filter(|s| s.is_function() && s.st_size > 0) {
        if let Some(name) = elf.strtab.get_at(sym.st_name) {
            out.push_str(&format!(
                "{:x} {:x} {name}\n",
                base + sym.st_value,
                sym.st_size
            ));
        }
    }
    let path = format!("/tmp/perf-{}.map", std::process::id());
    if let Err(e) = std::fs::write(&path, out) {
        eprintln!("[conf] CONF_PERFMAP: cannot write {path}: {e}");
    }
}
