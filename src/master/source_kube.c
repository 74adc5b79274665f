/*
 * source_kube - see source_kube.h.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "shm/snapshot.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/net.h"
#include "common/sig.h"
#include "kube/kube_pipe.h"
#include "kube/kube_target.h"
#include "master/source_kube.h"

#define SOURCE_KUBE_WHAT "ClusterPersona"
#define SOURCE_KUBE_READS 16 /* read calls per on_ready */
#define SOURCE_KUBE_MIN_LIFETIME_MS 1000

struct source_kube {
    struct source base; /* first: what the master's loop holds */
    struct store *st;   /* not owned */
    int src;
    struct kube_target target;
    size_t max_object;
    void (*in_child)(void *);
    void *in_child_arg;
    pid_t pid; /* the client child, 0 when none */
    int rd;    /* its pipe's read end, -1 once at EOF */
    int64_t started_ms;
    int64_t respawn_at; /* 0: none pending */
    unsigned quick_fails;
    struct kube_pipe_reader reader;
    int in_sync; /* between BEGIN and END/CANCEL */
    int listed;  /* a first list was published */
    int changed; /* frames applied since the last commit */
    int held;    /* whole frames are held, left for on_timer (after the baseline) */
    char name[CONFIG_PATH_MAX + 16];
    char client_path[CONFIG_PATH_MAX + 32]; /* personad-kube-client */
    int log_level;                          /* passed on to it */
    int log_syslog;
};

/* The client's descriptor for its pipe (kube_main.c). */
#define KUBE_CLIENT_FD 3
#define KUBE_CLIENT_NAME "personad-kube-client"

#ifndef PERSONAD_KUBE_CLIENT_PATH
#define PERSONAD_KUBE_CLIENT_PATH "/usr/local/libexec/personad/" KUBE_CLIENT_NAME
#endif

/* Where personad-kube-client is: beside the running personad (a build tree),
 * else where make install puts it.  Returns 0, or -1 with msg set. */
static int
client_find(char *out, size_t size, char *msg, size_t msg_size)
{
    char self[CONFIG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            int w = snprintf(out, size, "%s/%s", self, KUBE_CLIENT_NAME);
            if (w > 0 && (size_t)w < size && access(out, X_OK) == 0)
                return 0;
        }
    }
    snprintf(out, size, "%s", PERSONAD_KUBE_CLIENT_PATH);
    if (access(out, X_OK) == 0)
        return 0;
    snprintf(msg, msg_size, "--source=kubernetes: the API client %s: %s", out, strerror(errno));
    return -1;
}

static struct source_kube *
kube_of(struct source *s)
{
    return (struct source_kube *)s;
}

static const struct source_kube *
kube_of_const(const struct source *s)
{
    return (const struct source_kube *)s;
}

static void
child_spawn(struct source_kube *sk)
{
    int p[2];
    if (pipe(p) != 0) {
        log_warn("kubernetes: pipe for the API client; retrying");
        sk->respawn_at = clock_now_ms() + SOURCE_KUBE_RESPAWN_MAX_MS;
        return;
    }
    sig_hold();
    pid_t pid = fork();
    if (pid != 0)
        sig_release();
    if (pid < 0) {
        log_warn("kubernetes: fork for the API client; retrying");
        close(p[0]);
        close(p[1]);
        sk->respawn_at = clock_now_ms() + SOURCE_KUBE_RESPAWN_MAX_MS;
        return;
    }
    if (pid == 0) {
        sig_reset_child();
        /* The default dispositions: SIGTERM ends the child at once. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef __linux__
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the master */
#endif
        close(p[0]);
        /* The client is a program of its own: libcurl is mapped in this child
         * only.  in_child closes every source, this one too. */
        static char name[] = KUBE_CLIENT_NAME, max[32], level[8], target[8];
        static char path[CONFIG_PATH_MAX + 32];
        static struct kube_target t;
        t = sk->target;
        memcpy(path, sk->client_path, sizeof(path));
        snprintf(max, sizeof(max), "%zu", sk->max_object);
        snprintf(level, sizeof(level), "%d", sk->log_level);
        snprintf(target, sizeof(target), "%s", sk->log_syslog ? "syslog" : "stderr");
        int fd = p[1];
        sk->in_child(sk->in_child_arg);
        if (fd != KUBE_CLIENT_FD && (dup2(fd, KUBE_CLIENT_FD) < 0 || close(fd) != 0)) {
            log_warn("kubernetes: dup2(the API client's pipe)");
            _exit(1);
        }
        char *argv[] = {name, t.api, t.token_file, t.ca_file, max, level, target, NULL};
        execv(path, argv);
        log_warn("kubernetes: execv(%s)", path);
        _exit(1);
    }
    close(p[1]);
    if (net_set_nonblock(p[0]) != 0 || net_set_cloexec(p[0]) != 0)
        log_warn("kubernetes: fcntl(the API client's pipe)");
    sk->pid = pid;
    sk->rd = p[0];
    sk->started_ms = clock_now_ms();
    sk->respawn_at = 0;
    kube_pipe_reader_reset(&sk->reader);
    log_debug("kubernetes: API client started, pid %ld", (long)pid);
}

/* The pipe is done with (EOF, or a protocol error): a list in progress is
 * cancelled; the respawn waits for the reap. */
static void
pipe_close(struct source_kube *sk)
{
    if (sk->rd >= 0)
        close(sk->rd);
    sk->rd = -1;
    if (sk->in_sync) {
        store_sync_cancel(sk->st, sk->src);
        sk->in_sync = 0;
    }
    kube_pipe_reader_reset(&sk->reader);
    sk->held = 0;
}

static void
apply(struct source_kube *sk, const struct kube_frame *f)
{
    switch (f->type) {
    case KUBE_FRAME_PUT:
        (void)store_put(sk->st, sk->src, f->key, f->data, f->len); /* logged by the store */
        sk->changed = 1;
        break;
    case KUBE_FRAME_REMOVE:
        store_remove(sk->st, sk->src, f->key);
        sk->changed = 1;
        break;
    case KUBE_FRAME_BEGIN:
        if (sk->in_sync)
            store_sync_cancel(sk->st, sk->src);
        store_sync_begin(sk->st, sk->src);
        sk->in_sync = 1;
        break;
    case KUBE_FRAME_END:
        if (sk->in_sync)
            store_sync_end(sk->st, sk->src);
        sk->in_sync = 0;
        sk->changed = 1;
        break;
    case KUBE_FRAME_CANCEL:
        if (sk->in_sync)
            store_sync_cancel(sk->st, sk->src);
        sk->in_sync = 0;
        break;
    }
}

static int
op_fd(const struct source *s)
{
    return kube_of_const(s)->rd;
}

/* The protocol broke (a bad frame, no memory): a new child starts over. */
static void
child_restart(struct source_kube *sk, const char *why)
{
    log_warnx("kubernetes: %s; restarting the API client", why);
    if (sk->pid != 0 && kill(sk->pid, SIGKILL) != 0 && errno != ESRCH)
        log_warn("kill(the kubernetes API client)");
    pipe_close(sk);
}

/* Apply the whole frames held.  The first complete list stops the batch: it
 * is committed alone, as the baseline, and what follows it is news (*baseline
 * set).  So does each watch event after it (*stop set): the store turns the
 * differences at a commit into events, so an ADDED then DELETED applied in one
 * commit would be no event at all, where a watcher of the API saw two; one
 * watch event per commit gives each its event.  A relist (BEGIN ... END) is
 * still one commit: its differences are what changed meanwhile.  Returns 1
 * while whole frames are left held. */
static int
frames_apply(struct source_kube *sk, int *baseline, int *stop)
{
    struct kube_frame f;
    const char *err = NULL;
    int rc;
    while ((rc = kube_pipe_next(&sk->reader, &f, &err)) == 1) {
        apply(sk, &f);
        if (f.type == KUBE_FRAME_END && !sk->listed) {
            sk->listed = 1;
            *baseline = 1;
            *stop = 1;
            return kube_pipe_pending(&sk->reader) > 0;
        }
        if (sk->listed && !sk->in_sync &&
            (f.type == KUBE_FRAME_PUT || f.type == KUBE_FRAME_REMOVE)) {
            *stop = 1;
            return kube_pipe_pending(&sk->reader) > 0;
        }
    }
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof(why), "the API client sent a bad frame (%s)", err);
        child_restart(sk, why);
    }
    return 0;
}

/* What to tell the loop after frames were applied. */
static int
commit_due(struct source_kube *sk, int baseline)
{
    if (!sk->listed || sk->in_sync || !sk->changed)
        return 0;
    sk->changed = 0;
    return baseline ? SOURCE_COMMIT_BASELINE : 1;
}

static int
op_on_ready(struct source *s)
{
    struct source_kube *sk = kube_of(s);
    int baseline = 0, stop = sk->held; /* frames held: on_timer applies them first */
    for (int i = 0; i < SOURCE_KUBE_READS && sk->rd >= 0 && !stop; i++) {
        size_t room = 0;
        unsigned char *at = kube_pipe_reader_space(&sk->reader, &room);
        if (at == NULL) {
            child_restart(sk, "out of memory reading the API client's pipe");
            break;
        }
        ssize_t n = read(sk->rd, at, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0)
                log_warn("kubernetes: read(the API client's pipe)");
            /* EOF: the frames held are the child's last; a partial one is lost with it. */
            sk->held = frames_apply(sk, &baseline, &stop);
            if (!sk->held)
                pipe_close(sk);
            break;
        }
        kube_pipe_reader_commit(&sk->reader, (size_t)n);
        sk->held = frames_apply(sk, &baseline, &stop);
    }
    return commit_due(sk, baseline);
}

static int
op_rescan(struct source *s)
{
    struct source_kube *sk = kube_of(s);
    if (sk->pid == 0 && sk->rd < 0) {
        child_spawn(sk);
    } else if (sk->pid != 0) {
        log_info("kubernetes: restarting the API client to list again");
        sk->quick_fails = 0;
        if (kill(sk->pid, SIGKILL) != 0 && errno != ESRCH)
            log_warn("kill(the kubernetes API client)");
        sk->respawn_at = 0; /* after the reap, at once */
        sk->started_ms = 0;
    }
    /* Nothing changed yet (a commit finds no difference): the lists arrive
     * through the pipe.  A failed fork is retried by the timer. */
    return 0;
}

static int64_t
op_next_timer_ms(const struct source *s)
{
    const struct source_kube *sk = kube_of_const(s);
    if (sk->held)
        return 0;
    return sk->pid == 0 && sk->rd < 0 && sk->respawn_at != 0 ? sk->respawn_at : INT64_MAX;
}

static int
op_on_timer(struct source *s, int64_t now_ms)
{
    struct source_kube *sk = kube_of(s);
    if (sk->held) {
        int baseline = 0, stop = 0;
        sk->held = frames_apply(sk, &baseline, &stop);
        return commit_due(sk, baseline);
    }
    if (sk->pid == 0 && sk->rd < 0 && sk->respawn_at != 0 && now_ms >= sk->respawn_at)
        child_spawn(sk);
    return 0;
}

static uint32_t
op_flags(const struct source *s)
{
    return kube_of_const(s)->listed ? 0 : SNAP_FLAG_KUBE_UNLISTED;
}

static void
op_close(struct source *s)
{
    struct source_kube *sk = kube_of(s);
    if (sk->rd >= 0)
        close(sk->rd);
    kube_pipe_reader_free(&sk->reader);
    free(sk);
}

static const struct source_ops source_kube_ops = {
    .fd = op_fd,
    .on_ready = op_on_ready,
    .rescan = op_rescan,
    .next_timer_ms = op_next_timer_ms,
    .on_timer = op_on_timer,
    .flags = op_flags,
    .close = op_close,
};

int
source_kube_reaped(struct source_kube *sk, pid_t pid, int status)
{
    if (sk == NULL || pid != sk->pid || pid == 0)
        return 0;
    sk->pid = 0;
    int64_t now = clock_now_ms();
    if (sk->started_ms == 0) {
        /* Killed by a rescan: a new list at once. */
        sk->respawn_at = now;
        return 1;
    }
    if (WIFSIGNALED(status))
        log_error("kubernetes: API client (pid %ld) killed by signal %d; respawning", (long)pid,
                  WTERMSIG(status));
    else
        log_error("kubernetes: API client (pid %ld) exited with status %d; respawning", (long)pid,
                  WEXITSTATUS(status));
    if (now - sk->started_ms < SOURCE_KUBE_MIN_LIFETIME_MS) {
        int64_t delay = (int64_t)SOURCE_KUBE_RESPAWN_MIN_MS
                        << (sk->quick_fails < 6 ? sk->quick_fails : 6);
        sk->quick_fails++;
        sk->respawn_at =
            now + (delay > SOURCE_KUBE_RESPAWN_MAX_MS ? SOURCE_KUBE_RESPAWN_MAX_MS : delay);
    } else {
        sk->quick_fails = 0;
        sk->respawn_at = now;
    }
    return 1;
}

void
source_kube_stop(struct source_kube *sk)
{
    if (sk == NULL || sk->pid == 0)
        return;
    if (kill(sk->pid, SIGKILL) != 0 && errno != ESRCH)
        log_warn("kill(the kubernetes API client)");
    while (waitpid(sk->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    sk->pid = 0;
}

struct source *
source_kube_source(struct source_kube *sk)
{
    return &sk->base;
}

struct source_kube *
source_kube_open(const struct config *cfg, struct store *st, void (*in_child)(void *), void *arg,
                 char *msg, size_t msg_size)
{
    struct source_kube *sk = calloc(1, sizeof(*sk));
    if (sk == NULL) {
        snprintf(msg, msg_size, "kubernetes: out of memory");
        return NULL;
    }
    if (kube_target_resolve(cfg, getenv, &sk->target, msg, msg_size) != 0 ||
        client_find(sk->client_path, sizeof(sk->client_path), msg, msg_size) != 0) {
        free(sk);
        return NULL;
    }
    snprintf(sk->name, sizeof(sk->name), "%s", sk->target.api);
    sk->base = (struct source){&source_kube_ops, sk->name};
    sk->st = st;
    sk->rd = -1;
    sk->max_object = cfg->kube_max_object_bytes;
    sk->log_level = config_log_level(cfg);
    sk->log_syslog = cfg->log_target == CONFIG_LOG_SYSLOG;
    sk->in_child = in_child;
    sk->in_child_arg = arg;
    kube_pipe_reader_init(&sk->reader, sk->max_object + KUBE_PIPE_KEY_ROOM);
    sk->src = store_add_source(st, SOURCE_KUBE_WHAT);
    if (sk->src < 0) {
        snprintf(msg, msg_size, "kubernetes: too many sources");
        op_close(&sk->base);
        return NULL;
    }
    return sk;
}
