//! SIGSTRUCT interop with an independent implementation: a short Python
//! script (standard library only, tests/data/sigstruct_ref.py) signs and
//! verifies SIGSTRUCTs from the SDM's layout, and signs them the way Intel's
//! signer fills the fields. We must verify what it makes, and it must verify
//! what we make.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use conf_loader::sgx::sigstruct::offset;
use conf_loader::sgx::{hex, SignParams, Sigstruct};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};

const PYTHON: &str = "/usr/bin/python3";

fn python(args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(PYTHON).exists(),
        "these tests need {PYTHON} (Debian: apt-get install python3)"
    );
    Command::new(PYTHON)
        .arg(data("sigstruct_ref.py"))
        .args(args)
        .output()
        .expect("running python3")
}

fn python_sign(dir: &Path, debug: bool, vendor: u32) -> std::path::PathBuf {
    let key = test_key();
    let out = dir.join(format!("py-{debug}-{vendor}.sig"));
    let o = python(&[
        "sign",
        &key.n().to_str_radix(16),
        &key.d().to_str_radix(16),
        &hex::encode([0x5c; 32]),
        "1234",
        "56",
        if debug { "1" } else { "0" },
        "20240607",
        &vendor.to_string(),
        out.to_str().unwrap(),
    ]);
    assert_code(&o, 0);
    out
}

#[test]
fn we_verify_what_python_signs() {
    let dir = tempfile::tempdir().unwrap();
    for (debug, vendor) in [(false, 0), (true, 0), (true, 0x8086)] {
        let path = python_sign(dir.path(), debug, vendor);
        let sig = Sigstruct::read_file(&path).unwrap();
        sig.verify().unwrap();
        assert_eq!(sig.mrenclave(), [0x5c; 32]);
        assert_eq!(
            (sig.isvprodid(), sig.isvsvn(), sig.debug(), sig.vendor()),
            (1234, 56, debug, vendor)
        );
        assert_eq!(sig.date().unwrap().to_string(), "2024-06-07");
        assert_eq!(
            sig.mrsigner(),
            Sigstruct::sign(&test_key(), &params()).unwrap().mrsigner()
        );

        // Through the CLI too.
        assert_code(&conf(["verify", path.to_str().unwrap()]), 0);
        let o = conf(["inspect", "--json", path.to_str().unwrap()]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["debug"], debug);
        assert_eq!(v["isvprodid"], 1234);
        assert_eq!(v["date"], "2024-06-07");

        // A changed signed byte is caught.
        let mut bytes = sig.to_bytes();
        bytes[offset::ISVPRODID] ^= 1;
        assert!(Sigstruct::parse(&bytes).unwrap().verify().is_err());
    }
}

#[test]
fn python_verifies_what_we_sign() {
    let dir = tempfile::tempdir().unwrap();
    for debug in [false, true] {
        let sig = Sigstruct::sign(&test_key(), &SignParams { debug, ..params() }).unwrap();
        let path = dir.path().join(format!("ours-{debug}.sig"));
        std::fs::write(&path, sig.as_bytes()).unwrap();
        let o = python(&["verify", path.to_str().unwrap()]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["mrenclave"], hex::encode(sig.mrenclave()));
        assert_eq!(v["mrsigner"], hex::encode(sig.mrsigner()));
        assert_eq!(v["isvprodid"], sig.isvprodid());
        assert_eq!(v["isvsvn"], sig.isvsvn());
        assert_eq!(v["debug"], debug);
        assert_eq!(v["date"], "2025-03-14");
        assert_eq!(v["vendor"], 0);
        assert_eq!(v["flags"], if debug { 6 } else { 4 });
        assert_eq!(v["xfrm"], 3);

        // And the reference rejects a tampered one, so it does check.
        for at in [offset::ISVSVN, offset::Q1 + 1, offset::Q2 + 1] {
            let mut bytes = sig.to_bytes();
            bytes[at] ^= 1;
            let bad = dir.path().join("bad.sig");
            std::fs::write(&bad, bytes).unwrap();
            assert_code(&python(&["verify", bad.to_str().unwrap()]), 1);
        }
    }
}
