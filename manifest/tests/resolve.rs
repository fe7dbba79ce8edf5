//! Resolution in temporary trees: files, directories, globs, symlinks,
//! digests, sha256 checks, determinism and the digest cache.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use conf_abi::manifest::{EnvValue, EnvVar, Mount, MountKind, OcallMode, TrustedSymlink};
use conf_abi::trusted::{chunk_count, file_digest};
use conf_manifest::{
    parse_str, resolve, Manifest, Progress, Resolution, ResolveError, ResolveOptions, TrustedEntry,
};
use sha2::{Digest, Sha256};

struct Tree {
    _dir: tempfile::TempDir,
    root: String,
    cache: PathBuf,
}

impl Tree {
    fn p(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }
    fn opts(&self) -> ResolveOptions {
        ResolveOptions {
            progress: Progress::Never,
            cache_dir: Some(self.cache.clone()),
            threads: 2,
            defer_checks: false,
        }
    }
    fn manifest(&self, entries: &[&str]) -> Manifest {
        Manifest {
            origin: "test.toml".into(),
            entrypoint: format!("file:{}", self.p("bin/app")),
            trusted_files: entries
                .iter()
                .map(|e| TrustedEntry::new(self.p(e)))
                .collect(),
            ..Manifest::default()
        }
    }
    fn resolve(&self, entries: &[&str]) -> Result<Resolution, ResolveError> {
        resolve(&self.manifest(entries), &self.opts())
    }
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A tree with files, relative/absolute/dangling/dir symlinks and a FIFO.
/// Timestamps are made old enough to be cached.
fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("t");
    let r = |rel: &str| root.join(rel);
    for d in ["bin", "lib/sub/deeper", "data"] {
        std::fs::create_dir_all(r(d)).unwrap();
    }
    std::fs::write(r("bin/app"), b"#!app").unwrap();
    std::fs::write(r("lib/libx.so.1.0"), big(2 * 65536 + 5)).unwrap();
    std::fs::write(r("lib/sub/deep.py"), b"print(1)\n").unwrap();
    std::fs::write(r("lib/sub/.hidden"), b"").unwrap();
    std::fs::write(r("lib/sub/deeper/x.py"), b"x").unwrap();
    std::fs::write(r("data/a.txt"), b"a").unwrap();
    symlink("libx.so.1.0", r("lib/libx.so.1")).unwrap();
    symlink(r("lib/libx.so.1"), r("lib/libx.so")).unwrap();
    symlink("sub", r("lib/linkdir")).unwrap();
    symlink("nowhere", r("lib/dangling")).unwrap();
    symlink("lib", r("lib64")).unwrap();
    let fifo = std::ffi::CString::new(r("lib/fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::thread::sleep(Duration::from_millis(150));
    let cache = dir.path().join("cache");
    Tree {
        root: root.to_str().unwrap().to_string(),
        cache,
        _dir: dir,
    }
}

fn paths(r: &Resolution) -> Vec<String> {
    r.manifest
        .trusted_files
        .iter()
        .map(|t| t.path.to_string())
        .collect()
}

fn links(r: &Resolution) -> Vec<(String, String)> {
    r.manifest
        .trusted_symlinks
        .iter()
        .map(|s| (s.path.clone(), s.target.clone()))
        .collect()
}

#[test]
fn directory_walk() {
    let t = tree();
    let r = t.resolve(&["lib", "bin/app"]).unwrap();
    let mut want: Vec<String> = [
        "bin/app",
        "lib/libx.so.1.0",
        "lib/sub/.hidden",
        "lib/sub/deep.py",
        "lib/sub/deeper/x.py",
    ]
    .iter()
    .map(|p| t.p(p))
    .collect();
    want.sort();
    assert_eq!(paths(&r), want);
    assert_eq!(
        links(&r),
        vec![
            (t.p("lib/dangling"), "nowhere".to_string()),
            (t.p("lib/libx.so"), t.p("lib/libx.so.1")),
            (t.p("lib/libx.so.1"), "libx.so.1.0".to_string()),
            (t.p("lib/linkdir"), "sub".to_string()),
        ]
    );
    // Digests are conf_abi's chunk tree; chunk lists are served by path.
    let lib = r.manifest.trusted_file(&t.p("lib/libx.so.1.0")).unwrap();
    let content = big(2 * 65536 + 5);
    assert_eq!(lib.size, content.len() as u64);
    assert_eq!(lib.digest, file_digest(&content));
    assert_eq!(
        r.chunks.get(&t.p("lib/libx.so.1.0")).unwrap().len() as u64,
        chunk_count(lib.size)
    );
    assert_eq!(r.chunks.get(&t.p("lib/sub/.hidden")).unwrap().len(), 0);
    assert_eq!(r.chunks.len(), 5);
    assert!(r.chunks.get("/nope").is_none());
    assert_eq!(r.stats.files, 5);
    assert_eq!(r.stats.symlinks, 4);
    assert_eq!(r.stats.bytes, content.len() as u64 + 5 + 9 + 1);
    // The FIFO is skipped with a warning, not an error.
    assert!(
        r.stats
            .warnings
            .iter()
            .any(|w| w.contains("lib/fifo") && w.contains("FIFO")),
        "{:?}",
        r.stats.warnings
    );
}

#[test]
fn symlinks_on_the_path_are_recorded() {
    let t = tree();
    let r = t.resolve(&["lib64/libx.so", "bin/app"]).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app"), t.p("lib/libx.so.1.0")]);
    assert_eq!(
        links(&r),
        vec![
            (t.p("lib/libx.so"), t.p("lib/libx.so.1")),
            (t.p("lib/libx.so.1"), "libx.so.1.0".to_string()),
            (t.p("lib64"), "lib".to_string()),
        ]
    );
    // System paths: /bin is a link on merged-/usr systems.
    if std::fs::symlink_metadata("/bin").is_ok_and(|m| m.file_type().is_symlink()) {
        let m = Manifest {
            entrypoint: "/bin/sh".into(),
            trusted_files: vec![TrustedEntry::new("/bin/sh")],
            ..Manifest::default()
        };
        let r = resolve(&m, &t.opts()).unwrap();
        let target = std::fs::read_link("/bin").unwrap();
        assert!(r.manifest.trusted_symlinks.contains(&TrustedSymlink {
            path: "/bin".into(),
            target: target.to_str().unwrap().into()
        }));
        let real = std::fs::canonicalize("/bin/sh").unwrap();
        assert_eq!(paths(&r), vec![real.to_str().unwrap().to_string()]);
        assert!(r.stats.warnings.is_empty(), "{:?}", r.stats.warnings);
    }
}

#[test]
fn globs() {
    let t = tree();
    let r = t.resolve(&["lib/*.so*", "bin/app"]).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app"), t.p("lib/libx.so.1.0")]);
    assert_eq!(links(&r).len(), 2);

    let r = t.resolve(&["**/*.py", "bin/app"]).unwrap();
    // Not through lib/linkdir or lib64: symlinked directories are not walked.
    assert_eq!(
        paths(&r),
        vec![
            t.p("bin/app"),
            t.p("lib/sub/deep.py"),
            t.p("lib/sub/deeper/x.py")
        ]
    );
    assert!(links(&r).is_empty());

    let r = t.resolve(&["lib/s?b/[d]*", "bin/app"]).unwrap();
    assert_eq!(
        paths(&r),
        vec![
            t.p("bin/app"),
            t.p("lib/sub/deep.py"),
            t.p("lib/sub/deeper/x.py")
        ]
    );

    // A glob under a symlinked prefix: the prefix is followed (and recorded).
    let r = t.resolve(&["lib64/sub/*.py", "bin/app"]).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app"), t.p("lib/sub/deep.py")]);
    assert_eq!(links(&r), vec![(t.p("lib64"), "lib".to_string())]);

    // `dir/**` is the whole directory.
    let r = t.resolve(&["lib/sub/**", "bin/app"]).unwrap();
    assert_eq!(r.stats.files, 4);

    for pattern in ["lib/*.nothing", "nodir/*.so", "bin/app/*"] {
        let e = t.resolve(&[pattern, "bin/app"]).unwrap_err();
        assert!(matches!(e, ResolveError::NoMatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&t.p(pattern)) && msg.contains("matches no file"),
            "{msg}"
        );
        assert!(msg.starts_with("test.toml: "), "{msg}");
    }
}

#[test]
fn literal_names_with_glob_characters() {
    let t = tree();
    std::fs::write(t.p("data/odd[1].txt"), b"odd").unwrap();
    let r = t.resolve(&["data/odd[1].txt", "bin/app"]).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app"), t.p("data/odd[1].txt")]);
}

#[test]
fn missing_and_dangling_entries() {
    let t = tree();
    let e = t.resolve(&["bin/nope", "bin/app"]).unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("entry \"file:{}\"", t.p("bin/nope"))),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{} does not exist", t.p("bin/nope"))),
        "{msg}"
    );

    let e = t
        .resolve(&["lib/dangling", "bin/app"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&t.p("lib/nowhere")) && e.contains("symbolic link"),
        "{e}"
    );

    let e = t
        .resolve(&["bin/app/x", "bin/app"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a directory"), "{e}");

    symlink("loop", t.p("data/loop")).unwrap();
    let e = t
        .resolve(&["data/loop", "bin/app"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("too many levels of symbolic links"), "{e}");

    let e = t.resolve(&["lib/fifo", "bin/app"]).unwrap_err();
    assert!(matches!(e, ResolveError::NotAFile { .. }), "{e}");
}

#[test]
fn sha256_checks() {
    let t = tree();
    let content = big(2 * 65536 + 5);
    let good: [u8; 32] = Sha256::digest(&content).into();
    let mut m = t.manifest(&["bin/app"]);
    m.trusted_files.push(TrustedEntry {
        path: t.p("lib/libx.so"),
        sha256: Some(good),
    });
    let r = resolve(&m, &t.opts()).unwrap();
    assert!(r.manifest.trusted_file(&t.p("lib/libx.so.1.0")).is_some());
    // Also when the digests come from the cache.
    let r = resolve(&m, &t.opts()).unwrap();
    assert_eq!(r.stats.cache_hits, 2);

    let mut bad = good;
    bad[0] ^= 1;
    m.trusted_files[1].sha256 = Some(bad);
    let e = resolve(&m, &t.opts()).unwrap_err();
    assert!(matches!(e, ResolveError::Sha256Mismatch { .. }));
    let msg = e.to_string();
    let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(
        msg.contains(&hex(&good)) && msg.contains(&hex(&bad)),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("entry \"file:{}\"", t.p("lib/libx.so"))),
        "{msg}"
    );
    assert!(msg.contains("update `sha256`"), "{msg}");

    m.trusted_files[1] = TrustedEntry {
        path: t.p("lib"),
        sha256: Some(good),
    };
    let e = resolve(&m, &t.opts()).unwrap_err();
    assert!(matches!(e, ResolveError::Sha256NotAFile { .. }), "{e}");
}

#[test]
fn deterministic_bytes() {
    let t = tree();
    let a = t
        .resolve(&["lib", "bin/app", "data/a.txt"])
        .unwrap()
        .manifest
        .encode();
    let b = t
        .resolve(&["data/a.txt", "bin/app", "lib"])
        .unwrap()
        .manifest
        .encode();
    let c = t
        .resolve(&["data", "lib/sub", "bin", "lib", "data/a.txt", "lib/*.so"])
        .unwrap()
        .manifest
        .encode();
    assert_eq!(a, b);
    assert_eq!(a, c);
    // A cold resolve (fresh cache) gives the same bytes, with 1 or 4 threads.
    let cold = tempfile::tempdir().unwrap();
    for threads in [1, 4] {
        let opts = ResolveOptions {
            progress: Progress::Never,
            cache_dir: Some(cold.path().join(format!("{threads}"))),
            threads,
            defer_checks: false,
        };
        let r = resolve(&t.manifest(&["bin/app", "lib", "data/a.txt"]), &opts).unwrap();
        assert_eq!(r.stats.cache_hits, 0);
        assert_eq!(r.manifest.encode(), a);
    }
}

#[test]
fn cache_hits_and_invalidation() {
    let t = tree();
    let first = t.resolve(&["lib", "bin/app"]).unwrap();
    assert_eq!(first.stats.cache_hits, 0);
    assert!(first.stats.bytes_hashed > 0);
    assert!(t.cache.join("hashes-v1.bin").is_file());

    let second = t.resolve(&["lib", "bin/app"]).unwrap();
    assert_eq!(second.stats.cache_hits, second.stats.files);
    assert_eq!(second.stats.bytes_hashed, 0);
    assert_eq!(second.manifest.encode(), first.manifest.encode());
    let p = t.p("lib/libx.so.1.0");
    assert_eq!(
        second.chunks.get(&p).unwrap(),
        first.chunks.get(&p).unwrap()
    );

    // Same size, new content, and the mtime put back as it was: the ctime
    // still changes, so the cache must not answer.
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    let mut content = big(2 * 65536 + 5);
    content[70_000] ^= 0xff;
    std::fs::write(&p, &content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(Duration::from_millis(150)); // out of the racy window, so it gets cached
    let third = t.resolve(&["lib", "bin/app"]).unwrap();
    assert_eq!(third.stats.cache_hits, third.stats.files - 1);
    assert_eq!(third.stats.bytes_hashed, content.len() as u64);
    assert_eq!(
        third.manifest.trusted_file(&p).unwrap().digest,
        file_digest(&content)
    );
    assert_ne!(third.manifest.encode(), first.manifest.encode());
    let old_chunks = first.chunks.get(&p).unwrap();
    let new_chunks = third.chunks.get(&p).unwrap();
    assert_eq!(old_chunks[0], new_chunks[0]);
    assert_ne!(old_chunks[1], new_chunks[1]);

    // A newer mtime (the usual edit) is noticed too.
    std::fs::write(t.p("bin/app"), b"#!APP").unwrap();
    let fourth = t.resolve(&["lib", "bin/app"]).unwrap();
    assert_eq!(fourth.stats.bytes_hashed, 5);
    assert_eq!(
        fourth
            .manifest
            .trusted_file(&t.p("bin/app"))
            .unwrap()
            .digest,
        file_digest(b"#!APP")
    );
}

/// What a child process's conf-run reads back: the chunk digests of a file
/// as the first resolution stored them, and nothing once the file changed.
#[test]
fn digest_cache_answers_for_unchanged_files_only() {
    let t = tree();
    let first = t.resolve(&["lib", "bin/app"]).unwrap();
    let p = t.p("lib/libx.so.1.0");
    let cache = conf_manifest::DigestCache::open(&t.cache);
    assert_eq!(cache.chunks(&p).unwrap(), first.chunks.get(&p).unwrap());
    assert!(cache.chunks(&t.p("no/such/file")).is_none());
    std::fs::write(&p, b"changed").unwrap();
    assert!(conf_manifest::DigestCache::open(&t.cache)
        .chunks(&p)
        .is_none());
}

#[test]
fn fresh_files_are_hashed_but_not_cached() {
    let t = tree();
    std::fs::write(t.p("data/new"), b"just written").unwrap();
    let a = t.resolve(&["data", "bin/app"]).unwrap();
    let b = t.resolve(&["data", "bin/app"]).unwrap();
    // data/new was modified within the racy window: hashed both times.
    assert_eq!(b.stats.bytes_hashed, 12);
    assert_eq!(b.stats.cache_hits, 2);
    assert_eq!(a.manifest.encode(), b.manifest.encode());
}

#[test]
fn damaged_cache_is_ignored_and_rewritten() {
    let t = tree();
    let want = t.resolve(&["lib", "bin/app"]).unwrap().manifest.encode();
    let file = t.cache.join("hashes-v1.bin");
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x55; // inside the last record's chunk digests
    let damages: Vec<Vec<u8>> = vec![
        b"not a cache at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..20].to_vec(),
        Vec::new(),
        flipped,
    ];
    for bad in damages {
        std::fs::write(&file, &bad).unwrap();
        let r = t.resolve(&["lib", "bin/app"]).unwrap();
        assert_eq!(r.manifest.encode(), want);
        assert!(
            r.stats.warnings.iter().all(|w| !w.contains("cache")),
            "{:?}",
            r.stats.warnings
        );
        // Rewritten: the next run is all hits.
        let again = t.resolve(&["lib", "bin/app"]).unwrap();
        assert_eq!(again.stats.cache_hits, again.stats.files);
        assert_eq!(again.manifest.encode(), want);
    }
}

#[test]
fn unwritable_cache_is_a_warning() {
    let t = tree();
    std::fs::write(t.p("data/file-not-dir"), b"x").unwrap();
    let opts = ResolveOptions {
        progress: Progress::Never,
        cache_dir: Some(PathBuf::from(t.p("data/file-not-dir/cache"))),
        threads: 0,
        defer_checks: false,
    };
    let r = resolve(&t.manifest(&["bin/app"]), &opts).unwrap();
    assert_eq!(r.stats.files, 1);
    assert!(
        r.stats
            .warnings
            .iter()
            .any(|w| w.contains("cannot write the digest cache")),
        "{:?}",
        r.stats.warnings
    );
}

#[test]
fn concurrent_writers_share_the_cache() {
    let t = tree();
    for i in 0..8 {
        std::fs::write(t.p(&format!("data/f{i}")), format!("file {i}")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    std::thread::scope(|s| {
        for i in 0..8 {
            let t = &t;
            s.spawn(move || {
                for _ in 0..3 {
                    t.resolve(&[&format!("data/f{i}"), "bin/app"]).unwrap();
                }
            });
        }
    });
    let r = t.resolve(&["data", "bin/app"]).unwrap();
    assert_eq!(r.stats.files, 10);
    assert_eq!(
        r.stats.cache_hits, 9,
        "data/a.txt was never resolved before; every f{{i}} was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&t.cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn non_utf8_names_are_skipped_with_a_warning() {
    use std::os::unix::ffi::OsStrExt;
    let t = tree();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    if std::fs::write(Path::new(&t.p("data")).join(name), b"x").is_err() {
        return; // a file system that refuses such names
    }
    let r = t.resolve(&["data", "bin/app"]).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app"), t.p("data/a.txt")]);
    assert!(
        r.stats.warnings.iter().any(|w| w.contains("not UTF-8")),
        "{:?}",
        r.stats.warnings
    );
    let r = t.resolve(&["data/*", "bin/app"]).unwrap();
    assert_eq!(r.stats.files, 2);
    assert!(
        r.stats.warnings.iter().any(|w| w.contains("not UTF-8")),
        "{:?}",
        r.stats.warnings
    );
}

#[test]
fn every_field_is_filled() {
    let t = tree();
    let text = format!(
        r#"
libos.entrypoint = "file:{root}/bin/app"
libos.ocall.mode = "exitless"
libos.ocall.workers = 2
loader.log_level = "info"
loader.env = {{ Z = "z", A = {{ passthrough = true }}, M = "m" }}
fs.root = "file:{root}"
fs.start_dir = "/bin"
fs.mounts = [
  {{ type = "tmpfs", path = "/tmp" }},
  {{ path = "/data", uri = "file:{root}/data" }},
]
sgx.trusted_files = ["file:{root}/bin/", "file:{root}/lib/sub/deep.py"]
sgx.allowed_files = ["file:{root}/data/", "file:{root}/lib/../log"]
sgx.enclave_size = "512M"
sgx.max_threads = 3
sgx.edmm_enable = false
sgx.debug = true
sgx.isvprodid = 5
sgx.isvsvn = 6
sys.stack.size = "1M"
sys.brk.max_size = "2M"
"#,
        root = t.root
    );
    let m = parse_str(&text, "full.toml", &BTreeMap::new()).unwrap();
    let r = resolve(&m, &t.opts()).unwrap();
    let rm = &r.manifest;
    // The entrypoint is below fs.root, so it is /bin/app inside.
    assert_eq!(rm.entrypoint, "/bin/app");
    assert_eq!(rm.argv, ["/bin/app"]);
    assert!(!rm.use_cmdline_argv);
    assert_eq!(
        rm.env,
        vec![
            EnvVar {
                name: "A".into(),
                value: EnvValue::Passthrough
            },
            EnvVar {
                name: "M".into(),
                value: EnvValue::Value("m".into())
            },
            EnvVar {
                name: "Z".into(),
                value: EnvValue::Value("z".into())
            },
        ]
    );
    assert_eq!(rm.log_level, conf_abi::manifest::LogLevel::Info);
    // Where the root is on the host is not measured.
    assert_eq!(rm.fs_root, "/");
    assert_eq!(r.host_root, Path::new(&t.root));
    assert_eq!(
        rm.mounts,
        vec![
            Mount {
                path: "/data".into(),
                kind: MountKind::Chroot,
                uri: t.p("data"),
                key_name: String::new()
            },
            Mount {
                path: "/tmp".into(),
                kind: MountKind::Tmpfs,
                uri: String::new(),
                key_name: String::new()
            },
        ]
    );
    assert_eq!(rm.start_dir, "/bin");
    // Enclave paths: below fs.root, and the /data mount.
    assert_eq!(paths(&r), vec!["/bin/app", "/lib/sub/deep.py"]);
    assert_eq!(rm.allowed_files, vec!["/data", "/log"]);
    assert!(r.chunks.get("/lib/sub/deep.py").is_some());
    assert_eq!(rm.enclave_size, 512 << 20);
    assert_eq!(rm.max_threads, 3);
    assert!(!rm.edmm && rm.debug);
    assert_eq!((rm.isvprodid, rm.isvsvn), (5, 6));
    assert_eq!((rm.stack_size, rm.brk_max_size), (1 << 20, 2 << 20));
    assert_eq!((rm.ocall_mode, rm.ocall_workers), (OcallMode::Exitless, 2));
    assert!(r.stats.warnings.is_empty(), "{:?}", r.stats.warnings);
    // The canonical bytes decode to the same thing.
    let back = conf_abi::manifest::ResolvedManifest::decode(&rm.encode()).unwrap();
    assert_eq!(&back, rm);
}

#[test]
fn entrypoint_mapping() {
    let t = tree();
    let mut m = t.manifest(&["bin"]);
    m.mounts.push(Mount {
        path: "/app".into(),
        kind: MountKind::Chroot,
        uri: t.p("bin"),
        key_name: String::new(),
    });
    let r = resolve(&m, &t.opts()).unwrap();
    assert_eq!(r.manifest.entrypoint, "/app/app");
    assert_eq!(r.manifest.argv, ["/app/app"]);

    // Outside fs.root and every mount.
    let mut m = t.manifest(&["bin"]);
    m.fs_root = t.p("data");
    let e = resolve(&m, &t.opts()).unwrap_err();
    assert!(
        matches!(e, ResolveError::EntrypointNotVisible { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&t.p("bin/app")));

    // An enclave path that is neither trusted nor allowed: a warning.
    let mut m = t.manifest(&["data"]);
    m.entrypoint = t.p("bin/app");
    let r = resolve(&m, &t.opts()).unwrap();
    assert!(
        r.stats
            .warnings
            .iter()
            .any(|w| w.contains("is not a trusted file")),
        "{:?}",
        r.stats.warnings
    );
    // Through a symlink to a trusted file: the links are recorded.
    m.entrypoint = t.p("lib64/libx.so");
    m.trusted_files = vec![TrustedEntry::new(t.p("lib/libx.so.1.0"))];
    let r = resolve(&m, &t.opts()).unwrap();
    assert!(r.stats.warnings.is_empty(), "{:?}", r.stats.warnings);
    assert_eq!(links(&r).len(), 3);
    // use_cmdline_argv: argv stays empty.
    m.use_cmdline_argv = true;
    assert!(resolve(&m, &t.opts()).unwrap().manifest.argv.is_empty());
}

#[test]
fn synthesized_manifests_are_checked_and_normalized() {
    let t = tree();
    let mut m = t.manifest(&["bin/app"]);
    m.trusted_files[0].path = format!("{}/bin/../bin//app", t.root);
    m.allowed_files = vec!["/x/./y/".into()];
    let r = resolve(&m, &t.opts()).unwrap();
    assert_eq!(paths(&r), vec![t.p("bin/app")]);
    assert_eq!(r.manifest.allowed_files, ["/x/y"]);

    type Breaker = Box<dyn Fn(&mut Manifest)>;
    let bad: Vec<(Breaker, &str)> = vec![
        (
            Box::new(|m| m.entrypoint.clear()),
            "libos.entrypoint is empty",
        ),
        (Box::new(|m| m.entrypoint = "rel/app".into()), "absolute"),
        (Box::new(|m| m.enclave_size = 3 << 30), "power of two"),
        (Box::new(|m| m.max_threads = 0), "max_threads"),
        (
            Box::new(|m| m.trusted_files[0].path = "relative".into()),
            "absolute",
        ),
        (Box::new(|m| m.fs_root = "".into()), "fs.root"),
        (
            Box::new(|m| {
                m.env.insert("A=B".into(), EnvValue::Passthrough);
            }),
            "A=B",
        ),
        (
            Box::new(|m| {
                m.ocall_mode = OcallMode::Exitless;
                m.ocall_workers = 0
            }),
            "workers",
        ),
        (
            Box::new(|m| {
                m.trusted_files[0] = TrustedEntry {
                    path: "/lib/*.so".into(),
                    sha256: Some([0; 32]),
                };
            }),
            "pattern",
        ),
    ];
    for (f, want) in bad {
        let mut m = t.manifest(&["bin/app"]);
        f(&mut m);
        let e = resolve(&m, &t.opts()).unwrap_err();
        assert!(matches!(e, ResolveError::Invalid { .. }), "{e}");
        assert!(
            e.to_string().contains(want) && e.to_string().starts_with("test.toml: "),
            "{e}"
        );
    }
}

#[test]
fn default_cache_dir_follows_the_environment() {
    // Only reads the environment of this process; the other tests pass
    // explicit cache directories, so changing it here is harmless.
    let dir = conf_manifest::default_cache_dir();
    match std::env::var_os("CONF_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(v) => assert_eq!(dir, PathBuf::from(v)),
        None => assert!(
            dir.ends_with("conf") || dir.to_string_lossy().contains("conf-cache"),
            "{}",
            dir.display()
        ),
    }
}
