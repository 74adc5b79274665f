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
 * Each worker has its own socket to the master (a socketpair): a byte is the
 * doorbell ("new events"), EOF tells the worker the master is gone.  After
 * fork a child closes every other worker's ends, so the master's death is
 * always seen.  Back on it come the worker's reports (worker.h): READY when
 * its loop runs, and an answer to each WORKER_PING.
 *
 * Supervisors (notify.h): READY=1 once the initial state is published and
 * every worker has reported ready; RELOADING=1 ... READY=1 around a SIGHUP;
 * STOPPING=1; STATUS= at most once a second when it changed.  While there is
 * a $NOTIFY_SOCKET the master pings every worker (every second, or half the
 * watchdog's half-period if shorter) for its connection count; with a
 * watchdog, WATCHDOG=1 goes out every half-period from this loop only while
 * no worker has left a ping unanswered for a half-period, and such a worker
 * (stopped, spinning) is killed and respawned like a crashed one.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(HAVE_SYS_RANDOM_H) && defined(HAVE_GETRANDOM)
#include <sys/random.h>
#endif

#include "shm/shm_map.h"
#include "shm/stats.h"
#include "common/auth_tokens.h"
#include "shm/peers.h"
#include "common/clock.h"
#include "common/log.h"
#include "master/master.h"
#include "common/net.h"
#include "master/notify.h"
#include "master/pidfile.h"
#include "common/priv.h"
#include "common/sig.h"
#include "common/tls.h"
#include "master/source.h"
#include "master/source_dir.h"
#ifdef ENABLE_KUBERNETES
#include "master/source_kube.h"
#endif
#include "master/store.h"
#include "worker/worker.h"

#define MASTER_STOP_GRACE_MS 1800
#define RESPAWN_MIN_LIFETIME_MS 1000
#define RESPAWN_MAX_DELAY_MS 5000
#define MASTER_PING_PERIOD_MS 1000   /* worker pings while a supervisor listens */
#define MASTER_STATUS_PERIOD_MS 1000 /* STATUS= at most this often */
#define MASTER_REPORT_READS 4        /* recv calls per worker socket per pass */

struct worker_slot {
    pid_t pid;       /* 0 when not running */
    int doorbell_wr; /* -1 when not running */
    int64_t started_ms;
    int64_t respawn_at;   /* 0: no respawn pending */
    unsigned quick_fails; /* consecutive deaths before RESPAWN_MIN_LIFETIME_MS */
    int retired;          /* exited WORKER_EXIT_NO_RESPAWN */
    /* The link to the running worker (reset at each fork): */
    int ready;            /* it reported WORKER_REPORT_READY */
    int hung_up;          /* its socket is at EOF: not polled until reaped */
    int wedged;           /* killed for not answering a ping; until reaped */
    int64_t ping_sent_ms; /* the unanswered ping's time; 0: none */
    int ping_unsent;      /* its byte did not fit the full socket yet: sent again next pass */
    uint32_t connections; /* from its last report */
    unsigned char rbuf[sizeof(struct worker_report)]; /* a partial record */
    size_t rlen;
};

struct master {
    const struct config *cfg;
    int listen_fds[256];  /* -1 only after a failed net_unlisten without SO_REUSEPORT */
    int listen_idle[256]; /* 1: bound but not listening (no live worker uses it) */
    int nlisten;
    struct ring ring;
    struct snapshot snap;
    struct stats stats;                      /* slot 0: the master's; 1 + i: worker i's */
    int ring_ro_fd, snap_ro_fd, stats_ro_fd; /* read-only descriptors of the shm objects */
    struct store *store;
    struct source *sources[STORE_SOURCES_MAX];
    int nsources;
    struct worker_slot *slots;
    int stopping;
    int stop_requested; /* SIGTERM or SIGINT arrived (sticky) */
    uint32_t flags;     /* the SNAP_FLAG_* word last published */
    /* cfg points here; a reload updates its live options. */
    struct config cfg_own;
    struct source_dir *dir; /* sources[0] with --source=dir, for a reload's rescan interval */
#ifdef ENABLE_KUBERNETES
    struct source_kube *kube; /* sources[0] with --source=kubernetes: its child is reaped here */
#endif
    struct notify notify;
    struct pidfile pidfile;
    struct priv priv;         /* --user: workers drop at once, the master once started */
    int ready_sent;           /* READY=1 (and --ready-fd) done */
    int64_t next_ping_ms;     /* 0: no worker pings (no supervisor listening) */
    int64_t next_watchdog_ms; /* 0: no watchdog */
    int watchdog_held;        /* WATCHDOG=1 is due but a worker has not answered */
    int64_t status_check_ms;  /* when STATUS= may be sent next */
    char status[128];         /* the STATUS= text last sent */
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

/* The store's figures into the master's slot (its counters only grow). */
static void
stats_update(struct master *m)
{
    struct store_stats ss;
    store_get_stats(m->store, &ss);
    struct stats_slot *sl = stats_slot(&m->stats, 0);
    stats_set(sl, STATS_M_EVENTS_ADDED, ss.events_by_type[RING_EVENT_ADDED]);
    stats_set(sl, STATS_M_EVENTS_UPDATED, ss.events_by_type[RING_EVENT_UPDATED]);
    stats_set(sl, STATS_M_EVENTS_DELETED, ss.events_by_type[RING_EVENT_DELETED]);
    stats_set(sl, STATS_M_SNAPSHOT_PUBLISHES, ss.publishes);
    stats_set(sl, STATS_M_SNAPSHOT_BYTES, ss.snapshot_bytes);
    stats_set(sl, STATS_M_PERSONA_FILE_ERRORS, ss.bad_contents);
    stats_set(sl, STATS_M_PERSONAS_VALID, ss.records - ss.bad_records);
    stats_set(sl, STATS_M_PERSONAS_INVALID, ss.bad_records);
}

/* Commit; the figures are in the stats area before any worker hears of the
 * events (a client that got an event finds it counted). */
static void
commit_and_notify(struct master *m, int baseline)
{
    int n = store_commit(m->store, baseline);
    stats_update(m);
    if (n > 0)
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
    /* The stats area stays writable in the worker's own slot only. */
    if (stats_map_worker(&m->stats, i + 1, m->stats_ro_fd) != 0)
        fatal("worker %u: mmap(stats, PROT_READ)", i);
    m->ring_ro_fd = m->snap_ro_fd = m->stats_ro_fd = -1;
}

/* One line per option a reload found changed. */
static void
note_change(void *arg, const char *option, int live, const char *old_value, const char *new_value)
{
    unsigned *changes = arg;
    (*changes)++;
    if (live)
        log_info("reload: %s: %s -> %s", option, old_value, new_value);
    else
        log_warnx("reload: %s: needs a restart; keeping %s (the file says %s)", option, old_value,
                  new_value);
}

/* SIGHUP: re-read the config file.  The master validates it and applies the live
 * options; each worker, sent SIGHUP in turn, re-reads the same file and applies
 * the same live options to itself and its connections (a worker forked later
 * inherits them).  A file that no longer parses changes nothing anywhere. */
static void
hup_workers(struct master *m)
{
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (m->slots[i].pid != 0 && kill(m->slots[i].pid, SIGHUP) != 0 && errno != ESRCH)
            log_warn("kill(worker %u, SIGHUP)", i);
}

/* Returns 1 when live options changed (the workers are to re-read the file). */
static int
reload_config(struct master *m)
{
    struct config next;
    char msg[CONFIG_PATH_MAX + 256];
    if (m->cfg->config_file[0] == '\0') {
        log_info("reload: no --config file; options unchanged");
        return 0;
    }
    if (config_reload(m->cfg, &next, msg, sizeof(msg)) != 0) {
        log_error("reload: %s; keeping the running configuration", msg);
        return 0;
    }
    unsigned changes = 0;
    if (config_update(&m->cfg_own, &next, note_change, &changes) == 0) {
        if (changes == 0)
            log_info("reload: %s: no option changed", m->cfg->config_file);
        return 0;
    }
    const char *warning = config_warning(m->cfg);
    if (warning != NULL)
        log_warnx("reload: %s", warning);
    log_set_level((enum log_level)config_log_level(m->cfg));
    if (m->dir != NULL)
        source_dir_set_interval(m->dir, m->cfg->rescan_interval_ms);
    return 1;
}

/* SIGHUP with --tls-cert: the master loads the files too (it serves nothing,
 * but a worker it forks later inherits the last good pair); every running
 * worker loads them itself. */
static void
reload_tls(struct master *m)
{
    char msg[CONFIG_PATH_MAX + 256];
    if (tls_serve_load(m->cfg->tls_cert, m->cfg->tls_key, msg, sizeof(msg)) != 0)
        log_error("reload: TLS: %s; the workers keep the running certificate", msg);
    else
        log_info("reload: TLS: new connections get %s", msg);
}

/* SIGHUP with --auth-token-file: check the file again (the workers serve with
 * it, the master only reads it).  Returns 1 for a good one, which every worker
 * re-reads when sent SIGHUP; a bad one changes nothing and is logged once,
 * here (0). */
static int
reload_auth_tokens(struct master *m)
{
    if (m->cfg->auth_token_file[0] == '\0')
        return 0;
    struct auth_tokens t;
    char msg[CONFIG_PATH_MAX + 256];
    if (auth_tokens_load(&t, m->cfg->auth_token_file, msg, sizeof(msg)) != 0) {
        log_error("reload: --auth-token-file: %s; the workers keep the tokens read before", msg);
        return 0;
    }
    log_info("reload: --auth-token-file: %zu token(s) in %s", t.n, m->cfg->auth_token_file);
    auth_tokens_free(&t);
    return 1;
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
        commit_and_notify(m, 0);
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
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) != 0) {
        log_warn("socketpair for worker %u; retrying", i);
        s->respawn_at = clock_now_ms() + RESPAWN_MAX_DELAY_MS;
        listener_release(m, i);
        return;
    }
    sig_hold(); /* until the child's sig_setup: a forwarded SIGHUP waits for it */
    pid_t pid = fork();
    if (pid != 0)
        sig_release();
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
        notify_child(&m->notify);
        int lfd = m->listen_fds[i % (unsigned)m->nlisten];
        for (int k = 0; k < m->nlisten; k++)
            if (m->listen_fds[k] != lfd && m->listen_fds[k] >= 0)
                close(m->listen_fds[k]);
        if (net_set_nonblock(p[0]) != 0 || net_set_cloexec(p[0]) != 0)
            fatal("worker %u: fcntl(doorbell)", i);
        worker_map_readonly(m, i);
        /* The sockets, mappings and descriptors are held: the worker serves as
         * --user from here on, never as root. */
        char msg[512];
        if (priv_drop(&m->priv, msg, sizeof(msg)) != 0) {
            log_error("worker %u: %s", i, msg);
            _exit(WORKER_EXIT_NO_RESPAWN);
        }
        worker_main(m->cfg, i, lfd, p[0], &m->ring, &m->snap, &m->stats);
    }
    if (s->started_ms != 0)
        stats_add(stats_slot(&m->stats, 0), STATS_M_WORKER_RESTARTS, 1);
    stats_set_pid(&m->stats, i + 1, (uint64_t)pid);
    close(p[0]);
    if (net_set_nonblock(p[1]) != 0 || net_set_cloexec(p[1]) != 0)
        log_warn("fcntl(doorbell of worker %u)", i);
    s->pid = pid;
    s->doorbell_wr = p[1];
    s->started_ms = clock_now_ms();
    s->respawn_at = 0;
    s->ready = s->hung_up = s->wedged = 0;
    s->ping_sent_ms = 0;
    s->ping_unsent = 0;
    s->connections = 0;
    s->rlen = 0;
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
        if (i == m->cfg->workers) {
#ifdef ENABLE_KUBERNETES
            (void)source_kube_reaped(m->kube, pid, status);
#endif
            continue;
        }
        struct worker_slot *s = &m->slots[i];
        s->pid = 0;
        stats_set_pid(&m->stats, i + 1, 0);
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

/* --- the workers' reports, readiness, pings, watchdog, status ---------------- */

static void
on_report(struct master *m, unsigned i, const struct worker_report *rep)
{
    struct worker_slot *s = &m->slots[i];
    s->connections = rep->connections;
    if (rep->kind == WORKER_REPORT_READY)
        s->ready = 1;
    else if (rep->kind == WORKER_REPORT_PONG)
        s->ping_sent_ms = s->ping_unsent = 0;
    else
        log_warnx("worker %u: unknown report %u from it; ignored", i, (unsigned)rep->kind);
}

/* Worker i's socket is readable: its records, a bounded number of reads. */
static void
read_reports(struct master *m, unsigned i)
{
    struct worker_slot *s = &m->slots[i];
    unsigned char buf[16 * sizeof(struct worker_report)];
    for (int k = 0; k < MASTER_REPORT_READS; k++) {
        memcpy(buf, s->rbuf, s->rlen);
        ssize_t r = recv(s->doorbell_wr, buf + s->rlen, sizeof(buf) - s->rlen, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                if (r < 0 && errno != ECONNRESET)
                    log_warn("worker %u: recv(reports)", i);
                s->hung_up = 1; /* it is exiting: SIGCHLD follows */
            }
            return;
        }
        size_t n = s->rlen + (size_t)r, off = 0;
        for (; n - off >= sizeof(struct worker_report); off += sizeof(struct worker_report)) {
            struct worker_report rep;
            memcpy(&rep, buf + off, sizeof(rep));
            on_report(m, i, &rep);
        }
        s->rlen = n - off;
        memcpy(s->rbuf, buf + off, s->rlen);
    }
}

/* A worker the master talks to: running, and its socket not at EOF. */
static int
slot_linked(const struct worker_slot *s)
{
    return s->pid != 0 && s->doorbell_wr >= 0 && !s->hung_up;
}

/* 1 when every worker that is meant to run runs and has reported ready. */
static int
all_ready(const struct master *m)
{
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (!m->slots[i].retired && (!slot_linked(&m->slots[i]) || !m->slots[i].ready))
            return 0;
    return 1;
}

static void
status_text(const struct master *m, char *out, size_t size)
{
    struct store_stats ss;
    store_get_stats(m->store, &ss);
    uint64_t conns = 0;
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (m->slots[i].pid != 0)
            conns += m->slots[i].connections;
    snprintf(out, size, "%u clusters, %llu connections, %d of %u workers", ss.clusters,
             (unsigned long long)conns, running_workers(m), m->cfg->workers);
}

/* The watchdog's half-period is also how long a worker may leave a ping
 * unanswered.  Without a watchdog nobody is killed for it. */
static int
ping_overdue(const struct master *m, const struct worker_slot *s, int64_t now)
{
    return m->notify.watchdog_ms > 0 && s->ping_sent_ms != 0 &&
           now - s->ping_sent_ms >= m->notify.watchdog_ms;
}

static void
supervise(struct master *m, int64_t now)
{
    /* Ready: every worker runs, and there is a state to serve (a Kubernetes
     * source has listed). */
    if (!m->ready_sent && all_ready(m) && !(m->flags & SNAP_FLAG_KUBE_UNLISTED)) {
        status_text(m, m->status, sizeof(m->status));
        notify_ready(&m->notify, notify_active(&m->notify) ? m->status : NULL);
        m->ready_sent = 1;
        m->status_check_ms = now + MASTER_STATUS_PERIOD_MS;
        log_debug("every worker is ready");
    }
    if (m->next_ping_ms != 0 && now >= m->next_ping_ms) {
        for (unsigned i = 0; i < m->cfg->workers; i++) {
            struct worker_slot *s = &m->slots[i];
            if (!slot_linked(s) || (s->ping_sent_ms != 0 && !s->ping_unsent))
                continue;
            char b = WORKER_PING;
            ssize_t r = send(s->doorbell_wr, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EPIPE &&
                errno != ECONNRESET)
                log_warn("worker %u: send(ping)", i);
            /* A full socket (a worker that stopped reading doorbells) keeps the
             * first attempt's time, so a wedged worker is still killed on time,
             * and the ping is sent again: one that recovers can answer it. */
            s->ping_unsent = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
            if (s->ping_sent_ms == 0)
                s->ping_sent_ms = now;
        }
        int64_t period = MASTER_PING_PERIOD_MS;
        if (m->notify.watchdog_ms > 0 && m->notify.watchdog_ms / 2 < period)
            period = m->notify.watchdog_ms / 2 > 0 ? m->notify.watchdog_ms / 2 : 1;
        m->next_ping_ms = now + period;
    }
    int held = 0;
    for (unsigned i = 0; i < m->cfg->workers; i++) {
        struct worker_slot *s = &m->slots[i];
        if (!slot_linked(s))
            continue;
        if (!s->wedged && ping_overdue(m, s, now)) {
            log_error("worker %u (pid %ld) has not answered the master for %lld ms; killing it", i,
                      (long)s->pid, (long long)(now - s->ping_sent_ms));
            if (kill(s->pid, SIGKILL) != 0 && errno != ESRCH)
                log_warn("kill(worker %u, SIGKILL)", i);
            s->wedged = 1;
        }
        held |= s->wedged;
    }
    m->watchdog_held = 0;
    if (m->next_watchdog_ms != 0 && now >= m->next_watchdog_ms) {
        if (held) {
            m->watchdog_held = 1; /* until the wedged worker is reaped */
        } else {
            notify_send(&m->notify, "WATCHDOG=1");
            m->next_watchdog_ms = now + m->notify.watchdog_ms;
        }
    }
    if (m->ready_sent && notify_active(&m->notify) && now >= m->status_check_ms) {
        char st[sizeof(m->status)];
        status_text(m, st, sizeof(st));
        if (strcmp(st, m->status) != 0) {
            char line[sizeof(st) + 8];
            snprintf(line, sizeof(line), "STATUS=%s", st);
            notify_send(&m->notify, line);
            memcpy(m->status, st, sizeof(st));
            m->status_check_ms = now + MASTER_STATUS_PERIOD_MS;
        }
    }
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
    if (m->next_ping_ms != 0 && m->next_ping_ms < next)
        next = m->next_ping_ms;
    /* A held watchdog waits for the reap (SIGCHLD), not for the clock. */
    if (m->next_watchdog_ms != 0 && !m->watchdog_held && m->next_watchdog_ms < next)
        next = m->next_watchdog_ms;
    for (unsigned i = 0; i < m->cfg->workers; i++) {
        const struct worker_slot *s = &m->slots[i];
        if (m->notify.watchdog_ms > 0 && slot_linked(s) && s->ping_sent_ms != 0 && !s->wedged &&
            s->ping_sent_ms + m->notify.watchdog_ms < next)
            next = s->ping_sent_ms + m->notify.watchdog_ms;
    }
    return next;
}

#ifdef ENABLE_KUBERNETES
/* In the Kubernetes API client's child: nothing of the master's stays, but
 * the log (stderr or syslog): no listening socket, worker socket, shared
 * memory or source.  The network's input is parsed in a process that can
 * write nothing anyone else reads but its pipe. */
static void
kube_child_setup(void *arg)
{
    struct master *m = arg;
    for (unsigned k = 0; k < m->cfg->workers; k++)
        if (m->slots != NULL && m->slots[k].doorbell_wr >= 0)
            close(m->slots[k].doorbell_wr);
    for (int k = 0; k < m->nlisten; k++)
        if (m->listen_fds[k] >= 0)
            close(m->listen_fds[k]);
    close_sources(m);
    notify_child(&m->notify);
    if (m->ring.hdr != NULL)
        (void)munmap(m->ring.hdr, ring_bytes(m->cfg->ring_size));
    if (m->snap.hdr != NULL)
        (void)munmap(m->snap.hdr, snapshot_bytes(m->cfg->snapshot_max_bytes));
    if (m->stats.hdr != NULL)
        (void)munmap(m->stats.hdr, stats_bytes(m->stats.nslots, m->stats.page_bytes));
    int ro[] = {m->ring_ro_fd, m->snap_ro_fd, m->stats_ro_fd};
    for (size_t k = 0; k < sizeof(ro) / sizeof(ro[0]); k++)
        if (ro[k] >= 0)
            close(ro[k]);
}
#endif

/* The source --source names (exit 1 when it cannot be opened). */
static int
open_source(struct master *m, char *msg, size_t msg_size)
{
    if (m->cfg->source == CONFIG_SOURCE_KUBERNETES) {
#ifdef ENABLE_KUBERNETES
        m->kube = source_kube_open(m->cfg, m->store, kube_child_setup, m, msg, msg_size);
        if (m->kube == NULL)
            return -1;
        m->sources[m->nsources++] = source_kube_source(m->kube);
        return 0;
#else
        snprintf(msg, msg_size,
                 "--source=kubernetes: not built in (configured with --disable-kubernetes)");
        return -1;
#endif
    }
    m->dir =
        source_dir_open(m->cfg->personas_dir, m->store, m->cfg->rescan_interval_ms, msg, msg_size);
    if (m->dir == NULL)
        return -1;
    m->sources[m->nsources++] = source_dir_source(m->dir);
    return 0;
}

int
master_run(const struct config *cfg)
{
    static struct master m; /* static: the listen_fds array is large; one master per process */
    memset(&m, 0, sizeof(m));
    m.cfg_own = *cfg;
    m.cfg = cfg = &m.cfg_own;
    char msg[512];
    int rc = 0;
    if (sig_setup() != 0)
        fatal("signal set-up");
    if (notify_init(&m.notify, (int)cfg->ready_fd, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    if (priv_resolve(&m.priv, cfg, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    raise_nofile(cfg);
    /* The directory is checked first (exit 1 before binding anything); the
     * store publishes into the shared memory, which needs the port: it is
     * mapped below, before the store's first commit. */
    m.store = store_new(&m.snap, &m.ring);
    if (m.store == NULL)
        fatalx("out of memory");
    if (open_source(&m, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    /* The workers open --web-root per request (a new build renamed into place
     * is served at once); it must be a directory at start. */
    int web_root =
        cfg->web_root[0] != '\0' ? open(cfg->web_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -2;
#ifndef ENABLE_WEB_ROOT
    if (web_root >= 0) {
        close(web_root);
        fprintf(stderr,
                "personad: --web-root: not built in (configured with --disable-web-root)\n");
        return 1;
    }
#endif
    if (web_root == -1) {
        fprintf(stderr, "personad: --web-root %s: %s\n", cfg->web_root, strerror(errno));
        return 1;
    }
    if (web_root >= 0)
        close(web_root);
    /* The workers read --auth-token-file themselves (and on SIGHUP); at start
     * it must hold a token. */
    if (cfg->auth_token_file[0] != '\0') {
        struct auth_tokens tokens;
        char why[CONFIG_PATH_MAX + 256];
        if (auth_tokens_load(&tokens, cfg->auth_token_file, why, sizeof(why)) != 0) {
            fprintf(stderr, "personad: --auth-token-file: %s\n", why);
            return 1;
        }
        auth_tokens_free(&tokens);
    }
    if ((cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0')) {
        fprintf(stderr, "personad: --tls-cert and --tls-key go together\n");
        return 1;
    }
    if (cfg->tls_cert[0] != '\0') {
        /* Loaded here: every worker, respawned ones too, inherits it. */
        if (tls_serve_load(cfg->tls_cert, cfg->tls_key, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "personad: %s\n", msg);
            return 1;
        }
        log_info("TLS: HTTPS and WSS only; %s", msg);
    }
    m.nlisten = net_listen(cfg->listen_addr, cfg->listen_port, m.listen_fds, (int)cfg->workers, msg,
                           sizeof(msg));
    if (m.nlisten < 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    ring_init(&m.ring, map_or_die(cfg, "ring", ring_bytes(cfg->ring_size), &m.ring_ro_fd),
              cfg->ring_size);
    if (ring_releases(&m.ring) != 0)
        log_warnx("ring: pages of old events cannot be released (%s); up to %zu bytes resident",
                  strerror(ring_releases(&m.ring)), ring_bytes(cfg->ring_size));
    snapshot_init(
        &m.snap,
        map_or_die(cfg, "snapshot", snapshot_bytes(cfg->snapshot_max_bytes), &m.snap_ro_fd),
        cfg->snapshot_max_bytes);
    long page = sysconf(_SC_PAGESIZE);
    uint32_t page_bytes = page >= 4096 && page <= (1L << 20) ? (uint32_t)page : 4096;
    /* --max-connections-per-ip: each worker's slot holds its peers table too. */
    if (worker_peer_slot_want(cfg) > 0)
        page_bytes = peers_slot_bytes(page_bytes, worker_peer_slot_want(cfg));
    size_t stats_len = stats_bytes(cfg->workers + 1, page_bytes);
    if (stats_len == SIZE_MAX)
        fatalx("no stats area for %u workers", cfg->workers);
    struct timespec started;
    if (clock_gettime(CLOCK_REALTIME, &started) != 0)
        fatal("clock_gettime");
    stats_init(&m.stats, map_or_die(cfg, "stats", stats_len, &m.stats_ro_fd), cfg->workers + 1,
               page_bytes, (uint64_t)started.tv_sec);
    stats_set(stats_slot(&m.stats, 0), STATS_PID, (uint64_t)getpid());
    stats_set_pid(&m.stats, 0, (uint64_t)getpid());
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
    /* Checked before the scan, written (renamed into place) once workers run. */
    if (cfg->pidfile[0] != '\0' &&
        pidfile_prepare(&m.pidfile, cfg->pidfile, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "personad: %s\n", msg);
        return 1;
    }
    store_set_interrupt(m.store, stop_requested, &m);
    for (int i = 0; i < m.nsources; i++)
        if (m.sources[i]->ops->rescan(m.sources[i]) != 0 && !m.stop_requested) {
            pidfile_remove(&m.pidfile);
            return 1;
        }
    if (m.stop_requested) {
        log_info("stopping during the initial scan");
        goto out;
    }
    /* Data over --snapshot-max must not become a crash loop under a supervisor:
     * start with an empty list (the error is logged) and retry at each change. */
    if (store_commit(m.store, 1) != 0 && store_publish_empty(m.store) != 0)
        fatalx("cannot publish even an empty snapshot");
    publish_flags(&m); /* before any worker answers /healthz */
    stats_update(&m);
    for (unsigned i = 0; i < cfg->workers; i++)
        spawn_worker(&m, i);
    if (pidfile_commit(&m.pidfile, msg, sizeof(msg)) != 0) {
        log_error("%s", msg);
        rc = 1;
        goto out;
    }
    /* Nothing privileged is left: the port is bound, the shared memory mapped,
     * the pidfile written.  (Its removal at exit needs its directory writable
     * by --user; a reload re-reads the personas and the config as --user.) */
    if (priv_drop(&m.priv, msg, sizeof(msg)) != 0) {
        log_error("%s", msg);
        rc = 1;
        goto out;
    }
    if (m.priv.active)
        log_info("running as user %s (uid %ld, gid %ld)", m.priv.user, (long)m.priv.uid,
                 (long)m.priv.gid);
    if (notify_active(&m.notify))
        m.next_ping_ms = clock_now_ms();
    if (m.notify.watchdog_ms > 0)
        m.next_watchdog_ms = clock_now_ms() + m.notify.watchdog_ms;
    struct store_stats ss;
    store_get_stats(m.store, &ss);
    int watched = m.dir == NULL || m.sources[0]->ops->fd(m.sources[0]) >= 0; /* by inotify */
    log_info("personad %s listening on %s:%u (%u workers, %s), %u clusters from %s%s",
             PACKAGE_VERSION, cfg->listen_addr[0] ? cfg->listen_addr : "*",
             (unsigned)cfg->listen_port, cfg->workers,
             m.nlisten > 1 ? "SO_REUSEPORT" : "shared socket", ss.clusters,
             m.dir != NULL ? cfg->personas_dir : "the Kubernetes API (listing)",
             watched ? "" : " (no inotify: periodic rescans only)");

    /* The signal pipe, the sources, the workers' sockets (their reports). */
    struct pollfd *pfd = calloc(1 + STORE_SOURCES_MAX + (size_t)cfg->workers, sizeof(*pfd));
    if (pfd == NULL)
        fatalx("out of memory");
    struct pollfd *wfd = pfd + 1 + STORE_SOURCES_MAX;
    for (;;) {
        /* poll skips the entries without a descriptor (fd -1) */
        pfd[0] = (struct pollfd){.fd = sig_fd(), .events = POLLIN};
        for (int i = 0; i < STORE_SOURCES_MAX; i++)
            pfd[1 + i] = (struct pollfd){
                .fd = i < m.nsources ? m.sources[i]->ops->fd(m.sources[i]) : -1, .events = POLLIN};
        for (unsigned i = 0; i < cfg->workers; i++)
            wfd[i] = (struct pollfd){.fd = slot_linked(&m.slots[i]) ? m.slots[i].doorbell_wr : -1,
                                     .events = POLLIN};
        int64_t timeout = next_wakeup(&m) - clock_now_ms();
        if (timeout < 0 || m.stop_requested)
            timeout = 0;
        int n = poll(pfd, (nfds_t)(1 + STORE_SOURCES_MAX + cfg->workers),
                     (int)(timeout > 60000 ? 60000 : timeout));
        if (n < 0 && errno != EINTR)
            fatal("poll");
        if (pfd[0].revents & POLLIN)
            sig_drain();
        if (stop_requested(&m)) {
            log_info("stopping");
            break;
        }
        for (unsigned i = 0; i < cfg->workers; i++)
            if (n > 0 && wfd[i].fd >= 0 && wfd[i].fd == m.slots[i].doorbell_wr &&
                (wfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                read_reports(&m, i);
        if (sig_take(SIGCHLD))
            reap_children(&m);
        if (all_retired(&m)) {
            log_error("every worker exited with status 2; giving up");
            rc = 1;
            break;
        }
        if (sig_take(SIGHUP)) {
            if (m.ready_sent) /* before READY=1 a reload is part of the start */
                notify_reloading(&m.notify);
            int hup = reload_config(&m);
            if (cfg->tls_cert[0] != '\0') {
                reload_tls(&m);
                hup = 1;
            }
            if (reload_auth_tokens(&m))
                hup = 1;
            if (hup)
                hup_workers(&m);
            log_info("SIGHUP: rescanning %s", m.sources[0]->name);
            rescan_and_notify(&m); /* a missing directory is retried below */
            if (m.ready_sent)
                notify_send(&m.notify, "READY=1");
        }
        if (sig_take(SIGUSR1))
            log_info("SIGUSR1: logs go to stderr; nothing to reopen");
        for (int i = 0; i < m.nsources; i++) {
            struct source *s = m.sources[i];
            /* The fd polled, if the source still has it (a rescan may have let it go). */
            int commit;
            if (pfd[1 + i].fd >= 0 && (pfd[1 + i].revents & (POLLIN | POLLHUP)) &&
                pfd[1 + i].fd == s->ops->fd(s) && (commit = s->ops->on_ready(s)) != 0)
                commit_and_notify(&m, commit == SOURCE_COMMIT_BASELINE);
        }
        int64_t now = clock_now_ms();
        for (int i = 0; i < m.nsources; i++) {
            int commit = m.sources[i]->ops->on_timer(m.sources[i], now);
            if (commit != 0)
                commit_and_notify(&m, commit == SOURCE_COMMIT_BASELINE);
        }
        publish_flags(&m);
        stats_update(&m);
        for (unsigned i = 0; i < cfg->workers; i++)
            if (m.slots[i].pid == 0 && !m.slots[i].retired && m.slots[i].respawn_at != 0 &&
                m.slots[i].respawn_at <= now)
                spawn_worker(&m, i);
        supervise(&m, now);
    }
    free(pfd);
out:
    notify_send(&m.notify, "STOPPING=1");
#ifdef ENABLE_KUBERNETES
    source_kube_stop(m.kube); /* never waits on the network: SIGKILL and reap */
#endif
    stop_workers(&m);
    pidfile_remove(&m.pidfile);
    close_sources(&m);
    store_free(m.store);
    free(m.slots);
    for (int i = 0; i < m.nlisten; i++)
        if (m.listen_fds[i] >= 0)
            close(m.listen_fds[i]);
    close(m.ring_ro_fd);
    close(m.snap_ro_fd);
    close(m.stats_ro_fd);
    log_info("stopped");
    return rc;
}
