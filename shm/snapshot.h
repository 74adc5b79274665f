/*
 * snapshot - the persona state that the workers serve over REST, published by the
 * master in shared memory (layout: snapshot_layout.h).
 *
 * One writer (master), many readers (workers), no locks: the writer fills the
 * inactive half of a double buffer and then flips the generation; a reader copies
 * the active half and re-checks its seqlock word, retrying if the writer lapped
 * it.  A dead or stalled master never blocks a reader.  Blobs are immutable once
 * published; readers keep private copies (one per generation) and hand out
 * references to them.
 */
#ifndef PERSONAD_SNAPSHOT_H
#define PERSONAD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot_layout.h"

/* WARNING: like struct ring, the sizes that index shared memory (half_bytes)
 * are this process's copy, taken at init/attach; the header is never trusted
 * after that, and every length read from it is checked against the copy. */
struct snapshot {
    struct snap_header *hdr; /* mapped shared memory, not owned (read-only in workers) */
    uint8_t *halves;         /* hdr + 1 */
    uint64_t half_bytes;     /* cached at init/attach; never re-read from the header */
    uint64_t gen;            /* writer only: the newest generation it published */
    char epoch[SNAP_EPOCH_MAX + 1]; /* cached at set/attach ("" if none); a worker inherits it */
};

enum snapshot_status {
    SNAPSHOT_OK = 0,
    SNAPSHOT_UNCHANGED = 1,
    SNAPSHOT_TOOBIG = -1, /* blob larger than a half: not published */
    SNAPSHOT_BUSY = -2,   /* reader lapped too often in a row; try later */
    SNAPSHOT_NOMEM = -3,
};

/* One cluster as given to snapshot_build: sorted by name before the call. */
struct snap_item {
    const char *name;
    uint32_t name_len;
    const char *obj; /* {"name":...,"spec":...,"status":...} */
    uint32_t obj_len;
    uint64_t etag; /* snapshot_hash(obj), or 0 to have snapshot_build compute it */
};

/* snapshot_bytes - shared memory for two halves of half_bytes, computed in 64
 * bits; SIZE_MAX when that does not fit a size_t. */
size_t snapshot_bytes(uint64_t half_bytes);

/* snapshot_init - format snapshot_bytes(half_bytes) bytes at mem (writer). */
void snapshot_init(struct snapshot *s, void *mem, uint64_t half_bytes);

/* snapshot_attach - use memory formatted by snapshot_init (mem_bytes long,
 * possibly mapped read-only); -1 if the header is not ours or its halves would
 * not fit.  The header is read once here. */
int snapshot_attach(struct snapshot *s, void *mem, size_t mem_bytes);

/* snapshot_set_epoch - record this run's epoch in the header and in s (writer,
 * before any reader forks).  -1 if epoch is not 1-32 of [A-Za-z0-9_-]. */
int snapshot_set_epoch(struct snapshot *s, const char *epoch);

/* snapshot_epoch - the epoch ("" if none was set); process-private, never re-read. */
static inline const char *
snapshot_epoch(const struct snapshot *s)
{
    return s->epoch;
}

/* snapshot_epoch_valid - 1 if len bytes at e are an epoch: 1-32 of [A-Za-z0-9_-]. */
int snapshot_epoch_valid(const char *e, size_t len);

/* snapshot_hash - FNV-1a 64 of bytes (for ETags). */
uint64_t snapshot_hash(const void *data, size_t len);

/* snapshot_list_etag - the list's ETag: a hash of seq and every entry's ETag,
 * so it changes whenever the list JSON does, at O(count) instead of O(bytes). */
uint64_t snapshot_list_etag(const uint8_t *blob);

/* snapshot_build - serialise items into a malloc'd blob (caller frees).
 * Returns NULL on allocation failure or when a blob would exceed 4 GiB. */
uint8_t *snapshot_build(const struct snap_item *items, uint32_t count, uint64_t seq,
                        size_t *blob_len);

/* snapshot_build_epoch - snapshot_build with "epoch":"E" after "seq" in the list
 * JSON (epoch NULL or "": none) and the epoch hashed into the list's ETag, so
 * a list of another run never matches an If-None-Match. */
uint8_t *snapshot_build_epoch(const struct snap_item *items, uint32_t count, uint64_t seq,
                              const char *epoch, size_t *blob_len);

/* snapshot_publish - copy a blob into the inactive half and make it current.
 * Writer only.  SNAPSHOT_TOOBIG leaves the current snapshot in place. */
enum snapshot_status snapshot_publish(struct snapshot *s, const void *blob, size_t len);

/* snapshot_generation - the newest published generation (0 = none yet). */
uint64_t snapshot_generation(const struct snapshot *s);

/* snapshot_set_flags - set the SNAP_FLAG_* word (writer only). */
void snapshot_set_flags(struct snapshot *s, uint32_t flags);

/* snapshot_flags - the SNAP_FLAG_* word (0 after snapshot_init). */
uint32_t snapshot_flags(const struct snapshot *s);

/* snapshot_copy - if the published generation differs from known_gen, copy its
 * blob into a malloc'd buffer (*blob, caller frees) and set *gen and *len.
 * Returns SNAPSHOT_OK, SNAPSHOT_UNCHANGED, SNAPSHOT_BUSY or SNAPSHOT_NOMEM.
 * Loads only (no atomic read-modify-write): works on a read-only mapping.
 * The blob is whole but not validated: see snapshot_blob_valid. */
enum snapshot_status snapshot_copy(const struct snapshot *s, uint64_t known_gen, uint8_t **blob,
                                   size_t *len, uint64_t *gen);

/* Blobs live in malloc'd buffers (8-byte aligned) and their header and index sit
 * at 8-byte offsets, so these views are aligned even on strict-alignment CPUs.
 * The shared-memory halves are only ever memcpy'd, never viewed. */
static inline const struct snap_blob *
snapshot_blob_header(const uint8_t *blob)
{
    return (const struct snap_blob *)(const void *)blob;
}

static inline const struct snap_entry *
snapshot_blob_entries(const uint8_t *blob)
{
    return (const struct snap_entry *)(const void *)(blob + sizeof(struct snap_blob));
}

/* snapshot_blob_valid - check a private blob's header and index bounds (readers
 * check once per copy, so lookups can trust offsets).  Offsets plus lengths are
 * summed in 64 bits, so they cannot wrap on a 32-bit target. */
int snapshot_blob_valid(const uint8_t *blob, size_t len);

/* snapshot_name_cmp - the order of the index: bytes (memcmp), shorter first on a
 * common prefix.  Whoever sorts items for snapshot_build uses this. */
int snapshot_name_cmp(const void *a, size_t alen, const void *b, size_t blen);

/* snapshot_find - the entry for name in a valid blob, or NULL.  O(log n). */
const struct snap_entry *snapshot_find(const uint8_t *blob, const char *name, size_t name_len);

#endif
