/* Reads a few bytes of a trusted file's chunks, then maps the file and
 * touches the same chunks, as a dynamic loader does with a library (its
 * headers, a note further on, then the segments).
 *
 *   headmap TRUSTED SIZE MODE
 *     TRUSTED  a trusted file of SIZE bytes (at least 6 chunks of 64 KiB)
 *              holding pattern_byte(i)
 *     MODE     "read-then-map", or "map" to map and touch only
 */
#include "check.h"

#include <fcntl.h>
#include <sys/mman.h>

#define CHUNK 65536L

static const long chunks[] = {0, 3, 5};

int main(int argc, char **argv)
{
    check_init();
    if (argc != 4) {
        fprintf(stderr, "usage: headmap TRUSTED SIZE MODE\n");
        return 2;
    }
    long size = atol(argv[2]);
    int fd = CHECK_OK("open the trusted file", open(argv[1], O_RDONLY));
    if (strcmp(argv[3], "read-then-map") == 0) {
        for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
            uint8_t head[64];
            long off = chunks[i] * CHUNK + 8;
            CHECK_EQ("pread a few bytes of a chunk", pread(fd, head, sizeof head, off), (long)sizeof head);
            CHECK("and they are the file's", pattern_mismatch(head, sizeof head, off) < 0, "differ");
        }
    }
    const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK("mmap the trusted file", m != MAP_FAILED, "errno %s", strerror(errno));
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        long off = chunks[i] * CHUNK;
        long bad = pattern_mismatch(m + off, CHUNK, off);
        CHECK("a mapped chunk holds the file", bad < 0, "byte %ld of chunk %ld", bad, chunks[i]);
    }
    close(fd);
    return check_done();
}
