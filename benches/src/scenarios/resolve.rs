//! `resolve`: manifest resolution of a manifest trusting Python's standard
//! library, cold (empty digest cache) and warm, against the targets.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use conf_manifest::{resolve, Manifest, Progress, ResolveOptions, TrustedEntry};

use super::{progress, Scenario, CONF};
use crate::env::{self, Env};
use crate::manifest::Spec;
use crate::report::{Better, Cell, Metric, ScenarioReport, Stat, Target};

pub struct Resolve;

impl Scenario for Resolve {
    fn name(&self) -> &'static str {
        "resolve"
    }

    fn about(&self) -> &'static str {
        "manifest resolution trusting all of Python's standard library: cold (empty CONF_CACHE_DIR) and warm"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let real = std::fs::canonicalize("/usr/bin/python3")
            .context("/usr/bin/python3 (the scenario trusts its standard library)")?;
        let name = real
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("python3")
            .to_string();
        let dir = format!("/usr/lib/{name}");
        if !Path::new(&dir).is_dir() {
            bail!("{dir} does not exist");
        }
        let m = Manifest {
            origin: "conf-bench resolve".into(),
            entrypoint: real.to_string_lossy().into_owned(),
            trusted_files: vec![
                TrustedEntry::new(real.to_string_lossy()),
                TrustedEntry::new(dir.clone()),
            ],
            ..Manifest::default()
        };
        let reps = env.opts.reps();
        let opts = |cache: &Path| ResolveOptions {
            progress: Progress::Never,
            cache_dir: Some(cache.to_path_buf()),
            threads: 0,
            defer_checks: false,
        };

        // Untimed: brings the files into the page cache, so "cold" means an
        // empty digest cache, not a cold disk.
        progress(self.name(), "warm-up (page cache)", CONF);
        let scratch = env.scratch().join("resolve");
        std::fs::create_dir_all(&scratch)?;
        let first = resolve(&m, &opts(tempfile::tempdir_in(&scratch)?.path()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let files = first.stats.files;
        let total_bytes = first.stats.bytes;

        progress(self.name(), "cold", CONF);
        let (mut gbps, mut cold_ms) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let cache = tempfile::tempdir_in(&scratch)?;
            let res = resolve(&m, &opts(cache.path())).map_err(|e| anyhow::anyhow!("{e}"))?;
            let s = &res.stats;
            if s.cache_hits != 0 {
                bail!(
                    "a cold resolution found {} digests in an empty cache",
                    s.cache_hits
                );
            }
            let secs = s.elapsed.as_secs_f64();
            gbps.push(s.bytes_hashed as f64 / 1e9 / secs);
            cold_ms.push(secs * 1e3);
        }

        progress(self.name(), "warm", CONF);
        let cache = tempfile::tempdir_in(&scratch)?;
        resolve(&m, &opts(cache.path())).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut warm_ms = Vec::new();
        for _ in 0..reps {
            let res = resolve(&m, &opts(cache.path())).map_err(|e| anyhow::anyhow!("{e}"))?;
            if res.stats.bytes_hashed != 0 {
                bail!(
                    "a warm resolution hashed {} bytes again",
                    res.stats.bytes_hashed
                );
            }
            warm_ms.push(res.stats.elapsed.as_secs_f64() * 1e3);
        }

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let on = format!("on 2 cores; this machine has {cores}");
        let mut r = ScenarioReport::new(self.name(), self.about(), &[CONF]);
        let mut t = Metric::new("cold: hashing throughput", "GB/s", Better::Higher);
        t.set(CONF, stat(gbps));
        t.target = Some(Target {
            better: Better::Higher,
            value: 1.0,
            note: on.clone(),
        });
        r.metrics.push(t);
        let mut c = Metric::new("cold: resolution time", "ms", Better::Lower);
        c.set(CONF, stat(cold_ms));
        r.metrics.push(c);
        let mut w = Metric::new("warm: resolution time", "ms", Better::Lower);
        w.set(CONF, stat(warm_ms));
        w.target = Some(Target {
            better: Better::Lower,
            value: 200.0,
            note: on,
        });
        r.metrics.push(w);

        // What a user waits for: the `conf` CLI end to end (process start,
        // parse, resolve with a warm cache, lay out and measure the enclave).
        let label = "warm: `conf measure` of the python3 -S manifest, whole process";
        let mut cli = Metric::new(label, "ms", Better::Lower);
        progress(self.name(), label, CONF);
        cli.set(CONF, conf_measure(env, reps));
        r.metrics.push(cli);

        r.note(format!("{dir} (and the interpreter): {files} files, {:.1} MB; hashing threads: one per core ({cores}); values: mean ± stddev of {reps} runs in this process, after one untimed run that fills the page cache", total_bytes as f64 / 1e6));
        Ok(r)
    }
}

fn stat(v: Vec<f64>) -> Cell {
    Stat::from_samples(v)
        .map(Cell::Ok)
        .unwrap_or_else(|| Cell::failed("no samples"))
}

fn conf_measure(env: &mut Env, reps: usize) -> Cell {
    let conf = match env.conf() {
        Ok(c) => c,
        Err(why) => return Cell::skipped(why),
    };
    let manifest = match Spec::python(false)
        .and_then(|s| s.write(&env.scratch().join("resolve-python.toml")))
    {
        Ok(m) => m,
        Err(e) => return Cell::failed(format!("{e:#}")),
    };
    let cache = env.scratch().join("resolve-cli-cache");
    let cmd = || {
        let mut c = Command::new(&conf);
        c.arg("measure")
            .arg(&manifest)
            .env("CONF_CACHE_DIR", &cache);
        c
    };
    // Untimed: fills the cache.
    if let Err(e) = env::run_ok(cmd()) {
        return Cell::failed(format!("{e:#}"));
    }
    let mut ms = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        if let Err(e) = env::run_ok(cmd()) {
            return Cell::failed(format!("{e:#}"));
        }
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    stat(ms)
}
