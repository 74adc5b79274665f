/*
 * wscampaign - the fault campaign of issue 8: personad under many WebSocket
 * clients and a steady event rate while workers are killed, the master is
 * stopped, clients stall or never read, and connections churn.  Every client
 * session is checked for missed and duplicated events, and a JSON report is
 * printed for contrib/bench/fault-campaign.
 *
 * Events.  DIR holds K persona files slot-NNNNNN.json (written by --prepare
 * before the daemon starts: the baseline, no events).  Injection r (r >= K)
 * renames a new slot-(r mod K).json into place whose cluster is
 * "b-<r>-<ns>": personad emits cluster.deleted for b-<r-K> and cluster.added
 * for b-<r>, in one commit.  So the store stays at K clusters, each injection
 * is two events, and every message names its injection: added b-i is
 * injection i, deleted b-i is injection i+K.  A slot is rewritten only every K
 * injections (20 s by default), far longer than any master stall, so no commit
 * ever folds two renames of one slot into one.  The order of events of
 * different clusters is not part of the contract, and it does change: within
 * a commit deletions come first, and the master's periodic rescan reads the
 * files while they are being renamed, so it can commit a later rename before
 * an earlier one.  So each session keeps a bitmap of what it received, per kind.
 *
 * Clients (wsclient.c does the sockets and frames):
 *   healthy  read everything; 10 % of them per second close (1000) and reconnect
 *   stuck    never read (present in every other phase only, see below); when
 *            the server drops one (EPOLLRDHUP, or its socket is gone from
 *            /proc/net/tcp) it reads what was buffered, checks it, reconnects
 *   lapped   a small receive buffer; read for a while, then pause, in turn
 *            long enough for the server to give up on them and briefly (it
 *            must not); resume; what the server did meanwhile is checked
 * Every connection is a session; a session ends by our churn close, a worker
 * kill, a close or drop by the server, or the end of the run.
 *
 * Faults, on a fixed schedule: one worker (never the first one, the
 * "survivor", whose RSS is then a leak check) gets SIGKILL or SIGTERM (cycled)
 * every --kill-every seconds; its respawn is timed from /proc; the master gets
 * SIGSTOP for --stop-for seconds every --stop-every seconds.  Phases of
 * --phase seconds alternate without and with the stuck clients, with the same
 * fault pattern in each, so the healthy clients' latency can be compared.
 *
 * Checks per session.  An event's publication time is estimated as its
 * earliest receipt by any client.  A session owes every event injected after
 * it opened (its start was fixed before that, at its handshake) and published
 * more than --slack seconds before its end reference:
 *   open at the end of the run    no end: it owes every event
 *   our churn close, our close after catching up, a SIGKILL of its worker
 *   while it was reading          the time of the close or the kill
 *   closed or dropped by the server (with or without a code), a SIGTERM of its
 *   worker (1001), a stuck or paused client's worker killed
 *                                 the publication of the latest event it got:
 *                                 it may lose what came after its end, never
 *                                 anything before (no gap)
 *   missed   owed and not received (a violation)
 *   dups     received twice (a violation)
 * The report's "violations" list every broken invariant; exit status 3 then.
 *
 * One thread, one epoll; loopback only.
 */
#define _GNU_SOURCE /* timerfd, getrandom */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include "wsbench.h"

#define EV_INJECT UINT64_MAX
#define EV_TICK (UINT64_MAX - 2)
#define TICK_NS 5000000ull /* scheduler resolution */
#define MAX_PHASES 64
#define MAX_WORKERS 64
#define MAX_KILLS 4096
#define MAX_STOPS 4096
#define MAX_VIOLATIONS 64
#define NS 1000000000ull
#define SLOT_FMT "slot-%06u.json"
#define TCP_SCAN_NS (2 * NS)
#define CHURN_TICK_NS (NS / 10)
#define CLOSE_ANSWER_NS (3 * NS)
#define CATCH_UP_NS (5 * NS)
#define KILL_WINDOW_NS (3 * NS)
#define TERM_WINDOW_NS (4 * NS) /* the worker's 1.5 s close grace, then its exit */
/* A client that is not reading sees the end of its killed worker's connection
 * only once it reads: after EPOLLRDHUP, or after a tcp_scan when its FIN waits
 * behind unsent bytes (TCP_SCAN_NS), and what it buffered. */
#define PAUSED_EXTRA_NS (6 * NS)
#define RESPAWN_TIMEOUT_NS (10 * NS)
#define RSS_EVERY_NS (5 * NS)
#define SESSION_BACK 4096 /* injections before its open a session may still receive */

enum kind { K_HEALTHY, K_STUCK, K_LAPPED, K_COUNT };
static const char *const kind_name[K_COUNT] = {"healthy", "stuck", "lapped"};

enum end_reason {
    END_NONE,       /* still open */
    END_OPEN,       /* open when the run ended: owes every event */
    END_CHURN,      /* our close (1000) was answered */
    END_CHURN_LOST, /* our close was not answered in time: violation */
    END_KILL,       /* its worker was killed */
    END_CAMPAIGN,   /* our close after catching up (stuck clients at a phase end) */
    END_SERVER,     /* the server closed (code) or dropped (EOF) it */
    END_UNEXPECTED, /* a healthy session the server ended: violation */
    END_COUNT
};
static const char *const end_name[END_COUNT] = {"none",
                                                "open at the end",
                                                "churn close",
                                                "churn close unanswered",
                                                "worker kill",
                                                "closed by us after catching up",
                                                "closed or dropped by the server",
                                                "unexpected end"};

struct session {
    uint32_t client;
    uint8_t kind, end;
    uint16_t code; /* close code; 1006 EOF or reset */
    int32_t kill;  /* kill that marked it (its worker), -1 */
    uint64_t t_open, t_end, end_ref;
    uint64_t first_inj; /* first injection made after the open */
    /* What it received, per kind (0 deleted, 1 added): bit i - base, owned */
    uint64_t *bits[2];
    uint64_t base;
    uint32_t nwords;
    int64_t max_inj[2];                          /* highest received, -1 none */
    uint32_t received, dups, reordered, foreign; /* reordered: below max_inj (legal) */
    uint64_t missed;                             /* owed and not received, computed at the end */
    uint8_t checked; /* owes every event up to its end time (not only up to its last) */
};

enum lapped_state { LP_READ, LP_PAUSED };

struct client {
    uint8_t kind;
    uint8_t active;   /* should be connected */
    uint8_t churning; /* our close sent for churn */
    uint8_t closing;  /* our close sent after catching up */
    uint8_t draining; /* stuck/lapped: catching up before our close */
    uint8_t lp;       /* enum lapped_state */
    int32_t sess;     /* open session, -1 */
    uint16_t port;
    uint64_t reconnect_at; /* 0: not waiting */
    uint64_t deadline;     /* churn answer, catch-up, lapped pause/resume */
    uint64_t last_end_t;
    int32_t last_kill; /* kill that ended its previous session, -1 */
    uint32_t backoff_ms;
    uint32_t pauses; /* lapped: pauses so far (long and short in turn) */
};

/* Resident memory of one process, KB: all of it, its private (anonymous) part,
 * and the shared memory it has touched (the 8 MB ring fills in as events come,
 * so VmRSS grows by that much in every process without any leak). */
struct mem {
    long rss, anon, shmem;
};

struct kill_rec {
    int sig;
    pid_t victim, respawned;
    uint64_t t, t_exit, t_new;
    uint32_t marked, ended, survived;
    uint8_t checked[2]; /* survivors counted: reading sessions, paused ones */
    struct mem victim_mem;
    uint64_t *reconnect_ns; /* owned: reconnect delays of its sessions */
    uint32_t n_reconnect, cap_reconnect;
};

struct stop_rec {
    uint64_t t, t_cont;
};

struct rss_rec {
    double t_s;
    struct mem master, survivor, victim;
    unsigned open;
};

struct copts {
    const char *url, *dir;
    pid_t master;
    unsigned healthy, stuck, lapped, rate, clusters, lapped_rcvbuf;
    double duration, phase, kill_every, stop_every, stop_for, churn_pct, lapped_read, lapped_pause,
        lapped_short, slack, drain, connect_timeout;
    char signals[16];
    unsigned nsignals;
    int prepare, quiet;
};

struct campaign {
    struct bench b; /* wsclient's state: conns[] parallel to cl[] */
    struct copts o;
    struct client *cl;
    unsigned nclients;
    struct session *sess;
    size_t nsess, cap_sess;
    /* injection */
    int dirfd, tfd_inject, tfd_tick;
    uint64_t injections;  /* renames done */
    uint64_t max_inj;     /* capacity of the arrays below */
    uint64_t *inj_t;      /* rename time of injection K + i */
    uint64_t *pub[2];     /* earliest receipt anywhere, per kind */
    uint64_t latest_seen; /* highest injection anyone received (added) */
    int injecting;
    int finishing;    /* our closes now end sessions as "open at the end" */
    int reconnecting; /* sessions that end are reopened */
    /* time */
    uint64_t t0, t_end;
    int phase, nphases;
    struct hist *lat_quiet, *lat_busy; /* per phase, healthy clients */
    uint64_t next_churn, next_tcp_scan, next_rss;
    double churn_acc;
    /* faults */
    pid_t survivor, victims[MAX_WORKERS];
    unsigned nvictims, workers;
    struct kill_rec kills[MAX_KILLS];
    unsigned nkills, kill_pending; /* kill_pending: index + 1 of a kill awaiting respawn */
    struct stop_rec stops[MAX_STOPS];
    unsigned nstops;
    int master_stopped;
    uint64_t next_kill, next_stop;
    int32_t *port_client; /* 65536 entries: client of a local port, -1 */
    /* counts */
    uint64_t connect_failures, churn_closes, tcp_scans, server_drops_seen_by_scan;
    uint64_t failures_near_kill; /* connect failures inside a kill's window */
    struct {
        double t_s;
        uint32_t client;
        int kind;
        uint64_t inj, max_inj;
    } reorders[64]; /* the first ones, for the report */
    unsigned nreorders;
    uint64_t codes[K_COUNT][16]; /* see code_slot() */
    struct rss_rec *rss;
    size_t nrss, cap_rss;
    struct rss_rec rss_start, rss_end;
    double gen_cpu_s, master_cpu_s, run_s; /* during the injection */
    char *violations[MAX_VIOLATIONS];
    unsigned nviolations, more_violations;
};

static struct campaign *G; /* for atexit: the master must never stay stopped */

/* ---- small helpers ---------------------------------------------------------------- */

static void progress(const struct campaign *cp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
progress(const struct campaign *cp, const char *fmt, ...)
{
    va_list ap;
    if (cp->o.quiet)
        return;
    fprintf(stderr, "%s: [%6.1f s] ", progname, cp->t0 ? (double)(now_ns() - cp->t0) / 1e9 : 0.0);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void violation(struct campaign *cp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
violation(struct campaign *cp, const char *fmt, ...)
{
    va_list ap;
    char buf[512];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (cp->nviolations < MAX_VIOLATIONS) {
        cp->violations[cp->nviolations] = strdup(buf);
        if (cp->violations[cp->nviolations] == NULL)
            die("out of memory");
        cp->nviolations++;
    } else {
        cp->more_violations++;
    }
    progress(cp, "VIOLATION: %s", buf);
}

static void
master_continue(void)
{
    if (G != NULL && G->master_stopped && G->o.master > 0) {
        kill(G->o.master, SIGCONT);
        G->master_stopped = 0;
    }
}

static void
on_fatal_signal(int sig)
{
    master_continue();
    signal(sig, SIG_DFL);
    raise(sig);
}

static double
rel_s(const struct campaign *cp, uint64_t t)
{
    return t > cp->t0 ? (double)(t - cp->t0) / 1e9 : 0;
}

static uint64_t
s_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

/* code_slot - the index of a close code in codes[][]. */
static const int code_list[] = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008,
                                1009, 1010, 1011, 1012, 1013, 1014, 0};

static int
code_slot(int code)
{
    for (int i = 0; code_list[i] != 0; i++)
        if (code_list[i] == code)
            return i;
    return 15; /* other */
}

/* ---- /proc ------------------------------------------------------------------------- */

static int
pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static struct mem
mem_of(pid_t pid)
{
    return (struct mem){proc_status_kb(pid, "VmRSS:"), proc_status_kb(pid, "RssAnon:"),
                        proc_status_kb(pid, "RssShmem:")};
}

/* children - live children of pid, ascending; returns how many. */
static unsigned
children(pid_t pid, pid_t *out, unsigned max)
{
    char path[96], buf[4096];
    unsigned n = 0;
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    for (char *p = buf, *end; n < max; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid_alive((pid_t)v))
            out[n++] = (pid_t)v;
    }
    for (unsigned i = 1; i < n; i++) /* insertion sort: a handful of pids */
        for (unsigned j = i; j > 0 && out[j - 1] > out[j]; j--) {
            pid_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static uint16_t
server_port(const struct campaign *cp)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&cp->b.dst;
    return ntohs(sin->sin_port);
}

/* tcp_scan - call fn(remote port, inode) for every ESTABLISHED socket whose local
 * port is the server's.  From the kernel's socket diagnostics (NETLINK_SOCK_DIAG,
 * what ss(8) uses) with the port and state filtered in the kernel: /proc/net/tcp
 * would list every socket of the machine, and a shared machine can hold tens of
 * thousands (one read of 60 000 lines took 0.2 s, all of it a stall of this loop). */
static void
tcp_scan(struct campaign *cp, void (*fn)(struct campaign *, unsigned, unsigned long))
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
        struct rtattr rta;
        struct inet_diag_bc_op ops[2];
    } msg;
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    static uint32_t buf[16384];
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        die_errno("socket(NETLINK_SOCK_DIAG)");
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = AF_INET;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << 1; /* TCP_ESTABLISHED */
    msg.rta.rta_type = INET_DIAG_REQ_BYTECODE;
    msg.rta.rta_len = RTA_LENGTH(sizeof msg.ops);
    /* "local port == P": on a match jump past both ops (accept), else past the end */
    msg.ops[0] = (struct inet_diag_bc_op){INET_DIAG_BC_S_EQ, sizeof msg.ops, sizeof msg.ops + 4};
    msg.ops[1].no = server_port(cp);
    if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&nl, sizeof nl) != (ssize_t)sizeof msg)
        die_errno("sock_diag request");
    cp->tcp_scans++;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die_errno("sock_diag reply");
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                close(fd);
                return;
            }
            if (h->nlmsg_type == NLMSG_ERROR)
                die("sock_diag: error reply");
            const struct inet_diag_msg *d = NLMSG_DATA(h);
            fn(cp, ntohs(d->id.idiag_dport), (unsigned long)d->idiag_inode);
        }
    }
}

/* ---- persona files ------------------------------------------------------------------ */

static void
write_slot(struct campaign *cp, uint64_t inj, uint64_t t)
{
    char body[320], final[64];
    unsigned slot = (unsigned)(inj % cp->o.clusters);
    int n = snprintf(body, sizeof body,
                     "{\"apiVersion\":\"bench/v1\",\"kind\":\"ClusterPersona\","
                     "\"metadata\":{\"name\":\"" NAME_PREFIX "%010" PRIu64 "-%" PRIu64 "\"},"
                     "\"spec\":{\"provider\":\"bench\",\"nodes\":3},"
                     "\"status\":{\"phase\":\"Ready\"}}\n",
                     inj, t);
    int fd = openat(cp->dirfd, ".wscampaign-tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, body, (size_t)n) != n || close(fd) < 0)
        die_errno("write persona file");
    snprintf(final, sizeof final, SLOT_FMT, slot);
    if (renameat(cp->dirfd, ".wscampaign-tmp", cp->dirfd, final) < 0)
        die_errno("rename persona file");
}

static void
inject_one(struct campaign *cp)
{
    uint64_t i = cp->injections;
    if (i >= cp->max_inj)
        return;
    uint64_t t = now_ns();
    cp->inj_t[i] = t;
    write_slot(cp, cp->o.clusters + i, t);
    cp->injections++;
}

/* ---- schedule ----------------------------------------------------------------------- */

static int
phase_of(const struct campaign *cp, uint64_t t)
{
    if (t < cp->t0)
        return 0;
    int p = (int)((double)(t - cp->t0) / 1e9 / cp->o.phase);
    return p >= cp->nphases ? cp->nphases - 1 : p;
}

static int
phase_has_stuck(int phase)
{
    return phase % 2 == 1;
}

/* disturbed - the injection time t falls near a scheduled fault: just before or
 * after a kill (the respawn and the reconnect storm), a master stop, or a phase
 * change (the stuck clients connect, or read what they buffered and close). */
static int
disturbed(const struct campaign *cp, uint64_t t)
{
    double s = rel_s(cp, t);
    double ph = fmod(s, cp->o.phase);
    if (s > 1 && (ph < 3.0 || ph > cp->o.phase - 0.2))
        return 1;
    if (cp->o.kill_every > 0) {
        double k = fmod(s - cp->o.kill_every / 3, cp->o.kill_every);
        if (k < 0)
            k += cp->o.kill_every;
        if (k < 3.0 || k > cp->o.kill_every - 0.2)
            return 1;
    }
    if (cp->o.stop_every > 0) {
        double k = fmod(s - cp->o.stop_every * 5 / 6, cp->o.stop_every);
        if (k < 0)
            k += cp->o.stop_every;
        if (k < cp->o.stop_for + 0.5 || k > cp->o.stop_every - 0.2)
            return 1;
    }
    return 0;
}

/* ---- sessions ---------------------------------------------------------------------- */

static struct session *
session_new(struct campaign *cp, unsigned client, uint64_t now)
{
    if (cp->nsess == cp->cap_sess) {
        cp->cap_sess = cp->cap_sess ? cp->cap_sess * 2 : 4096;
        cp->sess = xrealloc(cp->sess, cp->cap_sess * sizeof *cp->sess);
    }
    struct session *s = &cp->sess[cp->nsess];
    *s = (struct session){.client = client,
                          .kind = cp->cl[client].kind,
                          .kill = -1,
                          .t_open = now,
                          .first_inj = cp->o.clusters + cp->injections,
                          .max_inj = {-1, -1}};
    /* Events published after the handshake but injected before the open arrive
     * too; with rescans reordering renames a little, the bitmap starts well
     * before first_inj. */
    uint64_t K = cp->o.clusters;
    s->base = s->first_inj >= K + SESSION_BACK ? s->first_inj - SESSION_BACK : K;
    cp->cl[client].sess = (int32_t)cp->nsess;
    cp->nsess++;
    return s;
}

static struct client *
client_of(struct campaign *cp, struct conn *c)
{
    return &cp->cl[c - cp->b.conns];
}

static void
schedule_reconnect(struct campaign *cp, struct client *k, uint64_t now, uint32_t delay_ms)
{
    if (!k->active || !cp->reconnecting)
        return;
    k->reconnect_at = now + (uint64_t)delay_ms * 1000000u + 1;
}

static void
op_opened(struct bench *b, struct conn *c, uint64_t now)
{
    struct campaign *cp = (struct campaign *)b;
    struct client *k = client_of(cp, c);
    unsigned idx = (unsigned)(c - b->conns);
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    (void)session_new(cp, idx, now);
    k->backoff_ms = 0;
    k->churning = k->closing = k->draining = 0;
    k->port = 0;
    if (getsockname(c->fd, (struct sockaddr *)&local, &len) == 0 && local.sin_family == AF_INET) {
        k->port = ntohs(local.sin_port);
        cp->port_client[k->port] = (int32_t)idx;
    }
    if (k->last_kill >= 0 && k->last_end_t > 0) {
        struct kill_rec *kr = &cp->kills[k->last_kill];
        if (kr->n_reconnect == kr->cap_reconnect) {
            kr->cap_reconnect = kr->cap_reconnect ? kr->cap_reconnect * 2 : 256;
            kr->reconnect_ns = xrealloc(kr->reconnect_ns, kr->cap_reconnect * sizeof(uint64_t));
        }
        kr->reconnect_ns[kr->n_reconnect++] = now - k->last_end_t;
    }
    k->last_kill = -1;
    if (k->kind == K_STUCK) {
        conn_set_paused(b, c, 1);
    } else if (k->kind == K_LAPPED) {
        k->lp = LP_READ;
        k->deadline = now + s_ns(cp->o.lapped_read);
    }
}

static int
session_has(const struct session *s, int kind, uint64_t inj)
{
    if (inj < s->base || inj - s->base >= (uint64_t)s->nwords * 64)
        return 0;
    uint64_t i = inj - s->base;
    return (s->bits[kind][i >> 6] >> (i & 63)) & 1;
}

/* note_event - record inj in s; 0, or -1 for an event from long before its start. */
static int
note_event(struct campaign *cp, struct session *s, int kind, uint64_t inj)
{
    if (inj < s->base)
        return -1;
    uint64_t i = inj - s->base;
    if ((i >> 6) >= s->nwords) {
        uint32_t n = s->nwords ? s->nwords : 16;
        while ((i >> 6) >= n)
            n *= 2;
        for (int k = 0; k < 2; k++) {
            s->bits[k] = xrealloc(s->bits[k], n * sizeof(uint64_t));
            memset(s->bits[k] + s->nwords, 0, (n - s->nwords) * sizeof(uint64_t));
        }
        s->nwords = n;
    }
    uint64_t bit = 1ull << (i & 63);
    if (s->bits[kind][i >> 6] & bit) {
        s->dups++;
        return 0;
    }
    s->bits[kind][i >> 6] |= bit;
    s->received++;
    if ((int64_t)inj < s->max_inj[kind]) {
        s->reordered++;
        if (cp->nreorders < sizeof cp->reorders / sizeof cp->reorders[0]) {
            cp->reorders[cp->nreorders].t_s = rel_s(cp, now_ns());
            cp->reorders[cp->nreorders].client = s->client;
            cp->reorders[cp->nreorders].kind = kind;
            cp->reorders[cp->nreorders].inj = inj;
            cp->reorders[cp->nreorders].max_inj = (uint64_t)s->max_inj[kind];
            cp->nreorders++;
        }
    } else
        s->max_inj[kind] = (int64_t)inj;
    return 0;
}

static void
op_text(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now)
{
    static const char added[] = "{\"type\":\"cluster.added\",\"data\":{\"name\":\"" NAME_PREFIX;
    static const char deleted[] = "{\"type\":\"cluster.deleted\",\"data\":{\"name\":\"" NAME_PREFIX;
    struct campaign *cp = (struct campaign *)b;
    struct client *k = client_of(cp, c);
    struct session *s = k->sess >= 0 ? &cp->sess[k->sess] : NULL;
    int kind;
    size_t off;
    if (s == NULL)
        return;
    if (len > sizeof added - 1 && memcmp(p, added, sizeof added - 1) == 0) {
        kind = 1;
        off = sizeof added - 1;
    } else if (len > sizeof deleted - 1 && memcmp(p, deleted, sizeof deleted - 1) == 0) {
        kind = 0;
        off = sizeof deleted - 1;
    } else {
        s->foreign++;
        return;
    }
    uint64_t idx = 0;
    size_t i = off;
    while (i < len && p[i] >= '0' && p[i] <= '9' && i - off < 19)
        idx = idx * 10 + (uint64_t)(p[i++] - '0');
    if (i == off || i >= len || p[i] != '-') {
        s->foreign++;
        return;
    }
    uint64_t inj = kind == 1 ? idx : idx + cp->o.clusters;
    uint64_t K = cp->o.clusters;
    if (inj < K || inj - K >= cp->injections) {
        s->foreign++;
        return;
    }
    if (note_event(cp, s, kind, inj) != 0) {
        s->foreign++;
        return;
    }
    uint64_t j = inj - K, t_inj = cp->inj_t[j];
    if (cp->pub[kind][j] == 0 || now < cp->pub[kind][j])
        cp->pub[kind][j] = now;
    if (kind == 1 && inj > cp->latest_seen)
        cp->latest_seen = inj;
    if (k->kind == K_HEALTHY && t_inj >= cp->t0 && now >= t_inj) {
        int ph = phase_of(cp, t_inj);
        struct hist *h = disturbed(cp, t_inj) ? &cp->lat_busy[ph] : &cp->lat_quiet[ph];
        hist_record(h, (now - t_inj) / 1000);
    }
}

/* kill_window - how long after kr the sessions of a client of this kind that its
 * worker held must have ended. */
static uint64_t
kill_window(const struct kill_rec *kr, int kind)
{
    return (kr->sig == SIGKILL ? KILL_WINDOW_NS : TERM_WINDOW_NS) +
           (kind == K_HEALTHY ? 0 : PAUSED_EXTRA_NS);
}

/* kill_of - the latest kill whose window (for kind) contains t, -1 if none. */
static int
kill_of(const struct campaign *cp, uint64_t t, int kind)
{
    for (int i = (int)cp->nkills - 1; i >= 0 && i >= (int)cp->nkills - 3; i--) {
        const struct kill_rec *kr = &cp->kills[i];
        if (t >= kr->t && t <= kr->t + kill_window(kr, kind))
            return i;
    }
    return -1;
}

static void
op_ended(struct bench *b, struct conn *c, int code, uint64_t now)
{
    struct campaign *cp = (struct campaign *)b;
    struct client *k = client_of(cp, c);
    if (k->sess < 0)
        return;
    struct session *s = &cp->sess[k->sess];
    s->t_end = now;
    s->code = (uint16_t)code;
    cp->codes[k->kind][code_slot(code)]++;
    /* Ended by a kill: it was on the victim, or it opened after the kill (a 101
     * the victim wrote before it died), and it ended within the kill's window. */
    int ki = -1;
    if (s->kill >= 0 && now <= cp->kills[s->kill].t + kill_window(&cp->kills[s->kill], k->kind))
        ki = s->kill;
    else if ((ki = kill_of(cp, now, k->kind)) >= 0 && s->t_open < cp->kills[ki].t)
        ki = -1;
    int by_kill = ki >= 0 && (code == 1006 || code == 1001);
    if (cp->finishing && k->closing) {
        s->end = END_OPEN; /* our own close at the end of the run */
        s->end_ref = UINT64_MAX;
    } else if (by_kill) {
        s->end = END_KILL;
        s->kill = ki;
        s->end_ref = cp->kills[ki].t;
        cp->kills[ki].ended++;
    } else if (k->churning) {
        s->end = code == 1000 ? END_CHURN : END_UNEXPECTED;
        s->end_ref = k->deadline - CLOSE_ANSWER_NS; /* when our close went out */
        if (code != 1000)
            violation(cp, "%s client %u: our close was answered with %d", kind_name[k->kind],
                      s->client, code);
    } else if (k->closing) {
        s->end = END_CAMPAIGN;
        s->end_ref = k->deadline - CLOSE_ANSWER_NS;
    } else if (k->kind == K_HEALTHY) {
        s->end = END_UNEXPECTED;
        violation(cp, "healthy client %u: session ended by the server (close %d) at %.1f s",
                  s->client, code, rel_s(cp, now));
    } else {
        s->end = END_SERVER;
    }
    if (s->kill >= 0 && s->end != END_KILL)
        s->kill = -1;
    if (k->port != 0 && cp->port_client[k->port] == (int32_t)(c - b->conns))
        cp->port_client[k->port] = -1;
    k->sess = -1;
    k->last_end_t = now;
    k->last_kill = s->end == END_KILL ? s->kill : -1;
    k->churning = k->closing = k->draining = 0;
    schedule_reconnect(cp, k, now, 0);
}

static void
op_failed(struct bench *b, struct conn *c)
{
    struct campaign *cp = (struct campaign *)b;
    struct client *k = client_of(cp, c);
    uint64_t now = now_ns();
    cp->connect_failures++;
    if (kill_of(cp, now, K_HEALTHY) >= 0)
        cp->failures_near_kill++;
    k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : 50;
    if (k->backoff_ms > 1000)
        k->backoff_ms = 1000;
    schedule_reconnect(cp, k, now, k->backoff_ms);
}

static void
op_peer_gone(struct bench *b, struct conn *c)
{
    /* The server closed a connection we are not reading: read what it sent. */
    conn_set_paused(b, c, 0);
}

static const struct conn_ops campaign_ops = {
    .opened = op_opened,
    .text = op_text,
    .ended = op_ended,
    .failed = op_failed,
    .peer_gone = op_peer_gone,
};

/* ---- actions ------------------------------------------------------------------------ */

static void
client_connect(struct campaign *cp, unsigned idx)
{
    struct client *k = &cp->cl[idx];
    struct conn *c = &cp->b.conns[idx];
    k->reconnect_at = 0;
    if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE || c->state == CONN_OPEN)
        return;
    c->state = CONN_IDLE;
    c->attempts = 0; /* wsclient's retry count is not used here */
    conn_start(&cp->b, idx);
}

static void
client_close(struct campaign *cp, unsigned idx, uint64_t now, int churn)
{
    struct client *k = &cp->cl[idx];
    struct conn *c = &cp->b.conns[idx];
    if (c->state != CONN_OPEN || c->close_sent)
        return;
    if (churn)
        k->churning = 1;
    else
        k->closing = 1;
    k->deadline = now + CLOSE_ANSWER_NS;
    conn_set_paused(&cp->b, c, 0);
    conn_send_close(&cp->b, c, 1000);
}

static void
do_churn(struct campaign *cp, uint64_t now)
{
    cp->churn_acc += (double)cp->o.healthy * cp->o.churn_pct / 100.0 / 10.0;
    unsigned want = (unsigned)cp->churn_acc, tries = 0;
    cp->churn_acc -= want;
    while (want > 0 && tries++ < 20 * cp->o.healthy) {
        unsigned idx = (unsigned)(rng_next(&cp->b) % cp->o.healthy);
        struct client *k = &cp->cl[idx];
        if (k->sess < 0 || k->churning || cp->b.conns[idx].state != CONN_OPEN)
            continue;
        client_close(cp, idx, now, 1);
        cp->churn_closes++;
        want--;
    }
}

/* ---- faults ------------------------------------------------------------------------- */

static unsigned long *victim_inodes;
static size_t n_victim_inodes, cap_victim_inodes;

static int
cmp_ul(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

static void
mark_victim_conn(struct campaign *cp, unsigned rport, unsigned long inode)
{
    if (bsearch(&inode, victim_inodes, n_victim_inodes, sizeof inode, cmp_ul) == NULL)
        return;
    int32_t idx = cp->port_client[rport];
    if (idx < 0 || cp->cl[idx].sess < 0)
        return;
    struct session *s = &cp->sess[cp->cl[idx].sess];
    if (s->kill != (int32_t)cp->nkills) {
        s->kill = (int32_t)cp->nkills;
        cp->kills[cp->nkills].marked++;
    }
}

/* snapshot_victim - mark the open sessions whose server side the victim holds. */
static void
snapshot_victim(struct campaign *cp, pid_t victim)
{
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)victim);
    DIR *d = opendir(path);
    struct dirent *de;
    n_victim_inodes = 0;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char fdpath[64 + sizeof de->d_name];
        if (de->d_name[0] == '.')
            continue;
        snprintf(fdpath, sizeof fdpath, "%s/%s", path, de->d_name);
        ssize_t n = readlink(fdpath, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        if (n_victim_inodes == cap_victim_inodes) {
            cap_victim_inodes = cap_victim_inodes ? cap_victim_inodes * 2 : 4096;
            victim_inodes = xrealloc(victim_inodes, cap_victim_inodes * sizeof *victim_inodes);
        }
        victim_inodes[n_victim_inodes++] = ino;
    }
    closedir(d);
    qsort(victim_inodes, n_victim_inodes, sizeof *victim_inodes, cmp_ul);
    tcp_scan(cp, mark_victim_conn);
}

static void
do_kill(struct campaign *cp, uint64_t now)
{
    if (cp->nkills >= MAX_KILLS || cp->nvictims == 0 || cp->kill_pending)
        return;
    struct kill_rec *kr = &cp->kills[cp->nkills];
    unsigned vi = cp->nkills % cp->nvictims;
    pid_t victim = cp->victims[vi];
    *kr = (struct kill_rec){.sig = cp->o.signals[cp->nkills % cp->o.nsignals], .victim = victim};
    kr->victim_mem = mem_of(victim);
    snapshot_victim(cp, victim);
    kr->t = now_ns();
    if (kill(victim, kr->sig) < 0) {
        violation(cp, "kill(%ld, %d): %s", (long)victim, kr->sig, strerror(errno));
        return;
    }
    progress(cp, "kill %u: signal %d to worker %ld (%u sessions on it)", cp->nkills + 1, kr->sig,
             (long)victim, kr->marked);
    cp->nkills++;
    cp->kill_pending = cp->nkills;
    (void)now;
}

static int
is_known_worker(const struct campaign *cp, pid_t p)
{
    if (p == cp->survivor)
        return 1;
    for (unsigned i = 0; i < cp->nvictims; i++)
        if (cp->victims[i] == p)
            return 1;
    return 0;
}

static void
poll_respawn(struct campaign *cp)
{
    if (!cp->kill_pending)
        return;
    uint64_t now = now_ns();
    struct kill_rec *kr = &cp->kills[cp->kill_pending - 1];
    pid_t kids[MAX_WORKERS];
    unsigned n = children(cp->o.master, kids, MAX_WORKERS);
    int victim_alive = 0;
    for (unsigned i = 0; i < n; i++)
        if (kids[i] == kr->victim)
            victim_alive = 1;
    if (!victim_alive && kr->t_exit == 0)
        kr->t_exit = now;
    for (unsigned i = 0; i < n; i++) {
        if (!is_known_worker(cp, kids[i])) {
            kr->t_new = now;
            kr->respawned = kids[i];
            for (unsigned v = 0; v < cp->nvictims; v++)
                if (cp->victims[v] == kr->victim)
                    cp->victims[v] = kids[i];
            cp->kill_pending = 0;
            return;
        }
    }
    if (now - kr->t > RESPAWN_TIMEOUT_NS && !cp->master_stopped) {
        violation(cp, "worker %ld (kill %u) was not respawned within %.0f s", (long)kr->victim,
                  cp->kill_pending, (double)RESPAWN_TIMEOUT_NS / 1e9);
        cp->kill_pending = 0;
    }
}

/* check_kill_windows - every session on a killed worker must have ended. */
static void
check_kill_windows(struct campaign *cp, uint64_t now)
{
    static unsigned done; /* kills before it are checked for both */
    for (unsigned ki = done; ki < cp->nkills; ki++) {
        struct kill_rec *kr = &cp->kills[ki];
        for (int paused = 0; paused < 2; paused++) {
            uint64_t w = kill_window(kr, paused ? K_STUCK : K_HEALTHY);
            if (kr->checked[paused] || now < kr->t + w)
                continue;
            kr->checked[paused] = 1;
            unsigned n = 0;
            for (unsigned i = 0; i < cp->nclients; i++) {
                struct client *k = &cp->cl[i];
                if (k->sess >= 0 && cp->sess[k->sess].kill == (int32_t)ki &&
                    (k->kind != K_HEALTHY) == paused) {
                    n++;
                    cp->sess[k->sess].kill = -1;
                }
            }
            kr->survived += n;
            if (n > 0)
                violation(cp,
                          "kill %u (signal %d): %u %s sessions of worker %ld still open after "
                          "%.0f s",
                          ki + 1, kr->sig, n, paused ? "stuck or lapped" : "healthy",
                          (long)kr->victim, (double)w / 1e9);
        }
        if (ki == done && kr->checked[0] && kr->checked[1])
            done++;
    }
}

static void
do_stop(struct campaign *cp)
{
    if (cp->nstops >= MAX_STOPS || cp->master_stopped)
        return;
    struct stop_rec *sr = &cp->stops[cp->nstops];
    sr->t = now_ns();
    if (kill(cp->o.master, SIGSTOP) < 0) {
        violation(cp, "kill(master, SIGSTOP): %s", strerror(errno));
        return;
    }
    cp->master_stopped = 1;
    cp->nstops++;
}

static void
do_continue(struct campaign *cp)
{
    if (!cp->master_stopped)
        return;
    if (kill(cp->o.master, SIGCONT) < 0)
        violation(cp, "kill(master, SIGCONT): %s", strerror(errno));
    cp->master_stopped = 0;
    cp->stops[cp->nstops - 1].t_cont = now_ns();
}

/* ---- the stuck clients' server side ----------------------------------------------- */

static uint8_t *est_ports; /* 65536 bits: server side ESTABLISHED */

static void
note_established(struct campaign *cp, unsigned rport, unsigned long inode)
{
    (void)cp, (void)inode;
    est_ports[rport >> 3] |= (uint8_t)(1u << (rport & 7));
}

/* scan_paused - a paused session whose server side is no longer ESTABLISHED was
 * dropped (its FIN waits behind bytes we have not read, so no EPOLLRDHUP): read
 * them now. */
static void
scan_paused(struct campaign *cp, uint64_t now)
{
    int any = 0;
    for (unsigned i = cp->o.healthy; i < cp->nclients && !any; i++)
        any = cp->b.conns[i].paused == 1;
    if (!any)
        return;
    memset(est_ports, 0, 65536 / 8);
    tcp_scan(cp, note_established);
    for (unsigned i = cp->o.healthy; i < cp->nclients; i++) {
        struct client *k = &cp->cl[i];
        struct conn *c = &cp->b.conns[i];
        if (c->paused != 1 || k->sess < 0 || k->port == 0 || now - cp->sess[k->sess].t_open < NS)
            continue;
        if (!(est_ports[k->port >> 3] & (1u << (k->port & 7)))) {
            cp->server_drops_seen_by_scan++;
            conn_set_paused(&cp->b, c, 0);
        }
    }
}

/* ---- the loop ----------------------------------------------------------------------- */

static void
set_stuck_active(struct campaign *cp, int on, uint64_t now)
{
    for (unsigned i = cp->o.healthy; i < cp->o.healthy + cp->o.stuck; i++) {
        struct client *k = &cp->cl[i];
        k->active = (uint8_t)on;
        if (on) {
            client_connect(cp, i);
        } else if (k->sess >= 0) {
            k->draining = 1; /* catch up, then our close */
            k->deadline = now + CATCH_UP_NS;
            conn_set_paused(&cp->b, &cp->b.conns[i], 0);
        } else {
            k->reconnect_at = 0;
        }
    }
}

static void
tick(struct campaign *cp, uint64_t now)
{
    /* phases (once the campaign has begun) */
    int ph = phase_of(cp, now);
    if (cp->t0 != 0 && cp->injecting && ph != cp->phase) {
        cp->phase = ph;
        progress(cp, "phase %d: %s the stuck clients", ph + 1,
                 phase_has_stuck(ph) ? "with" : "without");
        set_stuck_active(cp, phase_has_stuck(ph), now);
    }
    /* faults */
    if (cp->injecting && cp->o.kill_every > 0 && now >= cp->next_kill) {
        do_kill(cp, now);
        cp->next_kill += s_ns(cp->o.kill_every);
    }
    if (cp->injecting && cp->o.stop_every > 0 && now >= cp->next_stop) {
        do_stop(cp);
        cp->next_stop += s_ns(cp->o.stop_every);
    }
    if (cp->master_stopped && now >= cp->stops[cp->nstops - 1].t + s_ns(cp->o.stop_for))
        do_continue(cp);
    poll_respawn(cp);
    check_kill_windows(cp, now);
    /* churn */
    if (cp->injecting && now >= cp->next_churn) {
        if (cp->o.churn_pct > 0)
            do_churn(cp, now);
        cp->next_churn += CHURN_TICK_NS;
    }
    /* paused sessions the server dropped */
    if (now >= cp->next_tcp_scan) {
        scan_paused(cp, now);
        cp->next_tcp_scan = now + TCP_SCAN_NS;
    }
    /* per client timers */
    for (unsigned i = 0; i < cp->nclients; i++) {
        struct client *k = &cp->cl[i];
        struct conn *c = &cp->b.conns[i];
        if (k->reconnect_at != 0 && now >= k->reconnect_at) {
            client_connect(cp, i);
            continue;
        }
        if (k->sess < 0 || c->state != CONN_OPEN)
            continue;
        if ((k->churning || k->closing) && now >= k->deadline) {
            struct session *s = &cp->sess[k->sess];
            s->end = END_CHURN_LOST;
            violation(cp, "%s client %u: our close was not answered within %.0f s",
                      kind_name[k->kind], i, (double)CLOSE_ANSWER_NS / 1e9);
            k->churning = k->closing = 0;
            conn_drop(&cp->b, c, CONN_CLOSED);
            continue;
        }
        if (k->draining) {
            struct session *s = &cp->sess[k->sess];
            if (s->max_inj[1] >= (int64_t)cp->latest_seen || now >= k->deadline) {
                k->draining = 0;
                client_close(cp, i, now, 0);
            }
            continue;
        }
        if (k->kind == K_LAPPED && cp->injecting && now >= k->deadline) {
            if (k->lp == LP_READ) {
                k->lp = LP_PAUSED;
                k->deadline =
                    now + s_ns(k->pauses++ % 2 == 0 ? cp->o.lapped_pause : cp->o.lapped_short);
                conn_set_paused(&cp->b, c, 1);
            } else {
                k->lp = LP_READ;
                k->deadline = now + s_ns(cp->o.lapped_read);
                conn_set_paused(&cp->b, c, 0);
            }
        }
    }
    /* memory */
    if (now >= cp->next_rss) {
        if (cp->nrss == cp->cap_rss) {
            cp->cap_rss = cp->cap_rss ? cp->cap_rss * 2 : 256;
            cp->rss = xrealloc(cp->rss, cp->cap_rss * sizeof *cp->rss);
        }
        struct rss_rec *r = &cp->rss[cp->nrss++];
        r->t_s = rel_s(cp, now);
        r->master = mem_of(cp->o.master);
        r->survivor = mem_of(cp->survivor);
        r->victim = mem_of(cp->victims[0]);
        r->open = cp->b.open;
        cp->next_rss = now + RSS_EVERY_NS;
    }
}

static void
loop_once(struct campaign *cp, int timeout_ms)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(cp->b.ep, evs, 1024, timeout_ms);
    if (n < 0 && errno != EINTR)
        die_errno("epoll_wait");
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64, ticks;
        if (tag == EV_INJECT) {
            if (read(cp->tfd_inject, &ticks, sizeof ticks) == sizeof ticks)
                while (ticks-- > 0 && cp->injecting)
                    inject_one(cp);
        } else if (tag == EV_TICK) {
            if (read(cp->tfd_tick, &ticks, sizeof ticks) == sizeof ticks)
                tick(cp, now_ns());
        } else {
            conn_event(&cp->b, &cp->b.conns[tag], evs[i].events);
        }
    }
    if (cp->kill_pending)
        poll_respawn(cp); /* finer than the tick */
}

static int
timer_start(struct campaign *cp, uint64_t period_ns, uint64_t tag)
{
    struct itimerspec its = {
        .it_interval = {.tv_sec = (time_t)(period_ns / NS), .tv_nsec = (long)(period_ns % NS)},
        .it_value = {.tv_nsec = 1},
    };
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) < 0)
        die_errno("timerfd");
    ep_set(&cp->b, fd, EPOLLIN, tag, EPOLL_CTL_ADD);
    return fd;
}

/* ---- the end: checks ----------------------------------------------------------------- */

/* latest_pub - the publication time of the latest-published event s received. */
static uint64_t
latest_pub(const struct campaign *cp, const struct session *s)
{
    uint64_t K = cp->o.clusters, latest = 0;
    for (int kind = 0; kind < 2; kind++)
        for (uint32_t w = 0; w < s->nwords; w++)
            for (uint64_t v = s->bits[kind][w]; v != 0; v &= v - 1) {
                uint64_t inj = s->base + w * 64u + (unsigned)__builtin_ctzll(v);
                uint64_t pub = cp->pub[kind][inj - K];
                if (pub > latest)
                    latest = pub;
            }
    return latest;
}

/* missed - events s owed (injected after its open, published more than slack
 * before end_ref, or all of them without an end) that it did not receive. */
static uint64_t
missed(const struct campaign *cp, const struct session *s, uint64_t end_ref)
{
    uint64_t K = cp->o.clusters, miss = 0, slack = s_ns(cp->o.slack);
    for (uint64_t inj = s->first_inj; inj < K + cp->injections; inj++) {
        uint64_t j = inj - K;
        if (end_ref != UINT64_MAX && cp->inj_t[j] + slack >= end_ref)
            break; /* published no earlier than injected: nothing later is owed */
        for (int kind = 0; kind < 2; kind++) {
            uint64_t pub = cp->pub[kind][j];
            int owed = end_ref == UINT64_MAX || (pub != 0 && pub + slack < end_ref);
            if (owed && !session_has(s, kind, inj))
                miss++;
        }
    }
    return miss;
}

static void
check_sessions(struct campaign *cp)
{
    for (size_t i = 0; i < cp->nsess; i++) {
        struct session *s = &cp->sess[i];
        if (s->end == END_NONE) {
            s->end = END_OPEN;
            s->end_ref = UINT64_MAX;
        }
        /* Sessions that owe every event up to their end time: open at the end,
         * and those ended by us or by a SIGKILL while reading.  The others owe
         * everything published before the latest event they got (a stuck or
         * paused client also loses what its killed worker still held for it). */
        s->checked =
            s->end == END_OPEN || s->end == END_CHURN || s->end == END_CAMPAIGN ||
            (s->end == END_KILL && s->kind == K_HEALTHY && cp->kills[s->kill].sig == SIGKILL);
        uint64_t ref = s->checked ? s->end_ref : latest_pub(cp, s);
        s->missed = s->checked || ref != 0 ? missed(cp, s, ref) : 0;
    }
}

/* ---- report ----------------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double
pct_u64(uint64_t *v, size_t n, double pct)
{
    if (n == 0)
        return -1;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)((double)(n - 1) * pct / 100.0 + 0.5);
    return (double)v[i];
}

static void
json_hist(const char *name, const struct hist *h)
{
    printf("\"%s\":{\"n\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"max_ms\":%.3f}",
           name, h->n, hist_ms(h, 50), hist_ms(h, 99), hist_ms(h, 99.9),
           (double)h->max_us / 1000.0);
}

static void
report(struct campaign *cp, double connect_s)
{
    const struct copts *o = &cp->o;
    printf("{\"options\":{\"healthy\":%u,\"stuck\":%u,\"lapped\":%u,\"rate\":%u,"
           "\"duration_s\":%.1f,\"phase_s\":%.1f,\"kill_every_s\":%.1f,\"stop_every_s\":%.1f,"
           "\"stop_for_s\":%.2f,\"churn_pct\":%.1f,\"lapped_read_s\":%.1f,"
           "\"lapped_pause_s\":%.1f,\"lapped_short_s\":%.1f,\"lapped_rcvbuf\":%u,"
           "\"clusters\":%u,\"slack_s\":%.2f},\n",
           o->healthy, o->stuck, o->lapped, o->rate, o->duration, o->phase, o->kill_every,
           o->stop_every, o->stop_for, o->churn_pct, o->lapped_read, o->lapped_pause,
           o->lapped_short, o->lapped_rcvbuf, o->clusters, o->slack);
    printf(
        "\"connect_s\":%.2f,\"injections\":%" PRIu64 ",\"events\":%" PRIu64 ","
        "\"gen_cpu_pct\":%.0f,\"master_cpu_pct\":%.1f,\"inject_s\":%.1f,\"churn_closes\":%" PRIu64
        ",\"connect_failures\":%" PRIu64 ",\"connect_errors\":%" PRIu64
        ",\"handshake_errors\":%" PRIu64 ",\"failures_near_kill\":%" PRIu64 ","
        "\"tcp_scans\":%" PRIu64 ",\"server_drops_seen_by_scan\":%" PRIu64 ",\n",
        connect_s, cp->injections, 2 * cp->injections, 100 * cp->gen_cpu_s / cp->run_s,
        100 * cp->master_cpu_s / cp->run_s,
        cp->injections > 1 ? (double)(cp->inj_t[cp->injections - 1] - cp->inj_t[0]) / 1e9 : 0,
        cp->churn_closes, cp->connect_failures, cp->b.conn_errors, cp->b.handshake_errors,
        cp->failures_near_kill, cp->tcp_scans, cp->server_drops_seen_by_scan);

    /* classes x end reasons */
    printf("\"classes\":[");
    int first = 1;
    for (int kd = 0; kd < K_COUNT; kd++) {
        for (int e = 1; e < END_COUNT; e++) {
            uint64_t n = 0, rx = 0, reord = 0, dups = 0, miss = 0, foreign = 0, checked = 0;
            uint64_t codes[16] = {0};
            for (size_t i = 0; i < cp->nsess; i++) {
                const struct session *s = &cp->sess[i];
                if (s->kind != kd || s->end != e)
                    continue;
                n++;
                rx += s->received;
                reord += s->reordered;
                dups += s->dups;
                miss += s->missed;
                foreign += s->foreign;
                checked += s->checked;
                if (s->t_end)
                    codes[code_slot(s->code)]++;
            }
            if (n == 0)
                continue;
            printf("%s\n{\"class\":\"%s\",\"end\":\"%s\",\"sessions\":%" PRIu64
                   ",\"tail_checked\":%" PRIu64 ",\"received\":%" PRIu64 ",\"missed\":%" PRIu64
                   ",\"duplicated\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"foreign\":%" PRIu64
                   ",\"codes\":{",
                   first ? "" : ",", kind_name[kd], end_name[e], n, checked, rx, miss, dups, reord,
                   foreign);
            first = 0;
            int cf = 1;
            for (int c = 0; c < 16; c++)
                if (codes[c]) {
                    printf("%s\"%d\":%" PRIu64, cf ? "" : ",", c < 15 ? code_list[c] : 0, codes[c]);
                    cf = 0;
                }
            printf("}}");
        }
    }
    printf("],\n");

    /* close codes per class */
    printf("\"close_codes\":{");
    for (int kd = 0; kd < K_COUNT; kd++) {
        printf("%s\"%s\":{", kd ? "," : "", kind_name[kd]);
        int cf = 1;
        for (int c = 0; c < 16; c++)
            if (cp->codes[kd][c]) {
                printf("%s\"%d\":%" PRIu64, cf ? "" : ",", c < 15 ? code_list[c] : 0,
                       cp->codes[kd][c]);
                cf = 0;
            }
        printf("}");
    }
    printf("},\n");

    /* stuck sessions: age when the server ended them */
    {
        size_t n = 0;
        uint64_t *ages = xmalloc((cp->nsess + 1) * sizeof *ages);
        for (size_t i = 0; i < cp->nsess; i++)
            if (cp->sess[i].kind == K_STUCK && cp->sess[i].end == END_SERVER)
                ages[n++] = cp->sess[i].t_end - cp->sess[i].t_open;
        printf("\"stuck_server_end_age_s\":{\"n\":%zu,\"p50\":%.1f,\"min\":%.1f,\"max\":%.1f},\n",
               n, pct_u64(ages, n, 50) / 1e9, pct_u64(ages, n, 0) / 1e9,
               pct_u64(ages, n, 100) / 1e9);
        free(ages);
    }

    /* kills */
    printf("\"kills\":[");
    for (unsigned i = 0; i < cp->nkills; i++) {
        struct kill_rec *kr = &cp->kills[i];
        printf("%s\n{\"t_s\":%.2f,\"signal\":%d,\"victim\":%ld,\"respawned\":%ld,"
               "\"exit_ms\":%.1f,\"respawn_ms\":%.1f,\"victim_rss_kb\":%ld,"
               "\"victim_anon_kb\":%ld,\"sessions\":%u,"
               "\"ended\":%u,\"survived\":%u,\"reconnected\":%u,\"reconnect_p50_ms\":%.1f,"
               "\"reconnect_max_ms\":%.1f}",
               i ? "," : "", rel_s(cp, kr->t), kr->sig, (long)kr->victim, (long)kr->respawned,
               kr->t_exit ? (double)(kr->t_exit - kr->t) / 1e6 : -1,
               kr->t_new ? (double)(kr->t_new - kr->t) / 1e6 : -1, kr->victim_mem.rss,
               kr->victim_mem.anon, kr->marked, kr->ended, kr->survived, kr->n_reconnect,
               pct_u64(kr->reconnect_ns, kr->n_reconnect, 50) / 1e6,
               pct_u64(kr->reconnect_ns, kr->n_reconnect, 100) / 1e6);
    }
    printf("],\n\"reorders\":[");
    for (unsigned i = 0; i < cp->nreorders; i++)
        printf("%s[%.3f,%u,%d,%" PRIu64 ",%" PRIu64 "]", i ? "," : "", cp->reorders[i].t_s,
               cp->reorders[i].client, cp->reorders[i].kind, cp->reorders[i].inj,
               cp->reorders[i].max_inj);
    printf("],\n\"stops\":[");
    for (unsigned i = 0; i < cp->nstops; i++)
        printf("%s{\"t_s\":%.2f,\"for_ms\":%.1f}", i ? "," : "", rel_s(cp, cp->stops[i].t),
               cp->stops[i].t_cont ? (double)(cp->stops[i].t_cont - cp->stops[i].t) / 1e6 : -1);
    printf("],\n");

    /* latency per phase, healthy clients */
    printf("\"phases\":[");
    for (int p = 0; p < cp->nphases; p++) {
        struct hist *all = calloc(1, sizeof *all);
        if (all == NULL)
            die("out of memory");
        hist_merge(all, &cp->lat_quiet[p]);
        hist_merge(all, &cp->lat_busy[p]);
        printf("%s\n{\"phase\":%d,\"stuck\":%s,", p ? "," : "", p + 1,
               phase_has_stuck(p) ? "true" : "false");
        json_hist("quiet", &cp->lat_quiet[p]);
        printf(",");
        json_hist("all", all);
        printf("}");
        free(all);
    }
    printf("],\n\"latency\":{");
    for (int with = 0; with < 2; with++) {
        struct hist *q = calloc(1, sizeof *q), *a = calloc(1, sizeof *a);
        if (q == NULL || a == NULL)
            die("out of memory");
        for (int p = 0; p < cp->nphases; p++)
            if (phase_has_stuck(p) == with) {
                hist_merge(q, &cp->lat_quiet[p]);
                hist_merge(a, &cp->lat_quiet[p]);
                hist_merge(a, &cp->lat_busy[p]);
            }
        printf("%s\"%s\":{", with ? "," : "", with ? "with_stuck" : "without_stuck");
        json_hist("quiet", q);
        printf(",");
        json_hist("all", a);
        printf("}");
        free(q);
        free(a);
    }
    printf("},\n");

    /* memory */
    printf("\"mem_kb\":{");
    for (int w = 0; w < 2; w++) {
        const struct rss_rec *r = w ? &cp->rss_end : &cp->rss_start;
        printf("%s\"%s\":{\"open\":%u", w ? "," : "", w ? "end" : "start", r->open);
        const struct mem *m[3] = {&r->master, &r->survivor, &r->victim};
        static const char *const name[3] = {"master", "survivor", "victim"};
        for (int i = 0; i < 3; i++)
            printf(",\"%s\":{\"rss\":%ld,\"anon\":%ld,\"shmem\":%ld}", name[i], m[i]->rss,
                   m[i]->anon, m[i]->shmem);
        printf("}");
    }
    printf(",\"series\":[");
    for (size_t i = 0; i < cp->nrss; i++) {
        const struct rss_rec *r = &cp->rss[i];
        printf("%s[%.0f,%ld,%ld,%ld,%ld,%ld,%ld,%u]", i ? "," : "", r->t_s, r->master.rss,
               r->master.anon, r->survivor.rss, r->survivor.anon, r->victim.rss, r->victim.anon,
               r->open);
    }
    printf("]},\n\"survivor\":%ld,\"master\":%ld,\n\"violations\":[", (long)cp->survivor,
           (long)cp->o.master);
    for (unsigned i = 0; i < cp->nviolations; i++) {
        printf("%s\"", i ? "," : "");
        for (const char *p = cp->violations[i]; *p; p++)
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if ((unsigned char)*p >= 0x20)
                putchar(*p);
        printf("\"");
    }
    if (cp->more_violations)
        printf("%s\"... and %u more\"", cp->nviolations ? "," : "", cp->more_violations);
    printf("]}\n");
}

/* ---- options --------------------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] --dir=DIR --master-pid=PID ws://127.0.0.1:PORT/ws\n"
            "       %s --prepare --dir=DIR [--clusters=K]\n"
            "\n"
            "The fault campaign of issue 8 (contrib/bench/fault-campaign runs it).\n"
            "--prepare writes the K baseline persona files into an empty DIR before the\n"
            "daemon starts; the run then renames one new file per injection into DIR\n"
            "(two events each: the slot's old cluster deleted, a new one added).\n"
            "\n"
            "  -d, --dir=DIR            the daemon's personas directory\n"
            "  -p, --master-pid=PID     the daemon's master: workers are its children\n"
            "      --clusters=K         persona slots (default 1000)\n"
            "      --healthy=N          clients that read everything (default 1000)\n"
            "      --stuck=N            clients that never read (default 100)\n"
            "      --lapped=N           clients that pause (default 5)\n"
            "  -r, --rate=N             events per second, an even number (default 100)\n"
            "      --duration=S         seconds of injection (default 600)\n"
            "      --phase=S            phases without / with the stuck clients (default 150)\n"
            "      --kill-every=S       kill a worker (default 30; 0 never)\n"
            "      --signals=LIST       signals to cycle through, KILL,TERM (default)\n"
            "      --stop-every=S       SIGSTOP the master (default 30; 0 never)\n"
            "      --stop-for=S         for this long (default 1.5)\n"
            "      --churn=PCT          healthy connections closed and reopened per second\n"
            "                           (default 10)\n"
            "      --lapped-read=S      lapped clients read this long (default 10)\n"
            "      --lapped-pause=S     then pause this long (default 40) and, the next\n"
            "                           time, --lapped-short=S (default 5)\n"
            "      --lapped-rcvbuf=B    their SO_RCVBUF (default 4096; 0 the kernel's)\n"
            "      --slack=S            delivery slack for events owed at a session's end\n"
            "                           (default 1)\n"
            "      --drain=S            at the end, wait up to S for the last events (default 20)\n"
            "      --connect-timeout=S  for the first connections (default 60)\n"
            "  -q, --quiet              no progress on stderr\n"
            "\n"
            "Prints one JSON object.  Exit status: 0 no violation, 3 violations (listed in\n"
            "the report), 1 usage or setup error.\n",
            progname, progname);
}

static double
opt_double(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= 0) || v > 1e7)
        die("bad %s: %s", what, s);
    return v;
}

static unsigned
opt_uint(const char *s, const char *what)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > 1000000)
        die("bad %s: %s", what, s);
    return (unsigned)v;
}

static void
parse_signals(struct copts *o, const char *s)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    o->nsignals = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->nsignals == sizeof o->signals)
            die("too many signals");
        if (strcmp(tok, "KILL") == 0)
            o->signals[o->nsignals++] = SIGKILL;
        else if (strcmp(tok, "TERM") == 0)
            o->signals[o->nsignals++] = SIGTERM;
        else
            die("--signals: KILL or TERM, not %s", tok);
    }
    if (o->nsignals == 0)
        die("--signals: empty");
}

static void
parse_opts(struct copts *o, int argc, char **argv)
{
    enum {
        O_CLUSTERS = 256,
        O_HEALTHY,
        O_STUCK,
        O_LAPPED,
        O_DURATION,
        O_PHASE,
        O_KILL,
        O_SIGNALS,
        O_STOP,
        O_STOP_FOR,
        O_CHURN,
        O_LREAD,
        O_LPAUSE,
        O_LSHORT,
        O_LRCVBUF,
        O_SLACK,
        O_DRAIN,
        O_CTIMEOUT,
        O_PREPARE
    };
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},
        {"master-pid", required_argument, NULL, 'p'},
        {"rate", required_argument, NULL, 'r'},
        {"clusters", required_argument, NULL, O_CLUSTERS},
        {"healthy", required_argument, NULL, O_HEALTHY},
        {"stuck", required_argument, NULL, O_STUCK},
        {"lapped", required_argument, NULL, O_LAPPED},
        {"duration", required_argument, NULL, O_DURATION},
        {"phase", required_argument, NULL, O_PHASE},
        {"kill-every", required_argument, NULL, O_KILL},
        {"signals", required_argument, NULL, O_SIGNALS},
        {"stop-every", required_argument, NULL, O_STOP},
        {"stop-for", required_argument, NULL, O_STOP_FOR},
        {"churn", required_argument, NULL, O_CHURN},
        {"lapped-read", required_argument, NULL, O_LREAD},
        {"lapped-pause", required_argument, NULL, O_LPAUSE},
        {"lapped-short", required_argument, NULL, O_LSHORT},
        {"lapped-rcvbuf", required_argument, NULL, O_LRCVBUF},
        {"slack", required_argument, NULL, O_SLACK},
        {"drain", required_argument, NULL, O_DRAIN},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"prepare", no_argument, NULL, O_PREPARE},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct copts){.healthy = 1000,
                        .stuck = 100,
                        .lapped = 5,
                        .rate = 100,
                        .clusters = 1000,
                        .lapped_rcvbuf = 4096,
                        .duration = 600,
                        .phase = 150,
                        .kill_every = 30,
                        .stop_every = 30,
                        .stop_for = 1.5,
                        .churn_pct = 10,
                        .lapped_read = 10,
                        .lapped_pause = 40,
                        .lapped_short = 5,
                        .slack = 1,
                        .drain = 20,
                        .connect_timeout = 60};
    parse_signals(o, "KILL,TERM");
    int ch;
    while ((ch = getopt_long(argc, argv, "d:p:r:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->dir = optarg;
            break;
        case 'p':
            o->master = (pid_t)opt_uint(optarg, "pid");
            break;
        case 'r':
            o->rate = opt_uint(optarg, "rate");
            break;
        case O_CLUSTERS:
            o->clusters = opt_uint(optarg, "cluster count");
            break;
        case O_HEALTHY:
            o->healthy = opt_uint(optarg, "client count");
            break;
        case O_STUCK:
            o->stuck = opt_uint(optarg, "client count");
            break;
        case O_LAPPED:
            o->lapped = opt_uint(optarg, "client count");
            break;
        case O_DURATION:
            o->duration = opt_double(optarg, "duration");
            break;
        case O_PHASE:
            o->phase = opt_double(optarg, "phase");
            break;
        case O_KILL:
            o->kill_every = opt_double(optarg, "kill period");
            break;
        case O_SIGNALS:
            parse_signals(o, optarg);
            break;
        case O_STOP:
            o->stop_every = opt_double(optarg, "stop period");
            break;
        case O_STOP_FOR:
            o->stop_for = opt_double(optarg, "stop time");
            break;
        case O_CHURN:
            o->churn_pct = opt_double(optarg, "churn");
            break;
        case O_LREAD:
            o->lapped_read = opt_double(optarg, "read time");
            break;
        case O_LPAUSE:
            o->lapped_pause = opt_double(optarg, "pause time");
            break;
        case O_LSHORT:
            o->lapped_short = opt_double(optarg, "pause time");
            break;
        case O_LRCVBUF:
            o->lapped_rcvbuf = opt_uint(optarg, "receive buffer");
            break;
        case O_SLACK:
            o->slack = opt_double(optarg, "slack");
            break;
        case O_DRAIN:
            o->drain = opt_double(optarg, "drain time");
            break;
        case O_CTIMEOUT:
            o->connect_timeout = opt_double(optarg, "timeout");
            break;
        case O_PREPARE:
            o->prepare = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(1);
        }
    }
    if (o->dir == NULL)
        die("--dir is needed");
    if (o->clusters == 0)
        die("--clusters must be positive");
    if (o->prepare)
        return;
    if (optind != argc - 1) {
        usage(stderr);
        exit(1);
    }
    o->url = argv[optind];
    if (o->master <= 0)
        die("--master-pid is needed");
    if (o->rate < 2 || o->rate % 2 != 0)
        die("--rate must be even and at least 2 (two events per injection)");
    if (o->healthy == 0 || o->phase <= 0 || o->duration <= 0 || o->lapped_read <= 0)
        die("--healthy, --phase, --duration and --lapped-read must be positive");
    if ((double)o->clusters < o->rate / 2.0 * 5)
        die("--clusters must hold at least 5 s of injections (a master stall must not fold "
            "two renames of one slot into one commit)");
}

static void
prepare(const struct copts *o)
{
    struct campaign cp = {.o = *o};
    if ((cp.dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        die("%s: %s", o->dir, strerror(errno));
    for (unsigned i = 0; i < o->clusters; i++)
        write_slot(&cp, i, 0);
    close(cp.dirfd);
}

/* ---- main ---------------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    static struct campaign campaign;
    struct campaign *cp = &campaign;
    struct copts *o = &cp->o;

    progname = "wscampaign";
    parse_opts(o, argc, argv);
    if (o->prepare) {
        prepare(o);
        return 0;
    }
    G = cp;
    if (atexit(master_continue) != 0)
        die("atexit");
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);

    cp->nclients = o->healthy + o->stuck + o->lapped;
    raise_nofile(cp->nclients + 256);
    parse_url(&cp->b, o->url);
    if (cp->b.dst.ss_family != AF_INET)
        die("an IPv4 loopback URL is needed (/proc/net/tcp)");
    cp->b.ops = &campaign_ops;
    cp->b.o.inflight = UINT_MAX;
    if (getrandom(&cp->b.rng, sizeof cp->b.rng, 0) != sizeof cp->b.rng || cp->b.rng == 0)
        cp->b.rng = now_ns() | 1;
    if ((cp->b.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die_errno("epoll_create1");
    if ((cp->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        die("%s: %s", o->dir, strerror(errno));
    cp->b.rbuf = xmalloc(RBUF_BYTES);
    cp->b.conns = calloc(cp->nclients, sizeof *cp->b.conns);
    cp->cl = calloc(cp->nclients, sizeof *cp->cl);
    cp->port_client = xmalloc(65536 * sizeof *cp->port_client);
    est_ports = xmalloc(65536 / 8);
    if (cp->b.conns == NULL || cp->cl == NULL)
        die("out of memory");
    for (unsigned i = 0; i < 65536; i++)
        cp->port_client[i] = -1;
    for (unsigned i = 0; i < cp->nclients; i++) {
        cp->b.conns[i].fd = -1;
        cp->cl[i].kind = i < o->healthy              ? K_HEALTHY
                         : i < o->healthy + o->stuck ? K_STUCK
                                                     : K_LAPPED;
        cp->cl[i].sess = -1;
        cp->cl[i].last_kill = -1;
        cp->cl[i].active = cp->cl[i].kind != K_STUCK;
        if (cp->cl[i].kind == K_LAPPED) {
            cp->b.conns[i].read_max = 4096; /* a slow reader takes small bites */
            cp->b.conns[i].rcvbuf = o->lapped_rcvbuf;
        } else if (cp->cl[i].kind == K_STUCK) {
            /* What a stuck session buffered (up to ~0.5 MB) is read in bites, so
             * that 100 of them draining at once do not stall this loop (and the
             * healthy clients' latency) for long. */
            cp->b.conns[i].read_max = 16384;
        }
    }
    cp->max_inj = (uint64_t)(o->rate / 2.0 * (o->duration + 5)) + 16;
    cp->inj_t = calloc(cp->max_inj, sizeof(uint64_t));
    cp->pub[0] = calloc(cp->max_inj, sizeof(uint64_t));
    cp->pub[1] = calloc(cp->max_inj, sizeof(uint64_t));
    cp->nphases = (int)ceil(o->duration / o->phase);
    if (cp->nphases > MAX_PHASES)
        die("at most %d phases", MAX_PHASES);
    cp->lat_quiet = calloc((size_t)cp->nphases, sizeof *cp->lat_quiet);
    cp->lat_busy = calloc((size_t)cp->nphases, sizeof *cp->lat_busy);
    if (cp->inj_t == NULL || cp->pub[0] == NULL || cp->pub[1] == NULL || cp->lat_quiet == NULL ||
        cp->lat_busy == NULL)
        die("out of memory");

    /* the workers: the first one survives, the others are killed in turn */
    pid_t kids[MAX_WORKERS];
    cp->workers = children(o->master, kids, MAX_WORKERS);
    if (cp->workers < 2)
        die("the master %ld has %u workers; the campaign needs at least 2", (long)o->master,
            cp->workers);
    cp->survivor = kids[0];
    for (unsigned i = 1; i < cp->workers; i++)
        cp->victims[cp->nvictims++] = kids[i];

    /* 1. connect the healthy and lapped clients */
    uint64_t t = now_ns(), deadline = t + s_ns(o->connect_timeout);
    cp->injecting = cp->reconnecting = 1;
    for (unsigned i = 0; i < cp->nclients; i++)
        if (cp->cl[i].active)
            client_connect(cp, i);
    cp->tfd_tick = timer_start(cp, TICK_NS, EV_TICK);
    cp->next_churn = cp->next_kill = cp->next_stop = cp->next_tcp_scan = cp->next_rss = UINT64_MAX;
    unsigned want = o->healthy + o->lapped;
    while (cp->b.open < want && now_ns() < deadline)
        loop_once(cp, 10);
    double connect_s = (double)(now_ns() - t) / 1e9;
    if (cp->b.open < want)
        die("only %u of %u clients connected in %.0f s", cp->b.open, want, o->connect_timeout);
    progress(cp, "%u clients connected in %.2f s; workers %ld (survivor) and %u more", want,
             connect_s, (long)cp->survivor, cp->nvictims);
    uint64_t settle = now_ns() + 2 * NS;
    while (now_ns() < settle)
        loop_once(cp, 10);

    /* 2. the campaign */
    cp->t0 = now_ns();
    cp->t_end = cp->t0 + s_ns(o->duration);
    cp->rss_start = (struct rss_rec){0, mem_of(o->master), mem_of(cp->survivor),
                                     mem_of(cp->victims[0]), cp->b.open};
    cp->next_rss = cp->t0;
    cp->next_churn = cp->t0 + CHURN_TICK_NS;
    cp->next_tcp_scan = cp->t0;
    cp->next_kill = o->kill_every > 0 ? cp->t0 + s_ns(o->kill_every / 3) : UINT64_MAX;
    cp->next_stop = o->stop_every > 0 ? cp->t0 + s_ns(o->stop_every * 5 / 6) : UINT64_MAX;
    cp->phase = 0;
    cp->tfd_inject = timer_start(cp, 2 * NS / o->rate, EV_INJECT);
    progress(cp, "injecting %u events/s for %.0f s", o->rate, o->duration);
    struct srv_sample m0, m1;
    srv_sample(o->master, &m0);
    double cpu0 = self_cpu_s();
    while (now_ns() < cp->t_end)
        loop_once(cp, cp->kill_pending ? 1 : 50);
    srv_sample(o->master, &m1);
    cp->gen_cpu_s = self_cpu_s() - cpu0;
    cp->master_cpu_s = m1.master_cpu_s - m0.master_cpu_s;
    cp->run_s = (double)(now_ns() - cp->t0) / 1e9;
    close(cp->tfd_inject);
    master_continue();
    if (cp->master_stopped)
        do_continue(cp);

    /* 3. drain: everybody reads, every open session must get every event */
    cp->injecting = 0;
    for (unsigned i = 0; i < cp->nclients; i++)
        if (cp->b.conns[i].state == CONN_OPEN)
            conn_set_paused(&cp->b, &cp->b.conns[i], 0);
    uint64_t last_inj = o->clusters + cp->injections - 1;
    deadline = now_ns() + s_ns(o->drain);
    for (;;) {
        unsigned behind = 0, away = 0;
        for (unsigned i = 0; i < cp->nclients; i++) {
            struct client *k = &cp->cl[i];
            if (k->sess >= 0 && cp->sess[k->sess].max_inj[1] < (int64_t)last_inj &&
                cp->sess[k->sess].first_inj <= last_inj)
                behind++;
            if (k->active && k->sess < 0)
                away++;
        }
        if ((behind == 0 && away == 0) || now_ns() >= deadline) {
            progress(cp, "drained: %u open sessions behind, %u clients not connected", behind,
                     away);
            break;
        }
        loop_once(cp, 20);
    }
    cp->reconnecting = 0;
    while (cp->kill_pending && now_ns() < deadline + RESPAWN_TIMEOUT_NS)
        loop_once(cp, 20);
    check_kill_windows(cp, UINT64_MAX);
    /* every client that should be connected is (a worker that stopped accepting shows) */
    unsigned missing = 0;
    for (unsigned i = 0; i < cp->nclients; i++)
        if (cp->cl[i].active && cp->cl[i].kind != K_STUCK && cp->cl[i].sess < 0)
            missing++;
    if (missing > 0)
        violation(cp, "%u clients were not connected at the end", missing);
    /* close the stuck ones (as at a phase end), then measure */
    cp->finishing = 1;
    for (unsigned i = cp->o.healthy; i < cp->o.healthy + cp->o.stuck; i++)
        if (cp->cl[i].sess >= 0)
            client_close(cp, i, now_ns(), 0);
    settle = now_ns() + 3 * NS;
    while (now_ns() < settle)
        loop_once(cp, 20);
    cp->rss_end = (struct rss_rec){rel_s(cp, now_ns()), mem_of(o->master), mem_of(cp->survivor),
                                   mem_of(cp->victims[0]), cp->b.open};
    if (!pid_alive(cp->survivor))
        violation(cp, "the survivor worker %ld died", (long)cp->survivor);

    /* 4. checks and report */
    check_sessions(cp);
    uint64_t dups = 0, miss = 0, foreign = 0, proto = cp->b.proto_errors;
    for (size_t i = 0; i < cp->nsess; i++) {
        const struct session *s = &cp->sess[i];
        dups += s->dups;
        foreign += s->foreign;
        miss += s->missed;
    }
    if (miss)
        violation(cp, "%" PRIu64 " events owed to sessions were not received", miss);
    if (dups)
        violation(cp, "%" PRIu64 " events were received twice by a session", dups);
    if (foreign)
        violation(cp, "%" PRIu64 " messages that are not campaign events", foreign);
    if (proto)
        violation(cp, "%" PRIu64 " framing errors by the server", proto);
    report(cp, connect_s);
    fflush(stdout);
    return cp->nviolations ? 3 : 0;
}
