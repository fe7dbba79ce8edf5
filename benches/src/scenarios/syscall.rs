//! `syscall`: a system call the LibOS serves itself, reached by the fast
//! path (a rewritten `mov $NR,%eax; syscall` site) and by the trap path.

use super::{progress, sample, standard_columns, Scenario, CONF, GVISOR, MICRO_C, NATIVE};
use crate::env::{argv, Env, Runner};
use crate::manifest::Spec;
use crate::report::{Better, Cell, Metric, ScenarioReport};

pub struct Syscall;

impl Scenario for Syscall {
    fn name(&self) -> &'static str {
        "syscall"
    }

    fn about(&self) -> &'static str {
        "system calls served without the host: getpid() via glibc's wrapper (conf: rewritten fast path), via syscall(SYS_getpid) (conf: trap path), clock_gettime; ns per call"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let bin = env.compile("micro", MICRO_C, &[])?;
        let manifest = Spec::new(&bin).write(&env.scratch().join("micro.toml"))?;
        let mut r = ScenarioReport::new(self.name(), self.about(), &[NATIVE, CONF, GVISOR]);
        let (budget, reps) = (
            env.opts.budget_ms().to_string(),
            env.opts.reps().to_string(),
        );
        let ops = [
            ("getpid", "getpid()"),
            ("syscall-getpid", "syscall(SYS_getpid)"),
            ("clock", "clock_gettime(CLOCK_MONOTONIC)"),
        ];
        for (op, label) in ops {
            let mut m = Metric::new(label, "ns/call", Better::Lower);
            for (col, runner) in standard_columns(&manifest) {
                progress(self.name(), label, col);
                let cell = sample(
                    env,
                    &runner,
                    &argv([bin.as_os_str(), op.as_ref(), budget.as_ref(), reps.as_ref()]),
                );
                m.set(col, cell);
            }
            r.metrics.push(m);
        }

        // The kernel's part of the sim trap path, measured natively: a
        // system call caught by Syscall User Dispatch, answered by a SIGSYS
        // handler, resumed by rt_sigreturn.
        let label = "SUD SIGSYS round trip";
        let mut m = Metric::new(label, "ns/call", Better::Lower);
        progress(self.name(), label, NATIVE);
        m.set(
            NATIVE,
            sample(
                env,
                &Runner::Native,
                &argv([
                    bin.as_os_str(),
                    "sud-getpid".as_ref(),
                    budget.as_ref(),
                    reps.as_ref(),
                ]),
            ),
        );
        let why = "measured natively only: the kernel's share of conf's trap path (sim backend)";
        m.set(CONF, Cell::skipped(why));
        m.set(GVISOR, Cell::skipped(why));
        r.metrics.push(m);

        r.note("each value: mean ± stddev over repetitions inside one process, after calibration and warm-up (in conf the getpid site is rewritten on its first trap, during warm-up)");
        r.note("clock_gettime is the vDSO natively and in gVisor; conf's LibOS answers it from the TSC, calibrated against the host clock");
        r.note("glibc's syscall() takes the number from a register, so conf cannot rewrite its site: every call traps (SIGSYS from Syscall User Dispatch in sim, #UD in SGX)");
        Ok(r)
    }
}
