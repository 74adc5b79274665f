/*
 * tls_front - see tls_front.h.
 *
 * Level-triggered registrations, each only for what the front can do now:
 * the client's socket for reading while the pair takes what is read, for
 * writing while GnuTLS holds a record it could not send; the pair's end for
 * reading while no record waits, for writing while plaintext for it waits.
 * A registration that wants nothing is removed (a closed peer's EPOLLHUP
 * would otherwise be reported on every pass).  Reads go through one buffer
 * per worker: an idle front holds no buffer, only its GnuTLS session.
 * GnuTLS may hold decrypted bytes epoll cannot see, so after the pair has
 * taken a backlog the front reads the session again at once.
 */
#include "build_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <microhttpd.h>

#include "common/net.h"
#include "common/tls.h"
#include "common/tls_lib.h"
#include "worker/ev.h"
#include "worker/tls_front.h"

#ifdef ENABLE_TLS

#define TLS_FRONT_CHUNK (16 * 1024)  /* a TLS record's largest plaintext */
#define TLS_FRONT_CHUNKS_PER_PASS 8  /* app -> client per wake-up, then the others */
#define TLS_FRONT_SNDBUF (64 * 1024) /* as stream_out's fixed send buffer */
#define TLS_RECORD_HANDSHAKE 0x16    /* the first byte of a ClientHello */

static const char plain_reply[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Connection: close\r\n"
                                  "Content-Length: 40\r\n"
                                  "\r\n"
                                  "{\"error\":\"this port speaks HTTPS only\"}\n";

struct tls_front {
    struct ev_handler ev_tcp, ev_app;
    struct tls_fronts *set;
    struct tls_front *prev, *next; /* set->conns */
    struct deadline_node dl;       /* on set->hs while handshaking, set->linger while lingering */
    struct tls_front *dead_next;
    gnutls_session_t s;
    int tcp, app;                /* the client's socket; our end of the pair */
    uint32_t tcp_mask, app_mask; /* registered (0: not in the epoll set) */
    unsigned handshaking : 1, peeked : 1, tcp_eof : 1, app_shut : 1, out_pending : 1, dead : 1,
        lingering : 1, refusing : 1;
    unsigned char *in; /* client plaintext the pair has not taken (TLS_FRONT_CHUNK) */
    uint32_t in_off, in_len;
    const char *reply; /* refusing: the answer (no pair, no MHD), until sent */
    uint32_t reply_len;
};

static void
front_log(struct tls_fronts *f, const char *what, const char *why)
{
    if (log_limit_allow(f->log, *f->now_ms))
        log_info("tls: %s: %s", what, why);
}

static void
hs_unlink(struct tls_front *c)
{
    c->handshaking = 0;
    deadline_disarm(&c->dl);
}

/* End the front now: both descriptors closed (MHD or the stream reads EOF),
 * memory freed after the pass. */
static void
front_close(struct tls_front *c)
{
    struct tls_fronts *f = c->set;
    if (c->dead)
        return;
    c->dead = 1;
    hs_unlink(c);
    if (c->tcp_mask != 0)
        (void)ev_del(f->epfd, c->tcp);
    if (c->app_mask != 0)
        (void)ev_del(f->epfd, c->app);
    close(c->tcp);
    if (c->app >= 0)
        close(c->app);
    if (c->refusing)
        f->refusing--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->dead_next = f->dead;
    f->dead = c;
    f->n--;
}

/* Register fd for want (0: not at all); 0, or -1 (the front is closed). */
static int
set_mask(struct tls_front *c, int fd, uint32_t *mask, uint32_t want, struct ev_handler *h)
{
    struct tls_fronts *f = c->set;
    int rc = 0;
    if (want == *mask)
        return 0;
    if (want == 0)
        rc = ev_del(f->epfd, fd);
    else if (*mask == 0)
        rc = ev_add(f->epfd, fd, want, h);
    else
        rc = ev_mod(f->epfd, fd, want, h);
    if (rc != 0) {
        log_warn("tls: epoll_ctl for a TLS connection");
        *mask = want == 0 ? *mask : 0; /* as epoll left it, for front_close */
        front_close(c);
        return -1;
    }
    *mask = want;
    return 0;
}

static void
update_masks(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    if (c->dead)
        return;
    uint32_t tcp = 0, app = 0;
    if (c->handshaking) {
        tcp = c->peeked && g->gnutls_record_get_direction(c->s) == 1 ? EPOLLOUT : EPOLLIN;
    } else if (c->refusing) {
        tcp = EPOLLIN | (c->out_pending ? EPOLLOUT : 0);
    } else {
        if (!c->tcp_eof && c->in_len == 0)
            tcp |= EPOLLIN;
        if (c->out_pending)
            tcp |= EPOLLOUT;
        /* While a record waits: only whether the stream has gone (RDHUP). */
        if (!c->out_pending)
            app |= EPOLLIN;
        else if (!c->lingering)
            app |= EPOLLRDHUP;
        if (c->in_len > 0)
            app |= EPOLLOUT;
    }
    if (set_mask(c, c->tcp, &c->tcp_mask, tcp, &c->ev_tcp) == 0)
        (void)set_mask(c, c->app, &c->app_mask, app, &c->ev_app);
}

/* The client has said all it will: the stream (or MHD) reads EOF, once it
 * has what was read before. */
static void
shut_app(struct tls_front *c)
{
    if (c->in_len == 0 && !c->app_shut) {
        (void)shutdown(c->app, SHUT_WR);
        c->app_shut = 1;
    }
}

static void pump_in(struct tls_front *c);

/* Give the pair what it did not take.  0 when drained. */
static int
flush_in(struct tls_front *c)
{
    while (c->in_len > 0) {
        ssize_t w = send(c->app, c->in + c->in_off, c->in_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -1;
        if (w < 0) { /* the application's end is closed: nothing more to do */
            front_close(c);
            return -1;
        }
        c->in_off += (uint32_t)w;
        c->in_len -= (uint32_t)w;
    }
    free(c->in);
    c->in = NULL;
    c->in_off = 0;
    if (c->tcp_eof)
        shut_app(c);
    return 0;
}

/* Client -> pair, until the session has nothing or the pair is full. */
static void
pump_in(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    struct tls_fronts *f = c->set;
    while (!c->dead && !c->tcp_eof && c->in_len == 0) {
        ssize_t r = g->gnutls_record_recv(c->s, f->scratch, TLS_FRONT_CHUNK);
        if (r == GNUTLS_E_AGAIN)
            return;
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r == 0) { /* close_notify */
            c->tcp_eof = 1;
            shut_app(c);
            return;
        }
        if (r < 0) {
            /* A TCP end without close_notify is the usual browser goodbye. */
            if (r != GNUTLS_E_PREMATURE_TERMINATION)
                front_log(f, "connection ended", g->gnutls_strerror((int)r));
            front_close(c);
            return;
        }
        ssize_t w;
        do
            w = send(c->app, f->scratch, (size_t)r, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            front_close(c);
            return;
        }
        if (w < 0)
            w = 0;
        if (w < r) {
            c->in = malloc(TLS_FRONT_CHUNK);
            if (c->in == NULL) {
                log_warnx("tls: out of memory for a TLS connection");
                front_close(c);
                return;
            }
            memcpy(c->in, f->scratch + w, (size_t)(r - w));
            c->in_off = 0;
            c->in_len = (uint32_t)(r - w);
        }
    }
}

/* The application has closed its end: send what is left and a goodbye. */
static void
app_done(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    (void)g->gnutls_bye(c->s, GNUTLS_SHUT_WR); /* best effort: non-blocking */
    front_close(c);
}

/* Pair -> client, a few records per pass. */
static void
pump_out(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    struct tls_fronts *f = c->set;
    for (int i = 0; i < TLS_FRONT_CHUNKS_PER_PASS && !c->dead && !c->out_pending; i++) {
        ssize_t r = read(c->app, f->scratch, TLS_FRONT_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            app_done(c);
            return;
        }
        ssize_t s = g->gnutls_record_send(c->s, f->scratch, (size_t)r);
        if (s == GNUTLS_E_AGAIN || s == GNUTLS_E_INTERRUPTED) {
            c->out_pending = 1; /* GnuTLS holds the record: resent with NULL, 0 */
            return;
        }
        if (s < 0) {
            front_close(c); /* the client's socket failed: the stream reads EOF */
            return;
        }
    }
}

static void
flush_out(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    ssize_t s = g->gnutls_record_send(c->s, NULL, 0);
    if (s == GNUTLS_E_AGAIN || s == GNUTLS_E_INTERRUPTED)
        return;
    if (s < 0) {
        front_close(c);
        return;
    }
    c->out_pending = 0;
}

/* A refused connection after its handshake: what the client sends is read
 * and dropped, the answer goes out (one record: GnuTLS sends it or holds it
 * whole), then a close_notify, and the front lingers until the client
 * closes or TLS_FRONT_LINGER_MS: closing with its request unread would reset
 * the connection, and the answer with it. */
static void
refuse_pump(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    struct tls_fronts *f = c->set;
    for (;;) {
        ssize_t r = g->gnutls_record_recv(c->s, f->scratch, TLS_FRONT_CHUNK);
        if (r == GNUTLS_E_AGAIN)
            break;
        if (r <= 0 && r != GNUTLS_E_INTERRUPTED) {
            front_close(c); /* its goodbye, EOF or an error: nothing more to answer */
            return;
        }
    }
    if (c->reply_len > 0) {
        ssize_t s = g->gnutls_record_send(c->s, c->reply, c->reply_len);
        if (s < 0 && s != GNUTLS_E_AGAIN && s != GNUTLS_E_INTERRUPTED) {
            front_close(c);
            return;
        }
        c->reply_len = 0;
        c->out_pending = s < 0; /* held: flush_out sends it */
    }
    if (!c->out_pending && !c->lingering) {
        (void)g->gnutls_bye(c->s, GNUTLS_SHUT_WR); /* best effort: non-blocking */
        c->lingering = 1;
        deadline_arm_force(&f->linger, &c->dl, *f->now_ms);
    }
}

static void
handshake(struct tls_front *c)
{
    const struct tls_lib *g = c->set->lib;
    struct tls_fronts *f = c->set;
    if (!c->peeked) {
        /* A plain HTTP request gets a plain answer, not a TLS alert. */
        unsigned char b;
        ssize_t r = recv(c->tcp, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (r <= 0) {
            front_close(c);
            return;
        }
        if (b != TLS_RECORD_HANDSHAKE) {
            front_log(f, "not a TLS handshake", "answered 400 and closed");
            /* What was sent is read first: closing with unread bytes would
             * reset the connection, and the answer with it. */
            while (recv(c->tcp, f->scratch, TLS_FRONT_CHUNK, MSG_DONTWAIT) > 0)
                ;
            (void)send(c->tcp, plain_reply, sizeof(plain_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)shutdown(c->tcp, SHUT_WR);
            front_close(c);
            return;
        }
        c->peeked = 1;
    }
    int r = g->gnutls_handshake(c->s);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
        return;
    if (r < 0) {
        front_log(f, "handshake failed", g->gnutls_strerror(r));
        front_close(c);
        return;
    }
    hs_unlink(c);
    if (c->refusing)
        refuse_pump(c);
    else
        pump_in(c); /* the request may have come with the last flight */
}

static void
on_tcp(struct ev_handler *h, uint32_t events)
{
    struct tls_front *c = EV_CONTAINER(h, struct tls_front, ev_tcp);
    if (c->dead)
        return;
    if (c->handshaking) {
        handshake(c);
    } else if (c->refusing) {
        if (c->out_pending)
            flush_out(c);
        if (!c->dead)
            refuse_pump(c);
    } else {
        if (c->out_pending) {
            flush_out(c);
            if (!c->dead && !c->out_pending)
                pump_out(c); /* the rest of the stream, or its end */
        }
        if (!c->dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            pump_in(c);
    }
    update_masks(c);
}

static void
on_app(struct ev_handler *h, uint32_t events)
{
    struct tls_front *c = EV_CONTAINER(h, struct tls_front, ev_app);
    if (c->dead)
        return;
    if (c->out_pending && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->lingering) {
        /* The stream has ended while the client is not taking its bytes:
         * it gets a linger for them, then the connection goes. */
        c->lingering = 1;
        deadline_arm_force(&c->set->linger, &c->dl, *c->set->now_ms);
    }
    if (c->in_len > 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && flush_in(c) == 0)
        pump_in(c); /* GnuTLS may hold more than epoll shows */
    if (!c->dead && !c->out_pending && (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        pump_out(c);
    update_masks(c);
}

int
tls_fronts_init(struct tls_fronts *f, int epfd, struct MHD_Daemon *mhd, const int64_t *now_ms,
                struct log_limit *log, char *msg, size_t msg_size)
{
    memset(f, 0, sizeof(*f));
    deadline_list_init(&f->hs, TLS_FRONT_HANDSHAKE_MS);
    deadline_list_init(&f->linger, TLS_FRONT_LINGER_MS);
    f->epfd = epfd;
    f->mhd = mhd;
    f->now_ms = now_ms;
    f->log = log;
    const struct tls_lib *g = f->lib = tls_lib();
    if (g == NULL) {
        snprintf(msg, msg_size, "GnuTLS is not loaded (no --tls-cert pair was loaded)");
        return -1;
    }
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    const char *err_pos = NULL;
    int rc = g->gnutls_certificate_allocate_credentials(&cred);
    if (rc < 0) {
        snprintf(msg, msg_size, "GnuTLS credentials: %s", g->gnutls_strerror(rc));
        return -1;
    }
    g->gnutls_certificate_set_retrieve_function2(cred, tls_cert_callback());
    rc = g->gnutls_priority_init(&prio, TLS_PRIORITIES, &err_pos);
    if (rc < 0) {
        snprintf(msg, msg_size, "GnuTLS priorities \"%s\": %s", TLS_PRIORITIES,
                 g->gnutls_strerror(rc));
        g->gnutls_certificate_free_credentials(cred);
        return -1;
    }
    f->scratch = malloc(TLS_FRONT_CHUNK);
    if (f->scratch == NULL) {
        snprintf(msg, msg_size, "out of memory");
        g->gnutls_priority_deinit(prio);
        g->gnutls_certificate_free_credentials(cred);
        return -1;
    }
    f->cred = cred;
    f->prio = prio;
    return 0;
}

static void
tcp_setup(int fd)
{
    int one = 1, sndbuf = TLS_FRONT_SNDBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
        log_warn("tls: setsockopt(SO_SNDBUF)");
#if HAVE_DECL_TCP_NODELAY
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 && errno != EOPNOTSUPP)
        log_warn("tls: setsockopt(TCP_NODELAY)");
#else
    (void)one;
#endif
}

/* A front on fd with a new server session, handshaking, not yet linked; NULL
 * (errno ENOMEM, fd left open) when GnuTLS or malloc refused it. */
static struct tls_front *
front_new(struct tls_fronts *f, int fd)
{
    const struct tls_lib *g = f->lib;
    struct tls_front *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = g->gnutls_init(&c->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc >= 0)
        rc = g->gnutls_priority_set(c->s, (gnutls_priority_t)f->prio);
    if (rc >= 0)
        rc = g->gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE,
                                       (gnutls_certificate_credentials_t)f->cred);
    if (rc < 0) {
        log_warnx("tls: a new session: %s", g->gnutls_strerror(rc));
        g->gnutls_deinit(c->s);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    g->gnutls_certificate_server_set_request(c->s, GNUTLS_CERT_IGNORE);
    g->gnutls_handshake_set_timeout(c->s, 0); /* ours: TLS_FRONT_HANDSHAKE_MS */
    g->gnutls_transport_set_int2(c->s, fd, fd);
    if (net_set_nonblock(fd) != 0)
        log_warn("tls: fcntl(O_NONBLOCK)");
    tcp_setup(fd);
    c->ev_tcp.on_event = on_tcp;
    c->ev_app.on_event = on_app;
    c->set = f;
    c->tcp = fd;
    c->app = -1;
    c->handshaking = 1;
    return c;
}

/* Into the set, with its handshake deadline and its registration. */
static void
front_link(struct tls_fronts *f, struct tls_front *c)
{
    deadline_arm_force(&f->hs, &c->dl, *f->now_ms);
    c->next = f->conns;
    if (f->conns != NULL)
        f->conns->prev = c;
    f->conns = c;
    f->n++;
    update_masks(c); /* on failure the front is closed (MHD reads EOF) */
}

int
tls_fronts_add(struct tls_fronts *f, int fd, const struct sockaddr *addr, socklen_t len)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct tls_front *c = front_new(f, fd);
    if (c == NULL) {
        close(fd), close(sp[0]), close(sp[1]);
        errno = ENOMEM;
        return -1;
    }
    /* MHD makes its end non-blocking and closes it itself when it fails. */
    if (MHD_add_connection(f->mhd, sp[1], addr, len) != MHD_YES) {
        f->lib->gnutls_deinit(c->s);
        free(c);
        close(fd), close(sp[0]);
        errno = EMFILE;
        return -1;
    }
    c->app = sp[0];
    front_link(f, c);
    return 0;
}

int
tls_fronts_refuse(struct tls_fronts *f, int fd, const char *reply, size_t len)
{
    if (f->refusing >= TLS_FRONT_REFUSING_MAX || len == 0 || len > TLS_FRONT_CHUNK)
        return -1;
    struct tls_front *c = front_new(f, fd);
    if (c == NULL)
        return -1;
    c->refusing = 1;
    c->reply = reply;
    c->reply_len = (uint32_t)len;
    f->refusing++;
    front_link(f, c);
    return 0;
}

#define FRONT_OF(node) ((struct tls_front *)(void *)((char *)(node)-offsetof(struct tls_front, dl)))

void
tls_fronts_expire(struct tls_fronts *f)
{
    struct deadline_node *n;
    while ((n = deadline_pop_expired(&f->hs, *f->now_ms)) != NULL) {
        front_log(f, "handshake", "not finished in time, closed");
        front_close(FRONT_OF(n));
    }
    while ((n = deadline_pop_expired(&f->linger, *f->now_ms)) != NULL)
        front_close(FRONT_OF(n)); /* the client did not take the stream's end */
}

int64_t
tls_fronts_next_ms(const struct tls_fronts *f)
{
    int64_t a = deadline_next_ms(&f->hs), b = deadline_next_ms(&f->linger);
    return a < b ? a : b;
}

void
tls_fronts_reap(struct tls_fronts *f)
{
    const struct tls_lib *g = f->lib;
    while (f->dead != NULL) {
        struct tls_front *c = f->dead;
        f->dead = c->dead_next;
        g->gnutls_deinit(c->s);
        free(c->in);
        free(c);
    }
}

void
tls_fronts_free(struct tls_fronts *f)
{
    const struct tls_lib *g = f->lib;
    while (f->conns != NULL) {
        struct tls_front *c = f->conns;
        if (c->out_pending)
            (void)g->gnutls_record_send(c->s, NULL, 0); /* a last try for a goodbye */
        front_close(c);
    }
    tls_fronts_reap(f);
    if (f->prio != NULL)
        g->gnutls_priority_deinit((gnutls_priority_t)f->prio);
    if (f->cred != NULL)
        g->gnutls_certificate_free_credentials((gnutls_certificate_credentials_t)f->cred);
    free(f->scratch);
    memset(f, 0, sizeof(*f));
}

#else /* !ENABLE_TLS: the master refuses --tls-cert, so none of this runs */

int
tls_fronts_init(struct tls_fronts *f, int epfd, struct MHD_Daemon *mhd, const int64_t *now_ms,
                struct log_limit *log, char *msg, size_t msg_size)
{
    (void)epfd, (void)mhd, (void)now_ms, (void)log;
    memset(f, 0, sizeof(*f));
    snprintf(msg, msg_size, "not built with TLS");
    return -1;
}

int
tls_fronts_refuse(struct tls_fronts *f, int fd, const char *reply, size_t len)
{
    (void)f, (void)fd, (void)reply, (void)len;
    return -1;
}

int
tls_fronts_add(struct tls_fronts *f, int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)f, (void)addr, (void)len;
    close(fd);
    errno = ENOTSUP;
    return -1;
}

void
tls_fronts_expire(struct tls_fronts *f)
{
    (void)f;
}

int64_t
tls_fronts_next_ms(const struct tls_fronts *f)
{
    (void)f;
    return INT64_MAX;
}

void
tls_fronts_reap(struct tls_fronts *f)
{
    (void)f;
}

void
tls_fronts_free(struct tls_fronts *f)
{
    (void)f;
}

#endif /* ENABLE_TLS */
