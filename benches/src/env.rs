//! What the scenarios run on: the tools found on this machine, a scratch
//! directory, and how a program is started natively, in conf and in gVisor.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long one child may run before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// Override of conf-run's path.
    pub conf_run: Option<PathBuf>,
    /// Rebuild conf-run and conf even if they exist.
    pub build: bool,
}

impl Options {
    /// Timed repetitions of a microbenchmark within one process.
    pub fn reps(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }

    /// Target duration of one repetition of a microbenchmark, in ms.
    pub fn budget_ms(&self) -> u64 {
        if self.quick {
            20
        } else {
            200
        }
    }

    /// Timed runs of a start-up measurement.
    pub fn startup_runs(&self) -> usize {
        if self.quick {
            3
        } else {
            20
        }
    }
}

/// How a program is run: one per column of a table.
#[derive(Clone, Debug)]
pub enum Runner {
    Native,
    /// `conf-run --manifest M -- ARGV` (sim backend).
    Conf {
        manifest: PathBuf,
    },
    /// `conf-run -- ARGV` with no manifest (zero-config: conf-run writes
    /// one for the command), run in an empty directory of the scratch
    /// directory, since zero-config trusts the working directory's files.
    ConfZeroConfig,
    /// `runsc --network=none do ARGV`.
    Gvisor,
    /// `runsc --rootless --network=host do ARGV`: gVisor on the host's
    /// network stack, in the host's network namespace, so that a server on
    /// 127.0.0.1 can be reached from the host. (With `--network=none` it
    /// could not be; without `--rootless`, `runsc do` puts the sandbox in a
    /// network namespace of its own, at 192.168.10.2.)
    GvisorHostNet,
}

/// A tool that may be missing; `Err` says why and how to get it.
pub type Tool = Result<PathBuf, String>;

pub struct Env {
    pub opts: Options,
    pub workspace: PathBuf,
    scratch: tempfile::TempDir,
    /// `CONF_CACHE_DIR` for every conf run (a fresh digest cache).
    pub cache_dir: PathBuf,
    pub cc: Tool,
    conf_run: Option<Tool>,
    conf: Option<Tool>,
    runsc: Option<Tool>,
    pub hyperfine: Tool,
    /// Remarks about successful runs (stderr output), collected for the
    /// scenario's notes.
    pub remarks: Vec<String>,
    /// The conf binaries used, with their modification times.
    pub binaries: Vec<String>,
}

impl Env {
    pub fn new(opts: Options) -> anyhow::Result<Env> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("benches/ has a parent")
            .to_path_buf();
        let scratch = tempfile::Builder::new()
            .prefix("conf-bench-")
            .tempdir()
            .context("cannot create a scratch directory")?;
        let cache_dir = scratch.path().join("conf-cache");
        std::fs::create_dir_all(&cache_dir)?;
        let cc = match std::env::var_os("CC") {
            Some(cc) => {
                find_program(&cc).ok_or_else(|| format!("$CC ({}) not found", cc.to_string_lossy()))
            }
            None => find_program(OsStr::new("cc")).ok_or_else(|| {
                "no C compiler (cc) found; install one with `apt-get install -y gcc libc6-dev`"
                    .to_string()
            }),
        };
        let hyperfine = find_program(OsStr::new("hyperfine"))
            .ok_or_else(|| "hyperfine not found (install it with `apt-get install -y hyperfine`); start-up times are taken by conf-bench's own timer instead".to_string());
        Ok(Env {
            opts,
            workspace,
            scratch,
            cache_dir,
            cc,
            conf_run: None,
            conf: None,
            runsc: None,
            hyperfine,
            remarks: Vec::new(),
            binaries: Vec::new(),
        })
    }

    /// The scratch directory (deleted at the end unless --keep).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Leave the scratch directory on disk; returns its path.
    pub fn keep_scratch(self) -> PathBuf {
        self.scratch.keep()
    }

    /// conf-run, built on first use if missing (or if --build), and copied
    /// into the scratch directory so that a rebuild while the benchmarks run
    /// cannot mix two builds in one table.
    pub fn conf_run(&mut self) -> Tool {
        if self.conf_run.is_none() {
            let t = match &self.opts.conf_run {
                Some(p) if p.is_file() => Ok(p.clone()),
                Some(p) => Err(format!("--conf-run {}: no such file", p.display())),
                None => self.built_binary("conf-run", &["-p", "conf-loader", "--bin", "conf-run"]),
            };
            let t = t.and_then(|p| self.snapshot(&p));
            self.conf_run = Some(t);
        }
        self.conf_run.clone().expect("set above")
    }

    /// The `conf` tool: next to --conf-run if given and present there, else
    /// the workspace's (built if missing); copied like conf-run.
    pub fn conf(&mut self) -> Tool {
        if self.conf.is_none() {
            let sibling = self
                .opts
                .conf_run
                .as_ref()
                .and_then(|p| p.parent())
                .map(|d| d.join("conf"))
                .filter(|p| p.is_file());
            let t = match sibling {
                Some(p) => Ok(p),
                None => self.built_binary("conf", &["-p", "conf-tools", "--bin", "conf"]),
            };
            let t = t.and_then(|p| self.snapshot(&p));
            self.conf = Some(t);
        }
        self.conf.clone().expect("set above")
    }

    /// Copy `bin` into the scratch directory; note where it came from.
    fn snapshot(&mut self, bin: &Path) -> Tool {
        let name = bin.file_name().unwrap_or_default();
        let dir = self.scratch().join("bin");
        let copy = dir.join(name);
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::copy(bin, &copy))
            .map_err(|e| format!("cannot copy {} to {}: {e}", bin.display(), copy.display()))?;
        let built = std::fs::metadata(bin)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| crate::utc(d.as_secs()))
            .unwrap_or_else(|| "unknown time".into());
        self.binaries
            .push(format!("{} (modified {built})", bin.display()));
        Ok(copy)
    }

    fn built_binary(&self, name: &str, pkg: &[&str]) -> Tool {
        let path = self.workspace.join("target/release").join(name);
        if path.is_file() && !self.opts.build {
            return Ok(path);
        }
        eprintln!(
            "conf-bench: building {name} (cargo build --release {})",
            pkg.join(" ")
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .arg("build")
            .arg("--release")
            .args(pkg)
            .current_dir(&self.workspace)
            .status();
        match st {
            Ok(s) if s.success() && path.is_file() => Ok(path),
            Ok(s) => Err(format!(
                "`cargo build --release {}` failed ({s}); see its output above",
                pkg.join(" ")
            )),
            Err(e) => Err(format!("cannot run cargo to build {name}: {e}")),
        }
    }

    /// runsc, checked once with a trivial sandbox.
    pub fn runsc(&mut self) -> Tool {
        if self.runsc.is_none() {
            let t = match find_program(OsStr::new("runsc")) {
                None => Err(
                    "runsc (gVisor) not found; install it with `apt-get install -y runsc`"
                        .to_string(),
                ),
                Some(p) => {
                    let mut c = Command::new(&p);
                    c.args(["--network=none", "do", "/bin/true"]);
                    match run_captured(c, Duration::from_secs(120)) {
                        Ok(_) => Ok(p),
                        Err(e) => Err(format!("runsc is installed but `runsc --network=none do /bin/true` fails (it needs root): {e:#}")),
                    }
                }
            };
            self.runsc = Some(t);
        }
        self.runsc.clone().expect("set above")
    }

    /// The command that runs `argv` with `runner`, or why it cannot be run.
    pub fn command(&mut self, runner: &Runner, argv: &[OsString]) -> Result<Command, String> {
        let mut c = match runner {
            Runner::Native => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            Runner::Conf { .. } | Runner::ConfZeroConfig => {
                let conf_run = self.conf_run()?;
                let mut c = Command::new(conf_run);
                if let Runner::Conf { manifest } = runner {
                    c.arg("--manifest").arg(manifest);
                }
                c.arg("--").args(argv);
                c.env("CONF_CACHE_DIR", &self.cache_dir);
                c
            }
            Runner::Gvisor => {
                let runsc = self.runsc()?;
                let mut c = Command::new(runsc);
                c.args(["--network=none", "do"]).args(argv);
                c
            }
            Runner::GvisorHostNet => {
                let runsc = self.runsc()?;
                let mut c = Command::new(runsc);
                c.args(["--rootless", "--network=host", "do"]).args(argv);
                c
            }
        };
        c.current_dir(self.scratch());
        if matches!(runner, Runner::ConfZeroConfig) {
            let dir = self.scratch().join("zero-config-cwd");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            c.current_dir(dir);
        }
        Ok(c)
    }

    /// Compile `source` (C text) into the scratch directory as `name`.
    pub fn compile(&self, name: &str, source: &str, extra: &[&str]) -> anyhow::Result<PathBuf> {
        let cc = self.cc.clone().map_err(anyhow::Error::msg)?;
        let src = self.scratch().join(format!("{name}.c"));
        let out = self.scratch().join(name);
        std::fs::write(&src, source)?;
        let mut c = Command::new(&cc);
        c.args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .args(extra);
        run_captured(c, Duration::from_secs(120)).with_context(|| format!("compiling {name}.c"))?;
        Ok(out)
    }
}

/// `name` as found on PATH (or as given, if it has a slash).
pub fn find_program(name: &OsStr) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The command line of `c`, for messages.
pub fn describe(c: &Command) -> String {
    let mut s = String::new();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    s.push_str(&c.get_program().to_string_lossy());
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `c` to completion (killed after `timeout`), with stdout and stderr
/// captured; an error unless it exits with 0, naming the command and quoting
/// the end of its stderr.
/// What a finished command printed.
#[derive(Debug)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit, by the host's monotonic clock.
    pub wall: Duration,
}

pub fn run_captured(mut c: Command, timeout: Duration) -> anyhow::Result<Captured> {
    let what = describe(&c);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    match status {
        None => bail!(
            "`{what}` did not finish within {} s and was killed{}",
            timeout.as_secs(),
            stderr_tail(&stderr)
        ),
        Some(st) if !st.success() => bail!("`{what}` failed ({st}){}", stderr_tail(&stderr)),
        Some(_) => Ok(Captured {
            stdout,
            stderr,
            wall,
        }),
    }
}

/// Like [`run_captured`] with the default timeout.
pub fn run_ok(c: Command) -> anyhow::Result<Captured> {
    run_captured(c, RUN_TIMEOUT)
}

/// A one-line summary of what a successful run wrote on stderr, if anything
/// (a conf run that warns may be doing less work than the native one).
pub fn stderr_remark(what: &str, stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let first = lines.first()?;
    let more = if lines.len() > 1 {
        format!(" (+{} more lines)", lines.len() - 1)
    } else {
        String::new()
    };
    Some(format!("`{what}` wrote on stderr: {first}{more}"))
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "; stderr was empty".to_string();
    }
    let tail = &lines[lines.len().saturating_sub(12)..];
    format!("; stderr:\n      {}", tail.join("\n      "))
}

/// One line of a benchmark program's output: the value, then other fields;
/// the last field is the seconds the program timed for it by its own clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub seconds: f64,
}

/// The samples a benchmark program printed, one per line.
pub fn parse_samples(out: &str) -> anyhow::Result<Vec<Sample>> {
    let mut v = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| {
            s.parse::<f64>()
                .with_context(|| format!("unexpected output line `{line}`"))
        };
        if fields.len() < 2 {
            bail!("unexpected output line `{line}`");
        }
        v.push(Sample {
            value: num(fields[0])?,
            seconds: num(fields[fields.len() - 1])?,
        });
    }
    if v.is_empty() {
        bail!("the program printed no results");
    }
    Ok(v)
}

/// A program that timed more seconds of work than its process lived (by
/// the host's clock) has a clock that runs fast: its numbers are wrong.
pub fn check_clock(samples: &[Sample], wall: Duration) -> anyhow::Result<()> {
    let timed: f64 = samples.iter().map(|s| s.seconds).sum();
    let lived = wall.as_secs_f64();
    if timed > lived * 1.02 + 0.002 {
        bail!(
            "the program's own clock ran fast: it timed {timed:.3} s of work in a process that lived {lived:.3} s by the host's clock, so its per-call numbers are inflated (in conf: clock_gettime inside the enclave is off)"
        );
    }
    Ok(())
}

/// Turn argv strings into `OsString`s.
pub fn argv<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let s = parse_samples("1.5 10 0.25\n2.5 10 0.5\n\n").unwrap();
        assert_eq!(
            s,
            vec![
                Sample {
                    value: 1.5,
                    seconds: 0.25
                },
                Sample {
                    value: 2.5,
                    seconds: 0.5
                }
            ]
        );
        assert!(parse_samples("").is_err());
        assert!(parse_samples("abc 1\n").is_err());
        assert!(parse_samples("1.5\n").is_err());
    }

    #[test]
    fn fast_clock_is_caught() {
        let s = parse_samples("1 1 0.4\n1 1 0.4\n").unwrap();
        assert!(check_clock(&s, Duration::from_millis(900)).is_ok());
        let e = check_clock(&s, Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ran fast"), "{e}");
    }

    #[test]
    fn failing_command_names_itself_and_its_stderr() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo oops >&2; exit 3"]);
        let e = format!(
            "{:#}",
            run_captured(c, Duration::from_secs(10)).unwrap_err()
        );
        assert!(e.contains("sh -c"), "{e}");
        assert!(e.contains("oops"), "{e}");
    }

    #[test]
    fn slow_command_is_killed() {
        let mut c = Command::new("sleep");
        c.arg("5");
        let e = format!(
            "{:#}",
            run_captured(c, Duration::from_millis(100)).unwrap_err()
        );
        assert!(e.contains("killed"), "{e}");
    }
}
