/* Process, identity, time, random, signal and futex system calls.
 *
 * usage: proc all HOST_TIME   run the checks; HOST_TIME is the host's
 *                             time(NULL) when the test started
 *        proc exit42          exit(42)
 *        proc exit_group42    the exit_group system call with 42
 *        proc sigterm         raise(SIGTERM) with its default action
 */
#include "check.h"

#include <asm/prctl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>

static long ns_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
}

static long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig)
{
    got_usr1 = sig;
}

static void identity(void)
{
    pid_t pid = getpid();
    CHECK("getpid", pid > 0, "pid %d", pid);
    CHECK("getppid", getppid() >= 0, "ppid %d", getppid());
    CHECK_EQ("gettid is the pid in a single thread", syscall(SYS_gettid), pid);
    uid_t uid = getuid(), euid = geteuid();
    gid_t gid = getgid(), egid = getegid();
    printf("ids: pid %d ppid %d uid %d euid %d gid %d egid %d\n", pid, getppid(), uid, euid, gid, egid);
    CHECK("getuid == geteuid", uid == euid, "%d != %d", uid, euid);
    CHECK("getgid == getegid", gid == egid, "%d != %d", gid, egid);
    CHECK_EQ("syscall getuid", syscall(SYS_getuid), uid);
    CHECK_EQ("syscall getegid", syscall(SYS_getegid), egid);

    struct utsname u;
    CHECK_EQ("uname", uname(&u), 0);
    CHECK("uname sysname", strcmp(u.sysname, "Linux") == 0, "\"%s\"", u.sysname);
    CHECK("uname machine", strcmp(u.machine, "x86_64") == 0, "\"%s\"", u.machine);
    CHECK("uname release", u.release[0] >= '1' && u.release[0] <= '9', "\"%s\"", u.release);

    unsigned long fs = 0, tp;
    CHECK_EQ("arch_prctl ARCH_GET_FS", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs), 0);
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    CHECK("ARCH_GET_FS is the thread pointer", fs != 0 && fs == tp, "fs %#lx, %%fs:0 %#lx", fs, tp);

    static int tid_word;
    CHECK_EQ("set_tid_address returns the tid", syscall(SYS_set_tid_address, &tid_word), pid);
    static long robust[3];
    robust[0] = (long)robust;
    CHECK_EQ("set_robust_list", syscall(SYS_set_robust_list, robust, 3 * sizeof(long)), 0);
    CHECK_ERR("set_robust_list with a wrong size", syscall(SYS_set_robust_list, robust, 7), EINVAL);
    static char rseq_area[64] __attribute__((aligned(32)));
    if (check_native)
        skip("rseq returns ENOSYS");
    else
        CHECK_ERR("rseq returns ENOSYS", syscall(SYS_rseq, rseq_area, 32, 0, 0x53053053), ENOSYS);
}

static void limits(void)
{
    struct rlimit rl, pl;
    CHECK_EQ("getrlimit RLIMIT_NOFILE", getrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK("RLIMIT_NOFILE is sane", rl.rlim_cur >= 64 && rl.rlim_cur <= rl.rlim_max, "cur %lu max %lu",
          (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
    CHECK_EQ("prlimit64 get", syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &pl), 0);
    CHECK("prlimit64 agrees with getrlimit", pl.rlim_cur == rl.rlim_cur && pl.rlim_max == rl.rlim_max,
          "%lu/%lu vs %lu/%lu", (unsigned long)pl.rlim_cur, (unsigned long)pl.rlim_max, (unsigned long)rl.rlim_cur,
          (unsigned long)rl.rlim_max);
    struct rlimit lower = {64, rl.rlim_max};
    CHECK_EQ("setrlimit RLIMIT_NOFILE", setrlimit(RLIMIT_NOFILE, &lower), 0);
    CHECK("getrlimit after setrlimit", getrlimit(RLIMIT_NOFILE, &pl) == 0 && pl.rlim_cur == 64, "cur %lu",
          (unsigned long)pl.rlim_cur);
    CHECK_EQ("setrlimit back", setrlimit(RLIMIT_NOFILE, &rl), 0);
    CHECK_EQ("getrlimit RLIMIT_STACK", getrlimit(RLIMIT_STACK, &rl), 0);
    CHECK("RLIMIT_STACK is sane", rl.rlim_cur >= 65536 && rl.rlim_cur <= rl.rlim_max, "cur %lu max %lu",
          (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
    CHECK_ERR("getrlimit of a bad resource", syscall(SYS_getrlimit, 1000, &rl), EINVAL);
}

static void randomness(void)
{
    uint8_t a[64], b[64], z[64] = {0};
    CHECK_EQ("getrandom", getrandom(a, sizeof a, 0), 64);
    CHECK_EQ("getrandom GRND_NONBLOCK", getrandom(b, sizeof b, GRND_NONBLOCK), 64);
    CHECK("getrandom bytes are not all zero", memcmp(a, z, 64) != 0, "all zero");
    CHECK("two getrandom calls differ", memcmp(a, b, 64) != 0, "same bytes twice");
    CHECK_EQ("getrandom of 0 bytes", getrandom(a, 0, 0), 0);
    CHECK_ERR("getrandom with bad flags", syscall(SYS_getrandom, a, 8, 0x1000), EINVAL);
}

static void clocks(long host_time)
{
    struct timespec t, t2;
    CHECK_EQ("clock_gettime CLOCK_REALTIME", clock_gettime(CLOCK_REALTIME, &t), 0);
    CHECK("CLOCK_REALTIME is near the host's time", labs(t.tv_sec - host_time) <= 10, "enclave %ld, host %ld",
          (long)t.tv_sec, host_time);
    CHECK("CLOCK_REALTIME nanoseconds", t.tv_nsec >= 0 && t.tv_nsec < 1000000000L, "%ld", t.tv_nsec);
    struct timeval tv;
    CHECK_EQ("gettimeofday", gettimeofday(&tv, NULL), 0);
    CHECK("gettimeofday is near the host's time", labs(tv.tv_sec - host_time) <= 10 && tv.tv_usec < 1000000,
          "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    time_t tt = 0;
    long tr = syscall(SYS_time, &tt);
    CHECK("time", labs(tr - host_time) <= 10 && tr == tt, "returned %ld, stored %ld", tr, (long)tt);
    CHECK("time(NULL)", labs(time(NULL) - host_time) <= 10, "%ld", (long)time(NULL));
    clock_gettime(CLOCK_MONOTONIC, &t);
    int mono = 1;
    for (int i = 0; i < 2000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t2);
        if (ns_between(&t, &t2) < 0)
            mono = 0;
        t = t2;
    }
    CHECK("CLOCK_MONOTONIC does not go back", mono, "it went back");
    CHECK_EQ("clock_gettime CLOCK_BOOTTIME", clock_gettime(CLOCK_BOOTTIME, &t), 0);
    CHECK_EQ("clock_gettime CLOCK_MONOTONIC_RAW", clock_gettime(CLOCK_MONOTONIC_RAW, &t), 0);
    CHECK_EQ("clock_gettime CLOCK_PROCESS_CPUTIME_ID", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t), 0);
    CHECK_ERR("clock_gettime of a bad clock", syscall(SYS_clock_gettime, 12345, &t), EINVAL);
    CHECK_EQ("clock_getres CLOCK_MONOTONIC", clock_getres(CLOCK_MONOTONIC, &t), 0);
    CHECK("clock resolution", t.tv_sec == 0 && t.tv_nsec > 0 && t.tv_nsec <= 10000000, "%ld.%09ld", (long)t.tv_sec,
          t.tv_nsec);

    long before = mono_ns();
    struct timespec req = {0, 50 * 1000 * 1000};
    CHECK_EQ("nanosleep 50ms", nanosleep(&req, NULL), 0);
    long slept = mono_ns() - before;
    CHECK("nanosleep sleeps at least 50ms", slept >= 50000000L, "slept %ld ns", slept);
    CHECK("nanosleep does not sleep 5s", slept < 5000000000L, "slept %ld ns", slept);
    before = mono_ns();
    req.tv_nsec = 30 * 1000 * 1000;
    CHECK_EQ("clock_nanosleep relative 30ms", clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL), 0);
    slept = mono_ns() - before;
    CHECK("clock_nanosleep sleeps at least 30ms", slept >= 30000000L, "slept %ld ns", slept);
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_nsec += 40 * 1000 * 1000;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    CHECK_EQ("clock_nanosleep TIMER_ABSTIME", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    CHECK("clock_nanosleep TIMER_ABSTIME wakes after the deadline", ns_between(&t, &t2) >= 0, "woke %ld ns early",
          -ns_between(&t, &t2));
    req.tv_nsec = 2000000000L;
    CHECK_ERR("nanosleep with tv_nsec out of range", nanosleep(&req, NULL), EINVAL);
}

static void system_info(void)
{
    struct sysinfo si;
    CHECK_EQ("sysinfo", sysinfo(&si), 0);
    CHECK("sysinfo totalram", si.totalram > 0 && si.mem_unit > 0, "totalram %lu mem_unit %u", si.totalram,
          si.mem_unit);
    CHECK("sysinfo freeram <= totalram", si.freeram <= si.totalram, "free %lu total %lu", si.freeram, si.totalram);
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK_OK("sched_getaffinity", syscall(SYS_sched_getaffinity, 0, sizeof set, &set));
    CHECK("sched_getaffinity has a CPU", CPU_COUNT(&set) >= 1, "%d CPUs", CPU_COUNT(&set));
    CHECK("sysconf(_SC_NPROCESSORS_ONLN)", sysconf(_SC_NPROCESSORS_ONLN) >= 1, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    CHECK_OK("sched_yield", sched_yield());
}

static void signals(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    CHECK_EQ("rt_sigaction set", sigaction(SIGUSR1, &sa, NULL), 0);
    memset(&old, 0, sizeof old);
    CHECK_EQ("rt_sigaction get", sigaction(SIGUSR1, NULL, &old), 0);
    CHECK("rt_sigaction returns the handler", old.sa_handler == on_usr1, "%p", (void *)old.sa_handler);
    CHECK("rt_sigaction returns the flags", (old.sa_flags & SA_RESTART) != 0, "flags %#x", old.sa_flags);
    CHECK("rt_sigaction returns the mask", sigismember(&old.sa_mask, SIGUSR2) == 1, "SIGUSR2 not in the mask");
    CHECK_ERR("rt_sigaction on SIGKILL", sigaction(SIGKILL, &sa, NULL), EINVAL);
    CHECK_ERR("rt_sigaction on signal 0", syscall(SYS_rt_sigaction, 0, NULL, &old, 8), EINVAL);
    CHECK_EQ("raise SIGUSR1", raise(SIGUSR1), 0);
    CHECK("the SIGUSR1 handler ran", got_usr1 == SIGUSR1, "got_usr1 = %d", got_usr1);

    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    CHECK_EQ("rt_sigprocmask SIG_BLOCK", sigprocmask(SIG_BLOCK, &set, NULL), 0);
    CHECK_EQ("rt_sigprocmask get", sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    CHECK("rt_sigprocmask returns what was blocked", sigismember(&cur, SIGUSR2) == 1 && sigismember(&cur, SIGTERM) == 1,
          "not blocked");
    sigset_t kill_stop;
    sigemptyset(&kill_stop);
    sigaddset(&kill_stop, SIGKILL);
    sigaddset(&kill_stop, SIGSTOP);
    sigprocmask(SIG_BLOCK, &kill_stop, NULL);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK("SIGKILL and SIGSTOP cannot be blocked", !sigismember(&cur, SIGKILL) && !sigismember(&cur, SIGSTOP),
          "blocked");
    CHECK_EQ("rt_sigprocmask SIG_UNBLOCK", sigprocmask(SIG_UNBLOCK, &set, NULL), 0);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK("rt_sigprocmask unblocked", sigismember(&cur, SIGUSR2) == 0, "still blocked");
    CHECK_ERR("rt_sigprocmask bad how", syscall(SYS_rt_sigprocmask, 99, &set, NULL, 8), EINVAL);
}

static void futexes(void)
{
    static int word = 1;
    CHECK_EQ("FUTEX_WAKE with no waiters", syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0), 0);
    CHECK_EQ("FUTEX_WAKE_PRIVATE", syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0), 0);
    CHECK_ERR("FUTEX_WAIT on a changed value", syscall(SYS_futex, &word, FUTEX_WAIT, 2, NULL, NULL, 0), EAGAIN);
    CHECK_ERR("FUTEX_WAIT_PRIVATE on a changed value", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0),
              EAGAIN);
    struct timespec to = {0, 50 * 1000 * 1000};
    long before = mono_ns();
    CHECK_ERR("FUTEX_WAIT with a timeout", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, &to, NULL, 0), ETIMEDOUT);
    long waited = mono_ns() - before;
    CHECK("FUTEX_WAIT waited for its timeout", waited >= 50000000L && waited < 5000000000L, "waited %ld ns", waited);
    CHECK_ERR("futex with a bad op", syscall(SYS_futex, &word, 99, 1, NULL, NULL, 0), ENOSYS);
}

static void unimplemented(void)
{
    CHECK_ERR("system call 999 returns ENOSYS", syscall(999, 0, 0, 0), ENOSYS);
    CHECK_ERR("system call 100000 returns ENOSYS", syscall(100000), ENOSYS);
    if (check_native)
        skip("an unimplemented system call returns ENOSYS");
    else
        CHECK_ERR("add_key (unimplemented) returns ENOSYS", syscall(SYS_add_key, "user", "x", "y", 1, 0), ENOSYS);
}

int main(int argc, char **argv)
{
    check_init();
    if (argc >= 2 && strcmp(argv[1], "exit42") == 0) {
        printf("exiting with 42\n");
        exit(42);
    }
    if (argc >= 2 && strcmp(argv[1], "exit_group42") == 0) {
        printf("exit_group(42)\n");
        syscall(SYS_exit_group, 42);
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "sigterm") == 0) {
        printf("raising SIGTERM\n");
        raise(SIGTERM);
        printf("still alive after SIGTERM\n");
        return 1;
    }
    if (argc != 3 || strcmp(argv[1], "all") != 0) {
        fprintf(stderr, "usage: proc all HOST_TIME | exit42 | exit_group42 | sigterm\n");
        return 2;
    }
    long host_time = atol(argv[2]);
    identity();
    limits();
    randomness();
    clocks(host_time);
    system_info();
    signals();
    futexes();
    unimplemented();
    return check_done();
}
