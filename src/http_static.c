/*
 * http_static - look up the dashboard's files, compiled into the binary.
 *
 * The table comes from dashboard_assets.c, which contrib/embed-assets.sh
 * generates at build time from src/dashboard/ (see src/dashboard/dashboard.am).
 * The HTTP router calls http_static_find() and does the serving itself
 * (Content-Type, ETag, If-None-Match, HEAD).  The table is read-only and has a
 * handful of entries: a linear search is fine.
 */
#include <string.h>

#include "http_static.h"

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
