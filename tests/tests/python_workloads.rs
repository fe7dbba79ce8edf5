//! CPython workloads, zero-config: `conf-run /usr/bin/python3 ...` from the
//! application directory (tests/apps/python/...), compared with the same
//! command run natively. (`python3` on PATH may be a pyenv shim — a shell
//! script that needs fork and exec — so the interpreter is named by path.)
//!
//! Issue "CPython for real": the standard library tour, tracebacks and
//! exit statuses, `-c` and `-m`, modules that are not trusted, the REPL on a
//! terminal, `conf manifest`. Issue "Threads, ... sockets": threads and
//! queues, signals and timers, selectors, an http.server and a socket echo
//! server answering clients on the host.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use conf_e2e::apps::{
    assert_same_as_native, first_difference, have, http_get, http_request, noise, sha256_hex, App,
    PYTHON,
};
use conf_e2e::conf_run;
use conf_e2e::process::Output;

/// How long a server may take to say which port it listens on.
const START: Duration = Duration::from_secs(30);
/// Deadline of one request.
const REQ: Duration = Duration::from_secs(20);

fn python_missing() -> bool {
    if have(PYTHON) {
        return false;
    }
    eprintln!("skipped: {PYTHON} is not installed");
    true
}

/// [`assert_same_as_native`] with 60 lines of diagnostics.
#[track_caller]
fn assert_same(
    app: &App,
    what: &str,
    native: &Output,
    enclave: &Output,
    flags: &[&str],
    argv: &[&str],
) {
    assert_same_as_native(app, what, native, enclave, flags, argv, 60)
}

/// Assert that a run printed nothing on stderr (zero-config adds nothing
/// to what the program prints).
#[track_caller]
fn assert_quiet(what: &str, out: &Output) {
    assert!(
        out.stderr.is_empty(),
        "{what}: stderr is not empty (zero-config must print nothing extra):\n{}",
        out.describe()
    );
}

/// A name for a file in /tmp that is this test's own.
fn marker(tag: &str) -> String {
    format!(
        "conf-e2e-{tag}-{}-{}",
        std::process::id(),
        conf_e2e::host_time()
    )
}

// ---------------------------------------------------------------------------
// Issue "CPython for real"
// ---------------------------------------------------------------------------

/// The standard-library tour (json, re, collections, datetime, decimal,
/// hashlib through OpenSSL, hmac, sqlite3 in tmpfs and in an allowed host
/// directory, zlib/gzip/bz2/lzma, csv, tempfile, pathlib, shutil.copytree,
/// struct, pickle, random, uuid, logging to files, os.walk, unittest) prints
/// what it prints natively; what it wrote to the allowed directory is
/// checked on the host; what it left in /tmp stayed in the enclave.
#[test]
fn python_stdlib_tour_same_as_native() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let mark = marker("tour");
    let host_mark = Path::new("/tmp").join(&mark);
    let argv = [PYTHON, "tour.py", "out", mark.as_str()];
    let flags = ["--allow", "out"];

    app.fresh_dir("out");
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "the tour fails natively:\n{}",
        native.describe()
    );
    let _ = std::fs::remove_file(&host_mark);

    app.fresh_dir("out");
    let enclave = app.run(&flags, &argv);
    let leaked = host_mark.exists();
    let _ = std::fs::remove_file(&host_mark);
    assert_same(&app, "stdlib tour", &native, &enclave, &flags, &argv);
    assert!(enclave.stdout_str().ends_with("tour done\n"));

    // The database and the log the enclave wrote to the allowed directory,
    // read on the host by the host's Python.
    let check = r#"
import sqlite3
con = sqlite3.connect("out/host.db")
print(con.execute("PRAGMA integrity_check").fetchone()[0])
print(con.execute("SELECT count(*), sum(qty), max(name) FROM items").fetchone())
print(sorted(con.execute("SELECT k, v FROM meta").fetchall()))
print(open("out/tour.log").read().splitlines()[:3])
"#;
    let host = app.native(&[PYTHON, "-c", check]);
    assert_eq!(
        host.code(),
        Some(0),
        "the host cannot read what the enclave wrote to the allowed directory:\n{}",
        host.describe()
    );
    assert_eq!(
        host.stdout_str(),
        "ok\n(2000, 15967, 'item1999')\n[('sha', '1fc3ad3aa13e52bff17e2e4bd7e6c4a4cf5ea15d3f3a6b1a3b0eb1ac9cc3adc0'), ('written_by', 'tour.py')]\n\
['DEBUG tour: debug 1', 'INFO tour: info with unicode ✓', 'WARNING tour: warning']\n"
            .replace("1fc3ad3aa13e52bff17e2e4bd7e6c4a4cf5ea15d3f3a6b1a3b0eb1ac9cc3adc0", &sha256_hex(b"conf")),
        "host view of out/host.db and out/tour.log"
    );
    assert!(
        !leaked,
        "/tmp/{mark}, written in the enclave's /tmp (a tmpfs), appeared in the host's /tmp"
    );
    assert_quiet("stdlib tour", &enclave);
}

/// An uncaught exception: the traceback on stderr (as natively) and exit 1.
#[test]
fn python_failing_script_gives_traceback_and_status_1() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let argv = [PYTHON, "fail.py"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "fail.py", &native, &enclave, &[], &argv);
    assert_eq!(enclave.code(), Some(1), "{}", enclave.describe());
    assert_eq!(enclave.stdout_str(), "before the failure\n");
    let err = enclave.stderr_str();
    for needle in [
        "Traceback (most recent call last):",
        "fail.py\", line 5, in parse",
        "ValueError: invalid literal for int() with base 10: 'not a number'",
    ] {
        assert!(
            err.contains(needle),
            "the traceback lacks {needle:?}:\n{}",
            enclave.describe()
        );
    }
    assert_eq!(
        err,
        native.stderr_str(),
        "the traceback differs from the native one"
    );
}

/// `sys.exit(3)` is conf-run's exit status 3.
#[test]
fn python_sys_exit_3_gives_status_3() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let out = app.run(&[], &[PYTHON, "exit3.py"]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert_eq!(out.stdout_str(), "exiting with 3\n");
    assert_quiet("exit3.py", &out);
}

/// `python3 -c CODE ARGS`: argv and output as natively.
#[test]
fn python_dash_c() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let code = "import sys, os, helpers.mathutil as m; print(sys.argv, os.getcwd() == os.path.realpath('.'), m.fib(20)); print(open('data/README.txt').read().strip())";
    let argv = [PYTHON, "-c", code, "one", "two words"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "-c", &native, &enclave, &[], &argv);
    assert!(
        enclave
            .stdout_str()
            .starts_with("['-c', 'one', 'two words'] True 6765\n"),
        "{}",
        enclave.describe()
    );
    assert_quiet("-c", &enclave);
}

/// `python3 -m`: a standard-library module on a file of the app
/// (json.tool), a module in the working directory, and unittest running
/// the app's tests.
#[test]
fn python_dash_m() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let mut failures = Vec::new();
    for argv in [
        vec![
            PYTHON,
            "-m",
            "json.tool",
            "--sort-keys",
            "data/records.json",
        ],
        vec![PYTHON, "-m", "mymod", "x", "y"],
        vec![PYTHON, "-m", "unittest", "-v", "test_sample"],
    ] {
        let native = app.native(&argv);
        assert_eq!(native.code(), Some(0), "natively:\n{}", native.describe());
        let enclave = app.run(&[], &argv);
        // unittest reports on stderr, with the time it took
        let norm = |s: String| {
            s.lines()
                .map(|l| {
                    if l.starts_with("Ran ") {
                        "Ran (time)"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if enclave.code() != Some(0)
            || enclave.stdout != native.stdout
            || norm(enclave.stderr_str()) != norm(native.stderr_str())
        {
            failures.push(format!(
                "{}: differs from native\n{}\n--- native stderr ---\n{}\n{}",
                argv[1..].join(" "),
                first_difference(
                    &format!("{}{}", native.stdout_str(), native.stderr_str()),
                    &format!("{}{}", enclave.stdout_str(), enclave.stderr_str())
                ),
                native.stderr_str(),
                enclave.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A module file outside the trusted tree (a directory added to sys.path
/// at run time) is refused with a message that names the path and says
/// how to allow it; `--trust DIR` allows it.
#[test]
fn python_untrusted_module_is_refused_with_a_hint() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let elsewhere = app.outside("elsewhere");
    std::fs::write(elsewhere.join("outsider.py"), "X = 1\n").unwrap();
    let dir = elsewhere.to_str().unwrap();
    let module = format!("{dir}/outsider.py");
    let argv = [PYTHON, "untrusted_import.py", dir];
    let native = app.native(&argv);
    assert_eq!(native.code(), Some(0), "natively:\n{}", native.describe());

    let out = app.run(&[], &argv);
    assert_eq!(
        out.code(),
        Some(1),
        "importing an untrusted module must fail (PermissionError, exit 1):\n{}",
        out.describe()
    );
    let err = out.stderr_str();
    let hint = err
        .lines()
        .find(|l| l.starts_with("[conf]") && l.contains(&module));
    let Some(hint) = hint else {
        panic!("no [conf] line names {module}:\n{}", out.describe());
    };
    assert!(
        hint.contains("--trust") || hint.contains("sgx.trusted_files"),
        "the message does not say how to allow the file (--trust, or sgx.trusted_files): {hint}"
    );
    assert!(
        err.contains("PermissionError") || err.contains("ImportError"),
        "Python did not report the refusal:\n{}",
        out.describe()
    );

    let out = app.run(&["--trust", dir], &argv);
    assert_eq!(
        out.code(),
        Some(0),
        "with --trust {dir}:\n{}",
        out.describe()
    );
    assert_eq!(out.stdout_str(), format!("imported {module}\n"));
}

/// The pty driver (tests/apps/tools/pty_driver.py), run natively: types
/// `lines` into `conf-run ARGV` on a new terminal, each after `prompt`.
fn on_a_pty(app: &App, term: &str, prompt: &str, lines: &[&str], argv: &[&str]) -> Output {
    let driver = conf_e2e::apps::app_source("tools/pty_driver.py");
    let mut cmd = app.native_cmd(&[PYTHON, driver.to_str().unwrap(), "40", prompt]);
    cmd.args(lines).arg("--").arg(conf_run()).args(argv);
    cmd.env("CONF_CACHE_DIR", app.cache()).env("TERM", term);
    conf_e2e::run_with_timeout(&mut cmd, Duration::from_secs(60))
}

/// The interactive interpreter on a terminal: `print(6*7)` answers 42 and
/// `exit()` ends it with status 0.
#[test]
fn python_repl_answers_on_a_pty() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let out = on_a_pty(&app, "dumb", ">>> ", &["print(6*7)", "exit()"], &[PYTHON]);
    let text = out.stdout_str();
    assert_eq!(
        out.code(),
        Some(0),
        "the REPL did not end with status 0:\n{}",
        out.describe()
    );
    assert!(text.contains("Python 3."), "no banner:\n{}", out.describe());
    assert!(
        text.lines().any(|l| l.trim_end_matches('\r') == "42"),
        "no line \"42\":\n{}",
        out.describe()
    );
}

/// The REPL on a terminal prints nothing that conf adds: no notes about
/// files the interpreter reads there (terminfo, /etc/inputrc, the history
/// file). The digest cache is warmed first, so that the hashing progress
/// of a first start is not what is seen.
#[test]
fn python_repl_prints_nothing_extra() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let warm = app.run(&[], &[PYTHON, "-c", "pass"]);
    assert_eq!(warm.code(), Some(0), "{}", warm.describe());
    let out = on_a_pty(
        &app,
        "xterm-256color",
        ">>> ",
        &["print(6*7)", "exit()"],
        &[PYTHON],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let text = out.stdout_str();
    let extra: Vec<&str> = text.lines().filter(|l| l.contains("[conf]")).collect();
    assert!(
        extra.is_empty(),
        "conf printed on the REPL's terminal:\n{}\n--- whole session ---\n{text}",
        extra.join("\n")
    );
}

/// `conf manifest -o FILE -- python3 tour.py` writes the manifest
/// conf-run would synthesize; `conf-run --manifest FILE` runs it, with the
/// same output as natively.
#[test]
fn python_conf_manifest_then_run_it() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let manifest = app.outside("manifest").join("app.toml");
    let m = manifest.to_str().unwrap();
    let argv = [PYTHON, "tour.py", "out"];
    app.fresh_dir("out");
    let native = app.native(&argv);
    assert_eq!(native.code(), Some(0), "{}", native.describe());
    app.fresh_dir("out");

    let mut args = vec!["manifest", "--allow", "out", "-o", m, "--"];
    args.extend_from_slice(&argv);
    let written = conf_e2e::run_with_timeout(&mut app.conf_cmd(&args), Duration::from_secs(60));
    assert_eq!(
        written.code(),
        Some(0),
        "conf manifest failed:\n{}",
        written.describe()
    );
    assert!(
        written.stdout.is_empty(),
        "conf manifest -o printed on stdout:\n{}",
        written.describe()
    );
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "conf manifest did not write {m}: {e}\n{}",
            written.describe()
        )
    });
    assert!(text.contains("entrypoint = \"/usr/bin/python3\""), "{text}");

    let enclave = app.run(&["--manifest", m], &[]);
    assert_same(
        &app,
        "tour through the written manifest",
        &native,
        &enclave,
        &["--manifest", m],
        &[],
    );
    assert_quiet("tour through the written manifest", &enclave);
}

/// An application in a directory under /tmp (as `mktemp -d` makes): the
/// directory is mounted from the host over the tmpfs /tmp, the rest of
/// /tmp stays in the enclave.
#[test]
fn python_app_in_a_tmp_directory() {
    if python_missing() {
        return;
    }
    let app = App::new_in("python/stdlib", Path::new("/tmp"));
    let argv = [PYTHON, "tour.py", "out"];
    let flags = ["--allow", "out"];
    app.fresh_dir("out");
    let native = app.native(&argv);
    assert_eq!(native.code(), Some(0), "{}", native.describe());
    app.fresh_dir("out");
    let enclave = app.run(&flags, &argv);
    assert_same(
        &app,
        &format!("tour in {}", app.dir().display()),
        &native,
        &enclave,
        &flags,
        &argv,
    );
    assert!(
        app.path("out/host.db").is_file(),
        "the enclave's database did not reach the host"
    );
}

/// Write an executable script `name` into the app.
fn script(app: &App, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = app.write(name, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A `#!/usr/bin/python3` script named as the program: conf-run follows
/// the `#!` line as the kernel does.
#[test]
fn python_shebang_script_as_the_program() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    script(&app, "run.py", "#!/usr/bin/python3\nimport sys\nprint('shebang', sys.argv[1:], sys.argv[0].endswith('run.py'))\n");
    let out = app.run(&[], &["./run.py", "a", "b"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        "shebang ['a', 'b'] True\n",
        "{}",
        out.describe()
    );
    assert_quiet("./run.py", &out);
}

/// Zero-config reuses the manifest it synthesized for a command line only
/// while what it was made from holds: `./tool`, a shell script that
/// becomes a Python script, then runs with Python's library trusted (the
/// manifest made for the shell script trusted /bin/sh and not Python).
#[test]
fn a_changed_program_gets_a_new_manifest() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let reused = "still holds (nothing it was made from changed)";
    script(&app, "tool", "#!/bin/sh\necho from sh\n");
    let first = app.run(&["--log-level", "debug"], &["./tool"]);
    assert_eq!(first.stdout_str(), "from sh\n", "{}", first.describe());
    assert!(!first.stderr_str().contains(reused));
    let again = app.run(&["--log-level", "debug"], &["./tool"]);
    assert_eq!(again.stdout_str(), "from sh\n", "{}", again.describe());
    assert!(
        again.stderr_str().contains(reused),
        "the second start synthesized afresh:\n{}",
        again.describe()
    );
    script(
        &app,
        "tool",
        &format!("#!{PYTHON}\nimport json\nprint(json.dumps({{'from': 'python'}}))\n"),
    );
    let changed = app.run(&["--log-level", "debug"], &["./tool"]);
    assert_eq!(
        changed.stdout_str(),
        "{\"from\": \"python\"}\n",
        "{}",
        changed.describe()
    );
    assert!(!changed.stderr_str().contains(reused));
    let quiet = app.run(&[], &["./tool"]);
    assert_eq!(quiet.stdout_str(), changed.stdout_str());
    assert_quiet("./tool", &quiet);
}

/// `ssl.create_default_context()` finds the system's CA certificates in
/// the enclave as natively (from the trusted CA bundle), and nothing extra
/// is printed.
#[test]
fn python_ssl_default_context_has_the_systems_cas() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    let code = "import ssl; c = ssl.create_default_context(); print(len(c.get_ca_certs()))";
    let argv = [PYTHON, "-c", code];
    let native = app.native(&argv);
    assert_eq!(native.code(), Some(0), "natively:\n{}", native.describe());
    if native.stdout_str().trim() == "0" {
        eprintln!("skipped: no CA certificates on this machine");
        return;
    }
    let enclave = app.run(&[], &argv);
    assert_same(&app, "ssl default context", &native, &enclave, &[], &argv);
    assert_quiet("ssl default context", &enclave);
}

/// A `#!/usr/bin/env python3` script: `env` has to exec python3. Until
/// execve is provided in the enclave this may fail, but then with a
/// message from conf that says why (the CPython issue: "a `#!` script as
/// the entrypoint must fail with a clear message, not a crash").
#[test]
fn python_env_shebang_script_runs_or_fails_clearly() {
    if python_missing() {
        return;
    }
    let app = App::new("python/stdlib");
    script(
        &app,
        "run.py",
        "#!/usr/bin/env python3\nimport sys\nprint('env shebang', sys.argv[1:])\n",
    );
    let native = app.native(&["./run.py", "x"]);
    assert_eq!(native.code(), Some(0), "{}", native.describe());
    let out = app.run(&[], &["./run.py", "x"]);
    if out.code() == Some(0) {
        assert_eq!(out.stdout, native.stdout, "{}", out.describe());
        return;
    }
    assert!(
        out.signal().is_none() && !out.timed_out && out.code() != Some(0),
        "{}",
        out.describe()
    );
    let err = out.stderr_str();
    let explained = err
        .lines()
        .any(|l| l.starts_with("[conf]") && (l.contains("execve") || l.contains("exec ")));
    assert!(
        explained,
        "`env python3` failed ({}) without a conf message that names execve (the user sees only env's own complaint):\n{}",
        out.how(),
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// Issue "Threads, futexes, signals, timers, epoll and sockets"
// ---------------------------------------------------------------------------

/// threading + queue (8 workers), locks, conditions, barriers, a thread
/// pool, thread-locals; signal.alarm interrupting a sleep, an interval
/// timer, signals sent to itself, sigpending/sigwait; selectors over
/// socketpairs and a pipe: the same lines as natively.
#[test]
fn python_threads_signals_selectors_same_as_native() {
    if python_missing() {
        return;
    }
    let app = App::new("python/net");
    let argv = [PYTHON, "concurrency.py"];
    let native = app.native(&argv);
    assert_eq!(native.code(), Some(0), "{}", native.describe());
    let enclave = app.run(&[], &argv);
    assert_same(&app, "concurrency.py", &native, &enclave, &[], &argv);
    assert_quiet("concurrency.py", &enclave);
}

/// An http.server application answers a host client: concurrent GETs, a
/// 1 MB POST, then GET /quit ends it with status 0.
#[test]
fn python_http_server_answers_host_client() {
    if python_missing() {
        return;
    }
    let app = App::new("python/net");
    let mut server = app.spawn(&[], &[PYTHON, "http_app.py"]);
    let port = server.expect_port("PORT ", START);

    let mut problems = Vec::new();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| http_get(port, "/hello", REQ).map(|r| (r.status, r.body_str())))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        for r in c.join().unwrap() {
            match r {
                Ok((200, body)) if body == "hello from http.server\n" => {}
                other => problems.push(format!("GET /hello: {other:?}")),
            }
        }
    }
    match http_get(port, "/threads", REQ) {
        Ok(r) if r.status == 200 && r.body_str().contains("\"pid_positive\": true") => {}
        other => problems.push(format!("GET /threads: {other:?}")),
    }
    let body = noise(1 << 20, 1);
    let want = format!("{} {}\n", body.len(), sha256_hex(&body));
    match http_request(port, "POST", "/sha256", &body, REQ) {
        Ok(r) if r.status == 200 && r.body_str() == want => {}
        other => problems.push(format!(
            "POST /sha256 (1 MiB): expected {want:?}, got {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    match http_get(port, "/nope", REQ) {
        Ok(r) if r.status == 404 => {}
        other => problems.push(format!("GET /nope: {other:?}")),
    }
    let quit = http_get(port, "/quit", REQ);
    let out = server.finish(Duration::from_secs(30));
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        out.describe()
    );
    assert!(
        matches!(&quit, Ok(r) if r.status == 200),
        "GET /quit: {quit:?}\n{}",
        out.describe()
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        format!("PORT {port}\nserved 34 requests\n"),
        "{}",
        out.describe()
    );
    assert_quiet("http_app.py", &out);
}

/// `python3 -m http.server` serves the application directory to a host
/// client (a listing, a text file, a 300 KB binary file) and ends with
/// status 0 on SIGINT.
#[test]
fn python_http_server_module_serves_files() {
    if python_missing() {
        return;
    }
    let app = App::new("python/net");
    let blob = noise(300_000, 2);
    app.write("files/blob.bin", &blob);
    app.write("files/notes.txt", "some notes\n");
    let mut server = app.spawn(
        &[],
        &[
            PYTHON,
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            "files",
        ],
    );
    let port = server
        .wait_for(START, |l| {
            l.strip_prefix("Serving HTTP on 127.0.0.1 port ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "no \"Serving HTTP on\" line\n{}",
                server.kill_and_collect().describe()
            )
        });
    let mut problems = Vec::new();
    match http_get(port, "/", REQ) {
        Ok(r)
            if r.status == 200
                && r.body_str().contains("blob.bin")
                && r.body_str().contains("notes.txt") => {}
        other => problems.push(format!(
            "GET / (listing): {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    match http_get(port, "/notes.txt", REQ) {
        Ok(r) if r.status == 200 && r.body == b"some notes\n" => {}
        other => problems.push(format!(
            "GET /notes.txt: {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    match http_get(port, "/blob.bin", REQ) {
        Ok(r) if r.status == 200 && r.body == blob => {}
        other => problems.push(format!(
            "GET /blob.bin: {:?}",
            other.map(|r| (
                r.status,
                r.body.len(),
                r.header("content-type").map(String::from)
            ))
        )),
    }
    std::thread::sleep(Duration::from_millis(100));
    server.signal("INT");
    let out = server.finish(Duration::from_secs(20));
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        out.describe()
    );
    assert_eq!(
        out.code(),
        Some(0),
        "SIGINT should end http.server with status 0:\n{}",
        out.describe()
    );
    assert!(
        out.stdout_str()
            .contains("Keyboard interrupt received, exiting."),
        "{}",
        out.describe()
    );
}

/// A TCP + UDP echo server on one selector answers host clients: five
/// concurrent connections, a 1 MB line, a datagram; "QUIT" ends it.
#[test]
fn python_socket_echo_server() {
    if python_missing() {
        return;
    }
    let app = App::new("python/net");
    let mut server = app.spawn(&[], &[PYTHON, "echo_server.py"]);
    let tcp = server.expect_port("TCP ", START);
    let udp = server.expect_port("UDP ", START);

    let result = (|| -> Result<(), String> {
        let e = |what: &str| {
            let what = what.to_string();
            move |err: std::io::Error| format!("{what}: {err}")
        };
        let mut conns = Vec::new();
        for _ in 0..5 {
            let c = TcpStream::connect(("127.0.0.1", tcp)).map_err(e("connect"))?;
            c.set_read_timeout(Some(REQ)).unwrap();
            conns.push(c);
        }
        for (i, c) in conns.iter_mut().enumerate() {
            c.write_all(format!("hello {i}\n").as_bytes())
                .map_err(e("send"))?;
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let want = format!("HELLO {i}\n");
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).map_err(e("receive"))?;
            if got != want.as_bytes() {
                return Err(format!(
                    "connection {i}: expected {want:?}, got {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        // a line of 1 MB, written while the answer is read
        let mut big: Vec<u8> = noise(1 << 20, 3).iter().map(|b| b'a' + b % 26).collect();
        big.push(b'\n');
        let want: Vec<u8> = big.to_ascii_uppercase();
        let mut w = conns[0].try_clone().unwrap();
        let writer =
            std::thread::spawn(move || w.write_all(&big).map_err(|e| format!("send 1 MB: {e}")));
        let mut got = vec![0u8; want.len()];
        conns[0].read_exact(&mut got).map_err(e("receive 1 MB"))?;
        writer.join().unwrap()?;
        if got != want {
            return Err("the 1 MB line came back altered".into());
        }
        let u = UdpSocket::bind("127.0.0.1:0").map_err(e("udp bind"))?;
        u.set_read_timeout(Some(REQ)).unwrap();
        u.send_to(b"datagram", ("127.0.0.1", udp))
            .map_err(e("udp send"))?;
        let mut buf = [0u8; 64];
        let (n, from) = u.recv_from(&mut buf).map_err(e("udp receive"))?;
        if &buf[..n] != b"margatad" || from.port() != udp {
            return Err(format!(
                "udp: got {:?} from {from}",
                String::from_utf8_lossy(&buf[..n])
            ));
        }
        conns[1].write_all(b"QUIT\n").map_err(e("send QUIT"))?;
        let mut bye = [0u8; 4];
        conns[1].read_exact(&mut bye).map_err(e("receive BYE"))?;
        if &bye != b"BYE\n" {
            return Err(format!(
                "expected BYE, got {:?}",
                String::from_utf8_lossy(&bye)
            ));
        }
        Ok(())
    })();
    let out = server.finish(Duration::from_secs(20));
    if let Err(e) = result {
        panic!("{e}\n{}", out.describe());
    }
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout_str()
            .ends_with("served 5 connections and 1 datagrams\n"),
        "{}",
        out.describe()
    );
    assert_quiet("echo_server.py", &out);
}
