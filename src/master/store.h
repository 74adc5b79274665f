/*
 * store - the master's persona table: records by (source, key), the published
 * snapshot, and the diff between them that becomes events.
 *
 * The store knows nothing about where records come from.  A source (source.h;
 * the personas directory is source_dir) registers once (store_add_source) and
 * then hands over each record's bytes by key: the file name for the directory,
 * an object's name for a Kubernetes source.  store_put parses them and keeps
 * the last good version when they are bad, warning once per content;
 * store_remove forgets a record.  A full resync (the directory's rescan, a
 * Kubernetes relist) is a mark-and-sweep: store_sync_begin, store_put or
 * store_touch for every record still there, store_sync_end, which removes the
 * source's records that were neither put nor touched.  Whatever the source
 * could not read (I/O errors, which entries it looks at) is the source's to
 * warn about.
 *
 * Changes take effect at store_commit.  Invariant (read-your-event): it
 * publishes the snapshot that includes an event before it appends the event to
 * the ring, so a worker that sees event S can serve the state of S or newer;
 * and every event is serialised before that publish, so once a snapshot is out
 * nothing can fail: its events always follow it.
 */
#ifndef PERSONAD_STORE_H
#define PERSONAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"
#include "shm/snapshot.h"

#define STORE_SOURCES_MAX 8

struct store;

struct store_stats {
    uint64_t events;      /* events appended since start */
    uint32_t clusters;    /* clusters in the published snapshot */
    uint32_t records;     /* records held (put and not removed), every source */
    uint32_t bad_records; /* records whose current content is bad */
    uint64_t events_by_type[4]; /* events appended, by enum ring_event_type (1-3) */
    uint64_t publishes;         /* snapshots published */
    uint64_t snapshot_bytes;    /* bytes of the snapshot last published */
    uint64_t bad_contents;      /* contents found bad (each warned about once) */
};

/* store_new - an empty table publishing into snap and ring (not owned; they
 * are only used from the first store_commit on, so they may be initialised
 * after this). */
struct store *store_new(struct snapshot *snap, struct ring *ring);
void store_free(struct store *st);

/* store_add_source - register a source.  what (static) names one of its
 * records in log lines, followed by the key: "persona file" gives "persona
 * file a.json: invalid JSON; skipped".  When records claim the same cluster
 * name, the one of the source added first wins, then the smallest key
 * (strcmp).  Returns the source's id (0, 1, ...), or -1 when STORE_SOURCES_MAX
 * are registered. */
int store_add_source(struct store *st, const char *what);

/* store_put - the record src/key has the content data[0..len) (not
 * NUL-terminated, not kept): parse it (persona_parse); if it is bad, keep the
 * record's last good version and warn, once per content (the same bytes put
 * again are not news).  Marks the record for a sync in progress.  Returns 0,
 * or -1 if a new record could not be created (out of memory; logged, as
 * "<what> <key>: out of memory; skipped"). */
int store_put(struct store *st, int src, const char *key, const char *data, size_t len);

/* store_put_bad - src/key has new content the source could not fetch: why
 * (static, or a strerror string) says what stopped it, such as "file is larger
 * than 1 MiB".  Handled as a parse error would be; tag identifies that content
 * for the warn-once rule (a source without the bytes passes, say, a size).
 * Returns 0 or -1 as store_put. */
int store_put_bad(struct store *st, int src, const char *key, const char *why, uint64_t tag);

/* store_touch - src/key is unchanged: kept by the sync in progress without
 * being put again.  Returns 0, or -1 if there is no such record (put it). */
int store_touch(struct store *st, int src, const char *key);

/* store_remove - forget src/key (nothing if there is none).  Silent: the
 * source says why, if it wants to. */
void store_remove(struct store *st, int src, const char *key);

/* store_sync_begin - start a full resync of src: every record of src is
 * unmarked; store_put and store_touch mark it again. */
void store_sync_begin(struct store *st, int src);

/* store_sync_end - the resync of src saw everything: its records that were
 * neither put nor touched since store_sync_begin are removed (silently). */
void store_sync_end(struct store *st, int src);

/* store_sync_cancel - the resync of src stopped part-way (an interrupted or
 * failed listing): nothing is removed; what was put meanwhile stays. */
void store_sync_cancel(struct store *st, int src);

/* store_set_interrupt - the stop condition sources check between records
 * (store_interrupted): a stop request must not wait for a whole directory of
 * large files.  stop(arg) returns nonzero once stopping. */
void store_set_interrupt(struct store *st, int (*stop)(void *), void *arg);

/* store_interrupted - stop(arg) of store_set_interrupt; 0 without one. */
int store_interrupted(const struct store *st);

/* store_commit - compute the clusters the records now describe, and if they
 * differ from the published ones: serialise one event per difference
 * (deletions, then additions, then updates; each by name), publish the
 * snapshot, then append the events.  baseline != 0 publishes without events
 * (the initial scan).  Returns the number of events appended, or -1 if
 * nothing was published (out of memory, or a snapshot over --snapshot-max;
 * logged; the previous snapshot and the pending changes stay). */
int store_commit(struct store *st, int baseline);

/* store_publish_empty - publish an empty cluster list (start-up when the real
 * one does not fit --snapshot-max: serve something, keep retrying at each
 * change; the clusters then arrive as cluster.added).  0 or -1. */
int store_publish_empty(struct store *st);

void store_get_stats(const struct store *st, struct store_stats *out);

#endif
