/*
 * check_store - unit tests for src/master/store.c, fed by hand the way a source feeds
 * it (store_put, store_remove, a sync of store_put and store_touch), with the
 * ring and the snapshot in heap memory (one test uses an anonymous MAP_SHARED
 * mapping to race a reader process against commits).  No files: keys are
 * named like the directory's file names only for familiarity.
 *
 * Covered: the baseline commit (no events, snapshot seq 0); added, updated and
 * deleted events with their exact ring payloads and order; rewrites that change
 * only formatting or key order; a renamed name field; content that turns bad
 * (warned once per content, the last good version kept); two records claiming
 * one name, in one source and across sources; syncs (touch, cancel, one source
 * at a time); the snapshot's seq and generation right after each commit, and
 * that it is published before the events; a snapshot too large for its half
 * (nothing appended, the old one stays); and a commit under allocation
 * failures (nothing published, or everything).
 */
/* MAP_ANONYMOUS is not in POSIX 2008; glibc wants _DEFAULT_SOURCE for it. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/persona.h"
#include "shm/ring.h"
#include "shm/snapshot.h"
#include "master/store.h"

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

#define FX_RING_SLOTS 256u
#define FX_HALF_BYTES (256u * 1024u)
#define FX_RECORDS_MAX 64

/* --- allocation failures ----------------------------------------------------------
 * This program is linked with --wrap for malloc, calloc and realloc (Makefile.am):
 * every such call in its own objects and in libpersonad.a and libpersonashm.a
 * comes here; cJSON's (a shared library) too once its hooks are set to the
 * wrapped malloc (alloc_hooks_on).  alloc_fail_nth(k) makes the k-th
 * allocation from now fail (0: the next one), once. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long alloc_left = -1; /* allocations that still succeed before one fails; -1: none fails */
static int alloc_failed;     /* the failure was injected */

static int
alloc_fails(void)
{
    if (alloc_left < 0)
        return 0;
    if (alloc_left-- > 0)
        return 0;
    alloc_failed = 1;
    return 1;
}

void *
__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : __real_realloc(p, n);
}

static void
alloc_fail_nth(long k)
{
    alloc_left = k;
    alloc_failed = 0;
}

/* stderr (the log) goes to an unnamed temporary file for the rest of the test
 * (each test runs in its own process). */
static FILE *log_file;

static void
log_capture(void)
{
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    ck_assert_int_eq(dup2(fileno(log_file), STDERR_FILENO), STDERR_FILENO);
}

/* Lines of the captured log holding both a and b. */
static int
log_count(const char *a, const char *b)
{
    char line[2048];
    int n = 0;
    rewind(log_file);
    while (fgets(line, sizeof(line), log_file) != NULL)
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    return n;
}

/* What a source would list: each record as it is now, and whether it changed
 * behind the store's back (put or del without telling the store). */
struct fx_record {
    char key[64];
    char *content; /* owned */
    int dirty;
};

struct fx {
    void *ring_mem, *snap_mem;
    struct ring ring;
    struct snapshot snap;
    struct store *st;
    int src; /* the source the fixture plays */
    struct fx_record recs[FX_RECORDS_MAX];
    size_t nrecs;
    uint64_t cursor; /* next ring seq to check */
    uint64_t gen;    /* snapshot generation after the last commit checked */
};

static void
fx_open(struct fx *f, uint64_t half_bytes)
{
    memset(f, 0, sizeof(*f));
    f->ring_mem = calloc(1, ring_bytes(FX_RING_SLOTS)); /* ring_init wants zeroed memory */
    f->snap_mem = malloc(snapshot_bytes(half_bytes));
    ck_assert_ptr_nonnull(f->ring_mem);
    ck_assert_ptr_nonnull(f->snap_mem);
    ring_init(&f->ring, f->ring_mem, FX_RING_SLOTS);
    snapshot_init(&f->snap, f->snap_mem, half_bytes);
    f->st = store_new(&f->snap, &f->ring);
    ck_assert_ptr_nonnull(f->st);
    f->src = store_add_source(f->st, "persona file");
    ck_assert_int_eq(f->src, 0);
    f->cursor = 1;
}

static void
fx_close(struct fx *f)
{
    store_free(f->st);
    for (size_t i = 0; i < f->nrecs; i++)
        free(f->recs[i].content);
    free(f->ring_mem);
    free(f->snap_mem);
}

static struct fx_record *
fx_find(struct fx *f, const char *key)
{
    for (size_t i = 0; i < f->nrecs; i++)
        if (strcmp(f->recs[i].key, key) == 0)
            return &f->recs[i];
    return NULL;
}

/* The record key has content now (behind the store's back). */
static void
put(struct fx *f, const char *key, const char *content)
{
    struct fx_record *r = fx_find(f, key);
    if (r == NULL) {
        ck_assert_uint_lt(f->nrecs, FX_RECORDS_MAX);
        r = &f->recs[f->nrecs++];
        ck_assert_uint_lt(strlen(key), sizeof(r->key));
        strcpy(r->key, key);
        r->content = NULL;
    }
    free(r->content);
    r->content = strdup(content);
    ck_assert_ptr_nonnull(r->content);
    r->dirty = 1;
}

/* The record key is gone (behind the store's back). */
static void
del(struct fx *f, const char *key)
{
    struct fx_record *r = fx_find(f, key);
    ck_assert_ptr_nonnull(r);
    free(r->content);
    *r = f->recs[--f->nrecs];
}

/* put, and tell the store */
static void
put_changed(struct fx *f, const char *key, const char *content)
{
    put(f, key, content);
    ck_assert_int_eq(store_put(f->st, f->src, key, content, strlen(content)), 0);
    fx_find(f, key)->dirty = 0;
}

static void
del_changed(struct fx *f, const char *key)
{
    del(f, key);
    store_remove(f->st, f->src, key);
}

/* A full resync, as the directory's rescan does it: records changed since the
 * store saw them are put, the others touched; what is gone goes at the end. */
static int
rescan(struct fx *f)
{
    store_sync_begin(f->st, f->src);
    for (size_t i = 0; i < f->nrecs; i++) {
        struct fx_record *r = &f->recs[i];
        if (r->dirty)
            ck_assert_int_eq(store_put(f->st, f->src, r->key, r->content, strlen(r->content)), 0);
        else
            ck_assert_int_eq(store_touch(f->st, f->src, r->key), 0);
        r->dirty = 0;
    }
    store_sync_end(f->st, f->src);
    return 0;
}

/* An API-shape persona; its canonical object is obj_of(name, v). */
static const char *
persona_json(const char *name, int v)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "{\"name\": \"%s\", \"spec\": {\"v\": %d, \"region\": \"eu\"}}\n", name, v);
    return b;
}

static const char *
obj_of(const char *name, int v)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "{\"name\":\"%s\",\"spec\":{\"region\":\"eu\",\"v\":%d},\"status\":{}}", name,
             v);
    return b;
}

/* The current snapshot blob (a private copy; caller frees). */
static uint8_t *
snap_blob(struct fx *f, uint64_t *gen)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    uint64_t g = 0;
    ck_assert_int_eq(snapshot_copy(&f->snap, UINT64_MAX, &blob, &len, &g), SNAPSHOT_OK);
    ck_assert_int_eq(snapshot_blob_valid(blob, len), 1);
    if (gen != NULL)
        *gen = g;
    return blob;
}

static const struct snap_blob *
hdr_of(const uint8_t *blob)
{
    return (const struct snap_blob *)(const void *)blob;
}

/* The published object of name, or NULL (malloc'd). */
static char *
snap_obj(struct fx *f, const char *name)
{
    uint8_t *blob = snap_blob(f, NULL);
    const struct snap_entry *e = snapshot_find(blob, name, strlen(name));
    char *obj = NULL;
    if (e != NULL) {
        obj = malloc(e->obj_len + 1);
        ck_assert_ptr_nonnull(obj);
        memcpy(obj, blob + e->obj_off, e->obj_len);
        obj[e->obj_len] = '\0';
    }
    free(blob);
    return obj;
}

static void
expect_obj(struct fx *f, const char *name, const char *want)
{
    char *obj = snap_obj(f, name);
    if (want == NULL) {
        ck_assert_msg(obj == NULL, "cluster %s is still published: %s", name, obj);
    } else {
        ck_assert_msg(obj != NULL, "cluster %s is not published", name);
        ck_assert_msg(strcmp(obj, want) == 0, "cluster %s:\n got  %s\n want %s", name, obj, want);
    }
    free(obj);
}

static uint32_t
snap_count(struct fx *f)
{
    uint8_t *blob = snap_blob(f, NULL);
    uint32_t n = hdr_of(blob)->count;
    free(blob);
    return n;
}

/* Require exactly these new events ("added:NAME", "updated:NAME", "deleted:NAME",
 * NULL-terminated) in ring order since the last call, with exact payloads. */
static void
expect_event_list(struct fx *f, const char *const *specs)
{
    const char *spec;
    static uint8_t buf[RING_PAYLOAD_MAX + 1];
    while ((spec = *specs++) != NULL) {
        const char *colon = strchr(spec, ':');
        ck_assert_ptr_nonnull(colon);
        size_t kind_len = (size_t)(colon - spec);
        uint32_t want_type = strncmp(spec, "added", kind_len) == 0     ? RING_EVENT_ADDED
                             : strncmp(spec, "updated", kind_len) == 0 ? RING_EVENT_UPDATED
                                                                       : RING_EVENT_DELETED;
        char want[600];
        snprintf(want, sizeof(want), "{\"type\":\"cluster.%.*s\",\"data\":{\"name\":\"%s\"}}",
                 (int)kind_len, spec, colon + 1);
        uint32_t len = 0, type = 0;
        enum ring_status rs = ring_read(&f->ring, f->cursor, buf, &len, &type);
        ck_assert_msg(rs == RING_OK, "event %llu (want %s): ring_read = %d",
                      (unsigned long long)f->cursor, want, (int)rs);
        buf[len] = '\0';
        ck_assert_msg(strcmp((char *)buf, want) == 0, "event %llu:\n got  %s\n want %s",
                      (unsigned long long)f->cursor, (char *)buf, want);
        ck_assert_uint_eq(type, want_type);
        f->cursor++;
    }
    ck_assert_msg(ring_head(&f->ring) == f->cursor - 1, "%llu unexpected extra event(s)",
                  (unsigned long long)(ring_head(&f->ring) - (f->cursor - 1)));
}

static void
expect_events(struct fx *f, ...)
{
    const char *specs[64];
    size_t n = 0;
    va_list ap;
    va_start(ap, f);
    do
        ck_assert_uint_lt(n, sizeof(specs) / sizeof(specs[0]));
    while ((specs[n++] = va_arg(ap, const char *)) != NULL);
    va_end(ap);
    expect_event_list(f, specs);
}

/* store_commit, then check its return value, that a changing commit published
 * exactly one new generation whose seq is the seq of the last event appended,
 * and that a commit with no events published nothing new. */
static void
commit(struct fx *f, int baseline, int want_rc)
{
    uint64_t head_before = ring_head(&f->ring);
    int rc = store_commit(f->st, baseline);
    ck_assert_int_eq(rc, want_rc);
    uint64_t head = ring_head(&f->ring);
    if (rc < 0) {
        ck_assert_uint_eq(head, head_before);
        ck_assert_uint_eq(snapshot_generation(&f->snap), f->gen);
        return;
    }
    ck_assert_uint_eq(head, head_before + (uint64_t)rc);
    uint64_t gen = 0;
    uint8_t *blob = snap_blob(f, &gen);
    if (rc > 0 || baseline)
        ck_assert_uint_eq(gen, f->gen + 1);
    ck_assert_msg(hdr_of(blob)->seq == head, "snapshot seq %llu, ring head %llu",
                  (unsigned long long)hdr_of(blob)->seq, (unsigned long long)head);
    f->gen = gen;
    free(blob);
}

static void
baseline(struct fx *f)
{
    ck_assert_int_eq(rescan(f), 0);
    commit(f, 1, 0);
    expect_events(f, NULL);
}

/* --- tests ----------------------------------------------------------------------- */

START_TEST(test_baseline_empty)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    ck_assert_uint_eq(snapshot_generation(&f.snap), 0);
    baseline(&f);
    ck_assert_uint_eq(f.gen, 1);
    uint8_t *blob = snap_blob(&f, NULL);
    const struct snap_blob *b = hdr_of(blob);
    ck_assert_uint_eq(b->seq, 0);
    ck_assert_uint_eq(b->count, 0);
    static const char want[] = "{\"clusters\":[],\"seq\":0}";
    ck_assert_uint_eq(b->list_len, sizeof(want) - 1);
    ck_assert(memcmp(blob + b->list_off, want, b->list_len) == 0);
    free(blob);
    fx_close(&f);
}
END_TEST

START_TEST(test_baseline_emits_nothing)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);
    ck_assert_uint_eq(ring_head(&f.ring), 0);
    uint8_t *blob = snap_blob(&f, NULL);
    ck_assert_uint_eq(hdr_of(blob)->seq, 0);
    ck_assert_uint_eq(hdr_of(blob)->count, 2);
    char want[512];
    snprintf(want, sizeof(want), "{\"clusters\":[%s,%s],\"seq\":0}", obj_of("alpha", 1),
             obj_of("beta", 1));
    ck_assert_uint_eq(hdr_of(blob)->list_len, strlen(want));
    ck_assert(memcmp(blob + hdr_of(blob)->list_off, want, strlen(want)) == 0);
    free(blob);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.events, 0);
    ck_assert_uint_eq(ss.clusters, 2);
    ck_assert_uint_eq(ss.records, 2);
    ck_assert_uint_eq(ss.bad_records, 0);
    /* A second commit with nothing changed appends nothing. */
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    fx_close(&f);
}
END_TEST

START_TEST(test_add_update_delete)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);

    put_changed(&f, "c.json", persona_json("gamma", 1));
    commit(&f, 0, 1);
    expect_events(&f, "added:gamma", NULL);
    expect_obj(&f, "gamma", obj_of("gamma", 1));

    put_changed(&f, "a.json", persona_json("alpha", 2));
    commit(&f, 0, 1);
    expect_events(&f, "updated:alpha", NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 2));

    del_changed(&f, "b.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:beta", NULL);
    expect_obj(&f, "beta", NULL);
    ck_assert_uint_eq(snap_count(&f), 2);

    /* Re-adding a deleted name is an addition again. */
    put_changed(&f, "b.json", persona_json("beta", 5));
    commit(&f, 0, 1);
    expect_events(&f, "added:beta", NULL);
    expect_obj(&f, "beta", obj_of("beta", 5));

    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.events, 4);
    ck_assert_uint_eq(ss.clusters, 3);
    fx_close(&f);
}
END_TEST

START_TEST(test_batch_order)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    put(&f, "g.json", persona_json("gamma", 1));
    baseline(&f);
    /* Several changes in one commit: deletions, then additions, then updates,
     * each by name. */
    put_changed(&f, "b.json", persona_json("beta", 2));
    put_changed(&f, "z.json", persona_json("zzz", 1));
    del_changed(&f, "g.json");
    put_changed(&f, "a.json", persona_json("alpha", 2));
    put_changed(&f, "y.json", persona_json("aaa", 1));
    commit(&f, 0, 5);
    expect_events(&f, "deleted:gamma", "added:aaa", "added:zzz", "updated:alpha", "updated:beta",
                  NULL);
    ck_assert_uint_eq(snap_count(&f), 4);
    fx_close(&f);
}
END_TEST

START_TEST(test_rewrite_without_change)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    /* Identical bytes. */
    put_changed(&f, "a.json", persona_json("alpha", 1));
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    /* Reordered keys, other formatting, Kubernetes shape, same content. */
    put_changed(&f, "a.json",
                "{\r\n  \"spec\" : { \"region\" : \"eu\" ,\n \"v\" : 1.0 },\n"
                "  \"metadata\": {\"name\": \"alpha\", \"uid\": \"u-1\"},\n"
                "  \"kind\": \"ClusterPersona\", \"apiVersion\": \"v1\"\n}\n\n");
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    /* Same again through a rescan. */
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    fx_close(&f);
}
END_TEST

START_TEST(test_name_field_renamed)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "m.json", persona_json("middle", 1));
    baseline(&f);
    /* The new name sorts before the old one: the deletion still comes first. */
    put_changed(&f, "m.json", persona_json("aardvark", 1));
    commit(&f, 0, 2);
    expect_events(&f, "deleted:middle", "added:aardvark", NULL);
    expect_obj(&f, "middle", NULL);
    expect_obj(&f, "aardvark", obj_of("aardvark", 1));
    put_changed(&f, "m.json", persona_json("zebra", 3));
    commit(&f, 0, 2);
    expect_events(&f, "deleted:aardvark", "added:zebra", NULL);
    fx_close(&f);
}
END_TEST

START_TEST(test_file_turns_bad)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);

    static const char *const bad[] = {
        "{\"name\": \"alpha\", \"spec\": {",   /* partial write */
        "",                                    /* truncated */
        "[1,2,3]",                             /* not an object */
        "{\"spec\":{}}",                       /* no name */
        "{\"name\":\"alpha\",\"spec\":\"x\"}", /* spec not an object */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_changed(&f, "a.json", bad[i]);
        commit(&f, 0, 0);
        expect_events(&f, NULL);
        expect_obj(&f, "alpha", obj_of("alpha", 1));
        struct store_stats ss;
        store_get_stats(f.st, &ss);
        ck_assert_uint_eq(ss.bad_records, 1);
        ck_assert_uint_eq(ss.clusters, 2);
    }
    /* Fixed with the old content: nothing happened. */
    put_changed(&f, "a.json", persona_json("alpha", 1));
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    /* Bad again, then fixed with new content: one update. */
    put_changed(&f, "a.json", "{oops");
    commit(&f, 0, 0);
    put_changed(&f, "a.json", persona_json("alpha", 2));
    commit(&f, 0, 1);
    expect_events(&f, "updated:alpha", NULL);
    /* Bad, then removed: deleted. */
    put_changed(&f, "a.json", "{oops");
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    del_changed(&f, "a.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:alpha", NULL);

    /* A file that was never good publishes nothing, also via rescan. */
    put_changed(&f, "c.json", "not json at all");
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    ck_assert_uint_eq(snap_count(&f), 1);
    fx_close(&f);
}
END_TEST

START_TEST(test_oversized_file)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    size_t n = PERSONA_FILE_MAX_BYTES + 100;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    int k = snprintf(big, n, "{\"name\":\"alpha\",\"spec\":{\"pad\":\"");
    memset(big + k, 'x', n - (size_t)k - 3);
    memcpy(big + n - 3, "\"}}", 4);
    put_changed(&f, "a.json", big);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    /* A second oversized file is skipped as well. */
    put_changed(&f, "b.json", big);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    free(big);
    fx_close(&f);
}
END_TEST

START_TEST(test_two_files_one_name)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("dup", 1));
    put(&f, "b.json", persona_json("dup", 2));
    baseline(&f);
    ck_assert_uint_eq(snap_count(&f), 1);
    expect_obj(&f, "dup", obj_of("dup", 1)); /* smallest file name wins */

    /* The loser changes: nothing visible. */
    put_changed(&f, "b.json", persona_json("dup", 3));
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "dup", obj_of("dup", 1));

    /* The winner goes away: the other file takes over with different content. */
    del_changed(&f, "a.json");
    commit(&f, 0, 1);
    expect_events(&f, "updated:dup", NULL);
    expect_obj(&f, "dup", obj_of("dup", 3));

    /* A smaller file name with identical content wins silently. */
    put_changed(&f, "a.json", persona_json("dup", 3));
    commit(&f, 0, 0);
    expect_events(&f, NULL);

    /* An even smaller one with other content wins with an update... */
    put_changed(&f, "0.json", persona_json("dup", 9));
    commit(&f, 0, 1);
    expect_events(&f, "updated:dup", NULL);
    expect_obj(&f, "dup", obj_of("dup", 9));
    /* ... and when it goes, a.json is back. */
    del_changed(&f, "0.json");
    commit(&f, 0, 1);
    expect_events(&f, "updated:dup", NULL);
    expect_obj(&f, "dup", obj_of("dup", 3));

    /* The winner leaves and the remaining claimant has the same content: no event. */
    del_changed(&f, "a.json");
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "dup", obj_of("dup", 3));

    /* The last claimant goes: deleted. */
    del_changed(&f, "b.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:dup", NULL);
    ck_assert_uint_eq(snap_count(&f), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_winner_turns_bad_loser_does_not_take_over)
{
    /* A cluster whose winning file turns bad keeps its last good state. */
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("dup", 1));
    put(&f, "b.json", persona_json("dup", 2));
    baseline(&f);
    put_changed(&f, "a.json", "{broken");
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "dup", obj_of("dup", 1));
    fx_close(&f);
}
END_TEST

START_TEST(test_rescan)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);

    /* Changes made behind the store's back (no store_put or store_remove). */
    put(&f, "a.json", persona_json("alpha", 12345)); /* different size, too */
    del(&f, "b.json");
    put(&f, "c.json", persona_json("gamma", 1));
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 3);
    expect_events(&f, "deleted:beta", "added:gamma", "updated:alpha", NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 12345));
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);

    /* Nothing changed: nothing happens. */
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 0);
    expect_events(&f, NULL);

    /* Everything removed. */
    del(&f, "a.json");
    del(&f, "c.json");
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 2);
    expect_events(&f, "deleted:alpha", "deleted:gamma", NULL);
    ck_assert_uint_eq(snap_count(&f), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_event_payload_escaping)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    baseline(&f);
    put_changed(&f, "q.json", "{\"name\":\"we\\\"ird\\\\name\"}");
    put_changed(&f, "u.json", "{\"metadata\":{\"name\":\"caf\\u00e9-\xe9\x9b\x86\"}}");
    commit(&f, 0, 2);
    /* Additions go by name (memcmp order): "caf..." before "we...". */
    expect_events(&f, "added:caf\xc3\xa9-\xe9\x9b\x86", "added:we\\\"ird\\\\name", NULL);
    expect_obj(&f, "we\"ird\\name", "{\"name\":\"we\\\"ird\\\\name\",\"spec\":{},\"status\":{}}");
    fx_close(&f);
}
END_TEST

START_TEST(test_snapshot_too_big)
{
    struct fx f;
    fx_open(&f, 160); /* room for a few tiny clusters only */
    put(&f, "a.json", "{\"name\":\"a\"}");
    baseline(&f);
    ck_assert_uint_eq(f.gen, 1);

    char big[600];
    snprintf(big, sizeof(big), "{\"name\":\"big\",\"spec\":{\"pad\":\"%0400d\"}}", 0);
    put_changed(&f, "b.json", big);
    del_changed(&f, "a.json");
    commit(&f, 0, -1);
    expect_events(&f, NULL);
    ck_assert_uint_eq(snapshot_generation(&f.snap), 1);
    expect_obj(&f, "a", "{\"name\":\"a\",\"spec\":{},\"status\":{}}");
    expect_obj(&f, "big", NULL);
    /* Retrying does not help, and still appends nothing. */
    commit(&f, 0, -1);
    expect_events(&f, NULL);

    /* With room again, the held-back changes go out: the master could do this
     * by mapping a larger snapshot (here: re-pointing the same struct). */
    void *larger = malloc(snapshot_bytes(FX_HALF_BYTES));
    ck_assert_ptr_nonnull(larger);
    snapshot_init(&f.snap, larger, FX_HALF_BYTES);
    free(f.snap_mem);
    f.snap_mem = larger;
    f.gen = 0;
    commit(&f, 0, 2);
    expect_events(&f, "deleted:a", "added:big", NULL);
    expect_obj(&f, "a", NULL);
    ck_assert_uint_eq(snap_count(&f), 1);
    fx_close(&f);
}
END_TEST

/* A reader process checks, over and over, that whenever the ring shows event H,
 * the published snapshot already includes it (snapshot seq >= H): the snapshot
 * is published before the events. */
struct order_shared {
    _Atomic uint32_t done;
    _Atomic uint32_t ready;
};

START_TEST(test_snapshot_published_before_events)
{
    const uint32_t slots = 1024;
    size_t ring_sz = ring_bytes(slots);
    size_t bytes = 4096 + ring_sz + snapshot_bytes(FX_HALF_BYTES);
    uint8_t *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    struct order_shared *sh = (struct order_shared *)(void *)map;

    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    ring_init(&f.ring, map + 4096, slots);
    snapshot_init(&f.snap, map + 4096 + ring_sz, FX_HALF_BYTES);
    baseline(&f);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(30);
        uint64_t checks = 0;
        atomic_store(&sh->ready, 1);
        while (!atomic_load_explicit(&sh->done, memory_order_acquire)) {
            uint64_t h = ring_head(&f.ring);
            uint8_t *blob = NULL;
            size_t len;
            uint64_t gen;
            enum snapshot_status st = snapshot_copy(&f.snap, UINT64_MAX, &blob, &len, &gen);
            if (st == SNAPSHOT_BUSY)
                continue;
            if (st != SNAPSHOT_OK || !snapshot_blob_valid(blob, len))
                _exit(10);
            uint64_t seq = hdr_of(blob)->seq;
            free(blob);
            if (seq < h) {
                fprintf(stderr, "reader: ring head %llu but snapshot seq %llu\n",
                        (unsigned long long)h, (unsigned long long)seq);
                _exit(11);
            }
            checks++;
        }
        _exit(checks > 0 ? 0 : 12);
    }
    while (!atomic_load(&sh->ready))
        ;
    for (int i = 1; i <= 400; i++) {
        put_changed(&f, "a.json", persona_json("alpha", i));
        int rc = store_commit(f.st, 0);
        ck_assert_int_eq(rc, 1);
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "reader failed: status 0x%x (see stderr)", (unsigned)status);
    ck_assert_uint_eq(ring_head(&f.ring), 400);
    fx_close(&f); /* frees the unused heap ring and snapshot from fx_open */
    munmap(map, bytes);
}
END_TEST
/* --- sources, syncs, warnings ------------------------------------------------------ */

START_TEST(test_bad_content_warned_once)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    put_changed(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    /* The same bad bytes again and again: one warning; the cluster stays. */
    for (int i = 0; i < 3; i++) {
        put_changed(&f, "a.json", "{broken");
        commit(&f, 0, 0);
    }
    ck_assert_int_eq(
        log_count("persona file a.json: invalid JSON; keeping cluster alpha as it was", NULL), 1);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    /* New bad content is news. */
    put_changed(&f, "a.json", "[1]");
    ck_assert_int_eq(log_count("a.json", "not a JSON object"), 1);
    /* Good again, as it was: said once, no event. */
    put_changed(&f, "a.json", persona_json("alpha", 1));
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    ck_assert_int_eq(log_count("persona file a.json is valid again", NULL), 1);
    /* Content the source could not fetch: the tag stands for it. */
    ck_assert_int_eq(store_put_bad(f.st, f.src, "b.json", "file is larger than 1 MiB", 2000000), 0);
    ck_assert_int_eq(store_put_bad(f.st, f.src, "b.json", "file is larger than 1 MiB", 2000000), 0);
    ck_assert_int_eq(log_count("persona file b.json: file is larger than 1 MiB; skipped", NULL), 1);
    ck_assert_int_eq(store_put_bad(f.st, f.src, "b.json", "file is larger than 1 MiB", 2000001), 0);
    ck_assert_int_eq(log_count("persona file b.json: file is larger than 1 MiB; skipped", NULL), 2);
    commit(&f, 0, 0);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);
    ck_assert_uint_eq(ss.bad_records, 1);
    ck_assert_uint_eq(ss.clusters, 1);
    fx_close(&f);
}
END_TEST

START_TEST(test_remove_and_touch_unknown)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put_changed(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    store_remove(f.st, f.src, "nope.json");
    ck_assert_int_eq(store_touch(f.st, f.src, "nope.json"), -1);
    ck_assert_int_eq(store_touch(f.st, 1, "a.json"), -1); /* another source's key */
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    store_remove(f.st, f.src, "a.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:alpha", NULL);
    fx_close(&f);
}
END_TEST

START_TEST(test_sync_per_source)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    int k8s = store_add_source(f.st, "persona object");
    ck_assert_int_eq(k8s, 1);
    put_changed(&f, "a.json", persona_json("alpha", 1));
    const char *beta = persona_json("beta", 1), *gamma = persona_json("gamma", 1);
    ck_assert_int_eq(store_put(f.st, k8s, "ns/beta", beta, strlen(beta)), 0);
    baseline(&f); /* a sync of the fixture's source only */
    ck_assert_uint_eq(snap_count(&f), 2);
    /* A listing that stopped part-way removes nothing; what it put stays. */
    store_sync_begin(f.st, k8s);
    ck_assert_int_eq(store_put(f.st, k8s, "ns/gamma", gamma, strlen(gamma)), 0);
    store_sync_cancel(f.st, k8s);
    commit(&f, 0, 1);
    expect_events(&f, "added:gamma", NULL);
    /* An end without a begin is nothing. */
    store_sync_end(f.st, k8s);
    commit(&f, 0, 0);
    /* A full one: what it neither put nor touched goes, and only its own. */
    store_sync_begin(f.st, k8s);
    ck_assert_int_eq(store_touch(f.st, k8s, "ns/gamma"), 0);
    store_sync_end(f.st, k8s);
    commit(&f, 0, 1);
    expect_events(&f, "deleted:beta", NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    expect_obj(&f, "gamma", obj_of("gamma", 1));
    /* Removed during a sync, put again in it: kept. */
    store_sync_begin(f.st, k8s);
    store_remove(f.st, k8s, "ns/gamma");
    ck_assert_int_eq(store_put(f.st, k8s, "ns/gamma", gamma, strlen(gamma)), 0);
    store_sync_end(f.st, k8s);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);
    fx_close(&f);
}
END_TEST

START_TEST(test_first_source_wins_a_name)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    int k8s = store_add_source(f.st, "persona object");
    baseline(&f);
    /* The other source's key sorts first, yet the source added first wins. */
    const char *v2 = persona_json("dup", 2);
    ck_assert_int_eq(store_put(f.st, k8s, "a", v2, strlen(v2)), 0);
    put_changed(&f, "z.json", persona_json("dup", 1));
    commit(&f, 0, 1);
    expect_events(&f, "added:dup", NULL);
    expect_obj(&f, "dup", obj_of("dup", 1));
    ck_assert_int_eq(
        log_count(
            "persona object a: cluster dup is already defined by persona file z.json; ignored",
            NULL),
        1);
    commit(&f, 0, 0);
    ck_assert_int_eq(log_count("already defined", NULL), 1);
    /* The winner goes: the other takes over. */
    del_changed(&f, "z.json");
    commit(&f, 0, 1);
    expect_events(&f, "updated:dup", NULL);
    expect_obj(&f, "dup", obj_of("dup", 2));
    fx_close(&f);
}
END_TEST

START_TEST(test_sources_max)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    for (int i = 1; i < STORE_SOURCES_MAX; i++)
        ck_assert_int_eq(store_add_source(f.st, "more"), i);
    ck_assert_int_eq(store_add_source(f.st, "one too many"), -1);
    fx_close(&f);
}
END_TEST

/* Fail each allocation of a commit in turn: either it publishes nothing (no
 * new generation, no event; the changes stay pending) or everything (the
 * snapshot and all its events).  Before the events were serialised ahead of
 * the publish, failing the serialisation after it panicked the master. */
/* --- a random history against a model ---------------------------------------------
 * Two sources, 24 keys each, 8 cluster names (so claims collide often), three
 * contents per name and bad content now and then; puts, removes and full syncs
 * in random order, a commit every few steps.  After each commit the snapshot
 * must be the model's desired state (per name: the claim of the first source,
 * then the smallest key), and the new events its difference from the previous
 * one: deletions, additions, updates, each by name.  This is what keeps the
 * commit's shortcuts (claims still published keep their place, equal versions
 * skip the name comparison) honest. */
#define RM_KEYS 24
#define RM_NAMES 8

struct rm_claim {
    int name; /* -1: none (never good) */
    int v;
};

struct rm_state {
    int obj_v[RM_NAMES]; /* the published v of each name, -1: absent */
};

static void
rm_desired(const struct rm_claim good[2][RM_KEYS], struct rm_state *out)
{
    for (int n = 0; n < RM_NAMES; n++)
        out->obj_v[n] = -1;
    /* Walking (source, key) in order, the first claim of a name wins. */
    int taken[RM_NAMES] = {0};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < RM_KEYS; k++)
            if (good[s][k].name >= 0 && !taken[good[s][k].name]) {
                taken[good[s][k].name] = 1;
                out->obj_v[good[s][k].name] = good[s][k].v;
            }
}

static uint32_t rm_seed = 12345;

static uint32_t
rm_rand(uint32_t n)
{
    rm_seed = rm_seed * 1103515245u + 12345u;
    return (rm_seed >> 16) % n;
}

START_TEST(test_random_against_model)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    int src1 = store_add_source(f.st, "cluster persona");
    ck_assert_int_eq(src1, 1);
    const int srcs[2] = {f.src, src1};
    struct rm_claim good[2][RM_KEYS];
    int present[2][RM_KEYS] = {{0}};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < RM_KEYS; k++)
            good[s][k] = (struct rm_claim){-1, 0};
    struct rm_state pub;
    rm_desired(good, &pub);
    commit(&f, 1, 0);
    char key[16], name[16];
    for (int step = 0; step < 4000; step++) {
        int s = (int)rm_rand(2), k = (int)rm_rand(RM_KEYS);
        snprintf(key, sizeof(key), "k%02d", k);
        uint32_t op = rm_rand(20);
        if (op < 13) { /* a good content */
            int n = (int)rm_rand(RM_NAMES), v = (int)rm_rand(3);
            snprintf(name, sizeof(name), "n%d", n);
            const char *json = persona_json(name, v);
            ck_assert_int_eq(store_put(f.st, srcs[s], key, json, strlen(json)), 0);
            good[s][k] = (struct rm_claim){n, v};
            present[s][k] = 1;
        } else if (op < 15) { /* bad: the last good one is kept */
            ck_assert_int_eq(store_put(f.st, srcs[s], key, "{", 1), 0);
            present[s][k] = 1;
        } else if (op < 19) {
            store_remove(f.st, srcs[s], key);
            good[s][k] = (struct rm_claim){-1, 0};
            present[s][k] = 0;
        } else { /* a full sync of source s that drops one key and touches the rest */
            int drop = (int)rm_rand(RM_KEYS);
            store_sync_begin(f.st, srcs[s]);
            for (int j = 0; j < RM_KEYS; j++) {
                snprintf(key, sizeof(key), "k%02d", j);
                if (present[s][j] && j != drop)
                    ck_assert_int_eq(store_touch(f.st, srcs[s], key), 0);
            }
            store_sync_end(f.st, srcs[s]);
            good[s][drop] = (struct rm_claim){-1, 0};
            present[s][drop] = 0;
        }
        if (rm_rand(3) != 0)
            continue;
        struct rm_state want;
        rm_desired(good, &want);
        /* The expected events, in the commit's order. */
        char specs[3 * RM_NAMES][32];
        const char *list[3 * RM_NAMES + 1];
        int nspec = 0;
        for (int kind = 0; kind < 3; kind++)
            for (int n = 0; n < RM_NAMES; n++) {
                int was = pub.obj_v[n], is = want.obj_v[n];
                const char *what = kind == 0 && was >= 0 && is < 0    ? "deleted"
                                   : kind == 1 && was < 0 && is >= 0  ? "added"
                                   : kind == 2 && was >= 0 && is >= 0 && was != is ? "updated"
                                                                                     : NULL;
                if (what != NULL) {
                    snprintf(specs[nspec], sizeof(specs[nspec]), "%s:n%d", what, n);
                    list[nspec] = specs[nspec];
                    nspec++;
                }
            }
        list[nspec] = NULL;
        commit(&f, 0, nspec);
        expect_event_list(&f, list);
        uint32_t count = 0;
        for (int n = 0; n < RM_NAMES; n++) {
            snprintf(name, sizeof(name), "n%d", n);
            expect_obj(&f, name, want.obj_v[n] >= 0 ? obj_of(name, want.obj_v[n]) : NULL);
            count += want.obj_v[n] >= 0;
        }
        ck_assert_uint_eq(snap_count(&f), count);
        pub = want;
    }
    fx_close(&f);
}
END_TEST

START_TEST(test_commit_out_of_memory)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put_changed(&f, "a.json", persona_json("alpha", 1));
    put_changed(&f, "b.json", persona_json("beta", 1));
    baseline(&f);
    put_changed(&f, "b.json", persona_json("beta", 2));
    put_changed(&f, "c.json", persona_json("gamma", 1));
    del_changed(&f, "a.json");
    cJSON_Hooks hooks = {malloc, free}; /* the wrapped malloc */
    cJSON_InitHooks(&hooks);
    long failures = 0;
    for (long k = 0;; k++) {
        ck_assert_int_lt(k, 10000);
        uint64_t head = ring_head(&f.ring), gen = snapshot_generation(&f.snap);
        alloc_fail_nth(k);
        int rc = store_commit(f.st, 0);
        int injected = alloc_failed;
        alloc_fail_nth(-1);
        if (rc < 0) {
            ck_assert_msg(injected, "commit failed without an allocation failure");
            ck_assert_uint_eq(ring_head(&f.ring), head);
            ck_assert_uint_eq(snapshot_generation(&f.snap), gen);
            failures++;
            continue;
        }
        /* Published: the snapshot and every event, each exactly (below). */
        ck_assert_int_eq(rc, 3);
        ck_assert_uint_eq(snapshot_generation(&f.snap), gen + 1);
        uint8_t *blob = snap_blob(&f, NULL);
        ck_assert_uint_eq(hdr_of(blob)->seq, head + 3);
        free(blob);
        break;
    }
    cJSON_InitHooks(NULL);
    ck_assert_int_ge(failures, 5); /* diff, events and their JSON, items, blob at least */
    expect_events(&f, "deleted:alpha", "added:gamma", "updated:beta", NULL);
    expect_obj(&f, "beta", obj_of("beta", 2));
    expect_obj(&f, "alpha", NULL);
    fx_close(&f);
}
END_TEST

static Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_baseline_empty);
    tcase_add_test(tc, test_baseline_emits_nothing);
    tcase_add_test(tc, test_add_update_delete);
    tcase_add_test(tc, test_batch_order);
    tcase_add_test(tc, test_rewrite_without_change);
    tcase_add_test(tc, test_name_field_renamed);
    tcase_add_test(tc, test_file_turns_bad);
    tcase_add_test(tc, test_oversized_file);
    tcase_add_test(tc, test_two_files_one_name);
    tcase_add_test(tc, test_winner_turns_bad_loser_does_not_take_over);
    tcase_add_test(tc, test_rescan);
    tcase_add_test(tc, test_event_payload_escaping);
    tcase_add_test(tc, test_snapshot_too_big);
    tcase_add_test(tc, test_snapshot_published_before_events);
    tcase_add_test(tc, test_bad_content_warned_once);
    tcase_add_test(tc, test_remove_and_touch_unknown);
    tcase_add_test(tc, test_sync_per_source);
    tcase_add_test(tc, test_first_source_wins_a_name);
    tcase_add_test(tc, test_sources_max);
    tcase_add_test(tc, test_commit_out_of_memory);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
