/*
 * http_static - look up the dashboard's files, compiled into the binary.
 *
 * The table comes from dashboard_assets.c, which contrib/embed-assets.sh
 * generates at build time from src/dashboard/ (see src/dashboard/dashboard.am).
 * The HTTP router's dashboard row calls http_static_find() to match a path
 * and http_static_handle() to serve it (Content-Type, ETag, If-None-Match;
 * libmicrohttpd drops the body of a HEAD).  The table is read-only and has a
 * handful of entries: a linear search is fine.
 */
#include <string.h>

#include "worker/http_reply.h"
#include "worker/http_static.h"

/* Defined in the generated dashboard_assets.c. */
extern const struct http_static_asset http_static_assets[];
extern const size_t http_static_assets_count;

/*
 * http_static_find - the asset served at url, or NULL.
 *
 * url is the request path without query string; it must match exactly
 * ("/" is the page itself).  O(n) over a few entries.
 */
const struct http_static_asset *
http_static_find(const char *url)
{
    if (url == NULL)
        return NULL;
    for (size_t i = 0; i < http_static_assets_count; i++)
        if (strcmp(http_static_assets[i].path, url) == 0)
            return &http_static_assets[i];
    return NULL;
}

enum MHD_Result
http_static_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                   const char *path, const char *method)
{
    (void)w, (void)rq, (void)method;
    const struct http_static_asset *a = http_static_find(path);
    if (a == NULL)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    return http_reply_tagged(conn, r, a->etag, a->content_type, "no-cache");
}
