//! Coreutils run in the enclave print exactly what they print natively.

use std::path::Path;
use std::process::Command;

use conf_e2e::{pattern, run_with_timeout, Manifest, Output, Sandbox, RUN_TIMEOUT};

/// Run `program args` natively (empty environment, cwd /).
fn native(program: &str, args: &[&str]) -> Output {
    let mut c = Command::new(program);
    c.args(args).env_clear().current_dir("/");
    run_with_timeout(&mut c, RUN_TIMEOUT)
}

/// Run `program args` in the enclave with manifest `m` (argv[0] = program).
fn enclave(sb: &Sandbox, m: &Manifest, program: &str, args: &[&str]) -> Output {
    let path = sb.manifest("m", m);
    let mut argv = vec![program];
    argv.extend_from_slice(args);
    sb.conf_run(&path, &[], &argv)
}

/// The program's output and status in the enclave must equal the native
/// ones, and conf must print nothing.
fn same_as_native(sb: &Sandbox, m: &Manifest, program: &str, args: &[&str]) -> Output {
    let n = native(program, args);
    let e = enclave(sb, m, program, args);
    assert!(!n.timed_out && n.status.is_some(), "native run: {}", n.describe());
    assert_eq!(e.code(), n.code(), "exit status differs from the native run ({})\nnative:\n{}\nenclave:\n{}", n.how(), n.describe(), e.describe());
    if e.stdout != n.stdout {
        panic!("stdout differs from the native run\nnative:\n{}\nenclave:\n{}", n.describe(), e.describe());
    }
    assert_eq!(e.stderr_str(), n.stderr_str(), "stderr differs from the native run\nenclave:\n{}", e.describe());
    e
}

#[test]
fn echo_hi() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/echo");
    let out = same_as_native(&sb, &m, "/bin/echo", &["hi"]);
    assert_eq!(out.stdout, b"hi\n");
}

#[test]
fn echo_many_arguments() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/echo");
    let args: Vec<String> = (0..200).map(|i| format!("arg{i}-{}", "x".repeat(i % 17))).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    same_as_native(&sb, &m, "/bin/echo", &args);
}

#[test]
fn true_and_false() {
    let sb = Sandbox::new();
    let t = enclave(&sb, &Manifest::for_program("/bin/true"), "/bin/true", &[]);
    assert_eq!(t.code(), Some(0), "{}", t.describe());
    let f = enclave(&sb, &Manifest::for_program("/bin/false"), "/bin/false", &[]);
    assert_eq!(f.code(), Some(1), "{}", f.describe());
    assert!(t.stdout.is_empty() && t.stderr.is_empty() && f.stdout.is_empty() && f.stderr.is_empty(), "{}\n{}", t.describe(), f.describe());
}

#[test]
fn ls_root() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/ls");
    let out = same_as_native(&sb, &m, "/bin/ls", &["/"]);
    assert!(out.stdout_str().lines().any(|l| l == "usr"), "{}", out.describe());
}

/// Files for `ls -la` to show: a file, an empty file, a directory, a link.
fn ls_fixture(dir: &Path) {
    std::fs::create_dir_all(dir.join("subdir")).unwrap();
    std::fs::write(dir.join("file.txt"), "some text\n").unwrap();
    std::fs::write(dir.join("empty"), "").unwrap();
    std::fs::write(dir.join(".hidden"), "h").unwrap();
    std::os::unix::fs::symlink("file.txt", dir.join("link")).unwrap();
}

#[test]
fn ls_la_dir() {
    let sb = Sandbox::new();
    let dir = sb.data().join("listing");
    ls_fixture(&dir);
    let mut m = Manifest::for_program("/bin/ls");
    // Owner names and times: the same files the native ls reads.
    m.trust("/etc/passwd").trust("/etc/group").trust("/etc/nsswitch.conf").trust("/etc/localtime");
    m.allow(sb.data());
    let d = dir.to_str().unwrap();
    let n = native("/bin/ls", &["-la", d]);
    let e = enclave(&sb, &m, "/bin/ls", &["-la", d]);
    assert_eq!(e.code(), Some(0), "{}", e.describe());
    if e.stdout == n.stdout {
        return;
    }
    // Owners may legitimately differ (the enclave's identity); everything
    // else must not: compare the lines without the owner and group fields.
    let strip = |o: &Output| -> Vec<String> {
        o.stdout_str()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() >= 9 {
                    let mut g = f.clone();
                    g.drain(2..4);
                    g.join(" ")
                } else {
                    l.to_string()
                }
            })
            .collect()
    };
    assert_eq!(strip(&e), strip(&n), "ls -la differs from the native run beyond owners\nnative:\n{}\nenclave:\n{}", n.describe(), e.describe());
}

#[test]
fn cat_trusted_and_allowed_files() {
    let sb = Sandbox::new();
    let trusted = sb.write("trusted/big.bin", pattern(300_000));
    let allowed = sb.write("data/small.txt", "allowed file\nsecond line\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.trust(&trusted).allow(sb.data());
    let out = same_as_native(&sb, &m, "/bin/cat", &[trusted.to_str().unwrap(), allowed.to_str().unwrap()]);
    assert_eq!(out.stdout.len(), 300_000 + 25);
}

#[test]
fn sha256sum_trusted_file() {
    let sb = Sandbox::new();
    let trusted = sb.write("trusted/big.bin", pattern(1_000_000));
    let empty = sb.write("trusted/empty", "");
    let mut m = Manifest::for_program("/usr/bin/sha256sum");
    m.trust(&trusted).trust(&empty);
    same_as_native(&sb, &m, "/usr/bin/sha256sum", &[trusted.to_str().unwrap(), empty.to_str().unwrap()]);
}

#[test]
fn cat_missing_file_fails_like_native() {
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/bin/cat");
    m.allow(sb.data());
    let missing = sb.data().join("missing");
    let out = same_as_native(&sb, &m, "/bin/cat", &[missing.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
}
