/*
 * persona_dir - watch the personas directory and feed the store.
 *
 * Linux: inotify reports finished writes (IN_CLOSE_WRITE) and renames/deletes;
 * only those files are re-read, so a half-written file is never parsed because
 * of its own events.  Queue overflow, or a change to a name that is not itself a
 * candidate but may stand for many (a directory, a Kubernetes ConfigMap's
 * "..data" symlink swap), triggers a full rescan.  Everywhere: a periodic full
 * rescan is the safety net, and the only mechanism without inotify.
 */
#ifndef PERSONAD_PERSONA_DIR_H
#define PERSONAD_PERSONA_DIR_H

#include "store.h"

struct persona_dir {
    int dir_fd;       /* O_DIRECTORY, owned */
    int notify_fd;    /* inotify fd or -1, owned */
    struct store *st; /* not owned */
    const char *path; /* not owned */
};

/* persona_dir_open - open path and start watching it.  Returns 0, or -1 with a
 * message in msg (the directory is missing or unreadable). */
int persona_dir_open(struct persona_dir *pd, const char *path, struct store *st, char *msg,
                     size_t msg_size);

void persona_dir_close(struct persona_dir *pd);

/* persona_dir_fd - fd to poll for changes, or -1 (no inotify: rescan only). */
int persona_dir_fd(const struct persona_dir *pd);

/* persona_dir_on_notify - read one buffer of pending notifications (at most a
 * few hundred) and update the store; call again while the fd stays readable.
 * Returns 1 if a full rescan is needed, else 0. */
int persona_dir_on_notify(struct persona_dir *pd);

/* persona_dir_rescan - full rescan; logs on failure. Returns 0 or -1. */
int persona_dir_rescan(struct persona_dir *pd);

#endif
