/*
 * worker - see worker.h.
 *
 * One loop pass: epoll_wait (timeout = the nearest deadline or MHD timeout),
 * handle ready sources, pull new ring entries into the frame window (one
 * framing per event per worker), fan them out, run MHD, expire deadlines, and
 * free the connections closed during the pass.
 */
#include "build_config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#if HAVE_MALLOC_H
#include <malloc.h>
#endif

#include <microhttpd.h>

#include "clock.h"
#include "http_api.h"
#include "log.h"
#include "sig.h"
#include "worker.h"
#include "ws_conn.h"

#define WORKER_EPOLL_EVENTS 256
#define WORKER_STOP_GRACE_MS 1500
/* MHD's per-connection pool, used only until the upgrade (then freed).  Above
 * 32 KiB libmicrohttpd 0.9.75 mmaps its pools (memorypool.c) instead of taking
 * them from the heap: only the pages a request touches become resident, and
 * freeing one gives them straight back, where 16 KiB heap pools freed between
 * long-lived connection structs left the heap fragmented (1.6 KB RSS per idle
 * connection after a burst of handshakes).  Also room for big cookie headers. */
#define WORKER_MHD_POOL_BYTES (40 * 1024)
#define WORKER_MHD_IDLE_TIMEOUT_S 30

#define WORKER_MHD_LOG_PER_SECOND 5
/* Snapshot copies (up to --snapshot-max each) come and go with generations.
 * glibc's dynamic mmap threshold would soon put them on the heap, where a freed
 * copy stays resident (and the heap fragments as sizes drift); a fixed
 * threshold keeps each one its own mapping, returned as soon as it is freed. */
#define WORKER_MMAP_THRESHOLD_BYTES (256 * 1024)

/* libmicrohttpd logs per request (e.g. each oversized header it refuses):
 * clients must not be able to flood the log, so at most a few lines a second. */
__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct worker *w = cls;
    int64_t second = clock_now_ms() / 1000;
    if (second != w->mhd_log_second) {
        if (w->mhd_log_dropped > 0)
            log_warnx("libmicrohttpd: %u more message(s) suppressed", w->mhd_log_dropped);
        w->mhd_log_second = second;
        w->mhd_log_count = w->mhd_log_dropped = 0;
    }
    if (w->mhd_log_count++ >= WORKER_MHD_LOG_PER_SECOND) {
        w->mhd_log_dropped++;
        return;
    }
    char buf[256];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_warnx("libmicrohttpd: %s", buf);
}

static void
epoll_add(struct worker *w, int fd, struct ev_source *src)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        fatal("worker %u: epoll_ctl(ADD)", w->index);
}

static void
worker_start_mhd(struct worker *w)
{
    unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    w->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, http_api_handler, w,
        /* The logger first, or MHD logs earlier option errors its own way. */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, w, MHD_OPTION_URI_LOG_CALLBACK, http_api_uri_logger,
        NULL, MHD_OPTION_LISTEN_SOCKET, w->listen_fd,
        /* MHD's default limit (FD_SETSIZE - 4) silently stops accepting at 1020. */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(w->cfg->max_connections + 1024),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WORKER_MHD_POOL_BYTES,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)WORKER_MHD_IDLE_TIMEOUT_S,
        MHD_OPTION_UNESCAPE_CALLBACK, http_api_keep_escaped, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        http_api_completed, NULL, MHD_OPTION_END);
    if (w->mhd == NULL)
        fatalx("worker %u: MHD_start_daemon failed", w->index);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL)
        fatalx("worker %u: libmicrohttpd has no epoll fd", w->index);
    w->ev_mhd.kind = EV_MHD;
    epoll_add(w, info->epoll_fd, &w->ev_mhd);
}

/* Returns 0 normally, -1 when the master is gone (EOF). */
static int
drain_doorbell(struct worker *w)
{
    char buf[256];
    for (;;) {
        ssize_t r = read(w->doorbell_fd, buf, sizeof(buf));
        if (r > 0)
            continue;
        if (r == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            log_warn("worker %u: read(doorbell)", w->index);
        return 0;
    }
}

/* Frame every ring entry this worker has not seen.  Returns how many. */
static uint64_t
pull_ring(struct worker *w)
{
    uint8_t buf[RING_PAYLOAD_MAX];
    uint64_t head = ring_head(w->ring), n = 0;
    while (w->window.next_seq <= head) {
        uint64_t seq = w->window.next_seq;
        uint32_t len, type;
        enum ring_status st = ring_read(w->ring, seq, buf, &len, &type);
        if (st == RING_EMPTY)
            break;
        if (st == RING_OVERRUN) {
            w->stats.ring_overruns++;
            head = ring_head(w->ring);
            log_warnx("worker %u: lapped by the event ring at %llu; skipping to %llu", w->index,
                      (unsigned long long)seq, (unsigned long long)head + 1);
            ws_lapped(w, head + 1);
            ws_window_reset(&w->window, head + 1);
            continue;
        }
        if (w->window.next_seq - w->window.first_seq == w->window.capacity) {
            ws_lapped(w, w->window.first_seq + 1);
            ws_window_release(&w->window, w->window.first_seq + 1);
        }
        if (ws_window_push(&w->window, seq, buf, len) != 0) {
            /* Out of memory: nobody may silently miss seq. */
            log_warnx("worker %u: out of memory framing event %llu", w->index,
                      (unsigned long long)seq);
            ws_lapped(w, seq + 1);
            ws_window_reset(&w->window, seq + 1);
            continue;
        }
        w->stats.events_framed++;
        n++;
    }
    return n;
}

static int
next_timeout_ms(struct worker *w)
{
    int64_t next = deadline_next_ms(&w->ping_list);
    const struct deadline_list *lists[] = {&w->pong_list, &w->write_list, &w->linger_list};
    for (size_t i = 0; i < 3; i++) {
        int64_t t = deadline_next_ms(lists[i]);
        if (t < next)
            next = t;
    }
    if (http_api_next_ms(w) < next)
        next = http_api_next_ms(w);
#if HAVE_MALLOC_TRIM
    if (w->stats.conns_opened + w->stats.conns_closed != w->trim_churn && w->trim_due_ms < next)
        next = w->trim_due_ms; /* a trim is owed: wake up for it */
#endif
    int64_t timeout = next == INT64_MAX ? 60000 : next - clock_now_ms();
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    w->mhd_due_ms = INT64_MAX;
    if (MHD_get_timeout(w->mhd, &mhd_ms) == MHD_YES) {
        w->mhd_due_ms = clock_now_ms() + (int64_t)(mhd_ms > 60000 ? 60000 : mhd_ms);
        if ((int64_t)mhd_ms < timeout)
            timeout = (int64_t)mhd_ms;
    }
    if (timeout < 0)
        timeout = 0;
    if (timeout > 60000)
        timeout = 60000;
    return (int)timeout;
}

/* Handshakes borrow 16 KiB pools from MHD and free them at the upgrade; after
 * a burst of connections glibc keeps that heap, so idle RSS would stay at the
 * burst's peak.  Give it back, at most once a second and only after churn. */
static void
worker_trim(struct worker *w)
{
#if HAVE_MALLOC_TRIM
    uint64_t churn = w->stats.conns_opened + w->stats.conns_closed;
    if (churn == w->trim_churn || w->now_ms < w->trim_due_ms)
        return;
    w->trim_churn = churn;
    w->trim_due_ms = w->now_ms + 1000;
    (void)malloc_trim(0);
#else
    (void)w;
#endif
}

static void
begin_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    log_debug("worker %u stopping: %s", w->index, why);
    w->stopping = 1;
    ws_close_all(w, WS_CLOSE_GOING_AWAY, "server shutting down");
}

_Noreturn void
worker_main(const struct config *cfg, unsigned index, int listen_fd, int doorbell_fd,
            struct ring *ring, struct snapshot *snap)
{
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.index = index;
    w.listen_fd = listen_fd;
    w.doorbell_fd = doorbell_fd;
    w.ring = ring;
    w.snap = snap;
    w.now_ms = clock_now_ms();
#if HAVE_MALLOC_H && defined(M_MMAP_THRESHOLD)
    if (mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD_BYTES) != 1)
        log_debug("worker %u: mallopt(M_MMAP_THRESHOLD) not supported", index);
#endif
    if (sig_setup() != 0)
        fatal("worker %u: signal set-up", index);
    w.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w.epfd < 0)
        fatal("worker %u: epoll_create1", index);
    if (ws_window_init(&w.window, cfg->ring_size, ring_head(ring) + 1) != 0)
        fatalx("worker %u: out of memory", index);
    deadline_list_init(&w.ping_list, cfg->ping_period_ms);
    deadline_list_init(&w.pong_list, cfg->pong_wait_ms);
    deadline_list_init(&w.write_list, cfg->write_deadline_ms);
    deadline_list_init(&w.linger_list, WS_CLOSE_LINGER_MS);
    worker_start_mhd(&w);
    w.ev_doorbell.kind = EV_DOORBELL;
    epoll_add(&w, doorbell_fd, &w.ev_doorbell);
    w.ev_signal.kind = EV_SIGNAL;
    epoll_add(&w, sig_fd(), &w.ev_signal);
    log_debug("worker %u ready", index);

    int64_t stop_by = 0;
    struct epoll_event evs[WORKER_EPOLL_EVENTS];
    for (;;) {
        int n = epoll_wait(w.epfd, evs, WORKER_EPOLL_EVENTS, next_timeout_ms(&w));
        if (n < 0 && errno != EINTR)
            fatal("worker %u: epoll_wait", index);
        w.now_ms = clock_now_ms();
        /* MHD runs when its epoll fd is ready or one of its timeouts is due. */
        int run_mhd = w.now_ms >= w.mhd_due_ms;
        for (int i = 0; i < n; i++) {
            struct ev_source *src = evs[i].data.ptr;
            switch (src->kind) {
            case EV_MHD:
                run_mhd = 1;
                break;
            case EV_DOORBELL:
                if (drain_doorbell(&w) != 0) {
                    if (!w.stopping)
                        log_warnx("worker %u: master is gone; stopping", index);
                    if (epoll_ctl(w.epfd, EPOLL_CTL_DEL, doorbell_fd, NULL) != 0)
                        log_warn("worker %u: epoll_ctl(DEL, doorbell)", index);
                    begin_stop(&w, "master gone");
                }
                break;
            case EV_SIGNAL:
                sig_drain();
                if (sig_take(SIGTERM) || sig_take(SIGINT))
                    begin_stop(&w, "signal");
                break;
            case EV_CONN:
                ws_conn_on_event((struct ws_conn *)src, evs[i].events);
                break;
            }
        }
        if (!w.stopping && pull_ring(&w) > 0) {
            ws_fanout(&w);
            /* O(connections), like the fan-out itself: once per batch, not per pass. */
            ws_window_release(&w.window, ws_min_cursor(&w, w.window.next_seq));
        }
        if (run_mhd && MHD_run(w.mhd) != MHD_YES)
            log_warnx("worker %u: MHD_run failed", index);
        while (w.mhd_run_again) {
            w.mhd_run_again = 0;
            (void)MHD_run(w.mhd);
        }
        ws_expire(&w);
        http_api_expire(&w);
        ws_reap(&w);
        worker_trim(&w);
        if (w.stopping) {
            if (stop_by == 0)
                stop_by = w.now_ms + WORKER_STOP_GRACE_MS;
            if (w.nconns == 0 || w.now_ms >= stop_by)
                break;
        }
    }
    /* Whatever is left after the grace period goes now. */
    ws_drop_all(&w);
    MHD_stop_daemon(w.mhd);
    http_api_release(&w);
    ws_window_free(&w.window);
    log_debug("worker %u exiting", index);
    exit(0);
}
