/*
 * tls_front - HTTPS and WSS in the worker's own loop (--tls-cert/--tls-key).
 *
 * Each accepted TCP connection gets a front: a GnuTLS session on the client's
 * socket and a socketpair whose other end goes to libmicrohttpd
 * (MHD_add_connection, with the client's address), which sees plain HTTP/1.1.
 * The front copies plaintext both ways.  Everything after it is the plain
 * path, unchanged: the /ws hand-off (dup, MHD's copy closed) and the SSE
 * hand-off (dup, suspend, dup2) take MHD's end of the pair, and the streams
 * write their frames into it with one writev as on TCP.
 *
 * Why not libmicrohttpd's own TLS: 0.9.75 gives an upgraded TLS connection
 * the part of its pool the write buffer left free, which is nothing (the
 * write buffer takes all of it), so it pumps 4 bytes per direction per
 * MHD_run; and it stops forwarding once the application's side reads EOF
 * (doc/architecture.md "TLS").
 *
 * Ends: the client's EOF or close_notify shuts the pair's write side (the
 * stream sees EOF); the application's EOF (MHD or a stream closed its end)
 * sends what is left, a close_notify, and closes the front (a client that
 * does not take it gets TLS_FRONT_LINGER_MS for it).  A handshake must
 * finish within TLS_FRONT_HANDSHAKE_MS; a failed one (a plain HTTP request,
 * TLS 1.0/1.1, garbage) closes the TCP connection and is logged at info,
 * rate-limited.
 *
 * A connection the worker refuses (--max-connections-per-ip) gets a front
 * without a pair: its answer goes over TLS after the handshake, as plain
 * HTTP gets it in clear (tls_fronts_refuse).
 */
#ifndef PERSONAD_TLS_FRONT_H
#define PERSONAD_TLS_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/log.h"
#include "worker/deadline.h"

#define TLS_FRONT_HANDSHAKE_MS 10000
/* A stream that ended while the client was not taking its last bytes: they
 * wait this long for the client, then the connection goes. */
#define TLS_FRONT_LINGER_MS 2000
/* Refused connections (tls_fronts_refuse) answered at once per worker; past
 * that, under a flood from one address, a refused connection is only closed.
 * Each holds a GnuTLS session (about 10 KB) for its handshake and linger. */
#define TLS_FRONT_REFUSING_MAX 64

struct MHD_Daemon;
struct tls_front;
struct tls_lib;

struct tls_fronts {
    const struct tls_lib *lib;   /* GnuTLS (common/tls_lib.h) */
    void *cred;                  /* gnutls_certificate_credentials_t */
    void *prio;                  /* gnutls_priority_t */
    int epfd;                    /* the worker's */
    struct MHD_Daemon *mhd;      /* gets the pairs' other ends */
    struct tls_front *conns;     /* all fronts */
    struct deadline_list hs;     /* handshakes, TLS_FRONT_HANDSHAKE_MS */
    struct deadline_list linger; /* ended streams' last bytes, TLS_FRONT_LINGER_MS */
    struct tls_front *dead;      /* closed in this pass, freed by tls_fronts_reap */
    uint32_t n;
    uint32_t refusing;      /* fronts answering a refusal (at most TLS_FRONT_REFUSING_MAX) */
    unsigned char *scratch; /* one buffer for all reads (TLS_FRONT_CHUNK bytes) */
    const int64_t *now_ms;
    struct log_limit *log;
};

/* tls_fronts_init - 0, or -1 with why in msg (GnuTLS refused the credentials
 * or the priorities). */
int tls_fronts_init(struct tls_fronts *f, int epfd, struct MHD_Daemon *mhd, const int64_t *now_ms,
                    struct log_limit *log, char *msg, size_t msg_size);

/* tls_fronts_add - a front for the accepted socket fd (closed on failure).
 * 0, or -1 (logged) when MHD or the system refused it. */
int tls_fronts_add(struct tls_fronts *f, int fd, const struct sockaddr *addr, socklen_t len);

/* tls_fronts_refuse - answer the accepted socket fd over TLS with reply (an
 * HTTP response of at most TLS_FRONT_CHUNK bytes, static: it is sent from
 * where it is) and close it: the handshake, the reply, a close_notify, a
 * linger for the client's goodbye; no pair, MHD never sees it.  0, or -1 (fd
 * left open, for the caller to close) when TLS_FRONT_REFUSING_MAX are
 * already answering or the session cannot be made. */
int tls_fronts_refuse(struct tls_fronts *f, int fd, const char *reply, size_t len);

/* tls_fronts_expire - close the handshakes older than TLS_FRONT_HANDSHAKE_MS
 * and the lingers older than TLS_FRONT_LINGER_MS; tls_fronts_next_ms - when
 * the next one is due (INT64_MAX: none). */
void tls_fronts_expire(struct tls_fronts *f);
int64_t tls_fronts_next_ms(const struct tls_fronts *f);

/* tls_fronts_reap - free the fronts closed in this pass. */
void tls_fronts_reap(struct tls_fronts *f);

/* tls_fronts_free - close every front and free the rest (at exit). */
void tls_fronts_free(struct tls_fronts *f);

#endif
