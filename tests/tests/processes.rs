//! Programs that start programs, zero-config, from tests/apps/procs:
//! `sh -c` pipelines, a `#!/bin/sh` entrypoint that execs Python, Python's
//! subprocess / os.fork / multiprocessing (fork, spawn, forkserver) /
//! os.execv, Node's child_process,
//! Java's ProcessBuilder, and `python3` on PATH being a version-manager
//! shim. Each is compared with the same command run natively.
//!
//! Issue "Processes: fork, vfork, execve, wait, pipes and signals between
//! enclave processes". (The C-level checks — wait statuses, signal deaths,
//! pipes and socketpairs between processes, the process limit — are in
//! c_programs.rs, `fork_*`.)

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use conf_e2e::apps::{assert_same_as_native, have, App, Running, PYTHON};
use conf_e2e::process::Output;
use conf_e2e::{chunks_verified_ahead, two_cpus};

/// Programs the workloads start by name, which zero-config cannot guess
/// from the command line: trusted with --trust, as a user would.
const TRUST_TOOLS: [&str; 8] = [
    "--trust",
    "/usr/bin/ls",
    "--trust",
    "/usr/bin/wc",
    "--trust",
    "/usr/bin/cat",
    "--trust",
    "/usr/bin/echo",
];

#[track_caller]
fn assert_same(
    app: &App,
    what: &str,
    native: &Output,
    enclave: &Output,
    flags: &[&str],
    argv: &[&str],
) {
    assert_same_as_native(app, what, native, enclave, flags, argv, 80)
}

fn missing(program: &str) -> bool {
    if have(program) {
        return false;
    }
    eprintln!("skipped: {program} is not installed");
    true
}

/// `sh -c` with a pipeline and an exit status.
#[test]
fn sh_pipeline_and_exit_status() {
    let app = App::new("procs");
    let argv = ["/bin/sh", "-c", "echo a | tr a b; exit 7"];
    let out = app.run(&[], &argv);
    assert_eq!(
        (out.code(), out.stdout_str().as_str()),
        (Some(7), "b\n"),
        "{}",
        out.describe()
    );
}

/// A `#!/bin/sh` entrypoint in the shape of docker-entrypoint.sh: command
/// substitution with a pipeline, then exec python.
#[test]
fn shell_entrypoint_execs_python() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let argv = ["./entry.sh", "a", "b c"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "entry.sh", &native, &enclave, &[], &argv);
    assert_eq!(enclave.stdout_str(), "HELLO ['a', 'b c']\n");
    assert!(enclave.stderr.is_empty(), "{}", enclave.describe());
}

/// subprocess (capture, shell=True, exit status, pipes both ways),
/// os.fork + waitpid, a child killed by SIGTERM, WNOHANG and SIGCHLD,
/// setsid, multiprocessing Pool / Process / Queue / Value with fork and
/// spawn, and os.execv at the end.
#[test]
fn python_processes_same_as_native() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let argv = [PYTHON, "procs.py"];
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "procs.py fails natively:\n{}",
        native.describe()
    );
    let enclave = app.run(&TRUST_TOOLS, &argv);
    assert_same(&app, "procs.py", &native, &enclave, &TRUST_TOOLS, &argv);
    assert!(enclave.stdout_str().ends_with("execv done\n"));
}

/// Run `script` (in tests/apps/procs) with Python natively and in the
/// enclave (zero-config plus `flags`); the outputs must match and the
/// enclave's must end with `last`.
fn python_script_same_as_native(script: &str, flags: &[&str], last: &str) {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let argv = [PYTHON, script];
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "{script} fails natively:\n{}",
        native.describe()
    );
    let enclave = app.run(flags, &argv);
    assert_same(&app, script, &native, &enclave, flags, &argv);
    assert!(
        enclave.stdout_str().ends_with(last),
        "{}",
        enclave.describe()
    );
}

/// multiprocessing with the forkserver start method (the default from
/// Python 3.14): Pool.map, Process + Queue, terminate. The server binds an
/// AF_UNIX socket under /tmp (a tmpfs in the enclave), clients pass it
/// pipes with SCM_RIGHTS, and terminate signals a worker the server forked.
#[test]
fn python_multiprocessing_forkserver_same_as_native() {
    python_script_same_as_native("forkserver.py", &[], "terminated: -15\n");
}

/// Stop signals: a child stopped and continued from outside (waitpid with
/// WUNTRACED / WCONTINUED), a child stopping itself with SIGSTOP (the whole
/// child conf-run stops, so the parent sees it stopped), and a child whose
/// handler catches SIGTSTP.
#[test]
fn python_job_control_same_as_native() {
    python_script_same_as_native(
        "jobctl.py",
        &["--trust", "/bin/sleep", "--trust", "/bin/sh"],
        "handler child exit status: 0\n",
    );
}

/// A program the workload starts but nobody trusted: the program sees
/// EACCES (Python raises PermissionError) and conf says which flag to add.
#[test]
fn python_subprocess_of_an_untrusted_program_says_what_to_trust() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let script = "import subprocess\ntry:\n    subprocess.run(['ls', '/'])\nexcept PermissionError as e:\n    print('refused', e.errno)\n";
    let out = app.run(&[], &[PYTHON, "-c", script]);
    assert_eq!(
        (out.code(), out.stdout_str().as_str()),
        (Some(0), "refused 13\n"),
        "{}",
        out.describe()
    );
    let err = out.stderr_str();
    assert!(
        err.contains("/usr/bin/ls") && err.contains("--trust"),
        "the denial does not say what to trust:\n{err}"
    );
}

/// child_process.execSync through the shell, spawn with piped stdin,
/// stdout and stderr and an exit code.
#[test]
fn node_child_process_same_as_native() {
    if missing("node") {
        return;
    }
    let app = App::new("procs");
    let argv = ["node", "procs.js"];
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "procs.js fails natively:\n{}",
        native.describe()
    );
    let flags = ["--trust", "/usr/bin/tr"];
    let enclave = app.run(&flags, &argv);
    assert_same(&app, "procs.js", &native, &enclave, &flags, &argv);
}

/// ProcessBuilder: output read to the end, exit values, stdin piped.
#[test]
fn java_process_builder_same_as_native() {
    if missing("java") || missing("javac") {
        return;
    }
    let app = App::new("procs");
    let javac = app.native(&["javac", "-d", "classes", "Procs.java"]);
    assert_eq!(javac.code(), Some(0), "javac failed:\n{}", javac.describe());
    let argv = ["java", "-cp", "classes", "Procs"];
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "Procs fails natively:\n{}",
        native.describe()
    );
    let flags = ["--trust", "/usr/bin/echo", "--trust", "/usr/bin/tr"];
    let enclave = app.run(&flags, &argv);
    assert_same(&app, "Procs", &native, &enclave, &flags, &argv);
}

fn write_exec(app: &App, rel: &str, text: &str) -> String {
    let p = app.write(rel, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

/// `conf-run python3 ...` where `python3` on PATH is a pyenv shim: a bash
/// script that asks `<root>/libexec/pyenv` which interpreter to run. The
/// interpreter it names runs, with its directory first on PATH (as `pyenv
/// exec` does). The manager here is a stand-in that answers `which`.
#[test]
fn pyenv_shim_on_path_runs_the_interpreter_it_selects() {
    if missing(PYTHON) || missing("bash") {
        return;
    }
    let app = App::new("procs");
    let root = app.outside("pyenv");
    let root = root.to_str().unwrap();
    write_exec(
        &app,
        "../pyenv/libexec/pyenv",
        &format!("#!/bin/sh\n[ \"$1\" = which ] && [ \"$2\" = python3 ] && echo {PYTHON} && exit 0\necho \"pyenv: $*: unexpected\" >&2\nexit 1\n"),
    );
    write_exec(
        &app,
        "../pyenv/shims/python3",
        &format!(
            "#!/usr/bin/env bash\nset -e\nprogram=\"${{0##*/}}\"\nexport PYENV_ROOT=\"{root}\"\nexec \"{root}/libexec/pyenv\" exec \"$program\" \"$@\"\n"
        ),
    );
    let argv = [
        "python3",
        "-c",
        "import sys, os; print(1, sys.executable, os.environ['PATH'].split(':')[0])",
    ];
    let mut cmd = app.cmd(&[], &argv);
    cmd.env(
        "PATH",
        format!("{root}/shims:{}", conf_e2e::apps::FIXED_PATH),
    );
    let out = conf_e2e::run_with_timeout(&mut cmd, conf_e2e::RUN_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.stdout_str(), format!("1 {PYTHON} /usr/bin\n"));
    assert!(out.stderr.is_empty(), "{}", out.describe());
}

/// A plain wrapper script on PATH (`exec /usr/bin/python3 "$@"`): it runs
/// in the enclave and execs the interpreter there.
#[test]
fn wrapper_script_on_path_execs_the_interpreter() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let bin = app.outside("bin");
    write_exec(
        &app,
        "../bin/python3",
        &format!("#!/bin/sh\nexec {PYTHON} \"$@\"\n"),
    );
    let mut cmd = app.cmd(&[], &["python3", "-c", "print(6 * 7)"]);
    cmd.env(
        "PATH",
        format!("{}:{}", bin.display(), conf_e2e::apps::FIXED_PATH),
    );
    let out = conf_e2e::run_with_timeout(&mut cmd, conf_e2e::RUN_TIMEOUT);
    assert_eq!(
        (out.code(), out.stdout_str().as_str()),
        (Some(0), "42\n"),
        "{}",
        out.describe()
    );
}

/// Start Python `script` under conf-run with /usr/bin/true trusted, its
/// argument a file in an allowed directory that the script waits for, and
/// wait until it prints `line`. Returns the run and that file.
fn start_gated(app: &App, script: &str, line: &str) -> (Running, std::path::PathBuf) {
    let go_dir = app.outside("go");
    let go = go_dir.join("go");
    let mut run = app.spawn(
        &[
            "--allow",
            go_dir.to_str().unwrap(),
            "--trust",
            "/usr/bin/true",
        ],
        &[PYTHON, "-c", script, go.to_str().unwrap()],
    );
    assert!(
        run.wait_for(Duration::from_secs(60), |l| (l.trim() == line)
            .then_some(()))
            .is_some(),
        "no line {line:?}"
    );
    (run, go)
}

/// The host processes whose parent is `pid`: (pid, comm, command line).
fn host_children(pid: u32) -> Vec<(u32, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) {
            out.push((child, comm, String::from_utf8_lossy(&cmdline).into_owned()));
        }
    }
    out
}

/// The child conf-runs of `pid` started ahead of need: exec'd with
/// `--insecure-child warm:...`, or cloned by the zygote (which is named
/// conf-zygote; its clones keep its command line).
fn warm_children(pid: u32) -> Vec<u32> {
    host_children(pid)
        .into_iter()
        .filter(|(_, comm, cmd)| {
            cmd.contains("warm:") || (cmd.contains("zygote:") && comm != "conf-zygote")
        })
        .map(|(p, _, _)| p)
        .collect()
}

/// After the first process, child conf-runs are cloned by one zygote
/// conf-run instead of exec'd each, and are children of the conf-run that
/// started them (so it waits for them like for any child). Children that
/// reported their exit status ahead of their end are reaped: no zombies
/// pile up. A zygote killed on the host breaks nothing: later processes
/// still start.
#[test]
fn child_conf_runs_are_cloned_by_one_zygote() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let script = "import os, subprocess, sys, time\n\
for i in range(12):\n    subprocess.run(['/usr/bin/true'], check=True)\n\
time.sleep(0.5)\n\
subprocess.run(['/usr/bin/true'], check=True)\n\
print('spawned', flush=True)\n\
while not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)\n\
print('after', [subprocess.run(['/usr/bin/true']).returncode for i in range(3)], flush=True)\n";
    let (run, go) = start_gated(&app, script, "spawned");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (zygotes, warm) = loop {
        let kids = host_children(run.pid());
        let zygotes: Vec<u32> = kids
            .iter()
            .filter(|k| k.1 == "conf-zygote")
            .map(|k| k.0)
            .collect();
        let warm = warm_children(run.pid());
        if (zygotes.len() == 1 && warm.len() == 1) || Instant::now() > deadline {
            break (zygotes.len(), warm);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let zombies = host_children(run.pid())
        .iter()
        .filter(|k| host_state(k.0) == Some('Z'))
        .count();
    for (pid, comm, _) in host_children(run.pid()) {
        if comm == "conf-zygote" {
            send("KILL", pid);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&go, b"").unwrap();
    let out = run.finish(Duration::from_secs(60));
    assert_eq!(zygotes, 1, "expected one zygote conf-run");
    assert!(zombies <= 1, "{zombies} child conf-runs left unreaped");
    assert_eq!(
        warm.len(),
        1,
        "expected one child conf-run kept ready, a child of conf-run"
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout_str().ends_with("after [0, 0, 0]\n"),
        "{}",
        out.describe()
    );
}

/// The child conf-run kept ready for the next process dies (killed by
/// someone on the host): the next subprocess still starts, and the program
/// never sees the dead one in wait().
#[test]
fn a_dead_ready_child_does_not_break_the_next_spawn() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let script = "import os, subprocess, sys, time\n\
subprocess.run(['/usr/bin/true'], check=True)\n\
print('first', flush=True)\n\
while not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)\n\
print('after', subprocess.run(['/usr/bin/true']).returncode, flush=True)\n\
pid = os.fork()\n\
if pid == 0:\n    os._exit(4)\n\
print('waited', os.wait() == (pid, 4 << 8), flush=True)\n";
    let (run, go) = start_gated(&app, script, "first");
    let deadline = Instant::now() + Duration::from_secs(20);
    let warm = loop {
        let w = warm_children(run.pid());
        if !w.is_empty() || Instant::now() > deadline {
            break w;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(warm.len(), 1, "expected one child conf-run kept ready");
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(warm[0].to_string())
        .status();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&go, b"").unwrap();
    let out = run.finish(Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout_str().ends_with("after 0\nwaited True\n"),
        "{}",
        out.describe()
    );
}

/// A child conf-run kept ready verifies, while it waits, the file chunks
/// the run's last exec loaded (the debug log of each exec'd child says how
/// many it took from there).
#[test]
fn ready_children_verify_what_the_last_exec_loaded() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    // Pauses between the processes give each ready child time to finish.
    let script = "import subprocess, time\n\
for i in range(5):\n    subprocess.run(['/usr/bin/true'], check=True)\n    time.sleep(0.2)\n\
print('done', flush=True)\n";
    let out = app.run(
        &["--log-level", "debug", "--trust", "/usr/bin/true"],
        &[PYTHON, "-c", script],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let ahead = chunks_verified_ahead(&out.stderr_str());
    assert!(
        ahead.iter().any(|&n| n > 0) || !two_cpus(),
        "no child took chunks verified ahead: {ahead:?}\n{}",
        out.describe()
    );
}

/// A child conf-run killed on the host (SIGKILL) before its program ends
/// reports no exit status: the parent's wait gets the kill from the host,
/// as for any process.
#[test]
fn a_child_conf_run_killed_on_the_host_is_waited_for() {
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    // The first process starts on demand; the second is a ready child,
    // which reports its program's exit status ahead of its own end.
    let script = "import subprocess\n\
subprocess.run(['/usr/bin/true'], check=True)\n\
p = subprocess.Popen(['/usr/bin/sleep', '60'])\n\
print('child', p.pid, flush=True)\n\
print('status', p.wait(), flush=True)\n";
    let mut run = app.spawn(
        &["--trust", "/usr/bin/true", "--trust", "/usr/bin/sleep"],
        &[PYTHON, "-c", script],
    );
    let child: u32 = run
        .wait_for(Duration::from_secs(60), |l| {
            l.trim().strip_prefix("child ")?.parse().ok()
        })
        .expect("no child line");
    std::thread::sleep(Duration::from_millis(200));
    send("KILL", child);
    let out = run.finish(Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout_str().ends_with("status -9\n"),
        "{}",
        out.describe()
    );
}

/// The host state of process `pid` (R, S, T, ...) from /proc.
fn host_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_for_state(pid: u32, want: char, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while host_state(pid) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{what}: conf-run (pid {pid}) is in state {:?}, not {want}",
            host_state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(sig: &str, pid: u32) {
    let st = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// Job control of conf-run itself, as a shell does it (^Z, fg): a program
/// stopping itself with SIGTSTP, and SIGTSTP from outside while it waits in
/// a read, stop the conf-run process (the shell sees a stopped job); SIGCONT
/// lets it go on where it was.
#[test]
fn sigtstp_stops_conf_run_like_a_job() {
    use std::io::{BufRead, Write};
    if missing(PYTHON) {
        return;
    }
    let app = App::new("procs");
    let code = "import os, signal, sys\n\
                os.kill(os.getpid(), signal.SIGTSTP)\n\
                print('continued', flush=True)\n\
                sys.stdin.readline()\n\
                print('done', flush=True)\n";
    // A process group of its own, as a shell gives a job: the kernel
    // discards SIGTSTP sent to an orphaned group (the test runner's may be).
    let mut child = std::os::unix::process::CommandExt::process_group(
        &mut app.cmd(&[], &[PYTHON, "-c", code]),
        0,
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no output line for {what}"))
    };

    wait_for_state(pid, 'T', "after the program's own SIGTSTP");
    send("CONT", pid);
    assert_eq!(line("the continue"), "continued");

    // Blocked in read(0): ^Z from the terminal is a SIGTSTP to conf-run.
    std::thread::sleep(Duration::from_millis(200));
    send("TSTP", pid);
    wait_for_state(pid, 'T', "after SIGTSTP from outside");
    send("CONT", pid);
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert_eq!(line("the read"), "done");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Signals that reach conf-run as it exits (a program's children ending as
/// it does) do not crash it. The root conf-run's main thread leaves the
/// enclave and returns from `main`, whose runtime takes down the alternate
/// signal stack the sim keeps its per-thread state on; the sim's handler
/// then took its state from the bottom of whatever stack the signal landed
/// on, and conf-run died of SIGSEGV (the fork tests did, now and then).
#[test]
fn signals_while_conf_run_exits_do_not_crash_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut deaths = Vec::new();
    for _ in 0..40 {
        let mut child = std::process::Command::new(conf_e2e::conf_run())
            .env("CONF_CACHE_DIR", dir.path().join("cache"))
            .current_dir(dir.path())
            .args(["--", "/bin/true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Signal it until it is gone (never after it is reaped: the pid
        // could be someone else's by then).
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            // SAFETY: kill(2) of our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGCHLD) };
            std::thread::sleep(Duration::from_micros(20));
        };
        if status.code() != Some(0) {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            deaths.push(format!("{status}: {err}"));
        }
    }
    assert!(deaths.is_empty(), "conf-run died: {deaths:#?}");
}
