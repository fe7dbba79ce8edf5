//! conf-run's command line: log levels, backends, exit statuses of its own
//! failures.

use conf_e2e::{
    assert_exit, conf_lines, conf_run, run_with_timeout, Manifest, Sandbox, EXIT_CANNOT_RUN,
    EXIT_SETUP, RUN_TIMEOUT,
};

fn cat_setup(sb: &Sandbox) -> (std::path::PathBuf, Vec<String>) {
    let f = sb.write("data/f.txt", "some text\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.allow(sb.data());
    (
        sb.manifest("m", &m),
        vec!["cat".into(), f.to_str().unwrap().into()],
    )
}

#[test]
fn default_log_level_prints_nothing() {
    let sb = Sandbox::new();
    let (m, argv) = cat_setup(&sb);
    let out = sb.conf_run(&m, &[], &argv);
    assert_exit(&out, 0, "cat");
    assert_eq!(out.stdout_str(), "some text\n");
    assert!(
        out.stderr.is_empty(),
        "stderr is not empty:\n{}",
        out.describe()
    );
}

#[test]
fn trace_prints_every_system_call() {
    let sb = Sandbox::new();
    let (m, argv) = cat_setup(&sb);
    let out = sb.conf_run(&m, &["--log-level", "trace"], &argv);
    assert_exit(&out, 0, "cat with --log-level trace");
    assert_eq!(
        out.stdout_str(),
        "some text\n",
        "trace output must not go to stdout"
    );
    let err = out.stderr_str();
    let lines = conf_lines(&err);
    for call in ["openat(", "read(", "write(", "close(", "mmap("] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("[conf] [1] {call}"))),
            "no \"[conf] [1] {call}\" line:\n{}",
            out.describe()
        );
    }
    // every line on stderr is conf's (cat itself prints nothing there)
    let others: Vec<&str> = err.lines().filter(|l| !l.starts_with("[conf]")).collect();
    assert!(others.is_empty(), "non-conf lines on stderr: {others:?}");
}

/// The last call of a program, which does not return, is traced too (as
/// strace shows `exit_group(0) = ?`).
#[test]
fn trace_shows_exit_group() {
    let sb = Sandbox::new();
    let (m, argv) = cat_setup(&sb);
    let out = sb.conf_run(&m, &["--log-level", "trace"], &argv);
    assert_exit(&out, 0, "cat with --log-level trace");
    let err = out.stderr_str();
    assert!(
        conf_lines(&err)
            .iter()
            .any(|l| l.starts_with("[conf] [1] exit_group(")),
        "exit_group is not traced; the trace ends:\n{}",
        conf_e2e::process::clip(&err, 5, 2000)
    );
}

#[test]
fn log_level_from_the_manifest() {
    let sb = Sandbox::new();
    let f = sb.write("data/f.txt", "x\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.allow(sb.data());
    m.log_level = Some("trace".into());
    let mpath = sb.manifest("m", &m);
    let argv = ["cat", f.to_str().unwrap()];
    let out = sb.conf_run(&mpath, &[], &argv);
    assert_exit(&out, 0, "cat with loader.log_level = trace");
    assert!(
        conf_lines(&out.stderr_str())
            .iter()
            .any(|l| l.starts_with("[conf] [1] openat(")),
        "{}",
        out.describe()
    );
    // --log-level overrides the manifest
    let out = sb.conf_run(&mpath, &["--log-level", "error"], &argv);
    assert_exit(&out, 0, "cat with --log-level error");
    assert!(
        out.stderr.is_empty(),
        "--log-level error did not override the manifest:\n{}",
        out.describe()
    );
}

#[test]
fn errors_are_shown_at_the_default_level_and_hidden_at_none() {
    let sb = Sandbox::new();
    let secret = sb.write("denied/secret", "s");
    let mut m = Manifest::for_program("/bin/cat");
    m.allow(sb.data());
    let mpath = sb.manifest("m", &m);
    let argv = ["cat", secret.to_str().unwrap()];
    let out = sb.conf_run(&mpath, &[], &argv);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        conf_lines(&out.stderr_str())
            .iter()
            .any(|l| l.starts_with("[conf] error:") && l.contains(secret.to_str().unwrap())),
        "{}",
        out.describe()
    );
    let out = sb.conf_run(&mpath, &["--log-level", "none"], &argv);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        conf_lines(&out.stderr_str()).is_empty(),
        "--log-level none still prints:\n{}",
        out.describe()
    );
}

#[test]
fn bad_log_level_is_a_usage_error() {
    let sb = Sandbox::new();
    let (m, argv) = cat_setup(&sb);
    let out = sb.conf_run(&m, &["--log-level", "loud"], &argv);
    assert!(out.code().is_some_and(|c| c != 0), "{}", out.describe());
    assert!(out.stderr_str().contains("loud"), "{}", out.describe());
    assert!(out.stdout.is_empty());
}

#[test]
fn sgx_backend_without_device_is_a_clear_error() {
    if std::path::Path::new("/dev/sgx_enclave").exists() {
        eprintln!("skipped: this machine has /dev/sgx_enclave");
        return;
    }
    let sb = Sandbox::new();
    let (m, argv) = cat_setup(&sb);
    let out = sb.conf_run(&m, &["--backend", "sgx"], &argv);
    assert!(out.code().is_some_and(|c| c != 0), "{}", out.describe());
    assert!(
        out.stderr_str().contains("/dev/sgx_enclave"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.is_empty(),
        "the program ran (silent fall-back to sim?):\n{}",
        out.describe()
    );
}

#[test]
fn untrusted_entrypoint_cannot_run() {
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/bin/cat");
    m.trusted.retain(|p| p != "/bin/cat");
    let mpath = sb.manifest("m", &m);
    let out = sb.conf_run(&mpath, &[], &["cat", "/etc/hostname"]);
    assert_exit(&out, EXIT_CANNOT_RUN, "an entrypoint that is not trusted");
    assert!(
        out.stderr_str().contains("/bin/cat") || out.stderr_str().contains("/usr/bin/cat"),
        "the message does not name the program:\n{}",
        out.describe()
    );
}

#[test]
fn missing_trusted_file_is_a_setup_failure() {
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/bin/cat");
    let missing = sb.path("no/such/file");
    m.trusted.insert(missing.to_str().unwrap().into());
    let mpath = sb.manifest("m", &m);
    let out = sb.conf_run(&mpath, &[], &["cat"]);
    assert_exit(&out, EXIT_SETUP, "a trusted file that does not exist");
    assert!(
        out.stderr_str().contains(missing.to_str().unwrap())
            && out.stderr_str().contains("sgx.trusted_files"),
        "{}",
        out.describe()
    );
}

#[test]
fn unknown_manifest_key_is_a_setup_failure() {
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/bin/cat");
    m.raw("sgx.enclave_sise = \"1G\"");
    let mpath = sb.manifest("m", &m);
    let out = sb.conf_run(&mpath, &[], &["cat"]);
    assert_exit(&out, EXIT_SETUP, "an unknown key");
    assert!(
        out.stderr_str().contains("sgx.enclave_size"),
        "no suggestion:\n{}",
        out.describe()
    );
}

#[test]
fn missing_manifest_file_is_a_setup_failure() {
    let sb = Sandbox::new();
    let out = sb.conf_run(&sb.path("nope.toml"), &[], &["cat"]);
    assert_exit(&out, EXIT_SETUP, "a manifest that does not exist");
    assert!(out.stderr_str().contains("nope.toml"), "{}", out.describe());
}

#[test]
fn version_and_help() {
    let out = run_with_timeout(
        std::process::Command::new(conf_run()).arg("--version"),
        RUN_TIMEOUT,
    );
    assert_exit(&out, 0, "conf-run --version");
    assert!(
        out.stdout_str().starts_with("conf-run "),
        "{}",
        out.describe()
    );
    let out = run_with_timeout(
        std::process::Command::new(conf_run()).arg("--help"),
        RUN_TIMEOUT,
    );
    assert_exit(&out, 0, "conf-run --help");
    assert!(
        out.stdout_str().contains("--manifest"),
        "{}",
        out.describe()
    );
    // It says what the command is for, not what the crate holds.
    assert!(
        out.stdout_str()
            .starts_with("Run a Linux program inside an enclave")
            && out.stdout_str().contains("zero-config"),
        "{}",
        out.describe()
    );
}

#[test]
fn stdin_is_passed_through() {
    use std::io::Write;
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/cat");
    let mpath = sb.manifest("m", &m);
    let mut child = sb
        .conf_run_cmd(&mpath, &[], &["cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        stdin.write_all(&big).unwrap();
        big
    });
    // a deadline: kill the child if it hangs
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(RUN_TIMEOUT).is_err() {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    watchdog.join().unwrap();
    let big = writer.join().unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == big,
        "cat of stdin returned {} bytes, expected {}",
        out.stdout.len(),
        big.len()
    );
}

/// SIGTERM sent to conf-run by the host ends a program that has the
/// default action: exit 143, at once rather than when the sleep is over.
#[test]
fn host_sigterm_ends_the_program() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/usr/bin/sleep");
    let mpath = sb.manifest("m", &m);
    let mut child = sb
        .conf_run_cmd(&mpath, &[], &["sleep", "30"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            panic!("conf-run did not end within 10 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "status {status:?}, stderr:\n{err}"
    );
}
