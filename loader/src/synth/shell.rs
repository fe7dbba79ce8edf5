//! Commands a shell will run: for `sh -c 'a | b'` and shell scripts, the
//! programs named as commands are trusted too, so that `conf-run sh -c
//! 'echo a | tr a b'` needs no manifest. This is a lexical scan, not a shell
//! parser: it finds the first word of each simple command and leaves out
//! assignments, keywords and built-ins. What it misses can be added with
//! `--trust`.

/// Words that are not programs.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "select", "time", "!", "{", "}", "[[", "]]",
];
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "cd",
    "command",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];
const SHELLS: &[&str] = &["sh", "dash", "bash", "ash", "ksh", "zsh", "busybox"];

/// Is `name` (a file name) a shell?
pub fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// Command names in shell source `text`.
pub fn commands(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        // Split into simple commands at operators and substitutions.
        let mut cmd_start = true;
        let mut after_exec = false;
        for raw in tokens(line) {
            if matches!(
                raw.as_str(),
                "|" | "||"
                    | "&&"
                    | ";"
                    | "&"
                    | "("
                    | ")"
                    | "$("
                    | "`"
                    | ";;"
                    | "then"
                    | "do"
                    | "else"
                    | "!"
                    | "{"
                    | "}"
            ) {
                cmd_start = true;
                continue;
            }
            if !cmd_start {
                continue;
            }
            let w = raw.trim_matches(|c| c == '"' || c == '\'');
            if w.is_empty()
                || w.contains('=') && !w.starts_with('=')
                || w.starts_with('-')
                || w.starts_with('$')
                || w.starts_with('<')
                || w.starts_with('>')
            {
                // An assignment or redirection before the command: keep looking.
                if w.contains('=') {
                    continue;
                }
                cmd_start = false;
                continue;
            }
            if w == "exec"
                || w == "command"
                || w == "nohup"
                || w == "env"
                || w == "xargs"
                || w == "time"
            {
                after_exec = true;
                continue;
            }
            if KEYWORDS.contains(&w) || (BUILTINS.contains(&w) && !after_exec) {
                cmd_start = matches!(w, "if" | "while" | "until" | "elif");
                continue;
            }
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c))
                && !out.iter().any(|o| o == w)
            {
                out.push(w.to_string());
            }
            cmd_start = false;
            after_exec = false;
        }
    }
    out
}

/// Words and operators of a line, quotes kept together.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                cur.push(c);
            }
            '#' if cur.is_empty() => break,
            ' ' | '\t' => flush(&mut cur, &mut out),
            '|' | '&' | ';' => {
                flush(&mut cur, &mut out);
                let two = chars.get(i + 1) == Some(&c);
                out.push(if two {
                    format!("{c}{c}")
                } else {
                    c.to_string()
                });
                if two {
                    i += 1;
                }
            }
            '(' | ')' | '`' => {
                let dollar = c == '(' && cur == "$";
                if !dollar {
                    flush(&mut cur, &mut out);
                    out.push(c.to_string());
                } else {
                    cur.clear();
                    out.push("$(".into());
                }
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_of_pipelines_and_scripts() {
        assert_eq!(commands("echo a | tr a b; exit 7"), vec!["tr"]);
        assert_eq!(commands("X=1 ls -l && wc -c < f"), vec!["ls", "wc"]);
        assert_eq!(
            commands("exec /usr/bin/python3 -c 'print(1)' \"$@\""),
            vec!["/usr/bin/python3"]
        );
        assert_eq!(
            commands("if grep -q x f; then sed s/a/b/ f; fi"),
            vec!["grep", "sed"]
        );
        assert_eq!(
            commands("v=$(cat f | head -1)  # comment"),
            vec!["cat", "head"]
        );
        assert!(commands("# only a comment").is_empty());
    }
}
