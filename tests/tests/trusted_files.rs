//! Trusted files that change: between runs (conf resolves the manifest
//! again), against a signature made before the change (refused), and under
//! a running program (never shown to it).

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conf_e2e::{
    assert_exit, conf_tool, pattern, run_with_timeout, Manifest, Output, Sandbox, Variant,
    EXIT_SETUP, RUN_TIMEOUT,
};

/// A copy of /usr/bin/cat in the sandbox as the trusted entrypoint, and a
/// trusted data file.
fn cat_copy(sb: &Sandbox) -> (PathBuf, PathBuf, Manifest) {
    let cat = sb.path("bin/mycat");
    std::fs::copy("/usr/bin/cat", &cat).unwrap();
    let data = sb.write("trusted/data.txt", "version 1\n");
    let mut m = Manifest::for_program(&cat);
    m.trust(&data);
    (cat, data, m)
}

fn run_cat(sb: &Sandbox, manifest: &Path, flags: &[&str], cat: &Path, data: &Path) -> Output {
    sb.conf_run(
        manifest,
        flags,
        &[cat.to_str().unwrap(), data.to_str().unwrap()],
    )
}

#[test]
fn changed_trusted_file_is_resolved_again() {
    let sb = Sandbox::new();
    let (cat, data, m) = cat_copy(&sb);
    let mpath = sb.manifest("m", &m);
    let out = run_cat(&sb, &mpath, &[], &cat, &data);
    assert_exit(&out, 0, "first run");
    assert_eq!(out.stdout_str(), "version 1\n");

    // A different size.
    std::fs::write(&data, "version 2 is longer\n").unwrap();
    let out = run_cat(&sb, &mpath, &[], &cat, &data);
    assert_exit(&out, 0, "after changing the size");
    assert_eq!(
        out.stdout_str(),
        "version 2 is longer\n",
        "{}",
        out.describe()
    );

    // The same size, at once (same mtime second; the digest cache must not
    // answer with the old digest).
    std::fs::write(&data, "version 3 is longer\n").unwrap();
    let out = run_cat(&sb, &mpath, &[], &cat, &data);
    assert_exit(&out, 0, "after changing the content, same size");
    assert_eq!(
        out.stdout_str(),
        "version 3 is longer\n",
        "{}",
        out.describe()
    );

    // The same size and the old mtime put back.
    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    std::fs::write(&data, "version 4 is longer\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = run_cat(&sb, &mpath, &[], &cat, &data);
    assert_exit(
        &out,
        0,
        "after changing the content with the mtime restored",
    );
    assert_eq!(
        out.stdout_str(),
        "version 4 is longer\n",
        "{}",
        out.describe()
    );
}

fn conf(sb: &Sandbox, args: &[&str]) -> Output {
    let mut c = Command::new(conf_tool());
    c.args(args)
        .env("CONF_CACHE_DIR", sb.path("cache"))
        .current_dir(sb.root());
    run_with_timeout(&mut c, Duration::from_secs(120))
}

/// A start may defer checking the system's own files (those under /usr: a
/// package manager replaces them, it does not edit them) to when the
/// program opens them; a run against a signature may not: a file edited in
/// place since signing must be refused by the MRENCLAVE check, before the
/// program runs, even one shown under /usr.
#[test]
fn a_signed_run_checks_even_the_files_a_start_may_defer() {
    let sb = Sandbox::new();
    let (cat, data, mut m) = cat_copy(&sb);
    let dir = data.parent().unwrap();
    m.mount(&format!(
        "{{ type = \"chroot\", path = \"/usr/share/conf-e2e\", uri = {} }}",
        conf_e2e::manifest::toml_str(&format!("file:{}", dir.display()))
    ));
    let mpath = sb.manifest("m", &m);
    let key = sb.path("k.pem");
    let sig = sb.path("s.sig");
    let (key_s, sig_s, m_s) = (
        key.to_str().unwrap(),
        sig.to_str().unwrap(),
        mpath.to_str().unwrap(),
    );
    assert_exit(&conf(&sb, &["keygen", "-o", key_s]), 0, "conf keygen");
    assert_exit(
        &conf(&sb, &["sign", m_s, "--key", key_s, "-o", sig_s]),
        0,
        "conf sign",
    );
    let shown = std::path::Path::new("/usr/share/conf-e2e/data.txt");
    // Twice, so that the second start comes from a snapshot.
    for _ in 0..2 {
        let out = run_cat(&sb, &mpath, &["--sig", sig_s], &cat, shown);
        assert_exit(&out, 0, "signed run");
        assert_eq!(out.stdout_str(), "version 1\n");
    }
    std::fs::write(&data, "version 2\n").unwrap();
    let out = run_cat(&sb, &mpath, &["--sig", sig_s], &cat, shown);
    assert_exit(
        &out,
        EXIT_SETUP,
        "signed run after a file under /usr changed",
    );
    assert!(
        out.stderr_str().contains("MRENCLAVE differs") && out.stdout.is_empty(),
        "{}",
        out.describe()
    );
}

#[test]
fn signature_made_before_a_change_is_refused() {
    let sb = Sandbox::new();
    let (cat, data, m) = cat_copy(&sb);
    let mpath = sb.manifest("m", &m);
    let key = sb.path("k.pem");
    let sig = sb.path("s.sig");
    let k = conf(&sb, &["keygen", "-o", key.to_str().unwrap()]);
    assert_exit(&k, 0, "conf keygen");
    let s = conf(
        &sb,
        &[
            "sign",
            mpath.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-o",
            sig.to_str().unwrap(),
        ],
    );
    assert_exit(&s, 0, "conf sign");

    // Unchanged: the signature matches (this also proves conf and conf-run
    // measure the same enclave).
    let out = run_cat(&sb, &mpath, &["--sig", sig.to_str().unwrap()], &cat, &data);
    assert_exit(
        &out,
        0,
        &format!(
            "run with a fresh signature (conf is {}, conf-run is {}; if they were built from different sources, rebuild both with `cargo build -p conf-loader -p conf-tools` in the same profile)",
            conf_tool().display(),
            conf_e2e::conf_run().display()
        ),
    );
    assert_eq!(out.stdout_str(), "version 1\n");

    // A trusted data file changes: refused before anything runs.
    std::fs::write(&data, "version 2\n").unwrap();
    let out = run_cat(&sb, &mpath, &["--sig", sig.to_str().unwrap()], &cat, &data);
    assert_exit(&out, EXIT_SETUP, "run after a trusted file changed");
    assert!(
        out.stderr_str().contains("MRENCLAVE differs"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.is_empty(),
        "the program ran:\n{}",
        out.describe()
    );
    // Without --sig the changed file is simply measured again.
    let out = run_cat(&sb, &mpath, &[], &cat, &data);
    assert_exit(&out, 0, "run without --sig");
    assert_eq!(out.stdout_str(), "version 2\n");

    // Back to the signed content: accepted again.
    std::fs::write(&data, "version 1\n").unwrap();
    let out = run_cat(&sb, &mpath, &["--sig", sig.to_str().unwrap()], &cat, &data);
    assert_exit(&out, 0, "run with the signed content restored");

    // The entrypoint itself changes (one byte appended).
    std::fs::OpenOptions::new()
        .append(true)
        .open(&cat)
        .unwrap()
        .write_all(b"\0")
        .unwrap();
    let out = run_cat(&sb, &mpath, &["--sig", sig.to_str().unwrap()], &cat, &data);
    assert_exit(&out, EXIT_SETUP, "run after the entrypoint changed");
    assert!(
        out.stderr_str().contains("MRENCLAVE differs"),
        "{}",
        out.describe()
    );

    // A signature file that is not one.
    let bogus = sb.write("bogus.sig", vec![0u8; 1808]);
    let out = run_cat(
        &sb,
        &mpath,
        &["--sig", bogus.to_str().unwrap()],
        &cat,
        &data,
    );
    assert_exit(&out, EXIT_SETUP, "run with a bogus signature");
    assert!(
        out.stderr_str().starts_with("[conf] error:") || out.stderr_str().contains("[conf] error:"),
        "{}",
        out.describe()
    );
}

/// The host changes a trusted file while the program has it open: reads of
/// the changed part must give the original bytes, fail, or stop the
/// enclave — never return the new bytes.
#[test]
fn trusted_file_changed_while_open() {
    const SIZE: usize = 4 << 20;
    const OFF: u64 = 40 * 65536;
    let sb = Sandbox::new();
    let bin = sb.compile("reread", Variant::Dynamic);
    let data = sb.write("trusted/data.bin", pattern(SIZE));
    let go = sb.data().join("go");
    let mut m = Manifest::for_program(&bin);
    m.trust(&data).allow(sb.data());
    let mpath = sb.manifest("m", &m);
    let mut cmd = sb.conf_run_cmd(
        &mpath,
        &[],
        &[
            bin.to_str().unwrap(),
            data.to_str().unwrap(),
            &SIZE.to_string(),
            go.to_str().unwrap(),
            &OFF.to_string(),
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut changed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => {
                if l == "ready" && !changed {
                    // Change the bytes at OFF in place, then let the program go on.
                    let mut f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
                    f.seek(SeekFrom::Start(OFF)).unwrap();
                    f.write_all(&vec![0xee; 65536]).unwrap();
                    f.sync_all().unwrap();
                    std::fs::write(&go, "").unwrap();
                    changed = true;
                }
                lines.push(l);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            panic!("timed out; output so far: {lines:?}");
        }
    }
    let status = child.wait().unwrap();
    out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let account = format!("status {status:?}\nstdout: {lines:#?}\nstderr:\n{err}");
    assert!(changed, "the program never said ready:\n{account}");
    assert!(lines.iter().any(|l| l == "before: original"), "{account}");
    assert!(
        !lines.iter().any(|l| l.contains("MODIFIED")),
        "the enclave read bytes the manifest does not vouch for:\n{account}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal().is_none(),
        "conf-run died of a signal:\n{account}"
    );
    // Outcomes allowed: the program read everything it asked for (pread
    // saw an error and the mapping kept the original bytes); the enclave
    // stopped (125/126); or the program died of SIGBUS touching a mapped
    // page that can no longer be loaded, as Linux gives for an I/O error
    // on a mapped file (conf-run exits 128 + 7 for it).
    const SIGBUS_EXIT: i32 = 128 + 7;
    if status.code() == Some(0) {
        assert!(lines.iter().any(|l| l == "done"), "{account}");
    } else {
        assert!(
            matches!(status.code(), Some(125) | Some(126) | Some(SIGBUS_EXIT)),
            "{account}"
        );
        assert!(err.contains("[conf] error"), "{account}");
    }
    if status.code() == Some(SIGBUS_EXIT) {
        assert!(
            lines.iter().any(|l| l.starts_with("pread: error")),
            "the mapping failed but pread of the same bytes did not:\n{account}"
        );
    }
    eprintln!("outcome: {account}");
}

/// Zero-config starts use a snapshot of the resolution without checking the
/// trusted files outside the working directory up front (an interpreter's
/// library is thousands of files). One edited in place (its directory
/// unchanged) is noticed when the program opens it: that run cannot read
/// it and conf-run says to run again; the next run measures the new file.
#[test]
fn a_library_file_edited_in_place_is_measured_again_on_the_next_start() {
    let sb = Sandbox::new();
    let work = sb.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let lib = sb.path("lib");
    let data = sb.write("lib/data.txt", "version 1\n");
    // The cache too: made later, it would change a directory the snapshot
    // records. Files changed within the last second are never snapshotted.
    std::fs::create_dir_all(sb.path("cache")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let run = || {
        let mut c = Command::new(conf_e2e::conf_run());
        c.env("CONF_CACHE_DIR", sb.path("cache"))
            .current_dir(&work)
            .arg("--trust")
            .arg(&lib)
            .arg("/bin/cat")
            // Twice: conf-run's word on the file comes once.
            .arg(&data)
            .arg(&data);
        run_with_timeout(&mut c, RUN_TIMEOUT)
    };
    for attempt in ["first run (resolves)", "second run (snapshot)"] {
        let out = run();
        assert_exit(&out, 0, attempt);
        assert_eq!(
            out.stdout_str(),
            "version 1\nversion 1\n",
            "{}",
            out.describe()
        );
    }

    // Same size, in place: lib/ itself does not change.
    let lib_mtime = std::fs::metadata(&lib).unwrap().modified().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .write_all(b"version 2\n")
        .unwrap();
    assert_eq!(
        std::fs::metadata(&lib).unwrap().modified().unwrap(),
        lib_mtime
    );
    let out = run();
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    let err = out.stderr_str();
    let said = format!("{} changed since conf-run measured it", data.display());
    assert!(
        err.matches(&said).count() == 1 && err.contains("Run the command again"),
        "{}",
        out.describe()
    );
    assert!(!out.stdout_str().contains("version"), "{}", out.describe());

    let out = run();
    assert_exit(&out, 0, "the run after the edit");
    assert_eq!(
        out.stdout_str(),
        "version 2\nversion 2\n",
        "{}",
        out.describe()
    );
}
