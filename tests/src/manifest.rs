//! A small builder for conf manifests (TOML), and the set of files a
//! dynamically linked program needs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A TOML basic string for `s`.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The shared libraries and interpreter `program` loads, as `ldd` reports
/// them (absolute paths, in ldd's order). Empty for a static program.
pub fn ldd_closure(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let candidate = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = candidate {
            if p.starts_with('/') && !libs.iter().any(|l: &PathBuf| l == Path::new(p)) {
                libs.push(PathBuf::from(p));
            }
        }
    }
    libs
}

/// Everything needed to load `program`: itself, its ldd closure and, if it
/// is dynamic, /etc/ld.so.cache.
pub fn program_files(program: &Path) -> Vec<PathBuf> {
    let mut files = vec![program.to_path_buf()];
    let libs = ldd_closure(program);
    if !libs.is_empty() {
        files.extend(libs);
        if Path::new("/etc/ld.so.cache").exists() {
            files.push(PathBuf::from("/etc/ld.so.cache"));
        }
    }
    files
}

/// A conf manifest under construction. Everything is written as top-level
/// dotted keys, so `raw` lines may be any `key = value`.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub entrypoint: String,
    pub trusted: BTreeSet<String>,
    pub allowed: BTreeSet<String>,
    pub env: Vec<(String, String)>,
    pub enclave_size: String,
    pub use_cmdline_argv: bool,
    pub argv: Option<Vec<String>>,
    pub log_level: Option<String>,
    pub start_dir: Option<String>,
    /// Inline tables for `fs.mounts`, e.g. `{ type = "tmpfs", path = "/tmp" }`.
    pub mounts: Vec<String>,
    /// More `key = value` lines.
    pub raw: Vec<String>,
}

impl Manifest {
    /// A manifest that runs `program` (a host path, shown at the same path
    /// in the enclave), trusting it and what `ldd` says it loads, with argv
    /// from the conf-run command line and a 1G enclave.
    pub fn for_program(program: impl AsRef<Path>) -> Manifest {
        let program = program.as_ref();
        let mut m = Manifest {
            entrypoint: program.to_str().expect("UTF-8 program path").to_string(),
            trusted: BTreeSet::new(),
            allowed: BTreeSet::new(),
            env: Vec::new(),
            enclave_size: "1G".into(),
            use_cmdline_argv: true,
            argv: None,
            log_level: None,
            start_dir: None,
            mounts: Vec::new(),
            raw: Vec::new(),
        };
        for f in program_files(program) {
            m.trusted
                .insert(f.to_str().expect("UTF-8 path").to_string());
        }
        m
    }

    /// Trust a host file or directory (a directory: everything below it).
    pub fn trust(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let mut s = path.as_ref().to_str().expect("UTF-8 path").to_string();
        if path.as_ref().is_dir() && !s.ends_with('/') {
            s.push('/');
        }
        self.trusted.insert(s);
        self
    }

    /// Trust a program and everything it loads.
    pub fn trust_program(&mut self, program: impl AsRef<Path>) -> &mut Self {
        for f in program_files(program.as_ref()) {
            self.trust(f);
        }
        self
    }

    /// Allow (pass through, unprotected) a host file or directory.
    pub fn allow(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let mut s = path.as_ref().to_str().expect("UTF-8 path").to_string();
        if path.as_ref().is_dir() && !s.ends_with('/') {
            s.push('/');
        }
        self.allowed.insert(s);
        self
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn enclave_size(&mut self, size: &str) -> &mut Self {
        self.enclave_size = size.to_string();
        self
    }

    /// Fixed argv (turns off argv from the command line).
    pub fn argv(&mut self, argv: &[&str]) -> &mut Self {
        self.argv = Some(argv.iter().map(|s| s.to_string()).collect());
        self.use_cmdline_argv = false;
        self
    }

    pub fn mount(&mut self, inline_table: &str) -> &mut Self {
        self.mounts.push(inline_table.to_string());
        self
    }

    pub fn raw(&mut self, line: &str) -> &mut Self {
        self.raw.push(line.to_string());
        self
    }

    fn uri_list(items: &BTreeSet<String>) -> String {
        let v: Vec<String> = items
            .iter()
            .map(|p| format!("  {},", toml_str(&format!("file:{p}"))))
            .collect();
        format!("[\n{}\n]", v.join("\n"))
    }

    /// The manifest text.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# written by the conf-e2e test harness");
        let _ = writeln!(s, "libos.entrypoint = {}", toml_str(&self.entrypoint));
        if self.use_cmdline_argv {
            let _ = writeln!(s, "loader.insecure__use_cmdline_argv = true");
        }
        if let Some(argv) = &self.argv {
            let v: Vec<String> = argv.iter().map(|a| toml_str(a)).collect();
            let _ = writeln!(s, "loader.argv = [{}]", v.join(", "));
        }
        if let Some(l) = &self.log_level {
            let _ = writeln!(s, "loader.log_level = {}", toml_str(l));
        }
        for (k, v) in &self.env {
            let _ = writeln!(s, "loader.env.{} = {}", toml_str(k), toml_str(v));
        }
        if let Some(d) = &self.start_dir {
            let _ = writeln!(s, "fs.start_dir = {}", toml_str(d));
        }
        if !self.mounts.is_empty() {
            let _ = writeln!(s, "fs.mounts = [\n  {},\n]", self.mounts.join(",\n  "));
        }
        let _ = writeln!(s, "sgx.enclave_size = {}", toml_str(&self.enclave_size));
        let _ = writeln!(s, "sgx.trusted_files = {}", Self::uri_list(&self.trusted));
        if !self.allowed.is_empty() {
            let _ = writeln!(s, "sgx.allowed_files = {}", Self::uri_list(&self.allowed));
        }
        for r in &self.raw {
            let _ = writeln!(s, "{r}");
        }
        s
    }

    /// Write the manifest to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        std::fs::write(path, self.to_toml())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_path_buf()
    }
}
