/*
 * check_http_router - unit tests for src/worker/http_router.c without libmicrohttpd
 * running: the route table (every row's paths and methods give its handler,
 * a 405 with the row's Allow, or a 404, exactly as the integration tests
 * expect on the wire), that every row is well formed, that a new endpoint is
 * one more row (it is routed and dispatched, and every other answer stays
 * the same), the method bits, the request context's done hook, and
 * http_router_keep_escaped.  The checks before routing (NUL, absolute form)
 * and the replies are covered by tests/integration/test_rest_*.py,
 * test_handshake.py and test_protocol_edges.py over real sockets.
 */
#include "build_config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "worker/http_request.h"
#include "worker/http_router.h"
#include "worker/http_static.h"
#include "worker/worker.h"
#include "worker/http_webroot.h"
#include "worker/metrics.h"
#include "worker/rest_api.h"
#include "worker/sse_handoff.h"
#include "worker/ws_upgrade.h"

typedef enum MHD_Result (*handler_fn)(struct worker *, struct MHD_Connection *,
                                      struct http_request *, const char *, const char *);

struct route_case {
    const char *path, *method;
    enum http_router_status want;
    handler_fn handler; /* HTTP_ROUTER_FOUND */
    const char *rest;   /* HTTP_ROUTER_FOUND: the path the handler gets */
    const char *allow;  /* HTTP_ROUTER_NOT_ALLOWED */
};

/* clang-format off */
#define FOUND(p, m, h, r) {p, m, HTTP_ROUTER_FOUND, h, r, NULL}
#define NOT_ALLOWED(p, m) {p, m, HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET, HEAD"}
#define NOT_FOUND(p, m) {p, m, HTTP_ROUTER_NOT_FOUND, NULL, NULL, NULL}
/* clang-format on */

/* The paths and methods of test_rest_*.py, test_handshake.py and
 * test_protocol_edges.py (paths after the absolute-form rewrite). */
static const struct route_case route_cases[] = {
    /* /ws takes every method: ws_upgrade_handle answers HEAD and OPTIONS 405
     * (Allow: GET) and the others 400 itself */
    FOUND("/ws", "GET", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "HEAD", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "OPTIONS", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "POST", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "PUT", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "DELETE", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "get", ws_upgrade_handle, "/ws"),
    FOUND("/ws", "BREW", ws_upgrade_handle, "/ws"),
    NOT_FOUND("/ws/", "GET"),
    NOT_FOUND("/ws/x", "GET"),
    NOT_FOUND("/wss", "GET"),
    NOT_FOUND("/WS", "GET"),
    NOT_FOUND("/ws%2F", "GET"),
    /* /metrics */
    FOUND("/metrics", "GET", metrics_handle, "/metrics"),
    FOUND("/metrics", "HEAD", metrics_handle, "/metrics"),
    NOT_ALLOWED("/metrics", "POST"),
    NOT_ALLOWED("/metrics", "PUT"),
    NOT_ALLOWED("/metrics", "DELETE"),
    NOT_ALLOWED("/metrics", "OPTIONS"),
    NOT_FOUND("/metrics/", "GET"),
    NOT_FOUND("/metricsx", "GET"),
    /* /api/events: GET only (HEAD too gets 405 with Allow: GET) */
    FOUND("/api/events", "GET", sse_handoff_handle, "/api/events"),
    {"/api/events", "HEAD", HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET"},
    {"/api/events", "POST", HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET"},
    {"/api/events", "OPTIONS", HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET"},
    {"/api/events", "get", HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET"},
    NOT_FOUND("/api/events/", "GET"),
    NOT_FOUND("/api/eventsx", "GET"),
    /* /healthz */
    FOUND("/healthz", "GET", rest_api_healthz, "/healthz"),
    FOUND("/healthz", "HEAD", rest_api_healthz, "/healthz"),
    NOT_ALLOWED("/healthz", "POST"),
    NOT_ALLOWED("/healthz", "PUT"),
    NOT_ALLOWED("/healthz", "DELETE"),
    NOT_ALLOWED("/healthz", "PATCH"),
    NOT_ALLOWED("/healthz", "OPTIONS"),
    NOT_ALLOWED("/healthz", "TRACE"),
    NOT_ALLOWED("/healthz", "get"),
    NOT_ALLOWED("/healthz", "BREW"),
    NOT_FOUND("/healthz/", "GET"),
    NOT_FOUND("/healthzz", "GET"),
    /* /api/clusters */
    FOUND("/api/clusters", "GET", rest_api_list, "/api/clusters"),
    FOUND("/api/clusters", "HEAD", rest_api_list, "/api/clusters"),
    NOT_ALLOWED("/api/clusters", "POST"),
    NOT_ALLOWED("/api/clusters", "PUT"),
    NOT_ALLOWED("/api/clusters", "DELETE"),
    NOT_ALLOWED("/api/clusters", "PATCH"),
    NOT_ALLOWED("/api/clusters", "OPTIONS"),
    NOT_ALLOWED("/api/clusters", "Get"),
    NOT_FOUND("/api/clustersx", "GET"),
    NOT_FOUND("/api/cluster", "GET"),
    NOT_FOUND("/api/clusters%2F", "GET"),
    NOT_FOUND("/api", "GET"),
    NOT_FOUND("/api/", "GET"),
    NOT_FOUND("/API/CLUSTERS", "GET"),
    NOT_FOUND("//api/clusters", "GET"),
    /* /api/clusters/{name}: everything after the prefix, still escaped (the
     * handler 404s "" and names with a slash, 400s bad escapes) */
    FOUND("/api/clusters/", "GET", rest_api_cluster, ""),
    FOUND("/api/clusters/alpha", "GET", rest_api_cluster, "alpha"),
    FOUND("/api/clusters/alpha", "HEAD", rest_api_cluster, "alpha"),
    FOUND("/api/clusters/a%2Fb", "GET", rest_api_cluster, "a%2Fb"),
    FOUND("/api/clusters/a/b", "GET", rest_api_cluster, "a/b"),
    FOUND("/api/clusters/alpha/", "GET", rest_api_cluster, "alpha/"),
    FOUND("/api/clusters/%00", "GET", rest_api_cluster, "%00"),
    FOUND("/api/clusters/..", "GET", rest_api_cluster, ".."),
    FOUND("/api/clusters//", "GET", rest_api_cluster, "/"),
    NOT_ALLOWED("/api/clusters/alpha", "POST"),
    NOT_ALLOWED("/api/clusters/alpha", "DELETE"),
    NOT_ALLOWED("/api/clusters/", "PUT"),
    NOT_ALLOWED("/api/clusters/nope", "OPTIONS"),
    /* anything else, whatever the method */
    NOT_FOUND("/nope", "GET"),
    NOT_FOUND("/nope", "POST"),
    NOT_FOUND("/nope", "HEAD"),
    NOT_FOUND("/nope", "BREW"),
    NOT_FOUND("", "GET"),
    NOT_FOUND("*", "OPTIONS"),
    NOT_FOUND("/index.html", "GET"), /* the page is served at / only */
    NOT_FOUND("/app.js/", "GET"),
    NOT_FOUND("/app.jsx", "GET"),
    NOT_FOUND("/favicon.ico", "GET"),
};

/* Route c through table and check the answer. */
static void
check_case(const struct http_route *table, size_t n, const struct route_case *c)
{
    const struct http_route *row = (const struct http_route *)1;
    const char *rest = "unset";
    enum http_router_status st = http_router_lookup(table, n, c->path, c->method, &row, &rest);
    ck_assert_msg(st == c->want, "%s %s: status %d, want %d", c->method, c->path, (int)st,
                  (int)c->want);
    switch (st) {
    case HTTP_ROUTER_FOUND:
        ck_assert_msg(row->handler == c->handler, "%s %s: wrong handler", c->method, c->path);
        ck_assert_str_eq(rest, c->rest);
        break;
    case HTTP_ROUTER_NOT_ALLOWED:
        ck_assert_ptr_nonnull(row);
        ck_assert_msg(row->allow != NULL && strcmp(row->allow, c->allow) == 0,
                      "%s %s: Allow: %s, want %s", c->method, c->path,
                      row->allow != NULL ? row->allow : "(none)", c->allow);
        break;
    case HTTP_ROUTER_NOT_FOUND:
        ck_assert_ptr_null(row);
        ck_assert_ptr_null(rest);
        break;
    }
}

START_TEST(test_route_table)
{
    size_t n;
    const struct http_route *table = http_router_routes(&n);
    check_case(table, n, &route_cases[_i]);
}
END_TEST

/* The dashboard's row: every asset (GET, HEAD; 405 otherwise), none
 * with --disable-dashboard (404 for every method). */
START_TEST(test_route_assets)
{
    size_t n;
    const struct http_route *table = http_router_routes(&n);
    static const char *const paths[] = {"/", "/app.js", "/app.css"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
#ifdef ENABLE_DASHBOARD
        ck_assert_ptr_nonnull(http_static_find(paths[i]));
        struct route_case get = FOUND(paths[i], "GET", http_static_handle, paths[i]);
        struct route_case head = FOUND(paths[i], "HEAD", http_static_handle, paths[i]);
        struct route_case post = NOT_ALLOWED(paths[i], "POST");
        struct route_case options = NOT_ALLOWED(paths[i], "OPTIONS");
#else
        ck_assert_ptr_null(http_static_find(paths[i]));
        struct route_case get = NOT_FOUND(paths[i], "GET");
        struct route_case head = NOT_FOUND(paths[i], "HEAD");
        struct route_case post = NOT_FOUND(paths[i], "POST");
        struct route_case options = NOT_FOUND(paths[i], "OPTIONS");
#endif
        check_case(table, n, &get);
        check_case(table, n, &head);
        check_case(table, n, &post);
        check_case(table, n, &options);
    }
}
END_TEST

/* With --web-root: the same answers for the API rows, DIR's handler (GET,
 * HEAD; 405 otherwise) for every path outside /api, /ws, /healthz and
 * /metrics, and those stay 404 (/metrics itself is the metrics row's). */
#ifdef ENABLE_WEB_ROOT
static const struct route_case webroot_cases[] = {
    FOUND("/", "GET", http_webroot_handle, "/"),
    FOUND("/", "HEAD", http_webroot_handle, "/"),
    FOUND("/app.js", "GET", http_webroot_handle, "/app.js"),
    FOUND("/index.html", "GET", http_webroot_handle, "/index.html"),
    FOUND("/some/route", "GET", http_webroot_handle, "/some/route"),
    FOUND("/nope", "GET", http_webroot_handle, "/nope"),
    FOUND("/../x", "GET", http_webroot_handle, "/../x"), /* its handler says 400 */
    FOUND("/wss", "GET", http_webroot_handle, "/wss"),
    FOUND("/apis", "GET", http_webroot_handle, "/apis"),
    NOT_ALLOWED("/", "POST"),
    NOT_ALLOWED("/some/route", "DELETE"),
    NOT_ALLOWED("/nope", "OPTIONS"),
    NOT_FOUND("/api", "GET"),
    NOT_FOUND("/api/", "GET"),
    NOT_FOUND("/api/nope", "GET"),
    NOT_FOUND("/api/nope", "POST"),
    NOT_FOUND("/ws/", "GET"),
    NOT_FOUND("/ws/x", "GET"),
    NOT_FOUND("/healthz/", "GET"),
    FOUND("/metrics", "GET", metrics_handle, "/metrics"),
    NOT_FOUND("/metrics/x", "GET"),
    NOT_FOUND("", "GET"),
    NOT_FOUND("*", "OPTIONS"),
};

START_TEST(test_webroot_table)
{
    size_t n, base_n;
    const struct http_route *table = http_router_webroot_routes(&n);
    const struct http_route *base = http_router_routes(&base_n);
    /* the same rows but the last */
    ck_assert_uint_eq(n, base_n);
    ck_assert_int_eq(memcmp(table, base, (n - 1) * sizeof(*table)), 0);
    for (size_t i = 0; i < sizeof(webroot_cases) / sizeof(webroot_cases[0]); i++)
        check_case(table, n, &webroot_cases[i]);
    /* every answer of the API rows is what it is without a web root */
    for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
        const struct route_case *c = &route_cases[i];
        if (c->want == HTTP_ROUTER_NOT_FOUND && http_webroot_claims(c->path))
            continue; /* an unknown path: the web root's now */
        check_case(table, n, c);
    }
}
END_TEST
#endif

/* The HTTP_METHOD_* bits an Allow header lists. */
static unsigned
allow_bits(const char *allow)
{
    unsigned bits = 0;
    char buf[128];
    ck_assert_uint_lt(strlen(allow), sizeof(buf));
    strcpy(buf, allow);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        unsigned bit = http_router_method(tok);
        ck_assert_msg(bit != HTTP_METHOD_OTHER, "Allow: %s names an unknown method", allow);
        ck_assert_msg((bits & bit) == 0, "Allow: %s names a method twice", allow);
        bits |= bit;
    }
    return bits;
}

START_TEST(test_rows_well_formed)
{
    size_t n, wn;
    const struct http_route *table = http_router_routes(&n);
    const struct http_route *webroot = http_router_webroot_routes(&wn);
    ck_assert_uint_ge(n, 5);
    ck_assert_uint_eq(wn, n);
    for (size_t i = 0; i < 2 * n; i++) {
        const struct http_route *r = i < n ? &table[i] : &webroot[i - n]; /* both tables */
        ck_assert_msg(r->handler != NULL, "row %zu has no handler", i);
        ck_assert_msg(r->methods != 0 && (r->methods & ~HTTP_METHOD_ANY) == 0,
                      "row %zu: methods %#x", i, r->methods);
        if (r->match == HTTP_ROUTE_LOOKUP) {
            ck_assert_msg(r->exists != NULL && r->path == NULL, "row %zu: lookup", i);
        } else {
            ck_assert_msg(r->path != NULL && r->path[0] == '/' && r->exists == NULL,
                          "row %zu: path", i);
        }
        /* The 405 tells the truth: Allow lists exactly the methods taken. */
        if (r->methods == HTTP_METHOD_ANY)
            ck_assert_msg(r->allow == NULL, "row %zu: no 405, no Allow", i);
        else
            ck_assert_msg(r->allow != NULL && allow_bits(r->allow) == r->methods,
                          "row %zu (%s): Allow: %s", i, r->path != NULL ? r->path : "lookup",
                          r->allow != NULL ? r->allow : "(none)");
    }
}
END_TEST

START_TEST(test_method_bits)
{
    ck_assert_uint_eq(http_router_method("GET"), HTTP_METHOD_GET);
    ck_assert_uint_eq(http_router_method("HEAD"), HTTP_METHOD_HEAD);
    ck_assert_uint_eq(http_router_method("POST"), HTTP_METHOD_POST);
    ck_assert_uint_eq(http_router_method("PUT"), HTTP_METHOD_PUT);
    ck_assert_uint_eq(http_router_method("DELETE"), HTTP_METHOD_DELETE);
    ck_assert_uint_eq(http_router_method("CONNECT"), HTTP_METHOD_CONNECT);
    ck_assert_uint_eq(http_router_method("OPTIONS"), HTTP_METHOD_OPTIONS);
    ck_assert_uint_eq(http_router_method("TRACE"), HTTP_METHOD_TRACE);
    ck_assert_uint_eq(http_router_method("PATCH"), HTTP_METHOD_PATCH);
    /* methods are case-sensitive (RFC 9110 9.1) */
    ck_assert_uint_eq(http_router_method("get"), HTTP_METHOD_OTHER);
    ck_assert_uint_eq(http_router_method("GETS"), HTTP_METHOD_OTHER);
    ck_assert_uint_eq(http_router_method("GE"), HTTP_METHOD_OTHER);
    ck_assert_uint_eq(http_router_method(""), HTTP_METHOD_OTHER);
    ck_assert_uint_eq(http_router_method("BREW"), HTTP_METHOD_OTHER);
    unsigned all = 0;
    static const char *const names[] = {"GET",     "HEAD",    "POST",  "PUT",   "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH", "X"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ck_assert_uint_eq(all & http_router_method(names[i]), 0);
        all |= http_router_method(names[i]);
    }
    ck_assert_uint_eq(all, HTTP_METHOD_ANY);
}
END_TEST

/* The Origin policy's marks (http_access.h): the stream endpoints refuse
 * foreign origins, the REST API and the event stream answer CORS, nothing
 * else is marked (healthz, metrics, the dashboard or the web root). */
START_TEST(test_access_marks)
{
    for (int t = 0; t < 2; t++) {
        size_t n;
        const struct http_route *rows =
            t == 0 ? http_router_routes(&n) : http_router_webroot_routes(&n);
        int streams = 0, cors = 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = rows[i].path != NULL ? rows[i].path : "(lookup)";
            int want_stream = strcmp(p, "/ws") == 0 || strcmp(p, "/api/events") == 0;
            int want_cors = strncmp(p, "/api/", 5) == 0;
            ck_assert_msg(rows[i].stream == want_stream, "%s: stream %d", p, rows[i].stream);
            ck_assert_msg(rows[i].cors == want_cors, "%s: cors %d", p, rows[i].cors);
            streams += rows[i].stream;
            cors += rows[i].cors;
        }
        ck_assert_int_eq(streams, 2);
        ck_assert_int_eq(cors, 3);
    }
}
END_TEST

/* --- a new endpoint is one row ------------------------------------------ */

static struct {
    int calls;
    struct worker *w;
    struct MHD_Connection *conn;
    struct http_request *rq;
    const char *path, *method;
} seen;

static enum MHD_Result
example_handler(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                const char *path, const char *method)
{
    seen.calls++;
    seen.w = w;
    seen.conn = conn;
    seen.rq = rq;
    seen.path = path;
    seen.method = method;
    return MHD_YES;
}

static int done_calls;

static void
example_done(struct http_request *rq)
{
    (void)rq;
    done_calls++;
}

static enum MHD_Result
events_handler(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
               const char *path, const char *method)
{
    (void)w, (void)conn, (void)rq, (void)path, (void)method;
    return MHD_NO;
}

/* The worker's table plus two endpoints: what a change adding them adds. */
static struct http_route *
extended_table(size_t *n)
{
    size_t base_n;
    const struct http_route *base = http_router_routes(&base_n);
    struct http_route *t = calloc(base_n + 2, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    memcpy(t, base, base_n * sizeof(*t));
    t[base_n] = (struct http_route){.path = "/example",
                                    .match = HTTP_ROUTE_EXACT,
                                    .methods = HTTP_METHOD_GET | HTTP_METHOD_HEAD,
                                    .allow = "GET, HEAD",
                                    .handler = example_handler,
                                    .done = example_done};
    t[base_n + 1] = (struct http_route){.path = "/api/feeds/",
                                        .match = HTTP_ROUTE_PREFIX,
                                        .methods = HTTP_METHOD_GET,
                                        .allow = "GET",
                                        .handler = events_handler};
    *n = base_n + 2;
    return t;
}

START_TEST(test_new_row_routes)
{
    size_t n;
    struct http_route *t = extended_table(&n);
    static const struct route_case added[] = {
        FOUND("/example", "GET", example_handler, "/example"),
        FOUND("/example", "HEAD", example_handler, "/example"),
        NOT_ALLOWED("/example", "POST"),
        NOT_FOUND("/example/", "GET"),
        FOUND("/api/feeds/alpha", "GET", events_handler, "alpha"),
        {"/api/feeds/alpha", "HEAD", HTTP_ROUTER_NOT_ALLOWED, NULL, NULL, "GET"},
        NOT_FOUND("/api/feeds", "GET"),
    };
    for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++)
        check_case(t, n, &added[i]);
    /* every other answer is what it was */
    for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++)
        check_case(t, n, &route_cases[i]);
    free(t);
}
END_TEST

START_TEST(test_new_row_dispatch)
{
    size_t n;
    struct http_route *t = extended_table(&n);
    /* A worker with no policy set (no --auth-token-file, no lists): the router
     * reads only its flags, and the handler must get this pointer. */
    static struct worker idle;
    struct worker *w = &idle;
    struct MHD_Connection *conn = (struct MHD_Connection *)&done_calls;
    struct http_request rq = {0};
    memset(&seen, 0, sizeof(seen));
    ck_assert_int_eq(http_router_dispatch(t, n, w, conn, &rq, "/example", "HEAD"), MHD_YES);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_eq(seen.w, w);
    ck_assert_ptr_eq(seen.conn, conn);
    ck_assert_ptr_eq(seen.rq, &rq);
    ck_assert_str_eq(seen.path, "/example");
    ck_assert_str_eq(seen.method, "HEAD");
    ck_assert_ptr_eq(rq.done, example_done); /* the row's hook, for the completion */
    /* a row without a hook leaves none */
    struct http_request rq2 = {0};
    ck_assert_int_eq(http_router_dispatch(t, n, w, conn, &rq2, "/api/feeds/x", "GET"), MHD_NO);
    ck_assert_ptr_null(rq2.done);
    ck_assert_int_eq(seen.calls, 1);
    free(t);
}
END_TEST

/* The request context: created by the URI log callback, the route's done
 * hook run once by the completion callback, which frees it. */
START_TEST(test_request_done_hook)
{
    char line[] = "/metrics HTTP/1.1";
    line[8] = '\0'; /* MHD cuts the request line before the version */
    struct http_request *rq = http_router_uri_logger(NULL, line, NULL);
    ck_assert_ptr_nonnull(rq);
    ck_assert_ptr_eq(rq->target_end, line + 8);
    ck_assert_int_eq(rq->headers_done, 0);
    ck_assert_ptr_null(rq->done);
    rq->done = example_done;
    done_calls = 0;
    void *cls = rq;
    http_router_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_ptr_null(cls);
    /* no hook: just freed; no context (out of memory): nothing to do */
    cls = http_router_uri_logger(NULL, line, NULL);
    ck_assert_ptr_nonnull(cls);
    http_router_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_WITH_ERROR);
    ck_assert_ptr_null(cls);
    http_router_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_WITH_ERROR);
    ck_assert_int_eq(done_calls, 1);
}
END_TEST

START_TEST(test_ws_row_forgets_handshake)
{
    /* /ws's row releases a pending handshake when its request completes */
    size_t n;
    const struct http_route *table = http_router_routes(&n);
    const struct http_route *row;
    const char *rest;
    ck_assert_int_eq(http_router_lookup(table, n, "/ws", "GET", &row, &rest), HTTP_ROUTER_FOUND);
    ck_assert_ptr_eq(row->done, ws_upgrade_forget);
    for (size_t i = 0; i < n; i++)
        if (&table[i] != row)
            ck_assert_ptr_null(table[i].done);
}
END_TEST

START_TEST(test_keep_escaped)
{
    /* MHD's unescape callback: the URL stays as sent, length unchanged */
    char url[] = "/api/clusters/a%2Fb%00%zz";
    ck_assert_uint_eq(http_router_keep_escaped(NULL, NULL, url),
                      strlen("/api/clusters/a%2Fb%00%zz"));
    ck_assert_str_eq(url, "/api/clusters/a%2Fb%00%zz");
    char empty[] = "";
    ck_assert_uint_eq(http_router_keep_escaped(NULL, NULL, empty), 0);
}
END_TEST

static Suite *
http_router_suite(void)
{
    Suite *s = suite_create("http_router");
    TCase *tt = tcase_create("table");
    tcase_set_timeout(tt, 10);
    tcase_add_loop_test(tt, test_route_table, 0,
                        (int)(sizeof(route_cases) / sizeof(route_cases[0])));
    tcase_add_test(tt, test_route_assets);
#ifdef ENABLE_WEB_ROOT
    tcase_add_test(tt, test_webroot_table);
#endif
    tcase_add_test(tt, test_rows_well_formed);
    tcase_add_test(tt, test_method_bits);
    tcase_add_test(tt, test_ws_row_forgets_handshake);
    tcase_add_test(tt, test_access_marks);
    suite_add_tcase(s, tt);
    TCase *tn = tcase_create("new_row");
    tcase_set_timeout(tn, 10);
    tcase_add_test(tn, test_new_row_routes);
    tcase_add_test(tn, test_new_row_dispatch);
    suite_add_tcase(s, tn);
    TCase *tr = tcase_create("request");
    tcase_set_timeout(tr, 10);
    tcase_add_test(tr, test_request_done_hook);
    tcase_add_test(tr, test_keep_escaped);
    suite_add_tcase(s, tr);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_router_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
