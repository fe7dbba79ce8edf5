//! The manifest of a wrapped image, generated from the image config and
//! its unpacked root file system, and the merge with a user's extra
//! manifest (`conf wrap --manifest EXTRA.toml`).
//!
//! From the config: `Entrypoint` + `Cmd` become `loader.argv` (the program
//! is looked up on the image's `PATH`, relative to `WorkingDir` when it has
//! a `/`), `Env` becomes `loader.env` (with Docker's default `PATH` and a
//! `HOME` when the image sets none), `WorkingDir` becomes `fs.start_dir`.
//! `User` only decides `HOME`: the enclave's identity is always root.
//! Every file of the image is trusted except [`EXCLUDED`]; `/tmp` is a
//! tmpfs; the enclave size and thread count follow the runtime found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use conf_manifest::{EnvValue, Manifest, Mount, MountKind, TrustedEntry};
use serde_json::Value;

use crate::synth::Runtime;

/// Directories of an image that are not trusted: kernel and device file
/// systems (the LibOS provides /dev, /proc and /sys itself), temporary
/// directories (/tmp is a tmpfs in the enclave), caches, logs, package
/// lists and documentation. Add any of them back with `--manifest`.
pub const EXCLUDED: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/cache",
    "/var/log",
    "/var/lib/apt/lists",
    "/root/.cache",
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
];

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Most symbolic links followed on one path.
const MAX_LINKS: usize = 40;

/// An enclave path of the image, resolved inside `root` with chroot
/// semantics: (real enclave path, metadata), or `None` if nothing is there.
pub fn lookup(root: &Path, path: &str) -> Option<(String, std::fs::Metadata)> {
    let mut todo: Vec<String> = path
        .rsplit('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut real: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                real.pop();
                continue;
            }
            _ => {}
        }
        let host = root.join(real.iter().chain(std::iter::once(&c)).collect::<PathBuf>());
        let md = std::fs::symlink_metadata(&host).ok()?;
        if md.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_LINKS {
                return None;
            }
            let t = std::fs::read_link(&host)
                .ok()?
                .into_os_string()
                .into_string()
                .ok()?;
            if t.starts_with('/') {
                real.clear();
            }
            todo.extend(t.rsplit('/').filter(|c| !c.is_empty()).map(String::from));
        } else {
            if !todo.is_empty() && !md.is_dir() {
                return None;
            }
            real.push(c);
        }
    }
    let md = std::fs::metadata(root.join(real.iter().collect::<PathBuf>())).ok()?;
    Some((format!("/{}", real.join("/")), md))
}

fn is_executable_file(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    md.is_file() && md.permissions().mode() & 0o111 != 0
}

/// `a` normalized as an absolute path relative to `dir`.
fn absolute(dir: &str, a: &str) -> String {
    let joined = if a.starts_with('/') {
        a.to_string()
    } else {
        format!("{dir}/{a}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(String::from)
                    .ok_or_else(|| anyhow!("the image config's {what} holds a non-string"))
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(_) => bail!("the image config's {what} is not a list of strings"),
    }
}

/// The runtime behind the program at `real` (an enclave path) in `root`:
/// by its name, or for a `#!` script by its interpreter's.
fn runtime_of(root: &Path, real: &str) -> Runtime {
    let by_name = |p: &str| -> Option<Runtime> {
        let name = p.rsplit('/').next().unwrap_or("");
        let is_python = name
            .strip_prefix("python")
            .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit() || ".dmt".contains(c)));
        if is_python {
            Some(Runtime::Python)
        } else if name == "node" || name == "nodejs" {
            Some(Runtime::Node)
        } else if name == "java" && p.rsplit('/').nth(1) == Some("bin") {
            Some(Runtime::Java)
        } else {
            None
        }
    };
    if let Some(r) = by_name(real) {
        return r;
    }
    // A script: look at its #! line (through `env`).
    let host = root.join(real.trim_start_matches('/'));
    let mut head = [0u8; 256];
    let n = std::fs::File::open(host)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    if let Some(line) = head[..n].strip_prefix(b"#!") {
        let line =
            String::from_utf8_lossy(line.split(|&b| b == b'\n').next().unwrap_or(&[])).to_string();
        let mut words = line.split_whitespace();
        if let Some(interp) = words.next() {
            let prog = if interp.ends_with("/env") {
                words.find(|w| !w.starts_with('-')).unwrap_or("")
            } else {
                interp
            };
            let prog = match lookup(root, prog) {
                Some((r, _)) => r,
                None => prog.to_string(),
            };
            if let Some(r) = by_name(&prog) {
                return r;
            }
        }
    }
    Runtime::Native
}

/// The home directory of `user` from the image's /etc/passwd.
fn home_of(root: &Path, user: &str) -> Option<String> {
    let name = user.split(':').next().unwrap_or("");
    if name.is_empty() || name == "root" || name == "0" {
        return Some("/root".to_string());
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && (f[0] == name || f[2] == name)).then(|| f[5].to_string())
    })
}

/// Every top-level entry needed to trust the whole image except
/// [`EXCLUDED`] (enclave paths): directories are listed whole unless
/// something below them is excluded.
pub fn trusted_entries(root: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &str, out: &mut Vec<String>) -> Result<()> {
        let host = root.join(dir.trim_start_matches('/'));
        let mut names: Vec<String> = Vec::new();
        for de in
            std::fs::read_dir(&host).map_err(|e| anyhow!("cannot list {}: {e}", host.display()))?
        {
            let de = de.map_err(|e| anyhow!("cannot list {}: {e}", host.display()))?;
            match de.file_name().into_string() {
                Ok(n) => names.push(n),
                Err(n) => eprintln!(
                    "conf: warning: {}/{} is not trusted: its name is not UTF-8",
                    host.display(),
                    n.to_string_lossy()
                ),
            }
        }
        names.sort();
        for n in names {
            let p = if dir == "/" {
                format!("/{n}")
            } else {
                format!("{dir}/{n}")
            };
            if EXCLUDED.contains(&p.as_str()) {
                continue;
            }
            let md = std::fs::symlink_metadata(root.join(p.trim_start_matches('/')))
                .map_err(|e| anyhow!("cannot look at {p} in the image: {e}"))?;
            let below = |d: &str| {
                EXCLUDED
                    .iter()
                    .any(|x| x.starts_with(d) && x.as_bytes().get(d.len()) == Some(&b'/'))
            };
            if md.is_dir() && below(&p) {
                walk(root, &p, out)?;
            } else if md.file_type().is_symlink() {
                // A link named on its own must lead somewhere trusted (a
                // dangling one, or one into an excluded directory, is left
                // out; links met inside listed directories are all kept).
                match lookup(root, &p) {
                    Some((real, _))
                        if !EXCLUDED
                            .iter()
                            .any(|x| real == *x || real.starts_with(&format!("{x}/"))) =>
                    {
                        out.push(p)
                    }
                    _ => {}
                }
            } else if md.is_dir() || md.is_file() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "/", &mut out)?;
    Ok(out)
}

/// The manifest generated for an image.
pub struct Generated {
    pub manifest: Manifest,
    pub runtime: Runtime,
    /// What was decided that the user may want to know.
    pub notes: Vec<String>,
}

/// Generate the manifest of the image whose config is `config` and whose
/// root file system is unpacked at `root` (an absolute host path).
pub fn generate(config: &Value, root: &Path) -> Result<Generated> {
    let root_str = root
        .to_str()
        .ok_or_else(|| anyhow!("{} is not a UTF-8 path", root.display()))?
        .to_string();
    let empty = serde_json::Map::new();
    let cfg = config
        .get("config")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut notes = Vec::new();

    let mut argv = strings(cfg.get("Entrypoint"), "Entrypoint")?;
    argv.extend(strings(cfg.get("Cmd"), "Cmd")?);
    if argv.is_empty() || argv[0].is_empty() {
        bail!("the image config has neither Entrypoint nor Cmd: there is no program to run; set one in the image, or give libos.entrypoint and loader.argv with --manifest");
    }
    let mut env: BTreeMap<String, EnvValue> = BTreeMap::new();
    for e in strings(cfg.get("Env"), "Env")? {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('\0') => {
                env.insert(k.to_string(), EnvValue::Value(v.to_string()));
            }
            _ => notes.push(format!(
                "ignored the image's Env entry {e:?}: not NAME=VALUE"
            )),
        }
    }
    if !env.contains_key("PATH") {
        env.insert("PATH".into(), EnvValue::Value(DEFAULT_PATH.into()));
    }
    let user = cfg
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !env.contains_key("HOME") {
        let home = home_of(root, &user).unwrap_or_else(|| "/".to_string());
        env.insert("HOME".into(), EnvValue::Value(home));
    }
    if !user.is_empty() && !matches!(user.as_str(), "root" | "0" | "0:0") {
        notes.push(format!("the image's User ({user}) sets HOME; inside the enclave the program runs as root (uid 0)"));
    }
    let start_dir = match cfg.get("WorkingDir").and_then(Value::as_str) {
        Some(w) if !w.is_empty() => absolute("/", w),
        _ => "/".to_string(),
    };

    // The program: on PATH, or relative to the working directory.
    let prog = &argv[0];
    let entrypoint = if prog.contains('/') {
        let p = absolute(&start_dir, prog);
        match lookup(root, &p) {
            Some((_, md)) if is_executable_file(&md) => p,
            Some(_) => bail!("the image's program {prog} ({p}) is not an executable file"),
            None => bail!("the image's program {prog} ({p}) does not exist in the image"),
        }
    } else {
        let path = match env.get("PATH") {
            Some(EnvValue::Value(p)) => p.clone(),
            _ => DEFAULT_PATH.to_string(),
        };
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| absolute(d, prog))
            .find(|p| lookup(root, p).is_some_and(|(_, md)| is_executable_file(&md)))
            .ok_or_else(|| anyhow!("the image's program {prog} is not on the image's PATH ({path}); give its full path in the image's Entrypoint/Cmd, or set libos.entrypoint with --manifest"))?
    };
    let real = lookup(root, &entrypoint)
        .map(|(r, _)| r)
        .unwrap_or_else(|| entrypoint.clone());
    let runtime = runtime_of(root, &real);

    let trusted = trusted_entries(root)?;
    let host = |p: &str| format!("{root_str}{p}");
    let manifest = Manifest {
        origin: "<manifest generated from the image config>".to_string(),
        entrypoint: entrypoint.clone(),
        argv,
        env,
        fs_root: root_str.clone(),
        mounts: vec![Mount {
            path: "/tmp".into(),
            kind: MountKind::Tmpfs,
            uri: String::new(),
            key_name: String::new(),
        }],
        start_dir,
        trusted_files: trusted.iter().map(|p| TrustedEntry::new(host(p))).collect(),
        enclave_size: runtime.enclave_size(),
        max_threads: runtime.max_threads(),
        ..Manifest::default()
    };
    Ok(Generated {
        manifest,
        runtime,
        notes,
    })
}

/// Whether the variable `name` holds a `:`-separated list that an extra
/// manifest extends rather than replaces.
pub fn is_path_like(name: &str) -> bool {
    name.ends_with("PATH")
}

/// Rewrite an image path of the extra manifest (`/x` or `file:/x`) to the
/// host path in the unpacked image.
fn in_image(root: &str, key: &str, s: &str) -> Result<String> {
    let p = s.strip_prefix("file:").unwrap_or(s);
    let p = p
        .strip_prefix("//")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(p);
    if !p.starts_with('/') {
        bail!("{key}: {s:?} must be an absolute path in the image (such as \"/app/data\")");
    }
    Ok(format!("file:{root}{}", absolute("/", p)))
}

fn rewrite_files(root: &str, key: &str, v: &mut toml::Value) -> Result<()> {
    let toml::Value::Array(items) = v else {
        bail!("{key} must be an array");
    };
    for item in items {
        match item {
            toml::Value::String(s) => *s = in_image(root, key, s)?,
            toml::Value::Table(t) => {
                if let Some(toml::Value::String(u)) = t.get_mut("uri") {
                    *u = in_image(root, key, u)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Merge the user's extra manifest `extra` (TOML text, image paths) into
/// the generated `base` manifest, GSC's way: the user's values win, tables
/// merge key by key, `sgx.trusted_files` and `sgx.allowed_files` are
/// joined, `fs.mounts` are joined (the user's mount wins at the same
/// path), and PATH-like variables (`PATH`, `LD_LIBRARY_PATH`,
/// `PYTHONPATH`, any name ending in `PATH`) become `user:image`. Returns
/// the merged TOML.
pub fn merge(base: &Manifest, extra: &str, extra_name: &str) -> Result<String> {
    let mut user: toml::Table = extra
        .parse()
        .map_err(|e| anyhow!("{extra_name}: invalid TOML: {e}"))?;
    let mut merged: toml::Table = base
        .to_toml()
        .parse()
        .map_err(|e| anyhow!("the generated manifest is not valid TOML: {e}"))?;
    let root = base.fs_root.clone();

    // Image paths to host paths.
    if let Some(toml::Value::Table(sgx)) = user.get_mut("sgx") {
        for key in ["trusted_files", "allowed_files"] {
            if let Some(v) = sgx.get_mut(key) {
                rewrite_files(&root, &format!("{extra_name}: sgx.{key}"), v)?;
            }
        }
        if sgx.contains_key("thread_num") {
            if let Some(toml::Value::Table(b)) = merged.get_mut("sgx") {
                b.remove("max_threads");
            }
        }
    }
    if let Some(toml::Value::Table(fs)) = user.get("fs") {
        if fs.contains_key("root") {
            bail!("{extra_name}: fs.root cannot be set: conf wrap shows the image's own root file system as /");
        }
    }
    if let Some(toml::Value::Table(l)) = user.get_mut("libos") {
        if let Some(toml::Value::String(e)) = l.get_mut("entrypoint") {
            if e.starts_with("file:") {
                *e = in_image(&root, &format!("{extra_name}: libos.entrypoint"), e)?;
            }
        }
    }

    fn merge_tables(base: &mut toml::Table, user: toml::Table, path: &str) {
        for (k, v) in user {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (base.get_mut(&k), v) {
                (Some(toml::Value::Table(b)), toml::Value::Table(u)) if here != "loader.env" => {
                    merge_tables(b, u, &here)
                }
                (Some(toml::Value::Table(b)), toml::Value::Table(u)) => {
                    // loader.env: PATH-like variables concatenate.
                    for (name, uv) in u {
                        let joined = match (b.get(&name), &uv) {
                            (Some(toml::Value::String(img)), toml::Value::String(us))
                                if is_path_like(&name) && !img.is_empty() =>
                            {
                                Some(format!("{us}:{img}"))
                            }
                            _ => None,
                        };
                        b.insert(name, joined.map(toml::Value::String).unwrap_or(uv));
                    }
                }
                (Some(toml::Value::Array(b)), toml::Value::Array(u))
                    if matches!(here.as_str(), "sgx.trusted_files" | "sgx.allowed_files") =>
                {
                    b.extend(u)
                }
                (Some(toml::Value::Array(b)), toml::Value::Array(u)) if here == "fs.mounts" => {
                    let path_of = |m: &toml::Value| {
                        m.get("path")
                            .and_then(toml::Value::as_str)
                            .map(String::from)
                    };
                    let user_paths: Vec<Option<String>> = u.iter().map(path_of).collect();
                    b.retain(|m| !user_paths.contains(&path_of(m)));
                    b.extend(u);
                }
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
    merge_tables(&mut merged, user, "");
    toml::to_string(&merged).map_err(|e| anyhow!("cannot write the merged manifest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_variables() {
        assert!(
            is_path_like("PATH") && is_path_like("LD_LIBRARY_PATH") && is_path_like("PYTHONPATH")
        );
        assert!(!is_path_like("HOME") && !is_path_like("PATHS"));
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/app", "./run.sh"), "/app/run.sh");
        assert_eq!(absolute("/app", "../bin/x"), "/bin/x");
        assert_eq!(absolute("/", "/usr//bin/"), "/usr/bin");
    }
}
