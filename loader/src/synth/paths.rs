//! Path helpers. Paths are normalized lexically (`.` and `..` removed
//! without following symbolic links), as the manifest does, so that what is
//! written here is what the manifest and the LibOS see.

use std::ffi::OsStr;
use std::path::Path;

use super::SynthError;

/// `path` (absolute) without `.`, `..`, repeated or trailing `/`.
pub(crate) fn normalize(path: &str) -> String {
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

/// `p` made absolute against `base` (absolute) and normalized.
pub(crate) fn join_lexical(base: &str, p: &str) -> String {
    if p.starts_with('/') {
        normalize(p)
    } else {
        normalize(&format!("{base}/{p}"))
    }
}

/// The directory part of an absolute normalized path (`/` for `/x`).
pub(crate) fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// The last component of a path.
pub(crate) fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Whether `p` is `dir` or below it (both absolute and normalized).
pub(crate) fn is_under(p: &str, dir: &str) -> bool {
    dir == "/"
        || p == dir
        || (p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/')
}

/// Whether a regular file is at `p` (following symbolic links).
pub(crate) fn is_file(p: &Path) -> bool {
    super::observe::metadata(p).is_ok_and(|m| m.is_file())
}

/// Whether anything is at `p` (following symbolic links).
pub(crate) fn exists(p: &str) -> bool {
    super::observe::metadata(p).is_ok()
}

/// `s` as UTF-8, or an error naming `what` it is.
pub(crate) fn utf8<'a>(what: &'static str, s: &'a OsStr) -> Result<&'a str, SynthError> {
    s.to_str().ok_or_else(|| SynthError::NotUtf8 {
        what,
        shown: format!("{:?}", s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical() {
        assert_eq!(normalize("/a/./b//c/../d/"), "/a/b/d");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(join_lexical("/w", "x/../y"), "/w/y");
        assert_eq!(join_lexical("/w", "/abs"), "/abs");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(file_name("/a/b"), "b");
        assert!(is_under("/tmp/x", "/tmp"));
        assert!(is_under("/tmp", "/tmp"));
        assert!(!is_under("/tmpx", "/tmp"));
        assert!(is_under("/anything", "/"));
    }
}
