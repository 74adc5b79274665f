/*
 * http_static - the dashboard's files, compiled into the binary.
 *
 * The table is generated at build time from src/dashboard/ by
 * contrib/embed-assets.sh (portable sh/od/awk; nothing compiled for the target
 * runs at build time).  With --disable-dashboard the table is empty
 * (http_static_none.c).  The route table (http_router.c) has one row for
 * every asset: it asks http_static_find whether a path is one, and
 * http_static_handle serves it with the response helpers (http_reply.h).
 */
#ifndef PERSONAD_HTTP_STATIC_H
#define PERSONAD_HTTP_STATIC_H

#include <microhttpd.h>
#include <stddef.h>

struct http_request;
struct worker;

struct http_static_asset {
    const char *path;         /* URL path, e.g. "/" or "/app.js" */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong ETag, e.g. "\"3f2a9c1d-1234\"" */
};

/* http_static_find - the asset served at url (exact match), or NULL. */
const struct http_static_asset *http_static_find(const char *url);

/* http_static_handle - GET or HEAD of the asset at path (a route handler,
 * http_router.h): 200 with its Content-Type, or 304 when If-None-Match lists
 * its ETag; 404 when path is no asset. */
enum MHD_Result http_static_handle(struct worker *w, struct MHD_Connection *conn,
                                   struct http_request *rq, const char *path, const char *method);

#endif
