/*
 * shm_map - see shm_map.h.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm_map.h"

void
shm_map_name(char *buf, size_t buf_size, const char *tag, const char *kind)
{
    size_t n = 0;
    int w = snprintf(buf, buf_size, "/personad-");
    if (w < 0 || (size_t)w >= buf_size)
        return;
    n = (size_t)w;
    for (const char *p = tag; *p != '\0' && n + 1 < buf_size; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-';
        buf[n++] = ok ? c : '_';
    }
    buf[n] = '\0';
    snprintf(buf + n, buf_size - n, "-%s", kind);
}

/* Open name read-only and make sure it is the object rw_fd refers to (nobody
 * swapped the name in between).  Returns the descriptor or -1. */
static int
open_readonly(const char *name, int rw_fd)
{
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0)
        return -1;
    struct stat a, b;
    if (fstat(rw_fd, &a) != 0 || fstat(fd, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino) {
        int saved = errno;
        (void)close(fd);
        errno = saved == 0 ? EEXIST : saved;
        return -1;
    }
    return fd;
}

void *
shm_map_create(const char *name, size_t bytes, int *ro_fd, const char **failed_call)
{
    /* A leftover can only come from a predecessor on the same address that died
     * between shm_open and shm_unlink: the caller already owns the port. */
    (void)shm_unlink(name);
    *ro_fd = -1;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        *failed_call = "shm_open";
        return NULL;
    }
    void *mem = MAP_FAILED;
    errno = 0;
    if (ftruncate(fd, (off_t)bytes) != 0) {
        *failed_call = "ftruncate";
    } else if ((*ro_fd = open_readonly(name, fd)) < 0) {
        *failed_call = "shm_open(O_RDONLY)";
    } else {
        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mem == MAP_FAILED)
            *failed_call = "mmap";
    }
    int saved = errno;
    (void)shm_unlink(name);
    (void)close(fd);
    if (mem == MAP_FAILED && *ro_fd >= 0) {
        (void)close(*ro_fd);
        *ro_fd = -1;
    }
    errno = saved;
    return mem == MAP_FAILED ? NULL : mem;
}

int
shm_map_readonly(void *mem, size_t bytes, int ro_fd)
{
    /* MAP_FIXED replaces the read-write pages at the same address in one step,
     * so no pointer into the mapping (struct ring, struct snapshot) changes. */
    void *ro = mmap(mem, bytes, PROT_READ, MAP_SHARED | MAP_FIXED, ro_fd, 0);
    int saved = errno;
    (void)close(ro_fd);
    errno = saved;
    return ro == MAP_FAILED ? -1 : 0;
}
