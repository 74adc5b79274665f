/*
 * ring - see ring.h.
 *
 * WARNING: shared-memory code.  Memory-ordering argument:
 *
 *  Producer, for event s in slot i:
 *    1. slot.seq = 0                 (relaxed)
 *    2. release fence                 -- orders 1 before the payload stores
 *    3. write len, type, payload      (plain stores)
 *    4. slot.seq = s                  (release) -- payload visible before seq
 *    5. head_seq = s                  (release)
 *
 *  Consumer, for event s:
 *    a. h = head_seq (acquire); s > h -> RING_EMPTY
 *    b. v1 = slot.seq (acquire)       -- if v1 == s, the payload of s is visible
 *    c. copy len, type, payload       (plain loads)
 *    d. acquire fence                 -- orders the copy before the re-check
 *    e. v2 = slot.seq (relaxed); v1 != s or v2 != s -> RING_OVERRUN
 *
 *  If the producer started rewriting the slot (step 1) before the consumer's
 *  copy finished, the fence pair (2, d) guarantees the consumer sees seq != s at
 *  step e, so a torn copy is never returned.  The copy itself races with the
 *  producer by design (a seqlock); the bytes are only trusted after step e.
 *  The producer never reads consumer state, so it never waits.
 *
 *  Trust: slot indexes use the slot count cached in struct ring at init/attach,
 *  and the producer counts seqs in its own struct ring; the shared header is
 *  only ever read for head_seq, which bounds nothing (the slot index is taken
 *  modulo the cached count, the length is clamped).  A consumer only loads, so
 *  a read-only mapping is enough for it.
 */
#include "ring.h"

#include <string.h>

/* bytes is at most 64 + 2^32 * 2048 here: no 64-bit overflow. */
static size_t
size_or_max(uint64_t bytes)
{
#if SIZE_MAX < UINT64_MAX
    if (bytes > SIZE_MAX)
        return SIZE_MAX;
#endif
    return (size_t)bytes;
}

size_t
ring_bytes(uint32_t slot_count)
{
    return size_or_max(sizeof(struct ring_header) +
                       (uint64_t)slot_count * sizeof(struct ring_slot));
}

void
ring_init(struct ring *r, void *mem, uint32_t slot_count)
{
    /* Only the header: the slots are already zero (a fresh shm object is), and
     * touching 8 MiB of slots here would make every page resident for nothing. */
    memset(mem, 0, sizeof(struct ring_header));
    r->hdr = mem;
    r->slots = (struct ring_slot *)(r->hdr + 1);
    r->slot_count = slot_count;
    r->head = 0;
    r->hdr->magic = RING_MAGIC;
    r->hdr->version = RING_VERSION;
    r->hdr->slot_count = slot_count;
    r->hdr->slot_bytes = RING_SLOT_BYTES;
    atomic_store_explicit(&r->hdr->head_seq, 0, memory_order_release);
}

int
ring_attach(struct ring *r, void *mem, size_t mem_bytes)
{
    struct ring_header *h = mem;
    if (mem_bytes < sizeof(*h))
        return -1;
    /* Read once: what is checked is what is cached. */
    uint32_t count = h->slot_count;
    if (h->magic != RING_MAGIC || h->version != RING_VERSION || h->slot_bytes != RING_SLOT_BYTES ||
        count == 0 || sizeof(*h) + (uint64_t)count * sizeof(struct ring_slot) > (uint64_t)mem_bytes)
        return -1;
    r->hdr = h;
    r->slots = (struct ring_slot *)(h + 1);
    r->slot_count = count;
    r->head = atomic_load_explicit(&h->head_seq, memory_order_acquire);
    return 0;
}

uint64_t
ring_head(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->head_seq, memory_order_acquire);
}

int64_t
ring_append(struct ring *r, enum ring_event_type type, const void *payload, uint32_t len)
{
    if (len > RING_PAYLOAD_MAX)
        return RING_TOOBIG;
    /* The producer's own count, not head_seq: nothing in shared memory steers its writes. */
    uint64_t seq = r->head + 1;
    struct ring_slot *slot = &r->slots[(seq - 1) % r->slot_count];
    atomic_store_explicit(&slot->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    slot->len = len;
    slot->type = (uint32_t)type;
    memcpy(slot->payload, payload, len);
    atomic_store_explicit(&slot->seq, seq, memory_order_release);
    atomic_store_explicit(&r->hdr->head_seq, seq, memory_order_release);
    r->head = seq;
    return (int64_t)seq;
}

enum ring_status
ring_read(const struct ring *r, uint64_t seq, void *buf, uint32_t *len, uint32_t *type)
{
    uint64_t head = ring_head(r);
    if (seq == 0 || seq > head)
        return RING_EMPTY;
    uint32_t count = r->slot_count;
    if (head - seq >= count)
        return RING_OVERRUN;
    const struct ring_slot *slot = &r->slots[(seq - 1) % count];
    uint64_t v1 = atomic_load_explicit(&slot->seq, memory_order_acquire);
    if (v1 != seq)
        return RING_OVERRUN;
    uint32_t n = slot->len;
    uint32_t t = slot->type;
    if (n > RING_PAYLOAD_MAX)
        n = RING_PAYLOAD_MAX; /* torn length: the re-check below rejects the copy */
    memcpy(buf, slot->payload, n);
    atomic_thread_fence(memory_order_acquire);
    uint64_t v2 = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    if (v2 != seq)
        return RING_OVERRUN;
    *len = n;
    *type = t;
    return RING_OK;
}
