/*
 * sse_handoff - GET /api/events: the Server-Sent Events endpoint, and the
 * hand-off of its socket from libmicrohttpd to the connection set (sse_conn).
 *
 * libmicrohttpd hands a socket over only with a 101 (MHD_create_response_for
 * _upgrade); a 200 it writes itself, holding the connection and its pool.  So
 * the endpoint takes the socket while the request is being answered: it
 * duplicates it, suspends the MHD connection (MHD takes it out of its epoll
 * set and no longer touches it), puts a dead placeholder socket under MHD's
 * descriptor number (dup2), and resumes: MHD calls the handler once more,
 * which refuses, and MHD closes what it believes is its socket (its shutdown
 * hits the placeholder) and frees the pool.  The real socket lives on in the
 * set, where the response head is written by us.  See doc/architecture.md.
 *
 * The start position: a Last-Event-ID header "E:N" (what EventSource sends
 * when it reconnects) or the since=N&epoch=E query parameters (list+watch);
 * the header wins.  Malformed: 400 before anything is streamed.
 */
#ifndef PERSONAD_SSE_HANDOFF_H
#define PERSONAD_SSE_HANDOFF_H

#include <microhttpd.h>
#include <stdint.h>

#include "worker/event_window.h"
#include "worker/worker.h"

struct http_request;

/* The stream's first line: the seed's 5 s reconnect delay. */
#define SSE_RETRY_LINE "retry: 5000\n"

/* sse_handoff_handle - answer a request to /api/events (a route handler,
 * http_router.h; GET only, the router answers the rest 405): 400 for a bad
 * position, 503 at the connection limit or while stopping, else the stream. */
enum MHD_Result sse_handoff_handle(struct worker *w, struct MHD_Connection *conn,
                                   struct http_request *rq, const char *path, const char *method);

#endif
