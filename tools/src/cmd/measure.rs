//! `conf measure MANIFEST` / `conf measure --sgxs FILE`: MRENCLAVE.

use std::path::PathBuf;

use conf_loader::exit::ExitCode;
use conf_loader::sgx::{hex, read_sgxs_file};

#[derive(clap::Args)]
pub struct Args {
    /// The manifest whose enclave to measure.
    #[arg(
        value_name = "MANIFEST",
        required_unless_present = "sgxs",
        conflicts_with = "sgxs"
    )]
    manifest: Option<PathBuf>,
    /// Measure this SGXS stream instead of a manifest.
    #[arg(long, value_name = "FILE")]
    sgxs: Option<PathBuf>,
    /// Also write the manifest's enclave as an SGXS stream to OUT.
    #[arg(long, value_name = "OUT", conflicts_with = "sgxs")]
    write_sgxs: Option<PathBuf>,
    /// Set a manifest template variable (repeatable).
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = super::parse_define, conflicts_with = "sgxs")]
    define: Vec<(String, String)>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(sgxs) = &args.sgxs {
        let info = read_sgxs_file(sgxs)?;
        println!("{}", hex::encode(info.mrenclave));
        return Ok(ExitCode::Success);
    }
    let manifest = args
        .manifest
        .as_ref()
        .expect("clap requires MANIFEST without --sgxs");
    let image = super::build(manifest, &args.define)?;
    if let Some(out) = &args.write_sgxs {
        super::write_atomically(out, |w| image.layout.write_sgxs(w))?;
        eprintln!(
            "wrote the SGXS stream of {} to {}",
            manifest.display(),
            out.display()
        );
    }
    println!("{}", hex::encode(image.layout.mrenclave()));
    Ok(ExitCode::Success)
}
