/*
 * ring_layout - the byte layout of the event ring in shared memory.
 *
 * WARNING: shared-memory layout.  The master (one producer) and every worker
 * (consumers) map the same bytes; change a field and bump RING_VERSION.
 * Fixed-width fields only; no pointers.
 *
 *   struct ring_header                  (one cache line)
 *   struct ring_entry[slot_count]       (the index: 16 B per event)
 *   uint8_t data[data_bytes]            (a byte ring of payloads, no padding)
 *
 * Event number seq (1, 2, 3, ...) has index entry (seq - 1) % slot_count; its
 * payload is the len bytes at data offset off, continued at offset 0 when it
 * runs past data_bytes.  data_bytes = slot_count * RING_PAYLOAD_MAX, the worst
 * case for slot_count events, so the last slot_count events always fit whatever
 * their sizes; the object is sparse (ftruncate), and only the pages under the
 * last slot_count payloads are resident: the producer releases the pages behind
 * the oldest event (see ring.c).
 */
#ifndef PERSONAD_RING_LAYOUT_H
#define PERSONAD_RING_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define RING_MAGIC 0x474e5250u /* "PRNG" */
#define RING_VERSION 2u
#define RING_ENTRY_BYTES 16u
#define RING_PAYLOAD_MAX 2032u
/* Bytes of shared memory reserved (not resident) per event: entry + largest payload. */
#define RING_SLOT_BYTES (RING_ENTRY_BYTES + RING_PAYLOAD_MAX)

struct ring_header {
    uint32_t magic;
    uint32_t version;
    uint32_t slot_count;  /* index entries = events kept */
    uint32_t payload_max; /* RING_PAYLOAD_MAX */
    uint32_t data_bytes;  /* slot_count * payload_max */
    uint32_t reserved;
    /* Sequence number of the newest published event; 0 = none yet.  Written
     * only by the producer (release), read by consumers (acquire). */
    _Atomic uint64_t head_seq;
    uint8_t pad[64 - 32];
};

struct ring_entry {
    /* Seqlock word: the seq of the event this entry describes, or 0 while the
     * producer is rewriting it. */
    _Atomic uint64_t seq;
    _Atomic uint32_t off;      /* payload offset in data, < data_bytes */
    _Atomic uint32_t len_type; /* payload bytes (low 16 bits) | enum ring_event_type << 16 */
};

_Static_assert(sizeof(struct ring_header) == 64, "ring header is one cache line");
_Static_assert(sizeof(struct ring_entry) == RING_ENTRY_BYTES, "index entry size is fixed");
_Static_assert(RING_PAYLOAD_MAX <= 0xffffu, "a length fits the entry's 16 bits");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free in shared memory");

#endif
