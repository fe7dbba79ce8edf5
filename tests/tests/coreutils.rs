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
    assert!(
        !n.timed_out && n.status.is_some(),
        "native run: {}",
        n.describe()
    );
    assert_eq!(
        e.code(),
        n.code(),
        "exit status differs from the native run ({})\nnative:\n{}\nenclave:\n{}",
        n.how(),
        n.describe(),
        e.describe()
    );
    if e.stdout != n.stdout {
        panic!(
            "stdout differs from the native run\nnative:\n{}\nenclave:\n{}",
            n.describe(),
            e.describe()
        );
    }
    assert_eq!(
        e.stderr_str(),
        n.stderr_str(),
        "stderr differs from the native run\nenclave:\n{}",
        e.describe()
    );
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
    let args: Vec<String> = (0..200)
        .map(|i| format!("arg{i}-{}", "x".repeat(i % 17)))
        .collect();
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
    assert!(
        t.stdout.is_empty() && t.stderr.is_empty() && f.stdout.is_empty() && f.stderr.is_empty(),
        "{}\n{}",
        t.describe(),
        f.describe()
    );
}

#[test]
fn ls_root() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/ls");
    let out = same_as_native(&sb, &m, "/bin/ls", &["/"]);
    assert!(
        out.stdout_str().lines().any(|l| l == "usr"),
        "{}",
        out.describe()
    );
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
    m.trust("/etc/passwd")
        .trust("/etc/group")
        .trust("/etc/nsswitch.conf")
        .trust("/etc/localtime");
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
    assert_eq!(
        strip(&e),
        strip(&n),
        "ls -la differs from the native run beyond owners\nnative:\n{}\nenclave:\n{}",
        n.describe(),
        e.describe()
    );
}

#[test]
fn cat_trusted_and_allowed_files() {
    let sb = Sandbox::new();
    let trusted = sb.write("trusted/big.bin", pattern(300_000));
    let allowed = sb.write("data/small.txt", "allowed file\nsecond line\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.trust(&trusted).allow(sb.data());
    let out = same_as_native(
        &sb,
        &m,
        "/bin/cat",
        &[trusted.to_str().unwrap(), allowed.to_str().unwrap()],
    );
    assert_eq!(out.stdout.len(), 300_000 + 25);
}

#[test]
fn sha256sum_trusted_file() {
    let sb = Sandbox::new();
    let trusted = sb.write("trusted/big.bin", pattern(1_000_000));
    let empty = sb.write("trusted/empty", "");
    let mut m = Manifest::for_program("/usr/bin/sha256sum");
    m.trust(&trusted).trust(&empty);
    same_as_native(
        &sb,
        &m,
        "/usr/bin/sha256sum",
        &[trusted.to_str().unwrap(), empty.to_str().unwrap()],
    );
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

/// Text tools over a trusted input file.
#[test]
fn text_tools_same_as_native() {
    let sb = Sandbox::new();
    let mut text = String::new();
    for i in 0..5000u32 {
        text.push_str(&format!(
            "line {:05} {}\n",
            (i * 7919) % 5000,
            ["alpha", "beta", "gamma", "delta"][(i % 4) as usize]
        ));
    }
    let input = sb.write("trusted/input.txt", &text);
    let inp = input.to_str().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("/usr/bin/sort", &["-k2,2n", inp]),
        ("/usr/bin/sort", &["-r", "-u", inp]),
        ("/usr/bin/wc", &[inp]),
        ("/usr/bin/head", &["-n", "7", inp]),
        ("/usr/bin/tail", &["-c", "100", inp]),
        ("/usr/bin/grep", &["-c", "gamma", inp]),
        (
            "/usr/bin/grep",
            &["-n", "-E", "line 0000[0-3] (alpha|delta)", inp],
        ),
        ("/usr/bin/md5sum", &[inp]),
        ("/usr/bin/base64", &[inp]),
        ("/usr/bin/od", &["-A", "x", "-t", "x1z", "-N", "64", inp]),
    ];
    for (prog, args) in cases {
        let mut m = Manifest::for_program(prog);
        m.trust(&input);
        same_as_native(&sb, &m, prog, args);
    }
}

/// The environment is exactly the manifest's; the start directory is
/// fs.start_dir.
#[test]
fn env_and_pwd() {
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/usr/bin/env");
    m.env("GREETING", "hello world")
        .env("EMPTY", "")
        .env("LANG", "C");
    let out = enclave(&sb, &m, "/usr/bin/env", &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let mut lines: Vec<String> = out.stdout_str().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["EMPTY=", "GREETING=hello world", "LANG=C"],
        "{}",
        out.describe()
    );

    let mut m = Manifest::for_program("/usr/bin/pwd");
    m.start_dir = Some(sb.data().to_str().unwrap().into());
    m.allow(sb.data());
    let out = enclave(&sb, &m, "/usr/bin/pwd", &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        format!("{}\n", sb.data().display()),
        "{}",
        out.describe()
    );
}

/// A list of a directory tree: every file with its type, size and content
/// hash, for comparing what tools did in the enclave and natively.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if md.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                use std::os::unix::fs::PermissionsExt;
                out.push(format!(
                    "{rel} {} {:o} {:x}",
                    bytes.len(),
                    md.permissions().mode() & 0o7777,
                    bytes
                        .iter()
                        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64))
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// File-system tools on an allowed directory leave the same tree as they
/// do natively.
#[test]
fn file_tools_change_the_tree_as_natively() {
    let sb = Sandbox::new();
    let src = sb.write("trusted/src.bin", pattern(100_000));
    // Trusted files are read-only in the enclave (the LibOS shows them as
    // r--r--r--); make the native copy source look the same.
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let steps: &[(&str, &[&str])] = &[
        ("/usr/bin/mkdir", &["-p", "a/b/c", "d"]),
        ("/usr/bin/touch", &["a/empty"]),
        ("/usr/bin/cp", &["SRC", "a/b/copy.bin"]),
        ("/usr/bin/cp", &["-r", "a", "e"]),
        ("/usr/bin/mv", &["e/b/copy.bin", "d/moved.bin"]),
        ("/usr/bin/ln", &["-s", "../d/moved.bin", "a/link"]),
        ("/usr/bin/chmod", &["600", "d/moved.bin"]),
        ("/usr/bin/rm", &["-r", "e/b"]),
        ("/usr/bin/rmdir", &["a/b/c"]),
        (
            "/usr/bin/dd",
            &[
                "if=SRC",
                "of=d/part",
                "bs=1000",
                "skip=3",
                "count=5",
                "status=none",
            ],
        ),
        ("/usr/bin/truncate", &["-s", "12345", "a/empty"]),
        ("/usr/bin/find", &[".", "-name", "*.bin"]),
        ("/usr/bin/ls", &["-R", "."]),
        ("/usr/bin/du", &["-a", "--apparent-size", "-b", "d"]),
    ];
    let native_dir = sb.path("native");
    let enclave_dir = sb.data().join("work");
    std::fs::create_dir_all(&native_dir).unwrap();
    std::fs::create_dir_all(&enclave_dir).unwrap();
    let src_s = src.to_str().unwrap();
    for (prog, args) in steps {
        let args: Vec<String> = args.iter().map(|a| a.replace("SRC", src_s)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = Command::new(prog);
        c.args(&args).env_clear().current_dir(&native_dir);
        let n = run_with_timeout(&mut c, RUN_TIMEOUT);
        assert_eq!(n.code(), Some(0), "natively: {}", n.describe());
        let mut m = Manifest::for_program(prog);
        m.trust(&src).allow(sb.data());
        m.start_dir = Some(enclave_dir.to_str().unwrap().into());
        let e = enclave(&sb, &m, prog, &args);
        assert_eq!(e.code(), Some(0), "in the enclave: {}", e.describe());
        assert_eq!(
            e.stdout_str(),
            n.stdout_str(),
            "{prog} {args:?}: stdout differs\nnative:\n{}\nenclave:\n{}",
            n.describe(),
            e.describe()
        );
        assert_eq!(
            tree(&enclave_dir),
            tree(&native_dir),
            "after {prog} {args:?} the trees differ"
        );
    }
}

/// A large trusted file goes through cat to a pipe intact.
#[test]
fn cat_large_trusted_file() {
    let sb = Sandbox::new();
    let big = sb.write("trusted/big.bin", pattern(16 << 20));
    let mut m = Manifest::for_program("/bin/cat");
    m.trust(&big);
    let out = enclave(&sb, &m, "/bin/cat", &[big.to_str().unwrap()]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout == pattern(16 << 20),
        "16 MiB through cat: got {} bytes, differing",
        out.stdout.len()
    );
}
