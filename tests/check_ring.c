/*
 * check_ring - unit tests for shm/ring.c: append and read, consecutive
 * sequence numbers, RING_EMPTY, wrap-around, lapping (RING_OVERRUN), RING_TOOBIG,
 * ring_attach's header checks, payloads of every size from 0 to the maximum
 * (the last slot_count always readable, ring_oldest exact), a corrupt index
 * bounded, the resident memory of a wrapped ring of benchmark-sized events
 * (mincore), and one producer and one consumer in two processes sharing an
 * anonymous MAP_SHARED mapping (never a torn payload).
 */
/* MAP_ANONYMOUS is not in POSIX 2008; glibc wants _DEFAULT_SOURCE for it. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/shm_map.h"

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

/* A ring in private heap memory; the caller frees *mem. */
static void
ring_new(struct ring *r, void **mem, uint32_t slots)
{
    *mem = calloc(1, ring_bytes(slots)); /* ring_init wants zero-filled memory */
    ck_assert_ptr_nonnull(*mem);
    ring_init(r, *mem, slots);
}

/* Read seq and require RING_OK with exactly the given bytes and type. */
static void
expect_event(const struct ring *r, uint64_t seq, uint32_t want_type, const void *want,
             uint32_t want_len)
{
    static uint8_t buf[RING_PAYLOAD_MAX];
    uint32_t len = 0xdeadbeef, type = 0xdeadbeef;
    enum ring_status st = ring_read(r, seq, buf, &len, &type);
    ck_assert_msg(st == RING_OK, "ring_read(%llu) = %d, want RING_OK", (unsigned long long)seq,
                  (int)st);
    ck_assert_uint_eq(len, want_len);
    ck_assert_uint_eq(type, want_type);
    ck_assert_msg(memcmp(buf, want, want_len) == 0, "payload of seq %llu differs",
                  (unsigned long long)seq);
}

static enum ring_status
read_status(const struct ring *r, uint64_t seq)
{
    static uint8_t buf[RING_PAYLOAD_MAX];
    uint32_t len, type;
    return ring_read(r, seq, buf, &len, &type);
}

START_TEST(test_bytes)
{
    ck_assert_uint_eq(ring_bytes(0), sizeof(struct ring_header));
    ck_assert_uint_eq(ring_bytes(1), 64 + RING_SLOT_BYTES);
    ck_assert_uint_eq(ring_bytes(4096), 64 + (size_t)4096 * RING_SLOT_BYTES);
}
END_TEST

START_TEST(test_append_read)
{
    struct ring r;
    void *mem;
    ring_new(&r, &mem, 8);
    ck_assert_uint_eq(ring_head(&r), 0);
    ck_assert_int_eq(read_status(&r, 0), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, 1), RING_EMPTY);

    ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, "hello", 5), 1);
    ck_assert_uint_eq(ring_head(&r), 1);
    expect_event(&r, 1, RING_EVENT_ADDED, "hello", 5);
    ck_assert_int_eq(read_status(&r, 0), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, 2), RING_EMPTY);

    ck_assert_int_eq(ring_append(&r, RING_EVENT_DELETED, "", 0), 2);
    expect_event(&r, 2, RING_EVENT_DELETED, "", 0);

    static const char msg[] = "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod\"}}";
    ck_assert_int_eq(ring_append(&r, RING_EVENT_UPDATED, msg, sizeof(msg) - 1), 3);
    expect_event(&r, 3, RING_EVENT_UPDATED, msg, sizeof(msg) - 1);
    /* The older ones are still intact. */
    expect_event(&r, 1, RING_EVENT_ADDED, "hello", 5);
    expect_event(&r, 2, RING_EVENT_DELETED, "", 0);
    free(mem);
}
END_TEST

START_TEST(test_consecutive_seqs)
{
    struct ring r;
    void *mem;
    ring_new(&r, &mem, 16);
    for (int64_t i = 1; i <= 1000; i++) {
        char p[32];
        int n = snprintf(p, sizeof(p), "e%lld", (long long)i);
        ck_assert_int_eq(ring_append(&r, RING_EVENT_UPDATED, p, (uint32_t)n), i);
        ck_assert_uint_eq(ring_head(&r), (uint64_t)i);
    }
    free(mem);
}
END_TEST

START_TEST(test_future_is_empty)
{
    struct ring r;
    void *mem;
    ring_new(&r, &mem, 4);
    for (int i = 0; i < 10; i++)
        ring_append(&r, RING_EVENT_ADDED, "x", 1);
    ck_assert_int_eq(read_status(&r, 11), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, 12), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, 1000000), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, UINT64_MAX), RING_EMPTY);
    ck_assert_int_eq(read_status(&r, 10), RING_OK);
    free(mem);
}
END_TEST

static uint32_t
payload_for(uint64_t seq, uint8_t *buf)
{
    int n = snprintf((char *)buf, 64, "event-%llu-", (unsigned long long)seq);
    uint32_t len = (uint32_t)n + (uint32_t)(seq * 37 % 200);
    for (uint32_t k = (uint32_t)n; k < len; k++)
        buf[k] = (uint8_t)(seq * 13 + k);
    return len;
}

START_TEST(test_wraparound)
{
    const uint32_t slots = 8;
    struct ring r;
    void *mem;
    ring_new(&r, &mem, slots);
    uint8_t want[256];
    for (uint64_t s = 1; s <= slots * 57 + 3; s++) {
        uint32_t len = payload_for(s, want);
        ck_assert_int_eq(ring_append(&r, (enum ring_event_type)(1 + s % 3), want, len), (int64_t)s);
        /* Every event still in the ring reads back intact after each append. */
        uint64_t oldest = s > slots ? s - slots + 1 : 1;
        for (uint64_t q = oldest; q <= s; q++) {
            len = payload_for(q, want);
            expect_event(&r, q, (uint32_t)(1 + q % 3), want, len);
        }
        if (oldest > 1)
            ck_assert_int_eq(read_status(&r, oldest - 1), RING_OVERRUN);
        ck_assert_int_eq(read_status(&r, s + 1), RING_EMPTY);
    }
    free(mem);
}
END_TEST

START_TEST(test_lapped_reader_overrun)
{
    const uint32_t slots = 16;
    struct ring r;
    void *mem;
    ring_new(&r, &mem, slots);
    /* Exactly slot_count events: the oldest is still there. */
    for (uint32_t i = 0; i < slots; i++)
        ring_append(&r, RING_EVENT_ADDED, "abc", 3);
    ck_assert_int_eq(read_status(&r, 1), RING_OK);
    /* One more laps event 1. */
    ring_append(&r, RING_EVENT_ADDED, "abc", 3);
    ck_assert_int_eq(read_status(&r, 1), RING_OVERRUN);
    ck_assert_int_eq(read_status(&r, 2), RING_OK);
    /* Far behind: still OVERRUN, never a stale or wrong event. */
    for (uint32_t i = 0; i < 10 * slots; i++)
        ring_append(&r, RING_EVENT_ADDED, "abc", 3);
    uint64_t head = ring_head(&r);
    ck_assert_uint_eq(head, 11 * slots + 1);
    for (uint64_t q = 1; q <= head - slots; q++)
        ck_assert_int_eq(read_status(&r, q), RING_OVERRUN);
    for (uint64_t q = head - slots + 1; q <= head; q++)
        ck_assert_int_eq(read_status(&r, q), RING_OK);
    free(mem);
}
END_TEST

START_TEST(test_toobig)
{
    struct ring r;
    void *mem;
    ring_new(&r, &mem, 4);
    static uint8_t big[RING_PAYLOAD_MAX + 1];
    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, big, RING_PAYLOAD_MAX + 1), RING_TOOBIG);
    ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, big, UINT32_MAX), RING_TOOBIG);
    ck_assert_uint_eq(ring_head(&r), 0);
    ck_assert_int_eq(read_status(&r, 1), RING_EMPTY);
    /* The largest payload fits exactly. */
    big[0] = 'A';
    big[RING_PAYLOAD_MAX - 1] = 'Z';
    ck_assert_int_eq(ring_append(&r, RING_EVENT_UPDATED, big, RING_PAYLOAD_MAX), 1);
    expect_event(&r, 1, RING_EVENT_UPDATED, big, RING_PAYLOAD_MAX);
    /* A refused append does not consume a seq. */
    ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, big, RING_PAYLOAD_MAX + 1), RING_TOOBIG);
    ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, "x", 1), 2);
    free(mem);
}
END_TEST

START_TEST(test_attach)
{
    const uint32_t slots = 8;
    size_t bytes = ring_bytes(slots);
    struct ring w, rd;
    void *mem;
    ring_new(&w, &mem, slots);
    ring_append(&w, RING_EVENT_ADDED, "one", 3);

    ck_assert_int_eq(ring_attach(&rd, mem, bytes), 0);
    ck_assert_int_eq(ring_releases(&rd), EPERM); /* a consumer releases nothing */
    ck_assert_uint_eq(ring_head(&rd), 1);
    expect_event(&rd, 1, RING_EVENT_ADDED, "one", 3);
    ring_append(&w, RING_EVENT_DELETED, "two", 3);
    expect_event(&rd, 2, RING_EVENT_DELETED, "two", 3);
    /* More memory than needed is fine. */
    ck_assert_int_eq(ring_attach(&rd, mem, bytes + 4096), 0);

    /* Too small for the header or for the slots it announces. */
    ck_assert_int_eq(ring_attach(&rd, mem, bytes - 1), -1);
    ck_assert_int_eq(ring_attach(&rd, mem, sizeof(struct ring_header) - 1), -1);
    ck_assert_int_eq(ring_attach(&rd, mem, 0), -1);

    struct ring_header *h = mem;
    struct ring_header saved = {0};
    memcpy(&saved, h, offsetof(struct ring_header, head_seq));

    h->magic = RING_MAGIC ^ 1u;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->magic = 0;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->magic = saved.magic;

    h->version = RING_VERSION + 1;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->version = 0;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->version = saved.version;

    h->payload_max = RING_PAYLOAD_MAX / 2;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->payload_max = saved.payload_max;

    /* The data size is derived from the count; a header that disagrees is not ours. */
    h->data_bytes = saved.data_bytes + 1;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->data_bytes = saved.data_bytes - RING_PAYLOAD_MAX;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->data_bytes = UINT32_MAX;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->data_bytes = saved.data_bytes;

    h->slot_count = 0;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->slot_count = slots + 1; /* announces more slots than the mapping holds */
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->slot_count = slots;

    ck_assert_int_eq(ring_attach(&rd, mem, bytes), 0);

    /* Zeroed memory (a never-initialised segment) is refused. */
    void *zero = calloc(1, bytes);
    ck_assert_ptr_nonnull(zero);
    ck_assert_int_eq(ring_attach(&rd, zero, bytes), -1);
    free(zero);
    free(mem);
}
END_TEST

/* Memory for a ring of slots that ends right before a PROT_NONE page, so any
 * access past the ring faults.  Returns the ring's start; unmap *map (*map_bytes long) after. */
static void *
guarded_mem(size_t bytes, uint8_t **map, size_t *map_bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (bytes + page - 1) / page * page;
    *map_bytes = body + page;
    *map = mmap(NULL, *map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(*map, MAP_FAILED);
    ck_assert_int_eq(mprotect(*map + body, page, PROT_NONE), 0);
    return *map + body - bytes; /* 64-byte aligned: bytes = 64 + n * 2048 */
}

START_TEST(test_corrupt_header_after_attach)
{
    /* A worker could rewrite the shared header (were it writable): neither the
     * producer nor a consumer may follow its slot_count out of the mapping. */
    const uint32_t slots = 4;
    uint8_t *map;
    size_t map_bytes;
    void *mem = guarded_mem(ring_bytes(slots), &map, &map_bytes);
    struct ring w, rd;
    ring_init(&w, mem, slots);
    ck_assert_int_eq(ring_attach(&rd, mem, ring_bytes(slots)), 0);
    static const uint32_t bogus[] = {1000000, UINT32_MAX, slots + 1, 0};
    char msg[32];
    uint64_t seq = 0;
    for (size_t k = 0; k < sizeof(bogus) / sizeof(bogus[0]); k++) {
        w.hdr->slot_count = bogus[k];
        w.hdr->payload_max = 1;
        w.hdr->data_bytes = bogus[k];
        /* Two laps: every slot, and the ones past the mapping, are tried. */
        for (uint32_t i = 0; i < 2 * slots; i++) {
            int n = snprintf(msg, sizeof(msg), "event %llu", (unsigned long long)seq + 1);
            ck_assert_int_eq(ring_append(&w, RING_EVENT_ADDED, msg, (uint32_t)n), (int64_t)++seq);
            expect_event(&rd, seq, RING_EVENT_ADDED, msg, (uint32_t)n);
        }
        ck_assert_int_eq(read_status(&rd, seq - slots), RING_OVERRUN); /* lapped, by the cache */
        ck_assert_int_eq(read_status(&rd, seq + 1), RING_EMPTY);
    }
    munmap(map, map_bytes);
}
END_TEST

/* --- variable sizes, the window, the index, resident memory ----------------------- */

/* Zero-filled memory for a ring: heap (no page release) or a MAP_SHARED
 * anonymous mapping (shmem, where the producer releases dead pages). */
struct ring_mem {
    void *mem;
    size_t bytes;
    int shared;
};

/* Whether madvise(MADV_REMOVE) really frees shared anonymous pages here:
 * Linux does (the page reads back as zeros); qemu-user (CI's cross runs)
 * answers every madvise with success and does nothing, so the ring cannot
 * tell, keeps its pages, and there is nothing to measure. */
static int
madv_remove_runs(void)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *p =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    p[0] = 0x5a;
    int ok = madvise(p, (size_t)page, MADV_REMOVE) == 0 && p[0] == 0;
    ck_assert_int_eq(munmap(p, (size_t)page), 0);
    return ok;
}

static void
ring_mem_new(struct ring *r, struct ring_mem *m, uint32_t slots, int shared)
{
    m->bytes = ring_bytes(slots);
    m->shared = shared;
    if (shared) {
        m->mem = mmap(NULL, m->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(m->mem, MAP_FAILED);
    } else {
        m->mem = calloc(1, m->bytes);
        ck_assert_ptr_nonnull(m->mem);
    }
    ring_init(r, m->mem, slots);
    if (shared)
        ck_assert_int_eq(ring_releases(r), 0);
    else if (madv_remove_runs()) /* (qemu-user's madvise succeeds on anything) */
        ck_assert_int_eq(ring_releases(r), EINVAL); /* heap memory: nothing to release */
}

static void
ring_mem_free(struct ring_mem *m)
{
    if (m->shared)
        ck_assert_int_eq(munmap(m->mem, m->bytes), 0);
    else
        free(m->mem);
}

/* The bytes of event seq: differ from every other seq's at the same offset. */
static void
pattern(uint64_t seq, uint8_t *buf, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(seq * 131u + k * 7u + (k >> 8) + (seq >> 8));
}

/* Every event of the window ring_oldest..head reads back intact, the one
 * before it is RING_OVERRUN and the one after RING_EMPTY. */
static void
expect_window(const struct ring *r, uint64_t head, const uint32_t *lens)
{
    static uint8_t want[RING_PAYLOAD_MAX];
    uint64_t oldest = ring_oldest(r, head);
    ck_assert_uint_eq(ring_head(r), head);
    for (uint64_t q = oldest; q <= head; q++) {
        pattern(q, want, lens[q]);
        expect_event(r, q, (uint32_t)(1 + q % 3), want, lens[q]);
    }
    if (oldest > 1)
        ck_assert_int_eq(read_status(r, oldest - 1), RING_OVERRUN);
    ck_assert_int_eq(read_status(r, head + 1), RING_EMPTY);
}

static uint64_t rng_state = 88172645463325252ull;

static uint32_t
rng(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Length of event s in test_variable_sizes: phases of random, all-maximum
 * (the window exactly fills the data area), maximum and one less (payloads
 * straddle the end of the area), 1 byte, 0 bytes, and 1-or-maximum. */
static uint32_t
variable_len(uint64_t s)
{
    uint64_t phase = (s - 1) / 120 % 7;
    switch (phase) {
    case 0:
        return 1 + rng(RING_PAYLOAD_MAX);
    case 1:
        return RING_PAYLOAD_MAX;
    case 2:
        return RING_PAYLOAD_MAX - (uint32_t)(s % 2);
    case 3:
        return 1;
    case 4:
        return (uint32_t)(s % 5 == 0 ? 0 : 1 + s % 3);
    case 5:
        return s % 3 == 0 ? RING_PAYLOAD_MAX : 1;
    default:
        return rng(2) ? 1 + rng(120) : RING_PAYLOAD_MAX - rng(64);
    }
}

START_TEST(test_variable_sizes)
{
    /* _i: 0 heap memory, 1 a shared mapping whose dead pages are released. */
    const uint32_t slots = 16;
    enum { EVENTS = 120 * 7 * 3 };
    static uint32_t lens[EVENTS + 2];
    static uint8_t buf[RING_PAYLOAD_MAX];
    struct ring r;
    struct ring_mem m;
    ring_mem_new(&r, &m, slots, _i);
    rng_state = 88172645463325252ull;
    for (uint64_t s = 1; s <= EVENTS; s++) {
        lens[s] = variable_len(s);
        pattern(s, buf, lens[s]);
        ck_assert_int_eq(ring_append(&r, (enum ring_event_type)(1 + s % 3), buf, lens[s]),
                         (int64_t)s);
        expect_window(&r, s, lens);
    }
    if (_i)
        ck_assert_int_eq(ring_releases(&r), 0); /* still on: every check held */
    ring_mem_free(&m);
}
END_TEST

START_TEST(test_oldest)
{
    struct ring r;
    void *mem;
    ring_new(&r, &mem, 8);
    ck_assert_uint_eq(ring_oldest(&r, 0), 1);
    ck_assert_uint_eq(ring_oldest(&r, 1), 1);
    ck_assert_uint_eq(ring_oldest(&r, 7), 1);
    ck_assert_uint_eq(ring_oldest(&r, 8), 1);
    ck_assert_uint_eq(ring_oldest(&r, 9), 2);
    ck_assert_uint_eq(ring_oldest(&r, 100), 93);
    ck_assert_uint_eq(ring_oldest(&r, UINT64_MAX), UINT64_MAX - 7);
    /* The computed oldest is exactly the first readable seq, after each append. */
    static uint8_t buf[RING_PAYLOAD_MAX];
    for (uint64_t s = 1; s <= 8 * 40; s++) {
        uint32_t len = (uint32_t)(s * 977 % (RING_PAYLOAD_MAX + 1));
        pattern(s, buf, len);
        ck_assert_int_eq(ring_append(&r, (enum ring_event_type)(1 + s % 3), buf, len), (int64_t)s);
        uint64_t o = ring_oldest(&r, ring_head(&r));
        ck_assert_uint_eq(o, s >= 8 ? s - 7 : 1);
        ck_assert_int_eq(read_status(&r, o), RING_OK);
        if (o > 1)
            ck_assert_int_eq(read_status(&r, o - 1), RING_OVERRUN);
    }
    free(mem);
    /* One slot: only the newest. */
    ring_new(&r, &mem, 1);
    ck_assert_uint_eq(ring_oldest(&r, 5), 5);
    for (int64_t s = 1; s <= 5; s++)
        ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, buf, RING_PAYLOAD_MAX), s);
    ck_assert_int_eq(read_status(&r, 5), RING_OK);
    ck_assert_int_eq(read_status(&r, 4), RING_OVERRUN);
    free(mem);
}
END_TEST

START_TEST(test_window_many_wraps)
{
    /* slot_count events of random sizes, 60 times over: after every append the
     * oldest and the newest, and after every 8th the whole window, are intact.
     * _i as in test_variable_sizes. */
    const uint32_t slots = 64;
    enum { EVENTS = 64 * 60 };
    static uint32_t lens[EVENTS + 2];
    static uint8_t buf[RING_PAYLOAD_MAX];
    struct ring r;
    struct ring_mem m;
    ring_mem_new(&r, &m, slots, _i);
    rng_state = 2463534242ull;
    for (uint64_t s = 1; s <= EVENTS; s++) {
        lens[s] = rng(4) == 0 ? 1 + rng(RING_PAYLOAD_MAX) : 40 + rng(80);
        pattern(s, buf, lens[s]);
        ck_assert_int_eq(ring_append(&r, (enum ring_event_type)(1 + s % 3), buf, lens[s]),
                         (int64_t)s);
        if (s % 8 == 0) {
            expect_window(&r, s, lens);
            continue;
        }
        uint64_t o = ring_oldest(&r, s);
        pattern(o, buf, lens[o]);
        expect_event(&r, o, (uint32_t)(1 + o % 3), buf, lens[o]);
        pattern(s, buf, lens[s]);
        expect_event(&r, s, (uint32_t)(1 + s % 3), buf, lens[s]);
        if (o > 1)
            ck_assert_int_eq(read_status(&r, o - 1), RING_OVERRUN);
    }
    if (_i) {
        ck_assert_int_eq(ring_releases(&r), 0);
        ck_assert_uint_gt(r.release_calls, 0);
    }
    ring_mem_free(&m);
}
END_TEST

START_TEST(test_corrupt_index)
{
    /* Entries in shared memory that no producer wrote: a reader bounds their
     * offsets and lengths by its cached sizes (the ring ends right before a
     * PROT_NONE page: a copy past it would crash), and reads them as
     * RING_OVERRUN, or at worst as other bytes of the data area. */
    const uint32_t slots = 4;
    uint8_t *map;
    size_t map_bytes;
    void *mem = guarded_mem(ring_bytes(slots), &map, &map_bytes);
    struct ring w, rd;
    ring_init(&w, mem, slots);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ring_append(&w, RING_EVENT_ADDED, "abcd", 4), i + 1);
    ck_assert_int_eq(ring_attach(&rd, mem, ring_bytes(slots)), 0);
    struct ring_entry *e = &w.index[1]; /* seq 2 */
    uint32_t dbytes = slots * RING_PAYLOAD_MAX;
    static uint8_t buf[RING_PAYLOAD_MAX];
    uint32_t len, type;

    /* At the very end, the maximum length: split, both parts inside. */
    atomic_store(&e->off, dbytes - 1);
    atomic_store(&e->len_type, RING_PAYLOAD_MAX | 1u << 16);
    ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OK);
    ck_assert_uint_eq(len, RING_PAYLOAD_MAX);
    const uint32_t bad_off[] = {dbytes, dbytes + 1, UINT32_MAX, UINT32_MAX - 100};
    for (size_t k = 0; k < sizeof(bad_off) / sizeof(bad_off[0]); k++) {
        atomic_store(&e->off, bad_off[k]);
        atomic_store(&e->len_type, 4u | 1u << 16);
        ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OVERRUN);
    }
    static const uint32_t bad_len[] = {RING_PAYLOAD_MAX + 1, 0xffffu, 0xfffffu};
    for (size_t k = 0; k < sizeof(bad_len) / sizeof(bad_len[0]); k++) {
        atomic_store(&e->off, 0);
        atomic_store(&e->len_type, bad_len[k]);
        ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OVERRUN);
    }
    /* An entry whose seq is not the one asked for. */
    atomic_store(&e->off, 0);
    atomic_store(&e->len_type, 4u | 1u << 16);
    atomic_store(&e->seq, 6);
    ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OVERRUN);
    atomic_store(&e->seq, 0);
    ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OVERRUN);
    atomic_store(&e->seq, 2);
    ck_assert_int_eq(ring_read(&rd, 2, buf, &len, &type), RING_OK);
    /* A hostile head: every seq maps to an entry inside the index. */
    static const uint64_t bad_head[] = {UINT64_MAX, UINT64_MAX - 1, 1ull << 40};
    for (size_t k = 0; k < sizeof(bad_head) / sizeof(bad_head[0]); k++) {
        atomic_store(&w.hdr->head_seq, bad_head[k]);
        for (uint64_t q = bad_head[k] - 8; q != 0 && q <= bad_head[k]; q++)
            ck_assert_int_eq(ring_read(&rd, q, buf, &len, &type), RING_OVERRUN);
    }
    munmap(map, map_bytes);
}
END_TEST

START_TEST(test_producer_corrupt_entry)
{
    /* The producer reads back one thing, the length leaving the window, for the
     * release only: an entry it did not write turns the release off, and the
     * events go on being appended and read intact. */
    struct ring w;
    struct ring_mem m;
    ring_mem_new(&w, &m, 4, 1);
    static uint8_t buf[RING_PAYLOAD_MAX];
    static uint32_t lens[64];
    for (uint64_t s = 1; s <= 4; s++) {
        lens[s] = RING_PAYLOAD_MAX;
        pattern(s, buf, lens[s]);
        ck_assert_int_eq(ring_append(&w, (enum ring_event_type)(1 + s % 3), buf, lens[s]),
                         (int64_t)s);
    }
    atomic_store(&w.index[0].len_type, 0xffffu);
    for (uint64_t s = 5; s < 64; s++) {
        lens[s] = s % 2 ? RING_PAYLOAD_MAX : 7;
        pattern(s, buf, lens[s]);
        ck_assert_int_eq(ring_append(&w, (enum ring_event_type)(1 + s % 3), buf, lens[s]),
                         (int64_t)s);
        expect_window(&w, s, lens);
        ck_assert_int_eq(ring_releases(&w), EIO);
    }
    ring_mem_free(&m);
}
END_TEST

/* Bytes of mem[0, bytes) resident in memory (mincore: for shmem, the object's
 * pages that exist, whoever touched them). */
static size_t
resident_bytes(void *mem, size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (bytes + page - 1) / page;
    unsigned char *vec = calloc(pages, 1);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore(mem, bytes, vec), 0);
    size_t n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1u;
    free(vec);
    return n * page;
}

/* An event as contrib/bench/wsbench makes them: cluster.added of
 * "b-<10-digit index>-<CLOCK_MONOTONIC ns>" (72 bytes with 16 digits of ns),
 * or padded to 100 bytes. */
static uint32_t
bench_event(uint64_t seq, char *buf, int padded)
{
    int n =
        snprintf(buf, 160, "{\"type\":\"cluster.added\",\"data\":{\"name\":\"b-%010llu-%llu%s\"}}",
                 (unsigned long long)seq, 1234567890123456ull + seq * 7919,
                 padded ? "-padding-to-100-bytes-------" : "");
    ck_assert_int_eq(n, padded ? 100 : 72);
    return (uint32_t)n;
}

#define RES_SLOTS 4096u                /* the default --ring-size */
#define RES_LIMIT ((size_t)512 * 1024) /* issue 10's target */

struct shm_ring {
    void *mem;
    size_t bytes;
    int ro_fd;
};

static void
shm_ring_new(struct ring *r, struct shm_ring *m)
{
    char name[64];
    const char *call = "?";
    snprintf(name, sizeof(name), "/personad-check-ring-%ld", (long)getpid());
    m->bytes = ring_bytes(RES_SLOTS);
    m->mem = shm_map_create(name, m->bytes, &m->ro_fd, &call);
    ck_assert_msg(m->mem != NULL, "shm_map_create: %s: %s", call, strerror(errno));
    ring_init(r, m->mem, RES_SLOTS);
    ck_assert_int_eq(ring_releases(r), 0);
    ck_assert_uint_le(resident_bytes(m->mem, m->bytes), 2 * (size_t)sysconf(_SC_PAGESIZE));
}

static void
shm_ring_free(struct shm_ring *m)
{
    ck_assert_int_eq(munmap(m->mem, m->bytes), 0);
    ck_assert_int_eq(close(m->ro_fd), 0);
}

/* Append events from seq from to to, of bench_event's kind; then the last
 * RES_SLOTS all read back. */
static void
append_bench(struct ring *r, uint64_t from, uint64_t to, int padded)
{
    char msg[160];
    for (uint64_t s = from; s <= to; s++) {
        uint32_t n = bench_event(s, msg, padded);
        ck_assert_int_eq(ring_append(r, RING_EVENT_ADDED, msg, n), (int64_t)s);
    }
    for (uint64_t s = ring_oldest(r, to); s <= to; s++) {
        uint32_t n = bench_event(s, msg, padded);
        expect_event(r, s, RING_EVENT_ADDED, msg, n);
    }
}

START_TEST(test_resident_after_wrap)
{
    /* The default ring after it wrapped three times over benchmark-sized events
     * (_i: 0 the 72-byte events of wsbench, 1 100-byte ones): at most 512 KiB
     * of its shared memory is resident (slots of 2 KiB: 8 MiB). */
    if (!madv_remove_runs()) {
        fprintf(stderr, "MADV_REMOVE does not run here (qemu-user?): nothing to measure\n");
        return;
    }
    struct ring r;
    struct shm_ring m;
    shm_ring_new(&r, &m);
    append_bench(&r, 1, 3 * RES_SLOTS + 77, _i);
    size_t res = resident_bytes(m.mem, m.bytes);
    fprintf(stderr, "ring of %u events of %u bytes, wrapped: %zu KiB resident of %zu KiB mapped\n",
            RES_SLOTS, bench_event(1, (char[160]){0}, _i), res / 1024, m.bytes / 1024);
    ck_assert_uint_le(res, RES_LIMIT);
    shm_ring_free(&m);
}
END_TEST

START_TEST(test_resident_after_burst)
{
    /* A burst of maximum-size events makes the ring large (its window is 8 MiB
     * of payload); once small events have pushed it out of the window, its pages
     * are released: back under 512 KiB. */
    if (!madv_remove_runs()) {
        fprintf(stderr, "MADV_REMOVE does not run here (qemu-user?): nothing to measure\n");
        return;
    }
    struct ring r;
    struct shm_ring m;
    shm_ring_new(&r, &m);
    static uint8_t big[RING_PAYLOAD_MAX];
    for (uint64_t s = 1; s <= RES_SLOTS; s++) {
        pattern(s, big, RING_PAYLOAD_MAX);
        ck_assert_int_eq(ring_append(&r, RING_EVENT_UPDATED, big, RING_PAYLOAD_MAX), (int64_t)s);
    }
    size_t burst = resident_bytes(m.mem, m.bytes);
    ck_assert_uint_ge(burst, (size_t)RES_SLOTS * RING_PAYLOAD_MAX); /* the measure sees it */
    append_bench(&r, RES_SLOTS + 1, 3 * RES_SLOTS, 0);
    size_t after = resident_bytes(m.mem, m.bytes);
    fprintf(stderr, "after a burst: %zu KiB resident, then %zu KiB\n", burst / 1024, after / 1024);
    ck_assert_uint_le(after, RES_LIMIT);
    shm_ring_free(&m);
}
END_TEST

/* --- two processes --------------------------------------------------------------- */

#define XP_SLOTS 32u
#define XP_EVENTS 200000u

struct xp_shared {
    _Atomic uint32_t done;  /* producer finished appending */
    _Atomic uint32_t ready; /* consumer started */
};

static uint32_t
fnv32(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* 0: lengths spread over 16..RING_PAYLOAD_MAX; 1: mostly benchmark-sized
 * (16..115) with one maximum-size event in 61, so payloads of every size wrap
 * at the end of the data area and the producer releases pages as it races;
 * 2: all RING_PAYLOAD_MAX, so the window fills the data area and each event
 * overwrites the bytes of the one leaving the window (the one probed). */
static unsigned xp_mode;

/* Payload of event seq: [seq:8][len:4][fill...][fnv32 of all before:4];
 * its length is derived from seq, up to the maximum. */
static uint32_t
xp_len(uint64_t seq)
{
    if (xp_mode == 1)
        return seq % 61 == 0 ? RING_PAYLOAD_MAX : 16u + (uint32_t)((seq * 7919u) % 100u);
    if (xp_mode == 2)
        return RING_PAYLOAD_MAX;
    return 16u + (uint32_t)((seq * 7919u) % (RING_PAYLOAD_MAX - 16u + 1u));
}

static uint32_t
xp_type(uint64_t seq)
{
    return 1u + (uint32_t)(seq % 3u);
}

static void
xp_fill(uint64_t seq, uint8_t *buf)
{
    uint32_t len = xp_len(seq);
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &len, 4);
    for (uint32_t k = 12; k < len - 4; k++)
        buf[k] = (uint8_t)((seq >> (k % 5)) + k * 131u);
    uint32_t sum = fnv32(buf, len - 4);
    memcpy(buf + len - 4, &sum, 4);
}

/* 0 if buf/len/type is exactly event seq. */
static int
xp_check(uint64_t seq, const uint8_t *buf, uint32_t len, uint32_t type)
{
    uint64_t s;
    uint32_t l, sum;
    if (len != xp_len(seq) || type != xp_type(seq))
        return -1;
    memcpy(&s, buf, 8);
    memcpy(&l, buf + 8, 4);
    if (s != seq || l != len)
        return -1;
    for (uint32_t k = 12; k < len - 4; k++)
        if (buf[k] != (uint8_t)((seq >> (k % 5)) + k * 131u))
            return -1;
    memcpy(&sum, buf + len - 4, 4);
    return sum == fnv32(buf, len - 4) ? 0 : -1;
}

/* The consumer: reads as fast as it can; exit status 0 = all checks held.
 * Result counts are written to the pipe for the parent's assertions. */
static void
xp_consumer(struct ring *r, struct xp_shared *sh, int out_fd)
{
    static uint8_t buf[RING_PAYLOAD_MAX];
    uint64_t cursor = 1, last_ok = 0, ok = 0, overruns = 0, empties = 0, probes = 0;
    atomic_store(&sh->ready, 1);
    for (;;) {
        uint32_t done = atomic_load_explicit(&sh->done, memory_order_acquire);
        uint32_t len = 0, type = 0;
        /* Probe the oldest slot, the one the producer overwrites next: where a
         * torn copy would show up if the seqlock were broken. */
        uint64_t h = ring_head(r);
        if (h >= XP_SLOTS) {
            uint64_t p = h - XP_SLOTS + 1;
            enum ring_status ps = ring_read(r, p, buf, &len, &type);
            if (ps == RING_OK && xp_check(p, buf, len, type) != 0) {
                fprintf(stderr, "consumer: torn or wrong payload for probed seq %llu\n",
                        (unsigned long long)p);
                _exit(16);
            }
            if (ps != RING_OK && ps != RING_OVERRUN) {
                fprintf(stderr, "consumer: probe of %llu returned %d\n", (unsigned long long)p,
                        (int)ps);
                _exit(17);
            }
            probes += ps == RING_OVERRUN;
        }
        memset(buf, 0xee, 16);
        enum ring_status st = ring_read(r, cursor, buf, &len, &type);
        if (st == RING_OK) {
            if (xp_check(cursor, buf, len, type) != 0) {
                fprintf(stderr, "consumer: torn or wrong payload for seq %llu (len %u type %u)\n",
                        (unsigned long long)cursor, len, type);
                _exit(10);
            }
            if (cursor <= last_ok) {
                fprintf(stderr, "consumer: seq %llu after %llu\n", (unsigned long long)cursor,
                        (unsigned long long)last_ok);
                _exit(11);
            }
            last_ok = cursor;
            ok++;
            cursor++;
        } else if (st == RING_OVERRUN) {
            overruns++;
            uint64_t head = ring_head(r);
            /* Overwritten means the producer reached seq cursor + slot_count. */
            if (head + 1 < cursor + XP_SLOTS) {
                fprintf(stderr, "consumer: OVERRUN for %llu but head is %llu\n",
                        (unsigned long long)cursor, (unsigned long long)head);
                _exit(12);
            }
            uint64_t resync = head > XP_SLOTS / 2 ? head - XP_SLOTS / 2 : 1;
            cursor = resync > cursor ? resync : cursor + 1;
        } else if (st == RING_EMPTY) {
            empties++;
            if (done && cursor <= XP_EVENTS) {
                fprintf(stderr, "consumer: EMPTY for %llu after the producer finished\n",
                        (unsigned long long)cursor);
                _exit(13);
            }
            if (done)
                break;
        } else {
            fprintf(stderr, "consumer: ring_read returned %d\n", (int)st);
            _exit(14);
        }
    }
    uint64_t res[5] = {ok, overruns, empties, last_ok, probes};
    if (write(out_fd, res, sizeof(res)) != (ssize_t)sizeof(res))
        _exit(15);
    _exit(0);
}

START_TEST(test_two_processes)
{
    xp_mode = (unsigned)_i;
    /* Not under qemu-user (CI's cross runs set PERSONAD_QEMU_USER): there the
     * emulated CPU's loads and stores run on the host's stronger (x86, TSO)
     * ordering, so this race cannot catch a missing barrier of the target, and
     * on a loaded machine its processes were SIGKILLed (from neither Check nor
     * the OOM killer; first under qemu-arm, then under qemu-aarch64).  It runs
     * natively, in all three modes. */
    if (getenv("PERSONAD_QEMU_USER") != NULL) {
        fprintf(stderr, "qemu-%s: the two-process race (mode %d) is left out\n",
                getenv("PERSONAD_QEMU_USER"), _i);
        return;
    }
    size_t bytes = ring_bytes(XP_SLOTS) + 4096;
    uint8_t *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    struct xp_shared *sh = (struct xp_shared *)(void *)map;
    void *ring_mem = map + 4096;
    struct ring w;
    ring_init(&w, ring_mem, XP_SLOTS);
    ck_assert_int_eq(ring_releases(&w), 0); /* a shared mapping: pages are released */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct ring rd;
        close(fds[0]);
        alarm(35); /* never outlive a failed parent */
        if (ring_attach(&rd, ring_mem, ring_bytes(XP_SLOTS)) != 0)
            _exit(20);
        xp_consumer(&rd, sh, fds[1]);
    }
    close(fds[1]);
    while (!atomic_load(&sh->ready))
        ; /* spin until the consumer runs, so the race is real */
    static uint8_t buf[RING_PAYLOAD_MAX];
    for (uint64_t s = 1; s <= XP_EVENTS; s++) {
        xp_fill(s, buf);
        ck_assert_int_eq(ring_append(&w, (enum ring_event_type)xp_type(s), buf, xp_len(s)),
                         (int64_t)s);
        if (s % 4096 == 0)
            sched_yield(); /* let the consumer catch up now and then */
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);

    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "consumer failed: status 0x%x (see stderr)", (unsigned)status);
    uint64_t res[5];
    ck_assert_int_eq(read(fds[0], res, sizeof(res)), (ssize_t)sizeof(res));
    close(fds[0]);
    /* It read real events, and caught up with the very last one. */
    ck_assert_uint_gt(res[0], XP_SLOTS);
    ck_assert_uint_eq(res[3], XP_EVENTS);
    /* The producer released dead pages while the consumer read (in mode 2 the
     * window fills the area: nothing is ever dead). */
    ck_assert_int_eq(ring_releases(&w), 0);
    if (xp_mode != 2)
        ck_assert_uint_gt(w.release_calls, 100);
    fprintf(stderr,
            "two processes (mode %u): %llu read, %llu overruns, %llu empty polls, %llu probes "
            "lapped, %llu releases\n",
            xp_mode, (unsigned long long)res[0], (unsigned long long)res[1],
            (unsigned long long)res[2], (unsigned long long)res[4],
            (unsigned long long)w.release_calls);
    munmap(map, bytes);
}
END_TEST

static Suite *
ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("single");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_append_read);
    tcase_add_test(tc, test_consecutive_seqs);
    tcase_add_test(tc, test_future_is_empty);
    tcase_add_test(tc, test_wraparound);
    tcase_add_test(tc, test_lapped_reader_overrun);
    tcase_add_test(tc, test_toobig);
    tcase_add_test(tc, test_attach);
    tcase_add_test(tc, test_corrupt_header_after_attach);
    tcase_add_test(tc, test_oldest);
    tcase_add_test(tc, test_corrupt_index);
    tcase_add_test(tc, test_producer_corrupt_entry);
    suite_add_tcase(s, tc);
    /* Thousands of appends, each followed by reads of the window: seconds
     * under the sanitizers or valgrind on a loaded machine. */
    TCase *tz = tcase_create("sizes");
    tcase_set_timeout(tz, 60);
    tcase_add_loop_test(tz, test_variable_sizes, 0, 2);
    tcase_add_loop_test(tz, test_window_many_wraps, 0, 2);
    suite_add_tcase(s, tz);
    TCase *tr = tcase_create("resident");
    tcase_set_timeout(tr, 20);
    tcase_add_loop_test(tr, test_resident_after_wrap, 0, 2);
    tcase_add_test(tr, test_resident_after_burst);
    suite_add_tcase(s, tr);
    TCase *tp = tcase_create("processes");
    tcase_set_timeout(tp, 40);
    tcase_add_loop_test(tp, test_two_processes, 0, 3);
    suite_add_tcase(s, tp);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ring_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
