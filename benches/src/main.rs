//! conf-bench: native vs conf vs gVisor, side by side, in one run.
//!
//!     cargo run --release -p conf-bench -- [SCENARIO...] [--json OUT.json] [--quick]
//!
//! See docs/benchmarks.md.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use clap::Parser;

mod env;
mod load;
mod manifest;
mod report;
mod scenarios;

/// Measure native vs conf (conf-run, sim backend) vs gVisor (runsc do), side
/// by side in one run, and print each as a ratio to native.
#[derive(Parser, Debug)]
#[command(name = "conf-bench", about, long_about = None)]
#[command(
    after_help = "Examples:\n  cargo run --release -p conf-bench\n  cargo run --release -p conf-bench -- syscall ocall --quick\n  cargo run --release -p conf-bench -- --json results.json"
)]
struct Args {
    /// Scenarios to run (default: all); see --list.
    #[arg(value_name = "SCENARIO")]
    scenarios: Vec<String>,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,

    /// Shorter runs and fewer repetitions (a smoke check, e.g. in CI).
    #[arg(long)]
    quick: bool,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Use this conf-run (default: <workspace>/target/release/conf-run,
    /// built if missing).
    #[arg(long, value_name = "PATH")]
    conf_run: Option<PathBuf>,

    /// Rebuild conf-run and conf (cargo build --release) before measuring.
    #[arg(long)]
    build: bool,

    /// Keep the scratch directory (generated manifests, C programs).
    #[arg(long)]
    keep: bool,

    /// Before each scenario, wait (up to SECS, default 300) for a second in
    /// which the CPUs are at least 90% idle: other work skews the numbers.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "300")]
    wait_idle: Option<u64>,
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("conf-bench: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(args: Args) -> anyhow::Result<i32> {
    let all = scenarios::all();
    if args.list {
        for s in &all {
            println!("{:10} {}", s.name(), s.about());
        }
        return Ok(0);
    }
    for name in &args.scenarios {
        if !all.iter().any(|s| s.name() == name) {
            let known: Vec<&str> = all.iter().map(|s| s.name()).collect();
            anyhow::bail!("unknown scenario `{name}`; known: {}", known.join(", "));
        }
    }
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name()))
        .collect();

    let opts = env::Options {
        quick: args.quick,
        conf_run: args.conf_run.clone(),
        build: args.build,
    };
    let mut env = env::Env::new(opts)?;
    let host = host_info(&env);
    println!("conf-bench {} | {}", host.date, host.summary());
    println!("workspace: {}", host.conf);
    // Resolve (and copy) conf-run now, so the header names the build.
    match env.conf_run() {
        Ok(_) => println!(
            "conf-run: {}",
            env.binaries.last().map(String::as_str).unwrap_or("?")
        ),
        Err(why) => println!("conf-run: unavailable: {why}"),
    }
    if host.load1 > 0.5 {
        println!(
            "warning: load average {:.2} at start: other work on this machine skews the numbers",
            host.load1
        );
    }
    println!("gVisor: {}", host.gvisor);
    if args.quick {
        println!("--quick: short runs, numbers are rough");
    }
    println!();

    let mut reports = Vec::new();
    for s in &chosen {
        let idle = args
            .wait_idle
            .map(|secs| wait_idle(std::time::Duration::from_secs(secs)));
        let load_before = load_average();
        let mut r = match s.run(&mut env) {
            Ok(r) => r,
            Err(e) => {
                let mut r = report::ScenarioReport::new(s.name(), s.about(), &[]);
                r.error = Some(format!("{e:#}"));
                r
            }
        };
        for remark in std::mem::take(&mut env.remarks) {
            r.note(remark);
        }
        match idle {
            Some(Ok(secs)) if secs > 1.5 => r.note(format!("waited {secs:.0} s for idle CPUs before this scenario")),
            Some(Err(busy)) => r.note(format!("the CPUs did not become idle before this scenario (last second: {:.0}% busy); numbers are skewed", busy * 100.0)),
            _ => {}
        }
        r.note(format!("load average {load_before:.2} at the start of this scenario, {:.2} at its end (this machine has {} CPUs)", load_average(), host.cpus));
        println!("{}", r.render());
        reports.push(r);
    }

    let mut problems = Vec::new();
    for r in &reports {
        if let Some(e) = &r.error {
            problems.push(format!("{}: {e}", r.name));
        }
        for f in r.failures() {
            problems.push(format!("{}: {f}", r.name));
        }
    }

    if let Some(out) = &args.json {
        let scen: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("reports serialize");
                v["ratios"] = serde_json::Value::Array(r.ratios());
                v
            })
            .collect();
        let doc = serde_json::json!({
            "tool": "conf-bench",
            "date": host.date,
            "host": { "cpus": host.cpus, "cpu": host.cpu, "kernel": host.kernel, "load_average_at_start": host.load1 },
            "workspace": host.conf,
            "gvisor": host.gvisor,
            "binaries": env.binaries,
            "quick": args.quick,
            "scenarios": scen,
        });
        std::fs::write(out, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("conf-bench: wrote {}", out.display());
    }
    if args.keep {
        eprintln!(
            "conf-bench: kept the scratch directory {}",
            env.keep_scratch().display()
        );
    }
    if problems.is_empty() {
        Ok(0)
    } else {
        eprintln!("conf-bench: {} measurement(s) failed:", problems.len());
        for p in &problems {
            eprintln!("  {}", p.lines().next().unwrap_or(""));
        }
        if !args.keep {
            eprintln!("conf-bench: the scratch directory (manifests, programs) is gone; rerun with --keep to reproduce a failed command by hand");
        }
        Ok(1)
    }
}

struct HostInfo {
    date: String,
    cpus: usize,
    cpu: String,
    kernel: String,
    /// One-minute load average when the run started.
    load1: f64,
    conf: String,
    gvisor: String,
}

impl HostInfo {
    fn summary(&self) -> String {
        format!("{} CPUs ({}) | Linux {}", self.cpus, self.cpu, self.kernel)
    }
}

fn host_info(env: &env::Env) -> HostInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rev = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(&env.workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown revision".into());
    let load1 = load_average();
    let gvisor = match env::find_program(std::ffi::OsStr::new("runsc")) {
        None => "runsc not found (apt-get install -y runsc)".to_string(),
        Some(p) => {
            let v = Command::new(&p)
                .arg("--version")
                .output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            let platform = Command::new(&p).arg("flags").output().ok().and_then(|o| {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                platform_default(&text)
            });
            format!(
                "{v}, `runsc --network=none do`, platform {}",
                platform.unwrap_or_else(|| "unknown".into())
            )
        }
    };
    HostInfo {
        gvisor,
        date: utc_now(),
        cpus,
        cpu,
        kernel,
        load1,
        conf: format!("{} at {rev}", env.workspace.display()),
    }
}

/// The one-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Wait until one second passes with the CPUs at least 90% idle; Ok(seconds
/// waited), or Err(busy fraction of the last second) after `limit`.
fn wait_idle(limit: std::time::Duration) -> Result<f64, f64> {
    let start = std::time::Instant::now();
    let mut reported = false;
    loop {
        let a = cpu_jiffies();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let busy = match (a, cpu_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
            _ => return Ok(start.elapsed().as_secs_f64()),
        };
        if busy <= 0.10 {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() >= limit {
            return Err(busy);
        }
        if !reported {
            eprintln!(
                "conf-bench: waiting for idle CPUs ({:.0}% busy)",
                busy * 100.0
            );
            reported = true;
        }
    }
}

/// The default of `-platform` in the output of `runsc flags`.
fn platform_default(flags: &str) -> Option<String> {
    let mut lines = flags.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("-platform ") {
            let help = lines.next()?;
            let i = help.find("(default \"")? + 10;
            let rest = &help[i..];
            return Some(format!("{} (runsc's default)", &rest[..rest.find('"')?]));
        }
    }
    None
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86400) as i64);
    let s = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, platform_default};

    #[test]
    fn runsc_platform() {
        let flags = "  -pod-init-config string\n  -platform string\n    \tspecifies which platform to use: ptrace (default), kvm. (default \"ptrace\")\n";
        assert_eq!(
            platform_default(flags).as_deref(),
            Some("ptrace (runsc's default)")
        );
        assert_eq!(platform_default("nothing"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
