//! Explicit manifests for the programs the scenarios run in conf: the
//! program, its `ldd` closure and /etc/ld.so.cache, plus what the scenario
//! adds; argv from the conf-run command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

#[derive(Clone, Debug)]
pub struct Spec {
    /// The program (host path, also its path inside the enclave).
    pub program: PathBuf,
    /// Files and directories trusted besides the program and its libraries.
    /// Directories end with `/`. Entries that do not exist are left out.
    pub trust: Vec<String>,
    /// Shared objects the program loads with `dlopen` (a JVM): their `ldd`
    /// closures are trusted too.
    pub libs: Vec<PathBuf>,
    /// Allowed (unprotected, writable) files or directories.
    pub allow: Vec<String>,
    /// Environment variables passed through from the host.
    pub env_passthrough: Vec<String>,
    pub enclave_size: String,
    /// More TOML lines, e.g. `libos.ocall.mode = "exitless"`.
    pub extra: Vec<String>,
}

impl Spec {
    pub fn new(program: impl Into<PathBuf>) -> Spec {
        Spec {
            program: program.into(),
            trust: Vec::new(),
            libs: Vec::new(),
            allow: Vec::new(),
            env_passthrough: Vec::new(),
            enclave_size: "1G".to_string(),
            extra: Vec::new(),
        }
    }

    /// A manifest for `/usr/bin/python3`: its closure, the standard library,
    /// the C locale, gconv modules and the time zone; with `site`, also the
    /// site-packages directories and HOME (what `python3` without -S reads).
    pub fn python(site: bool) -> anyhow::Result<Spec> {
        let exe = Path::new("/usr/bin/python3");
        let real = std::fs::canonicalize(exe).context("/usr/bin/python3")?;
        let name = real
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("python3")
            .to_string();
        let mut s = Spec::new(exe);
        s.enclave_size = "2G".to_string();
        s.trust = vec![
            real.to_string_lossy().into_owned(),
            format!("/usr/lib/{name}/"),
            "/usr/lib/locale/C.utf8/".into(),
            "/usr/share/locale/locale.alias".into(),
            "/usr/lib/x86_64-linux-gnu/gconv/".into(),
            "/etc/localtime".into(),
        ];
        if site {
            s.trust.push("/usr/lib/python3/dist-packages/".into());
            s.trust
                .push(format!("/usr/local/lib/{name}/dist-packages/"));
            s.env_passthrough = vec!["HOME".into(), "PATH".into(), "LANG".into(), "LC_ALL".into()];
        }
        Ok(s)
    }

    /// A manifest for Node.js (`node` on PATH): sized as zero-config sizes
    /// Node (V8 reserves a lot of address space; libuv starts worker
    /// threads), plus the OpenSSL configuration Node reads at start and the
    /// CA bundle `NODE_EXTRA_CA_CERTS` names, if that is set (passed through
    /// so that conf reads it as the native run does).
    pub fn node() -> anyhow::Result<Spec> {
        let exe = crate::env::find_program(std::ffi::OsStr::new("node"))
            .context("node not found on PATH (apt-get install -y nodejs)")?;
        let mut s = Spec::new(&exe);
        s.enclave_size = "16G".to_string();
        s.extra.push("sgx.max_threads = 32".into());
        let real = std::fs::canonicalize(&exe)?;
        if real != exe {
            s.trust.push(real.to_string_lossy().into_owned());
        }
        s.trust.push("/etc/ssl/openssl.cnf".into());
        s.trust.push("/usr/lib/ssl/openssl.cnf".into());
        if let Some(ca) = std::env::var_os("NODE_EXTRA_CA_CERTS") {
            s.trust.push(ca.to_string_lossy().into_owned());
            s.env_passthrough.push("NODE_EXTRA_CA_CERTS".into());
        }
        Ok(s)
    }

    /// A manifest for OpenJDK's `java` (on PATH): its whole Java home, the
    /// `/etc/java-*` directory the home's links point into (jvm.cfg, the
    /// security properties), the closures of the home's shared objects
    /// (libjvm.so is loaded with dlopen), the passwd lookup and the C.utf8
    /// locale; sized as zero-config sizes Java, with /tmp a tmpfs. No /proc:
    /// the LibOS answers it.
    pub fn java() -> anyhow::Result<Spec> {
        let exe = crate::env::find_program(std::ffi::OsStr::new("java"))
            .context("java not found on PATH (apt-get install -y openjdk-17-jre-headless)")?;
        let real = std::fs::canonicalize(&exe)?;
        let home = real
            .parent()
            .filter(|b| b.file_name().is_some_and(|n| n == "bin"))
            .and_then(Path::parent)
            .with_context(|| format!("{} is not in a Java home's bin/", real.display()))?
            .to_path_buf();
        let mut s = Spec::new(&exe);
        s.enclave_size = "8G".to_string();
        s.extra.push("sgx.max_threads = 64".into());
        // The JVM writes its perf-data file to /tmp/hsperfdata_USER: into
        // enclave memory here, as zero-config does (gVisor: its overlay).
        s.extra
            .push(r#"fs.mounts = [{ type = "tmpfs", path = "/tmp" }]"#.into());
        s.trust.push(format!("{}/", home.display()));
        let (libs, etc) = scan_java_home(&home);
        s.libs = libs;
        s.trust.extend(etc.into_iter().map(|d| format!("{d}/")));
        s.trust.extend(
            [
                "/etc/nsswitch.conf",
                "/etc/passwd",
                "/etc/group",
                "/etc/localtime",
                "/usr/lib/locale/C.utf8/",
                "/usr/share/locale/locale.alias",
                "/usr/lib/x86_64-linux-gnu/gconv/",
            ]
            .map(String::from),
        );
        s.env_passthrough = vec!["HOME".into(), "PATH".into(), "LANG".into(), "LC_ALL".into()];
        Ok(s)
    }

    /// Write the manifest to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let mut trusted = vec![self.program.to_string_lossy().into_owned()];
        for elf in std::iter::once(&self.program).chain(&self.libs) {
            for lib in ldd_closure(elf)? {
                trusted.push(lib.to_string_lossy().into_owned());
            }
        }
        trusted.push("/etc/ld.so.cache".into());
        trusted.extend(self.trust.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        trusted.retain(|t| Path::new(t).exists() && seen.insert(t.clone()));

        let mut m = String::from("# Written by conf-bench.\n");
        m.push_str(&format!(
            "libos.entrypoint = {}\n",
            quote(&self.program.to_string_lossy())
        ));
        m.push_str("loader.insecure__use_cmdline_argv = true\n");
        m.push_str(&format!(
            "sgx.enclave_size = {}\n",
            quote(&self.enclave_size)
        ));
        for l in &self.extra {
            m.push_str(l);
            m.push('\n');
        }
        for v in &self.env_passthrough {
            m.push_str(&format!(
                "loader.env.{} = {{ passthrough = true }}\n",
                quote(v)
            ));
        }
        m.push_str("sgx.trusted_files = [\n");
        for t in &trusted {
            m.push_str(&format!("  {},\n", quote(&format!("file:{t}"))));
        }
        m.push_str("]\n");
        if !self.allow.is_empty() {
            m.push_str("sgx.allowed_files = [\n");
            for a in &self.allow {
                m.push_str(&format!("  {},\n", quote(&format!("file:{a}"))));
            }
            m.push_str("]\n");
        }
        std::fs::write(path, m).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_path_buf())
    }
}

/// The shared objects in a Java home (for their closures) and the
/// `/etc/java*` directories its symbolic links point into.
fn scan_java_home(home: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut libs, mut etc) = (Vec::new(), Vec::new());
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for de in rd.flatten() {
            let path = de.path();
            let Ok(ft) = de.file_type() else { continue };
            let name = de.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_symlink() {
                if let Some(top) = std::fs::read_link(&path)
                    .ok()
                    .and_then(|t| etc_java_dir(&t.to_string_lossy()))
                {
                    if !etc.contains(&top) {
                        etc.push(top);
                    }
                }
            } else if ft.is_file() && name.ends_with(".so") {
                libs.push(path);
            }
        }
    }
    libs.sort();
    etc.sort();
    (libs, etc)
}

/// `/etc/java-17-openjdk` for a link target below it.
fn etc_java_dir(target: &str) -> Option<String> {
    let top = target.strip_prefix("/etc/")?.split('/').next()?;
    top.starts_with("java").then(|| format!("/etc/{top}"))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The shared libraries and the ELF interpreter `ldd` lists for `program`
/// (none for a static program).
pub fn ldd_closure(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .context("cannot run ldd (install libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": a static program needs nothing else.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path {
            if p.starts_with('/') {
                libs.push(PathBuf::from(p));
            }
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f42)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f42)\n\tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn java_config_links() {
        assert_eq!(
            etc_java_dir("/etc/java-17-openjdk/jvm-amd64.cfg").as_deref(),
            Some("/etc/java-17-openjdk")
        );
        assert_eq!(etc_java_dir("/etc/ssl/certs/java/cacerts"), None);
        assert_eq!(etc_java_dir("../../openjdk-17/src.zip"), None);
    }

    #[test]
    fn toml_quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), "\"x\\u000ay\"");
    }
}
