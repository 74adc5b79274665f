/*
 * http_static_none - http_static for builds configured with --disable-dashboard:
 * no assets, so the router answers 404 for every static path.
 */
#include <stddef.h>

#include "http_static.h"

/* http_static_find - always NULL: the dashboard is not compiled in. */
const struct http_static_asset *
http_static_find(const char *url)
{
    (void)url;
    return NULL;
}
