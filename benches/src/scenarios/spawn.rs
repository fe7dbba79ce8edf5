//! `spawn`: starting processes. Python runs `subprocess.run(["true"])` 100
//! times per sample (vfork + execve + wait underneath); in conf each is a
//! new child enclave for /usr/bin/true. A second row forks the interpreter
//! itself (`os.fork()` + `os._exit` + `waitpid`), which in conf copies the
//! whole address space into the child enclave over the encrypted channel.

use std::ffi::OsString;

use super::{progress, sample, standard_columns, Scenario, CONF, GVISOR, NATIVE};
use crate::env::{argv, Env};
use crate::manifest::Spec;
use crate::report::{Better, Metric, ScenarioReport};

pub struct Spawn;

/// Processes per sample.
const PER_SAMPLE: usize = 100;

/// Prints, per sample, "<ms for PER_SAMPLE processes> <seconds>".
const SCRIPT: &str = r#"
import os, subprocess, sys, time
mode, reps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def one():
    if mode == "subprocess":
        subprocess.run(["/usr/bin/true"], check=True)
    else:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
one()
for _ in range(reps):
    t = time.perf_counter()
    for _ in range(n):
        one()
    s = time.perf_counter() - t
    print(f"{s * 1000:.3f} {s:.6f}")
"#;

impl Scenario for Spawn {
    fn name(&self) -> &'static str {
        "spawn"
    }

    fn about(&self) -> &'static str {
        "starting processes from Python: subprocess.run([\"true\"]) and os.fork() + waitpid, 100 per sample"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let script = env.scratch().join("spawn.py");
        std::fs::write(&script, SCRIPT)?;
        let mut spec = Spec::python(false)?;
        spec.trust.push("/usr/bin/true".into());
        spec.trust.push(script.to_string_lossy().into_owned());
        let manifest = spec.write(&env.scratch().join("spawn.toml"))?;

        let mut r = ScenarioReport::new(self.name(), self.about(), &[NATIVE, CONF, GVISOR]);
        let reps = env.opts.reps().to_string();
        let n = PER_SAMPLE.to_string();
        for (mode, label) in [
            (
                "subprocess",
                format!("{PER_SAMPLE} × subprocess.run([\"true\"])"),
            ),
            ("fork", format!("{PER_SAMPLE} × os.fork() + waitpid")),
        ] {
            let args: Vec<OsString> = argv([
                OsString::from("/usr/bin/python3"),
                "-S".into(),
                script.clone().into(),
                mode.into(),
                reps.clone().into(),
                n.clone().into(),
            ]);
            let mut m = Metric::new(label.clone(), "ms", Better::Lower);
            for (col, runner) in standard_columns(&manifest) {
                progress(self.name(), &label, col);
                m.set(col, sample(env, &runner, &args));
            }
            r.metrics.push(m);
        }
        r.note(format!(
            "each sample is {PER_SAMPLE} processes started and waited for, one after another; python3 -S with an explicit manifest (stdlib, /usr/bin/true), digest cache warm"
        ));
        r.note("conf: every process is a child enclave (same measurement) started by the host; subprocess uses vfork + execve, so nothing is copied; fork copies the interpreter's memory to the child");
        Ok(r)
    }
}
