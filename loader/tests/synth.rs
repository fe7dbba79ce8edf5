//! Zero-config synthesis (`conf_loader::synth`) on the programs of this
//! machine: the manifests it writes must name what the programs load, and
//! must resolve.

// loader/clippy.toml's disallowed methods are for synthesis's own code.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use conf_loader::exit::ExitCode;
use conf_loader::synth::{synthesize, Runtime, SynthError, SynthOptions, Synthesized};
use conf_manifest::{EnvValue, Progress, ResolveOptions};

/// A working directory and a cache directory, both temporary.
struct Env {
    _root: tempfile::TempDir,
    cwd: PathBuf,
    cache: PathBuf,
}

fn env() -> Env {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path().join("project");
    let cache = root.path().join("cache");
    std::fs::create_dir(&cwd).unwrap();
    Env {
        cwd,
        cache,
        _root: root,
    }
}

impl Env {
    fn opts(&self) -> SynthOptions {
        let mut o = SynthOptions::new(&self.cwd);
        o.path_env = Some("/usr/local/bin:/usr/bin:/bin".into());
        o.env = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), "/root".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        o.cache_dir = Some(self.cache.clone());
        o
    }
}

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn real(p: &str) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Whether `path` is trusted by the manifest: named, or below a trusted
/// directory.
fn covered(s: &Synthesized, path: &str) -> bool {
    s.manifest
        .trusted_files
        .iter()
        .any(|t| t.path == path || path.starts_with(&format!("{}/", t.path.trim_end_matches('/'))))
}

/// The real paths of the trusted files after resolution.
fn resolve(s: &Synthesized, cache: &Path) -> conf_manifest::Resolution {
    let r = conf_manifest::resolve(
        &s.manifest,
        &ResolveOptions {
            progress: Progress::Never,
            cache_dir: Some(cache.join("digests")),
            threads: 0,
            defer_checks: false,
        },
    )
    .unwrap_or_else(|e| panic!("the synthesized manifest resolves: {e}"));
    assert!(
        !r.stats
            .warnings
            .iter()
            .any(|w| w.contains("not a trusted file")),
        "{:?}",
        r.stats.warnings
    );
    // The TOML form reads back as the same manifest.
    let back = conf_manifest::parse_str(&s.manifest.to_toml(), "synth", &BTreeMap::new())
        .expect("to_toml parses");
    assert_eq!(back.trusted_files, s.manifest.trusted_files);
    assert_eq!(back.argv, s.manifest.argv);
    assert_eq!(back.env, s.manifest.env);
    r
}

fn resolved_has(r: &conf_manifest::Resolution, real_path: &str) -> bool {
    r.manifest.trusted_files.iter().any(|f| f.path == real_path)
}

/// The libraries `ldd` says a program loads (paths as ldd prints them).
fn ldd(program: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(program).output().expect("ldd runs");
    assert!(out.status.success(), "ldd {program}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.trim(),
                None => l,
            };
            let path = path.split(" (").next().unwrap().trim();
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

#[test]
fn ls_closure_is_what_ldd_says() {
    let e = env();
    let s = synthesize(&args(&["/bin/ls", "-l"]), &e.opts()).unwrap();
    assert_eq!(s.runtime, Runtime::Native);
    assert_eq!(s.manifest.entrypoint, "/bin/ls");
    assert_eq!(s.manifest.argv, ["/bin/ls", "-l"]);
    assert!(!s.manifest.use_cmdline_argv);
    assert_eq!(s.manifest.start_dir, e.cwd.to_str().unwrap());
    assert!(s
        .manifest
        .mounts
        .iter()
        .any(|m| m.path == "/tmp" && m.kind == conf_manifest::MountKind::Tmpfs));
    assert_eq!(s.manifest.enclave_size, Runtime::Native.enclave_size());
    assert_eq!(s.manifest.max_threads, Runtime::Native.max_threads());

    let libs = ldd("/bin/ls");
    for want in [
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libselinux.so.1",
        "libpcre2-8.so.0",
    ] {
        assert!(
            libs.iter().any(|l| l.ends_with(want)),
            "ldd /bin/ls names {want}: {libs:?}"
        );
    }
    let trusted_real: Vec<String> = s
        .manifest
        .trusted_files
        .iter()
        .filter(|t| Path::new(&t.path).is_file())
        .map(|t| real(&t.path))
        .collect();
    for lib in &libs {
        assert!(
            trusted_real.contains(&real(lib)),
            "{lib} (from ldd) is trusted; trusted: {:?}",
            s.manifest.trusted_files
        );
    }
    assert!(covered(&s, "/bin/ls"));
    assert!(covered(&s, "/etc/ld.so.cache"));

    let r = resolve(&s, &e.cache);
    for lib in &libs {
        assert!(resolved_has(&r, &real(lib)), "{lib} resolved");
    }
    assert!(resolved_has(&r, &real("/bin/ls")));
}

#[test]
fn python_tree_and_probe_cache() {
    let python = "/usr/bin/python3";
    if !Path::new(python).exists() {
        eprintln!("skipped: no {python}");
        return;
    }
    let e = env();
    std::fs::write(e.cwd.join("app.py"), "print('hi')\n").unwrap();
    let s = synthesize(&args(&[python, "-u", "app.py"]), &e.opts()).unwrap();
    assert_eq!(s.runtime, Runtime::Python);
    assert_eq!(s.manifest.argv, [python, "-u", "app.py"]);
    assert_eq!(s.manifest.enclave_size, Runtime::Python.enclave_size());
    assert!(
        s.notes.iter().any(|n| n.contains("asked")),
        "the first synthesis asks python: {:?}",
        s.notes
    );

    // What python itself says.
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig, ssl, _ssl; print(sysconfig.get_paths()['stdlib']); print(_ssl.__file__)",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let stdlib = lines.next().unwrap().to_string();
    let ssl_module = lines.next().unwrap().to_string();
    assert!(covered(&s, &stdlib), "{stdlib} trusted");
    assert!(covered(&s, &format!("{stdlib}/os.py")));
    assert!(
        covered(&s, &ssl_module),
        "{ssl_module} (lib-dynload) trusted"
    );
    assert!(covered(&s, e.cwd.join("app.py").to_str().unwrap()));
    // The extension module's closure: libssl, libcrypto.
    let ssl_libs = ldd(&ssl_module);
    let trusted_real: Vec<String> = s
        .manifest
        .trusted_files
        .iter()
        .filter(|t| Path::new(&t.path).is_file())
        .map(|t| real(&t.path))
        .collect();
    for lib in ssl_libs
        .iter()
        .filter(|l| l.contains("libssl") || l.contains("libcrypto"))
    {
        assert!(trusted_real.contains(&real(lib)), "{lib} trusted");
    }
    assert!(
        ssl_libs.iter().any(|l| l.contains("libssl")),
        "ldd finds libssl: {ssl_libs:?}"
    );

    // Second start: from the cache, same manifest.
    let again = synthesize(&args(&[python, "-u", "app.py"]), &e.opts()).unwrap();
    assert!(
        !again.notes.iter().any(|n| n.contains("asked")),
        "the second synthesis uses the cache: {:?}",
        again.notes
    );
    assert_eq!(again.manifest, s.manifest);
    let records: Vec<_> = std::fs::read_dir(e.cache.join("synth-v1"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().into_string().unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r.starts_with("python-")),
        "{records:?}"
    );

    // A changed environment that affects python's paths asks again.
    let mut o = e.opts();
    o.env.push(("PYTHONPATH".into(), "/nonexistent".into()));
    let third = synthesize(&args(&[python, "-c", "pass"]), &o).unwrap();
    assert!(third.notes.iter().any(|n| n.contains("asked")));
    // Each environment keeps its own answer: going back asks nothing.
    let fourth = synthesize(&args(&[python, "-u", "app.py"]), &e.opts()).unwrap();
    assert!(
        !fourth.notes.iter().any(|n| n.contains("asked")),
        "{:?}",
        fourth.notes
    );
    let fifth = synthesize(&args(&[python, "-c", "pass"]), &o).unwrap();
    assert!(!fifth.notes.iter().any(|n| n.contains("asked")));

    let r = resolve(&s, &e.cache);
    assert!(resolved_has(&r, &real(&ssl_module)));
    assert!(resolved_has(
        &r,
        &real(e.cwd.join("app.py").to_str().unwrap())
    ));
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn shell_script_trusts_script_and_interpreter() {
    let e = env();
    let path = script(&e.cwd, "run.sh", "#!/bin/sh\necho hi\n");
    let s = synthesize(&args(&["./run.sh", "a"]), &e.opts()).unwrap();
    assert_eq!(s.manifest.entrypoint, path.to_str().unwrap());
    assert_eq!(s.manifest.argv, ["./run.sh", "a"]);
    assert!(covered(&s, path.to_str().unwrap()));
    assert!(covered(&s, "/bin/sh"));
    let libc = ldd("/bin/sh")
        .into_iter()
        .find(|l| l.ends_with("libc.so.6"))
        .unwrap();
    assert!(covered(&s, &libc), "{libc}");
    // A temporary directory under /tmp stays visible over the tmpfs.
    if path.starts_with("/tmp/") {
        let top = path.iter().take(3).collect::<PathBuf>();
        assert!(
            s.manifest
                .mounts
                .iter()
                .any(|m| Path::new(&m.path) == top && Path::new(&m.uri) == top),
            "{:?}",
            s.manifest.mounts
        );
    }
    let r = resolve(&s, &e.cache);
    assert!(resolved_has(&r, &real("/bin/sh")));
    assert!(r
        .manifest
        .trusted_symlinks
        .iter()
        .any(|l| l.path == "/bin/sh" || l.path == "/bin"));
}

#[test]
fn script_chains_and_env() {
    let e = env();
    // inner.sh is run by /bin/sh; outer runs inner.sh; viaenv uses env.
    let inner = script(&e.cwd, "inner.sh", "#!/bin/sh\necho\n");
    let outer = script(&e.cwd, "outer", &format!("#!{}\n", inner.to_str().unwrap()));
    let s = synthesize(&args(&[outer.to_str().unwrap()]), &e.opts()).unwrap();
    assert!(covered(&s, inner.to_str().unwrap()));
    assert!(covered(&s, "/bin/sh"));

    script(&e.cwd, "viaenv", "#!/usr/bin/env sh\necho\n");
    let s = synthesize(&args(&["./viaenv"]), &e.opts()).unwrap();
    assert!(covered(&s, "/usr/bin/env"));
    assert!(
        covered(&s, "/usr/local/bin/sh") || covered(&s, "/usr/bin/sh") || covered(&s, "/bin/sh"),
        "{:?}",
        s.manifest.trusted_files
    );

    // Five scripts in a row: one too many.
    let mut prev = "/bin/sh".to_string();
    for i in 0..5 {
        prev = script(&e.cwd, &format!("s{i}"), &format!("#!{prev}\n"))
            .to_str()
            .unwrap()
            .to_string();
    }
    let err = synthesize(&args(&[&prev]), &e.opts()).unwrap_err();
    assert!(matches!(err, SynthError::ShebangTooDeep { .. }), "{err}");
    assert!(err.to_string().contains("more than 4 deep"), "{err}");

    // A #! interpreter that does not exist.
    script(&e.cwd, "broken", "#!/no/such/interpreter\n");
    let err = synthesize(&args(&["./broken"]), &e.opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/no/such/interpreter does not exist") && msg.contains("#! interpreter of"),
        "{msg}"
    );
}

#[test]
fn missing_command_is_a_clear_error() {
    let e = env();
    let err = synthesize(&args(&["no-such-command-xyz", "x"]), &e.opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no-such-command-xyz was not found on PATH (/usr/local/bin:/usr/bin:/bin); give a path \
         (e.g. ./no-such-command-xyz) or use --manifest"
    );
    assert_eq!(err.exit_code(), ExitCode::NotFound);

    let err = synthesize(&args(&["./nothing-here"]), &e.opts()).unwrap_err();
    assert!(
        err.to_string().contains("nothing-here does not exist"),
        "{err}"
    );

    let data = e.cwd.join("data.txt");
    std::fs::write(&data, "x").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = synthesize(&args(&["./data.txt"]), &e.opts()).unwrap_err();
    assert!(
        err.to_string()
            .contains("neither an ELF program nor a script"),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::CannotRun);

    assert!(matches!(
        synthesize(&[], &e.opts()),
        Err(SynthError::NoCommand)
    ));
}

#[test]
fn ld_variables_are_dropped() {
    let e = env();
    let mut o = e.opts();
    o.env.push(("LD_PRELOAD".into(), "/tmp/evil.so".into()));
    o.env.push(("LD_LIBRARY_PATH".into(), "/tmp".into()));
    o.env.push(("GREETING".into(), "hello".into()));
    let s = synthesize(&args(&["/bin/true"]), &o).unwrap();
    assert!(!s.manifest.env.keys().any(|k| k.starts_with("LD_")));
    assert_eq!(
        s.manifest.env.get("GREETING"),
        Some(&EnvValue::Value("hello".into()))
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("LD_LIBRARY_PATH, LD_PRELOAD")),
        "{:?}",
        s.notes
    );
}

#[test]
fn allow_and_trust() {
    let e = env();
    let mut o = e.opts();
    o.allow = vec![PathBuf::from("no-such-dir")];
    let err = synthesize(&args(&["/bin/true"]), &o).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("--allow no-such-dir: ")
            && msg.contains(e.cwd.join("no-such-dir").to_str().unwrap())
            && msg.contains("create it first"),
        "{msg}"
    );

    let mut o = e.opts();
    o.trust = vec![PathBuf::from("/no/such/file")];
    let err = synthesize(&args(&["/bin/true"]), &o).unwrap_err();
    assert!(err.to_string().contains("--trust /no/such/file"), "{err}");

    // An allowed directory inside the project is passed through, not
    // trusted; .git is left out; the rest of the project is trusted.
    std::fs::create_dir_all(e.cwd.join("out")).unwrap();
    std::fs::create_dir_all(e.cwd.join(".git/objects")).unwrap();
    std::fs::create_dir_all(e.cwd.join("src")).unwrap();
    std::fs::write(e.cwd.join("src/main.py"), "").unwrap();
    let extra = tempfile::NamedTempFile::new().unwrap();
    let mut o = e.opts();
    o.allow = vec![PathBuf::from("out")];
    o.trust = vec![extra.path().to_path_buf()];
    let s = synthesize(&args(&["/bin/true"]), &o).unwrap();
    let out = e.cwd.join("out");
    let shm = std::path::Path::new("/dev/shm").is_dir();
    let mut want = vec![out.to_str().unwrap()];
    if shm {
        // POSIX semaphores and shared memory, shared with other processes.
        want.insert(0, "/dev/shm");
    }
    assert_eq!(s.manifest.allowed_files, want);
    assert!(!covered(&s, out.to_str().unwrap()));
    assert!(!covered(&s, e.cwd.join(".git").to_str().unwrap()));
    assert!(covered(&s, e.cwd.join("src/main.py").to_str().unwrap()));
    assert!(covered(&s, extra.path().to_str().unwrap()));
    resolve(&s, &e.cache);

    // conf's cache inside the project is not part of it.
    let inner = e.cwd.join(".conf-cache");
    let mut o = e.opts();
    o.cache_dir = Some(inner.clone());
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("hashes-v1.bin"), "x").unwrap();
    let s = synthesize(&args(&["/bin/true"]), &o).unwrap();
    assert!(!covered(&s, inner.to_str().unwrap()));
    assert!(covered(&s, e.cwd.join("src/main.py").to_str().unwrap()));
}

#[test]
fn huge_working_directory_is_refused() {
    let e = env();
    let big = e.cwd.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..=conf_loader::synth::CWD_MAX_FILES {
        std::fs::File::create(big.join(format!("f{i}"))).unwrap();
    }
    let err = synthesize(&args(&["/bin/true"]), &e.opts()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SynthError::CwdTooLarge { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "has more than {} files",
            conf_loader::synth::CWD_MAX_FILES
        )) && msg.contains("cd to your project's directory")
            && msg.contains("--manifest"),
        "{msg}"
    );
}

#[test]
fn missing_library_is_a_clear_error() {
    let e = env();
    // /bin/true with its DT_NEEDED libc.so.6 renamed to libq.so.6.
    let mut bytes = std::fs::read(real("/bin/true")).unwrap();
    let (from, to) = (b"libc.so.6\0", b"libq.so.6\0");
    let mut n = 0;
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
    }
    assert!(n > 0);
    let prog = e.cwd.join("prog");
    std::fs::write(&prog, bytes).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = synthesize(&args(&["./prog"]), &e.opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "libq.so.6, needed by {}, was not found (searched ",
            prog.display()
        )) && msg.contains("/etc/ld.so.cache")
            && msg.contains("LD_LIBRARY_PATH"),
        "{msg}"
    );
}

#[test]
fn java_home_is_trusted() {
    let Ok(java) = which("java") else {
        eprintln!("skipped: no java on PATH");
        return;
    };
    let e = env();
    let s = synthesize(&args(&["java", "-jar", "app.jar"]), &e.opts()).unwrap();
    assert_eq!(s.runtime, Runtime::Java);
    assert_eq!(s.manifest.enclave_size, 8 << 30);
    assert_eq!(s.manifest.max_threads, 64);
    // JAVA_HOME: the directory above bin/java, after resolving links.
    let home = Path::new(&real(&java))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(covered(&s, &home), "{home}");
    // libjli.so is found through DT_RUNPATH $ORIGIN/../lib; the synthesis
    // would have failed otherwise. Everything ldd lists is trusted.
    for lib in ldd(&real(&java)) {
        let r = real(&lib);
        assert!(
            s.manifest
                .trusted_files
                .iter()
                .filter(|t| Path::new(&t.path).is_file())
                .any(|t| real(&t.path) == r)
                || covered(&s, &r),
            "{lib}"
        );
    }
    // Debian links JAVA_HOME/conf files into /etc/java-NN-openjdk.
    let conf = Path::new(&home).join("conf/security/java.security");
    if let Ok(target) = std::fs::read_link(&conf) {
        let target = target.to_str().unwrap().to_string();
        if let Some(rest) = target.strip_prefix("/etc/") {
            let top = format!("/etc/{}", rest.split('/').next().unwrap());
            assert!(covered(&s, &top), "{top}");
        }
    }
}

#[test]
fn node_script_is_trusted() {
    if which("node").is_err() {
        eprintln!("skipped: no node on PATH");
        return;
    }
    let e = env();
    let elsewhere = tempfile::tempdir().unwrap();
    let app = elsewhere.path().join("app.js");
    std::fs::write(&app, "console.log(1)\n").unwrap();
    let s = synthesize(
        &args(&["node", "--inspect", app.to_str().unwrap()]),
        &e.opts(),
    )
    .unwrap();
    assert_eq!(s.runtime, Runtime::Node);
    assert_eq!(s.manifest.max_threads, 32);
    assert!(covered(&s, app.to_str().unwrap()));
}

/// Where the test's PATH finds `name`.
fn which(name: &str) -> Result<String, ()> {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return Ok(p);
        }
    }
    Err(())
}

/// A manifest synthesized once is reused for the same command line and
/// options while nothing synthesis looked at changes; each kind of change
/// (a program appearing earlier on PATH, a program replaced, a link
/// retargeted, a script's interpreter changed, a file added to the working
/// directory, another environment) makes it synthesize afresh, and the new
/// manifest reflects the change.
#[test]
fn a_manifest_is_reused_until_what_it_was_made_from_changes() {
    let (Ok(t), Ok(py)) = (which("true"), which("python3")) else {
        eprintln!("skipped: needs true and python3 on PATH");
        return;
    };
    let e = env();
    let bins = tempfile::tempdir().unwrap();
    let early = bins.path().join("early");
    let late = bins.path().join("late");
    std::fs::create_dir_all(&early).unwrap();
    std::fs::create_dir_all(&late).unwrap();
    std::fs::copy(&t, late.join("tool")).unwrap();
    let mut opts = e.opts();
    let path = format!("{}:{}", early.display(), late.display());
    opts.path_env = Some(path.clone().into());
    opts.env = vec![("PATH".into(), path.into())];
    let argv = args(&["tool"]);
    let synth = |opts: &SynthOptions| synthesize(&argv, opts).unwrap();

    let first = synth(&opts);
    assert!(!first.replayed);
    let again = synth(&opts);
    assert!(again.replayed, "nothing changed, yet synthesized afresh");
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(again.runtime, first.runtime);
    assert_eq!(again.notes, first.notes);

    // A program of that name appears earlier on PATH.
    std::fs::copy(&t, early.join("tool")).unwrap();
    let s = synth(&opts);
    assert!(!s.replayed, "a new program on PATH went unnoticed");
    assert!(s.manifest.entrypoint.starts_with(early.to_str().unwrap()));
    assert!(synth(&opts).replayed);

    // It becomes a link to a Python script: the script's interpreter and
    // Python's library must now be trusted.
    let script = bins.path().join("app.py");
    std::fs::write(&script, "#!/usr/bin/python3\nprint(1)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(early.join("tool")).unwrap();
    std::os::unix::fs::symlink(&script, early.join("tool")).unwrap();
    let s = synth(&opts);
    assert!(!s.replayed, "a program replaced by a link went unnoticed");
    assert_eq!(s.runtime, Runtime::Python);
    assert!(synth(&opts).replayed);

    // The link is retargeted to the native program.
    std::fs::remove_file(early.join("tool")).unwrap();
    std::os::unix::fs::symlink(late.join("tool"), early.join("tool")).unwrap();
    let s = synth(&opts);
    assert!(!s.replayed, "a retargeted link went unnoticed");
    assert_eq!(s.runtime, Runtime::Native);

    // The script's interpreter changes in place (same file, edited).
    std::fs::remove_file(early.join("tool")).unwrap();
    std::os::unix::fs::symlink(&script, early.join("tool")).unwrap();
    assert_eq!(synth(&opts).runtime, Runtime::Python);
    std::fs::write(&script, format!("#!{t}\n")).unwrap();
    let s = synth(&opts);
    assert!(!s.replayed, "an edited script went unnoticed");
    assert_eq!(s.runtime, Runtime::Native);
    assert!(!covered(&s, &real(&py)));

    // A file added to the working directory.
    assert!(synth(&opts).replayed);
    std::fs::write(e.cwd.join("data.txt"), "new").unwrap();
    assert!(
        !synth(&opts).replayed,
        "a new file in the working directory"
    );

    // A variable synthesis does not read is only copied into the
    // manifest: the record serves, with this start's value.
    let mut other = opts.clone();
    other.env.push(("GREETING".into(), "hi".into()));
    other.env.push(("API_TOKEN".into(), "s3cret-value".into()));
    let s = synth(&other);
    assert!(s.replayed, "an unread variable made it synthesize afresh");
    assert_eq!(
        s.manifest.env.get("GREETING"),
        Some(&EnvValue::Value("hi".into()))
    );
    // Nor are such values written to the cache.
    let mut fresh = other.clone();
    fresh.reuse = false;
    assert!(!synth(&fresh).replayed);
    for f in std::fs::read_dir(e.cache.join("synth-v1"))
        .unwrap()
        .flatten()
    {
        let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
        assert!(
            !text.contains("s3cret-value"),
            "{:?} holds a secret",
            f.path()
        );
    }
    let plain = synth(&opts);
    assert!(plain.replayed);
    assert_eq!(plain.manifest.env.get("GREETING"), None);
    // One it reads (the locale: which locale files to trust) is another
    // question: synthesized afresh; the first one's record still serves.
    let mut other = opts.clone();
    other.env.push(("LANG".into(), "C.UTF-8".into()));
    let s = synth(&other);
    assert!(!s.replayed, "a variable synthesis reads changed unnoticed");
    assert!(synth(&other).replayed);
    assert!(synth(&opts).replayed);

    // Reuse turned off.
    opts.reuse = false;
    assert!(!synth(&opts).replayed);
}

/// A record that is damaged, or was written for another command, is not
/// used: synthesis runs afresh and writes it again.
#[test]
fn a_damaged_record_is_not_used() {
    let Ok(t) = which("true") else {
        eprintln!("skipped: no true on PATH");
        return;
    };
    let e = env();
    let argv = args(&[t.as_str()]);
    let first = synthesize(&argv, &e.opts()).unwrap();
    let records: Vec<PathBuf> = std::fs::read_dir(e.cache.join("synth-v1"))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.to_str().unwrap().contains("/manifest-"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    let good = std::fs::read(record).unwrap();
    for damaged in [
        &good[..good.len() / 2],
        b"{}".as_slice(),
        b"\xff\xfe not json".as_slice(),
    ] {
        std::fs::write(record, damaged).unwrap();
        let s = synthesize(&argv, &e.opts()).unwrap();
        assert!(!s.replayed);
        assert_eq!(s.manifest, first.manifest);
        assert!(synthesize(&argv, &e.opts()).unwrap().replayed);
    }
    // A record whose key is another command's: the same file name, but the
    // key inside does not match.
    let other = String::from_utf8(good.clone())
        .unwrap()
        .replacen(&t, "/bin/other-program", 1);
    std::fs::write(record, other).unwrap();
    assert!(!synthesize(&argv, &e.opts()).unwrap().replayed);
}

/// CPython's zero-config manifest is reused as it was made (its record
/// keeps every setting synthesis makes), and the notes of the start that
/// asked the interpreter are not repeated.
#[test]
fn cpython_manifest_is_reused() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    let e = env();
    let argv = args(&["/usr/bin/python3", "-c", "pass"]);
    let first = synthesize(&argv, &e.opts()).unwrap();
    assert!(first
        .notes
        .iter()
        .any(|n| n.contains("where its modules are")));
    let again = synthesize(&argv, &e.opts()).unwrap();
    assert!(again.replayed);
    assert_eq!(again.manifest, first.manifest);
    assert!(!again
        .notes
        .iter()
        .any(|n| n.contains("where its modules are")));
}

/// `python3 -S` does not put the site directories on sys.path: its
/// manifest trusts the standard library and lib-dynload, but neither the
/// site directories nor the libraries only their extension modules need.
#[test]
fn python_without_site_trusts_no_site_directory() {
    let python = "/usr/bin/python3";
    if !Path::new(python).exists() {
        eprintln!("skipped: no {python}");
        return;
    }
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, os, sysconfig; print(sysconfig.get_paths()['stdlib']); [print(p) for p in sys.path if p.endswith('-packages') and os.path.isdir(p)]",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let stdlib = lines.next().unwrap().to_string();
    let site_dirs: Vec<&str> = lines.collect();
    let e = env();
    let with = synthesize(&args(&[python, "-c", "pass"]), &e.opts()).unwrap();
    let without = synthesize(&args(&[python, "-X", "dev", "-S", "-c", "pass"]), &e.opts()).unwrap();
    for s in [&with, &without] {
        assert!(covered(s, &format!("{stdlib}/os.py")));
    }
    for d in &site_dirs {
        assert!(covered(&with, d), "{d} trusted without -S");
        assert!(!covered(&without, d), "{d} trusted with -S");
    }
    assert!(without.manifest.trusted_files.len() <= with.manifest.trusted_files.len());
}

/// A program that loads OpenSSL gets the system's CA bundle and the file
/// SSL_CERT_FILE names, not the hashed CA directory.
#[test]
fn openssl_gets_the_ca_bundle_not_the_hashed_directory() {
    let python = "/usr/bin/python3";
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    if !Path::new(python).exists() || !Path::new(bundle).is_file() {
        eprintln!("skipped: needs {python} and {bundle}");
        return;
    }
    let e = env();
    let own = e.cwd.parent().unwrap().join("own-ca.pem");
    std::fs::write(&own, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let mut opts = e.opts();
    opts.env
        .push(("SSL_CERT_FILE".into(), own.clone().into_os_string()));
    let s = synthesize(&args(&[python, "-c", "pass"]), &opts).unwrap();
    assert!(covered(&s, bundle));
    assert!(covered(&s, own.to_str().unwrap()));
    let hashed = std::fs::read_dir("/etc/ssl/certs")
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.extension().is_some_and(|x| x == "0"));
    if let Some(h) = hashed {
        assert!(!covered(&s, h.to_str().unwrap()), "{h:?} trusted");
    }
}
