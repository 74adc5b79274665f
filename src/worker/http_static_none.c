/*
 * http_static_none - http_static for builds configured with --disable-dashboard:
 * no assets, so the router answers 404 for every static path.
 */
#include <stddef.h>

#include "worker/http_reply.h"
#include "worker/http_static.h"

/* http_static_find - always NULL: the dashboard is not compiled in. */
const struct http_static_asset *
http_static_find(const char *url)
{
    (void)url;
    return NULL;
}

/* http_static_plain_free - nothing to free: never filled. */
void
http_static_plain_free(struct http_static_plain *p)
{
    p->buf = NULL;
    p->failed = 0;
}

/* http_static_handle - never routed to (no path is an asset): 404. */
enum MHD_Result
http_static_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                   const char *path, const char *method)
{
    (void)w, (void)rq, (void)path, (void)method;
    return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
}
