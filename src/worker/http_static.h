/*
 * http_static - the dashboard's files, compiled into the binary.
 *
 * The table is generated at build time from src/dashboard/ by
 * contrib/embed-assets.sh (portable sh/od/awk; nothing compiled for the target
 * runs at build time).  With --disable-dashboard the table is empty
 * (http_static_none.c).  The route table (http_router.c) has one row for
 * every asset: it asks http_static_find whether a path is one, and
 * http_static_handle serves it with the response helpers (http_reply.h).
 *
 * With --enable-compressed-assets (the default when zlib is found) the table
 * holds each file gzip-compressed: a client whose Accept-Encoding takes gzip
 * (http_encoding.h) gets those bytes, any other the identity bytes, inflated
 * once per worker on first need into struct http_static_plain.
 */
#ifndef PERSONAD_HTTP_STATIC_H
#define PERSONAD_HTTP_STATIC_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;
struct worker;

struct http_static_asset {
    const char *path;         /* URL path, e.g. "/" or "/app.js" */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data; /* the identity bytes; NULL when compressed */
    size_t len;                /* length of the identity bytes */
    const char *etag; /* quoted strong ETag, e.g. "\"3f2a9c1d-1234\"" */
    /* Compressed builds only (else NULL, 0, NULL, 0, 0): the gzip -9n bytes
     * and their ETag ("\"3f2a9c1d-1234-gz\""), the CRC-32 of the identity
     * bytes, and where they start in the inflated buffer. */
    const unsigned char *gz;
    size_t gz_len;
    const char *gz_etag;
    uint32_t crc;
    size_t plain_off;
};

/* A worker's identity copies of compressed assets: all inflated together on
 * first need (buf: http_static_plain_total bytes); failed: that went wrong
 * (logged once, 500s from then on).  Zeroed at start. */
struct http_static_plain {
    unsigned char *buf;
    int failed;
};

/* http_static_plain_free - free p's buffer (p stays usable, zeroed). */
void http_static_plain_free(struct http_static_plain *p);

/* http_static_find - the asset served at url (exact match), or NULL. */
const struct http_static_asset *http_static_find(const char *url);

/* http_static_handle - GET or HEAD of the asset at path (a route handler,
 * http_router.h): 200 with its Content-Type, or 304 when If-None-Match lists
 * its ETag; 404 when path is no asset.  Compressed builds: gzip-coded when
 * Accept-Encoding takes it, else identity (500 when inflating failed). */
enum MHD_Result http_static_handle(struct worker *w, struct MHD_Connection *conn,
                                   struct http_request *rq, const char *path, const char *method);

#endif
