/*
 * master - the master process: drives the persona sources (the personas
 * directory), publishes the snapshot and events into shared memory, forks and
 * respawns the workers, and handles signals (TERM/INT stop; HUP re-reads the
 * config file, see config.h, forwards it to the workers and rescans; USR1 is
 * only logged: there is nothing to reopen).
 */
#ifndef PERSONAD_MASTER_H
#define PERSONAD_MASTER_H

#include "common/config.h"

/* master_run - run until stopped; returns the process exit status. */
int master_run(const struct config *cfg);

#endif
