/*
 * store - see store.h.
 *
 * Data: files[] sorted by file name, each with its last good persona (or none)
 * and the stat signature it was read at; "published", the master's private copy
 * of the last snapshot blob published.  The desired state is derived from
 * files[] at commit time: walking files in name order, the first file to claim
 * a cluster name wins ("lexicographically smallest file name wins").  Diffing
 * desired against the published blob compares canonical bytes, so formatting
 * and key order never produce events, and the blob is the only second copy.
 *
 * O(n log n) per commit with n files: fine for thousands of files; commits
 * happen once per batch of file-system notifications, not per file.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "persona.h"
#include "store.h"

struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime; /* catches same-size in-place rewrites within one mtime tick */
};

struct store_file {
    char *filename;       /* owned */
    struct file_sig sig;  /* as last read (zero while rejected) */
    struct persona good;  /* last good content; name == NULL if never good */
    int bad;              /* current content is bad (good is kept) */
    const char *bad_why;  /* bad: the reason warned about (static) */
    uint64_t bad_hash;    /* bad: snapshot_hash of that content */
    const char *rejected; /* not read, and why (static, warned once); NULL: read */
    int rejected_errno;   /* rejected: the errno warned about, or 0 */
    int seen;             /* mark for store_rescan */
    int conflict_warned;  /* lost a name to a smaller file name; warned */
};

struct store {
    struct snapshot *snap; /* not owned */
    struct ring *ring;     /* not owned */
    struct store_file *files;
    size_t nfiles, cap_files;
    uint8_t *published; /* owned: the blob last published, NULL before the first */
    size_t published_len;
    uint64_t *published_versions; /* owned: persona version of each published entry */
    uint64_t next_version;        /* last persona version handed out */
    uint64_t events;
    int (*stop)(void *); /* store_set_interrupt, or NULL */
    void *stop_arg;
};

/* One cluster of the desired state, pointing into files[]. */
struct claim {
    const struct persona *p;
    struct store_file *file;
};

struct store *
store_new(struct snapshot *snap, struct ring *ring)
{
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->snap = snap;
    st->ring = ring;
    return st;
}

void
store_free(struct store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nfiles; i++) {
        free(st->files[i].filename);
        persona_free(&st->files[i].good);
    }
    free(st->files);
    free(st->published);
    free(st->published_versions);
    free(st);
}

void
store_set_interrupt(struct store *st, int (*stop)(void *), void *arg)
{
    st->stop = stop;
    st->stop_arg = arg;
}

int
store_interrupted(const struct store *st)
{
    return st->stop != NULL && st->stop(st->stop_arg);
}

int
store_is_candidate(const char *fn)
{
    size_t n = strlen(fn);
    return n > 5 && fn[0] != '.' && strchr(fn, '/') == NULL && strcmp(fn + n - 5, ".json") == 0;
}

/* Binary search: index of filename, or where it would be inserted (*found = 0). */
static size_t
file_index(const struct store *st, const char *fn, int *found)
{
    size_t lo = 0, hi = st->nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->files[mid].filename, fn);
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
file_forget(struct store *st, size_t i)
{
    log_info("persona file %s removed", st->files[i].filename);
    free(st->files[i].filename);
    persona_free(&st->files[i].good);
    memmove(&st->files[i], &st->files[i + 1], (st->nfiles - i - 1) * sizeof(st->files[0]));
    st->nfiles--;
}

static struct store_file *
file_insert(struct store *st, size_t at, const char *fn)
{
    if (st->nfiles == st->cap_files) {
        size_t cap = st->cap_files ? st->cap_files * 2 : 64;
        struct store_file *f = realloc(st->files, cap * sizeof(*f));
        if (f == NULL)
            return NULL;
        st->files = f;
        st->cap_files = cap;
    }
    char *copy = strdup(fn);
    if (copy == NULL)
        return NULL;
    memmove(&st->files[at + 1], &st->files[at], (st->nfiles - at) * sizeof(st->files[0]));
    st->nfiles++;
    memset(&st->files[at], 0, sizeof(st->files[at]));
    st->files[at].filename = copy;
    return &st->files[at];
}

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

/* Parse an open file into entry f (new or existing). */
static void
file_load(struct store *st, struct store_file *f, int fd, const struct stat *sb)
{
    const char *err = NULL;
    size_t len = 0;
    char *data = NULL;
    sig_of(sb, &f->sig);
    if ((uintmax_t)sb->st_size > PERSONA_FILE_MAX_BYTES)
        err = "file is larger than 1 MiB";
    else
        data = read_file(fd, &len, &err);
    struct persona p;
    if (err == NULL)
        err = persona_parse(data, len, &p);
    /* What the bad content was, to warn once per content: re-reading the same
     * bytes (a touch, a notification without a change) is not news. */
    uint64_t bad_hash = data != NULL ? snapshot_hash(data, len) : (uint64_t)sb->st_size;
    free(data);
    f->conflict_warned = 0;
    if (err != NULL) {
        if (!f->bad || f->bad_why != err || f->bad_hash != bad_hash) {
            if (f->good.name != NULL)
                log_warnx("persona file %s: %s; keeping cluster %s as it was", f->filename, err,
                          f->good.name);
            else
                log_warnx("persona file %s: %s; skipped", f->filename, err);
        }
        f->bad = 1;
        f->bad_why = err;
        f->bad_hash = bad_hash;
        return;
    }
    if (f->bad)
        log_info("persona file %s is valid again", f->filename);
    f->bad = 0;
    f->bad_why = NULL;
    persona_free(&f->good);
    f->good = p;
    f->good.version = ++st->next_version;
}

/* How far a name may lead: symlinks followed per name (a ConfigMap volume
 * needs 2: name.json -> ..data/name.json, ..data -> ..2026_01_01_...), and
 * directories below the personas directory. */
#define STORE_LINKS_MAX 8
#define STORE_DEPTH_MAX 8
#define STORE_PATH_BYTES 4096

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
    char path[STORE_PATH_BYTES];
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
    int fds[STORE_DEPTH_MAX + 1];
    int depth = 0, links = 0;
    enum resolve res = RESOLVE_REJECTED;
    fds[0] = dir_fd;
    r->at_owned = 0;
    r->why = "file name too long";
    r->err = 0;
    if (strlen(fn) >= sizeof(r->path))
        return res;
    strcpy(r->path, fn);
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
            char target[STORE_PATH_BYTES];
            ssize_t n = -1;
            if (++links > STORE_LINKS_MAX) {
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
        if (depth == STORE_DEPTH_MAX) {
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

/* f is not read: warn once per reason (until it changes), and drop the
 * cluster it described. */
static void
file_reject(struct store_file *f, const char *why, int err)
{
    if (f->rejected != why || f->rejected_errno != err) {
        if (err != 0)
            log_warnx("persona file %s: %s: %s; ignored", f->filename, why, strerror(err));
        else
            log_warnx("persona file %s: %s; ignored", f->filename, why);
    }
    f->rejected = why;
    f->rejected_errno = err;
    persona_free(&f->good);
    f->bad = 0;
    f->bad_why = NULL;
    f->conflict_warned = 0;
    memset(&f->sig, 0, sizeof(f->sig));
}

/* Read the regular file r resolved to into f, unless unchanged.  It is opened
 * without following a link and without blocking (a FIFO swapped in since the
 * fstatat is not waited on), and must be the very file fstatat saw; if it was
 * replaced in between, its own notification or the next rescan reads it. */
static void
file_read_resolved(struct store *st, struct store_file *f, const struct resolved *r,
                   int only_if_changed)
{
    struct file_sig sig;
    sig_of(&r->sb, &sig);
    if (only_if_changed && f->rejected == NULL && sig_equal(&sig, &f->sig))
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
            file_reject(f, "cannot be opened", err);
        return;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_dev != r->sb.st_dev || sb.st_ino != r->sb.st_ino) {
        close(fd);
        return;
    }
    if (f->rejected != NULL)
        log_info("persona file %s can be read again", f->filename);
    f->rejected = NULL;
    f->rejected_errno = 0;
    file_load(st, f, fd, &sb);
    close(fd);
}

static void
file_refresh(struct store *st, int dir_fd, const char *fn, int only_if_changed)
{
    int found;
    size_t i = file_index(st, fn, &found);
    struct resolved r;
    enum resolve res = resolve_beneath(dir_fd, fn, &r);
    if (res == RESOLVE_GONE) {
        if (found)
            file_forget(st, i);
        return;
    }
    struct store_file *f = found ? &st->files[i] : file_insert(st, i, fn);
    if (f == NULL) {
        log_warnx("persona file %s: out of memory; skipped", fn);
    } else {
        f->seen = 1;
        if (res == RESOLVE_REJECTED)
            file_reject(f, r.why, r.err);
        else
            file_read_resolved(st, f, &r, found && only_if_changed);
    }
    if (r.at_owned)
        close(r.at);
}

void
store_file_changed(struct store *st, int dir_fd, const char *fn)
{
    if (store_is_candidate(fn))
        file_refresh(st, dir_fd, fn, 0);
}

int
store_rescan(struct store *st, int dir_fd)
{
    int fd = dup(dir_fd);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    rewinddir(d);
    for (size_t i = 0; i < st->nfiles; i++)
        st->files[i].seen = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (store_is_candidate(de->d_name))
            file_refresh(st, dir_fd, de->d_name, 1);
        if (store_interrupted(st)) {
            closedir(d);
            errno = EINTR;
            return -1; /* nothing forgotten: the listing is partial */
        }
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        errno = saved;
        return -1; /* a partial listing must not delete anything */
    }
    for (size_t i = st->nfiles; i-- > 0;)
        if (!st->files[i].seen)
            file_forget(st, i);
    return 0;
}

static int
claim_cmp(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    int c = snapshot_name_cmp(x->p->name, x->p->name_len, y->p->name, y->p->name_len);
    if (c == 0)
        c = strcmp(x->file->filename, y->file->filename);
    return c;
}

/* The desired clusters, sorted by name, one per name; *n set.  NULL on ENOMEM. */
static struct claim *
desired_state(struct store *st, size_t *n)
{
    struct claim *c = malloc((st->nfiles ? st->nfiles : 1) * sizeof(*c));
    if (c == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < st->nfiles; i++)
        if (st->files[i].good.name != NULL)
            c[k++] = (struct claim){&st->files[i].good, &st->files[i]};
    qsort(c, k, sizeof(*c), claim_cmp);
    size_t out = 0;
    for (size_t i = 0; i < k; i++) {
        if (out > 0 && snapshot_name_cmp(c[out - 1].p->name, c[out - 1].p->name_len, c[i].p->name,
                                         c[i].p->name_len) == 0) {
            if (!c[i].file->conflict_warned) {
                log_warnx("persona file %s: cluster %s is already defined by %s; ignored",
                          c[i].file->filename, c[i].p->name, c[out - 1].file->filename);
                c[i].file->conflict_warned = 1;
            }
            continue;
        }
        c[out++] = c[i];
    }
    *n = out;
    return c;
}

enum diff_kind { DIFF_DELETED, DIFF_ADDED, DIFF_UPDATED };

struct diff {
    enum diff_kind kind;
    const char *name; /* points into the old blob or into files[] */
    size_t name_len;
};

/* 1 if the published entry i differs from persona p.  Same version: the same
 * parse, so equal without looking.  Different ETags: different bytes.  Only a
 * re-parse with an equal ETag needs the bytes compared. */
static int
entry_changed(const uint8_t *old, const struct snap_entry *e, uint64_t old_version,
              const struct persona *p)
{
    if (old_version == p->version)
        return 0;
    if (e->etag != p->etag || e->obj_len != p->obj_len)
        return 1;
    return memcmp(old + e->obj_off, p->obj, e->obj_len) != 0;
}

/* Merge-walk published (old blob) against desired; fills d, returns the count.
 * O(clusters) comparisons of integers; bytes only for re-parsed look-alikes. */
static size_t
diff_states(const uint8_t *old, const uint64_t *old_versions, const struct claim *want,
            size_t nwant, struct diff *d)
{
    const struct snap_blob *b = old ? snapshot_blob_header(old) : NULL;
    const struct snap_entry *e = old ? snapshot_blob_entries(old) : NULL;
    size_t nold = old ? b->count : 0, i = 0, j = 0, k = 0;
    while (i < nold || j < nwant) {
        int c;
        if (i == nold)
            c = 1;
        else if (j == nwant)
            c = -1;
        else
            c = snapshot_name_cmp(old + e[i].name_off, e[i].name_len, want[j].p->name,
                                  want[j].p->name_len);
        if (c < 0) {
            d[k++] = (struct diff){DIFF_DELETED, (const char *)old + e[i].name_off, e[i].name_len};
            i++;
        } else if (c > 0) {
            d[k++] = (struct diff){DIFF_ADDED, want[j].p->name, want[j].p->name_len};
            j++;
        } else {
            if (entry_changed(old, &e[i], old_versions[i], want[j].p))
                d[k++] = (struct diff){DIFF_UPDATED, want[j].p->name, want[j].p->name_len};
            i++;
            j++;
        }
    }
    return k;
}

static const char *const event_type_name[] = {
    [DIFF_DELETED] = "cluster.deleted",
    [DIFF_ADDED] = "cluster.added",
    [DIFF_UPDATED] = "cluster.updated",
};

static const enum ring_event_type event_ring_type[] = {
    [DIFF_DELETED] = RING_EVENT_DELETED,
    [DIFF_ADDED] = RING_EVENT_ADDED,
    [DIFF_UPDATED] = RING_EVENT_UPDATED,
};

static void
append_events(struct store *st, const struct diff *d, size_t n)
{
    /* Deletions first, so a rename A -> B reads "deleted A, added B". */
    static const enum diff_kind order[] = {DIFF_DELETED, DIFF_ADDED, DIFF_UPDATED};
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < n; i++) {
            if (d[i].kind != order[o])
                continue;
            char name[PERSONA_NAME_MAX_BYTES + 1];
            memcpy(name, d[i].name, d[i].name_len);
            name[d[i].name_len] = '\0';
            char *msg = persona_event_json(event_type_name[d[i].kind], name);
            if (msg == NULL)
                panic("out of memory serialising an event"); /* would leave a gap */
            int64_t seq =
                ring_append(st->ring, event_ring_type[d[i].kind], msg, (uint32_t)strlen(msg));
            if (seq < 0)
                panic("event for %s does not fit a ring slot", name);
            log_debug("event %lld %s", (long long)seq, msg);
            free(msg);
            st->events++;
        }
    }
}

int
store_commit(struct store *st, int baseline)
{
    size_t nwant;
    struct claim *want = desired_state(st, &nwant);
    struct diff *d =
        want ? malloc(
                   (nwant + (st->published ? snapshot_blob_header(st->published)->count : 0) + 1) *
                   sizeof(*d))
             : NULL;
    if (d == NULL) {
        free(want);
        log_error("out of memory computing the persona diff; will retry");
        return -1;
    }
    size_t nd = diff_states(st->published, st->published_versions, want, nwant, d);
    if (nd == 0 && st->published != NULL) {
        free(d);
        free(want);
        return 0;
    }
    uint64_t seq = ring_head(st->ring) + (baseline ? 0 : nd);
    struct snap_item *items = malloc((nwant ? nwant : 1) * sizeof(*items));
    uint64_t *versions = malloc((nwant ? nwant : 1) * sizeof(*versions));
    size_t blob_len = 0;
    uint8_t *blob = NULL;
    if (items != NULL && versions != NULL) {
        for (size_t i = 0; i < nwant; i++) {
            const struct persona *p = want[i].p;
            items[i] = (struct snap_item){p->name, (uint32_t)p->name_len, p->obj,
                                          (uint32_t)p->obj_len, p->etag};
            versions[i] = p->version;
        }
        blob = snapshot_build(items, (uint32_t)nwant, seq, &blob_len);
    }
    free(items);
    int rc = -1;
    if (blob == NULL) {
        log_error("out of memory building the snapshot; will retry");
    } else if (snapshot_publish(st->snap, blob, blob_len) != SNAPSHOT_OK) {
        log_error("snapshot of %zu bytes exceeds --snapshot-max (%llu bytes per copy); "
                  "%s, %zu change(s) held back",
                  blob_len, (unsigned long long)st->snap->half_bytes,
                  st->published != NULL ? "still serving the previous one"
                                        : "serving an empty list until it fits",
                  nd);
    } else {
        /* Published: now, and only now, the events may enter the ring. */
        if (!baseline)
            append_events(st, d, nd);
        rc = baseline ? 0 : (int)nd;
        free(st->published);
        free(st->published_versions);
        st->published = blob;
        st->published_len = blob_len;
        st->published_versions = versions;
        blob = NULL;
        versions = NULL;
    }
    free(versions);
    free(blob);
    free(d);
    free(want);
    return rc;
}

int
store_publish_empty(struct store *st)
{
    size_t len = 0;
    uint8_t *blob = snapshot_build(NULL, 0, ring_head(st->ring), &len);
    int rc = blob != NULL && snapshot_publish(st->snap, blob, len) == SNAPSHOT_OK ? 0 : -1;
    free(blob);
    return rc;
}

void
store_get_stats(const struct store *st, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->events = st->events;
    out->clusters = st->published ? snapshot_blob_header(st->published)->count : 0;
    for (size_t i = 0; i < st->nfiles; i++) {
        out->files += st->files[i].rejected == NULL;
        out->bad_files += st->files[i].bad != 0;
    }
}
