/*
 * conn_set - see conn_set.h.
 *
 * States: OPEN -> CLOSING (the protocol's goodbye queued, or the peer's being
 * answered) -> DEAD (on the reap list; freed after the loop pass).  Only an
 * open connection takes further events; a closing one still sends the rest
 * of an event it is in the middle of, then its control bytes, then shuts its
 * side down.
 */
#include "build_config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/conn_set.h"
#include "shm/peers.h"

#define CONN_OF(node, field) ((struct conn *)(void *)((char *)(node)-offsetof(struct conn, field)))

void
conn_set_init(struct conn_set *s, const struct config *cfg, int epfd,
              const struct event_window *window, struct log_limit *log, struct stats_slot *stats,
              int64_t now_ms)
{
    *s = (struct conn_set){.cfg = cfg, .log = log};
    s->out.stats = stats;
    s->out.epfd = epfd;
    s->out.window = window;
    s->out.now_ms = now_ms;
    deadline_list_init(&s->ping_list, cfg->ping_period_ms);
    deadline_list_init(&s->pong_list, cfg->pong_wait_ms);
    deadline_list_init(&s->out.write_list, cfg->write_deadline_ms);
    deadline_list_init(&s->linger_list, CONN_CLOSE_LINGER_MS);
}

void
conn_set_use_peers(struct conn_set *s, uint32_t slot_bytes)
{
    s->peer_slot_bytes = slot_bytes;
}

void
conn_set_adopt_peer(struct conn_set *s, const uint8_t key[16])
{
    memcpy(s->adopt_peer, key, sizeof(s->adopt_peer));
    s->adopt_pending = 1;
}

void
conn_set_adopt_end(struct conn_set *s)
{
    if (s->adopt_pending)
        (void)peers_add(s->out.stats, s->peer_slot_bytes, s->adopt_peer, -1);
    s->adopt_pending = 0;
}

void
conn_set_use_ring(struct conn_set *s, const struct ring *ring)
{
    s->out.ring = ring;
}

void
conn_set_set_now(struct conn_set *s, int64_t now_ms)
{
    s->out.now_ms = now_ms;
}

int64_t
conn_set_next_due_ms(const struct conn_set *s)
{
    const struct deadline_list *lists[] = {&s->ping_list, &s->pong_list, &s->out.write_list,
                                           &s->linger_list};
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        int64_t t = deadline_next_ms(lists[i]);
        if (t < next)
            next = t;
    }
    return next;
}

/* --- one connection ---------------------------------------------------------- */

/* Each protocol's own counters (a resumed WebSocket is a WebSocket). */
struct proto_ids {
    enum stats_id open, opened, replayed, resync;
    enum stats_id drop[CONN_DROP_EPOLL + 1];
};

static const struct proto_ids ws_ids = {
    .open = STATS_WS_OPEN,
    .opened = STATS_WS_OPENED,
    .replayed = STATS_WS_RESUME_REPLAYED,
    .resync = STATS_WS_RESUME_RESYNC,
    .drop =
        {
            [CONN_DROP_LAPPED] = STATS_WS_DROP_LAPPED,
            [CONN_DROP_WRITE_FAILED] = STATS_WS_DROP_WRITE_FAILED,
            [CONN_DROP_WRITE_DEADLINE] = STATS_WS_DROP_WRITE_DEADLINE,
            [CONN_DROP_EPOLL] = STATS_WS_DROP_EPOLL,
        },
};

static const struct proto_ids sse_ids = {
    .open = STATS_SSE_OPEN,
    .opened = STATS_SSE_OPENED,
    .replayed = STATS_SSE_RESUME_REPLAYED,
    .resync = STATS_SSE_RESUME_RESYNC,
    .drop =
        {
            [CONN_DROP_LAPPED] = STATS_SSE_DROP_LAPPED,
            [CONN_DROP_WRITE_FAILED] = STATS_SSE_DROP_WRITE_FAILED,
            [CONN_DROP_WRITE_DEADLINE] = STATS_SSE_DROP_WRITE_DEADLINE,
            [CONN_DROP_EPOLL] = STATS_SSE_DROP_EPOLL,
        },
};

static const struct proto_ids *
ids_of(const struct conn *c)
{
    return c->out.proto == STREAM_PROTO_SSE ? &sse_ids : &ws_ids;
}

int
conn_set_add(struct conn_set *s, struct conn *c, const struct conn_ops *ops, int fd,
             enum stream_proto proto, uint64_t start_seq)
{
    c->ops = ops;
    c->set = s;
    c->fd = fd;
    c->state = CONN_OPEN;
    stream_out_init(&c->out, proto, start_seq);
    stream_out_socket_setup(fd);
    if (ev_add(s->out.epfd, fd, EPOLLIN, &c->ev) != 0)
        return -1;
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->stats.opened++;
    if (s->adopt_pending) {
        memcpy(c->peer, s->adopt_peer, sizeof(c->peer));
        c->peer_counted = 1;
        s->adopt_pending = 0;
    }
    stats_add(s->out.stats, ids_of(c)->opened, 1);
    stats_add(s->out.stats, ids_of(c)->open, 1);
    return 0;
}

void
conn_set_count_resume(struct conn *c, int resync)
{
    stats_add(c->set->out.stats, resync ? ids_of(c)->resync : ids_of(c)->replayed, 1);
}

void
conn_set_kill(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    struct conn_set *s = c->set;
    c->state = CONN_DEAD;
    deadline_disarm(&c->ping_dl);
    deadline_disarm(&c->pong_dl);
    stream_out_stop(&c->out);
    if (ev_del(s->out.epfd, c->fd) != 0)
        log_warn("epoll_ctl(DEL)");
    c->reap_next = s->reap;
    s->reap = c;
    s->stats.closed++;
    stats_sub(s->out.stats, ids_of(c)->open, 1);
}

/* Drop c (why, err: see conn_ops.drop), counted under why unless its close
 * was already under way (counted by the protocol under its close code). */
static void
conn_drop(struct conn *c, enum conn_drop why, int err)
{
    if (c->state == CONN_OPEN)
        stats_add(c->set->out.stats, ids_of(c)->drop[why], 1);
    c->ops->drop(c, why, err);
}

/* c needs an event the window no longer holds (the window or the ring lapped
 * it, e.g. while its handshake was in flight): close it too slow, or drop it
 * if mid-event.  An event is delivered or the connection is closed: never a
 * gap, and never the whole worker. */
static void
conn_lost_event(struct conn *c)
{
    struct conn_set *s = c->set;
    s->stats.lapped++;
    if (stream_out_mid_window_event(&c->out)) {
        conn_drop(c, CONN_DROP_LAPPED, 0);
        return;
    }
    stream_out_skip(&c->out, s->out.window->first_seq); /* nothing more is sent: it is closing */
    c->ops->close(c, CONN_CLOSE_TOO_SLOW, "events missed; reconnect and refetch");
}

/* Everything queued is written: finish a close. */
static void
conn_drained(struct conn *c)
{
    if (c->state == CONN_CLOSING && !c->wr_shut) {
        (void)shutdown(c->fd, SHUT_WR);
        c->wr_shut = 1;
        if (c->peer_done)
            conn_set_kill(c); /* both goodbyes exchanged */
    }
}

void
conn_set_flush(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    switch (stream_out_flush(&c->out, &c->set->out, c->fd, &c->ev, c->state == CONN_OPEN)) {
    case STREAM_FLUSH_DRAINED:
        conn_drained(c);
        break;
    case STREAM_FLUSH_WAITING:
        break;
    case STREAM_FLUSH_LOST:
        conn_lost_event(c);
        break;
    case STREAM_FLUSH_FAILED:
        conn_drop(c, CONN_DROP_WRITE_FAILED, errno); /* as writev left it */
        break;
    case STREAM_FLUSH_EPOLL:
        /* One connection the loop cannot watch goes; the worker and its
         * other clients carry on. */
        conn_drop(c, CONN_DROP_EPOLL, errno); /* as epoll_ctl left it */
        break;
    }
}

void
conn_set_writable(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    stream_out_writable(&c->out);
    conn_set_flush(c);
}

void
conn_set_start(struct conn *c)
{
    if (stream_out_too_slow(&c->out, &c->set->out)) {
        /* Its first events left the window while the handshake was in flight
         * (the window or the ring lapped them), or it is as far behind as
         * conn_set_fanout allows nobody to be: close it before anything. */
        conn_lost_event(c);
    } else if (stream_out_has_output(&c->out, &c->set->out, 1)) {
        conn_set_flush(c); /* events published during the handshake: send them now */
    }
}

void
conn_set_closing(struct conn *c)
{
    struct conn_set *s = c->set;
    c->state = CONN_CLOSING;
    deadline_disarm(&c->ping_dl);
    deadline_arm_force(&s->linger_list, &c->pong_dl, s->out.now_ms);
    conn_set_flush(c);
}

void
conn_set_arm(struct conn *c, enum conn_timer which, int force)
{
    struct conn_set *s = c->set;
    struct deadline_list *l = which == CONN_TIMER_PING ? &s->ping_list : &s->pong_list;
    struct deadline_node *n = which == CONN_TIMER_PING ? &c->ping_dl : &c->pong_dl;
    if (force)
        deadline_arm_force(l, n, s->out.now_ms);
    else
        deadline_arm(l, n, s->out.now_ms);
}

int
conn_set_log_allow(struct conn *c)
{
    return log_limit_allow(c->set->log, c->set->out.now_ms);
}

/* --- pending handshakes --------------------------------------------------------- */

void
conn_set_pending_add(struct conn_set *s, struct conn_pending *p, enum stream_proto proto,
                     uint64_t start_seq)
{
    p->start_seq = start_seq;
    p->first_seq = start_seq;
    p->resync = 0;
    p->proto = (uint8_t)proto;
    p->next = s->pending;
    if (p->next != NULL)
        p->next->pprev = &p->next;
    p->pprev = &s->pending;
    s->pending = p;
}

void
conn_set_pending_forget(struct conn_pending *p)
{
    if (p->pprev == NULL)
        return;
    *p->pprev = p->next;
    if (p->next != NULL)
        p->next->pprev = p->pprev;
    p->next = NULL;
    p->pprev = NULL;
}

/* --- passes over the whole set ---------------------------------------------------- */

void
conn_set_fanout(struct conn_set *s)
{
    for (struct conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != CONN_OPEN)
            continue;
        if (stream_out_too_slow(&c->out, &s->out)) {
            s->stats.lapped++;
            c->ops->close(c, CONN_CLOSE_TOO_SLOW, "client too slow; reconnect and refetch");
            continue;
        }
        conn_set_flush(c);
    }
}

void
conn_set_lapped(struct conn_set *s, uint64_t first_kept)
{
    for (struct conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state == CONN_DEAD || stream_out_need_seq(&c->out) >= first_kept)
            continue; /* a replay older than first_kept reads the ring, not the window */
        if (stream_out_mid_window_event(&c->out)) {
            s->stats.lapped++;
            conn_drop(c, CONN_DROP_LAPPED, 0);
            continue;
        }
        stream_out_skip(&c->out, first_kept); /* nothing more is sent: it is closing */
        if (c->state == CONN_OPEN) {
            s->stats.lapped++;
            c->ops->close(c, CONN_CLOSE_TOO_SLOW, "client too slow; reconnect and refetch");
        }
    }
}

uint64_t
conn_set_min_cursor(const struct conn_set *s, uint64_t fallback)
{
    uint64_t min = fallback, seq;
    for (const struct conn *c = s->conns; c != NULL; c = c->next)
        if (c->state != CONN_DEAD && stream_out_holds(&c->out, c->state == CONN_OPEN, &seq) &&
            seq < min)
            min = seq;
    /* A pending handshake keeps its events like a connection its cursor, up
     * to the same cap: further behind, it is closed at the hand-off. */
    const struct event_window *win = s->out.window;
    for (const struct conn_pending *p = s->pending; p != NULL; p = p->next)
        if (p->start_seq < min && p->start_seq >= win->first_seq &&
            event_window_pending(win, (enum stream_proto)p->proto, p->start_seq, 0) <=
                STREAM_QUEUE_MAX_BYTES)
            min = p->start_seq;
    return min;
}

void
conn_set_expire(struct conn_set *s)
{
    struct deadline_node *n;
    int64_t now = s->out.now_ms;
    while ((n = deadline_pop_expired(&s->ping_list, now)) != NULL) {
        struct conn *c = CONN_OF(n, ping_dl);
        c->ops->on_timer(c, CONN_TIMER_PING);
    }
    while ((n = deadline_pop_expired(&s->pong_list, now)) != NULL) {
        struct conn *c = CONN_OF(n, pong_dl);
        c->ops->on_timer(c, CONN_TIMER_PONG);
    }
    while ((n = deadline_pop_expired(&s->out.write_list, now)) != NULL) {
        struct conn *c = CONN_OF(n, out.write_dl);
        conn_drop(c, CONN_DROP_WRITE_DEADLINE, 0);
    }
    while ((n = deadline_pop_expired(&s->linger_list, now)) != NULL)
        conn_set_kill(CONN_OF(n, pong_dl));
}

void
conn_set_reconfigure(struct conn_set *s)
{
    deadline_list_set_period(&s->ping_list, s->cfg->ping_period_ms);
    deadline_list_set_period(&s->pong_list, s->cfg->pong_wait_ms);
    deadline_list_set_period(&s->out.write_list, s->cfg->write_deadline_ms);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        if (c->state != CONN_DEAD && c->ops->reconfigure != NULL)
            c->ops->reconfigure(c);
}

void
conn_set_close_all(struct conn_set *s, enum conn_close why, const char *reason)
{
    s->stopping = 1;
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        c->ops->close(c, why, reason);
}

void
conn_set_drop_all(struct conn_set *s)
{
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        conn_set_kill(c);
    conn_set_reap(s);
}

void
conn_set_reap(struct conn_set *s)
{
    while (s->reap != NULL) {
        struct conn *c = s->reap;
        s->reap = c->reap_next;
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        s->nconns--;
        if (c->peer_counted) /* first: once the client sees the close, its place is free */
            (void)peers_add(s->out.stats, s->peer_slot_bytes, c->peer, -1);
        close(c->fd);
        c->ops->free(c);
    }
}
