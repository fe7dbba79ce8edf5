//! TOML text to [`Manifest`]: templates, syntax, every key checked against
//! what conf knows, values validated, defaults filled in.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

use crate::error::{Location, ManifestError};
use crate::paths;
use crate::size::parse_size;
use crate::template::{self, Expanded, TemplateError};
use crate::{EnvValue, LogLevel, Manifest, Mount, MountKind, OcallMode, TrustedEntry};

type Span = Option<Range<usize>>;

/// A TOML value with its span, independent of toml_edit's many node types.
#[derive(Debug)]
struct Node {
    kind: Kind,
    span: Span,
}

#[derive(Debug)]
enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug)]
struct Entry {
    key: String,
    key_span: Span,
    value: Node,
}

fn from_item(item: &Item, fallback: &Span) -> Node {
    match item {
        Item::None => Node {
            kind: Kind::Table(Vec::new()),
            span: fallback.clone(),
        },
        Item::Value(v) => from_value(v, fallback),
        Item::Table(t) => Node {
            kind: Kind::Table(
                t.iter()
                    .filter_map(|(k, _)| t.get_key_value(k))
                    .map(|(k, item)| Entry {
                        key: k.get().to_string(),
                        key_span: k.span(),
                        value: from_item(item, &k.span()),
                    })
                    .collect(),
            ),
            span: t.span().or_else(|| fallback.clone()),
        },
        Item::ArrayOfTables(a) => Node {
            kind: Kind::Array(
                a.iter()
                    .map(|t| from_item(&Item::Table(t.clone()), &t.span()))
                    .collect(),
            ),
            span: a.span().or_else(|| fallback.clone()),
        },
    }
}

fn from_value(v: &Value, fallback: &Span) -> Node {
    let kind = match v {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(f) => Kind::Float(*f.value()),
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(d) => Kind::Datetime(d.value().to_string()),
        Value::Array(a) => Kind::Array(a.iter().map(|v| from_value(v, &None)).collect()),
        Value::InlineTable(t) => Kind::Table(
            t.iter()
                .filter_map(|(k, _)| t.get_key_value(k))
                .map(|(k, item)| Entry {
                    key: k.get().to_string(),
                    key_span: k.span(),
                    value: from_item(item, &k.span()),
                })
                .collect(),
        ),
    };
    Node {
        kind,
        span: v.span().or_else(|| fallback.clone()),
    }
}

/// Every key conf implements (tables such as `loader.env` and arrays such as
/// `fs.mounts` are leaves here; their contents are checked by their handler).
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "libos.entrypoint",
    "libos.ocall.mode",
    "libos.ocall.workers",
    "loader.argv",
    "loader.insecure__use_cmdline_argv",
    "loader.env",
    "loader.log_level",
    "loader.entrypoint",
    "fs.root",
    "fs.mounts",
    "fs.start_dir",
    "sgx.trusted_files",
    "sgx.allowed_files",
    "sgx.enclave_size",
    "sgx.max_threads",
    "sgx.thread_num",
    "sgx.edmm_enable",
    "sgx.debug",
    "sgx.isvprodid",
    "sgx.isvsvn",
    "sys.stack.size",
    "sys.brk.max_size",
    "sys.max_processes",
    "sys.disallow_subprocesses",
];

/// What conf does with a Gramine-only key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Policy {
    /// Accepted and ignored with a warning saying why.
    Ignore(&'static str),
    /// An error saying what to use instead.
    Reject(&'static str),
}

/// Gramine keys conf does not implement. `subtree`: the key and everything
/// below it.
pub(crate) const GRAMINE_KEYS: &[(&str, bool, Policy)] = {
    use Policy::*;
    const ATTESTATION: Policy = Ignore("conf does not provide remote attestation yet");
    const CPU: Policy =
        Ignore("conf does not put CPU feature requirements in the enclave attributes");
    const TUNING: Policy = Ignore("a Gramine tuning/debugging option with no conf equivalent");
    const PROTECTED: Policy = Reject("use an `encrypted` mount in `fs.mounts` instead");
    &[
        ("sgx.remote_attestation", false, ATTESTATION),
        ("sgx.ra_client_spid", false, ATTESTATION),
        ("sgx.ra_client_linkable", false, ATTESTATION),
        ("sgx.nonpie_binary", false, Ignore("obsolete Gramine option; conf does not need it")),
        ("sgx.preheat_enclave", false, TUNING),
        ("sgx.enable_stats", false, TUNING),
        ("sgx.profile", true, TUNING),
        ("sgx.vtune_profile", false, TUNING),
        ("sgx.use_exinfo", false, TUNING),
        ("sgx.require_avx", false, CPU),
        ("sgx.require_avx512", false, CPU),
        ("sgx.require_mpx", false, CPU),
        ("sgx.require_pkru", false, CPU),
        ("sgx.require_amx", false, CPU),
        ("sgx.require_exinfo", false, CPU),
        ("sgx.cpu_features", true, CPU),
        ("sgx.rpc_thread_num", false, Ignore("use `libos.ocall.mode` and `libos.ocall.workers`")),
        ("sgx.insecure__rpc_thread_num", false, Ignore("use `libos.ocall.mode` and `libos.ocall.workers`")),
        ("sgx.seal_key", true, Ignore("conf does not configure sealing keys in the manifest")),
        ("sgx.protected_files", true, PROTECTED),
        ("sgx.protected_files_key", false, PROTECTED),
        ("sgx.protected_mrenclave_files", true, PROTECTED),
        ("sgx.protected_mrsigner_files", true, PROTECTED),
        ("sgx.trusted_checksum", true, Reject("list files in `sgx.trusted_files`; conf computes the hashes")),
        ("fs.insecure__keys", true, Reject("conf does not take encryption keys from the manifest")),
        ("fs.mount", true, Reject("use the `fs.mounts` array: fs.mounts = [{ path = \"/data\", uri = \"file:data\" }]")),
        ("loader.preload", false, Reject("conf has no preloaded LibOS libraries")),
        ("loader.exec", false, Reject("use `libos.entrypoint`")),
        ("loader.argv0_override", false, Reject("put argv[0] first in `loader.argv`")),
        (
            "loader.insecure__use_host_env",
            false,
            Reject("pass variables one by one with `loader.env.NAME = { passthrough = true }`"),
        ),
        ("loader.env_src_file", false, Reject("put the variables in `loader.env`")),
        ("loader.argv_src_file", false, Reject("put the arguments in `loader.argv`")),
        ("loader.insecure__disable_aslr", false, TUNING),
        ("loader.log_file", false, Ignore("conf logs to stderr")),
        ("loader.pal_internal_mem_size", false, Ignore("conf sizes its internal memory itself")),
        ("loader.uid", false, Ignore("the user and group ids are not configurable in conf")),
        ("loader.gid", false, Ignore("the user and group ids are not configurable in conf")),
        ("libos.check_invalid_pointers", false, TUNING),
        ("sys.enable_sigterm_injection", false, TUNING),
        ("sys.insecure__allow_eventfd", false, TUNING),
        ("sys.enable_extra_runtime_domain_names_conf", false, TUNING),
        ("sys.experimental__enable_flock", false, TUNING),
        ("sys.fds", true, TUNING),
        ("sys.allowed_ioctls", true, TUNING),
        ("sys.insecure__allow_memfaults_without_exinfo", false, TUNING),
    ]
};

fn gramine_policy(key: &str) -> Option<Policy> {
    GRAMINE_KEYS
        .iter()
        .find(|(k, subtree, _)| {
            key == *k || (*subtree && key.starts_with(k) && key[k.len()..].starts_with('.'))
        })
        .map(|(_, _, p)| *p)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `key`, if near enough to be a likely typo (or
/// the same last component in another table, e.g. `sgx.stack.size` for
/// `sys.stack.size`).
pub(crate) fn suggest(key: &str, candidates: &[&str]) -> Option<String> {
    suggest_within(key, candidates, 3)
}

/// [`suggest`], accepting an edit distance up to a `1/divisor` of the key's
/// length (at least 2).
fn suggest_within(key: &str, candidates: &[&str], divisor: usize) -> Option<String> {
    if key.len() > 200 {
        return None;
    }
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let key_last = last(key);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let mut score = edit_distance(key, c);
        let c_last = last(c);
        if !key_last.is_empty() && key_last == c_last {
            score = score.min(1);
        }
        // A shortened or over-long spelling of the last component.
        if key_last.len() >= 3 && (c_last.starts_with(&key_last) || key_last.starts_with(&c_last)) {
            score = score.min(2);
        }
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, c));
        }
    }
    let limit = (key.chars().count() / divisor).max(2);
    best.filter(|(s, _)| *s <= limit)
        .map(|(_, c)| c.to_string())
}

/// A key as written in a dotted path: bare if possible, else quoted.
pub(crate) fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        crate::emit::toml_string(k)
    }
}

fn describe(n: &Node) -> String {
    match &n.kind {
        Kind::Str(s) => {
            let mut shown: String = s.chars().take(60).collect();
            if shown.len() < s.len() {
                shown.push_str("...");
            }
            format!("string {}", crate::emit::toml_string(&shown))
        }
        Kind::Int(i) => format!("integer {i}"),
        Kind::Float(f) => format!("float {f}"),
        Kind::Bool(b) => format!("boolean {b}"),
        Kind::Datetime(d) => format!("date-time {d}"),
        Kind::Array(_) => "an array".to_string(),
        Kind::Table(_) => "a table".to_string(),
    }
}

struct Parser<'a> {
    origin: &'a str,
    text: &'a str,
    expanded: &'a Expanded,
    base: Option<&'a str>,
    m: Manifest,
    entrypoint_at: Option<Location>,
    argv_at: Option<Location>,
    cmdline_at: Option<Location>,
    threads_at: Option<(String, Location)>,
    processes_at: Option<(String, Location)>,
    mode_at: Option<Location>,
}

type Result<T> = std::result::Result<T, ManifestError>;

impl Parser<'_> {
    fn loc(&self, span: &Span) -> Location {
        let off = span.as_ref().map_or(0, |s| s.start);
        Location::at(self.origin, self.text, self.expanded.orig_offset(off))
    }

    fn wrong_type(&self, key: &str, n: &Node, expected: &'static str) -> ManifestError {
        ManifestError::WrongType {
            at: self.loc(&n.span),
            key: key.to_string(),
            expected,
            found: describe(n),
        }
    }

    fn invalid(&self, key: &str, n: &Node, message: impl Into<String>) -> ManifestError {
        ManifestError::InvalidValue {
            at: self.loc(&n.span),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn unknown(
        &self,
        key: &str,
        span: &Span,
        candidates: &[&str],
        full: impl Fn(&str) -> String,
    ) -> ManifestError {
        let last = key.rsplit('.').next().unwrap_or(key);
        // Few candidates: a looser match is still a useful hint.
        let suggestion = suggest_within(last, candidates, 2).map(|s| full(&s));
        ManifestError::UnknownKey {
            at: self.loc(span),
            key: key.to_string(),
            suggestion,
        }
    }

    fn string<'n>(&self, key: &str, n: &'n Node) -> Result<&'n str> {
        match &n.kind {
            Kind::Str(s) => Ok(s),
            _ => Err(self.wrong_type(key, n, "a string")),
        }
    }

    fn boolean(&self, key: &str, n: &Node) -> Result<bool> {
        match n.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err(self.wrong_type(key, n, "a boolean (true or false)")),
        }
    }

    fn integer(&self, key: &str, n: &Node, min: i64, max: i64) -> Result<i64> {
        match n.kind {
            Kind::Int(i) if (min..=max).contains(&i) => Ok(i),
            Kind::Int(i) => Err(self.invalid(
                key,
                n,
                format!("must be between {min} and {max}, found {i}"),
            )),
            _ => Err(self.wrong_type(key, n, "an integer")),
        }
    }

    fn size(&self, key: &str, n: &Node) -> Result<u64> {
        match &n.kind {
            Kind::Int(i) => u64::try_from(*i)
                .map_err(|_| self.invalid(key, n, format!("a size cannot be negative ({i})"))),
            Kind::Str(s) => parse_size(s).map_err(|e| self.invalid(key, n, e)),
            _ => Err(self.wrong_type(
                key,
                n,
                "a size (an integer number of bytes, or a string such as \"512M\")",
            )),
        }
    }

    fn host_path(&self, key: &str, n: &Node) -> Result<String> {
        let s = self.string(key, n)?;
        paths::host_path(s, self.base).map_err(|e| self.invalid(key, n, e))
    }

    fn enclave_path(&self, key: &str, n: &Node) -> Result<String> {
        let s = self.string(key, n)?;
        paths::enclave_path(s).map_err(|e| self.invalid(key, n, e))
    }

    fn array<'n>(&self, key: &str, n: &'n Node, expected: &'static str) -> Result<&'n [Node]> {
        match &n.kind {
            Kind::Array(items) => Ok(items),
            _ => Err(self.wrong_type(key, n, expected)),
        }
    }

    fn no_nul(&self, key: &str, n: &Node, s: &str) -> Result<()> {
        if s.contains('\0') {
            return Err(self.invalid(
                key,
                n,
                "contains a NUL character, which C strings cannot hold",
            ));
        }
        Ok(())
    }

    fn walk(&mut self, entries: &[Entry], prefix: &str) -> Result<()> {
        for e in entries {
            let key = if prefix.is_empty() {
                quote_key(&e.key)
            } else {
                format!("{prefix}.{}", quote_key(&e.key))
            };
            if self.leaf(&key, e)? {
                continue;
            }
            if let Some(policy) = gramine_policy(&key) {
                match policy {
                    Policy::Ignore(why) => {
                        let at = self.loc(&e.key_span);
                        self.m
                            .warnings
                            .push(format!("{at}: ignoring `{key}` (a Gramine option): {why}"));
                    }
                    Policy::Reject(hint) => {
                        return Err(ManifestError::Unsupported {
                            at: self.loc(&e.key_span),
                            key,
                            hint,
                        });
                    }
                }
                continue;
            }
            let below = |k: &&str| {
                k.len() > key.len() && k.starts_with(&key) && k[key.len()..].starts_with('.')
            };
            if KNOWN_KEYS.iter().any(below) || GRAMINE_KEYS.iter().map(|(k, _, _)| k).any(below) {
                match &e.value.kind {
                    Kind::Table(sub) => self.walk(sub, &key)?,
                    _ => return Err(self.wrong_type(&key, &e.value, "a table")),
                }
                continue;
            }
            return Err(self.unknown_top(&key, e));
        }
        Ok(())
    }

    /// An unknown key outside the tables with their own key lists. A table
    /// holding a single key (`sgx.stack.size = 1`) is reported by that
    /// key's full path, so the suggestion can be a whole key.
    fn unknown_top(&self, key: &str, e: &Entry) -> ManifestError {
        let (mut full, mut span, mut node) = (key.to_string(), &e.key_span, &e.value);
        while let Kind::Table(sub) = &node.kind {
            let [only] = sub.as_slice() else { break };
            full = format!("{full}.{}", quote_key(&only.key));
            span = &only.key_span;
            node = &only.value;
        }
        let suggestion = if matches!(node.kind, Kind::Table(_)) {
            // Several keys below: suggest a table.
            let mut tables: Vec<&str> = KNOWN_KEYS
                .iter()
                .flat_map(|k| k.match_indices('.').map(move |(i, _)| &k[..i]))
                .collect();
            tables.sort_unstable();
            tables.dedup();
            suggest(&full, &tables)
        } else {
            suggest(&full, KNOWN_KEYS)
        };
        ManifestError::UnknownKey {
            at: self.loc(span),
            key: full,
            suggestion,
        }
    }

    /// Handle `key` if it is one conf implements; false if it is not.
    fn leaf(&mut self, key: &str, e: &Entry) -> Result<bool> {
        let n = &e.value;
        match key {
            "libos.entrypoint" => {
                let s = self.string(key, n)?;
                self.m.entrypoint = if s.starts_with('/') {
                    self.enclave_path(key, n)?
                } else {
                    format!("file:{}", self.host_path(key, n)?)
                };
                self.entrypoint_at = Some(self.loc(&e.key_span));
            }
            "libos.ocall.mode" => {
                let s = self.string(key, n)?;
                self.m.ocall_mode = OcallMode::parse(s).ok_or_else(|| {
                    self.invalid(
                        key,
                        n,
                        format!(
                            "must be one of \"exitless\", \"exit\", \"adaptive\"; found \"{s}\""
                        ),
                    )
                })?;
                self.mode_at = Some(self.loc(&n.span));
            }
            "libos.ocall.workers" => {
                self.m.ocall_workers = self.integer(key, n, 0, u32::MAX.into())? as u32
            }
            "loader.argv" => {
                let items = self.array(key, n, "an array of strings")?;
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let k = format!("{key}[{i}]");
                    let s = self.string(&k, item)?;
                    self.no_nul(&k, item, s)?;
                    argv.push(s.to_string());
                }
                self.m.argv = argv;
                self.argv_at = Some(self.loc(&e.key_span));
            }
            "loader.insecure__use_cmdline_argv" => {
                self.m.use_cmdline_argv = self.boolean(key, n)?;
                self.cmdline_at = Some(self.loc(&e.key_span));
            }
            "loader.env" => self.env(key, n)?,
            "loader.log_level" => {
                let s = self.string(key, n)?;
                self.m.log_level = LogLevel::parse(s).ok_or_else(|| {
                    self.invalid(
                        key,
                        n,
                        format!(
                            "must be one of \"error\", \"warning\", \"info\", \"debug\", \"trace\", \"none\"; found \"{s}\""
                        ),
                    )
                })?;
            }
            // Gramine's path to its own LibOS; conf brings its own.
            "loader.entrypoint" => {}
            "fs.root" => self.m.fs_root = self.fs_root(key, n)?,
            "fs.mounts" => self.mounts(key, n)?,
            "fs.start_dir" => self.m.start_dir = self.enclave_path(key, n)?,
            "sgx.trusted_files" => self.trusted(key, n)?,
            "sgx.allowed_files" => {
                let items = self.array(key, n, "an array of `file:` URIs or paths")?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.host_path(&format!("{key}[{i}]"), item)?);
                }
                self.m.allowed_files = out;
            }
            "sgx.enclave_size" => {
                let v = self.size(key, n)?;
                if !v.is_power_of_two() {
                    let up = v.checked_next_power_of_two().map(crate::size::format_size);
                    return Err(self.invalid(
                        key,
                        n,
                        match up {
                            Some(up) if v > 0 => {
                                format!("must be a power of two (SGX requires it); use \"{up}\"")
                            }
                            _ => {
                                "must be a power of two (SGX requires it), e.g. \"2G\"".to_string()
                            }
                        },
                    ));
                }
                self.m.enclave_size = v;
            }
            "sgx.max_threads" | "sgx.thread_num" => {
                let at = self.loc(&e.key_span);
                if let Some((other, other_at)) = self.threads_at.take() {
                    return Err(ManifestError::Conflict {
                        at,
                        key: key.to_string(),
                        other,
                        other_at: Box::new(other_at),
                        hint: "both set the number of threads (sgx.thread_num is Gramine's older name); keep only `sgx.max_threads`",
                    });
                }
                self.m.max_threads = self.integer(key, n, 1, u32::MAX.into())? as u32;
                self.threads_at = Some((key.to_string(), at));
            }
            "sgx.edmm_enable" => self.m.edmm = self.boolean(key, n)?,
            "sgx.debug" => self.m.debug = self.boolean(key, n)?,
            "sgx.isvprodid" => self.m.isvprodid = self.integer(key, n, 0, u16::MAX.into())? as u16,
            "sgx.isvsvn" => self.m.isvsvn = self.integer(key, n, 0, u16::MAX.into())? as u16,
            "sys.stack.size" => {
                let v = self.size(key, n)?;
                if v == 0 {
                    return Err(self.invalid(
                        key,
                        n,
                        "the stack cannot be empty; the default is \"8M\"",
                    ));
                }
                self.m.stack_size = v;
            }
            "sys.brk.max_size" => self.m.brk_max_size = self.size(key, n)?,
            "sys.max_processes" | "sys.disallow_subprocesses" => {
                let at = self.loc(&e.key_span);
                if let Some((other, other_at)) = self.processes_at.take() {
                    return Err(ManifestError::Conflict {
                        at,
                        key: key.to_string(),
                        other,
                        other_at: Box::new(other_at),
                        hint: "both limit child processes (sys.disallow_subprocesses = true is sys.max_processes = 1); keep only `sys.max_processes`",
                    });
                }
                self.m.max_processes = if key == "sys.max_processes" {
                    self.integer(key, n, 1, 65536)? as u32
                } else if self.boolean(key, n)? {
                    1
                } else {
                    crate::DEFAULT_MAX_PROCESSES
                };
                self.processes_at = Some((key.to_string(), at));
            }
            "sgx.file_check_policy" => {
                // Gramine's default ("strict") is what conf always does.
                if self.string(key, n)? != "strict" {
                    return Err(ManifestError::Unsupported {
                        at: self.loc(&e.key_span),
                        key: key.to_string(),
                        hint: "conf always checks trusted files strictly",
                    });
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn env(&mut self, key: &str, n: &Node) -> Result<()> {
        let Kind::Table(vars) = &n.kind else {
            return Err(self.wrong_type(
                key,
                n,
                "a table of variables (loader.env.NAME = \"value\")",
            ));
        };
        for var in vars {
            let k = format!("{key}.{}", quote_key(&var.key));
            let v = &var.value;
            if var.key.is_empty() || var.key.contains(['=', '\0']) {
                return Err(ManifestError::InvalidValue {
                    at: self.loc(&var.key_span),
                    key: k,
                    message:
                        "an environment variable name must be non-empty and contain no `=` or NUL"
                            .to_string(),
                });
            }
            let value = match &v.kind {
                Kind::Str(s) => {
                    self.no_nul(&k, v, s)?;
                    EnvValue::Value(s.clone())
                }
                Kind::Table(fields) => {
                    let mut value = None;
                    let mut passthrough = None;
                    for f in fields {
                        let fk = format!("{k}.{}", quote_key(&f.key));
                        match f.key.as_str() {
                            "value" => {
                                let s = self.string(&fk, &f.value)?;
                                self.no_nul(&fk, &f.value, s)?;
                                value = Some(s.to_string());
                            }
                            "passthrough" => passthrough = Some(self.boolean(&fk, &f.value)?),
                            _ => {
                                return Err(self.unknown(
                                    &fk,
                                    &f.key_span,
                                    &["value", "passthrough"],
                                    |s| format!("{k}.{s}"),
                                ))
                            }
                        }
                    }
                    match (value, passthrough) {
                        (Some(_), Some(_)) => {
                            return Err(self.invalid(&k, v, "give either `value` or `passthrough = true`, not both"))
                        }
                        (Some(s), None) => EnvValue::Value(s),
                        (None, Some(true)) => EnvValue::Passthrough,
                        (None, Some(false)) => {
                            return Err(self.invalid(
                                &k,
                                v,
                                "`passthrough = false` means nothing; give a value or remove the variable",
                            ))
                        }
                        (None, None) => {
                            return Err(self.invalid(&k, v, "expected `{ value = \"...\" }` or `{ passthrough = true }`"))
                        }
                    }
                }
                _ => return Err(self.wrong_type(&k, v, "a string or { passthrough = true }")),
            };
            self.m.env.insert(var.key.clone(), value);
        }
        Ok(())
    }

    fn fs_root(&mut self, key: &str, n: &Node) -> Result<String> {
        match &n.kind {
            Kind::Str(_) => self.host_path(key, n),
            Kind::Table(fields) => {
                let mut uri = None;
                for f in fields {
                    let fk = format!("{key}.{}", quote_key(&f.key));
                    match f.key.as_str() {
                        "uri" => uri = Some(self.host_path(&fk, &f.value)?),
                        "type" => {
                            if self.string(&fk, &f.value)? != "chroot" {
                                return Err(self.invalid(
                                    &fk,
                                    &f.value,
                                    "the root can only be of type \"chroot\"",
                                ));
                            }
                        }
                        _ => {
                            return Err(self.unknown(&fk, &f.key_span, &["uri", "type"], |s| {
                                format!("{key}.{s}")
                            }))
                        }
                    }
                }
                uri.ok_or_else(|| {
                    self.invalid(key, n, "needs `uri`, e.g. fs.root = { uri = \"file:/\" }")
                })
            }
            _ => Err(self.wrong_type(
                key,
                n,
                "a `file:` URI string or a table { uri = \"file:/\" }",
            )),
        }
    }

    fn mounts(&mut self, key: &str, n: &Node) -> Result<()> {
        let items = self.array(
            key,
            n,
            "an array of tables ({ path = \"...\", uri = \"...\" })",
        )?;
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let mk = format!("{key}[{i}]");
            let Kind::Table(fields) = &item.kind else {
                return Err(self.wrong_type(
                    &mk,
                    item,
                    "a table { path = \"...\", uri = \"...\" }",
                ));
            };
            let (mut kind, mut path, mut uri, mut key_name) = (None, None, None, None);
            for f in fields {
                let fk = format!("{mk}.{}", quote_key(&f.key));
                let v = &f.value;
                match f.key.as_str() {
                    "type" => {
                        let given = self.string(&fk, v)?;
                        kind = Some(MountKind::parse(given).ok_or_else(|| {
                            self.invalid(
                                &fk,
                                v,
                                format!("must be one of \"chroot\", \"tmpfs\", \"encrypted\"; found \"{given}\""),
                            )
                        })?)
                    }
                    "path" => {
                        let p = self.enclave_path(&fk, v)?;
                        if p == "/" {
                            return Err(self.invalid(
                                &fk,
                                v,
                                "cannot mount over `/`; set `fs.root` instead",
                            ));
                        }
                        path = Some((p, self.loc(&v.span)));
                    }
                    "uri" => uri = Some((self.host_path(&fk, v)?, v)),
                    "key_name" => {
                        let s = self.string(&fk, v)?;
                        if s.is_empty() {
                            return Err(self.invalid(&fk, v, "cannot be empty"));
                        }
                        key_name = Some((s.to_string(), v));
                    }
                    _ => {
                        return Err(self.unknown(
                            &fk,
                            &f.key_span,
                            &["type", "path", "uri", "key_name"],
                            |s| format!("{mk}.{s}"),
                        ))
                    }
                }
            }
            let kind = kind.unwrap_or(MountKind::Chroot);
            let Some((path, path_at)) = path else {
                return Err(self.invalid(
                    &mk,
                    item,
                    "a mount needs `path`, the absolute path inside the enclave",
                ));
            };
            let uri = match (kind, uri) {
                (MountKind::Tmpfs, Some((_, v))) => return Err(self.invalid(
                    &format!("{mk}.uri"),
                    v,
                    "a tmpfs mount lives in enclave memory and has no host directory; remove `uri`",
                )),
                (MountKind::Tmpfs, None) => String::new(),
                (_, Some((u, _))) => u,
                (k, None) => {
                    return Err(self.invalid(
                        &mk,
                        item,
                        format!(
                            "a {} mount needs `uri`, the host directory, e.g. uri = \"file:data\"",
                            k.name()
                        ),
                    ))
                }
            };
            let key_name = match (kind, key_name) {
                (MountKind::Encrypted, Some((k, _))) => k,
                (MountKind::Encrypted, None) => "default".to_string(),
                (_, Some((_, v))) => {
                    return Err(self.invalid(
                        &format!("{mk}.key_name"),
                        v,
                        "only `encrypted` mounts take a key; remove `key_name`",
                    ))
                }
                (_, None) => String::new(),
            };
            if let Some(prev) = seen.get(&path) {
                return Err(self.invalid(
                    &mk,
                    item,
                    format!("`{path}` is mounted twice (also at {prev}); keep one"),
                ));
            }
            seen.insert(path.clone(), path_at);
            self.m.mounts.push(Mount {
                path,
                kind,
                uri,
                key_name,
            });
        }
        Ok(())
    }

    fn trusted(&mut self, key: &str, n: &Node) -> Result<()> {
        let items = self.array(key, n, "an array of `file:` URIs or paths")?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ik = format!("{key}[{i}]");
            let entry = match &item.kind {
                Kind::Str(_) => TrustedEntry {
                    path: self.host_path(&ik, item)?,
                    sha256: None,
                },
                Kind::Table(fields) => {
                    let (mut path, mut sha) = (None, None);
                    for f in fields {
                        let fk = format!("{ik}.{}", quote_key(&f.key));
                        match f.key.as_str() {
                            "uri" => path = Some(self.host_path(&fk, &f.value)?),
                            "sha256" => {
                                let s = self.string(&fk, &f.value)?;
                                sha = Some(parse_hex32(s).ok_or_else(|| {
                                    self.invalid(
                                        &fk,
                                        &f.value,
                                        "must be 64 hexadecimal digits (the output of sha256sum)",
                                    )
                                })?);
                            }
                            _ => {
                                return Err(self.unknown(
                                    &fk,
                                    &f.key_span,
                                    &["uri", "sha256"],
                                    |s| format!("{ik}.{s}"),
                                ))
                            }
                        }
                    }
                    let path = path.ok_or_else(|| {
                        self.invalid(&ik, item, "needs `uri`, e.g. { uri = \"file:/usr/bin/python3\", sha256 = \"...\" }")
                    })?;
                    TrustedEntry { path, sha256: sha }
                }
                _ => {
                    return Err(self.wrong_type(
                        &ik,
                        item,
                        "a `file:` URI string or a table { uri = \"...\" }",
                    ))
                }
            };
            if let Err(e) = check_pattern(&entry) {
                return Err(self.invalid(&ik, item, e));
            }
            out.push(entry);
        }
        self.m.trusted_files = out;
        Ok(())
    }
}

/// A trusted entry's glob pattern is valid (and has no sha256).
pub(crate) fn check_pattern(e: &TrustedEntry) -> std::result::Result<(), String> {
    if !paths::has_glob_chars(&e.path) {
        return Ok(());
    }
    for comp in e.path.split('/').filter(|c| paths::has_glob_chars(c)) {
        if let Err(err) = glob::Pattern::new(comp) {
            return Err(format!(
                "\"{}\" is not a valid pattern: {}",
                e.path, err.msg
            ));
        }
    }
    if e.sha256.is_some() {
        return Err("`sha256` can only be given for a single file, not for a pattern".to_string());
    }
    Ok(())
}

pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

pub(crate) fn parse(
    text: &str,
    origin: &str,
    base: Option<&str>,
    defines: &BTreeMap<String, String>,
) -> std::result::Result<Manifest, ManifestError> {
    let expanded = template::expand(text, defines).map_err(|e| match e {
        TemplateError::Undefined { offset, name } => {
            let mut names: Vec<&str> = defines.keys().map(String::as_str).collect();
            names.extend(template::BUILTINS.iter().map(|(n, _)| *n));
            names.sort_unstable();
            names.dedup();
            ManifestError::UndefinedVariable {
                at: Location::at(origin, text, offset),
                name,
                defined: names.join(", "),
            }
        }
        TemplateError::Malformed { offset, message } => ManifestError::Template {
            at: Location::at(origin, text, offset),
            message,
        },
    })?;
    let doc = ImDocument::parse(expanded.text.as_str()).map_err(|e| {
        let off = e.span().map_or(0, |s| s.start);
        let hint = if text.contains("{%") {
            " (Jinja statements such as `{% ... %}` are not supported; conf templates are only `{{ name }}`)"
        } else {
            ""
        };
        ManifestError::Syntax {
            at: Location::at(origin, text, expanded.orig_offset(off)),
            message: e.message().trim().replace('\n', "; "),
            hint: hint.to_string(),
        }
    })?;
    let root = from_item(doc.as_item(), &None);
    let mut p = Parser {
        origin,
        text,
        expanded: &expanded,
        base,
        m: Manifest {
            origin: origin.to_string(),
            ..Manifest::default()
        },
        entrypoint_at: None,
        argv_at: None,
        cmdline_at: None,
        threads_at: None,
        processes_at: None,
        mode_at: None,
    };
    let Kind::Table(entries) = &root.kind else {
        return Err(ManifestError::Syntax {
            at: Location::at(origin, text, 0),
            message: "the document is not a table".to_string(),
            hint: String::new(),
        });
    };
    p.walk(entries, "")?;
    if p.entrypoint_at.is_none() {
        return Err(ManifestError::MissingKey {
            at: Location::at(origin, text, 0),
            key: "libos.entrypoint".to_string(),
            hint: "add the program to run, e.g. `libos.entrypoint = \"/usr/bin/python3\"`",
        });
    }
    if let (Some(argv_at), Some(cmd_at)) = (&p.argv_at, &p.cmdline_at) {
        if p.m.use_cmdline_argv {
            return Err(ManifestError::Conflict {
                at: cmd_at.clone(),
                key: "loader.insecure__use_cmdline_argv".to_string(),
                other: "loader.argv".to_string(),
                other_at: Box::new(argv_at.clone()),
                hint:
                    "arguments come either from the manifest or from the command line; remove one",
            });
        }
    }
    if p.m.ocall_mode == OcallMode::Exitless && p.m.ocall_workers == 0 {
        let at = p
            .mode_at
            .clone()
            .unwrap_or_else(|| Location::at(origin, text, 0));
        return Err(ManifestError::InvalidValue {
            at,
            key: "libos.ocall.workers".to_string(),
            message: "exitless OCALLs need at least one host worker; set `libos.ocall.workers = 1` or more"
                .to_string(),
        });
    }
    Ok(p.m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("sgx.enclave_sise", "sgx.enclave_size"), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("sgx.enclave_sise", KNOWN_KEYS).as_deref(),
            Some("sgx.enclave_size")
        );
        assert_eq!(
            suggest("sgx.stack.size", KNOWN_KEYS).as_deref(),
            Some("sys.stack.size")
        );
        assert_eq!(
            suggest("loader.start_dir", KNOWN_KEYS).as_deref(),
            Some("fs.start_dir")
        );
        assert_eq!(
            suggest("enclave_size", KNOWN_KEYS).as_deref(),
            Some("sgx.enclave_size")
        );
        assert_eq!(
            suggest("sgx.maxthreads", KNOWN_KEYS).as_deref(),
            Some("sgx.max_threads")
        );
        assert_eq!(suggest("completely.unrelated.thing", KNOWN_KEYS), None);
    }

    #[test]
    fn hex() {
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(parse_hex32(h).unwrap()[0], 0xe3);
        assert_eq!(parse_hex32(&h.to_uppercase()), parse_hex32(h));
        assert!(parse_hex32(&h[1..]).is_none());
        assert!(parse_hex32(&h.replace('e', "g")).is_none());
        assert!(parse_hex32("é".repeat(32).as_str()).is_none());
    }

    #[test]
    fn keys_quoted_when_needed() {
        assert_eq!(quote_key("PATH"), "PATH");
        assert_eq!(quote_key("a.b"), "\"a.b\"");
        assert_eq!(quote_key(""), "\"\"");
    }
}
