/*
 * event_window - see event_window.h.
 */
#include "build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/event_window.h"
#include "worker/ws_frame.h"

/* How one protocol encodes an event: size() is exact, encode() writes that many. */
struct event_encoder {
    size_t (*size)(uint64_t seq, const void *payload, uint32_t payload_len);
    size_t (*encode)(uint8_t *out, uint64_t seq, const void *payload, uint32_t payload_len);
};

static size_t
ws_size(uint64_t seq, const void *payload, uint32_t len)
{
    (void)seq, (void)payload;
    return ws_frame_text_size(len);
}

static size_t
ws_encode(uint8_t *out, uint64_t seq, const void *payload, uint32_t len)
{
    (void)seq;
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
ws_seq_size(uint64_t seq, const void *payload, uint32_t len)
{
    char member[32];
    return ws_frame_text_size(len + (uint32_t)seq_member(member, seq, payload, len));
}

static size_t
ws_seq_encode(uint8_t *out, uint64_t seq, const void *payload, uint32_t len)
{
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

/* One row per stream protocol: a WebSocket text frame (RFC 6455, unmasked). */
static const struct event_encoder encoders[STREAM_PROTO_COUNT] = {
    [STREAM_PROTO_WS] = {ws_size, ws_encode},
    [STREAM_PROTO_WS_SEQ] = {ws_seq_size, ws_seq_encode},
};

size_t
event_encode_size(enum stream_proto proto, uint64_t seq, const void *payload, uint32_t len)
{
    return encoders[proto].size(seq, payload, len);
}

size_t
event_encode(enum stream_proto proto, uint8_t *out, uint64_t seq, const void *payload, uint32_t len)
{
    return encoders[proto].encode(out, seq, payload, len);
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
        size[p] = encoders[p].size(seq, payload, len);
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
        (void)encoders[p].encode(e->bytes + off, seq, payload, len);
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
