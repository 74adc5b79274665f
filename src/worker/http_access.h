/*
 * http_access - who may talk to a worker: the Origin, CORS and Host policy.
 *
 *   --allowed-origins=LIST   exact origins ("https://ops.example.com,
 *                            http://10.0.0.5:8080") or "*".  /ws and
 *                            /api/events refuse (403) a request whose Origin
 *                            is neither same-origin (its host and port equal
 *                            the Host header's) nor listed; no Origin passes.
 *                            A listed origin (any with "*") gets CORS headers
 *                            on the REST API and its preflights answered.
 *   --allowed-hosts=LIST     host names or addresses, each with an optional
 *                            ":PORT"; a request whose Host is not listed gets
 *                            421 on every endpoint but /healthz.  Unset: any.
 *
 * The lists are parsed once, at start and at each reload
 * (http_access_set), into a struct http_access the worker owns; the checks
 * are pure functions of it and the request's header values, so
 * tests/check_http_access.c tests them without a socket.  The parsers are
 * common/access_list.h's, which config.c shares to check a list's syntax, so
 * a bad list stops the start (exit 1) or a reload (the running lists stay).
 *
 * Origins are http or https only (what a browser sends from a web page);
 * hosts are compared case-insensitively, IPv6 literals in brackets by
 * address ("[::1]" is "[0:0::1]"), ports with the scheme's default filled in
 * (http 80, https 443).
 */
#ifndef PERSONAD_HTTP_ACCESS_H
#define PERSONAD_HTTP_ACCESS_H

#include <microhttpd.h>

#include "common/access_list.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Access-Control-Max-Age of a preflight's answer, in seconds. */
#define HTTP_ACCESS_PREFLIGHT_MAX_AGE_S "600"

struct http_access {
    int any_origin; /* --allowed-origins=* */
    size_t n_origins;
    struct access_addr origins[ACCESS_LIST_MAX];
    size_t n_hosts; /* 0: any Host (--allowed-hosts unset) */
    struct access_addr hosts[ACCESS_LIST_MAX];
};

/* http_access_set - parse the two lists ("" = unset) into *a.  0, or -1 (a
 * not changed) when one does not parse. */
int http_access_set(struct http_access *a, const char *origins, const char *hosts);

/* http_access_same_origin - 1 if origin (parsed) names the host and port of
 * the Host header value host (a Host without a port has the origin scheme's
 * default), else 0 (also when host is NULL or malformed). */
int http_access_same_origin(const struct access_addr *origin, const char *host);

/* http_access_origin_ok - 1 if a stream endpoint (/ws, /api/events) may
 * serve a request whose Origin header is origin (NULL: none) and Host header
 * host (NULL: none): no Origin, --allowed-origins=*, a listed origin, or the
 * same origin.  Else 0 (a malformed Origin too). */
int http_access_origin_ok(const struct http_access *a, const char *origin, const char *host);

/* http_access_cors_ok - 1 if the REST API sends CORS headers to origin
 * (NULL: none, 0): a listed origin, or any well-formed one with "*" (so the
 * value echoed in Access-Control-Allow-Origin is at most an origin long;
 * "null" gets none).  Same-origin alone does not: such a page needs none. */
int http_access_cors_ok(const struct http_access *a, const char *origin);

/* http_access_host_ok - 1 if the Host header value host (NULL: none) is
 * allowed: --allowed-hosts unset, or host listed (an entry without a port
 * takes any port; a Host without one has default_port).  Else 0. */
int http_access_host_ok(const struct http_access *a, const char *host, uint16_t default_port);

/* http_access_with_cors - add Access-Control-Allow-Origin: origin and Vary:
 * Origin to r when origin is not NULL (http_with_header's contract: NULL
 * out when a header cannot be added). */
struct MHD_Response *http_access_with_cors(struct MHD_Response *r, const char *origin);

/* http_access_preflight - queue the answer to a CORS preflight from an
 * allowed origin: 204 with Access-Control-Allow-Origin, -Allow-Methods:
 * allow, -Max-Age, Vary: Origin, and Access-Control-Allow-Headers:
 * Authorization when auth_on (bearer tokens are required). */
enum MHD_Result http_access_preflight(struct MHD_Connection *conn, const char *origin,
                                      const char *allow, bool auth_on);

#endif
