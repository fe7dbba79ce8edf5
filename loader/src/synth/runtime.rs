//! Language runtimes: telling them apart, the files their command lines
//! name, and Java's home.

use super::elf::ElfInfo;
use super::observe;
use super::paths::{file_name, is_under, join_lexical, parent};

/// What kind of program the entrypoint ends up running. Decides the
/// runtime's own files and the enclave's size and thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// Any other program.
    Native,
    /// CPython.
    Python,
    /// Node.js.
    Node,
    /// OpenJDK's `java` launcher.
    Java,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Python => "python",
            Runtime::Node => "node",
            Runtime::Java => "java",
        }
    }

    /// The runtime [`Runtime::name`] names.
    pub fn parse(name: &str) -> Option<Runtime> {
        [
            Runtime::Native,
            Runtime::Python,
            Runtime::Node,
            Runtime::Java,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }

    /// `sgx.enclave_size` for this runtime. EDMM adds heap pages on use, so
    /// a generous address range costs nothing until it is used.
    pub fn enclave_size(self) -> u64 {
        match self {
            Runtime::Native => 2 << 30,
            Runtime::Python => 4 << 30,
            // V8 reserves 512 MiB of code range and more per isolate
            // (each worker thread is one): reservations cost nothing.
            Runtime::Node => 16 << 30,
            Runtime::Java => 8 << 30,
        }
    }

    /// `sgx.max_threads` for this runtime.
    pub fn max_threads(self) -> u32 {
        match self {
            Runtime::Native => 16,
            Runtime::Python => 16,
            Runtime::Node => 32,
            Runtime::Java => 64,
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn is_python_name(n: &str) -> bool {
    // python, python3, python3.11, python3.11d, python3.13t ...
    n.strip_prefix("python").is_some_and(|rest| {
        rest.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == 'd' || c == 'm' || c == 't')
    })
}

/// The runtime of the ELF program `path` (as invoked) whose real path is
/// `real`.
pub(crate) fn detect(path: &str, real: &str, info: &ElfInfo) -> Runtime {
    let names = [file_name(path), file_name(real)];
    let needs = |prefix: &str| info.needed.iter().any(|n| n.starts_with(prefix));
    if names.iter().any(|n| is_python_name(n)) || needs("libpython") {
        Runtime::Python
    } else if names.iter().any(|n| *n == "node" || *n == "nodejs") || needs("libnode.so") {
        Runtime::Node
    } else if (names.contains(&"java") && file_name(parent(real)) == "bin") || needs("libjli.so") {
        Runtime::Java
    } else {
        Runtime::Native
    }
}

/// `python [options] SCRIPT ...`: the script, if the command runs one
/// (not `-c`, `-m` or `-`).
pub(crate) fn python_script(args: &[String]) -> Option<&str> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-" {
            return None;
        }
        if a == "--" {
            return args.get(i + 1).map(String::as_str);
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "check-hash-based-pycs" {
                i += 1;
            }
            i += 1;
            continue;
        }
        let Some(flags) = a.strip_prefix('-') else {
            return Some(a);
        };
        for (j, c) in flags.char_indices() {
            match c {
                'c' | 'm' => return None,
                'W' | 'X' => {
                    if j + 1 == flags.len() {
                        i += 1; // the value is the next argument
                    }
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Node options that take the next argument as their value.
const NODE_VALUE_OPTIONS: &[&str] = &[
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--title",
    "--env-file",
    "--input-type",
    "--openssl-config",
    "--redirect-warnings",
    "--icu-data-dir",
    "--inspect-port",
    "--stack-trace-limit",
];

/// `node [options] SCRIPT ...`: the script, if the command runs one (not
/// `-e`, `-p`, `-i` or the REPL).
pub(crate) fn node_script(args: &[String]) -> Option<&str> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => return args.get(i + 1).map(String::as_str),
            "-e" | "--eval" | "-p" | "--print" | "-i" | "--interactive" | "-" => return None,
            _ if NODE_VALUE_OPTIONS.contains(&a) => i += 2,
            _ if a.starts_with('-') => i += 1,
            _ => return Some(a),
        }
    }
    None
}

/// Files a `java` command line names: the `-jar` archive, class path and
/// module path entries, a source file. `classpath_env` is CLASSPATH, used
/// when the command gives no class path.
pub(crate) fn java_files(args: &[String], classpath_env: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut class_path_given = false;
    let list = |v: &str, out: &mut Vec<String>| {
        for e in v.split(':').filter(|e| !e.is_empty()) {
            // `dir/*` means every JAR in dir.
            let e = e.strip_suffix("/*").unwrap_or(e);
            out.push(e.to_string());
        }
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let next = args.get(i + 1).map(String::as_str);
        match a {
            "-jar" => {
                if let Some(j) = next {
                    out.push(j.to_string());
                }
                class_path_given = true; // -jar ignores the class path
                break;
            }
            "-cp" | "-classpath" | "--class-path" => {
                class_path_given = true;
                if let Some(v) = next {
                    list(v, &mut out);
                }
                i += 2;
            }
            "-p" | "--module-path" | "--upgrade-module-path" => {
                if let Some(v) = next {
                    list(v, &mut out);
                }
                i += 2;
            }
            "--add-modules"
            | "--limit-modules"
            | "--add-reads"
            | "--add-exports"
            | "--add-opens"
            | "--patch-module"
            | "--enable-native-access"
            | "-d" => i += 2,
            "-m" | "--module" => break,
            _ if a.starts_with("--class-path=") => {
                class_path_given = true;
                list(&a["--class-path=".len()..], &mut out);
                i += 1;
            }
            _ if a.starts_with("--module-path=") => {
                list(&a["--module-path=".len()..], &mut out);
                i += 1;
            }
            _ if a.starts_with('-') || a.starts_with('@') => i += 1,
            _ => {
                // The main class, or a source file in source-file mode.
                if a.ends_with(".java") {
                    out.push(a.to_string());
                }
                break;
            }
        }
    }
    if !class_path_given {
        if let Some(cp) = classpath_env {
            list(cp, &mut out);
        }
    }
    out
}

/// JAVA_HOME of the real `java` launcher path (`.../bin/java`).
pub(crate) fn java_home(real: &str) -> Option<String> {
    let bin = parent(real);
    (file_name(bin) == "bin").then(|| parent(bin).to_string())
}

/// What to trust for a Java home besides the directory itself: the shared
/// objects in it (for their closures), the directories its symbolic links
/// lead to (resolution does not walk linked directories; documentation
/// excepted), and Debian's `/etc/java-*` directories its links point into.
#[derive(Debug, Default)]
pub(crate) struct JavaHome {
    pub shared_objects: Vec<String>,
    pub extra: Vec<String>,
}

/// Documentation trees a runtime links to (Debian's JAVA_HOME/docs); not
/// read by programs, so not trusted.
fn is_documentation(p: &str) -> bool {
    ["/usr/share/doc", "/usr/share/man", "/usr/share/info"]
        .iter()
        .any(|d| is_under(p, d))
}

/// Walk the Java home `home` (a real path) for what [`JavaHome`] lists.
pub(crate) fn scan_java_home(home: &str) -> JavaHome {
    let mut out = JavaHome::default();
    let mut stack = vec![home.to_string()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = observe::read_dir(&dir) else {
            continue;
        };
        for de in rd.flatten() {
            let Ok(name) = de.file_name().into_string() else {
                continue;
            };
            let Ok(ft) = de.file_type() else {
                continue;
            };
            let path = format!("{dir}/{name}");
            let is_so = name.ends_with(".so") || name.contains(".so.");
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                if is_so {
                    out.shared_objects.push(path);
                }
            } else if ft.is_symlink() {
                let Ok(target) = observe::read_link(&path) else {
                    continue;
                };
                let Some(target) = target.to_str() else {
                    continue;
                };
                let target = join_lexical(&dir, target);
                let Ok(md) = observe::metadata(&path) else {
                    continue; // dangling: resolution records the link
                };
                if md.is_dir() && !is_under(&target, home) && !is_documentation(&target) {
                    out.extra.push(target.clone());
                } else if md.is_file() && is_so {
                    out.shared_objects.push(path.clone());
                }
                // /etc/java-17-openjdk/...: trust Debian's whole config dir.
                if let Some(rest) = target.strip_prefix("/etc/") {
                    let top = rest.split('/').next().unwrap_or("");
                    if top.starts_with("java") {
                        let d = format!("/etc/{top}");
                        if !out.extra.contains(&d)
                            && observe::metadata(&d).is_ok_and(|m| m.is_dir())
                        {
                            out.extra.push(d);
                        }
                    }
                }
            }
        }
    }
    out.shared_objects.sort();
    out.extra.sort();
    out.extra.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn python_args() {
        assert_eq!(python_script(&v(&["app.py", "x"])), Some("app.py"));
        assert_eq!(
            python_script(&v(&["-u", "-W", "ignore", "app.py"])),
            Some("app.py")
        );
        assert_eq!(
            python_script(&v(&["-Wignore", "-OO", "app.py"])),
            Some("app.py")
        );
        assert_eq!(python_script(&v(&["-X", "dev", "a.py"])), Some("a.py"));
        assert_eq!(python_script(&v(&["-c", "pass"])), None);
        assert_eq!(python_script(&v(&["-Ic", "pass"])), None);
        assert_eq!(python_script(&v(&["-m", "http.server"])), None);
        assert_eq!(python_script(&v(&["-"])), None);
        assert_eq!(python_script(&v(&[])), None);
    }

    #[test]
    fn node_args() {
        assert_eq!(node_script(&v(&["app.js"])), Some("app.js"));
        assert_eq!(
            node_script(&v(&["-r", "dotenv/config", "app.js"])),
            Some("app.js")
        );
        assert_eq!(node_script(&v(&["--inspect", "app.js"])), Some("app.js"));
        assert_eq!(node_script(&v(&["-e", "0"])), None);
    }

    #[test]
    fn java_args() {
        assert_eq!(
            java_files(&v(&["-jar", "app.jar", "x"]), Some("/cp")),
            ["app.jar"]
        );
        assert_eq!(
            java_files(&v(&["-Xmx1g", "-cp", "classes:lib/*", "Main"]), None),
            ["classes", "lib"]
        );
        assert_eq!(java_files(&v(&["Main"]), Some("/a:/b")), ["/a", "/b"]);
        assert_eq!(java_files(&v(&["Hello.java"]), None), ["Hello.java"]);
        assert!(java_files(&v(&["-version"]), None).is_empty());
    }

    #[test]
    fn names() {
        assert!(is_python_name("python3.11"));
        assert!(is_python_name("python3"));
        assert!(!is_python_name("python3-config"));
        let none = ElfInfo::default();
        assert_eq!(
            detect("/usr/bin/python3", "/usr/bin/python3.11", &none),
            Runtime::Python
        );
        assert_eq!(
            detect("/usr/bin/node", "/usr/bin/node", &none),
            Runtime::Node
        );
        assert_eq!(
            detect("/usr/bin/java", "/usr/lib/jvm/j/bin/java", &none),
            Runtime::Java
        );
        assert_eq!(detect("/bin/ls", "/usr/bin/ls", &none), Runtime::Native);
    }
}
