/* fork of a process that has read a large part of its own read-only data:
 * those pages are the file's bytes, so conf does not send them to the child
 * (which loads them again when it reads them); the child must see the same
 * bytes. The 8 MiB table here would dominate what fork sends otherwise
 * (conf-run --log-level debug reports the amount).
 *
 * An optional argument: milliseconds to sleep before reading the table
 * (time for conf's second thread to verify the table's chunks ahead).
 */
#include "check.h"

#include <sys/wait.h>

#define TABLE (8 << 20)

/* Non-zero, so it lies in the file (.rodata), not in .bss; made by the
 * assembler, which is much faster at it than an initializer. */
__asm__(".section .rodata\n"
        ".p2align 12\n"
        "table:\n"
        "  .fill 8388608, 1, 7\n"
        ".previous\n");
extern const unsigned char table[TABLE];

static long sum_table(void)
{
    long s = 0;
    for (long i = 0; i < TABLE; i += 512)
        s += table[i];
    return s;
}

int main(int argc, char **argv)
{
    check_init();
    if (argc > 1)
        usleep(atoi(argv[1]) * 1000);
    long want = 7L * (TABLE / 512);
    CHECK_EQ("the parent reads the table", sum_table(), want);
    pid_t pid = fork();
    if (pid == 0)
        _exit(sum_table() == want ? 0 : 1);
    CHECK("fork", pid > 0, "errno %d", errno);
    int st = 0;
    CHECK_EQ("waitpid", waitpid(pid, &st, 0), (long)pid);
    CHECK("the child reads the same table", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    return check_done();
}
