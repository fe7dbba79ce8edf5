/* micro.c: the cost of one system call, per call, for conf-bench.
 *
 *   micro OP BUDGET_MS REPS [FILE]
 *
 * Calibrates a call count so that one repetition takes about BUDGET_MS
 * (the calibration also warms up: in conf the first call of a site traps
 * and gets rewritten), then prints REPS lines, each the mean ns per call of
 * one repetition, the number of calls and the repetition's seconds.
 *
 * OP:
 *   getpid          glibc's getpid() wrapper (mov $39,%eax; syscall)
 *   syscall-getpid  glibc's generic syscall(SYS_getpid): the number comes
 *                   from a register, so conf cannot rewrite the site
 *   clock           clock_gettime(CLOCK_MONOTONIC) (the vDSO natively)
 *   sched-yield     sched_yield() (alone on its CPU: the kernel returns at once)
 *   pwrite          pwrite of 1 byte at offset 0 of FILE
 *   fstat           fstat of FILE's descriptor
 *   sud-getpid      native only: syscall(SYS_getpid) caught by Syscall User
 *                   Dispatch and answered by a SIGSYS handler (the kernel's
 *                   share of conf's trap path in the sim backend)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_ON 1
#endif
#define SUD_ALLOW 0
#define SUD_BLOCK 1

enum op { GETPID, SYSCALL_GETPID, CLOCK, SCHED_YIELD, PWRITE, FSTAT, SUD_GETPID };

static int fd = -1;
static volatile long sink;
static volatile char selector = SUD_ALLOW;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    /* The restorer's rt_sigreturn is a system call too: let it through. */
    selector = SUD_ALLOW;
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = 1;
}

static void run(enum op op, long n)
{
    long s = 0;
    struct timespec t;
    struct stat st;
    switch (op) {
    case GETPID:
        for (long i = 0; i < n; i++)
            s += getpid();
        break;
    case SYSCALL_GETPID:
        for (long i = 0; i < n; i++)
            s += syscall(SYS_getpid);
        break;
    case CLOCK:
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            s += t.tv_nsec;
        }
        break;
    case SCHED_YIELD:
        for (long i = 0; i < n; i++)
            s += sched_yield();
        break;
    case PWRITE:
        for (long i = 0; i < n; i++)
            s += pwrite(fd, "x", 1, 0);
        break;
    case FSTAT:
        for (long i = 0; i < n; i++) {
            fstat(fd, &st);
            s += st.st_size;
        }
        break;
    case SUD_GETPID:
        for (long i = 0; i < n; i++) {
            selector = SUD_BLOCK;
            s += syscall(SYS_getpid);
        }
        break;
    }
    sink = s;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: micro OP BUDGET_MS REPS [FILE]\n");
        return 2;
    }
    static const char *names[] = {"getpid", "syscall-getpid", "clock", "sched-yield", "pwrite", "fstat", "sud-getpid"};
    int op = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(argv[1], names[i]) == 0)
            op = i;
    if (op < 0) {
        fprintf(stderr, "micro: unknown op %s\n", argv[1]);
        return 2;
    }
    double budget = atof(argv[2]) * 1e6;
    int reps = atoi(argv[3]);
    if (op == PWRITE || op == FSTAT) {
        if (argc < 5) {
            fprintf(stderr, "micro: %s needs a FILE\n", argv[1]);
            return 2;
        }
        fd = open(argv[4], O_RDWR | O_CREAT, 0600);
        if (fd < 0)
            die(argv[4]);
    }
    if (op == SUD_GETPID) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        if (sigaction(SIGSYS, &sa, NULL) != 0)
            die("sigaction");
        if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector) != 0)
            die("prctl(PR_SET_SYSCALL_USER_DISPATCH)");
    }

    long n = 1;
    double t;
    for (;;) {
        double a = now_ns();
        run(op, n);
        t = now_ns() - a;
        if (t >= budget / 8 || n >= (1L << 40))
            break;
        n *= 2;
    }
    if (t > 0)
        n = (long)(n * (budget / t));
    if (n < 1)
        n = 1;
    for (int r = 0; r < reps; r++) {
        double a = now_ns();
        run(op, n);
        t = now_ns() - a;
        printf("%.3f %ld %.6f\n", t / n, n, t / 1e9);
    }
    return 0;
}
