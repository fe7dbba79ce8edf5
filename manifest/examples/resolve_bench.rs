//! Resolve a manifest trusting one directory, cold (empty cache) then warm.
//!
//!     cargo run --release -p conf-manifest --example resolve_bench -- /usr/lib/python3.11 [threads]

use conf_manifest::{resolve, Manifest, Progress, ResolveOptions, TrustedEntry};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: resolve_bench DIR [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|e| {
        eprintln!("{dir}: {e}");
        std::process::exit(2)
    });
    let dir = dir.to_str().expect("UTF-8 path").to_string();
    let m = Manifest {
        origin: "resolve_bench".into(),
        entrypoint: "/bin/true".into(),
        trusted_files: vec![TrustedEntry::new(dir.clone())],
        ..Manifest::default()
    };
    let cache = tempfile::tempdir().expect("temp dir");
    let opts = ResolveOptions {
        progress: Progress::Auto,
        cache_dir: Some(cache.path().to_path_buf()),
        threads,
        defer_checks: false,
    };

    let cold = resolve(&m, &opts).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let s = &cold.stats;
    let secs = s.elapsed.as_secs_f64();
    println!(
        "cold: {} files, {} symlinks, {:.1} MB hashed in {:.3} s = {:.2} GB/s ({} cache hits)",
        s.files,
        s.symlinks,
        s.bytes_hashed as f64 / 1e6,
        secs,
        s.bytes_hashed as f64 / 1e9 / secs,
        s.cache_hits
    );
    // The synthetic entrypoint is not trusted; that warning is expected.
    for w in s
        .warnings
        .iter()
        .filter(|w| !w.contains("libos.entrypoint"))
    {
        println!("  warning: {w}");
    }

    let warm = resolve(&m, &opts).expect("warm resolve");
    let s = &warm.stats;
    println!(
        "warm: {} files, {} cache hits, {:.1} MB hashed, {:.1} ms",
        s.files,
        s.cache_hits,
        s.bytes_hashed as f64 / 1e6,
        s.elapsed.as_secs_f64() * 1e3
    );
    assert_eq!(
        cold.manifest.encode(),
        warm.manifest.encode(),
        "cold and warm resolutions differ"
    );
    println!(
        "resolved manifest: {} bytes, identical cold and warm",
        warm.manifest.encode().len()
    );
}
