//! `conf sign`, `conf measure MANIFEST` and `conf verify --manifest` on a
//! real manifest. These go through `conf_loader::image::build_image`, so
//! they pass once that builds images (the LibOS embedded, the manifest
//! resolved); until then they fail with its "not wired up yet" error.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use conf_loader::sgx::{hex, read_sgxs_file, SigDate};

/// A manifest whose one trusted file is `app` (the entrypoint), named
/// through the `app` template variable.
const MANIFEST: &str = r#"
libos.entrypoint = "file:{{ app }}"
sgx.trusted_files = ["file:{{ app }}"]
sgx.enclave_size = "64M"
sgx.max_threads = 2
sgx.debug = true
sgx.isvprodid = 7
sgx.isvsvn = 3
"#;

struct Setup {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    app: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("app.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let app = dir.path().join("app");
    std::fs::write(&app, b"#!/bin/sh\necho hello\n").unwrap();
    Setup { dir, manifest, app }
}

impl Setup {
    fn define(&self) -> String {
        format!("app={}", self.app.display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn measure(t: &Setup) -> String {
    let o = conf(["measure", s(&t.manifest), "-D", &t.define()]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let line = out.trim_end();
    assert_eq!(line.len(), 64, "{out}");
    assert!(
        line.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{out}"
    );
    line.to_owned()
}

#[test]
fn measure_is_reproducible_and_covers_trusted_files() {
    let t = setup();
    let first = measure(&t);
    assert_eq!(measure(&t), first);
    std::fs::write(&t.app, b"#!/bin/sh\necho changed\n").unwrap();
    assert_ne!(
        measure(&t),
        first,
        "a trusted file's contents must change MRENCLAVE"
    );
}

#[test]
fn measure_writes_an_sgxs_stream_with_the_same_mrenclave() {
    let t = setup();
    let out = t.path("app.sgxs");
    let o = conf([
        "measure",
        s(&t.manifest),
        "-D",
        &t.define(),
        "--write-sgxs",
        s(&out),
    ]);
    assert_code(&o, 0);
    let mrenclave = stdout(&o).trim_end().to_owned();
    assert_eq!(
        hex::encode(read_sgxs_file(&out).unwrap().mrenclave),
        mrenclave
    );
    let o = conf(["measure", "--sgxs", s(&out)]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim_end(), mrenclave);
}

#[test]
fn sign_then_inspect_and_verify() {
    let t = setup();
    let sig = t.path("app.sig");
    let o = conf([
        "sign",
        s(&t.manifest),
        "--key",
        s(&data("key-3072-e3-pkcs1.pem")),
        "-o",
        s(&sig),
        "--date",
        "20250131",
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 0);
    let bytes = std::fs::read(&sig).unwrap();
    assert_eq!(bytes.len(), 1808);

    let o = conf(["inspect", "--json", s(&sig)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["mrenclave"], measure(&t));
    assert_eq!(v["isvprodid"], 7);
    assert_eq!(v["isvsvn"], 3);
    assert_eq!(v["debug"], true);
    assert_eq!(v["date"], "2025-01-31");

    let o = conf([
        "verify",
        s(&sig),
        "--manifest",
        s(&t.manifest),
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 0);

    // Same inputs and date: the same bytes.
    let again = t.path("again.sig");
    let o = conf([
        "sign",
        s(&t.manifest),
        "-k",
        s(&data("key-3072-e3-pkcs8.pem")),
        "-o",
        s(&again),
        "--date",
        "20250131",
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 0);
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}

#[test]
fn verify_reports_both_mrenclaves_when_the_manifest_changed() {
    let t = setup();
    let sig = t.path("app.sig");
    let o = conf([
        "sign",
        s(&t.manifest),
        "--key",
        s(&data("key-3072-e3-pkcs1.pem")),
        "-o",
        s(&sig),
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 0);
    let signed = measure(&t);
    std::fs::write(&t.app, b"#!/bin/sh\necho tampered\n").unwrap();
    let now = measure(&t);
    let o = conf([
        "verify",
        s(&sig),
        "--manifest",
        s(&t.manifest),
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("MRENCLAVE differs"), "{err}");
    assert!(
        err.contains(&format!("the manifest measures to {now}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("the signature covers {signed}")),
        "{err}"
    );
    assert!(err.contains("re-sign with conf sign"), "{err}");
}

#[test]
fn sign_dates_default_to_today_utc() {
    let t = setup();
    let sig = t.path("app.sig");
    let before = SigDate::today_utc();
    let o = conf([
        "sign",
        s(&t.manifest),
        "--key",
        s(&data("key-3072-e3-pkcs1.pem")),
        "-o",
        s(&sig),
        "-D",
        &t.define(),
    ]);
    assert_code(&o, 0);
    let after = SigDate::today_utc();
    let date = conf_loader::sgx::Sigstruct::read_file(&sig)
        .unwrap()
        .date()
        .unwrap();
    // Either day if the run straddles midnight.
    assert!(
        date == before || date == after,
        "signed {date}, today is {after}"
    );
}

#[test]
fn a_manifest_error_names_the_manifest() {
    let t = setup();
    std::fs::write(&t.manifest, "sgx.enclave_size = \"3M\"\n").unwrap();
    let o = conf(["measure", s(&t.manifest)]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("app.toml"), "{}", stderr(&o));
}
