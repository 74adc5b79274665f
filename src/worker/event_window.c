/*
 * event_window - see event_window.h.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>

#include "worker/event_window.h"
#include "worker/ws_frame.h"

/* How one protocol encodes an event: size() is exact, encode() writes that many. */
struct event_encoder {
    size_t (*size)(uint32_t payload_len);
    size_t (*encode)(uint8_t *out, const void *payload, uint32_t payload_len);
};

/* One row per stream protocol: a WebSocket text frame (RFC 6455, unmasked). */
static const struct event_encoder encoders[STREAM_PROTO_COUNT] = {
    [STREAM_PROTO_WS] = {ws_frame_text_size, ws_frame_text},
};

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
        size[p] = encoders[p].size(len);
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
        (void)encoders[p].encode(e->bytes + off, payload, len);
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
