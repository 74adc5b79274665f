/*
 * http_access - see http_access.h.
 *
 * Every value is parsed into a struct http_access_addr before it is
 * compared, so that a list entry and a request header meet in one form:
 * lowercase names, IPv6 literals as inet_ntop writes them, ports filled in.
 * Nothing is allocated: the lists live in struct http_access, bounded by
 * HTTP_ACCESS_LIST_MAX.
 */
#include "build_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "worker/http_access.h"
#include "worker/http_reply.h"

/* A port: 1 to 5 digits, 1..65535. */
static int
parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* A reg-name or IPv4 address: letters, digits, '-', '.', '_', '~' (what a
 * browser puts in an origin or a Host: IDNs arrive as punycode). */
static int
name_char(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int
http_access_parse_host(const char *s, size_t len, struct http_access_addr *out)
{
    struct http_access_addr a;
    memset(&a, 0, sizeof(a));
    size_t host_end; /* where the host ends in s (the port's colon, or len) */
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        size_t n = (size_t)(close - s) - 1;
        char lit[INET6_ADDRSTRLEN];
        unsigned char bin[16];
        if (n == 0 || n >= sizeof(lit))
            return -1;
        memcpy(lit, s + 1, n);
        lit[n] = '\0';
        if (inet_pton(AF_INET6, lit, bin) != 1 ||
            inet_ntop(AF_INET6, bin, lit, sizeof(lit)) == NULL)
            return -1;
        snprintf(a.host, sizeof(a.host), "[%s]", lit);
        host_end = (size_t)(close - s) + 1;
        if (host_end < len && s[host_end] != ':')
            return -1;
    } else {
        const char *colon = memchr(s, ':', len);
        host_end = colon != NULL ? (size_t)(colon - s) : len;
        if (host_end == 0 || host_end > 253)
            return -1;
        for (size_t i = 0; i < host_end; i++) {
            if (!name_char((unsigned char)s[i]))
                return -1;
            a.host[i] = (char)tolower((unsigned char)s[i]);
        }
    }
    if (host_end < len && parse_port(s + host_end + 1, len - host_end - 1, &a.port) != 0)
        return -1;
    *out = a;
    return 0;
}

int
http_access_parse_origin(const char *s, size_t len, struct http_access_addr *out)
{
    size_t scheme;
    int https;
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0)
        scheme = 7, https = 0;
    else if (len >= 8 && strncasecmp(s, "https://", 8) == 0)
        scheme = 8, https = 1;
    else
        return -1; /* "null", other schemes, garbage */
    struct http_access_addr a;
    if (http_access_parse_host(s + scheme, len - scheme, &a) != 0)
        return -1;
    a.https = (unsigned char)https;
    if (a.port == 0)
        a.port = https ? 443 : 80;
    *out = a;
    return 0;
}

static int
addr_equal(const struct http_access_addr *a, const struct http_access_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* parse_list - the entries of a comma-separated list into out (up to
 * HTTP_ACCESS_LIST_MAX; *n of them), origins or hosts; "*" alone sets *any
 * (origins only).  0, or -1 on an empty entry, a bad one, or too many. */
static int
parse_list(const char *list, int origins, struct http_access_addr *out, size_t *n, int *any)
{
    *n = 0;
    *any = 0;
    if (list[0] == '\0')
        return 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        const char *e = p + len, *next = *e == ',' ? e + 1 : NULL;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        len = (size_t)(e - p);
        if (origins && len == 1 && p[0] == '*') {
            *any = 1;
        } else {
            if (*n == HTTP_ACCESS_LIST_MAX)
                return -1;
            int rc = origins ? http_access_parse_origin(p, len, &out[*n])
                             : http_access_parse_host(p, len, &out[*n]);
            if (rc != 0)
                return -1;
            ++*n;
        }
        if (next == NULL)
            break;
        p = next;
    }
    return *any && *n > 0 ? -1 : 0; /* "*" stands alone */
}

int
http_access_check_origins(const char *list)
{
    struct http_access_addr tmp[HTTP_ACCESS_LIST_MAX];
    size_t n;
    int any;
    return parse_list(list, 1, tmp, &n, &any);
}

int
http_access_check_hosts(const char *list)
{
    struct http_access_addr tmp[HTTP_ACCESS_LIST_MAX];
    size_t n;
    int any;
    return parse_list(list, 0, tmp, &n, &any);
}

int
http_access_set(struct http_access *a, const char *origins, const char *hosts)
{
    struct http_access next;
    int any_host;
    if (parse_list(origins, 1, next.origins, &next.n_origins, &next.any_origin) != 0 ||
        parse_list(hosts, 0, next.hosts, &next.n_hosts, &any_host) != 0)
        return -1;
    *a = next;
    return 0;
}

int
http_access_same_origin(const struct http_access_addr *origin, const char *host)
{
    struct http_access_addr h;
    if (host == NULL || http_access_parse_host(host, strlen(host), &h) != 0)
        return 0;
    if (h.port == 0)
        h.port = origin->https ? 443 : 80;
    return addr_equal(origin, &h);
}

/* 1 if origin (a header value) parses and is in a's list. */
static int
origin_listed(const struct http_access *a, const char *origin, struct http_access_addr *o,
              int *parsed)
{
    *parsed = http_access_parse_origin(origin, strlen(origin), o) == 0;
    if (!*parsed)
        return 0;
    for (size_t i = 0; i < a->n_origins; i++)
        if (a->origins[i].https == o->https && addr_equal(&a->origins[i], o))
            return 1;
    return 0;
}

int
http_access_origin_ok(const struct http_access *a, const char *origin, const char *host)
{
    if (origin == NULL || a->any_origin)
        return 1;
    struct http_access_addr o;
    int parsed;
    if (origin_listed(a, origin, &o, &parsed))
        return 1;
    return parsed && http_access_same_origin(&o, host);
}

int
http_access_cors_ok(const struct http_access *a, const char *origin)
{
    if (origin == NULL)
        return 0;
    struct http_access_addr o;
    int parsed;
    int listed = origin_listed(a, origin, &o, &parsed);
    return listed || (a->any_origin && parsed);
}

int
http_access_host_ok(const struct http_access *a, const char *host, uint16_t default_port)
{
    if (a->n_hosts == 0)
        return 1;
    struct http_access_addr h;
    if (host == NULL || http_access_parse_host(host, strlen(host), &h) != 0)
        return 0;
    if (h.port == 0)
        h.port = default_port;
    for (size_t i = 0; i < a->n_hosts; i++)
        if (strcmp(a->hosts[i].host, h.host) == 0 &&
            (a->hosts[i].port == 0 || a->hosts[i].port == h.port))
            return 1;
    return 0;
}

struct MHD_Response *
http_access_with_cors(struct MHD_Response *r, const char *origin)
{
    if (origin == NULL)
        return r;
    r = http_with_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    return http_with_header(r, MHD_HTTP_HEADER_VARY, "Origin");
}

enum MHD_Result
http_access_preflight(struct MHD_Connection *conn, const char *origin, const char *allow,
                      bool auth_on)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    r = http_access_with_cors(r, origin);
    r = http_with_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS, allow);
    r = http_with_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE,
                         HTTP_ACCESS_PREFLIGHT_MAX_AGE_S);
    if (auth_on)
        r = http_with_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_HEADERS, "Authorization");
    return http_reply_queue(conn, MHD_HTTP_NO_CONTENT, r);
}
