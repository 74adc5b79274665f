/*
 * stream_position - where a client's stream starts: its position (epoch, seq)
 * as it gave it, the decision replay-or-resync, and the replay of older
 * events from the shared ring.  Protocol-neutral: /ws (ws_upgrade.c) and SSE
 * use the same functions; only the framing of the messages is the protocol's.
 *
 * The interface, in the order a stream uses it:
 *
 *   1. Parse.  stream_pos_from_query(since, epoch) takes the two query
 *      parameters (NULL: absent); stream_pos_from_event_id("E:N") takes an SSE
 *      Last-Event-ID.  Both give STREAM_POS_NONE (no position: the plain
 *      stream), STREAM_POS_OK, or STREAM_POS_BAD with a reason for the 400
 *      JSON error (only one of since/epoch, a since that is not 1-20 decimal
 *      digits or does not fit 64 bits, an epoch that is not 1-32 of
 *      [A-Za-z0-9_-]).
 *   2. Decide.  stream_pos_decide(pos, epoch, head, capacity) with the run's
 *      epoch, the ring's head and its capacity (events the ring keeps) fills
 *      a struct stream_start: replay events N+1..head then live (same epoch,
 *      head - capacity <= N <= head), or resync (another epoch, too old, in
 *      the future): first message {"type":"resync","data":{"seq":H,"epoch":"E"}}
 *      (stream_pos_resync_json), then live from H+1.
 *   3. Replay.  A stream whose next event is older than the worker's event
 *      window reads it from the shared ring: stream_replay_fill encodes whole
 *      events into the stream's replay buffer as the socket drains (called by
 *      stream_out_flush), so any worker serves any position and a replay of
 *      the whole ring costs one buffer per replaying connection, not a queue.
 *      The ring overwriting an event before it was read is STREAM_REPLAY_LAPPED:
 *      the connection is closed 1013, never a silent gap.
 *
 * No sockets, no logging, no allocation: testable in one process.
 */
#ifndef PERSONAD_STREAM_POSITION_H
#define PERSONAD_STREAM_POSITION_H

#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"
#include "shm/snapshot_layout.h"
#include "worker/event_window.h"

/* The longest since accepted: 20 digits (2^64 - 1 has 20). */
#define STREAM_POS_SEQ_DIGITS_MAX 20
/* Bytes of a stream's replay buffer: whole encoded events, at least one of the largest. */
#define STREAM_REPLAY_BYTES (16u * 1024u)
/* Room for the resync JSON: the text and the largest seq and epoch. */
#define STREAM_POS_RESYNC_MAX 128

_Static_assert(STREAM_REPLAY_BYTES >= EVENT_ENCODED_MAX(RING_PAYLOAD_MAX),
               "a replay buffer holds the largest event");

enum stream_pos_status { STREAM_POS_NONE, STREAM_POS_OK, STREAM_POS_BAD };

/* A position a client gave: the last event it has (seq) in epoch. */
struct stream_pos {
    uint64_t seq;
    char epoch[SNAP_EPOCH_MAX + 1];
};

/* stream_pos_from_query - since and epoch query values (NULL: absent). */
enum stream_pos_status stream_pos_from_query(const char *since, const char *epoch,
                                             struct stream_pos *pos, const char **why);

/* stream_pos_from_event_id - an SSE Last-Event-ID, "E:N" (NULL: absent). */
enum stream_pos_status stream_pos_from_event_id(const char *id, struct stream_pos *pos,
                                                const char **why);

/* Where a stream starts.  first_seq < live_seq: events first_seq..live_seq-1
 * are a replay (their bytes do not count in the queue cap); resync: the
 * stream's first message is the resync (stream_pos_resync_json, head =
 * live_seq - 1). */
struct stream_start {
    uint64_t first_seq; /* first event sent */
    uint64_t live_seq;  /* first event of the live stream: head + 1 at the request */
    int resync;
};

/* stream_pos_decide - pos NULL: the plain stream from head + 1. */
void stream_pos_decide(const struct stream_pos *pos, const char *epoch, uint64_t head,
                       uint64_t capacity, struct stream_start *st);

/* stream_pos_ring_capacity - the events r keeps: ring_read works for every
 * seq in head - capacity + 1 .. head. */
uint64_t stream_pos_ring_capacity(const struct ring *r);

/* stream_pos_resync_json - {"type":"resync","data":{"seq":head,"epoch":"E"}}
 * into out (STREAM_POS_RESYNC_MAX bytes); its length, 0 if it does not fit. */
size_t stream_pos_resync_json(char *out, size_t cap, uint64_t head, const char *epoch);

/* A stream's replay buffer: encoded events not yet written (off..len). */
struct stream_replay {
    uint32_t len, off;
    uint32_t events; /* whole events in buf (counted as written once off reaches len) */
    uint8_t buf[STREAM_REPLAY_BYTES];
};

enum stream_replay_status {
    STREAM_REPLAY_OK,     /* at least one event in the buffer, *seq advanced past them */
    STREAM_REPLAY_LAPPED, /* *seq was overwritten in the ring (or is not in it): nothing read */
};

/* stream_replay_fill - refill an empty rp with proto's encodings (naming epoch) of ring
 * events *seq, *seq + 1, ... before end, as many whole events as fit;
 * *seq is the first one not buffered.  Counts the events in *events. */
enum stream_replay_status stream_replay_fill(struct stream_replay *rp, const struct ring *r,
                                             enum stream_proto proto, const char *epoch,
                                             uint64_t *seq, uint64_t end, uint64_t *events);

#endif
