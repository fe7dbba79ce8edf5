//! [`Manifest`] to [`ResolvedManifest`]: trusted entries expanded (files,
//! directories, globs), symbolic links recorded, files hashed.
//!
//! Entries are written as host paths; everything recorded is an *enclave*
//! path (what the program sees). The walk happens in the enclave's name
//! space: each enclave path is looked up on the host through [`View`]
//! (fs.root and the mounts), and symbolic links are followed the way the
//! LibOS follows them: an absolute target starts again at the enclave's `/`
//! (that is, at fs.root on the host) and `..` stops at `/`, so nothing that
//! is resolved can leave the directories the enclave shows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::time::Instant;

use conf_abi::manifest::{EnvVar, TrustedFile, TrustedSymlink};

use crate::hash::{self, Job};
use crate::paths::{self, has_glob_chars, is_under, normalize_abs};
use crate::{
    default_cache_dir, ChunkIndex, Digest32, Manifest, MountKind, OcallMode, Resolution,
    ResolveError, ResolveOptions, ResolveStats, ResolvedManifest,
};

/// Most symbolic links followed while resolving one path (as Linux).
const MAX_LINKS: usize = 40;

/// What is at a path, without following a final symlink.
#[derive(Clone, Debug)]
enum Node {
    Dir,
    File,
    Symlink(String),
    /// A symlink whose target is not UTF-8.
    BadSymlink,
    Other(&'static str),
    Missing,
}

fn describe_type(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Symbolic links met on a path: (link path, target).
type Links = Vec<(String, String)>;

/// Why a path did not resolve.
enum Fail {
    /// `missing` (a prefix of the path after following links) is absent.
    Missing {
        missing: String,
    },
    Loop,
    NotDir {
        at: String,
    },
    BadLink {
        at: String,
    },
    Io {
        at: String,
        err: io::Error,
    },
}

/// How enclave paths map to host paths: fs.root and the mounts.
pub(crate) struct View {
    /// fs.root, absolute and normalized.
    root: String,
    /// (enclave path, kind, host uri), longest enclave path first.
    mounts: Vec<(String, MountKind, String)>,
}

/// Why a host path has no enclave path.
enum Unseen {
    Outside,
    /// It maps to `enclave`, which the mount at `mount` covers.
    Hidden {
        enclave: String,
        mount: String,
    },
}

impl View {
    pub(crate) fn new(m: &Manifest) -> View {
        let mut mounts: Vec<(String, MountKind, String)> = m
            .mounts
            .iter()
            .map(|mt| (mt.path.clone(), mt.kind, mt.uri.clone()))
            .collect();
        mounts.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
        View {
            root: m.fs_root.clone(),
            mounts,
        }
    }

    fn mount_of(&self, enclave: &str) -> Option<&(String, MountKind, String)> {
        self.mounts.iter().find(|(p, _, _)| is_under(enclave, p))
    }

    /// The host path behind an enclave path; `None` inside a tmpfs.
    pub(crate) fn host(&self, enclave: &str) -> Option<String> {
        match self.mount_of(enclave) {
            Some((_, MountKind::Tmpfs, _)) => None,
            Some((p, _, uri)) => Some(paths::rebase(enclave, p, uri)),
            None => Some(paths::rebase(enclave, "/", &self.root)),
        }
    }

    /// The host path behind `enclave`, or the enclave path itself (for
    /// messages about a path inside a tmpfs).
    fn shown(&self, enclave: &str) -> String {
        self.host(enclave).unwrap_or_else(|| enclave.to_string())
    }

    /// The enclave path at which the host path `host` shows: below the
    /// mount whose uri holds it (the longest), else below fs.root.
    fn enclave(&self, host: &str) -> Result<String, Unseen> {
        let e = match self
            .mounts
            .iter()
            .filter(|(_, k, uri)| *k != MountKind::Tmpfs && is_under(host, uri))
            .max_by_key(|(_, _, uri)| uri.len())
        {
            Some((p, _, uri)) => paths::rebase(host, uri, p),
            None if is_under(host, &self.root) => paths::rebase(host, &self.root, "/"),
            None => return Err(Unseen::Outside),
        };
        if self.host(&e).as_deref() == Some(host) {
            return Ok(e);
        }
        let mount = self
            .mount_of(&e)
            .map(|(p, _, _)| p.clone())
            .unwrap_or_default();
        Err(Unseen::Hidden { enclave: e, mount })
    }

    /// Whether `enclave` is a mount point or a directory above one.
    fn leads_to_mount(&self, enclave: &str) -> bool {
        self.mounts.iter().any(|(p, _, _)| is_under(p, enclave))
    }

    /// Whether something is mounted at exactly `enclave` (directory walks
    /// do not cross into mounts).
    fn is_mount_point(&self, enclave: &str) -> bool {
        self.mounts.iter().any(|(p, _, _)| p == enclave)
    }

    /// The enclave path of an entry's host path, or the error naming it.
    fn entry_path(
        &self,
        origin: &str,
        key: &'static str,
        host: &str,
    ) -> Result<String, ResolveError> {
        self.enclave(host).map_err(|u| match u {
            Unseen::Outside => ResolveError::NotVisible {
                origin: origin.to_string(),
                key,
                path: host.to_string(),
                root: self.root.clone(),
            },
            Unseen::Hidden { enclave, mount } => ResolveError::Hidden {
                origin: origin.to_string(),
                key,
                path: host.to_string(),
                enclave,
                mount,
            },
        })
    }
}

struct Expander<'a> {
    origin: &'a str,
    view: &'a View,
    /// What is at each enclave path looked at.
    nodes: HashMap<String, Node>,
    /// Real enclave path of every trusted file -> sha256 expectations
    /// (entry, digest).
    files: BTreeMap<String, (String, Vec<(String, Digest32)>)>,
    /// Enclave path of each link -> its target as readlink returns it.
    symlinks: BTreeMap<String, String>,
    /// Enclave directories listed.
    walked: HashSet<String>,
    warnings: Vec<String>,
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

enum Pat {
    Any,
    One(glob::Pattern),
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn closure(pats: &[Pat], states: &mut Vec<usize>) {
    let mut i = 0;
    while i < states.len() {
        let s = states[i];
        if s < pats.len() && matches!(pats[s], Pat::Any) && !states.contains(&(s + 1)) {
            states.push(s + 1);
        }
        i += 1;
    }
    states.sort_unstable();
    states.dedup();
}

fn step(pats: &[Pat], states: &[usize], name: &str) -> Vec<usize> {
    let mut next = Vec::new();
    for &s in states {
        match pats.get(s) {
            Some(Pat::Any) => next.push(s),
            Some(Pat::One(p)) if p.matches_with(name, MATCH) => next.push(s + 1),
            _ => {}
        }
    }
    closure(pats, &mut next);
    next
}

impl<'a> Expander<'a> {
    fn new(origin: &'a str, view: &'a View) -> Self {
        Expander {
            origin,
            view,
            nodes: HashMap::new(),
            files: BTreeMap::new(),
            symlinks: BTreeMap::new(),
            walked: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// What is at the enclave path `path` (nothing, inside a tmpfs).
    fn lstat(&mut self, path: &str) -> io::Result<Node> {
        if let Some(n) = self.nodes.get(path) {
            return Ok(n.clone());
        }
        // A mount point, or a directory on the way to one, is there in the
        // enclave even if the host has nothing (or a tmpfs) at that path.
        let on_the_way = self.view.leads_to_mount(path);
        let Some(host) = self.view.host(path) else {
            return Ok(if on_the_way { Node::Dir } else { Node::Missing });
        };
        let node = match std::fs::symlink_metadata(&host) {
            Ok(md) if md.is_dir() => Node::Dir,
            Ok(md) if md.is_file() => Node::File,
            Ok(md) if md.file_type().is_symlink() => {
                match std::fs::read_link(&host)?.into_os_string().into_string() {
                    Ok(t) => Node::Symlink(t),
                    Err(_) => Node::BadSymlink,
                }
            }
            Ok(md) => Node::Other(describe_type(md.file_type())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Node::Missing,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Node::Missing,
            Err(e) => return Err(e),
        };
        let node = match node {
            Node::Missing if on_the_way => Node::Dir,
            n => n,
        };
        self.nodes.insert(path.to_string(), node.clone());
        Ok(node)
    }

    /// Follow every symlink on the enclave path `path` (absolute,
    /// normalized), as the LibOS does. Returns the links met (path, target)
    /// and the real enclave path with what is there.
    fn resolve_path(&mut self, path: &str) -> (Links, Result<(String, Node), Fail>) {
        let mut links = Vec::new();
        let mut pending: Vec<String> = path
            .rsplit('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let mut cur = String::from("/");
        let mut kind = Node::Dir;
        while let Some(c) = pending.pop() {
            if c == "." {
                continue;
            }
            if !matches!(kind, Node::Dir) {
                return (links, Err(Fail::NotDir { at: cur }));
            }
            if c == ".." {
                cur = match cur.rfind('/') {
                    Some(0) | None => "/".to_string(),
                    Some(i) => cur[..i].to_string(),
                };
                continue;
            }
            let cand = join(&cur, &c);
            let node = match self.lstat(&cand) {
                Ok(n) => n,
                Err(err) => return (links, Err(Fail::Io { at: cand, err })),
            };
            match node {
                Node::Symlink(target) => {
                    links.push((cand, target.clone()));
                    if links.len() > MAX_LINKS {
                        return (links, Err(Fail::Loop));
                    }
                    if target.starts_with('/') {
                        cur = "/".to_string();
                    }
                    pending.extend(
                        target
                            .rsplit('/')
                            .filter(|c| !c.is_empty())
                            .map(String::from),
                    );
                    kind = Node::Dir;
                }
                Node::BadSymlink => return (links, Err(Fail::BadLink { at: cand })),
                Node::Missing => return (links, Err(Fail::Missing { missing: cand })),
                other => {
                    cur = cand;
                    kind = other;
                }
            }
        }
        (links, Ok((cur, kind)))
    }

    fn record(&mut self, links: Vec<(String, String)>) {
        self.symlinks.extend(links);
    }

    fn add_file(&mut self, real: String, entry: &str, sha: Option<Digest32>) {
        let slot = self
            .files
            .entry(real)
            .or_insert_with(|| (entry.to_string(), Vec::new()));
        if let Some(d) = sha {
            slot.1.push((entry.to_string(), d));
        }
    }

    /// `path` is an enclave path; the message names its host path.
    fn unreadable(&self, entry: &str, path: &str, source: io::Error) -> ResolveError {
        ResolveError::Unreadable {
            origin: self.origin.to_string(),
            entry: entry.to_string(),
            path: self.view.shown(path),
            source,
        }
    }

    /// The error for an entry (host path `host`, enclave path `path`) that
    /// did not resolve.
    fn failure(
        &self,
        entry: &str,
        host: &str,
        path: &str,
        fail: Fail,
        links: &[(String, String)],
    ) -> ResolveError {
        let via = links
            .last()
            .map(|(l, t)| {
                format!(
                    " (reached through the symbolic link {} -> {t})",
                    self.view.shown(l)
                )
            })
            .unwrap_or_default();
        let not_found = |detail: String| ResolveError::NotFound {
            origin: self.origin.to_string(),
            entry: entry.to_string(),
            path: host.to_string(),
            detail,
        };
        let shown = |p: &str| match self.view.host(p) {
            Some(h) => h,
            None => format!("{p} (in a tmpfs mount)"),
        };
        match fail {
            Fail::Missing { missing } if missing == path => not_found(String::new()),
            Fail::Missing { missing } => {
                not_found(format!(": {} is missing{via}", shown(&missing)))
            }
            Fail::NotDir { at } => not_found(format!(": {} is not a directory{via}", shown(&at))),
            Fail::Loop => not_found(format!(": too many levels of symbolic links{via}")),
            Fail::BadLink { at } => not_found(format!(
                ": the symbolic link {} has a target that is not UTF-8",
                shown(&at)
            )),
            Fail::Io { at, err } => self.unreadable(entry, &at, err),
        }
    }

    /// Expand one `sgx.trusted_files` entry (a host path or pattern).
    fn entry(&mut self, host: &str, sha: Option<Digest32>) -> Result<(), ResolveError> {
        let entry = format!("file:{host}");
        if has_glob_chars(host) && std::fs::symlink_metadata(host).is_err() {
            return self.glob(host, &entry);
        }
        let path = self
            .view
            .entry_path(self.origin, "sgx.trusted_files", host)?;
        let (links, r) = self.resolve_path(&path);
        let (real, node) = match r {
            Ok(v) => v,
            Err(f) => return Err(self.failure(&entry, host, &path, f, &links)),
        };
        self.record(links);
        match node {
            Node::File => self.add_file(real, &entry, sha),
            Node::Dir => {
                if sha.is_some() {
                    return Err(ResolveError::Sha256NotAFile {
                        origin: self.origin.to_string(),
                        entry,
                        path: host.to_string(),
                        what: "a directory",
                    });
                }
                self.walk_dir(&real, &entry)?;
            }
            Node::Other(what) => {
                return Err(ResolveError::NotAFile {
                    origin: self.origin.to_string(),
                    entry,
                    path: self.view.shown(&real),
                    what,
                })
            }
            Node::Symlink(_) | Node::BadSymlink | Node::Missing => {
                unreachable!("resolve_path follows links")
            }
        }
        Ok(())
    }

    /// List the enclave directory `dir` (on the host).
    fn read_dir(&self, dir: &str, entry: &str) -> Result<std::fs::ReadDir, ResolveError> {
        let host = self.view.host(dir).ok_or_else(|| {
            self.unreadable(
                entry,
                dir,
                io::Error::new(io::ErrorKind::Unsupported, "it is in a tmpfs mount"),
            )
        })?;
        std::fs::read_dir(&host).map_err(|e| self.unreadable(entry, dir, e))
    }

    /// Trust everything below the real enclave directory `dir`. Mount
    /// points below it are not entered.
    fn walk_dir(&mut self, dir: &str, entry: &str) -> Result<(), ResolveError> {
        let mut stack = vec![dir.to_string()];
        while let Some(dir) = stack.pop() {
            if !self.walked.insert(dir.clone()) {
                continue;
            }
            let rd = self.read_dir(&dir, entry)?;
            for de in rd {
                let de = de.map_err(|e| self.unreadable(entry, &dir, e))?;
                let Some(name) = de.file_name().to_str().map(String::from) else {
                    self.warnings.push(format!(
                        "skipped {}/{} (trusted by {entry}): its name is not UTF-8",
                        self.view.shown(&dir),
                        de.file_name().to_string_lossy()
                    ));
                    continue;
                };
                let child = join(&dir, &name);
                if self.view.is_mount_point(&child) {
                    continue;
                }
                let ft = de
                    .file_type()
                    .map_err(|e| self.unreadable(entry, &child, e))?;
                if ft.is_dir() {
                    self.nodes.insert(child.clone(), Node::Dir);
                    stack.push(child);
                } else if ft.is_file() {
                    self.nodes.insert(child.clone(), Node::File);
                    self.add_file(child, entry, None);
                } else if ft.is_symlink() {
                    self.symlink(&child, entry)?;
                } else {
                    self.warnings.push(format!(
                        "skipped {} (trusted by {entry}): it is {}",
                        self.view.shown(&child),
                        describe_type(ft)
                    ));
                }
            }
        }
        Ok(())
    }

    /// A symlink met while walking: record it; trust its target if that is
    /// a file; a directory target is not walked; a dangling link is kept.
    fn symlink(&mut self, link: &str, entry: &str) -> Result<(), ResolveError> {
        let (links, r) = self.resolve_path(link);
        if links.is_empty() {
            // Not a symlink after all (raced with a change), or not UTF-8.
            if let Err(Fail::BadLink { .. }) = r {
                self.warnings.push(format!(
                    "skipped {} (trusted by {entry}): its target is not UTF-8",
                    self.view.shown(link)
                ));
            }
        }
        self.record(links);
        match r {
            Ok((real, Node::File)) => self.add_file(real, entry, None),
            Ok(_) => {}
            Err(Fail::Io { at, err }) => return Err(self.unreadable(entry, &at, err)),
            Err(Fail::BadLink { at }) if at != link => {
                self.warnings.push(format!(
                    "{} (trusted by {entry}) leads to {}, whose target is not UTF-8",
                    self.view.shown(link),
                    self.view.shown(&at)
                ));
            }
            Err(_) => {} // dangling: the link itself is recorded
        }
        Ok(())
    }

    fn glob(&mut self, pattern: &str, entry: &str) -> Result<(), ResolveError> {
        let invalid = |message: String| ResolveError::Invalid {
            origin: self.origin.to_string(),
            message,
        };
        let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let first = comps
            .iter()
            .position(|c| has_glob_chars(c))
            .unwrap_or(comps.len());
        let host_prefix = normalize_abs(&format!("/{}", comps[..first].join("/")));
        let prefix = self
            .view
            .entry_path(self.origin, "sgx.trusted_files", &host_prefix)?;
        let mut pats = Vec::with_capacity(comps.len() - first);
        for c in &comps[first..] {
            pats.push(if *c == "**" {
                Pat::Any
            } else {
                Pat::One(
                    glob::Pattern::new(c)
                        .map_err(|e| invalid(format!("{entry}: invalid pattern: {}", e.msg)))?,
                )
            });
        }
        let no_match = || ResolveError::NoMatch {
            origin: self.origin.to_string(),
            entry: entry.to_string(),
        };
        let (links, r) = self.resolve_path(&prefix);
        let root = match r {
            Ok((real, Node::Dir)) => real,
            Ok(_)
            | Err(Fail::Missing { .. } | Fail::NotDir { .. } | Fail::Loop | Fail::BadLink { .. }) => {
                return Err(no_match())
            }
            Err(Fail::Io { at, err }) => return Err(self.unreadable(entry, &at, err)),
        };
        self.record(links);
        let mut start = vec![0];
        closure(&pats, &mut start);
        if start.contains(&pats.len()) {
            return self.walk_dir(&root, entry);
        }
        let mut matched = 0usize;
        let mut stack = vec![(root, start)];
        while let Some((dir, states)) = stack.pop() {
            let rd = self.read_dir(&dir, entry)?;
            for de in rd {
                let de = de.map_err(|e| self.unreadable(entry, &dir, e))?;
                let Some(name) = de.file_name().to_str().map(String::from) else {
                    self.warnings.push(format!(
                        "skipped {}/{} (matched against {entry}): its name is not UTF-8",
                        self.view.shown(&dir),
                        de.file_name().to_string_lossy()
                    ));
                    continue;
                };
                let next = step(&pats, &states, &name);
                if next.is_empty() {
                    continue;
                }
                let child = join(&dir, &name);
                if self.view.is_mount_point(&child) {
                    continue;
                }
                let ft = de
                    .file_type()
                    .map_err(|e| self.unreadable(entry, &child, e))?;
                if next.contains(&pats.len()) {
                    matched += 1;
                    if ft.is_dir() {
                        self.walk_dir(&child, entry)?;
                    } else if ft.is_file() {
                        self.add_file(child, entry, None);
                    } else if ft.is_symlink() {
                        self.symlink(&child, entry)?;
                    } else {
                        self.warnings.push(format!(
                            "skipped {} (matched by {entry}): it is {}",
                            self.view.shown(&child),
                            describe_type(ft)
                        ));
                    }
                } else if ft.is_dir() {
                    stack.push((child, next));
                }
            }
        }
        if matched == 0 {
            return Err(no_match());
        }
        Ok(())
    }
}

/// Check a manifest that may have been built in code, and normalize its paths.
fn checked(m: &Manifest) -> Result<Manifest, ResolveError> {
    let bad = |message: String| ResolveError::Invalid {
        origin: m.origin.clone(),
        message,
    };
    let abs = |key: &str, p: &str| -> Result<String, ResolveError> {
        if !p.starts_with('/') || p.contains('\0') {
            return Err(bad(format!(
                "{key} \"{p}\" must be an absolute path without NUL characters"
            )));
        }
        Ok(normalize_abs(p))
    };
    let mut m = m.clone();
    m.entrypoint = match m.entrypoint.strip_prefix("file:") {
        Some(host) => format!("file:{}", abs("libos.entrypoint", host)?),
        None if m.entrypoint.is_empty() => {
            return Err(bad(
                "libos.entrypoint is empty; set it to the program to run".to_string(),
            ))
        }
        None => abs("libos.entrypoint", &m.entrypoint)?,
    };
    m.fs_root = abs("fs.root", &m.fs_root)?;
    m.start_dir = abs("fs.start_dir", &m.start_dir)?;
    for mt in &mut m.mounts {
        mt.path = abs("fs.mounts path", &mt.path)?;
        if mt.path == "/" {
            return Err(bad(
                "a mount cannot be at `/`; set fs.root instead".to_string()
            ));
        }
        match mt.kind {
            MountKind::Tmpfs => {
                mt.uri.clear();
                mt.key_name.clear();
            }
            MountKind::Chroot => {
                mt.uri = abs("fs.mounts uri", &mt.uri)?;
                mt.key_name.clear();
            }
            MountKind::Encrypted => mt.uri = abs("fs.mounts uri", &mt.uri)?,
        }
    }
    for t in &mut m.trusted_files {
        t.path = abs("sgx.trusted_files entry", &t.path)?;
        crate::parse::check_pattern(t)
            .map_err(|e| bad(format!("sgx.trusted_files entry \"{}\": {e}", t.path)))?;
    }
    for a in &mut m.allowed_files {
        *a = abs("sgx.allowed_files entry", a)?;
    }
    for (name, v) in &m.env {
        let value_ok = match v {
            crate::EnvValue::Value(s) => !s.contains('\0'),
            crate::EnvValue::Passthrough => true,
        };
        if name.is_empty() || name.contains(['=', '\0']) || !value_ok {
            return Err(bad(format!(
                "environment variable {name:?} has an invalid name or value"
            )));
        }
    }
    if m.argv.iter().any(|a| a.contains('\0')) {
        return Err(bad("loader.argv contains a NUL character".to_string()));
    }
    if !m.enclave_size.is_power_of_two() {
        return Err(bad(format!(
            "sgx.enclave_size ({}) must be a power of two",
            m.enclave_size
        )));
    }
    if m.max_threads == 0 {
        return Err(bad("sgx.max_threads must be at least 1".to_string()));
    }
    if m.stack_size == 0 {
        return Err(bad("sys.stack.size cannot be 0".to_string()));
    }
    if m.ocall_mode == OcallMode::Exitless && m.ocall_workers == 0 {
        return Err(bad(
            "exitless OCALLs need libos.ocall.workers >= 1".to_string()
        ));
    }
    Ok(m)
}

/// The enclave path of the entrypoint.
fn entrypoint_in_enclave(m: &Manifest, view: &View) -> Result<String, ResolveError> {
    let Some(host) = m.entrypoint.strip_prefix("file:") else {
        return Ok(m.entrypoint.clone());
    };
    match view.enclave(host) {
        Ok(e) => Ok(e),
        Err(Unseen::Outside) => Err(ResolveError::EntrypointNotVisible {
            origin: m.origin.clone(),
            path: host.to_string(),
            root: m.fs_root.clone(),
        }),
        Err(Unseen::Hidden { .. }) => Err(view
            .entry_path(&m.origin, "libos.entrypoint", host)
            .unwrap_err()),
    }
}

/// Which trusted files a snapshot checks at every start because they may
/// be edited in place (with [`ResolveOptions::defer_checks`], the others
/// are checked as the program opens them): those of the program's working
/// directory. A manifest that starts the program in `/` (the default) says
/// nothing of where its project is: there, every file outside the system's
/// own directories, which a package manager changes by replacing files
/// (a new inode, a changed directory), not by editing them.
#[derive(Debug)]
pub(crate) enum Volatile {
    Under(String),
    OutsideSystem,
}

/// Enclave directories whose files only a package manager changes.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
];

impl Volatile {
    fn of(m: &Manifest) -> Volatile {
        if m.start_dir == "/" {
            Volatile::OutsideSystem
        } else {
            Volatile::Under(m.start_dir.clone())
        }
    }

    /// Whether the file at enclave path `path` is checked at every start.
    fn holds(&self, path: &str) -> bool {
        match self {
            Volatile::Under(dir) => is_under(path, dir),
            Volatile::OutsideSystem => !SYSTEM_DIRS.iter().any(|d| is_under(path, d)),
        }
    }
}

/// Expand and hash the trusted files of `m`, giving the resolved manifest
/// (whose `encode()` is what gets measured), the chunk digests of every
/// trusted file and statistics.
pub fn resolve(m: &Manifest, opts: &ResolveOptions) -> Result<Resolution, ResolveError> {
    let started = Instant::now();
    let m = checked(m)?;
    let view = View::new(&m);
    let entrypoint = entrypoint_in_enclave(&m, &view)?;
    // Allowed entries: enclave paths. One that a mount hides (Gramine
    // manifests often allow /tmp and mount a tmpfs there) means nothing to
    // the enclave: dropped, with a warning.
    let mut allowed_files = Vec::with_capacity(m.allowed_files.len());
    let mut early_warnings = Vec::new();
    for a in &m.allowed_files {
        match view.enclave(a) {
            Ok(e) => allowed_files.push(e),
            Err(Unseen::Hidden { enclave, mount }) => early_warnings.push(format!(
                "{}: sgx.allowed_files entry \"file:{a}\" is ignored: it would be {enclave} in the \
                 enclave, but the mount at {mount} hides it",
                m.origin
            )),
            Err(Unseen::Outside) => {
                return Err(view
                    .entry_path(&m.origin, "sgx.allowed_files", a)
                    .unwrap_err());
            }
        }
    }
    let threads = match opts.threads {
        0 => crate::cpus(),
        n => n,
    };
    let cache_dir = opts.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let host_root = std::path::PathBuf::from(&m.fs_root);
    // Globs depend on directory listings the snapshot does not stamp.
    let snapshot_ok = !m
        .trusted_files
        .iter()
        .any(|t| t.path.contains(['*', '?', '[']));
    let volatile = Volatile::of(&m);
    let snap_key = crate::snapshot::key(&m, &volatile);
    if snapshot_ok {
        if let Some(mut r) =
            crate::snapshot::load(&cache_dir, &snap_key, threads, opts.defer_checks)
        {
            r.host_root = host_root;
            // This run's environment and arguments (not part of the key).
            r.manifest.env = resolved_env(&m);
            if !m.argv.is_empty() {
                r.manifest.argv = m.argv.clone();
            }
            r.manifest.canonicalize();
            return Ok(r);
        }
    }

    let mut ex = Expander::new(&m.origin, &view);
    ex.warnings = early_warnings;
    for t in &m.trusted_files {
        ex.entry(&t.path, t.sha256)?;
    }
    // The entrypoint: record the links leading to it, or warn that the
    // LibOS will not be able to load it.
    let (links, r) = ex.resolve_path(&entrypoint);
    match r {
        Ok((real, Node::File)) if ex.files.contains_key(&real) => ex.record(links),
        _ if allowed_files.iter().any(|a| is_under(&entrypoint, a)) => {}
        _ => {
            let host = match view.host(&entrypoint) {
                Some(h) => format!("host file {h}"),
                None => "in a tmpfs mount".to_string(),
            };
            ex.warnings.push(format!(
                "{}: libos.entrypoint {entrypoint} ({host}) is not a trusted file; add it to \
                 sgx.trusted_files or the LibOS will refuse to run it",
                m.origin
            ))
        }
    }

    // The host path of every trusted file, in the order of `ex.files`.
    let host_paths: Vec<String> = ex.files.keys().map(|e| view.shown(e)).collect();
    let jobs: Vec<Job> = ex
        .files
        .values()
        .zip(&host_paths)
        .map(|((entry, expect), path)| Job {
            path,
            entry,
            want_plain: !expect.is_empty(),
        })
        .collect();
    // Stamp every host path looked at before hashing (see snapshot.rs).
    let looked = if snapshot_ok {
        let mut v: Vec<String> = ex
            .nodes
            .keys()
            .chain(ex.walked.iter())
            .filter_map(|e| view.host(e))
            .collect();
        v.sort();
        v.dedup();
        let walked: HashSet<String> = ex.walked.iter().filter_map(|e| view.host(e)).collect();
        let volatile: HashSet<String> = ex
            .nodes
            .keys()
            .filter(|e| volatile.holds(e))
            .filter_map(|e| view.host(e))
            .collect();
        Some(crate::snapshot::Looked::stamp(
            v,
            |p| walked.contains(p),
            |p| volatile.contains(p),
            threads,
        ))
    } else {
        None
    };
    let out = hash::hash_all(&jobs, &m.origin, &cache_dir, threads, opts.progress)?;

    let mut trusted_files = Vec::with_capacity(jobs.len());
    let mut chunks = ChunkIndex::default();
    let mut bytes = 0;
    for (((path, (_, expect)), d), host) in ex.files.iter().zip(&out.digests).zip(&host_paths) {
        for (entry, want) in expect {
            if d.plain.as_ref() != Some(want) {
                return Err(ResolveError::Sha256Mismatch {
                    origin: m.origin.clone(),
                    entry: entry.clone(),
                    path: host.clone(),
                    expected: hex(want),
                    actual: d.plain.as_ref().map(hex).unwrap_or_default(),
                });
            }
        }
        bytes += d.size;
        trusted_files.push(TrustedFile {
            path: path.clone(),
            size: d.size,
            digest: d.root,
        });
        chunks.map.insert(path.clone(), d.chunks.clone());
    }
    let trusted_symlinks: Vec<TrustedSymlink> = ex
        .symlinks
        .iter()
        .map(|(path, target)| TrustedSymlink {
            path: path.clone(),
            target: target.clone(),
        })
        .collect();

    let argv = if m.argv.is_empty() && !m.use_cmdline_argv {
        vec![entrypoint.clone()]
    } else {
        m.argv.clone()
    };
    let mut manifest = ResolvedManifest {
        entrypoint,
        argv,
        use_cmdline_argv: m.use_cmdline_argv,
        env: resolved_env(&m),
        log_level: m.log_level,
        // Where the root is on the host is not measured (the host says at
        // boot); every path above is an enclave path.
        fs_root: "/".to_string(),
        mounts: m.mounts.clone(),
        start_dir: m.start_dir.clone(),
        trusted_files: trusted_files.into(),
        trusted_symlinks,
        allowed_files,
        enclave_size: m.enclave_size,
        max_threads: m.max_threads,
        edmm: m.edmm,
        debug: m.debug,
        isvprodid: m.isvprodid,
        isvsvn: m.isvsvn,
        stack_size: m.stack_size,
        brk_max_size: m.brk_max_size,
        max_processes: m.max_processes,
        ocall_mode: m.ocall_mode,
        ocall_workers: m.ocall_workers,
    };
    manifest.canonicalize();

    let mut warnings = ex.warnings;
    warnings.extend(out.warnings);
    let stats = ResolveStats {
        files: manifest.trusted_files.len(),
        symlinks: manifest.trusted_symlinks.len(),
        bytes,
        bytes_hashed: out.bytes_hashed,
        cache_hits: out.cache_hits,
        elapsed: started.elapsed(),
        warnings,
    };
    let res = Resolution {
        manifest,
        chunks,
        stats,
        host_root,
        unchecked: Default::default(),
        files_key: snap_key.clone(),
    };
    if let Some(looked) = looked.filter(|_| res.stats.warnings.is_empty()) {
        crate::snapshot::store(&cache_dir, &snap_key, &looked, &res);
    }
    Ok(res)
}

fn resolved_env(m: &Manifest) -> Vec<EnvVar> {
    m.env
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn hex(d: &Digest32) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &str) -> Vec<Pat> {
        p.split('/')
            .map(|c| {
                if c == "**" {
                    Pat::Any
                } else {
                    Pat::One(glob::Pattern::new(c).unwrap())
                }
            })
            .collect()
    }

    fn matches(pattern: &str, path: &str) -> bool {
        let p = pats(pattern);
        let mut s = vec![0];
        closure(&p, &mut s);
        for c in path.split('/') {
            s = step(&p, &s, c);
        }
        s.contains(&p.len())
    }

    #[test]
    fn component_globs() {
        assert!(matches("*.py", "a.py"));
        assert!(!matches("*.py", "d/a.py"));
        assert!(matches("**/*.py", "a.py"));
        assert!(matches("**/*.py", "d/e/a.py"));
        assert!(matches("d/**", "d/e/f"));
        assert!(matches("d/**/f", "d/f"));
        assert!(!matches("d/**/f", "d/g"));
        assert!(matches("lib?/[ab]*", "lib6/beta"));
        assert!(!matches("lib?/[ab]*", "lib6/gamma"));
        assert!(matches("*", ".hidden"));
    }
}
