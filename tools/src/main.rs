//! `conf`: the enclave developer's tool — signing keys, SIGSTRUCTs and
//! measurements. Each subcommand lives in its own module under `cmd/`.

use clap::{Parser, Subcommand};
use conf_loader::exit::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(
    name = "conf",
    version,
    about = "Sign, inspect, verify and measure conf enclaves"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an RSA-3072 signing key with public exponent 3, as SGX requires.
    Keygen(cmd::keygen::Args),
    /// Measure a manifest's enclave and write its SIGSTRUCT.
    Sign(cmd::sign::Args),
    /// Show what a SIGSTRUCT says (without checking it; see `verify`).
    Inspect(cmd::inspect::Args),
    /// Check a SIGSTRUCT's signature and, given a manifest, its MRENCLAVE.
    Verify(cmd::verify::Args),
    /// Print the MRENCLAVE of a manifest's enclave or of an SGXS stream.
    Measure(cmd::measure::Args),
    /// Write the manifest conf-run would synthesize for a command line.
    Manifest(cmd::manifest::Args),
    /// Turn a container image into a signed enclave image.
    Wrap(cmd::wrap::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => cmd::keygen::run(a),
        Command::Sign(a) => cmd::sign::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Measure(a) => cmd::measure::run(a),
        Command::Manifest(a) => cmd::manifest::run(a),
        Command::Wrap(a) => cmd::wrap::run(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("conf: error: {e:#}");
            ExitCode::Invalid.into()
        }
    }
}
