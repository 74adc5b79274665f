/*
 * persona_dir - watch the personas directory and feed the store.
 *
 * Linux: inotify reports finished writes (IN_CLOSE_WRITE) and renames/deletes;
 * only those files are re-read, so a half-written file is never parsed because
 * of its own events.  Queue overflow, or a change to a name that is not itself a
 * candidate but may stand for many (a directory, a Kubernetes ConfigMap's
 * "..data" symlink swap), triggers a full rescan.  Everywhere: a periodic full
 * rescan is the safety net, and the only mechanism without inotify.
 *
 * The directory itself may go (removed, moved away, replaced by another one,
 * unmounted): seen by inotify (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT) or
 * when the path, opened for a scan or a batch of notifications, no longer
 * names the directory watched.
 * It is then "missing": the old directory is let go, the store keeps the last
 * state (the caller commits nothing meanwhile), and persona_dir_retry reopens
 * the path with back-off (100 ms doubling to 5 s); once it is back, the caller
 * rescans and commits, so the differences become events as for any rescan.
 * Each transition is logged once.
 */
#ifndef PERSONAD_PERSONA_DIR_H
#define PERSONAD_PERSONA_DIR_H

#include <stdint.h>
#include <sys/types.h>

#include "store.h"

#define PERSONA_DIR_RETRY_MIN_MS 100
#define PERSONA_DIR_RETRY_MAX_MS 5000

struct persona_dir {
    int dir_fd;             /* O_DIRECTORY during a scan or batch, else -1; owned */
    int notify_fd;          /* inotify fd or -1, owned */
    dev_t dev;              /* the directory watched */
    ino_t ino;              /* with dev */
    struct store *st;       /* not owned */
    const char *path;       /* not owned */
    int missing;            /* the directory at path is gone; see persona_dir_retry */
    int64_t retry_at_ms;    /* missing: next attempt to reopen path (clock_now_ms) */
    int64_t retry_delay_ms; /* missing: the back-off */
};

/* persona_dir_open - check that path is a readable directory and start
 * watching it.  Returns 0, or -1 with a message in msg (the directory is
 * missing or unreadable). */
int persona_dir_open(struct persona_dir *pd, const char *path, struct store *st, char *msg,
                     size_t msg_size);

void persona_dir_close(struct persona_dir *pd);

/* persona_dir_fd - fd to poll for changes, or -1 (no inotify, or missing). */
int persona_dir_fd(const struct persona_dir *pd);

/* persona_dir_on_notify - read one buffer of pending notifications (at most a
 * few hundred) and update the store; call again while the fd stays readable.
 * Stops early when store_interrupted says so, or when the directory itself is
 * gone (then missing).  Returns 1 if a full rescan is needed, else 0. */
int persona_dir_on_notify(struct persona_dir *pd);

/* persona_dir_rescan - full rescan, after checking that the path still names
 * the directory watched (if not, it is missing).  Logs on failure, but not
 * when missing or interrupted (store_interrupted).  Returns 0 or -1. */
int persona_dir_rescan(struct persona_dir *pd);

/* persona_dir_missing - 1 while the directory is gone (see above). */
int persona_dir_missing(const struct persona_dir *pd);

/* persona_dir_retry - when missing and the back-off has passed at now_ms, try
 * to reopen and watch the path.  Returns 1 if it is back (rescan and commit
 * now), else 0. */
int persona_dir_retry(struct persona_dir *pd, int64_t now_ms);

/* persona_dir_retry_now - when missing, make the next persona_dir_retry try at
 * once (SIGHUP). */
void persona_dir_retry_now(struct persona_dir *pd);

/* persona_dir_next_retry_ms - when the next retry is due, or INT64_MAX. */
int64_t persona_dir_next_retry_ms(const struct persona_dir *pd);

#endif
