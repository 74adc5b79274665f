/*
 * worker - one pre-forked worker process: one thread, one epoll loop holding
 * libmicrohttpd (external epoll mode, on this worker's listening socket), the
 * upgraded WebSocket connections, the master's doorbell pipe and the signal pipe.
 *
 * The master's pipe is both the doorbell (a byte means "new ring entries") and
 * the lifeline: EOF means the master is gone, and the worker exits.
 *
 * Exit status: 0 after a clean stop; 2 means "do not respawn" (a configuration
 * problem that a restart cannot fix); anything else is a crash.
 */
#ifndef PERSONAD_WORKER_H
#define PERSONAD_WORKER_H

#include <stdint.h>

#include "../shm/ring.h"
#include "../shm/snapshot.h"
#include "config.h"
#include "deadline.h"
#include "ws_frame.h"

#define WORKER_EXIT_NO_RESPAWN 2

struct MHD_Daemon;
struct ws_conn;
struct snap_ref;
struct rest_hold;

/* What an epoll registration points at. */
enum ev_kind { EV_MHD, EV_DOORBELL, EV_SIGNAL, EV_CONN };

struct ev_source {
    enum ev_kind kind;
};

struct worker_stats {
    uint64_t events_framed; /* events read from the ring and framed */
    uint64_t conns_opened;
    uint64_t conns_closed;
    uint64_t conns_lapped;  /* closed 1013: too slow or lapped */
    uint64_t ring_overruns; /* the worker itself was lapped by the ring */
    uint64_t writev_calls;
};

struct worker {
    const struct config *cfg;
    unsigned index;
    int epfd;
    int listen_fd;
    int doorbell_fd;
    struct ev_source ev_mhd, ev_doorbell, ev_signal;
    struct MHD_Daemon *mhd;
    int mhd_run_again;         /* an upgraded connection was handed back to MHD */
    struct ring *ring;         /* shared memory, not owned */
    struct snapshot *snap;     /* shared memory, not owned */
    struct snap_ref *snap_cur; /* this worker's copy of the newest snapshot, refcounted */
    struct rest_hold *rest_holds; /* REST responses reading snapshot copies (http_api.c) */
    int64_t rest_sweep_ms;        /* next deadline sweep of rest_holds */
    struct ws_window window;   /* framed events, shared by all connections */
    struct ws_conn *conns;     /* all connections (doubly linked) */
    struct ws_conn *reap;      /* connections to free after this loop pass */
    uint32_t nconns;
    struct deadline_list ping_list, pong_list, write_list, linger_list;
    int stopping;
    int64_t now_ms;           /* time of the current loop pass */
    int64_t mhd_due_ms;       /* when MHD's nearest timeout expires (INT64_MAX: none) */
    int64_t mhd_log_second;   /* rate limit of libmicrohttpd's messages: the second, */
    unsigned mhd_log_count;   /* how many were logged in it, */
    unsigned mhd_log_dropped; /* and how many were not */
    int64_t trim_due_ms;      /* malloc_trim at most once a second, after churn */
    uint64_t trim_churn;      /* conns opened + closed at the last trim */
    struct worker_stats stats;
};

/* worker_main - run worker index on listen_fd until stopped; never returns. */
_Noreturn void worker_main(const struct config *cfg, unsigned index, int listen_fd, int doorbell_fd,
                           struct ring *ring, struct snapshot *snap);

#endif
