/*
 * access_list - the origin and host lists of --allowed-origins and
 * --allowed-hosts, and the Origin and Host header values they are compared
 * with, parsed into one form (struct access_addr).  Shared by config.c (a
 * list's syntax, checked at start and reload) and the worker's policy
 * (worker/http_access.h).  No allocation, no I/O.
 *
 * Origins are http or https only (what a browser sends from a web page);
 * hosts are lowercased, IPv6 literals kept in brackets by address ("[::1]"
 * is "[0:0::1]"), an origin's port filled in with its scheme's default
 * (http 80, https 443).
 */
#ifndef PERSONAD_ACCESS_LIST_H
#define PERSONAD_ACCESS_LIST_H

#include <stddef.h>
#include <stdint.h>

/* Entries per list; a longer list is refused at start. */
#define ACCESS_LIST_MAX 32
/* Longest host name (DNS: 253) or bracketed IPv6 literal. */
#define ACCESS_HOST_MAX 255
/* An origin (scheme, host, port) or a Host header value (host, port). */
struct access_addr {
    char host[ACCESS_HOST_MAX + 1]; /* lowercase; IPv6 "[canonical]" */
    uint16_t port;                  /* 0: none given (a Host entry: any port) */
    unsigned char https;            /* origins: the scheme is https */
};

/* access_parse_origin - parse an Origin value "scheme://host[:port]"
 * (len bytes of s; scheme http or https, nothing after the port) into *out,
 * the scheme's default port filled in.  0, or -1 when malformed ("null"
 * included). */
int access_parse_origin(const char *s, size_t len, struct access_addr *out);

/* access_parse_host - parse a Host value "host[:port]" (len bytes of s)
 * into *out (port 0 when none is given).  0, or -1 when malformed. */
int access_parse_host(const char *s, size_t len, struct access_addr *out);

/* access_check_origins, access_check_hosts - 0 if list is a valid
 * --allowed-origins / --allowed-hosts value (comma-separated, blanks around
 * the commas ignored, at most ACCESS_LIST_MAX entries), else -1.
 * Called by config.c. */
int access_check_origins(const char *list);
int access_check_hosts(const char *list);

/* access_parse_list - the entries of a comma-separated list into out (up
 * to ACCESS_LIST_MAX; *n of them), origins (origins != 0) or hosts; "*"
 * alone sets *any (origins only).  0, or -1 on an empty entry, a bad one, or
 * too many. */
int access_parse_list(const char *list, int origins, struct access_addr *out, size_t *n, int *any);

/* access_addr_equal - 1 if a and b name the same host and port, else 0. */
int access_addr_equal(const struct access_addr *a, const struct access_addr *b);

#endif
