/* Processes: fork, vfork + execve, posix_spawn, wait statuses, signal
 * deaths, pipes and socketpairs between processes, kill, process groups,
 * and the process limit.
 *
 *   fork all          every check
 *   fork limit N      start children until one fails; expects N - 1 to start
 *                     (sys.max_processes = N) and EAGAIN after, then checks
 *                     that waiting frees the slots
 *   fork exec-child   what the execve/posix_spawn checks run: exits 9
 */
#define _GNU_SOURCE
#include "check.h"

#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

extern char **environ;

static const char *self_path;

static void wait_status_checks(void)
{
    pid_t parent = getpid();
    int fds[2];
    CHECK_OK("pipe for the child's report", pipe(fds));
    pid_t pid = CHECK_OK("fork", fork());
    if (pid == 0) {
        /* The child: its view of the family, through the pipe. */
        long report[2] = {getppid(), getpid()};
        write(fds[1], report, sizeof report);
        _exit(5);
    }
    close(fds[1]);
    long report[2] = {0, 0};
    CHECK_EQ("child's report arrives", read(fds[0], report, sizeof report), (long)sizeof report);
    close(fds[0]);
    CHECK_EQ("child's getppid() is the parent's getpid()", report[0], parent);
    CHECK_EQ("child's getpid() is what fork returned", report[1], pid);
    int st = 0;
    CHECK_EQ("waitpid returns the child", waitpid(pid, &st, 0), pid);
    CHECK("child exit status 5", WIFEXITED(st) && WEXITSTATUS(st) == 5, "status %#x", st);
    CHECK_ERR("no second wait for the same child", waitpid(pid, &st, 0), ECHILD);

    /* A child killed by a signal is reported as such. */
    int go[2];
    pipe(go);
    pid = CHECK_OK("fork a child to kill", fork());
    if (pid == 0) {
        close(go[0]);
        write(go[1], "r", 1);
        for (;;)
            pause();
    }
    close(go[1]);
    char c;
    read(go[0], &c, 1);
    close(go[0]);
    CHECK_EQ("WNOHANG while the child runs", waitpid(pid, &st, WNOHANG), 0);
    CHECK_OK("kill(child, SIGKILL)", kill(pid, SIGKILL));
    CHECK_EQ("waitpid the killed child", waitpid(pid, &st, 0), pid);
    CHECK("reported killed by SIGKILL", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);

    /* A child that dies of SIGTERM it raises itself. */
    pid = CHECK_OK("fork a child that raises SIGTERM", fork());
    if (pid == 0) {
        raise(SIGTERM);
        _exit(0);
    }
    CHECK_EQ("waitpid it", waitpid(pid, &st, 0), pid);
    CHECK("reported killed by SIGTERM", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);

    /* waitid with P_ALL. */
    pid = CHECK_OK("fork for waitid", fork());
    if (pid == 0)
        _exit(3);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_OK("waitid(P_ALL, WEXITED)", waitid(P_ALL, 0, &si, WEXITED));
    CHECK("waitid reports pid and status", si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == 3,
          "pid %d code %d status %d", si.si_pid, si.si_code, si.si_status);
    CHECK_ERR("no children left", wait(NULL), ECHILD);
}

static volatile sig_atomic_t got_sigchld;
static void on_sigchld(int sig)
{
    (void)sig;
    got_sigchld = 1;
}

/* In the program's .data: a file-backed private mapping, not anonymous. */
static int initialized_data[4096] = {7};

static void sigchld_and_memory(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigaction(SIGCHLD, &sa, NULL);
    /* The child gets a copy of memory as it was at fork: changes on either
     * side are not seen by the other. */
    static char big[1 << 20];
    memset(big, 'p', sizeof big);
    int value = 1;
    initialized_data[0] = 8;
    pid_t pid = CHECK_OK("fork with 1 MiB of data", fork());
    if (pid == 0) {
        int okay = value == 1 && big[0] == 'p' && big[sizeof big - 1] == 'p' && initialized_data[0] == 8 &&
                   initialized_data[4095] == 0;
        value = 2;
        big[0] = 'c';
        _exit(okay ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("child saw the parent's memory", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    CHECK("the child's writes stay in the child", value == 1 && big[0] == 'p', "value %d big[0] %c", value, big[0]);
    CHECK("SIGCHLD delivered", got_sigchld, "no SIGCHLD");
    signal(SIGCHLD, SIG_DFL);
}

/* Shared anonymous memory stays shared across fork (both ways, and with a
 * process-shared futex-based semaphore on it); private anonymous memory is
 * the child's own copy. */
static void shared_anonymous_memory(void)
{
    volatile int *shared = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile int *private = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK("mmap MAP_SHARED|MAP_ANONYMOUS", shared != MAP_FAILED && private != MAP_FAILED, "errno %d", errno);
    shared[0] = 1;
    shared[2 * 1024] = 5; /* third page */
    private[0] = 1;
    pid_t pid = fork();
    if (pid == 0) {
        int saw = shared[0] == 1 && shared[2 * 1024] == 5 && private[0] == 1;
        shared[0] = 2;
        shared[1] = 42;
        private[0] = 2;
        /* Wait for the parent's answer through the same memory. */
        for (long i = 0; i < 2000000000L && shared[3] != 7; i++)
            ;
        _exit(saw && shared[3] == 7 ? 0 : 1);
    }
    CHECK("fork", pid > 0, "errno %d", errno);
    for (long i = 0; i < 2000000000L && shared[1] != 42; i++)
        ;
    CHECK("the child's writes to shared memory reach the parent", shared[0] == 2 && shared[1] == 42,
          "shared[0] %d shared[1] %d", shared[0], shared[1]);
    shared[3] = 7;
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("the parent's writes reach the child", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    CHECK("private anonymous memory is not shared", private[0] == 1, "private[0] %d", private[0]);
    munmap((void *)shared, 3 * 4096);
    munmap((void *)private, 4096);
}

/* 1 MiB through a pipe and back through a socketpair between processes. */
static void channels(void)
{
    int p[2], s[2];
    CHECK_OK("pipe", pipe(p));
    CHECK_OK("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    pid_t pid = CHECK_OK("fork an echo child", fork());
    if (pid == 0) {
        close(p[1]);
        close(s[0]);
        char buf[4096];
        ssize_t n;
        while ((n = read(p[0], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                buf[i] ^= 0x5a;
            if (write(s[1], buf, n) != n)
                _exit(2);
        }
        _exit(n == 0 ? 0 : 1);
    }
    close(p[0]);
    close(s[1]);
    const size_t total = 1 << 20;
    /* Write in one process-local burst while reading replies, so neither
     * side blocks forever on a full buffer. */
    size_t sent = 0, got = 0;
    int bad = 0;
    char out[4096], in[4096];
    while (got < total) {
        if (sent < total) {
            for (size_t i = 0; i < sizeof out; i++)
                out[i] = (char)pattern_byte(sent + i);
            if (write(p[1], out, sizeof out) != (ssize_t)sizeof out)
                break;
            sent += sizeof out;
            if (sent == total)
                close(p[1]);
        }
        while (got < sent) {
            ssize_t n = read(s[0], in, sizeof in);
            if (n <= 0)
                goto done;
            for (ssize_t i = 0; i < n; i++)
                bad += (uint8_t)(in[i] ^ 0x5a) != pattern_byte(got + i);
            got += n;
        }
    }
done:
    CHECK("1 MiB came back through the socketpair", got == total && bad == 0, "got %zu bytes, %d wrong", got, bad);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("echo child saw end of file and exited 0", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    close(s[0]);
}

static void exec_checks(void)
{
    /* vfork + execve, the way posix_spawn and shells start programs. */
    pid_t pid = vfork();
    if (pid == 0) {
        char *args[] = {(char *)self_path, "exec-child", NULL};
        execve(self_path, args, environ);
        _exit(127);
    }
    CHECK("vfork", pid > 0, "vfork returned %d", pid);
    int st = 0;
    CHECK_EQ("waitpid the exec'd child", waitpid(pid, &st, 0), pid);
    CHECK("exec'd child exited 9", WIFEXITED(st) && WEXITSTATUS(st) == 9, "status %#x", st);

    char *args[] = {(char *)self_path, "exec-child", NULL};
    CHECK_EQ("posix_spawn", posix_spawn(&pid, self_path, NULL, NULL, args, environ), 0);
    CHECK_EQ("waitpid the spawned child", waitpid(pid, &st, 0), pid);
    CHECK("spawned child exited 9", WIFEXITED(st) && WEXITSTATUS(st) == 9, "status %#x", st);

    char *missing[] = {"/no/such/program", NULL};
    CHECK_EQ("posix_spawn of a missing program fails with ENOENT", posix_spawn(&pid, missing[0], NULL, NULL, missing, environ),
             ENOENT);
}

static void groups(void)
{
    pid_t pid = CHECK_OK("fork for setsid", fork());
    if (pid == 0) {
        pid_t me = getpid();
        int okay = setsid() == me && getpgid(0) == me && getsid(0) == me && getpgrp() == me;
        _exit(okay ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("setsid in a child makes it session and group leader", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    CHECK_ERR("getpgid of a process that does not exist", getpgid(999999), ESRCH);
}

static int limit(int max)
{
    int go[2];
    pipe(go);
    pid_t kids[64];
    int started = 0, err = 0;
    while (started < 64) {
        pid_t p = fork();
        if (p < 0) {
            err = errno;
            break;
        }
        if (p == 0) {
            char c;
            close(go[1]);
            read(go[0], &c, 1);
            _exit(0);
        }
        kids[started++] = p;
    }
    CHECK_EQ("children started under the limit", started, max - 1);
    CHECK_EQ("the next fork fails with EAGAIN", err, EAGAIN);
    close(go[1]);
    for (int i = 0; i < started; i++)
        waitpid(kids[i], NULL, 0);
    pid_t p = CHECK_OK("fork after the children were waited for", fork());
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return check_done();
}

int main(int argc, char **argv)
{
    check_init();
    self_path = argv[0];
    if (argc >= 2 && strcmp(argv[1], "exec-child") == 0)
        return 9;
    if (argc == 3 && strcmp(argv[1], "limit") == 0)
        return limit(atoi(argv[2]));
    if (argc != 2 || strcmp(argv[1], "all") != 0) {
        fprintf(stderr, "usage: fork all | limit N | exec-child\n");
        return 2;
    }
    wait_status_checks();
    sigchld_and_memory();
    shared_anonymous_memory();
    channels();
    exec_checks();
    groups();
    return check_done();
}
