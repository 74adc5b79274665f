/*
 * http_access - see http_access.h.
 *
 * Every value is parsed into a struct access_addr before it is
 * compared, so that a list entry and a request header meet in one form:
 * lowercase names, IPv6 literals as inet_ntop writes them, ports filled in.
 * Nothing is allocated: the lists live in struct http_access, bounded by
 * ACCESS_LIST_MAX.
 */
#include "build_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/access_list.h"
#include "worker/http_access.h"
#include "worker/http_reply.h"

int
http_access_set(struct http_access *a, const char *origins, const char *hosts)
{
    struct http_access next;
    int any_host;
    if (access_parse_list(origins, 1, next.origins, &next.n_origins, &next.any_origin) != 0 ||
        access_parse_list(hosts, 0, next.hosts, &next.n_hosts, &any_host) != 0)
        return -1;
    *a = next;
    return 0;
}

int
http_access_same_origin(const struct access_addr *origin, const char *host)
{
    struct access_addr h;
    if (host == NULL || access_parse_host(host, strlen(host), &h) != 0)
        return 0;
    if (h.port == 0)
        h.port = origin->https ? 443 : 80;
    return access_addr_equal(origin, &h);
}

/* 1 if origin (a header value) parses and is in a's list. */
static int
origin_listed(const struct http_access *a, const char *origin, struct access_addr *o,
              int *parsed)
{
    *parsed = access_parse_origin(origin, strlen(origin), o) == 0;
    if (!*parsed)
        return 0;
    for (size_t i = 0; i < a->n_origins; i++)
        if (a->origins[i].https == o->https && access_addr_equal(&a->origins[i], o))
            return 1;
    return 0;
}

int
http_access_origin_ok(const struct http_access *a, const char *origin, const char *host)
{
    if (origin == NULL || a->any_origin)
        return 1;
    struct access_addr o;
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
    struct access_addr o;
    int parsed;
    int listed = origin_listed(a, origin, &o, &parsed);
    return listed || (a->any_origin && parsed);
}

int
http_access_host_ok(const struct http_access *a, const char *host, uint16_t default_port)
{
    if (a->n_hosts == 0)
        return 1;
    struct access_addr h;
    if (host == NULL || access_parse_host(host, strlen(host), &h) != 0)
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
