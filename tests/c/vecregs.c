/* The program's vector registers survive what the LibOS does on its behalf:
 * a page fault that loads a lazily mapped page of a trusted file (its first
 * one asks the host for the file's chunk digests), and a system call served
 * by the host with a result to copy (getdents64). Both leave the enclave
 * for the host, whose own code (glibc's AVX2/AVX-512 memcpy) uses the same
 * registers; glibc's EVEX string functions keep values in YMM16-31 across
 * such faults.
 *
 *   vecregs DIR TRUSTED...
 *     DIR      a host directory with a few entries
 *     TRUSTED  trusted files of more than one 64 KiB chunk, under names of
 *              many lengths: which of the host's string and memory routines
 *              run (and which registers they use) depends on the lengths
 *
 * YMM0-15 (all 256 bits) and, with AVX-512, ZMM16-31 are filled with a
 * pattern, the event happens, and every register is compared.
 */
#include "check.h"

#include <cpuid.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096

static int dir_fd;
static char dents[4096];

static int have_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & bit_AVX2) != 0;
}

static int have_avx512(void)
{
    unsigned a, b, c, d;
    if (!have_avx2())
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & bit_AVX512F))
        return 0;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6; /* SSE, AVX, opmask, ZMM state enabled */
}

#define FILL16(r) "vmovdqa %%ymm0, %%ymm" #r "\n"
#define STORE16(r) "vmovdqu %%ymm" #r ", " #r "*32(%[o])\n"

/* Fill YMM0-15 with `pat`, run `event` (touch a byte, or a system call),
 * store YMM0-15 to out[16][4]. */
static void ymm_across(int syscall_event, const volatile unsigned char *touch, unsigned long long pat,
                       unsigned long long out[16][4])
{
    __asm__ volatile("vpbroadcastq %[p], %%ymm0\n" FILL16(1) FILL16(2) FILL16(3) FILL16(4) FILL16(5) FILL16(6)
                         FILL16(7) FILL16(8) FILL16(9) FILL16(10) FILL16(11) FILL16(12) FILL16(13) FILL16(14)
                             FILL16(15) "test %[s], %[s]\n"
                                        "jz 1f\n"
                                        "mov $217, %%eax\n" /* getdents64, served by the host */
                                        "syscall\n"
                                        "jmp 2f\n"
                                        "1: movzbl (%[t]), %%eax\n"
                                        "2:\n" STORE16(0) STORE16(1) STORE16(2) STORE16(3) STORE16(4) STORE16(5)
                                            STORE16(6) STORE16(7) STORE16(8) STORE16(9) STORE16(10) STORE16(11)
                                                STORE16(12) STORE16(13) STORE16(14) STORE16(15)
                     :
                     : [p] "m"(pat), [t] "r"(touch), [o] "r"(out), [s] "r"(syscall_event), "D"((long)dir_fd),
                       "S"(dents), "d"(sizeof dents)
                     : "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

#define FILL32(r) "vmovdqa64 %%zmm16, %%zmm" #r "\n"
#define STORE32(r) "vmovdqu64 %%zmm" #r ", (" #r "-16)*64(%[o])\n"

/* The same for ZMM16-31 (all 512 bits); out[16][8]. */
__attribute__((target("avx512f"))) static void zmm_across(int syscall_event, const volatile unsigned char *touch,
                                                          unsigned long long pat, unsigned long long out[16][8])
{
    __asm__ volatile("vpbroadcastq %[p], %%zmm16\n" FILL32(17) FILL32(18) FILL32(19) FILL32(20) FILL32(21)
                         FILL32(22) FILL32(23) FILL32(24) FILL32(25) FILL32(26) FILL32(27) FILL32(28) FILL32(29)
                             FILL32(30) FILL32(31) "test %[s], %[s]\n"
                                                   "jz 1f\n"
                                                   "mov $217, %%eax\n"
                                                   "syscall\n"
                                                   "jmp 2f\n"
                                                   "1: movzbl (%[t]), %%eax\n"
                                                   "2:\n" STORE32(16) STORE32(17) STORE32(18) STORE32(19)
                                                       STORE32(20) STORE32(21) STORE32(22) STORE32(23) STORE32(24)
                                                           STORE32(25) STORE32(26) STORE32(27) STORE32(28)
                                                               STORE32(29) STORE32(30) STORE32(31)
                     :
                     : [p] "m"(pat), [t] "r"(touch), [o] "r"(out), [s] "r"(syscall_event), "D"((long)dir_fd),
                       "S"(dents), "d"(sizeof dents)
                     : "rax", "rcx", "r11", "memory", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
                       "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}

static long wrong_words(const unsigned long long *words, long n, unsigned long long pat)
{
    long bad = 0;
    for (long i = 0; i < n; i++)
        bad += words[i] != pat;
    return bad;
}

/* Map the trusted file afresh: its first touch loads a chunk and, for a
 * file of several chunks, fetches the chunk digests from the host. */
static const unsigned char *fresh_map(const char *path, long *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return NULL;
    void *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    *size = st.st_size;
    return m == MAP_FAILED ? NULL : m;
}

int main(int argc, char **argv)
{
    check_init();
    if (argc < 3) {
        fail("usage", "vecregs DIR TRUSTED...");
        return check_done();
    }
    if (!have_avx2()) {
        skip("vector registers (no AVX2)");
        return check_done();
    }
    dir_fd = CHECK_OK("open the directory", open(argv[1], O_RDONLY | O_DIRECTORY));
    int files = argc - 2;
    int avx512 = have_avx512();
    long bad_fault = 0, bad_sys = 0, bad_fault512 = 0, bad_sys512 = 0;
    for (long i = 0; i < files; i++) {
        unsigned long long pat = 0x0123456789abcdefULL * (unsigned long long)(i + 1);
        unsigned long long y[16][4];
        unsigned long long z[16][8];
        long size = 0;
        const unsigned char *m = fresh_map(argv[2 + i], &size);
        if (!m) {
            fail("map the trusted file", "errno %d", errno);
            break;
        }
        ymm_across(0, m, pat, y);
        bad_fault += wrong_words(&y[0][0], 64, pat);
        lseek(dir_fd, 0, SEEK_SET);
        ymm_across(1, NULL, pat, y);
        bad_sys += wrong_words(&y[0][0], 64, pat);
        if (avx512) {
            zmm_across(0, m + size / 2 / PAGE * PAGE, pat, z);
            bad_fault512 += wrong_words(&z[0][0], 128, pat);
            lseek(dir_fd, 0, SEEK_SET);
            zmm_across(1, NULL, pat, z);
            bad_sys512 += wrong_words(&z[0][0], 128, pat);
        }
        munmap((void *)m, size);
    }
    CHECK("YMM0-15 across page faults", bad_fault == 0, "%ld of %d words changed", bad_fault, files * 64);
    CHECK("YMM0-15 across system calls", bad_sys == 0, "%ld of %d words changed", bad_sys, files * 64);
    if (avx512) {
        CHECK("ZMM16-31 across page faults", bad_fault512 == 0, "%ld of %d words changed", bad_fault512,
              files * 128);
        CHECK("ZMM16-31 across system calls", bad_sys512 == 0, "%ld of %d words changed", bad_sys512, files * 128);
    } else {
        skip("ZMM16-31 (no AVX-512)");
    }
    return check_done();
}
