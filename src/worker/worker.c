/*
 * worker - see worker.h.
 *
 * One loop pass: epoll_wait (timeout = the nearest deadline or MHD timeout),
 * call the handlers of the ready sources, pull new ring entries into the event
 * window (one encoding per event per worker per protocol), fan them out to the
 * set, run MHD, expire the set's deadlines, and free the connections closed
 * during the pass.
 *
 * Coalescing (--coalesce-delay=D): a pass writes every event of its window in
 * one writev per connection, so passes are what cost (the kernel's TCP path,
 * about 12 us a writev on loopback on the development VM).  Two holds:
 * - events in quick succession: one that arrives less than D/4 after the
 *   previous pass waits until D/4 after it;
 * - a worker behind: when the previous pass ended with new events already in
 *   the ring (they came while it was writing), the next events wait until D
 *   after it.  Passes then take turns with the rest of the box instead of
 *   running back to back, and carry more frames each.
 * An event after a quiet spell goes out at once.  An event waits at most D (one
 * loop pass more), and waiting changes only when it is written: the window,
 * the cursors and the caps are the same.  doc/performance.md measures both.
 *
 * The worker accepts on its listening socket itself and hands each socket to
 * MHD (MHD_add_connection).  libmicrohttpd 0.9.75, on EMFILE, stops watching
 * its listening socket until one of its own connections closes, which upgraded
 * WebSockets (handed off in ws_upgrade.c) no longer are: a worker that once hit
 * its descriptor limit never accepted again.  Here an accept() that fails for
 * lack of descriptors or memory pauses accepting until a client connection
 * closes or WORKER_ACCEPT_PAUSE_MS has passed, whichever comes first.
 *
 * At accept, --max-connections-per-ip sums the client's address over every
 * live worker's peers table (shm/peers.h) and answers 503 itself past the
 * limit.  Each connection MHD holds has a context (struct http_conn, from
 * MHD's connection notifications) that carries its count, and its
 * --request-timeout: armed from the start and after each answer, disarmed
 * when a request head is complete or the socket is handed off; a late head's
 * socket is shut down, and MHD closes the connection (its own timeout counts
 * idle periods only, so a byte every few seconds kept it open for ever).
 */
#include "build_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#if HAVE_MALLOC_H
#include <malloc.h>
#endif

#include <microhttpd.h>

#include "common/clock.h"
#include "worker/http_router.h"
#include "common/log.h"
#include "common/net.h"
#include "shm/peers.h"
#include "common/sig.h"
#include "common/tls.h"
#include "worker/tls_front.h"
#include "worker/worker.h"

#define WORKER_EPOLL_EVENTS 256
#define WORKER_STOP_GRACE_MS 1500
/* MHD's per-connection pool, used only until the upgrade (then freed).  Above
 * 32 KiB libmicrohttpd 0.9.75 mmaps its pools (memorypool.c) instead of taking
 * them from the heap: only the pages a request touches become resident, and
 * freeing one gives them straight back, where 16 KiB heap pools freed between
 * long-lived connection structs left the heap fragmented (1.6 KB RSS per idle
 * connection after a burst of handshakes).  Also room for big cookie headers. */
#define WORKER_MHD_POOL_BYTES (40 * 1024)
#define WORKER_MHD_IDLE_TIMEOUT_S 30
/* HTTP connections MHD may hold beyond --max-connections (its connection
 * limit; upgraded ones are not counted, their MHD copy is closed at once). */
#define WORKER_HTTP_HEADROOM 1024
/* Descriptors a worker holds besides its clients: stdio, the listening
 * socket, two epoll fds, doorbell and signal pipes, and some slack. */
#define WORKER_OWN_FDS 64
#define WORKER_ACCEPT_BATCH 64      /* accept() calls per loop pass */
#define WORKER_ACCEPT_PAUSE_MS 1000 /* retry period of a paused accept */

/* Lines a second from libmicrohttpd, and from the WebSocket connections. */
#define WORKER_MHD_LOG_PER_SECOND 5
#define WORKER_CLIENT_LOG_PER_SECOND 10
/* Snapshot copies (up to --snapshot-max each) come and go with generations.
 * glibc's dynamic mmap threshold would soon put them on the heap, where a freed
 * copy stays resident (and the heap fragments as sizes drift); a fixed
 * threshold keeps each one its own mapping, returned as soon as it is freed. */
#define WORKER_MMAP_THRESHOLD_BYTES (256 * 1024)

/* What libmicrohttpd 0.9.75 logs when the access handler returns MHD_NO
 * (connection.c, call_connection_handler): an SSE hand-off does it on purpose. */
#define MHD_REFUSAL_LINE "Application reported internal error"

/* --max-connections-per-ip: the answer past the limit, written at accept
 * (libmicrohttpd never sees the connection). */
#define PEER_BUSY_BODY "{\"error\":\"too many connections from this address\"}"
#define PEER_BUSY_RETRY_S "10"
static const char peer_busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                      "Content-Type: application/json\r\n"
                                      "Retry-After: " PEER_BUSY_RETRY_S "\r\n"
                                      "Connection: close\r\n"
                                      "Content-Length: 50\r\n"
                                      "\r\n" PEER_BUSY_BODY;
_Static_assert(sizeof(PEER_BUSY_BODY) - 1 == 50, "Content-Length is the body's");

/* A libmicrohttpd connection's socket context: its --request-timeout and its
 * place in the per-address count.  Lives from MHD's STARTED notification to
 * its CLOSED one. */
struct http_conn {
    struct deadline_node head_dl; /* first: an expired node is its http_conn */
    int fd;                       /* MHD's socket (shut down when the head is late) */
    uint8_t key[16];              /* the client's address, when counted */
    uint8_t counted;              /* in this worker's peers table */
    uint8_t handed_off;           /* the socket went to the set: its count with it */
};

/* libmicrohttpd logs per request (e.g. each oversized header it refuses):
 * clients must not be able to flood the log, so at most a few lines a second. */
__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct worker *w = cls;
    char buf[256];
    va_list copy;
    va_copy(copy, ap);
    vsnprintf(buf, sizeof(buf), fmt, copy);
    va_end(copy);
    if (w->mhd_refusal_expected &&
        strncmp(buf, MHD_REFUSAL_LINE, sizeof(MHD_REFUSAL_LINE) - 1) == 0) {
        w->mhd_refusal_expected = 0;
        return;
    }
    /* Over TLS, MHD's sockets are socketpair ends (tls_front.h): 0.9.75 takes
     * them for TCP and reports each TCP_NODELAY/TCP_CORK it cannot set
     * (EOPNOTSUPP), which is no news. */
    if (w->tls &&
        (strncmp(buf, "Setting TCP_", 12) == 0 || strncmp(buf, "Failed to push the data", 23) == 0))
        return;
    if (!log_limit_allow(&w->mhd_log, clock_now_ms()))
        return;
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_warnx("libmicrohttpd: %s", buf);
}

static void
epoll_add(struct worker *w, int fd, struct ev_handler *h)
{
    if (ev_add(w->epfd, fd, EPOLLIN, h) != 0)
        fatal("worker %u: epoll_ctl(ADD)", w->index);
}

/* MHD's epoll fd is ready: MHD runs after the handlers. */
static void
on_mhd(struct ev_handler *h, uint32_t events)
{
    (void)events;
    EV_CONTAINER(h, struct worker, ev_mhd)->mhd_ready = 1;
}

/* The listening socket is ready: accept after the handlers. */
static void
on_listen(struct ev_handler *h, uint32_t events)
{
    (void)events;
    EV_CONTAINER(h, struct worker, ev_listen)->listen_ready = 1;
}

/* MHD's connection notifications: a context for each connection, whose
 * request head is timed from here (and whose count the context takes over
 * from accept_pass); at the end the count goes, unless the set has it. */
static void
on_mhd_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct worker *w = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int counted = w->adding.pending && w->adding.counted;
        w->adding.pending = 0;
        struct http_conn *hc = calloc(1, sizeof(*hc));
        *socket_context = hc;
        if (hc == NULL) { /* neither timed nor counted: the count goes at once */
            if (counted)
                (void)peers_add(w->own_stats, w->peer_slot_bytes, w->adding.key, -1);
            return;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        hc->fd = ci != NULL ? ci->connect_fd : -1;
        if (counted) {
            memcpy(hc->key, w->adding.key, sizeof(hc->key));
            hc->counted = 1;
        }
        if (hc->fd >= 0)
            deadline_arm_force(&w->head_list, &hc->head_dl, clock_now_ms());
        return;
    }
    if (code != MHD_CONNECTION_NOTIFY_CLOSED || *socket_context == NULL)
        return;
    struct http_conn *hc = *socket_context;
    deadline_disarm(&hc->head_dl);
    if (hc->counted && !hc->handed_off)
        (void)peers_add(w->own_stats, w->peer_slot_bytes, hc->key, -1);
    free(hc);
    *socket_context = NULL;
}

static struct http_conn *
http_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

void
worker_head_done(struct worker *w, struct MHD_Connection *conn)
{
    (void)w;
    struct http_conn *hc = http_conn_of(conn);
    if (hc != NULL)
        deadline_disarm(&hc->head_dl);
}

void
worker_request_done(struct worker *w, struct MHD_Connection *conn)
{
    struct http_conn *hc = http_conn_of(conn);
    if (hc != NULL && !hc->handed_off && hc->fd >= 0)
        deadline_arm_force(&w->head_list, &hc->head_dl, w->now_ms);
}

void
worker_handoff_begin(struct worker *w, struct MHD_Connection *conn)
{
    struct http_conn *hc = http_conn_of(conn);
    if (hc == NULL)
        return;
    hc->handed_off = 1;
    deadline_disarm(&hc->head_dl);
    if (hc->counted)
        conn_set_adopt_peer(&w->set, hc->key);
    hc->counted = 0;
}

/* --request-timeout: a connection whose request head is late is shut down;
 * libmicrohttpd sees the end on its socket and closes the connection. */
static void
heads_expire(struct worker *w)
{
    struct deadline_node *n;
    unsigned dropped = 0;
    while ((n = deadline_pop_expired(&w->head_list, w->now_ms)) != NULL) {
        struct http_conn *hc = (struct http_conn *)(void *)n;
        if (shutdown(hc->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_warn("worker %u: shutdown of a connection without a request head", w->index);
        dropped++;
    }
    if (dropped > 0 && log_limit_allow(&w->client_log, w->now_ms))
        log_info("worker %u: dropped %u connection(s) without a complete request head after "
                 "%lld ms (--request-timeout)",
                 w->index, dropped, (long long)w->cfg->request_timeout_ms);
}

uint32_t
worker_peer_slot_want(const struct config *cfg)
{
    if (cfg->max_connections_per_ip == 0)
        return 0;
    /* Every connection of the worker from another address, at half load. */
    uint64_t want = 2 * ((uint64_t)cfg->max_connections + WORKER_HTTP_HEADROOM);
    return want > PEERS_MAX_ENTRIES ? PEERS_MAX_ENTRIES : (uint32_t)want;
}

/* Connections from key open in the whole daemon: every live worker's count. */
static uint64_t
peers_total(const struct worker *w, const uint8_t key[16])
{
    uint64_t n = 0;
    for (uint32_t i = 1; i < w->shm_stats->nslots; i++)
        if (i == w->index + 1 || stats_slot_live(w->shm_stats, i))
            n += peers_get(stats_slot(w->shm_stats, i), w->peer_slot_bytes, key);
    return n;
}

/* Past --max-connections-per-ip: 503 and close, without MHD.  What the client
 * sent already is read first (a close with unread data would reset the
 * connection before the client reads the answer).  On a TLS port the 503
 * goes over TLS (a front without a pair does the handshake and lingers);
 * past TLS_FRONT_REFUSING_MAX such answers at once the connection is only
 * closed, so a flood from one address costs no more than that many sessions. */
static void
peer_refuse(struct worker *w, int fd, const uint8_t key[16], uint64_t open)
{
    char buf[1024];
    if (!w->tls) {
        (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        (void)send(fd, peer_busy_reply, sizeof(peer_busy_reply) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)shutdown(fd, SHUT_WR);
        (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        close(fd);
    } else if (tls_fronts_refuse(&w->fronts, fd, peer_busy_reply, sizeof(peer_busy_reply) - 1) !=
               0) {
        close(fd);
    }
    stats_add(w->own_stats, STATS_HTTP_503, 1);
    if (log_limit_allow(&w->client_log, w->now_ms)) {
        char addr[INET6_ADDRSTRLEN] = "?";
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(key, mapped, sizeof(mapped)) == 0)
            (void)inet_ntop(AF_INET, key + 12, addr, sizeof(addr));
        else
            (void)inet_ntop(AF_INET6, key, addr, sizeof(addr));
        log_info("worker %u: refused a connection from %s: %llu open from it "
                 "(--max-connections-per-ip=%u)",
                 w->index, addr, (unsigned long long)open, w->cfg->max_connections_per_ip);
    }
}

static unsigned int
mhd_connection_limit(const struct config *cfg)
{
    return cfg->max_connections + WORKER_HTTP_HEADROOM;
}

uint64_t
worker_nofile_needed(const struct config *cfg)
{
    /* Over TLS a stream holds three: the TCP socket and the front's
     * socketpair (tls_front.h). */
    uint64_t per_stream = cfg->tls_cert[0] != '\0' ? 3 : 1;
    return (uint64_t)cfg->max_connections * per_stream + WORKER_HTTP_HEADROOM + WORKER_OWN_FDS;
}

static void
worker_start_mhd(struct worker *w)
{
    /* MHD never sees the listening socket: accept_pass() hands it connections. */
    unsigned int flags =
        MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    w->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, http_router_handler, w,
        /* The logger first, or MHD logs earlier option errors its own way. */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, w, MHD_OPTION_URI_LOG_CALLBACK, http_router_uri_logger,
        NULL,
        /* MHD's default limit (FD_SETSIZE - 4) silently stops accepting at 1020. */
        MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(w->cfg),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WORKER_MHD_POOL_BYTES,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)WORKER_MHD_IDLE_TIMEOUT_S,
        MHD_OPTION_UNESCAPE_CALLBACK, http_router_keep_escaped, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        http_router_completed, w, MHD_OPTION_NOTIFY_CONNECTION, on_mhd_connection, w,
        MHD_OPTION_END);
    if (w->mhd == NULL)
        fatalx("worker %u: MHD_start_daemon failed", w->index);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL)
        fatalx("worker %u: libmicrohttpd has no epoll fd", w->index);
    w->ev_mhd.on_event = on_mhd;
    epoll_add(w, info->epoll_fd, &w->ev_mhd);
}

static unsigned int
mhd_connections(struct worker *w)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

/* Client connections holding a descriptor: upgraded ones and MHD's. */
static uint64_t
client_connections(struct worker *w)
{
    return (uint64_t)w->set.nconns + mhd_connections(w);
}

/* Stop watching the listening socket: accept() cannot succeed now (why), and
 * retrying it at once would spin.  The pending clients wait in the queue. */
static void
accept_pause(struct worker *w, const char *why)
{
    if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL) != 0)
        fatal("worker %u: epoll_ctl(DEL, listening socket)", w->index);
    w->accept_paused_until = w->now_ms + WORKER_ACCEPT_PAUSE_MS;
    w->accept_paused_held = client_connections(w);
    if (w->accept_limited)
        return; /* still the same episode: logged already */
    w->accept_limited = 1;
    struct rlimit rl;
    char limit[32] = "?";
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(limit, sizeof(limit), "%llu", (unsigned long long)rl.rlim_cur);
    log_warnx("worker %u: cannot accept: %s (%u WebSockets, %u HTTP connections, descriptor "
              "limit %s); pausing accept() until a connection closes, at most %d ms",
              w->index, why, w->set.nconns, mhd_connections(w), limit, WORKER_ACCEPT_PAUSE_MS);
}

/* After a loop pass: watch the listening socket again once the pause is over
 * or a client connection has closed (so a descriptor is free). */
static void
accept_maybe_resume(struct worker *w)
{
    if (w->accept_paused_until == 0)
        return;
    if (w->now_ms < w->accept_paused_until && client_connections(w) >= w->accept_paused_held)
        return;
    w->accept_paused_until = 0;
    epoll_add(w, w->listen_fd, &w->ev_listen);
}

/* Errors of one connection, not of the listening socket: accept(2) on Linux
 * passes pending network errors of the new socket; treat them like EAGAIN. */
static int
accept_error_is_transient(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPERM: /* a firewall rule */
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
#ifdef ENONET
    case ENONET:
#endif
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETDOWN:
    case ENETUNREACH:
        return 1;
    default:
        return 0;
    }
}

/* Accept up to WORKER_ACCEPT_BATCH connections and hand them to MHD (the
 * listening socket is level-triggered: the rest come next pass).  Returns
 * the number handed over. */
static unsigned
accept_pass(struct worker *w)
{
    unsigned limit = mhd_connection_limit(w->cfg), added = 0;
    unsigned in_mhd = mhd_connections(w);
    for (unsigned i = 0; i < WORKER_ACCEPT_BATCH; i++) {
        if (in_mhd >= limit) {
            accept_pause(w, "libmicrohttpd's connection limit reached");
            break;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        /* Plain accept(): MHD_add_connection makes the socket non-blocking, and
         * a worker never execs. */
        int fd = accept(w->listen_fd, (struct sockaddr *)&ss, &len);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (w->accept_limited)
                    log_info("worker %u: accepting again, the queue is empty", w->index);
                w->accept_limited = 0;
                break;
            }
            if (accept_error_is_transient(errno))
                continue;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM; anything else would repeat too. */
            accept_pause(w, strerror(errno));
            break;
        }
        int counted = 0;
        if (w->peer_slot_bytes != 0 &&
            net_peer_key((struct sockaddr *)&ss, (unsigned)len, w->adding.key) == 0) {
            uint64_t open = peers_total(w, w->adding.key);
            if (open >= w->cfg->max_connections_per_ip) {
                peer_refuse(w, fd, w->adding.key, open);
                continue;
            }
            counted = peers_add(w->own_stats, w->peer_slot_bytes, w->adding.key, 1) == 0;
        }
        w->adding.counted = counted;
        w->adding.pending = 1; /* the connection's context takes the count over */
        enum MHD_Result added_ok;
        const char *why = "libmicrohttpd refused a connection";
        if (w->tls) {
            /* MHD gets one end of a pair; the front runs TLS on fd (closed on failure). */
            added_ok =
                tls_fronts_add(&w->fronts, fd, (struct sockaddr *)&ss, len) == 0 ? MHD_YES : MHD_NO;
            if (added_ok != MHD_YES)
                why = strerror(errno);
        } else {
            /* MHD closes fd itself when it fails (and logs why). */
            added_ok = MHD_add_connection(w->mhd, fd, (struct sockaddr *)&ss, len);
        }
        if (w->adding.pending && counted) /* no context took it */
            (void)peers_add(w->own_stats, w->peer_slot_bytes, w->adding.key, -1);
        w->adding.pending = 0;
        if (added_ok != MHD_YES) {
            accept_pause(w, why);
            break;
        }
        in_mhd++;
        added++;
    }
    if (added == WORKER_ACCEPT_BATCH && w->accept_limited) {
        log_info("worker %u: accepting again", w->index);
        w->accept_limited = 0;
    }
    return added;
}

/* Returns 0 normally, -1 when the master is gone (EOF).  A WORKER_PING among
 * the bytes is answered once the pass's handlers have run. */
static int
drain_doorbell(struct worker *w)
{
    char buf[256];
    for (;;) {
        ssize_t r = read(w->doorbell_fd, buf, sizeof(buf));
        if (r > 0) {
            if (memchr(buf, WORKER_PING, (size_t)r) != NULL)
                w->ping_pending = 1;
            continue;
        }
        if (r == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            log_warn("worker %u: read(doorbell)", w->index);
        return 0;
    }
}

/* Encode every ring entry this worker has not seen.  Returns how many. */
static uint64_t
pull_ring(struct worker *w)
{
    uint8_t buf[RING_PAYLOAD_MAX];
    uint64_t head = ring_head(w->ring), n = 0;
    while (w->window.next_seq <= head) {
        uint64_t seq = w->window.next_seq;
        uint32_t len, type;
        enum ring_status st = ring_read(w->ring, seq, buf, &len, &type);
        if (st == RING_EMPTY)
            break;
        if (st == RING_OVERRUN) {
            w->stats.ring_overruns++;
            stats_add(w->own_stats, STATS_RING_OVERRUNS, 1);
            head = ring_head(w->ring);
            log_warnx("worker %u: lapped by the event ring at %llu; skipping to %llu", w->index,
                      (unsigned long long)seq, (unsigned long long)head + 1);
            conn_set_lapped(&w->set, head + 1);
            event_window_reset(&w->window, head + 1);
            continue;
        }
        if (w->window.next_seq - w->window.first_seq == w->window.capacity) {
            conn_set_lapped(&w->set, w->window.first_seq + 1);
            event_window_release(&w->window, w->window.first_seq + 1);
        }
        if (event_window_push(&w->window, seq, buf, len) != 0) {
            /* Out of memory: nobody may silently miss seq. */
            log_warnx("worker %u: out of memory framing event %llu", w->index,
                      (unsigned long long)seq);
            conn_set_lapped(&w->set, seq + 1);
            event_window_reset(&w->window, seq + 1);
            continue;
        }
        w->stats.events_framed++;
        n++;
    }
    stats_add(w->own_stats, STATS_EVENTS_READ, n);
    stats_set(w->own_stats, STATS_SEEN_SEQ, w->window.next_seq - 1);
    return n;
}

/* One record to the master; a full socket (a master that does not read) or
 * a master that is gone only costs this record. */
static void
report_to_master(struct worker *w, enum worker_report_kind kind)
{
    struct worker_report rep = {.kind = (uint32_t)kind, .connections = w->set.nconns};
    ssize_t r = send(w->doorbell_fd, &rep, sizeof(rep), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EPIPE && errno != ECONNRESET)
        log_warn("worker %u: send(report to the master)", w->index);
}

/* Without a backlog, events are held for this share of --coalesce-delay: at
 * the default 20 ms, the 5 ms window measured neutral at 50 events/s. */
#define COALESCE_QUICK_SHARE 4

/* New events are in the window: fan them out now, or (coalescing) note when. */
static void
fanout_owed(struct worker *w)
{
    if (w->fanout_due_ms != INT64_MAX)
        return; /* already owed: it keeps its time, the bound of the oldest event */
    int64_t delay = w->cfg->coalesce_delay_ms;
    int64_t hold = w->fanout_behind ? delay : delay / COALESCE_QUICK_SHARE;
    w->fanout_due_ms =
        hold > 0 && w->now_ms - w->fanout_last_ms < hold ? w->fanout_last_ms + hold : w->now_ms;
}

/* When the owed fan-out runs (INT64_MAX: none owed); never later than the
 * delay after the previous pass, even if a reload has just shortened it. */
static int64_t
fanout_due(const struct worker *w)
{
    int64_t cap = w->fanout_last_ms + w->cfg->coalesce_delay_ms;
    return w->fanout_due_ms < cap ? w->fanout_due_ms : cap;
}

/* Run the fan-out pass if it is owed and due. */
static void
fanout_maybe(struct worker *w)
{
    if (w->fanout_due_ms == INT64_MAX || w->now_ms < fanout_due(w))
        return;
    w->fanout_due_ms = INT64_MAX;
    w->fanout_last_ms = w->now_ms;
    stats_add(w->own_stats, STATS_FANOUT_PASSES, 1);
    conn_set_fanout(&w->set);
    w->fanout_behind = ring_head(w->ring) >= w->window.next_seq;
    if (w->fanout_behind)
        stats_add(w->own_stats, STATS_FANOUT_BEHIND, 1);
    /* O(connections), like the fan-out itself: once per batch, not per pass. */
    event_window_release(&w->window, conn_set_min_cursor(&w->set, w->window.next_seq));
}

static int
next_timeout_ms(struct worker *w)
{
    int64_t next = conn_set_next_due_ms(&w->set);
    if (w->fanout_due_ms != INT64_MAX && fanout_due(w) < next)
        next = fanout_due(w); /* a coalesced fan-out */
    /* A rate limit that suppressed lines reports them when its second ends. */
    const struct log_limit *limits[] = {&w->mhd_log, &w->client_log};
    for (size_t i = 0; i < 2; i++) {
        int64_t t = log_limit_due_ms(limits[i]);
        if (t < next)
            next = t;
    }
    if (snap_cache_next_ms(&w->snap_cache) < next)
        next = snap_cache_next_ms(&w->snap_cache);
#if HAVE_MALLOC_TRIM
    if (w->set.stats.opened + w->set.stats.closed != w->trim_churn && w->trim_due_ms < next)
        next = w->trim_due_ms; /* a trim is owed: wake up for it */
#endif
    if (w->accept_paused_until != 0 && w->accept_paused_until < next)
        next = w->accept_paused_until;
    if (deadline_next_ms(&w->head_list) < next)
        next = deadline_next_ms(&w->head_list);
    if (w->tls && tls_fronts_next_ms(&w->fronts) < next)
        next = tls_fronts_next_ms(&w->fronts); /* a handshake's deadline */
    int64_t timeout = next == INT64_MAX ? 60000 : next - clock_now_ms();
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    w->mhd_due_ms = INT64_MAX;
    if (MHD_get_timeout(w->mhd, &mhd_ms) == MHD_YES) {
        w->mhd_due_ms = clock_now_ms() + (int64_t)(mhd_ms > 60000 ? 60000 : mhd_ms);
        if ((int64_t)mhd_ms < timeout)
            timeout = (int64_t)mhd_ms;
    }
    if (timeout < 0)
        timeout = 0;
    if (timeout > 60000)
        timeout = 60000;
    return (int)timeout;
}

/* Handshakes borrow 40 KiB pools from MHD and free them at the upgrade; after
 * a burst of connections glibc keeps that heap, so idle RSS would stay at the
 * burst's peak.  Give it back, at most once a second and only after churn. */
static void
worker_trim(struct worker *w)
{
#if HAVE_MALLOC_TRIM
    uint64_t churn = w->set.stats.opened + w->set.stats.closed;
    if (churn == w->trim_churn || w->now_ms < w->trim_due_ms)
        return;
    w->trim_churn = churn;
    w->trim_due_ms = w->now_ms + 1000;
    (void)malloc_trim(0);
#else
    (void)w;
#endif
}

static void
begin_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    log_debug("worker %u stopping: %s", w->index, why);
    w->stopping = 1;
    conn_set_close_all(&w->set, CONN_CLOSE_GOING_AWAY, "server shutting down");
}

/* The master's pipe: a doorbell byte, or EOF (the master is gone). */
static void
on_doorbell(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct worker *w = EV_CONTAINER(h, struct worker, ev_doorbell);
    if (drain_doorbell(w) == 0)
        return;
    if (!w->stopping)
        log_warnx("worker %u: master is gone; stopping", w->index);
    if (ev_del(w->epfd, w->doorbell_fd) != 0)
        log_warn("worker %u: epoll_ctl(DEL, doorbell)", w->index);
    begin_stop(w, "master gone");
}

/* SIGHUP from the master, after it validated the config file: read the same file
 * and take its live options (the master logged what changed; a file that no
 * longer parses here, changed again in between, changes nothing). */
static void
worker_reload(struct worker *w)
{
    struct config next;
    char msg[CONFIG_PATH_MAX + 256];
    if (w->tls) {
        /* New handshakes get the new pair; a bad one changes nothing. */
        if (tls_serve_load(w->cfg->tls_cert, w->cfg->tls_key, msg, sizeof(msg)) != 0)
            log_warnx("worker %u: reload: TLS: %s; keeping the running certificate", w->index, msg);
        else
            log_debug("worker %u: reload: TLS: %s", w->index, msg);
    }
    if (w->cfg->config_file[0] == '\0')
        return; /* SIGHUP for the certificate or the tokens only */
    if (config_reload(w->cfg, &next, msg, sizeof(msg)) != 0) {
        log_warnx("worker %u: reload: %s; keeping its options", w->index, msg);
        return;
    }
    if (config_update(&w->cfg_own, &next, NULL, NULL) == 0)
        return;
    log_set_level((enum log_level)config_log_level(w->cfg));
    conn_set_reconfigure(&w->set);
    snap_cache_set_deadline(&w->snap_cache, w->cfg->rest_deadline_ms);
    if (http_access_set(&w->access, w->cfg->allowed_origins, w->cfg->allowed_hosts) != 0)
        log_warnx("worker %u: reload: the allowed origins or hosts do not parse; keeping the "
                  "previous lists",
                  w->index); /* config.c checked them: cannot happen */
    deadline_list_set_period(&w->head_list, w->cfg->request_timeout_ms);
    log_debug("worker %u: options reloaded", w->index);
}

/* --auth-token-file, at start and on each SIGHUP: read the file again.  A
 * file that became bad keeps the tokens read before (at start: none, so every
 * protected request is refused until a reload reads a good file). */
static void
worker_load_tokens(struct worker *w)
{
    if (!w->auth_on)
        return;
    struct auth_tokens next;
    char msg[CONFIG_PATH_MAX + 256];
    if (auth_tokens_load(&next, w->cfg->auth_token_file, msg, sizeof(msg)) != 0) {
        log_error("worker %u: --auth-token-file: %s; keeping the %zu token(s) read before",
                  w->index, msg, w->auth.n);
        return;
    }
    auth_tokens_replace(&w->auth, &next);
    log_debug("worker %u: %zu auth token(s) read", w->index, w->auth.n);
}

static void
on_signal(struct ev_handler *h, uint32_t events)
{
    (void)events;
    struct worker *w = EV_CONTAINER(h, struct worker, ev_signal);
    sig_drain();
    if (sig_take(SIGTERM) || sig_take(SIGINT))
        begin_stop(w, "signal");
    if (sig_take(SIGHUP) && !w->stopping) {
        /* The master sends SIGHUP for the config file, the certificate or the
         * tokens: each is read again here when it is in use. */
        worker_load_tokens(w);
        worker_reload(w);
    }
}

_Noreturn void
worker_main(const struct config *cfg, unsigned index, int listen_fd, int doorbell_fd,
            struct ring *ring, struct snapshot *snap, const struct stats *stats)
{
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg_own = *cfg;
    w.cfg = cfg = &w.cfg_own;
    w.shm_stats = stats;
    w.own_stats = stats_slot(stats, index + 1);
    /* The predecessor's clients are gone: their places are cleared while the
     * slot is not live yet (its pid is the predecessor's or 0), so no other
     * worker counts them once it is. */
    if (cfg->max_connections_per_ip > 0 && peers_capacity(stats->page_bytes) > 0) {
        w.peer_slot_bytes = stats->page_bytes;
        peers_clear(w.own_stats, w.peer_slot_bytes);
    }
    /* Before anything is counted: the predecessor's gauges go, its counters stay. */
    stats_slot_takeover(w.own_stats, (uint64_t)getpid(), ring_head(ring));
    deadline_list_init(&w.head_list, cfg->request_timeout_ms);
    w.index = index;
    w.listen_fd = listen_fd;
    w.doorbell_fd = doorbell_fd;
    w.ring = ring;
    w.snap = snap;
    w.now_ms = clock_now_ms();
    w.fanout_last_ms = INT64_MIN / 2; /* long ago: the first event goes at once */
    w.fanout_due_ms = INT64_MAX;
    w.tls = cfg->tls_cert[0] != '\0';
    snap_cache_init(&w.snap_cache, snap, &w.now_ms, cfg->rest_deadline_ms, index);
    if (http_access_set(&w.access, cfg->allowed_origins, cfg->allowed_hosts) != 0)
        fatalx("worker %u: bad --allowed-origins or --allowed-hosts", index); /* config.c checks */
    log_limit_init(&w.mhd_log, "libmicrohttpd", LOG_LEVEL_WARN, WORKER_MHD_LOG_PER_SECOND);
    log_limit_init(&w.client_log, "ws", LOG_LEVEL_INFO, WORKER_CLIENT_LOG_PER_SECOND);
#if HAVE_MALLOC_H && defined(M_MMAP_THRESHOLD)
    if (mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD_BYTES) != 1)
        log_debug("worker %u: mallopt(M_MMAP_THRESHOLD) not supported", index);
#endif
    if (sig_setup() != 0)
        fatal("worker %u: signal set-up", index);
    w.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w.epfd < 0)
        fatal("worker %u: epoll_create1", index);
    if (event_window_init(&w.window, cfg->ring_size, ring_head(ring) + 1) != 0)
        fatalx("worker %u: out of memory", index);
    /* The run's epoch, for the encodings that name positions (SSE ids). */
    if (event_window_set_epoch(&w.window, snapshot_epoch(snap)) != 0)
        fatalx("worker %u: bad epoch", index);
    w.auth_on = cfg->auth_token_file[0] != '\0';
    worker_load_tokens(&w);
    conn_set_init(&w.set, cfg, w.epfd, &w.window, &w.client_log, w.own_stats, w.now_ms);
    conn_set_use_ring(&w.set, ring);
    conn_set_use_peers(&w.set, w.peer_slot_bytes);
    worker_start_mhd(&w);
    if (w.tls) {
        char msg[256];
        if (tls_fronts_init(&w.fronts, w.epfd, w.mhd, &w.now_ms, &w.client_log, msg, sizeof(msg)) !=
            0) {
            log_error("worker %u: TLS: %s", index, msg);
            exit(WORKER_EXIT_NO_RESPAWN);
        }
    }
    w.ev_doorbell.on_event = on_doorbell;
    epoll_add(&w, doorbell_fd, &w.ev_doorbell);
    w.ev_signal.on_event = on_signal;
    epoll_add(&w, sig_fd(), &w.ev_signal);
    w.ev_listen.on_event = on_listen;
    epoll_add(&w, listen_fd, &w.ev_listen);
    log_debug("worker %u ready", index);
    report_to_master(&w, WORKER_REPORT_READY);

    int64_t stop_by = 0;
    struct epoll_event evs[WORKER_EPOLL_EVENTS];
    for (;;) {
        int n = epoll_wait(w.epfd, evs, WORKER_EPOLL_EVENTS, next_timeout_ms(&w));
        if (n < 0 && errno != EINTR)
            fatal("worker %u: epoll_wait", index);
        w.now_ms = clock_now_ms();
        conn_set_set_now(&w.set, w.now_ms);
        w.mhd_ready = w.listen_ready = 0;
        for (int i = 0; i < n; i++) {
            struct ev_handler *h = evs[i].data.ptr;
            h->on_event(h, evs[i].events);
        }
        /* MHD runs when its epoll fd is ready or one of its timeouts is due. */
        int run_mhd = w.mhd_ready || w.now_ms >= w.mhd_due_ms;
        /* New sockets are in MHD's epoll set now: let it read their requests. */
        if (w.listen_ready && accept_pass(&w) > 0)
            run_mhd = 1;
        if (!w.stopping && pull_ring(&w) > 0)
            fanout_owed(&w);
        if (!w.stopping)
            fanout_maybe(&w);
        if (run_mhd && MHD_run(w.mhd) != MHD_YES)
            log_warnx("worker %u: MHD_run failed", index);
        while (w.mhd_run_again) {
            w.mhd_run_again = 0;
            (void)MHD_run(w.mhd);
        }
        w.mhd_refusal_expected = 0; /* only ever the line right after the refusal */
        conn_set_expire(&w.set);
        heads_expire(&w);
        snap_cache_expire(&w.snap_cache);
        conn_set_reap(&w.set);
        if (w.tls) {
            tls_fronts_expire(&w.fronts);
            tls_fronts_reap(&w.fronts);
        }
        if (w.ping_pending) {
            w.ping_pending = 0;
            report_to_master(&w, WORKER_REPORT_PONG);
        }
        log_limit_flush(&w.mhd_log, w.now_ms);
        log_limit_flush(&w.client_log, w.now_ms);
        accept_maybe_resume(&w);
        worker_trim(&w);
        if (w.stopping) {
            if (stop_by == 0)
                stop_by = w.now_ms + WORKER_STOP_GRACE_MS;
            if (w.set.nconns == 0 || w.now_ms >= stop_by)
                break;
        }
    }
    /* Whatever is left after the grace period goes now. */
    conn_set_drop_all(&w.set);
    if (w.tls)
        tls_fronts_free(&w.fronts);
    MHD_stop_daemon(w.mhd);
    tls_serve_free();
    log_limit_flush(&w.mhd_log, INT64_MAX); /* report what is still owed */
    log_limit_flush(&w.client_log, INT64_MAX);
    snap_cache_release(&w.snap_cache);
    event_window_free(&w.window);
    auth_tokens_free(&w.auth);
    http_static_plain_free(&w.static_plain);
    log_debug("worker %u exiting", index);
    exit(0);
}
