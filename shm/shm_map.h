/*
 * shm_map - create and map a POSIX shared-memory object for the master and its
 * workers.
 *
 * The object is created under a name derived from the listen address, mapped,
 * then unlinked at once: the mapping lives on in the master and in every worker
 * it forks, and nothing is left in /dev/shm after any exit, kill -9 included.
 * A leftover of the same name (a predecessor killed between create and unlink)
 * is removed first.
 *
 * WARNING: workers must not be able to write what the master reads.  Before the
 * unlink a second, read-only descriptor of the object is opened; the master
 * keeps it (and no read-write one), and each worker, right after fork, replaces
 * its inherited read-write mapping with a PROT_READ mapping of that descriptor
 * and closes it.  A mapping of a read-only descriptor can never be made writable
 * (mprotect fails with EACCES), and the name is gone, so the worker has no way
 * back to write access through the object itself.
 */
#ifndef PERSONAD_SHM_MAP_H
#define PERSONAD_SHM_MAP_H

#include <stddef.h>

/* shm_map_create - a zero-filled shared read-write mapping of bytes; NULL and
 * errno on failure, with the failing call named in *failed_call.  *ro_fd gets a
 * read-only descriptor of the same object (close-on-exec) for shm_map_readonly;
 * the caller owns it. */
void *shm_map_create(const char *name, size_t bytes, int *ro_fd, const char **failed_call);

/* shm_map_readonly - replace the mapping at mem (bytes long, from
 * shm_map_create) in place with a read-only (PROT_READ) mapping of ro_fd, then
 * close ro_fd.  Pointers into the mapping stay valid; any write through them
 * faults.  Returns 0, or -1 with errno set (ro_fd is closed either way). */
int shm_map_readonly(void *mem, size_t bytes, int ro_fd);

/* shm_map_name - build "/personad-<tag>-<kind>" into buf; tag is sanitised. */
void shm_map_name(char *buf, size_t buf_size, const char *tag, const char *kind);

#endif
