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
                    for (col, runner) in runners {
                        progress(self.name(), label, col);
                        m.set(col, time(env, &runner, &p));
                        if matches!(runner, Runner::Conf { .. } | Runner::ConfZeroConfig) {
                            if let Some(phases) = conf_phases(env, &runner, &p.argv) {
                                r.note(format!("{col}'s own phases for {label} (CONF_TIMING=1, one run): {phases}; the rest is conf-run's own process start, the LibOS boot and the program in the enclave"));
                            }
                        }
                    }
                }
            }
            r.metrics.push(m);
        }
        if let Err(why) = &env.hyperfine {
            r.note(why.clone());
        } else {
            r.note(format!("hyperfine -N, 1 warm-up run (plus one checked run before it), {} timed runs: mean ± stddev", env.opts.startup_runs()));
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

/// Time `args` under `runner`: one checked run (fills conf's digest cache,
/// and a failure is reported with its stderr), then hyperfine or our timer.
fn time(env: &mut Env, runner: &Runner, prog: &Prepared) -> Cell {
    let args = &prog.argv;
    let check = match env.command(runner, args) {
        Ok(c) => c,
        Err(why) => return Cell::skipped(why),
    };
    let what = env::describe(&check);
    match env::run_ok(check) {
        Err(e) => return Cell::failed(format!("{e:#}")),
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
    let cmd = env.command(runner, args).expect("worked above");
    let runs = env.opts.startup_runs();
    let res = match env.hyperfine.clone() {
        Ok(hf) => hyperfine(&hf, &cmd, runs, env.scratch()),
        Err(_) => own_timer(cmd, runs),
    };
    res.map(Cell::Ok)
        .unwrap_or_else(|e| Cell::failed(format!("{e:#}")))
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

fn hyperfine(hf: &Path, cmd: &Command, runs: usize, scratch: &Path) -> anyhow::Result<Stat> {
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
    let res = &v["results"][0];
    let get = |k: &str| {
        res[k]
            .as_f64()
            .with_context(|| format!("hyperfine's JSON has no results[0].{k}"))
    };
    let times: Vec<f64> = res["times"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_f64())
                .map(|t| t * 1e3)
                .collect()
        })
        .unwrap_or_default();
    Ok(Stat::given(
        get("mean")? * 1e3,
        get("stddev").unwrap_or(0.0) * 1e3,
        times,
    ))
}

fn own_timer(mut cmd: Command, runs: usize) -> anyhow::Result<Stat> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let what = env::describe(&cmd);
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
    Stat::from_samples(ms).context("no runs")
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
