//! Version-manager shims. With pyenv (rbenv, nodenv work the same way)
//! `python3` on PATH is a small script that asks the manager which
//! interpreter this directory selects and execs it — through a dozen bash
//! processes and coreutils. Zero-config asks the manager that question
//! once, on the host, before the enclave starts, and runs the answer: the
//! same interpreter the shim would have run, without the detour.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the manager may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A shim: which manager it asks, and for which program.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Shim {
    /// The manager's executable (`.../libexec/pyenv`).
    pub manager: String,
    /// The program the shim stands for (the shim's file name).
    pub program: String,
}

/// Recognize a shim: a `#!` script that execs `<root>/libexec/<manager>
/// exec "$program"`.
pub(crate) fn detect(path: &str) -> Option<Shim> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    if !text.starts_with("#!") {
        return None;
    }
    let program = Path::new(path).file_name()?.to_str()?.to_string();
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("exec ")?;
        let mut words = rest.split_whitespace().map(|w| w.trim_matches('"'));
        let manager = words.next()?;
        let name = Path::new(manager).file_name()?.to_str()?;
        let is_manager = Path::new(manager).parent()?.ends_with("libexec")
            && ["pyenv", "rbenv", "nodenv"].contains(&name);
        (is_manager && words.next()? == "exec" && words.next()? == "$program").then(|| Shim {
            manager: manager.to_string(),
            program: program.clone(),
        })
    })
}

/// Ask the manager which executable it would run (`<manager> which
/// <program>`) in `cwd` with `env`; the path, or why not.
pub(crate) fn resolve(
    shim: &Shim,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Result<String, String> {
    let mut child = Command::new(&shim.manager)
        .arg("which")
        .arg(&shim.program)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", shim.manager))?;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if started.elapsed() > ANSWER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{} which {}` did not answer in {}s",
                shim.manager,
                shim.program,
                ANSWER_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let answer = out.trim();
    if !status.success() || !answer.starts_with('/') || !Path::new(answer).is_file() {
        let why = err.lines().next().unwrap_or("").trim();
        return Err(format!(
            "`{} which {}` failed ({status}){}",
            shim.manager,
            shim.program,
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    Ok(answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_exec(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A fake manager that answers `which` with a real program, and a shim
    /// of pyenv's shape in front of it.
    fn fake(dir: &Path, answer: &str) -> String {
        std::fs::create_dir_all(dir.join("libexec")).unwrap();
        std::fs::create_dir_all(dir.join("shims")).unwrap();
        let mgr = dir.join("libexec/pyenv");
        write_exec(&mgr, &format!("#!/bin/sh\n[ \"$1\" = which ] && [ \"$2\" = python3 ] && echo {answer} && exit 0\necho 'pyenv: nope' >&2\nexit 127\n"));
        let shim = dir.join("shims/python3");
        write_exec(
            &shim,
            &format!("#!/usr/bin/env bash\nset -e\nprogram=\"${{0##*/}}\"\nexec \"{}\" exec \"$program\" \"$@\"\n", mgr.display()),
        );
        shim.to_str().unwrap().to_string()
    }

    #[test]
    fn a_pyenv_shim_resolves_to_what_the_manager_names() {
        let d = tempfile::tempdir().unwrap();
        let shim = fake(d.path(), "/bin/sh");
        let s = detect(&shim).expect("not recognized as a shim");
        assert_eq!(s.program, "python3");
        assert!(s.manager.ends_with("libexec/pyenv"));
        assert_eq!(resolve(&s, d.path(), &[]).unwrap(), "/bin/sh");
    }

    #[test]
    fn a_manager_that_fails_says_why() {
        let d = tempfile::tempdir().unwrap();
        let shim = fake(d.path(), "/no/such/python");
        let s = detect(&shim).unwrap();
        let e = resolve(&s, d.path(), &[]).unwrap_err();
        assert!(e.contains("which python3"), "{e}");
        let other = Shim {
            program: "python2".into(),
            ..s
        };
        assert!(resolve(&other, d.path(), &[])
            .unwrap_err()
            .contains("pyenv: nope"));
    }

    #[test]
    fn ordinary_scripts_are_not_shims() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.sh");
        write_exec(&p, "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n");
        assert_eq!(detect(p.to_str().unwrap()), None);
        assert_eq!(detect("/bin/ls"), None);
    }
}
