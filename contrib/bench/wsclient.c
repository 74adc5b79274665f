/*
 * wsclient - wsbench's WebSocket clients: non-blocking connect (optionally from
 * 127.0.0.2.. source addresses), the HTTP upgrade with a random key whose
 * Sec-WebSocket-Accept is verified, server frames (text, ping answered with a
 * masked pong, close, continuation), and per-client delivery bookkeeping: a
 * bitmap of event indices received, which yields lost, duplicated and
 * out-of-order counts, and the latency of each first delivery.
 *
 * A driver with its own books (wscampaign) sets b->ops: it is then told of each
 * open, text message, end (with the close code) and failure, and wsclient
 * neither retries nor counts deliveries itself.
 */
#define _GNU_SOURCE /* IP_BIND_ADDRESS_NO_PORT, memmem */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "wsbench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

void
ep_set(struct bench *b, int fd, uint32_t events, uint64_t tag, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(b->ep, op, fd, &ev) < 0)
        die_errno("epoll_ctl");
}

/* conn_mask - the epoll events c waits for: input unless paused (then only the
 * peer's FIN or reset, until it came: paused == 2), output while bytes are queued. */
static uint32_t
conn_mask(const struct conn *c)
{
    uint32_t in = c->paused == 0 ? EPOLLIN : c->paused == 1 ? EPOLLRDHUP : 0;
    return in | (c->want_out ? EPOLLOUT : 0);
}

void
conn_drop(struct bench *b, struct conn *c, enum conn_state to)
{
    int was_open = c->state == CONN_OPEN;
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE)
        b->inflight--;
    if (c->state == CONN_OPEN)
        b->open--;
    c->in_len = c->out_len = c->msg_len = 0;
    c->msg_opcode = 0;
    c->want_out = 0;
    c->state = (uint8_t)to;
    if (to == CONN_CLOSED)
        b->closed++;
    else if (to == CONN_FAILED)
        b->failed++;
    if (was_open && to == CONN_CLOSED && b->ops != NULL)
        b->ops->ended(b, c, c->srv_code ? c->srv_code : 1006, now_ns());
}

/* conn_fail - a connect or handshake attempt failed: retry later or give up. */
static void
conn_fail(struct bench *b, struct conn *c, int retryable)
{
    conn_drop(b, c, CONN_IDLE);
    if (b->ops != NULL) {
        b->ops->failed(b, c);
        return;
    }
    if (retryable && c->attempts < MAX_ATTEMPTS) {
        b->retry[b->n_retry++] = (unsigned)(c - b->conns);
        b->retries++;
    } else {
        c->state = CONN_FAILED;
        b->failed++;
    }
}

static void
conn_flush(struct bench *b, struct conn *c)
{
    while (c->out_len > 0) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            if (c->state == CONN_OPEN) {
                conn_drop(b, c, CONN_CLOSED);
            } else {
                b->conn_errors++;
                conn_fail(b, c, 1);
            }
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    int want = c->out_len > 0;
    if (want != c->want_out) {
        c->want_out = (uint8_t)want;
        ep_set(b, c->fd, conn_mask(c), (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
    }
}

static void
conn_send(struct bench *b, struct conn *c, const void *data, size_t len)
{
    c->out = xrealloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    conn_flush(b, c);
}

/* conn_send_control - send a masked control frame (payload <= 125 bytes). */
static void
conn_send_control(struct bench *b, struct conn *c, unsigned opcode, const unsigned char *p,
                  size_t len)
{
    unsigned char f[2 + 4 + 125];
    uint32_t mask = (uint32_t)rng_next(b);
    if (len > 125)
        len = 125;
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, &mask, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = p[i] ^ f[2 + (i & 3)];
    conn_send(b, c, f, 6 + len);
}

static void
make_key(struct bench *b, char key[25], char accept[32])
{
    uint8_t raw[16], digest[SHA1_DIGEST_SIZE];
    struct sha1_ctx sha;
    uint64_t r1 = rng_next(b), r2 = rng_next(b);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    base64_encode_raw(key, sizeof raw, raw);
    key[24] = '\0';
    sha1_init(&sha);
    sha1_update(&sha, 24, (const uint8_t *)key);
    sha1_update(&sha, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(accept, sizeof digest, digest);
    accept[28] = '\0';
}

void
conn_start(struct bench *b, unsigned idx)
{
    struct conn *c = &b->conns[idx];
    int fd = socket(b->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        die_errno("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->rcvbuf > 0) { /* before connect(): the window scale is chosen for it */
        int v = (int)c->rcvbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
            die_errno("setsockopt(SO_RCVBUF)");
    }
    if (b->o.source_addrs > 0 && b->dst.ss_family == AF_INET) {
        /* Spread over 127.0.0.2.. so that each source address has its own
         * ephemeral port range; the port is still chosen at connect(). */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + idx % b->o.source_addrs);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            die_errno("bind source address");
    }
    c->fd = fd;
    c->attempts++;
    c->paused = c->close_sent = 0;
    c->srv_code = 0;
    c->state = CONN_CONNECTING;
    b->inflight++;
    ep_set(b, fd, EPOLLOUT, idx, EPOLL_CTL_ADD);
    c->want_out = 1;
    if (connect(fd, (struct sockaddr *)&b->dst, b->dst_len) < 0 && errno != EINPROGRESS) {
        b->conn_errors++;
        conn_fail(b, c, 1);
    }
}

static void
conn_connected(struct bench *b, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    char key[25], req[1024];
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        b->conn_errors++;
        conn_fail(b, c, 1);
        return;
    }
    make_key(b, key, c->accept);
    int n;
    if (b->epoch[0] != '\0') { /* wsbench --resume: from the client's last seq */
        c->t_open = now_ns();
        n = snprintf(req, sizeof req,
                     "GET %s?since=%" PRIu64 "&epoch=%s HTTP/1.1\r\nHost: %s\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     b->path, c->last_seq, b->epoch, b->host_hdr, key);
    } else {
        n = snprintf(req, sizeof req, "%s%s\r\nSec-WebSocket-Version: 13\r\n\r\n", b->req_head,
                     key);
    }
    if (n < 0 || (size_t)n >= sizeof req)
        die("upgrade request too long");
    c->state = CONN_HANDSHAKE;
    conn_send(b, c, req, (size_t)n);
}

int
header_value(const char *hdrs, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(hdrs, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nlen) == 0 && p[2 + nlen] == ':') {
            const char *v = p + 3 + nlen;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t k = strcspn(v, " \t\r\n");
            if (k >= outsz)
                return -1;
            memcpy(out, v, k);
            out[k] = '\0';
            return 0;
        }
    }
    return -1;
}

/* handshake - parse the response in buf; returns bytes consumed, 0 if incomplete,
 * or -1 if it is not a valid 101 for this client's key. */
static ssize_t
handshake(struct conn *c, unsigned char *buf, size_t len)
{
    char hdrs[4096], accept[64];
    unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len > sizeof hdrs ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 2;
    if (hlen >= sizeof hdrs)
        return -1;
    memcpy(hdrs, buf, hlen);
    hdrs[hlen] = '\0';
    if (strncmp(hdrs, "HTTP/1.1 101", 12) != 0)
        return -1;
    if (header_value(hdrs, "Sec-WebSocket-Accept", accept, sizeof accept) < 0 ||
        strcmp(accept, c->accept) != 0)
        return -1;
    return (ssize_t)(hlen + 2);
}

static void
on_event_message(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now)
{
    static const char key[] = "\"name\":\"" NAME_PREFIX;
    const unsigned char *k = memmem(p, len, key, sizeof key - 1);
    char num[48];
    unsigned long long idx, ns;
    if (b->epoch[0] != '\0') {
        static const char skey[] = ",\"seq\":";
        const unsigned char *sq = memmem(p, len, skey, sizeof skey - 1);
        if (memmem(p, len, "\"type\":\"resync\"", 15) != NULL) {
            b->resyncs++; /* a position outside the ring: would mean a refetch */
            return;
        }
        if (sq != NULL) {
            unsigned long long v = strtoull((const char *)sq + sizeof skey - 1, NULL, 10);
            if (v > c->last_seq)
                c->last_seq = v;
        }
    }
    if (k == NULL) {
        b->foreign++;
        return;
    }
    k += sizeof key - 1;
    size_t rest = len - (size_t)(k - p), n = 0;
    while (n < rest && n < sizeof num - 1 && k[n] != '"')
        n++;
    memcpy(num, k, n);
    num[n] = '\0';
    if (sscanf(num, "%llu-%llu", &idx, &ns) != 2 || idx >= (uint64_t)b->o.events + b->o.storm) {
        b->foreign++;
        return;
    }
    b->deliveries++;
    b->t_last_rx = now;
    uint64_t bit = 1ull << (idx & 63);
    if (c->seen[idx >> 6] & bit) {
        b->dups++;
        return;
    }
    c->seen[idx >> 6] |= bit;
    c->received++;
    b->distinct++;
    if ((int64_t)idx < c->max_idx)
        b->ooo++;
    else
        c->max_idx = (int64_t)idx;
    if (b->epoch[0] != '\0' && ns < c->t_open) { /* injected before this connection: a replay */
        b->replayed++;
        hist_record(&b->lat_replay, now > ns ? (now - ns) / 1000 : 0);
    } else {
        hist_add(b, now > ns ? (now - ns) / 1000 : 0);
    }
    b->last_progress = now;
}

static void
on_message(struct bench *b, struct conn *c, unsigned opcode, const unsigned char *p, size_t len,
           uint64_t now)
{
    if (opcode == 1 && b->ops != NULL)
        b->ops->text(b, c, p, len, now);
    else if (opcode == 1)
        on_event_message(b, c, p, len, now);
    else
        b->foreign++; /* binary */
}

/* parse_frames - handle the complete frames in p[0..len); returns bytes consumed,
 * or -1 after closing the connection. */
static ssize_t
parse_frames(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now)
{
    size_t off = 0;
    while (len - off >= 2) {
        const unsigned char *f = p + off;
        unsigned fin = f[0] & 0x80, opcode = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hlen = 2;
        if (f[1] & 0x80 || (f[0] & 0x70)) { /* servers must not mask; no extensions */
            b->proto_errors++;
            c->srv_code = 1002;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hlen = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | f[2 + i];
            hlen = 10;
        }
        if (plen > CARRY_MAX_BYTES) {
            b->proto_errors++;
            c->srv_code = 1002;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
        if (len - off < hlen + plen)
            break;
        const unsigned char *pl = f + hlen;
        off += hlen + (size_t)plen;
        switch (opcode) {
        case 0x0: /* continuation */
            if (c->msg_opcode == 0) {
                b->proto_errors++;
                break;
            }
            c->msg = xrealloc(c->msg, c->msg_len + plen);
            memcpy(c->msg + c->msg_len, pl, plen);
            c->msg_len += plen;
            if (fin) {
                on_message(b, c, c->msg_opcode, c->msg, c->msg_len, now);
                c->msg_opcode = 0;
                c->msg_len = 0;
            }
            break;
        case 0x1:
        case 0x2:
            if (fin) {
                on_message(b, c, opcode, pl, plen, now);
            } else {
                c->msg_opcode = (uint8_t)opcode;
                c->msg = xrealloc(c->msg, plen);
                memcpy(c->msg, pl, plen);
                c->msg_len = plen;
            }
            break;
        case 0x8: /* close: echo the code (unless it answers ours), then closed */
            c->srv_code = (uint16_t)(plen >= 2 ? pl[0] << 8 | pl[1] : 1005);
            if (b->first_close_code == 0)
                b->first_close_code = c->srv_code;
            if (!c->close_sent)
                conn_send_control(b, c, 0x8, pl, plen >= 2 ? 2 : 0);
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        case 0x9: /* ping */
            b->pings++;
            conn_send_control(b, c, 0xA, pl, plen);
            if (c->state != CONN_OPEN)
                return -1;
            break;
        case 0xA: /* unsolicited pong */
            break;
        default:
            b->proto_errors++;
            c->srv_code = 1002;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
    }
    return (ssize_t)off;
}

static void
conn_readable(struct bench *b, struct conn *c)
{
    unsigned char *buf = b->rbuf;
    size_t have = c->in_len;
    ssize_t n, used;

    size_t room = RBUF_BYTES - have;
    if (c->read_max > 0 && room > c->read_max)
        room = c->read_max;
    if (have > 0) /* c->in is NULL until a partial frame was kept */
        memcpy(buf, c->in, have);
    c->in_len = 0;
    n = read(c->fd, buf + have, room);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->in_len = have; /* unchanged */
        return;
    }
    if (n <= 0) {
        if (c->state == CONN_HANDSHAKE) {
            b->handshake_errors++;
            conn_fail(b, c, 1);
        } else {
            conn_drop(b, c, CONN_CLOSED);
        }
        return;
    }
    have += (size_t)n;
    uint64_t now = now_ns();
    size_t off = 0;
    if (c->state == CONN_HANDSHAKE) {
        used = handshake(c, buf, have);
        if (used < 0) {
            b->handshake_errors++;
            conn_fail(b, c, 0);
            return;
        }
        if (used == 0) {
            c->in = xrealloc(c->in, have);
            memcpy(c->in, buf, have);
            c->in_len = have;
            return;
        }
        c->state = CONN_OPEN;
        b->inflight--;
        b->open++;
        off = (size_t)used;
        if (b->ops != NULL) {
            b->ops->opened(b, c, now);
            if (c->state != CONN_OPEN)
                return;
        }
    }
    used = parse_frames(b, c, buf + off, have - off, now);
    if (used < 0)
        return;
    off += (size_t)used;
    if (have > off) {
        c->in = xrealloc(c->in, have - off);
        memcpy(c->in, buf + off, have - off);
        c->in_len = have - off;
    }
}

void
conn_event(struct bench *b, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            c->want_out = 0;
            ep_set(b, c->fd, conn_mask(c), (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
            conn_connected(b, c);
        }
        return;
    }
    if ((events & EPOLLOUT) && c->fd >= 0)
        conn_flush(b, c);
    if (c->paused && c->state == CONN_OPEN) {
        /* Not reading; the driver decides what a FIN or reset behind the
         * unread bytes means.  Stop watching for it, or it fires forever. */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            c->paused = 2;
            ep_set(b, c->fd, conn_mask(c), (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
            if (b->ops != NULL)
                b->ops->peer_gone(b, c);
        }
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->fd >= 0)
        conn_readable(b, c);
}

void
start_connections(struct bench *b)
{
    while (b->inflight < b->o.inflight) {
        if (b->n_retry > 0)
            conn_start(b, b->retry[--b->n_retry]);
        else if (b->next_start < b->o.clients)
            conn_start(b, b->next_start++);
        else
            break;
    }
}

void
conn_send_close(struct bench *b, struct conn *c, unsigned code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    c->close_sent = 1;
    conn_send_control(b, c, 0x8, p, 2);
}

void
conn_set_paused(struct bench *b, struct conn *c, int paused)
{
    if (c->state != CONN_OPEN || (c->paused != 0) == (paused != 0))
        return;
    c->paused = (uint8_t)(paused != 0);
    ep_set(b, c->fd, conn_mask(c), (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
}
