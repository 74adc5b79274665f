/*
 * ring - one-writer, many-reader event ring in shared memory.
 *
 * The master appends serialized events (ring_append); each worker keeps its own
 * cursor and copies events out (ring_read).  The writer never waits for readers:
 * a reader that falls more than slot_count events behind is told RING_OVERRUN and
 * must resynchronise.  A reader never returns a torn slot.  No locks, no syscalls,
 * no logging: testable in one process.
 */
#ifndef PERSONAD_RING_H
#define PERSONAD_RING_H

#include <stddef.h>
#include <stdint.h>

#include "ring_layout.h"

enum ring_event_type {
    RING_EVENT_ADDED = 1,
    RING_EVENT_UPDATED = 2,
    RING_EVENT_DELETED = 3,
};

enum ring_status {
    RING_OK = 0,
    RING_EMPTY = -1,   /* seq not published yet */
    RING_OVERRUN = -2, /* seq was overwritten: the reader was lapped */
    RING_TOOBIG = -3,  /* payload larger than RING_PAYLOAD_MAX */
};

/* WARNING: the shared header is never trusted after init/attach: a worker maps
 * it read-only, but the sizes that index shared memory are this process's own
 * copy (slot_count), so nothing written into the header can move an access out
 * of the mapping. */
struct ring {
    struct ring_header *hdr; /* mapped shared memory, not owned (read-only in workers) */
    struct ring_slot *slots;
    uint32_t slot_count; /* cached at init/attach; never re-read from the header */
    uint64_t head;       /* producer only: seq of its newest event (its own copy of head_seq) */
};

/* ring_bytes - bytes of shared memory needed for slot_count slots, computed in
 * 64 bits; SIZE_MAX when that does not fit a size_t (a 32-bit target). */
size_t ring_bytes(uint32_t slot_count);

/* ring_init - format fresh, zero-filled memory (producer, before any reader
 * maps it).  A new shm object is zero-filled; heap memory must come from calloc. */
void ring_init(struct ring *r, void *mem, uint32_t slot_count);

/* ring_attach - use memory formatted by ring_init (mem_bytes long, possibly
 * mapped read-only); -1 if the header is not ours or its slots would not fit.
 * The header is read once here. */
int ring_attach(struct ring *r, void *mem, size_t mem_bytes);

/* ring_append - publish one event; returns its seq (> 0) or RING_TOOBIG.
 * Producer only. */
int64_t ring_append(struct ring *r, enum ring_event_type type, const void *payload, uint32_t len);

/* ring_head - seq of the newest published event (0 = none). */
uint64_t ring_head(const struct ring *r);

/* ring_read - copy event seq into buf (RING_PAYLOAD_MAX bytes).
 * Returns RING_OK with *len and *type set, RING_EMPTY or RING_OVERRUN.
 * Loads only (no atomic read-modify-write): works on a read-only mapping. */
enum ring_status ring_read(const struct ring *r, uint64_t seq, void *buf, uint32_t *len,
                           uint32_t *type);

#endif
