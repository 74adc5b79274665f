/*
 * http_static - the dashboard's files, compiled into the binary.
 *
 * The table is generated at build time from src/dashboard/ by
 * contrib/embed-assets.sh (portable sh/od/awk; nothing compiled for the target
 * runs at build time).  With --disable-dashboard the table is empty.
 */
#ifndef PERSONAD_HTTP_STATIC_H
#define PERSONAD_HTTP_STATIC_H

#include <stddef.h>

struct http_static_asset {
    const char *path;         /* URL path, e.g. "/" or "/app.js" */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong ETag, e.g. "\"3f2a9c1d-1234\"" */
};

/* http_static_find - the asset served at url (exact match), or NULL. */
const struct http_static_asset *http_static_find(const char *url);

#endif
