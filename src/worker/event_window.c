/*
 * event_window - see event_window.h.
 */
#include "build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/event_window.h"
#include "worker/ws_frame.h"

/* What an encoder may name besides the payload. */
struct event_meta {
    uint64_t seq;
    const char *epoch;
    size_t epoch_len;
};

/* How one protocol encodes an event: size() is exact, encode() writes that many. */
struct event_encoder {
    size_t (*size)(const struct event_meta *m, const void *payload, uint32_t payload_len);
    size_t (*encode)(uint8_t *out, const struct event_meta *m, const void *payload,
                     uint32_t payload_len);
};

static size_t
ws_size(const struct event_meta *m, const void *payload, uint32_t payload_len)
{
    (void)m, (void)payload;
    return ws_frame_text_size(payload_len);
}

static size_t
ws_encode(uint8_t *out, const struct event_meta *m, const void *payload, uint32_t payload_len)
{
    (void)m;
    return ws_frame_text(out, payload, payload_len);
}

/* SSE: "id: E:N\n" "data: " JSON "\n\n", where JSON is the payload with
 * ,"seq":N inserted before its closing brace (the master's payloads are JSON
 * objects on one line; one that does not end in '}' is sent as it is).  The
 * seq is written by the same snprintf in size() and encode(), so size() is
 * exact. */
static size_t
sse_seq_len(uint64_t seq)
{
    char digits[24];
    return (size_t)snprintf(digits, sizeof(digits), "%llu", (unsigned long long)seq);
}

static int
sse_has_brace(const void *payload, uint32_t payload_len)
{
    return payload_len > 0 && ((const uint8_t *)payload)[payload_len - 1] == '}';
}

static size_t
sse_size(const struct event_meta *m, const void *payload, uint32_t payload_len)
{
    size_t digits = sse_seq_len(m->seq);
    /* "id: " E ":" N "\n" "data: " payload "\n\n" */
    size_t n = 4 + m->epoch_len + 1 + digits + 1 + 6 + payload_len + 2;
    if (sse_has_brace(payload, payload_len))
        n += 7 + digits; /* ,"seq":N */
    return n;
}

static size_t
sse_encode(uint8_t *out, const struct event_meta *m, const void *payload, uint32_t payload_len)
{
    char seq[24];
    size_t digits = (size_t)snprintf(seq, sizeof(seq), "%llu", (unsigned long long)m->seq);
    uint8_t *p = out;
    memcpy(p, "id: ", 4), p += 4;
    memcpy(p, m->epoch, m->epoch_len), p += m->epoch_len;
    *p++ = ':';
    memcpy(p, seq, digits), p += digits;
    memcpy(p, "\ndata: ", 7), p += 7;
    if (sse_has_brace(payload, payload_len)) {
        memcpy(p, payload, payload_len - 1), p += payload_len - 1;
        memcpy(p, ",\"seq\":", 7), p += 7;
        memcpy(p, seq, digits), p += digits;
        *p++ = '}';
    } else {
        memcpy(p, payload, payload_len), p += payload_len;
    }
    memcpy(p, "\n\n", 2), p += 2;
    return (size_t)(p - out);
}

/* One row per stream protocol: a WebSocket text frame (RFC 6455, unmasked);
 * a Server-Sent Events event. */
static const struct event_encoder encoders[STREAM_PROTO_COUNT] = {
    [STREAM_PROTO_WS] = {ws_size, ws_encode},
    [STREAM_PROTO_SSE] = {sse_size, sse_encode},
};

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
    const struct event_meta meta = {.seq = seq, .epoch = w->epoch, .epoch_len = strlen(w->epoch)};
    size_t size[STREAM_PROTO_COUNT], total = 0;
    for (int p = 0; p < STREAM_PROTO_COUNT; p++) {
        size[p] = encoders[p].size(&meta, payload, len);
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
        (void)encoders[p].encode(e->bytes + off, &meta, payload, len);
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
