//! Applying image layers to a directory, the way container engines do:
//! in order, with whiteouts (`.wh.NAME` removes NAME from the layers
//! below, `.wh..wh..opq` empties a directory of them), hard links, symbolic
//! links and modes. Device nodes and FIFOs are skipped.
//!
//! A layer is untrusted input, and nothing in it can write outside the
//! directory: a name that is absolute or contains `..` is refused, and the
//! directories on the way to an entry are resolved inside the root as a
//! chroot would (a symbolic link's absolute target starts at the root);
//! a link that climbs above the root with `..` is refused rather than
//! written through. The last component of a name is never followed: an
//! entry replaces whatever is there (a symbolic link included). Hard links
//! are resolved the same way, so they cannot reach a file outside.
//!
//! What is kept: contents, symbolic links, hard links, permission bits
//! (setuid and setgid are dropped, and directories are kept writable and
//! searchable by their owner so the tree can be removed). Owners, times,
//! extended attributes and device nodes are not.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Most symbolic links followed on one path (as Linux).
const MAX_LINKS: usize = 40;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {name:?}: {why}; the layer is malformed or malicious, refusing to unpack it")]
    Unsafe { name: String, why: String },
    #[error("entry {name:?}: {what}: {err}")]
    Io {
        name: String,
        what: String,
        #[source]
        err: io::Error,
    },
    #[error("the layer is not a valid tar stream (truncated or corrupt): {0}")]
    Tar(#[source] io::Error),
}

/// What was unpacked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub whiteouts: u64,
    /// Device nodes, FIFOs and other entries that are not unpacked.
    pub skipped: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
}

/// Directory modes to apply once every layer is unpacked (a read-only
/// directory would stop later entries from being created in it).
#[derive(Debug, Default)]
pub struct Unpacker {
    root: PathBuf,
    dir_modes: Vec<(PathBuf, u32)>,
    pub stats: Stats,
}

fn unsafe_entry(name: &[u8], why: impl Into<String>) -> UnpackError {
    UnpackError::Unsafe {
        name: String::from_utf8_lossy(name).into_owned(),
        why: why.into(),
    }
}

fn io_err(name: &[u8], what: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    let name = String::from_utf8_lossy(name).into_owned();
    let what = what.into();
    move |err| UnpackError::Io { name, what, err }
}

/// The components of an entry name: `./` prefixes and empty components
/// dropped; absolute names and `..` refused.
fn components(name: &[u8]) -> Result<Vec<&OsStr>, UnpackError> {
    if name.first() == Some(&b'/') {
        return Err(unsafe_entry(name, "the name is absolute"));
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry(name, "the name contains `..`")),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Unpacker {
    /// Is `p` (a path this unpacker made under the root) still a real
    /// directory reached through real directories only? Paths are recorded
    /// when an entry names them and used later (opaque directories at the
    /// end of the layer, directory modes at the end): an entry in between
    /// may have replaced one of their directories with a symbolic link, which
    /// the kernel would follow — out of the root (a layer with `a/`,
    /// `a/.wh..wh..opq` and then `a -> /` emptied the host's `/`).
    fn still_a_real_dir(&self, p: &Path) -> bool {
        let Ok(rel) = p.strip_prefix(&self.root) else {
            return false;
        };
        let mut at = self.root.clone();
        for c in rel.components() {
            at.push(c);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                _ => return false,
            }
        }
        true
    }

    /// Unpack into `root` (an existing directory).
    pub fn new(root: &Path) -> Unpacker {
        Unpacker {
            root: root.to_path_buf(),
            dir_modes: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The real directory (a host path under the root) that the
    /// directories `dirs` lead to, following symbolic links inside the
    /// root and creating what is missing.
    fn resolve_dir(&self, name: &[u8], dirs: &[&OsStr]) -> Result<PathBuf, UnpackError> {
        let mut todo: Vec<OsString> = dirs.iter().rev().map(|c| c.to_os_string()).collect();
        let mut real: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if real.pop().is_none() {
                        return Err(unsafe_entry(
                            name,
                            "a symbolic link on its path leads above the image's root (`..`)",
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let mut p = self.root.clone();
            p.extend(&real);
            p.push(&c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => real.push(c),
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_LINKS {
                        return Err(unsafe_entry(
                            name,
                            "too many levels of symbolic links on its path",
                        ));
                    }
                    let target = fs::read_link(&p).map_err(io_err(
                        name,
                        format!("cannot read the link {}", p.display()),
                    ))?;
                    let t = target.as_os_str().as_bytes();
                    if t.first() == Some(&b'/') {
                        real.clear();
                    }
                    for part in t.split(|&b| b == b'/').rev() {
                        todo.push(OsString::from_vec(part.to_vec()));
                    }
                }
                Ok(_) => {
                    let rel: PathBuf = real.iter().chain(std::iter::once(&c)).collect();
                    return Err(unsafe_entry(
                        name,
                        format!("{} is not a directory", rel.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&p)
                        .map_err(io_err(name, format!("cannot create {}", p.display())))?;
                    real.push(c);
                }
                Err(e) => return Err(io_err(name, format!("cannot look at {}", p.display()))(e)),
            }
        }
        let mut p = self.root.clone();
        p.extend(&real);
        Ok(p)
    }

    /// Where an entry goes: (real parent directory, last component), or
    /// `None` for the root itself.
    fn place(&self, name: &[u8]) -> Result<Option<(PathBuf, OsString)>, UnpackError> {
        let comps = components(name)?;
        let Some((last, dirs)) = comps.split_last() else {
            return Ok(None);
        };
        let parent = self.resolve_dir(name, dirs)?;
        Ok(Some((parent, last.to_os_string())))
    }

    /// Apply one layer (an uncompressed tar stream).
    pub fn apply(&mut self, layer: impl Read) -> Result<(), UnpackError> {
        let mut ar = tar::Archive::new(layer);
        // Paths this layer created: an opaque directory keeps them.
        let mut created: HashSet<PathBuf> = HashSet::new();
        let mut opaque: Vec<PathBuf> = Vec::new();
        for entry in ar.entries().map_err(UnpackError::Tar)? {
            let mut entry = entry.map_err(UnpackError::Tar)?;
            let name = entry.path_bytes().into_owned();
            let kind = entry.header().entry_type();
            let Some((dir, last)) = self.place(&name)? else {
                continue; // the root directory itself
            };
            let last_b = last.as_bytes();
            if let Some(hidden) = last_b.strip_prefix(b".wh.") {
                self.stats.whiteouts += 1;
                if hidden == b".wh..opq" {
                    opaque.push(dir);
                } else if hidden.starts_with(b".wh.") {
                    // aufs bookkeeping (.wh..wh.plnk and the like): nothing to do.
                } else if !hidden.is_empty()
                    && hidden != b"."
                    && hidden != b".."
                    && !hidden.contains(&b'/')
                {
                    let target = dir.join(OsStr::from_bytes(hidden));
                    remove_any(&target).map_err(io_err(
                        &name,
                        format!("cannot remove {} (whiteout)", target.display()),
                    ))?;
                } else {
                    return Err(unsafe_entry(&name, "a whiteout of nothing"));
                }
                continue;
            }
            let path = dir.join(&last);
            let mode = entry.header().mode().unwrap_or(0o644) & 0o1777;
            match kind {
                tar::EntryType::Directory => {
                    match fs::symlink_metadata(&path) {
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => {
                            fs::remove_file(&path).map_err(io_err(
                                &name,
                                format!("cannot replace {}", path.display()),
                            ))?;
                            fs::DirBuilder::new()
                                .mode(0o755)
                                .create(&path)
                                .map_err(io_err(
                                    &name,
                                    format!("cannot create {}", path.display()),
                                ))?;
                        }
                        Err(_) => fs::DirBuilder::new()
                            .mode(0o755)
                            .create(&path)
                            .map_err(io_err(&name, format!("cannot create {}", path.display())))?,
                    }
                    self.dir_modes.push((path.clone(), mode | 0o700));
                    self.stats.dirs += 1;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    remove_any(&path)
                        .map_err(io_err(&name, format!("cannot replace {}", path.display())))?;
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .mode(0o600)
                        .open(&path)
                        .map_err(io_err(&name, format!("cannot create {}", path.display())))?;
                    let n = io::copy(&mut entry, &mut f).map_err(UnpackError::Tar)?;
                    f.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(io_err(
                            &name,
                            format!("cannot set the mode of {}", path.display()),
                        ))?;
                    self.stats.files += 1;
                    self.stats.bytes += n;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| unsafe_entry(&name, "a symbolic link without a target"))?
                        .into_owned();
                    if target.is_empty() || target.contains(&0) {
                        return Err(unsafe_entry(
                            &name,
                            "a symbolic link with an empty or invalid target",
                        ));
                    }
                    remove_any(&path)
                        .map_err(io_err(&name, format!("cannot replace {}", path.display())))?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(
                        io_err(&name, format!("cannot create the link {}", path.display())),
                    )?;
                    self.stats.symlinks += 1;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| unsafe_entry(&name, "a hard link without a target"))?
                        .into_owned();
                    let Some((tdir, tlast)) = self.place(&target).map_err(|e| match e {
                        UnpackError::Unsafe { why, .. } => unsafe_entry(
                            &name,
                            format!(
                                "its hard link target {:?}: {why}",
                                String::from_utf8_lossy(&target)
                            ),
                        ),
                        e => e,
                    })?
                    else {
                        return Err(unsafe_entry(&name, "a hard link to the root directory"));
                    };
                    let src = tdir.join(&tlast);
                    match fs::symlink_metadata(&src) {
                        Ok(m) if m.is_dir() => {
                            return Err(unsafe_entry(&name, "a hard link to a directory"))
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Err(io_err(
                                &name,
                                format!(
                                    "hard link target {} is not in the image",
                                    String::from_utf8_lossy(&target)
                                ),
                            )(e))
                        }
                    }
                    if src == path {
                        continue;
                    }
                    remove_any(&path)
                        .map_err(io_err(&name, format!("cannot replace {}", path.display())))?;
                    // link(2) does not follow a symbolic link at `src`.
                    fs::hard_link(&src, &path).map_err(io_err(
                        &name,
                        format!("cannot link {} to {}", path.display(), src.display()),
                    ))?;
                    self.stats.hardlinks += 1;
                }
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => continue,
                _ => {
                    // Character and block devices, FIFOs: not unpacked.
                    self.stats.skipped += 1;
                    continue;
                }
            }
            created.insert(path);
        }
        for dir in opaque {
            if !self.still_a_real_dir(&dir) {
                // Replaced later in this layer: nothing of the layers below
                // is left in it to hide.
                continue;
            }
            self.make_opaque(&dir, &created).map_err(io_err(
                dir.as_os_str().as_bytes(),
                "cannot empty opaque directory",
            ))?;
        }
        // A tar stream may be followed by padding; read it so that the
        // caller's digest covers the whole layer.
        Ok(())
    }

    /// Remove from `dir` everything the current layer did not create.
    /// `dir` must be a real directory under the root (`still_a_real_dir`):
    /// the entries read from it are then paths without links, and only the
    /// ones that are directories themselves are entered.
    fn make_opaque(&self, dir: &Path, created: &HashSet<PathBuf>) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for de in rd {
            let p = de?.path();
            if !created.contains(&p) {
                remove_any(&p)?;
            } else if fs::symlink_metadata(&p)?.is_dir() {
                self.make_opaque(&p, created)?;
            }
        }
        Ok(())
    }

    /// Apply the directory modes. Call once, after the last layer.
    pub fn finish(mut self) -> io::Result<Stats> {
        // Deepest first, and only the last mode given for each directory.
        let mut seen = HashSet::new();
        self.dir_modes.reverse();
        for (p, mode) in &self.dir_modes {
            // A directory replaced by a link since must not lend its mode
            // to what the link leads to.
            if seen.insert(p.clone()) && self.still_a_real_dir(p) {
                fs::set_permissions(p, fs::Permissions::from_mode(*mode))?;
            }
        }
        Ok(self.stats)
    }
}
