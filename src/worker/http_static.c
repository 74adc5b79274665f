/*
 * http_static - look up the dashboard's files, compiled into the binary.
 *
 * The table comes from dashboard_assets.c, which contrib/embed-assets.sh
 * generates at build time from src/dashboard/ (see src/dashboard/dashboard.am).
 * The HTTP router's dashboard row calls http_static_find() to match a path
 * and http_static_handle() to serve it (Content-Type, ETag, If-None-Match;
 * libmicrohttpd drops the body of a HEAD).  The table is read-only and has a
 * handful of entries: a linear search is fine.
 *
 * Compressed builds (ENABLE_COMPRESSED_ASSETS) embed gzip bytes only: they
 * are sent as they are when Accept-Encoding takes gzip; the identity bytes
 * are inflated with zlib, every asset at once, into the worker's buffer the
 * first time a client needs them, checked against the length and CRC-32
 * recorded at build time.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>

#ifdef ENABLE_COMPRESSED_ASSETS
#include <zlib.h>
#endif

#include "common/log.h"
#include "worker/http_encoding.h"
#include "worker/http_reply.h"
#include "worker/http_static.h"
#include "worker/worker.h"

/* Defined in the generated dashboard_assets.c. */
extern const struct http_static_asset http_static_assets[];
extern const size_t http_static_assets_count;
extern const size_t http_static_plain_total;

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

void
http_static_plain_free(struct http_static_plain *p)
{
    free(p->buf);
    p->buf = NULL;
    p->failed = 0;
}

#ifdef ENABLE_COMPRESSED_ASSETS
/* Inflate a's gzip bytes to out (exactly a->len bytes): 0, or -1 when the
 * stream is bad or its length or CRC-32 is not the recorded one. */
static int
inflate_asset(const struct http_static_asset *a, unsigned char *out)
{
    if (a->gz_len > UINT32_MAX || a->len > UINT32_MAX)
        return -1;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) /* 16: a gzip wrapper */
        return -1;
    zs.next_in = (unsigned char *)a->gz;
    zs.avail_in = (uInt)a->gz_len;
    zs.next_out = out;
    zs.avail_out = (uInt)a->len;
    int rc = inflate(&zs, Z_FINISH);
    int ok = rc == Z_STREAM_END && zs.avail_in == 0 && zs.total_out == a->len;
    if (inflateEnd(&zs) != Z_OK)
        ok = 0;
    if (ok && crc32(0L, out, (uInt)a->len) != a->crc)
        ok = 0;
    return ok ? 0 : -1;
}

/* The identity bytes of a (a compressed asset), inflating every asset into
 * p on first need; NULL when that failed (logged the first time). */
static const unsigned char *
plain_bytes(struct http_static_plain *p, const struct http_static_asset *a)
{
    if (p->buf == NULL && !p->failed) {
        unsigned char *buf = malloc(http_static_plain_total + 1); /* +1: never malloc(0) */
        const char *bad = buf == NULL ? "out of memory" : NULL;
        for (size_t i = 0; bad == NULL && i < http_static_assets_count; i++)
            if (inflate_asset(&http_static_assets[i], buf + http_static_assets[i].plain_off) != 0)
                bad = http_static_assets[i].path;
        if (bad != NULL) {
            log_error("dashboard: cannot inflate the embedded assets (%s): 500 from now on", bad);
            free(buf);
            p->failed = 1;
        } else {
            p->buf = buf;
        }
    }
    return p->buf == NULL ? NULL : p->buf + a->plain_off;
}
#endif

enum MHD_Result
http_static_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                   const char *path, const char *method)
{
    (void)rq, (void)method;
    const struct http_static_asset *a = http_static_find(path);
    if (a == NULL)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    const unsigned char *data = a->data;
    size_t len = a->len;
    const char *etag = a->etag;
    int gzip = 0;
#ifdef ENABLE_COMPRESSED_ASSETS
    if (http_accepts_gzip(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING))) {
        data = a->gz, len = a->gz_len, etag = a->gz_etag;
        gzip = 1;
    } else if ((data = plain_bytes(&w->static_plain, a)) == NULL) {
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "dashboard unavailable");
    }
#else
    (void)w;
#endif
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (a->gz != NULL)
        r = http_with_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (gzip && !http_reply_etag_matches(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                     MHD_HTTP_HEADER_IF_NONE_MATCH),
                                         etag))
        r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    return http_reply_tagged(conn, r, etag, a->content_type, "no-cache");
}
