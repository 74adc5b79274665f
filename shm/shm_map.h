/*
 * shm_map - create and map a POSIX shared-memory object for the master and its
 * workers.
 *
 * The object is created under a name derived from the listen address, mapped,
 * then unlinked at once: the mapping lives on in the master and in every worker
 * it forks, and nothing is left in /dev/shm after any exit, kill -9 included.
 * A leftover of the same name (a predecessor killed between create and unlink)
 * is removed first.
 */
#ifndef PERSONAD_SHM_MAP_H
#define PERSONAD_SHM_MAP_H

#include <stddef.h>

/* shm_map_create - a zero-filled shared mapping of bytes; NULL and errno on failure.
 * "what" names the failing call in *failed_call. */
void *shm_map_create(const char *name, size_t bytes, const char **failed_call);

/* shm_map_name - build "/personad-<tag>-<kind>" into buf; tag is sanitised. */
void shm_map_name(char *buf, size_t buf_size, const char *tag, const char *kind);

#endif
