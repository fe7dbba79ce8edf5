//! Helpers shared by the `conf` CLI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conf_loader::sgx::sigstruct::parse_signing_key_pem;
use conf_loader::sgx::{SigDate, SignParams, Sigstruct};
use rsa::RsaPrivateKey;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The RSA-3072, exponent-3 test key.
pub fn test_key() -> RsaPrivateKey {
    parse_signing_key_pem(&std::fs::read_to_string(data("key-3072-e3-pkcs1.pem")).unwrap()).unwrap()
}

pub fn params() -> SignParams {
    SignParams {
        mrenclave: [0xab; 32],
        isvprodid: 42,
        isvsvn: 7,
        debug: false,
        date: SigDate::new(2025, 3, 14).unwrap(),
    }
}

/// A SIGSTRUCT signed by the test key, written to `dir/name`.
pub fn write_sig(dir: &Path, name: &str) -> (PathBuf, Sigstruct) {
    let sig = Sigstruct::sign(&test_key(), &params()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, sig.as_bytes()).unwrap();
    (path, sig)
}

/// Run the `conf` binary.
pub fn conf<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_conf"))
        .args(args)
        .output()
        .expect("running conf")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the exit code, showing the output when it is not the expected one.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}
