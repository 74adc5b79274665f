/*
 * stats - the daemon's counters in shared memory: one slot per process
 * (slot 0: the master, slot 1 + i: worker i), each written only by its own
 * process, summed by whichever worker answers GET /metrics.
 *
 * Layout (WARNING: shared memory; change it and bump STATS_VERSION):
 *
 *   struct stats_header          the master's: start time, each slot's pid
 *   (padding to a page)
 *   struct stats_slot[nslots]    one page each (page_bytes)
 *
 * (With --max-connections-per-ip, page_bytes is a larger power of two and a
 * worker's slot holds its peers table after the values' page: peers.h.)
 *
 * Every value is an _Atomic uint64_t, written by one process only, with a
 * relaxed load and store (no read-modify-write: an increment is a plain add,
 * never a locked instruction, and a reader of a read-only mapping only
 * loads).  On i386 the 64-bit atomic loads and stores are single 8-byte
 * accesses (x87/SSE), so a reader never sees a torn value.  A scrape sums one
 * value over the slots: O(processes), no lock, never waiting for a writer.
 *
 * Counters live in the slot, not in the process: a respawned worker takes over
 * its predecessor's slot and continues its counters (stats_slot_takeover), so
 * no counter ever goes backwards.  Gauges (open connections, the last event
 * seen) describe a live process only: a slot counts for them while its pid is
 * the one the master recorded for it (stats_slot_live).
 *
 * WARNING: a worker maps every page read-only except its own slot's
 * (stats_map_worker).  shm protections are per mapping, so a worker could
 * still grow its own writable mapping over the following slots with mremap:
 * nothing the master reads or acts on lives here (the master writes its
 * header and slot 0 and never reads a worker's slot), so a compromised worker
 * can only falsify figures, never reach the master.
 */
#ifndef PERSONAD_STATS_H
#define PERSONAD_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_MAGIC 0x54535250u /* "PRST" */
#define STATS_VERSION 2u
#define STATS_MAX_SLOTS 257u /* the master and up to 256 workers */
#define STATS_SLOT_VALUES 128u

/* What each value of a slot means.  The master uses the STATS_M_* ones in
 * slot 0, a worker the others in its own slot. */
enum stats_id {
    /* master: counters */
    STATS_M_WORKER_RESTARTS,
    STATS_M_EVENTS_ADDED,
    STATS_M_EVENTS_UPDATED,
    STATS_M_EVENTS_DELETED,
    STATS_M_SNAPSHOT_PUBLISHES,
    STATS_M_PERSONA_FILE_ERRORS,
    /* master: gauges */
    STATS_M_PERSONAS_VALID,
    STATS_M_PERSONAS_INVALID,
    STATS_M_SNAPSHOT_BYTES,

    /* worker: gauges */
    STATS_PID,      /* the process writing this slot now */
    STATS_WS_OPEN,  /* WebSocket connections in the set (open or closing) */
    STATS_SSE_OPEN, /* Server-Sent Events connections in the set (open or closing) */
    STATS_SEEN_SEQ, /* the newest ring event this worker has read */
    /* worker: counters */
    STATS_WS_OPENED,
    /* Closes personad began, by the code of the close frame it sent (an
     * echoed peer close counts under the code it echoed). */
    STATS_WS_CLOSE_1000,
    STATS_WS_CLOSE_1001,
    STATS_WS_CLOSE_1002,
    STATS_WS_CLOSE_1007,
    STATS_WS_CLOSE_1009,
    STATS_WS_CLOSE_1013,
    STATS_WS_CLOSE_OTHER, /* an echoed code of the peer's (3000-4999, 1003, ...) */
    /* Connections ended without a close handshake, by reason. */
    STATS_WS_DROP_PEER_GONE,      /* EOF or read error while open */
    STATS_WS_DROP_WRITE_FAILED,   /* writev failed */
    STATS_WS_DROP_WRITE_DEADLINE, /* no output progress for --write-deadline */
    STATS_WS_DROP_LAPPED,         /* lapped in the middle of an event */
    STATS_WS_DROP_EPOLL,          /* epoll_ctl(MOD) failed */
    STATS_WS_DROP_NO_MEMORY,      /* no memory for the protocol's state */
    STATS_WS_DROP_WORKER_EXIT,    /* open when the worker died (counted by its successor) */
    STATS_FRAMES_WRITTEN,         /* event messages written whole */
    STATS_BYTES_WRITTEN,          /* bytes written to stream connections */
    STATS_EVENTS_READ,            /* ring events read and encoded */
    STATS_RING_OVERRUNS,          /* the worker was lapped by the ring */
    /* Server-Sent Events, as the STATS_WS_* ones (the goodbye: a closing comment). */
    STATS_SSE_OPENED,
    STATS_SSE_CLOSE_TOO_SLOW, /* behind the window or over the queue cap */
    STATS_SSE_CLOSE_SHUTDOWN, /* the worker is shutting down */
    STATS_SSE_DROP_PEER_GONE,
    STATS_SSE_DROP_WRITE_FAILED, /* writev failed, or the response head could not be queued */
    STATS_SSE_DROP_WRITE_DEADLINE,
    STATS_SSE_DROP_LAPPED,
    STATS_SSE_DROP_EPOLL,
    STATS_SSE_DROP_WORKER_EXIT,
    /* Opened connections that asked for a position (/ws?since=&epoch=, SSE's
     * Last-Event-ID or since=&epoch=): replayed from it, or sent a resync. */
    STATS_WS_RESUME_REPLAYED,
    STATS_WS_RESUME_RESYNC,
    STATS_SSE_RESUME_REPLAYED,
    STATS_SSE_RESUME_RESYNC,
    /* HTTP responses queued, by status */
    STATS_HTTP_101,
    STATS_HTTP_200,
    STATS_HTTP_304,
    STATS_HTTP_400,
    STATS_HTTP_404,
    STATS_HTTP_405,
    STATS_HTTP_426,
    STATS_HTTP_503,
    STATS_HTTP_OTHER,
    /* Appended: the values above keep their places. */
    STATS_WRITES,        /* writev calls on stream connections (one carries >= 1 frame) */
    STATS_FANOUT_PASSES, /* fan-out passes over the set (fewer than doorbells when coalescing) */
    STATS_FANOUT_BEHIND, /* passes that ended with new events already waiting (behind) */

    STATS_IDS
};
_Static_assert(STATS_IDS <= STATS_SLOT_VALUES, "a slot holds every value");

struct stats_header {
    uint32_t magic;
    uint32_t version;
    uint32_t nslots;
    uint32_t page_bytes;
    uint64_t start_time_s; /* the master's start, seconds since the epoch */
    uint8_t pad[64 - 24];
    /* The pid the master started in each slot (0: none running); slot 0 is
     * the master's own.  Written by the master only. */
    _Atomic uint64_t pid[STATS_MAX_SLOTS];
};

struct stats_slot {
    _Atomic uint64_t v[STATS_SLOT_VALUES];
};

_Static_assert(sizeof(struct stats_header) == 64 + 8 * STATS_MAX_SLOTS, "no padding");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");

/* WARNING: like struct ring, the sizes are this process's own copy (a worker
 * inherits the master's); the shared header's are never read back. */
struct stats {
    struct stats_header *hdr; /* mapped shared memory, not owned */
    uint8_t *slots;           /* the first slot */
    uint32_t nslots;
    uint32_t page_bytes;
};

/* stats_bytes - bytes of shared memory for nslots slots of page_bytes (a
 * power of two >= 4096) each, in 64 bits; SIZE_MAX when that does not fit a
 * size_t or nslots is 0 or over STATS_MAX_SLOTS. */
size_t stats_bytes(uint32_t nslots, uint32_t page_bytes);

/* stats_init - format fresh, zero-filled memory of stats_bytes(nslots,
 * page_bytes) (the master, before forking). */
void stats_init(struct stats *s, void *mem, uint32_t nslots, uint32_t page_bytes,
                uint64_t start_time_s);

/* stats_slot - slot i (< s->nslots). */
static inline struct stats_slot *
stats_slot(const struct stats *s, uint32_t i)
{
    return (struct stats_slot *)(void *)(s->slots + (size_t)i * s->page_bytes);
}

/* stats_add - add n to value id of the caller's own slot. */
static inline void
stats_add(struct stats_slot *sl, enum stats_id id, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&sl->v[id], memory_order_relaxed);
    atomic_store_explicit(&sl->v[id], v + n, memory_order_relaxed);
}

/* stats_sub - a gauge of the caller's own slot goes down by n. */
static inline void
stats_sub(struct stats_slot *sl, enum stats_id id, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&sl->v[id], memory_order_relaxed);
    atomic_store_explicit(&sl->v[id], v - n, memory_order_relaxed);
}

/* stats_set - set value id of the caller's own slot. */
static inline void
stats_set(struct stats_slot *sl, enum stats_id id, uint64_t v)
{
    atomic_store_explicit(&sl->v[id], v, memory_order_relaxed);
}

/* stats_get - read value id of any slot (loads only). */
static inline uint64_t
stats_get(const struct stats_slot *sl, enum stats_id id)
{
    return atomic_load_explicit(&sl->v[id], memory_order_relaxed);
}

/* stats_set_pid - the master records who runs slot i (0: nobody). */
void stats_set_pid(struct stats *s, uint32_t i, uint64_t pid);

/* stats_slot_live - 1 if the process the master started in slot i runs and
 * has taken the slot over. */
int stats_slot_live(const struct stats *s, uint32_t i);

/* stats_sum - value id summed over slots [first, end). */
uint64_t stats_sum(const struct stats *s, enum stats_id id, uint32_t first, uint32_t end);

/* stats_sum_live - the same over the live slots only (gauges). */
uint64_t stats_sum_live(const struct stats *s, enum stats_id id, uint32_t first, uint32_t end);

/* stats_slot_takeover - a new worker process pid starts in slot sl: the
 * connections its predecessor still had open are counted as dropped
 * (STATS_WS_DROP_WORKER_EXIT, STATS_SSE_DROP_WORKER_EXIT), the gauges start from zero (seen_seq:
 * the ring head it starts at), the counters carry on. */
void stats_slot_takeover(struct stats_slot *sl, uint64_t pid, uint64_t seen_seq);

/* stats_map_worker - in a new worker of slot own: replace the mapping (from
 * stats_init's memory, bytes long) except own's page in place with read-only
 * mappings of ro_fd, then close ro_fd.  0, or -1 with errno (ro_fd is closed
 * either way). */
int stats_map_worker(const struct stats *s, uint32_t own, int ro_fd);

#endif
