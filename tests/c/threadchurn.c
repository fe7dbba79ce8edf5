/* Threads that come and go one after another: each new thread may take the
 * enclave thread slot the previous one is still leaving. The OS thread that
 * ran a slot must be out of the way (no system call of its own dispatched
 * by the next one's settings) before another takes the slot; this failed
 * as a SIGSYS death of the whole process, about once per 20,000 threads.
 *
 *   threadchurn N   create and join N threads, one at a time
 */
#include "check.h"

#include <pthread.h>

static volatile long ran;

static void *work(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&ran, 1, __ATOMIC_RELAXED);
    return (void *)(long)getppid();
}

int main(int argc, char **argv)
{
    check_init();
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long failed = 0;
    for (long i = 0; i < n; i++) {
        pthread_t t;
        void *res = NULL;
        if (pthread_create(&t, NULL, work, NULL) != 0 || pthread_join(t, &res) != 0)
            failed++;
    }
    CHECK("every thread started and was joined", failed == 0, "%ld of %ld failed", failed, n);
    CHECK("every thread ran", ran == n, "%ld of %ld ran", ran, n);
    return check_done();
}
