/* AF_UNIX between processes: descriptors passed with SCM_RIGHTS (a pipe, a
 * socket) over a socketpair to a forked child, MSG_CTRUNC and
 * MSG_CMSG_CLOEXEC, and sockets bound at a path under /tmp (a tmpfs in the
 * enclave) that a child and a grandchild connect to, with getsockname /
 * getpeername / accept addresses, S_IFSOCK, EADDRINUSE, unlink and rebind,
 * datagrams, and a socket a child binds after the fork.
 *
 *   unixsock all DIR     every check; DIR is a fresh directory under /tmp
 *   unixsock tmpfd DIR   pass an fd of a file in DIR: natively it passes,
 *                        in the enclave (tmpfs) sendmsg fails EOPNOTSUPP
 */
#include "check.h"

#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static const char *dir;

static int send_fds(int sock, const int *fds, int n, const char *byte)
{
    char control[CMSG_SPACE(sizeof(int) * 8)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return (int)sendmsg(sock, &m, 0);
}

/* Receive one byte and up to `room` fds into fds[]; returns the number of
 * fds, -1 on error; *flags gets msg_flags. */
static int recv_fds(int sock, int *fds, int room, int rflags, int *flags)
{
    char control[CMSG_SPACE(sizeof(int) * 8)];
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                       .msg_controllen = CMSG_LEN(sizeof(int) * room)};
    if (recvmsg(sock, &m, rflags) != 1)
        return -1;
    *flags = m.msg_flags;
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds + n, CMSG_DATA(c), sizeof(int) * k);
            n += k;
        }
    return n;
}

/* A pipe's read end and one end of a socketpair go to a forked child over
 * a socketpair; the child reads the pipe and answers on the socket. */
static void pass_descriptors(void)
{
    int chan[2], p[2], s[2];
    CHECK_OK("socketpair for passing", socketpair(AF_UNIX, SOCK_STREAM, 0, chan));
    CHECK_OK("pipe to pass", pipe(p));
    CHECK_OK("socketpair to pass", socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    pid_t pid = CHECK_OK("fork the receiver", fork());
    if (pid == 0) {
        close(chan[0]);
        close(p[0]);
        close(p[1]);
        close(s[0]);
        close(s[1]);
        int got[8], flags = 0;
        int n = recv_fds(chan[1], got, 8, 0, &flags);
        if (n != 2)
            _exit(10);
        char buf[16] = {0};
        if (read(got[0], buf, 5) != 5 || memcmp(buf, "hello", 5) != 0)
            _exit(11);
        if (write(got[1], "world", 5) != 5)
            _exit(12);
        struct stat st;
        if (fstat(got[0], &st) != 0 || !S_ISFIFO(st.st_mode))
            _exit(13);
        if (fstat(got[1], &st) != 0 || !S_ISSOCK(st.st_mode))
            _exit(14);
        _exit(0);
    }
    close(chan[1]);
    int pass[2] = {p[0], s[1]};
    CHECK_EQ("sendmsg SCM_RIGHTS (pipe read end, socket)", send_fds(chan[0], pass, 2, "x"), 1);
    /* Ours are closed: the child's copies keep the objects alive. */
    close(p[0]);
    close(s[1]);
    CHECK_EQ("write to the passed pipe", write(p[1], "hello", 5), 5);
    char buf[16] = {0};
    CHECK_EQ("the child answers on the passed socket", read(s[0], buf, 5), 5);
    CHECK("the answer is \"world\"", memcmp(buf, "world", 5) == 0, "got %.5s", buf);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("the receiver saw a pipe and a socket", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    close(p[1]);
    close(s[0]);
    close(chan[0]);

    /* Within one process: a control buffer for one fd gets one of two,
     * with MSG_CTRUNC; MSG_CMSG_CLOEXEC marks the new fd. */
    CHECK_OK("socketpair", socketpair(AF_UNIX, SOCK_DGRAM, 0, chan));
    CHECK_OK("pipe", pipe(p));
    CHECK_EQ("send two fds", send_fds(chan[0], p, 2, "y"), 1);
    int got[8], flags = 0;
    CHECK_EQ("receive with room for one", recv_fds(chan[1], got, 1, MSG_CMSG_CLOEXEC, &flags), 1);
    CHECK("MSG_CTRUNC set", flags & MSG_CTRUNC, "msg_flags %#x", flags);
    CHECK("MSG_CMSG_CLOEXEC honoured", fcntl(got[0], F_GETFD) == FD_CLOEXEC, "F_GETFD %d", fcntl(got[0], F_GETFD));
    CHECK_EQ("the received read end reads", (write(p[1], "z", 1), read(got[0], buf, 1)), 1);
    close(got[0]);
    CHECK_EQ("send two fds again", send_fds(chan[0], p, 2, "y"), 1);
    CHECK_EQ("receive both", recv_fds(chan[1], got, 8, 0, &flags), 2);
    CHECK("no MSG_CTRUNC", !(flags & MSG_CTRUNC), "msg_flags %#x", flags);
    CHECK_EQ("without MSG_CMSG_CLOEXEC no FD_CLOEXEC", fcntl(got[0], F_GETFD), 0);
    CHECK_EQ("received fds are new numbers", got[0] != p[0] && got[1] != p[1], 1);
    CHECK_EQ("the received write end writes", write(got[1], "w", 1), 1);
    CHECK_EQ("into the same pipe", (read(p[0], buf, 1), buf[0]), 'w');
    /* No control buffer at all: the fds are dropped, MSG_CTRUNC. */
    CHECK_EQ("send two fds a third time", send_fds(chan[0], p, 2, "y"), 1);
    struct iovec iov = {.iov_base = buf, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CHECK_EQ("recvmsg without control", recvmsg(chan[1], &m, 0), 1);
    CHECK("MSG_CTRUNC without control", m.msg_flags & MSG_CTRUNC, "msg_flags %#x", m.msg_flags);
    CHECK_ERR("a closed fd cannot be passed", send_fds(chan[0], (int[]){999}, 1, "y"), EBADF);

    /* SCM_CREDENTIALS: the kernel may refuse what the enclave reports, but
     * nothing breaks. */
    int on = 1;
    setsockopt(chan[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    char control[CMSG_SPACE(sizeof(struct ucred))];
    memset(control, 0, sizeof control);
    struct ucred cr = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
    iov.iov_base = "c";
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof cr);
    memcpy(CMSG_DATA(c), &cr, sizeof cr);
    long r = sendmsg(chan[0], &m, 0);
    CHECK("SCM_CREDENTIALS sends or is refused", r == 1 || errno == EPERM || errno == EINVAL || errno == EOPNOTSUPP,
          "sendmsg %ld errno %d", r, errno);
    if (r == 1) {
        char back[CMSG_SPACE(sizeof(struct ucred))];
        iov.iov_base = buf;
        m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = back, .msg_controllen = sizeof back};
        CHECK_EQ("recvmsg with credentials", recvmsg(chan[1], &m, 0), 1);
        c = CMSG_FIRSTHDR(&m);
        CHECK("credentials arrive", c && c->cmsg_type == SCM_CREDENTIALS, "no SCM_CREDENTIALS");
    }
    close(p[0]);
    close(p[1]);
    close(got[0]);
    close(got[1]);
    close(chan[0]);
    close(chan[1]);
}

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, name);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
}

/* Connect to `name`, send `msg`, read the echo; 0 if all went well. */
static int client(const char *name, const char *msg)
{
    struct sockaddr_un a;
    socklen_t len = path_addr(&a, name);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, len) != 0)
        return 1;
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    if (getpeername(s, (struct sockaddr *)&peer, &plen) != 0 || strcmp(peer.sun_path, a.sun_path) != 0)
        return 2;
    size_t n = strlen(msg);
    if (write(s, msg, n) != (ssize_t)n)
        return 3;
    char buf[64] = {0};
    if (read(s, buf, sizeof buf) != (ssize_t)n || memcmp(buf, msg, n) != 0)
        return 4;
    close(s);
    return 0;
}

/* Accept one connection on `l` and echo what it sends. */
static void serve_one(int l, const char *what)
{
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    int c = accept(l, (struct sockaddr *)&peer, &plen);
    char name[128];
    snprintf(name, sizeof name, "accept %s", what);
    CHECK(name, c >= 0, "errno %d", errno);
    snprintf(name, sizeof name, "the peer of %s is unnamed", what);
    CHECK(name, plen == sizeof(sa_family_t), "address length %u", plen);
    char buf[64];
    ssize_t n = read(c, buf, sizeof buf);
    snprintf(name, sizeof name, "echo %s", what);
    CHECK(name, n > 0 && write(c, buf, n) == n, "read %zd", n);
    close(c);
}

static void tmp_paths(void)
{
    struct sockaddr_un a, got;
    socklen_t len = path_addr(&a, "listener");
    int l = CHECK_OK("socket", socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_OK("bind at a path under /tmp", bind(l, (struct sockaddr *)&a, len));
    CHECK_OK("listen", listen(l, 8));
    struct stat st;
    CHECK_OK("stat the socket file", stat(a.sun_path, &st));
    CHECK("it is a socket (S_IFSOCK)", S_ISSOCK(st.st_mode), "mode %o", st.st_mode);
    CHECK_ERR("open of a socket file", open(a.sun_path, O_RDONLY), ENXIO);
    socklen_t glen = sizeof got;
    CHECK_OK("getsockname", getsockname(l, (struct sockaddr *)&got, &glen));
    CHECK("getsockname reports the path", glen == len && strcmp(got.sun_path, a.sun_path) == 0, "got %s (%u)",
          got.sun_path, glen);
    int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK_ERR("a second bind at the path", bind(l2, (struct sockaddr *)&a, len), EADDRINUSE);
    close(l2);

    /* A child connects; it forks a grandchild that connects too. */
    pid_t pid = CHECK_OK("fork a client", fork());
    if (pid == 0) {
        close(l);
        int r = client("listener", "from the child");
        if (r)
            _exit(20 + r);
        pid_t g = fork();
        if (g == 0)
            _exit(client("listener", "from the grandchild") ? 31 : 0);
        int gst = 0;
        waitpid(g, &gst, 0);
        _exit(WIFEXITED(gst) ? WEXITSTATUS(gst) : 32);
    }
    serve_one(l, "the child");
    serve_one(l, "the grandchild");
    int st2 = 0;
    waitpid(pid, &st2, 0);
    CHECK("child and grandchild connected and saw the path as peer", WIFEXITED(st2) && WEXITSTATUS(st2) == 0,
          "status %#x", st2);

    /* unlink, then the path is free again. */
    close(l);
    CHECK_OK("unlink the socket file", unlink(a.sun_path));
    l = CHECK_OK("socket", socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERR("connect after unlink", connect(l, (struct sockaddr *)&a, len), ENOENT);
    CHECK_OK("bind again after unlink", bind(l, (struct sockaddr *)&a, len));
    close(l);
    CHECK_OK("unlink it again", unlink(a.sun_path));

    /* Datagrams from a child to a path. */
    len = path_addr(&a, "dgram");
    int d = CHECK_OK("datagram socket", socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_OK("bind the datagram socket", bind(d, (struct sockaddr *)&a, len));
    pid = CHECK_OK("fork a sender", fork());
    if (pid == 0) {
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un me;
        socklen_t mlen = path_addr(&me, "sender");
        if (bind(s, (struct sockaddr *)&me, mlen) != 0)
            _exit(1);
        if (sendto(s, "dgram", 5, 0, (struct sockaddr *)&a, len) != 5)
            _exit(2);
        char r[8] = {0};
        _exit(recv(s, r, sizeof r, 0) == 4 && memcmp(r, "back", 4) == 0 ? 0 : 3);
    }
    char buf[16] = {0};
    struct sockaddr_un from;
    socklen_t flen = sizeof from;
    CHECK_EQ("recvfrom the datagram", recvfrom(d, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 5);
    CHECK("its contents", memcmp(buf, "dgram", 5) == 0, "got %.5s", buf);
    CHECK("the sender's address is a path", flen > sizeof(sa_family_t) && from.sun_path[0] == '/', "length %u", flen);
    CHECK_EQ("answer to the address recvfrom gave", sendto(d, "back", 4, 0, (struct sockaddr *)&from, flen), 4);
    waitpid(pid, &st2, 0);
    CHECK("the sender got the answer", WIFEXITED(st2) && WEXITSTATUS(st2) == 0, "status %#x", st2);
    close(d);

    /* A socket a child binds after the fork is reachable from the parent. */
    int go[2];
    pipe(go);
    pid = CHECK_OK("fork a late server", fork());
    if (pid == 0) {
        close(go[0]);
        struct sockaddr_un b;
        socklen_t blen = path_addr(&b, "late");
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bind(s, (struct sockaddr *)&b, blen) != 0 || listen(s, 1) != 0)
            _exit(1);
        write(go[1], "r", 1);
        int c = accept(s, NULL, NULL);
        char b2[32];
        ssize_t n = read(c, b2, sizeof b2);
        _exit(n > 0 && write(c, b2, n) == n ? 0 : 2);
    }
    close(go[1]);
    read(go[0], buf, 1);
    close(go[0]);
    CHECK_EQ("connect to a path a child bound after the fork", client("late", "hi"), 0);
    waitpid(pid, &st2, 0);
    CHECK("the late server exited 0", WIFEXITED(st2) && WEXITSTATUS(st2) == 0, "status %#x", st2);
    l = socket(AF_UNIX, SOCK_STREAM, 0);
    len = path_addr(&a, "late");
    CHECK_ERR("its name is taken here too", bind(l, (struct sockaddr *)&a, len), EADDRINUSE);
    close(l);
}

/* An fd of a file under DIR over SCM_RIGHTS: natively fine; in the enclave
 * the file is in tmpfs, which no other process can reach. */
static void tmp_fd(void)
{
    char path[200];
    snprintf(path, sizeof path, "%s/file", dir);
    int f = CHECK_OK("create a file", open(path, O_CREAT | O_RDWR, 0600));
    int chan[2];
    CHECK_OK("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, chan));
    if (check_native)
        CHECK_EQ("pass it (natively)", send_fds(chan[0], &f, 1, "f"), 1);
    else
        CHECK_ERR("pass it (tmpfs in the enclave)", send_fds(chan[0], &f, 1, "f"), EOPNOTSUPP);
    CHECK_EQ("the socket still works", send(chan[0], "ok", 2, 0), 2);
}

int main(int argc, char **argv)
{
    check_init();
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) {
        fprintf(stderr, "usage: unixsock all|tmpfd DIR\n");
        return 2;
    }
    dir = argv[2];
    mkdir(dir, 0700);
    if (strcmp(argv[1], "all") == 0) {
        pass_descriptors();
        tmp_paths();
    } else if (strcmp(argv[1], "tmpfd") == 0) {
        tmp_fd();
    } else {
        return 2;
    }
    return check_done();
}
