//! Every look synthesis takes at the host's files goes through here, so
//! that what it saw can be written down and checked again later: a
//! synthesized manifest is reused (`replay.rs`) only while each of those
//! looks would still see the same thing.
//!
//! A look is recorded as what it depends on: the stamp of a path (stat or
//! lstat: size, times, inode, device; or "nothing there"), or where a path
//! really leads (realpath). Reading a file or listing a directory records
//! its stamp: an edit changes the file's times, an entry added, removed or
//! renamed changes the directory's. Stamps are taken before the bytes are
//! read, so a file changed while synthesis reads it is caught next time.
//!
//! The log is per thread and off unless a [`Recording`] is running; the
//! functions work the same either way. (clippy's `disallowed_methods`, set
//! for the synth module, keeps direct `std::fs` calls out of it.)
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{DirEntry, File, Metadata, ReadDir};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::{stamp_of, Stamp};

/// Past this many looks a synthesis is not recorded: its record would cost
/// about as much to check as synthesizing again (a working directory of
/// thousands of files).
const MAX_FACTS: usize = 4096;

/// One thing synthesis relied on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fact {
    /// stat(2) of the path (links followed) gave this stamp (`None`:
    /// nothing there).
    Stat(String, Option<Stamp>),
    /// lstat(2) of the path gave this stamp.
    Lstat(String, Option<Stamp>),
    /// realpath(3) of the path gave this (`None`: it failed).
    Real(String, Option<String>),
}

impl Fact {
    /// Whether looking again sees the same.
    pub(crate) fn holds(&self) -> bool {
        match self {
            Fact::Stat(p, s) => std::fs::metadata(p).ok().map(|m| stamp_of(&m)) == *s,
            Fact::Lstat(p, s) => std::fs::symlink_metadata(p).ok().map(|m| stamp_of(&m)) == *s,
            Fact::Real(p, r) => real_string(std::fs::canonicalize(p)) == *r,
        }
    }
}

#[derive(Default)]
struct Log {
    stats: HashMap<String, Option<Stamp>>,
    lstats: HashMap<String, Option<Stamp>>,
    reals: HashMap<String, Option<String>>,
    /// A path looked at twice gave two answers: it changed while synthesis
    /// ran, so what synthesis made of it may be inconsistent.
    unsteady: bool,
}

thread_local! {
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// Records this thread's looks until [`Recording::finish`] (or drop).
pub(crate) struct Recording(());

impl Recording {
    pub(crate) fn start() -> Recording {
        LOG.with(|l| *l.borrow_mut() = Some(Log::default()));
        Recording(())
    }

    /// What synthesis relied on, sorted; `None` when it cannot be relied
    /// on again (something changed while it ran, or it looked at too much).
    pub(crate) fn finish(self) -> Option<Vec<Fact>> {
        let log = LOG.with(|l| l.borrow_mut().take())?;
        if log.unsteady || log.stats.len() + log.lstats.len() + log.reals.len() > MAX_FACTS {
            return None;
        }
        // A path whose lstat and stat found the same inode is no symbolic
        // link: checking its lstat again checks both.
        let lstats = log.lstats;
        let stats: Vec<Fact> = log
            .stats
            .into_iter()
            .filter(|(p, s)| s.is_none() || lstats.get(p) != Some(s))
            .map(|(p, s)| Fact::Stat(p, s))
            .collect();
        let mut facts: Vec<Fact> = stats
            .into_iter()
            .chain(lstats.into_iter().map(|(p, s)| Fact::Lstat(p, s)))
            .chain(log.reals.into_iter().map(|(p, r)| Fact::Real(p, r)))
            .collect();
        facts.sort_by(|a, b| key_of(a).cmp(&key_of(b)));
        Some(facts)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        LOG.with(|l| l.borrow_mut().take());
    }
}

/// Run `f` with this thread's looks not recorded (for work whose result
/// is recorded otherwise: by the stamps its own cache record keeps).
pub(crate) fn unrecorded<T>(f: impl FnOnce() -> T) -> T {
    let saved = LOG.with(|l| l.borrow_mut().take());
    let r = f();
    LOG.with(|l| *l.borrow_mut() = saved);
    r
}

fn key_of(f: &Fact) -> (&str, u8) {
    match f {
        Fact::Stat(p, _) => (p, 0),
        Fact::Lstat(p, _) => (p, 1),
        Fact::Real(p, _) => (p, 2),
    }
}

fn note<V: PartialEq>(
    map: impl FnOnce(&mut Log) -> (&mut HashMap<String, V>, &mut bool),
    path: &Path,
    value: V,
) {
    LOG.with(|l| {
        let mut l = l.borrow_mut();
        let Some(log) = l.as_mut() else {
            return;
        };
        let (m, unsteady) = map(log);
        let path = path.to_string_lossy().into_owned();
        match m.get(&path) {
            Some(seen) if *seen != value => *unsteady = true,
            Some(_) => {}
            None => {
                m.insert(path, value);
            }
        }
    });
}

fn note_stat(path: &Path, m: Option<&Metadata>) {
    note(|l| (&mut l.stats, &mut l.unsteady), path, m.map(stamp_of));
}

fn note_lstat(path: &Path, m: Option<&Metadata>) {
    note(|l| (&mut l.lstats, &mut l.unsteady), path, m.map(stamp_of));
}

fn real_string(r: io::Result<PathBuf>) -> Option<String> {
    r.ok().map(|p| p.to_string_lossy().into_owned())
}

/// stat(2), recorded.
pub(crate) fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    let m = std::fs::metadata(path);
    note_stat(path, m.as_ref().ok());
    m
}

/// lstat(2), recorded.
pub(crate) fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    let m = std::fs::symlink_metadata(path);
    note_lstat(path, m.as_ref().ok());
    m
}

/// lstat(2) of a directory entry, recorded.
pub(crate) fn entry_metadata(entry: &DirEntry) -> io::Result<Metadata> {
    let m = entry.metadata();
    note_lstat(&entry.path(), m.as_ref().ok());
    m
}

/// Open a file for reading; its stamp is recorded (that of the file
/// opened).
pub(crate) fn open(path: impl AsRef<Path>) -> io::Result<File> {
    let path = path.as_ref();
    match File::open(path) {
        Ok(f) => {
            let m = f.metadata();
            note_stat(path, m.as_ref().ok());
            Ok(f)
        }
        Err(e) => {
            // Why it failed (missing, a directory, no permission) is in the
            // path's stamp.
            let _ = metadata(path);
            Err(e)
        }
    }
}

/// A whole file, recorded.
pub(crate) fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open(path)?, &mut bytes)?;
    Ok(bytes)
}

/// A whole text file, recorded.
pub(crate) fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A directory's entries; its stamp is recorded (taken first).
pub(crate) fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let _ = metadata(path);
    std::fs::read_dir(path)
}

/// Where a symbolic link points; its lstat stamp is recorded.
pub(crate) fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let _ = symlink_metadata(path);
    std::fs::read_link(path)
}

/// realpath(3), recorded.
pub(crate) fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let r = std::fs::canonicalize(path);
    let seen = match &r {
        Ok(p) => Some(p.to_string_lossy().into_owned()),
        Err(_) => None,
    };
    note(|l| (&mut l.reals, &mut l.unsteady), path, seen);
    r
}

/// Whether this user may execute `path` (access(2) X_OK), whose metadata
/// the caller looked at with [`metadata`]: that look's stamp covers the
/// answer (a mode or owner change changes the ctime).
pub(crate) fn executable(path: &Path, _seen: &Metadata) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_are_recorded_and_checked_again() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        let link = d.path().join("l");
        std::fs::write(&file, "one").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let missing = d.path().join("missing");

        let rec = Recording::start();
        assert_eq!(read(&file).unwrap(), b"one");
        assert!(metadata(&missing).is_err());
        assert_eq!(canonicalize(&link).unwrap(), file.canonicalize().unwrap());
        let _ = read_dir(d.path()).unwrap();
        let facts = rec.finish().unwrap();
        assert_eq!(facts.len(), 4, "{facts:?}");
        assert!(facts.iter().all(Fact::holds));

        // Each change breaks the fact that depends on it.
        std::fs::write(&missing, "").unwrap();
        let broken: Vec<&Fact> = facts.iter().filter(|f| !f.holds()).collect();
        assert!(
            broken
                .iter()
                .any(|f| matches!(f, Fact::Stat(p, None) if p.ends_with("missing"))),
            "{broken:?}"
        );
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        assert!(facts
            .iter()
            .any(|f| matches!(f, Fact::Real(_, _)) && !f.holds()));
        std::fs::write(&file, "two!").unwrap();
        assert!(facts
            .iter()
            .any(|f| matches!(f, Fact::Stat(p, Some(_)) if p.ends_with("/f")) && !f.holds()));
    }

    /// A file looked at with stat and lstat needs one check; a link needs
    /// both (lstat sees the link, stat its target).
    #[test]
    fn a_link_keeps_both_looks_a_file_one() {
        let d = tempfile::tempdir().unwrap();
        let (a, link) = (d.path().join("a"), d.path().join("l"));
        std::fs::write(&a, "a").unwrap();
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let rec = Recording::start();
        for p in [&a, &link] {
            metadata(p).unwrap();
            symlink_metadata(p).unwrap();
        }
        let facts = rec.finish().unwrap();
        let kinds: Vec<(&str, bool)> = facts
            .iter()
            .map(|f| match f {
                Fact::Stat(p, _) => (p.as_str(), true),
                Fact::Lstat(p, _) => (p.as_str(), false),
                Fact::Real(..) => unreachable!(),
            })
            .collect();
        let (a, link) = (a.to_str().unwrap(), link.to_str().unwrap());
        assert_eq!(kinds, [(a, false), (link, true), (link, false)]);
        // Editing the target breaks the file's look and the link's stat,
        // not the link's lstat: a link kept with its lstat alone would hide
        // the edit.
        std::fs::write(d.path().join("a"), "changed").unwrap();
        assert!(!facts[0].holds() && !facts[1].holds() && facts[2].holds());
    }

    #[test]
    fn a_path_that_changes_while_recording_spoils_the_record() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        let rec = Recording::start();
        assert!(metadata(&file).is_err());
        std::fs::write(&file, "now here").unwrap();
        assert!(metadata(&file).is_ok());
        assert!(rec.finish().is_none());
    }

    #[test]
    fn nothing_is_recorded_outside_a_recording() {
        let d = tempfile::tempdir().unwrap();
        let _ = metadata(d.path());
        let rec = Recording::start();
        assert_eq!(rec.finish().unwrap(), Vec::new());
    }
}
