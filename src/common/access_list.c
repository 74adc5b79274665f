/*
 * access_list - see access_list.h.
 *
 * Every value is parsed into a struct access_addr before it is compared, so
 * that a list entry and a request header meet in one form: lowercase names,
 * IPv6 literals as inet_ntop writes them, ports filled in.  Nothing is
 * allocated: a list is at most ACCESS_LIST_MAX entries in the caller's array.
 */
#include "build_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/access_list.h"

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
access_parse_host(const char *s, size_t len, struct access_addr *out)
{
    struct access_addr a;
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
            /* DNS names compare in ASCII case, whatever the locale. */
            a.host[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        }
    }
    if (host_end < len && parse_port(s + host_end + 1, len - host_end - 1, &a.port) != 0)
        return -1;
    *out = a;
    return 0;
}

int
access_parse_origin(const char *s, size_t len, struct access_addr *out)
{
    size_t scheme;
    int https;
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0)
        scheme = 7, https = 0;
    else if (len >= 8 && strncasecmp(s, "https://", 8) == 0)
        scheme = 8, https = 1;
    else
        return -1; /* "null", other schemes, garbage */
    struct access_addr a;
    if (access_parse_host(s + scheme, len - scheme, &a) != 0)
        return -1;
    a.https = (unsigned char)https;
    if (a.port == 0)
        a.port = https ? 443 : 80;
    *out = a;
    return 0;
}

int
access_addr_equal(const struct access_addr *a, const struct access_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* access_parse_list - the entries of a comma-separated list into out (up to
 * ACCESS_LIST_MAX; *n of them), origins or hosts; "*" alone sets *any
 * (origins only).  0, or -1 on an empty entry, a bad one, or too many. */
int
access_parse_list(const char *list, int origins, struct access_addr *out, size_t *n, int *any)
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
            if (*n == ACCESS_LIST_MAX)
                return -1;
            int rc = origins ? access_parse_origin(p, len, &out[*n])
                             : access_parse_host(p, len, &out[*n]);
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
access_check_origins(const char *list)
{
    struct access_addr tmp[ACCESS_LIST_MAX];
    size_t n;
    int any;
    return access_parse_list(list, 1, tmp, &n, &any);
}

int
access_check_hosts(const char *list)
{
    struct access_addr tmp[ACCESS_LIST_MAX];
    size_t n;
    int any;
    return access_parse_list(list, 0, tmp, &n, &any);
}
