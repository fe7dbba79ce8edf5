//! What glibc reads or loads on its own: configuration in `/etc`, NSS
//! modules, the locale, time zones, libgcc_s; and the environment rule.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::closure::Linker;
use super::paths::{exists, normalize};
use super::vars::Vars;

/// Files in `/etc` that a typical program (through glibc) reads, trusted
/// when they exist. ld.so.conf(.d) is read by ldconfig, not by programs,
/// but is trusted so that the cache it produced can be reviewed against it.
pub(crate) const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/etc/timezone",
];

/// Libraries glibc itself loads with dlopen: the resolver (for `dns`) and
/// libgcc_s (unwinding for pthread_exit and pthread_cancel, backtrace).
const GLIBC_DLOPENED: &[&str] = &["libresolv.so.2", "libgcc_s.so.1"];

/// OpenSSL's configuration and the CA certificates, trusted when libssl or
/// libcrypto is loaded. `/etc/ssl/private` is deliberately not here.
const SSL_FILES: &[&str] = &[
    "/etc/ssl/openssl.cnf",
    "/usr/lib/ssl/openssl.cnf",
    "/etc/pki/tls/openssl.cnf",
    // The CA bundles (OpenSSL's default CAfile and what it links to, on
    // Debian, Alpine and Fedora). Not the hashed CA directories (CApath,
    // /etc/ssl/certs): the bundle holds every certificate they do, and a
    // directory of hundreds of links cost every start ~0.4 ms.
    "/usr/lib/ssl/cert.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/cert.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Where glibc's locale data lives (without LOCPATH).
const LOCALE_DIR: &str = "/usr/lib/locale";
const ZONEINFO: &str = "/usr/share/zoneinfo";
/// glibc's iconv modules, in the places distributions put them.
const GCONV_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/gconv",
    "/usr/lib64/gconv",
    "/usr/lib/gconv",
];

/// The environment carried into the manifest: every variable of `env`
/// except those starting with `LD_`, which would make ld.so load or log
/// things the manifest does not cover (LD_PRELOAD, LD_LIBRARY_PATH,
/// LD_AUDIT, ...). Variables that are not UTF-8 cannot be written in a
/// manifest and are left out too. Returns the environment and notes.
pub(crate) fn carry_env(env: &[(OsString, OsString)]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut not_utf8 = Vec::new();
    for (k, v) in env {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            not_utf8.push(k.to_string_lossy().into_owned());
            continue;
        };
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            continue;
        }
        if k.starts_with("LD_") {
            dropped.push(k.to_string());
            continue;
        }
        out.insert(k.to_string(), v.to_string());
    }
    let mut notes = Vec::new();
    if !dropped.is_empty() {
        dropped.sort();
        dropped.dedup();
        notes.push(format!(
            "left out of the environment: {} (LD_* variables would make ld.so load code that is \
             not trusted)",
            dropped.join(", ")
        ));
    }
    if !not_utf8.is_empty() {
        notes.push(format!(
            "left out of the environment (not UTF-8): {}",
            not_utf8.join(", ")
        ));
    }
    (out, notes)
}

/// NSS services named in nsswitch.conf (`files`, `dns`, `systemd`, ...),
/// with `files` and `dns` always included (glibc's defaults).
pub(crate) fn nss_services() -> Vec<String> {
    let mut services = vec!["files".to_string(), "dns".to_string()];
    if let Ok(text) = super::observe::read_to_string("/etc/nsswitch.conf") {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let Some((_, rest)) = line.split_once(':') else {
                continue;
            };
            let mut in_action = false;
            for tok in rest.split_whitespace() {
                if tok.starts_with('[') {
                    in_action = true;
                }
                if !in_action
                    && tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !services.iter().any(|s| s == tok)
                {
                    services.push(tok.to_string());
                }
                if tok.ends_with(']') {
                    in_action = false;
                }
            }
        }
    }
    services
}

/// Add glibc's own pieces: /etc files, NSS modules, libresolv, libgcc_s.
pub(crate) fn add_glibc(linker: &mut Linker, trusted: &mut Vec<String>) {
    for f in ETC_FILES {
        if exists(f) {
            trusted.push(f.to_string());
        }
    }
    let mut libs: Vec<String> = nss_services()
        .iter()
        .map(|s| format!("libnss_{s}.so.2"))
        .collect();
    libs.extend(GLIBC_DLOPENED.iter().map(|s| s.to_string()));
    for lib in libs {
        if let Some(paths) = linker.find_system(&lib) {
            for p in paths {
                linker.add_optional(&p, Some("glibc"));
            }
        }
    }
}

/// OpenSSL's files, if the closure loads OpenSSL (or the runtime carries
/// its own copy, as Node.js does): its configuration, the system's CA
/// bundle, and the bundle `SSL_CERT_FILE` names.
pub(crate) fn add_ssl(
    objects: &[&str],
    bundles_openssl: bool,
    env: &Vars,
    trusted: &mut Vec<String>,
) -> bool {
    let uses_ssl = bundles_openssl
        || objects.iter().any(|o| {
            let name = super::paths::file_name(o);
            name.starts_with("libssl.so") || name.starts_with("libcrypto.so")
        });
    if uses_ssl {
        trusted.extend(
            SSL_FILES
                .iter()
                .filter(|f| exists(f))
                .map(|f| f.to_string()),
        );
        if let Some(f) = env.get("SSL_CERT_FILE").filter(|f| f.starts_with('/')) {
            if super::paths::is_file(std::path::Path::new(f)) {
                trusted.push(f.clone());
            }
        }
    }
    uses_ssl
}

/// The locales the environment selects (LC_ALL, LC_*, LANG), other than
/// the built-in C and POSIX.
pub(crate) fn locales(env: &Vars) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let values = env
        .get("LANG")
        .into_iter()
        .chain(env.with_prefix("LC_").map(|(_, v)| v));
    for v in values {
        if !v.is_empty() && v != "C" && v != "POSIX" {
            // LC_ALL=C overrides the rest, but being generous costs little.
            if !out.contains(v) && !v.contains('/') && !v.contains("..") {
                out.push(v.clone());
            }
        }
    }
    out
}

/// glibc's normalized codeset: lower case, letters and digits only; "iso"
/// in front if only digits remain.
fn normalize_codeset(cs: &str) -> String {
    let s: String = cs
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.chars().all(|c| c.is_ascii_digit()) {
        format!("iso{s}")
    } else {
        s
    }
}

/// The directory names glibc tries for a locale name
/// `language[_territory][.codeset][@modifier]`, most specific first.
pub(crate) fn locale_variants(name: &str) -> Vec<String> {
    let (rest, modifier) = match name.split_once('@') {
        Some((r, m)) => (r, Some(m)),
        None => (name, None),
    };
    let (rest, codeset) = match rest.split_once('.') {
        Some((r, c)) => (r, Some(c)),
        None => (rest, None),
    };
    let (lang, territory) = match rest.split_once('_') {
        Some((l, t)) => (l, Some(t)),
        None => (rest, None),
    };
    let mut codesets: Vec<Option<String>> = Vec::new();
    if let Some(c) = codeset {
        codesets.push(Some(c.to_string()));
        let n = normalize_codeset(c);
        if n != c {
            codesets.push(Some(n));
        }
    }
    codesets.push(None);
    let mut out = Vec::new();
    for t in [territory, None] {
        for c in &codesets {
            for m in [modifier, None] {
                let mut s = lang.to_string();
                if let Some(t) = t {
                    s.push('_');
                    s.push_str(t);
                }
                if let Some(c) = c {
                    s.push('.');
                    s.push_str(c);
                }
                if let Some(m) = m {
                    s.push('@');
                    s.push_str(m);
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// Whether a locale name selects a character set other than UTF-8 (which,
/// with ASCII, glibc converts without loading iconv modules). A name
/// without a codeset (`en_US`) uses the locale's default, usually a legacy
/// one.
fn needs_gconv(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name);
    match base.split_once('.') {
        Some((_, cs)) => !matches!(
            normalize_codeset(cs).as_str(),
            "utf8" | "ascii" | "ansix341968"
        ),
        None => !name.starts_with("C") && name != "POSIX",
    }
}

/// Locale data for the environment's locales, the iconv modules when a
/// locale needs them, and the time zone TZ names. Returns notes.
pub(crate) fn add_locale_and_tz(env: &Vars, trusted: &mut Vec<String>) -> Vec<String> {
    let mut notes = Vec::new();
    let locales = locales(env);
    if !locales.is_empty() {
        let mut dirs: Vec<String> = env
            .get("LOCPATH")
            .map(|l| {
                l.split(':')
                    .filter(|d| d.starts_with('/'))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        dirs.push(LOCALE_DIR.to_string());
        let archive = format!("{LOCALE_DIR}/locale-archive");
        if exists(&archive) {
            trusted.push(archive);
        }
        let mut found_any = false;
        for name in &locales {
            for v in locale_variants(name) {
                for d in &dirs {
                    let p = format!("{d}/{v}");
                    if exists(&p) {
                        found_any = true;
                        trusted.push(p);
                    }
                }
            }
        }
        if !found_any && !trusted.iter().any(|t| t.ends_with("/locale-archive")) {
            notes.push(format!(
                "no locale data found for {}; the program will fall back to the C locale",
                locales.join(", ")
            ));
        }
        // setlocale reads the alias table, and glibc's iconv its module
        // configuration, whatever the charset: both small, both trusted.
        if exists("/usr/share/locale/locale.alias") {
            trusted.push("/usr/share/locale/locale.alias".to_string());
        }
        if let Some(g) = GCONV_DIRS.iter().find(|d| exists(d)) {
            for f in ["gconv-modules", "gconv-modules.cache", "gconv-modules.d"] {
                let p = format!("{g}/{f}");
                if exists(&p) {
                    trusted.push(p);
                }
            }
        }
        if locales.iter().any(|l| needs_gconv(l)) {
            if let Some(g) = GCONV_DIRS.iter().find(|d| exists(d)) {
                trusted.push(g.to_string());
                notes.push(format!(
                    "trusted the iconv modules in {g}: the locale ({}) is not UTF-8",
                    locales.join(", ")
                ));
            }
        }
    }
    if let Some(tz) = env.get("TZ") {
        let name = tz.strip_prefix(':').unwrap_or(tz);
        if !name.is_empty() && !name.contains("..") {
            let p = if name.starts_with('/') {
                normalize(name)
            } else {
                format!("{ZONEINFO}/{name}")
            };
            if super::paths::is_file(std::path::Path::new(&p)) {
                trusted.push(p);
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_rule() {
        let env = vec![
            ("PATH".into(), "/bin".into()),
            ("LD_PRELOAD".into(), "/x.so".into()),
            ("LD_LIBRARY_PATH".into(), "/x".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        let (e, notes) = carry_env(&env);
        assert_eq!(e.keys().collect::<Vec<_>>(), ["LANG", "PATH"]);
        assert!(
            notes[0].contains("LD_LIBRARY_PATH, LD_PRELOAD"),
            "{notes:?}"
        );
    }

    #[test]
    fn locale_names() {
        let v = locale_variants("de_DE.UTF-8@euro");
        assert_eq!(v[0], "de_DE.UTF-8@euro");
        assert!(v.contains(&"de_DE.utf8".to_string()));
        assert!(v.contains(&"de".to_string()));
        assert_eq!(locale_variants("C.UTF-8")[..2], ["C.UTF-8", "C.utf8"]);
        assert!(!needs_gconv("en_US.UTF-8"));
        assert!(!needs_gconv("C.utf8"));
        assert!(needs_gconv("en_US.ISO-8859-1"));
        assert!(needs_gconv("en_US"));
    }
}
