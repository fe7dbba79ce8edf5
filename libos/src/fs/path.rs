//! Path resolution inside the enclave.
//!
//! Paths are made absolute against the working directory and normalized
//! component by component. Symbolic links recorded in the measured manifest
//! (`trusted_symlinks`) are followed here, without asking the host, so a
//! host cannot redirect a trusted path; other links are left to the host,
//! whose answers only ever reach allowed (unprotected) files.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use conf_abi::Errno;

/// Linux's limit on links followed in one lookup.
const MAX_LINKS: usize = 40;
const PATH_MAX: usize = 4096;

/// The measured symlink table: link path → target text.
pub struct Symlinks {
    map: BTreeMap<String, String>,
}

impl Symlinks {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Symlinks {
        Symlinks {
            map: pairs.into_iter().collect(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.map.get(path).map(|s| s.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn components(s: &str) -> impl Iterator<Item = &str> {
    s.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Resolve `path` (relative to `cwd`) to an absolute, normalized path,
/// following measured symlinks (the last component only if `follow_last`).
pub fn resolve(
    cwd: &str,
    path: &[u8],
    follow_last: bool,
    links: &Symlinks,
) -> Result<String, Errno> {
    resolve_with(cwd, path, follow_last, &|p| links.get(p).map(String::from))
}

/// As [`resolve`], with `link_of` saying which paths are symlinks.
pub fn resolve_with(
    cwd: &str,
    path: &[u8],
    follow_last: bool,
    link_of: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let path = core::str::from_utf8(path).map_err(|_| Errno::ENOENT)?;
    let trailing_slash = path.ends_with('/');
    let mut todo: VecDeque<String> = VecDeque::new();
    if !path.starts_with('/') {
        todo.extend(components(cwd).map(String::from));
    }
    todo.extend(components(path).map(String::from));
    let mut out: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            out.pop();
            continue;
        }
        out.push(c);
        let last = todo.is_empty();
        if last && !follow_last && !trailing_slash {
            continue;
        }
        let here = join(&out);
        if let Some(target) = link_of(&here) {
            hops += 1;
            if hops > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            out.pop();
            if target.starts_with('/') {
                out.clear();
            }
            for (i, t) in components(&target).enumerate() {
                todo.insert(i, String::from(t));
            }
        }
    }
    Ok(join(&out))
}

/// Absolute path from components.
pub fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        return String::from("/");
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// Parent directory and last component of an absolute normalized path.
pub fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Is `path` equal to `dir` or below it?
pub fn is_within(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return true;
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Symlinks {
        Symlinks::new([
            (String::from("/bin"), String::from("usr/bin")),
            (
                String::from("/lib64/ld.so"),
                String::from("/lib/x86_64/ld-2.so"),
            ),
            (String::from("/lib"), String::from("usr/lib")),
            (String::from("/loop"), String::from("/loop")),
        ])
    }

    #[test]
    fn normalizes_and_follows_measured_links() {
        let l = links();
        assert_eq!(resolve("/", b"/bin/ls", true, &l).unwrap(), "/usr/bin/ls");
        assert_eq!(
            resolve("/home", b"../bin//./ls", true, &l).unwrap(),
            "/usr/bin/ls"
        );
        assert_eq!(
            resolve("/", b"/lib64/ld.so", true, &l).unwrap(),
            "/usr/lib/x86_64/ld-2.so"
        );
        assert_eq!(
            resolve("/", b"/lib64/ld.so", false, &l).unwrap(),
            "/lib64/ld.so"
        );
        assert_eq!(resolve("/a/b", b"c", true, &l).unwrap(), "/a/b/c");
        assert_eq!(resolve("/", b"/../..", true, &l).unwrap(), "/");
        assert_eq!(resolve("/", b"/loop", true, &l), Err(Errno::ELOOP));
        assert_eq!(resolve("/", b"", true, &l), Err(Errno::ENOENT));
    }

    #[test]
    fn within() {
        assert!(is_within("/usr/lib", "/usr"));
        assert!(!is_within("/usrx", "/usr"));
        assert!(is_within("/x", "/"));
        assert_eq!(split_last("/a/b"), ("/a", "b"));
        assert_eq!(split_last("/a"), ("/", "a"));
    }
}
