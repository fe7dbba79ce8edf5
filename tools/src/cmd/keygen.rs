//! `conf keygen -o KEY.pem`: a new enclave signing key.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use conf_loader::exit::ExitCode;
use conf_loader::sgx::hex;
use conf_loader::sgx::sigstruct::{check_signing_key, KEY_BITS, KEY_EXPONENT};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the key (PKCS#1 PEM, mode 0600). An existing file is
    /// never overwritten.
    #[arg(short, long, value_name = "KEY.pem")]
    output: PathBuf,
}

fn exists_error(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists; conf keygen never overwrites a key (a lost signing key cannot be recovered). \
         Choose another path, or remove the file first if you really mean to replace it",
        path.display()
    )
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = &args.output;
    // Checked again atomically at creation; this only avoids generating a
    // key for nothing.
    if path.symlink_metadata().is_ok() {
        return Err(exists_error(path));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "cannot create {}: directory {} does not exist; create it first",
                path.display(),
                dir.display()
            );
        }
    }
    let key = RsaPrivateKey::new_with_exp(&mut OsRng, KEY_BITS, &BigUint::from(KEY_EXPONENT))
        .context("generating the RSA key failed")?;
    check_signing_key(&key)?;
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .context("encoding the key as PEM failed")?;

    // create_new + mode: the file is created with 0600 or not at all, and
    // never replaces anything, even a file created since the check above.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists_error(path)),
        Err(e) => bail!(
            "cannot create {}: {e} (check that its directory exists and is writable)",
            path.display()
        ),
    };
    if let Err(e) = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        let _ = std::fs::remove_file(path);
        bail!("cannot write {}: {e}", path.display());
    }
    let mrsigner = Sha256::digest(key.n().to_bytes_le());
    println!(
        "wrote RSA-{KEY_BITS} signing key (public exponent {KEY_EXPONENT}) to {}",
        path.display()
    );
    println!("mrsigner: {}", hex::encode(mrsigner));
    Ok(ExitCode::Success)
}
