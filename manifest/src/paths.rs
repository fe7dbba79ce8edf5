//! Paths and `file:` URIs. Host paths are made absolute and normalized
//! lexically: symbolic links are never followed here (resolution records them
//! separately).

/// `path` (absolute) without `.`, `..`, repeated or trailing `/`.
/// `..` at the root stays at the root, as the kernel does.
pub(crate) fn normalize_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

/// The scheme of a URI (`file` of `file:/x`), if the string has one.
/// Schemes are at least two characters so that nothing else looks like one.
fn scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let sch = &s[..colon];
    let mut chars = sch.chars();
    let first = chars.next()?;
    if sch.len() < 2
        || !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    Some(sch)
}

/// A host path from a `file:` URI or a plain path; relative paths are taken
/// relative to `base` (an absolute directory, `None` when it is unknown).
/// The result is absolute and normalized.
pub(crate) fn host_path(s: &str, base: Option<&str>) -> Result<String, String> {
    let path = match scheme(s) {
        Some("file") => &s[5..],
        Some(other) => {
            return Err(format!(
                "\"{s}\" uses the URI scheme `{other}:`, which conf does not support; \
                 use a `file:` URI or a plain path (write ./{s} for a relative file name with a colon)"
            ))
        }
        None => s,
    };
    check_chars(s)?;
    if path.is_empty() {
        return Err(format!(
            "\"{s}\" is empty; give a path such as \"file:/usr/lib\""
        ));
    }
    if path.starts_with('/') {
        return Ok(normalize_abs(path));
    }
    match base {
        Some(b) => Ok(normalize_abs(&format!("{b}/{path}"))),
        None => Err(format!(
            "\"{s}\" is relative, but the manifest's directory is not a UTF-8 path; use an absolute path"
        )),
    }
}

/// An absolute path inside the enclave, normalized.
pub(crate) fn enclave_path(s: &str) -> Result<String, String> {
    check_chars(s)?;
    if !s.starts_with('/') {
        return Err(format!(
            "\"{s}\" must be an absolute path inside the enclave (starting with `/`)"
        ));
    }
    Ok(normalize_abs(s))
}

fn check_chars(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!(
            "{s:?} contains a NUL character, which no path can contain"
        ));
    }
    Ok(())
}

/// Whether `path` is `dir` or below it (both normalized absolute).
pub(crate) fn is_under(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path.starts_with('/');
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// `path` (under `dir`) re-rooted at `new_root`.
pub(crate) fn rebase(path: &str, dir: &str, new_root: &str) -> String {
    let rest = if dir == "/" { path } else { &path[dir.len()..] };
    normalize_abs(&format!("{new_root}/{rest}"))
}

/// Whether a path contains glob metacharacters.
pub(crate) fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize_abs("/"), "/");
        assert_eq!(normalize_abs("//usr///lib/"), "/usr/lib");
        assert_eq!(normalize_abs("/usr/./lib/../bin"), "/usr/bin");
        assert_eq!(normalize_abs("/../.."), "/");
        assert_eq!(normalize_abs("/a/b/../../../c"), "/c");
    }

    #[test]
    fn host_paths() {
        assert_eq!(host_path("file:/usr/lib/", None).unwrap(), "/usr/lib");
        assert_eq!(host_path("file:///usr/lib", None).unwrap(), "/usr/lib");
        assert_eq!(host_path("/usr/lib", None).unwrap(), "/usr/lib");
        assert_eq!(
            host_path("file:app.py", Some("/srv")).unwrap(),
            "/srv/app.py"
        );
        assert_eq!(host_path("../x", Some("/srv/a")).unwrap(), "/srv/x");
        assert_eq!(host_path("./c:d", Some("/srv")).unwrap(), "/srv/c:d");
        assert!(host_path("app.py", None).unwrap_err().contains("relative"));
        assert!(host_path("dev:tty", None).unwrap_err().contains("`dev:`"));
        assert!(host_path("file:", None).unwrap_err().contains("empty"));
        assert!(host_path("/a\0b", None).unwrap_err().contains("NUL"));
    }

    #[test]
    fn enclave_paths() {
        assert_eq!(enclave_path("/tmp/").unwrap(), "/tmp");
        assert!(enclave_path("tmp").is_err());
    }

    #[test]
    fn under_and_rebase() {
        assert!(is_under("/usr/lib", "/usr"));
        assert!(is_under("/usr", "/usr"));
        assert!(!is_under("/usrx", "/usr"));
        assert!(is_under("/x", "/"));
        assert_eq!(
            rebase("/host/app/main.py", "/host/app", "/app"),
            "/app/main.py"
        );
        assert_eq!(rebase("/usr/bin/x", "/", "/"), "/usr/bin/x");
        assert_eq!(rebase("/srv", "/srv", "/"), "/");
    }
}
