//! `{{ name }}` substitution, done on the text before TOML parsing.
//!
//! Positions in the expanded text are mapped back to the original text so
//! that every later error points at what the user wrote.

use std::collections::BTreeMap;

/// Variables every manifest can use; `defines` override them.
pub const BUILTINS: &[(&str, &str)] = &[("arch_libdir", "/lib/x86_64-linux-gnu")];

/// One substitution: original byte range and the range it became.
#[derive(Debug)]
struct Subst {
    orig_start: usize,
    orig_end: usize,
    new_start: usize,
    new_end: usize,
}

#[derive(Debug)]
pub(crate) struct Expanded {
    pub text: String,
    substs: Vec<Subst>,
}

impl Expanded {
    /// Byte offset in the original text of byte `off` of the expanded text.
    /// An offset inside a substituted value maps to the start of its `{{`.
    pub fn orig_offset(&self, off: usize) -> usize {
        let i = self.substs.partition_point(|s| s.new_start <= off);
        if i == 0 {
            return off;
        }
        let s = &self.substs[i - 1];
        if off < s.new_end {
            s.orig_start
        } else {
            s.orig_end + (off - s.new_end)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `{{ name }}` with no value for `name`.
    Undefined { offset: usize, name: String },
    /// Anything else between `{{` and `}}`, or a `{{` never closed.
    Malformed { offset: usize, message: String },
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut cs = part.chars();
            matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Substitute every `{{ name }}` in `text`.
pub(crate) fn expand(
    text: &str,
    defines: &BTreeMap<String, String>,
) -> Result<Expanded, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut substs = Vec::new();
    let mut pos = 0;
    while let Some(rel) = text[pos..].find("{{") {
        let start = pos + rel;
        out.push_str(&text[pos..start]);
        let inner_start = start + 2;
        let line_end = text[inner_start..]
            .find('\n')
            .map_or(text.len(), |i| inner_start + i);
        let Some(close_rel) = text[inner_start..line_end].find("}}") else {
            return Err(TemplateError::Malformed {
                offset: start,
                message:
                    "`{{` is not closed by `}}` on the same line; to write a literal `{{` in a \
                          string, use the TOML escape \"\\u007B{\""
                        .to_string(),
            });
        };
        let inner_end = inner_start + close_rel;
        let end = inner_end + 2;
        let name = text[inner_start..inner_end].trim();
        if !is_name(name) {
            return Err(TemplateError::Malformed {
                offset: start,
                message: format!(
                    "unsupported template expression `{{{{{}}}}}`: conf templates are only `{{{{ name }}}}` \
                     (filters, function calls and Jinja statements are not supported); define the value \
                     with -D NAME=VALUE",
                    &text[inner_start..inner_end]
                ),
            });
        }
        let value = defines
            .get(name)
            .map(String::as_str)
            .or_else(|| BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v));
        let Some(value) = value else {
            return Err(TemplateError::Undefined {
                offset: start,
                name: name.to_string(),
            });
        };
        let new_start = out.len();
        out.push_str(value);
        substs.push(Subst {
            orig_start: start,
            orig_end: end,
            new_start,
            new_end: out.len(),
        });
        pos = end;
    }
    out.push_str(&text[pos..]);
    Ok(Expanded { text: out, substs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_and_maps_offsets() {
        let text = "a = \"{{ x }}/b\"\nc = \"{{y}}\" # {{ x }}\n";
        let e = expand(text, &defs(&[("x", "LONGVALUE"), ("y", "")])).unwrap();
        assert_eq!(e.text, "a = \"LONGVALUE/b\"\nc = \"\" # LONGVALUE\n");
        // Before any substitution: identity.
        assert_eq!(e.orig_offset(2), 2);
        // Inside a value: the start of its template.
        assert_eq!(e.orig_offset(7), 5);
        // After it: shifted back.
        let c_new = e.text.find('c').unwrap();
        assert_eq!(e.orig_offset(c_new), text.find('c').unwrap());
        let hash_new = e.text.find('#').unwrap();
        assert_eq!(e.orig_offset(hash_new), text.find('#').unwrap());
    }

    #[test]
    fn builtins_and_overrides() {
        let e = expand("{{arch_libdir}}", &BTreeMap::new()).unwrap();
        assert_eq!(e.text, "/lib/x86_64-linux-gnu");
        let e = expand("{{ arch_libdir }}", &defs(&[("arch_libdir", "/lib64")])).unwrap();
        assert_eq!(e.text, "/lib64");
        let e = expand(
            "{{ python.stdlib }}",
            &defs(&[("python.stdlib", "/usr/lib/python3.11")]),
        )
        .unwrap();
        assert_eq!(e.text, "/usr/lib/python3.11");
    }

    #[test]
    fn errors() {
        assert_eq!(
            expand("x = 1\ny = \"{{ nope }}\"", &BTreeMap::new()).unwrap_err(),
            TemplateError::Undefined {
                offset: 11,
                name: "nope".into()
            }
        );
        assert!(matches!(
            expand("x = \"{{ gramine.runtimedir() }}\"", &BTreeMap::new()),
            Err(TemplateError::Malformed { offset: 5, .. })
        ));
        assert!(matches!(
            expand("x = \"{{ a\n}}\"", &BTreeMap::new()),
            Err(TemplateError::Malformed { .. })
        ));
        assert!(matches!(
            expand("{{}}", &BTreeMap::new()),
            Err(TemplateError::Malformed { .. })
        ));
        // A single brace is plain text.
        assert_eq!(
            expand("a = { b = 1 }", &BTreeMap::new()).unwrap().text,
            "a = { b = 1 }"
        );
    }
}
