/*
 * peers - see peers.h.
 */
#define _DEFAULT_SOURCE 1 /* MADV_REMOVE */

#include "build_config.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "peers.h"

uint32_t
peers_slot_bytes(uint32_t page_bytes, uint32_t want)
{
    if (want > PEERS_MAX_ENTRIES)
        want = PEERS_MAX_ENTRIES;
    uint64_t need = PEERS_OFFSET + (uint64_t)want * sizeof(struct peer_entry);
    uint64_t bytes = page_bytes;
    while (bytes < need)
        bytes *= 2;
    return (uint32_t)bytes;
}

uint32_t
peers_capacity(uint32_t slot_bytes)
{
    if (slot_bytes <= PEERS_OFFSET)
        return 0;
    uint32_t n = (slot_bytes - PEERS_OFFSET) / (uint32_t)sizeof(struct peer_entry);
    if (n > PEERS_MAX_ENTRIES)
        n = PEERS_MAX_ENTRIES;
    uint32_t cap = 1;
    while (cap * 2 <= n)
        cap *= 2;
    return n == 0 ? 0 : cap;
}

static struct peer_entry *
table(const struct stats_slot *sl)
{
    return (struct peer_entry *)(void *)((uint8_t *)(uintptr_t)sl + PEERS_OFFSET);
}

static void
key_halves(const uint8_t key[16], uint64_t *hi, uint64_t *lo)
{
    *hi = *lo = 0;
    for (int i = 0; i < 8; i++) {
        *hi = *hi << 8 | key[i];
        *lo = *lo << 8 | key[8 + i];
    }
}

/* The first entry of key's probe path (splitmix64's finaliser of both halves). */
static uint32_t
home(uint64_t hi, uint64_t lo, uint32_t cap)
{
    uint64_t x = hi * 0x9e3779b97f4a7c15ull ^ lo;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (uint32_t)x & (cap - 1);
}

void
peers_clear(struct stats_slot *own, uint32_t slot_bytes)
{
    struct peer_entry *t = table(own);
    uint32_t cap = peers_capacity(slot_bytes);
    if (cap == 0)
        return;
#ifdef MADV_REMOVE
    /* The pages go back to the system (they read as zeros again).  Its
     * success is not trusted: qemu-user answers 0 and frees nothing.  So every
     * entry left in use is cleared below too (reading a freed page costs no
     * memory; after a real MADV_REMOVE nothing is left to write). */
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && (uintptr_t)t % (uintptr_t)page == 0 &&
        (slot_bytes - PEERS_OFFSET) % (uint32_t)page == 0)
        (void)madvise(t, slot_bytes - PEERS_OFFSET, MADV_REMOVE);
#endif
    for (uint32_t i = 0; i < cap; i++) {
        if (atomic_load_explicit(&t[i].hi, memory_order_relaxed) == 0 &&
            atomic_load_explicit(&t[i].lo, memory_order_relaxed) == 0)
            continue;
        atomic_store_explicit(&t[i].count, 0, memory_order_relaxed);
        atomic_store_explicit(&t[i].hi, 0, memory_order_relaxed);
        atomic_store_explicit(&t[i].lo, 0, memory_order_relaxed);
    }
}

int
peers_add(struct stats_slot *own, uint32_t slot_bytes, const uint8_t key[16], int delta)
{
    uint32_t cap = peers_capacity(slot_bytes);
    if (cap == 0)
        return -1;
    uint64_t hi, lo;
    key_halves(key, &hi, &lo);
    struct peer_entry *t = table(own), *free_e = NULL;
    uint32_t i = home(hi, lo, cap);
    for (uint32_t n = 0; n < PEERS_PROBES && n < cap; n++, i = (i + 1) & (cap - 1)) {
        struct peer_entry *e = &t[i];
        uint64_t ehi = atomic_load_explicit(&e->hi, memory_order_relaxed);
        uint64_t elo = atomic_load_explicit(&e->lo, memory_order_relaxed);
        uint64_t count = atomic_load_explicit(&e->count, memory_order_relaxed);
        if (ehi == hi && elo == lo) {
            if (delta < 0 && count == 0)
                return -1;
            atomic_store_explicit(&e->count, delta < 0 ? count - 1 : count + 1,
                                  memory_order_relaxed);
            return 0;
        }
        if (ehi == 0 && elo == 0) { /* never used: the path ends here */
            if (free_e == NULL)
                free_e = e;
            break;
        }
        if (count == 0 && free_e == NULL)
            free_e = e;
    }
    if (delta < 0 || free_e == NULL)
        return -1;
    /* count is 0 while the address changes: a reader sees 0 or 1. */
    atomic_store_explicit(&free_e->hi, hi, memory_order_relaxed);
    atomic_store_explicit(&free_e->lo, lo, memory_order_relaxed);
    atomic_store_explicit(&free_e->count, 1, memory_order_release);
    return 0;
}

uint64_t
peers_get(const struct stats_slot *sl, uint32_t slot_bytes, const uint8_t key[16])
{
    uint32_t cap = peers_capacity(slot_bytes);
    if (cap == 0)
        return 0;
    uint64_t hi, lo;
    key_halves(key, &hi, &lo);
    const struct peer_entry *t = table(sl);
    uint32_t i = home(hi, lo, cap);
    for (uint32_t n = 0; n < PEERS_PROBES && n < cap; n++, i = (i + 1) & (cap - 1)) {
        uint64_t ehi = atomic_load_explicit(&t[i].hi, memory_order_relaxed);
        uint64_t elo = atomic_load_explicit(&t[i].lo, memory_order_relaxed);
        if (ehi == hi && elo == lo)
            return atomic_load_explicit(&t[i].count, memory_order_acquire);
        if (ehi == 0 && elo == 0)
            return 0;
    }
    return 0;
}
