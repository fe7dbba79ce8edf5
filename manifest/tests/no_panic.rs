//! Nothing the parser is given makes it panic; whatever parses survives a
//! round trip through `to_toml`.

use std::collections::BTreeMap;

use conf_manifest::{parse_str, Manifest};
use proptest::prelude::*;

const VALID: &str = r#"
libos.entrypoint = "{{ entrypoint }}"
libos.ocall = { mode = "adaptive", workers = 2 }
loader.argv = ["python3", "-c", "pass"]
loader.log_level = "warning"
loader.env.PATH = "/usr/bin"
loader.env.HOME = { passthrough = true }
fs.root = { uri = "file:/" }
fs.start_dir = "/app"
fs.mounts = [
  { type = "tmpfs", path = "/tmp" },
  { path = "/app", uri = "file:/srv/app" },
]
[sgx]
enclave_size = "1G"
max_threads = 4
debug = false
trusted_files = ["file:{{ arch_libdir }}/", { uri = "file:/etc/hosts", sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" }]
allowed_files = ["file:/tmp/x"]
[sys]
stack.size = "8M"
brk.max_size = 65536
"#;

fn defines() -> BTreeMap<String, String> {
    [("entrypoint".to_string(), "/usr/bin/python3".to_string())]
        .into_iter()
        .collect()
}

/// Parse; if it works, the TOML it prints must parse to the same manifest.
fn check(text: &str) {
    if let Ok(m) = parse_str(text, "fuzz.toml", &defines()) {
        let again = m.to_toml();
        let back = parse_str(&again, "fuzz.toml", &BTreeMap::new()).unwrap_or_else(|e| {
            panic!("to_toml output does not parse: {e}\n--- input\n{text}\n--- output\n{again}")
        });
        assert_eq!(
            Manifest {
                warnings: m.warnings.clone(),
                ..back
            },
            m,
            "round trip changed the manifest"
        );
    } else if let Err(e) = parse_str(text, "fuzz.toml", &defines()) {
        // Messages are complete sentences with a location when they have one.
        let msg = e.to_string();
        assert!(!msg.is_empty());
        if let Some(at) = e.location() {
            assert!(msg.starts_with(&at.to_string()), "{msg}");
            assert!(at.line >= 1 && at.column >= 1);
        }
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,20}",
        "\"[ -~]{0,12}\"",
        "\"[0-9]{1,4}[KkMmGgTt]?(i?[Bb])?\"",
        Just("true".to_string()),
        Just("false".to_string()),
        Just("1.5".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("[]".to_string()),
        Just("[\"/a\", \"file:b\"]".to_string()),
        Just("{ passthrough = true }".to_string()),
        Just("{ value = \"v\" }".to_string()),
        Just("[{ path = \"/m\", uri = \"file:/h\" }]".to_string()),
        Just("[{ type = \"tmpfs\", path = \"/t\" }]".to_string()),
        Just("{ uri = \"file:/\" }".to_string()),
        Just("\"{{ entrypoint }}\"".to_string()),
        Just("\"{{ missing }}\"".to_string()),
        Just("\"exitless\"".to_string()),
        Just("\"debug\"".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "libos.entrypoint",
            "libos.ocall.mode",
            "libos.ocall.workers",
            "loader.argv",
            "loader.insecure__use_cmdline_argv",
            "loader.env.X",
            "loader.env",
            "loader.log_level",
            "loader.entrypoint",
            "fs.root",
            "fs.mounts",
            "fs.start_dir",
            "sgx.trusted_files",
            "sgx.allowed_files",
            "sgx.enclave_size",
            "sgx.max_threads",
            "sgx.thread_num",
            "sgx.edmm_enable",
            "sgx.debug",
            "sgx.isvprodid",
            "sgx.isvsvn",
            "sys.stack.size",
            "sys.brk.max_size",
            "sgx.remote_attestation",
            "loader.preload",
            "sgx.stack.size",
        ])
        .prop_map(String::from),
        "[a-z_]{1,8}(\\.[a-z_]{1,8}){0,2}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_toml_like_text(text in "[a-z_.=\\[\\]{}\"', 0-9\n#:/*-]{0,200}") {
        check(&text);
    }

    #[test]
    fn mutated_valid_manifest(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(vec![
        "\"", "=", "[", "]", "{", "}", "{{", "}}", ".", "\n", "0", "-1", "G", "x", "é", "\\", "#", ",", "/", "..", "*", " ",
    ])), 1..6)) {
        let mut text = VALID.to_string();
        for (idx, op, s) in edits {
            let mut pos = idx.index(text.len() + 1);
            while !text.is_char_boundary(pos) {
                pos -= 1;
            }
            match op {
                0 => text.insert_str(pos, s),
                1 => {
                    let mut end = (pos + s.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(pos..end, "");
                }
                _ => {
                    let mut end = (pos + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(pos..end, s);
                }
            }
        }
        check(&text);
    }

    #[test]
    fn random_key_values(lines in prop::collection::vec((key(), value()), 0..12)) {
        let mut text = String::from("libos.entrypoint = \"/bin/sh\"\n");
        for (k, v) in lines {
            text.push_str(&format!("{k} = {v}\n"));
        }
        check(&text);
    }

    #[test]
    fn arbitrary_strings_round_trip(s in "\\PC{0,30}", env in "[A-Za-z_.]{1,10}") {
        let m = Manifest {
            entrypoint: "/bin/sh".into(),
            argv: vec![s.clone()],
            env: [(env, conf_manifest::EnvValue::Value(s.replace('\0', "")))].into_iter().collect(),
            ..Manifest::default()
        };
        let back = parse_str(&m.to_toml(), &m.origin, &BTreeMap::new()).unwrap();
        prop_assert_eq!(back, m);
    }
}

#[test]
fn the_valid_manifest_is_valid() {
    let m = parse_str(VALID, "v.toml", &defines()).unwrap();
    assert_eq!(m.max_threads, 4);
    check(VALID);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_str(&deep, "deep.toml", &BTreeMap::new()).is_err());
    let deep = format!("x = {}1{}", "{ a = ".repeat(5_000), " }".repeat(5_000));
    assert!(parse_str(&deep, "deep.toml", &BTreeMap::new()).is_err());
    let long_key = format!("{} = 1", "a.".repeat(20_000) + "b");
    assert!(parse_str(&long_key, "deep.toml", &BTreeMap::new()).is_err());
}
