# Stop signals between processes: a child stopped from outside (SIGSTOP)
# and continued (SIGCONT), seen by waitpid with WUNTRACED / WCONTINUED; a
# child stopping itself with SIGSTOP; a child that catches SIGTSTP is not
# stopped. (A child's own SIGTSTP is left out: the kernel discards it when
# the process group is orphaned, as under many CI runners, natively too;
# processes.rs checks SIGTSTP on a conf-run in a group of its own.)
import os
import signal
import subprocess
import sys
import time

p = subprocess.Popen(["/bin/sleep", "5"])
time.sleep(0.2)
os.kill(p.pid, signal.SIGSTOP)
_, st = os.waitpid(p.pid, os.WUNTRACED)
print("stopped from outside:", os.WIFSTOPPED(st), os.WSTOPSIG(st) == signal.SIGSTOP, flush=True)
os.kill(p.pid, signal.SIGCONT)
_, st = os.waitpid(p.pid, os.WCONTINUED)
print("continued:", os.WIFCONTINUED(st), flush=True)
os.kill(p.pid, signal.SIGTERM)
_, st = os.waitpid(p.pid, 0)
print("then terminated:", os.WIFSIGNALED(st), os.WTERMSIG(st) == signal.SIGTERM, flush=True)

for name in ("STOP",):
    p = subprocess.Popen(["/bin/sh", "-c", f"kill -{name} $$; echo resumed after SIG{name}"])
    _, st = os.waitpid(p.pid, os.WUNTRACED)
    stopsig = os.WSTOPSIG(st) if os.WIFSTOPPED(st) else None
    print(f"stopped itself with SIG{name}:", stopsig == getattr(signal, "SIG" + name), flush=True)
    os.kill(p.pid, signal.SIGCONT)
    _, st = os.waitpid(p.pid, 0)
    print("exit status:", os.WEXITSTATUS(st), flush=True)

code = (
    "import os, signal\n"
    "signal.signal(signal.SIGTSTP, lambda *a: print('caught SIGTSTP', flush=True))\n"
    "os.kill(os.getpid(), signal.SIGTSTP)\n"
    "print('went on', flush=True)\n"
)
print("handler child exit status:", subprocess.run([sys.executable, "-c", code]).returncode, flush=True)
