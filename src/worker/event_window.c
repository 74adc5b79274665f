/*
 * event_window - see event_window.h.
 */
#include "build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/event_window.h"
#include "worker/ws_frame.h"

/* How one protocol encodes an event: size() is exact, encode() writes that
 * many.  seq and epoch are the event's position, for the protocols that name
 * it (a resumed WebSocket's seq, SSE's id line). */
struct event_encoder {
    size_t (*size)(uint64_t seq, const char *epoch, const void *payload, uint32_t payload_len);
    size_t (*encode)(uint8_t *out, uint64_t seq, const char *epoch, const void *payload,
                     uint32_t payload_len);
};

static size_t
ws_size(uint64_t seq, const char *epoch, const void *payload, uint32_t len)
{
    (void)seq, (void)epoch, (void)payload;
    return ws_frame_text_size(len);
}

static size_t
ws_encode(uint8_t *out, uint64_t seq, const char *epoch, const void *payload, uint32_t len)
{
    (void)seq, (void)epoch;
    return ws_frame_text(out, payload, len);
}

/* ,"seq":N goes before the payload's closing brace; a payload that does not
 * end in one (never: the master writes objects) is sent as it is. */
static size_t
seq_member(char *out, uint64_t seq, const void *payload, uint32_t len)
{
    if (len == 0 || ((const uint8_t *)payload)[len - 1] != '}')
        return 0;
    int n = snprintf(out, 32, ",\"seq\":%llu", (unsigned long long)seq);
    return n > 0 && n < 32 ? (size_t)n : 0;
}

static size_t
ws_seq_size(uint64_t seq, const char *epoch, const void *payload, uint32_t len)
{
    (void)epoch;
    char member[32];
    return ws_frame_text_size(len + (uint32_t)seq_member(member, seq, payload, len));
}

static size_t
ws_seq_encode(uint8_t *out, uint64_t seq, const char *epoch, const void *payload, uint32_t len)
{
    (void)epoch;
    char member[32];
    size_t m = seq_member(member, seq, payload, len);
    if (m == 0)
        return ws_frame_text(out, payload, len);
    size_t h = ws_frame_header(out, WS_OP_TEXT, (uint64_t)len + m);
    memcpy(out + h, payload, len - 1);
    memcpy(out + h + len - 1, member, m);
    out[h + len - 1 + m] = '}';
    return h + len + m;
}

/* SSE: "id: E:N\n" "data: " JSON "\n\n", where JSON is the payload with
 * ,"seq":N before its closing brace (the same bytes as a resumed WebSocket
 * message; the master's payloads are JSON objects on one line, and one that
 * does not end in '}' is sent as it is). */
static int
sse_has_brace(const void *payload, uint32_t payload_len)
{
    return payload_len > 0 && ((const uint8_t *)payload)[payload_len - 1] == '}';
}

static size_t
sse_digits(uint64_t seq, char out[24])
{
    int n = snprintf(out, 24, "%llu", (unsigned long long)seq);
    return n > 0 ? (size_t)n : 0; /* at most 20 digits: never truncated */
}

static size_t
sse_size(uint64_t seq, const char *epoch, const void *payload, uint32_t payload_len)
{
    char digits[24];
    size_t d = sse_digits(seq, digits);
    /* "id: " E ":" N "\n" "data: " payload "\n\n" */
    size_t n = 4 + strlen(epoch) + 1 + d + 1 + 6 + payload_len + 2;
    if (sse_has_brace(payload, payload_len))
        n += 7 + d; /* ,"seq":N */
    return n;
}

static size_t
sse_encode(uint8_t *out, uint64_t seq, const char *epoch, const void *payload, uint32_t payload_len)
{
    char digits[24];
    size_t d = sse_digits(seq, digits), elen = strlen(epoch);
    uint8_t *p = out;
    memcpy(p, "id: ", 4), p += 4;
    memcpy(p, epoch, elen), p += elen;
    *p++ = ':';
    memcpy(p, digits, d), p += d;
    memcpy(p, "\ndata: ", 7), p += 7;
    if (sse_has_brace(payload, payload_len)) {
        memcpy(p, payload, payload_len - 1), p += payload_len - 1;
        memcpy(p, ",\"seq\":", 7), p += 7;
        memcpy(p, digits, d), p += d;
        *p++ = '}';
    } else {
        memcpy(p, payload, payload_len), p += payload_len;
    }
    memcpy(p, "\n\n", 2), p += 2;
    return (size_t)(p - out);
}

/* One row per stream protocol: a WebSocket text frame (RFC 6455, unmasked),
 * the same with its seq, a Server-Sent Events event. */
static const struct event_encoder encoders[STREAM_PROTO_COUNT] = {
    [STREAM_PROTO_WS] = {ws_size, ws_encode},
    [STREAM_PROTO_WS_SEQ] = {ws_seq_size, ws_seq_encode},
    [STREAM_PROTO_SSE] = {sse_size, sse_encode},
};

size_t
event_encode_size(enum stream_proto proto, uint64_t seq, const char *epoch, const void *payload,
                  uint32_t len)
{
    return encoders[proto].size(seq, epoch, payload, len);
}

size_t
event_encode(enum stream_proto proto, uint8_t *out, uint64_t seq, const char *epoch,
             const void *payload, uint32_t len)
{
    return encoders[proto].encode(out, seq, epoch, payload, len);
}

int
event_window_set_epoch(struct event_window *w, const char *epoch)
{
    size_t len = strlen(epoch);
    if (len > EVENT_WINDOW_EPOCH_MAX)
        return -1;
    memcpy(w->epoch, epoch, len + 1);
    return 0;
}


int
event_window_init(struct event_window *w, uint32_t capacity, uint64_t next_seq)
{
    memset(w, 0, sizeof(*w));
    w->slot = calloc(capacity, sizeof(*w->slot));
    if (w->slot == NULL)
        return -1;
    w->capacity = capacity;
    w->first_seq = w->next_seq = next_seq;
    return 0;
}

void
event_window_release(struct event_window *w, uint64_t min_seq)
{
    if (min_seq > w->next_seq)
        min_seq = w->next_seq;
    while (w->first_seq < min_seq) {
        struct event_entry **s = &w->slot[w->first_seq % w->capacity];
        free(*s);
        *s = NULL;
        w->first_seq++;
    }
}

void
event_window_reset(struct event_window *w, uint64_t next_seq)
{
    event_window_release(w, w->next_seq);
    w->first_seq = w->next_seq = next_seq;
}

void
event_window_free(struct event_window *w)
{
    if (w->slot == NULL)
        return;
    event_window_release(w, w->next_seq);
    free(w->slot);
    w->slot = NULL;
}

int
event_window_push(struct event_window *w, uint64_t seq, const void *payload, uint32_t len)
{
    size_t size[STREAM_PROTO_COUNT], total = 0;
    for (int p = 0; p < STREAM_PROTO_COUNT; p++) {
        size[p] = encoders[p].size(seq, w->epoch, payload, len);
        total += size[p];
    }
    if (total > UINT32_MAX)
        return -1; /* never: ring payloads are a few KiB */
    struct event_entry *e = malloc(sizeof(*e) + total);
    if (e == NULL)
        return -1;
    e->seq = seq;
    uint32_t off = 0;
    for (int p = 0; p < STREAM_PROTO_COUNT; p++) {
        (void)encoders[p].encode(e->bytes + off, seq, w->epoch, payload, len);
        w->stream_bytes[p] += size[p];
        e->enc[p] = (struct event_encoding){
            .stream_end = w->stream_bytes[p], .off = off, .len = (uint32_t)size[p]};
        off += (uint32_t)size[p];
    }
    if (w->next_seq - w->first_seq == w->capacity)
        event_window_release(w, w->first_seq + 1);
    w->slot[seq % w->capacity] = e;
    w->next_seq = seq + 1;
    return 0;
}
