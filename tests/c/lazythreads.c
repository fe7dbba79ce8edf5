/* Threads reading a trusted file's mapping at the same moment: pages of a
 * file mapping are loaded on first touch, and no thread may ever see a
 * page before it holds the file's bytes.
 *
 *   lazythreads TRUSTED SIZE
 *     TRUSTED  a trusted file of SIZE bytes holding pattern_byte(i)
 */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>

/* Below the default sgx.max_threads (8), with the main thread. */
#define THREADS 6

static const uint8_t *map;
static long size;
static pthread_barrier_t start;
static long wrong[THREADS];

static void *reader(void *arg)
{
    long me = (long)arg;
    pthread_barrier_wait(&start);
    /* Every thread walks the pages in the same order, so they race for
     * the same not-yet-loaded pages; each checks a few bytes of each. */
    for (long off = 0; off < size; off += 4096) {
        long last = off + 4095 < size ? off + 4095 : size - 1;
        long mid = (off + last) / 2;
        wrong[me] += (map[off] != pattern_byte(off)) + (map[mid] != pattern_byte(mid)) +
                     (map[last] != pattern_byte(last));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    check_init();
    if (argc != 3) {
        fprintf(stderr, "usage: lazythreads TRUSTED SIZE\n");
        return 2;
    }
    size = atol(argv[2]);
    int fd = CHECK_OK("open the trusted file", open(argv[1], O_RDONLY));
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK("mmap", map != MAP_FAILED, "errno %d", errno);
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        CHECK_EQ("pthread_create", pthread_create(&t[i], NULL, reader, (void *)i), 0);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += wrong[i];
    }
    CHECK("every thread saw the file's bytes on every page", total == 0, "%ld bytes differed", total);
    return check_done();
}
