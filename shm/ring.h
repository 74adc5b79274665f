/*
 * ring - one-writer, many-reader event ring in shared memory.
 *
 * The master appends serialized events (ring_append); each worker keeps its own
 * cursor and copies events out (ring_read).  The ring holds the last slot_count
 * events, each stored by its real size (an index entry plus its payload bytes in
 * a byte ring; see ring_layout.h), so any seq from ring_oldest() to ring_head()
 * can be read.  The writer never waits for readers: a reader that falls more
 * than slot_count events behind is told RING_OVERRUN and must resynchronise.  A
 * reader never returns a torn record.  No locks, no logging; the only syscall is
 * the producer's madvise(MADV_REMOVE) that releases the pages of events older
 * than the last slot_count: testable in one process.
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
    RING_OVERRUN = -2, /* seq was overwritten (the reader was lapped), or its entry is bogus */
    RING_TOOBIG = -3,  /* payload larger than RING_PAYLOAD_MAX */
};

/* WARNING: the shared header is never trusted after init/attach: a worker maps
 * it read-only, but the sizes that index shared memory are this process's own
 * copy (slot_count, data_bytes), and every offset and length read from an index
 * entry is bounded by them, so nothing written into shared memory can move an
 * access out of the mapping. */
struct ring {
    struct ring_header *hdr; /* mapped shared memory, not owned (read-only in workers) */
    struct ring_entry *index;
    uint8_t *data;
    uint32_t slot_count; /* cached at init/attach; never re-read from the header */
    uint32_t data_bytes; /* cached: slot_count * RING_PAYLOAD_MAX */
    /* Producer only (ring_init), never read from shared memory: */
    uint64_t head;          /* seq of its newest event (its own copy of head_seq) */
    uint32_t wpos;          /* data offset of the next payload */
    uint64_t written;       /* payload bytes appended so far (a logical byte position) */
    uint64_t live;          /* payload bytes of the last slot_count events */
    uint64_t released;      /* logical position up to which dead pages were released */
    size_t page;            /* page size for the release; 0 = release off */
    int release_errno;      /* why the release is off (see ring_releases) */
    uint64_t release_calls; /* madvise(MADV_REMOVE) calls made */
};

/* ring_bytes - bytes of shared memory needed for slot_count events, computed in
 * 64 bits (64 + slot_count * RING_SLOT_BYTES: mostly sparse, see ring_layout.h);
 * SIZE_MAX when that does not fit a size_t (a 32-bit target) or the data area
 * would pass 4 GiB (offsets are 32-bit). */
size_t ring_bytes(uint32_t slot_count);

/* ring_init - format fresh, zero-filled memory of ring_bytes(slot_count) bytes
 * (producer, before any reader maps it; slot_count > 0 and ring_bytes(slot_count)
 * != SIZE_MAX).  A new shm object is zero-filled; heap memory must come from
 * calloc.  When mem is a shared writable mapping (shm, MAP_SHARED), the pages
 * of events older than the last slot_count are released as the ring moves on
 * (madvise MADV_REMOVE); elsewhere ring_releases() says why not. */
void ring_init(struct ring *r, void *mem, uint32_t slot_count);

/* ring_releases - 0 if the producer releases dead pages, else the errno that
 * turned it off (EINVAL: mem is not a shared mapping; ENOSYS: no MADV_REMOVE;
 * EFBIG: the data area is too small to hold whole pages; EIO: an index entry
 * the producer did not write; EPERM: an attached (consumer) ring). */
int ring_releases(const struct ring *r);

/* ring_attach - use memory formatted by ring_init (mem_bytes long, possibly
 * mapped read-only) for reading; -1 if the header is not ours or the index and
 * data it announces would not fit.  The header is read once here.  An attached
 * ring is a consumer: never ring_append to it. */
int ring_attach(struct ring *r, void *mem, size_t mem_bytes);

/* ring_append - publish one event; returns its seq (> 0) or RING_TOOBIG.
 * Producer only (the ring given to ring_init); never waits. */
int64_t ring_append(struct ring *r, enum ring_event_type type, const void *payload, uint32_t len);

/* ring_head - seq of the newest published event (0 = none). */
uint64_t ring_head(const struct ring *r);

/* ring_oldest - the oldest seq the ring holds when its newest is head:
 * max(1, head - slot_count + 1).  Every seq from it to head reads RING_OK until
 * the producer appends again; an older one is RING_OVERRUN.  head + 1 (= 1)
 * for an empty ring. */
uint64_t ring_oldest(const struct ring *r, uint64_t head);

/* ring_read - copy event seq into buf (RING_PAYLOAD_MAX bytes).
 * Returns RING_OK with *len and *type set, RING_EMPTY or RING_OVERRUN.
 * Loads only (no atomic read-modify-write): works on a read-only mapping. */
enum ring_status ring_read(const struct ring *r, uint64_t seq, void *buf, uint32_t *len,
                           uint32_t *type);

#endif
