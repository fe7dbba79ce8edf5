/* fileread.c: sequential read throughput, for conf-bench.
 *
 *   fileread FILE REPS BLOCK_BYTES
 *
 * Reads FILE once untimed, then REPS more times, each with open, read(2) of
 * BLOCK_BYTES at a time to the end, close; prints one line per timed pass:
 * MB/s (10^6 bytes), bytes, seconds.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static long pass(const char *path, char *buf, size_t block)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, block)) > 0)
        total += n;
    if (n < 0) {
        perror("read");
        exit(1);
    }
    close(fd);
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: fileread FILE REPS BLOCK_BYTES\n");
        return 2;
    }
    int reps = atoi(argv[2]);
    size_t block = (size_t)atol(argv[3]);
    char *buf = malloc(block);
    if (!buf) {
        perror("malloc");
        return 1;
    }
    pass(argv[1], buf, block);
    for (int r = 0; r < reps; r++) {
        double a = now_s();
        long total = pass(argv[1], buf, block);
        double t = now_s() - a;
        printf("%.1f %ld %.6f\n", total / 1e6 / t, total, t);
    }
    return 0;
}
