//! The C test programs of tests/c/, each built static, static-pie and
//! dynamic, run first natively (to prove the program itself is right) and
//! then through conf-run. A program prints "ok <check>" per passed check and
//! "FAIL <check>: <why>" for a failed one.

use std::path::PathBuf;
use std::process::Command;

use conf_e2e::{
    assert_exit, chunks_loaded_before_touch, chunks_loaded_by_the_worker, chunks_verified_ahead,
    chunks_verified_as_needed, conf_lines, host_time, pages_filled, pattern, process::clip,
    run_with_timeout, two_cpus, Manifest, Output, Sandbox, Variant, RUN_TIMEOUT,
};

const TRUSTED_SIZE: usize = 200_000;

/// One prepared run: the sandbox, the program, its manifest and arguments.
struct Case {
    sb: Sandbox,
    bin: PathBuf,
    manifest: Manifest,
    args: Vec<String>,
    /// conf-run flags for the enclave run.
    flags: Vec<&'static str>,
    /// A directory the program works in, emptied before each run.
    scratch: Option<PathBuf>,
    /// conf-run's own environment additions for the enclave run.
    env: Vec<(&'static str, &'static str)>,
}

impl Case {
    fn new(name: &str, variant: Variant) -> Case {
        let sb = Sandbox::new();
        let bin = sb.compile(name, variant);
        let mut manifest = Manifest::for_program(&bin);
        manifest.allow(sb.data());
        if std::env::var_os("CONF_E2E_KEEP_GOING").is_some() {
            manifest.env("CONF_E2E_KEEP_GOING", "1");
        }
        Case {
            sb,
            bin,
            manifest,
            args: Vec::new(),
            flags: Vec::new(),
            scratch: None,
            env: Vec::new(),
        }
    }

    /// A trusted file of TRUSTED_SIZE pattern bytes.
    fn trusted_data(&mut self) -> PathBuf {
        let p = self.sb.write("trusted/data.bin", pattern(TRUSTED_SIZE));
        self.manifest.trust(&p);
        p
    }

    fn argv(&self) -> Vec<String> {
        let mut v = vec![self.bin.to_str().unwrap().to_string()];
        v.extend(self.args.iter().cloned());
        v
    }

    fn reset_scratch(&self) {
        if let Some(d) = &self.scratch {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir_all(d).unwrap();
        }
    }

    /// Run natively, with only the manifest's environment, from /.
    fn native(&self) -> Output {
        self.reset_scratch();
        let mut c = Command::new(&self.bin);
        c.args(&self.args)
            .env_clear()
            .current_dir("/")
            .env("CONF_E2E_NATIVE", "1");
        for (k, v) in &self.manifest.env {
            c.env(k, v);
        }
        run_with_timeout(&mut c, RUN_TIMEOUT)
    }

    fn enclave(&self) -> (PathBuf, Output) {
        self.reset_scratch();
        let m = self.sb.manifest("m", &self.manifest);
        let mut cmd = self.sb.conf_run_cmd(&m, &self.flags, &self.argv());
        cmd.envs(self.env.iter().copied());
        let out = run_with_timeout(&mut cmd, RUN_TIMEOUT);
        (m, out)
    }

    /// Native run must pass; then the enclave run must exit `code`. On
    /// failure the message shows the failed checks and the end of a trace.
    fn check(&self, code: i32) -> Output {
        let native = self.native();
        if native.code() != Some(code) {
            panic!(
                "the test program itself fails natively (a bug in the test, not in conf):\n{}",
                native.describe()
            );
        }
        let (m, out) = self.enclave();
        if out.code() != Some(code) || out.timed_out {
            let fails: Vec<&str> = out
                .stdout
                .split(|&b| b == b'\n')
                .filter_map(|l| std::str::from_utf8(l).ok())
                .filter(|l| l.starts_with("FAIL"))
                .collect();
            panic!(
                "in the enclave: expected exit {code}, got {}\nfailed checks:\n  {}\n{}\n--- end of a traced re-run ---\n{}",
                out.how(),
                fails.join("\n  "),
                out.describe(),
                {
                    self.reset_scratch();
                    self.sb.trace_tail(&m, &self.argv(), 50)
                }
            );
        }
        out
    }
}

fn passed(out: &Output) {
    let s = out.stdout_str();
    assert!(
        s.contains("all checks passed"),
        "no \"all checks passed\" line:\n{}",
        out.describe()
    );
}

fn no_conf_lines(out: &Output) {
    let e = out.stderr_str();
    let lines = conf_lines(&e);
    assert!(
        lines.is_empty(),
        "unexpected LibOS messages at the default log level:\n{}",
        clip(&e, 30, 4000)
    );
}

// ---- io ----

fn io(variant: Variant) {
    let mut c = Case::new("io", variant);
    let trusted = c.trusted_data();
    let denied = c.sb.write("denied/secret.txt", "not for the enclave\n");
    let dir = c.sb.data().join("io");
    c.scratch = Some(dir.clone());
    c.args = vec![
        dir.to_str().unwrap().into(),
        trusted.to_str().unwrap().into(),
        TRUSTED_SIZE.to_string(),
        denied.to_str().unwrap().into(),
    ];
    let out = c.check(0);
    passed(&out);
    // The denial names the path and the key that would allow it.
    let err = out.stderr_str();
    let denied_s = denied.to_str().unwrap();
    assert!(
        conf_lines(&err)
            .iter()
            .any(|l| l.contains(denied_s) && l.contains("sgx.trusted_files")),
        "no [conf] line names the denied file {denied_s} and sgx.trusted_files:\n{}",
        out.describe()
    );
    let trusted_s = trusted.to_str().unwrap();
    assert!(
        !conf_lines(&err)
            .iter()
            .any(|l| l.contains(trusted_s) && l.contains("denied reading")),
        "reading the trusted file was reported as denied:\n{}",
        out.describe()
    );
}

// ---- mem ----

/// With file pages the host fills on request, and with the fallback that
/// keeps them inaccessible until filled.
fn mem(variant: Variant) {
    for fill in [Fill::Default, Fill::Inaccessible] {
        let mut c = Case::new("mem", variant);
        fill.apply(&mut c);
        let trusted = c.trusted_data();
        c.manifest.enclave_size("256M");
        // The hint is a warning (logged once): not shown at the default level.
        c.flags = vec!["--log-level", "warning"];
        c.args = vec![trusted.to_str().unwrap().into(), TRUSTED_SIZE.to_string()];
        let out = c.check(0);
        passed(&out);
        let err = out.stderr_str();
        assert!(
            conf_lines(&err)
                .iter()
                .any(|l| l.contains("sgx.enclave_size")),
            "running out of enclave memory printed no [conf] line naming sgx.enclave_size:\n{}",
            out.describe()
        );
    }
}

/// How conf-run is asked to fill lazy file pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fill {
    /// userfaultfd where this machine allows it.
    Default,
    /// Told not to use userfaultfd: the fallback.
    Inaccessible,
}

impl Fill {
    fn apply(self, c: &mut Case) {
        if self == Fill::Inaccessible {
            c.env.push(("CONF_SIM_USERFAULTFD", "0"));
        }
    }
}

/// Whether this process may open a userfaultfd as conf-run does.
fn userfaultfd_available() -> bool {
    const UFFD_USER_MODE_ONLY: libc::c_long = 1;
    // SAFETY: userfaultfd(2) with flags only; the fd is closed at once.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_userfaultfd,
            (libc::O_CLOEXEC | libc::O_NONBLOCK) as libc::c_long | UFFD_USER_MODE_ONLY,
        )
    };
    if fd >= 0 {
        // SAFETY: our own fd.
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}

// ---- proc ----

fn proc_all(variant: Variant) {
    let mut c = Case::new("proc", variant);
    c.args = vec!["all".into(), host_time().to_string()];
    let out = c.check(0);
    passed(&out);
    no_conf_lines(&out);
}

fn proc_exit(variant: Variant) {
    for (mode, code) in [("exit42", 42), ("exit_group42", 42), ("sigterm", 128 + 15)] {
        let mut c = Case::new("proc", variant);
        c.args = vec![mode.into()];
        let native = c.native();
        let native_ok = match mode {
            "sigterm" => native.signal() == Some(15),
            _ => native.code() == Some(code),
        };
        assert!(native_ok, "proc {mode} natively:\n{}", native.describe());
        let (_, out) = c.enclave();
        assert_exit(&out, code, &format!("proc {mode} ({})", variant.name()));
        assert!(
            !out.stdout_str().contains("still alive"),
            "{}",
            out.describe()
        );
        no_conf_lines(&out);
    }
}

// ---- auxv ----

/// The auxv program with the environment and arguments it checks.
fn auxv_case(variant: Variant) -> Case {
    let mut c = Case::new("auxv", variant);
    c.manifest
        .env("CONF_E2E_VAR", "hello world")
        .env("CONF_E2E_EMPTY", "");
    c.args = vec![
        c.bin.to_str().unwrap().into(),
        "alpha".into(),
        "with space".into(),
        String::new(),
    ];
    c
}

fn auxv(variant: Variant) {
    let c = auxv_case(variant);
    let out = c.check(0);
    passed(&out);
    no_conf_lines(&out);
}

/// The same checks with argv fixed by the manifest (loader.argv) instead of
/// taken from the conf-run command line.
fn auxv_manifest_argv(variant: Variant) {
    let mut c = Case::new("auxv", variant);
    c.manifest
        .env("CONF_E2E_VAR", "hello world")
        .env("CONF_E2E_EMPTY", "");
    let bin = c.bin.to_str().unwrap().to_string();
    c.manifest.argv(&[&bin, &bin, "alpha", "with space", ""]);
    c.args = vec![
        bin.clone(),
        "alpha".into(),
        "with space".into(),
        String::new(),
    ];
    let native = c.native();
    assert_exit(&native, 0, "auxv natively");
    let m = c.sb.manifest("m", &c.manifest);
    let out = c.sb.conf_run(&m, &[], &[] as &[&str]);
    assert_exit(&out, 0, "auxv with loader.argv");
    passed(&out);
    no_conf_lines(&out);
}

// ---- fork ----

/// fork, vfork + execve, posix_spawn, wait statuses and signal deaths,
/// pipes and socketpairs between processes, setsid.
fn fork_all(variant: Variant) {
    let mut c = Case::new("fork", variant);
    c.args = vec!["all".into()];
    let out = c.check(0);
    passed(&out);
    no_conf_lines(&out);
}

/// sys.max_processes: the program starts children until fork fails; it
/// must fail with EAGAIN exactly at the limit (the first process counts),
/// with an error naming the key, and waiting for children frees slots.
fn fork_limit(variant: Variant) {
    const LIMIT: usize = 4;
    let mut c = Case::new("fork", variant);
    c.manifest.raw(&format!("sys.max_processes = {LIMIT}"));
    c.args = vec!["limit".into(), LIMIT.to_string()];
    let (_, out) = c.enclave();
    assert_exit(&out, 0, "fork limit");
    passed(&out);
    let err = out.stderr_str();
    let lines = conf_lines(&err);
    assert!(
        lines.len() == 1
            && lines[0].contains("sys.max_processes")
            && lines[0].contains(&format!("more than {LIMIT} processes")),
        "expected one error naming sys.max_processes:\n{}",
        out.describe()
    );
}

// ---- unixsock ----

/// A unixsock case working in a directory that is a tmpfs in the enclave
/// (and a scratch directory of the sandbox natively).
fn unixsock_case(mode: &str, variant: Variant) -> (Case, PathBuf) {
    let mut c = Case::new("unixsock", variant);
    let tmp = c.sb.path("tmp");
    c.manifest.mount(&format!(
        "{{ type = \"tmpfs\", path = \"{}\" }}",
        tmp.display()
    ));
    c.scratch = Some(tmp.clone());
    let dir = tmp.join("d");
    c.args = vec![mode.into(), dir.to_str().unwrap().into()];
    (c, dir)
}

/// SCM_RIGHTS of a pipe and a socket to a forked child, MSG_CTRUNC,
/// MSG_CMSG_CLOEXEC; AF_UNIX sockets bound under /tmp (tmpfs) reached from
/// a child and a grandchild, stream and datagram, with their addresses.
fn unix_sockets(variant: Variant) {
    let (c, _) = unixsock_case("all", variant);
    let out = c.check(0);
    passed(&out);
    no_conf_lines(&out);
}

/// A tmpfs file cannot be passed: EOPNOTSUPP and one line naming it.
fn unix_pass_tmpfs_fd(variant: Variant) {
    let (c, dir) = unixsock_case("tmpfd", variant);
    let out = c.check(0);
    passed(&out);
    let err = out.stderr_str();
    let lines = conf_lines(&err);
    let file = dir.join("file");
    assert!(
        lines.len() == 1
            && lines[0].contains(file.to_str().unwrap())
            && lines[0].contains("SCM_RIGHTS"),
        "expected one line naming {} and SCM_RIGHTS:\n{}",
        file.display(),
        out.describe()
    );
}

// ---- lazythreads ----

/// 6 threads touch a 16 MiB trusted file mapping together: pages load on
/// first touch, and no thread may read one before it holds its bytes.
/// Both ways of filling (see `mem`); the log says which one ran: the
/// host's fill wherever userfaultfd can be opened.
fn lazy_threads(variant: Variant) {
    const SIZE: usize = 16 << 20;
    for fill in [Fill::Default, Fill::Inaccessible] {
        let mut c = Case::new("lazythreads", variant);
        fill.apply(&mut c);
        c.flags = vec!["--log-level", "debug"];
        let data = c.sb.write("trusted/big.bin", pattern(SIZE));
        c.manifest.trust(&data);
        c.args = vec![data.to_str().unwrap().into(), SIZE.to_string()];
        let by_host = fill == Fill::Default && userfaultfd_available();
        let want = if by_host {
            "filled by the host"
        } else {
            "kept inaccessible until then"
        };
        for _ in 0..3 {
            let out = c.check(0);
            passed(&out);
            assert!(
                conf_lines(&out.stderr_str())
                    .iter()
                    .any(|l| l.contains("file pages load on first touch") && l.contains(want)),
                "{fill:?}: no [conf] line says file pages are {want}:\n{}",
                out.describe()
            );
        }
    }
}

// ---- forkcode ----

/// fork after reading an 8 MiB read-only table: its pages are not sent
/// (the child loads them from the file again) and the child sees them.
fn fork_code(variant: Variant) {
    let mut c = Case::new("forkcode", variant);
    c.flags = vec!["--log-level", "debug"];
    let out = c.check(0);
    passed(&out);
    let err = out.stderr_str();
    let sent: Vec<u64> = err
        .lines()
        .filter_map(|l| l.split("fork: ").nth(1)?.split(" KiB").next()?.parse().ok())
        .collect();
    assert_eq!(sent.len(), 1, "one fork reported:\n{}", out.describe());
    assert!(
        sent[0] < 4096,
        "fork sent {} KiB: the 8 MiB table went too\n{}",
        sent[0],
        out.describe()
    );
}

// ---- prefetch ----

/// A program started again gets the file chunks its last start loaded
/// verified ahead on a second thread (the debug log counts those it took);
/// hints the host garbled change nothing but that count.
fn prefetch(variant: Variant) {
    let mut c = Case::new("forkcode", variant);
    c.flags = vec!["--log-level", "debug"];
    // The program waits before it reads its table, so that the second
    // thread is done first however busy the machine is.
    c.args = vec!["300".into()];
    let ahead = |o: &Output| chunks_verified_ahead(&o.stderr_str());
    let first = c.check(0);
    passed(&first);
    assert_eq!(ahead(&first), vec![0], "first start:\n{}", first.describe());
    let second = c.check(0);
    passed(&second);
    // The second start learns which pages of each chunk the program uses
    // (it fills them one by one, see `pagemask`); from the third on, the
    // worker's chunks go in before the program touches them.
    let third = c.check(0);
    passed(&third);
    if two_cpus() {
        assert!(
            worker_chunks_used(&second) > 0,
            "nothing verified ahead on the second start:\n{}",
            second.describe()
        );
        let second = third;
        // The table's first touch loads its other chunks the worker has
        // verified (the program sleeps first, so it has verified them all).
        let before = chunks_loaded_before_touch(&second.stderr_str());
        assert!(
            before.len() == 1 && before[0] >= 100,
            "the table's chunks were not loaded before the program touched them:\n{}",
            second.describe()
        );
        // Where the host fills pages itself, the worker puts them in as it
        // verifies them (the table is mapped with the program, before the
        // sleep): the program's thread does not even fault on them. Not
        // all: those verified while the program's thread held its address
        // space (starting up, on a busy machine) are left to its first
        // touch.
        let by_worker = chunks_loaded_by_the_worker(&second.stderr_str());
        if userfaultfd_available() {
            assert!(
                by_worker.len() == 1 && by_worker[0] > 0,
                "the worker did not put the table's chunks into the mapping:\n{}",
                second.describe()
            );
        } else {
            assert_eq!(by_worker, vec![0], "{}", second.describe());
        }
    }
    let hints = c.sb.path("cache/fill-hints");
    let files: Vec<_> = std::fs::read_dir(&hints)
        .unwrap_or_else(|e| panic!("no hints at {}: {e}", hints.display()))
        .flatten()
        .collect();
    assert!(!files.is_empty(), "no hints kept in {}", hints.display());
    for f in files {
        std::fs::write(f.path(), pattern(4096)).unwrap();
    }
    passed(&c.check(0));
}

/// A program that reads a few bytes of some chunks of a trusted file and
/// then maps them (a dynamic loader reading a library's headers and notes)
/// has each chunk verified once, as one that only maps them.
fn headmap(variant: Variant) {
    const SIZE: usize = 6 * 65536 + 1000;
    let run = |mode: &str| {
        let mut c = Case::new("headmap", variant);
        c.flags = vec!["--log-level", "debug"];
        let data = c.sb.write("trusted/six-chunks.bin", pattern(SIZE));
        c.manifest.trust(&data);
        c.args = vec![data.to_str().unwrap().into(), SIZE.to_string(), mode.into()];
        // First start of each (its own cache): nothing is verified ahead.
        let out = c.check(0);
        passed(&out);
        let n = chunks_verified_as_needed(&out.stderr_str());
        assert_eq!(n.len(), 1, "no prefetch line:\n{}", out.describe());
        n[0]
    };
    let mapped = run("map");
    let read_first = run("read-then-map");
    assert_eq!(
        read_first, mapped,
        "reading the chunks before mapping them verified {read_first} chunks, mapping alone {mapped}"
    );
}

/// A program started again has only the pages of its file mappings filled
/// that its last starts used: the first start fills whole chunks, the
/// second learns which pages the program touches (one by one), and later
/// starts fill those at the first touch of each chunk. A page the hints
/// leave out still holds the file's bytes when touched. Both ways the host
/// may fill pages.
fn pagemask(variant: Variant) {
    const PAGES: usize = 8 * 16;
    let size = PAGES * 4096;
    for fill in [Fill::Default, Fill::Inaccessible] {
        let mut c = Case::new("pagemask", variant);
        fill.apply(&mut c);
        c.flags = vec!["--log-level", "debug"];
        let data = c.sb.write("trusted/eight-chunks.bin", pattern(size));
        c.manifest.trust(&data);
        let run = |c: &mut Case, first: usize| {
            c.args = vec![
                data.to_str().unwrap().into(),
                size.to_string(),
                "4".into(),
                first.to_string(),
            ];
            let out = c.check(0);
            passed(&out);
            let filled = pages_filled(&out.stderr_str());
            assert_eq!(filled.len(), 1, "no prefetch line:\n{}", out.describe());
            filled[0]
        };
        let whole = run(&mut c, 0);
        run(&mut c, 0);
        let learned = run(&mut c, 0);
        // A quarter of the file's pages are touched: the rest, 96 pages,
        // are no longer filled (the program's own pages are the same).
        assert!(
            learned + 90 <= whole,
            "{fill:?}: {learned} pages filled after learning, {whole} at the first start"
        );
        // Other pages than those learned (checked by the program).
        run(&mut c, 1);
        run(&mut c, 2);
    }
}

/// Zero-config carries the shell's environment into the manifest, and it
/// changes from start to start (`OLDPWD`, `_`, a variable set for one
/// command): the hints of what the last start loaded are still found,
/// since they are kept by what was resolved, not by the whole manifest.
fn prefetch_zero_config(variant: Variant) {
    let c = Case::new("forkcode", variant);
    let cache = tempfile::tempdir().unwrap();
    let cwd = c.bin.parent().unwrap();
    let run = |value: &str| {
        let mut cmd = std::process::Command::new(conf_e2e::conf_run());
        cmd.env("CONF_CACHE_DIR", cache.path())
            .env("CONF_E2E_CHANGING", value)
            .current_dir(cwd)
            .args(["--log-level", "debug"])
            .arg(&c.bin)
            // Waits before it reads its table, so that the second thread
            // is done first however busy the machine is.
            .arg("300");
        let out = conf_e2e::process::run_with_timeout(&mut cmd, conf_e2e::RUN_TIMEOUT);
        assert_exit(&out, 0, "zero-config forkcode");
        passed(&out);
        out
    };
    let first = run("first");
    let ahead = |o: &Output| chunks_verified_ahead(&o.stderr_str());
    assert_eq!(ahead(&first), vec![0], "first start:\n{}", first.describe());
    let second = run("second");
    if two_cpus() {
        assert!(
            worker_chunks_used(&second) > 0,
            "nothing verified ahead with another environment:\n{}",
            second.describe()
        );
    }
}

/// Chunks the program got from the prefetch worker: taken at a first touch,
/// or put into its mappings by the worker before that.
fn worker_chunks_used(out: &Output) -> u64 {
    let err = out.stderr_str();
    let taken: u64 = chunks_verified_ahead(&err).iter().sum();
    let put_in: u64 = chunks_loaded_by_the_worker(&err).iter().sum();
    taken + put_in
}

// ---- vecregs ----

/// YMM0-15 and ZMM16-31 keep the program's values across a page fault
/// that loads a trusted file's page (the host copies its chunk digests)
/// and across a host system call with a result to copy (getdents64).
fn vec_regs(variant: Variant) {
    let mut c = Case::new("vecregs", variant);
    // OCALLs served on the calling thread (zero-config's mode): the host's
    // code runs on the program's registers.
    c.manifest.raw("libos.ocall.mode = \"exit\"");
    // Files of two chunks under names of 1 to 64 characters: the host's
    // string and memory routines it runs for them (and so the registers
    // they use) depend on the lengths. And a directory of entries for the
    // host to copy.
    let mut args = vec![c.sb.data().to_str().unwrap().to_string()];
    for len in 1..=64 {
        let f =
            c.sb.write(&format!("trusted/{}", "f".repeat(len)), pattern(2 << 16));
        c.manifest.trust(&f);
        args.push(f.to_str().unwrap().into());
    }
    for i in 0..40 {
        c.sb.write(&format!("data/entry-with-a-longer-name-{i:03}"), "x");
    }
    c.args = args;
    let out = c.check(0);
    passed(&out);
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpu.contains(" avx2") {
        assert!(
            out.stdout_str().contains("ok YMM0-15 across page faults"),
            "the checks did not run:\n{}",
            out.describe()
        );
    }
}

// ---- threadchurn ----

/// 50,000 threads created and joined one after another: each takes the
/// slot the previous one is leaving (the process died of SIGSYS about once
/// per 20,000 before the leaving thread turned its dispatch off first).
fn thread_churn(variant: Variant) {
    let mut c = Case::new("threadchurn", variant);
    c.args = vec!["50000".into()];
    passed(&c.check(0));
}

// ---- rewrite ----

/// 4 threads run system call sites that cannot be rewritten with one
/// aligned store (the `mov` crosses an 8- or 16-byte boundary) or that have
/// instructions between `mov` and `syscall`: every call stays right while
/// the sites change, and every site ends up rewritten.
fn rewrite(variant: Variant) {
    let c = Case::new("rewrite", variant);
    for _ in 0..3 {
        passed(&c.check(0));
    }
}

/// A program with one thread has its system call sites rewritten without
/// any page changing protection: the host writes the stub and the jump
/// (`PokeCode`), where making the page writable (RWX) and read-only again
/// cost two calls and a TLB shootdown per write.
fn rewrite_alone(variant: Variant) {
    let mut c = auxv_case(variant);
    c.env.push(("CONF_TRACE_OCALLS", "1"));
    let out = c.check(0);
    passed(&out);
    // The trace prints each call's first four arguments one per line.
    let err = out.stderr_str();
    let lines: Vec<&str> = err.lines().collect();
    let calls = |name: &str| -> Vec<usize> {
        let tag = format!("Some({name})(");
        (0..lines.len())
            .filter(|&i| lines[i].contains(&tag))
            .collect()
    };
    assert!(
        !calls("PokeCode").is_empty(),
        "no site was rewritten:\n{}",
        out.describe()
    );
    let writable_code = calls("Mprotect")
        .into_iter()
        .filter(|&i| lines.get(i + 3).map(|l| l.trim()) == Some("0x7,"))
        .count();
    assert_eq!(
        writable_code,
        0,
        "code pages were made writable to rewrite sites:\n{}",
        out.describe()
    );
}

// ---- cpuid ----

/// CPUID answers as natively. Made to trap as on SGX
/// (CONF_SIM_TRAP_CPUID=1), they come from the LibOS's cache: each leaf
/// asked of the host once, and nothing asked by a forked child that reads
/// the leaves its parent read. By default the sim lets CPUID run natively.
fn cpuid(variant: Variant) {
    // Exitless: the request to trap must still change the enclave thread,
    // not the host worker that serves OCALLs.
    for mode in ["exit", "exitless"] {
        cpuid_run(variant, mode, true);
    }
    cpuid_run(variant, "exit", false);
}

fn cpuid_run(variant: Variant, mode: &str, trap: bool) {
    let mut c = Case::new("cpuid", variant);
    c.flags = vec!["--log-level", "debug"];
    c.manifest.raw(&format!("libos.ocall.mode = \"{mode}\""));
    if trap {
        c.env.push(("CONF_SIM_TRAP_CPUID", "1"));
    }
    let out = c.check(0);
    passed(&out);
    let leaves = |o: &Output| -> Vec<String> {
        o.stdout_str()
            .lines()
            .filter(|l| l.starts_with("leaf "))
            .map(String::from)
            .collect()
    };
    let native = c.native();
    assert_eq!(
        leaves(&out),
        leaves(&native),
        "CPUID answers differ from the native run:\n{}",
        out.describe()
    );
    let err = out.stderr_str();
    let asked = |l: &&str| l.contains("cpuid: leaf") && l.contains("asked of the host");
    let total = err.lines().filter(asked).count();
    let child = err
        .split("== fork ==")
        .nth(1)
        .and_then(|rest| rest.split("== joined ==").next())
        .unwrap_or_else(|| panic!("no fork markers on stderr:\n{}", out.describe()));
    assert_eq!(
        child.lines().filter(asked).count(),
        0,
        "the child asked the host again:\n{}",
        out.describe()
    );
    // Each distinct leaf once: the program alone asks for 21, plus what
    // its C library reads as it starts; 5,000 times one leaf must not show.
    assert!(total < 100, "{total} requests:\n{}", out.describe());
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !trap {
        assert_eq!(total, 0, "CPUID trapped unasked:\n{}", out.describe());
    } else if cpu.contains(" cpuid_fault") {
        assert!(
            total > 0,
            "CPUID did not trap although the CPU can (cpuid_fault):\n{}",
            out.describe()
        );
    }
}

macro_rules! per_variant {
    ($($family:ident),* $(,)?) => {$(
        mod $family {
            use super::*;
            #[test]
            fn static_nonpie() {
                super::$family(Variant::Static)
            }
            #[test]
            fn static_pie() {
                super::$family(Variant::StaticPie)
            }
            #[test]
            fn dynamic() {
                super::$family(Variant::Dynamic)
            }
        }
    )*};
}

per_variant!(
    io,
    mem,
    proc_all,
    proc_exit,
    auxv,
    auxv_manifest_argv,
    fork_all,
    fork_limit,
    lazy_threads,
    fork_code,
    vec_regs,
    thread_churn,
    rewrite,
    rewrite_alone,
    unix_sockets,
    unix_pass_tmpfs_fd,
    cpuid,
    prefetch,
    prefetch_zero_config,
    headmap,
    pagemask
);
