//! How long zero-config synthesis takes.
//!
//! `cargo run --release -p conf-loader --example synth_bench [-- CMD ARGS...]`
//!
//! For each command (by default `/usr/bin/python3 -c pass`, `node -e 0`,
//! `java -version` and `/bin/ls`, those that exist): one synthesis with an
//! empty probe cache ("cold"; the page cache is warm), then the median and
//! minimum of repeated syntheses with the cache filled: afresh ("warm",
//! the probe's answer and the ELF facts cached) and reusing the manifest
//! the first one recorded ("reused", as conf-run does when nothing
//! changed). The
//! working directory is an empty temporary directory, so that the numbers
//! are those of synthesis and not of walking a project.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use conf_loader::synth::{synthesize, SynthOptions};

const WARM_RUNS: usize = 50;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let given: Vec<OsString> = std::env::args_os().skip(1).collect();
    let commands: Vec<Vec<OsString>> = if given.is_empty() {
        [
            &["/usr/bin/python3", "-c", "pass"][..],
            &["node", "-e", "0"],
            &["java", "-version"],
            &["/bin/ls"],
        ]
        .iter()
        .map(|c| c.iter().map(OsString::from).collect())
        .collect()
    } else {
        vec![given]
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let cwd = work.path().join("app");
    std::fs::create_dir(&cwd).expect("mkdir");
    println!(
        "{:<28} {:>8} {:>11} {:>11} {:>11} {:>11} {:>11}  runtime",
        "command", "entries", "cold", "warm p50", "warm min", "reused p50", "reused min"
    );
    for cmd in commands {
        let shown = cmd
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let cache = tempfile::tempdir().expect("a temporary directory");
        let mut opts = SynthOptions::from_process().expect("the process environment");
        opts.cwd = cwd.clone();
        opts.cache_dir = Some(cache.path().to_path_buf());

        let t = Instant::now();
        let first = match synthesize(&cmd, &opts) {
            Ok(s) => s,
            Err(e) => {
                println!("{shown:<28} skipped: {e}");
                continue;
            }
        };
        let cold = t.elapsed();
        let mut timed = |reuse: bool| {
            opts.reuse = reuse;
            let mut times = Vec::with_capacity(WARM_RUNS);
            for _ in 0..WARM_RUNS {
                let t = Instant::now();
                let s = synthesize(&cmd, &opts).expect("synthesized once already");
                times.push(t.elapsed());
                assert_eq!(s.manifest, first.manifest, "synthesis is deterministic");
                assert_eq!(s.replayed, reuse);
            }
            times.sort();
            (times[times.len() / 2], times[0])
        };
        let (warm, reused) = (timed(false), timed(true));
        println!(
            "{:<28} {:>8} {:>11} {:>11} {:>11} {:>11} {:>11}  {}",
            shown,
            first.manifest.trusted_files.len(),
            ms(cold),
            ms(warm.0),
            ms(warm.1),
            ms(reused.0),
            ms(reused.1),
            first.runtime
        );
    }
}
