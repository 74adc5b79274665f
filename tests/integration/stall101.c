/*
 * stall101 - an LD_PRELOAD shim for the integration tests (built by make check
 * only, never installed).  It makes the daemon's first attempts to send one
 * particular "HTTP/1.1 101" response fail with EAGAIN, as a full socket buffer
 * (a client that does not read, a slow link) would, so a test can publish
 * events while that WebSocket handshake is still in flight.
 *
 *   PERSONAD_STALL_101_ACCEPT  only a 101 whose bytes contain this string (the
 *                              Sec-WebSocket-Accept of the test's key) is held
 *                              back; unset, the shim changes nothing
 *   PERSONAD_STALL_101_MS      how long, from the first attempt (default 500)
 *
 * libmicrohttpd 0.9.75 sends a header-only response with send() (mhd_send.c,
 * MHD_send_data_); sendmsg() and writev() are covered too.  Each attempt held
 * back and the release are noted on stderr ("stall101: ..."), which the tests
 * wait for.  The workers are single-threaded, so the small table needs no lock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define STALL_SLOTS 16

struct stall {
    int fd;
    long long since_ms; /* 0: slot free */
};

static struct stall stalls[STALL_SLOTS];

ssize_t send(int fd, const void *buf, size_t len, int flags);
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t writev(int fd, const struct iovec *iov, int iovcnt);

static long long
now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
note(const char *what, int fd, long long ms)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "stall101: %s the 101 on fd %d (%lld ms)\n", what, fd, ms);
    if (n > 0 && write(2, line, (size_t)n) < 0)
        return;
}

/* 1 if this write must fail with EAGAIN. */
static int
must_stall(int fd, const void *buf, size_t len)
{
    static const char prefix[] = "HTTP/1.1 101";
    const char *accept = getenv("PERSONAD_STALL_101_ACCEPT");
    if (accept == NULL || accept[0] == '\0' || len < sizeof(prefix) - 1 ||
        memcmp(buf, prefix, sizeof(prefix) - 1) != 0 ||
        memmem(buf, len, accept, strlen(accept)) == NULL)
        return 0;
    const char *ms_env = getenv("PERSONAD_STALL_101_MS");
    long long hold = ms_env != NULL ? atoll(ms_env) : 500, now = now_ms();
    struct stall *s = NULL, *free_slot = NULL;
    for (int i = 0; i < STALL_SLOTS; i++) {
        if (stalls[i].since_ms != 0 && stalls[i].fd == fd)
            s = &stalls[i];
        else if (stalls[i].since_ms == 0 && free_slot == NULL)
            free_slot = &stalls[i];
    }
    if (s == NULL) {
        if (free_slot == NULL)
            return 0;
        s = free_slot;
        s->fd = fd;
        s->since_ms = now;
        note("holding back", fd, hold);
        return 1;
    }
    if (now - s->since_ms < hold)
        return 1;
    note("releasing", fd, now - s->since_ms);
    s->since_ms = 0;
    return 0;
}

ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, const void *, size_t, int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "send");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (must_stall(fd, buf, len)) {
        errno = EAGAIN;
        return -1;
    }
    return real(fd, buf, len, flags);
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static ssize_t (*real)(int, const struct msghdr *, int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "sendmsg");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (msg->msg_iovlen > 0 && must_stall(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len)) {
        errno = EAGAIN;
        return -1;
    }
    return real(fd, msg, flags);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "writev");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (iovcnt > 0 && must_stall(fd, iov[0].iov_base, iov[0].iov_len)) {
        errno = EAGAIN;
        return -1;
    }
    return real(fd, iov, iovcnt);
}
