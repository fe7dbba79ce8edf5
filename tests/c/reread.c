/* Reads a trusted file before and after the host changes it.
 *
 * usage: reread TRUSTED SIZE GOFILE OFFSET
 *   TRUSTED  a trusted file of SIZE bytes holding pattern_byte(i)
 *   GOFILE   a path in an allowed directory; the program prints "ready",
 *            then waits (up to 20 s) until GOFILE exists
 *   OFFSET   where the host changes the file (page aligned): read there
 *            with pread and with mmap after GOFILE appears
 * Prints, for each way of reading, "original", "error <errno name>" or
 * "MODIFIED" (the enclave saw bytes the manifest does not vouch for).
 */
#include "check.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>

static void verdict(const char *how, long r, const uint8_t *buf, size_t n, uint64_t off)
{
    if (r < 0)
        printf("%s: error %s\n", how, strerror(errno));
    else if ((size_t)r != n)
        printf("%s: short %ld\n", how, r);
    else if (pattern_mismatch(buf, n, off) >= 0)
        printf("%s: MODIFIED\n", how);
    else
        printf("%s: original\n", how);
}

int main(int argc, char **argv)
{
    check_init();
    if (argc != 5) {
        fprintf(stderr, "usage: reread TRUSTED SIZE GOFILE OFFSET\n");
        return 2;
    }
    long size = atol(argv[2]);
    uint64_t off = strtoull(argv[4], NULL, 0);
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        printf("open: error %s\n", strerror(errno));
        return 1;
    }
    uint8_t buf[8192];
    long r = pread(fd, buf, 1000, 0);
    verdict("before", r, buf, 1000, 0);
    if (off + sizeof buf > (uint64_t)size)
        return 2;
    printf("ready\n");
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    int i;
    for (i = 0; i < 2000 && access(argv[3], F_OK) != 0; i++)
        nanosleep(&ten_ms, NULL);
    if (i == 2000) {
        printf("no go file\n");
        return 3;
    }
    errno = 0;
    r = pread(fd, buf, sizeof buf, off);
    verdict("pread", r, buf, sizeof buf, off);
    errno = 0;
    uint8_t *m = mmap(NULL, sizeof buf, PROT_READ, MAP_PRIVATE, fd, off);
    if (m == MAP_FAILED)
        verdict("mmap", -1, NULL, 0, 0);
    else
        verdict("mmap", sizeof buf, m, sizeof buf, off);
    printf("done\n");
    return 0;
}
