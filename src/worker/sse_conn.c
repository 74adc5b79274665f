/*
 * sse_conn - see sse_conn.h.
 *
 * States are the set's (conn_set.c): OPEN -> CLOSING (a closing comment
 * queued; our side is shut down once it is sent, and the peer's EOF or the
 * 1 s linger ends it) -> DEAD.
 */
#include "build_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "common/net.h"
#include "worker/sse_conn.h"

/* Input is only drained: this much per wake-up, the rest next time. */
#define SSE_RECV_MAX_BYTES_PER_WAKEUP (16u * 1024u)

struct sse_conn {
    struct conn base; /* first: the set's part (list, deadlines, output) */
};

static struct sse_conn *
sse_of(struct conn *c)
{
    return (struct sse_conn *)(void *)c;
}

/* One line per connection event a client can cause, within the set's rate limit. */
static void
log_sse(struct sse_conn *c, enum log_level level, const char *what, const char *detail)
{
    if (!log_enabled(level) || !conn_set_log_allow(&c->base))
        return;
    char peer[64];
    net_peer_name(c->base.fd, peer, sizeof(peer));
    if (strcmp(peer, "?:0") == 0) /* reset already: the address is gone */
        snprintf(peer, sizeof(peer), "fd %d", c->base.fd);
    const char *sep = detail[0] != '\0' ? ": " : "";
    if (level == LOG_LEVEL_WARN)
        log_warnx("sse %s: %s%s%s", peer, what, sep, detail);
    else if (level == LOG_LEVEL_INFO)
        log_info("sse %s: %s%s%s", peer, what, sep, detail);
    else
        log_debug("sse %s: %s%s%s", peer, what, sep, detail);
}

/* The client's bytes mean nothing (a request after a close-delimited body
 * cannot be answered); its EOF or an error ends the stream. */
static void
sse_read(struct sse_conn *c)
{
    uint8_t buf[2048];
    for (uint32_t total = 0; total < SSE_RECV_MAX_BYTES_PER_WAKEUP;) {
        ssize_t r = read(c->base.fd, buf, sizeof(buf));
        if (r > 0) {
            total += (uint32_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            if (c->base.state == CONN_OPEN) {
                log_sse(c, LOG_LEVEL_DEBUG, r == 0 ? "client went away" : "read failed",
                        r == 0 ? "" : strerror(errno));
                stats_add(c->base.set->out.stats, STATS_SSE_DROP_PEER_GONE, 1);
            }
            conn_set_kill(&c->base);
            return;
        }
    }
    /* this wake-up's budget is spent; level-triggered EPOLLIN returns */
}

static void
sse_on_event(struct ev_handler *h, uint32_t events)
{
    struct sse_conn *c = EV_CONTAINER(h, struct sse_conn, base.ev);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        sse_read(c);
    if ((events & EPOLLOUT) && c->base.state != CONN_DEAD)
        conn_set_writable(&c->base);
}

/* --- the set's operations ---------------------------------------------------- */

static void
sse_op_close(struct conn *base, enum conn_close why, const char *reason)
{
    struct sse_conn *c = sse_of(base);
    if (base->state != CONN_OPEN)
        return;
    if (reason == NULL || reason[0] == '\0')
        reason = why == CONN_CLOSE_TOO_SLOW ? "client too slow" : "server shutting down";
    int routine = why == CONN_CLOSE_GOING_AWAY && base->set->stopping;
    stats_add(base->set->out.stats,
              why == CONN_CLOSE_TOO_SLOW ? STATS_SSE_CLOSE_TOO_SLOW : STATS_SSE_CLOSE_SHUTDOWN, 1);
    log_sse(c, routine ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, "closing", reason);
    /* A comment says why (EventSource ignores it, a person with curl reads
     * it); if it does not fit, the close goes without it. */
    char line[STREAM_CTRL_BYTES];
    int n = snprintf(line, sizeof(line), ": closing: %s\n", reason);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)stream_out_ctrl_add(&base->out, (const uint8_t *)line, (size_t)n);
    conn_set_closing(base);
}

static void
sse_op_drop(struct conn *base, enum conn_drop why, int err)
{
    struct sse_conn *c = sse_of(base);
    switch (why) {
    case CONN_DROP_LAPPED:
        log_sse(c, LOG_LEVEL_INFO, "lapped mid-event, dropped", "");
        break;
    case CONN_DROP_WRITE_FAILED:
        log_sse(c, LOG_LEVEL_INFO, "write failed", strerror(err));
        break;
    case CONN_DROP_WRITE_DEADLINE:
        log_sse(c, LOG_LEVEL_INFO, "write deadline exceeded, dropped", "");
        break;
    case CONN_DROP_EPOLL:
        log_sse(c, LOG_LEVEL_WARN, "epoll_ctl(MOD) failed, dropped", strerror(err));
        break;
    }
    conn_set_kill(base);
}

static void
sse_op_on_timer(struct conn *base, enum conn_timer which)
{
    if (which != CONN_TIMER_PING)
        return; /* never armed: SSE has no pongs */
    static const char ping[] = SSE_PING_LINE;
    /* No room: a ping is already waiting behind a stalled stream. */
    (void)stream_out_ctrl_add(&base->out, (const uint8_t *)ping, sizeof(ping) - 1);
    conn_set_arm(base, CONN_TIMER_PING, 1);
    conn_set_flush(base);
}

static void
sse_op_free(struct conn *base)
{
    free(sse_of(base));
}

static const struct conn_ops sse_ops = {
    .close = sse_op_close,
    .drop = sse_op_drop,
    .on_timer = sse_op_on_timer,
    .free = sse_op_free,
};

/* --- lifecycle -------------------------------------------------------------- */

struct sse_conn *
sse_conn_new(struct conn_set *s, int fd, uint64_t live_seq, uint64_t first_seq, int resumed,
             int resync, const void *preamble, size_t preamble_len)
{
    /* The socket is fresh and its send buffer empty: the preamble (a few
     * hundred bytes) goes out now; what it does not take is queued. */
    ssize_t r;
    do {
        r = write(fd, preamble, preamble_len);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        log_debug("sse: writing the response head failed: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    size_t sent = r > 0 ? (size_t)r : 0;
    struct sse_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        log_warnx("out of memory accepting a Server-Sent Events connection");
        return NULL;
    }
    c->base.ev.on_event = sse_on_event;
    if (conn_set_add(s, &c->base, &sse_ops, fd, STREAM_PROTO_SSE, live_seq) != 0) {
        log_warn("epoll_ctl(ADD) for a Server-Sent Events connection");
        free(c);
        close(fd);
        return NULL;
    }
    if (sent < preamble_len && stream_out_ctrl_add(&c->base.out, (const uint8_t *)preamble + sent,
                                                   preamble_len - sent) != 0) {
        log_sse(c, LOG_LEVEL_INFO, "response head does not fit, dropped", "");
        stats_add(s->out.stats, STATS_SSE_DROP_WRITE_FAILED, 1);
        conn_set_kill(&c->base);
        return NULL;
    }
    if (resumed)
        conn_set_count_resume(&c->base, resync);
    stream_out_replay_from(&c->base.out, first_seq);
    conn_set_arm(&c->base, CONN_TIMER_PING, 1);
    conn_set_start(&c->base);
    if (sent < preamble_len && c->base.state == CONN_OPEN)
        conn_set_flush(&c->base);
    return c;
}
