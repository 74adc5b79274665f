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

void *
shm_map_create(const char *name, size_t bytes, const char **failed_call)
{
    /* A leftover can only come from a predecessor on the same address that died
     * between shm_open and shm_unlink: the caller already owns the port. */
    (void)shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        *failed_call = "shm_open";
        return NULL;
    }
    void *mem = MAP_FAILED;
    if (ftruncate(fd, (off_t)bytes) != 0) {
        *failed_call = "ftruncate";
    } else {
        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mem == MAP_FAILED)
            *failed_call = "mmap";
    }
    int saved = errno;
    (void)shm_unlink(name);
    (void)close(fd);
    errno = saved;
    return mem == MAP_FAILED ? NULL : mem;
}
