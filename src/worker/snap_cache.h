/*
 * snap_cache - a worker's private copies of the master's snapshot, and the
 * responses that read them.
 *
 * The worker keeps one private, refcounted copy per snapshot generation
 * (struct snap_ref): the newest is current, and an older one lives while a
 * response still reads it.  A response body is a slice of a copy served by a
 * callback response (libmicrohttpd copies blocks of it into its send buffer:
 * no JSON is rebuilt).  Slow readers cannot pin copies: every response has
 * an absolute deadline, and at most SNAP_CACHE_OLD_GENERATIONS_MAX
 * generations older than the current one stay alive (when a new one is
 * copied, the readers of the oldest are cut).  A worker thus holds at most
 * 1 + SNAP_CACHE_OLD_GENERATIONS_MAX copies.
 *
 * The REST endpoints (rest_api.c) take the current copy and build responses
 * from it; the worker's loop calls snap_cache_next_ms and snap_cache_expire
 * once per pass and snap_cache_release at exit.  struct snap_cache is
 * embedded in struct worker, but only snap_cache.c reads or writes its
 * fields.
 */
#ifndef PERSONAD_SNAP_CACHE_H
#define PERSONAD_SNAP_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Response;
struct snapshot;
struct snap_ref;
struct rest_hold;

/* Old generations kept per worker while responses still read them: a reader
 * that began just before a change (or three) still gets its whole, consistent
 * body, and a worker holds at most 1 + 3 copies (each up to --snapshot-max;
 * one more for a moment while it copies a new generation). */
#define SNAP_CACHE_OLD_GENERATIONS_MAX 3

struct snap_cache {
    struct snapshot *snap;   /* shared memory, not owned */
    const int64_t *now_ms;   /* the worker's loop time, read at each use */
    int64_t deadline_ms;     /* --rest-deadline (per 2 MiB of body begun) */
    unsigned index;          /* the worker's, for log lines */
    struct snap_ref *cur;    /* the copy of the newest generation (owns a reference) */
    struct rest_hold *holds; /* responses reading copies (each owns a reference) */
    int64_t sweep_ms;        /* next deadline sweep of holds */
};

/* snap_cache_init - an empty cache for worker index reading snap; now_ms is
 * the worker's clock (must outlive the cache), deadline_ms --rest-deadline. */
void snap_cache_init(struct snap_cache *c, struct snapshot *snap, const int64_t *now_ms,
                     int64_t deadline_ms, unsigned index);

/* snap_cache_set_deadline - a new --rest-deadline (a reload), for the responses
 * begun from now on (one in flight keeps the deadline it started with). */
static inline void
snap_cache_set_deadline(struct snap_cache *c, int64_t deadline_ms)
{
    c->deadline_ms = deadline_ms;
}

/* snap_cache_current - the copy of the newest snapshot generation, copied
 * once per generation (copying a new one may cut the readers of the oldest);
 * NULL (logged) if the snapshot cannot be had.  The cache keeps the
 * reference: valid until the next snap_cache call. */
struct snap_ref *snap_cache_current(struct snap_cache *c);

/* snap_cache_blob - the bytes of ref's copy (a valid snapshot blob). */
const uint8_t *snap_cache_blob(const struct snap_ref *ref);

/* snap_cache_response - a response whose body is len bytes at data inside
 * ref's copy, sent to conn; it holds a reference to the copy until
 * libmicrohttpd destroys it or it is cut (deadline, old generation).  NULL
 * when out of memory. */
struct MHD_Response *snap_cache_response(struct snap_cache *c, struct MHD_Connection *conn,
                                         struct snap_ref *ref, const void *data, size_t len);

/* snap_cache_next_ms - when snap_cache_expire next has work (INT64_MAX: never). */
int64_t snap_cache_next_ms(const struct snap_cache *c);

/* snap_cache_expire - cut the responses whose deadline passed (at the
 * worker's now_ms); call once per loop pass, cheap when nothing is due. */
void snap_cache_expire(struct snap_cache *c);

/* snap_cache_release - drop the current copy (at exit, after MHD_stop_daemon
 * freed the responses). */
void snap_cache_release(struct snap_cache *c);

#endif
