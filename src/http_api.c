/*
 * http_api - see http_api.h.
 *
 * Snapshot bodies come from the worker's snapshot cache (snap_cache.c), which
 * bounds what slow readers can hold.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../shm/snapshot.h"
#include "http_api.h"
#include "http_reply.h"
#include "http_static.h"
#include "persona.h"
#include "snap_cache.h"
#include "ws_upgrade.h"

#define CLUSTERS_PATH "/api/clusters"

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

/* Serve bytes with an ETag: 304 when the client has them, else 200.
 * ref, when not NULL, is the snapshot copy holding the bytes (snap_cache.h). */
static enum MHD_Result
reply_bytes(struct worker *w, struct MHD_Connection *conn, const void *data, size_t len,
            const char *etag, const char *content_type, const char *cache_control,
            struct snap_ref *ref)
{
    struct MHD_Response *r;
    if (ref != NULL) {
        r = snap_cache_response(&w->snap_cache, conn, ref, data, len);
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
    struct snap_ref *ref = snap_cache_current(&w->snap_cache);
    if (ref == NULL)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const uint8_t *blob = snap_cache_blob(ref);
    const struct snap_blob *b = snapshot_blob_header(blob);
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, b->list_etag);
    return reply_bytes(w, conn, blob + b->list_off, b->list_len, etag, "application/json",
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
    struct snap_ref *ref = snap_cache_current(&w->snap_cache);
    if (ref == NULL)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "snapshot unavailable");
    const uint8_t *blob = snap_cache_blob(ref);
    const struct snap_entry *e = snapshot_find(blob, name, (size_t)n);
    if (e == NULL)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "cluster not found");
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(etag, e->etag);
    return reply_bytes(w, conn, blob + e->obj_off, e->obj_len, etag, "application/json",
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
