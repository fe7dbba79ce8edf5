//! `conf manifest`: the manifest zero-config `conf-run` would synthesize,
//! written as TOML.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Run `conf` in `dir`, with its caches in `dir/.cache`.
fn conf_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_conf"))
        .args(args)
        .current_dir(dir)
        .env("CONF_CACHE_DIR", dir.join("..").join("cache"))
        .env("LD_PRELOAD", "")
        .output()
        .expect("running conf")
}

fn project() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    (root, dir)
}

#[test]
fn writes_a_manifest_that_parses_and_resolves() {
    let (_root, dir) = project();
    let o = conf_in(&dir, ["manifest", "-o", "x.toml", "--", "/bin/echo", "hi"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("wrote x.toml"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));

    let m = conf_manifest::parse_file(&dir.join("x.toml"), &BTreeMap::new()).unwrap();
    assert!(
        m.entrypoint == "/bin/echo" || m.entrypoint == "/usr/bin/echo",
        "{}",
        m.entrypoint
    );
    assert_eq!(m.argv, ["/bin/echo", "hi"]);
    assert!(!m.use_cmdline_argv);
    assert!(m
        .trusted_files
        .iter()
        .any(|t| t.path == "/bin/echo" || t.path == "/usr/bin/echo"));
    assert_eq!(m.start_dir, dir.to_str().unwrap());
    // LD_* variables never make it into the manifest.
    assert!(!m.env.keys().any(|k| k.starts_with("LD_")), "{:?}", m.env);

    let r = conf_manifest::resolve(
        &m,
        &conf_manifest::ResolveOptions {
            progress: conf_manifest::Progress::Never,
            cache_dir: Some(dir.join("..").join("digests")),
            threads: 0,
            defer_checks: false,
        },
    )
    .unwrap();
    assert!(r
        .manifest
        .trusted_files
        .iter()
        .any(|f| f.path.ends_with("/libc.so.6")));
}

#[test]
fn prints_to_stdout_without_output() {
    let (_root, dir) = project();
    let o = conf_in(&dir, ["manifest", "/bin/echo", "-n", "hi"]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(text.starts_with("# conf manifest"), "{text}");
    let m = conf_manifest::parse_str(&text, "stdout", &BTreeMap::new()).unwrap();
    assert_eq!(m.argv, ["/bin/echo", "-n", "hi"]);
}

#[test]
fn allow_and_trust_flags() {
    let (_root, dir) = project();
    std::fs::create_dir(dir.join("logs")).unwrap();
    std::fs::write(dir.join("..").join("extra.txt"), "x").unwrap();
    let o = conf_in(
        &dir,
        [
            "manifest",
            "--allow",
            "logs",
            "--trust",
            "../extra.txt",
            "-o",
            "m.toml",
            "--",
            "/bin/true",
        ],
    );
    assert_code(&o, 0);
    let m = conf_manifest::parse_file(&dir.join("m.toml"), &BTreeMap::new()).unwrap();
    // /dev/shm (POSIX shared memory) is passed through too, where it exists.
    let mine: Vec<&String> = m
        .allowed_files
        .iter()
        .filter(|a| a.as_str() != "/dev/shm")
        .collect();
    assert_eq!(mine, [dir.join("logs").to_str().unwrap()]);
    let extra = dir.parent().unwrap().join("extra.txt");
    assert!(m
        .trusted_files
        .iter()
        .any(|t| t.path == extra.to_str().unwrap()));

    let o = conf_in(&dir, ["manifest", "--allow", "nope", "--", "/bin/true"]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("--allow nope") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn errors_say_what_to_do() {
    let (_root, dir) = project();
    let o = conf_in(&dir, ["manifest", "--", "no-such-program-xyz"]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("no-such-program-xyz was not found on PATH") && err.contains("--manifest"),
        "{err}"
    );
    assert!(!dir.join("x.toml").exists());

    // No command at all is a usage error.
    let o = conf_in(&dir, ["manifest", "-o", "x.toml"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("CMD"), "{}", stderr(&o));
}
