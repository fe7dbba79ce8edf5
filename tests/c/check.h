/* Checks for the conf end-to-end C programs.
 *
 * Each passed check prints "ok <name>"; a failed one prints
 * "FAIL <name>: <why>" and the program exits 1 at once, or, with
 * CONF_E2E_KEEP_GOING set in the environment, at the end.
 * CONF_E2E_NATIVE set means the program runs natively (no conf): checks of
 * conf-specific behaviour are skipped with "skip <name>".
 * stdout is unbuffered so that output up to a crash is not lost.
 */
#ifndef CONF_CHECK_H
#define CONF_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int check_keep_going;
static int check_failures;
static int check_native;

static void check_init(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    check_keep_going = getenv("CONF_E2E_KEEP_GOING") != NULL;
    check_native = getenv("CONF_E2E_NATIVE") != NULL;
}

__attribute__((unused)) static void ok(const char *name)
{
    printf("ok %s\n", name);
}

__attribute__((unused)) static void skip(const char *name)
{
    printf("skip %s\n", name);
}

__attribute__((format(printf, 2, 3), unused)) static void fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    check_failures++;
    if (!check_keep_going)
        exit(1);
}

/* The exit status: 0 when every check passed. */
__attribute__((unused)) static int check_done(void)
{
    if (check_failures) {
        printf("%d check(s) failed\n", check_failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}

#define CHECK(name, cond, ...)                                                                                         \
    do {                                                                                                               \
        if (cond)                                                                                                      \
            ok(name);                                                                                                  \
        else                                                                                                           \
            fail(name, __VA_ARGS__);                                                                                   \
    } while (0)

/* A call that must succeed: r >= 0 (r == -1 with errno is a failure). */
#define CHECK_OK(name, expr)                                                                                           \
    ({                                                                                                                 \
        errno = 0;                                                                                                     \
        long _r = (long)(expr);                                                                                        \
        int _e = errno;                                                                                                \
        if (_r >= 0)                                                                                                   \
            ok(name);                                                                                                  \
        else                                                                                                           \
            fail(name, "%s returned %ld, errno %d (%s)", #expr, _r, _e, strerror(_e));                                \
        _r;                                                                                                            \
    })

/* A call that must return exactly `want`. */
#define CHECK_EQ(name, expr, want)                                                                                     \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long _r = (long)(expr);                                                                                        \
        int _e = errno;                                                                                                \
        long _w = (long)(want);                                                                                        \
        if (_r == _w)                                                                                                  \
            ok(name);                                                                                                  \
        else                                                                                                           \
            fail(name, "%s returned %ld (errno %d %s), expected %ld", #expr, _r, _e, _e ? strerror(_e) : "-", _w);     \
    } while (0)

/* A call that must fail (-1) with errno `err`. */
#define CHECK_ERR(name, expr, err)                                                                                     \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long _r = (long)(expr);                                                                                        \
        int _e = errno;                                                                                                \
        if (_r == -1 && _e == (err))                                                                                   \
            ok(name);                                                                                                  \
        else                                                                                                           \
            fail(name, "%s returned %ld, errno %d (%s); expected -1 with %s", #expr, _r, _e, _e ? strerror(_e) : "-",  \
                 #err);                                                                                                \
    } while (0)

/* The bytes of the trusted test data file: must match pattern() in
 * tests/src/lib.rs. */
static inline uint8_t pattern_byte(uint64_t i)
{
    return (uint8_t)(((uint32_t)i * 2654435761u) >> 24) ^ (uint8_t)i;
}

/* Index of the first byte of buf[0..n] that differs from the pattern at
 * file offset off, or -1. */
__attribute__((unused)) static long pattern_mismatch(const uint8_t *buf, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(off + i))
            return (long)i;
    return -1;
}

#endif
