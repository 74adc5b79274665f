/*
 * http_router - see http_router.h.
 *
 * The table is searched in order, O(rows) string compares per request: fine
 * for a handful of rows.  A row's order is its precedence (/ws before the
 * dashboard's lookup, the exact /api/clusters before its prefix).
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shm/snapshot.h"
#include "worker/http_access.h"
#include "worker/http_auth.h"
#include "worker/http_reply.h"
#include "worker/http_request.h"
#include "worker/http_router.h"
#include "worker/http_static.h"
#include "worker/http_webroot.h"
#include "worker/metrics.h"
#include "worker/rest_api.h"
#include "worker/worker.h"
#include "worker/sse_handoff.h"
#include "worker/ws_upgrade.h"

#define HTTP_ROUTER_GET_HEAD (HTTP_METHOD_GET | HTTP_METHOD_HEAD)

/* The dashboard's row: any path http_static has an asset for. */
static int
asset_exists(const char *path)
{
    return http_static_find(path) != NULL;
}

/* The rows both tables begin with, in order. */
/* clang-format off */
#define HTTP_ROUTER_API_ROWS                                                                       \
    /* The handshake decides about methods itself (a failed handshake is a 400). */                \
    {.path = "/ws",                                                                                \
     .match = HTTP_ROUTE_EXACT,                                                                    \
     .methods = HTTP_METHOD_ANY,                                                                   \
     .handler = ws_upgrade_handle,                                                                 \
     .done = ws_upgrade_forget,                                                                    \
     .stream = 1},                                                                                 \
    {.path = "/api/events",                                                                        \
     .match = HTTP_ROUTE_EXACT,                                                                    \
     .methods = HTTP_METHOD_GET,                                                                   \
     .allow = "GET",                                                                               \
     .handler = sse_handoff_handle,                                                                \
     .stream = 1,                                                                                  \
     .cors = 1},                                                                                   \
    {.path = "/healthz",                                                                           \
     .match = HTTP_ROUTE_EXACT,                                                                    \
     .methods = HTTP_ROUTER_GET_HEAD,                                                              \
     .allow = "GET, HEAD",                                                                         \
     .handler = rest_api_healthz},                                                                 \
    {.path = "/api/clusters",                                                                      \
     .match = HTTP_ROUTE_EXACT,                                                                    \
     .methods = HTTP_ROUTER_GET_HEAD,                                                              \
     .allow = "GET, HEAD",                                                                         \
     .handler = rest_api_list,                                                                     \
     .cors = 1},                                                                                   \
    {.path = "/api/clusters/",                                                                     \
     .match = HTTP_ROUTE_PREFIX,                                                                   \
     .methods = HTTP_ROUTER_GET_HEAD,                                                              \
     .allow = "GET, HEAD",                                                                         \
     .handler = rest_api_cluster,                                                                  \
     .cors = 1},                                                                                   \
    {.path = "/metrics",                                                                           \
     .match = HTTP_ROUTE_EXACT,                                                                    \
     .methods = HTTP_ROUTER_GET_HEAD,                                                              \
     .allow = "GET, HEAD",                                                                         \
     .handler = metrics_handle}
/* clang-format on */

/* Without --web-root: the API, then the embedded dashboard. */
static const struct http_route routes[] = {
    HTTP_ROUTER_API_ROWS,
    {.match = HTTP_ROUTE_LOOKUP,
     .exists = asset_exists,
     .methods = HTTP_ROUTER_GET_HEAD,
     .allow = "GET, HEAD",
     .handler = http_static_handle},
};

/* With --web-root: the API, then DIR's files for every other path (the SPA
 * fallback) outside /api, /ws, /healthz and /metrics. */
static const struct http_route webroot_routes[] = {
    HTTP_ROUTER_API_ROWS,
    {.match = HTTP_ROUTE_LOOKUP,
     .exists = http_webroot_claims,
     .methods = HTTP_ROUTER_GET_HEAD,
     .allow = "GET, HEAD",
     .handler = http_webroot_handle},
};

const struct http_route *
http_router_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

const struct http_route *
http_router_webroot_routes(size_t *n)
{
    *n = sizeof(webroot_routes) / sizeof(webroot_routes[0]);
    return webroot_routes;
}

unsigned
http_router_method(const char *method)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {
        {MHD_HTTP_METHOD_GET, HTTP_METHOD_GET},
        {MHD_HTTP_METHOD_HEAD, HTTP_METHOD_HEAD},
        {MHD_HTTP_METHOD_POST, HTTP_METHOD_POST},
        {MHD_HTTP_METHOD_PUT, HTTP_METHOD_PUT},
        {MHD_HTTP_METHOD_DELETE, HTTP_METHOD_DELETE},
        {MHD_HTTP_METHOD_CONNECT, HTTP_METHOD_CONNECT},
        {MHD_HTTP_METHOD_OPTIONS, HTTP_METHOD_OPTIONS},
        {MHD_HTTP_METHOD_TRACE, HTTP_METHOD_TRACE},
        {MHD_HTTP_METHOD_PATCH, HTTP_METHOD_PATCH},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return HTTP_METHOD_OTHER;
}

/* What row's handler gets as path when row matches path, else NULL. */
static const char *
route_match(const struct http_route *row, const char *path)
{
    switch (row->match) {
    case HTTP_ROUTE_EXACT:
        return strcmp(path, row->path) == 0 ? path : NULL;
    case HTTP_ROUTE_PREFIX: {
        size_t len = strlen(row->path);
        return strncmp(path, row->path, len) == 0 ? path + len : NULL;
    }
    case HTTP_ROUTE_LOOKUP:
        return row->exists(path) ? path : NULL;
    }
    return NULL;
}

enum http_router_status
http_router_lookup(const struct http_route *table, size_t n, const char *path, const char *method,
                   const struct http_route **row, const char **rest)
{
    for (size_t i = 0; i < n; i++) {
        const char *r = route_match(&table[i], path);
        if (r == NULL)
            continue;
        *row = &table[i];
        *rest = r;
        return (table[i].methods & http_router_method(method)) != 0 ? HTTP_ROUTER_FOUND
                                                                    : HTTP_ROUTER_NOT_ALLOWED;
    }
    *row = NULL;
    *rest = NULL;
    return HTTP_ROUTER_NOT_FOUND;
}

enum MHD_Result
http_router_dispatch(const struct http_route *table, size_t n, struct worker *w,
                     struct MHD_Connection *conn, struct http_request *rq, const char *path,
                     const char *method)
{
    const struct http_route *row;
    const char *rest;
    enum http_router_status status = http_router_lookup(table, n, path, method, &row, &rest);
    if (status != HTTP_ROUTER_NOT_FOUND && (row->stream || row->cors)) {
        const char *origin =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
        if (row->stream &&
            !http_access_origin_ok(
                &w->access, origin,
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))) {
            if (log_limit_allow(&w->client_log, w->now_ms))
                log_info("worker %u: %s %s: Origin '%s' not allowed: 403", w->index, method, path,
                         origin);
            return http_reply_error(conn, MHD_HTTP_FORBIDDEN, "origin not allowed");
        }
        if (row->cors && http_access_cors_ok(&w->access, origin)) {
            if (status == HTTP_ROUTER_NOT_ALLOWED &&
                http_router_method(method) == HTTP_METHOD_OPTIONS &&
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_ACCESS_CONTROL_REQUEST_METHOD) != NULL)
                return http_access_preflight(conn, origin, row->allow, w->auth_on);
            rq->cors_origin = origin;
        }
    }
    /* --auth-token-file: a protected path without a valid token is a 401,
     * before any upgrade or hand-off; after the Origin checks, so that the
     * page of an allowed origin can read it (CORS). */
    if (w->auth_on && !http_auth_request_ok(&w->auth, conn, path, method))
        return http_reply_queue(conn, MHD_HTTP_UNAUTHORIZED,
                                http_access_with_cors(http_auth_response(), rq->cors_origin));
    /* --source=kubernetes before its first list is published: there is no
     * state yet, and the list comes as a baseline without events, so a stream
     * or a list taken now would stay without it.  503 until /healthz is 200. */
    if (status == HTTP_ROUTER_FOUND && (row->stream || row->cors) &&
        (snapshot_flags(w->snap) & SNAP_FLAG_KUBE_UNLISTED))
        return http_reply_queue(
            conn, MHD_HTTP_SERVICE_UNAVAILABLE,
            http_with_header(http_access_with_cors(http_error_response("starting: the Kubernetes "
                                                                       "API is not listed yet"),
                                                   rq->cors_origin),
                             MHD_HTTP_HEADER_RETRY_AFTER, "1"));
    switch (status) {
    case HTTP_ROUTER_FOUND:
        rq->done = row->done;
        return row->handler(w, conn, rq, rest, method);
    case HTTP_ROUTER_NOT_ALLOWED:
        return http_reply_method_not_allowed(conn, row->allow);
    case HTTP_ROUTER_NOT_FOUND:
        break;
    }
    return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
}

void *
http_router_uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
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
http_router_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct http_request *rq = *req_cls;
    if (rq != NULL && rq->done != NULL)
        rq->done(rq);
    free(rq);
    *req_cls = NULL;
    if (cls != NULL && conn != NULL)
        worker_request_done(cls, conn); /* the next head has --request-timeout */
}

size_t
http_router_keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    return strlen(s);
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
http_router_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
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
        worker_head_done(w, conn);
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* The version follows the target in MHD's line buffer (connection.c,
     * parse_initial_message_line); anything else means a NUL cut the target. */
    enum MHD_Result ret;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (rq->target_end != NULL && version[0] != '\0' && rq->target_end + 1 != version) {
        ret = http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "NUL byte in the request target");
    } else if ((url = origin_path(url)) == NULL) {
        ret = http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "invalid host in the request target");
    } else if (strcmp(url, "/healthz") != 0 &&
               !http_access_host_ok(&w->access, host, w->tls ? 443 : 80)) {
        if (log_limit_allow(&w->client_log, w->now_ms))
            log_info("worker %u: %s %s: Host '%s' not allowed: 421", w->index, method, url,
                     host != NULL ? host : "(none)");
        ret = http_reply_error(conn, MHD_HTTP_MISDIRECTED_REQUEST, "misdirected request");
    } else {
        size_t n;
        const struct http_route *table =
            w->cfg->web_root[0] != '\0' ? http_router_webroot_routes(&n) : http_router_routes(&n);
        ret = http_router_dispatch(table, n, w, conn, rq, url, method);
    }
    metrics_count_response(w, conn);
    return ret;
}
