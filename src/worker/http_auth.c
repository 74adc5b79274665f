/*
 * http_auth - see http_auth.h.
 */
#include "build_config.h"

#include "worker/http_auth.h"

#include <string.h>
#include <strings.h>

#include "worker/http_reply.h"

/* 1 if path's first segment is seg ("/seg", "/seg/...", "/seg?..." never
 * reaches here: MHD split off the query). */
static int
first_segment_is(const char *path, const char *seg)
{
    size_t n = strlen(seg);
    return path[0] == '/' && strncmp(path + 1, seg, n) == 0 &&
           (path[1 + n] == '\0' || path[1 + n] == '/');
}

int
http_auth_protected(const char *path, const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return 0;
    return first_segment_is(path, "ws") || first_segment_is(path, "api") ||
           first_segment_is(path, "metrics");
}

static int
blank(char c)
{
    return c == ' ' || c == '\t';
}

int
http_auth_bearer(const char *value, const char **token, size_t *len)
{
    while (blank(*value))
        value++;
    if (strncasecmp(value, "Bearer", 6) != 0 || !blank(value[6]))
        return -1;
    const char *t = value + 6;
    while (blank(*t))
        t++;
    size_t n = strlen(t);
    while (n > 0 && blank(t[n - 1]))
        n--;
    if (n == 0)
        return -1;
    *token = t;
    *len = n;
    return 0;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
http_auth_decode(const char *in, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(in[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o == out_size)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

int
http_auth_allowed(const struct auth_tokens *tokens, const char *path, const char *method,
                  const char *authorization, const char *access_token, size_t access_token_len)
{
    if (tokens == NULL || !http_auth_protected(path, method))
        return 1;
    const char *tok;
    size_t len;
    if (authorization != NULL && http_auth_bearer(authorization, &tok, &len) == 0)
        return len <= AUTH_TOKEN_MAX_LEN && auth_tokens_match(tokens, tok, len);
    if (access_token == NULL)
        return 0;
    char buf[AUTH_TOKEN_MAX_LEN];
    long n = http_auth_decode(access_token, access_token_len, buf, sizeof(buf));
    int ok = n > 0 && auth_tokens_match(tokens, buf, (size_t)n);
    memset(buf, 0, sizeof(buf));
    return ok;
}

int
http_auth_request_ok(const struct auth_tokens *tokens, struct MHD_Connection *conn,
                     const char *path, const char *method)
{
    if (tokens == NULL || !http_auth_protected(path, method))
        return 1;
    const char *authorization =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *q = NULL;
    size_t qlen = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, HTTP_AUTH_QUERY_PARAM,
                                      strlen(HTTP_AUTH_QUERY_PARAM), &q, &qlen) != MHD_YES)
        q = NULL;
    else if (q == NULL)
        q = "", qlen = 0; /* ?access_token without a value */
    return http_auth_allowed(tokens, path, method, authorization, q, qlen);
}

struct MHD_Response *
http_auth_response(void)
{
    struct MHD_Response *r = http_json_response("{\"error\":\"unauthorized\"}");
    return http_with_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, HTTP_AUTH_CHALLENGE);
}
