//! The `conf` binary on good and bad input, without manifests (see
//! cli_manifest.rs for the commands that build a manifest's image).

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::*;
use conf_loader::image::{EnclaveLayout, Measure, PageType, Region};
use conf_loader::sgx::hex;
use conf_loader::sgx::sigstruct::{offset, read_signing_key};

#[test]
fn keygen_writes_a_0600_pkcs1_key_that_signs() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("enclave.pem");
    let o = conf(["keygen", "-o", key.to_str().unwrap()]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("mrsigner: "), "{}", stdout(&o));
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
        "{pem}"
    );
    // It is a key SGX accepts (3072 bits, exponent 3) and signs a SIGSTRUCT
    // that verifies through the CLI.
    let k = read_signing_key(&key).unwrap();
    let sig = conf_loader::sgx::Sigstruct::sign(&k, &params()).unwrap();
    let sig_path = dir.path().join("a.sig");
    std::fs::write(&sig_path, sig.as_bytes()).unwrap();
    assert_code(&conf(["verify", sig_path.to_str().unwrap()]), 0);
    // The printed MRSIGNER is that of the key.
    assert!(stdout(&o).contains(&hex::encode(sig.mrsigner())));

    // Running it again does not replace the key.
    let o = conf(["keygen", "-o", key.to_str().unwrap()]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), pem);
}

#[test]
fn keygen_refuses_to_overwrite_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("notes.txt");
    std::fs::write(&existing, "precious").unwrap();
    let o = conf(["keygen", "-o", existing.to_str().unwrap()]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("notes.txt")
            && err.contains("already exists")
            && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious");
}

#[test]
fn keygen_into_a_missing_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("no/such/dir/k.pem");
    let o = conf(["keygen", "-o", key.to_str().unwrap()]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn inspect_prints_aligned_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sig) = write_sig(dir.path(), "a.sig");
    let o = conf(["inspect", path.to_str().unwrap()]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    let keys: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "mrenclave",
            "mrsigner",
            "isvprodid",
            "isvsvn",
            "debug",
            "date"
        ]
    );
    // Values start in the same column.
    let column = |l: &str| {
        let after = &l[l.find(':').unwrap() + 1..];
        l.len() - after.trim_start().len()
    };
    let columns: BTreeSet<usize> = lines.iter().map(|l| column(l)).collect();
    assert_eq!(columns.len(), 1, "{out}");
    assert!(out.contains(&format!("{}\n", hex::encode(sig.mrenclave()))));
    assert!(out.contains(&format!("{}\n", hex::encode(sig.mrsigner()))));
    assert!(out.contains("2025-03-14"));
}

#[test]
fn inspect_json_has_exactly_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sig) = write_sig(dir.path(), "a.sig");
    let o = conf(["inspect", "--json", path.to_str().unwrap()]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let obj = v.as_object().unwrap();
    let keys: BTreeSet<&str> = obj.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "mrenclave",
            "mrsigner",
            "isvprodid",
            "isvsvn",
            "debug",
            "date"
        ])
    );
    assert_eq!(obj["mrenclave"], "ab".repeat(32));
    assert_eq!(obj["mrsigner"], hex::encode(sig.mrsigner()));
    assert_eq!(obj["isvprodid"], 42);
    assert_eq!(obj["isvsvn"], 7);
    assert_eq!(obj["debug"], false);
    assert_eq!(obj["date"], "2025-03-14");
}

#[test]
fn truncated_and_garbage_sigs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sig) = write_sig(dir.path(), "a.sig");
    let short = dir.path().join("short.sig");
    std::fs::write(&short, &sig.as_bytes()[..1000]).unwrap();
    let garbage = dir.path().join("garbage.sig");
    std::fs::write(&garbage, [0x5au8; 1808]).unwrap();
    let empty = dir.path().join("empty.sig");
    std::fs::write(&empty, b"").unwrap();
    for cmd in ["inspect", "verify"] {
        let o = conf([cmd, short.to_str().unwrap()]);
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("short.sig")
                && stderr(&o).contains("truncated SIGSTRUCT: 1000 bytes, expected 1808"),
            "{}",
            stderr(&o)
        );
        let o = conf([cmd, garbage.to_str().unwrap()]);
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("garbage.sig") && stderr(&o).contains("not a SIGSTRUCT"),
            "{}",
            stderr(&o)
        );
        let o = conf([cmd, empty.to_str().unwrap()]);
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("truncated SIGSTRUCT: 0 bytes"),
            "{}",
            stderr(&o)
        );
        let o = conf([cmd, dir.path().join("missing.sig").to_str().unwrap()]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("missing.sig"), "{}", stderr(&o));
    }
    assert_code(&conf(["verify", path.to_str().unwrap()]), 0);
}

#[test]
fn verify_accepts_a_good_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sig) = write_sig(dir.path(), "a.sig");
    let o = conf(["verify", path.to_str().unwrap()]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("signature valid") && stdout(&o).contains(&hex::encode(sig.mrsigner())),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_tampered_sig_fails_verify_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sig) = write_sig(dir.path(), "a.sig");
    let cases = [
        ("isvsvn", offset::ISVSVN, "bad signature"),
        ("mrenclave", offset::ENCLAVEHASH + 5, "bad signature"),
        ("attributes", offset::ATTRIBUTES, "bad signature"),
        ("date", offset::DATE, "bad signature"),
        ("signature", offset::SIGNATURE + 100, "bad signature"),
        ("modulus", offset::MODULUS + 3, "bad signature"),
        ("q1", offset::Q1 + 9, "Q1"),
        ("q2", offset::Q2 + 9, "Q2"),
    ];
    for (name, at, reason) in cases {
        let mut bytes = sig.to_bytes();
        bytes[at] ^= 0x10;
        let path = dir.path().join(format!("{name}.sig"));
        std::fs::write(&path, bytes).unwrap();
        let o = conf(["verify", path.to_str().unwrap()]);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{name}.sig")) && err.contains(reason),
            "{name}: {err}"
        );
        assert!(stdout(&o).is_empty(), "{name}: {}", stdout(&o));
        // inspect still shows it: it does not check signatures.
        assert_code(&conf(["inspect", path.to_str().unwrap()]), 0);
    }
}

#[test]
fn sign_with_a_missing_key_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("nokey.pem");
    let out = dir.path().join("out.sig");
    let o = conf([
        "sign",
        "app.toml",
        "--key",
        key.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("nokey.pem") && err.contains("conf keygen -o"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn sign_refuses_keys_sgx_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.sig");
    for (key, what) in [
        ("key-2048-e3.pem", "2048-bit with exponent 3"),
        ("key-3072-e65537.pem", "3072-bit with exponent 65537"),
    ] {
        let o = conf([
            "sign",
            "app.toml",
            "--key",
            data(key).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(key), "{err}");
        assert!(
            err.contains("conf needs an RSA-3072 key with public exponent 3"),
            "{err}"
        );
        assert!(err.contains(what), "{err}");
        assert!(
            err.contains("create one with `conf keygen -o KEY.pem`"),
            "{err}"
        );
    }
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let o = conf([
        "sign",
        "app.toml",
        "--key",
        junk.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("junk.pem") && stderr(&o).contains("not an RSA private key"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn sign_accepts_pkcs1_and_pkcs8_keys() {
    // The key is read before the manifest, so with a manifest that does not
    // exist the error must be about the manifest, not the key.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("missing-app.toml");
    for key in ["key-3072-e3-pkcs1.pem", "key-3072-e3-pkcs8.pem"] {
        let o = conf([
            "sign",
            manifest.to_str().unwrap(),
            "--key",
            data(key).to_str().unwrap(),
            "-o",
            dir.path().join("o.sig").to_str().unwrap(),
        ]);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(err.contains("missing-app.toml"), "{key}: {err}");
        assert!(!err.contains(key), "{key}: {err}");
    }
}

#[test]
fn sign_rejects_a_bad_date_as_usage_error() {
    for date in ["2025-01-31", "20251301", "20250230", "tomorrow"] {
        let o = conf([
            "sign", "app.toml", "--key", "k.pem", "-o", "o.sig", "--date", date,
        ]);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("invalid date") && stderr(&o).contains("YYYYMMDD"),
            "{date}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_code(&conf(["measure"]), 2);
    assert_code(&conf(["measure", "app.toml", "--sgxs", "x.sgxs"]), 2);
    assert_code(&conf(["verify", "a.sig", "-D", "a=b"]), 2);
    assert_code(&conf(["sign", "app.toml", "-o", "o.sig"]), 2);
    let o = conf(["measure", "app.toml", "-D", "novalue"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("NAME=VALUE"), "{}", stderr(&o));
    assert_code(&conf(["frobnicate"]), 2);
}

fn small_layout() -> EnclaveLayout {
    let region = |offset, pages, page_type, perms, measure, content: Vec<u8>| Region {
        offset,
        pages,
        page_type,
        perms,
        measure,
        content: content.into(),
        what: String::new(),
    };
    EnclaveLayout {
        size: 1 << 20,
        ssa_frame_pages: 1,
        regions: vec![
            region(0x10000, 4, PageType::Reg, 3, Measure::Added, vec![]),
            region(
                0x20000,
                2,
                PageType::Reg,
                5,
                Measure::Measured,
                b"\x90\x90\xc3".to_vec(),
            ),
            region(0x22000, 1, PageType::Tcs, 0, Measure::Measured, vec![0; 72]),
        ],
        info: Default::default(),
        entry_offset: 0x20000,
        debug: false,
    }
}

#[test]
fn measure_sgxs_prints_its_mrenclave() {
    let dir = tempfile::tempdir().unwrap();
    let l = small_layout();
    let path = dir.path().join("enclave.sgxs");
    l.write_sgxs(std::fs::File::create(&path).unwrap()).unwrap();
    let o = conf(["measure", "--sgxs", path.to_str().unwrap()]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", hex::encode(l.mrenclave())));
}

#[test]
fn measure_sgxs_refuses_truncated_and_garbage_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    small_layout().write_sgxs(&mut bytes).unwrap();
    let short = dir.path().join("short.sgxs");
    std::fs::write(&short, &bytes[..bytes.len() - 10]).unwrap();
    let o = conf(["measure", "--sgxs", short.to_str().unwrap()]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("short.sgxs") && stderr(&o).contains("truncated SGXS stream"),
        "{}",
        stderr(&o)
    );
    let garbage = dir.path().join("garbage.sgxs");
    std::fs::write(
        &garbage,
        b"this is certainly not an enclave, just some text long enough for a record!",
    )
    .unwrap();
    let o = conf(["measure", "--sgxs", garbage.to_str().unwrap()]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("garbage.sgxs") && stderr(&o).contains("unknown SGXS record tag"),
        "{}",
        stderr(&o)
    );
    let o = conf([
        "measure",
        "--sgxs",
        dir.path().join("none.sgxs").to_str().unwrap(),
    ]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("none.sgxs"), "{}", stderr(&o));
}
