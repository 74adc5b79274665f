/*
 * http_reply - the response helpers every HTTP endpoint of a worker uses:
 * JSON responses with the API's headers, {"error": ...} replies, 405 with an
 * Allow header, strong ETags and the 200/304 choice by If-None-Match.
 *
 * Called by the router (http_router.c) and the endpoints (rest_api.c,
 * ws_upgrade.c, http_static.c).  Depends on libmicrohttpd and cJSON only: no
 * worker state, no routing.  Every function that queues a response also
 * destroys its reference; one that takes a response NULL (out of memory)
 * returns MHD_NO, so libmicrohttpd closes the connection instead.
 */
#ifndef PERSONAD_HTTP_REPLY_H
#define PERSONAD_HTTP_REPLY_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

/* Length of an ETag from http_reply_format_etag: 16 hex digits, quoted. */
#define HTTP_REPLY_ETAG_LEN 18

/* http_with_header - add a header to r; on failure destroy r and return NULL
 * (queue a NULL response and the connection is closed instead). */
struct MHD_Response *http_with_header(struct MHD_Response *r, const char *name, const char *value);

/* http_json_response - a response with a copy of the JSON body json and the
 * API's headers (Content-Type: application/json, Cache-Control: no-cache);
 * NULL when out of memory. */
struct MHD_Response *http_json_response(const char *json);

/* http_reply_queue - queue r with status and drop our reference; MHD_NO when r
 * is NULL or libmicrohttpd refuses it. */
enum MHD_Result http_reply_queue(struct MHD_Connection *conn, unsigned status,
                                 struct MHD_Response *r);

/* http_error_response - the JSON response {"error": msg}; NULL when out of
 * memory. */
struct MHD_Response *http_error_response(const char *msg);

/* http_reply_error - queue {"error": msg} (a JSON response) with status. */
enum MHD_Result http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg);

/* http_reply_method_not_allowed - queue 405 {"error":"method not allowed"}
 * with Allow: allow (e.g. "GET, HEAD"). */
enum MHD_Result http_reply_method_not_allowed(struct MHD_Connection *conn, const char *allow);

/* http_reply_format_etag - the strong ETag of a 64-bit hash, "\"%016x\"",
 * into out (HTTP_REPLY_ETAG_LEN + 1 bytes). */
void http_reply_format_etag(char out[HTTP_REPLY_ETAG_LEN + 1], uint64_t hash);

/* http_reply_etag_matches - 1 if an If-None-Match value (NULL: absent) lists
 * etag or is "*", comparing weakly (a W/ prefix is ignored); else 0. */
int http_reply_etag_matches(const char *if_none_match, const char *etag);

/* http_reply_tagged - queue r, the body of a resource whose ETag is etag: 304
 * when the request's If-None-Match lists it, else 200 with content_type.
 * Both carry ETag and Cache-Control: cache_control.  A 304 is built from the
 * same response, so its Content-Length is the 200's (libmicrohttpd sends no
 * body for a 304, and RFC 9110 8.6 wants the 200's length, not 0). */
enum MHD_Result http_reply_tagged(struct MHD_Connection *conn, struct MHD_Response *r,
                                  const char *etag, const char *content_type,
                                  const char *cache_control);

#endif
