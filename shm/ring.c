/*
 * ring - see ring.h.
 *
 * Why this shape.  An event is a ~60-100 byte JSON line, but a name may make it
 * RING_PAYLOAD_MAX (2032) bytes, and the ring must hold the last slot_count
 * events whatever their sizes (a replay reads any of them by seq).  Fixed slots
 * of the largest size made the default ring 8 MiB resident.  Here an event is a
 * 16-byte index entry {seq, off, len|type} plus its payload bytes, appended back
 * to back to a byte ring of data_bytes = slot_count * RING_PAYLOAD_MAX: the
 * worst case, so the last slot_count payloads always fit (their bytes plus the
 * new one's are at most slot_count * RING_PAYLOAD_MAX) and the writer never
 * chooses between waiting and dropping.  The area is sparse: pages are
 * allocated only when the writer reaches them, and the writer releases the
 * pages that lie wholly behind the oldest kept payload (madvise MADV_REMOVE on
 * the shared mapping: the shm object's pages are freed, in every process that
 * maps it), so what is resident is the index, the last slot_count payloads, and
 * at most RING_RELEASE_BYTES plus two pages of dead bytes, wherever in the area
 * the window currently is.  A burst of large events is released as it leaves
 * the window.  (A reader lapped in the middle of a copy may read a released
 * page, which the kernel then allocates again, zero-filled; it stays until the
 * writer's next lap of the area reuses and releases it.)
 *
 * Wrapping back to offset 0 early, to keep the touched bytes at the start,
 * cannot keep the promise: once wrapped, events larger than the ones leaving
 * the window run into the oldest kept bytes, and the writer could neither wait
 * nor drop them.  Payloads here never move: one contiguous window of the byte
 * ring, split in two at its end, is the whole allocator.
 *
 * WARNING: shared-memory code.  Memory-ordering argument:
 *
 *  Producer, for event s with entry e = index[(s-1) % slot_count]:
 *    1. e.seq = 0                     (relaxed)
 *    2. release fence                 -- orders 1 before the data stores
 *    3. write the payload at wpos     (plain stores)
 *    4. e.off, e.len_type             (relaxed)
 *    5. e.seq = s                     (release) -- payload and entry visible before seq
 *    6. head_seq = s                  (release)
 *    7. release pages wholly behind the oldest kept payload (madvise)
 *
 *  Consumer, for event s:
 *    a. h = head_seq (acquire); s > h -> RING_EMPTY; h - s >= slot_count -> RING_OVERRUN
 *    b. v1 = e.seq (acquire)          -- if v1 == s, entry and payload of s are visible
 *    c. off, len (relaxed), bounded by the cached sizes; copy the payload (plain loads)
 *    d. acquire fence                 -- orders the copy before the re-check
 *    e. v2 = e.seq (relaxed); v1 != s or v2 != s -> RING_OVERRUN
 *
 *  Which bytes can change under a reader of s: the payload of s is overwritten
 *  only by an event t >= s + slot_count (the writer's bytes go after the newest
 *  payload and, by the capacity above, end before the oldest kept one), and
 *  released only in step 7 of such a t.  Event s + slot_count's step 1 clears
 *  e (s's entry) before its step 3, and every later t's steps 3 and 7 come after
 *  that in the producer's program order.  So if the consumer's copy read any
 *  byte a later event wrote (or zeros of a released page), the fence pair (2, d)
 *  makes its step e see e.seq != s (0, or s + k * slot_count): a torn copy is
 *  never returned.  The copy races with the producer by design (a seqlock); the
 *  bytes are only trusted after step e.  The producer never reads consumer
 *  state, so it never waits.
 *
 *  Trust: entry and data positions use the sizes cached in struct ring at
 *  init/attach, and the producer keeps its positions (wpos, written, live,
 *  released) in its own struct ring; the shared header is only read for
 *  head_seq, which bounds nothing (the entry index is taken modulo the cached
 *  count).  An entry's off and len are checked against the cached sizes before
 *  a byte is copied (a bogus one reads RING_OVERRUN), so a corrupt entry can at
 *  worst make a reader copy other bytes of the data area.  The producer reads
 *  one thing back: the length in the entry it is about to reuse (the payload
 *  leaving the window), bounded and checked against its seq, and used only to
 *  decide what to release; a mismatch turns the release off.  A consumer only
 *  loads, so a read-only mapping is enough for it.
 */
#define _DEFAULT_SOURCE 1 /* MADV_REMOVE */
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Dead bytes gathered before one madvise: ~200 small events per syscall, and
 * at most this much dead data resident. */
#define RING_RELEASE_BYTES 16384u

static size_t
size_or_max(uint64_t bytes)
{
#if SIZE_MAX < UINT64_MAX
    if (bytes > SIZE_MAX)
        return SIZE_MAX;
#endif
    return (size_t)bytes;
}

/* The data area's size, or 0 when it would not fit the 32-bit offsets. */
static uint32_t
data_bytes_for(uint32_t slot_count)
{
    uint64_t d = (uint64_t)slot_count * RING_PAYLOAD_MAX;
    return d > UINT32_MAX ? 0 : (uint32_t)d;
}

size_t
ring_bytes(uint32_t slot_count)
{
    if (slot_count > 0 && data_bytes_for(slot_count) == 0)
        return SIZE_MAX;
    /* at most 64 + 2^32 * 2048: no 64-bit overflow */
    return size_or_max(sizeof(struct ring_header) + (uint64_t)slot_count * RING_SLOT_BYTES);
}

static void
set_pointers(struct ring *r, void *mem, uint32_t count)
{
    r->hdr = mem;
    r->index = (struct ring_entry *)(void *)(r->hdr + 1);
    r->data = (uint8_t *)(void *)(r->index + count);
    r->slot_count = count;
    r->data_bytes = data_bytes_for(count);
}

static uintptr_t
page_up(uintptr_t a, size_t page)
{
    return (a + (page - 1)) & ~(uintptr_t)(page - 1);
}

static uintptr_t
page_down(uintptr_t a, size_t page)
{
    return a & ~(uintptr_t)(page - 1);
}

/* Release the whole pages inside data[from, to).  Returns the offset up to
 * which [from, to) is now dealt with: the end of the last page released, or
 * from when none fits. */
static uint32_t
release_range(struct ring *r, uint32_t from, uint32_t to)
{
    uintptr_t a = page_up((uintptr_t)(r->data + from), r->page);
    uintptr_t b = page_down((uintptr_t)(r->data + to), r->page);
    if (b <= a)
        return from;
    r->release_calls++;
    if (madvise((void *)a, (size_t)(b - a), MADV_REMOVE) != 0) {
        r->release_errno = errno != 0 ? errno : EINVAL;
        r->page = 0;
        return from;
    }
    return (uint32_t)(b - (uintptr_t)r->data);
}

/* Is the page release usable on this memory?  Tried on the first whole page of
 * the data area (nothing is written there yet). */
static void
release_probe(struct ring *r)
{
    r->release_errno = 0;
    r->page = 0;
#ifdef MADV_REMOVE
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || ((unsigned long)page & ((unsigned long)page - 1)) != 0) {
        r->release_errno = ENOSYS;
        return;
    }
    uintptr_t a = page_up((uintptr_t)r->data, (size_t)page);
    if (a + (size_t)page > (uintptr_t)(r->data + r->data_bytes)) {
        r->release_errno = EFBIG;
        return;
    }
    if (madvise((void *)a, (size_t)page, MADV_REMOVE) != 0) {
        r->release_errno = errno != 0 ? errno : EINVAL;
        return;
    }
    r->page = (size_t)page;
#else
    r->release_errno = ENOSYS;
#endif
}

void
ring_init(struct ring *r, void *mem, uint32_t slot_count)
{
    /* Only the header: the index and data are already zero (a fresh shm object
     * is), and touching them here would make every page resident for nothing. */
    memset(mem, 0, sizeof(struct ring_header));
    memset(r, 0, sizeof(*r));
    set_pointers(r, mem, slot_count);
    r->hdr->magic = RING_MAGIC;
    r->hdr->version = RING_VERSION;
    r->hdr->slot_count = slot_count;
    r->hdr->payload_max = RING_PAYLOAD_MAX;
    r->hdr->data_bytes = r->data_bytes;
    atomic_store_explicit(&r->hdr->head_seq, 0, memory_order_release);
    release_probe(r);
}

int
ring_releases(const struct ring *r)
{
    return r->page != 0 ? 0 : r->release_errno;
}

int
ring_attach(struct ring *r, void *mem, size_t mem_bytes)
{
    struct ring_header *h = mem;
    if (mem_bytes < sizeof(*h))
        return -1;
    /* Read once: what is checked is what is cached.  The data size is derived
     * from the count, never taken from the header. */
    uint32_t count = h->slot_count;
    if (h->magic != RING_MAGIC || h->version != RING_VERSION ||
        h->payload_max != RING_PAYLOAD_MAX || count == 0 || data_bytes_for(count) == 0 ||
        h->data_bytes != data_bytes_for(count) ||
        sizeof(*h) + (uint64_t)count * RING_SLOT_BYTES > (uint64_t)mem_bytes)
        return -1;
    memset(r, 0, sizeof(*r));
    set_pointers(r, mem, count);
    r->head = atomic_load_explicit(&h->head_seq, memory_order_acquire);
    r->release_errno = EPERM; /* a consumer releases nothing */
    return 0;
}

uint64_t
ring_head(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->head_seq, memory_order_acquire);
}

uint64_t
ring_oldest(const struct ring *r, uint64_t head)
{
    return head >= r->slot_count ? head - r->slot_count + 1 : 1;
}

/* Step 7: release the pages wholly inside the dead bytes.  The dead bytes are
 * the logical range [max(released, written - data_bytes), written - live): the
 * lower bound keeps it clear of what the writer has already reused (the
 * newest payloads), the upper one of the oldest kept payload. */
static void
release_dead(struct ring *r)
{
    uint64_t tail = r->written - r->live;
    uint64_t from = r->released;
    if (r->written > r->data_bytes && from < r->written - r->data_bytes)
        from = r->written - r->data_bytes;
    if (tail <= from || tail - from < RING_RELEASE_BYTES + 2 * r->page)
        return;
    uint32_t pos = (uint32_t)(from % r->data_bytes);
    uint64_t n = tail - from; /* <= data_bytes - live */
    uint32_t done;
    if (pos + n > r->data_bytes) {
        /* Split at the end of the area; the part before the end is done
         * (a partial last page is left alone), the rest starts at 0. */
        (void)release_range(r, pos, r->data_bytes);
        from += r->data_bytes - pos;
        n -= r->data_bytes - pos;
        pos = 0;
    }
    if (r->page == 0)
        return;
    done = release_range(r, pos, (uint32_t)(pos + n));
    if (r->page != 0)
        r->released = from + (done - pos);
}

int64_t
ring_append(struct ring *r, enum ring_event_type type, const void *payload, uint32_t len)
{
    if (len > RING_PAYLOAD_MAX)
        return RING_TOOBIG;
    /* The producer's own count, not head_seq: nothing in shared memory steers its writes. */
    uint64_t seq = r->head + 1;
    struct ring_entry *e = &r->index[(seq - 1) % r->slot_count];
    if (seq > r->slot_count) {
        /* The event leaving the window: only its length, for the release. */
        uint64_t old = atomic_load_explicit(&e->seq, memory_order_relaxed);
        uint32_t old_len = atomic_load_explicit(&e->len_type, memory_order_relaxed) & 0xffffu;
        if (old != seq - r->slot_count || old_len > RING_PAYLOAD_MAX || old_len > r->live) {
            r->page = 0;
            r->release_errno = EIO;
        } else {
            r->live -= old_len;
        }
    }
    atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint32_t off = r->wpos;
    uint32_t first = r->data_bytes - off < len ? r->data_bytes - off : len;
    if (len > 0) {
        memcpy(r->data + off, payload, first);
        memcpy(r->data, (const uint8_t *)payload + first, len - first);
    }
    r->wpos = len - first > 0 ? len - first : off + len;
    if (r->wpos == r->data_bytes)
        r->wpos = 0;
    atomic_store_explicit(&e->off, off, memory_order_relaxed);
    atomic_store_explicit(&e->len_type, len | (uint32_t)type << 16, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq, memory_order_release);
    atomic_store_explicit(&r->hdr->head_seq, seq, memory_order_release);
    r->head = seq;
    r->written += len;
    r->live += len;
    if (r->page != 0)
        release_dead(r);
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
    const struct ring_entry *e = &r->index[(seq - 1) % count];
    uint64_t v1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (v1 != seq)
        return RING_OVERRUN;
    uint32_t off = atomic_load_explicit(&e->off, memory_order_relaxed);
    uint32_t lt = atomic_load_explicit(&e->len_type, memory_order_relaxed);
    uint32_t n = lt & 0xffffu;
    /* Bounded before any copy: a bogus entry reads as overwritten. */
    if (off >= r->data_bytes || n > RING_PAYLOAD_MAX)
        return RING_OVERRUN;
    uint32_t first = r->data_bytes - off < n ? r->data_bytes - off : n;
    if (n > 0) {
        memcpy(buf, r->data + off, first);
        memcpy((uint8_t *)buf + first, r->data, n - first);
    }
    atomic_thread_fence(memory_order_acquire);
    uint64_t v2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if (v2 != seq)
        return RING_OVERRUN;
    *len = n;
    *type = lt >> 16;
    return RING_OK;
}
