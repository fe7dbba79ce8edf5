//! conf-run: run a Linux program inside an enclave. See `conf-run --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = conf_loader::cli::Args::parse();
    match conf_loader::cli::main_exec(args) {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(f) => {
            eprintln!("[conf] error: {:#}", f.error);
            f.code.into()
        }
    }
}
