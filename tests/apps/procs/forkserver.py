"""multiprocessing with the forkserver start method (Python 3.14's default
on Linux): the server listens on an AF_UNIX socket under tempfile's
directory (/tmp), clients pass it pipes with SCM_RIGHTS, it forks the
workers, and clients signal workers they did not fork."""
import multiprocessing as mp
import os
import time


def square(x):
    return x * x


def report(q, x):
    q.put((x, os.getpid() != os.getppid()))


def sleep_forever():
    while True:
        time.sleep(1)


def main():
    mp.set_start_method("forkserver")
    with mp.Pool(2) as pool:
        print("pool:", pool.map(square, range(8)))
        print("pool again:", sorted(pool.imap_unordered(square, range(4))))
    q = mp.Queue()
    ps = [mp.Process(target=report, args=(q, i)) for i in (1, 2)]
    for p in ps:
        p.start()
    print("queue:", sorted(q.get() for _ in ps))
    for p in ps:
        p.join()
    print("exit codes:", [p.exitcode for p in ps])
    p = mp.Process(target=sleep_forever)
    p.start()
    p.terminate()
    p.join()
    print("terminated:", p.exitcode)


if __name__ == "__main__":
    main()
