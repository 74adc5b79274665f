/*
 * check_snapshot - unit tests for shm/snapshot.c: blob building and lookup
 * (binary search, names that are prefixes of others, the empty snapshot),
 * publishing (TOOBIG keeps the previous generation), snapshot_copy's
 * UNCHANGED/OK, snapshot_blob_valid against corrupt offsets, and a reader
 * process racing a writer process over an anonymous MAP_SHARED mapping.
 */
/* MAP_ANONYMOUS is not in POSIX 2008; glibc wants _DEFAULT_SOURCE for it. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/snapshot.h"

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

/* Items from NUL-terminated names, objects {"name":"<name>","spec":{},"status":{}}. */
struct itemset {
    struct snap_item *items;
    char **objs;
    uint32_t n;
};

static void
itemset_make(struct itemset *set, const char *const *names, uint32_t n)
{
    set->items = calloc(n ? n : 1, sizeof(*set->items));
    set->objs = calloc(n ? n : 1, sizeof(*set->objs));
    ck_assert_ptr_nonnull(set->items);
    ck_assert_ptr_nonnull(set->objs);
    set->n = n;
    for (uint32_t i = 0; i < n; i++) {
        size_t cap = strlen(names[i]) + 64;
        set->objs[i] = malloc(cap);
        ck_assert_ptr_nonnull(set->objs[i]);
        snprintf(set->objs[i], cap, "{\"name\":\"%s\",\"spec\":{\"i\":%u},\"status\":{}}", names[i],
                 i);
        set->items[i] = (struct snap_item){names[i], (uint32_t)strlen(names[i]), set->objs[i],
                                           (uint32_t)strlen(set->objs[i]), 0};
    }
}

static void
itemset_free(struct itemset *set)
{
    for (uint32_t i = 0; i < set->n; i++)
        free(set->objs[i]);
    free(set->objs);
    free(set->items);
}

static const struct snap_blob *
blob_hdr(const uint8_t *blob)
{
    return (const struct snap_blob *)(const void *)blob;
}

/* The list JSON that a blob of these items must hold. */
static char *
expected_list(const struct itemset *set, uint64_t seq)
{
    size_t cap = 64;
    for (uint32_t i = 0; i < set->n; i++)
        cap += set->items[i].obj_len + 1;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t n = (size_t)snprintf(s, cap, "{\"clusters\":[");
    for (uint32_t i = 0; i < set->n; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s%s", i ? "," : "", set->objs[i]);
    snprintf(s + n, cap - n, "],\"seq\":%llu}", (unsigned long long)seq);
    return s;
}

/* Build, then check the header, list JSON, every entry and every lookup. */
static uint8_t *
build_and_check(const struct itemset *set, uint64_t seq, size_t *len)
{
    uint8_t *blob = snapshot_build(set->items, set->n, seq, len);
    ck_assert_ptr_nonnull(blob);
    ck_assert_int_eq(snapshot_blob_valid(blob, *len), 1);
    const struct snap_blob *b = blob_hdr(blob);
    ck_assert_uint_eq(b->seq, seq);
    ck_assert_uint_eq(b->count, set->n);
    char *want = expected_list(set, seq);
    ck_assert_uint_eq(b->list_len, strlen(want));
    ck_assert_uint_le((size_t)b->list_off + b->list_len, *len);
    ck_assert_msg(memcmp(blob + b->list_off, want, b->list_len) == 0, "list JSON differs: %.*s",
                  (int)b->list_len, (const char *)blob + b->list_off);
    ck_assert_uint_eq(b->list_etag, snapshot_list_etag(blob));
    free(want);
    for (uint32_t i = 0; i < set->n; i++) {
        const struct snap_entry *e =
            snapshot_find(blob, set->items[i].name, set->items[i].name_len);
        ck_assert_msg(e != NULL, "snapshot_find(%s) = NULL", set->items[i].name);
        ck_assert_uint_eq(e->name_len, set->items[i].name_len);
        ck_assert(memcmp(blob + e->name_off, set->items[i].name, e->name_len) == 0);
        ck_assert_uint_eq(e->obj_len, set->items[i].obj_len);
        ck_assert(memcmp(blob + e->obj_off, set->items[i].obj, e->obj_len) == 0);
        ck_assert_uint_eq(e->etag, snapshot_hash(set->items[i].obj, set->items[i].obj_len));
    }
    return blob;
}

START_TEST(test_hash)
{
    /* FNV-1a 64 reference values. */
    ck_assert_uint_eq(snapshot_hash("", 0), 0xcbf29ce484222325ull);
    ck_assert_uint_eq(snapshot_hash("a", 1), 0xaf63dc4c8601ec8cull);
    ck_assert_uint_eq(snapshot_hash("foobar", 6), 0x85944171f73967e8ull);
}
END_TEST

START_TEST(test_build_find)
{
    static const char *const names[] = {"alpha", "beta", "gamma", "prod-cluster", "zeta"};
    struct itemset set;
    itemset_make(&set, names, 5);
    size_t len;
    uint8_t *blob = build_and_check(&set, 42, &len);
    ck_assert_ptr_null(snapshot_find(blob, "delta", 5));
    ck_assert_ptr_null(snapshot_find(blob, "", 0));
    ck_assert_ptr_null(snapshot_find(blob, "zzz", 3));
    ck_assert_ptr_null(snapshot_find(blob, "Alpha", 5));
    ck_assert_ptr_null(snapshot_find(blob, "alph", 4));
    /* name_len is honoured: "alphabet" cut to 5 bytes is "alpha". */
    ck_assert_ptr_nonnull(snapshot_find(blob, "alphabet", 5));
    free(blob);
    itemset_free(&set);
}
END_TEST

START_TEST(test_find_prefixes)
{
    /* memcmp order: shorter prefix first; bytes >= 0x80 after ASCII. */
    static const char *const names[] = {"a",  "ab",  "abc", "abd",         "b",
                                        "ba", "bab", "c",   "caf\xc3\xa9", "caf\xc3\xa9s"};
    struct itemset set;
    itemset_make(&set, names, 10);
    size_t len;
    uint8_t *blob = build_and_check(&set, 7, &len);
    static const char *const absent[] = {"", "aa", "abcd", "abb", "bb", "baa", "d", "caf", "cafe"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        ck_assert_msg(snapshot_find(blob, absent[i], strlen(absent[i])) == NULL,
                      "found absent name '%s'", absent[i]);
    free(blob);
    itemset_free(&set);
}
END_TEST

START_TEST(test_find_many)
{
    enum { N = 1000 };
    static char namebuf[N][16];
    static const char *names[N];
    for (int i = 0; i < N; i++) {
        snprintf(namebuf[i], sizeof(namebuf[i]), "n%05d", i * 2);
        names[i] = namebuf[i];
    }
    struct itemset set;
    itemset_make(&set, names, N);
    size_t len;
    uint8_t *blob = build_and_check(&set, 99, &len);
    for (int i = 0; i < N; i++) {
        char odd[16];
        snprintf(odd, sizeof(odd), "n%05d", i * 2 + 1);
        ck_assert_ptr_null(snapshot_find(blob, odd, strlen(odd)));
    }
    free(blob);
    itemset_free(&set);
}
END_TEST

START_TEST(test_empty)
{
    size_t len = 0;
    uint8_t *blob = snapshot_build(NULL, 0, 0, &len);
    ck_assert_ptr_nonnull(blob);
    ck_assert_int_eq(snapshot_blob_valid(blob, len), 1);
    const struct snap_blob *b = blob_hdr(blob);
    ck_assert_uint_eq(b->count, 0);
    ck_assert_uint_eq(b->seq, 0);
    static const char want[] = "{\"clusters\":[],\"seq\":0}";
    ck_assert_uint_eq(b->list_len, sizeof(want) - 1);
    ck_assert(memcmp(blob + b->list_off, want, sizeof(want) - 1) == 0);
    ck_assert_ptr_null(snapshot_find(blob, "a", 1));
    ck_assert_ptr_null(snapshot_find(blob, "", 0));
    free(blob);

    /* Large seq values print in full. */
    blob = snapshot_build(NULL, 0, UINT64_MAX, &len);
    ck_assert_ptr_nonnull(blob);
    b = blob_hdr(blob);
    static const char want2[] = "{\"clusters\":[],\"seq\":18446744073709551615}";
    ck_assert_uint_eq(b->list_len, sizeof(want2) - 1);
    ck_assert(memcmp(blob + b->list_off, want2, sizeof(want2) - 1) == 0);
    free(blob);
}
END_TEST

static void *
snap_mem(struct snapshot *s, uint64_t half)
{
    void *mem = malloc(snapshot_bytes(half));
    ck_assert_ptr_nonnull(mem);
    snapshot_init(s, mem, half);
    return mem;
}

static uint8_t *
blob_of(const char *name, uint64_t seq, size_t *len)
{
    const char *names[] = {name};
    struct itemset set;
    itemset_make(&set, names, 1);
    uint8_t *blob = snapshot_build(set.items, 1, seq, len);
    ck_assert_ptr_nonnull(blob);
    itemset_free(&set);
    return blob;
}

/* Copy the current generation (known_gen 0 forces a copy) and compare. */
static void
expect_current(const struct snapshot *s, uint64_t want_gen, const uint8_t *want, size_t want_len)
{
    uint8_t *copy = NULL;
    size_t len = 0;
    uint64_t gen = 0;
    ck_assert_int_eq(snapshot_copy(s, want_gen - 1, &copy, &len, &gen), SNAPSHOT_OK);
    ck_assert_uint_eq(gen, want_gen);
    ck_assert_uint_eq(len, want_len);
    ck_assert(memcmp(copy, want, len) == 0);
    ck_assert_int_eq(snapshot_blob_valid(copy, len), 1);
    free(copy);
}

START_TEST(test_publish_copy)
{
    struct snapshot s;
    void *mem = snap_mem(&s, 4096);
    ck_assert_uint_eq(snapshot_generation(&s), 0);
    uint8_t *copy = (uint8_t *)"untouched";
    size_t len = 12345;
    uint64_t gen = 777;
    ck_assert_int_eq(snapshot_copy(&s, 0, &copy, &len, &gen), SNAPSHOT_UNCHANGED);
    ck_assert_uint_eq(len, 12345);

    size_t l1, l2, l3;
    uint8_t *b1 = blob_of("one", 1, &l1), *b2 = blob_of("two", 2, &l2),
            *b3 = blob_of("three", 3, &l3);
    ck_assert_int_eq(snapshot_publish(&s, b1, l1), SNAPSHOT_OK);
    ck_assert_uint_eq(snapshot_generation(&s), 1);
    expect_current(&s, 1, b1, l1);
    ck_assert_int_eq(snapshot_copy(&s, 1, &copy, &len, &gen), SNAPSHOT_UNCHANGED);

    ck_assert_int_eq(snapshot_publish(&s, b2, l2), SNAPSHOT_OK);
    ck_assert_uint_eq(snapshot_generation(&s), 2);
    expect_current(&s, 2, b2, l2);
    /* A reader that knew generation 1 gets 2. */
    ck_assert_int_eq(snapshot_copy(&s, 1, &copy, &len, &gen), SNAPSHOT_OK);
    ck_assert_uint_eq(gen, 2);
    ck_assert_uint_eq(len, l2);
    ck_assert(memcmp(copy, b2, l2) == 0);
    free(copy);
    ck_assert_int_eq(snapshot_copy(&s, 2, &copy, &len, &gen), SNAPSHOT_UNCHANGED);

    /* The third lands in the half that held the first. */
    ck_assert_int_eq(snapshot_publish(&s, b3, l3), SNAPSHOT_OK);
    expect_current(&s, 3, b3, l3);
    free(b1);
    free(b2);
    free(b3);
    free(mem);
}
END_TEST

START_TEST(test_publish_toobig)
{
    size_t l1, l2;
    uint8_t *b1 = blob_of("small", 1, &l1);
    static char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    uint8_t *b2 = blob_of(longname, 2, &l2);
    ck_assert_uint_lt(l1, 256);
    ck_assert_uint_gt(l2, 256);

    struct snapshot s;
    void *mem = snap_mem(&s, 256);
    /* TOOBIG before anything was published: still nothing. */
    ck_assert_int_eq(snapshot_publish(&s, b2, l2), SNAPSHOT_TOOBIG);
    ck_assert_uint_eq(snapshot_generation(&s), 0);

    ck_assert_int_eq(snapshot_publish(&s, b1, l1), SNAPSHOT_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(snapshot_publish(&s, b2, l2), SNAPSHOT_TOOBIG);
        ck_assert_uint_eq(snapshot_generation(&s), 1);
        expect_current(&s, 1, b1, l1);
    }
    /* Exactly half_bytes fits. */
    uint8_t full[256];
    memcpy(full, b1, l1);
    memset(full + l1, ' ', sizeof(full) - l1);
    ck_assert_int_eq(snapshot_publish(&s, full, sizeof(full)), SNAPSHOT_OK);
    expect_current(&s, 2, full, sizeof(full));
    ck_assert_int_eq(snapshot_publish(&s, b2, l2), SNAPSHOT_TOOBIG);
    expect_current(&s, 2, full, sizeof(full));
    free(b1);
    free(b2);
    free(mem);
}
END_TEST

/* Snapshot memory for half that ends right before a PROT_NONE page, so any
 * access past the second half faults.  Unmap *map (*map_bytes long) after. */
static void *
guarded_snap(struct snapshot *s, uint64_t half, uint8_t **map, size_t *map_bytes)
{
    size_t bytes = snapshot_bytes(half);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (bytes + page - 1) / page * page;
    *map_bytes = body + page;
    *map = mmap(NULL, *map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(*map, MAP_FAILED);
    ck_assert_int_eq(mprotect(*map + body, page, PROT_NONE), 0);
    ck_assert_uint_eq(bytes % 8, 0);
    void *mem = *map + body - bytes;
    snapshot_init(s, mem, half);
    return mem;
}

START_TEST(test_corrupt_header_after_init)
{
    /* Sizes written into the shared header after init/attach (by a worker, were
     * the mapping writable) must not move the writer's or a reader's accesses
     * out of the mapping: half_bytes is cached, blob_bytes is checked against
     * the cache. */
    const uint64_t half = 4096;
    uint8_t *map;
    size_t map_bytes;
    struct snapshot w;
    (void)guarded_snap(&w, half, &map, &map_bytes);
    struct snapshot rd = w; /* what a worker inherits at fork */
    size_t l1;
    uint8_t *b1 = blob_of("one", 1, &l1);
    static uint8_t big[3 * 4096];
    memcpy(big, b1, l1);

    w.hdr->half_bytes = UINT64_MAX / 4;
    /* A blob of two halves "fits" the bogus size: still too big for the real one. */
    ck_assert_int_eq(snapshot_publish(&w, big, sizeof(big)), SNAPSHOT_TOOBIG);
    for (uint64_t g = 1; g <= 4; g++) { /* both halves, twice */
        ck_assert_int_eq(snapshot_publish(&w, b1, l1), SNAPSHOT_OK);
        expect_current(&rd, g, b1, l1);
    }
    /* A bogus length in the current half is never copied past the half. */
    w.hdr->half[0].blob_bytes = half + 1;
    uint8_t *copy = NULL;
    size_t len = 0;
    uint64_t gen = 0;
    ck_assert_int_eq(snapshot_copy(&rd, 0, &copy, &len, &gen), SNAPSHOT_BUSY);
    w.hdr->half[0].blob_bytes = 2 * half;
    ck_assert_int_eq(snapshot_copy(&rd, 0, &copy, &len, &gen), SNAPSHOT_BUSY);
    w.hdr->half[0].blob_bytes = half; /* in bounds: copied (and validated by the caller) */
    ck_assert_int_eq(snapshot_copy(&rd, 0, &copy, &len, &gen), SNAPSHOT_OK);
    ck_assert_uint_eq(len, half);
    free(copy);
    /* The writer counts generations itself. */
    atomic_store(&w.hdr->gen, 1000);
    ck_assert_int_eq(snapshot_publish(&w, b1, l1), SNAPSHOT_OK);
    expect_current(&rd, 5, b1, l1);
    /* half_bytes = 0 in the header stops nothing either. */
    w.hdr->half_bytes = 0;
    ck_assert_int_eq(snapshot_publish(&w, b1, l1), SNAPSHOT_OK);
    expect_current(&rd, 6, b1, l1);
    free(b1);
    munmap(map, map_bytes);
}
END_TEST

START_TEST(test_copy_zero_length)
{
    /* A corrupt header whose current half says 0 bytes (found by
     * tests/fuzz/fuzz_snapshot: memcpy to a NULL buffer, and SNAPSHOT_OK with
     * a NULL blob): the copy is an empty buffer, which the reader's
     * snapshot_blob_valid then refuses. */
    const uint64_t half = 4096;
    uint8_t *map;
    size_t map_bytes;
    struct snapshot w;
    (void)guarded_snap(&w, half, &map, &map_bytes);
    struct snapshot rd = w;
    size_t l1;
    uint8_t *b1 = blob_of("one", 1, &l1);
    ck_assert_int_eq(snapshot_publish(&w, b1, l1), SNAPSHOT_OK);
    w.hdr->half[1].blob_bytes = 0;
    uint8_t *copy = NULL;
    size_t len = 99;
    uint64_t gen = 0;
    ck_assert_int_eq(snapshot_copy(&rd, 0, &copy, &len, &gen), SNAPSHOT_OK);
    ck_assert_ptr_nonnull(copy);
    ck_assert_uint_eq(len, 0);
    ck_assert_uint_eq(gen, 1);
    ck_assert_int_eq(snapshot_blob_valid(copy, len), 0);
    free(copy);
    free(b1);
    munmap(map, map_bytes);
}
END_TEST

START_TEST(test_attach_and_bytes)
{
    struct snapshot w, rd;
    size_t bytes = snapshot_bytes(4096);
    ck_assert_uint_eq(bytes, sizeof(struct snap_header) + 2 * 4096);
    /* 2 * half_bytes is computed in 64 bits and saturates instead of wrapping. */
    ck_assert_uint_eq(snapshot_bytes((uint64_t)1 << 63), SIZE_MAX);
    ck_assert_uint_eq(snapshot_bytes(UINT64_MAX), SIZE_MAX);
    void *mem = snap_mem(&w, 4096);
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes), 0);
    ck_assert_uint_eq(rd.half_bytes, 4096);
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes + 100), 0);
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes - 1), -1);
    ck_assert_int_eq(snapshot_attach(&rd, mem, sizeof(struct snap_header) - 1), -1);
    w.hdr->half_bytes = (uint64_t)1 << 63; /* 2 * that + header wraps to the header */
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes), -1);
    w.hdr->half_bytes = UINT64_MAX;
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes), -1);
    w.hdr->half_bytes = 4096;
    w.hdr->magic ^= 1;
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes), -1);
    w.hdr->magic ^= 1;
    w.hdr->version++;
    ck_assert_int_eq(snapshot_attach(&rd, mem, bytes), -1);
    free(mem);
}
END_TEST

/* Corrupt a private copy of a valid blob with f, expect it to be rejected. */
struct corruption {
    const char *what;
    size_t field_off; /* offset of a uint32 field in the blob */
    int64_t delta;    /* added to it */
    int set;          /* 1: set to value instead */
    uint32_t value;
};

START_TEST(test_epoch)
{
    struct snapshot s, r;
    void *mem = snap_mem(&s, 4096);
    ck_assert_str_eq(snapshot_epoch(&s), "");
    ck_assert_int_eq(snapshot_set_epoch(&s, ""), -1);
    ck_assert_int_eq(snapshot_set_epoch(&s, "a:b"), -1);
    ck_assert_int_eq(snapshot_set_epoch(&s, "012345678901234567890123456789012"), -1); /* 33 */
    ck_assert_int_eq(snapshot_set_epoch(&s, "Ep-0_ch"), 0);
    ck_assert_str_eq(snapshot_epoch(&s), "Ep-0_ch");
    ck_assert_int_eq(snapshot_attach(&r, mem, snapshot_bytes(4096)), 0);
    ck_assert_str_eq(snapshot_epoch(&r), "Ep-0_ch"); /* a reader gets the writer's */
    s.hdr->epoch[0] = ':';                           /* not an epoch: refused */
    ck_assert_int_eq(snapshot_attach(&r, mem, snapshot_bytes(4096)), -1);
    /* The list carries it after "seq"; its ETag differs with the epoch alone. */
    size_t l1, l2, l3;
    uint8_t *b1 = snapshot_build_epoch(NULL, 0, 7, "Ep-0_ch", &l1);
    uint8_t *b2 = snapshot_build_epoch(NULL, 0, 7, "other", &l2);
    uint8_t *b3 = snapshot_build_epoch(NULL, 0, 7, NULL, &l3);
    const struct snap_blob *h1 = snapshot_blob_header(b1), *h2 = snapshot_blob_header(b2),
                           *h3 = snapshot_blob_header(b3);
    ck_assert_int_eq(h1->list_len, strlen("{\"clusters\":[],\"seq\":7,\"epoch\":\"Ep-0_ch\"}"));
    ck_assert_mem_eq(b1 + h1->list_off, "{\"clusters\":[],\"seq\":7,\"epoch\":\"Ep-0_ch\"}",
                     h1->list_len);
    ck_assert_mem_eq(b3 + h3->list_off, "{\"clusters\":[],\"seq\":7}", h3->list_len);
    ck_assert_uint_ne(h1->list_etag, h2->list_etag);
    ck_assert_uint_ne(h1->list_etag, h3->list_etag);
    ck_assert_ptr_null(snapshot_build_epoch(NULL, 0, 7, "bad epoch", &l1));
    free(b1);
    free(b2);
    free(b3);
    free(mem);
}
END_TEST

START_TEST(test_blob_valid_rejects)
{
    static const char *const names[] = {"aa", "bbb", "c"};
    struct itemset set;
    itemset_make(&set, names, 3);
    size_t len;
    uint8_t *blob = build_and_check(&set, 5, &len);
    const struct snap_blob *b = blob_hdr(blob);
    size_t e0 = sizeof(struct snap_blob);
    size_t e2 = e0 + 2 * sizeof(struct snap_entry);
    const struct corruption cases[] = {
        {"count beyond the blob", offsetof(struct snap_blob, count), 0, 1, 0x7fffffffu},
        {"count one too many (index overlaps names)", offsetof(struct snap_blob, count), 1, 0, 0},
        {"names_off inside the index", offsetof(struct snap_blob, names_off), -1, 0, 0},
        {"list_off before names_off", offsetof(struct snap_blob, list_off), 0, 1, b->names_off - 1},
        {"list past the end", offsetof(struct snap_blob, list_len), 1, 0, 0},
        {"list_off past the end", offsetof(struct snap_blob, list_off), 0, 1, 0xfffffff0u},
        {"list_len huge", offsetof(struct snap_blob, list_len), 0, 1, 0xffffffffu},
        {"entry name before names", e0 + offsetof(struct snap_entry, name_off), 0, 1, 0},
        {"entry name into the list", e2 + offsetof(struct snap_entry, name_len), 0, 1, b->list_off},
        {"entry name_off huge", e2 + offsetof(struct snap_entry, name_off), 0, 1, 0xffffffffu},
        {"entry obj before the list", e0 + offsetof(struct snap_entry, obj_off), 0, 1,
         b->list_off - 1},
        {"entry obj past the list", e2 + offsetof(struct snap_entry, obj_len), 0, 1, b->list_len},
        {"entry obj_off huge", e2 + offsetof(struct snap_entry, obj_off), 0, 1, 0xfffffff0u},
        {"entry obj_len huge", e0 + offsetof(struct snap_entry, obj_len), 0, 1, 0xffffffffu},
    };
    uint8_t *bad = malloc(len);
    ck_assert_ptr_nonnull(bad);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, blob, len);
        uint32_t v;
        memcpy(&v, bad + cases[i].field_off, 4);
        v = cases[i].set ? cases[i].value : (uint32_t)((int64_t)v + cases[i].delta);
        memcpy(bad + cases[i].field_off, &v, 4);
        ck_assert_msg(snapshot_blob_valid(bad, len) == 0, "accepted a blob with %s", cases[i].what);
    }
    /* Truncated blobs. */
    ck_assert_int_eq(snapshot_blob_valid(blob, len - 1), 0);
    ck_assert_int_eq(snapshot_blob_valid(blob, sizeof(struct snap_blob) - 1), 0);
    ck_assert_int_eq(snapshot_blob_valid(blob, 0), 0);
    ck_assert_int_eq(snapshot_blob_valid(blob, e2), 0);
    /* Padding after the list is not an error; the untouched blob is valid. */
    ck_assert_int_eq(snapshot_blob_valid(blob, len), 1);
    free(bad);
    free(blob);
    itemset_free(&set);
}
END_TEST

/* --- writer process vs. reader process ------------------------------------------- */

#define RACE_GENERATIONS 20000u
#define RACE_HALF_BYTES (512u * 1024u)

struct race_shared {
    _Atomic uint32_t done;
    _Atomic uint32_t ready;
};

/* Generation g holds 1 + g % 17 clusters "g<g>-c<i>", each object carrying g and
 * i, and padded to a length derived from g, so a blob mixing two generations is
 * detectable from any of its parts.  Every fifth blob is large and the others
 * small, so the writer can publish twice while a reader copies a large one.
 * The writer publishes generation g with seq g. */
#define RACE_PAD_MAX 13000u

static uint8_t *
race_blob(uint64_t g, size_t *len)
{
    static char alphabet[RACE_PAD_MAX + 32];
    if (alphabet[0] == '\0')
        for (size_t p = 0; p < sizeof(alphabet); p++)
            alphabet[p] = (char)('a' + p % 26);
    uint32_t n = 1 + (uint32_t)(g % 17);
    struct snap_item items[17];
    static char names[17][32];
    static char objs[17][RACE_PAD_MAX + 128];
    size_t pad = g % 5 == 0 ? 12000 + (size_t)(g % 1000) : (size_t)(g % 50);
    for (uint32_t i = 0; i < n; i++) {
        snprintf(names[i], 32, "g%llu-c%02u", (unsigned long long)g, i);
        int k = snprintf(objs[i], 128, "{\"name\":\"%s\",\"spec\":{\"gen\":%llu,\"pad\":\"",
                         names[i], (unsigned long long)g);
        memcpy(objs[i] + k, alphabet + (g + i) % 26, pad);
        strcpy(objs[i] + (size_t)k + pad, "\"},\"status\":{}}");
        items[i] = (struct snap_item){names[i], (uint32_t)strlen(names[i]), objs[i],
                                      (uint32_t)strlen(objs[i]), 0};
    }
    return snapshot_build(items, n, g, len);
}

/* 0 if blob is exactly generation g's. */
static int
race_check(const uint8_t *blob, size_t len, uint64_t g)
{
    size_t want_len;
    uint8_t *want = race_blob(g, &want_len);
    if (want == NULL)
        return -1;
    int rc = (len == want_len && memcmp(blob, want, len) == 0 && snapshot_blob_valid(blob, len) &&
              blob_hdr(blob)->seq == g && blob_hdr(blob)->list_etag == snapshot_list_etag(blob))
                 ? 0
                 : -1;
    free(want);
    return rc;
}

static void
race_reader(const struct snapshot *s, struct race_shared *sh, int out_fd)
{
    uint64_t known = 0, copies = 0, busy = 0;
    atomic_store(&sh->ready, 1);
    for (;;) {
        uint32_t done = atomic_load_explicit(&sh->done, memory_order_acquire);
        uint8_t *blob = NULL;
        size_t len = 0;
        uint64_t gen = 0;
        enum snapshot_status st = snapshot_copy(s, known, &blob, &len, &gen);
        if (st == SNAPSHOT_OK) {
            if (gen <= known || gen > RACE_GENERATIONS) {
                fprintf(stderr, "reader: generation %llu after %llu\n", (unsigned long long)gen,
                        (unsigned long long)known);
                _exit(10);
            }
            /* Valid, and byte for byte the blob of the generation it claims. */
            if (!snapshot_blob_valid(blob, len) || race_check(blob, len, gen) != 0) {
                fprintf(stderr, "reader: torn or wrong blob for generation %llu (%zu bytes)\n",
                        (unsigned long long)gen, len);
                _exit(11);
            }
            free(blob);
            known = gen;
            copies++;
        } else if (st == SNAPSHOT_BUSY) {
            busy++;
        } else if (st == SNAPSHOT_UNCHANGED) {
            if (done)
                break;
        } else {
            fprintf(stderr, "reader: snapshot_copy returned %d\n", (int)st);
            _exit(12);
        }
    }
    uint64_t res[3] = {copies, busy, known};
    if (write(out_fd, res, sizeof(res)) != (ssize_t)sizeof(res))
        _exit(13);
    _exit(0);
}

START_TEST(test_reader_writer_processes)
{
    size_t bytes = 4096 + snapshot_bytes(RACE_HALF_BYTES);
    uint8_t *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    struct race_shared *sh = (struct race_shared *)(void *)map;
    struct snapshot s;
    snapshot_init(&s, map + 4096, RACE_HALF_BYTES);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(50); /* never outlive a failed parent */
        race_reader(&s, sh, fds[1]);
    }
    close(fds[1]);
    while (!atomic_load(&sh->ready))
        ;
    for (uint64_t g = 1; g <= RACE_GENERATIONS; g++) {
        size_t len;
        uint8_t *blob = race_blob(g, &len);
        ck_assert_ptr_nonnull(blob);
        ck_assert_uint_le(len, RACE_HALF_BYTES);
        ck_assert_int_eq(snapshot_publish(&s, blob, len), SNAPSHOT_OK);
        ck_assert_uint_eq(snapshot_generation(&s), g);
        free(blob);
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "reader failed: status 0x%x (see stderr)", (unsigned)status);
    uint64_t res[3];
    ck_assert_int_eq(read(fds[0], res, sizeof(res)), (ssize_t)sizeof(res));
    close(fds[0]);
    ck_assert_uint_gt(res[0], 1);
    ck_assert_uint_eq(res[2], RACE_GENERATIONS); /* it saw the last generation */
    fprintf(stderr, "snapshot race: %llu copies, %llu busy\n", (unsigned long long)res[0],
            (unsigned long long)res[1]);
    munmap(map, bytes);
}
END_TEST

static Suite *
snapshot_suite(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("blob");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_build_find);
    tcase_add_test(tc, test_find_prefixes);
    tcase_add_test(tc, test_find_many);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_publish_copy);
    tcase_add_test(tc, test_publish_toobig);
    tcase_add_test(tc, test_blob_valid_rejects);
    tcase_add_test(tc, test_corrupt_header_after_init);
    tcase_add_test(tc, test_copy_zero_length);
    tcase_add_test(tc, test_attach_and_bytes);
    tcase_add_test(tc, test_epoch);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("processes");
    tcase_set_timeout(tp, 50);
    tcase_add_test(tp, test_reader_writer_processes);
    suite_add_tcase(s, tp);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(snapshot_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
