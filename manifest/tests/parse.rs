//! Parsing: every key, defaults, sizes, templates, Gramine compatibility,
//! round trips, and the content of every kind of error.

use std::collections::BTreeMap;

use conf_manifest::{
    parse_file, parse_str, EnvValue, LogLevel, Manifest, ManifestError, MountKind, OcallMode,
    TrustedEntry,
};

fn defs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    parse_str(text, "app.toml", &BTreeMap::new())
}

fn err(text: &str) -> (ManifestError, String) {
    let e = parse(text).expect_err("expected an error");
    let msg = e.to_string();
    (e, msg)
}

/// The error is at `line:col` of app.toml, names `key`, and its message
/// contains every one of `parts`.
fn check_err(
    text: &str,
    line: usize,
    col: usize,
    key: Option<&str>,
    parts: &[&str],
) -> ManifestError {
    let (e, msg) = err(text);
    let at = e
        .location()
        .unwrap_or_else(|| panic!("no location in {msg}"));
    assert_eq!(
        (at.origin.as_str(), at.line, at.column),
        ("app.toml", line, col),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!("app.toml:{line}:{col}: ")),
        "{msg}"
    );
    assert_eq!(e.key(), key, "{msg}");
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
    e
}

const FULL: &str = r#"
[libos]
entrypoint = "/usr/bin/python3"
ocall.mode = "adaptive"
ocall.workers = 3

[loader]
entrypoint = "file:/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"
argv = ["python3", "-c", "print(1)"]
insecure__use_cmdline_argv = false
log_level = "debug"

[loader.env]
PATH = "/usr/bin:/bin"
HOME = { passthrough = true }
LANG = { value = "C.UTF-8" }
"WITH.DOT" = "x"

[fs]
root = { uri = "file:/srv/root" }
start_dir = "/app/"
mounts = [
  { path = "/tmp", type = "tmpfs" },
  { path = "/app", uri = "file:/srv/app" },
  { type = "encrypted", path = "/data", uri = "file:data", key_name = "k1" },
  { type = "encrypted", path = "/data2", uri = "file:/srv/data2" },
]

[sgx]
enclave_size = "4G"
thread_num = 16
edmm_enable = false
debug = true
isvprodid = 7
isvsvn = 65535
trusted_files = [
  "file:/usr/bin/python3",
  "/usr/lib/python3.11/",
  "file:lib/*.so",
  { uri = "file:/etc/hosts", sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855" },
]
allowed_files = ["file:/tmp/out/", "logs"]

[sys]
stack.size = "256K"
brk.max_size = 1048576
"#;

#[test]
fn every_key() {
    let m = parse_str(FULL, "/srv/app.toml", &BTreeMap::new()).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let cwd = cwd.to_str().unwrap();
    assert_eq!(m.origin, "/srv/app.toml");
    assert_eq!(m.entrypoint, "/usr/bin/python3");
    assert_eq!(m.ocall_mode, OcallMode::Adaptive);
    assert_eq!(m.ocall_workers, 3);
    assert_eq!(m.argv, ["python3", "-c", "print(1)"]);
    assert!(!m.use_cmdline_argv);
    assert_eq!(m.log_level, LogLevel::Debug);
    assert_eq!(m.env.len(), 4);
    assert_eq!(m.env["PATH"], EnvValue::Value("/usr/bin:/bin".into()));
    assert_eq!(m.env["HOME"], EnvValue::Passthrough);
    assert_eq!(m.env["LANG"], EnvValue::Value("C.UTF-8".into()));
    assert_eq!(m.env["WITH.DOT"], EnvValue::Value("x".into()));
    assert_eq!(m.fs_root, "/srv/root");
    assert_eq!(m.start_dir, "/app");
    assert_eq!(m.mounts.len(), 4);
    assert_eq!(
        (
            m.mounts[0].kind,
            m.mounts[0].path.as_str(),
            m.mounts[0].uri.as_str()
        ),
        (MountKind::Tmpfs, "/tmp", "")
    );
    assert_eq!(
        (m.mounts[1].kind, m.mounts[1].uri.as_str()),
        (MountKind::Chroot, "/srv/app")
    );
    assert_eq!(m.mounts[1].key_name, "");
    assert_eq!(m.mounts[2].kind, MountKind::Encrypted);
    assert_eq!(m.mounts[2].uri, format!("{cwd}/data"));
    assert_eq!(m.mounts[2].key_name, "k1");
    assert_eq!(m.mounts[3].key_name, "default");
    assert_eq!(m.enclave_size, 4 << 30);
    assert_eq!(m.max_threads, 16);
    assert!(!m.edmm);
    assert!(m.debug);
    assert_eq!(m.isvprodid, 7);
    assert_eq!(m.isvsvn, 65535);
    assert_eq!(
        m.trusted_files[..3],
        [
            TrustedEntry::new("/usr/bin/python3"),
            TrustedEntry::new("/usr/lib/python3.11"),
            TrustedEntry::new(format!("{cwd}/lib/*.so")),
        ]
    );
    assert_eq!(m.trusted_files[3].path, "/etc/hosts");
    assert_eq!(m.trusted_files[3].sha256.unwrap()[..2], [0xe3, 0xb0]);
    assert_eq!(
        m.allowed_files,
        ["/tmp/out".to_string(), format!("{cwd}/logs")]
    );
    assert_eq!(m.stack_size, 256 << 10);
    assert_eq!(m.brk_max_size, 1 << 20);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn defaults() {
    let m = parse("libos.entrypoint = \"/bin/sh\"").unwrap();
    let d = Manifest::default();
    assert_eq!(m.entrypoint, "/bin/sh");
    assert_eq!(m.origin, "app.toml");
    assert_eq!(
        Manifest {
            origin: d.origin.clone(),
            entrypoint: d.entrypoint.clone(),
            ..m.clone()
        },
        d
    );
    assert!(m.argv.is_empty() && !m.use_cmdline_argv && m.env.is_empty());
    assert_eq!(m.log_level, LogLevel::Error);
    assert_eq!(m.fs_root, "/");
    assert_eq!(m.start_dir, "/");
    assert!(m.mounts.is_empty() && m.trusted_files.is_empty() && m.allowed_files.is_empty());
    assert_eq!(m.enclave_size, 2 << 30);
    assert_eq!(m.max_threads, 8);
    assert!(m.edmm);
    assert!(!m.debug);
    assert_eq!((m.isvprodid, m.isvsvn), (0, 0));
    assert_eq!(m.stack_size, 8 << 20);
    assert_eq!(m.brk_max_size, 64 << 20);
    assert_eq!(m.ocall_mode, OcallMode::Exit);
    assert_eq!(m.ocall_workers, 1);
}

#[test]
fn entrypoint_forms() {
    let cwd = std::env::current_dir().unwrap();
    let cwd = cwd.to_str().unwrap();
    assert_eq!(
        parse("libos.entrypoint = \"/usr//bin/./python3\"")
            .unwrap()
            .entrypoint,
        "/usr/bin/python3"
    );
    assert_eq!(
        parse("libos.entrypoint = \"file:/usr/bin/python3\"")
            .unwrap()
            .entrypoint,
        "file:/usr/bin/python3"
    );
    assert_eq!(
        parse("libos.entrypoint = \"hello\"").unwrap().entrypoint,
        format!("file:{cwd}/hello")
    );
    assert_eq!(
        parse("libos.entrypoint = \"file:bin/hello\"")
            .unwrap()
            .entrypoint,
        format!("file:{cwd}/bin/hello")
    );
}

#[test]
fn sizes() {
    let size = |v: &str| {
        parse(&format!("libos.entrypoint = \"/a\"\nsys.stack.size = {v}")).map(|m| m.stack_size)
    };
    assert_eq!(size("4096").unwrap(), 4096);
    assert_eq!(size("\"512M\"").unwrap(), 512 << 20);
    assert_eq!(size("\"1g\"").unwrap(), 1 << 30);
    assert_eq!(size("\"64KiB\"").unwrap(), 64 << 10);
    assert_eq!(size("\"2 MiB\"").unwrap(), 2 << 20);
    assert_eq!(size("\"1T\"").unwrap(), 1 << 40);
    for bad in [
        "\"12Q\"",
        "\"-1\"",
        "-1",
        "\"1.5G\"",
        "\"99999999999T\"",
        "\"\"",
        "\"M\"",
    ] {
        let e = size(bad).unwrap_err();
        assert_eq!(e.key(), Some("sys.stack.size"), "{e}");
    }
    let e = size("1.5").unwrap_err().to_string();
    assert!(
        e.contains("must be a size") && e.contains("found float 1.5"),
        "{e}"
    );
    let e = size("\"99999999999T\"").unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
    let e = size("\"0\"").unwrap_err().to_string();
    assert!(e.contains("cannot be empty"), "{e}");
}

#[test]
fn enclave_size_power_of_two() {
    let e = check_err(
        "libos.entrypoint = \"/a\"\nsgx.enclave_size = \"3G\"",
        2,
        20,
        Some("sgx.enclave_size"),
        &["power of two", "\"4G\""],
    );
    assert!(matches!(e, ManifestError::InvalidValue { .. }));
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.enclave_size = 0",
        2,
        20,
        Some("sgx.enclave_size"),
        &["power of two"],
    );
    assert_eq!(
        parse("libos.entrypoint = \"/a\"\nsgx.enclave_size = 1024")
            .unwrap()
            .enclave_size,
        1024
    );
}

#[test]
fn templates() {
    let text = "libos.entrypoint = \"{{ entrypoint }}\"\nsgx.trusted_files = [\"file:{{arch_libdir}}/libc.so.6\"]\n";
    let m = parse_str(text, "t.toml", &defs(&[("entrypoint", "/usr/bin/python3")])).unwrap();
    assert_eq!(m.entrypoint, "/usr/bin/python3");
    assert_eq!(m.trusted_files[0].path, "/lib/x86_64-linux-gnu/libc.so.6");
    // Built-ins can be overridden.
    let m = parse_str(
        text,
        "t.toml",
        &defs(&[("entrypoint", "/x"), ("arch_libdir", "/lib64")]),
    )
    .unwrap();
    assert_eq!(m.trusted_files[0].path, "/lib64/libc.so.6");
    // Unset: named, with line and column of its `{{`.
    let e = parse_str(text, "t.toml", &BTreeMap::new()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(&e, ManifestError::UndefinedVariable { name, .. } if name == "entrypoint"));
    assert!(
        msg.starts_with("t.toml:1:21: template variable `entrypoint` is not defined"),
        "{msg}"
    );
    assert!(
        msg.contains("-D entrypoint=VALUE") && msg.contains("arch_libdir"),
        "{msg}"
    );
    let e = parse_str("a = 1\n  x = \"{{nope}}\"", "t.toml", &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2:8: template variable `nope`"), "{e}");
    // Unsupported expressions.
    let e = parse_str(
        "libos.entrypoint = \"{{ gramine.libos }}\"",
        "t.toml",
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("gramine.libos"), "{e}");
    let e = parse_str(
        "x = \"{{ gramine.runtimedir() }}\"",
        "t.toml",
        &BTreeMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.toml:1:6: unsupported template expression"),
        "{e}"
    );
}

#[test]
fn errors_after_templates_point_at_the_source() {
    // The substituted value is longer than the template; the error on line
    // 1 after it must still be at the column the user sees.
    let text = "sgx.trusted_files = [\"{{ d }}\"] ; libos.entrypoint = \"/a\"";
    let e = parse_str(
        text,
        "t.toml",
        &defs(&[("d", "/a/very/long/substituted/value")]),
    )
    .unwrap_err();
    let at = e.location().unwrap();
    assert_eq!(
        (at.line, at.column),
        (1, text.find(';').unwrap() + 1),
        "{e}"
    );
}

#[test]
fn syntax_errors() {
    let (e, msg) = err("libos.entrypoint = \"/a\"\nsgx.max_threads = = 4\n");
    assert!(matches!(e, ManifestError::Syntax { .. }));
    assert!(msg.starts_with("app.toml:2:"), "{msg}");
    assert!(msg.contains("invalid TOML"), "{msg}");
    let (_, msg) = err("libos.entrypoint = \"/a\"\nlibos.entrypoint = \"/b\"\n");
    assert!(
        msg.contains("duplicate key") && msg.starts_with("app.toml:2:"),
        "{msg}"
    );
    let (_, msg) = err("{% if x %}\nlibos.entrypoint = \"/a\"\n");
    assert!(msg.contains("Jinja"), "{msg}");
}

#[test]
fn unknown_keys_suggest() {
    let e = check_err(
        "libos.entrypoint = \"/a\"\n[sgx]\nenclave_sise = \"2G\"\n",
        3,
        1,
        Some("sgx.enclave_sise"),
        &[
            "unknown key `sgx.enclave_sise`",
            "did you mean `sgx.enclave_size`?",
        ],
    );
    assert!(matches!(e, ManifestError::UnknownKey { .. }));
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.stack.size = \"1M\"\n",
        2,
        11,
        Some("sgx.stack.size"),
        &["did you mean `sys.stack.size`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\n[sgx.stack]\nsize = 1\nguard = 2\n",
        2,
        6,
        Some("sgx.stack"),
        &["did you mean `sys.stack`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.start_dir = \"/\"\n",
        2,
        8,
        Some("loader.start_dir"),
        &["did you mean `fs.start_dir`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nthread_num = 4\n",
        2,
        1,
        Some("thread_num"),
        &["did you mean `sgx.thread_num`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nfoo = 1\n",
        2,
        1,
        Some("foo"),
        &["unknown key `foo`", "docs/manifest.md"],
    );
    // A quoted key with a dot is one key, not a path.
    check_err(
        "libos.entrypoint = \"/a\"\n\"sgx.debug\" = true\n",
        2,
        1,
        Some("\"sgx.debug\""),
        &["did you mean `sgx.debug`?"],
    );
    // Inside mounts, env tables, trusted-file tables.
    check_err(
        "libos.entrypoint = \"/a\"\nfs.mounts = [{ path = \"/x\", uir = \"file:/y\" }]\n",
        2,
        29,
        Some("fs.mounts[0].uir"),
        &["did you mean `fs.mounts[0].uri`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.env.A = { passthru = true }\n",
        2,
        18,
        Some("loader.env.A.passthru"),
        &["did you mean `loader.env.A.passthrough`?"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [{ uri = \"/a\", sha = \"00\" }]\n",
        2,
        36,
        Some("sgx.trusted_files[0].sha"),
        &["did you mean `sgx.trusted_files[0].sha256`?"],
    );
}

#[test]
fn wrong_types() {
    let e = check_err(
        "libos.entrypoint = \"/a\"\nsgx.max_threads = \"8\"\n",
        2,
        19,
        Some("sgx.max_threads"),
        &["`sgx.max_threads` must be an integer, found string \"8\""],
    );
    assert!(matches!(e, ManifestError::WrongType { .. }));
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.debug = \"yes\"\n",
        2,
        13,
        Some("sgx.debug"),
        &["must be a boolean", "found string \"yes\""],
    );
    check_err(
        "libos.entrypoint = 5\n",
        1,
        20,
        Some("libos.entrypoint"),
        &["must be a string, found integer 5"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.argv = \"python3 -c pass\"\n",
        2,
        15,
        Some("loader.argv"),
        &["must be an array of strings"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.argv = [\"a\", 1]\n",
        2,
        21,
        Some("loader.argv[1]"),
        &["must be a string, found integer 1"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx = 5\n",
        2,
        7,
        Some("sgx"),
        &["must be a table"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.env.X = 5\n",
        2,
        16,
        Some("loader.env.X"),
        &["must be a string or { passthrough = true }"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = \"file:/a\"\n",
        2,
        21,
        Some("sgx.trusted_files"),
        &["must be an array"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.isvsvn = 1979-05-27\n",
        2,
        14,
        Some("sgx.isvsvn"),
        &["found date-time 1979-05-27"],
    );
}

#[test]
fn value_errors() {
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.isvprodid = 65536\n",
        2,
        17,
        Some("sgx.isvprodid"),
        &["between 0 and 65535"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.max_threads = 0\n",
        2,
        19,
        Some("sgx.max_threads"),
        &["between 1 and"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nlibos.ocall.workers = -1\n",
        2,
        23,
        Some("libos.ocall.workers"),
        &["between 0 and 4294967295"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nlibos.ocall.mode = \"fast\"\n",
        2,
        20,
        Some("libos.ocall.mode"),
        &["\"exitless\", \"exit\", \"adaptive\"", "found \"fast\""],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nlibos.ocall.mode = \"exitless\"\nlibos.ocall.workers = 0\n",
        2,
        20,
        Some("libos.ocall.workers"),
        &["at least one host worker"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.log_level = \"verbose\"\n",
        2,
        20,
        Some("loader.log_level"),
        &[
            "\"error\", \"warning\", \"info\", \"debug\", \"trace\", \"none\"",
            "found \"verbose\"",
        ],
    );
    for (level, want) in [
        ("none", LogLevel::None),
        ("warning", LogLevel::Warning),
        ("trace", LogLevel::Trace),
    ] {
        let m = parse(&format!(
            "libos.entrypoint = \"/a\"\nloader.log_level = \"{level}\""
        ))
        .unwrap();
        assert_eq!(m.log_level, want);
    }
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [\"dev:tty\"]\n",
        2,
        22,
        Some("sgx.trusted_files[0]"),
        &["`dev:`", "file:"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [{ uri = \"/x\", sha256 = \"abc\" }]\n",
        2,
        45,
        Some("sgx.trusted_files[0].sha256"),
        &["64 hexadecimal digits"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [{ sha256 = \"abc\" }]\n",
        2,
        33,
        Some("sgx.trusted_files[0].sha256"),
        &["64 hexadecimal"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [{ sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\" }]\n",
        2,
        22,
        Some("sgx.trusted_files[0]"),
        &["needs `uri`"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [{ uri = \"/lib/*.so\", sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\" }]\n",
        2,
        22,
        Some("sgx.trusted_files[0]"),
        &["single file, not for a pattern"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.trusted_files = [\"/lib/a**b/x\"]\n",
        2,
        22,
        Some("sgx.trusted_files[0]"),
        &["not a valid pattern"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nfs.start_dir = \"app\"\n",
        2,
        16,
        Some("fs.start_dir"),
        &["absolute path inside the enclave"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.env.A = { passthrough = false }\n",
        2,
        16,
        Some("loader.env.A"),
        &["passthrough = false"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.env.A = { passthrough = true, value = \"x\" }\n",
        2,
        16,
        Some("loader.env.A"),
        &["not both"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nloader.env.A = \"a\\u0000b\"\n",
        2,
        16,
        Some("loader.env.A"),
        &["NUL"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nfs.root = { type = \"tmpfs\", uri = \"file:/\" }\n",
        2,
        20,
        Some("fs.root.type"),
        &["\"chroot\""],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nfs.root = {}\n",
        2,
        11,
        Some("fs.root"),
        &["needs `uri`"],
    );
}

#[test]
fn missing_entrypoint() {
    let e = check_err(
        "sgx.debug = true\n",
        1,
        1,
        Some("libos.entrypoint"),
        &[
            "missing required key `libos.entrypoint`",
            "/usr/bin/python3",
        ],
    );
    assert!(matches!(e, ManifestError::MissingKey { .. }));
    check_err(
        "",
        1,
        1,
        Some("libos.entrypoint"),
        &["missing required key"],
    );
}

#[test]
fn bad_mounts() {
    let ep = "libos.entrypoint = \"/a\"\n";
    check_err(
        &format!("{ep}fs.mounts = [{{ path = \"/data\" }}]\n"),
        2,
        14,
        Some("fs.mounts[0]"),
        &["chroot mount needs `uri`"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ type = \"encrypted\", path = \"/data\" }}]\n"),
        2,
        14,
        Some("fs.mounts[0]"),
        &["encrypted mount needs `uri`"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ path = \"data\", uri = \"file:/d\" }}]\n"),
        2,
        23,
        Some("fs.mounts[0].path"),
        &["absolute path inside the enclave"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ uri = \"file:/d\" }}]\n"),
        2,
        14,
        Some("fs.mounts[0]"),
        &["needs `path`"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ type = \"nfs\", path = \"/d\", uri = \"file:/d\" }}]\n"),
        2,
        23,
        Some("fs.mounts[0].type"),
        &["\"chroot\", \"tmpfs\", \"encrypted\"", "found \"nfs\""],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ type = \"tmpfs\", path = \"/t\", uri = \"file:/d\" }}]\n"),
        2,
        51,
        Some("fs.mounts[0].uri"),
        &["remove `uri`"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ path = \"/t\", uri = \"file:/d\", key_name = \"k\" }}]\n"),
        2,
        57,
        Some("fs.mounts[0].key_name"),
        &["only `encrypted` mounts"],
    );
    check_err(
        &format!("{ep}fs.mounts = [{{ path = \"/\", uri = \"file:/d\" }}]\n"),
        2,
        23,
        Some("fs.mounts[0].path"),
        &["fs.root"],
    );
    check_err(
        &format!("{ep}[[fs.mounts]]\npath = \"/t\"\ntype = \"tmpfs\"\n[[fs.mounts]]\npath = \"/t/\"\ntype = \"tmpfs\"\n"),
        5,
        1,
        Some("fs.mounts[1]"),
        &["mounted twice", "app.toml:3:8"],
    );
    check_err(
        &format!("{ep}fs.mounts = [\"/tmp\"]\n"),
        2,
        14,
        Some("fs.mounts[0]"),
        &["must be a table"],
    );
}

#[test]
fn thread_num_alias() {
    assert_eq!(
        parse("libos.entrypoint = \"/a\"\nsgx.thread_num = 4")
            .unwrap()
            .max_threads,
        4
    );
    let e = check_err(
        "libos.entrypoint = \"/a\"\nsgx.thread_num = 4\nsgx.max_threads = 4\n",
        3,
        5,
        Some("sgx.max_threads"),
        &[
            "conflicts with `sgx.thread_num` (set at app.toml:2:5)",
            "keep only `sgx.max_threads`",
        ],
    );
    assert!(matches!(e, ManifestError::Conflict { .. }));
}

#[test]
fn argv_and_cmdline_conflict() {
    check_err(
        "libos.entrypoint = \"/a\"\nloader.argv = [\"a\"]\nloader.insecure__use_cmdline_argv = true\n",
        3,
        8,
        Some("loader.insecure__use_cmdline_argv"),
        &["conflicts with `loader.argv`"],
    );
    let m = parse("libos.entrypoint = \"/a\"\nloader.insecure__use_cmdline_argv = true\n").unwrap();
    assert!(m.use_cmdline_argv);
}

#[test]
fn gramine_keys() {
    let m = parse(
        "loader.entrypoint = \"file:/gramine/libsysdb.so\"\nlibos.entrypoint = \"/a\"\n\
         sgx.remote_attestation = \"dcap\"\nsgx.nonpie_binary = true\nsgx.file_check_policy = \"strict\"\n\
         [sgx.cpu_features]\navx = \"required\"\n",
    )
    .unwrap();
    assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
    assert!(
        m.warnings[0].starts_with("app.toml:3:5: ignoring `sgx.remote_attestation`"),
        "{:?}",
        m.warnings
    );
    assert!(m.warnings[1].contains("sgx.nonpie_binary"));
    assert!(m.warnings[2].contains("sgx.cpu_features"));
    let e = check_err(
        "libos.entrypoint = \"/a\"\nloader.preload = \"file:x.so\"\n",
        2,
        8,
        Some("loader.preload"),
        &["conf does not support `loader.preload`; remove it"],
    );
    assert!(matches!(e, ManifestError::Unsupported { .. }));
    check_err(
        "libos.entrypoint = \"/a\"\nloader.insecure__use_host_env = true\n",
        2,
        8,
        Some("loader.insecure__use_host_env"),
        &["passthrough = true"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.protected_files = [\"file:x\"]\n",
        2,
        5,
        Some("sgx.protected_files"),
        &["encrypted"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\nsgx.file_check_policy = \"allow_all_but_log\"\n",
        2,
        5,
        Some("sgx.file_check_policy"),
        &["strictly"],
    );
    check_err(
        "libos.entrypoint = \"/a\"\n[fs.mount.lib]\ntype = \"chroot\"\n",
        2,
        5,
        Some("fs.mount"),
        &["fs.mounts"],
    );
}

#[test]
fn gramine_style_manifest() {
    // The shape of a typical Gramine python manifest, with conf's templates.
    let text = r#"
loader.entrypoint = "file:{{ gramine.libos }}"
libos.entrypoint = "{{ entrypoint }}"
loader.log_level = "{{ log_level }}"
loader.env.LD_LIBRARY_PATH = "/lib:{{ arch_libdir }}:/usr/{{ arch_libdir }}"
loader.insecure__use_cmdline_argv = true

fs.mounts = [
  { path = "/lib", uri = "file:{{ gramine.runtimedir }}" },
  { path = "{{ arch_libdir }}", uri = "file:{{ arch_libdir }}" },
  { path = "/usr{{ arch_libdir }}", uri = "file:/usr{{ arch_libdir }}" },
  { path = "{{ entrypoint }}", uri = "file:{{ entrypoint }}" },
  { type = "tmpfs", path = "/tmp" },
]

sgx.debug = true
sgx.edmm_enable = {{ 'true' if env.get('EDMM', '0') == '1' else 'false' }}
sgx.enclave_size = "1G"
sgx.max_threads = 32
"#;
    let d = defs(&[
        (
            "gramine.libos",
            "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so",
        ),
        (
            "gramine.runtimedir",
            "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc",
        ),
        ("entrypoint", "/usr/bin/python3.11"),
        ("log_level", "error"),
    ]);
    let e = parse_str(text, "python.manifest.template", &d)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("python.manifest.template:17:19: unsupported template expression"),
        "{e}"
    );
    let text = text.replace(
        "{{ 'true' if env.get('EDMM', '0') == '1' else 'false' }}",
        "false",
    );
    let m = parse_str(&text, "python.manifest.template", &d).unwrap();
    assert_eq!(m.entrypoint, "/usr/bin/python3.11");
    assert_eq!(m.mounts.len(), 5);
    assert_eq!(
        m.mounts[0].uri,
        "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"
    );
    assert_eq!(m.mounts[2].path, "/usr/lib/x86_64-linux-gnu");
    assert!(m.use_cmdline_argv && !m.edmm && m.debug);
    assert_eq!(m.max_threads, 32);
    assert!(m.warnings.is_empty());
}

#[test]
fn to_toml_round_trips() {
    let mut m = parse_str(FULL, "a.toml", &BTreeMap::new()).unwrap();
    m.env.insert(
        "TRICKY".into(),
        EnvValue::Value("quote\" back\\ nl\n tab\t {{x}} é \u{7f}".into()),
    );
    m.env.insert("".into(), EnvValue::Passthrough); // not valid, but must not break the text
    m.env.remove("");
    m.argv.push("{{ not a template }}".into());
    m.trusted_files
        .push(TrustedEntry::new("/dir with space/[ab]*.so"));
    m.entrypoint = "file:/srv/x y".into();
    m.max_threads = 9;
    m.stack_size = 12345;
    let text = m.to_toml();
    let back =
        parse_str(&text, "b.toml", &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        Manifest {
            origin: m.origin.clone(),
            ..back
        },
        m,
        "{text}"
    );
    // A default manifest with an entrypoint too.
    let m = Manifest {
        entrypoint: "/bin/sh".into(),
        origin: "x".into(),
        ..Manifest::default()
    };
    let back = parse_str(&m.to_toml(), "x", &BTreeMap::new()).unwrap();
    assert_eq!(back, m);
}

#[test]
fn parse_file_relative_paths_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("app.toml");
    std::fs::write(
        &path,
        "libos.entrypoint = \"file:bin/app\"\nsgx.trusted_files = [\"../lib/\", \"file:./x\"]\nsgx.allowed_files = [\"/abs/./y/\"]\n",
    )
    .unwrap();
    let m = parse_file(&path, &BTreeMap::new()).unwrap();
    let root = dir.path().to_str().unwrap();
    assert_eq!(m.origin, path.display().to_string());
    assert_eq!(m.entrypoint, format!("file:{root}/conf/bin/app"));
    assert_eq!(m.trusted_files[0].path, format!("{root}/lib"));
    assert_eq!(m.trusted_files[1].path, format!("{root}/conf/x"));
    assert_eq!(m.allowed_files, ["/abs/y"]);

    std::fs::write(&path, "libos.entrypoint = \"/a\"\n\n   sgx.debug = 1\n").unwrap();
    let e = parse_file(&path, &BTreeMap::new()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:3:16: `sgx.debug` must be a boolean",
            path.display()
        )),
        "{e}"
    );

    let missing = dir.path().join("nope.toml");
    let e = parse_file(&missing, &BTreeMap::new()).unwrap_err();
    assert!(matches!(e, ManifestError::Read { .. }));
    assert!(e.to_string().contains("nope.toml"), "{e}");
}

#[test]
fn columns_count_characters() {
    let (e, _) = err("libos.entrypoint = \"/a\"\nloader.env.\"É\" = \"é\"\nsgx.debug = \"ü\"\n");
    let at = e.location().unwrap();
    assert_eq!((at.line, at.column), (3, 13));
    let (e, _) = err("libos.entrypoint = \"/é\" ; sgx.debug = 1\n");
    assert!(matches!(e, ManifestError::Syntax { .. }));
}
