/* System call sites rewritten while several threads run them: conf replaces
 * `mov $NR, %eax` before a `syscall` with a jump to the LibOS. A `mov` that
 * crosses an aligned 8-byte word cannot change with one store; conf patches
 * it through an `int3` (other threads meeting it go on as if the `mov` ran).
 * Register-only instructions between the `mov` and the `syscall` (glibc's
 * futex calls have `xor $0x80,%sil`) are replayed by the jump's stub.
 *
 * Every call must give the right answer while the sites change under the
 * threads; afterwards each site must start with a jump (0xe9) in conf.
 */
#include "check.h"

#include <pthread.h>

#define THREADS 4
#define CALLS 20000

/* Each site is a function returning the system call's result. The nops
 * put the `mov` at a chosen offset of a 16-byte aligned block:
 *   site_cross16: offset 13, crossing 8- and 16-byte boundaries;
 *   site_cross8:  offset 6, crossing an 8-byte boundary, with an
 *                 `xor $0x80,%sil` between `mov` and `syscall`;
 *   site_between: offset 1, with `mov %edi,%edx; xor %r10d,%r10d` between.
 * getpid (39) and gettid (186) ignore the argument registers. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl site_cross16, site_cross16_mov, site_cross8, site_cross8_mov, site_between, site_between_mov\n"
        "site_cross16:\n"
        "  .byte 0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90\n"
        "site_cross16_mov:\n"
        "  mov $39, %eax\n"
        "  syscall\n"
        "  ret\n"
        ".p2align 4\n"
        "site_cross8:\n"
        "  .byte 0x90,0x90,0x90,0x90,0x90,0x90\n"
        "site_cross8_mov:\n"
        "  mov $186, %eax\n"
        "  xor $0x80, %sil\n"
        "  syscall\n"
        "  ret\n"
        ".p2align 4\n"
        "site_between:\n"
        "  .byte 0x90\n"
        "site_between_mov:\n"
        "  mov $39, %eax\n"
        "  mov %edi, %edx\n"
        "  xor %r10d, %r10d\n"
        "  syscall\n"
        "  ret\n");

long site_cross16(void);
long site_cross8(void);
long site_between(long);
extern const unsigned char site_cross16_mov[], site_cross8_mov[], site_between_mov[];

static pthread_barrier_t start;
static long wrong[THREADS];
static long pid;

static void *caller(void *arg)
{
    long me = (long)arg;
    long tid = syscall(SYS_gettid);
    pthread_barrier_wait(&start);
    for (long i = 0; i < CALLS; i++) {
        wrong[me] += site_cross16() != pid;
        wrong[me] += site_cross8() != tid;
        wrong[me] += site_between(i) != pid;
    }
    return NULL;
}

int main(void)
{
    check_init();
    pid = getpid();
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    /* Every site is first reached with THREADS threads running. */
    for (long i = 0; i < THREADS; i++)
        CHECK_OK("pthread_create", pthread_create(&t[i], NULL, caller, (void *)i) == 0 ? 0 : -1);
    long bad = 0;
    for (long i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += wrong[i];
    }
    CHECK("results while patching", bad == 0, "%ld wrong results of %d calls", bad, THREADS * CALLS * 3);
    const struct {
        const char *name;
        const unsigned char *mov;
    } sites[] = {
        {"rewritten across 16 bytes", site_cross16_mov},
        {"rewritten across 8 bytes, one instruction between", site_cross8_mov},
        {"rewritten with two instructions between", site_between_mov},
    };
    for (unsigned i = 0; i < sizeof sites / sizeof sites[0]; i++) {
        if (check_native)
            skip(sites[i].name);
        else
            CHECK(sites[i].name, sites[i].mov[0] == 0xe9, "the site still starts with %#x", sites[i].mov[0]);
    }
    return check_done();
}
