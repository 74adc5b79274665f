/*
 * snap_cache - see snap_cache.h.
 *
 * Snapshot bodies are served by a callback response (MHD copies blocks of the
 * worker's private copy into its send buffer: no JSON is rebuilt), through a
 * struct rest_hold that can let go of the copy at any time.  A copy stays
 * alive while it is current or while a response reads it, so slow readers
 * could pin one copy per generation; they are bounded two ways:
 *
 *  - each response has an absolute deadline, --rest-deadline per
 *    SNAP_CACHE_DEADLINE_UNIT_BYTES of body begun, checked once a second;
 *  - at most SNAP_CACHE_OLD_GENERATIONS_MAX generations older than the
 *    current one stay alive: when a new one is copied, the readers of the
 *    oldest are cut.
 *
 * Cutting a response drops its reference at once (the copy is freed when its
 * last reader is cut, whatever the socket does) and shuts the socket down with
 * a zero linger, so libmicrohttpd sees the hang-up in its next run, closes the
 * connection (the client gets a reset: the body is visibly incomplete) and the
 * kernel drops the queued bytes.  Should the reader callback run first, it ends
 * the response with an error.
 */
#include "build_config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "shm/snapshot.h"
#include "common/log.h"
#include "worker/snap_cache.h"

/* A response may take --rest-deadline per this many bytes of body begun: a
 * small one gets the plain deadline, a large one waits for a slow link (at
 * the default 30 s, about 70 KB/s: a 32 MiB list gets 8.5 minutes). */
#define SNAP_CACHE_DEADLINE_UNIT_BYTES (2 * 1024 * 1024)
/* How often deadlines are checked: a response is cut at most this late. */
#define SNAP_CACHE_SWEEP_MS 1000
/* Bytes libmicrohttpd asks the reader callback for at a time (the response's
 * own buffer, allocated with it). */
#define SNAP_CACHE_BLOCK_BYTES (64 * 1024)

/* A worker's private copy of one snapshot generation. */
struct snap_ref {
    unsigned refs; /* the cache's own reference (while current) + one per rest_hold */
    uint64_t gen;
    size_t len;
    uint8_t *blob;
    struct snap_ref *older, *newer; /* live generations; the newest is c->cur */
};

/* One REST response that reads a snapshot copy; libmicrohttpd owns it (the
 * response's callback argument) and frees it through hold_free. */
struct rest_hold {
    struct rest_hold *prev, *next; /* c->holds */
    struct snap_cache *c;
    struct snap_ref *ref; /* NULL once cut */
    size_t off, len;      /* the body: ref->blob[off, off + len) */
    int fd;               /* the connection's socket (MHD's; never closed here), or -1 */
    int64_t deadline_ms;
};

void
snap_cache_init(struct snap_cache *c, struct snapshot *snap, const int64_t *now_ms,
                int64_t deadline_ms, unsigned index)
{
    *c = (struct snap_cache){
        .snap = snap, .now_ms = now_ms, .deadline_ms = deadline_ms, .index = index};
}

const uint8_t *
snap_cache_blob(const struct snap_ref *ref)
{
    return ref->blob;
}

static void
snap_ref_put(struct snap_ref *r)
{
    if (r != NULL && --r->refs == 0) {
        if (r->older != NULL)
            r->older->newer = r->newer;
        if (r->newer != NULL)
            r->newer->older = r->older;
        free(r->blob);
        free(r);
    }
}

void
snap_cache_release(struct snap_cache *c)
{
    snap_ref_put(c->cur);
    c->cur = NULL;
}

/* Let go of the copy now and make libmicrohttpd close the connection in its
 * next run (the hang-up wakes its epoll, readable or not); with a zero linger
 * its close() resets the connection and frees the queued bytes. */
static void
hold_cut(struct rest_hold *h)
{
    snap_ref_put(h->ref);
    h->ref = NULL;
    if (h->fd < 0)
        return; /* the reader callback ends it, or MHD's idle timeout */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(h->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        log_warn("worker %u: setsockopt(SO_LINGER)", h->c->index);
    if (shutdown(h->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("worker %u: shutdown(REST connection)", h->c->index);
}

static ssize_t
hold_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct rest_hold *h = cls;
    if (h->ref != NULL && *h->c->now_ms >= h->deadline_ms)
        hold_cut(h);
    if (h->ref == NULL || pos >= h->len)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* cut: MHD closes the connection */
    size_t n = h->len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, h->ref->blob + h->off + (size_t)pos, n);
    return (ssize_t)n;
}

static void
hold_free(void *cls)
{
    struct rest_hold *h = cls;
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        h->c->holds = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    snap_ref_put(h->ref);
    free(h);
}

struct MHD_Response *
snap_cache_response(struct snap_cache *c, struct MHD_Connection *conn, struct snap_ref *ref,
                    const void *data, size_t len)
{
    struct rest_hold *h = malloc(sizeof(*h));
    if (h == NULL)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *h = (struct rest_hold){
        .next = c->holds,
        .c = c,
        .ref = ref,
        .off = (size_t)((const uint8_t *)data - ref->blob),
        .len = len,
        .fd = ci != NULL ? ci->connect_fd : -1,
        .deadline_ms =
            *c->now_ms + c->deadline_ms * (1 + (int64_t)(len / SNAP_CACHE_DEADLINE_UNIT_BYTES)),
    };
    if (c->holds != NULL)
        c->holds->prev = h;
    c->holds = h;
    ref->refs++;
    size_t block = len < SNAP_CACHE_BLOCK_BYTES ? (len > 0 ? len : 1) : SNAP_CACHE_BLOCK_BYTES;
    struct MHD_Response *r = MHD_create_response_from_callback(len, block, hold_read, h, hold_free);
    if (r == NULL)
        hold_free(h);
    return r;
}

/* The previous current generation just became old: cut the readers of the
 * oldest generations beyond SNAP_CACHE_OLD_GENERATIONS_MAX.  Returns how many
 * old generations stay alive. */
static unsigned
cut_old_generations(struct snap_cache *c)
{
    for (;;) {
        unsigned n = 0;
        struct snap_ref *oldest = NULL;
        for (struct snap_ref *g = c->cur->older; g != NULL; g = g->older, n++)
            oldest = g;
        if (n <= SNAP_CACHE_OLD_GENERATIONS_MAX)
            return n;
        /* Only rest_holds reference an old generation: cutting them all frees it. */
        uint64_t gen = oldest->gen;
        unsigned refs = oldest->refs, cut = 0;
        for (struct rest_hold *h = c->holds; h != NULL && cut < refs; h = h->next)
            if (h->ref == oldest) {
                cut++;
                hold_cut(h); /* the last one frees oldest */
            }
        if (cut != refs)
            panic("worker %u: snapshot generation %" PRIu64 " has %u references, %u readers",
                  c->index, gen, refs, cut);
        log_debug("worker %u: cut %u REST response(s) of snapshot generation %" PRIu64
                  " (more than %d older generations)",
                  c->index, cut, gen, SNAP_CACHE_OLD_GENERATIONS_MAX);
    }
}

int64_t
snap_cache_next_ms(const struct snap_cache *c)
{
    return c->holds != NULL ? c->sweep_ms : INT64_MAX;
}

void
snap_cache_expire(struct snap_cache *c)
{
    int64_t now = *c->now_ms;
    if (c->holds == NULL || now < c->sweep_ms)
        return;
    c->sweep_ms = now + SNAP_CACHE_SWEEP_MS;
    unsigned cut = 0;
    for (struct rest_hold *h = c->holds; h != NULL; h = h->next)
        if (h->ref != NULL && now >= h->deadline_ms) {
            hold_cut(h);
            cut++;
        }
    if (cut > 0)
        log_debug("worker %u: cut %u REST response(s) past their deadline", c->index, cut);
}

struct snap_ref *
snap_cache_current(struct snap_cache *c)
{
    uint64_t known = c->cur != NULL ? c->cur->gen : 0;
    uint8_t *blob;
    size_t len;
    uint64_t gen;
    enum snapshot_status st = snapshot_copy(c->snap, known, &blob, &len, &gen);
    if (st == SNAPSHOT_UNCHANGED)
        return c->cur;
    if (st != SNAPSHOT_OK) {
        log_warnx("cannot copy the snapshot (%s)", st == SNAPSHOT_BUSY ? "busy" : "out of memory");
        return NULL;
    }
    struct snap_ref *r = malloc(sizeof(*r));
    if (r == NULL || !snapshot_blob_valid(blob, len)) {
        if (r != NULL)
            log_warnx("snapshot generation %" PRIu64 " is malformed", gen);
        free(r);
        free(blob);
        return NULL;
    }
    *r = (struct snap_ref){.refs = 1, .gen = gen, .len = len, .blob = blob, .older = c->cur};
    if (c->cur != NULL)
        c->cur->newer = r;
    snap_cache_release(c); /* freed now unless responses still read it */
    c->cur = r;
    unsigned old = cut_old_generations(c);
    log_debug("worker %u: snapshot generation %" PRIu64 " copied (%zu bytes), %u older still read",
              c->index, gen, len, old);
    return r;
}
