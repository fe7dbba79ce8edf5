//! `conf verify FILE.sig [--manifest MANIFEST]`: would EINIT accept this
//! SIGSTRUCT, for this manifest's enclave?

use std::path::PathBuf;

use conf_loader::exit::ExitCode;
use conf_loader::sgx::{hex, Sigstruct};

#[derive(clap::Args)]
pub struct Args {
    /// The SIGSTRUCT to check.
    #[arg(value_name = "FILE.sig")]
    file: PathBuf,
    /// Also check that the SIGSTRUCT covers this manifest's enclave.
    #[arg(long, value_name = "MANIFEST")]
    manifest: Option<PathBuf>,
    /// Set a manifest template variable (repeatable; needs --manifest).
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = super::parse_define, requires = "manifest")]
    define: Vec<(String, String)>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args.file.display();
    let sig = match Sigstruct::read_file(&args.file) {
        Ok(sig) => sig,
        Err(e) => {
            // The error names the file.
            eprintln!("conf: {e}");
            return Ok(ExitCode::Invalid);
        }
    };
    if let Err(e) = sig.verify() {
        eprintln!("conf: {file} is not valid: {e}");
        return Ok(ExitCode::Invalid);
    }
    if let Some(manifest) = &args.manifest {
        let ours = super::build(manifest, &args.define)?.layout.mrenclave();
        if ours != sig.mrenclave() {
            eprintln!(
                "conf: {file} is not valid for {}: MRENCLAVE differs: the manifest measures to {}, \
                 the signature covers {}; re-sign with conf sign",
                manifest.display(),
                hex::encode(ours),
                hex::encode(sig.mrenclave())
            );
            return Ok(ExitCode::Invalid);
        }
    }
    println!(
        "{file}: signature valid (mrsigner {})",
        hex::encode(sig.mrsigner())
    );
    if let Some(manifest) = &args.manifest {
        println!(
            "{file}: MRENCLAVE {} matches {}",
            hex::encode(sig.mrenclave()),
            manifest.display()
        );
    }
    Ok(ExitCode::Success)
}
