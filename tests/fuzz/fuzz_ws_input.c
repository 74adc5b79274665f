/*
 * fuzz_ws_input - libFuzzer target: a client's bytes after the upgrade, into
 * a real WebSocket connection (ws_conn_new, as ws_upgrade.c hands a socket
 * over) in a real connection set with an epoll fd and an event window, over
 * a socketpair, driven as the worker's loop drives it: the epoll handlers,
 * fan-outs of events, the deadlines with injected time, the reaping.
 *
 * Input: byte 0: mode (bits 0-1: --max-message of 8, 125, 512 or 65536;
 * bit 2: events are fanned out between chunks; bit 7: structured, see
 * below); byte 1: the chunk size the client writes (1-256); byte 2: how many
 * bytes came with the handshake (ws_conn_new's extra, 0-31); the rest: the
 * client's bytes.  Structured: the rest is frames of (flags-and-opcode byte,
 * length byte, payload) sent masked, so the fuzzer reaches what lies behind
 * the mask check; raw: the bytes as they are.
 *
 * The outcome must be defined: whatever the server wrote is whole, unmasked
 * frames of the opcodes it sends (text, ping, pong, close), nothing after a
 * close frame, a close code a server may send; and once the client stops
 * (EOF) and time passes the pong wait, the connection is gone and freed (the
 * leak checker sees the rest).
 */
#include "build_config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "shm/stats.h"
#include "worker/conn_set.h"
#include "worker/event_window.h"
#include "worker/ws_conn.h"
#include "worker/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PING_MS 54000
#define PONG_MS 60000
#define WRITE_MS 10000
#define RX_MAX (1u << 20)

struct fx {
    struct config cfg;
    struct event_window win;
    struct log_limit log;
    struct conn_set set;
    struct stats_slot stats;
    int epfd;
    int64_t now;
    uint64_t next_event;
    uint8_t rx[RX_MAX]; /* what the client end read */
    size_t rx_len;
    int closed; /* a close frame has been read */
};

static struct fx *F;

static void
fx_init(void)
{
    F = calloc(1, sizeof(*F));
    if (F == NULL)
        abort();
    signal(SIGPIPE, SIG_IGN); /* as sig.c does in the daemon */
    log_set_level(LOG_LEVEL_ERROR);
    F->cfg.ping_period_ms = PING_MS;
    F->cfg.pong_wait_ms = PONG_MS;
    F->cfg.write_deadline_ms = WRITE_MS;
    F->cfg.max_message_bytes = 512;
    F->cfg.max_connections = 100;
    F->now = 1000000;
    F->next_event = 1;
    if (event_window_init(&F->win, 64, 1) != 0)
        abort();
    log_limit_init(&F->log, "ws", LOG_LEVEL_INFO, 1000);
    F->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (F->epfd < 0)
        abort();
    conn_set_init(&F->set, &F->cfg, F->epfd, &F->win, &F->log, &F->stats, F->now);
}

/* One loop pass as the worker runs it: handlers, then reap. */
static void
pump(void)
{
    struct epoll_event evs[8];
    int n = epoll_wait(F->epfd, evs, 8, 0);
    if (n < 0)
        abort();
    for (int i = 0; i < n; i++) {
        struct ev_handler *h = evs[i].data.ptr;
        h->on_event(h, evs[i].events);
    }
    conn_set_reap(&F->set);
}

static void
advance(int64_t ms)
{
    F->now += ms;
    conn_set_set_now(&F->set, F->now);
    conn_set_expire(&F->set);
    conn_set_reap(&F->set);
}

/* An event, as pull_ring and the fan-out do it. */
static void
event(void)
{
    static const char payload[] = "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"a\"}}";
    if (F->win.next_seq - F->win.first_seq == F->win.capacity) {
        conn_set_lapped(&F->set, F->win.first_seq + 1);
        event_window_release(&F->win, F->win.first_seq + 1);
    }
    if (event_window_push(&F->win, F->next_event++, payload, sizeof(payload) - 1) != 0)
        abort();
    conn_set_fanout(&F->set);
    event_window_release(&F->win, conn_set_min_cursor(&F->set, F->win.next_seq));
}

/* Check the server's whole frames in rx and drop them. */
static void
rx_frames(void)
{
    size_t at = 0;
    for (;;) {
        size_t left = F->rx_len - at;
        const uint8_t *f = F->rx + at;
        if (left < 2)
            break;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (left < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (left < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        if (left < h + len)
            break;
        uint8_t op = f[0] & 0x0f;
        if (F->closed || (f[0] & 0xf0) != 0x80 || (f[1] & 0x80) != 0)
            abort(); /* after a close, not final, reserved bits or masked */
        if (op != WS_OP_TEXT && op != WS_OP_PING && op != WS_OP_PONG && op != WS_OP_CLOSE)
            abort();
        if (op != WS_OP_TEXT && len > WS_CONTROL_PAYLOAD_MAX)
            abort();
        if (op == WS_OP_CLOSE) {
            if (len == 1)
                abort();
            if (len >= 2 && !ws_close_code_valid((uint16_t)(f[h] << 8 | f[h + 1])))
                abort();
            F->closed = 1;
        }
        at += h + (size_t)len;
    }
    memmove(F->rx, F->rx + at, F->rx_len - at);
    F->rx_len -= at;
}

/* Read what the client end has; 0 at EOF or reset, else 1. */
static int
client_read(int cl)
{
    for (;;) {
        if (F->rx_len == RX_MAX)
            abort(); /* a partial frame of 1 MiB: never sent by the server */
        ssize_t r = read(cl, F->rx + F->rx_len, RX_MAX - F->rx_len);
        if (r > 0) {
            F->rx_len += (size_t)r;
            rx_frames();
            continue;
        }
        if (r == 0 || errno == ECONNRESET)
            return 0;
        if (errno != EAGAIN)
            abort();
        return 1;
    }
}

/* Write bytes on the client end in chunks, one loop pass after each. */
static int
client_send(int cl, const uint8_t *p, size_t len, size_t chunk, int events)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t w = write(cl, p + off, n);
        if (w < 0)
            return -1; /* the server closed (EPIPE), or will not read more */
        if (events && (off / chunk) % 3 == 0)
            event();
        pump();
        pump();
        if (client_read(cl) == 0)
            return -1;
    }
    return 0;
}

/* Structured input: frames of (byte 0, length byte, payload), masked. */
static size_t
structured(const uint8_t *in, size_t len, uint8_t *out)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    for (size_t i = 0; i + 2 <= len;) {
        uint8_t b0 = in[i], plen = in[i + 1];
        i += 2;
        if (plen > len - i)
            plen = (uint8_t)(len - i);
        out[n++] = b0;
        if (plen < 126) {
            out[n++] = (uint8_t)(0x80 | plen);
        } else {
            out[n++] = 0x80 | 126;
            out[n++] = 0;
            out[n++] = plen;
        }
        memcpy(out + n, key, 4);
        n += 4;
        for (size_t k = 0; k < plen; k++)
            out[n + k] = in[i + k] ^ key[k % 4];
        n += plen;
        i += plen;
    }
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (F == NULL)
        fx_init();
    static const uint32_t max_message[] = {8, 125, 512, 65536};
    F->cfg.max_message_bytes = max_message[data[0] & 3];
    int events = (data[0] >> 2) & 1;
    size_t chunk = (size_t)data[1] + 1;
    const uint8_t *body = data + 3;
    size_t body_len = size - 3;
    uint8_t *frames = NULL;
    if (data[0] & 0x80) {
        frames = malloc(body_len * 4 + 8);
        if (frames == NULL)
            return 0;
        body_len = structured(body, body_len, frames);
        body = frames;
    }
    size_t extra_len = data[2] % 32;
    if (extra_len > body_len)
        extra_len = body_len;
    F->rx_len = 0;
    F->closed = 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    (void)ws_conn_new(&F->set, sv[0], F->next_event, body, extra_len);
    pump();
    int cl = sv[1];
    int open = client_read(cl);
    if (open)
        open = client_send(cl, body + extra_len, body_len - extra_len, chunk, events) == 0;
    /* The client stops: EOF, then time enough for every deadline. */
    (void)shutdown(cl, SHUT_WR);
    for (int i = 0; i < 4 && F->set.nconns > 0; i++) {
        pump();
        (void)client_read(cl);
        advance(PONG_MS + WRITE_MS);
        (void)client_read(cl);
    }
    if (F->set.nconns != 0)
        abort(); /* still open after EOF and every deadline: no defined end */
    close(cl);
    free(frames);
    return 0;
}
