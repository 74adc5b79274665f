/*
 * http_encoding - which content coding a request's Accept-Encoding allows
 * (RFC 9110 12.5.3), for the dashboard's gzip-compressed assets (http_static.c).
 *
 * Pure string work: no libmicrohttpd, no allocation.
 */
#ifndef PERSONAD_HTTP_ENCODING_H
#define PERSONAD_HTTP_ENCODING_H

/*
 * http_accepts_gzip - 1 when a response may be sent gzip-coded to a request
 * whose Accept-Encoding header is value, else 0 (send identity).
 *
 * NULL (no header) is 0: identity stays what every existing client gets.
 * The list is codings (case-insensitive tokens) each with optional
 * parameters; "q=" weights it (0 to 1, three decimals at most).  gzip (or
 * x-gzip) takes its own weight, else that of "*", else 0; gzip is chosen when
 * that weight is above 0 and not below identity's (its own, else "*"'s, else
 * none).  An element that does not parse (a bad q-value, a bad token) is
 * ignored, as if not listed.
 */
int http_accepts_gzip(const char *value);

#endif
