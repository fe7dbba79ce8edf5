//! A host that lies in its OCALL replies (`--insecure-hostile-host`) can
//! stop the enclave, but the enclave must notice, say so and exit 125/126:
//! no crash, no hang, no success built on a lie.

use std::time::Duration;

use conf_e2e::{pattern, run_with_timeout, Manifest, Output, Sandbox, Variant};

const LIMIT: Duration = Duration::from_secs(20);

fn setup(sb: &Sandbox) -> (std::path::PathBuf, Vec<String>) {
    let data = sb.write("trusted/data.bin", pattern(150_000));
    let allowed = sb.write("data/allowed.txt", "an allowed file\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.trust(&data).allow(sb.data());
    let mpath = sb.manifest("m", &m);
    (
        mpath,
        vec![
            "cat".into(),
            data.to_str().unwrap().into(),
            allowed.to_str().unwrap().into(),
        ],
    )
}

/// Check one hostile run; returns a problem, if any.
fn judge(mode: &str, out: &Output) -> Option<String> {
    let err = out.stderr_str();
    let problem = if out.timed_out {
        "hung (killed after 20 s)".to_string()
    } else if let Some(sig) = out.signal() {
        format!(
            "conf-run died of signal {sig}{}",
            if out.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        )
    } else if !matches!(out.code(), Some(125) | Some(126)) {
        format!("exit {:?}, expected 125 or 126", out.code())
    } else if !(err.contains("[conf] error: the enclave stopped")
        || (err.contains("[conf] error: trusted file") && err.contains("does not match")))
    {
        "no \"[conf] error: the enclave stopped\" (or trusted file mismatch) line".to_string()
    } else if err.contains("panicked") {
        "a Rust panic message on stderr".to_string()
    } else {
        return None;
    };
    Some(format!(
        "--insecure-hostile-host {mode}: {problem}\n{}",
        out.describe()
    ))
}

fn run_modes(modes: &[String]) {
    let sb = Sandbox::new();
    let (mpath, argv) = setup(&sb);
    // The honest host first: the same run works.
    let honest = sb.conf_run(&mpath, &[], &argv);
    assert_eq!(honest.code(), Some(0), "honest run:\n{}", honest.describe());
    let mut problems = Vec::new();
    for mode in modes {
        let mut cmd = sb.conf_run_cmd(&mpath, &["--insecure-hostile-host", mode], &argv);
        let out = run_with_timeout(&mut cmd, LIMIT);
        if let Some(p) = judge(mode, &out) {
            problems.push(p);
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} hostile runs went wrong:\n\n{}",
        problems.len(),
        modes.len(),
        problems.join("\n\n")
    );
}

#[test]
fn lengths() {
    run_modes(&["lengths".into()]);
}

#[test]
fn errno() {
    run_modes(&["errno".into()]);
}

#[test]
fn fds() {
    run_modes(&["fds".into()]);
}

#[test]
fn state() {
    run_modes(&["state".into()]);
}

#[test]
fn data() {
    run_modes(&["data".into()]);
}

#[test]
fn random_seeds_1_to_20() {
    run_modes(&(1..=20).map(|s| format!("random:{s}")).collect::<Vec<_>>());
}

#[test]
fn unknown_mode_is_a_usage_error() {
    let sb = Sandbox::new();
    let (mpath, argv) = setup(&sb);
    let out = sb.conf_run(&mpath, &["--insecure-hostile-host", "bogus"], &argv);
    assert!(
        out.code().is_some() && out.code() != Some(0),
        "{}",
        out.describe()
    );
    assert!(out.stderr_str().contains("bogus"), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.describe());
}

/// Looser judgement for programs that make many kinds of calls: lies the
/// LibOS contains (garbage in an allowed file's stat, say) may make the
/// program fail on its own, but conf-run must never crash or hang, and
/// when it stops the enclave it must say so.
fn judge_loosely(mode: &str, out: &Output) -> Option<String> {
    let err = out.stderr_str();
    let problem = if out.timed_out {
        "hung (killed after 20 s)".to_string()
    } else if let Some(sig) = out.signal() {
        format!(
            "conf-run died of signal {sig}{}",
            if out.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        )
    } else if err.contains("panicked") {
        "a Rust panic message on stderr".to_string()
    } else if matches!(out.code(), Some(125) | Some(126)) && !err.contains("[conf] error") {
        "exit 125/126 without a \"[conf] error\" line".to_string()
    } else {
        return None;
    };
    Some(format!(
        "--insecure-hostile-host {mode}: {problem}\n{}",
        out.describe()
    ))
}

fn run_loosely(mpath: &std::path::Path, sb: &Sandbox, argv: &[String], modes: &[String]) -> usize {
    let mut problems = Vec::new();
    let mut stopped = 0;
    for mode in modes {
        let mut cmd = sb.conf_run_cmd(mpath, &["--insecure-hostile-host", mode], argv);
        let out = run_with_timeout(&mut cmd, LIMIT);
        if matches!(out.code(), Some(125) | Some(126)) {
            stopped += 1;
        }
        if let Some(p) = judge_loosely(mode, &out) {
            problems.push(p);
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} hostile runs went wrong:\n\n{}",
        problems.len(),
        modes.len(),
        problems.join("\n\n")
    );
    stopped
}

/// The io test program (pipes, directories, links, stat, ...) under a
/// randomly lying host.
#[test]
fn io_program_random_seeds() {
    let sb = Sandbox::new();
    let bin = sb.compile("io", Variant::Dynamic);
    let data = sb.write("trusted/data.bin", pattern(200_000));
    let denied = sb.write("denied/x", "x");
    let dir = sb.data().join("io");
    let mut m = Manifest::for_program(&bin);
    m.trust(&data).allow(sb.data());
    m.env("CONF_E2E_KEEP_GOING", "1");
    let mpath = sb.manifest("m", &m);
    let argv: Vec<String> = vec![
        bin.to_str().unwrap().into(),
        dir.to_str().unwrap().into(),
        data.to_str().unwrap().into(),
        "200000".into(),
        denied.to_str().unwrap().into(),
    ];
    let modes: Vec<String> = (1..=30)
        .map(|s| format!("random:{s}"))
        .chain(["lengths", "errno", "fds", "state", "data"].map(String::from))
        .collect();
    for mode in &modes {
        // a fresh directory for each run (a run stopped half-way leaves files)
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        run_loosely(&mpath, &sb, &argv, std::slice::from_ref(mode));
    }
}

/// CPython start-up under a randomly lying host.
#[test]
fn python_random_seeds() {
    if !std::path::Path::new("/usr/bin/python3.11").exists() {
        eprintln!("skipped: no /usr/bin/python3.11");
        return;
    }
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/usr/bin/python3.11");
    m.entrypoint = "/usr/bin/python3".into();
    m.trust("/usr/bin/python3").trust("/usr/lib/python3.11/");
    let mpath = sb.manifest("m", &m);
    let argv: Vec<String> = ["python3", "-S", "-c", "print(6*7)"]
        .map(String::from)
        .to_vec();
    let honest = sb.conf_run(&mpath, &[], &argv);
    assert_eq!(
        honest.stdout_str(),
        "42\n",
        "honest run:\n{}",
        honest.describe()
    );
    let modes: Vec<String> = (1..=40).step_by(3).map(|s| format!("random:{s}")).collect();
    let stopped = run_loosely(&mpath, &sb, &argv, &modes);
    assert!(stopped > 0, "no hostile run was noticed");
}
