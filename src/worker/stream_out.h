/*
 * stream_out - the output side of one stream connection, whatever its
 * protocol: a cursor over the worker's event window, a small control buffer,
 * the queue cap, the write deadline and the EPOLLOUT mask.
 *
 * What goes out, in this order on the wire: the rest of a partially written
 * event, then the control bytes (the protocol's own: WebSocket pongs, pings
 * and close frames), then further events in the connection's protocol's
 * encoding (event_window.h).  Control bytes therefore only ever go in at event
 * boundaries.  A flush builds one iovec array of those pieces and makes one
 * writev, at most STREAM_SEND_MAX_BYTES_PER_WAKEUP; a stream that cannot take
 * everything is "blocked" until EPOLLOUT, and its write deadline runs while it
 * is (pushed back on progress).
 *
 * The caller (conn_set.c) owns the socket and decides what a result means:
 * stream_out never closes, logs or frees anything.  Everything a worker's
 * streams share (window, epoll fd, write deadline list, the pass time) is one
 * struct stream_ctx, held by the set.
 */
#ifndef PERSONAD_STREAM_OUT_H
#define PERSONAD_STREAM_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/deadline.h"
#include "worker/ev.h"
#include "shm/stats.h"
#include "worker/event_window.h"

struct ring;
struct stream_replay;

/* Largest number of queued event bytes per stream before it is "too slow". */
#define STREAM_QUEUE_MAX_BYTES (256u * 1024u)
/* Bytes written per stream per wake-up, so one fast reader cannot starve the rest. */
#define STREAM_SEND_MAX_BYTES_PER_WAKEUP (64u * 1024u)
/* The control buffer: room for a few control frames or lines. */
#define STREAM_CTRL_BYTES 256

/* What every stream of a worker shares (one per set). */
struct stream_ctx {
    int epfd;                          /* the worker's epoll set */
    const struct event_window *window; /* the worker's, not owned */
    struct deadline_list write_list;   /* the write deadlines */
    int64_t now_ms;                    /* time of the current loop pass */
    uint64_t writev_calls;
    struct stats_slot *stats; /* the worker's slot: frames and bytes written */
    const struct ring *ring;  /* the shared ring, for replays (NULL: none; not owned) */
    uint64_t replayed_events; /* events read from the ring for replays */
};

/* A stream that resumed from a position (stream_position.h) starts at
 * next_seq < live_seq: the events before live_seq are its replay.  While the
 * window holds them they are sent from it; older ones are read from the ring
 * into the replay buffer as the socket drains.  The queue cap counts only the
 * live part, from live_seq on: a replay of the whole ring to a client that
 * reads is never "too slow", one that stops reading still is once the live
 * events it has not taken pass the cap. */
struct stream_out {
    uint64_t next_seq;  /* next event to send */
    uint64_t live_seq;  /* first event of the live stream (== the start without a replay) */
    struct stream_replay *replay; /* owned, only while reading from the ring */
    uint32_t event_off; /* bytes of that event's encoding already sent */
    uint16_t ctrl_len, ctrl_off;
    uint8_t proto;         /* enum stream_proto */
    unsigned blocked : 1;  /* waiting for EPOLLOUT */
    unsigned want_out : 1; /* EPOLLOUT is in the epoll mask */
    struct deadline_node write_dl;
    uint8_t ctrl[STREAM_CTRL_BYTES];
};

/* stream_out_socket_setup - the socket options of every stream: a fixed send
 * buffer (so a reader that stops pushes back within a bounded number of bytes,
 * and its deadline and cap can act) and no Nagle delay.  Logs failures. */
void stream_out_socket_setup(int fd);

/* stream_out_init - an empty stream of proto, sending events from start_seq on. */
void stream_out_init(struct stream_out *o, enum stream_proto proto, uint64_t start_seq);

/* stream_out_replay_from - a stream resumed from a position: first_seq
 * (<= the start it was made with, which stays live_seq) is sent first. */
void stream_out_replay_from(struct stream_out *o, uint64_t first_seq);

/* stream_out_ctrl_add - queue control bytes; -1 (nothing queued) if they do not fit. */
int stream_out_ctrl_add(struct stream_out *o, const uint8_t *bytes, size_t len);

/* stream_out_ctrl_queued - control bytes not yet written. */
static inline size_t
stream_out_ctrl_queued(const struct stream_out *o)
{
    return (size_t)(o->ctrl_len - o->ctrl_off);
}

/* stream_out_mid_event - 1 if part of an event has been written, not all of it
 * (the stream cannot end cleanly before the rest). */
int stream_out_replay_pending(const struct stream_out *o);

static inline int
stream_out_mid_event(const struct stream_out *o)
{
    return o->event_off > 0 || (o->replay != NULL && stream_out_replay_pending(o));
}

/* stream_out_mid_window_event - 1 if the stream is in the middle of an event
 * of the window (whose rest the window must keep); the rest of a replay buffer
 * is the stream's own, so a stream lapped then can still finish it and close. */
static inline int
stream_out_mid_window_event(const struct stream_out *o)
{
    return o->event_off > 0;
}

/* stream_out_need_seq - the oldest seq the stream still needs from the window:
 * its cursor, or while it replays (at an event boundary) live_seq, the older
 * ones being readable from the ring. */
static inline uint64_t
stream_out_need_seq(const struct stream_out *o)
{
    return o->event_off == 0 && o->next_seq < o->live_seq ? o->live_seq : o->next_seq;
}

/* stream_out_too_slow - 1 if the stream's next event left the window, or its
 * queued event bytes exceed STREAM_QUEUE_MAX_BYTES.  (This and the next two
 * are inline: the passes call them per connection.) */
static inline int
stream_out_too_slow(const struct stream_out *o, const struct stream_ctx *x)
{
    uint64_t seq = o->next_seq;
    uint32_t off = o->event_off;
    if (seq < o->live_seq) { /* replaying: only the live part counts */
        seq = o->live_seq;
        off = 0;
    }
    return seq < x->window->first_seq ||
           event_window_pending(x->window, (enum stream_proto)o->proto, seq, off) >
               STREAM_QUEUE_MAX_BYTES;
}

/* stream_out_holds - 1 if the stream still needs window entries from *seq on:
 * with events (the stream takes further events) or in the middle of one. */
static inline int
stream_out_holds(const struct stream_out *o, int events, uint64_t *seq)
{
    if (!events && o->event_off == 0)
        return 0;
    *seq = stream_out_need_seq(o);
    return 1;
}

/* stream_out_skip - no further events (the stream is closing and must not hold
 * the window below seq); only at an event boundary. */
void stream_out_skip(struct stream_out *o, uint64_t seq);

/* stream_out_has_output - 1 if anything is queued: part of an event, control
 * bytes, or (with events) events not yet sent. */
static inline int
stream_out_has_output(const struct stream_out *o, const struct stream_ctx *x, int events)
{
    return stream_out_mid_event(o) || o->ctrl_off < o->ctrl_len ||
           (events && o->next_seq < x->window->next_seq);
}

enum stream_flush {
    STREAM_FLUSH_DRAINED, /* nothing left: write deadline disarmed, EPOLLOUT off */
    STREAM_FLUSH_WAITING, /* more to send: blocked until EPOLLOUT, write deadline runs */
    STREAM_FLUSH_LOST,    /* the next event is not in the window (nor, for a replay, in
                           * the ring): nothing written */
    STREAM_FLUSH_FAILED,  /* writev failed (errno): the stream is broken */
    STREAM_FLUSH_EPOLL,   /* epoll_ctl(MOD) failed (errno): the stream cannot wait */
};

/* stream_out_flush - one writev of what is queued on fd (further events only
 * with events), unless the stream is blocked (STREAM_FLUSH_WAITING).  h is
 * fd's handler in the epoll set, for the EPOLLOUT mask. */
enum stream_flush stream_out_flush(struct stream_out *o, struct stream_ctx *x, int fd,
                                   struct ev_handler *h, int events);

/* stream_out_writable - EPOLLOUT came: the next flush writes again. */
static inline void
stream_out_writable(struct stream_out *o)
{
    o->blocked = 0;
}

/* stream_out_stop - the stream is being dropped: no write deadline any more,
 * the replay buffer freed. */
void stream_out_stop(struct stream_out *o);

#endif
