/*
 * stream_out - see stream_out.h.
 */
#include "build_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "worker/ev.h"
#include "common/log.h"
#include "worker/stream_out.h"
#include "worker/stream_position.h"

#define STREAM_IOV_MAX 64
/* Kernel send buffer per stream (Linux doubles it).  Fixed rather than
 * autotuned: a client that stops reading then pushes back on us within a
 * bounded number of bytes, so its write deadline and queue cap can act, and
 * its kernel memory stays bounded too.  Events are small; this is plenty. */
#define STREAM_SNDBUF_BYTES (64 * 1024)

void
stream_out_socket_setup(int fd)
{
    int one = 1, sndbuf = STREAM_SNDBUF_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
        log_warn("setsockopt(SO_SNDBUF)");
#if HAVE_DECL_TCP_NODELAY
    /* Latency: events go out at once; batching is our job (one writev). */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 && errno != EOPNOTSUPP)
        log_warn("setsockopt(TCP_NODELAY)");
#else
    (void)one;
#endif
}

void
stream_out_init(struct stream_out *o, enum stream_proto proto, uint64_t start_seq)
{
    memset(o, 0, sizeof(*o));
    o->proto = (uint8_t)proto;
    o->next_seq = start_seq;
    o->live_seq = start_seq;
}

void
stream_out_replay_from(struct stream_out *o, uint64_t first_seq)
{
    if (first_seq < o->live_seq)
        o->next_seq = first_seq;
}

int
stream_out_replay_pending(const struct stream_out *o)
{
    return o->replay->off < o->replay->len;
}

static void
replay_free(struct stream_out *o)
{
    free(o->replay);
    o->replay = NULL;
}

int
stream_out_ctrl_add(struct stream_out *o, const uint8_t *bytes, size_t len)
{
    if (o->ctrl_off == o->ctrl_len)
        o->ctrl_off = o->ctrl_len = 0;
    if (o->ctrl_len + len > STREAM_CTRL_BYTES && o->ctrl_off > 0) {
        memmove(o->ctrl, o->ctrl + o->ctrl_off, (size_t)(o->ctrl_len - o->ctrl_off));
        o->ctrl_len = (uint16_t)(o->ctrl_len - o->ctrl_off);
        o->ctrl_off = 0;
    }
    if (o->ctrl_len + len > STREAM_CTRL_BYTES)
        return -1;
    memcpy(o->ctrl + o->ctrl_len, bytes, len);
    o->ctrl_len = (uint16_t)(o->ctrl_len + len);
    return 0;
}

void
stream_out_skip(struct stream_out *o, uint64_t seq)
{
    o->next_seq = seq;
}

void
stream_out_stop(struct stream_out *o)
{
    deadline_disarm(&o->write_dl);
    replay_free(o);
}

/* EPOLLOUT in the mask or not; -1 (errno) if epoll_ctl failed. */
static int
out_mask(struct stream_out *o, const struct stream_ctx *x, int fd, struct ev_handler *h,
         int want_out)
{
    if (o->want_out == (unsigned)want_out)
        return 0;
    if (ev_mod(x->epfd, fd, EPOLLIN | (want_out ? EPOLLOUT : 0), h) != 0)
        return -1;
    o->want_out = (unsigned)want_out;
    return 0;
}

/* What a piece of a writev is. */
enum { PIECE_CTRL, PIECE_EVENT, PIECE_REPLAY };

/* Account for r bytes written of the pieces in iov (is_event: PIECE_EVENT a
 * piece of a window event's encoding, PIECE_REPLAY of the replay buffer,
 * PIECE_CTRL control bytes).  Returns the replayed events this finished
 * writing (a window event's is counted by next_seq). */
static uint64_t
out_advance(struct stream_out *o, const struct stream_ctx *x, const struct iovec *iov,
            const uint8_t *is_event, int n, size_t r)
{
    uint64_t replayed = 0;
    size_t left = r;
    for (int i = 0; i < n && left > 0; i++) {
        size_t take = left < iov[i].iov_len ? left : iov[i].iov_len;
        left -= take;
        if (is_event[i] == PIECE_REPLAY) {
            o->replay->off += (uint32_t)take;
            if (take > 0 && o->replay->off == o->replay->len)
                replayed += o->replay->events;
        } else if (is_event[i] == PIECE_EVENT) {
            const struct event_entry *e = event_window_get(x->window, o->next_seq);
            o->event_off += (uint32_t)take;
            if (o->event_off == e->enc[o->proto].len) {
                o->next_seq++;
                o->event_off = 0;
            }
        } else {
            o->ctrl_off = (uint16_t)(o->ctrl_off + take);
            if (o->ctrl_off == o->ctrl_len)
                o->ctrl_off = o->ctrl_len = 0;
        }
    }
    return replayed;
}

enum stream_flush
stream_out_flush(struct stream_out *o, struct stream_ctx *x, int fd, struct ev_handler *h,
                 int events)
{
    if (o->blocked)
        return STREAM_FLUSH_WAITING;
    const struct event_window *win = x->window;
    struct iovec iov[STREAM_IOV_MAX];
    uint8_t is_event[STREAM_IOV_MAX];
    int n = 0;
    size_t total = 0;
    uint64_t seq = o->next_seq;
    uint32_t len;
    if (o->event_off > 0) {
        const struct event_entry *e = event_window_get(win, seq);
        if (e == NULL)
            return STREAM_FLUSH_LOST;
        const uint8_t *bytes = event_entry_bytes(e, (enum stream_proto)o->proto, &len);
        iov[n] = (struct iovec){(void *)(bytes + o->event_off), len - o->event_off};
        is_event[n++] = PIECE_EVENT;
        total += len - o->event_off;
        seq++;
    } else if (o->replay != NULL && stream_out_replay_pending(o)) {
        /* The rest of a replay buffer: its events are counted in next_seq already. */
        iov[n] = (struct iovec){o->replay->buf + o->replay->off, o->replay->len - o->replay->off};
        is_event[n++] = PIECE_REPLAY;
        total += o->replay->len - o->replay->off;
    }
    if (o->ctrl_off < o->ctrl_len) {
        iov[n] = (struct iovec){o->ctrl + o->ctrl_off, (size_t)(o->ctrl_len - o->ctrl_off)};
        is_event[n++] = PIECE_CTRL;
        total += o->ctrl_len - o->ctrl_off;
    }
    if (events && seq < win->first_seq && seq < o->live_seq &&
        (o->replay == NULL || !stream_out_replay_pending(o))) {
        /* A replay older than the window: from the shared ring, one buffer of
         * whole events at a time, as the socket drains. */
        uint64_t end = win->first_seq < o->live_seq ? win->first_seq : o->live_seq;
        if (x->ring == NULL)
            return STREAM_FLUSH_LOST;
        if (o->replay == NULL && (o->replay = malloc(sizeof(*o->replay))) == NULL)
            return STREAM_FLUSH_LOST; /* out of memory: closed 1013, the client retries */
        if (stream_replay_fill(o->replay, x->ring, (enum stream_proto)o->proto, win->epoch, &seq,
                               end, &x->replayed_events) != STREAM_REPLAY_OK)
            return STREAM_FLUSH_LOST; /* the ring lapped the replay */
        o->next_seq = seq;            /* the buffer holds them now */
        iov[n] = (struct iovec){o->replay->buf, o->replay->len};
        is_event[n++] = PIECE_REPLAY;
        total += o->replay->len;
    }
    /* Window events, unless the replay still has ring events to read first. */
    if (events && !(seq < win->first_seq && seq < o->live_seq)) {
        while (n < STREAM_IOV_MAX && total < STREAM_SEND_MAX_BYTES_PER_WAKEUP &&
               seq < win->next_seq) {
            const struct event_entry *e = event_window_get(win, seq);
            if (e == NULL)
                return STREAM_FLUSH_LOST; /* only ever the first: the window is contiguous */
            const uint8_t *bytes = event_entry_bytes(e, (enum stream_proto)o->proto, &len);
            iov[n] = (struct iovec){(void *)bytes, len};
            is_event[n++] = PIECE_EVENT;
            total += len;
            seq++;
        }
    }
    if (n == 0) {
        deadline_disarm(&o->write_dl);
        return out_mask(o, x, fd, h, 0) != 0 ? STREAM_FLUSH_EPOLL : STREAM_FLUSH_DRAINED;
    }
    ssize_t r;
    do {
        r = writev(fd, iov, n);
    } while (r < 0 && errno == EINTR);
    x->writev_calls++;
    stats_add(x->stats, STATS_WRITES, 1);
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return STREAM_FLUSH_FAILED;
        o->blocked = 1;
        if (out_mask(o, x, fd, h, 1) != 0)
            return STREAM_FLUSH_EPOLL;
        if (!deadline_armed(&o->write_dl))
            deadline_arm_force(&x->write_list, &o->write_dl, x->now_ms);
        return STREAM_FLUSH_WAITING;
    }
    uint64_t before = o->next_seq;
    uint64_t replayed = out_advance(o, x, iov, is_event, n, (size_t)r);
    stats_add(x->stats, STATS_FRAMES_WRITTEN, o->next_seq - before + replayed);
    stats_add(x->stats, STATS_BYTES_WRITTEN, (uint64_t)r);
    if (o->replay != NULL && !stream_out_replay_pending(o) && o->next_seq >= o->live_seq)
        replay_free(o); /* the replay is over */
    if (!stream_out_has_output(o, x, events)) {
        deadline_disarm(&o->write_dl);
        return out_mask(o, x, fd, h, 0) != 0 ? STREAM_FLUSH_EPOLL : STREAM_FLUSH_DRAINED;
    }
    /* More to send: the socket is full, or this wake-up's budget is spent.
     * Either way EPOLLOUT brings us back, if the peer ever reads.  The write
     * deadline runs whenever output waits and measures time without progress:
     * this pass made some, so it restarts now (a full write can leave the
     * socket buffer full, and then EPOLLOUT may never come). */
    o->blocked = 1;
    if (out_mask(o, x, fd, h, 1) != 0)
        return STREAM_FLUSH_EPOLL;
    deadline_arm(&x->write_list, &o->write_dl, x->now_ms);
    return STREAM_FLUSH_WAITING;
}
