/*
 * worker - one pre-forked worker process: one thread, one epoll loop holding
 * libmicrohttpd (external epoll mode, fed the sockets the worker accepts on its
 * listening socket), the upgraded WebSocket connections, the master's doorbell
 * pipe and the signal pipe.  Each source in the epoll set carries its handler
 * (ev.h): the loop knows no kinds.  The connections are a struct conn_set; the
 * events they stream are the worker's struct event_window.
 *
 * The master's socket is the doorbell (a byte means "new ring entries"), the
 * lifeline (EOF means the master is gone, and the worker exits), and the way
 * back to the master (readiness, answers to its pings).
 *
 * Exit status: 0 after a clean stop; 2 means "do not respawn" (a configuration
 * problem that a restart cannot fix); anything else is a crash.
 */
#ifndef PERSONAD_WORKER_H
#define PERSONAD_WORKER_H

#include <stdint.h>

#include "shm/ring.h"
#include "shm/snapshot.h"
#include "shm/stats.h"
#include "common/auth_tokens.h"
#include "common/config.h"
#include "worker/conn_set.h"
#include "worker/ev.h"
#include "worker/event_window.h"
#include "worker/http_access.h"
#include "worker/http_static.h"
#include "common/log.h"
#include "worker/snap_cache.h"
#include "worker/tls_front.h"

#define WORKER_EXIT_NO_RESPAWN 2

/* The master's socket to a worker (one socketpair each) carries, master to
 * worker, doorbell bytes ('\0': new ring entries) and WORKER_PING; worker to
 * master, struct worker_report records: READY once the worker's loop is about
 * to run with its listening socket in the epoll set, PONG for each ping (the
 * master's watchdog and status line).  Records are small enough that a
 * non-blocking send writes all or nothing. */
#define WORKER_PING 'P'
enum worker_report_kind { WORKER_REPORT_READY = 1, WORKER_REPORT_PONG = 2 };
struct worker_report {
    uint32_t kind;        /* enum worker_report_kind */
    uint32_t connections; /* stream (WebSocket) connections open in the worker */
};

struct MHD_Daemon;

struct worker_stats {
    uint64_t events_framed; /* events read from the ring and encoded */
    uint64_t ring_overruns; /* the worker itself was lapped by the ring */
};

/* Written only by worker.c (and the modules whose state is embedded: the set
 * by conn_set.c, the snapshot cache by snap_cache.c); other modules read it,
 * or use the functions below. */
struct worker {
    const struct config *cfg; /* &cfg_own */
    struct config cfg_own;    /* the master's at fork; a reload (SIGHUP) updates it */
    unsigned index;
    int epfd;
    int listen_fd; /* the worker accepts itself and hands sockets to MHD */
    int doorbell_fd;
    struct ev_handler ev_mhd, ev_doorbell, ev_signal, ev_listen; /* the worker's sources */
    struct MHD_Daemon *mhd;
    int mhd_ready;             /* MHD's epoll fd was ready in this pass */
    int listen_ready;          /* the listening socket was ready in this pass */
    int mhd_run_again;         /* an upgraded connection was handed back to MHD */
    int mhd_refusal_expected;  /* an SSE hand-off's refusal: MHD's line about it is no news */
    struct ring *ring;         /* shared memory, not owned */
    struct snapshot *snap;     /* shared memory, not owned */
    struct snap_cache snap_cache; /* copies of snap and the REST responses reading them */
    struct http_access access;    /* --allowed-origins, --allowed-hosts, parsed */
    struct event_window window; /* encoded events, shared by all connections */
    struct conn_set set;        /* the stream connections and pending handshakes */
    int stopping;
    int tls;                  /* --tls-cert: every connection through a front */
    struct tls_fronts fronts; /* the TLS sessions (tls_front.c) */
    int ping_pending;         /* the master pinged: answer after this pass's handlers */
    int64_t now_ms;           /* time of the current loop pass */
    int64_t mhd_due_ms;       /* when MHD's nearest timeout expires (INT64_MAX: none) */
    /* Coalescing (--coalesce-delay): new events not yet fanned out wait until
     * fanout_due_ms, at most the delay after the previous pass (fanout_last_ms). */
    int64_t fanout_last_ms;
    int64_t fanout_due_ms; /* INT64_MAX: no pass owed */
    int fanout_behind;     /* the last pass ended with new events already in the ring */
    /* Rate limits of libmicrohttpd's messages and of per-connection lines (the set's). */
    struct log_limit mhd_log, client_log;
    int64_t trim_due_ms;      /* malloc_trim at most once a second, after churn */
    uint64_t trim_churn;      /* conns opened + closed at the last trim */
    int64_t accept_paused_until; /* 0: accepting; else when accept() is retried */
    uint64_t accept_paused_held; /* client connections open when it was paused */
    int accept_limited;          /* at a limit; logged once until the queue drains */
    /* --request-timeout: libmicrohttpd's connections waiting for a request head
     * (struct http_conn, their socket context), in arming order. */
    struct deadline_list head_list;
    /* The socket being handed to MHD_add_connection: its address and whether
     * it is counted (--max-connections-per-ip), for the connection's context. */
    struct {
        uint8_t key[16];
        int counted;
        int pending; /* 1 until the context takes it over */
    } adding;
    uint32_t peer_slot_bytes; /* the stats slot's size, with its peers table; 0: no limit */
    struct worker_stats stats;
    const struct stats *shm_stats; /* every process's slot (GET /metrics), not owned */
    struct stats_slot *own_stats;  /* this worker's slot: the only one it writes */
    /* --auth-token-file: auth_on, and the tokens last read (none: every
     * protected request refused until a reload reads a good file). */
    int auth_on;
    struct auth_tokens auth;
    struct http_static_plain static_plain; /* compressed dashboard: identity copies */
};

/* worker_mhd_run_again - libmicrohttpd must run once more in this pass: an
 * upgraded connection was handed back to it (ws_upgrade.c), and nothing else
 * wakes it to release that connection. */
static inline void
worker_mhd_run_again(struct worker *w)
{
    w->mhd_run_again = 1;
}

/* worker_mhd_expect_refusal - the access handler is about to refuse a
 * request on purpose (an SSE hand-off, sse_handoff.c): libmicrohttpd's
 * "Application reported internal error" line that follows is not logged. */
static inline void
worker_mhd_expect_refusal(struct worker *w)
{
    w->mhd_refusal_expected = 1;
}

/* worker_head_done - a request head of conn is complete (the access handler
 * runs): its --request-timeout no longer runs. */
void worker_head_done(struct worker *w, struct MHD_Connection *conn);

/* worker_request_done - a request of conn is answered: the next head has
 * --request-timeout to arrive (unless the socket was handed off). */
void worker_request_done(struct worker *w, struct MHD_Connection *conn);

/* worker_handoff_begin - conn's socket leaves libmicrohttpd for the set (an
 * upgrade, an SSE hand-off): the next conn_set_add takes its client address's
 * count; conn_set_adopt_end(&w->set) follows the hand-off. */
void worker_handoff_begin(struct worker *w, struct MHD_Connection *conn);

/* worker_peer_slot_want - the peers table entries one worker's stats slot needs
 * (shm/peers.h), 0 when --max-connections-per-ip is off. */
uint32_t worker_peer_slot_want(const struct config *cfg);

/* worker_nofile_needed - descriptors one worker may hold with cfg: its
 * --max-connections WebSockets, the HTTP connections libmicrohttpd may hold
 * beside them, and its own few (listening socket, epoll, pipes, stdio).  The
 * master needs fewer (at most two per worker, and the directory). */
uint64_t worker_nofile_needed(const struct config *cfg);

/* worker_main - run worker index on listen_fd until stopped, counting into
 * slot 1 + index of stats (mapped writable for that slot only); never returns. */
_Noreturn void worker_main(const struct config *cfg, unsigned index, int listen_fd, int doorbell_fd,
                           struct ring *ring, struct snapshot *snap, const struct stats *stats);

#endif
