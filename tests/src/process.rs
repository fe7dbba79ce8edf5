//! Running a child process with a deadline, capturing everything it prints.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or killed) child process did.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// `None` when the child was killed because it ran out of time.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    /// The exit code, if the child exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The signal that killed the child, if it died of one.
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }

    /// Whether the child dumped core (died of SIGSEGV, SIGABRT, ... with a
    /// core, or at least of a signal that would have made one).
    pub fn core_dumped(&self) -> bool {
        self.status.map(|s| s.core_dumped()).unwrap_or(false)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// How the child ended, in words: "exit 0", "signal 11 (core dumped)",
    /// "killed after 20s (timed out)".
    pub fn how(&self) -> String {
        if self.timed_out {
            return format!(
                "killed after {:.1}s (timed out)",
                self.elapsed.as_secs_f64()
            );
        }
        match self.status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(sig)) => format!(
                    "signal {sig}{}",
                    if s.core_dumped() {
                        " (core dumped)"
                    } else {
                        ""
                    }
                ),
                _ => format!("{s:?}"),
            },
            None => "no status".into(),
        }
    }

    /// A multi-line account of the run for assertion messages: command,
    /// status, and the (possibly shortened) stdout and stderr.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus:  {} after {:.2}s\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.command,
            self.how(),
            self.elapsed.as_secs_f64(),
            clip(&self.stdout_str(), 60, 4000),
            clip(&self.stderr_str(), 60, 4000),
        )
    }
}

/// The last `max_lines` lines of `s` (and at most `max_bytes` of them), with
/// a note of what was cut, ending in a newline.
pub fn clip(s: &str, max_lines: usize, max_bytes: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = String::new();
    let skip = lines.len().saturating_sub(max_lines);
    if skip > 0 {
        out.push_str(&format!("[... {skip} earlier lines ...]\n"));
    }
    let mut tail = lines[skip..].join("\n");
    if tail.len() > max_bytes {
        let mut cut = tail.len() - max_bytes;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("[... {cut} bytes ...]{}", &tail[cut..]);
    }
    out.push_str(&tail);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Run `cmd` with stdin from /dev/null and stdout/stderr captured; kill it
/// (SIGKILL) if it has not ended after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let command = render(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for {command}: {e}"),
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // A grandchild holding the pipes open must not hang us either.
    let stdout = join_within(out_reader, Duration::from_secs(5));
    let stderr = join_within(err_reader, Duration::from_secs(5));
    Output {
        command,
        status,
        stdout,
        stderr,
        timed_out,
        elapsed,
    }
}

fn join_within(h: thread::JoinHandle<Vec<u8>>, limit: Duration) -> Vec<u8> {
    let start = Instant::now();
    while !h.is_finished() {
        if start.elapsed() > limit {
            return b"[output not closed: a leftover process still holds the pipe]\n".to_vec();
        }
        thread::sleep(Duration::from_millis(5));
    }
    h.join().unwrap_or_default()
}
