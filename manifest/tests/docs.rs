//! docs/manifest.md stays true: its TOML examples parse (and the Python one
//! resolves on a Debian-like host), and the error messages it quotes are the
//! ones conf prints.

use std::collections::BTreeMap;
use std::path::Path;

use conf_manifest::{parse_file, parse_str, resolve, Progress, ResolveOptions};

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifest.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in doc.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```toml") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn toml_examples_parse() {
    let doc = doc();
    let blocks = toml_blocks(&doc);
    assert!(blocks.len() >= 7, "found {} toml blocks", blocks.len());
    let defines: BTreeMap<String, String> = [("script".to_string(), "app.py".to_string())]
        .into_iter()
        .collect();
    for b in blocks {
        let text = if b.contains("libos.entrypoint") {
            b.clone()
        } else {
            format!("libos.entrypoint = \"/x\"\n{b}")
        };
        let m = parse_str(&text, "docs", &defines).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }
}

#[test]
fn quoted_errors_are_real() {
    let doc = doc();
    let cases = [
        "libos.entrypoint = \"/a\"\n[sgx]\nenclave_sise = 1\n",
        "libos.entrypoint = \"/a\"\nsgx.stack.size = \"1M\"\n",
        "libos.entrypoint = \"/a\"\nsgx.max_threads = \"8\"\n",
        "libos.entrypoint = \"/a\"\nsgx.enclave_size = \"3G\"\n",
        "libos.entrypoint = \"/a\"\nlibos.ocall.mode = \"fast\"\n",
        "libos.entrypoint = \"/a\"\nfs.mounts = [{ path = \"/data\" }]\n",
        "libos.entrypoint = \"{{ entrypoint }}\"\n",
        "sgx.debug = true\n",
        "libos.entrypoint = \"/a\"\nloader.preload = \"x\"\n",
    ];
    for text in cases {
        let e = parse_str(text, "app.toml", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            doc.contains(&e),
            "docs/manifest.md does not quote this error as printed:\n{e}"
        );
    }
}

#[test]
fn python_example_resolves() {
    let needed = [
        "/usr/bin/python3",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libexpat.so.1",
        "/usr/lib/python3.11",
        "/usr/lib/python3/dist-packages",
    ];
    if needed.iter().any(|p| !Path::new(p).exists()) {
        eprintln!("skipped: not a Debian-like host with Python 3.11");
        return;
    }
    let doc = doc();
    let python = toml_blocks(&doc)
        .into_iter()
        .find(|b| b.contains("python.toml"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("python.toml"), &python).unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hello')\n").unwrap();
    let defines: BTreeMap<String, String> = [("script".to_string(), "app.py".to_string())]
        .into_iter()
        .collect();
    let m = parse_file(&dir.path().join("python.toml"), &defines).unwrap();
    let opts = ResolveOptions {
        progress: Progress::Never,
        cache_dir: Some(dir.path().join("cache")),
        threads: 0,
        defer_checks: false,
    };
    let r = resolve(&m, &opts).unwrap();
    assert!(r.stats.warnings.is_empty(), "{:?}", r.stats.warnings);
    assert_eq!(r.manifest.entrypoint, "/usr/bin/python3");
    // app.py is in the directory mounted at /app: trusted by its enclave path.
    assert!(r.manifest.trusted_file("/app/app.py").is_some());
    assert_eq!(r.manifest.fs_root, "/");
    let links: Vec<&str> = r
        .manifest
        .trusted_symlinks
        .iter()
        .map(|s| s.path.as_str())
        .collect();
    assert!(links.contains(&"/usr/bin/python3"), "{links:?}");
    assert!(r
        .manifest
        .trusted_files
        .iter()
        .any(|t| t.path.ends_with("/ld-linux-x86-64.so.2")));
    assert!(r.stats.files > 1000);
}
