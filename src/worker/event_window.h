/*
 * event_window - a worker's window of recent events, each held in the
 * encoding of every stream protocol.
 *
 * The worker pushes each ring entry once (event_window_push); the window
 * encodes it once per protocol (the encoder table in event_window.c: one row
 * per enum stream_proto), and every connection of that protocol is sent the
 * same bytes: a connection holds only a cursor (next seq and an offset into
 * that event's encoding, struct stream_out), never a copy.  Entries are freed
 * once no cursor needs them (event_window_release) or when the window's
 * capacity is reached, in which case a cursor still below first_seq was lapped.
 * Entries carry no reference counts: the worker computes the oldest cursor
 * (conn_set_min_cursor) and releases below it.
 *
 * Encoding is eager: at push, for every protocol, in one allocation per event.
 * An out-of-memory push fails as a whole (the caller closes the connections
 * that would miss the event), so no protocol ever sees a gap.
 */
#ifndef PERSONAD_EVENT_WINDOW_H
#define PERSONAD_EVENT_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* The stream protocols a window encodes for.  A new protocol adds a row here
 * and one in event_window.c's encoder table.  STREAM_PROTO_WS is the seed's
 * /ws (the master's JSON, byte for byte); STREAM_PROTO_WS_SEQ is the same with
 * ,"seq":N before the closing brace, for connections that asked for a position
 * (/ws?since=N&epoch=E, stream_position.h); STREAM_PROTO_SSE: one Server-Sent
 * Events event, "id: E:N\ndata: JSON\n\n", the JSON as WS_SEQ's (sse_conn.h). */
enum stream_proto { STREAM_PROTO_WS, STREAM_PROTO_WS_SEQ, STREAM_PROTO_SSE, STREAM_PROTO_COUNT };

/* Longest epoch an encoding names (the run's epoch: 1-32 of [A-Za-z0-9_-]). */
#define EVENT_WINDOW_EPOCH_MAX 32

/* EVENT_ENCODED_MAX - the most bytes any protocol's encoding of a ring payload
 * of at most payload_max bytes can take (framing and ,"seq":N included). */
#define EVENT_ENCODED_MAX(payload_max) ((size_t)(payload_max) + 128u)

/* event_encode_size, event_encode - proto's encoding of the event seq with
 * payload (the master's JSON), as the window holds it: size first, then
 * encode writes exactly that many bytes into out.  The replay of older events
 * (stream_position.c) encodes what it reads from the ring with these, so a
 * replayed event is the same bytes as a live one. */
size_t event_encode_size(enum stream_proto proto, uint64_t seq, const char *epoch,
                         const void *payload, uint32_t len);
size_t event_encode(enum stream_proto proto, uint8_t *out, uint64_t seq, const char *epoch,
                    const void *payload, uint32_t len);

/* One protocol's encoding of an event, inside its entry's bytes. */
struct event_encoding {
    uint64_t stream_end; /* bytes of this protocol's stream up to and including this one */
    uint32_t off;        /* into struct event_entry's bytes */
    uint32_t len;
};

struct event_entry {
    uint64_t seq;
    struct event_encoding enc[STREAM_PROTO_COUNT];
    uint8_t bytes[]; /* the encodings, back to back */
};

struct event_window {
    struct event_entry **slot; /* capacity entries, owned */
    uint32_t capacity;
    uint64_t first_seq;                        /* oldest entry held (== next_seq when empty) */
    uint64_t next_seq;                         /* seq the next pushed entry must have */
    uint64_t stream_bytes[STREAM_PROTO_COUNT]; /* bytes of all encodings ever pushed */
    char epoch[EVENT_WINDOW_EPOCH_MAX + 1];    /* the run's epoch, for SSE ids ("" until set) */
};

/* event_window_init - an empty window of capacity entries starting at next_seq.
 * -1 on ENOMEM. */
int event_window_init(struct event_window *w, uint32_t capacity, uint64_t next_seq);
void event_window_free(struct event_window *w);

/* event_window_set_epoch - the epoch the encodings of further events name
 * (SSE's "id: E:N"); set once before the first push.  -1 (nothing set) if
 * longer than EVENT_WINDOW_EPOCH_MAX. */
int event_window_set_epoch(struct event_window *w, const char *epoch);

/* event_window_push - encode payload as event seq for every protocol (seq must
 * equal next_seq; the caller resets on gaps).  Drops the oldest entry when
 * full.  -1 on ENOMEM (the window is unchanged). */
int event_window_push(struct event_window *w, uint64_t seq, const void *payload, uint32_t len);

/* event_window_get - the entry for seq, or NULL if not held.  Inline, like
 * event_window_pending: the fan-out calls them per connection per event (forced:
 * -Os, configure's default, would otherwise make it a call, 26 instructions more
 * per delivery under callgrind). */
#if defined __GNUC__
__attribute__((always_inline))
#endif
static inline const struct event_entry *
event_window_get(const struct event_window *w, uint64_t seq)
{
    if (seq < w->first_seq || seq >= w->next_seq)
        return NULL;
    return w->slot[seq % w->capacity];
}

/* event_entry_bytes - proto's encoding of e; its length in *len. */
static inline const uint8_t *
event_entry_bytes(const struct event_entry *e, enum stream_proto proto, uint32_t *len)
{
    *len = e->enc[proto].len;
    return e->bytes + e->enc[proto].off;
}

/* event_window_release - free entries below min_seq. */
void event_window_release(struct event_window *w, uint64_t min_seq);

/* event_window_reset - drop everything and continue at next_seq (after a gap). */
void event_window_reset(struct event_window *w, uint64_t next_seq);

/* event_window_pending - bytes of proto's stream a cursor (seq, off) has still
 * to send; 0 if seq is not held. */
static inline uint64_t
event_window_pending(const struct event_window *w, enum stream_proto proto, uint64_t seq,
                     uint32_t off)
{
    const struct event_entry *e = event_window_get(w, seq);
    if (e == NULL)
        return 0;
    const struct event_encoding *enc = &e->enc[proto];
    return w->stream_bytes[proto] - (enc->stream_end - enc->len) - off;
}

#endif
