/*
 * source_dir - the personas directory as a source (source.h): watches it and
 * feeds the store one record per file, keyed by the file name.
 *
 * Which entries are read: names ending in ".json" that do not start with '.'
 * (source_dir_is_candidate).  Each is resolved relative to the directory and
 * never outside it: a symlink is followed only while it stays beneath the
 * directory (relative targets, as in a Kubernetes ConfigMap volume: name.json
 * -> ..data/name.json, ..data -> ..2026_...).  Only regular files are opened:
 * a FIFO or device node is recognised by fstatat before any open() could
 * block or run a driver.  An entry that is not read (not regular, a link
 * leading out, unreadable) is warned about once per reason and its record
 * removed; what a file holds is the store's (store_put: bad content warned
 * about once per content, the last good version kept).
 *
 * Linux: inotify reports finished writes (IN_CLOSE_WRITE) and renames/deletes;
 * only those files are re-read, so a half-written file is never parsed because
 * of its own events.  Queue overflow, or a change to a name that is not itself a
 * candidate but may stand for many (a directory, a Kubernetes ConfigMap's
 * "..data" symlink swap), triggers a full rescan.  Everywhere: a periodic full
 * rescan (a store sync: files unchanged by size, mtime, ctime and inode are
 * not read again) is the safety net, and the only mechanism without inotify.
 * A rescan then applies the notifications queued by the end of its listing,
 * so its commit holds every change made before one it saw (events in the
 * order of the changes); if one of them asks for a rescan, the timer runs
 * another at once.
 *
 * The directory itself may go (removed, moved away, replaced by another one,
 * unmounted): seen by inotify (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT) or
 * when the path, opened for a scan or a batch of notifications, no longer
 * names the directory watched.
 * It is then "missing": the old directory is let go, the store keeps the last
 * state (nothing is committed meanwhile), the source's flags say
 * SNAP_FLAG_DIR_MISSING, and its timer reopens the path with back-off (100 ms
 * doubling to 5 s); once it is back, it is rescanned and committed, so the
 * differences become events as for any rescan.  Each transition is logged
 * once.
 */
#ifndef PERSONAD_SOURCE_DIR_H
#define PERSONAD_SOURCE_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "master/source.h"
#include "master/store.h"

#define SOURCE_DIR_RETRY_MIN_MS 100
#define SOURCE_DIR_RETRY_MAX_MS 5000

struct source_dir;

/* source_dir_open - check that path (not copied) is a readable directory, start
 * watching it, and register with st as the source of "persona file"s.  A
 * full rescan runs every rescan_interval_ms, counted from the first rescan.
 * Returns the source (free with its close operation), or NULL with a message
 * in msg (the directory is missing or unreadable, or out of memory). */
struct source_dir *source_dir_open(const char *path, struct store *st, int64_t rescan_interval_ms,
                                   char *msg, size_t msg_size);

/* source_dir_set_interval - a new rescan interval (a reload): the next periodic
 * rescan is rescan_interval_ms from now. */
void source_dir_set_interval(struct source_dir *sd, int64_t rescan_interval_ms);

/* source_dir_source - sd as the master's loop drives it. */
struct source *source_dir_source(struct source_dir *sd);

/* source_dir_refresh - (re)read the entry name, as a notification about it
 * does: put it, or remove it when it is gone or no longer read.  Returns 0, or
 * -1 if the directory is missing. */
int source_dir_refresh(struct source_dir *sd, const char *name);

/* source_dir_is_candidate - 1 if a directory entry name may hold a persona:
 * ends in ".json", does not start with '.', has no '/'. */
int source_dir_is_candidate(const char *name);

#endif
