/*
 * ws_conn - see ws_conn.h.
 *
 * States: OPEN -> CLOSING (our close frame queued, or the peer's close being
 * answered) -> DEAD (on the worker's reap list; freed after the loop pass).
 *
 * Output order on the wire: the rest of a partially written event frame, then
 * the control buffer, then further event frames.  Control frames are therefore
 * only ever inserted at frame boundaries.  A flush builds one iovec array of
 * those pieces and makes one writev; a connection that cannot take everything
 * is "blocked" until EPOLLOUT, and its write deadline runs while it is.
 *
 * wslay parses input only.  Its own output (automatic pongs, its close frames)
 * goes to a sink callback so its queue never grows; we build our own control
 * frames and learn from wslay which close code it wanted (get_status_code_sent).
 */
#include "build_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <wslay/wslay.h>

#include "log.h"
#include "net.h"
#include "ws_conn.h"
#include "ws_frame.h"

#define WS_CTRL_BYTES 256
#define WS_IOV_MAX 64
#define WS_RECV_MAX_BYTES_PER_WAKEUP (64u * 1024u)
/* Kernel send buffer per connection (Linux doubles it).  Fixed rather than
 * autotuned: a client that stops reading then pushes back on us within a
 * bounded number of bytes, so its write deadline and queue cap can act, and
 * its kernel memory stays bounded too.  Events are small; this is plenty. */
#define WS_SNDBUF_BYTES (64 * 1024)

enum ws_state { WS_OPEN, WS_CLOSING, WS_DEAD };

struct ws_conn {
    struct ev_handler ev; /* first: epoll's data.ptr points here */
    struct worker *w;
    struct ws_conn *prev, *next; /* w->conns */
    struct ws_conn *reap_next;
    int fd;
    enum ws_state state;
    unsigned blocked : 1;     /* waiting for EPOLLOUT */
    unsigned want_out : 1;    /* EPOLLOUT is in the epoll mask */
    unsigned peer_closed : 1; /* we are answering the peer's close */
    unsigned proto_error : 1; /* wslay accepted something RFC 6455 forbids */
    unsigned wr_shut : 1;
    unsigned rd_eof : 1;
    unsigned sock_err : 1;
    unsigned in_close : 1;         /* the frame being read is a close frame */
    unsigned too_big : 1;          /* a data message exceeded --max-message (below 125) */
    wslay_event_context_ptr wslay; /* NULL while idle: see conn_read */
    struct ws_rx_track rx;         /* frame position of the input stream */
    uint64_t next_seq;             /* next event to send */
    uint32_t frame_off;            /* bytes of that event's frame already sent */
    uint32_t recv_budget;
    int read_errno;         /* why the last read failed, for the log */
    uint16_t close_code;    /* the code of the peer's close frame being read, */
    uint8_t close_code_len; /* and how many of its two bytes have come */
    uint8_t msg_len;        /* bytes of the data message being read (< 125 matters) */
    uint8_t *extra; /* bytes received with the handshake, owned */
    uint32_t extra_len, extra_off;
    struct deadline_node ping_dl, pong_dl, write_dl; /* pong_dl doubles as linger */
    uint16_t ctrl_len, ctrl_off;
    uint8_t ctrl[WS_CTRL_BYTES];
};

#define CONN_OF(node, field)                                                                       \
    ((struct ws_conn *)(void *)((char *)(node)-offsetof(struct ws_conn, field)))

static void conn_flush(struct ws_conn *c);

static void
conn_epoll_mask(struct ws_conn *c, int want_out)
{
    if (c->want_out == (unsigned)want_out || c->state == WS_DEAD)
        return;
    if (ev_mod(c->w->epfd, c->fd, EPOLLIN | (want_out ? EPOLLOUT : 0), &c->ev) != 0)
        panic("epoll_ctl(MOD) on a live connection failed");
    c->want_out = (unsigned)want_out;
}

/* conn_kill - drop c now (no more I/O); freed by ws_reap.  The one exit point. */
static void
conn_kill(struct ws_conn *c)
{
    if (c->state == WS_DEAD)
        return;
    struct worker *w = c->w;
    c->state = WS_DEAD;
    deadline_disarm(&c->ping_dl);
    deadline_disarm(&c->pong_dl);
    deadline_disarm(&c->write_dl);
    if (ev_del(w->epfd, c->fd) != 0)
        log_warn("epoll_ctl(DEL)");
    c->reap_next = w->reap;
    w->reap = c;
    w->stats.conns_closed++;
}

static int
ctrl_add(struct ws_conn *c, const uint8_t *bytes, size_t len)
{
    if (c->ctrl_off == c->ctrl_len)
        c->ctrl_off = c->ctrl_len = 0;
    if (c->ctrl_len + len > WS_CTRL_BYTES && c->ctrl_off > 0) {
        memmove(c->ctrl, c->ctrl + c->ctrl_off, (size_t)(c->ctrl_len - c->ctrl_off));
        c->ctrl_len = (uint16_t)(c->ctrl_len - c->ctrl_off);
        c->ctrl_off = 0;
    }
    if (c->ctrl_len + len > WS_CTRL_BYTES)
        return -1;
    memcpy(c->ctrl + c->ctrl_len, bytes, len);
    c->ctrl_len = (uint16_t)(c->ctrl_len + len);
    return 0;
}

/* Pings and pongs may fill the control buffer only up to the point where a
 * largest close frame still fits behind them; a peer that never reads then
 * simply misses pings, which RFC 6455 allows. */
static int
ctrl_add_ping_pong(struct ws_conn *c, const uint8_t *bytes, size_t len)
{
    size_t pending = (size_t)(c->ctrl_len - c->ctrl_off);
    if (pending + len > WS_CTRL_BYTES - (WS_CONTROL_PAYLOAD_MAX + 2))
        return -1;
    return ctrl_add(c, bytes, len);
}

static const char *
close_reason_text(uint16_t code)
{
    switch (code) {
    case WS_CLOSE_GOING_AWAY:
        return "going away";
    case WS_CLOSE_PROTOCOL_ERROR:
        return "protocol error";
    case WS_CLOSE_INVALID_DATA:
        return "invalid payload data";
    case WS_CLOSE_TOO_BIG:
        return "message too big";
    case WS_CLOSE_TRY_AGAIN:
        return "try again later";
    default:
        return "";
    }
}

/* One line per connection event a client can cause, so they share the
 * worker's rate limit: a flood of bad clients costs a few lines a second. */
static void
log_close(struct ws_conn *c, int info, const char *what, uint16_t code, const char *reason)
{
    if (!log_enabled(info ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG) ||
        !log_limit_allow(&c->w->client_log, c->w->now_ms))
        return;
    char peer[64];
    net_peer_name(c->fd, peer, sizeof(peer));
    if (strcmp(peer, "?:0") == 0) /* reset already: the address is gone */
        snprintf(peer, sizeof(peer), "fd %d", c->fd);
    const char *sep = reason[0] != '\0' ? ": " : "";
    if (info)
        log_info("ws %s: %s (close %u%s%s)", peer, what, (unsigned)code, sep, reason);
    else
        log_debug("ws %s: %s (close %u%s%s)", peer, what, (unsigned)code, sep, reason);
}

/* Queue our close frame, stop pinging, and give the peer WS_CLOSE_LINGER_MS.
 * It always fits: pings and pongs leave room for it (ctrl_add_ping_pong). */
static void
conn_queue_close(struct ws_conn *c, const uint8_t *frame, size_t n)
{
    c->state = WS_CLOSING;
    if (ctrl_add(c, frame, n) != 0)
        panic("no room for a close frame in a connection's control buffer");
    deadline_disarm(&c->ping_dl);
    deadline_arm_force(&c->w->linger_list, &c->pong_dl, c->w->now_ms);
    conn_flush(c);
}

void
ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state != WS_OPEN)
        return;
    if (reason == NULL || reason[0] == '\0')
        reason = close_reason_text(code);
    int routine = code == WS_CLOSE_NORMAL || (code == WS_CLOSE_GOING_AWAY && c->w->stopping);
    log_close(c, !routine, "closing", code, reason);
    uint8_t frame[WS_CONTROL_PAYLOAD_MAX + 2];
    conn_queue_close(c, frame, ws_frame_close(frame, code, reason));
}

/* Answer the peer's close: echo its code (an empty close if it sent none). */
static void
conn_answer_close(struct ws_conn *c, uint16_t code)
{
    uint8_t frame[4];
    size_t n = code == WS_CLOSE_NO_STATUS ? ws_frame_control(frame, WS_OP_CLOSE, NULL, 0)
                                          : ws_frame_close(frame, code, NULL);
    log_close(c, 0, "closed by peer", code, "");
    c->peer_closed = 1;
    conn_queue_close(c, frame, n);
}

static int
conn_has_output(const struct ws_conn *c)
{
    return c->frame_off > 0 || c->ctrl_off < c->ctrl_len ||
           (c->state == WS_OPEN && c->next_seq < c->w->window.next_seq);
}

/* After everything queued is written: finish a close, or clear the deadline. */
static void
conn_drained(struct ws_conn *c)
{
    deadline_disarm(&c->write_dl);
    conn_epoll_mask(c, 0);
    if (c->state == WS_CLOSING && !c->wr_shut) {
        (void)shutdown(c->fd, SHUT_WR);
        c->wr_shut = 1;
        if (c->peer_closed)
            conn_kill(c); /* both closes exchanged */
    }
}

/* c needs an event the window no longer holds (the window or the
 * ring lapped it, e.g. while its handshake was in flight): close it 1013, or
 * drop it if mid-frame.  An event is delivered or the connection is closed:
 * never a gap, and never the whole worker. */
static void
conn_lost_frame(struct ws_conn *c)
{
    struct worker *w = c->w;
    w->stats.conns_lapped++;
    if (c->frame_off > 0) {
        log_close(c, 1, "lapped mid-frame, dropped", WS_CLOSE_TRY_AGAIN, "");
        conn_kill(c);
        return;
    }
    c->next_seq = w->window.first_seq; /* nothing more is sent: it is closing */
    ws_conn_close(c, WS_CLOSE_TRY_AGAIN, "events missed; reconnect and refetch");
}

static void
conn_flush(struct ws_conn *c)
{
    if (c->state == WS_DEAD || c->blocked)
        return;
    struct worker *w = c->w;
    struct iovec iov[WS_IOV_MAX];
    uint8_t is_frame[WS_IOV_MAX];
    int n = 0;
    size_t total = 0;
    uint64_t seq = c->next_seq;
    if (c->frame_off > 0) {
        const struct event_entry *e = event_window_get(&w->window, seq);
        if (e == NULL) {
            conn_lost_frame(c);
            return;
        }
        uint32_t len;
        const uint8_t *bytes = event_entry_bytes(e, STREAM_PROTO_WS, &len);
        iov[n] = (struct iovec){(void *)(bytes + c->frame_off), len - c->frame_off};
        is_frame[n++] = 1;
        total += len - c->frame_off;
        seq++;
    }
    if (c->ctrl_off < c->ctrl_len) {
        iov[n] = (struct iovec){c->ctrl + c->ctrl_off, (size_t)(c->ctrl_len - c->ctrl_off)};
        is_frame[n++] = 0;
        total += c->ctrl_len - c->ctrl_off;
    }
    if (c->state == WS_OPEN) {
        while (n < WS_IOV_MAX && total < WS_SEND_MAX_BYTES_PER_WAKEUP && seq < w->window.next_seq) {
            const struct event_entry *e = event_window_get(&w->window, seq);
            if (e == NULL) {
                conn_lost_frame(c); /* only ever the first: the window is contiguous */
                return;
            }
            uint32_t len;
            const uint8_t *bytes = event_entry_bytes(e, STREAM_PROTO_WS, &len);
            iov[n] = (struct iovec){(void *)bytes, len};
            is_frame[n++] = 1;
            total += len;
            seq++;
        }
    }
    if (n == 0) {
        conn_drained(c);
        return;
    }
    ssize_t r;
    do {
        r = writev(c->fd, iov, n);
    } while (r < 0 && errno == EINTR);
    w->stats.writev_calls++;
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->blocked = 1;
            conn_epoll_mask(c, 1);
            if (!deadline_armed(&c->write_dl))
                deadline_arm_force(&w->write_list, &c->write_dl, w->now_ms);
            return;
        }
        log_close(c, 1, "write failed", 1006, strerror(errno));
        conn_kill(c);
        return;
    }
    size_t left = (size_t)r;
    for (int i = 0; i < n && left > 0; i++) {
        size_t take = left < iov[i].iov_len ? left : iov[i].iov_len;
        left -= take;
        if (is_frame[i]) {
            const struct event_entry *e = event_window_get(&w->window, c->next_seq);
            c->frame_off += (uint32_t)take;
            if (c->frame_off == e->enc[STREAM_PROTO_WS].len) {
                c->next_seq++;
                c->frame_off = 0;
            }
        } else {
            c->ctrl_off = (uint16_t)(c->ctrl_off + take);
            if (c->ctrl_off == c->ctrl_len)
                c->ctrl_off = c->ctrl_len = 0;
        }
    }
    if (!conn_has_output(c)) {
        conn_drained(c);
        return;
    }
    /* More to send: the socket is full, or this wake-up's budget is spent.
     * Either way EPOLLOUT brings us back, if the peer ever reads.  The write
     * deadline runs whenever output waits and measures time without progress:
     * this pass made some, so it restarts now (a full write can leave the
     * socket buffer full, and then EPOLLOUT may never come). */
    c->blocked = 1;
    conn_epoll_mask(c, 1);
    deadline_arm(&w->write_list, &c->write_dl, w->now_ms);
}

/* --- wslay callbacks ------------------------------------------------------- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_conn *c = user;
    if (c->extra_off < c->extra_len) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len)
            n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        ws_rx_track_feed(&c->rx, buf, n);
        c->extra_off += (uint32_t)n;
        if (c->extra_off == c->extra_len) {
            free(c->extra);
            c->extra = NULL;
            c->extra_len = c->extra_off = 0;
        }
        return (ssize_t)n;
    }
    if (c->recv_budget == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK); /* level-triggered: we'll be back */
        return -1;
    }
    if (len > c->recv_budget)
        len = c->recv_budget;
    ssize_t r;
    do {
        r = read(c->fd, buf, len);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        c->recv_budget -= (uint32_t)r;
        ws_rx_track_feed(&c->rx, buf, (size_t)r);
        return r;
    }
    if (r == 0)
        c->rd_eof = 1;
    else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    } else {
        c->sock_err = 1;
        c->read_errno = errno;
    }
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* wslay's own output is discarded: see the file comment. */
static ssize_t
sink_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)ctx, (void)data, (void)flags, (void)user;
    return (ssize_t)len;
}

static void
frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
               void *user)
{
    (void)ctx;
    struct ws_conn *c = user;
    if (c->state == WS_OPEN)
        deadline_arm(&c->w->pong_list, &c->pong_dl, c->w->now_ms);
    c->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
    c->close_code_len = 0;
    /* wslay holds every message, control frames too, to one limit, which
     * conn_wslay raises to at least 125 so that legal pings and closes pass
     * (RFC 6455 5.5); a smaller --max-message is applied here, to data
     * messages only.  wslay has checked the total against 125 already. */
    uint32_t max = c->w->cfg->max_message_bytes;
    if (max < WS_CONTROL_PAYLOAD_MAX && arg->opcode <= WSLAY_BINARY_FRAME) {
        uint64_t total = arg->payload_length;
        if (arg->opcode == WSLAY_CONTINUATION_FRAME)
            total += c->msg_len;
        c->msg_len = (uint8_t)(total < WS_CONTROL_PAYLOAD_MAX ? total : WS_CONTROL_PAYLOAD_MAX);
        if (total > max) {
            c->too_big = 1;
            c->recv_budget = 0; /* read no further: conn_read closes 1009 */
        }
    }
}

/* The code of a close frame, as it arrives: wslay 1.1.1 answers the codes
 * it does not know (1012-1014) with 1002 and never reports them, so
 * conn_read needs to see them itself. */
static void
frame_chunk_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg,
               void *user)
{
    (void)ctx;
    struct ws_conn *c = user;
    for (size_t i = 0; c->in_close && i < arg->data_length && c->close_code_len < 2; i++) {
        c->close_code = (uint16_t)(c->close_code << 8 | arg->data[i]);
        c->close_code_len++;
    }
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    struct ws_conn *c = user;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length == 1) {
        c->proto_error = 1; /* RFC 6455 5.5.1: a close body is empty or >= 2 bytes */
    } else if (arg->opcode == WSLAY_PING && c->state == WS_OPEN) {
        uint8_t frame[WS_CONTROL_PAYLOAD_MAX + 2];
        size_t n = ws_frame_control(frame, WS_OP_PONG, arg->msg, arg->msg_length);
        if (n > 0)
            (void)ctrl_add_ping_pong(c, frame,
                                     n); /* no room: answering only the latest ping is allowed */
    }
    /* Data messages are read and ignored: the API is notification-only. */
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = recv_cb,
    .send_callback = sink_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_frame_recv_chunk_callback = frame_chunk_cb,
    .on_msg_recv_callback = msg_cb,
};

/* --- input ------------------------------------------------------------------ */

/* wslay's context is ~8 KB (two 4 KB buffers), far more than the rest of a
 * connection.  An idle connection needs none of it, so it is created when
 * input arrives and freed again once the input stream stands at a frame
 * boundary outside any fragmented message (ws_rx_track), where a fresh
 * context would parse on exactly as the old one: idle connections cost a few
 * hundred bytes instead of ~9 KB.  Pings and pongs pay a malloc/free. */
static int
conn_wslay(struct ws_conn *c)
{
    if (c->wslay != NULL)
        return 0;
    if (wslay_event_context_server_init(&c->wslay, &ws_callbacks, c) != 0) {
        c->wslay = NULL;
        return -1;
    }
    uint32_t max = c->w->cfg->max_message_bytes; /* below 125: see frame_start_cb */
    wslay_event_config_set_max_recv_msg_length(
        c->wslay, max < WS_CONTROL_PAYLOAD_MAX ? WS_CONTROL_PAYLOAD_MAX : max);
    return 0;
}

static void
conn_wslay_release_if_idle(struct ws_conn *c)
{
    if (c->wslay != NULL && c->state != WS_DEAD && c->extra == NULL && ws_rx_track_idle(&c->rx) &&
        !wslay_event_get_close_received(c->wslay) && !wslay_event_get_close_sent(c->wslay)) {
        wslay_event_context_free(c->wslay);
        c->wslay = NULL;
    }
}

/* A closing connection only waits for the peer's close frame or EOF.  wslay
 * stops reading once it has decided to close (and level-triggered EPOLLIN would
 * then fire forever), so the input is read and discarded here, followed only
 * by ws_rx_track, which keeps frame boundaries even after a violation. */
static void
conn_read_closing(struct ws_conn *c)
{
    uint8_t buf[4096];
    free(c->extra);
    c->extra = NULL;
    c->extra_len = c->extra_off = 0;
    for (uint32_t total = 0; !c->rx.saw_close && total < WS_RECV_MAX_BYTES_PER_WAKEUP;) {
        ssize_t r = read(c->fd, buf, sizeof(buf));
        if (r > 0) {
            ws_rx_track_feed(&c->rx, buf, (size_t)r);
            total += (uint32_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* wait for the rest */
        } else {
            conn_kill(c); /* EOF or error: the peer is done */
            return;
        }
    }
    if (c->rx.saw_close)
        conn_kill(c); /* the peer answered our close: both sides are done */
    /* else this wake-up's budget is spent; level-triggered EPOLLIN returns */
}

static void
conn_read(struct ws_conn *c)
{
    if (c->state == WS_CLOSING) {
        conn_read_closing(c);
        return;
    }
    if (conn_wslay(c) != 0) {
        log_close(c, 1, "out of memory for a WebSocket context, dropped", 1011, "");
        conn_kill(c);
        return;
    }
    c->recv_budget = WS_RECV_MAX_BYTES_PER_WAKEUP;
    int rc = wslay_event_recv(c->wslay);
    if (c->rd_eof || c->sock_err) {
        if (c->state == WS_OPEN)
            log_close(c, 0, c->rd_eof ? "peer went away" : "read failed", 1006,
                      c->rd_eof ? "" : strerror(c->read_errno));
        conn_kill(c);
        return;
    }
    if (c->state == WS_DEAD)
        return;
    if (c->too_big) {
        ws_conn_close(c, WS_CLOSE_TOO_BIG, NULL);
        return;
    }
    if (rc != 0) {
        ws_conn_close(c, WS_CLOSE_PROTOCOL_ERROR, NULL); /* frame-level violation */
        return;
    }
    (void)wslay_event_send(c->wslay); /* drain wslay's queue into the sink */
    if (c->proto_error) {
        ws_conn_close(c, WS_CLOSE_PROTOCOL_ERROR, NULL);
    } else if (wslay_event_get_close_received(c->wslay)) {
        if (c->state == WS_OPEN)
            conn_answer_close(c, wslay_event_get_status_code_received(c->wslay));
        else
            conn_kill(c); /* the answer to our close: done */
    } else if (wslay_event_get_close_sent(c->wslay)) {
        uint16_t code = wslay_event_get_status_code_sent(c->wslay);
        /* A whole close frame with a code wslay does not know but RFC 6455
         * allows (its UTF-8 and length were fine, or wslay would have said
         * 1007 or failed the frame): an ordinary close, echoed. */
        if (code == WS_CLOSE_PROTOCOL_ERROR && c->in_close && c->close_code_len == 2 &&
            ws_close_code_valid(c->close_code))
            conn_answer_close(c, c->close_code);
        else
            ws_conn_close(
                c, code == 0 || code == WS_CLOSE_NO_STATUS ? WS_CLOSE_PROTOCOL_ERROR : code, NULL);
    } else {
        conn_flush(c); /* a pong may be waiting */
    }
    conn_wslay_release_if_idle(c);
}

static void
ws_conn_on_event(struct ev_handler *h, uint32_t events)
{
    struct ws_conn *c = EV_CONTAINER(h, struct ws_conn, ev);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(c);
    if ((events & EPOLLOUT) && c->state != WS_DEAD) {
        c->blocked = 0;
        conn_flush(c);
    }
}

/* --- lifecycle -------------------------------------------------------------- */

struct ws_conn *
ws_conn_new(struct worker *w, int fd, uint64_t start_seq, const void *extra, size_t extra_len)
{
    struct ws_conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (extra_len > 0 && (c->extra = malloc(extra_len)) == NULL)) {
        free(c);
        close(fd);
        log_warnx("out of memory accepting a WebSocket connection");
        return NULL;
    }
    c->ev.on_event = ws_conn_on_event;
    c->w = w;
    c->fd = fd;
    c->state = WS_OPEN;
    if (extra_len > 0) {
        memcpy(c->extra, extra, extra_len);
        c->extra_len = (uint32_t)extra_len;
    }
    int one = 1, sndbuf = WS_SNDBUF_BYTES;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
        log_warn("setsockopt(SO_SNDBUF)");
#if HAVE_DECL_TCP_NODELAY
    /* Latency: frames go out at once; batching is our job (one writev). */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 && errno != EOPNOTSUPP)
        log_warn("setsockopt(TCP_NODELAY)");
#else
    (void)one;
#endif
    if (ev_add(w->epfd, fd, EPOLLIN, &c->ev) != 0) {
        log_warn("epoll_ctl(ADD) for a WebSocket connection");
        free(c->extra);
        free(c);
        close(fd);
        return NULL;
    }
    c->next_seq = start_seq;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    w->stats.conns_opened++;
    deadline_arm_force(&w->ping_list, &c->ping_dl, w->now_ms);
    deadline_arm_force(&w->pong_list, &c->pong_dl, w->now_ms);
    if (start_seq < w->window.first_seq ||
        event_window_pending(&w->window, STREAM_PROTO_WS, start_seq, 0) > WS_QUEUE_MAX_BYTES) {
        /* Its first events left the window while the handshake was in flight
         * (the window or the ring lapped them), or it is as far behind as
         * ws_fanout allows nobody to be: close it before anything. */
        conn_lost_frame(c);
    } else if (conn_has_output(c)) {
        conn_flush(c); /* events published during the handshake: send them now */
    }
    if (c->extra_len > 0 && c->state != WS_DEAD)
        conn_read(c);
    return c;
}

void
ws_reap(struct worker *w)
{
    while (w->reap != NULL) {
        struct ws_conn *c = w->reap;
        w->reap = c->reap_next;
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            w->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        w->nconns--;
        close(c->fd);
        if (c->wslay != NULL)
            wslay_event_context_free(c->wslay);
        free(c->extra);
        free(c);
    }
}

/* --- worker-wide passes --------------------------------------------------------- */

void
ws_fanout(struct worker *w)
{
    for (struct ws_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->state != WS_OPEN)
            continue;
        if (c->next_seq < w->window.first_seq ||
            event_window_pending(&w->window, STREAM_PROTO_WS, c->next_seq, c->frame_off) >
                WS_QUEUE_MAX_BYTES) {
            w->stats.conns_lapped++;
            ws_conn_close(c, WS_CLOSE_TRY_AGAIN, "client too slow; reconnect and refetch");
            continue;
        }
        conn_flush(c);
    }
}

void
ws_lapped(struct worker *w, uint64_t first_kept)
{
    for (struct ws_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->state == WS_DEAD || c->next_seq >= first_kept)
            continue;
        if (c->frame_off > 0) {
            log_close(c, 1, "lapped mid-frame, dropped", WS_CLOSE_TRY_AGAIN, "");
            w->stats.conns_lapped++;
            conn_kill(c);
            continue;
        }
        c->next_seq = first_kept; /* nothing more is sent: it is closing */
        if (c->state == WS_OPEN) {
            w->stats.conns_lapped++;
            ws_conn_close(c, WS_CLOSE_TRY_AGAIN, "client too slow; reconnect and refetch");
        }
    }
}

uint64_t
ws_min_cursor(const struct worker *w, uint64_t fallback)
{
    uint64_t min = fallback;
    for (const struct ws_conn *c = w->conns; c != NULL; c = c->next)
        if (c->state != WS_DEAD && c->next_seq < min && (c->state == WS_OPEN || c->frame_off > 0))
            min = c->next_seq;
    /* A pending handshake keeps its events like a connection its cursor, up
     * to the same cap: further behind, it is closed 1013 at the hand-off. */
    for (const struct ws_pending *p = w->pending; p != NULL; p = p->next)
        if (p->start_seq < min && p->start_seq >= w->window.first_seq &&
            event_window_pending(&w->window, STREAM_PROTO_WS, p->start_seq, 0) <=
                WS_QUEUE_MAX_BYTES)
            min = p->start_seq;
    return min;
}

void
ws_drop_all(struct worker *w)
{
    for (struct ws_conn *c = w->conns; c != NULL; c = c->next)
        conn_kill(c);
    ws_reap(w);
}

void
ws_close_all(struct worker *w, uint16_t code, const char *reason)
{
    for (struct ws_conn *c = w->conns; c != NULL; c = c->next)
        ws_conn_close(c, code, reason);
}

void
ws_expire(struct worker *w)
{
    struct deadline_node *n;
    int64_t now = w->now_ms;
    while ((n = deadline_pop_expired(&w->ping_list, now)) != NULL) {
        struct ws_conn *c = CONN_OF(n, ping_dl);
        static const uint8_t ping[2] = {0x80 | WS_OP_PING, 0};
        (void)ctrl_add_ping_pong(c, ping, sizeof(ping)); /* full: pings are already waiting */
        deadline_arm_force(&w->ping_list, &c->ping_dl, now);
        conn_flush(c);
    }
    while ((n = deadline_pop_expired(&w->pong_list, now)) != NULL) {
        struct ws_conn *c = CONN_OF(n, pong_dl);
        ws_conn_close(c, WS_CLOSE_GOING_AWAY, "pong timeout");
    }
    while ((n = deadline_pop_expired(&w->write_list, now)) != NULL) {
        struct ws_conn *c = CONN_OF(n, write_dl);
        log_close(c, 1, "write deadline exceeded, dropped", WS_CLOSE_TRY_AGAIN, "");
        if (c->frame_off == 0 && c->ctrl_off == c->ctrl_len) {
            /* At a frame boundary a close frame is well-formed: try once, no waiting. */
            uint8_t frame[WS_CONTROL_PAYLOAD_MAX + 2];
            size_t len = ws_frame_close(frame, WS_CLOSE_TRY_AGAIN, "write deadline exceeded");
            ssize_t r = write(c->fd, frame, len);
            (void)r;
        }
        conn_kill(c);
    }
    while ((n = deadline_pop_expired(&w->linger_list, now)) != NULL)
        conn_kill(CONN_OF(n, pong_dl));
}
