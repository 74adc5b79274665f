/*
 * notify - see notify.h.
 *
 * A socket per message, as sd_notify does: messages are rare (start, reload,
 * stop, a status change at most once a second, the watchdog), and no
 * descriptor of the supervisor's is left for the workers to inherit.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "master/notify.h"

/* Unsigned decimal without sign, spaces or trailing bytes; 0 or -1. */
static int
parse_u64(const char *s, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static void
init_socket(struct notify *n)
{
    const char *e = getenv("NOTIFY_SOCKET");
    if (e == NULL || e[0] == '\0')
        return;
    size_t len = strlen(e);
    if ((e[0] != '/' && e[0] != '@') || len >= sizeof(n->addr.sun_path) ||
        (e[0] == '@' && len < 2)) {
        log_warnx("NOTIFY_SOCKET: not an absolute path or an @abstract name; ignored");
        return;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, e, len);
    if (e[0] == '@') {
        /* Abstract: a leading NUL, and exactly the name's length (no NUL after it). */
        n->addr.sun_path[0] = '\0';
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
}

static void
init_watchdog(struct notify *n)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (usec == NULL)
        return;
    uint64_t us, p;
    if (parse_u64(usec, &us) != 0 || us == 0) {
        log_warnx("WATCHDOG_USEC: not a positive number; no watchdog");
        return;
    }
    if (pid != NULL && (parse_u64(pid, &p) != 0 || p != (uint64_t)getpid())) {
        log_debug("WATCHDOG_PID is not this process: no watchdog");
        return;
    }
    n->watchdog_ms = (int64_t)(us / 2000 > 0 ? us / 2000 : 1);
}

int
notify_init(struct notify *n, int ready_fd, char *msg, size_t msg_size)
{
    memset(n, 0, sizeof(*n));
    n->ready_fd = -1;
    init_socket(n);
    if (n->addr_len != 0)
        init_watchdog(n); /* pings need somewhere to go */
    /* Nobody forked from here on talks to the supervisor on its own. */
    (void)unsetenv("NOTIFY_SOCKET");
    (void)unsetenv("WATCHDOG_USEC");
    (void)unsetenv("WATCHDOG_PID");
    if (ready_fd > 0) {
        int fl = fcntl(ready_fd, F_GETFD);
        if (fl < 0 || fcntl(ready_fd, F_SETFD, fl | FD_CLOEXEC) != 0) {
            snprintf(msg, msg_size, "--ready-fd=%d: %s", ready_fd, strerror(errno));
            return -1;
        }
        n->ready_fd = ready_fd;
    }
    return 0;
}

int
notify_active(const struct notify *n)
{
    return n->addr_len != 0;
}

void
notify_send(struct notify *n, const char *text)
{
    if (n->addr_len == 0)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ssize_t r = -1;
    if (fd >= 0) {
        struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
        struct msghdr mh = {
            .msg_name = &n->addr, .msg_namelen = n->addr_len, .msg_iov = &iov, .msg_iovlen = 1};
        r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        int saved = errno;
        close(fd);
        errno = saved;
    }
    if (r >= 0) {
        if (n->failing)
            log_info("NOTIFY_SOCKET: sending works again");
        n->failing = 0;
    } else if (!n->failing) {
        /* A supervisor that only waits for READY=1 (start-stop-daemon
         * --notify-await) removes its socket then: that is no problem. */
        if (errno == ENOENT || errno == ECONNREFUSED)
            log_info("NOTIFY_SOCKET: cannot send, nobody listens (%s); further failures not "
                     "logged",
                     strerror(errno));
        else
            log_warn("NOTIFY_SOCKET: cannot send to the supervisor (further failures not logged)");
        n->failing = 1;
    }
}

void
notify_ready(struct notify *n, const char *status)
{
    char buf[256];
    if (status != NULL)
        snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
    else
        snprintf(buf, sizeof(buf), "READY=1");
    notify_send(n, buf);
    if (n->ready_fd < 0)
        return;
    ssize_t w;
    do
        w = write(n->ready_fd, "\n", 1);
    while (w < 0 && errno == EINTR);
    if (w != 1)
        log_warn("--ready-fd=%d: write", n->ready_fd);
    if (close(n->ready_fd) != 0)
        log_warn("--ready-fd=%d: close", n->ready_fd);
    n->ready_fd = -1;
}

void
notify_reloading(struct notify *n)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        notify_send(n, "RELOADING=1");
        return;
    }
    char buf[96];
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    notify_send(n, buf);
}

void
notify_child(struct notify *n)
{
    if (n->ready_fd >= 0)
        close(n->ready_fd);
    n->ready_fd = -1;
}
