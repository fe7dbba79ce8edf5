//! `conf sign MANIFEST --key KEY.pem -o OUT.sig`: measure the enclave a
//! manifest describes and sign its SIGSTRUCT.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use conf_loader::exit::ExitCode;
use conf_loader::sgx::{read_signing_key, SigDate, SignParams, Sigstruct};

use super::inspect::print_human;

#[derive(clap::Args)]
pub struct Args {
    /// The manifest (TOML) of the enclave to sign.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,
    /// The signing key: RSA-3072, exponent 3, PEM (PKCS#1 or PKCS#8).
    #[arg(short, long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Where to write the SIGSTRUCT (1808 bytes).
    #[arg(short, long, value_name = "OUT.sig")]
    output: PathBuf,
    /// DATE field of the SIGSTRUCT; today (UTC) by default. Give a fixed one
    /// for reproducible signatures.
    #[arg(long, value_name = "YYYYMMDD", value_parser = super::parse_date)]
    date: Option<SigDate>,
    /// Set a manifest template variable (repeatable).
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = super::parse_define)]
    define: Vec<(String, String)>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The key first: a missing key should not cost a manifest resolution.
    let key = read_signing_key(&args.key)?;
    let image = super::build(&args.manifest, &args.define)?;
    let params = SignParams {
        mrenclave: image.layout.mrenclave(),
        isvprodid: image.resolved.isvprodid,
        isvsvn: image.resolved.isvsvn,
        debug: image.resolved.debug,
        date: args.date.unwrap_or_else(SigDate::today_utc),
    };
    let sig = Sigstruct::sign(&key, &params)?;
    sig.verify()
        .context("the SIGSTRUCT just signed does not verify; this is a bug in conf")?;
    super::write_atomically(&args.output, |w| w.write_all(sig.as_bytes()))?;
    println!(
        "signed {} -> {}",
        args.manifest.display(),
        args.output.display()
    );
    print_human(&sig);
    Ok(ExitCode::Success)
}
