/*
 * priv - --user/--group: who the daemon runs as once it holds what needs root.
 *
 * priv_resolve() looks the names up at start (before anything is bound), so an
 * unknown user or group, or a --user that a non-root process cannot become, is
 * an error with a message and exit status 1.  priv_drop() then changes a
 * process's credentials: the supplementary groups (the user's, by initgroups,
 * or none with --group), the group, the user, in that order, and checks that
 * the change sticks (the ids read back, and setuid(0) fails).  A process that
 * already runs as the target (a worker forked by a master that has dropped, or
 * --user naming oneself) only checks.
 */
#ifndef PERSONAD_PRIV_H
#define PERSONAD_PRIV_H

#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"

struct priv {
    int active; /* 0: no --user, nothing to do */
    uid_t uid;
    gid_t gid;
    int own_groups; /* 1: the user's supplementary groups (initgroups); 0: none */
    char user[256];
};

/* priv_resolve - fill p from cfg's --user/--group.  0, or -1 with msg set. */
int priv_resolve(struct priv *p, const struct config *cfg, char *msg, size_t msg_size);

/* priv_drop - become p's user and group (no-op unless p->active).  0, or -1 with
 * msg set (the process's credentials are then not to be trusted: exit). */
int priv_drop(const struct priv *p, char *msg, size_t msg_size);

#endif
