//! Reusing a synthesized manifest: the same command line, directory,
//! options and the environment variables synthesis reads (`vars.rs`),
//! synthesized by the same conf, give the same manifest as long as every
//! look synthesis took at the host's files (`observe.rs`) would still see
//! the same thing. The other variables are only copied into the manifest:
//! a reused manifest gets this start's values of them.
//!
//! A record holds the key, those looks (~240 for CPython: its extension
//! modules and the libraries they need, the directories it listed, the
//! program found on PATH, ...) and the manifest. Checking a look costs a
//! stat, a fraction of synthesizing again (reading `/etc/ld.so.cache`, the
//! ELF facts of ~100 files, walking the closure). Helpers that ran
//! (CPython's probe, a version manager) are covered by the looks their own
//! cached answers depend on.
//!
//! Records live under `<cache dir>/synth-v1/manifest-*.json`, the
//! [`MAX_RECORDS`] most recently used kept.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use conf_manifest::{EnvValue, Manifest, Mount, MountKind, TrustedEntry};
use serde::{Deserialize, Serialize};

use super::cache::{self, stamp_of, Stamp};
use super::observe::Fact;
use super::vars::read_by_synthesis;
use super::{Runtime, SynthOptions, Synthesized};

const KIND: &str = "manifest";
/// Most records kept (each a few tens of KB).
const MAX_RECORDS: usize = 64;

/// What a synthesis was asked for, and by which conf.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    /// This conf's version and the stamp of its executable: another build
    /// may synthesize differently.
    conf: (String, Option<Stamp>),
    argv: Vec<String>,
    cwd: String,
    path_env: Option<String>,
    /// The variables synthesis reads ([`read_by_synthesis`]).
    env: Vec<(String, String)>,
    allow: Vec<String>,
    trust: Vec<String>,
}

impl Key {
    /// The key of a synthesis; `None` when something in it is not UTF-8
    /// (then it is not recorded).
    pub(crate) fn of(argv: &[OsString], opts: &SynthOptions) -> Option<Key> {
        let s = |o: &std::ffi::OsStr| o.to_str().map(String::from);
        let all = |v: &[std::path::PathBuf]| -> Option<Vec<String>> {
            v.iter().map(|p| s(p.as_os_str())).collect()
        };
        #[allow(clippy::disallowed_methods)] // conf itself, not an input
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .ok()
            .map(|m| stamp_of(&m));
        Some(Key {
            conf: (env!("CARGO_PKG_VERSION").to_string(), exe),
            argv: argv.iter().map(|a| s(a)).collect::<Option<_>>()?,
            cwd: s(opts.cwd.as_os_str())?,
            path_env: match &opts.path_env {
                Some(p) => Some(s(p)?),
                None => None,
            },
            env: {
                // Unread variables, UTF-8 or not, do not count.
                let mut read: Vec<(String, String)> = opts
                    .env
                    .iter()
                    .filter(|(k, _)| k.to_str().is_some_and(read_by_synthesis))
                    .map(|(k, v)| Some((s(k)?, s(v)?)))
                    .collect::<Option<_>>()?;
                read.sort();
                read
            },
            allow: all(&opts.allow)?,
            trust: all(&opts.trust)?,
        })
    }

    fn file(&self, cache_dir: &Path) -> std::path::PathBuf {
        let text = serde_json::to_string(self).unwrap_or_default();
        cache::record_path(cache_dir, KIND, &text)
    }
}

/// The settings synthesis makes; the rest of the manifest is the default
/// ([`Made::from_manifest`] refuses a manifest for which that is not so).
#[derive(Serialize, Deserialize)]
struct Made {
    origin: String,
    entrypoint: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// (kind, enclave path, host URI)
    mounts: Vec<(String, String, String)>,
    start_dir: String,
    trusted: Vec<String>,
    allowed: Vec<String>,
    enclave_size: u64,
    max_threads: u32,
    runtime: String,
    notes: Vec<String>,
    /// What synthesis looked at.
    facts: Vec<Fact>,
}

impl Made {
    fn from_manifest(s: &Synthesized) -> Option<Made> {
        let m = &s.manifest;
        let made = Made {
            origin: m.origin.clone(),
            entrypoint: m.entrypoint.clone(),
            argv: m.argv.clone(),
            env: m
                .env
                .iter()
                .map(|(k, v)| match v {
                    EnvValue::Value(v) => Some((k.clone(), v.clone())),
                    EnvValue::Passthrough => None,
                })
                .collect::<Option<_>>()?,
            mounts: m
                .mounts
                .iter()
                .map(|mt| (mt.kind.name().to_string(), mt.path.clone(), mt.uri.clone()))
                .collect(),
            start_dir: m.start_dir.clone(),
            trusted: m.trusted_files.iter().map(|t| t.path.clone()).collect(),
            allowed: m.allowed_files.clone(),
            enclave_size: m.enclave_size,
            max_threads: m.max_threads,
            runtime: s.runtime.name().to_string(),
            notes: s.notes.clone(),
            facts: Vec::new(),
        };
        // Whatever this form leaves out must be what it puts back.
        (made.manifest().as_ref() == Some(m)).then_some(made)
    }

    fn manifest(&self) -> Option<Manifest> {
        Some(Manifest {
            origin: self.origin.clone(),
            entrypoint: self.entrypoint.clone(),
            argv: self.argv.clone(),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), EnvValue::Value(v.clone())))
                .collect::<BTreeMap<_, _>>(),
            mounts: self
                .mounts
                .iter()
                .map(|(k, path, uri)| {
                    Some(Mount {
                        path: path.clone(),
                        kind: MountKind::parse(k)?,
                        uri: uri.clone(),
                        key_name: String::new(),
                    })
                })
                .collect::<Option<_>>()?,
            start_dir: self.start_dir.clone(),
            trusted_files: self.trusted.iter().map(TrustedEntry::new).collect(),
            allowed_files: self.allowed.clone(),
            enclave_size: self.enclave_size,
            max_threads: self.max_threads,
            ..Manifest::default()
        })
    }
}

/// The manifest recorded for `key`, if every look it was made from still
/// sees the same, with the variables synthesis does not read taken from
/// `carried` (this start's environment, as the manifest carries it).
pub(crate) fn load(
    cache_dir: &Path,
    key: &Key,
    carried: &BTreeMap<String, String>,
) -> Option<Synthesized> {
    let mut made: Made = cache::load_current(&key.file(cache_dir), key)?;
    if !made.facts.iter().all(Fact::holds) {
        return None;
    }
    made.env.extend(
        carried
            .iter()
            .filter(|(k, _)| !read_by_synthesis(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Some(Synthesized {
        manifest: made.manifest()?,
        runtime: Runtime::parse(&made.runtime)?,
        notes: made.notes,
        replayed: true,
    })
}

/// Record `synthesized` as what `key` gives while `facts` hold. A record
/// that cannot be written costs the next start a synthesis, nothing else.
pub(crate) fn store(cache_dir: &Path, key: &Key, facts: Vec<Fact>, synthesized: &Synthesized) {
    let Some(mut made) = Made::from_manifest(synthesized) else {
        return;
    };
    // Only what synthesis read (and may have changed, as PATH for a shim's
    // program) is kept: the others come from the start that reuses it, and
    // the environment's secrets do not belong in a cache file.
    made.env.retain(|(k, _)| read_by_synthesis(k));
    made.facts = facts;
    let record = cache::Stamped {
        key,
        // conf's own stamp is in the key; the looks are in the value.
        stamps: Vec::new(),
        value: made,
    };
    let file = key.file(cache_dir);
    if cache::store(&file, &record).is_ok() {
        cache::keep_newest(&file, &format!("{KIND}-"), MAX_RECORDS);
    }
}
