/*
 * store - the master's persona table: one entry per persona file, the published
 * snapshot, and the diff between them that becomes events.
 *
 * Called by persona_dir (which decides which files to look at) and master.  The
 * store reads files relative to the personas directory fd it is given, and
 * never outside it: names with '/' are not candidates, and a symlink is
 * followed only while it stays beneath the directory (relative targets, as in a
 * Kubernetes ConfigMap volume: name.json -> ..data/name.json, ..data ->
 * ..2026_...).  Only regular files are opened: a FIFO or device node is
 * recognised by fstatat before any open() could block or run a driver.  A
 * file that is not read (not regular, a link leading out, unreadable) is
 * warned about once per reason and treated as absent.
 *
 * Invariant (read-your-event): store_commit publishes the snapshot that includes
 * an event before it appends the event to the ring, so a worker that sees event
 * S can serve the state of S or newer.
 */
#ifndef PERSONAD_STORE_H
#define PERSONAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../shm/ring.h"
#include "../shm/snapshot.h"

struct store;

struct store_stats {
    uint64_t events;    /* events appended since start */
    uint32_t clusters;  /* clusters in the published snapshot */
    uint32_t files;     /* candidate files read (not rejected) */
    uint32_t bad_files; /* files whose current content is bad */
};

/* store_new - an empty table publishing into snap and ring (not owned). */
struct store *store_new(struct snapshot *snap, struct ring *ring);
void store_free(struct store *st);

/* store_is_candidate - 1 if a directory entry name may hold a persona:
 * ends in ".json", does not start with '.', has no '/'. */
int store_is_candidate(const char *filename);

/* store_file_changed - (re)read filename in dir_fd: parse it, or forget it when it
 * is gone or no longer a regular file.  Logs a warning for a bad file (once per
 * content) or one that cannot be read (once per reason).  Changes take effect at
 * the next store_commit. */
void store_file_changed(struct store *st, int dir_fd, const char *filename);

/* store_rescan - read every candidate in dir_fd whose size, mtime or inode
 * changed, and forget files that are gone.  Returns 0, or -1 with errno if the
 * directory cannot be read, or EINTR if store_interrupted said stop (then
 * nothing is forgotten). */
int store_rescan(struct store *st, int dir_fd);

/* store_set_interrupt - have store_rescan (and the caller, through
 * store_interrupted) stop between files once stop(arg) returns nonzero: a stop
 * request must not wait for a whole directory of large files. */
void store_set_interrupt(struct store *st, int (*stop)(void *), void *arg);

/* store_interrupted - stop(arg) of store_set_interrupt; 0 without one. */
int store_interrupted(const struct store *st);

/* store_commit - compute the clusters the files now describe, and if they differ
 * from the published ones: publish the snapshot, then append one event per
 * difference (deletions, then additions, then updates; each by name).
 * baseline != 0 publishes without events (the initial scan).
 * Returns the number of events appended, or -1 if the snapshot could not be
 * published (logged; the previous snapshot and the pending changes stay). */
int store_commit(struct store *st, int baseline);

/* store_publish_empty - publish an empty cluster list (start-up when the real
 * one does not fit --snapshot-max: serve something, keep retrying at each
 * change; the clusters then arrive as cluster.added).  0 or -1. */
int store_publish_empty(struct store *st);

void store_get_stats(const struct store *st, struct store_stats *out);

#endif
