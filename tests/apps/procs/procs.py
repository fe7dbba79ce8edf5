"""Processes from Python: subprocess, fork/wait, signals between
processes, process groups, multiprocessing, and exec at the end."""
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time


def square(x):
    return x * x


def add_into(v, q, x):
    with v.get_lock():
        v.value += x
    q.put(os.getpid() != os.getppid())


def main():
    r = subprocess.run(["ls", "/"], capture_output=True)
    print("ls:", r.returncode, b"usr" in r.stdout.split())
    print("shell:", subprocess.check_output("echo hi | wc -c", shell=True))
    r = subprocess.run("exit 7", shell=True)
    print("exit status:", r.returncode)
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = p.communicate(b"x" * 200000)
    print("cat through pipes:", len(out), p.returncode)

    pid = os.fork()
    if pid == 0:
        os._exit(5 if os.getppid() == parent else 99)
    parent_sees, st = os.waitpid(pid, 0)
    print("fork:", parent_sees == pid, os.waitstatus_to_exitcode(st))

    # A child that waits for a signal and dies of it.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, b"up")
        while True:
            time.sleep(1)
    os.close(w)
    os.read(r, 2)
    os.kill(pid, signal.SIGTERM)
    _, st = os.waitpid(pid, 0)
    print("killed child:", os.WIFSIGNALED(st), os.WTERMSIG(st) == signal.SIGTERM)

    # WNOHANG before the child is done, SIGCHLD when it is.
    got = []
    signal.signal(signal.SIGCHLD, lambda *_: got.append(1))
    pid = os.fork()
    if pid == 0:
        time.sleep(0.2)
        os._exit(3)
    print("wnohang:", os.waitpid(pid, os.WNOHANG))
    _, st = os.waitpid(pid, 0)
    print("later:", os.waitstatus_to_exitcode(st), "sigchld:", bool(got))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    # A new session and process group in a child.
    pid = os.fork()
    if pid == 0:
        os.setsid()
        ok = os.getpid() == os.getpgid(0) == os.getsid(0)
        os._exit(0 if ok else 1)
    _, st = os.waitpid(pid, 0)
    print("setsid:", os.waitstatus_to_exitcode(st))

    with mp.Pool(2) as pool:
        print("pool:", pool.map(square, range(6)))
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)
        v, q = ctx.Value("i", 0), ctx.Queue()
        ps = [ctx.Process(target=add_into, args=(v, q, i)) for i in (1, 2, 3)]
        for p in ps:
            p.start()
        seen = [q.get() for _ in ps]
        for p in ps:
            p.join()
        print(method + ":", v.value, seen, [p.exitcode for p in ps])

    sys.stdout.flush()
    os.execv("/bin/echo", ["echo", "execv done"])


if __name__ == "__main__":
    parent = os.getpid()
    main()
