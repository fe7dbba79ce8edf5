//! [`Manifest`] back to TOML text that parses to the same manifest.

use std::fmt::Write;

use crate::parse::quote_key;
use crate::size::format_size;
use crate::{EnvValue, Manifest, MountKind, TrustedEntry};

/// A TOML basic string. `{{` is written as `\u007B{` so that the template
/// pass does not see it when the text is parsed again.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '{' if chars.peek() == Some(&'{') => out.push_str("\\u007B"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn uri(path: &str) -> String {
    toml_string(&format!("file:{path}"))
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn trusted(e: &TrustedEntry) -> String {
    match &e.sha256 {
        None => uri(&e.path),
        Some(d) => format!("{{ uri = {}, sha256 = \"{}\" }}", uri(&e.path), hex(d)),
    }
}

pub(crate) fn to_toml(m: &Manifest) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# conf manifest (see docs/manifest.md)\n");
    let _ = writeln!(w, "[libos]");
    let _ = writeln!(w, "entrypoint = {}", toml_string(&m.entrypoint));
    let _ = writeln!(w, "ocall.mode = \"{}\"", m.ocall_mode.name());
    let _ = writeln!(w, "ocall.workers = {}\n", m.ocall_workers);

    let _ = writeln!(w, "[loader]");
    if !m.argv.is_empty() {
        let args: Vec<String> = m.argv.iter().map(|a| toml_string(a)).collect();
        let _ = writeln!(w, "argv = [{}]", args.join(", "));
    }
    let _ = writeln!(w, "insecure__use_cmdline_argv = {}", m.use_cmdline_argv);
    let _ = writeln!(w, "log_level = \"{}\"\n", m.log_level.name());

    if !m.env.is_empty() {
        let _ = writeln!(w, "[loader.env]");
        for (name, value) in &m.env {
            match value {
                EnvValue::Value(v) => {
                    let _ = writeln!(w, "{} = {}", quote_key(name), toml_string(v));
                }
                EnvValue::Passthrough => {
                    let _ = writeln!(w, "{} = {{ passthrough = true }}", quote_key(name));
                }
            }
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "[fs]");
    let _ = writeln!(w, "root = {}", uri(&m.fs_root));
    let _ = writeln!(w, "start_dir = {}", toml_string(&m.start_dir));
    if !m.mounts.is_empty() {
        let _ = writeln!(w, "mounts = [");
        for mt in &m.mounts {
            let _ = write!(
                w,
                "  {{ type = \"{}\", path = {}",
                mt.kind.name(),
                toml_string(&mt.path)
            );
            if mt.kind != MountKind::Tmpfs {
                let _ = write!(w, ", uri = {}", uri(&mt.uri));
            }
            if mt.kind == MountKind::Encrypted {
                let _ = write!(w, ", key_name = {}", toml_string(&mt.key_name));
            }
            let _ = writeln!(w, " }},");
        }
        let _ = writeln!(w, "]");
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "[sgx]");
    let _ = writeln!(w, "enclave_size = \"{}\"", format_size(m.enclave_size));
    let _ = writeln!(w, "max_threads = {}", m.max_threads);
    let _ = writeln!(w, "edmm_enable = {}", m.edmm);
    let _ = writeln!(w, "debug = {}", m.debug);
    let _ = writeln!(w, "isvprodid = {}", m.isvprodid);
    let _ = writeln!(w, "isvsvn = {}", m.isvsvn);
    let _ = writeln!(w, "trusted_files = [");
    for t in &m.trusted_files {
        let _ = writeln!(w, "  {},", trusted(t));
    }
    let _ = writeln!(w, "]");
    let _ = writeln!(w, "allowed_files = [");
    for a in &m.allowed_files {
        let _ = writeln!(w, "  {},", uri(a));
    }
    let _ = writeln!(w, "]\n");

    let _ = writeln!(w, "[sys]");
    let _ = writeln!(w, "stack.size = \"{}\"", format_size(m.stack_size));
    let _ = writeln!(w, "brk.max_size = \"{}\"", format_size(m.brk_max_size));
    let _ = writeln!(w, "max_processes = {}", m.max_processes);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(toml_string("{{x}}"), "\"\\u007B{x}}\"");
        assert_eq!(toml_string("{{{"), "\"\\u007B\\u007B{\"");
        assert_eq!(toml_string("\u{1}"), "\"\\u0001\"");
    }
}
