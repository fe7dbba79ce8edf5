//! `conf wrap`, `conf inspect IMAGE` and `conf-run --image`, end to end on
//! a small image made in the test (a static program, three layers with
//! gzip, zstd and a whiteout): the wrapped image runs, is reproducible, has
//! no key in it, takes an extra manifest, and refuses to run when its
//! signature or manifest was tampered with.

mod common;
#[path = "../../loader/tests/oci_common/mod.rs"]
mod oci_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_code, conf, data, stderr, stdout};
use oci_common::*;
use serde_json::Value;

/// conf-run from the same build as conf: `cargo test -p conf-tools` does not
/// build it, and one left from an older build carries another LibOS (conf
/// wrap refuses it), so it is built once here (a no-op when up to date).
fn conf_run() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let conf = PathBuf::from(env!("CARGO_BIN_EXE_conf"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut c = Command::new(cargo);
            c.args(["build", "-q", "-p", "conf-loader", "--bin", "conf-run"]);
            if conf.parent().and_then(|d| d.file_name()) == Some("release".as_ref()) {
                c.arg("--release");
            }
            assert!(c.status().unwrap().success(), "cannot build conf-run");
            conf.with_file_name("conf-run")
        })
        .clone()
}

struct Fixture {
    dir: tempfile::TempDir,
    src: PathBuf,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let Some(hello) = static_hello(dir.path()) else {
            eprintln!("skipped: cannot build a static program (cc -static)");
            return None;
        };
        let src = dir.path().join("src.tar");
        write_docker_archive(&src, &hello_image(&hello), "example/hello:1");
        Some(Fixture { dir, src })
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn wrap(&self, src: &Path, out: &str, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec![
            "wrap".into(),
            format!("docker-archive:{}", src.display()),
            "-o".into(),
            out.into(),
        ];
        args.extend([
            "--key".into(),
            data("key-3072-e3-pkcs1.pem").display().to_string(),
            "--date".into(),
            "20250131".into(),
        ]);
        args.extend(["--conf-run".into(), conf_run().display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(env!("CARGO_BIN_EXE_conf"))
            .args(&args)
            .env("CONF_CACHE_DIR", self.p("cache"))
            .output()
            .unwrap()
    }
    fn run(&self, image: &str) -> Output {
        Command::new(conf_run())
            .args(["--image", image])
            .env("CONF_CACHE_DIR", self.p("cache"))
            .output()
            .unwrap()
    }
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn wrap_inspect_and_run() {
    let Some(f) = Fixture::new() else { return };
    let out = format!("docker-archive:{}", f.p("wrapped.tar").display());
    let o = f.wrap(&f.src, &out, &[]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("(example/hello:1-conf)"), "{text}");
    let mrenclave = field(&text, "mrenclave:").to_string();

    // conf inspect reads the image's SIGSTRUCT.
    let o = conf(["inspect", &out]);
    assert_code(&o, 0);
    assert_eq!(field(&stdout(&o), "mrenclave:"), mrenclave);
    assert_eq!(field(&stdout(&o), "date:"), "2025-01-31");
    let o = conf([
        "inspect",
        "--json",
        &f.p("wrapped.tar").display().to_string(),
    ]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["mrenclave"], mrenclave.as_str());

    // It runs: argv from Entrypoint + Cmd, working directory, data from a
    // later layer.
    let o = f.run(&out);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "hello from the image: one two\ngreeting: hello, enclave\n",
        "{}",
        stderr(&o)
    );
    // Again, from the cache of unpacked images.
    let o = f.run(&out);
    assert_code(&o, 0);
    // Arguments after the image are refused: the manifest fixes argv.
    let o = Command::new(conf_run())
        .args(["--image", &out, "extra"])
        .env("CONF_CACHE_DIR", f.p("cache"))
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("fixes the program's arguments"),
        "{}",
        stderr(&o)
    );

    // The key is nowhere in the image.
    let image = std::fs::read(f.p("wrapped.tar")).unwrap();
    let pem = std::fs::read_to_string(data("key-3072-e3-pkcs1.pem")).unwrap();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    assert!(!image.windows(40).any(|w| w == &body.as_bytes()[100..140]));

    // The original layers are there unchanged, then the conf layer.
    let names = archive_names(&f.p("wrapped.tar"));
    for (blob, _) in &hello_image(b"").layers[..0] {
        assert!(names.contains(&format!("blobs/sha256/{}", &digest(blob)[7..])));
    }
    let manifest = read_member(&f.p("wrapped.tar"), "manifest.json");
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m[0]["Layers"].as_array().unwrap().len(), 4);
    let config: Value = serde_json::from_slice(&read_member(
        &f.p("wrapped.tar"),
        m[0]["Config"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/conf-run");
    assert_eq!(
        config["config"]["Labels"]["dev.conf.mrenclave"],
        mrenclave.as_str()
    );
    assert!(config["config"].get("Cmd").is_none());
}

fn archive_names(p: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(std::fs::File::open(p).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn read_member(p: &Path, name: &str) -> Vec<u8> {
    let mut ar = tar::Archive::new(std::fs::File::open(p).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in {}", p.display())
}

#[test]
fn wrapping_is_reproducible() {
    let Some(f) = Fixture::new() else { return };
    // The same image at another path, into another output: same bytes.
    let copy = f.p("elsewhere/copy.tar");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&f.src, &copy).unwrap();
    let a = format!("docker-archive:{}", f.p("a.tar").display());
    let b = format!(
        "docker-archive:{}:example/hello:1-conf",
        f.p("b.tar").display()
    );
    assert_code(&f.wrap(&f.src, &a, &[]), 0);
    assert_code(&f.wrap(&copy, &b, &[]), 0);
    let (ia, ib) = (
        std::fs::read(f.p("a.tar")).unwrap(),
        std::fs::read(f.p("b.tar")).unwrap(),
    );
    assert!(ia == ib, "the two wrapped images differ");
    let sig = |p: &str| read_conf_file(&f.p(p), "conf/app.sig");
    assert_eq!(sig("a.tar").len(), 1808);
    assert_eq!(sig("a.tar"), sig("b.tar"));
    // Another date: another SIGSTRUCT, same MRENCLAVE.
    let c = format!("oci-archive:{}", f.p("c.tar").display());
    let mut args: Vec<String> = vec![
        "wrap".into(),
        format!("docker-archive:{}", f.src.display()),
        "-o".into(),
        c.clone(),
    ];
    args.extend([
        "--key".into(),
        data("key-3072-e3-pkcs1.pem").display().to_string(),
        "--date".into(),
        "20260101".into(),
    ]);
    args.extend(["--conf-run".into(), conf_run().display().to_string()]);
    let o = Command::new(env!("CARGO_BIN_EXE_conf"))
        .args(&args)
        .env("CONF_CACHE_DIR", f.p("cache"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let ins_a = stdout(&conf(["inspect", &a]));
    let ins_c = stdout(&conf(["inspect", &c]));
    assert_eq!(field(&ins_a, "mrenclave:"), field(&ins_c, "mrenclave:"));
    assert_ne!(field(&ins_a, "date:"), field(&ins_c, "date:"));
}

/// A file of the conf layer (the last layer) of a docker archive.
fn read_conf_file(image: &Path, name: &str) -> Vec<u8> {
    let m: Value = serde_json::from_slice(&read_member(image, "manifest.json")).unwrap();
    let last = m[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let layer = read_member(image, &last);
    let mut ar = tar::Archive::new(layer.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in the conf layer")
}

/// Rewrite a wrapped docker archive as an attacker would, consistently:
/// change a file of the conf layer and fix up every digest.
fn tamper_conf_file(image: &Path, out: &Path, name: &str, change: impl Fn(&mut Vec<u8>)) {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(image).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            files.push((e.path().unwrap().display().to_string(), v));
        }
    }
    let get = |files: &[(String, Vec<u8>)], n: &str| {
        files.iter().find(|(k, _)| k == n).unwrap().1.clone()
    };
    let mut m: Value = serde_json::from_slice(&get(&files, "manifest.json")).unwrap();
    let last = m[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let old = get(&files, &last);
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(old.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut v).unwrap();
        let path = e.path().unwrap().display().to_string();
        if path == name {
            change(&mut v);
        }
        let mut h = e.header().clone();
        h.set_size(v.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &path, v.as_slice()).unwrap();
    }
    let new = b.into_inner().unwrap();
    let new_name = format!("blobs/sha256/{}", &digest(&new)[7..]);
    let cfg_name = m[0]["Config"].as_str().unwrap().to_string();
    let mut cfg: Value = serde_json::from_slice(&get(&files, &cfg_name)).unwrap();
    *cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap() = Value::String(digest(&new));
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let new_cfg_name = format!("blobs/sha256/{}", &digest(&cfg_bytes)[7..]);
    files.retain(|(k, _)| *k != last && *k != cfg_name && k != "manifest.json");
    files.push((new_name.clone(), new));
    files.push((new_cfg_name.clone(), cfg_bytes));
    *m[0]["Layers"].as_array_mut().unwrap().last_mut().unwrap() = Value::String(new_name);
    m[0]["Config"] = Value::String(new_cfg_name);
    files.push(("manifest.json".into(), serde_json::to_vec(&m).unwrap()));
    std::fs::write(out, archive(&files)).unwrap();
}

#[test]
fn tampered_images_are_refused() {
    let Some(f) = Fixture::new() else { return };
    let good = f.p("good.tar");
    assert_code(
        &f.wrap(&f.src, &format!("docker-archive:{}", good.display()), &[]),
        0,
    );

    // A signature that does not verify.
    let bad = f.p("badsig.tar");
    tamper_conf_file(&good, &bad, "conf/app.sig", |s| s[1200] ^= 1);
    let o = f.run(&format!("docker-archive:{}", bad.display()));
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("refusing to run") && e.contains("signature in /conf/app.sig is not valid"),
        "{e}"
    );

    // A manifest changed after signing (the signature is still valid).
    let changed = f.p("changed.tar");
    tamper_conf_file(&good, &changed, "conf/app.manifest", |m| {
        let at = m.windows(3).position(|w| w == b"one").unwrap();
        m[at] = b'O';
    });
    let o = f.run(&format!("docker-archive:{}", changed.display()));
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("refusing to run") && e.contains("MRENCLAVE"),
        "{e}"
    );

    // A layer changed without fixing its digests.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&good).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            let name = e.path().unwrap().display().to_string();
            if let Some(at) = v.windows(14).position(|w| w == b"hello, enclave") {
                v[at] = b'J';
            }
            files.push((name, v));
        }
    }
    std::fs::write(f.p("badlayer.tar"), archive(&files)).unwrap();
    // (With a fresh cache: an image already unpacked on this machine is
    // not read again; its files are checked by the LibOS as they are used.)
    let bad = format!("docker-archive:{}", f.p("badlayer.tar").display());
    let o = Command::new(conf_run())
        .args(["--image", &bad])
        .env("CONF_CACHE_DIR", f.p("cache2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("layer 2 of 4") && e.contains("modified or is corrupt"),
        "{e}"
    );
    assert!(e.contains("badlayer.tar"), "{e}");

    // Not an image made by conf wrap.
    let o = f.run(&format!("docker-archive:{}", f.src.display()));
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("not an image made by `conf wrap`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wrap_errors_are_clear() {
    let Some(f) = Fixture::new() else { return };
    let out = format!("docker-archive:{}", f.p("o.tar").display());
    // Not an image.
    std::fs::write(f.p("junk.tar"), b"junk").unwrap();
    let o = f.wrap(&f.p("junk.tar"), &out, &[]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("junk.tar"), "{}", stderr(&o));
    // Truncated.
    let full = std::fs::read(&f.src).unwrap();
    std::fs::write(f.p("cut.tar"), &full[..full.len() / 2]).unwrap();
    let o = f.wrap(&f.p("cut.tar"), &out, &[]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // No program to run.
    let img = TestImage::new(serde_json::json!({})).plain(&[file("a", b"a")]);
    write_docker_archive(&f.p("noprog.tar"), &img, "a:b");
    let o = f.wrap(&f.p("noprog.tar"), &out, &[]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("neither Entrypoint nor Cmd"),
        "{}",
        stderr(&o)
    );
    // A program that is not in the image.
    let img =
        TestImage::new(serde_json::json!({"Cmd": ["python3", "app.py"]})).plain(&[file("a", b"a")]);
    write_docker_archive(&f.p("noprog.tar"), &img, "a:b");
    let o = f.wrap(&f.p("noprog.tar"), &out, &[]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("python3 is not on the image's PATH"),
        "{}",
        stderr(&o)
    );
    // A bad key is reported before anything else.
    let o = Command::new(env!("CARGO_BIN_EXE_conf"))
        .args(["wrap", "x.tar", "-o", "y.tar", "--key", "/nonexistent.pem"])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("/nonexistent.pem"), "{}", stderr(&o));
    // A conf-run from another build (here: not conf-run at all).
    let o = Command::new(env!("CARGO_BIN_EXE_conf"))
        .args(["wrap", &f.src.display().to_string(), "-o", &out, "--key"])
        .arg(data("key-3072-e3-pkcs1.pem"))
        .arg("--conf-run")
        .arg(&f.src)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("carries another LibOS than this conf"),
        "{}",
        stderr(&o)
    );
    // An unknown transport.
    let o = f.wrap(&f.src, "docker://example/x", &[]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("unknown image transport `docker:`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn extra_manifest_is_merged() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(
        f.p("extra.toml"),
        r#"
sgx.max_threads = 3
sgx.trusted_files = ["/var/cache/junk"]
sgx.allowed_files = ["file:/srv/out"]
fs.mounts = [{ type = "tmpfs", path = "/var/tmp" }]
[loader.env]
PATH = "/opt/bin"
GREETING = "hello"
NEW = "x"
"#,
    )
    .unwrap();
    let merged = f.p("merged.toml");
    let out = format!("docker-archive:{}", f.p("o.tar").display());
    let o = f.wrap(
        &f.src,
        &out,
        &[
            "--manifest",
            &f.p("extra.toml").display().to_string(),
            "--manifest-out",
            &merged.display().to_string(),
        ],
    );
    assert_code(&o, 0);
    let m: toml::Table = std::fs::read_to_string(&merged).unwrap().parse().unwrap();
    let env = m["loader"]["env"].as_table().unwrap();
    assert_eq!(
        env["PATH"].as_str(),
        Some("/opt/bin:/usr/local/bin:/usr/bin:/bin"),
        "PATH-like: user's first"
    );
    assert_eq!(
        env["GREETING"].as_str(),
        Some("hello"),
        "the user's value wins"
    );
    assert_eq!(env["NEW"].as_str(), Some("x"));
    assert_eq!(m["sgx"]["max_threads"].as_integer(), Some(3));
    let trusted: Vec<&str> = m["sgx"]["trusted_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        trusted.iter().any(|t| t.ends_with("/rootfs/etc")),
        "generated entries kept: {trusted:?}"
    );
    assert!(
        trusted.iter().any(|t| t.ends_with("/rootfs/usr/bin")),
        "below /usr (which has excluded /usr/share/doc): {trusted:?}"
    );
    assert!(
        trusted
            .iter()
            .any(|t| t.ends_with("/var/cache/junk") && t.starts_with("file:/")),
        "{trusted:?}"
    );
    assert!(
        !trusted.iter().any(|t| t.ends_with("/var/cache")),
        "caches are not trusted by default: {trusted:?}"
    );
    let mounts = m["fs"]["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2);
    // It still runs, and the new values are what the enclave got.
    let o = f.run(&out);
    assert_code(&o, 0);
    let o = conf(["inspect", &out]);
    assert_code(&o, 0);
    // fs.root cannot be overridden.
    std::fs::write(f.p("bad.toml"), "fs.root = \"file:/\"\n").unwrap();
    let o = f.wrap(
        &f.src,
        &out,
        &["--manifest", &f.p("bad.toml").display().to_string()],
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("fs.root cannot be set"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn podman_loads_a_wrapped_image() {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed");
        return;
    }
    let Some(f) = Fixture::new() else { return };
    let out = format!(
        "docker-archive:{}:localhost/conf-test-wrap:{}",
        f.p("p.tar").display(),
        std::process::id()
    );
    assert_code(&f.wrap(&f.src, &out, &[]), 0);
    let o = Command::new("podman")
        .args(["load", "-q", "-i"])
        .arg(f.p("p.tar"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "podman load refused the image:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("conf-test-wrap"), "{}", stdout(&o));
    let tag = format!("localhost/conf-test-wrap:{}", std::process::id());
    let o = Command::new("podman")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}}",
            &tag,
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("/usr/local/bin/conf-run"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let _ = Command::new("podman").args(["rmi", "-f", &tag]).output();
}
