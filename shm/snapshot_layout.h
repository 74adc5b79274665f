/*
 * snapshot_layout - the REST snapshot in shared memory.
 *
 * WARNING: shared-memory layout; bump SNAP_VERSION on any change.
 *
 *   struct snap_header
 *   half 0: half_bytes bytes      } double buffer: the writer fills the half that
 *   half 1: half_bytes bytes      } readers are not told to use, then flips.
 *
 * A half holds one immutable blob, written by the master only:
 *
 *   struct snap_blob              fixed header
 *   struct snap_entry[count]      sorted by name (memcmp order)
 *   names                         raw cluster names (not JSON-escaped)
 *   list JSON                     {"clusters":[obj,obj,...],"seq":N,"epoch":"E"}
 *
 * Each cluster's {"name","spec","status"} object is a slice of the list JSON
 * (obj_off/obj_len), so the detail endpoint and the list share one copy.
 */
#ifndef PERSONAD_SNAPSHOT_LAYOUT_H
#define PERSONAD_SNAPSHOT_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define SNAP_MAGIC 0x50414e53u /* "SNAP" */
#define SNAP_VERSION 3u

/* Bits of snap_header.flags: the state of the data source, for /healthz. */
#define SNAP_FLAG_DIR_MISSING 1u /* personas directory gone: serving its last state */
#define SNAP_FLAG_KUBE_UNLISTED 2u /* the Kubernetes API not listed yet: nothing to serve */

/* The run's epoch (stream positions are "epoch:seq"): 1-32 of [A-Za-z0-9_-]. */
#define SNAP_EPOCH_MAX 32

struct snap_half_meta {
    /* Seqlock word: generation whose blob is in this half, 0 while being written. */
    _Atomic uint64_t gen;
    uint64_t blob_bytes;
};

struct snap_header {
    uint32_t magic;
    uint32_t version;
    uint64_t half_bytes;
    /* Newest published generation (1, 2, ...); its blob is in half gen & 1. */
    _Atomic uint64_t gen;
    /* SNAP_FLAG_*: written by the master whenever the state changes (apart from
     * the generations), read by workers. */
    _Atomic uint32_t flags;
    uint32_t pad0;
    struct snap_half_meta half[2];
    /* The epoch of this run of the master, written once before any worker is
     * forked (epoch_len 0: none set). */
    char epoch[SNAP_EPOCH_MAX];
    uint8_t epoch_len;
    uint8_t pad[31];
};

struct snap_blob {
    uint64_t seq;       /* last event included; 0 before any event */
    uint64_t list_etag; /* snapshot_list_etag: FNV-1a of seq and every entry's ETag */
    uint32_t count;     /* clusters */
    uint32_t names_off; /* offsets from the start of the blob */
    uint32_t list_off;
    uint32_t list_len;
};

struct snap_entry {
    uint32_t name_off; /* from the start of the blob */
    uint32_t name_len;
    uint32_t obj_off; /* from the start of the blob */
    uint32_t obj_len;
    uint64_t etag; /* FNV-1a of the object JSON */
};

_Static_assert(sizeof(struct snap_blob) == 32, "fixed blob header");
_Static_assert(sizeof(struct snap_entry) == 24, "fixed entry");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");

#endif
