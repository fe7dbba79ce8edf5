//! Finding the program the way execvp(3) does.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::observe;
use super::paths::join_lexical;
use super::SynthError;

/// glibc's search path when PATH is unset (`confstr(_CS_PATH)`).
pub(crate) const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Check that the file at `path` (absolute) can be executed. `via` says how
/// we got there, for messages.
pub(crate) fn check_runnable(path: &str, via: &str) -> Result<(), SynthError> {
    let p = Path::new(path);
    match observe::metadata(p) {
        Ok(m) if m.is_file() => {
            if observe::executable(p, &m) {
                Ok(())
            } else {
                Err(SynthError::NotExecutable {
                    path: p.into(),
                    via: via.to_string(),
                })
            }
        }
        Ok(m) => Err(SynthError::NotAFile {
            path: p.into(),
            what: if m.is_dir() {
                "a directory"
            } else {
                "a special file"
            },
            via: via.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SynthError::NoSuchFile {
            path: p.into(),
            via: via.to_string(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(SynthError::NoSuchFile {
            path: p.into(),
            via: via.to_string(),
        }),
        Err(e) => Err(SynthError::io(p, e)),
    }
}

/// The absolute path execvp would run for `name`: a name with a `/` is
/// taken relative to `cwd`; anything else is searched on `path_env`
/// (empty entries mean the working directory). Symbolic links are kept.
pub(crate) fn find_program(
    name: &str,
    cwd: &str,
    path_env: Option<&OsStr>,
) -> Result<String, SynthError> {
    if name.is_empty() {
        return Err(SynthError::NoSuchFile {
            path: "".into(),
            via: " (the command name is empty)".to_string(),
        });
    }
    if name.contains('/') {
        let p = join_lexical(cwd, name);
        check_runnable(&p, "")?;
        return Ok(p);
    }
    let search = path_env.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        let Ok(dir) = std::str::from_utf8(dir) else {
            continue;
        };
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = join_lexical(cwd, &format!("{dir}/{name}"));
        let p = Path::new(&cand);
        match observe::metadata(p) {
            Ok(m) if m.is_file() => {
                if observe::executable(p, &m) {
                    return Ok(cand);
                }
                not_executable.get_or_insert(cand);
            }
            _ => {}
        }
    }
    let shown = search.to_string_lossy().into_owned();
    match not_executable {
        Some(path) => Err(SynthError::NotExecutableOnPath {
            name: name.to_string(),
            path,
        }),
        None => Err(SynthError::NotOnPath {
            name: name.to_string(),
            path: shown,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search() {
        let p = find_program("sh", "/", Some(OsStr::new("/nonexistent:/bin"))).unwrap();
        assert_eq!(p, "/bin/sh");
        let e = find_program(
            "no-such-program-xyz",
            "/",
            Some(OsStr::new("/usr/bin:/bin")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no-such-program-xyz was not found on PATH (/usr/bin:/bin)"),
            "{e}"
        );
        assert_eq!(find_program("./sh", "/bin", None).unwrap(), "/bin/sh");
        assert!(matches!(
            find_program("/etc/passwd", "/", None),
            Err(SynthError::NotExecutable { .. })
        ));
        assert!(matches!(
            find_program("/etc", "/", None),
            Err(SynthError::NotAFile { .. })
        ));
    }
}
