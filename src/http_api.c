/*
 * http_api - see http_api.h.
 *
 * Snapshot bodies are served by a callback response (MHD copies blocks of the
 * worker's private copy into its send buffer: no JSON is rebuilt), through a
 * struct rest_hold that can let go of the copy at any time.  A copy stays
 * alive while it is current or while a response reads it, so slow readers
 * could pin one copy per generation; they are bounded two ways:
 *
 *  - each response has an absolute deadline, --rest-deadline per
 *    HTTP_API_DEADLINE_UNIT_BYTES of body begun, checked once a second;
 *  - at most HTTP_API_OLD_GENERATIONS_MAX generations older than the current
 *    one stay alive: when a new one is copied, the readers of the oldest are
 *    cut.
 *
 * Cutting a response drops its reference at once (the copy is freed when its
 * last reader is cut, whatever the socket does) and shuts the socket down with
 * a zero linger, so libmicrohttpd sees the hang-up in its next run, closes the
 * connection (the client gets a reset: the body is visibly incomplete) and the
 * kernel drops the queued bytes.  Should the reader callback run first, it ends
 * the response with an error.
 */
#include "build_config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../shm/snapshot.h"
#include "http_api.h"
#include "http_reply.h"
#include "http_static.h"
#include "log.h"
#include "persona.h"
#include "ws_upgrade.h"

#define CLUSTERS_PATH "/api/clusters"
/* Old generations kept per worker while responses still read them: a reader
 * that began just before a change (or three) still gets its whole, consistent
 * body, and a worker holds at most 1 + 3 copies (each up to --snapshot-max;
 * one more for a moment while it copies a new generation). */
#define HTTP_API_OLD_GENERATIONS_MAX 3
/* A response may take --rest-deadline per this many bytes of body begun: a
 * small one gets the plain deadline, a large one waits for a slow link (at
 * the default 30 s, about 70 KB/s: a 32 MiB list gets 8.5 minutes). */
#define HTTP_API_DEADLINE_UNIT_BYTES (2 * 1024 * 1024)
/* How often deadlines are checked: a response is cut at most this late. */
#define HTTP_API_SWEEP_MS 1000
/* Bytes libmicrohttpd asks the reader callback for at a time (the response's
 * own buffer, allocated with it). */
#define HTTP_API_BLOCK_BYTES (64 * 1024)

void *
http_api_uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    struct http_request *rq = calloc(1, sizeof(*rq));
    /* Called before MHD splits off the query or unescapes anything: the target
     * still ends where MHD cut the request line before the HTTP version, unless
     * it holds a raw NUL byte, which would otherwise silently shorten it. */
    if (rq != NULL && uri != NULL)
        rq->target_end = uri + strlen(uri);
    return rq; /* NULL (out of memory): the handler refuses the request */
}

void
http_api_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                   enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    if (*req_cls != NULL)
        ws_upgrade_forget(*req_cls);
    free(*req_cls);
    *req_cls = NULL;
}

/* A worker's private copy of one snapshot generation. */
struct snap_ref {
    unsigned refs; /* the worker's own reference (while current) + one per rest_hold */
    uint64_t gen;
    size_t len;
    uint8_t *blob;
    struct snap_ref *older, *newer; /* live generations; the newest is w->snap_cur */
};

/* One REST response that reads a snapshot copy; libmicrohttpd owns it (the
 * response's callback argument) and frees it through hold_free. */
struct rest_hold {
    struct rest_hold *prev, *next; /* w->rest_holds */
    struct worker *w;
    struct snap_ref *ref; /* NULL once cut */
    size_t off, len;      /* the body: ref->blob[off, off + len) */
    int fd;               /* the connection's socket (MHD's; never closed here), or -1 */
    int64_t deadline_ms;
};

static void
snap_ref_put(struct snap_ref *r)
{
    if (r != NULL && --r->refs == 0) {
        if (r->older != NULL)
            r->older->newer = r->newer;
        if (r->newer != NULL)
            r->newer->older = r->older;
        free(r->blob);
        free(r);
    }
}

void
http_api_release(struct worker *w)
{
    snap_ref_put(w->snap_cur);
    w->snap_cur = NULL;
}

/* Let go of the copy now and make libmicrohttpd close the connection in its
 * next run (the hang-up wakes its epoll, readable or not); with a zero linger
 * its close() resets the connection and frees the queued bytes. */
static void
hold_cut(struct rest_hold *h)
{
    snap_ref_put(h->ref);
    h->ref = NULL;
    if (h->fd < 0)
        return; /* the reader callback ends it, or MHD's idle timeout */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(h->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        log_warn("worker %u: setsockopt(SO_LINGER)", h->w->index);
    if (shutdown(h->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("worker %u: shutdown(REST connection)", h->w->index);
}

static ssize_t
hold_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct rest_hold *h = cls;
    if (h->ref != NULL && h->w->now_ms >= h->deadline_ms)
        hold_cut(h);
    if (h->ref == NULL || pos >= h->len)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* cut: MHD closes the connection */
    size_t n = h->len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, h->ref->blob + h->off + (size_t)pos, n);
    return (ssize_t)n;
}

static void
hold_free(void *cls)
{
    struct rest_hold *h = cls;
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        h->w->rest_holds = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    snap_ref_put(h->ref);
    free(h);
}

/* A response body of len bytes at data inside ref's copy, for conn; NULL when
 * out of memory. */
static struct MHD_Response *
hold_response(struct worker *w, struct MHD_Connection *conn, struct snap_ref *ref, const void *data,
              size_t len)
{
    struct rest_hold *h = malloc(sizeof(*h));
    if (h == NULL)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *h = (struct rest_hold){
        .next = w->rest_holds,
        .w = w,
        .ref = ref,
        .off = (size_t)((const uint8_t *)data - ref->blob),
        .len = len,
        .fd = ci != NULL ? ci->connect_fd : -1,
        .deadline_ms = w->now_ms + w->cfg->rest_deadline_ms *
                                       (1 + (int64_t)(len / HTTP_API_DEADLINE_UNIT_BYTES)),
    };
    if (w->rest_holds != NULL)
        w->rest_holds->prev = h;
    w->rest_holds = h;
    ref->refs++;
    size_t block = len < HTTP_API_BLOCK_BYTES ? (len > 0 ? len : 1) : HTTP_API_BLOCK_BYTES;
    struct MHD_Response *r = MHD_create_response_from_callback(len, block, hold_read, h, hold_free);
    if (r == NULL)
        hold_free(h);
    return r;
}

/* The previous current generation just became old: cut the readers of the
 * oldest generations beyond HTTP_API_OLD_GENERATIONS_MAX.  Returns how many
 * old generations stay alive. */
static unsigned
cut_old_generations(struct worker *w)
{
    for (;;) {
        unsigned n = 0;
        struct snap_ref *oldest = NULL;
        for (struct snap_ref *g = w->snap_cur->older; g != NULL; g = g->older, n++)
            oldest = g;
        if (n <= HTTP_API_OLD_GENERATIONS_MAX)
            return n;
        /* Only rest_holds reference an old generation: cutting them all frees it. */
        uint64_t gen = oldest->gen;
        unsigned refs = oldest->refs, cut = 0;
        for (struct rest_hold *h = w->rest_holds; h != NULL && cut < refs; h = h->next)
            if (h->ref == oldest) {
                cut++;
                hold_cut(h); /* the last one frees oldest */
            }
        if (cut != refs)
            panic("worker %u: snapshot generation %" PRIu64 " has %u references, %u readers",
                  w->index, gen, refs, cut);
        log_debug("worker %u: cut %u REST response(s) of snapshot generation %" PRIu64
                  " (more than %d older generations)",
                  w->index, cut, gen, HTTP_API_OLD_GENERATIONS_MAX);
    }
}

int64_t
http_api_next_ms(const struct worker *w)
{
    return w->rest_holds != NULL ? w->rest_sweep_ms : INT64_MAX;
}

void
http_api_expire(struct worker *w)
{
    if (w->rest_holds == NULL || w->now_ms < w->rest_sweep_ms)
        return;
    w->rest_sweep_ms = w->now_ms + HTTP_API_SWEEP_MS;
    unsigned cut = 0;
    for (struct rest_hold *h = w->rest_holds; h != NULL; h = h->next)
        if (h->ref != NULL && w->now_ms >= h->deadline_ms) {
            hold_cut(h);
            cut++;
        }
    if (cut > 0)
        log_debug("worker %u: cut %u REST response(s) past their deadline", w->index, cut);
}

/* The newest snapshot, copied once per generation.  NULL if it cannot be had. */
static struct snap_ref *
snap_current(struct worker *w)
{
    uint64_t known = w->snap_cur != NULL ? w->snap_cur->gen : 0;
    uint8_t *blob;
    size_t len;
    uint64_t gen;
    enum snapshot_status st = snapshot_copy(w->snap, known, &blob, &len, &gen);
    if (st == SNAPSHOT_UNCHANGED)
        return w->snap_cur;
    if (st != SNAPSHOT_OK) {
        log_warnx("cannot copy the snapshot (%s)", st == SNAPSHOT_BUSY ? "busy" : "out of memory");
        return NULL;
    }
    struct snap_ref *r = malloc(sizeof(*r));
    if (r == NULL || !snapshot_blob_valid(blob, len)) {
        if (r != NULL)
            log_warnx("snapshot generation %" PRIu64 " is malformed", gen);
        free(r);
        free(blob);
        return NULL;
    }
    *r = (struct snap_ref){.refs = 1, .gen = gen, .len = len, .blob = blob, .older = w->snap_cur};
    if (w->snap_cur != NULL)
        w->snap_cur->newer = r;
    http_api_release(w); /* freed now unless responses still read it */
    w->snap_cur = r;
    unsigned old = cut_old_generations(w);
    log_debug("worker %u: snapshot generation %" PRIu64 " copied (%zu bytes), %u older still read",
              w->index, gen, len, old);
    return r;
}

/* Serve bytes with an ETag: 304 when the client has them, else 200.
 * ref, when not NULL, is the snapshot copy holding the bytes (see rest_hold). */
static enum MHD_Result
reply_bytes(struct worker *w, struct MHD_Connection *conn, const void *data, size_t len,
            const char *etag, const char *content_type, const char *cache_control,
            struct snap_ref *ref)
{
    struct MHD_Response *r;
    if (ref != NULL) {
        r = hold_response(w, conn, ref, data, len);
    } else {
        r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    }
    return http_reply_tagged(conn, r, etag, content_type, cache_control);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
http_api_decode_name(const char *in, char *out, size_t out_size)
{
    size_t n = 0;
    for (const char *p = in; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (hi < 0 || lo < 0)
                return HTTP_NAME_BAD_ESCAPE;
            c = hi * 16 + lo;
            if (c == 0)
                return HTTP_NAME_BAD_ESCAPE;
            p += 2;
        }
        if (n == out_size)
            return HTTP_NAME_TOO_LONG;
        out[n++] = (char)c;
    }
    return (long)n;
}

size_t
http_api_keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    return strlen(s);
}

static enum MHD_Result
serve_list(struct worker *w, struct MHD_Connection *conn)
{
    struct snap_ref *ref = snap_current(w);
    if (ref == NULL)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const struct snap_blob *b = snapshot_blob_header(ref->blob);
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, b->list_etag);
    return reply_bytes(w, conn, ref->blob + b->list_off, b->list_len, etag, "application/json",
                       "no-cache", ref);
}

static enum MHD_Result
serve_cluster(struct worker *w, struct MHD_Connection *conn, const char *raw)
{
    char name[PERSONA_NAME_MAX_BYTES + 1];
    if (raw[0] == '\0' || strchr(raw, '/') != NULL)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    long n = http_api_decode_name(raw, name, sizeof(name));
    if (n == HTTP_NAME_BAD_ESCAPE)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                "invalid percent-encoding in cluster name");
    if (n < 0) /* longer than any cluster name can be */
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "cluster not found");
    struct snap_ref *ref = snap_current(w);
    if (ref == NULL)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const struct snap_entry *e = snapshot_find(ref->blob, name, (size_t)n);
    if (e == NULL)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "cluster not found");
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, e->etag);
    return reply_bytes(w, conn, ref->blob + e->obj_off, e->obj_len, etag, "application/json",
                       "no-cache", ref);
}

/* The path of a request target in absolute form (RFC 9112 3.2.2: a server
 * MUST accept "GET http://host:port/api/clusters"): what follows the
 * authority, "/" if nothing does; its host is ignored, like the Host header.
 * The target itself when it is not in absolute form; NULL for an http(s)
 * target without a host (RFC 9110 4.2.1) or with userinfo (4.2.4). */
static const char *
origin_path(const char *url)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0)
        return url;
    const char *host = url + scheme, *path = strchr(host, '/');
    size_t host_len = path != NULL ? (size_t)(path - host) : strlen(host);
    if (host_len == 0 || memchr(host, '@', host_len) != NULL)
        return NULL;
    return path != NULL ? path : "/";
}

enum MHD_Result
http_api_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                 const char *version, const char *upload_data, size_t *upload_data_size,
                 void **req_cls)
{
    (void)upload_data;
    struct worker *w = cls;
    /* Answer once the whole request is in: MHD closes a connection whose
     * response was queued at the first call (an "early" response), which
     * would defeat keep-alive.  A request body is read and ignored. */
    struct http_request *rq = *req_cls;
    if (rq == NULL)
        return MHD_NO; /* no context could be allocated: drop the connection */
    if (!rq->headers_done) {
        rq->headers_done = 1;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* The version follows the target in MHD's line buffer (connection.c,
     * parse_initial_message_line); anything else means a NUL cut the target. */
    if (rq->target_end != NULL && version[0] != '\0' && rq->target_end + 1 != version)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "NUL byte in the request target");
    if ((url = origin_path(url)) == NULL)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "invalid host in the request target");
    if (strcmp(url, "/ws") == 0)
        return ws_upgrade_handle(w, conn, method, rq);
    int is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    int is_head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    const struct http_static_asset *asset = NULL;
    enum { R_HEALTH, R_LIST, R_CLUSTER, R_STATIC, R_NONE } route = R_NONE;
    if (strcmp(url, "/healthz") == 0)
        route = R_HEALTH;
    else if (strcmp(url, CLUSTERS_PATH) == 0)
        route = R_LIST;
    else if (strncmp(url, CLUSTERS_PATH "/", sizeof(CLUSTERS_PATH)) == 0)
        route = R_CLUSTER;
    else if ((asset = http_static_find(url)) != NULL)
        route = R_STATIC;
    if (route == R_NONE)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    if (!is_get && !is_head)
        return http_reply_method_not_allowed(conn, "GET, HEAD");
    switch (route) {
    case R_HEALTH:
        return http_reply_queue(conn, MHD_HTTP_OK, http_json_response("{\"status\":\"ok\"}"));
    case R_LIST:
        return serve_list(w, conn);
    case R_CLUSTER:
        return serve_cluster(w, conn, url + sizeof(CLUSTERS_PATH));
    case R_STATIC:
        return reply_bytes(w, conn, asset->data, asset->len, asset->etag, asset->content_type,
                           "no-cache", NULL);
    default:
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    }
}
