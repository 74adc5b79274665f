/*
 * ring_layout - the byte layout of the event ring in shared memory.
 *
 * WARNING: shared-memory layout.  The master (one producer) and every worker
 * (consumers) map the same bytes; change a field and bump RING_VERSION.
 * Fixed-width fields only; no pointers.
 *
 *   struct ring_header   (one cache line)
 *   struct ring_slot[slot_count]
 *
 * Event number seq (1, 2, 3, ...) lives in slot (seq - 1) % slot_count.
 */
#ifndef PERSONAD_RING_LAYOUT_H
#define PERSONAD_RING_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define RING_MAGIC 0x474e5250u /* "PRNG" */
#define RING_VERSION 1u
#define RING_SLOT_BYTES 2048u
#define RING_SLOT_HEADER_BYTES 16u
#define RING_PAYLOAD_MAX (RING_SLOT_BYTES - RING_SLOT_HEADER_BYTES)

struct ring_header {
    uint32_t magic;
    uint32_t version;
    uint32_t slot_count;
    uint32_t slot_bytes;
    /* Sequence number of the newest published event; 0 = none yet.  Written
     * only by the producer (release), read by consumers (acquire). */
    _Atomic uint64_t head_seq;
    uint8_t pad[64 - 24];
};

struct ring_slot {
    /* Seqlock word: the seq of the event whose bytes are in this slot, or 0
     * while the producer is rewriting it. */
    _Atomic uint64_t seq;
    uint32_t len;  /* payload bytes, <= RING_PAYLOAD_MAX */
    uint32_t type; /* enum ring_event_type */
    uint8_t payload[RING_PAYLOAD_MAX];
};

_Static_assert(sizeof(struct ring_header) == 64, "ring header is one cache line");
_Static_assert(sizeof(struct ring_slot) == RING_SLOT_BYTES, "slot size is fixed");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");

#endif
