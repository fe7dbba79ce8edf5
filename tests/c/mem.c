/* Memory system calls.
 *
 * usage: mem TRUSTED SIZE
 *   TRUSTED  a trusted file of SIZE bytes holding pattern_byte(i)
 * Run it in a small enclave (256M): the last checks exhaust memory.
 */
#include "check.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PG 4096UL

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void *map_anon(void *addr, size_t len, int extra)
{
    return mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
}

static sigjmp_buf fault_jump;
static volatile int fault_sig, fault_code;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fault_sig = sig;
    fault_code = si->si_code;
    siglongjmp(fault_jump, 1);
}

/* Store `v` at `p`: the signal it raised (its si_code in fault_code), or 0. */
static int store_faults(volatile uint8_t *p, uint8_t v)
{
    struct sigaction sa = {0}, old_segv, old_bus;
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    fault_sig = 0;
    if (!sigsetjmp(fault_jump, 1))
        *p = v;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return fault_sig;
}

/* Pages of a trusted file's mapping load on first touch. Whatever the
 * program does to such a mapping before or after its pages load must
 * behave as on Linux, and memory that was such a mapping must become
 * ordinary memory again. Needs a file of at least 32 pages. */
static void file_pages_before_first_touch(int fd)
{
    /* no access at first, readable later: untouched pages load then */
    uint8_t *n = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE, fd, 0);
    CHECK("mmap a file PROT_NONE", n != MAP_FAILED, "errno %s", strerror(errno));
    CHECK_EQ("mprotect the untouched file mapping PROT_READ", mprotect(n, 4 * PG, PROT_READ), 0);
    long bad = pattern_mismatch(n, 4 * PG, 0);
    CHECK("pages made readable before their first touch hold the file", bad < 0, "byte %ld is %u", bad, n[bad]);
    munmap(n, 4 * PG);

    /* a file mapping placed over another (as a dynamic loader places each
     * segment over its first mapping of the whole file): the new one shows
     * its own part of the file, over touched and untouched pages alike */
    uint8_t *o = mmap(NULL, 8 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK("mmap 8 pages of the file", o != MAP_FAILED, "errno %s", strerror(errno));
    (void)*(volatile uint8_t *)(o + PG);
    uint8_t *o2 = mmap(o, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 16 * PG);
    CHECK("MAP_FIXED a later part of the file over it", o2 == o, "got %p, want %p", (void *)o2, (void *)o);
    bad = pattern_mismatch(o, 4 * PG, 16 * PG);
    CHECK("the pages placed over show the later part", bad < 0, "byte %ld is %u", bad, o[bad]);
    o[3] = 0x42;
    bad = pattern_mismatch(o + 4 * PG, 4 * PG, 4 * PG);
    CHECK("and the rest of the first mapping is unchanged", bad < 0 && o[3] == 0x42, "byte %ld", bad);
    munmap(o, 8 * PG);

    /* a write to a read-only page not loaded yet */
    uint8_t *r = mmap(NULL, 2 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
    int sig = store_faults(r + PG, 1);
    CHECK("a write to an untouched read-only file page raises SIGSEGV (SEGV_ACCERR)",
          sig == SIGSEGV && fault_code == SEGV_ACCERR, "signal %d, si_code %d", sig, fault_code);
    CHECK("and the page then reads as the file", r[PG] == pattern_byte(PG), "byte %u", r[PG]);
    munmap(r, 2 * PG);

    /* MADV_DONTNEED on a private file mapping drops the program's writes */
    uint8_t *w = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    w[0] ^= 0xff;
    w[PG + 1] ^= 0xff;
    CHECK_EQ("madvise MADV_DONTNEED on a private file mapping", madvise(w, 2 * PG, MADV_DONTNEED), 0);
    bad = pattern_mismatch(w, 2 * PG, 0);
    CHECK("after MADV_DONTNEED a private file mapping reads the file again", bad < 0, "byte %ld is %u", bad, w[bad]);
    w[2] = 7;
    CHECK("and takes writes again", w[2] == 7, "byte %u", w[2]);
    munmap(w, 2 * PG);

    /* a system call's buffer in pages not loaded yet */
    uint8_t *b = mmap(NULL, 32 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
    int p[2];
    CHECK_OK("pipe", pipe(p));
    uint8_t got[100];
    CHECK_EQ("write(2) from an untouched file page", write(p[1], b + 20 * PG, sizeof got), (long)sizeof got);
    CHECK_EQ("read it back", read(p[0], got, sizeof got), (long)sizeof got);
    CHECK("the bytes written are the file's", pattern_mismatch(got, sizeof got, 20 * PG) < 0, "differ");
    close(p[0]);
    close(p[1]);

    /* half of the first chunk touched, then the mapping replaced by
     * anonymous memory (MAP_FIXED over its first half, munmap and a new
     * mapping over the rest): zeroed, writable, usable by the kernel */
    (void)*(volatile uint8_t *)b;
    uint8_t *z1 = map_anon(b, 16 * PG, MAP_FIXED);
    CHECK("MAP_FIXED anonymous memory over a file mapping", z1 == b, "got %p, want %p", (void *)z1, (void *)b);
    CHECK_EQ("munmap the rest of the file mapping", munmap(b + 16 * PG, 16 * PG), 0);
    uint8_t *z2 = map_anon(b + 16 * PG, 16 * PG, MAP_FIXED_NOREPLACE);
    CHECK("anonymous memory where the file mapping was", z2 == b + 16 * PG, "got %p, want %p (errno %s)", (void *)z2,
          (void *)(b + 16 * PG), strerror(errno));
    if (z1 == b && z2 == b + 16 * PG) {
        CHECK("memory that was a file mapping reads as zero", all_bytes(b, 32 * PG, 0), "not zero");
        sig = store_faults(b + 25 * PG, 0x5a);
        CHECK("memory that was a file mapping takes writes", sig == 0 && b[25 * PG] == 0x5a, "signal %d", sig);
        CHECK_EQ("pread(2) into memory that was a file mapping", pread(fd, b + 30 * PG, PG, 0), (long)PG);
        CHECK("pread filled it", pattern_mismatch(b + 30 * PG, PG, 0) < 0, "differs");
    }
    munmap(b, 32 * PG);
}

int main(int argc, char **argv)
{
    check_init();
    if (argc != 3) {
        fprintf(stderr, "usage: mem TRUSTED SIZE\n");
        return 2;
    }
    const char *trusted = argv[1];
    long tsize = atol(argv[2]);

    /* anonymous memory */
    uint8_t *a = map_anon(NULL, 4 * PG, 0);
    CHECK("mmap anonymous", a != MAP_FAILED, "errno %s", strerror(errno));
    CHECK("mmap result is page aligned", ((uintptr_t)a & (PG - 1)) == 0, "%p", (void *)a);
    CHECK("anonymous memory starts zeroed", all_bytes(a, 4 * PG, 0), "non-zero byte");
    for (size_t i = 0; i < 4 * PG; i++)
        a[i] = (uint8_t)(i * 7 + 1);
    int same = 1;
    for (size_t i = 0; i < 4 * PG; i++)
        same &= a[i] == (uint8_t)(i * 7 + 1);
    CHECK("anonymous memory write then read", same, "read back differs");

    /* MAP_FIXED replaces the middle page only */
    uint8_t *mid = map_anon(a + PG, PG, MAP_FIXED);
    CHECK("mmap MAP_FIXED", mid == a + PG, "got %p, want %p (errno %s)", (void *)mid, (void *)(a + PG), strerror(errno));
    CHECK("MAP_FIXED page is zeroed", all_bytes(a + PG, PG, 0), "non-zero byte");
    CHECK("MAP_FIXED leaves its neighbours", a[0] == 1 && a[2 * PG] == (uint8_t)(2 * PG * 7 + 1), "neighbour changed");

    /* MAP_FIXED_NOREPLACE over an existing mapping */
    errno = 0;
    void *nr = map_anon(a + 2 * PG, PG, MAP_FIXED_NOREPLACE);
    CHECK("MAP_FIXED_NOREPLACE over a mapping fails with EEXIST", nr == MAP_FAILED && errno == EEXIST,
          "got %p errno %d (%s)", nr, errno, strerror(errno));
    CHECK("MAP_FIXED_NOREPLACE left the mapping", a[2 * PG] == (uint8_t)(2 * PG * 7 + 1), "page changed");

    /* bad arguments */
    errno = 0;
    CHECK("mmap of length 0 fails with EINVAL", map_anon(NULL, 0, 0) == MAP_FAILED && errno == EINVAL, "errno %s",
          strerror(errno));
    CHECK_ERR("munmap of an unaligned address", munmap(a + 1, PG), EINVAL);
    errno = 0;
    void *huge = map_anon(NULL, 1UL << 46, 0);
    CHECK("mmap of 64 TiB fails with ENOMEM", huge == MAP_FAILED && errno == ENOMEM, "got %p errno %s", huge,
          strerror(errno));

    /* munmap, then a new MAP_FIXED mapping there reads zeros */
    CHECK_EQ("munmap", munmap(a + 2 * PG, 2 * PG), 0);
    uint8_t *again = map_anon(a + 2 * PG, 2 * PG, MAP_FIXED);
    CHECK("MAP_FIXED into an unmapped hole", again == a + 2 * PG, "got %p", (void *)again);
    CHECK("re-mapped memory is zeroed", all_bytes(again, 2 * PG, 0), "old contents survived munmap");
    CHECK_EQ("munmap again", munmap(a + 2 * PG, 2 * PG), 0);
    void *r0 = mmap(a + 2 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK("MAP_FIXED_NOREPLACE into a hole succeeds", r0 == a + 2 * PG, "got %p errno %s", r0, strerror(errno));

    /* mprotect */
    CHECK_EQ("mprotect PROT_READ", mprotect(a, PG, PROT_READ), 0);
    CHECK("memory still readable after mprotect", a[0] == 1, "a[0]=%u", a[0]);
    CHECK_EQ("mprotect PROT_READ|PROT_WRITE", mprotect(a, PG, PROT_READ | PROT_WRITE), 0);
    a[0] = 99;
    CHECK("writable again after mprotect", a[0] == 99, "a[0]=%u", a[0]);
    CHECK_ERR("mprotect unaligned", mprotect(a + 1, PG, PROT_READ), EINVAL);
    uint8_t *gap = map_anon(NULL, PG, 0);
    munmap(gap, PG);
    CHECK_ERR("mprotect of unmapped memory", mprotect(gap, PG, PROT_READ), ENOMEM);

    /* mremap: grow in place or move, move to a fixed place, shrink */
    uint8_t *r = map_anon(NULL, PG, 0);
    memset(r, 0x5a, PG);
    uint8_t *g = mremap(r, PG, 4 * PG, MREMAP_MAYMOVE);
    CHECK("mremap grow", g != MAP_FAILED, "errno %s", strerror(errno));
    CHECK("mremap keeps the contents", all_bytes(g, PG, 0x5a), "contents lost");
    CHECK("mremap grown part is zeroed", all_bytes(g + PG, 3 * PG, 0), "grown part not zero");
    g[4 * PG - 1] = 7;
    uint8_t *target = map_anon(NULL, 8 * PG, 0);
    munmap(target + 4 * PG, 4 * PG);
    uint8_t *mv = mremap(g, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    CHECK("mremap MREMAP_FIXED moves", mv == target, "got %p want %p errno %s", (void *)mv, (void *)target,
          strerror(errno));
    CHECK("moved contents", all_bytes(mv, PG, 0x5a) && mv[4 * PG - 1] == 7, "contents lost in the move");
    uint8_t *blocker = map_anon(mv + 4 * PG, PG, MAP_FIXED);
    errno = 0;
    void *stuck = mremap(mv, 4 * PG, 5 * PG, 0);
    CHECK("mremap without MAYMOVE into a mapping fails with ENOMEM", stuck == MAP_FAILED && errno == ENOMEM,
          "got %p errno %s", stuck, strerror(errno));
    munmap(blocker, PG);
    uint8_t *sh = mremap(mv, 4 * PG, PG, 0);
    CHECK("mremap shrink", sh == mv, "got %p", (void *)sh);
    munmap(sh, PG);

    /* brk */
    uintptr_t cur = syscall(SYS_brk, 0);
    CHECK("brk(0) returns the break", cur != 0, "0");
    /* start from a page boundary: Linux keeps the bytes of a partial page */
    uintptr_t aligned = (cur + PG - 1) & ~(PG - 1);
    CHECK_EQ("brk to a page boundary", syscall(SYS_brk, aligned), aligned);
    cur = aligned;
    uintptr_t up = syscall(SYS_brk, cur + 64 * 1024);
    CHECK("brk grows", up == cur + 64 * 1024, "brk(%#lx) returned %#lx", (unsigned long)(cur + 65536), (unsigned long)up);
    CHECK("grown brk memory is zeroed", all_bytes((uint8_t *)cur, 64 * 1024, 0), "non-zero");
    memset((void *)cur, 0xab, 64 * 1024);
    CHECK_EQ("brk shrinks", syscall(SYS_brk, cur), cur);
    CHECK_EQ("brk(0) after shrinking", syscall(SYS_brk, 0), cur);
    CHECK("brk too far is refused", (uintptr_t)syscall(SYS_brk, cur + (1UL << 44)) == cur, "the break moved");
    up = syscall(SYS_brk, cur + 8192);
    CHECK("brk regrown memory is zeroed", up == cur + 8192 && all_bytes((uint8_t *)cur, 8192, 0),
          "old contents came back");
    syscall(SYS_brk, cur);

    /* madvise(MADV_DONTNEED) zeroes private anonymous memory */
    uint8_t *md = map_anon(NULL, 2 * PG, 0);
    memset(md, 0x11, 2 * PG);
    CHECK_EQ("madvise MADV_DONTNEED", madvise(md, PG, MADV_DONTNEED), 0);
    CHECK("MADV_DONTNEED zeroes", all_bytes(md, PG, 0), "not zero");
    CHECK("MADV_DONTNEED stops at its range", all_bytes(md + PG, PG, 0x11), "next page changed");
    CHECK_EQ("madvise MADV_WILLNEED", madvise(md, 2 * PG, MADV_WILLNEED), 0);
    munmap(md, 2 * PG);

    /* file mappings of the trusted file */
    int fd = CHECK_OK("open the trusted file", open(trusted, O_RDONLY));
    uint8_t *f = mmap(NULL, tsize, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK("mmap the trusted file", f != MAP_FAILED, "errno %s", strerror(errno));
    if (f != MAP_FAILED) {
        long bad = pattern_mismatch(f, tsize, 0);
        CHECK("mapped bytes equal the file", bad < 0, "byte %ld is %u, want %u", bad, f[bad], pattern_byte(bad));
        size_t tail = (tsize + PG - 1) / PG * PG;
        CHECK("bytes past the end of the file in the last page are zero", all_bytes(f + tsize, tail - tsize, 0),
              "not zero");
        munmap(f, tsize);
    }
    uint8_t *fo = mmap(NULL, 2 * PG, PROT_READ, MAP_PRIVATE, fd, 16 * PG);
    CHECK("mmap at a file offset", fo != MAP_FAILED && pattern_mismatch(fo, 2 * PG, 16 * PG) < 0, "errno %s",
          strerror(errno));
    uint8_t *fw = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK("private writable mapping of a trusted file", fw != MAP_FAILED, "errno %s", strerror(errno));
    if (fw != MAP_FAILED) {
        fw[0] ^= 0xff;
        uint8_t b = 0, flipped = pattern_byte(0) ^ 0xff;
        CHECK("writes to a private mapping do not reach the file",
              pread(fd, &b, 1, 0) == 1 && b == pattern_byte(0) && fw[0] == flipped,
              "file byte %u, mapped byte %u", b, fw[0]);
    }
    errno = 0;
    void *ws = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK("shared writable mapping of a read-only fd fails with EACCES", ws == MAP_FAILED && errno == EACCES,
          "got %p errno %s", ws, strerror(errno));
    errno = 0;
    void *unal = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 100);
    CHECK("mmap at an unaligned file offset fails with EINVAL", unal == MAP_FAILED && errno == EINVAL, "errno %s",
          strerror(errno));
    file_pages_before_first_touch(fd);
    close(fd);

    /* exhausting memory */
    if (check_native) {
        skip("mmap until ENOMEM");
        return check_done();
    }
    void *maps[4096];
    int n = 0;
    size_t chunk = 16UL << 20;
    for (; n < 4096; n++) {
        maps[n] = map_anon(NULL, chunk, 0);
        if (maps[n] == MAP_FAILED)
            break;
        ((volatile uint8_t *)maps[n])[0] = 1; /* touch it */
    }
    int e = errno;
    CHECK("mmap until the enclave is full fails with ENOMEM", n < 4096 && e == ENOMEM, "%d maps of 16M, errno %s", n,
          strerror(e));
    CHECK("a 256M enclave does not hold 256M of maps", (size_t)n * chunk < (256UL << 20), "%d maps of 16M", n);
    for (int i = 0; i < n; i++)
        munmap(maps[i], chunk);
    void *after = map_anon(NULL, chunk, 0);
    CHECK("memory is usable again after munmap", after != MAP_FAILED, "errno %s", strerror(errno));
    return check_done();
}
