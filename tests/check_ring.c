/*
 * check_ring - unit tests for shm/ring.c: append and read, consecutive
 * sequence numbers, RING_EMPTY, wrap-around, lapping (RING_OVERRUN), RING_TOOBIG,
 * ring_attach's header checks, and one producer and one consumer in two
 * processes sharing an anonymous MAP_SHARED mapping (never a torn payload).
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

    h->slot_bytes = RING_SLOT_BYTES / 2;
    ck_assert_int_eq(ring_attach(&rd, mem, bytes), -1);
    h->slot_bytes = saved.slot_bytes;

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
        w.hdr->slot_bytes = 1;
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

/* Payload of event seq: [seq:8][len:4][fill...][fnv32 of all before:4];
 * its length is derived from seq, up to the slot's maximum. */
static uint32_t
xp_len(uint64_t seq)
{
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
    size_t bytes = ring_bytes(XP_SLOTS) + 4096;
    uint8_t *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    struct xp_shared *sh = (struct xp_shared *)(void *)map;
    void *ring_mem = map + 4096;
    struct ring w;
    ring_init(&w, ring_mem, XP_SLOTS);
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
    fprintf(stderr,
            "two processes: %llu read, %llu overruns, %llu empty polls, %llu probes lapped\n",
            (unsigned long long)res[0], (unsigned long long)res[1], (unsigned long long)res[2],
            (unsigned long long)res[4]);
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
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("processes");
    tcase_set_timeout(tp, 40);
    tcase_add_test(tp, test_two_processes);
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
