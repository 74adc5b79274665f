/*
 * http_router - a worker's libmicrohttpd callbacks and its one route table.
 *
 *   /ws                      any method: ws_upgrade_handle (GET upgrades;
 *                            HEAD, OPTIONS 405 with Allow: GET; others 400)
 *   /api/events              GET: sse_handoff_handle (Server-Sent Events)
 *   /healthz                 GET, HEAD: rest_api_healthz
 *   /api/clusters            GET, HEAD: rest_api_list
 *   /api/clusters/{name}     GET, HEAD: rest_api_cluster (prefix)
 *   /, /app.js, ...          GET, HEAD: http_static_handle (the embedded
 *                            dashboard; none with --disable-dashboard)
 *
 * With --web-root=DIR the last row is http_webroot_handle instead, for every
 * path whose first segment is not api, ws, healthz or metrics (DIR's files,
 * index.html for the rest): http_router_webroot_routes().
 *
 * Before routing, every request is checked the same way: it is answered only
 * once it is whole (a body is read and ignored), a raw NUL in the target or
 * an absolute-form target without a host (or with userinfo) is a 400, an
 * absolute-form target is routed by its path, and with --allowed-hosts a
 * Host (an absolute-form target's authority) not listed is a 421 on every
 * path but /healthz.  A row's stream and cors flags add the Origin checks
 * (http_access.h); with --auth-token-file a protected path without a valid
 * token is then a 401 (http_auth.h; in http_router_dispatch, after the
 * Origin checks so that an allowed origin's page can read it).  Then the first row whose path
 * matches takes the request: its handler if the row takes the method, else
 * 405 with the row's Allow; no row is a 404.  Every error is JSON
 * {"error":"..."} (http_reply.h).
 *
 * A new endpoint is one row in http_router.c's table and one handler (a
 * struct http_route's handler, depending on http_reply.h only): the router
 * knows handlers through the table alone.  worker.c registers the callbacks
 * with libmicrohttpd (cls: the struct worker).
 */
#ifndef PERSONAD_HTTP_ROUTER_H
#define PERSONAD_HTTP_ROUTER_H

#include <microhttpd.h>
#include <stddef.h>

struct http_request;
struct worker;

/* Method bits of a route (HTTP_METHOD_OTHER: any method not named here). */
#define HTTP_METHOD_GET (1u << 0)
#define HTTP_METHOD_HEAD (1u << 1)
#define HTTP_METHOD_POST (1u << 2)
#define HTTP_METHOD_PUT (1u << 3)
#define HTTP_METHOD_DELETE (1u << 4)
#define HTTP_METHOD_CONNECT (1u << 5)
#define HTTP_METHOD_OPTIONS (1u << 6)
#define HTTP_METHOD_TRACE (1u << 7)
#define HTTP_METHOD_PATCH (1u << 8)
#define HTTP_METHOD_OTHER (1u << 9)
#define HTTP_METHOD_ANY ((1u << 10) - 1)

/* How a row's path matches the request's. */
enum http_route_match {
    HTTP_ROUTE_EXACT,  /* path is the whole request path; the handler gets it */
    HTTP_ROUTE_PREFIX, /* path begins the request path; the handler gets the rest */
    HTTP_ROUTE_LOOKUP, /* exists(request path) says; the handler gets the path */
};

/* One row of a route table. */
struct http_route {
    const char *path; /* HTTP_ROUTE_EXACT, HTTP_ROUTE_PREFIX; NULL for HTTP_ROUTE_LOOKUP */
    enum http_route_match match;
    int (*exists)(const char *path); /* HTTP_ROUTE_LOOKUP: 1 if the row serves path */
    unsigned methods;                /* HTTP_METHOD_* bits the handler takes; the rest get 405 */
    const char *allow; /* the 405's Allow header (NULL when methods is HTTP_METHOD_ANY) */
    /* handler - answer the request (queue a response, or MHD_NO to close the
     * connection).  path is the request's path (an absolute-form target's
     * path part; for a prefix row what follows the prefix), method as sent. */
    enum MHD_Result (*handler)(struct worker *w, struct MHD_Connection *conn,
                               struct http_request *rq, const char *path, const char *method);
    /* done - NULL, or called when the request completes (whatever happened),
     * to release what the handler keeps in rq. */
    void (*done)(struct http_request *rq);
    /* The Origin policy (http_access.h), checked before the handler runs:
     * stream - a request with an Origin that is neither the same origin nor
     *          allowed gets 403 {"error":"origin not allowed"} (/ws, /api/events);
     * cors   - an allowed origin's request has rq->cors_origin set (the
     *          handler adds the headers: http_access_with_cors) and its
     *          preflight (OPTIONS with Access-Control-Request-Method) is
     *          answered 204 (the REST API). */
    unsigned char stream, cors;
};

enum http_router_status {
    HTTP_ROUTER_FOUND,       /* *row takes the request */
    HTTP_ROUTER_NOT_FOUND,   /* 404: no row matches the path */
    HTTP_ROUTER_NOT_ALLOWED, /* 405 with (*row)->allow: the row does not take the method */
};

/* http_router_method - the HTTP_METHOD_* bit of a method as sent (case
 * matters: "get" is HTTP_METHOD_OTHER). */
unsigned http_router_method(const char *method);

/* http_router_lookup - route path and method through table (n rows): the
 * first row whose path matches sets *row (NULL: none) and *rest (what its
 * handler gets as path).  Pure: no I/O, no libmicrohttpd. */
enum http_router_status http_router_lookup(const struct http_route *table, size_t n,
                                           const char *path, const char *method,
                                           const struct http_route **row, const char **rest);

/* http_router_routes - the worker's route table; *n gets its length. */
const struct http_route *http_router_routes(size_t *n);

/* http_router_webroot_routes - the table with --web-root: the same rows, with
 * the web root's instead of the dashboard's last. */
const struct http_route *http_router_webroot_routes(size_t *n);

/* http_router_dispatch - answer a request to path through table: the found
 * row's handler (its done hook noted in rq), or 404 / 405 (http_reply.h). */
enum MHD_Result http_router_dispatch(const struct http_route *table, size_t n, struct worker *w,
                                     struct MHD_Connection *conn, struct http_request *rq,
                                     const char *path, const char *method);

/* http_router_uri_logger - MHD's URI log callback: allocates the request
 * context and notes where the request target ends (to detect a raw NUL in it). */
void *http_router_uri_logger(void *cls, const char *uri, struct MHD_Connection *conn);

/* http_router_handler - the MHD access handler; cls is the struct worker. */
enum MHD_Result http_router_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **req_cls);

/* http_router_completed - MHD's request-completed callback: runs the route's
 * done hook and frees the request context. */
void http_router_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                           enum MHD_RequestTerminationCode toe);

/* http_router_keep_escaped - MHD unescape callback that leaves the URL as
 * sent, so the router sees %00 and %2F (endpoints decode names themselves,
 * strictly). */
size_t http_router_keep_escaped(void *cls, struct MHD_Connection *conn, char *s);

#endif
