//! The scenarios, one module each. To add one: write a module with a type
//! implementing [`Scenario`] and list it in [`all`].

use std::ffi::OsString;
use std::path::Path;

use crate::env::{self, Env, Runner};
use crate::report::{Cell, Stat};

mod fileread;
mod http;
mod ocall;
mod resolve;
mod spawn;
mod startup;
mod syscall;

pub trait Scenario {
    /// The name given on the command line.
    fn name(&self) -> &'static str;
    /// One line: what is measured.
    fn about(&self) -> &'static str;
    /// Measure. An `Err` means the scenario could not run at all; a column
    /// that fails is recorded in its cell instead.
    fn run(&self, env: &mut Env) -> anyhow::Result<crate::report::ScenarioReport>;
}

/// Every scenario, in the order they run by default.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(syscall::Syscall),
        Box::new(ocall::Ocall),
        Box::new(resolve::Resolve),
        Box::new(startup::Startup),
        Box::new(fileread::FileRead),
        Box::new(spawn::Spawn),
        Box::new(http::Http),
    ]
}

/// The C sources the scenarios compile.
pub const MICRO_C: &str = include_str!("../../c/micro.c");
pub const FILEREAD_C: &str = include_str!("../../c/fileread.c");
pub const HELLO_C: &str = include_str!("../../c/hello.c");

pub const NATIVE: &str = crate::report::NATIVE;
pub const CONF: &str = "conf";
/// conf-run without a manifest (zero-config), where a scenario shows it.
pub const CONF_ZERO_CONFIG: &str = "conf zero-config";
pub const GVISOR: &str = "gvisor";

/// native, conf with `manifest`, gVisor.
pub fn standard_columns(manifest: &Path) -> Vec<(&'static str, Runner)> {
    vec![
        (NATIVE, Runner::Native),
        (
            CONF,
            Runner::Conf {
                manifest: manifest.to_path_buf(),
            },
        ),
        (GVISOR, Runner::Gvisor),
    ]
}

/// Run `argv` with `runner`; each line of its output is one sample (see
/// [`env::parse_samples`]), checked against the host's clock.
pub fn sample(env: &mut Env, runner: &Runner, argv: &[OsString]) -> Cell {
    let cmd = match env.command(runner, argv) {
        Ok(c) => c,
        Err(why) => return Cell::skipped(why),
    };
    let what = env::describe(&cmd);
    match env::run_ok(cmd) {
        Err(e) => Cell::failed(format!("{e:#}")),
        Ok(out) => {
            if let Some(r) = env::stderr_remark(&what, &out.stderr) {
                env.remarks.push(r);
            }
            let samples = env::parse_samples(&out.stdout).and_then(|v| {
                env::check_clock(&v, out.wall)?;
                Ok(v)
            });
            match samples {
                Ok(v) => Cell::Ok(
                    Stat::from_samples(v.iter().map(|s| s.value).collect())
                        .expect("parse_samples returns at least one"),
                ),
                Err(e) => Cell::failed(format!("{what}: {e:#}")),
            }
        }
    }
}

/// Progress on stderr, so the tables on stdout stay clean.
pub fn progress(scenario: &str, what: &str, column: &str) {
    eprintln!("conf-bench: {scenario}: {what} [{column}]");
}
