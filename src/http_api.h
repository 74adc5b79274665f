/*
 * http_api - the HTTP router of a worker and the REST API.
 *
 *   GET /healthz                  200 {"status":"ok"}
 *   GET /api/clusters             the snapshot's list JSON
 *   GET /api/clusters/{name}      one cluster (name percent-decoded, exact match)
 *   GET /ws                       WebSocket (ws_upgrade.c)
 *   GET /, /app.js, ...           the embedded dashboard (http_static.c)
 *
 * REST bodies are bytes of the master's snapshot, read from the worker's
 * private copies (snap_cache.h): no JSON is rebuilt.  Every error is JSON
 * {"error":"..."}.
 */
#ifndef PERSONAD_HTTP_API_H
#define PERSONAD_HTTP_API_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* The context of one HTTP request (MHD's req_cls), created by
 * http_api_uri_logger before MHD touches the URL, freed by http_api_completed. */
struct http_request {
    const char *target_end; /* end of the request target in MHD's line buffer */
    int headers_done;       /* the handler's first call has happened */
    struct ws_pending ws;   /* /ws: the first event the client gets, kept until the hand-off */
};

/* http_api_uri_logger - MHD's URI log callback: allocates the request context
 * and notes where the request target ends (to detect a raw NUL in it). */
void *http_api_uri_logger(void *cls, const char *uri, struct MHD_Connection *conn);

/* http_api_handler - the MHD access handler; cls is the struct worker. */
enum MHD_Result http_api_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);

/* http_api_completed - MHD's request-completed callback: frees the request
 * context. */
void http_api_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe);

/* http_api_keep_escaped - MHD unescape callback that leaves the URL as sent, so
 * the router sees %00 and %2F (it decodes names itself, strictly). */
size_t http_api_keep_escaped(void *cls, struct MHD_Connection *conn, char *s);

#define HTTP_NAME_BAD_ESCAPE (-1)
#define HTTP_NAME_TOO_LONG (-2)

/* http_api_decode_name - strict percent-decoding of a path segment into out
 * (out_size bytes).  Returns the decoded length, HTTP_NAME_BAD_ESCAPE for an
 * invalid escape or %00, or HTTP_NAME_TOO_LONG. */
long http_api_decode_name(const char *in, char *out, size_t out_size);

#endif
