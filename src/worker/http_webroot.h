/*
 * http_webroot - --web-root=DIR: DIR's files at / instead of the embedded
 * dashboard (http_static), for a single-page app built elsewhere (the
 * original platform's React frontend, `npm run build`).
 *
 *   /                     DIR/index.html
 *   /a/b.js               DIR/a/b.js when it is a regular file beneath DIR
 *   /some/route           DIR/index.html when no such file exists (the SPA
 *                         fallback: the app routes on the client)
 *   /api..., /ws..., /healthz..., /metrics...   never (the router's 404)
 *
 * Files are opened per request (always fresh, nothing cached) and sent from
 * their descriptor by libmicrohttpd; at most HTTP_WEBROOT_FILE_MAX bytes.
 * Content-Type by extension, a strong ETag of the file's identity (device,
 * inode, size, mtime), 304 by If-None-Match, HEAD without a body.  Nothing
 * outside DIR is ever opened: the path is decoded strictly (%2F, %00, a
 * malformed escape, "." and ".." segments: 400), resolved beneath DIR
 * (openat2 RESOLVE_BENEATH; without openat2, component by component with
 * O_NOFOLLOW, so no symlink at all), and only a regular file is served
 * (a directory, FIFO or device: 403; a symlink leading out: 403).  Names
 * starting with "." are never served (they fall back like missing files).
 */
#ifndef PERSONAD_HTTP_WEBROOT_H
#define PERSONAD_HTTP_WEBROOT_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;
struct worker;

/* The largest file served (64 MiB); a larger one is a 500 saying so. */
#define HTTP_WEBROOT_FILE_MAX ((uint64_t)64 << 20)

/* What a request path turns into (http_webroot_decode). */
enum http_webroot_path {
    HTTP_WEBROOT_PATH_OK,     /* out holds the relative path ("" for /) */
    HTTP_WEBROOT_PATH_HIDDEN, /* a segment starts with ".": not served, falls back */
    HTTP_WEBROOT_PATH_BAD,    /* 400: bad escape, %00, %2F, "." or "..", too long */
};

/* How opening a relative path beneath the root went (http_webroot_open). */
enum http_webroot_open {
    HTTP_WEBROOT_FILE,      /* *fd is the regular file, *st its fstat */
    HTTP_WEBROOT_MISSING,   /* no such file (ENOENT, ENOTDIR): falls back */
    HTTP_WEBROOT_NOT_FILE,  /* 403: a directory, FIFO, device or socket */
    HTTP_WEBROOT_OUTSIDE,   /* 403: a symlink or ".." leading out of the root */
    HTTP_WEBROOT_TOO_LARGE, /* 500: over HTTP_WEBROOT_FILE_MAX */
    HTTP_WEBROOT_ERROR,     /* 500: any other failure (errno kept) */
};

struct stat;

/* http_webroot_claims - 1 if the web root answers path: anything whose first
 * segment is not api, ws, healthz or metrics. */
int http_webroot_claims(const char *path);

/* http_webroot_decode - decode a request path (as sent, "/..." without the
 * query) into the path relative to the root, in out (outsz bytes): empty
 * segments dropped, percent escapes decoded.  Pure. */
enum http_webroot_path http_webroot_decode(const char *path, char *out, size_t outsz);

/* http_webroot_open - open rel (from http_webroot_decode, not "") beneath
 * the directory root_fd; use_openat2 0 forces the O_NOFOLLOW walk.  On
 * HTTP_WEBROOT_FILE the caller owns *fd. */
enum http_webroot_open http_webroot_open(int root_fd, const char *rel, int use_openat2, int *fd,
                                         struct stat *st);

/* http_webroot_content_type - the Content-Type for a file name by its
 * extension (application/octet-stream when unknown). */
const char *http_webroot_content_type(const char *name);

/* http_webroot_handle - GET or HEAD of path under w->cfg->web_root (a route
 * handler, http_router.h). */
enum MHD_Result http_webroot_handle(struct worker *w, struct MHD_Connection *conn,
                                    struct http_request *rq, const char *path, const char *method);

#endif
