//! The environment as synthesis sees it: the variables carried into the
//! manifest, of which synthesis reads only a few (PATH to find programs,
//! the locale and TZ variables, Python's and the version managers' own,
//! ...). The rest are copied into the manifest as they are and change
//! nothing else in it, so a manifest made earlier can be reused with them
//! changed (`replay.rs`: OLDPWD, SHLVL or hyperfine's random padding differ
//! from one start to the next).
//!
//! [`Vars::get`] and [`Vars::with_prefix`] check (in debug builds) that
//! what is read is listed in [`NAMES`] or [`PREFIXES`]; a helper program
//! that gets the whole environment ([`Vars::for_helper`]: the Python
//! probe, a version manager) has its answer cached under those of its
//! variables that matter, which are listed too.

use std::collections::BTreeMap;

/// Variables synthesis reads by name.
const NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "TERM",
    "TZ",
    "LANG",
    "LOCPATH",
    "SSL_CERT_FILE",
    "CLASSPATH",
];

/// Prefixes of the variables synthesis reads as a group: the locale
/// categories, CPython's (they change its paths: the probe's key), and the
/// version managers' (their answers' key).
const PREFIXES: &[&str] = &["LC_", "PYTHON", "PYENV_", "RBENV_", "NODENV_"];

/// Whether synthesis may read the variable `name`.
pub(crate) fn read_by_synthesis(name: &str) -> bool {
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The environment carried into the manifest.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vars(BTreeMap<String, String>);

impl Vars {
    pub(crate) fn new(map: BTreeMap<String, String>) -> Vars {
        Vars(map)
    }

    /// The variable `name` (one of [`NAMES`]).
    pub(crate) fn get(&self, name: &str) -> Option<&String> {
        debug_assert!(
            NAMES.contains(&name),
            "synthesis reads {name}: list it in vars::NAMES"
        );
        self.0.get(name)
    }

    /// The variables whose names start with `prefix` (one of [`PREFIXES`]).
    pub(crate) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a String)> + 'a {
        debug_assert!(
            PREFIXES.contains(&prefix),
            "synthesis reads {prefix}*: list it in vars::PREFIXES"
        );
        self.0
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Set `name` (synthesis changes PATH for a version manager's program).
    pub(crate) fn set(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), value);
    }

    /// Every variable, for a helper program run natively whose answer is
    /// cached under its relevant variables (listed above).
    pub(crate) fn for_helper(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Every variable, for the manifest.
    pub(crate) fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_select_their_variables_only() {
        let v = Vars::new(
            [
                ("LANG", "C.UTF-8"),
                ("LC_ALL", "C"),
                ("LC_TIME", "C"),
                ("LD_X", "1"),
                ("LCX", "2"),
                ("PYTHONPATH", "/x"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let lc: Vec<&str> = v.with_prefix("LC_").map(|(k, _)| k.as_str()).collect();
        assert_eq!(lc, ["LC_ALL", "LC_TIME"]);
        assert!(read_by_synthesis("PYTHONHOME") && read_by_synthesis("PATH"));
        assert!(!read_by_synthesis("OLDPWD") && !read_by_synthesis("LCX"));
    }
}
