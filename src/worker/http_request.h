/*
 * http_request - the context of one HTTP request in a worker (libmicrohttpd's
 * req_cls): what the router notes before routing, and the state an endpoint
 * keeps in the request until it completes.
 *
 * Created by http_router_uri_logger before libmicrohttpd touches the URL,
 * handed to the route's handler (http_router.h), freed by
 * http_router_completed after calling the route's done hook.  The router
 * owns the memory; a handler owns only what it puts in its own member.
 *
 * conn_set.h is included for struct conn_pending only: the request context is
 * allocated before the route is known, so it embeds each endpoint's state.
 */
#ifndef PERSONAD_HTTP_REQUEST_H
#define PERSONAD_HTTP_REQUEST_H

#include "worker/conn_set.h"

struct http_request {
    const char *target_end; /* end of the request target in MHD's line buffer */
    int headers_done;       /* the handler's first call has happened */
    /* The route's done hook (NULL: none), set when the request is routed;
     * http_router_completed calls it once, before freeing the context. */
    void (*done)(struct http_request *rq);
    struct conn_pending ws; /* /ws: the first event the client gets, kept until the hand-off */
    int sse_taken;          /* /api/events: the socket is the set's, MHD holds a placeholder */
    /* A cors row's request from an allowed origin: its Origin header (MHD's
     * copy, as long as the request), for Access-Control-Allow-Origin; else NULL. */
    const char *cors_origin;
};

#endif
