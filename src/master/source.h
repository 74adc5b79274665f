/*
 * source - where persona records come from: what the master's loop drives.
 *
 * A source feeds the store (store.h) by key: store_put for new content,
 * store_remove for a record that is gone, and for a full resync store_sync_begin,
 * store_put or store_touch per record still there, store_sync_end (or
 * store_sync_cancel when the listing stopped part-way).  It decides what its
 * keys are, what it reads and what it warns about; the store parses, keeps the
 * last good version and turns the differences into events at store_commit,
 * which the master calls whenever an operation below returns "commit".
 *
 * The master polls each source's fd (if it has one), calls on_ready when it
 * is readable and on_timer on every turn of its loop, sleeps at most until the
 * earliest next_timer_ms, asks every source to rescan on SIGHUP, ORs their
 * flags into the snapshot header (what /healthz reports), and closes them at
 * exit and in every forked worker.  Operations run in the master's one
 * thread and must not block for long: they check store_interrupted between
 * records.  Implementations: source_dir.h (the personas directory),
 * source_kube.h (a Kubernetes API, through a child process).
 */
#ifndef PERSONAD_SOURCE_H
#define PERSONAD_SOURCE_H

#include <stdint.h>

struct source;

/* What on_ready and on_timer return for a commit of the baseline. */
#define SOURCE_COMMIT_BASELINE 2

struct source_ops {
    /* fd - the descriptor to poll for input, or -1 (none now; asked again on
     * every turn of the loop, so it may change). */
    int (*fd)(const struct source *s);
    /* on_ready - the fd is readable: take one bounded batch of input (the
     * loop comes back while it stays readable).  Returns 1 to commit,
     * SOURCE_COMMIT_BASELINE to commit without events (a first listing that
     * arrived after start-up), else 0. */
    int (*on_ready)(struct source *s);
    /* rescan - resync everything now (start-up, SIGHUP).  Returns 0 (commit)
     * or -1 (nothing to commit: failed, interrupted, or not possible now; a
     * source that is retrying should retry at once). */
    int (*rescan)(struct source *s);
    /* next_timer_ms - when on_timer has something to do (clock_now_ms
     * time), or INT64_MAX. */
    int64_t (*next_timer_ms)(const struct source *s);
    /* on_timer - do what is due at now_ms (called on every turn, due or not).
     * Returns 1 to commit, SOURCE_COMMIT_BASELINE (as on_ready), else 0. */
    int (*on_timer)(struct source *s, int64_t now_ms);
    /* flags - SNAP_FLAG_* bits this source wants set (e.g. "missing"). */
    uint32_t (*flags)(const struct source *s);
    /* close - release every descriptor and all memory, with no other I/O:
     * also called in a forked worker, whose copies must go. */
    void (*close)(struct source *s);
};

/* The first member of every implementation's struct. */
struct source {
    const struct source_ops *ops;
    const char *name; /* for log lines: the personas directory's path */
};

#endif
