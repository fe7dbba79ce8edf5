"""Threads, queues, locks, signals, timers and selectors: run natively and in
the enclave, both runs must print the same lines."""
import concurrent.futures
import hashlib
import os
import queue
import selectors
import signal
import socket
import sys
import threading
import time


def section(name):
    print("==", name, flush=True)


section("threading + queue")
tasks = queue.Queue()
results = queue.Queue()


def worker(wid):
    while True:
        n = tasks.get()
        if n is None:
            tasks.task_done()
            return
        results.put((n, hashlib.sha256(str(n).encode()).hexdigest()[:8], sum(i * i for i in range(n))))
        tasks.task_done()


threads = [threading.Thread(target=worker, args=(i,), name=f"w{i}") for i in range(8)]
for t in threads:
    t.start()
for n in range(200):
    tasks.put(n)
for _ in threads:
    tasks.put(None)
tasks.join()
for t in threads:
    t.join(timeout=30)
print("alive after join:", [t.name for t in threads if t.is_alive()])
got = sorted(results.get() for _ in range(results.qsize()))
print(len(got), got[:3], got[-1], hashlib.sha256(repr(got).encode()).hexdigest()[:16])

lock = threading.Lock()
counter = [0]


def bump():
    for _ in range(20000):
        with lock:
            counter[0] += 1


ts = [threading.Thread(target=bump) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("counter", counter[0])

cond = threading.Condition()
ready = []


def consumer():
    with cond:
        while not ready:
            cond.wait(timeout=10)
        ready.append("consumed")


c = threading.Thread(target=consumer)
c.start()
time.sleep(0.05)
with cond:
    ready.append("produced")
    cond.notify_all()
c.join()
print(ready)

ev = threading.Event()
barrier = threading.Barrier(3)
order = []


def waiter(i):
    barrier.wait(timeout=10)
    ev.wait(timeout=10)
    with lock:
        order.append(i)


ws = [threading.Thread(target=waiter, args=(i,)) for i in range(2)]
for w in ws:
    w.start()
barrier.wait(timeout=10)
print("event set before:", ev.is_set())
ev.set()
for w in ws:
    w.join()
print(sorted(order), threading.active_count())

with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
    print(list(ex.map(lambda x: x ** 3, range(12))))
    futs = [ex.submit(time.sleep, 0.02) for _ in range(6)]
    print([f.result() for f in futs])

local = threading.local()


def set_local(v, out):
    local.v = v
    time.sleep(0.01)
    out.append(local.v == v)


out = []
ts = [threading.Thread(target=set_local, args=(i, out)) for i in range(5)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("thread-local", out)

section("signal.alarm")


class Alarm(Exception):
    pass


def on_alarm(signum, frame):
    raise Alarm(signal.Signals(signum).name)


signal.signal(signal.SIGALRM, on_alarm)
t0 = time.monotonic()
signal.alarm(1)
try:
    time.sleep(30)
    print("sleep was not interrupted")
except Alarm as e:
    took = time.monotonic() - t0
    print("alarm interrupted the sleep:", e, 0.5 < took < 10)
print("alarm pending:", signal.alarm(0))

hits = []
signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))
signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
t0 = time.monotonic()
while len(hits) < 4 and time.monotonic() - t0 < 10:
    time.sleep(0.01)
signal.setitimer(signal.ITIMER_REAL, 0)
print("interval timer fired at least 4 times:", len(hits) >= 4)

got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(signal.Signals(s).name))
os.kill(os.getpid(), signal.SIGUSR1)
signal.raise_signal(signal.SIGUSR1)
print("handled", got)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
os.kill(os.getpid(), signal.SIGUSR2)
print("pending", signal.sigpending() == {signal.SIGUSR2})
print("sigwait", signal.sigwait({signal.SIGUSR2}) == signal.SIGUSR2)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})

section("selectors")
sel = selectors.DefaultSelector()
print(type(sel).__name__)
pairs = [socket.socketpair() for _ in range(3)]
r_fd, w_fd = os.pipe()
for i, (a, b) in enumerate(pairs):
    a.setblocking(False)
    sel.register(a, selectors.EVENT_READ, f"pair{i}")
sel.register(r_fd, selectors.EVENT_READ, "pipe")
print("nothing ready:", sel.select(timeout=0.05))
pairs[2][1].sendall(b"two")
os.write(w_fd, b"via pipe")
pairs[0][1].sendall(b"zero")
ready = sorted(key.data for key, ev in sel.select(timeout=5))
print("ready", ready)
for key, ev in sorted(sel.select(timeout=0), key=lambda kv: kv[0].data):
    data = os.read(key.fd, 100) if key.data == "pipe" else key.fileobj.recv(100)
    print(key.data, data)
print("drained:", sel.select(timeout=0.05))
a, b = pairs[1]
sel.unregister(a)
sel.register(a, selectors.EVENT_WRITE, "writable")
print([k.data for k, e in sel.select(timeout=5) if e & selectors.EVENT_WRITE])
sel.close()
for a, b in pairs:
    a.close()
    b.close()
os.close(r_fd)
os.close(w_fd)

section("done")
print("threads left:", threading.active_count())
