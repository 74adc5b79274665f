/*
 * http_api - see http_api.h.
 */
#include "build_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../shm/snapshot.h"
#include "http_api.h"
#include "http_static.h"
#include "log.h"
#include "persona.h"
#include "ws_upgrade.h"

#define CLUSTERS_PATH "/api/clusters"
#define ETAG_LEN 19 /* quoted 16 hex digits */

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
    free(*req_cls);
    *req_cls = NULL;
}

/* A worker's private copy of one snapshot generation. */
struct snap_ref {
    unsigned refs; /* the worker's own reference + responses in flight */
    uint64_t gen;
    size_t len;
    uint8_t *blob;
};

static void
snap_ref_put(void *cls)
{
    struct snap_ref *r = cls;
    if (r != NULL && --r->refs == 0) {
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
    *r = (struct snap_ref){.refs = 1, .gen = gen, .len = len, .blob = blob};
    http_api_release(w);
    w->snap_cur = r;
    return r;
}

struct MHD_Response *
http_with_header(struct MHD_Response *r, const char *name, const char *value)
{
    if (r != NULL && MHD_add_response_header(r, name, value) != MHD_YES) {
        MHD_destroy_response(r); /* never send a response without a header it needs */
        return NULL;
    }
    return r;
}

struct MHD_Response *
http_json_response(const char *json)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    r = http_with_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return r;
}

static enum MHD_Result
queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r)
{
    if (r == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result
http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o != NULL && cJSON_AddStringToObject(o, "error", msg) != NULL)
        body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (body == NULL)
        return MHD_NO;
    struct MHD_Response *r = http_json_response(body);
    free(body);
    return queue(conn, status, r);
}

static enum MHD_Result
reply_method_not_allowed(struct MHD_Connection *conn)
{
    struct MHD_Response *r = http_json_response("{\"error\":\"method not allowed\"}");
    return queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                 http_with_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD"));
}

/* 1 if If-None-Match lists etag (or is "*"). */
static int
etag_matches(struct MHD_Connection *conn, const char *etag)
{
    const char *inm =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm == NULL)
        return 0;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (p[0] == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && memcmp(p, etag, n) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end;
    }
    return 0;
}

/* Serve bytes with an ETag: 304 when the client has them, else 200.
 * ref, when not NULL, keeps the bytes alive until MHD is done with them. */
static enum MHD_Result
reply_bytes(struct MHD_Connection *conn, const void *data, size_t len, const char *etag,
            const char *content_type, const char *cache_control, struct snap_ref *ref)
{
    struct MHD_Response *r;
    unsigned status = etag_matches(conn, etag) ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    /* A 304 is built from the same bytes: libmicrohttpd sends no body for it,
     * and a Content-Length, if any, must then be that of the 200 (RFC 9110
     * 8.6), not 0. */
    if (ref != NULL) {
        r = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, snap_ref_put,
                                                                   ref);
        if (r != NULL)
            ref->refs++;
    } else {
        r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    }
    r = http_with_header(r, MHD_HTTP_HEADER_ETAG, etag);
    r = http_with_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    if (status == MHD_HTTP_OK)
        r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return queue(conn, status, r);
}

static void
format_etag(char out[ETAG_LEN + 1], uint64_t h)
{
    snprintf(out, ETAG_LEN + 1, "\"%016" PRIx64 "\"", h);
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
    char etag[ETAG_LEN + 1];
    format_etag(etag, b->list_etag);
    return reply_bytes(conn, ref->blob + b->list_off, b->list_len, etag, "application/json",
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
    char etag[ETAG_LEN + 1];
    format_etag(etag, e->etag);
    return reply_bytes(conn, ref->blob + e->obj_off, e->obj_len, etag, "application/json",
                       "no-cache", ref);
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
        return reply_method_not_allowed(conn);
    switch (route) {
    case R_HEALTH:
        /* Still 200 while the personas directory is missing: the last state is
         * served meanwhile. */
        return queue(conn, MHD_HTTP_OK,
                     http_json_response(snapshot_flags(w->snap) & SNAP_FLAG_DIR_MISSING
                                            ? "{\"status\":\"degraded\",\"reason\":"
                                              "\"personas directory missing\"}"
                                            : "{\"status\":\"ok\"}"));
    case R_LIST:
        return serve_list(w, conn);
    case R_CLUSTER:
        return serve_cluster(w, conn, url + sizeof(CLUSTERS_PATH));
    case R_STATIC:
        return reply_bytes(conn, asset->data, asset->len, asset->etag, asset->content_type,
                           "no-cache", NULL);
    default:
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    }
}
