/*
 * http_webroot_none - http_webroot for builds configured with
 * --disable-web-root: the web root claims no path (the router's table with a
 * web root is never chosen: the master refuses --web-root at start).
 */
#include "worker/http_reply.h"
#include "worker/http_webroot.h"

/* http_webroot_claims - always 0: --web-root is not compiled in. */
int
http_webroot_claims(const char *path)
{
    (void)path;
    return 0;
}

/* http_webroot_handle - never routed to: 404. */
enum MHD_Result
http_webroot_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                    const char *path, const char *method)
{
    (void)w, (void)rq, (void)path, (void)method;
    return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
}
