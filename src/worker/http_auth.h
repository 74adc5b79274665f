/*
 * http_auth - the bearer-token check of --auth-token-file (RFC 6750).
 *
 * With a token file, every request whose path's first segment is ws, api or
 * metrics (/ws, /api/..., /api/events, /metrics, and the 404s below them)
 * needs one of the file's tokens, in an "Authorization: Bearer TOKEN" header
 * (the scheme's case does not matter) or, for browsers, which cannot set
 * headers on a WebSocket or an EventSource, in the access_token query
 * parameter (percent-decoded; libmicrohttpd makes a '+' a space, as in a form,
 * so a token's '+' is sent as %2B).  A Bearer header, when there is
 * one, is the credential; otherwise the parameter.  OPTIONS requests (CORS
 * preflights carry no credentials) and every other path (/healthz, the
 * dashboard's files, --web-root's) pass.  A request that fails gets 401
 * {"error":"unauthorized"} with WWW-Authenticate: Bearer realm="personad",
 * before any handler runs (so before an upgrade or an SSE hand-off).
 *
 * The router calls http_auth_request_ok once per request, after its checks
 * of the request line, the Host and the Origin, and before the route's
 * handler (http_router_dispatch), and queues http_auth_response with the
 * CORS headers an allowed origin gets.  The tokens are the worker's
 * (auth_tokens.h); NULL means no --auth-token-file.
 */
#ifndef PERSONAD_HTTP_AUTH_H
#define PERSONAD_HTTP_AUTH_H

#include <microhttpd.h>
#include <stddef.h>

#include "common/auth_tokens.h"

#define HTTP_AUTH_QUERY_PARAM "access_token"
#define HTTP_AUTH_CHALLENGE "Bearer realm=\"personad\""

/* http_auth_protected - 1 if a request for path with method needs a token. */
int http_auth_protected(const char *path, const char *method);

/* http_auth_bearer - the token of an Authorization header value: 0 with
 * *token and *len set for "Bearer TOKEN" (blanks around TOKEN allowed), -1
 * for anything else (another scheme, no token). */
int http_auth_bearer(const char *value, const char **token, size_t *len);

/* http_auth_decode - percent-decode the len bytes at in into out (out_size
 * bytes, no NUL added).  Returns the decoded length, or -1 for a malformed
 * escape, a %00, or a result that does not fit. */
long http_auth_decode(const char *in, size_t len, char *out, size_t out_size);

/* http_auth_allowed - the decision, without libmicrohttpd: 1 if a request for
 * path with method passes tokens (NULL: no token file; every request passes),
 * given its Authorization header and its access_token parameter as sent
 * (each NULL when absent; the parameter's value still percent-encoded). */
int http_auth_allowed(const struct auth_tokens *tokens, const char *path, const char *method,
                      const char *authorization, const char *access_token, size_t access_token_len);

/* http_auth_request_ok - http_auth_allowed for the request on conn (its
 * Authorization header and access_token parameter). */
int http_auth_request_ok(const struct auth_tokens *tokens, struct MHD_Connection *conn,
                         const char *path, const char *method);

/* http_auth_response - the 401's response: {"error":"unauthorized"} with
 * WWW-Authenticate (NULL when out of memory), for a caller that adds headers
 * of its own (e.g. CORS) before queuing it with MHD_HTTP_UNAUTHORIZED. */
struct MHD_Response *http_auth_response(void);

#endif
