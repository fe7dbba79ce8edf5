//! Zero-config runs: a [`conf_manifest::Manifest`] synthesized from a
//! command line (`conf-run python3 app.py`), as `docs/zero-config.md`
//! describes.
//!
//! [`synthesize`] finds the program as execvp does, follows `#!`
//! interpreters, collects the ELF closure ld.so will load, adds the
//! runtime's own tree (CPython's standard library and site packages,
//! JAVA_HOME, ...), glibc's configuration files and plug-ins, the script
//! and the working directory, and carries the environment (without `LD_*`).
//! The result is an ordinary manifest: [`conf_manifest::resolve`] hashes it
//! like any other, and `conf manifest` writes it out as TOML.
//!
//! It reads little: the headers and dynamic sections of the ELF files (each
//! once), `/etc/ld.so.cache`, a few stats. The one slow step, asking CPython
//! where its modules are, is cached on disk (see `python.rs`). A start that
//! repeats an earlier one's command reuses that one's manifest while every
//! path synthesis looked at (`observe.rs`) is as it was (`replay.rs`).

// Host files are looked at through `observe` only (loader/clippy.toml).
#![cfg_attr(not(test), deny(clippy::disallowed_methods))]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use conf_manifest::{EnvValue, Manifest, Mount, MountKind, TrustedEntry};

mod ask;
mod cache;
mod closure;
mod cwd;
mod elf;
mod elf_memory;
mod error;
mod exec;
mod ldcache;
mod observe;
mod paths;
mod python;
mod replay;
mod runtime;
mod shell;
mod shim;
mod system;
mod vars;

pub use cwd::{MAX_BYTES as CWD_MAX_BYTES, MAX_FILES as CWD_MAX_FILES, SKIP_DIRS as CWD_SKIP_DIRS};
pub use error::SynthError;
pub use runtime::Runtime;

use closure::Linker;
use elf::{ElfError, ElfInfo, FileKind};
use paths::{exists, file_name, is_under, join_lexical, normalize, utf8};
use vars::Vars;

/// Most `#!` scripts in a row before the ELF program (as Linux allows).
pub const MAX_SCRIPT_DEPTH: usize = 4;

/// Where synthesis looks and what the user added.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// The working directory (absolute): relative paths are taken from
    /// here, it is trusted, and it is the program's start directory.
    pub cwd: PathBuf,
    /// PATH used to find `argv[0]` (unset: `/bin:/usr/bin`, as execvp).
    pub path_env: Option<OsString>,
    /// The host environment to carry into the manifest (without `LD_*`).
    pub env: Vec<(OsString, OsString)>,
    /// Host files or directories made readable and writable, unprotected
    /// (`sgx.allowed_files`), from `--allow`. Each must exist.
    pub allow: Vec<PathBuf>,
    /// More trusted files or directories, from `--trust`. Each must exist.
    pub trust: Vec<PathBuf>,
    /// Where the probe cache lives; `None`: [`conf_manifest::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Whether the manifest an earlier start synthesized for the same
    /// command line and options may be reused when nothing it was made
    /// from changed (`replay.rs`); false: synthesize afresh.
    pub reuse: bool,
}

impl SynthOptions {
    /// Options for a directory, with an empty environment and no PATH.
    pub fn new(cwd: impl Into<PathBuf>) -> SynthOptions {
        SynthOptions {
            cwd: cwd.into(),
            path_env: None,
            env: Vec::new(),
            allow: Vec::new(),
            trust: Vec::new(),
            cache_dir: None,
            reuse: true,
        }
    }

    /// Options from this process: its working directory, PATH and
    /// environment.
    pub fn from_process() -> std::io::Result<SynthOptions> {
        Ok(SynthOptions {
            cwd: std::env::current_dir()?,
            path_env: std::env::var_os("PATH"),
            env: std::env::vars_os().collect(),
            allow: Vec::new(),
            trust: Vec::new(),
            cache_dir: None,
            reuse: true,
        })
    }
}

/// A synthesized manifest.
#[derive(Clone, Debug)]
pub struct Synthesized {
    /// The manifest, ready for [`conf_manifest::resolve`].
    pub manifest: Manifest,
    /// The runtime recognized behind the entrypoint.
    pub runtime: Runtime,
    /// What synthesis decided that the user may want to know (variables
    /// left out, optional libraries not found, a cache that could not be
    /// written...), one line each.
    pub notes: Vec<String>,
    /// Whether this is the manifest an earlier start synthesized for the
    /// same command line, directory, options and values of the variables
    /// synthesis reads, reused because nothing it was made from changed
    /// (`replay.rs`).
    pub replayed: bool,
}

/// Where Python's mimetypes looks for type maps.
const MIME_TYPES_FILES: &[&str] = &[
    "/etc/mime.types",
    "/etc/httpd/mime.types",
    "/etc/httpd/conf/mime.types",
    "/etc/apache/mime.types",
    "/etc/apache2/mime.types",
    "/usr/local/etc/httpd/conf/mime.types",
    "/usr/local/lib/netscape/mime.types",
    "/usr/local/etc/mime.types",
];

/// Directories terminfo entries live in.
const TERMINFO_DIRS: &[&str] = &[
    "/etc/terminfo",
    "/lib/terminfo",
    "/usr/share/terminfo",
    "/usr/lib/terminfo",
];

/// Shell source the entrypoint will run: the `-c` string, or the script.
fn shell_source(args: &[String], prog: &Program, entrypoint: &str) -> String {
    // `-c` is the shell's own option only when the shell is the command
    // (for a script, it is the script's argument).
    if let Some(i) = args.iter().position(|a| a == "-c").filter(|_| prog.direct) {
        if let Some(cmd) = args.get(i + 1) {
            return cmd.clone();
        }
    }
    let script = if prog.direct {
        args.get(1).cloned()
    } else {
        Some(entrypoint.to_string())
    };
    script
        .and_then(|s| observe::read(s).ok())
        .filter(|b| b.len() < 1 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn is_executable(p: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    observe::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Synthesize the manifest that runs `argv` (`argv[0]` as typed: a name
/// searched on PATH, or a path) in `opts.cwd`: the one an earlier start
/// made for the same command line and options, if nothing it looked at has
/// changed since, or afresh.
pub fn synthesize(argv: &[OsString], opts: &SynthOptions) -> Result<Synthesized, SynthError> {
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(conf_manifest::default_cache_dir);
    let (carried, env_notes) = system::carry_env(&opts.env);
    let key = replay::Key::of(argv, opts);
    if opts.reuse {
        if let Some(mut done) = key
            .as_ref()
            .and_then(|k| replay::load(&cache_dir, k, &carried))
        {
            done.notes.splice(0..0, env_notes);
            return Ok(done);
        }
    }
    cache::prepare(&cache_dir);
    let recording = observe::Recording::start();
    let fresh = synthesize_afresh(argv, opts, &cache_dir, Vars::new(carried));
    let facts = recording.finish();
    let Fresh {
        mut synthesized,
        this_start_only,
        recordable,
    } = fresh?;
    if let (Some(key), Some(facts), true) = (key, facts, recordable) {
        replay::store(&cache_dir, &key, facts, &synthesized);
    }
    synthesized.notes.splice(0..0, env_notes);
    synthesized.notes.extend(this_start_only);
    Ok(synthesized)
}

/// What [`synthesize_afresh`] made.
struct Fresh {
    synthesized: Synthesized,
    /// Notes about this start alone (a probe that ran, a cache that could
    /// not be written), not to be repeated when the manifest is reused.
    this_start_only: Vec<String>,
    /// Whether the result follows from what synthesis looked at alone (not
    /// from a helper program that failed this time, say).
    recordable: bool,
}

/// Synthesize with `env`, the environment carried into the manifest (its
/// notes are `synthesize`'s, made again at each start).
fn synthesize_afresh(
    argv: &[OsString],
    opts: &SynthOptions,
    cache_dir: &Path,
    mut env: Vars,
) -> Result<Fresh, SynthError> {
    if argv.is_empty() {
        return Err(SynthError::NoCommand);
    }
    let cwd = utf8("the working directory", opts.cwd.as_os_str())?;
    if !cwd.starts_with('/') {
        return Err(SynthError::RelativeCwd {
            cwd: opts.cwd.clone(),
        });
    }
    let cwd = normalize(cwd);
    let mut args = Vec::with_capacity(argv.len());
    for (i, a) in argv.iter().enumerate() {
        let what = if i == 0 {
            "the command"
        } else {
            "the argument"
        };
        args.push(utf8(what, a)?.to_string());
    }
    let mut notes = Vec::new();
    let mut s = State {
        cwd: cwd.clone(),
        trusted: Vec::new(),
        linker: Linker::new(ldcache::LdCache::load(), Path::new(&cwd)).with_memory(cache_dir),
        notes: Vec::new(),
        this_start_only: Vec::new(),
        recordable: true,
    };

    // The program, and the #! interpreters in front of it.
    let mut entrypoint = exec::find_program(&args[0], &cwd, opts.path_env.as_deref())?;
    if let Some(sh) = shim::detect(&entrypoint) {
        match shim::resolve_cached(&sh, &opts.cwd, &opts.env, cache_dir) {
            Ok(real) => {
                notes.push(format!(
                    "{entrypoint} is a {} shim: running {real}, the program it selects",
                    file_name(&sh.manager)
                ));
                // As `pyenv exec` does: the selected version's programs
                // come first on PATH.
                if let Some(dir) = Path::new(&real).parent().and_then(Path::to_str) {
                    let path = env
                        .get("PATH")
                        .map(|p| format!("{dir}:{p}"))
                        .unwrap_or_else(|| dir.to_string());
                    env.set("PATH", path);
                }
                args[0] = real.clone();
                entrypoint = real;
            }
            Err(why) => {
                // Why the manager gave no answer (a timeout, say) is not
                // among the looks synthesis records.
                s.recordable = false;
                s.this_start_only.push(format!(
                    "{entrypoint} looks like a version-manager shim, but {why}; it runs as a script"
                ))
            }
        }
    }
    let enclave_path = env.get("PATH").map(OsString::from);
    let prog = s.follow_scripts(&entrypoint, enclave_path.as_deref())?;

    // The runtime's own files.
    let real = observe::canonicalize(&prog.path)
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok())
        .unwrap_or_else(|| prog.path.clone());
    let runtime = runtime::detect(&prog.path, &real, &prog.info);
    let rest: &[String] = if prog.direct { &args[1..] } else { &[] };
    match runtime {
        Runtime::Python => s.python(&prog.path, rest, &env, cache_dir)?,
        Runtime::Node => {
            if let Some(script) = runtime::node_script(rest) {
                s.trust_named("script", script);
            }
        }
        Runtime::Java => s.java(&real, rest, &env),
        Runtime::Native => {}
    }
    if prog.pyenv_shim {
        s.notes.push(format!(
            "{} is a pyenv shim: it runs the real interpreter through `pyenv exec`, which needs \
             fork and exec in the enclave; to run the interpreter itself, use `conf-run $(pyenv \
             which {}) ...`",
            entrypoint,
            file_name(&entrypoint)
        ));
    }

    // glibc's own files and plug-ins, OpenSSL's configuration, locales.
    // (Programs added below still get these: they run under the same glibc.)
    system::add_glibc(&mut s.linker, &mut s.trusted);
    let objects: Vec<&str> = s.linker.objects.iter().map(String::as_str).collect();
    system::add_ssl(&objects, runtime == Runtime::Node, &env, &mut s.trusted);
    let locale_notes = system::add_locale_and_tz(&env, &mut s.trusted);
    s.notes.extend(locale_notes);

    // Runtimes start shell commands (subprocess with shell=True,
    // child_process.exec, Runtime.exec through sh -c): trust /bin/sh.
    if matches!(runtime, Runtime::Python | Runtime::Node | Runtime::Java) && exists("/bin/sh") {
        let _ = s.trust_program("/bin/sh", enclave_path.as_deref(), &env, cache_dir);
    }

    // Programs a shell entrypoint will run, found on the enclave's PATH.
    if shell::is_shell(file_name(&prog.path)) {
        let text = shell_source(&args, &prog, &entrypoint);
        let path_for_cmds = enclave_path.clone().or_else(|| opts.path_env.clone());
        for cmd in shell::commands(&text) {
            if let Ok(found) = exec::find_program(&cmd, &cwd, path_for_cmds.as_deref()) {
                if s.trust_program(&found, enclave_path.as_deref(), &env, cache_dir)
                    .is_err()
                {
                    s.notes.push(format!("the shell command {cmd} ({found}) cannot be run in the enclave; it is not trusted"));
                }
            }
        }
    }

    // What the user added: programs come with their libraries.
    for t in &opts.trust {
        let p = s.absolute("--trust", t)?;
        if !exists(&p) {
            return Err(SynthError::TrustMissing {
                given: t.clone(),
                path: p.into(),
            });
        }
        if paths::is_file(Path::new(&p)) && is_executable(&p) {
            let _ = s.trust_program(&p, enclave_path.as_deref(), &env, cache_dir);
        }
        s.trusted.push(p);
    }
    let mut allowed = Vec::new();
    for a in &opts.allow {
        let p = s.absolute("--allow", a)?;
        if observe::symlink_metadata(&p).is_err() {
            return Err(SynthError::AllowMissing {
                given: a.clone(),
                path: p.into(),
            });
        }
        allowed.push(p);
    }

    // The interactive interpreter keeps its history in the user's home.
    if runtime == Runtime::Python && python::is_interactive(rest) {
        if let Some(home) = env.get("HOME") {
            let h = format!("{}/.python_history", home.trim_end_matches('/'));
            if exists(&h) {
                allowed.push(h);
            }
        }
    }

    // POSIX shared memory and named semaphores (Python's multiprocessing
    // locks, shm_open) live in /dev/shm and must be shared with the other
    // processes of the program: passed through, like Docker's /dev/shm.
    if observe::metadata(DEV_SHM).is_ok_and(|m| m.is_dir())
        && !allowed.iter().any(|a| is_under(DEV_SHM, a))
    {
        allowed.push(DEV_SHM.to_string());
    }

    // The working directory.
    if let Some(a) = allowed.iter().find(|a| is_under(&cwd, a)) {
        s.notes.push(format!(
            "the working directory {cwd} is under --allow {a}: it is passed through, not trusted"
        ));
    } else {
        // Left out: --allow'ed directories, and conf's own cache (it
        // changes on every start).
        let mut skip = allowed.clone();
        if let Some(c) = cache_dir.to_str() {
            skip.push(join_lexical(&cwd, c));
        }
        let exclude = cwd::below(&cwd, &skip);
        let t = cwd::trust_cwd(&cwd, &exclude)?;
        if !t.left_out.is_empty() {
            s.notes.push(format!(
                "not trusted in the working directory: {}",
                t.left_out.join(", ")
            ));
        }
        s.trusted.extend(t.entries);
    }

    // Optional libraries that were not found.
    let missing = s.linker.missing();
    if !missing.is_empty() {
        let n = missing.len();
        let shown: Vec<String> = missing
            .iter()
            .take(4)
            .map(|k| format!("{} ({})", k.what, k.why))
            .collect();
        s.notes.push(format!(
            "{n} optional librar{} not trusted (what needs them fails natively too): {}{}",
            if n == 1 { "y is" } else { "ies are" },
            shown.join("; "),
            if n > 4 { "; ..." } else { "" }
        ));
    }

    let mut trusted: Vec<String> = std::mem::take(&mut s.trusted);
    trusted.extend(std::mem::take(&mut s.linker.objects));
    let trusted = compact(trusted);
    allowed.sort();
    allowed.dedup();

    let mut visible: Vec<&String> = trusted.iter().chain(&allowed).collect();
    visible.push(&cwd);
    let mounts = tmp_mounts(&visible, &mut s.notes);

    notes.extend(s.notes);
    let manifest = Manifest {
        origin: format!("<manifest synthesized for {}>", args[0]),
        entrypoint,
        argv: args,
        use_cmdline_argv: false,
        env: env
            .into_map()
            .into_iter()
            .map(|(k, v)| (k, EnvValue::Value(v)))
            .collect::<BTreeMap<_, _>>(),
        mounts,
        start_dir: cwd,
        trusted_files: trusted.into_iter().map(TrustedEntry::new).collect(),
        allowed_files: allowed,
        enclave_size: runtime.enclave_size(),
        max_threads: runtime.max_threads(),
        ..Manifest::default()
    };
    s.linker.save_memory();
    Ok(Fresh {
        synthesized: Synthesized {
            manifest,
            runtime,
            notes,
            replayed: false,
        },
        this_start_only: s.this_start_only,
        recordable: s.recordable,
    })
}

/// Sorted, without duplicates, and without entries that a trusted
/// directory above them already covers: those with no symbolic link
/// between that directory and themselves (resolution walks a directory
/// without following links to directories, so an entry reached through
/// one is kept).
fn compact(mut trusted: Vec<String>) -> Vec<String> {
    trusted.sort();
    trusted.dedup();
    let set: std::collections::HashSet<&str> = trusted.iter().map(String::as_str).collect();
    let covered = |e: &str| -> bool {
        let mut below = e;
        while below != "/" {
            let up = paths::parent(below);
            if set.contains(up) {
                // `up` covers `e` if nothing from below `up` down to `e` is a link.
                let mut p = e;
                while p != up {
                    if observe::symlink_metadata(p).map_or(true, |m| m.file_type().is_symlink()) {
                        return false;
                    }
                    p = paths::parent(p);
                }
                return true;
            }
            below = up;
        }
        false
    };
    trusted.iter().filter(|e| !covered(e)).cloned().collect()
}

/// `/tmp` is a tmpfs in the enclave. Host paths the program must see
/// below `/tmp` (a script or working directory in a temporary directory)
/// would be hidden by it, so the top directory below `/tmp` that holds
/// each is mounted over the tmpfs, at the same path. If `/tmp` itself must
/// be seen, there is no tmpfs.
const DEV_SHM: &str = "/dev/shm";

fn tmp_mounts(visible: &[&String], notes: &mut Vec<String>) -> Vec<Mount> {
    const TMP: &str = "/tmp";
    if visible.iter().any(|p| p.as_str() == TMP) {
        notes.push(
            "/tmp is not a tmpfs in the enclave: the host's /tmp is trusted or allowed".to_string(),
        );
        return Vec::new();
    }
    let mut mounts = vec![Mount {
        path: TMP.to_string(),
        kind: MountKind::Tmpfs,
        uri: String::new(),
        key_name: String::new(),
    }];
    let mut tops: Vec<String> = visible
        .iter()
        .filter(|p| is_under(p, TMP) && p.as_str() != TMP)
        .filter_map(|p| p[TMP.len() + 1..].split('/').next())
        .map(|top| format!("{TMP}/{top}"))
        .collect();
    tops.sort();
    tops.dedup();
    if let Some(file) = tops
        .iter()
        .find(|t| !observe::metadata(t).is_ok_and(|m| m.is_dir()))
    {
        // A file directly in /tmp cannot be mounted over the tmpfs.
        notes.push(format!(
            "/tmp is not a tmpfs in the enclave: the program needs {file}, a file directly in /tmp"
        ));
        return Vec::new();
    }
    for top in tops {
        notes.push(format!(
            "{top} is mounted from the host over the tmpfs at /tmp, because the program needs \
             files there"
        ));
        mounts.push(Mount {
            path: top.clone(),
            kind: MountKind::Chroot,
            uri: top,
            key_name: String::new(),
        });
    }
    mounts
}

/// The ELF program at the end of the `#!` chain.
struct Program {
    path: String,
    info: ElfInfo,
    /// Whether it is `argv[0]` itself (no script in front), so that `argv[1..]`
    /// are its own arguments.
    direct: bool,
    /// Whether a pyenv shim was on the way.
    pyenv_shim: bool,
}

struct State {
    cwd: String,
    trusted: Vec<String>,
    linker: Linker,
    notes: Vec<String>,
    this_start_only: Vec<String>,
    recordable: bool,
}

/// The program `#!/usr/bin/env ARGS` runs: the first word that is not an
/// option or an assignment.
fn env_program(arg: Option<&str>) -> Option<String> {
    let arg = arg?;
    let mut words = arg.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-S" || w == "--split-string" {
            continue;
        }
        if let Some(rest) = w.strip_prefix("-S") {
            if !rest.is_empty() && !rest.starts_with('-') {
                return Some(rest.to_string());
            }
            continue;
        }
        if w == "-u" || w == "--unset" || w == "-C" || w == "--chdir" {
            words.next();
            continue;
        }
        if w.starts_with('-') || w.contains('=') {
            continue;
        }
        return Some(w.to_string());
    }
    None
}

impl State {
    fn absolute(&self, flag: &'static str, p: &Path) -> Result<String, SynthError> {
        let s = utf8(flag, p.as_os_str())?;
        Ok(join_lexical(&self.cwd, s))
    }

    /// Trust a file the command line names (a script, a JAR) if it exists.
    fn trust_named(&mut self, what: &str, name: &str) {
        let p = join_lexical(&self.cwd, name);
        if exists(&p) {
            self.trusted.push(p);
        } else {
            self.notes.push(format!(
                "the {what} {p} does not exist (yet); it is not trusted"
            ));
        }
    }

    /// Follow `#!` lines from `entry` to the ELF program, trusting the
    /// scripts and adding the closure of each ELF program met (`env`
    /// included).
    /// What an interactive terminal program reads: terminfo for $TERM,
    /// readline's /etc/inputrc.
    fn trust_terminal(&mut self, env: &Vars) {
        if let Some(term) = env
            .get("TERM")
            .filter(|t| !t.is_empty() && !t.contains('/'))
        {
            let first = &term[..1];
            let hex = format!("{:02x}", term.as_bytes()[0]);
            for d in TERMINFO_DIRS {
                for sub in [first, hex.as_str()] {
                    let p = format!("{d}/{sub}/{term}");
                    if exists(&p) {
                        self.trusted.push(p);
                    }
                }
            }
        }
        if exists("/etc/inputrc") {
            self.trusted.push("/etc/inputrc".to_string());
        }
    }

    /// Trust a program the entrypoint may run: its #! chain, its library
    /// closure, and its runtime's tree (Python's prefix, JAVA_HOME).
    fn trust_program(
        &mut self,
        path: &str,
        enclave_path: Option<&std::ffi::OsStr>,
        env: &Vars,
        cache_dir: &Path,
    ) -> Result<(), SynthError> {
        let prog = self.follow_scripts(path, enclave_path)?;
        let real = observe::canonicalize(&prog.path)
            .ok()
            .and_then(|p| p.into_os_string().into_string().ok())
            .unwrap_or_else(|| prog.path.clone());
        match runtime::detect(&prog.path, &real, &prog.info) {
            Runtime::Python => self.python(&prog.path, &[], env, cache_dir)?,
            Runtime::Java => self.java(&real, &[], env),
            Runtime::Node | Runtime::Native => {}
        }
        Ok(())
    }

    fn follow_scripts(
        &mut self,
        entry: &str,
        enclave_path: Option<&std::ffi::OsStr>,
    ) -> Result<Program, SynthError> {
        let mut cur = entry.to_string();
        let mut via = String::new();
        let mut chain = vec![entry.to_string()];
        let mut after_env: Option<(String, String)> = None;
        let mut pyenv_shim = false;
        loop {
            let kind = elf::read_kind(Path::new(&cur)).map_err(|e| match e {
                ElfError::Io(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    SynthError::NoSuchFile {
                        path: cur.clone().into(),
                        via: via.clone(),
                    }
                }
                ElfError::Io(err) => SynthError::io(&cur, err),
                ElfError::Unsupported(reason) => SynthError::UnsupportedElf {
                    path: cur.clone().into(),
                    reason,
                    via: via.clone(),
                },
            })?;
            let next = match kind {
                FileKind::Script(sb) => {
                    self.trusted.push(cur.clone());
                    if cur.contains("/.pyenv/shims/") {
                        pyenv_shim = true;
                    }
                    let interp = join_lexical(&self.cwd, &sb.interp);
                    let v = format!(" (the #! interpreter of {cur})");
                    exec::check_runnable(&interp, &v)?;
                    if file_name(&interp) == "env" {
                        if let Some(p) = env_program(sb.arg.as_deref()) {
                            after_env = Some((p, cur.clone()));
                        }
                    }
                    (interp, v)
                }
                FileKind::Elf(info) => {
                    self.linker.remember(&cur, info.clone());
                    self.linker.add_program(&cur)?;
                    match after_env.take() {
                        Some((name, script)) => {
                            let p = exec::find_program(&name, &self.cwd, enclave_path).map_err(
                                |e| match e {
                                    SynthError::NotOnPath { name, path } => SynthError::NotOnPath {
                                        name: format!("{name} (named by the #! line of {script})"),
                                        path,
                                    },
                                    e => e,
                                },
                            )?;
                            let v = format!(" (run by the #! line of {script} through env)");
                            (p, v)
                        }
                        None => {
                            return Ok(Program {
                                path: cur,
                                info,
                                direct: chain.len() == 1,
                                pyenv_shim,
                            })
                        }
                    }
                }
                FileKind::EmptyShebang => {
                    return Err(SynthError::EmptyShebang {
                        path: cur.into(),
                        via,
                    })
                }
                FileKind::Other => {
                    return Err(SynthError::UnknownFormat {
                        path: cur.into(),
                        via,
                    })
                }
            };
            chain.push(next.0.clone());
            if chain.len() > MAX_SCRIPT_DEPTH + 1 {
                return Err(SynthError::ShebangTooDeep {
                    path: entry.into(),
                    max: MAX_SCRIPT_DEPTH,
                    chain: chain.join(" -> "),
                });
            }
            (cur, via) = next;
        }
    }

    fn python(
        &mut self,
        prog: &str,
        args: &[String],
        env: &Vars,
        cache_dir: &Path,
    ) -> Result<(), SynthError> {
        let learned = python::learn(prog, env, cache_dir)?;
        if let Some(w) = learned.cache_warning {
            self.this_start_only.push(w);
        }
        if !learned.cached {
            self.this_start_only.push(format!(
                "asked {prog} where its modules are ({} ms); the answer is cached in {}",
                learned.elapsed.as_millis(),
                cache_dir.display()
            ));
        }
        let tree = learned.tree;
        let mut dirs: Vec<String> = [&tree.stdlib, &tree.platstdlib]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let dynload = tree.lib_dynload();
        dirs.extend(dynload.clone());
        // With -S the site directories are not on sys.path: neither they
        // nor the libraries their extension modules need are trusted.
        let site = !python::without_site(args);
        if site {
            dirs.extend(tree.site_dirs());
        }
        for d in dirs {
            // Entries that do not exist (python311.zip) are skipped, as
            // Python skips them.
            if exists(&d) {
                self.trusted.push(normalize(&d));
            }
        }
        for cfg in python::pyvenv_candidates(prog) {
            if exists(&cfg) {
                self.trusted.push(cfg);
            }
        }
        // mimetypes reads the system's type maps (http.server does).
        for f in MIME_TYPES_FILES {
            if exists(f) {
                self.trusted.push(f.to_string());
            }
        }
        // The interactive interpreter: readline's terminal description and
        // configuration. (History is written to ~/.python_history: allowed
        // when it exists, since it is the user's own scratch file.)
        if python::is_interactive(args) {
            self.trust_terminal(env);
        }
        if let Some(dynload) = dynload {
            if let Ok(rd) = observe::read_dir(&dynload) {
                let mut mods: Vec<String> = rd
                    .flatten()
                    .filter_map(|de| de.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".so"))
                    .map(|n| format!("{dynload}/{n}"))
                    .collect();
                mods.sort();
                for m in mods {
                    self.linker.add_optional(&m, None);
                }
            }
        }
        for m in tree.site_extensions.iter().filter(|_| site) {
            if exists(m) {
                self.linker.add_optional(m, None);
            }
        }
        if let Some(script) = runtime::python_script(args) {
            self.trust_named("script", script);
        }
        Ok(())
    }

    fn java(&mut self, real: &str, args: &[String], env: &Vars) {
        if let Some(home) = runtime::java_home(real) {
            let scan = runtime::scan_java_home(&home);
            self.trusted.push(home);
            self.trusted.extend(scan.extra);
            for so in &scan.shared_objects {
                self.linker.add_optional(so, None);
            }
        }
        for f in runtime::java_files(args, env.get("CLASSPATH").map(String::as_str)) {
            self.trust_named("class path entry", &f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_shebangs() {
        assert_eq!(env_program(Some("python3")).as_deref(), Some("python3"));
        assert_eq!(
            env_program(Some("-S python3 -u")).as_deref(),
            Some("python3")
        );
        assert_eq!(env_program(Some("-Spython3")).as_deref(), Some("python3"));
        assert_eq!(env_program(Some("A=1 -i bash")).as_deref(), Some("bash"));
        assert_eq!(env_program(Some("-u HOME node")).as_deref(), Some("node"));
        assert_eq!(env_program(None), None);
    }

    #[test]
    fn tmp() {
        let mut notes = Vec::new();
        let d = tempfile::tempdir_in("/tmp").unwrap();
        let b = d.path().to_str().unwrap().to_string();
        let a = format!("{b}/app.py");
        let c = "/usr/lib".to_string();
        let m = tmp_mounts(&[&a, &b, &c], &mut notes);
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].path.as_str(), m[1].uri.as_str()), (&*b, &*b));
        let t = "/tmp".to_string();
        assert!(tmp_mounts(&[&t], &mut notes).is_empty());
        let f = tempfile::NamedTempFile::new_in("/tmp").unwrap();
        let f = f.path().to_str().unwrap().to_string();
        assert!(tmp_mounts(&[&f], &mut notes).is_empty());
        assert!(notes.last().unwrap().contains("a file directly in /tmp"));
    }
}
