/*
 * net - see net.h.
 */
/* SO_REUSEPORT is outside POSIX: glibc shows it only with _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/net.h"

int
net_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
net_set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -1;
    return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int
bind_one(const struct addrinfo *ai, int reuseport, int do_listen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
#if HAVE_DECL_SO_REUSEPORT
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
#else
    (void)reuseport;
#endif
    if (ai->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        goto fail;
    if (do_listen && listen(fd, NET_BACKLOG) != 0)
        goto fail;
    if (net_set_nonblock(fd) != 0 || net_set_cloexec(fd) != 0)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int
net_listen(const char *addr, uint16_t port, int *fds, int want, char *msg, size_t msg_size)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = addr[0] == '\0' ? AF_INET6 : AF_UNSPEC;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    const char *shown = addr[0] == '\0' ? "*" : addr;
    int rc = getaddrinfo(addr[0] == '\0' ? NULL : addr, portstr, &hints, &res);
    if (rc != 0 && addr[0] == '\0') {
        hints.ai_family = AF_INET; /* no IPv6 on this host */
        rc = getaddrinfo(NULL, portstr, &hints, &res);
    }
    if (rc != 0) {
        snprintf(msg, msg_size, "cannot resolve listen address %s: %s", shown, gai_strerror(rc));
        return -1;
    }
    /* Probe without SO_REUSEPORT first: it fails with EADDRINUSE if anything,
     * including another personad, already holds the port. */
    int probe = bind_one(res, 0, 0);
    if (probe < 0 && addr[0] == '\0' && errno == EAFNOSUPPORT) {
        freeaddrinfo(res);
        hints.ai_family = AF_INET;
        if ((rc = getaddrinfo(NULL, portstr, &hints, &res)) != 0) {
            snprintf(msg, msg_size, "cannot resolve listen address: %s", gai_strerror(rc));
            return -1;
        }
        probe = bind_one(res, 0, 0);
    }
    if (probe < 0) {
        snprintf(msg, msg_size, "cannot listen on %s:%u: %s%s", shown, (unsigned)port,
                 strerror(errno), errno == EADDRINUSE ? " (is another server running?)" : "");
        freeaddrinfo(res);
        return -1;
    }
    close(probe);
    int n = 0;
#if HAVE_DECL_SO_REUSEPORT
    for (; n < want; n++) {
        fds[n] = bind_one(res, 1, 1);
        if (fds[n] < 0)
            break;
    }
#endif
    if (n == 0) {
        fds[0] = bind_one(res, 0, 1);
        if (fds[0] >= 0)
            n = 1;
    }
    if (n == 0) {
        snprintf(msg, msg_size, "cannot listen on %s:%u: %s", shown, (unsigned)port,
                 strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return n;
}

int
net_unlisten(int *fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(*fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    int reuseport = 0;
#if HAVE_DECL_SO_REUSEPORT
    socklen_t optlen = sizeof(reuseport);
    if (getsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &optlen) != 0)
        reuseport = 0;
#endif
    struct addrinfo ai;
    memset(&ai, 0, sizeof(ai));
    ai.ai_family = ss.ss_family;
    ai.ai_socktype = SOCK_STREAM;
    ai.ai_addr = (struct sockaddr *)&ss;
    ai.ai_addrlen = len;
    if (reuseport) {
        /* Bound beside the old socket first: the port is never free. */
        int fresh = bind_one(&ai, 1, 0);
        if (fresh < 0)
            return -1;
        close(*fd);
        *fd = fresh;
        return 0;
    }
    close(*fd);
    *fd = bind_one(&ai, 0, 0);
    return *fd < 0 ? -1 : 0;
}

int
net_relisten(int fd)
{
    return listen(fd, NET_BACKLOG);
}

void
net_peer_name(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
            port = ntohs(s->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
            port = ntohs(s->sin6_port);
        }
    }
    snprintf(buf, size, "%s:%u", host, port);
}

static uint64_t
rlim_u64(rlim_t v)
{
    return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

int
net_raise_nofile(uint64_t want, uint64_t *soft, uint64_t *hard)
{
    struct rlimit rl;
    *soft = *hard = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    *soft = rlim_u64(rl.rlim_cur);
    *hard = rlim_u64(rl.rlim_max);
    if (*soft >= want)
        return 0;
    /* Fits rlim_t: either want (at most about a million) or the hard limit. */
    rl.rlim_cur = want < *hard ? (rlim_t)want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    *soft = rlim_u64(rl.rlim_cur);
    return 0;
}

int
net_peer_key(const struct sockaddr *sa, unsigned len, uint8_t key[16])
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(key, &in6->sin6_addr, 16);
        return 0;
    }
    return -1;
}
