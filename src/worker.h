/*
 * worker - one pre-forked worker process: one thread, one epoll loop holding
 * libmicrohttpd (external epoll mode, fed the sockets the worker accepts on its
 * listening socket), the upgraded WebSocket connections, the master's doorbell
 * pipe and the signal pipe.
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
#include "log.h"
#include "snap_cache.h"
#include "ws_frame.h"

#define WORKER_EXIT_NO_RESPAWN 2

struct MHD_Daemon;
struct ws_conn;

/* A /ws handshake answered 101 but not yet handed off (libmicrohttpd may
 * still be writing the 101): the window keeps its events from start_seq on.
 * Listed from the request until the upgrade callback or, when no upgrade
 * happens, the request-completed callback (ws_upgrade.c). */
struct ws_pending {
    struct ws_pending *next, **pprev; /* pprev == NULL: not listed */
    uint64_t start_seq;
};

/* What an epoll registration points at. */
enum ev_kind { EV_MHD, EV_DOORBELL, EV_SIGNAL, EV_CONN, EV_LISTEN };

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
    int listen_fd; /* the worker accepts itself and hands sockets to MHD */
    int doorbell_fd;
    struct ev_source ev_mhd, ev_doorbell, ev_signal, ev_listen;
    struct MHD_Daemon *mhd;
    int mhd_run_again;         /* an upgraded connection was handed back to MHD */
    struct ring *ring;         /* shared memory, not owned */
    struct snapshot *snap;     /* shared memory, not owned */
    struct snap_cache snap_cache; /* copies of snap and the REST responses reading them */
    struct ws_window window;   /* framed events, shared by all connections */
    struct ws_pending *pending; /* handshakes not yet handed off; their starts are kept */
    struct ws_conn *conns;     /* all connections (doubly linked) */
    struct ws_conn *reap;      /* connections to free after this loop pass */
    uint32_t nconns;
    struct deadline_list ping_list, pong_list, write_list, linger_list;
    int stopping;
    int64_t now_ms;           /* time of the current loop pass */
    int64_t mhd_due_ms;       /* when MHD's nearest timeout expires (INT64_MAX: none) */
    /* Rate limits of libmicrohttpd's messages and of per-connection lines (ws_conn.c). */
    struct log_limit mhd_log, client_log;
    int64_t trim_due_ms;      /* malloc_trim at most once a second, after churn */
    uint64_t trim_churn;      /* conns opened + closed at the last trim */
    int64_t accept_paused_until; /* 0: accepting; else when accept() is retried */
    uint64_t accept_paused_held; /* client connections open when it was paused */
    int accept_limited;          /* at a limit; logged once until the queue drains */
    struct worker_stats stats;
};

/* worker_nofile_needed - descriptors one worker may hold with cfg: its
 * --max-connections WebSockets, the HTTP connections libmicrohttpd may hold
 * beside them, and its own few (listening socket, epoll, pipes, stdio).  The
 * master needs fewer (at most two per worker, and the directory). */
uint64_t worker_nofile_needed(const struct config *cfg);

/* worker_main - run worker index on listen_fd until stopped; never returns. */
_Noreturn void worker_main(const struct config *cfg, unsigned index, int listen_fd, int doorbell_fd,
                           struct ring *ring, struct snapshot *snap);

#endif
