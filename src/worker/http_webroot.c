/*
 * http_webroot - see http_webroot.h.
 *
 * Per request: decode the path, open the root by name (so a new build
 * renamed into place is served at once), open the file beneath it, fstat
 * it, and hand the descriptor to libmicrohttpd, which sends it (sendfile
 * where it can) and closes it with the response.  Nothing is read into
 * memory; the size bound is checked on the fstat.  The files are local:
 * the open and fstat cost microseconds, so they run in the worker's loop.
 */
/* syscall(2) for openat2 and O_PATH are outside POSIX: glibc declares them with _GNU_SOURCE. */
#define _GNU_SOURCE 1

#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#if HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#include <sys/syscall.h>
#endif

#include "worker/http_reply.h"
#include "worker/http_webroot.h"
#include "worker/worker.h"

#define WEBROOT_PATH_MAX 4096
#define WEBROOT_MAX_DEPTH 32 /* directories below the root the O_NOFOLLOW walk descends */

int
http_webroot_claims(const char *path)
{
    static const char *const reserved[] = {"api", "ws", "healthz", "metrics"};
    if (path[0] != '/')
        return 0;
    const char *seg = path + 1;
    size_t len = strcspn(seg, "/");
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (len == strlen(reserved[i]) && memcmp(seg, reserved[i], len) == 0)
            return 0;
    return 1;
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum http_webroot_path
http_webroot_decode(const char *path, char *out, size_t outsz)
{
    if (path[0] != '/' || outsz == 0)
        return HTTP_WEBROOT_PATH_BAD;
    size_t n = 0, seg_start = 0;
    int hidden = 0;
    for (const char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t seg_len = n - seg_start;
            if (seg_len == 0) {
                /* an empty segment ("//", a trailing "/") is dropped */
            } else if ((seg_len == 1 && out[seg_start] == '.') ||
                       (seg_len == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.')) {
                return HTTP_WEBROOT_PATH_BAD;
            } else {
                if (out[seg_start] == '.')
                    hidden = 1;
                if (*p == '/') {
                    if (n + 1 >= outsz)
                        return HTTP_WEBROOT_PATH_BAD;
                    out[n++] = '/';
                }
            }
            seg_start = n;
            if (*p == '\0')
                break;
            continue;
        }
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);
            if (hi < 0 || lo < 0)
                return HTTP_WEBROOT_PATH_BAD;
            c = hi * 16 + lo;
            p += 2;
            if (c == '\0' || c == '/')
                return HTTP_WEBROOT_PATH_BAD; /* %00, %2F: never part of a file name here */
        }
        if (n + 1 >= outsz)
            return HTTP_WEBROOT_PATH_BAD;
        out[n++] = (char)c;
    }
    /* A trailing "/" was written before the segment after it turned out empty. */
    if (n > 0 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
    return hidden ? HTTP_WEBROOT_PATH_HIDDEN : HTTP_WEBROOT_PATH_OK;
}

static enum http_webroot_open
open_errno(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return HTTP_WEBROOT_MISSING;
    case EXDEV:  /* openat2 RESOLVE_BENEATH: ".." or an absolute link out */
    case ELOOP:  /* O_NOFOLLOW met a symlink, or too many of them */
    case EACCES: /* not ours to serve */
    case EPERM:
        return HTTP_WEBROOT_OUTSIDE;
    default:
        return HTTP_WEBROOT_ERROR;
    }
}

#define WEBROOT_OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

/* Open rel beneath root_fd without openat2: each directory with
 * O_DIRECTORY | O_NOFOLLOW, the last component with O_NOFOLLOW, so no
 * symlink is followed at all (rel has no "." or ".." segments). */
static int
open_walk(int root_fd, const char *rel, int flags)
{
    char comp[WEBROOT_PATH_MAX];
    int at = root_fd, depth = 0;
    const char *p = rel;
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len >= sizeof(comp)) {
            errno = ENAMETOOLONG;
            break;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        if (p[len] == '\0') {
            /* flags never hold O_CREAT, so the mode is unused; given, it spares
             * _FORTIFY_SOURCE's __openat_2 wrapper (one import) for these flags. */
            int fd = openat(at, comp, flags | O_NOFOLLOW, 0);
            int err = errno;
            if (at != root_fd)
                close(at);
            errno = err;
            return fd;
        }
        if (++depth > WEBROOT_MAX_DEPTH) {
            errno = ENOENT;
            break;
        }
        int next = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        struct stat sb;
        /* A symlink here may say ENOTDIR rather than ELOOP: it is one all the same. */
        if (next < 0 && err == ENOTDIR && fstatat(at, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(sb.st_mode))
            err = ELOOP;
        if (at != root_fd)
            close(at);
        if (next < 0) {
            errno = err;
            return -1;
        }
        at = next;
        p += len + 1;
    }
    if (at != root_fd) {
        int err = errno;
        close(at);
        errno = err;
    }
    return -1;
}

/* Open rel beneath root_fd with flags: openat2 RESOLVE_BENEATH (symlinks
 * followed while they stay beneath), or the O_NOFOLLOW walk without it. */
static int
open_beneath(int root_fd, const char *rel, int flags, int use_openat2)
{
#if HAVE_LINUX_OPENAT2_H && defined(SYS_openat2)
    if (use_openat2) {
        struct open_how how = {
            .flags = (uint64_t)flags,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long r = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (r >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)r; /* EPERM: a seccomp filter may refuse openat2; walk instead */
    }
#else
    (void)use_openat2;
#endif
    return open_walk(root_fd, rel, flags);
}

/* What st says about serving it. */
static enum http_webroot_open
check_stat(const struct stat *st)
{
    if (S_ISLNK(st->st_mode))
        return HTTP_WEBROOT_OUTSIDE; /* the walk's O_PATH | O_NOFOLLOW met a link */
    if (!S_ISREG(st->st_mode))
        return HTTP_WEBROOT_NOT_FILE;
    if ((uint64_t)st->st_size > HTTP_WEBROOT_FILE_MAX)
        return HTTP_WEBROOT_TOO_LARGE;
    return HTTP_WEBROOT_FILE;
}

enum http_webroot_open
http_webroot_open(int root_fd, const char *rel, int use_openat2, int *fd_out, struct stat *st)
{
    enum http_webroot_open res;
#ifdef O_PATH
    /* Look before opening: a FIFO or a device node is never opened to read
     * (only something renamed into place between the two opens could be). */
    int pfd = open_beneath(root_fd, rel, O_PATH | O_CLOEXEC, use_openat2);
    if (pfd < 0)
        return open_errno(errno);
    int rc = fstat(pfd, st);
    close(pfd);
    if (rc != 0)
        return HTTP_WEBROOT_ERROR;
    if ((res = check_stat(st)) != HTTP_WEBROOT_FILE)
        return res;
#endif
    int fd = open_beneath(root_fd, rel, WEBROOT_OPEN_FLAGS, use_openat2);
    if (fd < 0)
        return open_errno(errno);
    if (fstat(fd, st) != 0) {
        close(fd);
        return HTTP_WEBROOT_ERROR;
    }
    if ((res = check_stat(st)) != HTTP_WEBROOT_FILE) {
        close(fd);
        return res;
    }
    *fd_out = fd;
    return HTTP_WEBROOT_FILE;
}

const char *
http_webroot_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
        {"txt", "text/plain; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"ico", "image/vnd.microsoft.icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"wasm", "application/wasm"},
        {"pdf", "application/pdf"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
    };
    const char *base = strrchr(name, '/');
    base = base != NULL ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* The strong ETag of a file's identity: FNV-1a over device, inode, size and
 * mtime, so a file replaced (rename) or rewritten gets a new one. */
static void
file_etag(char out[HTTP_REPLY_ETAG_LEN + 1], const struct stat *st)
{
    uint64_t v[] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                    (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec};
    uint64_t h = 0xcbf29ce484222325u;
    const unsigned char *b = (const unsigned char *)v;
    for (size_t i = 0; i < sizeof(v); i++) {
        h ^= b[i];
        h *= 0x100000001b3u;
    }
    http_reply_format_etag(out, h);
}

/* Answer an open outcome other than HTTP_WEBROOT_FILE. */
static enum MHD_Result
reply_failure(struct MHD_Connection *conn, enum http_webroot_open res)
{
    switch (res) {
    case HTTP_WEBROOT_NOT_FILE:
        return http_reply_error(conn, MHD_HTTP_FORBIDDEN, "not a regular file");
    case HTTP_WEBROOT_OUTSIDE:
        return http_reply_error(conn, MHD_HTTP_FORBIDDEN, "outside the web root");
    case HTTP_WEBROOT_TOO_LARGE:
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "file over the web root's size limit (64 MiB)");
    case HTTP_WEBROOT_MISSING:
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    case HTTP_WEBROOT_FILE:
    case HTTP_WEBROOT_ERROR:
        break;
    }
    return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot open the file");
}

enum MHD_Result
http_webroot_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                    const char *path, const char *method)
{
    (void)rq, (void)method;
    char rel[WEBROOT_PATH_MAX];
    enum http_webroot_path dp = http_webroot_decode(path, rel, sizeof(rel));
    if (dp == HTTP_WEBROOT_PATH_BAD)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "invalid path");
    int root = open(w->cfg->web_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "web root unavailable");
    int fd = -1;
    struct stat st;
    const char *name = rel;
    enum http_webroot_open res = HTTP_WEBROOT_MISSING;
    if (dp == HTTP_WEBROOT_PATH_OK && rel[0] != '\0')
        res = http_webroot_open(root, rel, 1, &fd, &st);
    if (res == HTTP_WEBROOT_MISSING) { /* "/", a hidden name or no such file: the app */
        name = "index.html";
        res = http_webroot_open(root, name, 1, &fd, &st);
    }
    close(root);
    if (res != HTTP_WEBROOT_FILE)
        return reply_failure(conn, res);
    char etag[HTTP_REPLY_ETAG_LEN + 1];
    file_etag(etag, &st);
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (r == NULL) {
        close(fd);
        return MHD_NO;
    }
    r = http_with_header(r, "X-Content-Type-Options", "nosniff");
    return http_reply_tagged(conn, r, etag, http_webroot_content_type(name), "no-cache");
}
