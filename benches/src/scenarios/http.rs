//! `http`: requests per second of two small HTTP servers, a Node `http`
//! hello world and Python's `http.server` serving a small file, each run
//! natively, in conf and in gVisor, with conf-bench's own load client
//! ([`crate::load`]) on the host: keep-alive connections, one request at a
//! time on each. In conf every `accept`, `read` and `write` of a socket is
//! an OCALL, and the served file is a trusted file.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{progress, Scenario, CONF, GVISOR, NATIVE};
use crate::env::{self, argv, Env, Runner};
use crate::load::{self, Plan};
use crate::manifest::Spec;
use crate::report::{fmt_num, Better, Cell, Metric, ScenarioReport, Stat};

pub struct Http;

/// Concurrent keep-alive connections of the load client.
const CONNS: usize = 8;
/// How long a server may take to say it listens (conf and gVisor start
/// slower than native).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// A server exits on its own (status 3) after this many seconds, should
/// conf-bench die without closing its stdin.
const SERVER_DEADLINE_S: u64 = 600;

/// Node's hello world, with a Content-Length (Node would otherwise answer
/// chunked). Prints `listening PORT`; exits when stdin ends.
const NODE_SERVER: &str = r#"
const http = require('http');
const body = Buffer.from('Hello, world!\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(3), Number(process.argv[2]) * 1000).unref();
"#;

/// http.server's SimpleHTTPRequestHandler (a thread per connection), with
/// HTTP/1.1 so that connections are kept alive and without the log line per
/// request on stderr. Prints `listening PORT`; exits when stdin ends.
const PYTHON_SERVER: &str = r#"
import http.server, os, sys, threading
root, deadline = sys.argv[1], float(sys.argv[2])
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
def stop(code):
    os._exit(code)
def watch_stdin():
    sys.stdin.buffer.read()
    stop(0)
threading.Thread(target=watch_stdin, daemon=True).start()
timer = threading.Timer(deadline, stop, (3,))
timer.daemon = True
timer.start()
server.serve_forever()
"#;

/// What glibc's and c-ares' name resolution read.
const RESOLVER_FILES: [&str; 5] = [
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/gai.conf",
];

/// Python's extension modules (for their closures: libssl, libbz2, ...).
fn lib_dynload() -> anyhow::Result<Vec<std::path::PathBuf>> {
    let real = std::fs::canonicalize("/usr/bin/python3")?;
    let name = real.file_name().unwrap_or_default().to_string_lossy();
    let dir = std::path::Path::new("/usr/lib")
        .join(&*name)
        .join("lib-dynload");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .collect();
    v.sort();
    Ok(v)
}

/// The file Python serves.
const FILE_NAME: &str = "hello.txt";
const FILE_SIZE: usize = 1024;

fn file_body() -> Vec<u8> {
    let line = b"Hello from conf-bench's http scenario.\n";
    line.iter().copied().cycle().take(FILE_SIZE).collect()
}

/// One server: how to start it, its conf manifest, what to request and the
/// body expected.
struct Server {
    label: String,
    argv: Vec<OsString>,
    manifest: std::path::PathBuf,
    path: &'static str,
    body: Vec<u8>,
}

impl Scenario for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn about(&self) -> &'static str {
        "HTTP requests/s from a keep-alive load client on the host: Node http hello world, Python http.server serving a 1 KiB file"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let mut r = ScenarioReport::new(self.name(), self.about(), &[NATIVE, CONF, GVISOR]);
        let seconds = if env.opts.quick { 3 } else { 10 };
        let warmup = Duration::from_secs(1);
        let servers = [
            ("Node http hello world", node(env)),
            ("python3 http.server, 1 KiB file", python(env)),
        ];
        for (label, server) in servers {
            let mut m = Metric::new(label, "req/s", Better::Higher);
            match server {
                Err(e) => {
                    for c in [NATIVE, CONF, GVISOR] {
                        m.set(c, Cell::failed(format!("cannot prepare {label}: {e:#}")));
                    }
                }
                Ok(s) => {
                    let columns = [
                        (NATIVE, Runner::Native),
                        (
                            CONF,
                            Runner::Conf {
                                manifest: s.manifest.clone(),
                            },
                        ),
                        (GVISOR, Runner::GvisorHostNet),
                    ];
                    let mut cpu = Vec::new();
                    for (col, runner) in columns {
                        progress(self.name(), label, col);
                        let (cell, extra) = measure(env, &runner, &s, warmup, seconds);
                        if extra.reconnects > 0 {
                            r.note(format!("{label} [{col}]: the server closed {} kept-alive connection(s) and the client opened them again", extra.reconnects));
                        }
                        if let Some(c) = extra.cpu {
                            cpu.push(format!(
                                "{col} {} µs ({} user + {} system)",
                                fmt_num(c.user + c.system),
                                fmt_num(c.user),
                                fmt_num(c.system)
                            ));
                        }
                        m.set(col, cell);
                    }
                    if !cpu.is_empty() {
                        r.note(format!("{label}: CPU time of the server per response (user + system of its process group from /proc, warm-up included; not for gVisor, whose sandbox leaves the group): {}", cpu.join(", ")));
                    }
                }
            }
            r.metrics.push(m);
        }
        r.note(format!(
            "load client: conf-bench itself on the host, {CONNS} keep-alive connections (a thread each, one request at a time), {} s warm-up, then responses counted in each of {seconds} s: mean ± stddev over those seconds; every response checked (200, Content-Length, the expected body)",
            warmup.as_secs()
        ));
        r.note("the servers listen on 127.0.0.1 on a port they choose and print; they exit when conf-bench closes their stdin. Client and server share the 2 CPUs");
        r.note("conf: explicit manifests; node as in `startup` (enclave 16G, 32 threads) plus the script and /etc/localtime (the Date header); python3 -S as in `startup` plus the script, the served directory (trusted: every read verified), /etc/mime.types, the closures of lib-dynload's modules (http.server imports ssl, bz2, lzma) and OpenSSL's configuration, 32 threads (a thread per connection); both also trust the resolver's files (/etc/hosts, resolv.conf, nsswitch.conf, host.conf, gai.conf), which c-ares and http.server's getfqdn() read");
        r.note("the Python handler sets disable_nagle_algorithm (TCP_NODELAY): it writes headers and body separately, and with Nagle every response waited for the client's delayed ACK (~180 req/s in every column)");
        r.note("gvisor: `runsc --rootless --network=host do`, i.e. on the host's network stack: with --network=none the server cannot be reached from the host, and `runsc do`'s own sandbox network is not on 127.0.0.1");
        Ok(r)
    }
}

fn node(env: &Env) -> anyhow::Result<Server> {
    let script = env.scratch().join("http-server.js");
    std::fs::write(&script, NODE_SERVER)?;
    let mut spec = Spec::node()?;
    spec.trust.push(script.to_string_lossy().into_owned());
    // c-ares reads the resolver configuration when `http` loads `dns`.
    spec.trust.extend(RESOLVER_FILES.map(String::from));
    // The Date header.
    spec.trust.push("/etc/localtime".into());
    let manifest = spec.write(&env.scratch().join("http-node.toml"))?;
    Ok(Server {
        label: "node".into(),
        argv: argv([
            spec.program.into_os_string(),
            script.into_os_string(),
            SERVER_DEADLINE_S.to_string().into(),
        ]),
        manifest,
        path: "/",
        body: b"Hello, world!\n".to_vec(),
    })
}

fn python(env: &Env) -> anyhow::Result<Server> {
    let script = env.scratch().join("http-server.py");
    std::fs::write(&script, PYTHON_SERVER)?;
    let root = env.scratch().join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join(FILE_NAME), file_body())?;
    let mut spec = Spec::python(false)?;
    spec.trust.push(script.to_string_lossy().into_owned());
    spec.trust.push(format!("{}/", root.display()));
    spec.trust.push("/etc/mime.types".into());
    // http.server binds with getfqdn() (the resolver's files), and imports
    // modules that load _ssl, _bz2 and _lzma: their libraries.
    spec.trust.extend(RESOLVER_FILES.map(String::from));
    spec.libs = lib_dynload()?;
    spec.trust.push("/etc/ssl/openssl.cnf".into());
    spec.trust.push("/usr/lib/ssl/openssl.cnf".into());
    spec.extra.push("sgx.max_threads = 32".into());
    let manifest = spec.write(&env.scratch().join("http-python.toml"))?;
    Ok(Server {
        label: "python3".into(),
        argv: argv([
            OsString::from("/usr/bin/python3"),
            "-S".into(),
            script.into_os_string(),
            root.into_os_string(),
            SERVER_DEADLINE_S.to_string().into(),
        ]),
        manifest,
        path: "/hello.txt",
        body: file_body(),
    })
}

/// What else a measurement found besides its cell.
#[derive(Default)]
struct Extra {
    /// Times connections had to be reopened.
    reconnects: u64,
    cpu: Option<CpuPerResponse>,
}

/// CPU time of the server's process group per response, in µs.
struct CpuPerResponse {
    user: f64,
    system: f64,
}

impl CpuPerResponse {
    fn new(before: (u64, u64), after: (u64, u64), responses: u64) -> CpuPerResponse {
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1e6 / CLK_TCK / responses as f64;
        CpuPerResponse {
            user: us(before.0, after.0),
            system: us(before.1, after.1),
        }
    }
}

/// Clock ticks per second of /proc/PID/stat's times (USER_HZ: 100 on
/// every Linux x86-64 build).
const CLK_TCK: f64 = 100.0;

/// Summed (utime, stime) in ticks of the processes in process group
/// `pgid`: the server (in conf, conf-run with the enclave in it).
fn group_cpu_ticks(pgid: u32) -> Option<(u64, u64)> {
    let mut sum = (0, 0);
    let mut found = false;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        if let Some((pgrp, u, s)) = parse_stat(&text) {
            if pgrp == pgid {
                sum.0 += u;
                sum.1 += s;
                found = true;
            }
        }
    }
    found.then_some(sum)
}

/// (pgrp, utime, stime) from a /proc/PID/stat line.
fn parse_stat(text: &str) -> Option<(u32, u64, u64)> {
    // The command name is in parentheses and may contain anything.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name, from 0: state, ppid, pgrp (2), ..., utime (11), stime (12).
    Some((
        f.get(2)?.parse().ok()?,
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
    ))
}

/// Start `server` under `runner`, load it, stop it.
fn measure(
    env: &mut Env,
    runner: &Runner,
    server: &Server,
    warmup: Duration,
    seconds: u64,
) -> (Cell, Extra) {
    let mut cmd = match env.command(runner, &server.argv) {
        Ok(c) => c,
        Err(why) => return (Cell::skipped(why), Extra::default()),
    };
    let what = env::describe(&cmd);
    let mut running = match Running::start(&mut cmd) {
        Ok(r) => r,
        Err(e) => return (Cell::failed(format!("`{what}`: {e:#}")), Extra::default()),
    };
    let port = match running.port() {
        Ok(p) => p,
        Err(e) => {
            let stderr = running.stop();
            return (
                Cell::failed(format!("`{what}`: {e:#}{}", tail(&stderr.text))),
                Extra::default(),
            );
        }
    };
    let plan = Plan {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        path: server.path.to_string(),
        conns: CONNS,
        warmup,
        seconds,
        body: server.body.clone(),
    };
    // runsc's sandbox processes leave the group: only native and conf.
    let pgid = running.child.id();
    let counted = !matches!(runner, Runner::GvisorHostNet | Runner::Gvisor);
    let cpu_before = group_cpu_ticks(pgid).filter(|_| counted);
    let result = load::run(&plan);
    let cpu_after = group_cpu_ticks(pgid).filter(|_| counted);
    let stopped = running.stop();
    if let Some(problem) = &stopped.problem {
        env.remarks
            .push(format!("`{what}` after the run: {problem}"));
    }
    match result {
        Err(e) => (
            Cell::failed(format!(
                "{} server `{what}`: load: {e:#}{}",
                server.label,
                tail(&stopped.text)
            )),
            Extra::default(),
        ),
        Ok(out) if out.responses() == 0 => (
            Cell::failed(format!(
                "{} server `{what}` answered no request in {seconds} s{}",
                server.label,
                tail(&stopped.text)
            )),
            Extra::default(),
        ),
        Ok(out) => {
            if let Some(r) = env::stderr_remark(&what, &stopped.text) {
                env.remarks.push(r);
            }
            let rates = out.per_second.iter().map(|&c| c as f64).collect();
            let stat = Stat::from_samples(rates).expect("seconds > 0");
            let cpu = match (cpu_before, cpu_after) {
                (Some(a), Some(b)) if out.total > 0 => Some(CpuPerResponse::new(a, b, out.total)),
                _ => None,
            };
            (
                Cell::Ok(stat),
                Extra {
                    reconnects: out.reconnects,
                    cpu,
                },
            )
        }
    }
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "; its stderr was empty".to_string();
    }
    format!(
        "; its stderr:\n      {}",
        lines[lines.len().saturating_sub(12)..].join("\n      ")
    )
}

/// A server process, in a process group of its own.
struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

/// What a stopped server left.
struct Stopped {
    text: String,
    /// It did not exit cleanly when asked to.
    problem: Option<String>,
}

impl Running {
    fn start(cmd: &mut Command) -> anyhow::Result<Running> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
        });
        Ok(Running {
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// The port from the server's `listening PORT` line.
    fn port(&mut self) -> anyhow::Result<u16> {
        let start = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(p) = listening_port(&line) {
                        return Ok(p);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait()?;
                    anyhow::bail!("exited ({st}) without saying which port it listens on");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(st) = self.child.try_wait()? {
                anyhow::bail!("exited ({st}) without saying which port it listens on");
            }
            if start.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "did not say which port it listens on within {} s",
                    START_TIMEOUT.as_secs()
                );
            }
        }
    }

    /// Close its stdin and wait for it to exit; kill its process group if it
    /// does not. Its stderr.
    fn stop(mut self) -> Stopped {
        drop(self.stdin.take());
        let start = Instant::now();
        let mut problem = None;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    if !st.success() {
                        problem = Some(format!("it exited with {st} when its stdin was closed"));
                    }
                    break;
                }
                Ok(None) if start.elapsed() < STOP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    // Our own child's group: runsc's sandbox processes too.
                    let pgid = self.child.id().to_string();
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pgid}")])
                        .status();
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    problem = Some(format!(
                        "it did not exit within {} s of its stdin closing and was killed",
                        STOP_TIMEOUT.as_secs()
                    ));
                    break;
                }
            }
        }
        // A process it left behind may hold the pipe open: do not wait long.
        let text = self
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        Stopped { text, problem }
    }
}

/// `listening PORT` (Node prints `listening 1234`, Python `listening 1234`).
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("listening")?;
    rest.trim().parse().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_line() {
        assert_eq!(listening_port("listening 41234"), Some(41234));
        assert_eq!(listening_port("listening 41234\r"), Some(41234));
        assert_eq!(listening_port("listening 0"), None);
        assert_eq!(listening_port("Serving HTTP on 127.0.0.1"), None);
    }

    #[test]
    fn proc_stat() {
        let line = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 11 0 100 0 0\n";
        assert_eq!(parse_stat(line), Some((4242, 250, 37)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn served_file() {
        let b = file_body();
        assert_eq!(b.len(), FILE_SIZE);
        assert!(b.starts_with(b"Hello from"));
    }
}
