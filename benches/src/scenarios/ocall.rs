//! `ocall`: calls the LibOS forwards to the host through the OCALL ring,
//! against the native call they wrap.

use super::{progress, sample, Scenario, CONF, GVISOR, MICRO_C, NATIVE};
use crate::env::{argv, Env, Runner};
use crate::manifest::Spec;
use crate::report::{Better, Metric, ScenarioReport};

pub struct Ocall;

const EXITLESS: &str = "conf-exitless";

impl Scenario for Ocall {
    fn name(&self) -> &'static str {
        "ocall"
    }

    fn about(&self) -> &'static str {
        "host-serviced calls through the OCALL ring (exit and exitless modes) vs the native call, ns per call"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let bin = env.compile("micro", MICRO_C, &[])?;
        let data = env.scratch().join("data");
        std::fs::create_dir_all(&data)?;
        let file = data.join("pwrite.bin");
        std::fs::write(&file, b"x")?;

        let mut spec = Spec::new(&bin);
        spec.allow = vec![format!("{}/", data.display())];
        let exit = spec.write(&env.scratch().join("ocall-exit.toml"))?;
        spec.extra = vec![
            "libos.ocall.mode = \"exitless\"".into(),
            "libos.ocall.workers = 1".into(),
        ];
        let exitless = spec.write(&env.scratch().join("ocall-exitless.toml"))?;
        let columns = [
            (NATIVE, Runner::Native),
            (CONF, Runner::Conf { manifest: exit }),
            (EXITLESS, Runner::Conf { manifest: exitless }),
            (GVISOR, Runner::Gvisor),
        ];

        let mut r =
            ScenarioReport::new(self.name(), self.about(), &[NATIVE, CONF, EXITLESS, GVISOR]);
        let (budget, reps) = (
            env.opts.budget_ms().to_string(),
            env.opts.reps().to_string(),
        );
        let ops = [
            ("getpid", "getpid() (no OCALL: reference)"),
            ("sched-yield", "sched_yield()"),
            ("pwrite", "pwrite 1 byte at offset 0"),
            ("fstat", "fstat"),
        ];
        for (op, label) in ops {
            let mut m = Metric::new(label, "ns/call", Better::Lower);
            for (col, runner) in &columns {
                progress(self.name(), label, col);
                let cell = sample(
                    env,
                    runner,
                    &argv([
                        bin.as_os_str(),
                        op.as_ref(),
                        budget.as_ref(),
                        reps.as_ref(),
                        file.as_os_str(),
                    ]),
                );
                m.set(col, cell);
            }
            r.metrics.push(m);
        }
        r.note("conf = libos.ocall.mode \"exit\" (the default: EEXIT, host call, EENTER); conf-exitless = \"exitless\" with 1 host worker (the enclave thread spins while the worker serves the ring; falls back to exit after a bounded spin)");
        r.note("conf forwards each of sched_yield, pwrite and fstat to the host as one OCALL, and the host makes the same system call as native: conf minus native is the cost of the OCALL round trip");
        r.note(format!("the file is {} in an sgx.allowed_files directory (conf: host fd, unprotected); under `runsc do` writes land in gVisor's in-memory overlay", file.display()));
        Ok(r)
    }
}
