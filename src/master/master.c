/*
 * master - see master.h.
 *
 * Start-up order matters: signal handlers (a SIGTERM during a long initial
 * scan is a clean stop), personas directory (exit 1 if missing), listening
 * sockets (exit 1 if the port is taken, before touching anything a running
 * instance owns), shared memory, the initial scan (the baseline: no events),
 * then the workers, which inherit the sockets and the mappings.  Every scan
 * stops between files once SIGTERM/SIGINT is in (store_set_interrupt).
 *
 * The loop drives the sources (source.h; today the personas directory,
 * source_dir.h) and commits the store after each of their operations that
 * says so.  The sources' flags go to the snapshot header: while the personas
 * directory is missing, SNAP_FLAG_DIR_MISSING tells the workers' /healthz
 * (nothing is committed until it is back: they serve the last snapshot).
 *
 * Each worker has its own pipe from the master: a byte is the doorbell ("new
 * events"), EOF tells the worker the master is gone.  After fork a child closes
 * every other worker's pipe ends, so the master's death is always seen.
 *
 * Worker i accepts on listening socket i % nlisten (its own with SO_REUSEPORT).
 * While no live worker uses a socket, it does not listen (net_unlisten): the
 * kernel would otherwise keep queueing connections on it that nobody accepts
 * for the whole respawn back-off.  It keeps its port, and listens again just
 * before the next worker that uses it is forked.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(HAVE_SYS_RANDOM_H) && defined(HAVE_GETRANDOM)
#include <sys/random.h>
#endif

#include "shm/shm_map.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/master.h"
#include "common/net.h"
#include "common/sig.h"
#include "master/source.h"
#include "master/source_dir.h"
#include "master/store.h"
#include "worker/worker.h"

#define MASTER_STOP_GRACE_MS 1800
#define RESPAWN_MIN_LIFETIME_MS 1000
#define RESPAWN_MAX_DELAY_MS 5000

struct worker_slot {
    pid_t pid;       /* 0 when not running */
    int doorbell_wr; /* -1 when not running */
    int64_t started_ms;
    int64_t respawn_at;   /* 0: no respawn pending */
    unsigned quick_fails; /* consecutive deaths before RESPAWN_MIN_LIFETIME_MS */
    int retired;          /* exited WORKER_EXIT_NO_RESPAWN */
};

struct master {
    const struct config *cfg;
    int listen_fds[256];  /* -1 only after a failed net_unlisten without SO_REUSEPORT */
    int listen_idle[256]; /* 1: bound but not listening (no live worker uses it) */
    int nlisten;
    struct ring ring;
    struct snapshot snap;
    int ring_ro_fd, snap_ro_fd; /* read-only descriptors of the shm objects, for workers */
    struct store *store;
    struct source *sources[STORE_SOURCES_MAX];
    int nsources;
    struct worker_slot *slots;
    int stopping;
    int stop_requested; /* SIGTERM or SIGINT arrived (sticky) */
    uint32_t flags;     /* the SNAP_FLAG_* word last published */
};

/* 1 once SIGTERM or SIGINT has arrived: the loop's stop condition and the
 * store's interrupt, which scans check between files. */
static int
stop_requested(void *arg)
{
    struct master *m = arg;
    if (sig_take(SIGTERM) || sig_take(SIGINT))
        m->stop_requested = 1;
    return m->stop_requested;
}

/* Tell the workers (/healthz) what the sources report (the personas
 * directory missing). */
static void
publish_flags(struct master *m)
{
    uint32_t flags = 0;
    for (int i = 0; i < m->nsources; i++)
        flags |= m->sources[i]->ops->flags(m->sources[i]);
    if (flags != m->flags) {
        snapshot_set_flags(&m->snap, flags);
        m->flags = flags;
    }
}

static void
ring_doorbell(struct master *m)
{
    for (unsigned i = 0; i < m->cfg->workers; i++) {
        if (m->slots[i].doorbell_wr < 0)
            continue;
        ssize_t r = write(m->slots[i].doorbell_wr, "", 1);
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EPIPE)
            log_warn("write(doorbell of worker %u)", i);
    }
}

static void
commit_and_notify(struct master *m)
{
    if (store_commit(m->store, 0) > 0)
        ring_doorbell(m);
}

/* Worker i is gone: unless a live worker shares its listening socket, the
 * socket stops listening (queued clients are reset, new ones go to the other
 * workers or are refused) and keeps the port for the respawn. */
static void
listener_release(struct master *m, unsigned i)
{
    int k = (int)(i % (unsigned)m->nlisten);
    if (m->listen_idle[k])
        return;
    for (unsigned j = 0; j < m->cfg->workers; j++)
        if (m->slots[j].pid != 0 && (int)(j % (unsigned)m->nlisten) == k)
            return;
    if (net_unlisten(&m->listen_fds[k]) != 0) {
        log_warn("worker %u: cannot stop its listening socket", i);
        if (m->listen_fds[k] >= 0)
            return; /* still listening: clients wait for the respawn */
    }
    m->listen_idle[k] = 1;
    log_debug("worker %u: listening socket idle until the respawn", i);
}

/* Before forking worker i: its listening socket listens.  Returns 0 or -1. */
static int
listener_acquire(struct master *m, unsigned i)
{
    int k = (int)(i % (unsigned)m->nlisten);
    if (!m->listen_idle[k])
        return 0;
    if (m->listen_fds[k] < 0) {
        char msg[512];
        if (net_listen(m->cfg->listen_addr, m->cfg->listen_port, &m->listen_fds[k], 1, msg,
                       sizeof(msg)) != 1) {
            m->listen_fds[k] = -1;
            log_warnx("worker %u: %s; retrying", i, msg);
            return -1;
        }
    } else if (net_relisten(m->listen_fds[k]) != 0) {
        log_warn("worker %u: listen; retrying", i);
        return -1;
    }
    m->listen_idle[k] = 0;
    return 0;
}

/* In a new worker: the shared memory becomes read-only (see shm_map.h), and
 * the read-only descriptors are closed, so the worker holds none at all. */
static void
worker_map_readonly(struct master *m, unsigned i)
{
    if (shm_map_readonly(m->ring.hdr, ring_bytes(m->cfg->ring_size), m->ring_ro_fd) != 0)
        fatal("worker %u: mmap(ring, PROT_READ)", i);
    if (shm_map_readonly(m->snap.hdr, snapshot_bytes(m->cfg->snapshot_max_bytes), m->snap_ro_fd) !=
        0)
        fatal("worker %u: mmap(snapshot, PROT_READ)", i);
    m->ring_ro_fd = m->snap_ro_fd = -1;
}

/* Every source rescans (SIGHUP); commit if one did. */
static void
rescan_and_notify(struct master *m)
{
    int done = 0;
    for (int i = 0; i < m->nsources; i++)
        if (m->sources[i]->ops->rescan(m->sources[i]) == 0)
            done = 1;
    if (done)
        commit_and_notify(m);
}

static void
close_sources(struct master *m)
{
    for (int i = 0; i < m->nsources; i++)
        m->sources[i]->ops->close(m->sources[i]);
    m->nsources = 0;
}

static void
spawn_worker(struct master *m, unsigned i)
{
    struct worker_slot *s = &m->slots[i];
    if (listener_acquire(m, i) != 0) {
        s->respawn_at = clock_now_ms() + RESPAWN_MAX_DELAY_MS;
        return;
    }
    int p[2];
    if (pipe(p) != 0) {
        log_warn("pipe for worker %u; retrying", i);
        s->respawn_at = clock_now_ms() + RESPAWN_MAX_DELAY_MS;
        listener_release(m, i);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("fork for worker %u; retrying", i);
        close(p[0]);
        close(p[1]);
        s->respawn_at = clock_now_ms() + RESPAWN_MAX_DELAY_MS;
        listener_release(m, i);
        return;
    }
    if (pid == 0) {
        sig_reset_child();
        close(p[1]);
        for (unsigned k = 0; k < m->cfg->workers; k++)
            if (m->slots[k].doorbell_wr >= 0)
                close(m->slots[k].doorbell_wr);
        close_sources(m);
        int lfd = m->listen_fds[i % (unsigned)m->nlisten];
        for (int k = 0; k < m->nlisten; k++)
            if (m->listen_fds[k] != lfd && m->listen_fds[k] >= 0)
                close(m->listen_fds[k]);
        if (net_set_nonblock(p[0]) != 0 || net_set_cloexec(p[0]) != 0)
            fatal("worker %u: fcntl(doorbell)", i);
        worker_map_readonly(m, i);
        worker_main(m->cfg, i, lfd, p[0], &m->ring, &m->snap);
    }
    close(p[0]);
    if (net_set_nonblock(p[1]) != 0 || net_set_cloexec(p[1]) != 0)
        log_warn("fcntl(doorbell of worker %u)", i);
    s->pid = pid;
    s->doorbell_wr = p[1];
    s->started_ms = clock_now_ms();
    s->respawn_at = 0;
    log_debug("worker %u started, pid %ld", i, (long)pid);
}

static void
reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned i;
        for (i = 0; i < m->cfg->workers && m->slots[i].pid != pid; i++)
            ;
        if (i == m->cfg->workers)
            continue;
        struct worker_slot *s = &m->slots[i];
        s->pid = 0;
        close(s->doorbell_wr);
        s->doorbell_wr = -1;
        if (m->stopping)
            continue;
        listener_release(m, i);
        int64_t now = clock_now_ms();
        if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_NO_RESPAWN) {
            log_error("worker %u (pid %ld) exited with status 2; not respawning", i, (long)pid);
            s->retired = 1;
            continue;
        }
        if (WIFSIGNALED(status))
            log_error("worker %u (pid %ld) killed by signal %d; respawning", i, (long)pid,
                      WTERMSIG(status));
        else
            log_error("worker %u (pid %ld) exited with status %d; respawning", i, (long)pid,
                      WEXITSTATUS(status));
        if (now - s->started_ms < RESPAWN_MIN_LIFETIME_MS) {
            int64_t delay = 100LL << (s->quick_fails < 6 ? s->quick_fails : 6);
            s->quick_fails++;
            s->respawn_at = now + (delay > RESPAWN_MAX_DELAY_MS ? RESPAWN_MAX_DELAY_MS : delay);
        } else {
            s->quick_fails = 0;
            s->respawn_at = now;
        }
    }
}

static int
all_retired(const struct master *m)
{
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (!m->slots[i].retired)
            return 0;
    return 1;
}

static int
running_workers(const struct master *m)
{
    int n = 0;
    for (unsigned i = 0; i < m->cfg->workers; i++)
        n += m->slots[i].pid != 0;
    return n;
}

/* Stop: TERM every worker (each closes its clients with 1001), wait, KILL the rest. */
static void
stop_workers(struct master *m)
{
    m->stopping = 1;
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (m->slots[i].pid != 0)
            if (kill(m->slots[i].pid, SIGTERM) != 0 && errno != ESRCH)
                log_warn("kill(worker %u, SIGTERM)", i);
    int64_t deadline = clock_now_ms() + MASTER_STOP_GRACE_MS;
    while (running_workers(m) > 0) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0) {
            for (unsigned i = 0; i < m->cfg->workers; i++)
                if (m->slots[i].pid != 0) {
                    log_warnx("worker %u did not stop in time; killing it", i);
                    if (kill(m->slots[i].pid, SIGKILL) != 0 && errno != ESRCH)
                        log_warn("kill(worker %u, SIGKILL)", i);
                }
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            break;
        }
        struct pollfd pfd = {.fd = sig_fd(), .events = POLLIN};
        (void)poll(&pfd, 1, (int)(left < 50 ? left : 50));
        sig_drain();
        reap_children(m);
    }
}

/* The epoch: 16 characters of [A-Za-z0-9_-], 96 random bits, so a stream
 * position of an earlier run is never taken for one of this run.  Without
 * getrandom(2) (or before the kernel's pool is ready: it must not block a
 * boot) the time, the pid and a monotonic clock are mixed instead, which
 * still differs between runs. */
#define EPOCH_CHARS 16

static void
epoch_new(char out[EPOCH_CHARS + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[EPOCH_CHARS];
    size_t got = 0;
#if defined(HAVE_SYS_RANDOM_H) && defined(HAVE_GETRANDOM)
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, GRND_NONBLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
#endif
    if (got < sizeof(rnd)) {
        struct timespec rt = {0}, mt = {0};
        if (clock_gettime(CLOCK_REALTIME, &rt) != 0 || clock_gettime(CLOCK_MONOTONIC, &mt) != 0)
            log_warn("clock_gettime");
        uint64_t x = (uint64_t)rt.tv_sec * 1000000007u ^ (uint64_t)rt.tv_nsec ^
                     (uint64_t)getpid() << 40 ^ (uint64_t)mt.tv_nsec << 20;
        log_warnx("getrandom unavailable: the epoch is derived from the time and pid");
        for (size_t i = 0; i < sizeof(rnd); i++) {
            x ^= x >> 33; /* splitmix-style scrambling of the seed */
            x *= 0xff51afd7ed558ccdull;
            x ^= x >> 29;
            rnd[i] = (uint8_t)(x >> 24);
        }
    }
    for (size_t i = 0; i < EPOCH_CHARS; i++)
        out[i] = alphabet[rnd[i] & 63];
    out[EPOCH_CHARS] = '\0';
}

static void *
map_or_die(const struct config *cfg, const char *kind, size_t bytes, int *ro_fd)
{
    char tag[300], name[400];
    snprintf(tag, sizeof(tag), "%s-%u", cfg->listen_addr[0] ? cfg->listen_addr : "any",
             (unsigned)cfg->listen_port);
    shm_map_name(name, sizeof(name), tag, kind);
    const char *call = "?";
    void *mem = shm_map_create(name, bytes, ro_fd, &call);
    if (mem == NULL)
        fatal("shared memory %s (%zu bytes): %s", name, bytes, call);
    return mem;
}

/* Workers inherit the limit: each must hold its --max-connections clients. */
static void
raise_nofile(const struct config *cfg)
{
    uint64_t need = worker_nofile_needed(cfg), soft, hard;
    if (net_raise_nofile(need, &soft, &hard) != 0)
        log_warn("RLIMIT_NOFILE: cannot raise the soft limit from %llu to %llu (hard %llu)",
                 (unsigned long long)soft, (unsigned long long)need, (unsigned long long)hard);
    else if (soft < need)
        log_warnx("RLIMIT_NOFILE: the hard limit %llu is below the %llu descriptors a worker "
                  "needs for --max-connections=%u (and its HTTP connections); soft limit "
                  "now %llu: a worker will accept fewer connections",
                  (unsigned long long)hard, (unsigned long long)need, cfg->max_connections,
                  (unsigned long long)soft);
}

static int64_t
next_wakeup(const struct master *m)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < m->nsources; i++) {
        int64_t t = m->sources[i]->ops->next_timer_ms(m->sources[i]);
        if (t < next)
            next = t;
    }
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (m->slots[i].respawn_at != 0 && m->slots[i].respawn_at < next)
            next = m->slots[i].respawn_at;
    return next;
}

int
master_run(const struct config *cfg)
{
    static struct master m; /* static: the listen_fds array is large; one master per process */
    memset(&m, 0, sizeof(m));
    m.cfg = cfg;
    char msg[512];
    if (sig_setup() != 0)
        fatal("signal set-up");
    raise_nofile(cfg);
    /* The directory is checked first (exit 1 before binding anything); the
     * store publishes into the shared memory, which needs the port: it is
     * mapped below, before the store's first commit. */
    m.store = store_new(&m.snap, &m.ring);
    if (m.store == NULL)
        fatalx("out of memory");
    struct source_dir *dir =
        source_dir_open(cfg->personas_dir, m.store, cfg->rescan_interval_ms, msg, sizeof(msg));
    if (dir == NULL) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    m.sources[m.nsources++] = source_dir_source(dir);
    m.nlisten = net_listen(cfg->listen_addr, cfg->listen_port, m.listen_fds, (int)cfg->workers, msg,
                           sizeof(msg));
    if (m.nlisten < 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    ring_init(&m.ring, map_or_die(cfg, "ring", ring_bytes(cfg->ring_size), &m.ring_ro_fd),
              cfg->ring_size);
    snapshot_init(
        &m.snap,
        map_or_die(cfg, "snapshot", snapshot_bytes(cfg->snapshot_max_bytes), &m.snap_ro_fd),
        cfg->snapshot_max_bytes);
    char epoch[EPOCH_CHARS + 1];
    epoch_new(epoch);
    if (snapshot_set_epoch(&m.snap, epoch) != 0)
        fatalx("bad epoch %s", epoch); /* never: epoch_new writes the epoch alphabet */
    log_debug("epoch %s", epoch);
    m.slots = calloc(cfg->workers, sizeof(*m.slots));
    if (m.slots == NULL)
        fatalx("out of memory");
    for (unsigned i = 0; i < cfg->workers; i++)
        m.slots[i].doorbell_wr = -1;
    store_set_interrupt(m.store, stop_requested, &m);
    for (int i = 0; i < m.nsources; i++)
        if (m.sources[i]->ops->rescan(m.sources[i]) != 0 && !m.stop_requested)
            return 1;
    if (m.stop_requested) {
        log_info("stopping during the initial scan");
        goto out;
    }
    /* Data over --snapshot-max must not become a crash loop under a supervisor:
     * start with an empty list (the error is logged) and retry at each change. */
    if (store_commit(m.store, 1) != 0 && store_publish_empty(m.store) != 0)
        fatalx("cannot publish even an empty snapshot");
    for (unsigned i = 0; i < cfg->workers; i++)
        spawn_worker(&m, i);
    struct store_stats ss;
    store_get_stats(m.store, &ss);
    int watched = m.sources[0]->ops->fd(m.sources[0]) >= 0; /* the directory, by inotify */
    log_info("personad %s listening on %s:%u (%u workers, %s), %u clusters from %s%s",
             PACKAGE_VERSION, cfg->listen_addr[0] ? cfg->listen_addr : "*",
             (unsigned)cfg->listen_port, cfg->workers,
             m.nlisten > 1 ? "SO_REUSEPORT" : "shared socket", ss.clusters, cfg->personas_dir,
             watched ? "" : " (no inotify: periodic rescans only)");

    for (;;) {
        /* poll skips the entries of sources without a descriptor (fd -1) */
        struct pollfd pfd[1 + STORE_SOURCES_MAX] = {{.fd = sig_fd(), .events = POLLIN}};
        for (int i = 0; i < m.nsources; i++)
            pfd[1 + i] =
                (struct pollfd){.fd = m.sources[i]->ops->fd(m.sources[i]), .events = POLLIN};
        int64_t timeout = next_wakeup(&m) - clock_now_ms();
        if (timeout < 0 || m.stop_requested)
            timeout = 0;
        int n = poll(pfd, (nfds_t)(1 + m.nsources), (int)(timeout > 60000 ? 60000 : timeout));
        if (n < 0 && errno != EINTR)
            fatal("poll");
        if (pfd[0].revents & POLLIN)
            sig_drain();
        if (stop_requested(&m)) {
            log_info("stopping");
            break;
        }
        if (sig_take(SIGCHLD))
            reap_children(&m);
        if (all_retired(&m)) {
            log_error("every worker exited with status 2; giving up");
            stop_workers(&m);
            return 1;
        }
        if (sig_take(SIGHUP)) {
            log_info("SIGHUP: rescanning %s (options are read at start-up only)",
                     cfg->personas_dir);
            rescan_and_notify(&m); /* a missing directory is retried below */
        }
        if (sig_take(SIGUSR1))
            log_info("SIGUSR1: logs go to stderr; nothing to reopen");
        for (int i = 0; i < m.nsources; i++) {
            struct source *s = m.sources[i];
            /* The fd polled, if the source still has it (a rescan may have let it go). */
            if (pfd[1 + i].fd >= 0 && (pfd[1 + i].revents & POLLIN) &&
                pfd[1 + i].fd == s->ops->fd(s) && s->ops->on_ready(s))
                commit_and_notify(&m);
        }
        int64_t now = clock_now_ms();
        for (int i = 0; i < m.nsources; i++)
            if (m.sources[i]->ops->on_timer(m.sources[i], now))
                commit_and_notify(&m);
        publish_flags(&m);
        for (unsigned i = 0; i < cfg->workers; i++)
            if (m.slots[i].pid == 0 && !m.slots[i].retired && m.slots[i].respawn_at != 0 &&
                m.slots[i].respawn_at <= now)
                spawn_worker(&m, i);
    }
out:
    stop_workers(&m);
    close_sources(&m);
    store_free(m.store);
    free(m.slots);
    for (int i = 0; i < m.nlisten; i++)
        if (m.listen_fds[i] >= 0)
            close(m.listen_fds[i]);
    close(m.ring_ro_fd);
    close(m.snap_ro_fd);
    log_info("stopped");
    return 0;
}
