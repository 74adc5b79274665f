/*
 * wsbench - the fan-out load generator of issue 5: many WebSocket clients in one
 * process, events injected at a fixed rate, every delivery checked.
 *
 * One thread, one epoll.  It opens C clients (non-blocking connect, its own HTTP
 * upgrade with a random key whose Sec-WebSocket-Accept it verifies), waits until
 * all of them are connected, then injects E events at R per second and records, for
 * every client, which event indices arrived (a bitmap: lost, duplicated and
 * out-of-order deliveries) and the latency of each from injection to receipt.  Each
 * event's cluster name is "b-<index>-<CLOCK_MONOTONIC ns at injection>", so the
 * receipt alone says which event it is and when it was sent.
 *
 * Injection:
 *   dir:DIR   personad's real path: one new persona file per event, written to
 *             DIR/.wsbench-tmp and renamed to DIR/b-<index>.json (one
 *             cluster.added each).  DIR should start empty.
 *   post:URL  HTTP POST of the message personad would send,
 *             {"type":"cluster.added","data":{"name":"b-..."}}, on one keep-alive
 *             connection (nchan's publisher endpoint).
 *
 * The server's CPU time and memory are summed from /proc over the given master pid
 * and its children, before connecting, after connecting and after the events.
 *
 * Resume (personad's /ws?since=N&epoch=E, issue 11): with --resume=EPOCH:SEQ
 * every client connects from a position and remembers the last "seq" it got;
 * --churn=PCT cuts that share of the open clients per second (close(2), no
 * goodbye) and reconnects them at once from their last seq, keeping their
 * bitmaps, so every client must still end with every event, once (0 lost, 0
 * duplicated).  Deliveries of events injected before their connection's
 * upgrade request are the replay (their latency apart from the live events').
 * --storm=N: after the run every client disconnects, N events are injected,
 * and all reconnect at once: the time until every client has all of them.
 *
 * This file: options, injection, the loop and the report.  The clients are in
 * wsclient.c, the /proc sampling and the histogram in benchstat.c.  Only loopback
 * targets are meant; nothing here is hardened against a hostile server beyond
 * bounds checks.
 */
#define _GNU_SOURCE /* timerfd, getrandom, memmem */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include "wsbench.h"

/* ---- injection -------------------------------------------------------------------- */

static void
pub_flush(struct bench *b)
{
    struct publisher *p = &b->pub;
    while (p->out_len > 0) {
        ssize_t n = write(p->fd, p->out, p->out_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            die_errno("publisher write");
        }
        memmove(p->out, p->out + n, p->out_len - (size_t)n);
        p->out_len -= (size_t)n;
    }
    ep_set(b, p->fd, EPOLLIN | (p->out_len ? EPOLLOUT : 0), EV_PUB, EPOLL_CTL_MOD);
}

/* pub_readable - consume complete HTTP responses (Content-Length or chunked). */
static void
pub_readable(struct bench *b)
{
    struct publisher *p = &b->pub;
    ssize_t n = read(p->fd, p->in + p->in_len, sizeof p->in - p->in_len - 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        die("publisher connection closed by the server");
    p->in_len += (size_t)n;
    p->in[p->in_len] = '\0';
    for (;;) {
        char *end = strstr(p->in, "\r\n\r\n"), val[32];
        size_t total;
        if (end == NULL)
            break;
        size_t hlen = (size_t)(end - p->in) + 4;
        end[2] = '\0';
        int status = atoi(p->in + 9);
        if (header_value(p->in, "Content-Length", val, sizeof val) == 0) {
            total = hlen + strtoul(val, NULL, 10);
        } else if (header_value(p->in, "Transfer-Encoding", val, sizeof val) == 0) {
            /* chunked: the body ends with "0\r\n\r\n" */
            char *z = memmem(p->in + hlen, p->in_len - hlen, "0\r\n\r\n", 5);
            if (z == NULL) {
                end[2] = '\r';
                break;
            }
            total = (size_t)(z - p->in) + 5;
        } else {
            total = hlen;
        }
        end[2] = '\r';
        if (total > p->in_len)
            break;
        p->responses++;
        p->last_status = status;
        if (status < 200 || status > 299)
            p->errors++;
        memmove(p->in, p->in + total, p->in_len - total);
        p->in_len -= total;
        p->in[p->in_len] = '\0';
    }
    if (p->in_len >= sizeof p->in - 1)
        die("publisher response too large");
}

static void
pub_connect(struct bench *b, const char *url)
{
    char host[256];
    const char *h = url + strlen("http://");
    if (strncmp(url, "http://", 7) != 0)
        die("--inject=post: needs an http:// URL");
    const char *slash = strchr(h, '/');
    const char *colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl >= sizeof host)
        die("publish URL host too long");
    memcpy(host, h, hl);
    host[hl] = '\0';
    char port[16];
    snprintf(port, sizeof port, "%d", colon ? atoi(colon + 1) : 80);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("cannot resolve %s", host);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die_errno("connect to the publisher");
    freeaddrinfo(ai);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    b->pub.fd = fd;
    ep_set(b, fd, EPOLLIN, EV_PUB, EPOLL_CTL_ADD);
    /* Keep the request line prefix: method, path and headers up to the length. */
    size_t plen = strlen(slash ? slash : "/");
    b->pub.out_cap = 512 + plen;
    b->pub.out = xmalloc(b->pub.out_cap);
}

static void
inject_one(struct bench *b)
{
    char name[64], body[256];
    uint64_t idx = b->injected, t = now_ns();
    /* The index is zero-padded so that name order is injection order: personad emits
     * the changes it sees in one batch in cluster-name order. */
    snprintf(name, sizeof name, NAME_PREFIX "%010" PRIu64 "-%" PRIu64, idx, t);
    if (b->dir != NULL) {
        char final[80];
        int n = snprintf(body, sizeof body,
                         "{\"apiVersion\":\"bench/v1\",\"kind\":\"ClusterPersona\","
                         "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"provider\":\"bench\","
                         "\"nodes\":3},\"status\":{\"phase\":\"Ready\"}}\n",
                         name);
        int fd = openat(b->dirfd, ".wsbench-tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, body, (size_t)n) != n || close(fd) < 0)
            die_errno("write persona file");
        snprintf(final, sizeof final, NAME_PREFIX "%010" PRIu64 ".json", idx);
        if (renameat(b->dirfd, ".wsbench-tmp", b->dirfd, final) < 0)
            die_errno("rename persona file");
    } else {
        struct publisher *p = &b->pub;
        const char *url = b->o.inject + strlen("post:http://");
        const char *path = strchr(url, '/');
        int n = snprintf(body, sizeof body,
                         "{\"type\":\"cluster.added\",\"data\":{\"name\":\"%s\"}}", name);
        size_t need = p->out_len + 512 + strlen(path ? path : "/") + (size_t)n;
        if (need > p->out_cap) {
            p->out_cap = need * 2;
            p->out = xrealloc(p->out, p->out_cap);
        }
        p->out_len += (size_t)snprintf((char *)p->out + p->out_len, p->out_cap - p->out_len,
                                       "POST %s HTTP/1.1\r\nHost: %s\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Content-Length: %d\r\n\r\n%s",
                                       path ? path : "/", b->host_hdr, n, body);
        pub_flush(b);
    }
    if (b->injected == 0)
        b->t_first_inject = t;
    b->t_last_inject = t;
    b->injected++;
}

static void
timer_fired(struct bench *b)
{
    uint64_t ticks;
    if (read(b->tfd, &ticks, sizeof ticks) != sizeof ticks)
        return;
    while (ticks-- > 0 && b->injected < b->o.events)
        inject_one(b);
}

/* ---- resume: churn and storm ------------------------------------------------------ */

#define CHURN_TICK_NS 100000000ull /* churn in tenths of a second */

/* Cut and resume open clients: pct percent per second, in ticks. */
static void
churn_tick(struct bench *b, double *acc)
{
    *acc += (double)b->o.clients * b->o.churn_pct / 100.0 / 10.0;
    unsigned want = (unsigned)*acc, tries = 0;
    *acc -= want;
    while (want > 0 && tries++ < 20 * b->o.clients) {
        unsigned idx = (unsigned)(rng_next(b) % b->o.clients);
        struct conn *c = &b->conns[idx];
        if (c->state != CONN_OPEN)
            continue;
        conn_drop(b, c, CONN_IDLE);
        c->attempts = 0;
        conn_start(b, idx);
        b->resumes++;
        want--;
    }
}

/* 1 once every counted client is open and has every event injected so far. */
static int
all_caught_up(const struct bench *b)
{
    for (unsigned i = 0; i < b->o.clients; i++) {
        const struct conn *c = &b->conns[i];
        if (c->counted && (c->state != CONN_OPEN || c->received < b->injected))
            return 0;
    }
    return 1;
}

/* ---- loop ------------------------------------------------------------------------- */

static void
loop_once(struct bench *b, int timeout_ms)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(b->ep, evs, 1024, timeout_ms);
    if (n < 0 && errno != EINTR)
        die_errno("epoll_wait");
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag == EV_TIMER) {
            timer_fired(b);
        } else if (tag == EV_PUB) {
            if (evs[i].events & EPOLLOUT)
                pub_flush(b);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                pub_readable(b);
        } else {
            conn_event(b, &b->conns[tag], evs[i].events);
        }
    }
}

static void
run_for(struct bench *b, double seconds)
{
    uint64_t until = now_ns() + (uint64_t)(seconds * 1e9);
    for (uint64_t t = now_ns(); t < until; t = now_ns())
        loop_once(b, (int)((until - t) / 1000000 + 1));
}

/* ---- setup and report ------------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] --inject=dir:DIR|post:URL ws://HOST:PORT/PATH\n"
            "\n"
            "Opens CLIENTS WebSocket clients, waits until all are connected, injects\n"
            "EVENTS events at RATE per second and reports deliveries, losses, duplicates,\n"
            "reordering, latency (injection to receipt) and the server's CPU and memory.\n"
            "\n"
            "  -c, --clients=N          clients to open (default 100)\n"
            "  -e, --events=N           events to inject (default 100; 0 = idle run)\n"
            "  -r, --rate=N             events per second (default 50)\n"
            "  -i, --inject=dir:DIR     write one persona file per event into DIR,\n"
            "                           atomically (personad); DIR should start empty\n"
            "  -i, --inject=post:URL    HTTP POST each event's message to URL on one\n"
            "                           keep-alive connection (nchan publisher)\n"
            "  -p, --server-pid=PID     server master: CPU and memory are summed over it\n"
            "                           and its children from /proc\n"
            "  -s, --source-addrs=N     bind clients over 127.0.0.2..127.0.0.(N+1)\n"
            "                           (default: 0 = kernel choice, below 20000 clients)\n"
            "      --inflight=N         handshakes in flight at once (default 256)\n"
            "      --connect-timeout=S  give up connecting after S seconds (default 60)\n"
            "      --settle=S           wait after the last handshake (default 1)\n"
            "      --drain=S            stop waiting for deliveries S seconds after the\n"
            "                           last new one (default 3)\n"
            "      --drain-max=S        stop waiting for deliveries S seconds after the\n"
            "                           last injection in any case (default 30)\n"
            "      --idle=S             with -e 0, hold the clients S seconds (default 2)\n"
            "      --resume=EPOCH:SEQ   connect to PATH?since=SEQ&epoch=EPOCH (personad's\n"
            "                           list position); reconnects resume from the last seq\n"
            "      --churn=PCT          with --resume: cut PCT %% of the open clients per\n"
            "                           second and resume them at once (default 0)\n"
            "      --storm=N            with --resume: then all disconnect, N more events,\n"
            "                           all resume at once; time until all have them\n"
            "  -j, --json               print one JSON object instead of text\n"
            "  -q, --quiet              no progress messages on stderr\n"
            "  -h, --help\n"
            "\n"
            "Exit status: 0 clean run; 3 run completed with connection failures or lost,\n"
            "duplicated or out-of-order deliveries; 1 usage or setup error.\n",
            progname);
}

static double
parse_double(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("bad %s: %s", what, s);
    return v;
}

static unsigned
parse_uint(const char *s, const char *what)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > UINT_MAX / 2)
        die("bad %s: %s", what, s);
    return (unsigned)v;
}

static void
parse_opts(struct opts *o, int argc, char **argv)
{
    enum {
        O_INFLIGHT = 256,
        O_CTIMEOUT,
        O_SETTLE,
        O_DRAIN,
        O_DRAIN_MAX,
        O_IDLE,
        O_RESUME,
        O_CHURN,
        O_STORM
    };
    static const struct option lo[] = {
        {"clients", required_argument, NULL, 'c'},
        {"events", required_argument, NULL, 'e'},
        {"rate", required_argument, NULL, 'r'},
        {"inject", required_argument, NULL, 'i'},
        {"server-pid", required_argument, NULL, 'p'},
        {"source-addrs", required_argument, NULL, 's'},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"settle", required_argument, NULL, O_SETTLE},
        {"drain", required_argument, NULL, O_DRAIN},
        {"drain-max", required_argument, NULL, O_DRAIN_MAX},
        {"idle", required_argument, NULL, O_IDLE},
        {"resume", required_argument, NULL, O_RESUME},
        {"churn", required_argument, NULL, O_CHURN},
        {"storm", required_argument, NULL, O_STORM},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    *o = (struct opts){.clients = 100,
                       .events = 100,
                       .rate = 50,
                       .inflight = 256,
                       .connect_timeout_s = 60,
                       .settle_s = 1,
                       .drain_s = 3,
                       .drain_max_s = 30,
                       .idle_s = 2};
    while ((ch = getopt_long(argc, argv, "c:e:r:i:p:s:jqh", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->clients = parse_uint(optarg, "client count");
            break;
        case 'e':
            o->events = parse_uint(optarg, "event count");
            break;
        case 'r':
            o->rate = parse_uint(optarg, "rate");
            break;
        case 'i':
            o->inject = optarg;
            break;
        case 'p':
            o->server_pid = (pid_t)parse_uint(optarg, "pid");
            break;
        case 's':
            o->source_addrs = parse_uint(optarg, "source address count");
            break;
        case O_INFLIGHT:
            o->inflight = parse_uint(optarg, "inflight");
            break;
        case O_CTIMEOUT:
            o->connect_timeout_s = parse_double(optarg, "timeout");
            break;
        case O_SETTLE:
            o->settle_s = parse_double(optarg, "settle time");
            break;
        case O_DRAIN:
            o->drain_s = parse_double(optarg, "drain time");
            break;
        case O_DRAIN_MAX:
            o->drain_max_s = parse_double(optarg, "drain time");
            break;
        case O_IDLE:
            o->idle_s = parse_double(optarg, "idle time");
            break;
        case O_RESUME:
            o->resume = optarg;
            break;
        case O_CHURN:
            o->churn_pct = parse_double(optarg, "churn");
            break;
        case O_STORM:
            o->storm = parse_uint(optarg, "storm event count");
            break;
        case 'j':
            o->json = 1;
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
    if (optind != argc - 1) {
        usage(stderr);
        exit(1);
    }
    o->url = argv[optind];
    if (o->clients == 0 || o->inflight == 0 || (o->events > 0 && o->rate == 0))
        die("clients, inflight and rate must be positive");
    if (o->source_addrs > 253)
        die("at most 253 source addresses (127.0.0.2..127.0.0.254)");
    if (o->source_addrs == 0 && o->clients > 20000)
        o->source_addrs = (o->clients + 19999) / 20000;
    if (o->events > 0 && o->inject == NULL)
        die("--inject is needed when events are injected");
    if ((o->churn_pct > 0 || o->storm > 0) && o->resume == NULL)
        die("--churn and --storm need --resume");
    if (o->inject != NULL && strncmp(o->inject, "dir:", 4) != 0 &&
        strncmp(o->inject, "post:", 5) != 0)
        die("--inject must be dir:DIR or post:URL");
}

struct report {
    struct srv_sample s0, s1, s2, s3, s4; /* s3, s4: before and after a --storm */
    double gen_cpu_events_s, connect_s, events_wall_s, storm_s;
    uint64_t lost, expected;
};

static void
print_report(const struct bench *b, const struct report *r)
{
    const struct opts *o = &b->o;
    double span_s =
        b->t_last_rx > b->t_first_inject ? (double)(b->t_last_rx - b->t_first_inject) / 1e9 : 0;
    double inj_s = b->injected > 1 ? (double)(b->t_last_inject - b->t_first_inject) / 1e9 : 0;
    double dps = span_s > 0 ? (double)b->deliveries / span_s : 0;
    double cpu_ev = r->s2.cpu_s - r->s1.cpu_s;
    double per_cpu = cpu_ev > 0 ? (double)b->deliveries / cpu_ev : 0;
    unsigned connected = b->o.clients - b->failed;
    double rss_conn = connected ? (double)(r->s1.rss_kb - r->s0.rss_kb) * 1024.0 / connected : 0;
    double pss_conn = connected ? (double)(r->s1.pss_kb - r->s0.pss_kb) * 1024.0 / connected : 0;
    double gen_pct = r->events_wall_s > 0 ? 100.0 * r->gen_cpu_events_s / r->events_wall_s : 0;

    if (o->json) {
        printf("{\"clients\":%u,\"connected\":%u,\"connect_failures\":%u,"
               "\"connect_retries\":%" PRIu64 ",\"handshake_errors\":%" PRIu64 ","
               "\"connect_s\":%.3f,\"events\":%u,\"rate\":%u,\"injected\":%" PRIu64 ","
               "\"inject_s\":%.3f,\"deliveries\":%" PRIu64 ",\"expected\":%" PRIu64 ","
               "\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ","
               "\"foreign\":%" PRIu64 ",\"protocol_errors\":%" PRIu64 ",\"closed\":%u,"
               "\"close_code\":%d,\"pings\":%" PRIu64 ",\"publish_errors\":%" PRIu64 ","
               "\"deliveries_per_s\":%.0f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,"
               "\"lat_max_ms\":%.3f,\"srv_procs\":%d,\"srv_cpu_connect_s\":%.2f,"
               "\"srv_cpu_events_s\":%.2f,\"srv_master_cpu_events_s\":%.2f,"
               "\"deliveries_per_srv_cpu_s\":%.0f,"
               "\"srv_rss_kb\":[%ld,%ld,%ld],\"srv_pss_kb\":[%ld,%ld,%ld],"
               "\"rss_per_conn_b\":%.0f,\"pss_per_conn_b\":%.0f,"
               "\"gen_cpu_events_s\":%.2f,\"gen_cpu_pct\":%.0f,"
               "\"resumes\":%" PRIu64 ",\"resyncs\":%" PRIu64 ",\"replayed\":%" PRIu64 ","
               "\"replay_lat_p50_ms\":%.3f,\"replay_lat_p99_ms\":%.3f,"
               "\"storm_events\":%u,\"storm_s\":%.3f,\"srv_cpu_storm_s\":%.2f}\n",
               o->clients, connected, b->failed, b->retries, b->handshake_errors, r->connect_s,
               o->events, o->rate, b->injected, inj_s, b->deliveries, r->expected, r->lost, b->dups,
               b->ooo, b->foreign, b->proto_errors, b->closed, b->first_close_code, b->pings,
               b->pub.errors, dps, hist_pct_ms(b, 50), hist_pct_ms(b, 99),
               (double)b->lat.max_us / 1000.0, r->s2.procs, r->s1.cpu_s - r->s0.cpu_s, cpu_ev,
               r->s2.master_cpu_s - r->s1.master_cpu_s, per_cpu, r->s0.rss_kb, r->s1.rss_kb,
               r->s2.rss_kb, r->s0.pss_kb, r->s1.pss_kb, r->s2.pss_kb, rss_conn, pss_conn,
               r->gen_cpu_events_s, gen_pct, b->resumes, b->resyncs, b->replayed,
               hist_ms(&b->lat_replay, 50), hist_ms(&b->lat_replay, 99), o->storm, r->storm_s,
               r->s4.cpu_s - r->s3.cpu_s);
        return;
    }
    printf("clients        %u connected of %u in %.2f s (%" PRIu64 " retries, %" PRIu64
           " handshake errors), %u closed during the run%s\n",
           connected, o->clients, r->connect_s, b->retries, b->handshake_errors, b->closed,
           b->closed ? " (close code shown below)" : "");
    if (b->closed)
        printf("close code     %d\n", b->first_close_code);
    printf("events         %" PRIu64 " injected in %.2f s (asked %u at %u/s)\n", b->injected, inj_s,
           o->events, o->rate);
    printf("deliveries     %" PRIu64 " of %" PRIu64 " expected, %.0f/s\n", b->deliveries,
           r->expected, dps);
    printf("errors         lost %" PRIu64 ", duplicated %" PRIu64 ", out of order %" PRIu64
           ", foreign %" PRIu64 ", protocol %" PRIu64 ", publish %" PRIu64 "\n",
           r->lost, b->dups, b->ooo, b->foreign, b->proto_errors, b->pub.errors);
    printf("latency        p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", hist_pct_ms(b, 50),
           hist_pct_ms(b, 99), (double)b->lat.max_us / 1000.0);
    printf("server cpu     %.2f s connecting, %.2f s for the events (%.2f s master;"
           " %.0f deliveries/cpu-s), %d processes\n",
           r->s1.cpu_s - r->s0.cpu_s, cpu_ev, r->s2.master_cpu_s - r->s1.master_cpu_s, per_cpu,
           r->s2.procs);
    printf("server rss     %ld KB before, %ld KB connected, %ld KB after (%.0f B/connection)\n",
           r->s0.rss_kb, r->s1.rss_kb, r->s2.rss_kb, rss_conn);
    printf("server pss     %ld KB before, %ld KB connected, %ld KB after (%.0f B/connection)\n",
           r->s0.pss_kb, r->s1.pss_kb, r->s2.pss_kb, pss_conn);
    printf("wsbench cpu    %.2f s during the events (%.0f %% of one core), %" PRIu64
           " pings answered\n",
           r->gen_cpu_events_s, gen_pct, b->pings);
    if (o->resume != NULL) {
        printf("resume         %" PRIu64 " resumes, %" PRIu64 " resyncs, %" PRIu64
               " replayed deliveries (latency p50 %.3f ms, p99 %.3f ms); the latency above is"
               " the live ones'\n",
               b->resumes, b->resyncs, b->replayed, hist_ms(&b->lat_replay, 50),
               hist_ms(&b->lat_replay, 99));
        if (o->storm > 0)
            printf("storm          %u clients resumed %u events behind at once: all live in %.3f s"
                   " (server cpu %.2f s)\n",
                   connected, o->storm, r->storm_s, r->s4.cpu_s - r->s3.cpu_s);
    }
}

static void
progress(const struct bench *b, const char *fmt, ...)
{
    va_list ap;
    if (b->o.quiet)
        return;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    struct report r = {0};
    uint64_t t0;

    parse_opts(&b->o, argc, argv);
    /* A write to a connection the server has closed fails with EPIPE and is
     * counted as a close (conn_flush); SIGPIPE would end the whole run. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("wsbench: signal(SIGPIPE)");
        return 2;
    }
    raise_nofile(b->o.clients + 64);
    parse_url(b, b->o.url);
    uint64_t resume_seq = 0;
    if (b->o.resume != NULL) {
        const char *colon = strrchr(b->o.resume, ':');
        size_t elen = colon != NULL ? (size_t)(colon - b->o.resume) : 0;
        if (colon == NULL || elen == 0 || elen >= sizeof b->epoch)
            die("--resume must be EPOCH:SEQ");
        memcpy(b->epoch, b->o.resume, elen);
        b->epoch[elen] = '\0';
        resume_seq = strtoull(colon + 1, NULL, 10);
    }
    if (getrandom(&b->rng, sizeof b->rng, 0) != sizeof b->rng || b->rng == 0)
        b->rng = now_ns() | 1;
    if ((b->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die_errno("epoll_create1");
    b->rbuf = xmalloc(RBUF_BYTES);
    b->conns = calloc(b->o.clients, sizeof *b->conns);
    b->retry = calloc(b->o.clients, sizeof *b->retry);
    if (b->conns == NULL || b->retry == NULL)
        die("out of memory");
    size_t words = ((size_t)b->o.events + b->o.storm + 63) / 64;
    for (unsigned i = 0; i < b->o.clients; i++) {
        b->conns[i].fd = -1;
        b->conns[i].last_seq = resume_seq;
        b->conns[i].max_idx = -1;
        b->conns[i].seen = calloc(words ? words : 1, sizeof(uint64_t));
        if (b->conns[i].seen == NULL)
            die("out of memory");
    }
    b->pub.fd = -1;
    if (b->o.inject != NULL && strncmp(b->o.inject, "dir:", 4) == 0) {
        b->dir = b->o.inject + 4;
        if ((b->dirfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            die("%s: %s", b->dir, strerror(errno));
    } else if (b->o.inject != NULL) {
        pub_connect(b, b->o.inject + 5);
    }

    /* 1. connect everyone */
    srv_sample(b->o.server_pid, &r.s0);
    t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(b->o.connect_timeout_s * 1e9);
    while (b->open + b->failed + b->closed < b->o.clients && now_ns() < deadline) {
        start_connections(b);
        loop_once(b, 10);
    }
    r.connect_s = (double)(now_ns() - t0) / 1e9;
    /* Clients still in progress at the timeout count as failed. */
    for (unsigned i = 0; i < b->o.clients; i++) {
        struct conn *c = &b->conns[i];
        if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE || c->state == CONN_IDLE)
            conn_drop(b, c, CONN_FAILED);
    }
    progress(b, "%u of %u clients connected in %.2f s", b->open, b->o.clients, r.connect_s);
    run_for(b, b->o.settle_s);
    srv_sample(b->o.server_pid, &r.s1);

    /* 2. inject, then drain */
    double cpu0 = self_cpu_s();
    t0 = now_ns();
    if (b->o.events == 0) {
        run_for(b, b->o.idle_s);
    } else {
        for (unsigned i = 0; i < b->o.clients; i++)
            b->conns[i].counted = b->conns[i].state == CONN_OPEN;
        r.expected = (uint64_t)b->open * b->o.events;
        uint64_t period = 1000000000ull / b->o.rate;
        struct itimerspec its = {
            .it_interval = {.tv_sec = (time_t)(period / 1000000000u),
                            .tv_nsec = (long)(period % 1000000000u)},
            .it_value = {.tv_nsec = 1},
        };
        if ((b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
            timerfd_settime(b->tfd, 0, &its, NULL) < 0)
            die_errno("timerfd");
        ep_set(b, b->tfd, EPOLLIN, EV_TIMER, EPOLL_CTL_ADD);
        progress(b, "injecting %u events at %u/s", b->o.events, b->o.rate);
        double churn_acc = 0;
        uint64_t next_churn = now_ns() + CHURN_TICK_NS;
        while (b->injected < b->o.events) {
            loop_once(b, 20);
            /* Every tick that is due, also when a loaded machine ran the loop late. */
            for (uint64_t t = now_ns(); b->o.churn_pct > 0 && t >= next_churn;
                 next_churn += CHURN_TICK_NS)
                churn_tick(b, &churn_acc);
        }
        close(b->tfd);
        uint64_t drain_until = now_ns() + (uint64_t)(b->o.drain_max_s * 1e9);
        b->last_progress = now_ns();
        while (b->distinct < r.expected &&
               now_ns() - b->last_progress < (uint64_t)(b->o.drain_s * 1e9) &&
               now_ns() < drain_until)
            loop_once(b, 50);
        /* Wait for the publisher's responses (errors are counted). */
        uint64_t pub_deadline = now_ns() + 2000000000ull;
        while (b->pub.fd >= 0 && b->pub.responses < b->injected && now_ns() < pub_deadline)
            loop_once(b, 50);
        if (b->o.storm > 0) {
            /* Everyone disconnects; N events; everyone resumes at once. */
            for (unsigned i = 0; i < b->o.clients; i++)
                if (b->conns[i].state == CONN_OPEN)
                    conn_drop(b, &b->conns[i], CONN_IDLE);
            progress(b, "storm: all disconnected, injecting %u events", b->o.storm);
            r.expected += (uint64_t)b->o.storm * (r.expected / (b->o.events ? b->o.events : 1));
            while (b->injected < (uint64_t)b->o.events + b->o.storm)
                inject_one(b);
            run_for(b, b->o.settle_s); /* personad has published them all */
            srv_sample(b->o.server_pid, &r.s3);
            uint64_t t_storm = now_ns();
            for (unsigned i = 0; i < b->o.clients; i++)
                if (b->conns[i].counted) {
                    b->conns[i].attempts = 0;
                    conn_start(b, i);
                }
            uint64_t until = t_storm + (uint64_t)(b->o.drain_max_s * 1e9);
            while (!all_caught_up(b) && now_ns() < until)
                loop_once(b, 20);
            r.storm_s = (double)(now_ns() - t_storm) / 1e9;
            srv_sample(b->o.server_pid, &r.s4);
        }
        uint64_t total = (uint64_t)b->o.events + b->o.storm;
        for (unsigned i = 0; i < b->o.clients; i++)
            if (b->conns[i].counted)
                r.lost += total - b->conns[i].received;
    }
    r.events_wall_s = (double)(now_ns() - t0) / 1e9;
    r.gen_cpu_events_s = self_cpu_s() - cpu0;
    srv_sample(b->o.server_pid, &r.s2);
    print_report(b, &r);
    fflush(stdout);
    /* Connections close with the process. */
    return b->failed || b->closed || r.lost || b->dups || b->ooo || b->pub.errors || b->resyncs ? 3
                                                                                                : 0;
}
