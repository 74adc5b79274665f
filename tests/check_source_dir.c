/*
 * check_source_dir - unit tests for src/master/source_dir.c against a real temporary
 * personas directory, feeding a real store (the ring and the snapshot in heap
 * memory).
 *
 * Covered: which names are candidates; what is read and what is not (FIFOs
 * never opened, device nodes, symlinks inside and out, a ConfigMap volume's
 * "..data" swap, files too large to read, entries replaced by directories),
 * with one warning per file and reason; the rescan (a store sync: what is gone
 * is removed, a partial listing removes nothing, an interrupted rescan stops
 * between files); and the operations the master drives: notifications, the
 * periodic rescan, the directory going missing and coming back, and changes
 * made while a rescan lists the directory, emitted in the order they were made.
 */
/* makedev (sys/sysmacros.h) and mknod want _DEFAULT_SOURCE from glibc. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/persona.h"
#include "shm/ring.h"
#include "shm/snapshot.h"
#include "master/source_dir.h"
#include "master/store.h"

#define FX_RING_SLOTS 256u
#define FX_HALF_BYTES (256u * 1024u)
/* No periodic rescan during a test. */
#define FX_RESCAN_INTERVAL_MS (3600 * 1000)

/* Per-tcase base directory, made and removed by the (unchecked) fixture in the
 * runner's process, so a failing test leaves nothing behind. */
static char base_dir[256];

static void
rm_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char sub[1024];
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void
base_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base_dir, sizeof(base_dir), "%s/check_source_dir.XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(base_dir) == NULL) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
}

static void
base_teardown(void)
{
    rm_tree(base_dir);
}

struct fx {
    char dir[512];
    int dir_fd;
    void *ring_mem, *snap_mem;
    struct ring ring;
    struct snapshot snap;
    struct store *st;
    struct source_dir *sd;
    struct source *src; /* sd's operations */
    uint64_t cursor;    /* next ring seq to check */
    uint64_t gen;       /* snapshot generation after the last commit checked */
};

static void
fx_open(struct fx *f, uint64_t half_bytes)
{
    static int serial;
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "%s/d%d-%ld", base_dir, serial++, (long)getpid());
    ck_assert_int_eq(mkdir(f->dir, 0700), 0);
    f->dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(f->dir_fd, 0);
    f->ring_mem = calloc(1, ring_bytes(FX_RING_SLOTS)); /* ring_init wants zeroed memory */
    f->snap_mem = malloc(snapshot_bytes(half_bytes));
    ck_assert_ptr_nonnull(f->ring_mem);
    ck_assert_ptr_nonnull(f->snap_mem);
    ring_init(&f->ring, f->ring_mem, FX_RING_SLOTS);
    snapshot_init(&f->snap, f->snap_mem, half_bytes);
    f->st = store_new(&f->snap, &f->ring);
    ck_assert_ptr_nonnull(f->st);
    char msg[512];
    f->sd = source_dir_open(f->dir, f->st, FX_RESCAN_INTERVAL_MS, msg, sizeof(msg));
    ck_assert_msg(f->sd != NULL, "source_dir_open: %s", msg);
    f->src = source_dir_source(f->sd);
    f->cursor = 1;
}

static void
fx_close(struct fx *f)
{
    f->src->ops->close(f->src);
    store_free(f->st);
    close(f->dir_fd);
    free(f->ring_mem);
    free(f->snap_mem);
}

/* Write name atomically (temp file, then rename), as editors and tests do. */
static void
put(struct fx *f, const char *name, const char *content)
{
    char tmp[600], dst[600];
    snprintf(tmp, sizeof(tmp), "%s/.tmp-put", f->dir);
    snprintf(dst, sizeof(dst), "%s/%s", f->dir, name);
    FILE *fp = fopen(tmp, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(content, 1, strlen(content), fp), strlen(content));
    ck_assert_int_eq(fclose(fp), 0);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

static void
del(struct fx *f, const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    ck_assert_int_eq(unlink(p), 0);
}

/* What a notification about name does. */
static void
changed(struct fx *f, const char *name)
{
    ck_assert_int_eq(source_dir_refresh(f->sd, name), 0);
}

/* The source's rescan operation (start-up, SIGHUP). */
static int
rescan(struct fx *f)
{
    return f->src->ops->rescan(f->src);
}

/* put + changed */
static void
put_changed(struct fx *f, const char *name, const char *content)
{
    put(f, name, content);
    changed(f, name);
}

static void
del_changed(struct fx *f, const char *name)
{
    del(f, name);
    changed(f, name);
}

/* An API-shape persona; its canonical object is obj_of(name, v). */
static const char *
persona_json(const char *name, int v)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "{\"name\": \"%s\", \"spec\": {\"v\": %d, \"region\": \"eu\"}}\n", name, v);
    return b;
}

static const char *
obj_of(const char *name, int v)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "{\"name\":\"%s\",\"spec\":{\"region\":\"eu\",\"v\":%d},\"status\":{}}", name,
             v);
    return b;
}

/* The current snapshot blob (a private copy; caller frees). */
static uint8_t *
snap_blob(struct fx *f, uint64_t *gen)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    uint64_t g = 0;
    ck_assert_int_eq(snapshot_copy(&f->snap, UINT64_MAX, &blob, &len, &g), SNAPSHOT_OK);
    ck_assert_int_eq(snapshot_blob_valid(blob, len), 1);
    if (gen != NULL)
        *gen = g;
    return blob;
}

static const struct snap_blob *
hdr_of(const uint8_t *blob)
{
    return (const struct snap_blob *)(const void *)blob;
}

/* The published object of name, or NULL (malloc'd). */
static char *
snap_obj(struct fx *f, const char *name)
{
    uint8_t *blob = snap_blob(f, NULL);
    const struct snap_entry *e = snapshot_find(blob, name, strlen(name));
    char *obj = NULL;
    if (e != NULL) {
        obj = malloc(e->obj_len + 1);
        ck_assert_ptr_nonnull(obj);
        memcpy(obj, blob + e->obj_off, e->obj_len);
        obj[e->obj_len] = '\0';
    }
    free(blob);
    return obj;
}

static void
expect_obj(struct fx *f, const char *name, const char *want)
{
    char *obj = snap_obj(f, name);
    if (want == NULL) {
        ck_assert_msg(obj == NULL, "cluster %s is still published: %s", name, obj);
    } else {
        ck_assert_msg(obj != NULL, "cluster %s is not published", name);
        ck_assert_msg(strcmp(obj, want) == 0, "cluster %s:\n got  %s\n want %s", name, obj, want);
    }
    free(obj);
}

static uint32_t
snap_count(struct fx *f)
{
    uint8_t *blob = snap_blob(f, NULL);
    uint32_t n = hdr_of(blob)->count;
    free(blob);
    return n;
}

/* Require exactly these new events ("added:NAME", "updated:NAME", "deleted:NAME",
 * NULL-terminated) in ring order since the last call, with exact payloads. */
static void
expect_events(struct fx *f, ...)
{
    va_list ap;
    va_start(ap, f);
    const char *spec;
    static uint8_t buf[RING_PAYLOAD_MAX + 1];
    while ((spec = va_arg(ap, const char *)) != NULL) {
        const char *colon = strchr(spec, ':');
        ck_assert_ptr_nonnull(colon);
        size_t kind_len = (size_t)(colon - spec);
        uint32_t want_type = strncmp(spec, "added", kind_len) == 0     ? RING_EVENT_ADDED
                             : strncmp(spec, "updated", kind_len) == 0 ? RING_EVENT_UPDATED
                                                                       : RING_EVENT_DELETED;
        char want[600];
        snprintf(want, sizeof(want), "{\"type\":\"cluster.%.*s\",\"data\":{\"name\":\"%s\"}}",
                 (int)kind_len, spec, colon + 1);
        uint32_t len = 0, type = 0;
        enum ring_status rs = ring_read(&f->ring, f->cursor, buf, &len, &type);
        ck_assert_msg(rs == RING_OK, "event %llu (want %s): ring_read = %d",
                      (unsigned long long)f->cursor, want, (int)rs);
        buf[len] = '\0';
        ck_assert_msg(strcmp((char *)buf, want) == 0, "event %llu:\n got  %s\n want %s",
                      (unsigned long long)f->cursor, (char *)buf, want);
        ck_assert_uint_eq(type, want_type);
        f->cursor++;
    }
    va_end(ap);
    ck_assert_msg(ring_head(&f->ring) == f->cursor - 1, "%llu unexpected extra event(s)",
                  (unsigned long long)(ring_head(&f->ring) - (f->cursor - 1)));
}

/* store_commit, then check its return value, that a changing commit published
 * exactly one new generation whose seq is the seq of the last event appended,
 * and that a commit with no events published nothing new. */
static void
commit(struct fx *f, int baseline, int want_rc)
{
    uint64_t head_before = ring_head(&f->ring);
    int rc = store_commit(f->st, baseline);
    ck_assert_int_eq(rc, want_rc);
    uint64_t head = ring_head(&f->ring);
    if (rc < 0) {
        ck_assert_uint_eq(head, head_before);
        ck_assert_uint_eq(snapshot_generation(&f->snap), f->gen);
        return;
    }
    ck_assert_uint_eq(head, head_before + (uint64_t)rc);
    uint64_t gen = 0;
    uint8_t *blob = snap_blob(f, &gen);
    if (rc > 0 || baseline)
        ck_assert_uint_eq(gen, f->gen + 1);
    ck_assert_msg(hdr_of(blob)->seq == head, "snapshot seq %llu, ring head %llu",
                  (unsigned long long)hdr_of(blob)->seq, (unsigned long long)head);
    f->gen = gen;
    free(blob);
}

static void
baseline(struct fx *f)
{
    ck_assert_int_eq(rescan(f), 0);
    commit(f, 1, 0);
    expect_events(f, NULL);
}

/* --- tests ----------------------------------------------------------------------- */

START_TEST(test_is_candidate)
{
    static const struct {
        const char *name;
        int want;
    } cases[] = {
        {"a.json", 1},   {"prod-cluster.json", 1},
        {"x.y.json", 1}, {".a.json", 0},
        {".json", 0},    {"json", 0},
        {"a.JSON", 0},   {"a.Json", 0},
        {"a.json~", 0},  {"a.json.tmp", 0},
        {"a.jso", 0},    {"a/b.json", 0},
        {".tmp-put", 0}, {"", 0},
        {"a.yaml", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(source_dir_is_candidate(cases[i].name) == cases[i].want, "'%s': want %d",
                      cases[i].name, cases[i].want);
}
END_TEST

START_TEST(test_baseline_emits_nothing)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    put(&f, "notes.txt", persona_json("text", 1));
    put(&f, ".hidden.json", persona_json("hidden", 1));
    put(&f, "upper.JSON", persona_json("upper", 1));
    baseline(&f);
    ck_assert_uint_eq(ring_head(&f.ring), 0);
    uint8_t *blob = snap_blob(&f, NULL);
    ck_assert_uint_eq(hdr_of(blob)->seq, 0);
    ck_assert_uint_eq(hdr_of(blob)->count, 2);
    char want[512];
    snprintf(want, sizeof(want), "{\"clusters\":[%s,%s],\"seq\":0}", obj_of("alpha", 1),
             obj_of("beta", 1));
    ck_assert_uint_eq(hdr_of(blob)->list_len, strlen(want));
    ck_assert(memcmp(blob + hdr_of(blob)->list_off, want, strlen(want)) == 0);
    free(blob);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    expect_obj(&f, "hidden", NULL);
    expect_obj(&f, "text", NULL);
    expect_obj(&f, "upper", NULL);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.events, 0);
    ck_assert_uint_eq(ss.clusters, 2);
    ck_assert_uint_eq(ss.records, 2);
    ck_assert_uint_eq(ss.bad_records, 0);
    /* A second commit with nothing changed appends nothing. */
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    fx_close(&f);
}
END_TEST

START_TEST(test_oversized_file)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    size_t n = PERSONA_FILE_MAX_BYTES + 100;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    int k = snprintf(big, n, "{\"name\":\"alpha\",\"spec\":{\"pad\":\"");
    memset(big + k, 'x', n - (size_t)k - 3);
    memcpy(big + n - 3, "\"}}", 4);
    put_changed(&f, "a.json", big);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    /* A second oversized file is skipped as well. */
    put_changed(&f, "b.json", big);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    free(big);
    fx_close(&f);
}
END_TEST

START_TEST(test_rescan)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);

    /* Changes made behind the source's back (no notification). */
    put(&f, "a.json", persona_json("alpha", 12345)); /* different size, too */
    del(&f, "b.json");
    put(&f, "c.json", persona_json("gamma", 1));
    put(&f, ".d.json", persona_json("hidden", 1));
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/dir.json", f.dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 3);
    expect_events(&f, "deleted:beta", "added:gamma", "updated:alpha", NULL);
    expect_obj(&f, "alpha", obj_of("alpha", 12345));
    expect_obj(&f, "hidden", NULL);
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 2);

    /* Nothing changed: nothing happens. */
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 0);
    expect_events(&f, NULL);

    /* Everything removed. */
    del(&f, "a.json");
    del(&f, "c.json");
    ck_assert_int_eq(rescan(&f), 0);
    commit(&f, 0, 2);
    expect_events(&f, "deleted:alpha", "deleted:gamma", NULL);
    ck_assert_uint_eq(snap_count(&f), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_file_changed_for_missing_or_non_regular)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    /* A notification for a file that never existed changes nothing. */
    changed(&f, "nope.json");
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    /* Replaced by a directory: gone. */
    del(&f, "a.json");
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/a.json", f.dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    changed(&f, "a.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:alpha", NULL);
    fx_close(&f);
}
END_TEST

/* --- what is read, and warned about once ----------------------------------------- */

/* stderr (the log) goes to a file for the rest of the test (each test runs in
 * its own process). */
static char log_path[600];

static void
log_capture(void)
{
    snprintf(log_path, sizeof(log_path), "%s/log-%ld", base_dir, (long)getpid());
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Lines of the captured log holding both a and b. */
static int
log_count(const char *a, const char *b)
{
    FILE *fp = fopen(log_path, "r");
    ck_assert_ptr_nonnull(fp);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    fclose(fp);
    return n;
}

static void
link_at(struct fx *f, const char *target, const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    ck_assert_msg(symlink(target, p) == 0, "symlink %s -> %s: %s", name, target, strerror(errno));
}

static void
mkdir_at(struct fx *f, const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    ck_assert_int_eq(mkdir(p, 0700), 0);
}

static void
rescan_commit(struct fx *f, int want_rc)
{
    ck_assert_int_eq(rescan(f), 0);
    commit(f, 0, want_rc);
}

START_TEST(test_fifo_never_opened)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    char fifo[600];
    snprintf(fifo, sizeof(fifo), "%s/pipe.json", f.dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    /* A child blocks in open(O_WRONLY) until some process opens the FIFO for
     * reading: if the store ever does, even for an instant, the child gets
     * through (the kernel counts the opens). */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20);
        int fd = open(fifo, O_WRONLY);
        _exit(fd >= 0 ? 0 : 1);
    }
    usleep(100 * 1000); /* let the child block in open */
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    expect_obj(&f, "alpha", obj_of("alpha", 1));
    for (int i = 0; i < 3; i++)
        rescan_commit(&f, 0);
    changed(&f, "pipe.json");
    commit(&f, 0, 0);
    usleep(100 * 1000);
    int status;
    ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "the store opened the FIFO");
    /* Nobody holds it open for reading now either. */
    int w = open(fifo, O_WRONLY | O_NONBLOCK);
    ck_assert_msg(w < 0 && errno == ENXIO, "a reader holds the FIFO open");
    /* Let the child go: open it for reading ourselves. */
    int r = open(fifo, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(r, 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(r);
    ck_assert_int_eq(log_count("pipe.json", "not a regular file (a FIFO); ignored"), 1);
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_eq(ss.records, 1);
    fx_close(&f);
}
END_TEST

START_TEST(test_device_node_not_opened)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    char dev[600];
    snprintf(dev, sizeof(dev), "%s/dev.json", f.dir);
    /* Major 240 is for local use and normally has no driver: an open() would
     * fail with ENXIO (and the failure was logged, at every rescan). */
    if (mknod(dev, S_IFCHR | 0600, makedev(240, 0)) != 0) {
        fprintf(stderr, "mknod: %s; not tested\n", strerror(errno));
        fx_close(&f);
        return;
    }
    baseline(&f);
    for (int i = 0; i < 3; i++)
        rescan_commit(&f, 0);
    changed(&f, "dev.json");
    commit(&f, 0, 0);
    ck_assert_int_eq(log_count("dev.json", "not a regular file (a device); ignored"), 1);
    ck_assert_int_eq(log_count("dev.json", NULL), 1); /* nothing about an open */
    fx_close(&f);
}
END_TEST

START_TEST(test_symlinks)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    /* Outside the personas directory: a valid persona that must not be read. */
    char outside[600];
    snprintf(outside, sizeof(outside), "%s/outside-%ld.json", base_dir, (long)getpid());
    FILE *fp = fopen(outside, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(persona_json("secret", 1), fp);
    ck_assert_int_eq(fclose(fp), 0);
    char rel_out[700], abs_in[700];
    snprintf(rel_out, sizeof(rel_out), "../%s", strrchr(outside, '/') + 1);
    snprintf(abs_in, sizeof(abs_in), "%s/.hidden", f.dir);

    put(&f, ".hidden", persona_json("hidden", 1));
    mkdir_at(&f, "sub");
    put(&f, "sub/deep", persona_json("deep", 1));
    link_at(&f, rel_out, "out.json");                 /* ../outside-N.json */
    link_at(&f, outside, "out-abs.json");             /* /abs/outside-N.json */
    link_at(&f, abs_in, "in-abs.json");               /* absolute, even though inside */
    link_at(&f, "sub/../../d0/x.json", "climb.json"); /* climbs out through sub */
    link_at(&f, ".hidden", "in.json");                /* inside: read */
    link_at(&f, "sub/../sub/deep", "via-sub.json");   /* inside, through sub and back */
    link_at(&f, "nowhere", "dangling.json");          /* dangling: as if absent */
    link_at(&f, "loop-b.json", "loop-a.json");
    link_at(&f, "loop-a.json", "loop-b.json");
    link_at(&f, "sub", "dir-link.json"); /* a directory */
    baseline(&f);
    ck_assert_uint_eq(snap_count(&f), 2);
    expect_obj(&f, "hidden", obj_of("hidden", 1));
    expect_obj(&f, "deep", obj_of("deep", 1));
    expect_obj(&f, "secret", NULL);
    for (int i = 0; i < 3; i++)
        rescan_commit(&f, 0);
    changed(&f, "out.json");
    commit(&f, 0, 0);
    ck_assert_int_eq(log_count("out.json", "symbolic link leads out of the directory; ignored"), 1);
    ck_assert_int_eq(log_count("climb.json", "symbolic link leads out of the directory"), 1);
    ck_assert_int_eq(log_count("out-abs.json", "absolute path"), 1);
    ck_assert_int_eq(log_count("in-abs.json", "absolute path"), 1);
    ck_assert_int_eq(log_count("loop-a.json", "too many levels of symbolic links"), 1);
    ck_assert_int_eq(log_count("dir-link.json", "(a directory); ignored"), 1);
    ck_assert_int_eq(log_count("dangling.json", NULL), 0);
    ck_assert_int_eq(log_count("in.json", NULL), 0);

    /* A good file turned into a link out: its cluster goes, one warning. */
    del(&f, "in.json");
    link_at(&f, rel_out, "in.json");
    rescan_commit(&f, 1);
    expect_events(&f, "deleted:hidden", NULL);
    rescan_commit(&f, 0);
    ck_assert_int_eq(log_count("in.json", "leads out of the directory; ignored"), 1);
    /* And back: read again, one line saying so. */
    del(&f, "in.json");
    link_at(&f, ".hidden", "in.json");
    rescan_commit(&f, 1);
    expect_events(&f, "added:hidden", NULL);
    ck_assert_int_eq(log_count("in.json", "can be read again"), 1);
    unlink(outside);
    fx_close(&f);
}
END_TEST

/* A Kubernetes ConfigMap volume, as the kubelet's atomic writer lays it out:
 * the files live in a timestamped directory, "..data" points at it, and each
 * visible name is a link through "..data". */
START_TEST(test_configmap_layout)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    mkdir_at(&f, "..2026_01_01_00_00_00.000000001");
    put(&f, "..2026_01_01_00_00_00.000000001/a.json", persona_json("alpha", 1));
    put(&f, "..2026_01_01_00_00_00.000000001/b.json", persona_json("beta", 1));
    link_at(&f, "..2026_01_01_00_00_00.000000001", "..data");
    link_at(&f, "..data/a.json", "a.json");
    link_at(&f, "..data/b.json", "b.json");
    baseline(&f);
    ck_assert_uint_eq(snap_count(&f), 2);
    expect_obj(&f, "alpha", obj_of("alpha", 1));

    /* The update: a new directory, "..data" swapped with one rename, then the
     * links for new keys added and those for removed keys deleted. */
    mkdir_at(&f, "..2026_01_01_00_01_00.000000002");
    put(&f, "..2026_01_01_00_01_00.000000002/a.json", persona_json("alpha", 2));
    put(&f, "..2026_01_01_00_01_00.000000002/c.json", persona_json("gamma", 1));
    link_at(&f, "..2026_01_01_00_01_00.000000002", "..data_tmp");
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/..data_tmp", f.dir);
    snprintf(b, sizeof(b), "%s/..data", f.dir);
    ck_assert_int_eq(rename(a, b), 0);
    rescan_commit(&f, 2); /* what the "..data" notification triggers */
    expect_events(&f, "deleted:beta", "updated:alpha", NULL);
    link_at(&f, "..data/c.json", "c.json");
    changed(&f, "c.json");
    commit(&f, 0, 1);
    expect_events(&f, "added:gamma", NULL);
    del_changed(&f, "b.json");
    rescan_commit(&f, 0);
    expect_obj(&f, "alpha", obj_of("alpha", 2));
    ck_assert_int_eq(log_count("warn", NULL), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_unreadable_warned_once)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    put(&f, "a.json", persona_json("alpha", 1));
    put(&f, "b.json", persona_json("beta", 1));
    baseline(&f);
    /* Bad content: one warning however often it is looked at. */
    put_changed(&f, "b.json", "{broken");
    for (int i = 0; i < 3; i++) {
        changed(&f, "b.json"); /* as a touch would */
        rescan_commit(&f, 0);
    }
    ck_assert_int_eq(log_count("b.json", "invalid JSON"), 1);
    /* A touch changes the stat signature, not the content: still quiet. */
    struct timespec later[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    ck_assert_int_eq(utimensat(f.dir_fd, "b.json", later, 0), 0);
    rescan_commit(&f, 0);
    ck_assert_int_eq(log_count("b.json", "invalid JSON"), 1);
    /* New bad content is news. */
    put_changed(&f, "b.json", "[1]");
    rescan_commit(&f, 0);
    ck_assert_int_eq(log_count("b.json", "not a JSON object"), 1);
    if (geteuid() == 0) {
        fprintf(stderr, "running as root: permission denial not tested\n");
        fx_close(&f);
        return;
    }
    char p[600];
    snprintf(p, sizeof(p), "%s/a.json", f.dir);
    ck_assert_int_eq(chmod(p, 0), 0);
    changed(&f, "a.json");
    commit(&f, 0, 1);
    expect_events(&f, "deleted:alpha", NULL);
    for (int i = 0; i < 3; i++)
        rescan_commit(&f, 0);
    ck_assert_int_eq(log_count("a.json", "cannot be opened"), 1);
    ck_assert_int_eq(chmod(p, 0600), 0);
    rescan_commit(&f, 1);
    expect_events(&f, "added:alpha", NULL);
    fx_close(&f);
}
END_TEST

static int
stop_after_first(void *arg)
{
    int *calls = arg;
    return ++*calls >= 1;
}

START_TEST(test_rescan_interrupted)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d.json", i);
        put(&f, name, persona_json(name, 1));
    }
    baseline(&f);
    ck_assert_uint_eq(snap_count(&f), 5);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d.json", i);
        del(&f, name);
    }
    put(&f, "new.json", persona_json("new", 1));
    int calls = 0;
    store_set_interrupt(f.st, stop_after_first, &calls);
    errno = 0;
    ck_assert_int_eq(rescan(&f), -1);
    ck_assert_int_eq(errno, EINTR);
    ck_assert_int_eq(store_interrupted(f.st), 1);
    /* A partial listing forgets nothing. */
    struct store_stats ss;
    store_get_stats(f.st, &ss);
    ck_assert_uint_ge(ss.records, 5);
    store_set_interrupt(f.st, NULL, NULL);
    ck_assert_int_eq(store_interrupted(f.st), 0);
    rescan_commit(&f, 6);
    ck_assert_uint_eq(snap_count(&f), 1);
    fx_close(&f);
}
END_TEST
/* --- the source operations the master drives ------------------------------------- */

/* Wait up to 2 s for the source's descriptor to be readable. */
static int
wait_readable(struct fx *f)
{
    struct pollfd pfd = {.fd = f->src->ops->fd(f->src), .events = POLLIN};
    return poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLIN);
}

START_TEST(test_notifications)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    if (f.src->ops->fd(f.src) < 0) {
        fprintf(stderr, "no inotify: notifications not tested\n");
        fx_close(&f);
        return;
    }
    /* What the put before the baseline queued: read, nothing new. */
    while (wait_readable(&f) && f.src->ops->on_ready(f.src))
        if (store_commit(f.st, 0) == 0)
            break;
    expect_events(&f, NULL);
    /* A file renamed in, one rewritten, one removed: each read from its
     * notification only (no rescan). */
    put(&f, "b.json", persona_json("beta", 1));
    ck_assert(wait_readable(&f));
    ck_assert_int_eq(f.src->ops->on_ready(f.src), 1);
    commit(&f, 0, 1);
    expect_events(&f, "added:beta", NULL);
    put(&f, "a.json", persona_json("alpha", 2));
    del(&f, "b.json");
    ck_assert(wait_readable(&f));
    ck_assert_int_eq(f.src->ops->on_ready(f.src), 1);
    commit(&f, 0, 2);
    expect_events(&f, "deleted:beta", "updated:alpha", NULL);
    ck_assert_uint_eq(f.src->ops->flags(f.src), 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_periodic_rescan)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    put(&f, "a.json", persona_json("alpha", 1));
    int64_t before = clock_now_ms();
    baseline(&f);
    /* Armed by the first rescan, one interval ahead. */
    int64_t due = f.src->ops->next_timer_ms(f.src);
    ck_assert_int_ge(due, before + FX_RESCAN_INTERVAL_MS);
    ck_assert_int_le(due, clock_now_ms() + FX_RESCAN_INTERVAL_MS);
    /* A change no notification is read for: only the rescan at due finds it. */
    put(&f, "b.json", persona_json("beta", 1));
    ck_assert_int_eq(f.src->ops->on_timer(f.src, due - 1), 0);
    commit(&f, 0, 0);
    ck_assert_int_eq(f.src->ops->on_timer(f.src, due), 1);
    commit(&f, 0, 1);
    expect_events(&f, "added:beta", NULL);
    ck_assert_int_eq(f.src->ops->next_timer_ms(f.src), due + FX_RESCAN_INTERVAL_MS);
    fx_close(&f);
}
END_TEST

START_TEST(test_dir_missing_and_back)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    log_capture();
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    char away[600];
    snprintf(away, sizeof(away), "%s.away", f.dir);
    ck_assert_int_eq(rename(f.dir, away), 0);
    /* Found by the next scan: missing, the store as it was, retried at once. */
    ck_assert_int_eq(rescan(&f), -1);
    ck_assert_uint_eq(f.src->ops->flags(f.src), SNAP_FLAG_DIR_MISSING);
    ck_assert_int_eq(f.src->ops->fd(f.src), -1);
    ck_assert_int_eq(source_dir_refresh(f.sd, "a.json"), -1);
    ck_assert_int_eq(log_count("personas directory", "was removed or moved away; serving the last "
                                                     "known clusters and retrying"),
                     1);
    int64_t now = clock_now_ms();
    ck_assert_int_le(f.src->ops->next_timer_ms(f.src), now);
    /* Still gone: the back-off starts at 100 ms. */
    ck_assert_int_eq(f.src->ops->on_timer(f.src, now), 0);
    ck_assert_int_eq(f.src->ops->next_timer_ms(f.src), now + SOURCE_DIR_RETRY_MIN_MS);
    ck_assert_int_eq(f.src->ops->on_timer(f.src, now + SOURCE_DIR_RETRY_MIN_MS), 0);
    ck_assert_int_eq(f.src->ops->next_timer_ms(f.src), now + 3 * SOURCE_DIR_RETRY_MIN_MS);
    /* A rescan request (SIGHUP) makes the next retry immediate. */
    ck_assert_int_eq(rescan(&f), -1);
    ck_assert_int_eq(f.src->ops->next_timer_ms(f.src), 0);
    /* Back, as another directory: rescanned, the differences are events. */
    ck_assert_int_eq(mkdir(f.dir, 0700), 0);
    put(&f, "b.json", persona_json("beta", 1));
    ck_assert_int_eq(f.src->ops->on_timer(f.src, clock_now_ms()), 1);
    ck_assert_uint_eq(f.src->ops->flags(f.src), 0);
    commit(&f, 0, 2);
    expect_events(&f, "deleted:alpha", "added:beta", NULL);
    ck_assert_int_eq(log_count("personas directory", "is back; rescanning"), 1);
    fx_close(&f);
}
END_TEST

/* Rewrite name in place (same inode, the directory untouched): IN_CLOSE_WRITE. */
static void
rewrite(struct fx *f, const char *name, const char *content)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    int fd = open(p, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    ck_assert_int_eq(close(fd), 0);
}

/* During a listing: right after the entry at index 'at' of the listing (so
 * 'first' has been looked at and 'second' not yet), change first, then second. */
struct race {
    struct fx *f;
    int calls, at;
    const char *first, *second;
};

static int
change_during_listing(void *arg)
{
    struct race *r = arg;
    if (r->calls++ == r->at) {
        rewrite(r->f, r->first, persona_json("c0", 12345)); /* other sizes */
        rewrite(r->f, r->second, persona_json("c1", 12345));
    }
    return 0;
}

/* What the master does while the source's fd is readable: on_ready, commit. */
static void
drain_notifications(struct fx *f)
{
    struct pollfd pfd = {.fd = f->src->ops->fd(f->src), .events = POLLIN};
    for (int i = 0; i < 10 && poll(&pfd, 1, 0) == 1; i++) {
        ck_assert_int_eq(f->src->ops->on_ready(f->src), 1);
        ck_assert_int_ge(store_commit(f->st, 0), 0);
    }
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
}

START_TEST(test_rescan_racing_changes_in_order)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    if (f.src->ops->fd(f.src) < 0) {
        fprintf(stderr, "no inotify: the rescan's catch-up not tested\n");
        fx_close(&f);
        return;
    }
    put(&f, "p.json", "{}");
    put(&f, "q.json", "{}");
    /* The order the rescan will list them in: readdir's, whatever the file
     * system (ext4: hash order).  Names are given in that order, so one batch
     * (sorted by name) lists them in the order they change. */
    static char order[2][256];
    int n = 0, at = -1, calls = 0;
    DIR *d = opendir(f.dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (source_dir_is_candidate(de->d_name)) {
            ck_assert_int_lt(n, 2);
            snprintf(order[n++], sizeof(order[0]), "%s", de->d_name);
            if (at < 0)
                at = calls;
        }
        calls++;
    }
    closedir(d);
    ck_assert_int_eq(n, 2);
    rewrite(&f, order[0], persona_json("c0", 1));
    rewrite(&f, order[1], persona_json("c1", 1));
    baseline(&f);
    drain_notifications(&f); /* what the writes above queued (none left, fixed) */
    commit(&f, 0, 0);
    expect_events(&f, NULL);

    /* The rescan sees the second change (its file is listed after it) and not
     * the first; both notifications are queued meanwhile.  What the master
     * does: commit after the rescan, then per batch of notifications. */
    struct race r = {&f, 0, at, order[0], order[1]};
    store_set_interrupt(f.st, change_during_listing, &r);
    ck_assert_int_eq(rescan(&f), 0);
    ck_assert_int_gt(r.calls, at); /* the changes were made during the listing */
    store_set_interrupt(f.st, NULL, NULL);
    ck_assert_int_ge(store_commit(f.st, 0), 0);
    drain_notifications(&f);
    expect_events(&f, "updated:c0", "updated:c1", NULL);
    expect_obj(&f, "c0", obj_of("c0", 12345));
    expect_obj(&f, "c1", obj_of("c1", 12345));
    /* No rescan owed: the next timer is the periodic rescan's. */
    ck_assert_int_gt(f.src->ops->next_timer_ms(f.src), clock_now_ms());
    fx_close(&f);
}
END_TEST

static int
mkdir_during_listing(void *arg)
{
    struct race *r = arg;
    if (r->calls++ == 0) {
        char sub[600];
        snprintf(sub, sizeof(sub), "%s/sub", r->f->dir);
        ck_assert_int_eq(mkdir(sub, 0700), 0);
    }
    return 0;
}

/* A notification the rescan applies that asks for a rescan itself (here a new
 * subdirectory) is not lost with it: the timer is due at once and rescans. */
START_TEST(test_rescan_catch_up_owes_rescan)
{
    struct fx f;
    fx_open(&f, FX_HALF_BYTES);
    if (f.src->ops->fd(f.src) < 0) {
        fprintf(stderr, "no inotify: the rescan's catch-up not tested\n");
        fx_close(&f);
        return;
    }
    put(&f, "a.json", persona_json("alpha", 1));
    baseline(&f);
    drain_notifications(&f);
    commit(&f, 0, 0);
    int64_t periodic = f.src->ops->next_timer_ms(f.src);
    ck_assert_int_gt(periodic, clock_now_ms());
    struct race r = {&f, 0, 0, NULL, NULL};
    store_set_interrupt(f.st, mkdir_during_listing, &r);
    ck_assert_int_eq(rescan(&f), 0);
    store_set_interrupt(f.st, NULL, NULL);
    ck_assert_int_gt(r.calls, 0);
    ck_assert_int_le(f.src->ops->next_timer_ms(f.src), clock_now_ms()); /* owed: now */
    ck_assert_int_eq(f.src->ops->on_timer(f.src, clock_now_ms()), 1);   /* rescanned */
    ck_assert_uint_eq(f.src->ops->flags(f.src), 0);
    ck_assert_int_eq(f.src->ops->next_timer_ms(f.src), periodic); /* paid */
    ck_assert_int_eq(f.src->ops->on_timer(f.src, clock_now_ms()), 0);
    commit(&f, 0, 0);
    expect_events(&f, NULL);
    fx_close(&f);
}
END_TEST

static Suite *
source_dir_suite(void)
{
    Suite *s = suite_create("source_dir");
    TCase *tc = tcase_create("source_dir");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_is_candidate);
    tcase_add_test(tc, test_baseline_emits_nothing);
    tcase_add_test(tc, test_oversized_file);
    tcase_add_test(tc, test_rescan);
    tcase_add_test(tc, test_file_changed_for_missing_or_non_regular);
    tcase_add_test(tc, test_fifo_never_opened);
    tcase_add_test(tc, test_device_node_not_opened);
    tcase_add_test(tc, test_symlinks);
    tcase_add_test(tc, test_configmap_layout);
    tcase_add_test(tc, test_unreadable_warned_once);
    tcase_add_test(tc, test_rescan_interrupted);
    tcase_add_test(tc, test_notifications);
    tcase_add_test(tc, test_periodic_rescan);
    tcase_add_test(tc, test_dir_missing_and_back);
    tcase_add_test(tc, test_rescan_racing_changes_in_order);
    tcase_add_test(tc, test_rescan_catch_up_owes_rescan);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(source_dir_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
