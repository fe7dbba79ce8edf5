//! `conf inspect FILE.sig [--json]`: what a SIGSTRUCT says.

use std::path::PathBuf;

use conf_loader::exit::ExitCode;
use conf_loader::sgx::{hex, Sigstruct};

#[derive(clap::Args)]
pub struct Args {
    /// A SIGSTRUCT file, from conf sign or any other SGX signing tool, or
    /// an image made by conf wrap (docker-archive:PATH, oci:DIR[:TAG],
    /// oci-archive:PATH).
    #[arg(value_name = "FILE.sig|IMAGE")]
    file: PathBuf,
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    json: bool,
}

/// The fields shown, in order, as (key, human value, JSON value).
pub fn fields(sig: &Sigstruct) -> Vec<(&'static str, String, serde_json::Value)> {
    let date = match sig.date() {
        Some(d) => d.to_string(),
        None => format!("not a valid date (raw {:#010x})", sig.date_bcd()),
    };
    vec![
        (
            "mrenclave",
            hex::encode(sig.mrenclave()),
            hex::encode(sig.mrenclave()).into(),
        ),
        (
            "mrsigner",
            hex::encode(sig.mrsigner()),
            hex::encode(sig.mrsigner()).into(),
        ),
        (
            "isvprodid",
            sig.isvprodid().to_string(),
            sig.isvprodid().into(),
        ),
        ("isvsvn", sig.isvsvn().to_string(), sig.isvsvn().into()),
        ("debug", sig.debug().to_string(), sig.debug().into()),
        ("date", date.clone(), date.into()),
    ]
}

/// `key: value` lines with the values aligned.
pub fn print_human(sig: &Sigstruct) {
    let fields = fields(sig);
    let width = fields.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value, _) in fields {
        println!("{:<width$} {value}", format!("{key}:"));
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = args.file.to_string_lossy();
    let sig = if super::wrap::is_image(&spec) {
        super::wrap::image_sigstruct(&spec)?
    } else {
        Sigstruct::read_file(&args.file)?
    };
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = fields(&sig)
            .into_iter()
            .map(|(k, _, v)| (k.to_owned(), v))
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        print_human(&sig);
    }
    Ok(ExitCode::Success)
}
