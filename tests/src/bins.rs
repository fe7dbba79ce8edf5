//! Finding (and if need be building) the binaries under test: `conf-run`
//! and `conf`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory with the top Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<target>/<profile>` of the running test binary: tests live in
/// `<target>/<profile>/deps/`. Falls back to `<root>/target/{debug,release}`.
pub fn profile_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent() {
            if deps.file_name().map(|n| n == "deps").unwrap_or(false) {
                if let Some(p) = deps.parent() {
                    return p.to_path_buf();
                }
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    })
}

/// The target directory (parent of the profile directory).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// cargo's flag for the profile whose output directory is `dir`.
fn profile_args(dir: &Path) -> Vec<String> {
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => vec![],
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

/// Run `cargo build` with `args` in the workspace, panicking with cargo's
/// output on failure.
pub fn cargo_build(args: &[&str]) {
    eprintln!("[conf-e2e] cargo build {}", args.join(" "));
    let out = Command::new(cargo())
        .current_dir(workspace_root())
        .arg("build")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !out.status.success() {
        panic!(
            "cargo build {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn locate(env_var: &str, dir: PathBuf, name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_var}={} is not a file", p.display());
        return p;
    }
    let path = dir.join(name);
    if !path.is_file() {
        build(&dir);
        assert!(
            path.is_file(),
            "cargo build did not produce {}",
            path.display()
        );
    }
    path
}

/// `conf-run`: `$CONF_RUN`, else `<target>/<profile>/conf-run` of the
/// profile the tests were built with (built once if it is missing).
pub fn conf_run() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        locate("CONF_RUN", profile_dir(), "conf-run", |dir| {
            let mut args = profile_args(dir);
            args.extend(["-p", "conf-loader", "--bin", "conf-run"].map(String::from));
            cargo_build(&args.iter().map(String::as_str).collect::<Vec<_>>());
        })
    })
}

/// `conf` (the tools binary): `$CONF_TOOL`, else the `conf` beside
/// [`conf_run`] (same profile, hence normally the same LibOS and the same
/// measurement), built once if missing. (Key generation is fast enough in
/// dev builds: the workspace optimizes num-bigint-dig there.)
pub fn conf_tool() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = conf_run()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(profile_dir);
        locate("CONF_TOOL", dir, "conf", |dir| {
            let mut args = profile_args(dir);
            args.extend(["-p", "conf-tools", "--bin", "conf"].map(String::from));
            cargo_build(&args.iter().map(String::as_str).collect::<Vec<_>>());
        })
    })
}

/// The LibOS's rustflags: the lines of libos/rustflags.txt without
/// comments and blank lines.
pub fn libos_rustflags() -> Vec<String> {
    let path = workspace_root().join("libos/rustflags.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Build a LibOS enclave binary with extra `features` (besides `enclave`)
/// into `<target>/libos-<name>` and return the ELF's path. Built with the
/// LibOS's own flags, as loader/build.rs does.
pub fn libos_variant(name: &str, features: &str) -> PathBuf {
    let target = "x86_64-unknown-linux-gnu";
    let dir = target_dir().join(format!("libos-{name}"));
    let features = format!("enclave,{features}");
    eprintln!(
        "[conf-e2e] building the LibOS with features {features} into {}",
        dir.display()
    );
    let out = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "conf-libos",
            "--bin",
            "conf-libos",
            "--features",
            &features,
            "--target",
            target,
        ])
        .arg("--target-dir")
        .arg(&dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_ENCODED_RUSTFLAGS", libos_rustflags().join("\x1f"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !out.status.success() {
        panic!(
            "building the LibOS with {features} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elf = dir.join(target).join("release").join("conf-libos");
    assert!(elf.is_file(), "cargo did not produce {}", elf.display());
    elf
}
