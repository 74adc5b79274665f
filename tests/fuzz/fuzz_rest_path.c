/*
 * fuzz_rest_path - libFuzzer target: a request path through the worker's
 * pure path code, as http_router_handler hands it on.
 *
 * Input: one byte for the method, one for the decoder's output size, then
 * the path as sent (up to the first NUL: MHD's string).  The path is routed
 * through both route tables (http_router_lookup); what the
 * /api/clusters/{name} row gets is checked as rest_api_cluster does and
 * decoded by rest_api_decode_name; the path is decoded for --web-root by
 * http_webroot_decode.  The checks are the decoders' contracts: a decoded
 * name fits the buffer and holds no NUL, re-encoding it decodes to the same
 * bytes; a web-root path has no empty, "." or ".." segment, no leading "/",
 * and is NUL-terminated inside its buffer.
 */
#include "build_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/persona.h"
#include "worker/http_router.h"
#include "worker/http_webroot.h"
#include "worker/rest_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "HEAD", "POST", "OPTIONS", "get", "PATCH", "BREW"};

static void
check_name(const char *path, size_t out_size)
{
    char *out = malloc(out_size ? out_size : 1); /* exact size: ASan sees a write past it */
    if (out == NULL)
        return;
    long n = rest_api_decode_name(path, out, out_size);
    if (n == REST_API_NAME_BAD_ESCAPE || n == REST_API_NAME_TOO_LONG) {
        free(out);
        return;
    }
    if (n < 0 || (size_t)n > out_size || memchr(out, '\0', (size_t)n) != NULL)
        abort();
    if (strchr(path, '%') == NULL && (strlen(path) != (size_t)n || memcmp(out, path, (size_t)n)))
        abort();
    /* Every byte escaped (upper or lower case hex): the same name again. */
    char *enc = malloc(3 * (size_t)n + 1), *again = malloc((size_t)n + 1);
    if (enc != NULL && again != NULL) {
        for (long i = 0; i < n; i++)
            snprintf(enc + 3 * i, 4, i % 2 ? "%%%02x" : "%%%02X", (unsigned char)out[i]);
        enc[3 * n] = '\0';
        if (rest_api_decode_name(enc, again, (size_t)n + 1) != n || memcmp(again, out, (size_t)n))
            abort();
    }
    free(enc);
    free(again);
    free(out);
}

static void
route(const struct http_route *table, size_t n, const char *path, const char *method)
{
    const struct http_route *row;
    const char *rest;
    enum http_router_status st = http_router_lookup(table, n, path, method, &row, &rest);
    if (st == HTTP_ROUTER_NOT_FOUND) {
        if (row != NULL || rest != NULL)
            abort();
        return;
    }
    if (row == NULL || row < table || row >= table + n || rest == NULL || rest < path ||
        rest > path + strlen(path))
        abort();
    if (st == HTTP_ROUTER_FOUND && row->handler == rest_api_cluster && rest[0] != '\0' &&
        strchr(rest, '/') == NULL)
        check_name(rest, PERSONA_NAME_MAX_BYTES + 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    size_t out_size = data[1];
    char *path = malloc(size - 1);
    if (path == NULL)
        return 0;
    memcpy(path, data + 2, size - 2);
    path[size - 2] = '\0';

    size_t n;
    const struct http_route *table = http_router_routes(&n);
    route(table, n, path, method);
    table = http_router_webroot_routes(&n);
    route(table, n, path, method);
    check_name(path, out_size);

#ifdef ENABLE_WEB_ROOT
    char *rel = malloc(out_size ? out_size : 1);
    if (rel != NULL) {
        enum http_webroot_path w = http_webroot_decode(path, rel, out_size);
        if (w == HTTP_WEBROOT_PATH_OK || w == HTTP_WEBROOT_PATH_HIDDEN) {
            size_t len = strnlen(rel, out_size);
            if (len >= out_size || rel[0] == '/' || (len > 0 && rel[len - 1] == '/') ||
                strstr(rel, "//") != NULL)
                abort();
            int hidden = 0;
            for (const char *seg = rel; *seg != '\0';) {
                size_t sl = strcspn(seg, "/");
                if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                    abort();
                hidden |= seg[0] == '.';
                seg += sl + (seg[sl] == '/');
            }
            if (hidden != (w == HTTP_WEBROOT_PATH_HIDDEN))
                abort();
        }
        free(rel);
    }
#endif
    free(path);
    return 0;
}
