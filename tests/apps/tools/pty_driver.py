"""Run a command on a new pseudo-terminal and type lines into it.

Usage: pty_driver.py TIMEOUT PROMPT LINE... -- CMD [ARG...]

The command gets the pty's slave side as stdin, stdout and stderr (and as its
controlling terminal, in a new session). Before each LINE the driver waits
for PROMPT to appear in the output since the previous line (an empty PROMPT
means: do not wait), then types LINE and a newline. Everything read from
the terminal is written to stdout; the driver exits with the command's
status (128+n for a signal), or 124 if it had not ended after TIMEOUT
seconds (it is then killed).
"""
import os
import select
import signal
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    timeout, prompt, lines, cmd = float(args[0]), args[1].encode(), args[2:sep], args[sep + 1:]
    master, slave = os.openpty()

    def controlling_tty():
        import fcntl
        import termios
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=controlling_tty)
    os.close(slave)
    deadline = time.monotonic() + timeout
    seen = b""
    since = 0
    pending = list(lines)
    eof = False
    while not eof and time.monotonic() < deadline:
        if pending and (not prompt or prompt in seen[since:]):
            since = len(seen)
            os.write(master, pending.pop(0).encode() + b"\n")
            continue
        r, _, _ = select.select([master], [], [], 0.05)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                eof = True
            seen += chunk
        elif child.poll() is not None and not pending:
            # ended; drain what is left
            try:
                while select.select([master], [], [], 0.2)[0]:
                    chunk = os.read(master, 4096)
                    if not chunk:
                        break
                    seen += chunk
            except OSError:
                pass
            break
    sys.stdout.buffer.write(seen)
    sys.stdout.flush()
    if child.poll() is None:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            sys.stderr.write(f"pty_driver: timed out after {timeout}s; lines not typed: {pending}\n")
            sys.exit(124)
    rc = child.returncode
    sys.exit(rc if rc >= 0 else 128 - rc)


main()
