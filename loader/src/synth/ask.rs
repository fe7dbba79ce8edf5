//! Asking a program on the host (the Python probe, a version manager):
//! run it with its output collected and a deadline, returning as soon as it
//! exits.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// What the program said.
pub(crate) struct Answer {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why there is no answer.
pub(crate) enum NoAnswer {
    /// It could not be started.
    Start(std::io::Error),
    /// It was still running at the deadline (and was killed).
    Timeout,
    /// Waiting for it failed.
    Wait(std::io::Error),
}

/// Run `cmd` (stdin from /dev/null) and wait for it, at most `limit`.
pub(crate) fn ask(cmd: &mut Command, limit: Duration) -> Result<Answer, NoAnswer> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NoAnswer::Start)?;
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    // Both pipes are drained while the program runs (a full pipe would
    // stop it), and the answer is taken the moment it exits: polling cost
    // a start up to the poll interval.
    std::thread::spawn(move || {
        let err_reader = std::thread::spawn(move || {
            let mut e = Vec::new();
            let _ = err.read_to_end(&mut e);
            e
        });
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        let e = err_reader.join().unwrap_or_default();
        let _ = tx.send((child.wait(), o, e));
    });
    match rx.recv_timeout(limit) {
        Ok((status, stdout, stderr)) => Ok(Answer {
            status: status.map_err(NoAnswer::Wait)?,
            stdout,
            stderr,
        }),
        Err(_) => {
            // SAFETY: `pid` is our child, not yet reaped (the waiting
            // thread has not returned); kill has no memory effects.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            Err(NoAnswer::Timeout)
        }
    }
}
