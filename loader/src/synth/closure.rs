//! The shared objects ld.so loads for a program: PT_INTERP and DT_NEEDED,
//! recursively, found the way ld.so finds them.
//!
//! Search order for a DT_NEEDED name without a `/` (glibc's `_dl_map_object`,
//! without LD_LIBRARY_PATH, which conf-run drops):
//! 1. if the object asking has no DT_RUNPATH: its DT_RPATH, then the
//!    DT_RPATH of each object above it in the chain that loaded it (those
//!    without DT_RUNPATH), up to the executable;
//! 2. the object's DT_RUNPATH;
//! 3. `/etc/ld.so.cache`;
//! 4. the default directories.
//!
//! Steps 3 and 4 are skipped for an object marked DF_1_NODEFLIB. `$ORIGIN`
//! is the directory of the object (for the executable, of its real path, as
//! the kernel reports it to ld.so), `$LIB` is tried as both `lib64` and
//! `lib/x86_64-linux-gnu`, `$PLATFORM` is `x86_64`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::cache::{self, Stamp};
use super::elf::{self, ElfError, ElfInfo, FileKind};
use super::ldcache::LdCache;
use super::observe;
use super::paths::{join_lexical, parent};
use super::SynthError;

/// ld.so's default directories when the cache has no answer.
pub(crate) const DEFAULT_DIRS: &[&str] = &[
    "/lib64",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// Whether a missing piece is an error or only worth a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The program cannot start without it: not finding it is an error.
    Required,
    /// Loaded with dlopen (extension modules, NSS modules, ...): the program
    /// starts without it, so a missing piece is only noted.
    Optional,
}

/// Something optional that could not be added, for the notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub what: String,
    pub why: String,
    /// A library name that was not found on the search path (rather than a
    /// file that could not be read).
    pub name_not_found: bool,
}

struct Work {
    path: String,
    /// Expanded DT_RPATH directories of the objects above, nearest first.
    chain: Rc<Vec<String>>,
    need: Need,
    /// The executable: `$ORIGIN` is the directory of its real path.
    main: bool,
    /// Who asked for it (for messages).
    by: Option<String>,
}

/// Most ELF files whose facts are kept between starts.
const MEMORY_ENTRIES: usize = 4096;

/// The closure being built.
pub(crate) struct Linker {
    cache: Option<LdCache>,
    cwd: PathBuf,
    parsed: HashMap<String, Arc<ElfInfo>>,
    system: HashMap<String, Option<Vec<String>>>,
    visited: HashSet<String>,
    /// Objects added so far by file name and SONAME: ld.so does not search
    /// for a name an object already loaded has.
    loaded: HashMap<String, String>,
    /// Every object to trust (paths as ld.so opens them; not canonicalized).
    pub objects: BTreeSet<String>,
    pub skipped: Vec<Skipped>,
    /// What earlier starts parsed, by path, with the file's stamp then
    /// ([`Linker::with_memory`]): Python's extension modules alone are ~100
    /// ELF files to open and read at every start otherwise.
    remembered: HashMap<String, (Stamp, Arc<ElfInfo>)>,
    /// What stat said of each path asked about (a library found in the
    /// cache is checked to be a file, then stamped: one call, not two).
    stats: HashMap<String, Option<std::fs::Metadata>>,
    /// Where `remembered` is kept, and whether this start learned more.
    memory_file: Option<PathBuf>,
    learned: bool,
}

impl Linker {
    pub(crate) fn new(cache: Option<LdCache>, cwd: &Path) -> Linker {
        Linker {
            cache,
            cwd: cwd.to_path_buf(),
            parsed: HashMap::new(),
            system: HashMap::new(),
            visited: HashSet::new(),
            loaded: HashMap::new(),
            objects: BTreeSet::new(),
            skipped: Vec::new(),
            remembered: HashMap::new(),
            stats: HashMap::new(),
            memory_file: None,
            learned: false,
        }
    }

    /// Reuse the ELF facts earlier starts stored in `cache_dir` (for files
    /// whose stamp still matches), and store what this one learns
    /// ([`Linker::save_memory`]).
    pub(crate) fn with_memory(mut self, cache_dir: &Path) -> Linker {
        let file = cache::record_path_as(cache_dir, "elf", "dynamic-linking facts", "bin");
        #[allow(clippy::disallowed_methods)] // conf's own memory, not an input
        let stored = std::fs::read(&file)
            .ok()
            .and_then(|b| super::elf_memory::decode(&b))
            .unwrap_or_default();
        self.remembered = stored
            .into_iter()
            .map(|(p, s, i)| (p, (s, Arc::new(i))))
            .collect();
        self.memory_file = Some(file);
        self
    }

    /// Store the ELF facts for the next start, if this one parsed any file
    /// anew (a cache that cannot be written costs speed, not correctness).
    pub(crate) fn save_memory(&self) {
        let Some(file) = &self.memory_file else {
            return;
        };
        if !self.learned {
            return;
        }
        // Kept small: past the bound, only what this start used survives.
        let keep_all = self.remembered.len() <= MEMORY_ENTRIES;
        let all: Vec<(&String, &Stamp, &ElfInfo)> = self
            .remembered
            .iter()
            .filter(|(p, _)| keep_all || self.parsed.contains_key(*p))
            .map(|(p, (s, i))| (p, s, i.as_ref()))
            .collect();
        if cache::store_bytes(file, &super::elf_memory::encode(&all)).is_ok() {
            // The JSON form earlier versions kept.
            let _ = std::fs::remove_file(file.with_extension("json"));
        }
    }

    /// stat(2) of `path`, asked once.
    fn stat(&mut self, path: &str) -> Option<&std::fs::Metadata> {
        self.stats
            .entry(path.to_string())
            .or_insert_with(|| observe::metadata(path).ok())
            .as_ref()
    }

    fn is_file(&mut self, path: &str) -> bool {
        self.stat(path).is_some_and(|m| m.is_file())
    }

    /// The ELF facts of `path`, parsed once.
    pub(crate) fn info(&mut self, path: &str) -> Result<Arc<ElfInfo>, ElfError> {
        if let Some(i) = self.parsed.get(path) {
            return Ok(i.clone());
        }
        // Stamped before reading: a file changed while it is read gets
        // another stamp next time, and is read again.
        let stamp = self.stat(path).map(cache::stamp_of);
        if let (Some(now), Some((then, i))) = (&stamp, self.remembered.get(path)) {
            if now == then {
                let i = i.clone();
                self.parsed.insert(path.to_string(), i.clone());
                return Ok(i);
            }
        }
        let info = match elf::read_kind(Path::new(path))? {
            FileKind::Elf(i) => Arc::new(i),
            _ => return Err(ElfError::Unsupported("it is not an ELF file".to_string())),
        };
        self.parsed.insert(path.to_string(), info.clone());
        if let Some(stamp) = stamp.filter(|_| self.memory_file.is_some()) {
            self.remembered
                .insert(path.to_string(), (stamp, info.clone()));
            self.learned = true;
        }
        Ok(info)
    }

    /// Seed the parse memo with what the caller already read.
    pub(crate) fn remember(&mut self, path: &str, info: ElfInfo) {
        self.parsed.insert(path.to_string(), Arc::new(info));
    }

    /// Add the executable `path` (absolute) and everything ld.so loads for it.
    pub(crate) fn add_program(&mut self, path: &str) -> Result<(), SynthError> {
        self.run(Work {
            path: path.to_string(),
            chain: Rc::new(Vec::new()),
            need: Need::Required,
            main: true,
            by: None,
        })
    }

    /// Add a shared object a program loads with dlopen by path, and its
    /// closure; what is missing is noted in `skipped`, not an error.
    pub(crate) fn add_optional(&mut self, path: &str, by: Option<&str>) {
        let r = self.run(Work {
            path: path.to_string(),
            chain: Rc::new(Vec::new()),
            need: Need::Optional,
            main: false,
            by: by.map(String::from),
        });
        debug_assert!(r.is_ok(), "optional work never fails");
    }

    /// Where dlopen("name") finds a library (the cache, then the default
    /// directories): the best file first.
    pub(crate) fn find_system(&mut self, name: &str) -> Option<Vec<String>> {
        if let Some(r) = self.system.get(name) {
            return r.clone();
        }
        let mut found: Option<Vec<String>> = None;
        if let Some(c) = &self.cache {
            let hits: Vec<String> = c
                .lookup(name)
                .into_iter()
                .filter(|p| self.is_file(p))
                .collect();
            if !hits.is_empty() {
                found = Some(hits);
            }
        }
        if found.is_none() {
            found = DEFAULT_DIRS
                .iter()
                .map(|d| format!("{d}/{name}"))
                .find(|p| elf::is_x86_64_elf(Path::new(p)))
                .map(|p| vec![p]);
        }
        self.system.insert(name.to_string(), found.clone());
        found
    }

    fn run(&mut self, first: Work) -> Result<(), SynthError> {
        let mut stack = vec![first];
        while let Some(w) = stack.pop() {
            if !self.visited.insert(w.path.clone()) {
                continue;
            }
            let info = match self.info(&w.path) {
                Ok(i) => i,
                Err(e) => {
                    if w.need == Need::Optional {
                        self.skipped.push(Skipped {
                            what: w.path.clone(),
                            why: match e {
                                ElfError::Io(e) => format!("cannot be read: {e}"),
                                ElfError::Unsupported(r) => r,
                            },
                            name_not_found: false,
                        });
                        continue;
                    }
                    let via =
                        w.by.as_ref()
                            .map(|b| format!(" (needed by {b})"))
                            .unwrap_or_default();
                    return Err(match e {
                        ElfError::Io(err) if err.kind() == std::io::ErrorKind::NotFound => {
                            SynthError::NoSuchFile {
                                path: w.path.into(),
                                via,
                            }
                        }
                        ElfError::Io(err) => SynthError::io(w.path, err),
                        ElfError::Unsupported(reason) => SynthError::UnsupportedElf {
                            path: w.path.into(),
                            reason,
                            via,
                        },
                    });
                }
            };
            self.objects.insert(w.path.clone());
            let name = super::paths::file_name(&w.path).to_string();
            self.loaded.entry(name).or_insert_with(|| w.path.clone());
            if let Some(so) = &info.soname {
                self.loaded
                    .entry(so.clone())
                    .or_insert_with(|| w.path.clone());
            }
            // The interpreter is pushed last so that it is handled next:
            // ld.so is loaded before any library, and libc's DT_NEEDED
            // ld-linux-x86-64.so.2 is then the one already there.
            let interp = info.interp.as_ref().map(|i| Work {
                path: self.absolute(i),
                chain: Rc::new(Vec::new()),
                need: w.need,
                main: false,
                by: Some(w.path.clone()),
            });
            if info.needed.is_empty() {
                stack.extend(interp);
                continue;
            }
            let origin = if w.main {
                observe::canonicalize(&w.path)
                    .ok()
                    .and_then(|p| p.to_str().map(|s| parent(s).to_string()))
                    .unwrap_or_else(|| parent(&w.path).to_string())
            } else {
                parent(&w.path).to_string()
            };
            let rpath = self.expand(&info.rpath, &origin);
            let runpath = self.expand(&info.runpath, &origin);
            let (dirs, child_chain): (Vec<String>, Rc<Vec<String>>) = if info.runpath.is_empty() {
                let mut dirs = rpath.clone();
                dirs.extend(w.chain.iter().cloned());
                let chain = Rc::new(dirs.clone());
                (dirs, chain)
            } else {
                (runpath, w.chain.clone())
            };
            // Push in reverse so that the first DT_NEEDED is handled first.
            let mut children = Vec::with_capacity(info.needed.len());
            for name in &info.needed {
                if self.loaded.contains_key(name) {
                    continue;
                }
                match self.search(name, &dirs, info.nodeflib, &origin) {
                    Some(found) => {
                        let mut found = found.into_iter();
                        if let Some(best) = found.next() {
                            children.push((best, w.need));
                        }
                        // glibc-hwcaps variants: ld.so may pick them instead.
                        children.extend(found.map(|p| (p, Need::Optional)));
                    }
                    None if w.need == Need::Required => {
                        let mut searched: Vec<String> = dirs.clone();
                        if !info.nodeflib {
                            if self.cache.is_some() {
                                searched.push(super::ldcache::PATH.to_string());
                            }
                            searched.extend(DEFAULT_DIRS.iter().map(|s| s.to_string()));
                        }
                        return Err(SynthError::MissingLibrary {
                            lib: name.clone(),
                            needed_by: w.path.clone(),
                            searched: searched.join(", "),
                        });
                    }
                    None => self.skipped.push(Skipped {
                        what: name.clone(),
                        why: format!("needed by {}, was not found", w.path),
                        name_not_found: true,
                    }),
                }
            }
            for (path, need) in children.into_iter().rev() {
                stack.push(Work {
                    path,
                    chain: child_chain.clone(),
                    need,
                    main: false,
                    by: Some(w.path.clone()),
                });
            }
            stack.extend(interp);
        }
        Ok(())
    }

    /// What is still missing once everything is added. ld.so does not
    /// search for a name that an object already loaded has (as its SONAME
    /// or file name): a JVM plug-in that needs `libjvm.so` gets the one the
    /// launcher loaded from `lib/server`. So an optional library that was
    /// not found but is among the objects by name is not missing.
    pub(crate) fn missing(&self) -> Vec<&Skipped> {
        let mut names: HashSet<&str> = HashSet::new();
        for o in &self.objects {
            names.insert(super::paths::file_name(o));
            if let Some(so) = self.parsed.get(o).and_then(|i| i.soname.as_deref()) {
                names.insert(so);
            }
        }
        self.skipped
            .iter()
            .filter(|k| !(k.name_not_found && names.contains(k.what.as_str())))
            .collect()
    }

    fn absolute(&self, p: &str) -> String {
        match self.cwd.to_str() {
            Some(cwd) => join_lexical(cwd, p),
            None => p.to_string(),
        }
    }

    /// DT_RPATH/DT_RUNPATH entries with their tokens expanded; entries
    /// that name no directory are dropped.
    fn expand(&self, entries: &[String], origin: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in entries {
            let e = e.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", origin);
            let e = e
                .replace("${PLATFORM}", "x86_64")
                .replace("$PLATFORM", "x86_64");
            let e = e.replace("${LIB}", "$LIB");
            let variants: Vec<String> = if e.contains("$LIB") {
                vec![
                    e.replace("$LIB", "lib/x86_64-linux-gnu"),
                    e.replace("$LIB", "lib64"),
                ]
            } else {
                vec![e]
            };
            for v in variants {
                if v.contains('$') {
                    continue; // an unknown token: ld.so ignores the entry
                }
                let abs = self.absolute(&v);
                if !out.contains(&abs) {
                    out.push(abs);
                }
            }
        }
        out
    }

    fn search(
        &mut self,
        name: &str,
        dirs: &[String],
        nodeflib: bool,
        origin: &str,
    ) -> Option<Vec<String>> {
        if name.contains('/') {
            // A path, possibly with $ORIGIN and the like.
            return self
                .expand(&[name.to_string()], origin)
                .into_iter()
                .find(|p| self.is_file(p))
                .map(|p| vec![p]);
        }
        for d in dirs {
            let p = join_lexical(d, name);
            if elf::is_x86_64_elf(Path::new(&p)) {
                return Some(vec![p]);
            }
        }
        if nodeflib {
            return None;
        }
        self.find_system(name)
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    fn linker(cache: &Path) -> Linker {
        Linker::new(None, Path::new("/")).with_memory(cache)
    }

    /// Facts stored by one start serve the next while the file is
    /// unchanged; a file replaced since is read again.
    #[test]
    fn remembered_facts_follow_the_file() {
        if !Path::new("/usr/bin/true").is_file() || !Path::new("/usr/bin/ls").is_file() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("prog");
        std::fs::copy("/usr/bin/true", &prog).unwrap();
        let prog = prog.to_str().unwrap();
        let cache = dir.path().join("cache");

        let mut first = linker(&cache);
        let true_facts = first.info(prog).unwrap();
        first.save_memory();
        let mut second = linker(&cache);
        assert!(second.remembered.contains_key(prog));
        assert_eq!(second.info(prog).unwrap(), true_facts);
        assert!(!second.learned, "an unchanged file was read again");

        // Another program at the same path (new inode, size and times).
        std::fs::remove_file(prog).unwrap();
        std::fs::copy("/usr/bin/ls", prog).unwrap();
        let mut third = linker(&cache);
        let ls_facts = third.info(prog).unwrap();
        let FileKind::Elf(want) = elf::read_kind(Path::new("/usr/bin/ls")).unwrap() else {
            panic!("/usr/bin/ls is not an ELF file")
        };
        assert_eq!(*ls_facts, want);
        assert!(third.learned);
    }
}
