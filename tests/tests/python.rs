//! CPython runs in the enclave.

use std::process::Command;

use conf_e2e::{run_with_timeout, Manifest, Output, Sandbox, RUN_TIMEOUT};

const PYTHON: &str = "/usr/bin/python3";

/// A manifest for /usr/bin/python3: the interpreter (both the link and
/// python3.11), its libraries, the standard library and the locale data.
fn python_manifest() -> Option<Manifest> {
    if !std::path::Path::new("/usr/bin/python3.11").exists()
        || !std::path::Path::new("/usr/lib/python3.11").is_dir()
    {
        return None;
    }
    let mut m = Manifest::for_program("/usr/bin/python3.11");
    m.entrypoint = PYTHON.into();
    m.trust(PYTHON);
    m.trust("/usr/lib/python3.11/");
    for p in [
        "/usr/lib/locale/C.utf8/",
        "/usr/share/locale/locale.alias",
        "/usr/lib/x86_64-linux-gnu/gconv/",
        "/etc/localtime",
    ] {
        if std::path::Path::new(p).exists() {
            m.trust(p);
        }
    }
    Some(m)
}

fn native(args: &[&str]) -> Output {
    let mut c = Command::new(PYTHON);
    c.args(args).env_clear().current_dir("/");
    run_with_timeout(&mut c, RUN_TIMEOUT)
}

fn enclave(sb: &Sandbox, m: &Manifest, args: &[&str]) -> Output {
    let path = sb.manifest("python", m);
    let mut argv = vec!["python3"];
    argv.extend_from_slice(args);
    sb.conf_run(&path, &[], &argv)
}

#[test]
fn print_6_times_7() {
    let Some(m) = python_manifest() else {
        eprintln!("skipped: no /usr/bin/python3.11");
        return;
    };
    let sb = Sandbox::new();
    let out = enclave(&sb, &m, &["-S", "-c", "print(6*7)"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.stdout_str(), "42\n", "{}", out.describe());
    assert!(
        out.stderr.is_empty(),
        "stderr must be empty:\n{}",
        out.describe()
    );
}

/// A script that uses the standard library (imports of C extension modules,
/// hashing, JSON, files in an allowed directory, the clock, random) prints
/// what it prints natively.
#[test]
fn stdlib_script_same_as_native() {
    let Some(mut m) = python_manifest() else {
        eprintln!("skipped: no /usr/bin/python3.11");
        return;
    };
    // What the extension modules load (libcrypto for _hashlib, ...).
    for e in std::fs::read_dir("/usr/lib/python3.11/lib-dynload")
        .unwrap()
        .flatten()
    {
        if e.path().extension().map(|x| x == "so").unwrap_or(false) {
            m.trust_program(e.path());
        }
    }
    if std::path::Path::new("/usr/lib/ssl/openssl.cnf").exists() {
        m.trust("/usr/lib/ssl/openssl.cnf");
    }
    let sb = Sandbox::new();
    m.allow(sb.data());
    let dir = sb.data();
    let script = format!(
        r#"
import hashlib, json, os, sys, struct, math, time, random, zlib, binascii
d = {dir:?}
with open(os.path.join(d, "out.json"), "w") as f:
    json.dump({{"x": [1, 2, 3], "s": "héllo"}}, f)
with open(os.path.join(d, "out.json")) as f:
    print(json.load(f))
print(sorted(os.listdir(d)))
print(hashlib.sha256(b"conf" * 1000).hexdigest())
print(zlib.crc32(b"abc"), binascii.hexlify(struct.pack("<Q", 2**40)))
print(math.factorial(30), sys.maxsize, sys.byteorder)
t = time.time(); time.sleep(0.01); print(time.time() - t >= 0.01)
print(len(os.urandom(16)), random.Random(5).random())
os.remove(os.path.join(d, "out.json"))
print(sys.getfilesystemencoding(), sys.flags.no_site)
"#
    );
    let args = ["-S", "-c", script.as_str()];
    let n = native(&args);
    assert_eq!(
        n.code(),
        Some(0),
        "the script fails natively:\n{}",
        n.describe()
    );
    let e = enclave(&sb, &m, &args);
    assert_eq!(e.code(), Some(0), "{}", e.describe());
    assert_eq!(
        e.stdout_str(),
        n.stdout_str(),
        "stdout differs\nnative:\n{}\nenclave:\n{}",
        n.describe(),
        e.describe()
    );
    assert!(
        e.stderr.is_empty(),
        "stderr must be empty:\n{}",
        e.describe()
    );
}
