/*
 * pidfile - --pidfile=FILE for init scripts (start-stop-daemon --pidfile).
 *
 * At start pidfile_prepare checks FILE and writes the master's pid into a
 * temporary file beside it (so an unwritable directory is an error before
 * anything is served); once the workers run, pidfile_commit renames it into
 * place (readers never see a partial file); at exit pidfile_remove removes
 * it, if it still holds our pid.  A FILE naming a running personad is an
 * error; one naming a process that is gone, or not a personad, is stale and
 * is replaced (logged).
 */
#ifndef PERSONAD_PIDFILE_H
#define PERSONAD_PIDFILE_H

#include <stddef.h>

#include "common/config.h"

struct pidfile {
    char path[CONFIG_PATH_MAX];
    char tmp[CONFIG_PATH_MAX + 32];
    int state; /* 0: nothing written, 1: tmp written, 2: path is ours */
};

/* pidfile_prepare - check path and write tmp; 0, or -1 with msg set. */
int pidfile_prepare(struct pidfile *pf, const char *path, char *msg, size_t msg_size);

/* pidfile_commit - rename tmp to path; 0, or -1 with msg set.  No-op unless prepared. */
int pidfile_commit(struct pidfile *pf, char *msg, size_t msg_size);

/* pidfile_remove - remove what pidfile_prepare or _commit wrote (errors logged). */
void pidfile_remove(struct pidfile *pf);

#endif
