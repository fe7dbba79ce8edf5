//! Builds the LibOS enclave binary (`libos/`, `#![no_std]`, static PIE) with
//! its own flags and target directory, so that `cargo build` of the workspace
//! produces a conf-run that carries it.
//!
//! The LibOS needs flags the rest of the workspace must not get (panic=abort,
//! no C runtime, static PIE), hence a nested cargo invocation with an explicit
//! `--target`, which keeps RUSTFLAGS away from proc-macros and build scripts.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The LibOS's rustflags, from libos/rustflags.txt (comments and blank
/// lines skipped).
fn libos_rustflags(root: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("libos/rustflags.txt"))
        .expect("libos/rustflags.txt is missing");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in [
        "libos/src",
        "libos/Cargo.toml",
        "libos/rustflags.txt",
        "libos/abi/src",
        "libos/abi/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CONF_LIBOS_FEATURES");

    let target = "x86_64-unknown-linux-gnu";
    let target_dir = root.join("target").join("libos");
    let mut features = String::from("enclave");
    if let Ok(extra) = env::var("CONF_LIBOS_FEATURES") {
        if !extra.is_empty() {
            features.push(',');
            features.push_str(&extra);
        }
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let encoded_flags = libos_rustflags(&root).join("\x1f");
    let status = Command::new(cargo)
        .current_dir(&root)
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
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_ENCODED_RUSTFLAGS", encoded_flags)
        .status()
        .expect("could not run cargo to build the LibOS");
    if !status.success() {
        panic!("building the LibOS (libos/) failed; see the errors above");
    }
    let elf = target_dir.join(target).join("release").join("conf-libos");
    std::fs::copy(&elf, out_dir.join("conf-libos.elf")).expect("could not copy the LibOS binary");
}
