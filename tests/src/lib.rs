//! The conf end-to-end test harness.
//!
//! Tests run real programs — the C programs of `tests/c/` (each in a static,
//! a static-pie and a dynamic build), coreutils, Python — through `conf-run`
//! with a manifest written for the test, and check what they print and how
//! they exit. Each test works in its own [`Sandbox`], a temporary directory
//! removed when the test ends, which also holds the digest cache
//! (`CONF_CACHE_DIR`) so that tests never touch `~/.cache`.
//!
//! Environment:
//! - `CONF_RUN`, `CONF_TOOL`: the `conf-run` and `conf` binaries to test
//!   (default: those in the target directory's profile the tests were built
//!   with, built if missing; they are not rebuilt when stale, so run
//!   `cargo build [--release]` first);
//! - `CC`: the C compiler (default `cc`);
//! - `CONF_E2E_KEEP_GOING=1`: the C programs report every failed check
//!   instead of stopping at the first.

pub mod apps;
pub mod bins;
pub mod cprog;
pub mod manifest;
pub mod process;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use bins::{conf_run, conf_tool, workspace_root};
pub use cprog::Variant;
pub use manifest::Manifest;
pub use process::{run_with_timeout, Output};

/// How long one run of a program may take before it is killed and the
/// test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// conf-run's exit status for a setup failure (manifest, signature, enclave).
pub const EXIT_SETUP: i32 = 125;
/// conf-run's exit status when the program could not be started.
pub const EXIT_CANNOT_RUN: i32 = 126;

/// A test's private directory: `bin/` for programs, `data/` for files the
/// program may read and write (allowed), `cache/` for conf's digest cache.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("conf-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        assert!(
            dir.path().to_str().is_some(),
            "temporary directory path is not UTF-8"
        );
        let s = Sandbox { dir };
        for d in ["bin", "data", "cache"] {
            std::fs::create_dir(s.path(d)).unwrap();
        }
        s
    }

    /// The sandbox directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `data/`, where tests keep files the program may write.
    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// Write `bytes` to `rel` (parents created).
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// Compile `tests/c/<name>.c` as `variant` into `bin/`.
    pub fn compile(&self, name: &str, variant: Variant) -> PathBuf {
        cprog::compile(name, variant, &self.path("bin"))
    }

    /// Write `m` as `<name>.toml` in the sandbox.
    pub fn manifest(&self, name: &str, m: &Manifest) -> PathBuf {
        m.write(self.path(&format!("{name}.toml")))
    }

    /// A `conf-run [flags] --manifest M -- argv...` command with the
    /// sandbox's digest cache.
    pub fn conf_run_cmd<S: AsRef<OsStr>>(
        &self,
        manifest: &Path,
        flags: &[&str],
        argv: &[S],
    ) -> Command {
        let mut c = Command::new(conf_run());
        c.env("CONF_CACHE_DIR", self.path("cache"));
        c.args(flags).arg("--manifest").arg(manifest);
        if !argv.is_empty() {
            c.arg("--");
            c.args(argv);
        }
        c
    }

    /// Run `conf-run [flags] --manifest M -- argv...` (stdin from /dev/null,
    /// killed after [`RUN_TIMEOUT`]).
    pub fn conf_run<S: AsRef<OsStr>>(&self, manifest: &Path, flags: &[&str], argv: &[S]) -> Output {
        run_with_timeout(&mut self.conf_run_cmd(manifest, flags, argv), RUN_TIMEOUT)
    }

    /// The same run with `--log-level trace`, cut to the last `lines` lines
    /// of stderr: the system calls that led to a failure, for messages.
    pub fn trace_tail<S: AsRef<OsStr>>(&self, manifest: &Path, argv: &[S], lines: usize) -> String {
        let out = self.conf_run(manifest, &["--log-level", "trace"], argv);
        format!(
            "(trace run: {})\n{}",
            out.how(),
            process::clip(&out.stderr_str(), lines, 12000)
        )
    }

    /// Keep the sandbox on disk (for debugging) and return its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Assert that a run exited with `code`; otherwise panic with the run's
/// account and, for a conf-run run, the tail of a traced re-run.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32, context: &str) {
    if out.code() != Some(code) || out.timed_out {
        panic!(
            "{context}: expected exit {code}, got {}\n{}",
            out.how(),
            out.describe()
        );
    }
}

/// The lines of `text` that come from conf ("[conf] ...").
pub fn conf_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("[conf]")).collect()
}

/// From a `--log-level debug` run's stderr: per process that exec'd a
/// program, how many file chunks it took verified ahead (the LibOS's
/// "prefetch: the program loaded N file chunks, M of them verified ahead,
/// K before it touched them (W by the worker); V chunks verified as
/// needed, P pages filled").
pub fn chunks_verified_ahead(stderr: &str) -> Vec<u64> {
    numbers_after(stderr, "file chunks, ")
}

/// The same line's K: chunks loaded into the program's memory before it
/// touched them.
pub fn chunks_loaded_before_touch(stderr: &str) -> Vec<u64> {
    numbers_after(stderr, "verified ahead, ")
}

/// The same line's W: of those K, the chunks the worker put into the
/// program's mappings itself.
pub fn chunks_loaded_by_the_worker(stderr: &str) -> Vec<u64> {
    numbers_after(stderr, "before it touched them (")
}

/// The same line's V: chunks the program's thread read and verified as it
/// needed them (none of them verified ahead).
pub fn chunks_verified_as_needed(stderr: &str) -> Vec<u64> {
    numbers_after(stderr, "by the worker); ")
}

/// The same line's P (after "V chunks verified as needed, "): file pages
/// put into the program's mappings.
pub fn pages_filled(stderr: &str) -> Vec<u64> {
    numbers_after(stderr, "verified as needed, ")
}

/// The number after `marker` on each line of `text` that has one.
fn numbers_after(text: &str, marker: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split(marker).nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

/// Does this machine have the two CPUs that verifying ahead needs?
pub fn two_cpus() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
}

/// The bytes of the trusted test data file the C programs check:
/// byte i = a fixed mix of i (so that a read at a wrong offset shows).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 ^ (i as u8))
        .collect()
}

/// Seconds since the epoch, on the host.
pub fn host_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
