//! CPython: where its standard library, extension modules and site
//! packages are.
//!
//! The interpreter is asked once, natively (`python -S -c PROBE`, with the
//! environment the enclave will have, then `site.main()` so that the paths
//! are those of a normal start), and the answer is cached on disk, keyed by
//! the interpreter's path, its file's stamp and the environment variables
//! that change its paths (`PYTHON*`, `HOME`), one record per interpreter
//! and such environment (at most [`MAX_RECORDS`], the least recently
//! written dropped first), so that alternating environments do not ask
//! again at every switch. The record also holds the
//! stamps of the site directories (existing or not) and of the possible
//! `pyvenv.cfg` files: installing a package, adding a `.pth` file or
//! creating the user site directory changes one of them and the next start
//! asks again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ask::{self, NoAnswer};
use super::cache::{self, Stamp};
use super::observe;
use super::paths::{file_name, parent};
use super::vars::Vars;
use super::SynthError;

/// Longest the probe may run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most directory entries looked at when listing the extension modules of
/// the site directories (once, when probing).
const MAX_SITE_WALK: usize = 200_000;
const MARKER: &str = "conf-python-probe:";
/// Most probe records kept (each ~2 KB).
const MAX_RECORDS: usize = 16;

/// Prints, on its last line, the marker and a JSON object.
const PROBE: &str = r#"
import sys, os, sysconfig, json, site
# The script's directory ('' for -c): site.main() makes it absolute.
first = os.path.abspath(sys.path[0]) if sys.path and isinstance(sys.path[0], str) else None
site.main()
paths = sysconfig.get_paths()
cands = []
try:
    cands += list(site.getsitepackages())
except Exception:
    pass
try:
    cands.append(site.getusersitepackages())
except Exception:
    pass
print()
print("conf-python-probe:" + json.dumps({
    "prefix": sys.prefix,
    "exec_prefix": sys.exec_prefix,
    "base_prefix": sys.base_prefix,
    "version": list(sys.version_info[:3]),
    "path": [p for p in sys.path if isinstance(p, str) and p != first],
    "stdlib": paths.get("stdlib"),
    "platstdlib": paths.get("platstdlib"),
    "purelib": paths.get("purelib"),
    "platlib": paths.get("platlib"),
    "site_candidates": [c for c in cands if isinstance(c, str)],
}))
"#;

/// What the probe prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PythonTree {
    pub prefix: String,
    pub exec_prefix: String,
    pub base_prefix: String,
    pub version: Vec<u32>,
    /// `sys.path` of a normal start, minus the script's directory (`''`).
    pub path: Vec<String>,
    pub stdlib: Option<String>,
    pub platstdlib: Option<String>,
    pub purelib: Option<String>,
    pub platlib: Option<String>,
    /// Every directory site.py considers (whether it exists or not).
    pub site_candidates: Vec<String>,
    /// Filled in by conf, not by the probe: the extension modules (`.so`)
    /// below the site directories on `sys.path`.
    #[serde(default)]
    pub site_extensions: Vec<String>,
}

impl PythonTree {
    /// `lib-dynload`: the standard library's extension modules.
    pub(crate) fn lib_dynload(&self) -> Option<String> {
        if let Some(p) = self.path.iter().find(|p| file_name(p) == "lib-dynload") {
            return Some(p.clone());
        }
        let std = self.platstdlib.as_ref().or(self.stdlib.as_ref())?;
        Some(format!("{std}/lib-dynload"))
    }

    /// The `sys.path` entries that are site directories (not the standard
    /// library and not lib-dynload).
    pub(crate) fn site_dirs(&self) -> Vec<String> {
        let std: Vec<&String> = [&self.stdlib, &self.platstdlib]
            .into_iter()
            .flatten()
            .collect();
        let dynload = self.lib_dynload();
        self.path
            .iter()
            .filter(|p| p.starts_with('/'))
            .filter(|p| !std.contains(p) && Some(*p) != dynload.as_ref())
            .cloned()
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Key {
    python: String,
    binary: Option<Stamp>,
    env: Vec<(String, String)>,
}

/// The outcome of [`learn`].
pub(crate) struct Learned {
    pub tree: PythonTree,
    /// Whether the answer came from the cache.
    pub cached: bool,
    /// Time spent (probe and walk, or reading the cache).
    pub elapsed: Duration,
    /// Why the cache could not be written, if it could not.
    pub cache_warning: Option<String>,
}

/// The `pyvenv.cfg` files Python looks for: next to the interpreter and one
/// directory up (as invoked, without resolving symbolic links).
pub(crate) fn pyvenv_candidates(python: &str) -> Vec<String> {
    let bin = parent(python);
    vec![
        format!("{bin}/pyvenv.cfg"),
        format!("{}/pyvenv.cfg", parent(bin)),
    ]
}

fn env_key(env: &Vars) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> = env
        .with_prefix("PYTHON")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    key.extend(env.get("HOME").map(|h| ("HOME".to_string(), h.clone())));
    key.sort();
    key
}

/// What `python` (absolute path, as it will be run) uses, from the cache
/// in `cache_dir` or by running it.
pub(crate) fn learn(python: &str, env: &Vars, cache_dir: &Path) -> Result<Learned, SynthError> {
    let started = Instant::now();
    let key = Key {
        python: python.to_string(),
        binary: cache::stamp(python),
        env: env_key(env),
    };
    let record_path = cache::record_path(cache_dir, "python", &format!("{python}\n{:?}", key.env));
    if let Some(tree) = cache::load_current(&record_path, &key) {
        return Ok(Learned {
            tree,
            cached: true,
            elapsed: started.elapsed(),
            cache_warning: None,
        });
    }
    let mut tree = probe(python, env)?;
    // The walk is not recorded: the answer holds while the stamps below
    // hold, whether it was just made or read from the cache, and a
    // manifest made from it holds as long (`replay.rs`).
    tree.site_extensions = observe::unrecorded(|| extensions_below(&tree.site_dirs()));
    let mut watched = tree.site_candidates.clone();
    watched.extend(tree.site_dirs());
    watched.extend(pyvenv_candidates(python));
    watched.sort();
    watched.dedup();
    let rec = cache::Stamped {
        key,
        stamps: cache::stamps(&watched),
        value: tree,
    };
    let stored = cache::store(&record_path, &rec);
    if stored.is_ok() {
        cache::keep_newest(&record_path, "python-", MAX_RECORDS);
    }
    let cache_warning = stored.err().map(|e| {
        format!(
            "could not cache what {python} uses in {} ({e}); the next start will ask it again",
            record_path.display()
        )
    });
    Ok(Learned {
        tree: rec.value,
        cached: false,
        elapsed: started.elapsed(),
        cache_warning,
    })
}

fn probe(python: &str, env: &Vars) -> Result<PythonTree, SynthError> {
    let fail = |reason: String| SynthError::PythonProbe {
        python: python.into(),
        reason,
    };
    let answer = ask::ask(
        Command::new(python)
            .args(["-S", "-c", PROBE])
            .env_clear()
            .envs(env.for_helper())
            .current_dir("/"),
        PROBE_TIMEOUT,
    )
    .map_err(|e| {
        fail(match e {
            NoAnswer::Start(e) => format!("it could not be started ({e})"),
            NoAnswer::Timeout => format!("it did not finish within {} s", PROBE_TIMEOUT.as_secs()),
            NoAnswer::Wait(e) => format!("waiting for it failed ({e})"),
        })
    })?;
    let (status, stdout, stderr) = (answer.status, answer.stdout, answer.stderr);
    let stdout = String::from_utf8_lossy(&stdout);
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix(MARKER));
    let Some(line) = line.filter(|_| status.success()) else {
        let stderr = String::from_utf8_lossy(&stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(fail(format!(
            "it exited with {status}{}",
            last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
        )));
    };
    let mut tree: PythonTree = serde_json::from_str(line)
        .map_err(|e| fail(format!("its answer could not be read ({e})")))?;
    tree.path.retain(|p| p.starts_with('/'));
    tree.site_extensions.clear();
    Ok(tree)
}

/// Extension modules below `dirs`: files named `*.so` or `*.so.*`.
/// Symbolic links to directories are not followed.
fn extensions_below(dirs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stack: Vec<String> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = observe::read_dir(&dir) else {
            continue;
        };
        for de in rd.flatten() {
            seen += 1;
            if seen > MAX_SITE_WALK {
                return out;
            }
            let Ok(name) = de.file_name().into_string() else {
                continue;
            };
            let Ok(ft) = de.file_type() else {
                continue;
            };
            let path = format!("{dir}/{name}");
            if ft.is_dir() {
                if name != "__pycache__" {
                    stack.push(path);
                }
            } else if (ft.is_file() || ft.is_symlink())
                && (name.ends_with(".so") || name.contains(".so."))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Does `python ARGS` run without the `site` module (`-S` among the
/// interpreter's own options, before the script, `-c` or `-m`)? Then the
/// site directories are not on `sys.path`.
pub(crate) fn without_site(args: &[String]) -> bool {
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "-" || a == "--" || !a.starts_with('-') {
            return false;
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "check-hash-based-pycs" {
                rest.next();
            }
            continue;
        }
        for (i, c) in a[1..].char_indices() {
            match c {
                'S' => return true,
                // The rest of the word is the command or the module.
                'c' | 'm' => return false,
                // The rest of the word, or the next one, is the value.
                'W' | 'X' => {
                    if i + 2 == a.len() {
                        rest.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    false
}

/// Does `python ARGS` start the interactive interpreter (no script, no
/// -c, no -m), or ask for it (-i)?
pub(crate) fn is_interactive(args: &[String]) -> bool {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-i" {
            return true;
        }
        if a == "-c" || a == "-m" || !a.starts_with('-') || a == "-" {
            return a == "-";
        }
        // Options that take a value.
        if matches!(a.as_str(), "-W" | "-X" | "--check-hash-based-pycs") {
            i += 1;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_is_off_only_by_the_interpreters_own_s() {
        let off = |a: &[&str]| without_site(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(off(&["-S", "-c", "pass"]));
        assert!(off(&["-IS", "app.py"]));
        assert!(off(&["-u", "-S"]));
        assert!(!off(&["-c", "pass", "-S"]));
        assert!(!off(&["-cS"]), "-c takes the rest as the command");
        assert!(!off(&["app.py", "-S"]));
        assert!(!off(&["-m", "mod", "-S"]));
        assert!(!off(&["-X", "dev", "app.py"]));
        assert!(off(&["-X", "dev", "-S", "app.py"]));
        assert!(!off(&["-X", "S", "app.py"]), "S is -X's value here");
        assert!(!off(&["-WS", "app.py"]), "S is -W's value here");
        assert!(off(&["--check-hash-based-pycs", "never", "-S"]));
        assert!(!off(&["--", "-S"]));
        assert!(!off(&[]));
    }
}
