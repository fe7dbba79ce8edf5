/* CPUID in the enclave: an SGX enclave cannot execute it (#UD), so the
 * LibOS answers it, from a cache it fills by asking the host once per leaf
 * and hands to child processes.
 *
 * Prints "leaf L/S: a b c d" for a set of leaves and subleaves (the per-CPU
 * APIC ids masked), which the test compares with a native run; checks that
 * ECX does not matter for leaves without subleaves and does for those with;
 * runs one leaf many times; and forks a child that reads the same leaves
 * between two markers on stderr ("== fork ==", "== joined =="), where the
 * test expects no request to the host (conf-run --log-level debug logs
 * each).
 */
#include "check.h"

#include <cpuid.h>
#include <sys/wait.h>

struct query {
    unsigned leaf, sub;
};

static const struct query queries[] = {
    {0, 0}, {1, 0}, {4, 0}, {4, 1}, {4, 2}, {4, 3}, {7, 0}, {7, 1},
    {0xb, 0}, {0xb, 1}, {0xd, 0}, {0xd, 1}, {0xd, 2},
    {0x80000000, 0}, {0x80000001, 0}, {0x80000002, 0}, {0x80000003, 0},
    {0x80000004, 0}, {0x80000006, 0}, {0x80000008, 0},
};
#define NQ (sizeof(queries) / sizeof(queries[0]))

static unsigned table[NQ][4];

static void ask(unsigned leaf, unsigned sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    /* Which CPU the thread runs on shows in these: not comparable. */
    if (leaf == 1)
        r[1] &= 0x00ffffff;
    if (leaf == 0xb || leaf == 0x1f)
        r[3] = 0;
}

static void read_all(unsigned out[NQ][4])
{
    for (unsigned i = 0; i < NQ; i++)
        ask(queries[i].leaf, queries[i].sub, out[i]);
}

int main(void)
{
    check_init();
    read_all(table);
    for (unsigned i = 0; i < NQ; i++)
        printf("leaf %#x/%u: %08x %08x %08x %08x\n", queries[i].leaf, queries[i].sub, table[i][0],
               table[i][1], table[i][2], table[i][3]);

    /* Leaf 1 ignores ECX; leaf 4 does not (subleaf 0 and 1 are two caches). */
    unsigned a[4], b[4];
    __cpuid_count(1, 0x1234, a[0], a[1], a[2], a[3]);
    CHECK("leaf 1 ignores ECX", a[0] == table[1][0] && a[2] == table[1][2] && a[3] == table[1][3],
          "eax %#x vs %#x", a[0], table[1][0]);
    ask(4, 0, a);
    ask(4, 1, b);
    CHECK("leaf 4 follows ECX", a[0] == table[2][0] && b[0] == table[3][0], "eax %#x %#x", a[0], b[0]);

    unsigned max_ext = 0;
    for (int i = 0; i < 5000; i++) {
        __cpuid(0x80000000, a[0], a[1], a[2], a[3]);
        max_ext |= a[0];
    }
    CHECK_EQ("a leaf asked 5000 times", (long)max_ext, (long)table[13][0]);

    fprintf(stderr, "== fork ==\n");
    pid_t pid = fork();
    if (pid == 0) {
        unsigned again[NQ][4];
        read_all(again);
        _exit(memcmp(again, table, sizeof(table)) == 0 ? 0 : 1);
    }
    CHECK("fork", pid > 0, "errno %d", errno);
    int st = 0;
    CHECK_EQ("waitpid", waitpid(pid, &st, 0), (long)pid);
    fprintf(stderr, "== joined ==\n");
    CHECK("the child reads the same values", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    return check_done();
}
