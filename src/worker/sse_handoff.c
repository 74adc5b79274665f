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
#include "worker/http_reply.h"
#include "worker/http_request.h"
#include "worker/sse_conn.h"
#include "worker/sse_handoff.h"

#define SSE_RESPONSE_HEAD                                                                          \
    "HTTP/1.1 200 OK\r\n"                                                                          \
    "Content-Type: text/event-stream\r\n"                                                          \
    "Cache-Control: no-cache\r\n"                                                                  \
    "Connection: close\r\n"                                                                        \
    "\r\n"

static int
epoch_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* 1 if [s, s+len) is an epoch. */
static int
epoch_valid(const char *s, size_t len)
{
    if (len == 0 || len > EVENT_WINDOW_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!epoch_char(s[i]))
            return 0;
    return 1;
}

/* 1 if [s, s+len) is a decimal seq (0 allowed, no sign, <= UINT64_MAX). */
static int
seq_parse(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

int
sse_position_parse(const char *last_event_id, const char *since, int since_present,
                   const char *epoch, int epoch_present, struct sse_position *pos, const char **err)
{
    memset(pos, 0, sizeof(*pos));
    if (last_event_id != NULL && last_event_id[0] != '\0') {
        const char *colon = strchr(last_event_id, ':');
        if (colon == NULL || !epoch_valid(last_event_id, (size_t)(colon - last_event_id)) ||
            !seq_parse(colon + 1, strlen(colon + 1), &pos->seq)) {
            *err = "Last-Event-ID must be EPOCH:SEQ";
            return -1;
        }
        memcpy(pos->epoch, last_event_id, (size_t)(colon - last_event_id));
        pos->given = 1;
        return 0;
    }
    if (!since_present && !epoch_present)
        return 0;
    if (!since_present || !epoch_present) {
        *err = "since and epoch go together";
        return -1;
    }
    if (since == NULL || !seq_parse(since, strlen(since), &pos->seq)) {
        *err = "since must be a decimal seq";
        return -1;
    }
    if (epoch == NULL || !epoch_valid(epoch, strlen(epoch))) {
        *err = "epoch must be 1-32 of [A-Za-z0-9_-]";
        return -1;
    }
    memcpy(pos->epoch, epoch, strlen(epoch) + 1);
    pos->given = 1;
    return 0;
}

/* A query parameter: *present, and its value (NULL if it has none). */
static const char *
query_value(struct MHD_Connection *conn, const char *key, int *present)
{
    const char *value = NULL;
    size_t len = 0;
    *present = MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value,
                                             &len) == MHD_YES;
    return value;
}

/* Where the stream starts and what it says first.  Without a position it
 * starts at the next event, like plain /ws.  A position of this run at the
 * head continues without a word.  Any other position gets a resync (the
 * head and the epoch), then the live stream from the head.
 * TO WIRE at the merge with the resume work: a position of this run still in
 * the shared ring replays N+1 ... head (stream_position's replay feeder)
 * instead of the resync; the decision and the feeder are protocol-neutral
 * there, this function is the one place that asks. */
static uint64_t
sse_start(const struct worker *w, const struct sse_position *pos, uint64_t head, int *resync)
{
    *resync = pos->given && !(strcmp(pos->epoch, w->window.epoch) == 0 && pos->seq == head);
    return head + 1;
}

/* The response head, the retry line and (resync) the resync event. */
static int
build_preamble(char *buf, size_t size, const char *epoch, uint64_t head, int resync)
{
    static const char start[] = SSE_RESPONSE_HEAD SSE_RETRY_LINE "\n";
    static const char resync_fmt[] =
        "id: %s:%llu\ndata: {\"type\":\"resync\",\"data\":{\"seq\":%llu,\"epoch\":\"%s\"}}\n\n";
    if (size < sizeof(start))
        return -1;
    memcpy(buf, start, sizeof(start)); /* with its NUL */
    size_t n = sizeof(start) - 1;
    if (resync) {
        int r = snprintf(buf + n, size - n, resync_fmt, epoch, (unsigned long long)head,
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
    int since_present, epoch_present;
    const char *since = query_value(conn, "since", &since_present);
    const char *epoch = query_value(conn, "epoch", &epoch_present);
    const char *last_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    struct sse_position pos;
    const char *err;
    if (sse_position_parse(last_id, since, since_present, epoch, epoch_present, &pos, &err) != 0)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, err);
    if (w->set.nconns >= w->cfg->max_connections || w->stopping)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many connections");
    uint64_t head = ring_head(w->ring);
    int resync;
    uint64_t start = sse_start(w, &pos, head, &resync);
    char preamble[512];
    int len = build_preamble(preamble, sizeof(preamble), w->window.epoch, head, resync);
    if (len < 0)
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
    int fd = take_socket(conn);
    if (fd == -1)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot take the connection");
    rq->sse_taken = 1;
    worker_mhd_run_again(w); /* MHD is to release its side now */
    if (fd >= 0)
        (void)sse_conn_new(&w->set, fd, start, preamble, (size_t)len); /* logs its failures */
    return MHD_YES;
}
