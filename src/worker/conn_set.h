/*
 * conn_set - a worker's stream connections, whatever their protocol, and the
 * passes that run over all of them.
 *
 * The set holds the connection list, the list of connections to free after
 * the loop pass (reap), the handshakes not yet handed off (pending: their
 * starts are kept in the window), the ping, pong and linger deadline lists
 * (the write deadlines are in struct stream_ctx), the counters and the time of
 * the current pass.  The worker runs the passes: fan-out after new events,
 * lapped when the window or the ring loses events, the oldest cursor for the
 * window's release, expiry of deadlines, close all at shutdown, drop all at
 * exit, and reap at the end of every pass.
 *
 * A connection is a struct conn embedded first in the protocol's own struct
 * (ws_conn.c; an SSE connection would be another), with a table of operations
 * the set calls (struct conn_ops).  The set does the protocol-neutral work of
 * output (stream_out.h) and of ending a connection: a connection ends in
 * exactly one place, conn_set_kill(), and its memory is freed by
 * conn_set_reap() after the loop pass, so callbacks never free what a caller
 * still uses.
 */
#ifndef PERSONAD_CONN_SET_H
#define PERSONAD_CONN_SET_H

#include <stdint.h>

#include "common/config.h"
#include "shm/stats.h"
#include "worker/deadline.h"
#include "worker/ev.h"
#include "worker/event_window.h"
#include "common/log.h"
#include "worker/stream_out.h"

/* How long a closing connection waits for the peer's goodbye before the socket goes. */
#define CONN_CLOSE_LINGER_MS 1000

enum conn_state { CONN_OPEN, CONN_CLOSING, CONN_DEAD };

/* Why the set closes a connection (the protocol picks its code: WebSocket
 * 1001 and 1013). */
enum conn_close {
    CONN_CLOSE_GOING_AWAY, /* the server is shutting down */
    CONN_CLOSE_TOO_SLOW,   /* behind the window or over the queue cap: reconnect */
};

/* Why the set drops a connection at once, without its goodbye. */
enum conn_drop {
    CONN_DROP_LAPPED,         /* lapped in the middle of an event */
    CONN_DROP_WRITE_FAILED,   /* writev failed (err) */
    CONN_DROP_WRITE_DEADLINE, /* no output progress for --write-deadline */
    CONN_DROP_EPOLL,          /* epoll_ctl(MOD) failed (err) */
};

/* The protocol's own timers (the set runs the write deadline and the linger). */
enum conn_timer {
    CONN_TIMER_PING, /* --ping-period: the protocol's keep-alive */
    CONN_TIMER_PONG, /* --pong-wait: the peer has been silent too long */
};

struct conn;

struct conn_ops {
    /* close - begin the protocol's goodbye (a no-op unless c is open); reason
     * is for the peer and the log (NULL: the protocol's own). */
    void (*close)(struct conn *c, enum conn_close why, const char *reason);
    /* drop - log why (err: errno, for WRITE_FAILED and EPOLL) within the
     * set's rate limit, and conn_set_kill(c); the protocol may try a last
     * word that cannot block first. */
    void (*drop)(struct conn *c, enum conn_drop why, int err);
    /* on_timer - c's CONN_TIMER_PING or CONN_TIMER_PONG expired. */
    void (*on_timer)(struct conn *c, enum conn_timer which);
    /* free - free c (the set has closed its socket). */
    void (*free)(struct conn *c);
    /* reconfigure - the set's options changed (a reload): apply the ones c
     * holds a copy of (NULL: none). */
    void (*reconfigure)(struct conn *c);
};

struct conn {
    struct ev_handler ev; /* first: the epoll registration points here; the protocol's */
    const struct conn_ops *ops;
    struct conn_set *set;
    struct conn *prev, *next; /* set->conns */
    struct conn *reap_next;
    int fd;
    uint8_t state;                         /* enum conn_state */
    unsigned wr_shut : 1;                  /* our side is shut down: all our output is sent */
    unsigned peer_done : 1;                /* the peer said goodbye: drop once our output is sent */
    struct deadline_node ping_dl, pong_dl; /* pong_dl doubles as the close linger */
    struct stream_out out;
    uint8_t peer[16];     /* the client's address (shm/peers.h key), when peer_counted */
    uint8_t peer_counted; /* counted for --max-connections-per-ip: uncounted at the reap */
};

/* A handshake answered but not yet handed off (libmicrohttpd may still be
 * writing its response): the window keeps its events from start_seq on, up
 * to the queue cap.  Listed from the request until the hand-off or the end of
 * the request (ws_upgrade.c). */
struct conn_pending {
    struct conn_pending *next, **pprev; /* pprev == NULL: not listed */
    uint64_t start_seq;                 /* the live stream's first event: what the window keeps */
    uint64_t first_seq; /* the first event to send: < start_seq for a replay (from the ring) */
    uint8_t proto;      /* enum stream_proto */
    uint8_t resync;     /* the stream begins with a resync message (stream_position.h) */
};

struct conn_set_stats {
    uint64_t opened;
    uint64_t closed;
    uint64_t lapped; /* closed as too slow, or dropped lapped */
};

struct conn_set {
    const struct config *cfg;
    struct log_limit *log; /* lines a client can cause; the worker's */
    struct stream_ctx out; /* window, epoll fd, write deadlines, now_ms, writev count */
    struct conn *conns;    /* all connections (doubly linked) */
    struct conn *reap;     /* connections to free after this loop pass */
    struct conn_pending *pending;
    uint32_t nconns;
    int stopping; /* conn_set_close_all has run */
    struct deadline_list ping_list, pong_list, linger_list;
    struct conn_set_stats stats;
    uint32_t peer_slot_bytes; /* the stats slot's size (its peers table); 0: not counted */
    uint8_t adopt_peer[16];   /* the next conn_set_add's client address, if adopt_pending */
    int adopt_pending;
};

/* conn_set_init - an empty set on epfd, streaming from window, logging
 * client-caused lines through log and counting into stats (the process's own
 * slot; all the caller's, not owned). */
void conn_set_init(struct conn_set *s, const struct config *cfg, int epfd,
                   const struct event_window *window, struct log_limit *log,
                   struct stats_slot *stats, int64_t now_ms);

/* conn_set_use_peers - connections are counted per client address in the
 * peers table of the set's stats slot, of slot_bytes (shm/peers.h). */
void conn_set_use_peers(struct conn_set *s, uint32_t slot_bytes);

/* conn_set_adopt_peer - the next conn_set_add's connection (a hand-off from
 * libmicrohttpd) is counted under key: the reap uncounts it.  A hand-off
 * calls conn_set_adopt_end after its conn_set_add (or its failure). */
void conn_set_adopt_peer(struct conn_set *s, const uint8_t key[16]);

/* conn_set_adopt_end - a peer adopted but not taken by a connection is uncounted. */
void conn_set_adopt_end(struct conn_set *s);

/* conn_set_use_ring - replays older than the window read ring (not owned). */
void conn_set_use_ring(struct conn_set *s, const struct ring *ring);

/* conn_set_set_now - the time of the current loop pass. */
void conn_set_set_now(struct conn_set *s, int64_t now_ms);

/* conn_set_next_due_ms - when the nearest deadline expires (INT64_MAX: none). */
int64_t conn_set_next_due_ms(const struct conn_set *s);

/* --- one connection ---------------------------------------------------------- */

/* conn_set_add - list c (zeroed by the caller, c->ev.on_event set) with its
 * socket fd (non-blocking), streaming proto from start_seq on: socket options,
 * the epoll registration (EPOLLIN), the counters.  No timer runs yet.  -1 if
 * the registration failed (errno; c is not listed, fd not closed). */
int conn_set_add(struct conn_set *s, struct conn *c, const struct conn_ops *ops, int fd,
                 enum stream_proto proto, uint64_t start_seq);

/* conn_set_count_resume - c (just added) asked for a position: count it as
 * replayed from there, or (resync) sent a resync, under its protocol. */
void conn_set_count_resume(struct conn *c, int resync);

/* conn_set_start - send what c's stream has already missed, or close it too
 * slow if its first events left the window (or are more than the cap). */
void conn_set_start(struct conn *c);

/* conn_set_flush - write what is queued for c (one writev), and act on the
 * result: finish a close once everything is sent, close or drop c when it lost
 * an event, drop it when the socket or epoll fails. */
void conn_set_flush(struct conn *c);

/* conn_set_writable - EPOLLOUT came for c: flush. */
void conn_set_writable(struct conn *c);

/* conn_set_closing - the protocol has queued its goodbye in c's control
 * bytes: no more events or pings, the linger runs, flush. */
void conn_set_closing(struct conn *c);

/* conn_set_kill - drop c now (no more I/O); freed by conn_set_reap.  The one
 * exit point of a connection. */
void conn_set_kill(struct conn *c);

/* conn_set_arm - (re)start one of c's timers; force: even if only just armed
 * (deadline_arm_force). */
void conn_set_arm(struct conn *c, enum conn_timer which, int force);

/* conn_set_log_allow - may a line about c be logged now (the set's rate limit)? */
int conn_set_log_allow(struct conn *c);

/* --- pending handshakes --------------------------------------------------------- */

/* conn_set_pending_add - keep the window from start_seq on for p (of proto)
 * until conn_set_pending_forget(p); p->first_seq = start_seq, no resync (a
 * resumed stream sets them afterwards from its struct stream_start). */
void conn_set_pending_add(struct conn_set *s, struct conn_pending *p, enum stream_proto proto,
                          uint64_t start_seq);

/* conn_set_pending_forget - p no longer holds the window (a no-op if unlisted). */
void conn_set_pending_forget(struct conn_pending *p);

/* --- passes over the whole set ---------------------------------------------------- */

/* conn_set_fanout - new events are in the window: write them to every open
 * connection that is not blocked, and close the ones too far behind. */
void conn_set_fanout(struct conn_set *s);

/* conn_set_lapped - connections that still need events below first_kept lose
 * them: close them too slow (or drop them if mid-event), so the window may
 * free those events.  An event is delivered or the connection is closed,
 * never a gap. */
void conn_set_lapped(struct conn_set *s, uint64_t first_kept);

/* conn_set_min_cursor - the oldest seq any connection or pending handshake
 * still needs (fallback if none). */
uint64_t conn_set_min_cursor(const struct conn_set *s, uint64_t fallback);

/* conn_set_expire - run the due ping, pong, write and linger deadlines. */
void conn_set_expire(struct conn_set *s);

/* conn_set_reconfigure - the options behind s->cfg changed (a reload): the ping,
 * pong and write deadline lists take their new periods (deadline_list_set_period:
 * armed timers count from when they were armed), and every connection its copies
 * (conn_ops.reconfigure). */
void conn_set_reconfigure(struct conn_set *s);

/* conn_set_close_all - close every connection (shutdown); from now on a
 * going-away close is routine. */
void conn_set_close_all(struct conn_set *s, enum conn_close why, const char *reason);

/* conn_set_drop_all - drop every connection now and free them (worker exit). */
void conn_set_drop_all(struct conn_set *s);

/* conn_set_reap - free the connections killed during this loop pass. */
void conn_set_reap(struct conn_set *s);

#endif
