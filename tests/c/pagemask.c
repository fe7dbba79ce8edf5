/* Maps a trusted file and touches some of its pages: those whose index is
 * FIRST modulo STEP. Each touched page must hold the file's bytes, whether
 * the LibOS filled it because the program's last start used it or on this
 * touch (a page the last start left alone).
 *
 *   pagemask TRUSTED SIZE STEP FIRST
 *     TRUSTED  a trusted file of SIZE bytes holding pattern_byte(i)
 */
#include "check.h"

#include <fcntl.h>
#include <sys/mman.h>

#define PAGE 4096L

int main(int argc, char **argv)
{
    check_init();
    if (argc != 5) {
        fprintf(stderr, "usage: pagemask TRUSTED SIZE STEP FIRST\n");
        return 2;
    }
    long size = atol(argv[2]), step = atol(argv[3]), first = atol(argv[4]);
    int fd = CHECK_OK("open the trusted file", open(argv[1], O_RDONLY));
    const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK("mmap the trusted file", m != MAP_FAILED, "errno %s", strerror(errno));
    long touched = 0;
    for (long p = first; p * PAGE < size; p += step) {
        long off = p * PAGE;
        long len = size - off < PAGE ? size - off : PAGE;
        long bad = pattern_mismatch(m + off, len, off);
        CHECK("a touched page holds the file", bad < 0, "byte %ld of page %ld", bad, p);
        touched++;
    }
    CHECK("some pages were touched", touched > 0, "none");
    close(fd);
    return check_done();
}
