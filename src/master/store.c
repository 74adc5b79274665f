/*
 * store - see store.h.
 *
 * Data: records[] sorted by (source id, key), each with its last good persona
 * (or none) and, while its content is bad, what was warned about; "published",
 * the master's private copy of the last snapshot blob published.  The desired
 * state is derived from records[] at commit time: walking them in (name,
 * source, key) order, the first record to claim a cluster name wins (for the
 * directory: "lexicographically smallest file name wins").  Diffing desired
 * against the published blob compares canonical bytes, so formatting and key
 * order never produce events, and the blob is the only second copy.
 *
 * A commit that changes k of n records sorts only those k: a record whose
 * persona is still the one published knows its place (pub_index), so the
 * desired state costs O(n + k log n) name comparisons and the diff compares
 * names only where versions differ.  What stays O(n) per commit is integer
 * work and the copy of the snapshot blob.  At 400 commits a second over 8 000
 * records the sort and the comparisons were half of the master's CPU.
 */
#include "build_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/persona.h"
#include "common/vec.h"
#include "master/store.h"

struct store_record {
    int src;
    char *key;           /* owned */
    struct persona good; /* last good content; name == NULL if never good */
    int bad;             /* current content is bad (good is kept) */
    const char *bad_why; /* bad: the reason warned about (static) */
    uint64_t bad_hash;   /* bad: snapshot_hash of that content, or the source's tag */
    int seen;            /* put or touched since store_sync_begin */
    int conflict_warned; /* lost a name to a record ordered before it; warned */
    uint64_t pub_version; /* good.version as published at pub_index; 0: not published */
    uint32_t pub_index;   /* its entry in the published blob, when pub_version is set */
};

struct store_source {
    const char *what; /* static: "persona file" */
    int syncing;      /* between store_sync_begin and _end or _cancel */
};

struct store {
    struct snapshot *snap; /* not owned */
    struct ring *ring;     /* not owned */
    struct store_source sources[STORE_SOURCES_MAX];
    int nsources;
    struct store_record *records;
    size_t nrecords, cap_records;
    uint8_t *published; /* owned: the blob last published, NULL before the first */
    size_t published_len;
    uint64_t *published_versions; /* owned: persona version of each published entry */
    uint64_t next_version;        /* last persona version handed out */
    uint64_t events;
    uint64_t events_by_type[4]; /* by enum ring_event_type */
    uint64_t publishes;
    uint64_t snapshot_bytes; /* of the last publish */
    uint64_t bad_contents;
    int (*stop)(void *); /* store_set_interrupt, or NULL */
    void *stop_arg;
};

/* One cluster of the desired state, pointing into records[]. */
struct claim {
    const struct persona *p;
    struct store_record *rec;
    int fresh; /* not the record's published persona: its place was searched for */
};

struct store *
store_new(struct snapshot *snap, struct ring *ring)
{
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->snap = snap;
    st->ring = ring;
    return st;
}

static void
record_free(struct store_record *r)
{
    free(r->key);
    persona_free(&r->good);
}

void
store_free(struct store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nrecords; i++)
        record_free(&st->records[i]);
    free(st->records);
    free(st->published);
    free(st->published_versions);
    free(st);
}

int
store_add_source(struct store *st, const char *what)
{
    if (st->nsources == STORE_SOURCES_MAX)
        return -1;
    st->sources[st->nsources] = (struct store_source){what, 0};
    return st->nsources++;
}

void
store_set_interrupt(struct store *st, int (*stop)(void *), void *arg)
{
    st->stop = stop;
    st->stop_arg = arg;
}

int
store_interrupted(const struct store *st)
{
    return st->stop != NULL && st->stop(st->stop_arg);
}

static int
record_cmp(const struct store_record *r, int src, const char *key)
{
    if (r->src != src)
        return r->src < src ? -1 : 1;
    return strcmp(r->key, key);
}

/* Binary search: index of src/key, or where it would be inserted (*found = 0). */
static size_t
record_index(const struct store *st, int src, const char *key, int *found)
{
    size_t lo = 0, hi = st->nrecords;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = record_cmp(&st->records[mid], src, key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* The record src/key, created (empty) if there is none; NULL on ENOMEM. */
static struct store_record *
record_get(struct store *st, int src, const char *key)
{
    int found;
    size_t at = record_index(st, src, key, &found);
    if (found)
        return &st->records[at];
    char *copy = strdup(key);
    void *slot;
    void *grown = copy == NULL ? NULL
                               : vec_insert(st->records, &st->nrecords, &st->cap_records,
                                            sizeof(st->records[0]), at, &slot);
    if (grown == NULL) {
        free(copy);
        return NULL;
    }
    st->records = grown;
    struct store_record *r = slot;
    r->src = src;
    r->key = copy;
    return r;
}

static const char *
source_what(const struct store *st, int src)
{
    return st->sources[src].what;
}

/* New content of r: p if err is NULL, else bad for reason err, the content
 * identified by hash (warned once per content: re-reading the same bytes, a
 * touch or a notification without a change, is not news). */
static void
record_update(struct store *st, struct store_record *r, const char *err, uint64_t hash,
              struct persona *p)
{
    const char *what = source_what(st, r->src);
    r->seen = 1;
    r->conflict_warned = 0;
    if (err != NULL) {
        if (!r->bad || r->bad_why != err || r->bad_hash != hash) {
            st->bad_contents++;
            if (r->good.name != NULL)
                log_warnx("%s %s: %s; keeping cluster %s as it was", what, r->key, err,
                          r->good.name);
            else
                log_warnx("%s %s: %s; skipped", what, r->key, err);
        }
        r->bad = 1;
        r->bad_why = err;
        r->bad_hash = hash;
        return;
    }
    if (r->bad)
        log_info("%s %s is valid again", what, r->key);
    r->bad = 0;
    r->bad_why = NULL;
    persona_free(&r->good);
    r->good = *p;
    r->good.version = ++st->next_version;
}

static struct store_record *
record_for_put(struct store *st, int src, const char *key)
{
    struct store_record *r = record_get(st, src, key);
    if (r == NULL)
        log_warnx("%s %s: out of memory; skipped", source_what(st, src), key);
    return r;
}

int
store_put(struct store *st, int src, const char *key, const char *data, size_t len)
{
    struct store_record *r = record_for_put(st, src, key);
    if (r == NULL)
        return -1;
    struct persona p;
    const char *err = persona_parse(data, len, &p);
    record_update(st, r, err, snapshot_hash(data, len), &p);
    return 0;
}

int
store_put_bad(struct store *st, int src, const char *key, const char *why, uint64_t tag)
{
    struct store_record *r = record_for_put(st, src, key);
    if (r == NULL)
        return -1;
    record_update(st, r, why, tag, NULL);
    return 0;
}

int
store_touch(struct store *st, int src, const char *key)
{
    int found;
    size_t i = record_index(st, src, key, &found);
    if (!found)
        return -1;
    st->records[i].seen = 1;
    return 0;
}

void
store_remove(struct store *st, int src, const char *key)
{
    int found;
    size_t i = record_index(st, src, key, &found);
    if (!found)
        return;
    record_free(&st->records[i]);
    vec_remove(st->records, &st->nrecords, sizeof(st->records[0]), i);
}

/* The records of src: [*lo, *hi) (they are contiguous: sorted by source first). */
static void
source_range(const struct store *st, int src, size_t *lo, size_t *hi)
{
    size_t a = 0, b = st->nrecords;
    while (a < b) { /* first record with source >= src */
        size_t mid = a + (b - a) / 2;
        if (st->records[mid].src < src)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    b = st->nrecords;
    while (a < b) { /* first record with source > src */
        size_t mid = a + (b - a) / 2;
        if (st->records[mid].src <= src)
            a = mid + 1;
        else
            b = mid;
    }
    *hi = a;
}

void
store_sync_begin(struct store *st, int src)
{
    size_t lo, hi;
    source_range(st, src, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        st->records[i].seen = 0;
    st->sources[src].syncing = 1;
}

void
store_sync_end(struct store *st, int src)
{
    if (!st->sources[src].syncing)
        return;
    st->sources[src].syncing = 0;
    size_t lo, hi, out;
    source_range(st, src, &lo, &hi);
    out = lo;
    for (size_t i = lo; i < hi; i++) {
        if (st->records[i].seen)
            st->records[out++] = st->records[i];
        else
            record_free(&st->records[i]);
    }
    if (out == hi)
        return; /* nothing removed (and records may be NULL) */
    memmove(&st->records[out], &st->records[hi], (st->nrecords - hi) * sizeof(st->records[0]));
    st->nrecords -= hi - out;
}

void
store_sync_cancel(struct store *st, int src)
{
    st->sources[src].syncing = 0;
}

static int
claim_cmp(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    int c = snapshot_name_cmp(x->p->name, x->p->name_len, y->p->name, y->p->name_len);
    if (c == 0)
        c = record_cmp(x->rec, y->rec->src, y->rec->key);
    return c;
}

static int
name_eq(const struct claim *a, const struct claim *b)
{
    return snapshot_name_cmp(a->p->name, a->p->name_len, b->p->name, b->p->name_len) == 0;
}

/* Every claim of records[], in (name, source, key) order, into out (room for
 * nrecords); returns the count.  The claims still published as they were are
 * in that order already, by their published index; only the fresh ones are
 * sorted and then searched into place.  -1 on ENOMEM. */
static ptrdiff_t
claims_sorted(struct store *st, struct claim *out)
{
    size_t nold = st->published ? snapshot_blob_header(st->published)->count : 0;
    struct claim *kept = calloc(nold ? nold : 1, sizeof(*kept));
    struct claim *fresh = malloc((st->nrecords ? st->nrecords : 1) * sizeof(*fresh));
    if (kept == NULL || fresh == NULL) {
        free(kept);
        free(fresh);
        return -1;
    }
    size_t nfresh = 0, nkept = 0;
    for (size_t i = 0; i < st->nrecords; i++) {
        struct store_record *r = &st->records[i];
        if (r->good.name == NULL)
            continue;
        struct claim c = {&r->good, r, 0};
        /* Versions are unique: the same version is the same parse, so the same
         * name, which was a winner and in order at pub_index. */
        if (r->pub_version != 0 && r->pub_version == r->good.version && r->pub_index < nold &&
            kept[r->pub_index].p == NULL) {
            kept[r->pub_index] = c;
        } else {
            c.fresh = 1;
            fresh[nfresh++] = c;
        }
    }
    for (size_t i = 0; i < nold; i++)
        if (kept[i].p != NULL)
            kept[nkept++] = kept[i];
    qsort(fresh, nfresh, sizeof(*fresh), claim_cmp);
    size_t from = 0, k = 0;
    for (size_t f = 0; f < nfresh; f++) {
        size_t lo = from, hi = nkept; /* the first kept claim after fresh[f] */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (claim_cmp(&kept[mid], &fresh[f]) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        memcpy(out + k, kept + from, (lo - from) * sizeof(*out));
        k += lo - from;
        from = lo;
        out[k++] = fresh[f];
    }
    memcpy(out + k, kept + from, (nkept - from) * sizeof(*out));
    k += nkept - from;
    free(kept);
    free(fresh);
    return (ptrdiff_t)k;
}

/* The desired clusters, sorted by name, one per name; *n set.  NULL on ENOMEM. */
static struct claim *
desired_state(struct store *st, size_t *n)
{
    struct claim *c = malloc((st->nrecords ? st->nrecords : 1) * sizeof(*c));
    ptrdiff_t k = c != NULL ? claims_sorted(st, c) : -1;
    if (k < 0) {
        free(c);
        return NULL;
    }
    size_t out = 0;
    for (size_t i = 0; i < (size_t)k; i++) {
        /* Two claims still published as they were have different names. */
        if (out > 0 && (c[out - 1].fresh || c[i].fresh) && name_eq(&c[out - 1], &c[i])) {
            struct store_record *loser = c[i].rec, *winner = c[out - 1].rec;
            if (!loser->conflict_warned) {
                if (loser->src == winner->src)
                    log_warnx("%s %s: cluster %s is already defined by %s; ignored",
                              source_what(st, loser->src), loser->key, c[i].p->name, winner->key);
                else
                    log_warnx("%s %s: cluster %s is already defined by %s %s; ignored",
                              source_what(st, loser->src), loser->key, c[i].p->name,
                              source_what(st, winner->src), winner->key);
                loser->conflict_warned = 1;
            }
            continue;
        }
        c[out++] = c[i];
    }
    *n = out;
    return c;
}

enum diff_kind { DIFF_DELETED, DIFF_ADDED, DIFF_UPDATED };

struct diff {
    enum diff_kind kind;
    const char *name; /* points into the old blob or into records[] */
    size_t name_len;
};

/* 1 if the published entry i differs from persona p.  Same version: the same
 * parse, so equal without looking.  Different ETags: different bytes.  Only a
 * re-parse with an equal ETag needs the bytes compared. */
static int
entry_changed(const uint8_t *old, const struct snap_entry *e, uint64_t old_version,
              const struct persona *p)
{
    if (old_version == p->version)
        return 0;
    if (e->etag != p->etag || e->obj_len != p->obj_len)
        return 1;
    return memcmp(old + e->obj_off, p->obj, e->obj_len) != 0;
}

/* Merge-walk published (old blob) against desired; fills d, returns the count.
 * O(clusters) comparisons of integers; bytes only for re-parsed look-alikes. */
static size_t
diff_states(const uint8_t *old, const uint64_t *old_versions, const struct claim *want,
            size_t nwant, struct diff *d)
{
    const struct snap_blob *b = old ? snapshot_blob_header(old) : NULL;
    const struct snap_entry *e = old ? snapshot_blob_entries(old) : NULL;
    size_t nold = old ? b->count : 0, i = 0, j = 0, k = 0;
    while (i < nold || j < nwant) {
        int c;
        if (i == nold)
            c = 1;
        else if (j == nwant)
            c = -1;
        else if (old_versions[i] == want[j].p->version)
            c = 0; /* the same parse: the same name */
        else
            c = snapshot_name_cmp(old + e[i].name_off, e[i].name_len, want[j].p->name,
                                  want[j].p->name_len);
        if (c < 0) {
            d[k++] = (struct diff){DIFF_DELETED, (const char *)old + e[i].name_off, e[i].name_len};
            i++;
        } else if (c > 0) {
            d[k++] = (struct diff){DIFF_ADDED, want[j].p->name, want[j].p->name_len};
            j++;
        } else {
            if (entry_changed(old, &e[i], old_versions[i], want[j].p))
                d[k++] = (struct diff){DIFF_UPDATED, want[j].p->name, want[j].p->name_len};
            i++;
            j++;
        }
    }
    return k;
}

static const char *const event_type_name[] = {
    [DIFF_DELETED] = "cluster.deleted",
    [DIFF_ADDED] = "cluster.added",
    [DIFF_UPDATED] = "cluster.updated",
};

static const enum ring_event_type event_ring_type[] = {
    [DIFF_DELETED] = RING_EVENT_DELETED,
    [DIFF_ADDED] = RING_EVENT_ADDED,
    [DIFF_UPDATED] = RING_EVENT_UPDATED,
};

/* One event, serialised: the ring payload. */
struct event {
    enum ring_event_type type;
    uint32_t len;
    char *msg; /* owned */
};

static void
events_free(struct event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ev[i].msg);
    free(ev);
}

/* The events of the n differences, serialised in the order they enter the
 * ring: deletions first (so a rename A -> B reads "deleted A, added B"), then
 * additions, then updates.  NULL on ENOMEM.  Done before the snapshot is
 * published, so that nothing after the publish can fail. */
static struct event *
events_prepare(const struct diff *d, size_t n)
{
    static const enum diff_kind order[] = {DIFF_DELETED, DIFF_ADDED, DIFF_UPDATED};
    struct event *ev = malloc((n ? n : 1) * sizeof(*ev));
    size_t k = 0;
    if (ev == NULL)
        return NULL;
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < n; i++) {
            if (d[i].kind != order[o])
                continue;
            char name[PERSONA_NAME_MAX_BYTES + 1];
            memcpy(name, d[i].name, d[i].name_len);
            name[d[i].name_len] = '\0';
            char *msg = persona_event_json(event_type_name[d[i].kind], name);
            if (msg == NULL) {
                events_free(ev, k);
                return NULL;
            }
            size_t len = strlen(msg);
            /* A name is at most 253 bytes, escaped at most 6 bytes each. */
            if (len > RING_PAYLOAD_MAX)
                panic("event for %s does not fit a ring slot", name);
            ev[k++] = (struct event){event_ring_type[d[i].kind], (uint32_t)len, msg};
        }
    }
    return ev;
}

/* After the publish: appending checked payloads cannot fail. */
static void
events_append(struct store *st, const struct event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t seq = ring_append(st->ring, ev[i].type, ev[i].msg, ev[i].len);
        if (seq < 0)
            panic("ring_append of a checked event: %lld", (long long)seq);
        log_debug("event %lld %s", (long long)seq, ev[i].msg);
        st->events++;
        st->events_by_type[ev[i].type < 4 ? ev[i].type : 0]++;
    }
}

int
store_commit(struct store *st, int baseline)
{
    size_t nwant;
    struct claim *want = desired_state(st, &nwant);
    struct diff *d =
        want ? malloc(
                   (nwant + (st->published ? snapshot_blob_header(st->published)->count : 0) + 1) *
                   sizeof(*d))
             : NULL;
    if (d == NULL) {
        free(want);
        log_error("out of memory computing the persona diff; will retry");
        return -1;
    }
    size_t nd = diff_states(st->published, st->published_versions, want, nwant, d);
    if (nd == 0 && st->published != NULL) {
        free(d);
        free(want);
        return 0;
    }
    size_t nev = baseline ? 0 : nd;
    struct event *ev = events_prepare(d, nev);
    uint64_t seq = ring_head(st->ring) + nev;
    struct snap_item *items = malloc((nwant ? nwant : 1) * sizeof(*items));
    uint64_t *versions = malloc((nwant ? nwant : 1) * sizeof(*versions));
    size_t blob_len = 0;
    uint8_t *blob = NULL;
    if (ev != NULL && items != NULL && versions != NULL) {
        for (size_t i = 0; i < nwant; i++) {
            const struct persona *p = want[i].p;
            items[i] = (struct snap_item){p->name, (uint32_t)p->name_len, p->obj,
                                          (uint32_t)p->obj_len, p->etag};
            versions[i] = p->version;
        }
        blob =
            snapshot_build_epoch(items, (uint32_t)nwant, seq, snapshot_epoch(st->snap), &blob_len);
    }
    free(items);
    int rc = -1;
    if (ev == NULL) {
        log_error("out of memory serialising %zu event(s); will retry", nev);
    } else if (blob == NULL) {
        log_error("out of memory building the snapshot; will retry");
    } else if (snapshot_publish(st->snap, blob, blob_len) != SNAPSHOT_OK) {
        log_error("snapshot of %zu bytes exceeds --snapshot-max (%llu bytes per copy); "
                  "%s, %zu change(s) held back",
                  blob_len, (unsigned long long)st->snap->half_bytes,
                  st->published != NULL ? "still serving the previous one"
                                        : "serving an empty list until it fits",
                  nd);
    } else {
        /* Published: now, and only now, the events may enter the ring. */
        events_append(st, ev, nev);
        st->publishes++;
        st->snapshot_bytes = blob_len;
        rc = (int)nev;
        free(st->published);
        free(st->published_versions);
        st->published = blob;
        st->published_len = blob_len;
        st->published_versions = versions;
        blob = NULL;
        versions = NULL;
        for (size_t i = 0; i < st->nrecords; i++)
            st->records[i].pub_version = 0;
        for (size_t i = 0; i < nwant; i++) {
            want[i].rec->pub_version = want[i].p->version;
            want[i].rec->pub_index = (uint32_t)i;
        }
    }
    if (ev != NULL)
        events_free(ev, nev);
    free(versions);
    free(blob);
    free(d);
    free(want);
    return rc;
}

int
store_publish_empty(struct store *st)
{
    size_t len = 0;
    uint8_t *blob =
        snapshot_build_epoch(NULL, 0, ring_head(st->ring), snapshot_epoch(st->snap), &len);
    int rc = blob != NULL && snapshot_publish(st->snap, blob, len) == SNAPSHOT_OK ? 0 : -1;
    if (rc == 0) {
        st->publishes++;
        st->snapshot_bytes = len;
    }
    free(blob);
    return rc;
}

void
store_get_stats(const struct store *st, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->events = st->events;
    out->clusters = st->published ? snapshot_blob_header(st->published)->count : 0;
    out->records = (uint32_t)st->nrecords;
    for (size_t i = 0; i < st->nrecords; i++)
        out->bad_records += st->records[i].bad != 0;
    memcpy(out->events_by_type, st->events_by_type, sizeof(out->events_by_type));
    out->publishes = st->publishes;
    out->snapshot_bytes = st->snapshot_bytes;
    out->bad_contents = st->bad_contents;
}
