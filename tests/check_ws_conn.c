/*
 * check_ws_conn - one WebSocket connection in a real connection set, over a
 * socketpair, without libmicrohttpd: a real epoll fd and event window, a
 * client end that sends masked frames (whole or in 1-byte pieces) and reads
 * the server's frames, and injected time for the deadlines.
 */
#include "build_config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/conn_set.h"
#include "worker/event_window.h"
#include "common/log.h"
#include "worker/ws_conn.h"
#include "worker/ws_frame.h"

#define PING_MS 54000
#define PONG_MS 60000
#define WRITE_MS 10000
#define RX_BYTES (1u << 20)

/* One set with one epoll fd and window; the client ends of its connections. */
struct fx {
    struct config cfg;
    struct event_window win;
    struct log_limit log;
    struct conn_set set;
    struct stats_slot stats; /* the set's counters (a process-private slot) */
    int epfd;
    int64_t now;
    uint64_t next_event; /* seq of the next event pushed */
    uint8_t *rx;         /* bytes read on the client end, not yet parsed */
    size_t rx_len;
    int log_fd; /* the test's stderr, redirected to a file */
    int live;   /* fx_init has run, fx_done not yet */
};

static struct fx F;

static void
fx_init(uint32_t window_cap, uint32_t max_message)
{
    memset(&F, 0, sizeof(F));
    /* As in the daemon (sig.c): a peer's reset is an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    F.cfg.ping_period_ms = PING_MS;
    F.cfg.pong_wait_ms = PONG_MS;
    F.cfg.write_deadline_ms = WRITE_MS;
    F.cfg.max_message_bytes = max_message;
    F.cfg.max_connections = 100;
    F.now = 1000000;
    F.next_event = 1;
    ck_assert_int_eq(event_window_init(&F.win, window_cap, 1), 0);
    log_limit_init(&F.log, "ws", LOG_LEVEL_INFO, 1000);
    F.epfd = epoll_create1(EPOLL_CLOEXEC);
    ck_assert_int_ge(F.epfd, 0);
    conn_set_init(&F.set, &F.cfg, F.epfd, &F.win, &F.log, &F.stats, F.now);
    F.rx = malloc(RX_BYTES);
    ck_assert_ptr_nonnull(F.rx);
    /* The log lines the set writes are part of what is tested. */
    char path[] = "/tmp/check_ws_conn.XXXXXX";
    F.log_fd = mkstemp(path);
    ck_assert_int_ge(F.log_fd, 0);
    unlink(path);
    ck_assert_int_ge(dup2(F.log_fd, STDERR_FILENO), 0);
    F.live = 1;
}

/* Free the fixture (for tests that run several in a row). */
static void
fx_done(void)
{
    if (!F.live)
        return;
    F.live = 0;
    conn_set_drop_all(&F.set);
    event_window_free(&F.win);
    close(F.epfd);
    close(F.log_fd);
    free(F.rx);
}

/* The log so far, NUL-terminated (static buffer). */
static const char *
fx_log(void)
{
    static char buf[65536];
    ssize_t n = pread(F.log_fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* A connection streaming from start_seq, with extra bytes "from the handshake";
 * returns the client's end (non-blocking); *server gets the set's end. */
static int
fx_connect_extra(uint64_t start_seq, const void *extra, size_t extra_len, int *server)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    if (server != NULL)
        *server = sv[0];
    (void)ws_conn_new(&F.set, sv[0], start_seq, extra, extra_len);
    return sv[1];
}

static int
fx_connect(int *server)
{
    return fx_connect_extra(F.next_event, NULL, 0, server);
}

/* One loop pass as the worker runs it: handlers, then reap. */
static void
fx_pump(void)
{
    struct epoll_event evs[16];
    int n = epoll_wait(F.epfd, evs, 16, 0);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        struct ev_handler *h = evs[i].data.ptr;
        h->on_event(h, evs[i].events);
    }
    conn_set_reap(&F.set);
}

/* The time moves to now + ms: due deadlines run, then reap. */
static void
fx_advance(int64_t ms)
{
    F.now += ms;
    conn_set_set_now(&F.set, F.now);
    conn_set_expire(&F.set);
    conn_set_reap(&F.set);
}

/* Push one event (as the worker's pull_ring does) and fan it out. */
static void
fx_event(const char *payload, size_t len)
{
    ck_assert_int_eq(event_window_push(&F.win, F.next_event++, payload, (uint32_t)len), 0);
    conn_set_fanout(&F.set);
}

/* A masked client frame into out; returns its length. */
static size_t
client_frame(uint8_t *out, int fin, uint8_t opcode, const void *payload, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + n, key, 4);
    n += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = p[i] ^ key[i % 4];
    return n + len;
}

/* Write bytes on the client end, whole or one byte per loop pass. */
static void
client_send(int cl, const uint8_t *bytes, size_t len, int bytewise)
{
    size_t step = bytewise ? 1 : len;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        ck_assert_int_eq(write(cl, bytes + off, n), (ssize_t)n);
        fx_pump();
    }
}

static void
client_send_frame(int cl, int fin, uint8_t opcode, const void *payload, size_t len, int bytewise)
{
    uint8_t *buf = malloc(len + 14);
    ck_assert_ptr_nonnull(buf);
    size_t n = client_frame(buf, fin, opcode, payload, len);
    client_send(cl, buf, n, bytewise);
    free(buf);
}

static void
client_send_close(int cl, uint16_t code, int bytewise)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    client_send_frame(cl, 1, WS_OP_CLOSE, body, 2, bytewise);
}

/* A whole server frame at the front of F.rx: its opcode and payload (copied
 * into payload, at most cap bytes); returns its payload length, or -1. */
static long
rx_take_frame(uint8_t *opcode, uint8_t *payload, size_t cap)
{
    if (F.rx_len < 2)
        return -1;
    size_t h = 2;
    uint64_t len = F.rx[1] & 0x7f;
    ck_assert_uint_eq(F.rx[1] & 0x80, 0); /* server frames are never masked */
    if (len == 126) {
        if (F.rx_len < 4)
            return -1;
        len = (uint64_t)F.rx[2] << 8 | F.rx[3];
        h = 4;
    } else if (len == 127) {
        if (F.rx_len < 10)
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | F.rx[2 + i];
        h = 10;
    }
    if (F.rx_len < h + len)
        return -1;
    *opcode = F.rx[0] & 0x0f;
    ck_assert_uint_eq(F.rx[0] & 0x80, 0x80); /* final */
    memcpy(payload, F.rx + h, len < cap ? len : cap);
    memmove(F.rx, F.rx + h + len, F.rx_len - h - len);
    F.rx_len -= h + len;
    return (long)len;
}

/* Read what the client end has; 0 at EOF, else 1. */
static int
client_read(int cl)
{
    for (;;) {
        ck_assert_uint_lt(F.rx_len, RX_BYTES);
        ssize_t r = read(cl, F.rx + F.rx_len, RX_BYTES - F.rx_len);
        if (r > 0) {
            F.rx_len += (size_t)r;
            continue;
        }
        if (r == 0)
            return 0;
        ck_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET);
        return errno == ECONNRESET ? 0 : 1;
    }
}

/* The next frame from the server (loop passes run meanwhile); fails the test
 * if none comes. */
static long
client_frame_wait(int cl, uint8_t *opcode, uint8_t *payload, size_t cap)
{
    for (int i = 0; i < 400; i++) {
        long n = rx_take_frame(opcode, payload, cap);
        if (n >= 0)
            return n;
        fx_pump();
        (void)client_read(cl);
        if (F.rx_len < 2) {
            struct pollfd p = {.fd = cl, .events = POLLIN};
            (void)poll(&p, 1, 5);
        }
    }
    ck_abort_msg("no frame from the server");
    return -1;
}

/* The server's close frame: its code (1005 if empty) and reason. */
static uint16_t
client_close_wait(int cl, char *reason, size_t cap)
{
    uint8_t op, payload[128];
    long n;
    while ((n = client_frame_wait(cl, &op, payload, sizeof(payload))) >= 0 && op != WS_OP_CLOSE)
        ck_assert_msg(op == WS_OP_TEXT || op == WS_OP_PING, "unexpected opcode %u", op);
    if (reason != NULL) {
        size_t r = n > 2 ? (size_t)n - 2 : 0;
        r = r < cap - 1 ? r : cap - 1;
        memcpy(reason, payload + 2, r);
        reason[r] = '\0';
    }
    return n == 0 ? 1005 : (uint16_t)(payload[0] << 8 | payload[1]);
}

/* EOF on the client end after whatever frames are still in flight. */
static void
client_eof_wait(int cl)
{
    for (int i = 0; i < 400; i++) {
        fx_pump();
        if (client_read(cl) == 0)
            return;
        F.rx_len = 0; /* frames before the end do not matter here */
        struct pollfd p = {.fd = cl, .events = POLLIN};
        (void)poll(&p, 1, 5);
    }
    ck_abort_msg("the server never closed the socket");
}

/* Nothing from the server for a few loop passes. */
static void
client_silent(int cl)
{
    for (int i = 0; i < 5; i++) {
        fx_pump();
        ck_assert_int_eq(client_read(cl), 1);
    }
    ck_assert_uint_eq(F.rx_len, 0);
}

/* --- ping/pong ----------------------------------------------------------------- */

static void
ping_answered(int bytewise)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    client_send_frame(cl, 1, WS_OP_PING, "hello", 5, bytewise);
    uint8_t op, p[128];
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 5);
    ck_assert_uint_eq(op, WS_OP_PONG);
    ck_assert_mem_eq(p, "hello", 5);
    /* The largest legal ping (125 bytes) is answered too, whatever --max-message. */
    char big[125];
    memset(big, 'p', sizeof(big));
    client_send_frame(cl, 1, WS_OP_PING, big, sizeof(big), bytewise);
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 125);
    ck_assert_uint_eq(op, WS_OP_PONG);
    ck_assert_mem_eq(p, big, 125);
    ck_assert_uint_eq(F.set.nconns, 1);
    close(cl);
}

START_TEST(ping_answered_whole)
{
    ping_answered(0);
}
END_TEST

START_TEST(ping_answered_bytewise)
{
    ping_answered(1);
}
END_TEST

/* Bytes that came with the handshake are parsed before the socket's. */
START_TEST(handshake_extra_bytes_first)
{
    fx_init(16, 512);
    uint8_t frame[16];
    size_t n = client_frame(frame, 1, WS_OP_PING, "x", 1);
    int cl = fx_connect_extra(1, frame, n, NULL);
    uint8_t op, p[8];
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 1);
    ck_assert_uint_eq(op, WS_OP_PONG);
    ck_assert_uint_eq(p[0], 'x');
    close(cl);
}
END_TEST

START_TEST(ping_period_and_pong_wait)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    fx_advance(PING_MS - 1);
    client_silent(cl);
    fx_advance(1);
    uint8_t op, p[8];
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 0);
    ck_assert_uint_eq(op, WS_OP_PING);
    /* No frame from the client for --pong-wait: closed 1001. */
    fx_advance(PONG_MS - PING_MS);
    char reason[128];
    ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1001);
    ck_assert_str_eq(reason, "pong timeout");
    /* No answer: the socket goes after the linger. */
    fx_advance(CONN_CLOSE_LINGER_MS);
    client_eof_wait(cl);
    ck_assert_uint_eq(F.set.nconns, 0);
    close(cl);
}
END_TEST

START_TEST(client_frames_push_the_pong_wait_back)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    fx_advance(PONG_MS - 10);
    client_send_frame(cl, 1, WS_OP_PONG, NULL, 0, 0);
    fx_advance(10);
    fx_advance(PONG_MS - 20);
    ck_assert_uint_eq(F.set.nconns, 1);
    (void)client_read(cl);
    uint8_t op, p[8];
    while (rx_take_frame(&op, p, sizeof(p)) >= 0)
        ck_assert_uint_eq(op, WS_OP_PING); /* the ping period's, nothing else */
    close(cl);
}
END_TEST

/* --- the close handshake --------------------------------------------------------- */

/* The client closes with code; the server's answer.  An echo ends the
 * connection at once (both closes exchanged); the server's own close (1002)
 * waits for the client's answer until the linger is over. */
static uint16_t
close_echo(uint16_t code, int bytewise)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    client_send_close(cl, code, bytewise);
    uint16_t answer = client_close_wait(cl, NULL, 0);
    client_eof_wait(cl); /* the server shut its side after the close */
    ck_assert_uint_eq(F.set.nconns, answer == code ? 0 : 1);
    fx_advance(CONN_CLOSE_LINGER_MS);
    ck_assert_uint_eq(F.set.nconns, 0);
    close(cl);
    fx_done();
    return answer;
}

START_TEST(close_codes_echoed)
{
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (int bytewise = 0; bytewise < 2; bytewise++)
        for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
            ck_assert_uint_eq(close_echo(valid[i], bytewise), valid[i]);
}
END_TEST

START_TEST(invalid_close_codes_get_1002)
{
    static const uint16_t invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};
    for (int bytewise = 0; bytewise < 2; bytewise++)
        for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
            ck_assert_uint_eq(close_echo(invalid[i], bytewise), 1002);
}
END_TEST

START_TEST(empty_close_echoed_empty)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    client_send_frame(cl, 1, WS_OP_CLOSE, NULL, 0, 0);
    ck_assert_uint_eq(client_close_wait(cl, NULL, 0), 1005); /* no code: empty */
    client_eof_wait(cl);
    close(cl);
}
END_TEST

START_TEST(one_byte_close_body_is_1002)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    client_send_frame(cl, 1, WS_OP_CLOSE, "\x03", 1, 0);
    ck_assert_uint_eq(client_close_wait(cl, NULL, 0), 1002);
    close(cl);
}
END_TEST

START_TEST(unmasked_frame_is_1002)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    client_send(cl, unmasked, sizeof(unmasked), 0);
    ck_assert_uint_eq(client_close_wait(cl, NULL, 0), 1002);
    /* The client's answer ends it before the linger. */
    client_send_close(cl, 1002, 0);
    client_eof_wait(cl);
    ck_assert_uint_eq(F.set.nconns, 0);
    close(cl);
}
END_TEST

/* --- message size ------------------------------------------------------------------ */

START_TEST(oversize_message_is_1009)
{
    char msg[2000];
    memset(msg, 'm', sizeof(msg));
    /* Below 125 (checked per data frame) and above (wslay's limit), whole or bytewise. */
    static const uint32_t limits[] = {100, 1000};
    for (size_t i = 0; i < 2; i++)
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            fx_init(16, limits[i]);
            int cl = fx_connect(NULL);
            client_send_frame(cl, 1, 0x1, msg, limits[i], bytewise); /* at the limit: fine */
            client_silent(cl);
            client_send_frame(cl, 1, 0x1, msg, limits[i] + 1, bytewise);
            char reason[128];
            ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1009);
            ck_assert_str_eq(reason, "message too big");
            close(cl);
            fx_done();
        }
}
END_TEST

START_TEST(oversize_fragmented_message_is_1009)
{
    fx_init(16, 100);
    int cl = fx_connect(NULL);
    char part[60];
    memset(part, 'f', sizeof(part));
    client_send_frame(cl, 0, 0x1, part, sizeof(part), 0);
    client_silent(cl);
    client_send_frame(cl, 1, 0x0, part, sizeof(part), 0); /* 120 > 100 in all */
    ck_assert_uint_eq(client_close_wait(cl, NULL, 0), 1009);
    close(cl);
}
END_TEST

/* --- events from the window ---------------------------------------------------------- */

START_TEST(events_in_order)
{
    fx_init(64, 512);
    int cl = fx_connect(NULL);
    char text[64];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(text, sizeof(text), "{\"n\":%d}", i);
        fx_event(text, (size_t)n);
    }
    ck_assert_uint_le(F.set.out.writev_calls, 40);
    for (int i = 0; i < 40; i++) {
        uint8_t op, p[64];
        long n = client_frame_wait(cl, &op, p, sizeof(p));
        ck_assert_uint_eq(op, WS_OP_TEXT);
        int want = snprintf(text, sizeof(text), "{\"n\":%d}", i);
        ck_assert_int_eq(n, want);
        ck_assert_mem_eq(p, text, (size_t)want);
    }
    /* A pong goes between two event frames, never inside one. */
    client_send_frame(cl, 1, WS_OP_PING, "between", 7, 0);
    fx_event("{\"n\":40}", 8);
    uint8_t op, p[64];
    long n = client_frame_wait(cl, &op, p, sizeof(p));
    ck_assert_uint_eq(op, WS_OP_PONG);
    ck_assert_int_eq(n, 7);
    n = client_frame_wait(cl, &op, p, sizeof(p));
    ck_assert_uint_eq(op, WS_OP_TEXT);
    ck_assert_mem_eq(p, "{\"n\":40}", 8);
    close(cl);
}
END_TEST

/* Events published during the handshake are sent at the hand-off. */
START_TEST(events_since_the_handshake_sent_at_start)
{
    fx_init(16, 512);
    ck_assert_int_eq(event_window_push(&F.win, F.next_event++, "a", 1), 0);
    ck_assert_int_eq(event_window_push(&F.win, F.next_event++, "b", 1), 0);
    int cl = fx_connect_extra(2, NULL, 0, NULL); /* its stream started at 2 */
    uint8_t op, p[8];
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 1);
    ck_assert_uint_eq(p[0], 'b');
    close(cl);
}
END_TEST

/* The same bytes go to every connection. */
START_TEST(every_connection_gets_every_event)
{
    fx_init(16, 512);
    int cl[3];
    for (int i = 0; i < 3; i++)
        cl[i] = fx_connect(NULL);
    fx_event("{\"e\":1}", 7);
    for (int i = 0; i < 3; i++) {
        F.rx_len = 0;
        uint8_t op, p[16];
        ck_assert_int_eq(client_frame_wait(cl[i], &op, p, sizeof(p)), 7);
        ck_assert_mem_eq(p, "{\"e\":1}", 7);
        close(cl[i]);
    }
}
END_TEST

/* Fill the socket: the client does not read.  Returns the bytes pushed. */
static size_t fill_until_blocked(int cl, size_t event_bytes);

/* A pong waits for the end of the event frame being written. */
START_TEST(pong_waits_for_the_frame_boundary)
{
    fx_init(64, 512);
    int cl = fx_connect(NULL);
    size_t pushed = fill_until_blocked(cl, 40000);
    ck_assert(stream_out_mid_event(&F.set.conns->out));
    client_send_frame(cl, 1, WS_OP_PING, "mid", 3, 0);
    fx_event("{\"last\":1}", 10);
    /* Every frame arrives whole: the events so far, the pong, the last event. */
    static uint8_t p[40000];
    uint8_t op;
    size_t events = 0;
    long n;
    while ((n = client_frame_wait(cl, &op, p, sizeof(p))) >= 0 && op == WS_OP_TEXT) {
        ck_assert_int_eq(n, 40000);
        ck_assert_uint_eq(p[0], 'e');
        ck_assert_uint_eq(p[39999], 'e');
        events++;
    }
    ck_assert_uint_eq(events * 40000, pushed);
    ck_assert_uint_eq(op, WS_OP_PONG);
    ck_assert_int_eq(n, 3);
    ck_assert_mem_eq(p, "mid", 3);
    ck_assert_int_eq(client_frame_wait(cl, &op, p, sizeof(p)), 10);
    ck_assert_uint_eq(op, WS_OP_TEXT);
    close(cl);
}
END_TEST

/* --- lapping: 1013 ------------------------------------------------------------------- */

/* A connection whose first events left the window during its handshake. */
START_TEST(start_behind_the_window_is_1013)
{
    fx_init(4, 512);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(event_window_push(&F.win, F.next_event++, "x", 1), 0);
    int cl = fx_connect_extra(1, NULL, 0, NULL); /* window holds 3..6 */
    char reason[128];
    ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1013);
    ck_assert_str_eq(reason, "events missed; reconnect and refetch");
    ck_assert_uint_eq(F.set.stats.lapped, 1);
    close(cl);
}
END_TEST

/* A connection whose handshake took so long that more than the queue cap
 * was published meanwhile: closed before it is sent anything. */
START_TEST(start_over_the_cap_is_1013)
{
    fx_init(256, 512);
    char ev[2000];
    memset(ev, 's', sizeof(ev));
    for (size_t sent = 0; sent <= STREAM_QUEUE_MAX_BYTES; sent += sizeof(ev))
        ck_assert_int_eq(event_window_push(&F.win, F.next_event++, ev, sizeof(ev)), 0);
    int cl = fx_connect_extra(1, NULL, 0, NULL);
    uint8_t op, p[128];
    long n = client_frame_wait(cl, &op, p, sizeof(p));
    ck_assert_uint_eq(op, WS_OP_CLOSE); /* the first frame: no event before it */
    ck_assert_int_ge(n, 2);
    ck_assert_uint_eq(p[0] << 8 | p[1], 1013);
    ck_assert_uint_eq(F.set.stats.lapped, 1);
    close(cl);
}
END_TEST

/* The worker's window is full and the oldest event must go (pull_ring). */
START_TEST(lapped_at_a_frame_boundary_is_1013)
{
    fx_init(4, 512);
    int cl = fx_connect(NULL);
    int other = fx_connect(NULL);
    ck_assert_int_eq(event_window_push(&F.win, F.next_event++, "old", 3), 0);
    /* Not fanned out to anyone yet; the window must free event 1. */
    conn_set_lapped(&F.set, 2);
    event_window_release(&F.win, 2);
    char reason[128];
    ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1013);
    ck_assert_str_eq(reason, "client too slow; reconnect and refetch");
    F.rx_len = 0;
    ck_assert_uint_eq(client_close_wait(other, NULL, 0), 1013);
    ck_assert_uint_eq(F.set.stats.lapped, 2);
    /* Closing connections do not hold the window. */
    ck_assert_uint_eq(conn_set_min_cursor(&F.set, 99), 99);
    close(cl);
    close(other);
}
END_TEST

static size_t
fill_until_blocked(int cl, size_t event_bytes)
{
    (void)cl;
    char *ev = malloc(event_bytes);
    ck_assert_ptr_nonnull(ev);
    memset(ev, 'e', event_bytes);
    size_t pushed = 0;
    uint64_t calls;
    do {
        calls = F.set.out.writev_calls;
        fx_event(ev, event_bytes);
        pushed += event_bytes;
        ck_assert_uint_lt(pushed, STREAM_QUEUE_MAX_BYTES);
    } while (F.set.out.writev_calls > calls && !deadline_armed(&F.set.conns->out.write_dl));
    free(ev);
    return pushed;
}

START_TEST(lapped_mid_frame_is_dropped)
{
    fx_init(64, 512);
    int cl = fx_connect(NULL);
    (void)fill_until_blocked(cl, 40000);
    ck_assert(stream_out_mid_event(&F.set.conns->out));
    conn_set_lapped(&F.set, F.set.conns->out.next_seq + 1);
    ck_assert_uint_eq(F.set.stats.lapped, 1);
    conn_set_reap(&F.set);
    ck_assert_uint_eq(F.set.nconns, 0);
    client_eof_wait(cl); /* no close frame could be sent inside a frame */
    ck_assert_ptr_nonnull(strstr(fx_log(), "lapped mid-frame, dropped (close 1013)"));
    close(cl);
}
END_TEST

START_TEST(over_the_queue_cap_is_1013)
{
    fx_init(256, 512);
    int cl = fx_connect(NULL);
    char ev[2000];
    memset(ev, 'q', sizeof(ev));
    /* The client reads nothing; the events pile up past the cap. */
    for (int i = 0; i < 200 && F.set.stats.lapped == 0; i++)
        fx_event(ev, sizeof(ev));
    ck_assert_uint_eq(F.set.stats.lapped, 1);
    ck_assert_uint_eq(F.set.conns->state, CONN_CLOSING);
    /* Whatever was sent is followed by the close frame. */
    char reason[128];
    ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1013);
    ck_assert_str_eq(reason, "client too slow; reconnect and refetch");
    close(cl);
}
END_TEST

/* --- write deadline ------------------------------------------------------------------- */

START_TEST(write_deadline_drops_a_reader_that_stopped)
{
    fx_init(64, 512);
    int cl = fx_connect(NULL);
    int small = 4096;
    ck_assert_int_eq(setsockopt(cl, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    (void)fill_until_blocked(cl, 2000);
    ck_assert(deadline_armed(&F.set.conns->out.write_dl));
    fx_advance(WRITE_MS - 1);
    ck_assert_uint_eq(F.set.nconns, 1);
    fx_advance(1);
    ck_assert_uint_eq(F.set.nconns, 0);
    ck_assert_ptr_nonnull(strstr(fx_log(), "write deadline exceeded, dropped (close 1013)"));
    client_eof_wait(cl);
    close(cl);
}
END_TEST

/* Progress pushes the write deadline back. */
START_TEST(write_deadline_pushed_back_by_progress)
{
    fx_init(256, 512);
    int cl = fx_connect(NULL);
    (void)fill_until_blocked(cl, 2000);
    /* More queued than one read of the client's makes room for. */
    char ev[2000];
    memset(ev, 'w', sizeof(ev));
    for (int i = 0; i < 50; i++)
        fx_event(ev, sizeof(ev));
    fx_advance(WRITE_MS - 100);
    /* The client reads a little: EPOLLOUT, some progress, the deadline restarts. */
    char buf[65536];
    ck_assert_int_gt(read(cl, buf, sizeof(buf)), 0);
    fx_pump();
    ck_assert(deadline_armed(&F.set.conns->out.write_dl)); /* still more to send */
    fx_advance(200);
    ck_assert_uint_eq(F.set.nconns, 1);
    fx_advance(WRITE_MS - 200); /* no progress since the read */
    ck_assert_uint_eq(F.set.nconns, 0);
    close(cl);
}
END_TEST

/* Once everything is written, no write deadline runs. */
START_TEST(write_deadline_off_when_drained)
{
    fx_init(64, 512);
    int cl = fx_connect(NULL);
    (void)fill_until_blocked(cl, 2000);
    char buf[65536];
    /* Once everything is read the deadline is off. */
    for (int i = 0; i < 100 && deadline_armed(&F.set.conns->out.write_dl); i++) {
        while (read(cl, buf, sizeof(buf)) > 0)
            ;
        fx_pump();
    }
    ck_assert(!deadline_armed(&F.set.conns->out.write_dl));
    fx_advance(WRITE_MS * 2);
    ck_assert_uint_eq(F.set.nconns, 1);
    close(cl);
}
END_TEST

/* --- the set's other passes ------------------------------------------------------------ */

START_TEST(close_all_sends_1001)
{
    fx_init(16, 512);
    int cl = fx_connect(NULL);
    conn_set_close_all(&F.set, CONN_CLOSE_GOING_AWAY, "server shutting down");
    char reason[128];
    ck_assert_uint_eq(client_close_wait(cl, reason, sizeof(reason)), 1001);
    ck_assert_str_eq(reason, "server shutting down");
    /* Events after the close frame are never sent: the server's side ends. */
    fx_event("late", 4);
    fx_pump();
    ck_assert_int_eq(client_read(cl), 0);
    ck_assert_uint_eq(F.rx_len, 0);
    /* The peer's answer ends the connection. */
    client_send_close(cl, 1001, 0);
    ck_assert_uint_eq(F.set.nconns, 0);
    close(cl);
}
END_TEST

/* The stats slot (GET /metrics): every connection's end is counted once,
 * under the close code personad sent or the reason it was dropped. */
START_TEST(stats_count_each_ending_once)
{
    fx_init(64, 100);
    struct stats_slot *st = &F.stats;
    char msg[101];
    memset(msg, 'm', sizeof(msg));
    int a = fx_connect(NULL); /* too big: 1009, then the client's answer ends it */
    client_send_frame(a, 1, 0x1, msg, sizeof(msg), 0);
    ck_assert_uint_eq(client_close_wait(a, NULL, 0), 1009);
    client_send_close(a, 1009, 0);
    client_eof_wait(a);
    int b = fx_connect(NULL); /* unmasked: 1002, then EOF while closing (no drop) */
    static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    client_send(b, unmasked, sizeof(unmasked), 0);
    ck_assert_uint_eq(client_close_wait(b, NULL, 0), 1002);
    close(b);
    fx_pump();
    int c = fx_connect(NULL); /* the client's 4000, echoed: "other" */
    client_send_close(c, 4000, 0);
    ck_assert_uint_eq(client_close_wait(c, NULL, 0), 4000);
    client_eof_wait(c);
    int d = fx_connect(NULL); /* EOF while open: peer_gone */
    close(d);
    fx_pump();
    ck_assert_uint_eq(F.set.nconns, 0);
    ck_assert_uint_eq(stats_get(st, STATS_WS_OPEN), 0);
    int e = fx_connect(NULL); /* stops reading: the write deadline drops it */
    int small = 4096;
    ck_assert_int_eq(setsockopt(e, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    (void)fill_until_blocked(e, 2000);
    ck_assert_uint_eq(stats_get(st, STATS_WS_OPEN), 1);
    fx_advance(WRITE_MS);
    ck_assert_uint_eq(F.set.nconns, 0);
    int f = fx_connect(NULL); /* open at shutdown: 1001 */
    ck_assert_uint_eq(stats_get(st, STATS_WS_OPEN), 1);
    uint64_t frames = stats_get(st, STATS_FRAMES_WRITTEN);
    fx_event("one", 3);
    ck_assert_uint_eq(stats_get(st, STATS_FRAMES_WRITTEN), frames + 1);
    conn_set_close_all(&F.set, CONN_CLOSE_GOING_AWAY, "server shutting down");
    ck_assert_uint_eq(client_close_wait(f, NULL, 0), 1001);
    client_send_close(f, 1001, 0);
    ck_assert_uint_eq(F.set.nconns, 0);

    ck_assert_uint_eq(stats_get(st, STATS_WS_OPENED), 6);
    ck_assert_uint_eq(stats_get(st, STATS_WS_OPEN), 0);
    ck_assert_uint_eq(stats_get(st, STATS_WS_CLOSE_1009), 1);
    ck_assert_uint_eq(stats_get(st, STATS_WS_CLOSE_1002), 1);
    ck_assert_uint_eq(stats_get(st, STATS_WS_CLOSE_OTHER), 1);
    ck_assert_uint_eq(stats_get(st, STATS_WS_CLOSE_1001), 1);
    ck_assert_uint_eq(stats_get(st, STATS_WS_DROP_PEER_GONE), 1);
    ck_assert_uint_eq(stats_get(st, STATS_WS_DROP_WRITE_DEADLINE), 1);
    uint64_t ended = 0;
    for (int i = STATS_WS_CLOSE_1000; i <= STATS_WS_DROP_WORKER_EXIT; i++)
        ended += stats_get(st, (enum stats_id)i);
    ck_assert_uint_eq(ended, 6); /* each ending once */
    ck_assert_uint_gt(stats_get(st, STATS_BYTES_WRITTEN), 2000);
    close(a);
    close(c);
    close(e);
    close(f);
}
END_TEST

START_TEST(pending_handshakes_hold_the_window)
{
    fx_init(16, 512);
    struct conn_pending p = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(event_window_push(&F.win, F.next_event++, "x", 1), 0);
    ck_assert_uint_eq(conn_set_min_cursor(&F.set, 4), 4);
    conn_set_pending_add(&F.set, &p, STREAM_PROTO_WS, 2);
    ck_assert_uint_eq(conn_set_min_cursor(&F.set, 4), 2);
    int cl = fx_connect_extra(3, NULL, 0, NULL);
    ck_assert_uint_eq(conn_set_min_cursor(&F.set, 4), 2);
    conn_set_pending_forget(&p);
    conn_set_pending_forget(&p);                          /* twice: a no-op */
    ck_assert_uint_eq(conn_set_min_cursor(&F.set, 4), 4); /* the connection has sent 3 */
    close(cl);
}
END_TEST

START_TEST(drop_all_frees_everything)
{
    fx_init(16, 512);
    int cl[4];
    for (int i = 0; i < 4; i++)
        cl[i] = fx_connect(NULL);
    ck_assert_uint_eq(F.set.nconns, 4);
    conn_set_drop_all(&F.set);
    ck_assert_uint_eq(F.set.nconns, 0);
    ck_assert_ptr_null(F.set.conns);
    ck_assert_uint_eq(F.set.stats.opened, 4);
    ck_assert_uint_eq(F.set.stats.closed, 4);
    for (int i = 0; i < 4; i++) {
        client_eof_wait(cl[i]);
        close(cl[i]);
    }
}
END_TEST

/* --- a failed epoll_ctl(MOD) drops one connection, not the worker ------------------------ */

START_TEST(epoll_mod_failure_drops_one_connection)
{
    fx_init(64, 512);
    int server;
    int cl = fx_connect(&server);
    int other = fx_connect(NULL);
    /* The loop can no longer watch the first connection: its registration is gone. */
    ck_assert_int_eq(epoll_ctl(F.epfd, EPOLL_CTL_DEL, server, NULL), 0);
    char ev[2000];
    memset(ev, 'b', sizeof(ev));
    for (int i = 0; i < 200 && F.set.nconns == 2; i++) {
        fx_event(ev, sizeof(ev));
        conn_set_reap(&F.set);
        /* The other client reads, so only the first one blocks. */
        while (read(other, F.rx, RX_BYTES) > 0)
            ;
    }
    ck_assert_uint_eq(F.set.nconns, 1);
    ck_assert_ptr_nonnull(strstr(fx_log(), "epoll_ctl(MOD) failed, dropped (close 1011"));
    client_eof_wait(cl);
    /* The other connection carries on. */
    F.rx_len = 0;
    fx_event("{\"after\":1}", 11);
    uint8_t op, p[64];
    long n;
    do
        n = client_frame_wait(other, &op, p, sizeof(p));
    while (n != 11);
    ck_assert_mem_eq(p, "{\"after\":1}", 11);
    close(cl);
    close(other);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("ws_conn");
    TCase *tc = tcase_create("socketpair");
    tcase_add_checked_fixture(tc, NULL, fx_done); /* everything freed: ASan's leak check */
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ping_answered_whole);
    tcase_add_test(tc, ping_answered_bytewise);
    tcase_add_test(tc, handshake_extra_bytes_first);
    tcase_add_test(tc, ping_period_and_pong_wait);
    tcase_add_test(tc, client_frames_push_the_pong_wait_back);
    tcase_add_test(tc, close_codes_echoed);
    tcase_add_test(tc, invalid_close_codes_get_1002);
    tcase_add_test(tc, empty_close_echoed_empty);
    tcase_add_test(tc, one_byte_close_body_is_1002);
    tcase_add_test(tc, unmasked_frame_is_1002);
    tcase_add_test(tc, oversize_message_is_1009);
    tcase_add_test(tc, oversize_fragmented_message_is_1009);
    tcase_add_test(tc, events_in_order);
    tcase_add_test(tc, events_since_the_handshake_sent_at_start);
    tcase_add_test(tc, every_connection_gets_every_event);
    tcase_add_test(tc, pong_waits_for_the_frame_boundary);
    tcase_add_test(tc, start_behind_the_window_is_1013);
    tcase_add_test(tc, start_over_the_cap_is_1013);
    tcase_add_test(tc, lapped_at_a_frame_boundary_is_1013);
    tcase_add_test(tc, lapped_mid_frame_is_dropped);
    tcase_add_test(tc, over_the_queue_cap_is_1013);
    tcase_add_test(tc, write_deadline_drops_a_reader_that_stopped);
    tcase_add_test(tc, write_deadline_pushed_back_by_progress);
    tcase_add_test(tc, write_deadline_off_when_drained);
    tcase_add_test(tc, close_all_sends_1001);
    tcase_add_test(tc, stats_count_each_ending_once);
    tcase_add_test(tc, pending_handshakes_hold_the_window);
    tcase_add_test(tc, drop_all_frees_everything);
    tcase_add_test(tc, epoll_mod_failure_drops_one_connection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
