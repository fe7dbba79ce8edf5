//! Trusting the working directory, within limits.
//!
//! The working directory is usually the project: the script, its modules,
//! its data. conf-run trusts all of it, so that a program finds there what
//! it finds natively. Walking it also counts it, and a directory too large
//! to be a project (`/`, `$HOME`) stops the synthesis with a clear error
//! rather than hashing the disk.
//!
//! Version-control directories (`.git`, `.hg`, `.svn`) are left out: they
//! can be large, change on every commit (which would change MRENCLAVE), and
//! programs do not read them. So are directories the user passed to
//! `--allow` (they are passed through instead). A directory without any of
//! these below it becomes one `sgx.trusted_files` entry; one with them is
//! listed child by child.

use std::io;

use super::observe;
use super::paths::normalize;
use super::SynthError;

/// Most files (and symbolic links) trusted in the working directory.
pub const MAX_FILES: usize = 20_000;
/// Most bytes trusted in the working directory.
pub const MAX_BYTES: u64 = 1 << 30;
/// Directories never trusted as part of the working directory.
pub const SKIP_DIRS: &[&str] = &[".git", ".hg", ".svn"];

/// What trusting the working directory gave.
#[derive(Debug, Default)]
pub(crate) struct CwdTrust {
    /// `sgx.trusted_files` entries (directories and files).
    pub entries: Vec<String>,
    pub files: usize,
    pub bytes: u64,
    /// Paths left out (skipped directories, links to directories in listed
    /// directories).
    pub left_out: Vec<String>,
}

struct Walker<'a> {
    root: &'a str,
    exclude: &'a [String],
    out: CwdTrust,
}

/// Trust `cwd` (absolute, normalized), leaving out `exclude` (absolute,
/// normalized paths below it).
pub(crate) fn trust_cwd(cwd: &str, exclude: &[String]) -> Result<CwdTrust, SynthError> {
    let mut w = Walker {
        root: cwd,
        exclude,
        out: CwdTrust::default(),
    };
    if cwd == "/" {
        // Not worth walking (/proc, /sys...): it is never a project.
        return Err(SynthError::CwdTooLarge {
            dir: cwd.into(),
            what: "is the root directory".to_string(),
            max_files: MAX_FILES,
            max_mb: MAX_BYTES >> 20,
        });
    }
    let (clean, mut entries) = w.walk(cwd)?;
    if clean {
        entries = vec![cwd.to_string()];
    }
    w.out.entries = entries;
    Ok(w.out)
}

fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Walker<'_> {
    fn too_large(&self) -> SynthError {
        let what = if self.out.files > MAX_FILES {
            format!("has more than {MAX_FILES} files")
        } else {
            format!("has more than {} MB of files", MAX_BYTES >> 20)
        };
        SynthError::CwdTooLarge {
            dir: self.root.into(),
            what,
            max_files: MAX_FILES,
            max_mb: MAX_BYTES >> 20,
        }
    }

    /// Walk `dir`: whether nothing below it was left out, and the entries
    /// that trust what is below it when something was.
    fn walk(&mut self, dir: &str) -> Result<(bool, Vec<String>), SynthError> {
        let io_err = |e: io::Error| SynthError::io(dir, e);
        let mut clean = true;
        let mut entries = Vec::new();
        let mut children: Vec<_> = observe::read_dir(dir)
            .map_err(io_err)?
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        children.sort_by_key(|d| d.file_name());
        for de in children {
            let name = de.file_name();
            let Some(name) = name.to_str() else {
                // Not UTF-8: the manifest cannot name it; resolution warns
                // when it walks a trusted directory with such a name.
                continue;
            };
            let path = child_path(dir, name);
            let ft = de.file_type().map_err(|e| SynthError::io(&path, e))?;
            if ft.is_dir() {
                if SKIP_DIRS.contains(&name) || self.exclude.contains(&path) {
                    clean = false;
                    self.out.left_out.push(path);
                    continue;
                }
                let (sub_clean, sub) = self.walk(&path)?;
                if sub_clean {
                    entries.push(path);
                } else {
                    clean = false;
                    entries.extend(sub);
                }
            } else if self.exclude.contains(&path) {
                clean = false;
                self.out.left_out.push(path);
            } else if ft.is_file() {
                let md = observe::entry_metadata(&de).map_err(|e| SynthError::io(&path, e))?;
                self.out.files += 1;
                self.out.bytes += md.len();
                entries.push(path);
            } else if ft.is_symlink() {
                self.out.files += 1;
                // Listed on its own, a link must lead to a file (a trusted
                // directory walk records any link; see docs/manifest.md).
                if observe::metadata(&path).is_ok_and(|m| m.is_file()) {
                    entries.push(path);
                } else {
                    self.out.left_out.push(path);
                }
            }
            // Sockets, FIFOs, devices: never trusted (resolution skips
            // them in a trusted directory too).
            if self.out.files > MAX_FILES || self.out.bytes > MAX_BYTES {
                return Err(self.too_large());
            }
        }
        Ok((clean, entries))
    }
}

/// Paths in `list` that are below `cwd` (normalized), for `exclude`.
pub(crate) fn below(cwd: &str, list: &[String]) -> Vec<String> {
    list.iter()
        .map(|p| normalize(p))
        .filter(|p| p != cwd && super::paths::is_under(p, cwd))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_dirty() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap().to_string();
        std::fs::create_dir_all(d.path().join("src/pkg")).unwrap();
        std::fs::write(d.path().join("app.py"), "x").unwrap();
        std::fs::write(d.path().join("src/pkg/m.py"), "y").unwrap();
        let t = trust_cwd(&root, &[]).unwrap();
        assert_eq!(t.entries, vec![root.clone()]);
        assert_eq!((t.files, t.bytes), (2, 2));

        std::fs::create_dir_all(d.path().join(".git/objects")).unwrap();
        std::fs::create_dir_all(d.path().join("data")).unwrap();
        let data = format!("{root}/data");
        let t = trust_cwd(&root, std::slice::from_ref(&data)).unwrap();
        assert_eq!(
            t.entries,
            vec![format!("{root}/app.py"), format!("{root}/src")]
        );
        assert_eq!(t.left_out, vec![format!("{root}/.git"), data]);
    }
}
