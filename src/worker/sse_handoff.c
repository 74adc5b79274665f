/*
 * sse_handoff - see sse_handoff.h.
 *
 * Why this and not the alternatives (measured, doc/performance.md):
 * - a suspended callback response kept in MHD costs MHD's per-connection
 *   pool and struct for the stream's whole life, and every event would be
 *   copied into MHD's buffer instead of written from the shared window;
 * - letting MHD simply close after a dup() does not work: without
 *   MHD_USE_TURBO, libmicrohttpd 0.9.75 shutdown()s a socket before closing
 *   it (connection.c, MHD_connection_mark_closed_), which ends the stream for
 *   the duplicate too, and TURBO would change every REST connection's close.
 * Suspending first matters: it is MHD's public way to take the descriptor out
 * of its epoll set (internal_suspend_connection_), so the epoll registration
 * of the real socket is gone before its descriptor number names another
 * socket, and MHD's later epoll_ctl(DEL)/shutdown/close all act on the
 * placeholder.  tests/integration/test_sse.py proves on the build host that
 * the stream survives MHD's close and that MHD's pool is freed.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "shm/stats.h"
#include "worker/http_reply.h"
#include "worker/http_request.h"
#include "worker/sse_conn.h"
#include "worker/sse_handoff.h"
#include "worker/stream_position.h"

#define SSE_RESPONSE_HEAD                                                                          \
    "HTTP/1.1 200 OK\r\n"                                                                          \
    "Content-Type: text/event-stream\r\n"                                                          \
    "Cache-Control: no-cache\r\n"                                                                  \
    "Connection: close\r\n"

/* A query parameter's value; "" for one without a value (?since), NULL if absent. */
static const char *
query_value(struct MHD_Connection *conn, const char *key)
{
    const char *v = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &len) !=
        MHD_YES)
        return NULL;
    return v != NULL ? v : "";
}

/* The response head (with the CORS headers for cors_origin, NULL: none),
 * the retry line and (resync) the resync event. */
static int
build_preamble(char *buf, size_t size, const char *cors_origin, const char *epoch, uint64_t head,
               int resync)
{
    static const char head_rest[] = SSE_RETRY_LINE "\n";
    static const char resync_fmt[] =
        "id: %s:%llu\ndata: {\"type\":\"resync\",\"data\":{\"seq\":%llu,\"epoch\":\"%s\"}}\n\n";
    int r = cors_origin != NULL ? snprintf(buf, size,
                                           SSE_RESPONSE_HEAD "Access-Control-Allow-Origin: %s\r\n"
                                                             "Vary: Origin\r\n\r\n%s",
                                           cors_origin, head_rest)
                                : snprintf(buf, size, SSE_RESPONSE_HEAD "\r\n%s", head_rest);
    if (r < 0 || (size_t)r >= size)
        return -1;
    size_t n = (size_t)r;
    if (resync) {
        r = snprintf(buf + n, size - n, resync_fmt, epoch, (unsigned long long)head,
                     (unsigned long long)head, epoch);
        if (r < 0 || (size_t)r >= size - n)
            return -1;
        n += (size_t)r;
    }
    return (int)n;
}

/* Take the socket from MHD (see the file comment).  Returns our descriptor
 * (non-blocking), or -1 with MHD still owning its socket untouched. */
static int
take_socket(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return -1;
    int mhd_fd = ci->connect_fd;
    int fd = fcntl(mhd_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        log_warn("fcntl(F_DUPFD_CLOEXEC) on an SSE socket");
        return -1;
    }
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        log_warn("socketpair for an SSE hand-off");
        close(fd);
        return -1;
    }
    MHD_suspend_connection(conn);
    int rc = dup2(sp[0], mhd_fd); /* a worker never execs: no O_CLOEXEC needed */
    int saved = errno;
    close(sp[0]);
    close(sp[1]); /* the placeholder's peer is gone: MHD reads EOF, writes fail */
    MHD_resume_connection(conn);
    if (rc < 0) {
        errno = saved;
        log_warn("dup2 for an SSE hand-off");
        close(fd);
        return -1;
    }
    if (net_set_nonblock(fd) != 0) {
        log_warn("fcntl(O_NONBLOCK) on an SSE socket");
        close(fd);
        return -2; /* MHD's descriptor is the placeholder already */
    }
    return fd;
}

enum MHD_Result
sse_handoff_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                   const char *path, const char *method)
{
    (void)path, (void)method;
    if (rq->sse_taken) {
        /* Called again after the hand-off: the socket MHD holds is the
         * placeholder.  Refusing makes MHD close it and free the pool. */
        worker_mhd_expect_refusal(w);
        return MHD_NO;
    }
    /* The position: the header wins (EventSource re-sends its URL, query
     * and all, on every reconnect); an empty one is none. */
    const char *last_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    struct stream_pos pos;
    const char *why = NULL;
    enum stream_pos_status ps =
        last_id != NULL && last_id[0] != '\0'
            ? stream_pos_from_event_id(last_id, &pos, &why)
            : stream_pos_from_query(query_value(conn, "since"), query_value(conn, "epoch"), &pos,
                                    &why);
    if (ps == STREAM_POS_BAD)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, why);
    if (w->set.nconns >= w->cfg->max_connections || w->stopping)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many connections");
    struct stream_start st;
    stream_pos_decide(ps == STREAM_POS_OK ? &pos : NULL, w->window.epoch, ring_head(w->ring),
                      stream_pos_ring_capacity(w->ring), &st);
    char preamble[1024]; /* the head with an origin of at most ~270 bytes, and a resync */
    int len = build_preamble(preamble, sizeof(preamble), rq->cors_origin, w->window.epoch,
                             st.live_seq - 1, st.resync);
    if (len < 0)
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
    int fd = take_socket(conn);
    if (fd == -1)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot take the connection");
    rq->sse_taken = 1;
    stats_add(w->own_stats, STATS_HTTP_200, 1); /* written by us, not queued in MHD */
    worker_mhd_run_again(w); /* MHD is to release its side now */
    if (fd >= 0) {
        worker_handoff_begin(w, conn); /* the connection's count goes with it */
        (void)sse_conn_new(&w->set, fd, st.live_seq, st.first_seq, ps == STREAM_POS_OK, st.resync,
                           preamble, (size_t)len); /* logs its failures */
        conn_set_adopt_end(&w->set);
    }
    return MHD_YES;
}
