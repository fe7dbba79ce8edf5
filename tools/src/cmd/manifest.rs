//! `conf manifest [--allow DIR]... [--trust PATH]... [-o OUT.toml] -- CMD [ARGS...]`:
//! write the manifest `conf-run CMD ARGS...` would synthesize, as a
//! starting point for `conf-run --manifest OUT.toml`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use conf_loader::exit::ExitCode;
use conf_loader::synth::{synthesize, SynthOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Pass this host file or directory through, readable and writable
    /// and unprotected (sgx.allowed_files); it must exist (repeatable).
    #[arg(long, value_name = "DIR")]
    allow: Vec<PathBuf>,
    /// Trust this file or directory too (sgx.trusted_files); it must exist
    /// (repeatable).
    #[arg(long, value_name = "PATH")]
    trust: Vec<PathBuf>,
    /// Where to write the manifest; standard output if not given.
    #[arg(short, long, value_name = "OUT.toml")]
    output: Option<PathBuf>,
    /// The command to run in the enclave, as you would give it to conf-run
    /// (after `--`, or after the options).
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut opts = SynthOptions::from_process().context("cannot read the working directory")?;
    opts.allow = args.allow;
    opts.trust = args.trust;
    let s = synthesize(&args.command, &opts)?;
    for n in &s.notes {
        eprintln!("note: {n}");
    }
    let text = s.manifest.to_toml();
    match &args.output {
        Some(out) => {
            super::write_atomically(out, |w| w.write_all(text.as_bytes()))?;
            eprintln!(
                "wrote {} ({} runtime, {} trusted entries, {} environment variables)",
                out.display(),
                s.runtime,
                s.manifest.trusted_files.len(),
                s.manifest.env.len()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write the manifest to standard output")?;
        }
    }
    if !s.manifest.env.is_empty() {
        eprintln!(
            "note: [loader.env] holds this shell's environment as fixed (measured) values; \
             review it before sharing the manifest"
        );
    }
    Ok(ExitCode::Success)
}
