/*
 * ws_conn - see ws_conn.h.
 *
 * The connection's states are the set's (conn_set.c): OPEN -> CLOSING (our
 * close frame queued, or the peer's close being answered) -> DEAD.  Control
 * frames (pong, ping, close) go into the stream's control bytes, which the set
 * writes only at event-frame boundaries.
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
#include <sys/epoll.h>
#include <unistd.h>

#include <wslay/wslay.h>

#include "common/log.h"
#include "common/net.h"
#include "worker/ws_conn.h"
#include "worker/ws_frame.h"
#include "worker/stream_position.h"

#define WS_RECV_MAX_BYTES_PER_WAKEUP (64u * 1024u)

struct ws_conn {
    struct conn base;              /* first: the set's part (list, deadlines, output) */
    wslay_event_context_ptr wslay; /* NULL while idle: see conn_read */
    struct ws_rx_track rx;         /* frame position of the input stream */
    uint8_t *extra;                /* bytes received with the handshake, owned */
    uint32_t extra_len, extra_off;
    uint32_t recv_budget;
    /* Bit-fields beside close_code keep an idle connection at 536 bytes. */
    uint16_t close_code;         /* the code of the peer's close frame being read, */
    unsigned close_code_len : 2; /* and how many of its two bytes have come */
    unsigned msg_len : 7;        /* bytes of the data message being read (< 125 matters) */
    unsigned proto_error : 1;    /* wslay accepted something RFC 6455 forbids */
    unsigned rd_eof : 1;
    unsigned sock_err : 1;
    unsigned in_close : 1; /* the frame being read is a close frame */
    unsigned too_big : 1;  /* a data message exceeded --max-message (below 125) */
};

static struct ws_conn *
ws_of(struct conn *c)
{
    return (struct ws_conn *)(void *)c;
}

/* Pings and pongs may fill the control bytes only up to the point where a
 * largest close frame still fits behind them; a peer that never reads then
 * simply misses pings, which RFC 6455 allows. */
static int
ctrl_add_ping_pong(struct ws_conn *c, const uint8_t *bytes, size_t len)
{
    if (stream_out_ctrl_queued(&c->base.out) + len >
        STREAM_CTRL_BYTES - (WS_CONTROL_PAYLOAD_MAX + 2))
        return -1;
    return stream_out_ctrl_add(&c->base.out, bytes, len);
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

/* Count a close personad begins, by the code its close frame carries. */
static void
count_close(struct ws_conn *c, uint16_t code)
{
    enum stats_id id;
    switch (code) {
    case WS_CLOSE_NORMAL:
        id = STATS_WS_CLOSE_1000;
        break;
    case WS_CLOSE_GOING_AWAY:
        id = STATS_WS_CLOSE_1001;
        break;
    case WS_CLOSE_PROTOCOL_ERROR:
        id = STATS_WS_CLOSE_1002;
        break;
    case WS_CLOSE_INVALID_DATA:
        id = STATS_WS_CLOSE_1007;
        break;
    case WS_CLOSE_TOO_BIG:
        id = STATS_WS_CLOSE_1009;
        break;
    case WS_CLOSE_TRY_AGAIN:
        id = STATS_WS_CLOSE_1013;
        break;
    default:
        id = STATS_WS_CLOSE_OTHER;
        break;
    }
    stats_add(c->base.set->out.stats, id, 1);
}

/* One line per connection event a client can cause, so they share the
 * set's rate limit: a flood of bad clients costs a few lines a second. */
static void
log_close(struct ws_conn *c, enum log_level level, const char *what, uint16_t code,
          const char *reason)
{
    if (!log_enabled(level) || !conn_set_log_allow(&c->base))
        return;
    char peer[64];
    net_peer_name(c->base.fd, peer, sizeof(peer));
    if (strcmp(peer, "?:0") == 0) /* reset already: the address is gone */
        snprintf(peer, sizeof(peer), "fd %d", c->base.fd);
    const char *sep = reason[0] != '\0' ? ": " : "";
    if (level == LOG_LEVEL_WARN)
        log_warnx("ws %s: %s (close %u%s%s)", peer, what, (unsigned)code, sep, reason);
    else if (level == LOG_LEVEL_INFO)
        log_info("ws %s: %s (close %u%s%s)", peer, what, (unsigned)code, sep, reason);
    else
        log_debug("ws %s: %s (close %u%s%s)", peer, what, (unsigned)code, sep, reason);
}

/* Queue our close frame: the set stops pinging and gives the peer
 * CONN_CLOSE_LINGER_MS.  It always fits: pings and pongs leave room for it
 * (ctrl_add_ping_pong). */
static void
conn_queue_close(struct ws_conn *c, const uint8_t *frame, size_t n)
{
    if (stream_out_ctrl_add(&c->base.out, frame, n) != 0)
        panic("no room for a close frame in a connection's control buffer");
    conn_set_closing(&c->base);
}

/* ws_conn_close - start closing c with a close frame (code, reason). */
static void
ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->base.state != CONN_OPEN)
        return;
    if (reason == NULL || reason[0] == '\0')
        reason = close_reason_text(code);
    int routine = code == WS_CLOSE_NORMAL || (code == WS_CLOSE_GOING_AWAY && c->base.set->stopping);
    log_close(c, routine ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, "closing", code, reason);
    count_close(c, code);
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
    log_close(c, LOG_LEVEL_DEBUG, "closed by peer", code, "");
    if (c->base.state == CONN_OPEN)
        count_close(c, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code);
    c->base.peer_done = 1;
    conn_queue_close(c, frame, n);
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
        r = read(c->base.fd, buf, len);
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
        if (c->base.state == CONN_OPEN)
            log_close(c, LOG_LEVEL_DEBUG, "read failed", 1006, strerror(errno));
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
    if (c->base.state == CONN_OPEN)
        conn_set_arm(&c->base, CONN_TIMER_PONG, 0);
    c->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
    c->close_code_len = 0;
    /* wslay holds every message, control frames too, to one limit, which
     * conn_wslay raises to at least 125 so that legal pings and closes pass
     * (RFC 6455 5.5); a smaller --max-message is applied here, to data
     * messages only.  wslay has checked the total against 125 already. */
    uint32_t max = c->base.set->cfg->max_message_bytes;
    if (max < WS_CONTROL_PAYLOAD_MAX && arg->opcode <= WSLAY_BINARY_FRAME) {
        uint64_t total = arg->payload_length;
        if (arg->opcode == WSLAY_CONTINUATION_FRAME)
            total += c->msg_len;
        c->msg_len = (unsigned)(total < WS_CONTROL_PAYLOAD_MAX ? total : WS_CONTROL_PAYLOAD_MAX);
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
    } else if (arg->opcode == WSLAY_PING && c->base.state == CONN_OPEN) {
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
    uint32_t max = c->base.set->cfg->max_message_bytes; /* below 125: see frame_start_cb */
    wslay_event_config_set_max_recv_msg_length(
        c->wslay, max < WS_CONTROL_PAYLOAD_MAX ? WS_CONTROL_PAYLOAD_MAX : max);
    return 0;
}

static void
conn_wslay_release_if_idle(struct ws_conn *c)
{
    if (c->wslay != NULL && c->base.state != CONN_DEAD && c->extra == NULL &&
        ws_rx_track_idle(&c->rx) && !wslay_event_get_close_received(c->wslay) &&
        !wslay_event_get_close_sent(c->wslay)) {
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
        ssize_t r = read(c->base.fd, buf, sizeof(buf));
        if (r > 0) {
            ws_rx_track_feed(&c->rx, buf, (size_t)r);
            total += (uint32_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* wait for the rest */
        } else {
            conn_set_kill(&c->base); /* EOF or error: the peer is done */
            return;
        }
    }
    if (c->rx.saw_close)
        conn_set_kill(&c->base); /* the peer answered our close: both sides are done */
    /* else this wake-up's budget is spent; level-triggered EPOLLIN returns */
}

static void
conn_read(struct ws_conn *c)
{
    if (c->base.state == CONN_CLOSING) {
        conn_read_closing(c);
        return;
    }
    if (conn_wslay(c) != 0) {
        log_close(c, LOG_LEVEL_INFO, "out of memory for a WebSocket context, dropped", 1011, "");
        stats_add(c->base.set->out.stats, STATS_WS_DROP_NO_MEMORY, 1);
        conn_set_kill(&c->base);
        return;
    }
    c->recv_budget = WS_RECV_MAX_BYTES_PER_WAKEUP;
    int rc = wslay_event_recv(c->wslay);
    if (c->rd_eof || c->sock_err) {
        if (c->rd_eof && c->base.state == CONN_OPEN) /* a read error is logged by recv_cb */
            log_close(c, LOG_LEVEL_DEBUG, "peer went away", 1006, "");
        if (c->base.state == CONN_OPEN)
            stats_add(c->base.set->out.stats, STATS_WS_DROP_PEER_GONE, 1);
        conn_set_kill(&c->base);
        return;
    }
    if (c->base.state == CONN_DEAD)
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
        if (c->base.state == CONN_OPEN)
            conn_answer_close(c, wslay_event_get_status_code_received(c->wslay));
        else
            conn_set_kill(&c->base); /* the answer to our close: done */
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
        conn_set_flush(&c->base); /* a pong may be waiting */
    }
    conn_wslay_release_if_idle(c);
}

static void
ws_on_event(struct ev_handler *h, uint32_t events)
{
    struct ws_conn *c = EV_CONTAINER(h, struct ws_conn, base.ev);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(c);
    if (events & EPOLLOUT)
        conn_set_writable(&c->base);
}

/* --- the set's operations ---------------------------------------------------- */

static void
ws_op_close(struct conn *base, enum conn_close why, const char *reason)
{
    ws_conn_close(ws_of(base),
                  why == CONN_CLOSE_TOO_SLOW ? WS_CLOSE_TRY_AGAIN : WS_CLOSE_GOING_AWAY, reason);
}

static void
ws_op_drop(struct conn *base, enum conn_drop why, int err)
{
    struct ws_conn *c = ws_of(base);
    switch (why) {
    case CONN_DROP_LAPPED:
        log_close(c, LOG_LEVEL_INFO, "lapped mid-frame, dropped", WS_CLOSE_TRY_AGAIN, "");
        break;
    case CONN_DROP_WRITE_FAILED:
        log_close(c, LOG_LEVEL_INFO, "write failed", 1006, strerror(err));
        break;
    case CONN_DROP_WRITE_DEADLINE:
        log_close(c, LOG_LEVEL_INFO, "write deadline exceeded, dropped", WS_CLOSE_TRY_AGAIN, "");
        if (!stream_out_mid_event(&base->out) && stream_out_ctrl_queued(&base->out) == 0) {
            /* At a frame boundary a close frame is well-formed: try once, no waiting. */
            uint8_t frame[WS_CONTROL_PAYLOAD_MAX + 2];
            size_t len = ws_frame_close(frame, WS_CLOSE_TRY_AGAIN, "write deadline exceeded");
            ssize_t r = write(base->fd, frame, len);
            (void)r;
        }
        break;
    case CONN_DROP_EPOLL:
        log_close(c, LOG_LEVEL_WARN, "epoll_ctl(MOD) failed, dropped", 1011, strerror(err));
        break;
    }
    conn_set_kill(base);
}

static void
ws_op_on_timer(struct conn *base, enum conn_timer which)
{
    struct ws_conn *c = ws_of(base);
    if (which == CONN_TIMER_PONG) {
        ws_conn_close(c, WS_CLOSE_GOING_AWAY, "pong timeout");
        return;
    }
    static const uint8_t ping[2] = {0x80 | WS_OP_PING, 0};
    (void)ctrl_add_ping_pong(c, ping, sizeof(ping)); /* full: pings are already waiting */
    conn_set_arm(base, CONN_TIMER_PING, 1);
    conn_set_flush(base);
}

static void
ws_op_free(struct conn *base)
{
    struct ws_conn *c = ws_of(base);
    if (c->wslay != NULL)
        wslay_event_context_free(c->wslay);
    free(c->extra);
    free(c);
}

/* A reload changed --max-message: a parser in the middle of a message takes it
 * now (an idle connection has none; the next one reads the new value). */
static void
ws_op_reconfigure(struct conn *base)
{
    struct ws_conn *c = (struct ws_conn *)base;
    uint32_t max = c->base.set->cfg->max_message_bytes;
    if (c->wslay != NULL)
        wslay_event_config_set_max_recv_msg_length(
            c->wslay, max < WS_CONTROL_PAYLOAD_MAX ? WS_CONTROL_PAYLOAD_MAX : max);
}

static const struct conn_ops ws_ops = {
    .close = ws_op_close,
    .drop = ws_op_drop,
    .on_timer = ws_op_on_timer,
    .free = ws_op_free,
    .reconfigure = ws_op_reconfigure,
};

/* --- lifecycle -------------------------------------------------------------- */

/* Adopt fd streaming proto: the live stream from live_seq, first_seq on
 * first (a replay when older), after the text message resync (NULL: none). */
static struct ws_conn *
ws_conn_adopt(struct conn_set *s, int fd, enum stream_proto proto, uint64_t live_seq,
              uint64_t first_seq, const char *resync, const void *extra, size_t extra_len)
{
    struct ws_conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (extra_len > 0 && (c->extra = malloc(extra_len)) == NULL)) {
        free(c);
        close(fd);
        log_warnx("out of memory accepting a WebSocket connection");
        return NULL;
    }
    c->base.ev.on_event = ws_on_event;
    if (extra_len > 0) {
        memcpy(c->extra, extra, extra_len);
        c->extra_len = (uint32_t)extra_len;
    }
    if (conn_set_add(s, &c->base, &ws_ops, fd, proto, live_seq) != 0) {
        log_warn("epoll_ctl(ADD) for a WebSocket connection");
        free(c->extra);
        free(c);
        close(fd);
        return NULL;
    }
    if (proto == STREAM_PROTO_WS_SEQ) /* /ws?since=&epoch= */
        conn_set_count_resume(&c->base, resync != NULL);
    stream_out_replay_from(&c->base.out, first_seq);
    if (resync != NULL) {
        /* The first message: the control bytes go out before any event, and
         * an empty buffer has room for it beside a close frame. */
        uint8_t frame[STREAM_POS_RESYNC_MAX + 10];
        size_t len = strlen(resync);
        if (len > STREAM_POS_RESYNC_MAX ||
            stream_out_ctrl_add(&c->base.out, frame, ws_frame_text(frame, resync, (uint32_t)len)) !=
                0)
            panic("no room for a resync message in a new connection's control buffer");
    }
    conn_set_arm(&c->base, CONN_TIMER_PING, 1);
    conn_set_arm(&c->base, CONN_TIMER_PONG, 1);
    conn_set_start(&c->base);
    if (c->extra_len > 0 && c->base.state != CONN_DEAD)
        conn_read(c);
    return c;
}

struct ws_conn *
ws_conn_new(struct conn_set *s, int fd, uint64_t start_seq, const void *extra, size_t extra_len)
{
    return ws_conn_adopt(s, fd, STREAM_PROTO_WS, start_seq, start_seq, NULL, extra, extra_len);
}

struct ws_conn *
ws_conn_new_at(struct conn_set *s, int fd, const struct conn_pending *p, const char *epoch,
               const void *extra, size_t extra_len)
{
    char resync[STREAM_POS_RESYNC_MAX];
    if (p->resync && stream_pos_resync_json(resync, sizeof(resync), p->start_seq - 1, epoch) == 0)
        panic("resync message too long"); /* never: a seq and an epoch of at most 32 */
    return ws_conn_adopt(s, fd, (enum stream_proto)p->proto, p->start_seq, p->first_seq,
                         p->resync ? resync : NULL, extra, extra_len);
}
