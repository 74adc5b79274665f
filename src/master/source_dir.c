/*
 * source_dir - see source_dir.h.
 *
 * Data: entries[] sorted by file name, one per candidate name seen, with the
 * stat signature it was last read at, or why it is not read (warned once); the
 * store holds a record for each entry that was read.  A rescan is a store
 * sync: unchanged files are only touched, the rest put, and what the listing
 * no longer shows is removed at its end.
 *
 * The directory is opened anew (and checked to be the one watched) for each
 * scan or batch of notifications, and closed after it: while any descriptor
 * holds it open, the kernel delays its IN_DELETE_SELF until the last close,
 * so an "rm -rf" would go unnoticed.
 */
#include "build_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_SYS_INOTIFY_H
#include <sys/inotify.h>
#include <sys/ioctl.h>
#endif

#include "common/clock.h"
#include "common/log.h"
#include "common/persona.h"
#include "common/vec.h"
#include "master/source_dir.h"

struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime; /* catches same-size in-place rewrites within one mtime tick */
};

struct dir_entry {
    char *name;           /* owned */
    struct file_sig sig;  /* as last read (zero while rejected, or not held by the store) */
    const char *rejected; /* not read, and why (static, warned once); NULL: read */
    int rejected_errno;   /* rejected: the errno warned about, or 0 */
    int seen;             /* mark for a rescan */
};

struct source_dir {
    struct source base;     /* first: what the master's loop holds */
    struct store *st;       /* not owned */
    int src;                /* the store's id of this source */
    const char *path;       /* not owned */
    int dir_fd;             /* O_DIRECTORY during a scan or batch, else -1; owned */
    int notify_fd;          /* inotify fd or -1, owned */
    dev_t dev;              /* the directory watched */
    ino_t ino;              /* with dev */
    int missing;            /* the directory at path is gone; see dir_retry */
    int rescan_owed;        /* a rescan's catch-up met a reason to rescan again */
    int64_t retry_at_ms;    /* missing: next attempt to reopen path (clock_now_ms) */
    int64_t retry_delay_ms; /* missing: the back-off */
    int64_t rescan_interval_ms;
    int64_t next_rescan_ms; /* the periodic rescan; 0 before the first rescan */
    struct dir_entry *entries;
    size_t nentries, cap_entries;
};

/* How a record of this source is named in the store's log lines. */
#define SOURCE_DIR_WHAT "persona file"

int
source_dir_is_candidate(const char *fn)
{
    size_t n = strlen(fn);
    return n > 5 && fn[0] != '.' && strchr(fn, '/') == NULL && strcmp(fn + n - 5, ".json") == 0;
}

/* --- the entries --------------------------------------------------------------- */

/* Binary search: index of name, or where it would be inserted (*found = 0). */
static size_t
entry_index(const struct source_dir *sd, const char *fn, int *found)
{
    size_t lo = 0, hi = sd->nentries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sd->entries[mid].name, fn);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static void
entry_forget(struct source_dir *sd, size_t i)
{
    log_info("persona file %s removed", sd->entries[i].name);
    store_remove(sd->st, sd->src, sd->entries[i].name);
    free(sd->entries[i].name);
    vec_remove(sd->entries, &sd->nentries, sizeof(sd->entries[0]), i);
}

static struct dir_entry *
entry_insert(struct source_dir *sd, size_t at, const char *fn)
{
    char *copy = strdup(fn);
    void *slot;
    void *grown = copy == NULL ? NULL
                               : vec_insert(sd->entries, &sd->nentries, &sd->cap_entries,
                                            sizeof(sd->entries[0]), at, &slot);
    if (grown == NULL) {
        free(copy);
        return NULL;
    }
    sd->entries = grown;
    struct dir_entry *e = slot;
    e->name = copy;
    return e;
}

/* --- reading one file ---------------------------------------------------------- */

/* Read a whole regular file (at most PERSONA_FILE_MAX_BYTES + 1 bytes, so an
 * oversized file is detected without reading it all). */
static char *
read_file(int fd, size_t *len, const char **err)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        *err = "out of memory";
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > PERSONA_FILE_MAX_BYTES) {
                *len = n;
                return buf; /* persona_parse reports it as too large */
            }
            cap *= 2;
            char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                *err = "out of memory";
                return NULL;
            }
            buf = b;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            *err = strerror(errno);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static int
sig_equal(const struct file_sig *a, const struct file_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void
sig_of(const struct stat *sb, struct file_sig *sig)
{
    sig->dev = sb->st_dev;
    sig->ino = sb->st_ino;
    sig->size = sb->st_size;
    sig->mtime = sb->st_mtim;
    sig->ctime = sb->st_ctim;
}

/* Read an open regular file into the store as the content of e. */
static void
file_load(struct source_dir *sd, struct dir_entry *e, int fd, const struct stat *sb)
{
    const char *err = NULL;
    size_t len = 0;
    char *data = NULL;
    int rc;
    sig_of(sb, &e->sig);
    if ((uintmax_t)sb->st_size > PERSONA_FILE_MAX_BYTES)
        err = "file is larger than 1 MiB";
    else
        data = read_file(fd, &len, &err);
    /* Without the bytes, the size stands for the content (warned once). */
    if (data != NULL)
        rc = store_put(sd->st, sd->src, e->name, data, len);
    else
        rc = store_put_bad(sd->st, sd->src, e->name, err, (uint64_t)sb->st_size);
    free(data);
    if (rc != 0)
        memset(&e->sig, 0, sizeof(e->sig)); /* not held: read again at the next rescan */
}

/* How far a name may lead: symlinks followed per name (a ConfigMap volume
 * needs 2: name.json -> ..data/name.json, ..data -> ..2026_01_01_...), and
 * directories below the personas directory. */
#define SOURCE_DIR_LINKS_MAX 8
#define SOURCE_DIR_DEPTH_MAX 8
#define SOURCE_DIR_PATH_BYTES 4096

enum resolve { RESOLVE_FILE, RESOLVE_GONE, RESOLVE_REJECTED };

/* Where a candidate name leads.  RESOLVE_FILE: the regular file 'name' in the
 * directory 'at' (the personas directory, or a descendant the caller closes
 * when at_owned), as fstatat saw it in 'sb'.  RESOLVE_REJECTED: why and err. */
struct resolved {
    int at;
    int at_owned;
    const char *name; /* points into path */
    struct stat sb;
    const char *why; /* static */
    int err;         /* errno for why, or 0 */
    char path[SOURCE_DIR_PATH_BYTES];
};

static const char *
not_regular(mode_t mode)
{
    if (S_ISDIR(mode))
        return "not a regular file (a directory)";
    if (S_ISFIFO(mode))
        return "not a regular file (a FIFO)";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "not a regular file (a device)";
    if (S_ISSOCK(mode))
        return "not a regular file (a socket)";
    return "not a regular file";
}

/* Resolve fn in dir_fd without leaving that directory and without opening
 * anything but directories: each component is looked at with fstatat
 * (AT_SYMLINK_NOFOLLOW) and descended into with openat(O_NOFOLLOW), relative
 * to the directory already reached, so no swap of a component sends the walk
 * elsewhere.  A symlink is followed while its target is relative and its ".."
 * never climbs above dir_fd; an absolute target is refused even when it names
 * a file inside.  A dangling link is RESOLVE_GONE, like a missing file. */
static enum resolve
resolve_beneath(int dir_fd, const char *fn, struct resolved *r)
{
    int fds[SOURCE_DIR_DEPTH_MAX + 1];
    int depth = 0, links = 0;
    enum resolve res = RESOLVE_REJECTED;
    fds[0] = dir_fd;
    r->at_owned = 0;
    r->why = "file name too long";
    r->err = 0;
    size_t fn_len = strlen(fn);
    if (fn_len >= sizeof(r->path))
        return res;
    memcpy(r->path, fn, fn_len + 1);
    char *rest = r->path;
    for (;;) {
        char *comp = rest + strspn(rest, "/");
        rest = comp + strcspn(comp, "/");
        if (*rest != '\0')
            *rest++ = '\0';
        rest += strspn(rest, "/");
        int last = *rest == '\0';
        if (*comp == '\0' || strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
            if (strcmp(comp, "..") == 0) {
                if (depth == 0) {
                    r->why = "symbolic link leads out of the directory";
                    break;
                }
                close(fds[depth--]);
            }
            if (last) {
                r->why = not_regular(S_IFDIR);
                break;
            }
            continue;
        }
        struct stat sb;
        if (fstatat(fds[depth], comp, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                res = RESOLVE_GONE;
            else
                r->why = "cannot be examined", r->err = errno;
            break;
        }
        if (S_ISLNK(sb.st_mode)) {
            char target[SOURCE_DIR_PATH_BYTES];
            ssize_t n = -1;
            if (++links > SOURCE_DIR_LINKS_MAX) {
                r->why = "too many levels of symbolic links";
                break;
            }
            n = readlinkat(fds[depth], comp, target, sizeof(target));
            if (n < 0 && (errno == ENOENT || errno == ENOTDIR)) {
                res = RESOLVE_GONE;
                break;
            }
            if (n < 0) {
                r->why = "cannot read the symbolic link", r->err = errno;
                break;
            }
            size_t rest_len = strlen(rest);
            if ((size_t)n + 1 + rest_len >= sizeof(r->path)) {
                r->why = "symbolic link target too long";
                break;
            }
            if (n > 0 && target[0] == '/') {
                r->why = "symbolic link to an absolute path (only relative links are followed)";
                break;
            }
            /* The target takes the link's place in what is left to resolve. */
            memmove(r->path + n + 1, rest, rest_len + 1);
            memcpy(r->path, target, (size_t)n);
            r->path[n] = '/';
            rest = r->path;
            continue;
        }
        if (last && !S_ISREG(sb.st_mode)) {
            r->why = not_regular(sb.st_mode);
            break;
        }
        if (last) {
            r->name = comp;
            r->sb = sb;
            res = RESOLVE_FILE;
            break;
        }
        if (!S_ISDIR(sb.st_mode)) {
            res = RESOLVE_GONE; /* as ENOTDIR would be */
            break;
        }
        if (depth == SOURCE_DIR_DEPTH_MAX) {
            r->why = "symbolic link leads too deep into subdirectories";
            break;
        }
        int fd = openat(fds[depth], comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) {
            res = RESOLVE_GONE; /* replaced since the fstatat */
            break;
        }
        if (fd < 0) {
            r->why = "cannot be opened", r->err = errno;
            break;
        }
        fds[++depth] = fd;
    }
    r->at = fds[depth];
    r->at_owned = res == RESOLVE_FILE && depth > 0;
    for (int k = res == RESOLVE_FILE ? depth - 1 : depth; k > 0; k--)
        close(fds[k]);
    return res;
}

/* e is not read: warn once per reason (until it changes), and drop the
 * cluster it described. */
static void
file_reject(struct source_dir *sd, struct dir_entry *e, const char *why, int err)
{
    if (e->rejected != why || e->rejected_errno != err) {
        if (err != 0)
            log_warnx("persona file %s: %s: %s; ignored", e->name, why, strerror(err));
        else
            log_warnx("persona file %s: %s; ignored", e->name, why);
    }
    e->rejected = why;
    e->rejected_errno = err;
    memset(&e->sig, 0, sizeof(e->sig));
    store_remove(sd->st, sd->src, e->name);
}

/* Read the regular file r resolved to into e, unless unchanged.  It is opened
 * without following a link and without blocking (a FIFO swapped in since the
 * fstatat is not waited on), and must be the very file fstatat saw; if it was
 * replaced in between, its own notification or the next rescan reads it (the
 * record stays as it was meanwhile: touched, for a rescan in progress). */
static void
file_read_resolved(struct source_dir *sd, struct dir_entry *e, const struct resolved *r,
                   int only_if_changed)
{
    struct file_sig sig;
    sig_of(&r->sb, &sig);
    if (only_if_changed && e->rejected == NULL && sig_equal(&sig, &e->sig) &&
        store_touch(sd->st, sd->src, e->name) == 0)
        return;
    int fd = openat(r->at, r->name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        /* Gone or replaced by a link since the fstatat, or a lease held
         * (EWOULDBLOCK with O_NONBLOCK): read at the next notification or
         * rescan, the state kept meanwhile. */
        if (err != ENOENT && err != ELOOP && err != EAGAIN && err != EWOULDBLOCK)
            file_reject(sd, e, "cannot be opened", err);
        else
            (void)store_touch(sd->st, sd->src, e->name); /* -1: no record to keep */
        return;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_dev != r->sb.st_dev || sb.st_ino != r->sb.st_ino) {
        close(fd);
        (void)store_touch(sd->st, sd->src, e->name); /* -1: no record to keep */
        return;
    }
    if (e->rejected != NULL)
        log_info("persona file %s can be read again", e->name);
    e->rejected = NULL;
    e->rejected_errno = 0;
    file_load(sd, e, fd, &sb);
    close(fd);
}

/* (Re)read the candidate fn in sd->dir_fd: put it, or remove it when it is
 * gone or not read.  only_if_changed: a file with the signature it was last
 * read at is only touched. */
static void
file_refresh(struct source_dir *sd, const char *fn, int only_if_changed)
{
    int found;
    size_t i = entry_index(sd, fn, &found);
    struct resolved r;
    enum resolve res = resolve_beneath(sd->dir_fd, fn, &r);
    if (res == RESOLVE_GONE) {
        if (found)
            entry_forget(sd, i);
        return;
    }
    struct dir_entry *e = found ? &sd->entries[i] : entry_insert(sd, i, fn);
    if (e == NULL) {
        log_warnx("persona file %s: out of memory; skipped", fn);
    } else {
        e->seen = 1;
        if (res == RESOLVE_REJECTED)
            file_reject(sd, e, r.why, r.err);
        else
            file_read_resolved(sd, e, &r, found && only_if_changed);
    }
    if (r.at_owned)
        close(r.at);
}

/* Every candidate in sd->dir_fd, as one store sync.  Returns 0, or -1 with
 * errno if the directory cannot be read, or EINTR if store_interrupted said
 * stop (then nothing is forgotten: the listing is partial). */
static int
dir_scan(struct source_dir *sd)
{
    int fd = dup(sd->dir_fd);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    rewinddir(d);
    for (size_t i = 0; i < sd->nentries; i++)
        sd->entries[i].seen = 0;
    store_sync_begin(sd->st, sd->src);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (source_dir_is_candidate(de->d_name))
            file_refresh(sd, de->d_name, 1);
        if (store_interrupted(sd->st)) {
            closedir(d);
            store_sync_cancel(sd->st, sd->src);
            errno = EINTR;
            return -1;
        }
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        store_sync_cancel(sd->st, sd->src);
        errno = saved;
        return -1; /* a partial listing must not delete anything */
    }
    for (size_t i = sd->nentries; i-- > 0;)
        if (!sd->entries[i].seen)
            entry_forget(sd, i);
    store_sync_end(sd->st, sd->src);
    return 0;
}

/* --- the directory ------------------------------------------------------------- */

static void
dir_close_fds(struct source_dir *sd)
{
    if (sd->notify_fd >= 0)
        close(sd->notify_fd);
    if (sd->dir_fd >= 0)
        close(sd->dir_fd);
    sd->notify_fd = sd->dir_fd = -1;
}

/* Check that sd->path is a readable directory and start watching it.  Returns
 * 0, or -1 with a message in msg (the directory is missing or unreadable). */
static int
dir_watch(struct source_dir *sd, char *msg, size_t msg_size)
{
    sd->notify_fd = -1;
    sd->dir_fd = open(sd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat sb;
    if (sd->dir_fd < 0 || fstat(sd->dir_fd, &sb) != 0) {
        snprintf(msg, msg_size, "personas directory %s: %s", sd->path, strerror(errno));
        dir_close_fds(sd);
        return -1;
    }
    sd->dev = sb.st_dev;
    sd->ino = sb.st_ino;
    DIR *probe = fdopendir(sd->dir_fd); /* readable? (closedir closes dir_fd) */
    if (probe == NULL) {
        snprintf(msg, msg_size, "personas directory %s: %s", sd->path, strerror(errno));
        dir_close_fds(sd);
        return -1;
    }
    closedir(probe);
    sd->dir_fd = -1;
#if HAVE_SYS_INOTIFY_H
    sd->notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (sd->notify_fd < 0) {
        log_warn("inotify_init1; falling back to periodic rescans");
    } else if (inotify_add_watch(sd->notify_fd, sd->path,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                     IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
        log_warn("inotify_add_watch(%s); falling back to periodic rescans", sd->path);
        close(sd->notify_fd);
        sd->notify_fd = -1;
    }
#endif
    return 0;
}

/* The directory at path is gone: let go of it (its watch too), keep the store
 * as it is, and retry at once (a replacement is often there already). */
static void
dir_lost(struct source_dir *sd, const char *how)
{
    log_error("personas directory %s %s; serving the last known clusters and retrying", sd->path,
              how);
    dir_close_fds(sd);
    sd->missing = 1;
    sd->retry_delay_ms = SOURCE_DIR_RETRY_MIN_MS;
    sd->retry_at_ms = clock_now_ms();
}

/* Open the directory for a scan or a batch (sd->dir_fd, until dir_leave).  If
 * path no longer names the directory watched, it is lost: -1. */
static int
dir_enter(struct source_dir *sd)
{
    struct stat sb;
    const char *how = NULL;
    sd->dir_fd = open(sd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sd->dir_fd < 0)
        how = errno == ENOENT || errno == ENOTDIR ? "was removed or moved away"
                                                  : "can no longer be opened";
    else if (fstat(sd->dir_fd, &sb) != 0 || sb.st_dev != sd->dev || sb.st_ino != sd->ino)
        how = "was replaced by another directory";
    if (how == NULL)
        return 0;
    dir_lost(sd, how);
    return -1;
}

static void
dir_leave(struct source_dir *sd)
{
    if (sd->dir_fd >= 0)
        close(sd->dir_fd);
    sd->dir_fd = -1;
}

/* When missing and the back-off has passed at now_ms, try to reopen and watch
 * the path.  Returns 1 if it is back (rescan now), else 0. */
static int
dir_retry(struct source_dir *sd, int64_t now_ms)
{
    if (!sd->missing || now_ms < sd->retry_at_ms)
        return 0;
    char msg[512];
    int64_t delay = sd->retry_delay_ms;
    if (dir_watch(sd, msg, sizeof(msg)) == 0) {
        sd->missing = 0;
        sd->retry_at_ms = 0;
        sd->retry_delay_ms = SOURCE_DIR_RETRY_MIN_MS;
        log_info("personas directory %s is back; rescanning", sd->path);
        return 1;
    }
    log_debug("%s; retrying in %lld ms", msg, (long long)delay);
    sd->retry_at_ms = now_ms + delay;
    sd->retry_delay_ms = delay * 2 > SOURCE_DIR_RETRY_MAX_MS ? SOURCE_DIR_RETRY_MAX_MS : delay * 2;
    return 0;
}

static int notify_read(struct source_dir *sd, size_t want);

/* A listing races with the changes made while it runs: readdir may return a
 * file added after it started and miss one added before (ext4 lists in hash
 * order), and a file already listed is not looked at again.  So a rescan can
 * hold a later change and miss an earlier one, which then comes with its
 * notification in a later commit: its event after the later one's.  A
 * change's notification is queued before the system call that makes it
 * returns, so once the listing is over, every change made before one it saw
 * is queued: applying the queue as it is now (FIONREAD) gives the store all of
 * them, and the commit emits them in one batch.  A notification among them
 * that asks for a rescan itself owes one (rescan_owed: the timer runs it at
 * once). */
static void
rescan_catch_up(struct source_dir *sd)
{
#if HAVE_SYS_INOTIFY_H
    int queued = 0;
    if (sd->notify_fd < 0 || store_interrupted(sd->st))
        return;
    if (ioctl(sd->notify_fd, FIONREAD, &queued) != 0) {
        log_warn("ioctl(inotify, FIONREAD)");
        return;
    }
    if (queued > 0 && notify_read(sd, (size_t)queued))
        sd->rescan_owed = 1;
#else
    (void)sd;
#endif
}

/* Full rescan, after checking that the path still names the directory
 * watched (if not, it is missing), then the notifications queued by its end
 * are applied too, so changes made during the listing are committed in their
 * order (rescan_catch_up).  Logs on failure, but not when missing or
 * interrupted (store_interrupted).  Returns 0 or -1 (errno kept; also when
 * the directory went missing meanwhile: nothing to commit). */
static int
dir_rescan(struct source_dir *sd)
{
    if (sd->missing || dir_enter(sd) != 0)
        return -1;
    int rc = dir_scan(sd);
    int saved = errno;
    if (rc != 0 && !store_interrupted(sd->st))
        log_warn("rescanning %s", sd->path);
    dir_leave(sd);
    if (rc == 0) {
        sd->rescan_owed = 0; /* this one was it */
        rescan_catch_up(sd);
    }
    errno = saved;
    return sd->missing ? -1 : rc;
}

/* Read notifications one buffer (at most a few hundred) at a time, until at
 * least want bytes are consumed or none is left, and update the store.  Stops
 * early when store_interrupted says so, or when the directory itself is gone
 * (then missing).  Returns 1 if a full rescan is needed, else 0. */
static int
notify_read(struct source_dir *sd, size_t want)
{
    int rescan = 0;
#if HAVE_SYS_INOTIFY_H
    /* Aligned for struct inotify_event, as inotify(7) requires. */
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (size_t got = 0; got < want;) {
        ssize_t len = read(sd->notify_fd, buf, sizeof(buf));
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0) {
            if (len < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("read(inotify)");
            break;
        }
        got += (size_t)len;
        if (dir_enter(sd) != 0)
            return 0;
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev =
                (const struct inotify_event *)(const void *)p; /* aligned: see buf */
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                log_warnx("inotify queue overflow; rescanning %s", sd->path);
                rescan = 1;
            } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)) {
                /* What follows in buf is about the old directory. */
                dir_lost(sd, ev->mask & IN_MOVE_SELF ? "was moved away"
                             : ev->mask & IN_UNMOUNT ? "was unmounted"
                                                     : "was removed");
                return 0; /* dir_lost closed dir_fd */
            } else if (ev->len == 0) {
                continue;
            } else if (ev->mask & IN_ISDIR || strncmp(ev->name, "..", 2) == 0) {
                rescan = 1; /* may stand for many files (ConfigMap "..data" swap) */
            } else if (!source_dir_is_candidate(ev->name)) {
                /* not a persona file */
            } else if (ev->mask & IN_CREATE) {
                /* A new file is read at IN_CLOSE_WRITE; only links and symlinks
                 * arrive whole at creation. */
                struct stat sb;
                if (fstatat(sd->dir_fd, ev->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                    (S_ISLNK(sb.st_mode) || sb.st_nlink > 1))
                    file_refresh(sd, ev->name, 0);
            } else {
                file_refresh(sd, ev->name, 0);
            }
            if (store_interrupted(sd->st))
                break; /* stopping: the rest does not matter */
        }
        dir_leave(sd);
        if (store_interrupted(sd->st))
            break;
    }
#else
    (void)sd;
    (void)want;
#endif
    return rescan;
}

/* Read one buffer of pending notifications and update the store; see
 * notify_read. */
static int
dir_on_notify(struct source_dir *sd)
{
    /* One buffer (a few hundred notifications) per call: the caller commits,
     * rings the doorbell and polls again.  Draining a backlog of thousands at
     * once would append more events in one go than the ring holds, lapping
     * every worker (seen at 2500 events/s in the fan-out benchmark). */
    return notify_read(sd, 1);
}

int
source_dir_refresh(struct source_dir *sd, const char *name)
{
    if (sd->missing || dir_enter(sd) != 0)
        return -1;
    if (source_dir_is_candidate(name))
        file_refresh(sd, name, 0);
    dir_leave(sd);
    return 0;
}

/* --- the source operations ------------------------------------------------------ */

static struct source_dir *
dir_of(struct source *s)
{
    return (struct source_dir *)(void *)s; /* base is the first member */
}

static const struct source_dir *
dir_of_const(const struct source *s)
{
    return (const struct source_dir *)(const void *)s;
}

static int
op_fd(const struct source *s)
{
    return dir_of_const(s)->notify_fd;
}

static int
op_on_ready(struct source *s)
{
    struct source_dir *sd = dir_of(s);
    if (dir_on_notify(sd))
        (void)dir_rescan(sd);
    return !sd->missing;
}

static int
op_rescan(struct source *s)
{
    struct source_dir *sd = dir_of(s);
    if (sd->missing) {
        sd->retry_at_ms = 0; /* at once; the timer rescans when it is back */
        return -1;
    }
    int rc = dir_rescan(sd);
    if (sd->next_rescan_ms == 0)
        sd->next_rescan_ms = clock_now_ms() + sd->rescan_interval_ms;
    return rc;
}

void
source_dir_set_interval(struct source_dir *sd, int64_t rescan_interval_ms)
{
    sd->rescan_interval_ms = rescan_interval_ms;
    if (sd->next_rescan_ms != 0)
        sd->next_rescan_ms = clock_now_ms() + rescan_interval_ms;
}

static int64_t
op_next_timer_ms(const struct source *s)
{
    const struct source_dir *sd = dir_of_const(s);
    int64_t next = sd->next_rescan_ms != 0 ? sd->next_rescan_ms : INT64_MAX;
    if (sd->missing && sd->retry_at_ms < next)
        next = sd->retry_at_ms;
    if (!sd->missing && sd->rescan_owed)
        next = 0; /* at once */
    return next;
}

static int
op_on_timer(struct source *s, int64_t now_ms)
{
    struct source_dir *sd = dir_of(s);
    int due = dir_retry(sd, now_ms);
    if (!sd->missing && sd->rescan_owed) {
        sd->rescan_owed = 0; /* once: a rescan that fails does not spin */
        due = 1;
    }
    if (sd->next_rescan_ms != 0 && now_ms >= sd->next_rescan_ms) {
        due = 1;
        sd->next_rescan_ms = now_ms + sd->rescan_interval_ms;
    }
    return due && dir_rescan(sd) == 0;
}

static uint32_t
op_flags(const struct source *s)
{
    return dir_of_const(s)->missing ? SNAP_FLAG_DIR_MISSING : 0;
}

static void
op_close(struct source *s)
{
    struct source_dir *sd = dir_of(s);
    dir_close_fds(sd);
    for (size_t i = 0; i < sd->nentries; i++)
        free(sd->entries[i].name);
    free(sd->entries);
    free(sd);
}

static const struct source_ops source_dir_ops = {
    .fd = op_fd,
    .on_ready = op_on_ready,
    .rescan = op_rescan,
    .next_timer_ms = op_next_timer_ms,
    .on_timer = op_on_timer,
    .flags = op_flags,
    .close = op_close,
};

struct source_dir *
source_dir_open(const char *path, struct store *st, int64_t rescan_interval_ms, char *msg,
                size_t msg_size)
{
    struct source_dir *sd = calloc(1, sizeof(*sd));
    if (sd == NULL) {
        snprintf(msg, msg_size, "personas directory %s: out of memory", path);
        return NULL;
    }
    sd->base = (struct source){&source_dir_ops, path};
    sd->st = st;
    sd->path = path;
    sd->dir_fd = sd->notify_fd = -1;
    sd->retry_delay_ms = SOURCE_DIR_RETRY_MIN_MS;
    sd->rescan_interval_ms = rescan_interval_ms;
    if (dir_watch(sd, msg, msg_size) != 0) {
        free(sd);
        return NULL;
    }
    sd->src = store_add_source(st, SOURCE_DIR_WHAT);
    if (sd->src < 0) {
        snprintf(msg, msg_size, "personas directory %s: too many sources", path);
        op_close(&sd->base);
        return NULL;
    }
    return sd;
}

struct source *
source_dir_source(struct source_dir *sd)
{
    return &sd->base;
}
