//! `startup`: wall time from exec to exit of small programs. conf's number
//! includes conf-run's own work (resolution with a warm digest cache,
//! building and loading the enclave): what a user pays per start.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use super::{
    progress, standard_columns, Scenario, CONF, CONF_ZERO_CONFIG, GVISOR, HELLO_C, NATIVE,
};
use crate::env::{self, argv, Env, Runner};
use crate::manifest::Spec;
use crate::report::{Better, Cell, Metric, ScenarioReport, Stat};

pub struct Startup;

impl Scenario for Startup {
    fn name(&self) -> &'static str {
        "startup"
    }

    fn about(&self) -> &'static str {
        "start-up wall time: python3 -S -c pass, python3 -c pass, a static C hello, node -e 0, java -version"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let columns = [NATIVE, CONF, CONF_ZERO_CONFIG, GVISOR];
        let mut r = ScenarioReport::new(self.name(), self.about(), &columns);
        let progs = [
            ("python3 -S -c pass", python(env, false)),
            ("python3 -c pass", python(env, true)),
            ("static C hello", static_hello(env)),
            ("node -e 0", node(env)),
            ("java -version", java(env)),
        ];
        for (label, prog) in progs {
            let mut m = Metric::new(label, "ms", Better::Lower);
            match prog {
                Err(e) => {
                    for c in columns {
                        m.set(c, Cell::failed(format!("cannot prepare {label}: {e:#}")));
                    }
                }
                Ok(p) => {
                    let mut runners = standard_columns(&p.manifest);
                    runners.insert(2, (CONF_ZERO_CONFIG, Runner::ConfZeroConfig));
                    let mut timed = Vec::new();
                    for (col, runner) in &runners {
                        progress(self.name(), label, col);
                        match checked(env, runner, &p) {
                            Ok(cmd) => timed.push((*col, cmd)),
                            Err(cell) => m.set(col, cell),
                        }
                        if matches!(runner, Runner::Conf { .. } | Runner::ConfZeroConfig) {
                            if let Some(phases) = conf_phases(env, runner, &p.argv) {
                                r.note(format!("{col}'s own phases for {label} (CONF_TIMING=1, one run): {phases}; the rest is conf-run's own process start, the LibOS boot and the program in the enclave"));
                            }
                        }
                    }
                    for (col, cell) in time_interleaved(env, &mut timed) {
                        m.set(col, cell);
                    }
                }
            }
            r.metrics.push(m);
        }
        if let Err(why) = &env.hyperfine {
            r.note(why.clone());
        } else {
            r.note(format!("hyperfine -N, one checked run of each column first, then {} timed runs of each: the columns interleaved in {} rounds (in each, one warm-up and an equal share of the runs per column, the columns' order turning round by round), so that the machine's load drifting during the scenario weighs on every column alike; mean ± stddev of all runs", env.opts.startup_runs(), rounds(env.opts.startup_runs())));
        }
        r.note("conf: explicit manifests (the program, its ldd closure, /etc/ld.so.cache; for python also its standard library, C.utf8 locale, gconv, /etc/localtime), enclave 1G (2G for python), digest cache warm");
        r.note("conf zero-config: `conf-run -- PROGRAM ARGS` without a manifest, as a user types it, from an empty directory (zero-config trusts the working directory), with this shell's environment; conf-run synthesizes the manifest (cached) and sizes the enclave itself; digest cache warm");
        r.note("node -e 0: `node` on PATH, enclave 16G and 32 threads (as zero-config sizes Node), also trusting the OpenSSL configuration it reads and the CA bundle NODE_EXTRA_CA_CERTS names (passed through when set, so conf reads it like native); java -version: `java` on PATH, enclave 8G and 64 threads (as zero-config sizes Java), its whole Java home, /etc/java-*, the closures of the home's shared objects, passwd lookup and C.utf8, /tmp a tmpfs in the enclave (the JVM writes /tmp/hsperfdata_USER there, as zero-config does); its version banner on stderr is expected");
        r.note("python3 -c pass imports site, which reads the .pth files in the dist-packages directories: its manifest trusts those directories too and passes HOME, PATH, LANG and LC_ALL through, so conf does the same work as native");
        Ok(r)
    }
}

/// A program ready to be timed: its command line and its conf manifest.
struct Prepared {
    argv: Vec<OsString>,
    manifest: PathBuf,
    /// Beginnings of the stderr lines the program writes when all is well
    /// (`java -version` prints its banner there): not remarked on.
    expected_stderr: &'static [&'static str],
}

fn python(env: &Env, site: bool) -> anyhow::Result<Prepared> {
    let (name, args) = if site {
        ("python-site.toml", &["-c", "pass"][..])
    } else {
        ("python-nosite.toml", &["-S", "-c", "pass"][..])
    };
    let manifest = Spec::python(site)?.write(&env.scratch().join(name))?;
    let mut argv = argv(["/usr/bin/python3"]);
    argv.extend(args.iter().map(OsString::from));
    Ok(Prepared {
        argv,
        manifest,
        expected_stderr: &[],
    })
}

fn static_hello(env: &Env) -> anyhow::Result<Prepared> {
    let bin = env.compile("hello", HELLO_C, &["-static"])?;
    let manifest = Spec::new(&bin).write(&env.scratch().join("hello.toml"))?;
    Ok(Prepared {
        argv: argv([bin]),
        manifest,
        expected_stderr: &[],
    })
}

fn node(env: &Env) -> anyhow::Result<Prepared> {
    let spec = Spec::node()?;
    let manifest = spec.write(&env.scratch().join("node.toml"))?;
    let mut argv = argv([&spec.program]);
    argv.extend(["-e", "0"].map(OsString::from));
    Ok(Prepared {
        argv,
        manifest,
        expected_stderr: &[],
    })
}

fn java(env: &Env) -> anyhow::Result<Prepared> {
    let spec = Spec::java()?;
    let manifest = spec.write(&env.scratch().join("java.toml"))?;
    let mut argv = argv([&spec.program]);
    argv.push("-version".into());
    Ok(Prepared {
        argv,
        manifest,
        expected_stderr: &[
            "openjdk version ",
            "OpenJDK Runtime Environment",
            "OpenJDK 64-Bit",
        ],
    })
}

/// Rounds the timed runs of a program's columns are split into.
const ROUNDS: usize = 4;

/// Rounds for `runs` timed runs of each column (each round runs each
/// column at least once).
fn rounds(runs: usize) -> usize {
    ROUNDS.min(runs).max(1)
}

/// The command that times `prog` under `runner`, after one checked run
/// (it fills conf's caches, and a failure is reported with its stderr).
fn checked(env: &mut Env, runner: &Runner, prog: &Prepared) -> Result<Command, Cell> {
    let args = &prog.argv;
    let check = env.command(runner, args).map_err(Cell::skipped)?;
    let what = env::describe(&check);
    match env::run_ok(check) {
        Err(e) => return Err(Cell::failed(format!("{e:#}"))),
        Ok(out) => {
            let unexpected: String = out
                .stderr
                .lines()
                .filter(|l| !prog.expected_stderr.iter().any(|e| l.starts_with(e)))
                .map(|l| format!("{l}\n"))
                .collect();
            if let Some(r) = env::stderr_remark(&what, &unexpected) {
                env.remarks.push(r);
            }
        }
    }
    Ok(env.command(runner, args).expect("worked above"))
}

/// Time each command, interleaved: [`ROUNDS`] rounds, each running every
/// command (one warm-up, then its share of the runs) in an order that
/// turns by one every round, so that the machine's load drifting while a
/// row is measured (native `python3 -c pass` moved between 9.4 and 12.3
/// ms from one run of the scenario to the next here) weighs on every
/// column alike rather than on the columns timed last.
fn time_interleaved(env: &Env, cmds: &mut [(&'static str, Command)]) -> Vec<(&'static str, Cell)> {
    let runs = env.opts.startup_runs();
    let rounds = rounds(runs);
    let mut samples: Vec<Result<Vec<f64>, String>> = vec![Ok(Vec::new()); cmds.len()];
    for round in 0..rounds {
        let share = runs / rounds + usize::from(round < runs % rounds);
        for k in 0..cmds.len() {
            let i = (k + round) % cmds.len();
            let Ok(got) = &mut samples[i] else { continue };
            let res = match env.hyperfine.clone() {
                Ok(hf) => hyperfine(&hf, &cmds[i].1, share, env.scratch()),
                Err(_) => own_timer(&mut cmds[i].1, share),
            };
            match res {
                Ok(times) => got.extend(times),
                Err(e) => samples[i] = Err(format!("{e:#}")),
            }
        }
    }
    cmds.iter()
        .zip(samples)
        .map(|((col, _), s)| {
            let cell = match s.map(Stat::from_samples) {
                Ok(Some(stat)) => Cell::Ok(stat),
                Ok(None) => Cell::failed("no runs"),
                Err(e) => Cell::failed(e),
            };
            (*col, cell)
        })
        .collect()
}

/// conf-run's start-up phases as it reports them with CONF_TIMING=1
/// (`[conf] timing: PHASE: X ms` on stderr), joined on one line, with the
/// OCALLs' total but not the line per kind.
fn conf_phases(env: &mut Env, runner: &Runner, args: &[OsString]) -> Option<String> {
    let mut c = env.command(runner, args).ok()?;
    c.env("CONF_TIMING", "1");
    let out = env::run_ok(c).ok()?;
    let phases: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[conf] timing: "))
        .filter(|p| !p.starts_with("OCALL "))
        .collect();
    (!phases.is_empty()).then(|| phases.join(", "))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=+:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The times (ms) of `runs` runs of `cmd`, after one warm-up.
fn hyperfine(hf: &Path, cmd: &Command, runs: usize, scratch: &Path) -> anyhow::Result<Vec<f64>> {
    let mut line = shell_quote(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&a.to_string_lossy()));
    }
    let json = tempfile::Builder::new()
        .prefix("hyperfine-")
        .suffix(".json")
        .tempfile_in(scratch)?;
    let mut c = Command::new(hf);
    c.args([
        "-N",
        "--style",
        "none",
        "--warmup",
        "1",
        "--runs",
        &runs.to_string(),
        "--output",
        "null",
        "--export-json",
    ])
    .arg(json.path())
    .arg(&line);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    env::run_ok(c)?;
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json.path())?).context("hyperfine's JSON")?;
    let times: Vec<f64> = v["results"][0]["times"]
        .as_array()
        .context("hyperfine's JSON has no results[0].times")?
        .iter()
        .filter_map(|t| t.as_f64())
        .map(|t| t * 1e3)
        .collect();
    anyhow::ensure!(
        times.len() == runs,
        "hyperfine reported {} of {runs} runs",
        times.len()
    );
    Ok(times)
}

/// The same without hyperfine.
fn own_timer(cmd: &mut Command, runs: usize) -> anyhow::Result<Vec<f64>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let what = env::describe(cmd);
    let mut ms = Vec::new();
    // One warm-up, then the timed runs.
    for i in 0..=runs {
        let t = Instant::now();
        let st = cmd
            .status()
            .with_context(|| format!("cannot start `{what}`"))?;
        let dt = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(st.success(), "`{what}` failed ({st})");
        if i > 0 {
            ms.push(dt);
        }
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/python3"), "/usr/bin/python3");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
