//! Version-manager shims. With pyenv (rbenv, nodenv work the same way)
//! `python3` on PATH is a small script that asks the manager which
//! interpreter this directory selects and execs it — through a dozen bash
//! processes and coreutils. Zero-config asks the manager that question
//! once, on the host, before the enclave starts, and runs the answer: the
//! same interpreter the shim would have run, without the detour.
//!
//! The answer is cached (`synth-v1/shim-*.json`): asking costs ~40 ms of
//! bash, more than the rest of a start. It is reused while the question is
//! the same (the manager, the program, the working directory, `PATH`,
//! `HOME` and the manager's own variables such as `PYENV_VERSION`) and
//! nothing the manager reads to choose has changed: the version files it
//! looks for (`.python-version` in the working directory and every
//! directory above it, `<root>/version`), the list of installed versions
//! and plugins, the manager itself, the directories on `PATH` (a "system"
//! version is found there) and the answer.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ask::{self, NoAnswer};
use super::cache;
use super::paths::parent;

/// How long the manager may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most cached answers kept (each well under 4 KB).
const MAX_RECORDS: usize = 32;

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
    let mut file = super::observe::open(path).ok()?;
    // Most programs are not scripts: two bytes say so, where reading the
    // 64 KiB a shim may hold cost every start that much fresh memory.
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic).ok()?;
    if &magic != b"#!" {
        return None;
    }
    let mut text = String::from("#!");
    file.take(64 << 10).read_to_string(&mut text).ok()?;
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

impl Shim {
    /// The manager's name (`pyenv`).
    fn name(&self) -> &str {
        Path::new(&self.manager)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
    }

    /// The file a directory names its version in (`.python-version`).
    fn version_file(&self) -> &'static str {
        match self.name() {
            "rbenv" => ".ruby-version",
            "nodenv" => ".node-version",
            _ => ".python-version",
        }
    }

    /// The prefix of the manager's own environment variables (`PYENV_`).
    fn env_prefix(&self) -> String {
        format!("{}_", self.name().to_ascii_uppercase())
    }
}

/// The question a cached answer answered.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Question {
    manager: String,
    program: String,
    cwd: String,
    env: Vec<(String, String)>,
}

/// Which executable the manager would run, from the cache in `cache_dir`
/// when nothing it depends on has changed, else by asking it ([`resolve`]).
pub(crate) fn resolve_cached(
    shim: &Shim,
    cwd: &Path,
    env: &[(OsString, OsString)],
    cache_dir: &Path,
) -> Result<String, String> {
    let prefix = shim.env_prefix();
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string_lossy().into_owned())
    };
    let mut relevant: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .filter(|(k, _)| k.starts_with(&prefix) || k == "PATH" || k == "HOME")
        .collect();
    relevant.sort();
    let question = Question {
        manager: shim.manager.clone(),
        program: shim.program.clone(),
        cwd: cwd.to_string_lossy().into_owned(),
        env: relevant,
    };
    let record_path = cache::record_path(cache_dir, "shim", &format!("{question:?}"));
    if let Some(answer) = cache::load_current(&record_path, &question) {
        return Ok(answer);
    }
    // Stamped before asking: a change while the manager runs shows next time.
    let root =
        var(&format!("{prefix}ROOT")).unwrap_or_else(|| parent(parent(&shim.manager)).to_string());
    let search_from = var(&format!("{prefix}DIR")).unwrap_or_else(|| question.cwd.clone());
    let mut watched = vec![
        shim.manager.clone(),
        format!("{root}/version"),
        format!("{root}/versions"),
        format!("{root}/plugins"),
    ];
    let mut dir = search_from.trim_end_matches('/');
    loop {
        watched.push(format!("{dir}/{}", shim.version_file()));
        if dir.is_empty() {
            break;
        }
        dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    }
    watched.extend(
        var("PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(str::to_string),
    );
    let stamps = cache::stamps(&watched);
    let answer = resolve(shim, cwd, env)?;
    let mut stamps = stamps;
    stamps.push((answer.clone(), cache::stamp(&answer)));
    let rec = cache::Stamped {
        key: question,
        stamps,
        value: answer,
    };
    // A cache that cannot be written costs the next start the question.
    if cache::store(&record_path, &rec).is_ok() {
        cache::keep_newest(&record_path, "shim-", MAX_RECORDS);
    }
    Ok(rec.value)
}

/// Ask the manager which executable it would run (`<manager> which
/// <program>`) in `cwd` with `env`; the path, or why not.
pub(crate) fn resolve(
    shim: &Shim,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Result<String, String> {
    let which = format!("`{} which {}`", shim.manager, shim.program);
    let answer = ask::ask(
        Command::new(&shim.manager)
            .arg("which")
            .arg(&shim.program)
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v))),
        ANSWER_TIMEOUT,
    )
    .map_err(|e| match e {
        NoAnswer::Start(e) => format!("cannot run {}: {e}", shim.manager),
        NoAnswer::Timeout => format!("{which} did not answer in {}s", ANSWER_TIMEOUT.as_secs()),
        NoAnswer::Wait(e) => format!("waiting for {which} failed: {e}"),
    })?;
    let (status, out, err) = (
        answer.status,
        String::from_utf8_lossy(&answer.stdout),
        String::from_utf8_lossy(&answer.stderr),
    );
    let answer = out.trim();
    if !status.success() || !answer.starts_with('/') || !super::paths::is_file(Path::new(answer)) {
        let why = err.lines().next().unwrap_or("").trim();
        return Err(format!(
            "{which} failed ({status}){}",
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

    /// How many times the fake manager at `dir` was asked.
    fn asked(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("asked")).map_or(0, |s| s.lines().count())
    }

    /// A fake manager that logs each question and names `answer`.
    fn counting(dir: &Path, answer: &str) -> Shim {
        let shim = fake(dir, answer);
        let mgr = dir.join("libexec/pyenv");
        let log = dir.join("asked");
        write_exec(
            &mgr,
            &format!(
                "#!/bin/sh
echo \"$*\" >> {}
echo {answer}
",
                log.display()
            ),
        );
        detect(&shim).unwrap()
    }

    #[test]
    fn an_answer_is_reused_until_what_it_depends_on_changes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let work = d.path().join("work/sub");
        let cache = d.path().join("cache");
        std::fs::create_dir_all(&work).unwrap();
        let answer = d.path().join("python3");
        write_exec(&answer, "#!/bin/sh\n");
        let s = counting(&root, answer.to_str().unwrap());
        let env = |v: &str| vec![(OsString::from("PYENV_VERSION"), OsString::from(v))];
        let ask = |env: &[(OsString, OsString)]| {
            resolve_cached(&s, &work, env, &cache).unwrap();
            asked(&root)
        };
        assert_eq!(ask(&env("3.11")), 1);
        assert_eq!(ask(&env("3.11")), 1, "the same question was asked again");
        assert_eq!(
            ask(&env("3.12")),
            2,
            "another PYENV_VERSION reused an answer"
        );
        assert_eq!(ask(&env("3.11")), 2, "the first answer was forgotten");
        // `pyenv local` in a directory above the working one.
        std::fs::write(d.path().join("work/.python-version"), "3.12\n").unwrap();
        assert_eq!(ask(&env("3.11")), 3, "a new .python-version went unnoticed");
        assert_eq!(ask(&env("3.11")), 3);
        // `pyenv global`.
        std::fs::write(root.join("version"), "3.12\n").unwrap();
        assert_eq!(ask(&env("3.11")), 4, "a new global version went unnoticed");
        // A version installed.
        std::fs::create_dir_all(root.join("versions/3.13")).unwrap();
        assert_eq!(
            ask(&env("3.11")),
            5,
            "a newly installed version went unnoticed"
        );
        // The answer itself changed (reinstalled).
        write_exec(&answer, "#!/bin/sh\nexit 0\n");
        assert_eq!(ask(&env("3.11")), 6, "a changed answer was reused");
        assert_eq!(ask(&env("3.11")), 6);
    }

    #[test]
    fn a_vanished_answer_is_not_reused() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let answer = d.path().join("python3");
        write_exec(&answer, "#!/bin/sh\n");
        let s = counting(d.path(), answer.to_str().unwrap());
        resolve_cached(&s, d.path(), &[], &cache).unwrap();
        std::fs::remove_file(&answer).unwrap();
        let e = resolve_cached(&s, d.path(), &[], &cache).unwrap_err();
        assert!(e.contains("which python3"), "{e}");
        assert_eq!(asked(d.path()), 2);
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
