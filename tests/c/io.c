/* File and descriptor system calls.
 *
 * usage: io DIR TRUSTED SIZE DENIED
 *   DIR      an empty writable (allowed) directory
 *   TRUSTED  a trusted file of SIZE bytes holding pattern_byte(i)
 *   DENIED   an existing host file that is neither trusted nor allowed
 */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/stat.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>

static char dir[PATH_MAX];

static const char *in_dir(const char *name)
{
    static char bufs[4][PATH_MAX];
    static int n;
    char *b = bufs[n++ % 4];
    if ((size_t)snprintf(b, PATH_MAX, "%.2000s/%.1000s", dir, name) >= PATH_MAX)
        abort();
    return b;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Read the directory fd with getdents64; set bits in *seen for the names
 * in want[]; return the number of entries, or -1. */
static int list_dir(int fd, const char *const *want, int nwant, unsigned *seen, int *types_ok)
{
    char buf[1024]; /* small on purpose: several getdents64 calls */
    int count = 0;
    *seen = 0;
    *types_ok = 1;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            if (d->d_reclen == 0 || off + d->d_reclen > n)
                return -1;
            count++;
            for (int i = 0; i < nwant; i++) {
                if (strcmp(d->d_name, want[i]) == 0) {
                    *seen |= 1u << i;
                    if (strcmp(want[i], "sub") == 0 && d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
                        *types_ok = 0;
                    if (strcmp(want[i], "a.txt") == 0 && d->d_type != DT_REG && d->d_type != DT_UNKNOWN)
                        *types_ok = 0;
                }
            }
            off += d->d_reclen;
        }
    }
    return count;
}

int main(int argc, char **argv)
{
    check_init();
    if (argc != 5) {
        fprintf(stderr, "usage: io DIR TRUSTED SIZE DENIED\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    const char *trusted = argv[2];
    long tsize = atol(argv[3]);
    const char *denied = argv[4];
    char buf[4096];
    struct stat st;

    /* umask first: what later files are created with depends on it. */
    umask(022);
    CHECK_EQ("umask returns the previous mask", umask(027), 022);
    CHECK_EQ("umask set then get", umask(022), 027);

    /* open / openat, write, read, lseek */
    int fd = CHECK_OK("openat O_CREAT", syscall(SYS_openat, AT_FDCWD, in_dir("a.txt"), O_CREAT | O_RDWR | O_TRUNC, 0644));
    CHECK_EQ("write", write(fd, "hello world\n", 12), 12);
    CHECK_EQ("lseek SEEK_CUR after write", lseek(fd, 0, SEEK_CUR), 12);
    CHECK_EQ("lseek SEEK_SET", lseek(fd, 0, SEEK_SET), 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ("read whole file", read(fd, buf, sizeof buf), 12);
    CHECK("read bytes", memcmp(buf, "hello world\n", 12) == 0, "got \"%.12s\"", buf);
    CHECK_EQ("read at EOF returns 0", read(fd, buf, sizeof buf), 0);
    CHECK_EQ("lseek SEEK_END", lseek(fd, 0, SEEK_END), 12);
    CHECK_ERR("lseek negative offset", lseek(fd, -100, SEEK_SET), EINVAL);

    /* pread64 / pwrite64 do not move the offset */
    lseek(fd, 3, SEEK_SET);
    CHECK_EQ("pwrite64", pwrite(fd, "HELLO", 5, 0), 5);
    memset(buf, 0, sizeof buf);
    CHECK_EQ("pread64", pread(fd, buf, 5, 0), 5);
    CHECK("pread64 bytes", memcmp(buf, "HELLO", 5) == 0, "got \"%.5s\"", buf);
    CHECK_EQ("pread64 at offset", pread(fd, buf, 6, 6), 6);
    CHECK("pread64 at offset bytes", memcmp(buf, "world\n", 6) == 0, "got \"%.6s\"", buf);
    CHECK_EQ("pread/pwrite keep the offset", lseek(fd, 0, SEEK_CUR), 3);

    /* writev / readv */
    lseek(fd, 0, SEEK_SET);
    struct iovec wv[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
    CHECK_EQ("writev", writev(fd, wv, 3), 8);
    char r1[2], r2[10];
    struct iovec rv[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
    lseek(fd, 0, SEEK_SET);
    CHECK_EQ("readv", readv(fd, rv, 2), 12);
    CHECK("readv bytes", memcmp(r1, "ab", 2) == 0 && memcmp(r2, "cdefghrld\n", 10) == 0, "got \"%.2s\" \"%.10s\"", r1, r2);

    /* writev on a datagram socket sends one datagram */
    int dg[2];
    CHECK_OK("socketpair(SOCK_DGRAM)", socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
    CHECK_EQ("writev of 3 pieces to a datagram socket", writev(dg[0], wv, 3), 8);
    char dgbuf[16];
    CHECK_EQ("one datagram holds all the pieces", recv(dg[1], dgbuf, sizeof dgbuf, MSG_DONTWAIT), 8);
    CHECK("datagram bytes", memcmp(dgbuf, "abcdefgh", 8) == 0, "got \"%.8s\"", dgbuf);
    close(dg[0]);
    close(dg[1]);

    /* a hole reads as zeros */
    CHECK_EQ("pwrite64 past the end", pwrite(fd, "Z", 1, 100), 1);
    memset(buf, 'x', sizeof buf);
    CHECK_EQ("pread64 across a hole", pread(fd, buf, 200, 0), 101);
    int zeros = 1;
    for (int i = 12; i < 100; i++)
        zeros &= buf[i] == 0;
    CHECK("hole is zeros", zeros && buf[100] == 'Z', "bytes 12..100 are not all zero");
    CHECK_OK("ftruncate", ftruncate(fd, 12));

    /* fstat / newfstatat / stat / lstat / statx */
    CHECK_OK("fstat", fstat(fd, &st));
    CHECK("fstat size and type", st.st_size == 12 && S_ISREG(st.st_mode), "size %ld mode %o", (long)st.st_size,
          st.st_mode);
    CHECK("fstat mode honours umask", (st.st_mode & 0777) == 0644, "mode %o", st.st_mode & 0777);
    CHECK_OK("newfstatat", syscall(SYS_newfstatat, AT_FDCWD, in_dir("a.txt"), &st, 0));
    CHECK("newfstatat size", st.st_size == 12, "size %ld", (long)st.st_size);
    memset(&st, 0, sizeof st);
    CHECK_OK("newfstatat AT_EMPTY_PATH", syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH));
    CHECK("newfstatat AT_EMPTY_PATH size", st.st_size == 12, "size %ld", (long)st.st_size);
    CHECK_OK("stat", syscall(SYS_stat, in_dir("a.txt"), &st));
    CHECK("stat size", st.st_size == 12 && S_ISREG(st.st_mode), "size %ld", (long)st.st_size);
    CHECK_ERR("stat of a missing file", syscall(SYS_stat, in_dir("missing"), &st), ENOENT);
    CHECK_OK("symlink", symlink("a.txt", in_dir("link")));
    CHECK_OK("lstat", syscall(SYS_lstat, in_dir("link"), &st));
    CHECK("lstat sees the link", S_ISLNK(st.st_mode) && st.st_size == 5, "mode %o size %ld", st.st_mode,
          (long)st.st_size);
    CHECK_OK("stat through a link", syscall(SYS_stat, in_dir("link"), &st));
    CHECK("stat follows the link", S_ISREG(st.st_mode) && st.st_size == 12, "mode %o", st.st_mode);
    struct statx stx;
    memset(&stx, 0, sizeof stx);
    CHECK_OK("statx", syscall(SYS_statx, AT_FDCWD, in_dir("a.txt"), 0, STATX_BASIC_STATS, &stx));
    CHECK("statx fields", (stx.stx_mask & STATX_SIZE) && stx.stx_size == 12 && S_ISREG(stx.stx_mode),
          "mask %x size %llu mode %o", stx.stx_mask, (unsigned long long)stx.stx_size, stx.stx_mode);

    /* readlink / readlinkat */
    memset(buf, 0, sizeof buf);
    CHECK_EQ("readlink", syscall(SYS_readlink, in_dir("link"), buf, sizeof buf), 5);
    CHECK("readlink target", memcmp(buf, "a.txt", 5) == 0, "got \"%s\"", buf);
    int dfd = CHECK_OK("open directory", syscall(SYS_open, dir, O_RDONLY | O_DIRECTORY));
    memset(buf, 0, sizeof buf);
    CHECK_EQ("readlinkat", syscall(SYS_readlinkat, dfd, "link", buf, sizeof buf), 5);
    CHECK("readlinkat target", memcmp(buf, "a.txt", 5) == 0, "got \"%s\"", buf);
    CHECK_ERR("readlink of a regular file", syscall(SYS_readlink, in_dir("a.txt"), buf, sizeof buf), EINVAL);

    /* access / faccessat / faccessat2 */
    CHECK_EQ("access R_OK|W_OK", syscall(SYS_access, in_dir("a.txt"), R_OK | W_OK), 0);
    CHECK_ERR("access of a missing file", syscall(SYS_access, in_dir("missing"), F_OK), ENOENT);
    CHECK_EQ("faccessat", syscall(SYS_faccessat, dfd, "a.txt", R_OK, 0), 0);
    CHECK_EQ("faccessat2 AT_EACCESS", syscall(SYS_faccessat2, AT_FDCWD, in_dir("a.txt"), R_OK, AT_EACCESS), 0);
    CHECK_ERR("faccessat2 of a missing file", syscall(SYS_faccessat2, dfd, "missing", F_OK, 0), ENOENT);

    /* getdents64 */
    CHECK_OK("mkdir", mkdir(in_dir("sub"), 0755));
    const char *want[] = {".", "..", "a.txt", "link", "sub"};
    unsigned seen;
    int types_ok;
    int n = list_dir(dfd, want, 5, &seen, &types_ok);
    CHECK("getdents64 entries", n == 5 && seen == 0x1f, "%d entries, seen mask %x (want 5, 1f)", n, seen);
    CHECK("getdents64 d_type", types_ok, "a d_type is wrong");
    CHECK_EQ("getdents64 at the end returns 0", syscall(SYS_getdents64, dfd, buf, sizeof buf), 0);
    CHECK_ERR("getdents64 on a file", syscall(SYS_getdents64, fd, buf, sizeof buf), ENOTDIR);

    /* getcwd / chdir / fchdir */
    char cwd[PATH_MAX];
    CHECK("getcwd at start is /", getcwd(cwd, sizeof cwd) && strcmp(cwd, "/") == 0, "got \"%s\"", cwd);
    CHECK_EQ("chdir", chdir(dir), 0);
    CHECK("getcwd after chdir", getcwd(cwd, sizeof cwd) && strcmp(cwd, dir) == 0, "got \"%s\", want \"%s\"", cwd, dir);
    int rfd = CHECK_OK("open relative to cwd", open("a.txt", O_RDONLY));
    close(rfd);
    CHECK_EQ("chdir ..", chdir("sub/.."), 0);
    CHECK("getcwd after chdir sub/..", getcwd(cwd, sizeof cwd) && strcmp(cwd, dir) == 0, "got \"%s\"", cwd);
    int root = CHECK_OK("open /", open("/", O_RDONLY | O_DIRECTORY));
    CHECK_EQ("fchdir", fchdir(root), 0);
    CHECK("getcwd after fchdir", getcwd(cwd, sizeof cwd) && strcmp(cwd, "/") == 0, "got \"%s\"", cwd);
    CHECK_ERR("fchdir to a file", fchdir(fd), ENOTDIR);
    CHECK_ERR("chdir to a missing directory", chdir(in_dir("missing")), ENOENT);
    close(root);

    /* dup / dup2 / dup3 share the file offset */
    lseek(fd, 0, SEEK_SET);
    int d1 = CHECK_OK("dup", dup(fd));
    CHECK("dup is a new fd", d1 != fd, "dup returned the same fd");
    CHECK_EQ("dup shares the offset", (read(d1, buf, 4), lseek(fd, 0, SEEK_CUR)), 4);
    CHECK_EQ("dup2", syscall(SYS_dup2, fd, 100), 100);
    CHECK_EQ("dup2 shares the offset", lseek(100, 0, SEEK_CUR), 4);
    CHECK_EQ("dup2 onto itself", syscall(SYS_dup2, fd, fd), fd);
    CHECK_EQ("dup3 O_CLOEXEC", syscall(SYS_dup3, fd, 101, O_CLOEXEC), 101);
    CHECK_EQ("dup3 sets FD_CLOEXEC", fcntl(101, F_GETFD), FD_CLOEXEC);
    CHECK_EQ("dup leaves FD_CLOEXEC clear", fcntl(d1, F_GETFD), 0);
    CHECK_ERR("dup3 onto itself", syscall(SYS_dup3, fd, fd, 0), EINVAL);
    CHECK_ERR("dup of a bad fd", dup(12345), EBADF);

    /* fcntl */
    CHECK_EQ("fcntl F_GETFL", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK), O_RDWR);
    CHECK_EQ("fcntl F_SETFL", fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK), 0);
    CHECK_EQ("fcntl F_GETFL after F_SETFL", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK),
             O_RDWR | O_APPEND | O_NONBLOCK);
    CHECK_EQ("O_APPEND writes at the end", (write(fd, "!", 1), lseek(fd, 0, SEEK_CUR)), 13);
    fcntl(fd, F_SETFL, 0);
    CHECK_EQ("fcntl F_SETFD", fcntl(fd, F_SETFD, FD_CLOEXEC), 0);
    CHECK_EQ("fcntl F_GETFD", fcntl(fd, F_GETFD), FD_CLOEXEC);
    CHECK_EQ("fcntl F_SETFD 0", fcntl(fd, F_SETFD, 0), 0);
    CHECK_EQ("fcntl F_GETFD after clearing", fcntl(fd, F_GETFD), 0);
    int d2 = fcntl(fd, F_DUPFD_CLOEXEC, 50);
    CHECK("fcntl F_DUPFD_CLOEXEC", d2 >= 50, "returned %d (errno %s)", d2, strerror(errno));
    CHECK_EQ("F_DUPFD_CLOEXEC sets FD_CLOEXEC", fcntl(d2, F_GETFD), FD_CLOEXEC);
    CHECK_ERR("fcntl on a bad fd", fcntl(12345, F_GETFD), EBADF);

    /* ioctl */
    struct termios tio;
    CHECK_ERR("ioctl TCGETS on a file", ioctl(fd, TCGETS, &tio), ENOTTY);

    /* pipes */
    int p[2];
    CHECK_EQ("pipe", pipe(p), 0);
    CHECK_EQ("pipe write", write(p[1], "abc", 3), 3);
    memset(buf, 0, 8);
    CHECK_EQ("pipe read", read(p[0], buf, sizeof buf), 3);
    CHECK("pipe bytes", memcmp(buf, "abc", 3) == 0, "got \"%.3s\"", buf);
    CHECK_EQ("pipe fds are not O_NONBLOCK", fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    int one = 1, zero = 0;
    CHECK_EQ("ioctl FIONBIO on", ioctl(p[0], FIONBIO, &one), 0);
    CHECK_EQ("FIONBIO sets O_NONBLOCK", fcntl(p[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_ERR("empty non-blocking pipe read", read(p[0], buf, 8), EAGAIN);
    CHECK_EQ("ioctl FIONBIO off", ioctl(p[0], FIONBIO, &zero), 0);
    CHECK_EQ("FIONBIO clears O_NONBLOCK", fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK_ERR("write to a pipe's read end", write(p[0], "x", 1), EBADF);
    close(p[1]);
    CHECK_EQ("pipe read after the writer closed", read(p[0], buf, 8), 0);
    close(p[0]);
    CHECK_EQ("pipe2", pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    CHECK_EQ("pipe2 O_CLOEXEC", fcntl(p[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_EQ("pipe2 O_NONBLOCK", fcntl(p[1], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_ERR("pipe2 empty read", read(p[0], buf, 8), EAGAIN);
    CHECK_EQ("pipe2 write", write(p[1], "xyz", 3), 3);
    CHECK_EQ("pipe2 read", read(p[0], buf, 8), 3);
    close(p[0]);
    close(p[1]);

    /* close */
    CHECK_EQ("close", close(d1), 0);
    CHECK_ERR("close twice", close(d1), EBADF);
    CHECK_ERR("read a closed fd", read(d1, buf, 1), EBADF);
    close(100);
    close(101);
    close(d2);

    /* the trusted file */
    int tfd = CHECK_OK("open the trusted file", syscall(SYS_open, trusted, O_RDONLY));
    CHECK_OK("fstat the trusted file", fstat(tfd, &st));
    CHECK("trusted file size", st.st_size == tsize, "size %ld, want %ld", (long)st.st_size, tsize);
    uint8_t *all = malloc(tsize + 1);
    long got = 0;
    for (;;) {
        long r = read(tfd, all + got, tsize + 1 - got > 5000 ? 5000 : tsize + 1 - got);
        if (r <= 0)
            break;
        got += r;
    }
    CHECK("read the whole trusted file", got == tsize, "read %ld of %ld bytes", got, tsize);
    long bad = pattern_mismatch(all, got, 0);
    CHECK("trusted file bytes", bad < 0, "byte %ld is %u, want %u", bad, all[bad], pattern_byte(bad));
    long off = tsize > 70000 ? 70000 : tsize / 2;
    CHECK_EQ("pread64 the trusted file", pread(tfd, all, 3000, off), tsize - off < 3000 ? tsize - off : 3000);
    bad = pattern_mismatch(all, 3000, off);
    CHECK("pread64 trusted bytes", bad < 0, "byte %ld after %ld differs", bad, off);
    CHECK_EQ("lseek the trusted file", lseek(tfd, 65530, SEEK_SET), 65530);
    CHECK_EQ("read across a 64K boundary", read(tfd, all, 20), 20);
    bad = pattern_mismatch(all, 20, 65530);
    CHECK("bytes across a 64K boundary", bad < 0, "byte %ld differs", bad);
    free(all);
    CHECK_ERR("write to a read-only fd of a trusted file", write(tfd, "x", 1), EBADF);
    if (check_native) {
        skip("writing to a trusted file fails");
        skip("opening a denied file fails");
    } else {
        CHECK_ERR("open a trusted file O_WRONLY", syscall(SYS_open, trusted, O_WRONLY), EACCES);
        CHECK_ERR("open a trusted file O_RDWR", syscall(SYS_openat, AT_FDCWD, trusted, O_RDWR), EACCES);
        CHECK_ERR("open a denied file", syscall(SYS_open, denied, O_RDONLY), EACCES);
    }
    close(tfd);

    /* clean up (and check unlink/rmdir) */
    close(fd);
    close(dfd);
    CHECK_EQ("unlink", unlink(in_dir("link")), 0);
    CHECK_EQ("unlink", unlink(in_dir("a.txt")), 0);
    CHECK_ERR("stat after unlink", syscall(SYS_stat, in_dir("a.txt"), &st), ENOENT);
    CHECK_EQ("rmdir", rmdir(in_dir("sub")), 0);
    return check_done();
}
