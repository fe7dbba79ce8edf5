//! The resolved manifest holds enclave paths: a root file system kept
//! anywhere on the host (fs.root) resolves to the same bytes, symbolic links
//! are followed inside it, and entries the enclave cannot see are refused.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use conf_abi::manifest::{Mount, MountKind};
use conf_manifest::{
    resolve, Manifest, Progress, Resolution, ResolveError, ResolveOptions, TrustedEntry,
};

/// A small root file system: a merged-/usr layout with absolute and
/// relative links, and links that try to leave it.
fn rootfs(at: &Path) {
    let r = |rel: &str| at.join(rel);
    for d in [
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/py",
        "etc",
        "app",
        "srv/data",
    ] {
        std::fs::create_dir_all(r(d)).unwrap();
    }
    std::fs::write(r("usr/bin/python3.11"), b"\x7fELF python").unwrap();
    std::fs::write(r("usr/lib/x86_64-linux-gnu/libc.so.6"), vec![7u8; 70_000]).unwrap();
    std::fs::write(r("usr/lib/py/os.py"), b"import sys\n").unwrap();
    std::fs::write(r("etc/hostname"), b"image\n").unwrap();
    std::fs::write(r("app/main.py"), b"print('hi')\n").unwrap();
    std::fs::write(r("srv/data/d.txt"), b"data\n").unwrap();
    symlink("usr/lib", r("lib")).unwrap();
    // Absolute: inside the enclave this is /usr/bin/python3.11.
    symlink("/usr/bin/python3.11", r("usr/bin/python3")).unwrap();
    // Absolute to a directory, and a file through it.
    symlink(
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        r("usr/lib/libc-link"),
    )
    .unwrap();
    // Tries to climb out: `..` stops at the enclave's `/`.
    symlink("../../../../../../../../etc/hostname", r("usr/bin/escape")).unwrap();
    // Points at a host path that exists only outside the root.
    symlink("/proc/self/status", r("etc/outside")).unwrap();
    std::thread::sleep(Duration::from_millis(150));
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("rootfs");
    rootfs(&root);
    let cache = dir.path().join("cache");
    Fixture {
        _dir: dir,
        root,
        cache,
    }
}

impl Fixture {
    fn h(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root.display())
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
            origin: "image.toml".into(),
            entrypoint: "/usr/bin/python3".into(),
            fs_root: self.root.to_str().unwrap().to_string(),
            trusted_files: entries
                .iter()
                .map(|e| TrustedEntry::new(self.h(e)))
                .collect(),
            ..Manifest::default()
        }
    }
    fn resolve(&self, entries: &[&str]) -> Result<Resolution, ResolveError> {
        resolve(&self.manifest(entries), &self.opts())
    }
}

fn paths(r: &Resolution) -> Vec<&str> {
    r.manifest.trusted_files.iter().map(|t| t.path).collect()
}

/// A fixture old enough to be snapshotted, a manifest starting in /app,
/// and the options of conf-run's start (checks deferred).
fn deferring_start() -> (Fixture, Manifest, ResolveOptions) {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100)); // old enough to snapshot
    let m = Manifest {
        start_dir: "/app".into(),
        ..f.manifest(&["usr", "lib", "app"])
    };
    let defer = ResolveOptions {
        defer_checks: true,
        ..f.opts()
    };
    (f, m, defer)
}

fn links(r: &Resolution) -> Vec<(&str, &str)> {
    r.manifest
        .trusted_symlinks
        .iter()
        .map(|s| (s.path.as_str(), s.target.as_str()))
        .collect()
}

#[test]
fn a_root_elsewhere_resolves_to_enclave_paths() {
    let f = fixture();
    let r = f
        .resolve(&["usr/bin/python3", "lib/libc-link", "usr/lib/py", "app"])
        .unwrap();
    assert!(r.stats.warnings.is_empty(), "{:?}", r.stats.warnings);
    assert_eq!(r.manifest.fs_root, "/");
    assert_eq!(r.host_root, f.root);
    assert_eq!(r.manifest.entrypoint, "/usr/bin/python3");
    assert_eq!(
        paths(&r),
        [
            "/app/main.py",
            "/usr/bin/python3.11",
            "/usr/lib/py/os.py",
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        ]
    );
    // Links by enclave path, targets as readlink returns them.
    assert_eq!(
        links(&r),
        [
            ("/lib", "usr/lib"),
            ("/usr/bin/python3", "/usr/bin/python3.11"),
            ("/usr/lib/libc-link", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ]
    );
    // Chunk digests by enclave path; the digest is of the file in the root.
    let libc = r.chunks.get("/usr/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    assert_eq!(libc.len(), 2);
    assert!(r
        .chunks
        .get(&f.h("usr/lib/x86_64-linux-gnu/libc.so.6"))
        .is_none());
}

#[test]
fn the_host_location_is_not_measured() {
    let a = fixture();
    let b = fixture();
    assert_ne!(a.root, b.root);
    let entries = ["usr", "lib", "etc/hostname", "app"];
    let ra = a.resolve(&entries).unwrap();
    let rb = b.resolve(&entries).unwrap();
    assert_eq!(ra.manifest.encode(), rb.manifest.encode());
    // A changed file does change the bytes.
    std::fs::write(b.root.join("app/main.py"), b"print('changed')\n").unwrap();
    let rc = b.resolve(&entries).unwrap();
    assert_ne!(ra.manifest.encode(), rc.manifest.encode());
}

#[test]
fn links_do_not_leave_the_root() {
    let f = fixture();
    // `..` stops at the enclave's `/`: the link leads to the image's
    // /etc/hostname, not to the host's.
    let r = f.resolve(&["usr/bin/escape"]).unwrap();
    assert_eq!(paths(&r), ["/etc/hostname"]);
    assert_eq!(r.chunks.get("/etc/hostname").unwrap().len(), 1);
    let digest = r.manifest.trusted_file("/etc/hostname").unwrap();
    assert_eq!(
        digest.size, 6,
        "hashed the host's /etc/hostname instead of the image's"
    );

    // An absolute target is looked up below fs.root: /proc/self/status is
    // not in the image, so the entry does not resolve...
    let e = f.resolve(&["etc/outside"]).unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&f.h("proc")),
        "the message should name the host path in the root: {msg}"
    );
    // ...and walking a directory with such a link records it as dangling.
    let r = f.resolve(&["etc"]).unwrap();
    assert_eq!(paths(&r), ["/etc/hostname"]);
    assert!(links(&r).contains(&("/etc/outside", "/proc/self/status")));
}

#[test]
fn entries_outside_the_root_are_errors() {
    let f = fixture();
    let mut m = f.manifest(&["usr/bin"]);
    m.trusted_files.push(TrustedEntry::new("/etc/passwd"));
    let e = resolve(&m, &f.opts()).unwrap_err();
    assert!(
        matches!(
            e,
            ResolveError::NotVisible {
                key: "sgx.trusted_files",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "image.toml: sgx.trusted_files entry \"file:/etc/passwd\": /etc/passwd is outside fs.root ({}) and \
             every mount; the enclave cannot see it; move it below fs.root, mount its directory (fs.mounts) or \
             change fs.root",
            f.root.display()
        )
    );

    let mut m = f.manifest(&["usr/bin"]);
    m.allowed_files.push("/var/log".into());
    let e = resolve(&m, &f.opts()).unwrap_err();
    assert!(
        matches!(
            e,
            ResolveError::NotVisible {
                key: "sgx.allowed_files",
                ..
            }
        ),
        "{e}"
    );

    // A glob whose directory part is outside.
    let mut m = f.manifest(&[]);
    m.trusted_files.push(TrustedEntry::new("/usr/lib/*.so*"));
    let e = resolve(&m, &f.opts()).unwrap_err();
    assert!(matches!(e, ResolveError::NotVisible { .. }), "{e}");

    // A glob inside resolves to enclave paths.
    let r = f.resolve(&["usr/lib/**/*.py"]).unwrap();
    assert_eq!(paths(&r), ["/usr/lib/py/os.py"]);
}

fn chroot(path: &str, uri: &str) -> Mount {
    Mount {
        path: path.into(),
        kind: MountKind::Chroot,
        uri: uri.into(),
        key_name: String::new(),
    }
}

fn tmpfs(path: &str) -> Mount {
    Mount {
        path: path.into(),
        kind: MountKind::Tmpfs,
        uri: String::new(),
        key_name: String::new(),
    }
}

#[test]
fn mounts_map_host_directories() {
    let f = fixture();
    let data = f.h("srv/data");
    let mut m = f.manifest(&["usr/bin/python3", "srv/data"]);
    m.mounts.push(chroot("/data", &data));
    m.mounts.push(tmpfs("/tmp"));
    m.allowed_files.push(format!("{data}/out"));
    m.allowed_files.push("/tmp".into()); // outside the root, but tmpfs is no host path
    m.fs_root = f.h("");
    // /tmp on the host is outside fs.root: an error, not a warning.
    let e = resolve(&m, &f.opts()).unwrap_err();
    assert!(matches!(e, ResolveError::NotVisible { .. }), "{e}");
    m.allowed_files.pop();
    // An allowed entry below the root that the tmpfs hides: ignored, warned.
    m.allowed_files.push(f.h("tmp"));
    let r = resolve(&m, &f.opts()).unwrap();
    assert_eq!(r.manifest.allowed_files, ["/data/out"]);
    assert!(
        r.stats
            .warnings
            .iter()
            .any(|w| w.contains("the mount at /tmp hides it")),
        "{:?}",
        r.stats.warnings
    );
    // The mounted directory shows at /data, not at /srv/data.
    assert_eq!(paths(&r), ["/data/d.txt", "/usr/bin/python3.11"]);

    // A trusted file the mount hides is an error naming the mount.
    let mut m = f.manifest(&["usr/bin/python3", "srv/data/d.txt"]);
    m.mounts.push(chroot("/srv", &f.h("app")));
    let e = resolve(&m, &f.opts()).unwrap_err();
    assert!(matches!(e, ResolveError::Hidden { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("would be /srv/data/d.txt in the enclave, but the mount at /srv hides it"),
        "{e}"
    );

    // Walking a directory does not enter a mount point below it.
    let mut m = f.manifest(&["usr/bin/python3", ""]);
    m.mounts.push(chroot("/app", &f.h("srv/data")));
    let r = resolve(&m, &f.opts()).unwrap();
    assert!(
        !paths(&r).iter().any(|p| p.starts_with("/app/")),
        "{:?}",
        paths(&r)
    );
    assert!(paths(&r).contains(&"/srv/data/d.txt"));
}

#[test]
fn a_link_in_a_mount_follows_the_enclave_root() {
    // As the LibOS does: an absolute target in a mounted directory starts
    // again at the enclave's `/`.
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(outside.path()).unwrap();
    symlink("/usr/bin/python3.11", dir.join("py")).unwrap();
    let mut m = f.manifest(&["usr/bin/python3"]);
    m.mounts.push(chroot("/mnt", dir.to_str().unwrap()));
    m.trusted_files
        .push(TrustedEntry::new(format!("{}/py", dir.display())));
    let r = resolve(&m, &f.opts()).unwrap();
    assert_eq!(paths(&r), ["/usr/bin/python3.11"]);
    assert!(links(&r).contains(&("/mnt/py", "/usr/bin/python3.11")));
}

#[test]
fn default_root_is_unchanged() {
    // fs.root = "/": enclave paths are host paths.
    let f = fixture();
    let m = Manifest {
        origin: "plain.toml".into(),
        entrypoint: format!("file:{}", f.h("app/main.py")),
        trusted_files: vec![TrustedEntry::new(f.h("lib/py"))],
        allowed_files: vec![f.h("app/main.py")],
        ..Manifest::default()
    };
    let r = resolve(&m, &f.opts()).unwrap();
    assert_eq!(r.host_root, Path::new("/"));
    assert_eq!(r.manifest.fs_root, "/");
    assert_eq!(paths(&r), [f.h("usr/lib/py/os.py").as_str()]);
    assert_eq!(links(&r), [(f.h("lib").as_str(), "usr/lib")]);
    assert_eq!(r.manifest.entrypoint, f.h("app/main.py"));
    assert_eq!(r.manifest.allowed_files, [f.h("app/main.py")]);
}

#[test]
fn snapshots_keep_the_host_root() {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100)); // old enough to snapshot
    let a = f.resolve(&["usr", "lib", "app"]).unwrap();
    let b = f.resolve(&["usr", "lib", "app"]).unwrap();
    assert_eq!(b.stats.bytes_hashed, 0);
    assert_eq!(a.manifest.encode(), b.manifest.encode());
    assert_eq!(b.host_root, f.root);
    // Chunk digests are kept for files of more than one chunk (a file of
    // one is checked against its root digest alone).
    assert_eq!(
        b.chunks.get("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        a.chunks.get("/usr/lib/x86_64-linux-gnu/libc.so.6")
    );
    assert!(b
        .chunks
        .get("/usr/lib/x86_64-linux-gnu/libc.so.6")
        .is_some());
    // A change is noticed through the host path.
    std::fs::write(f.root.join("app/main.py"), b"print('changed')\n").unwrap();
    let c = f.resolve(&["usr", "lib", "app"]).unwrap();
    assert_ne!(a.manifest.encode(), c.manifest.encode());
}

/// A snapshot does not stamp the links (and missing paths) of a directory
/// it listed: retargeting a link changes the directory's entries, which the
/// directory's stamp sees, so the next start resolves the new target.
#[test]
fn a_link_retargeted_in_a_listed_directory_is_seen() {
    let (f, m, defer) = deferring_start();
    let target = |r: &Resolution| {
        links(r)
            .iter()
            .find(|(p, _)| *p == "/usr/lib/libc-link")
            .map(|(_, t)| t.to_string())
    };
    let first = resolve(&m, &defer).unwrap();
    assert_eq!(
        target(&first).as_deref(),
        Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
    );
    let second = resolve(&m, &defer).unwrap();
    assert!(!second.unchecked.is_empty(), "the snapshot is used");

    let link = f.root.join("usr/lib/libc-link");
    std::fs::remove_file(&link).unwrap();
    symlink("/usr/lib/py/os.py", &link).unwrap();
    let third = resolve(&m, &defer).unwrap();
    assert_eq!(target(&third).as_deref(), Some("/usr/lib/py/os.py"));
}

/// The deferred files are looked up in the snapshot itself: each is found
/// (an edit of any is seen, first to last in path order), and a path the
/// snapshot does not defer passes.
#[test]
fn every_deferred_file_is_found_in_the_snapshot() {
    let (f, m, defer) = deferring_start();
    resolve(&m, &defer).unwrap();
    let open = |rel: &str| std::fs::File::open(f.root.join(rel)).unwrap();
    let deferred = [
        "usr/bin/python3.11",
        "usr/lib/py/os.py",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
    ];
    for rel in deferred {
        let r = resolve(&m, &defer).unwrap();
        assert_eq!(r.unchecked.len(), 4);
        assert!(r.unchecked.check(&f.h(rel), &open(rel)), "{rel} unchanged");
        assert!(r.unchecked.check(&f.h("app/main.py"), &open("app/main.py")));
        // The same file with another modification time: seen.
        let t = std::fs::metadata(f.root.join(rel))
            .unwrap()
            .modified()
            .unwrap();
        open(rel).set_modified(t - Duration::from_secs(60)).unwrap();
        assert!(!r.unchecked.check(&f.h(rel), &open(rel)), "{rel} touched");
        // That dropped the snapshot; the next start makes a new one (once
        // the change is old enough to be told from a later one).
        std::thread::sleep(Duration::from_millis(1100));
        assert!(resolve(&m, &defer).unwrap().unchecked.is_empty());
    }
}

/// With `defer_checks` (conf-run's start), a snapshot is used without
/// checking the files outside the working directory; each comes back in
/// `unchecked`, which notices an edit in place and drops the snapshot.
/// Files in the working directory, directories and links are still checked
/// up front.
#[test]
fn deferred_checks_catch_files_edited_in_place() {
    let (f, m, defer) = deferring_start();
    let first = resolve(&m, &defer).unwrap();
    assert!(first.unchecked.is_empty(), "a fresh resolution checks all");
    let second = resolve(&m, &defer).unwrap();
    assert_eq!(second.stats.bytes_hashed, 0);
    assert_eq!(second.manifest.encode(), first.manifest.encode());
    // python3.11, libc.so.6, os.py and hostname (through usr/bin/escape):
    // not main.py (in the working directory, checked up front).
    assert_eq!(second.unchecked.len(), 4);

    let open = |rel: &str| std::fs::File::open(f.root.join(rel)).unwrap();
    let os_py = f.h("usr/lib/py/os.py");
    assert!(second.unchecked.check(&os_py, &open("usr/lib/py/os.py")));

    // An edit in place outside the working directory: the directory does
    // not change, so the snapshot is used, and the open-time check says so.
    std::fs::write(f.root.join("usr/lib/py/os.py"), b"import abc\n").unwrap();
    let third = resolve(&m, &defer).unwrap();
    assert_eq!(third.manifest.encode(), first.manifest.encode());
    assert!(!third.unchecked.check(&os_py, &open("usr/lib/py/os.py")));
    // ... which dropped the snapshot: the next start hashes the new file.
    let fourth = resolve(&m, &defer).unwrap();
    assert!(fourth.stats.bytes_hashed > 0);
    assert_ne!(fourth.manifest.encode(), first.manifest.encode());
    // Without deferral the edit is seen at once.
    std::thread::sleep(Duration::from_millis(1100));
    resolve(&m, &defer).unwrap(); // snapshot of the current files
    std::fs::write(f.root.join("usr/lib/py/os.py"), b"import xyz\n").unwrap();
    let full = resolve(&m, &f.opts()).unwrap();
    assert!(full.stats.bytes_hashed > 0);

    // An edit in the working directory is caught before the start.
    std::thread::sleep(Duration::from_millis(1100));
    let before = resolve(&m, &defer).unwrap();
    resolve(&m, &defer).unwrap();
    std::fs::write(f.root.join("app/main.py"), b"print('hj')\n").unwrap();
    let after = resolve(&m, &defer).unwrap();
    assert!(after.stats.bytes_hashed > 0);
    assert_ne!(after.manifest.encode(), before.manifest.encode());
}

/// A manifest that starts the program in `/` (the default) does not make
/// every file a working-directory file checked at each start: the system's
/// own files (/usr, /lib, /bin, /sbin) are deferred, the others (the
/// application's, /etc) still checked up front.
#[test]
fn a_start_in_the_root_defers_only_the_system_files() {
    let f = fixture();
    let m = f.manifest(&["usr", "lib", "app"]);
    assert_eq!(m.start_dir, "/");
    let defer = ResolveOptions {
        defer_checks: true,
        ..f.opts()
    };
    let first = resolve(&m, &defer).unwrap();
    let second = resolve(&m, &defer).unwrap();
    assert_eq!(second.stats.bytes_hashed, 0);
    assert_eq!(second.manifest.encode(), first.manifest.encode());
    // python3.11, libc.so.6 and os.py; not main.py, nor hostname (in /etc,
    // through usr/bin/escape).
    assert_eq!(second.unchecked.len(), 3);
    // An edit in place of the application's file is seen at once.
    std::fs::write(f.root.join("app/main.py"), b"print('edited')\n").unwrap();
    let third = resolve(&m, &defer).unwrap();
    assert!(third.stats.bytes_hashed > 0);
    assert_ne!(third.manifest.encode(), first.manifest.encode());
}

/// A directory the resolution only passed through (on the way to a
/// trusted path below it) may gain and lose files without making the
/// snapshot stale, as a home directory does all day; one it listed may not.
#[test]
fn files_added_beside_a_trusted_path_keep_the_snapshot() {
    let f = fixture();
    let m = f.manifest(&["usr/bin/python3.11", "app"]);
    let defer = ResolveOptions {
        defer_checks: true,
        ..f.opts()
    };
    // A resolution from a snapshot defers its files (none is in the cwd).
    let from_snapshot = |r: &Resolution| !r.unchecked.is_empty();
    assert!(!from_snapshot(&resolve(&m, &defer).unwrap()));
    assert!(from_snapshot(&resolve(&m, &defer).unwrap()));
    std::fs::write(f.root.join("usr/bin/other"), b"x").unwrap();
    std::fs::remove_file(f.root.join("usr/bin/escape")).unwrap();
    assert!(
        from_snapshot(&resolve(&m, &defer).unwrap()),
        "files added and removed beside a trusted file made the snapshot stale"
    );
    std::fs::write(f.root.join("app/new.py"), b"print('new')\n").unwrap();
    let r = resolve(&m, &defer).unwrap();
    assert!(
        !from_snapshot(&r),
        "a file added to a trusted directory was missed"
    );
    assert!(r
        .manifest
        .trusted_files
        .iter()
        .any(|t| t.path == "/app/new.py"));
}

/// A damaged snapshot (torn, emptied, garbage, a flipped bit) is not used:
/// the resolution is the same as without one, and a good one replaces it.
#[test]
fn damaged_snapshots_are_ignored() {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100)); // old enough to snapshot
    let m = f.manifest(&["usr", "lib", "app"]);
    let defer = ResolveOptions {
        defer_checks: true,
        ..f.opts()
    };
    let want = resolve(&m, &defer).unwrap().manifest.encode();
    let dir = f.cache.join("snapshots");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 3] ^= 0x10;
    let damages = [
        Vec::new(),
        b"CONFSNP2".to_vec(),
        good[..good.len() / 2].to_vec(),
        b"not a snapshot at all, just some bytes".to_vec(),
        flipped,
    ];
    for bad in damages {
        std::fs::write(&file, &bad).unwrap();
        let r = resolve(&m, &defer).unwrap();
        assert_eq!(r.manifest.encode(), want, "with {} bytes", bad.len());
        assert!(r.unchecked.is_empty(), "a damaged snapshot was used");
        assert_eq!(std::fs::read(&file).unwrap(), good, "not rewritten");
    }
}

/// Zero-config puts the shell's environment and the command's arguments in
/// the manifest: a new environment or argument must still use the snapshot,
/// and give what a full resolution gives.
#[test]
fn snapshots_serve_other_environments_and_arguments() {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100)); // old enough to snapshot
    let with = |var: &str, arg: &str| {
        let mut m = f.manifest(&["usr", "lib", "app"]);
        m.env
            .insert("V".into(), conf_manifest::EnvValue::Value(var.into()));
        m.argv = vec!["main".into(), arg.into()];
        m
    };
    resolve(&with("1", "a"), &f.opts()).unwrap();
    let b = resolve(&with("2", "b"), &f.opts()).unwrap();
    let snapshots = std::fs::read_dir(f.cache.join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(
        snapshots, 1,
        "a second snapshot was made for a new environment"
    );
    assert_eq!(b.manifest.argv, ["main", "b"]);
    let fresh = tempfile::tempdir().unwrap();
    let opts = ResolveOptions {
        cache_dir: Some(fresh.path().to_path_buf()),
        ..f.opts()
    };
    let full = resolve(&with("2", "b"), &opts).unwrap();
    assert_eq!(b.manifest.encode(), full.manifest.encode());
}

/// Every working directory a program starts in makes a snapshot of its
/// own: they must not pile up, and the one in use must stay.
#[test]
fn snapshots_are_bounded_and_the_one_in_use_stays() {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100)); // old enough to snapshot
    let in_dir = |d: usize| Manifest {
        start_dir: format!("/dir{d}"),
        ..f.manifest(&["usr", "lib"])
    };
    let snapshots = || {
        std::fs::read_dir(f.cache.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>()
    };
    for d in 1..64 {
        resolve(&in_dir(d), &f.opts()).unwrap();
    }
    let before = snapshots();
    resolve(&in_dir(0), &f.opts()).unwrap();
    let first: Vec<_> = snapshots()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(first.len(), 1);
    // The oldest of all, then used again: it must outlive those made since.
    let old = std::time::SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&first[0])
        .unwrap()
        .set_modified(old)
        .unwrap();
    resolve(&in_dir(0), &f.opts()).unwrap();
    for d in 64..70 {
        resolve(&in_dir(d), &f.opts()).unwrap();
    }
    let now = snapshots();
    assert!(now.len() <= 64, "{} snapshots kept", now.len());
    assert!(now.len() >= 60, "only {} snapshots kept", now.len());
    assert!(now.contains(&first[0]), "the snapshot in use was removed");
}

#[test]
fn mount_points_need_no_host_directory() {
    // A chroot mount over a tmpfs (what zero-config does for a project in
    // /tmp), and one whose parent directories the root does not have: the
    // LibOS walks to them without asking the host, and so does resolution.
    let f = fixture();
    let data = f.h("srv/data");
    let mut m = f.manifest(&["usr/bin/python3", "srv/data"]);
    m.mounts.push(tmpfs("/tmp"));
    m.mounts.push(chroot("/tmp/project", &data));
    m.mounts.push(chroot("/no/such/dir", &f.h("app")));
    m.trusted_files.push(TrustedEntry::new(f.h("app/main.py")));
    let r = resolve(&m, &f.opts()).unwrap();
    assert_eq!(
        paths(&r),
        [
            "/no/such/dir/main.py",
            "/tmp/project/d.txt",
            "/usr/bin/python3.11"
        ]
    );
}
