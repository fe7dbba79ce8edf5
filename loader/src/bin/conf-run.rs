//! conf-run: run a program inside an enclave (development stub).

use std::process::ExitCode;

use conf_abi::manifest::ResolvedManifest;
use conf_loader::image::EnclaveLayout;
use conf_loader::run::{run, Backend, RunOptions};

fn main() -> ExitCode {
    let m = ResolvedManifest { entrypoint: "/bin/true".into(), enclave_size: 1 << 30, ..Default::default() };
    let bytes = m.encode();
    let layout = EnclaveLayout::build(conf_loader::libos::LIBOS_ELF, &m, &bytes).unwrap();
    let opts = RunOptions {
        backend: Backend::Sim,
        argv: vec![],
        env: vec![],
        log_level: None,
        hostile: None,
        ocall_mode: m.ocall_mode,
        ocall_workers: 0,
    };
    match run(&layout, Box::new(|_| None), opts) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("[conf] error: {e}");
            ExitCode::from(125)
        }
    }
}
