/*
 * pidfile - see pidfile.h.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "master/pidfile.h"

#define PIDFILE_MAX_BYTES 32

/* The pid written in path, 0 when none can be read (missing, empty,
 * garbage), or -1 with errno when path cannot be opened for another reason. */
static long
read_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char buf[PIDFILE_MAX_BYTES + 1];
    ssize_t r = read(fd, buf, PIDFILE_MAX_BYTES);
    close(fd);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    if (buf[0] < '1' || buf[0] > '9') /* no sign, no blank, no 0 */
        return 0;
    char *end;
    errno = 0;
    unsigned long long pid = strtoull(buf, &end, 10);
    if (errno != 0 || (*end != '\n' && *end != '\0') || pid > LONG_MAX)
        return 0;
    return (long)pid;
}

/* /proc/PID/comm without its newline into out; 0 or -1. */
static int
read_comm(const char *pid, char *out, size_t size)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%s/comm", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, out, size - 1);
    close(fd);
    if (r <= 0)
        return -1;
    out[r] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

/* 1 when /proc/PID/stat says pid is a zombie (dead, not reaped: under an
 * init that does not reap, a killed daemon stays one). */
static int
is_zombie(const char *pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof(p), "/proc/%s/stat", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold anything */
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

/* 1 when pid is a running process with our name (another personad). */
static int
is_running_personad(long pid)
{
    if (pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        return 0; /* our own pid (a container's pid 1 again) or gone */
    char theirs[64], ours[64], num[32];
    snprintf(num, sizeof(num), "%ld", pid);
    if (is_zombie(num))
        return 0;
    if (read_comm(num, theirs, sizeof(theirs)) != 0 || read_comm("self", ours, sizeof(ours)) != 0)
        return 1; /* alive, and cannot tell: assume it is one */
    return strcmp(theirs, ours) == 0;
}

int
pidfile_prepare(struct pidfile *pf, const char *path, char *msg, size_t msg_size)
{
    memset(pf, 0, sizeof(*pf));
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(pf->path)) {
        snprintf(msg, msg_size, "--pidfile: path too long");
        return -1;
    }
    memcpy(pf->path, path, len + 1);
    long old = read_pid(path);
    if (old < 0) {
        snprintf(msg, msg_size, "--pidfile=%s: %s", path, strerror(errno));
        return -1;
    }
    if (old > 0 && is_running_personad(old)) {
        snprintf(msg, msg_size, "--pidfile=%s: personad is already running as pid %ld", path, old);
        return -1;
    }
    if (old > 0)
        log_warnx("--pidfile=%s: replacing a stale pidfile (pid %ld is not a running personad)",
                  path, old);
    snprintf(pf->tmp, sizeof(pf->tmp), "%s.%ld.tmp", path, (long)getpid());
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = open(pf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0 && (errno != EEXIST || unlink(pf->tmp) != 0))
            break; /* a leftover of an earlier run with our pid is removed once */
    }
    if (fd < 0) {
        snprintf(msg, msg_size, "--pidfile=%s: cannot create %s: %s", path, pf->tmp,
                 strerror(errno));
        return -1;
    }
    pf->state = 1;
    char buf[PIDFILE_MAX_BYTES];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    int rc = 0;
    if (fchmod(fd, 0644) != 0 || write(fd, buf, (size_t)n) != n)
        rc = -1;
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0) {
        snprintf(msg, msg_size, "--pidfile=%s: writing %s: %s", path, pf->tmp, strerror(errno));
        pidfile_remove(pf);
        return -1;
    }
    return 0;
}

int
pidfile_commit(struct pidfile *pf, char *msg, size_t msg_size)
{
    if (pf->state != 1)
        return 0;
    if (rename(pf->tmp, pf->path) != 0) {
        snprintf(msg, msg_size, "--pidfile=%s: rename: %s", pf->path, strerror(errno));
        return -1;
    }
    pf->state = 2;
    return 0;
}

void
pidfile_remove(struct pidfile *pf)
{
    if (pf->state == 1 && unlink(pf->tmp) != 0 && errno != ENOENT)
        log_warn("--pidfile: unlink(%s)", pf->tmp);
    /* Only our own: a successor may have written its pid there already. */
    if (pf->state == 2 && read_pid(pf->path) == (long)getpid() && unlink(pf->path) != 0 &&
        errno != ENOENT)
        log_warn("--pidfile: unlink(%s)", pf->path);
    pf->state = 0;
}
