/*
 * rest_api - see rest_api.h.
 *
 * A cluster name is decoded strictly (rest_api_decode_name): %2F is a slash
 * inside the name, %00 and malformed escapes are refused, and a name longer
 * than any cluster's cannot match.  The snapshot is looked up only for a
 * name that can exist.
 */
#include "build_config.h"

#include <string.h>

#include "shm/snapshot.h"
#include "worker/http_access.h"
#include "worker/http_reply.h"
#include "worker/http_request.h"
#include "common/persona.h"
#include "worker/rest_api.h"
#include "worker/snap_cache.h"
#include "worker/worker.h"

/* Serve len bytes at data inside ref's copy with etag (200 or 304), with the
 * CORS headers the router chose for rq. */
static enum MHD_Result
reply_snapshot(struct worker *w, struct MHD_Connection *conn, const struct http_request *rq,
               struct snap_ref *ref, const void *data, size_t len, const char *etag)
{
    struct MHD_Response *r = snap_cache_response(&w->snap_cache, conn, ref, data, len);
    r = http_access_with_cors(r, rq->cors_origin);
    return http_reply_tagged(conn, r, etag, "application/json", "no-cache");
}

/* {"error": msg} with status, and rq's CORS headers (a UI of another origin
 * may read why). */
static enum MHD_Result
reply_error(struct MHD_Connection *conn, const struct http_request *rq, unsigned status,
            const char *msg)
{
    return http_reply_queue(conn, status,
                            http_access_with_cors(http_error_response(msg), rq->cors_origin));
}

enum MHD_Result
rest_api_healthz(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                 const char *path, const char *method)
{
    (void)rq, (void)path, (void)method;
    /* 503 until a Kubernetes source has published its first list: there is
     * no state to serve yet. */
    if (snapshot_flags(w->snap) & SNAP_FLAG_KUBE_UNLISTED)
        return http_reply_queue(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                http_json_response("{\"status\":\"starting\",\"reason\":"
                                                   "\"kubernetes API not listed yet\"}"));
    /* Still 200 while the personas directory is missing: the last state is
     * served meanwhile. */
    return http_reply_queue(conn, MHD_HTTP_OK,
                            http_json_response(snapshot_flags(w->snap) & SNAP_FLAG_DIR_MISSING
                                                   ? "{\"status\":\"degraded\",\"reason\":"
                                                     "\"personas directory missing\"}"
                                                   : "{\"status\":\"ok\"}"));
}

enum MHD_Result
rest_api_list(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
              const char *path, const char *method)
{
    (void)path, (void)method;
    struct snap_ref *ref = snap_cache_current(&w->snap_cache);
    if (ref == NULL)
        return reply_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const uint8_t *blob = snap_cache_blob(ref);
    const struct snap_blob *b = snapshot_blob_header(blob);
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, b->list_etag);
    return reply_snapshot(w, conn, rq, ref, blob + b->list_off, b->list_len, etag);
}

enum MHD_Result
rest_api_cluster(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                 const char *path, const char *method)
{
    (void)method;
    char name[PERSONA_NAME_MAX_BYTES + 1];
    if (path[0] == '\0' || strchr(path, '/') != NULL)
        return reply_error(conn, rq, MHD_HTTP_NOT_FOUND, "not found");
    long n = rest_api_decode_name(path, name, sizeof(name));
    if (n == REST_API_NAME_BAD_ESCAPE)
        return reply_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                           "invalid percent-encoding in cluster name");
    if (n < 0) /* longer than any cluster name can be */
        return reply_error(conn, rq, MHD_HTTP_NOT_FOUND, "cluster not found");
    struct snap_ref *ref = snap_cache_current(&w->snap_cache);
    if (ref == NULL)
        return reply_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const uint8_t *blob = snap_cache_blob(ref);
    const struct snap_entry *e = snapshot_find(blob, name, (size_t)n);
    if (e == NULL)
        return reply_error(conn, rq, MHD_HTTP_NOT_FOUND, "cluster not found");
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, e->etag);
    return reply_snapshot(w, conn, rq, ref, blob + e->obj_off, e->obj_len, etag);
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
rest_api_decode_name(const char *in, char *out, size_t out_size)
{
    size_t n = 0;
    for (const char *p = in; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (hi < 0 || lo < 0)
                return REST_API_NAME_BAD_ESCAPE;
            c = hi * 16 + lo;
            if (c == 0)
                return REST_API_NAME_BAD_ESCAPE;
            p += 2;
        }
        if (n == out_size)
            return REST_API_NAME_TOO_LONG;
        out[n++] = (char)c;
    }
    return (long)n;
}
