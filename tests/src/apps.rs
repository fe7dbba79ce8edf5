//! Zero-config workloads: an application directory (a copy of
//! `tests/apps/<name>/`) run as `conf-run PROGRAM ARGS...` from inside it —
//! the way a user runs a project — and, to compare, natively.
//!
//! The directory is made under [`apps_tmp_root`] (not `/tmp`: zero-config
//! mounts `/tmp` as a tmpfs, and a working directory inside `/tmp` takes a
//! different path through the mount table, tested on its own). Each run
//! gets the same small, fixed environment natively and in the enclave, so
//! that the synthesized manifest (which carries the environment) does not
//! depend on the test runner's.
//!
//! Servers are started with [`App::spawn`]: their output lines are
//! collected as they come, a test waits for the line that names the port,
//! talks to it from the host ([`http_get`], [`TcpStream`]) and then ends or
//! signals the process. A [`Running`] process that is dropped is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::{conf_run, conf_tool, target_dir, workspace_root};
use crate::process::{run_with_timeout, Output};
use crate::RUN_TIMEOUT;

/// The CPython the workloads use: the distribution's interpreter (the
/// `python3` first on PATH may be a pyenv shim, a shell script).
pub const PYTHON: &str = "/usr/bin/python3";

/// Where application directories are made: `$CONF_E2E_APPS_DIR`, else
/// `<target>/e2e-apps`.
pub fn apps_tmp_root() -> PathBuf {
    let p = std::env::var_os("CONF_E2E_APPS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("e2e-apps"));
    std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
    p
}

/// `tests/apps/<name>`.
pub fn app_source(name: &str) -> PathBuf {
    workspace_root().join("tests/apps").join(name)
}

/// Whether `program` can be found (a path, or a name on the fixed PATH);
/// tests of a runtime that is not installed are skipped with a note.
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    FIXED_PATH
        .split(':')
        .any(|d| Path::new(d).join(program).is_file())
}

/// The PATH every run gets (no pyenv shims, no cargo).
pub const FIXED_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Copy the directory tree `from` into `to` (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for e in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()))
    {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            if e.file_name() == "__pycache__" {
                continue;
            }
            copy_tree(&e.path(), &target);
        } else if ft.is_file() {
            std::fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("cannot copy {}: {err}", e.path().display()));
        }
    }
}

/// An application directory: `<tmp>/app` (the working directory of every
/// run, hence trusted by zero-config) and `<tmp>/cache` (conf's digest
/// cache, outside the app).
pub struct App {
    dir: tempfile::TempDir,
}

impl App {
    /// A copy of `tests/apps/<name>/`.
    pub fn new(name: &str) -> App {
        Self::new_in(name, &apps_tmp_root())
    }

    /// The same, made under `parent` (e.g. `/tmp`).
    pub fn new_in(name: &str, parent: &Path) -> App {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", name.replace('/', "-")))
            .tempdir_in(parent)
            .expect("cannot create an app directory");
        assert!(
            dir.path().to_str().is_some(),
            "app directory path is not UTF-8"
        );
        let app = App { dir };
        copy_tree(&app_source(name), &app.dir());
        std::fs::create_dir_all(app.cache()).unwrap();
        app
    }

    /// The application directory (working directory of the runs).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    /// Conf's digest cache for this app.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A path in the application directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// A directory next to (outside) the application directory.
    pub fn outside(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Write `bytes` to `rel` in the application directory (parents made).
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// Make `rel` an empty directory (removed first if it exists).
    pub fn fresh_dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn base(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir()).env_clear();
        c.env("PATH", FIXED_PATH)
            .env("LANG", "C.UTF-8")
            .env("CONF_CACHE_DIR", self.cache());
        if let Some(home) = std::env::var_os("HOME") {
            c.env("HOME", home);
        }
        c
    }

    /// `conf-run FLAGS... ARGV...` in the application directory.
    pub fn cmd(&self, flags: &[&str], argv: &[&str]) -> Command {
        let mut c = self.base(conf_run());
        c.args(flags).args(argv);
        c
    }

    /// `conf ARGS...` in the application directory.
    pub fn conf_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.base(conf_tool());
        c.args(args);
        c
    }

    /// `ARGV...` run natively in the application directory, with the same
    /// environment.
    pub fn native_cmd(&self, argv: &[&str]) -> Command {
        let mut c = self.base(Path::new(argv[0]));
        c.args(&argv[1..]);
        c.env_remove("CONF_CACHE_DIR");
        c
    }

    /// Run `conf-run FLAGS... ARGV...` (stdin /dev/null, deadline [`RUN_TIMEOUT`]).
    pub fn run(&self, flags: &[&str], argv: &[&str]) -> Output {
        run_with_timeout(&mut self.cmd(flags, argv), RUN_TIMEOUT)
    }

    /// Run `ARGV...` natively.
    pub fn native(&self, argv: &[&str]) -> Output {
        run_with_timeout(&mut self.native_cmd(argv), RUN_TIMEOUT)
    }

    /// The same run as `run(flags, argv)` with `--log-level LEVEL`, its
    /// stderr cut to the last `lines` lines (with the `[conf]` notes of
    /// warning level and above kept whole), for failure messages.
    pub fn diagnose(&self, level: &str, flags: &[&str], argv: &[&str], lines: usize) -> String {
        let mut f = vec!["--log-level", level];
        f.extend_from_slice(flags);
        let out = self.run(&f, argv);
        let err = out.stderr_str();
        let notable: Vec<&str> = err
            .lines()
            .filter(|l| {
                l.starts_with("[conf]")
                    && !l.starts_with("[conf] [")
                    && !l.contains("clock_gettime")
            })
            .take(40)
            .collect();
        format!(
            "(diagnostic re-run at --log-level {level}: {})\n--- conf notes ---\n{}\n--- last {lines} lines of stderr ---\n{}",
            out.how(),
            notable.join("\n"),
            crate::process::clip(&err, lines, 16000)
        )
    }

    /// Start `conf-run FLAGS... ARGV...` with its output collected line by line.
    pub fn spawn(&self, flags: &[&str], argv: &[&str]) -> Running {
        Running::start(self.cmd(flags, argv))
    }

    /// Start `ARGV...` natively, the same way.
    pub fn spawn_native(&self, argv: &[&str]) -> Running {
        Running::start(self.native_cmd(argv))
    }
}

/// A started process whose stdout and stderr are read as they come.
pub struct Running {
    pub command: String,
    child: Option<Child>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
    started: Instant,
}

fn reader(
    stream: impl Read + Send + 'static,
    acc: Arc<Mutex<String>>,
    tx: Option<std::sync::mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    acc.lock().unwrap().push_str(&line);
                    if let Some(tx) = &tx {
                        let _ = tx.send(line.trim_end_matches('\n').to_string());
                    }
                }
            }
        }
    })
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let command = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let (tx, rx) = channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            reader(child.stdout.take().unwrap(), stdout.clone(), Some(tx)),
            reader(child.stderr.take().unwrap(), stderr.clone(), None),
        ];
        Running {
            command,
            child: Some(child),
            lines: rx,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    /// The process id (of conf-run, or of the native program).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Wait up to `timeout` for a stdout line for which `f` gives a value.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = f(&line) {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Wait for a line `PREFIX<number>` (e.g. "PORT 43121") and return the number.
    pub fn wait_for_number(&mut self, prefix: &str, timeout: Duration) -> Option<u64> {
        self.wait_for(timeout, |l| {
            l.strip_prefix(prefix).and_then(|r| r.trim().parse().ok())
        })
    }

    /// Like [`wait_for_number`](Self::wait_for_number), panicking with an
    /// account of the process when the line does not come.
    pub fn expect_port(&mut self, prefix: &str, timeout: Duration) -> u16 {
        match self.wait_for_number(prefix, timeout) {
            Some(p) if p > 0 && p < 65536 => p as u16,
            _ => {
                let out = self.kill_and_collect();
                panic!(
                    "no \"{prefix}<port>\" line within {timeout:?}\n{}",
                    out.describe()
                );
            }
        }
    }

    /// Send `signal` (e.g. "TERM") to the process with kill(1).
    pub fn signal(&self, signal: &str) {
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("cannot run kill");
        assert!(st.success(), "kill -{signal} {} failed", self.pid());
    }

    fn collect(&mut self, status: Option<ExitStatus>, timed_out: bool) -> Output {
        for h in self.readers.drain(..) {
            let start = Instant::now();
            while !h.is_finished() && start.elapsed() < Duration::from_secs(5) {
                thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        Output {
            command: self.command.clone(),
            status,
            stdout: self.stdout.lock().unwrap().clone().into_bytes(),
            stderr: self.stderr.lock().unwrap().clone().into_bytes(),
            timed_out,
            elapsed: self.started.elapsed(),
        }
    }

    /// Wait up to `timeout` for the process to end; kill it if it does not.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().unwrap();
        let (status, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(st)) => break (Some(st), false),
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", self.command),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            thread::sleep(Duration::from_millis(5));
        };
        self.collect(status, timed_out)
    }

    /// Kill the process now and return what it printed.
    pub fn kill_and_collect(&mut self) -> Output {
        let status = self.child.take().map(|mut c| {
            let _ = c.kill();
            c.wait().ok()
        });
        self.collect(status.flatten(), true)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (the server closes the
/// connection after the response), with a deadline for connect and I/O.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: conf-e2e\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!(
            "Content-Length: {}\r\nContent-Type: application/octet-stream\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    s.write_all(body).map_err(|e| format!("send body: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read response ({} bytes so far): {e}", raw.len()))?;
    if raw.is_empty() {
        return Err("the server closed the connection without a response".into());
    }
    parse_http(&raw).ok_or_else(|| {
        format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        )
    })
}

/// `GET path` with [`http_request`].
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<HttpResponse, String> {
    http_request(port, "GET", path, &[], timeout)
}

fn parse_http(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let resp = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(HttpResponse { body, ..resp })
}

/// A first-difference account of two texts, for assertion messages.
/// Assert that the enclave run exited like the native run and printed the
/// same stdout; on failure, add a diagnostic re-run at `--log-level debug`
/// (the last `lines` lines of its stderr).
#[track_caller]
pub fn assert_same_as_native(
    app: &App,
    what: &str,
    native: &Output,
    enclave: &Output,
    flags: &[&str],
    argv: &[&str],
    lines: usize,
) {
    assert!(
        !native.timed_out && native.code().is_some(),
        "{what}: the native run failed:\n{}",
        native.describe()
    );
    if enclave.code() != native.code() || enclave.stdout != native.stdout {
        panic!(
            "{what}: the enclave run differs from the native run (native: {}, enclave: {})\n{}\n{}\n{}",
            native.how(),
            enclave.how(),
            first_difference(&native.stdout_str(), &enclave.stdout_str()),
            enclave.describe(),
            app.diagnose("debug", flags, argv, lines)
        );
    }
}

pub fn first_difference(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i), g.get(i));
        if a != b {
            return format!(
                "first difference at line {}:\n  native:  {:?}\n  enclave: {:?}",
                i + 1,
                a.unwrap_or(&"<end>"),
                b.unwrap_or(&"<end>")
            );
        }
    }
    "no line differs (a trailing newline or whitespace differs)".into()
}

/// The SHA-256 of `bytes` in hex, computed by the host's `sha256sum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let w = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `len` bytes of a fixed pseudo-random sequence (seeded by `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
