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
 * Client frames: text (checked), ping (answered with a masked pong), close
 * (answered, then the client counts as disconnected), continuation (reassembled).
 * Only IPv4/IPv6 numeric loopback targets are meant; nothing here is hardened
 * against a hostile server beyond bounds checks.
 */
#define _GNU_SOURCE /* IP_BIND_ADDRESS_NO_PORT, timerfd, getrandom */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF_BYTES (256 * 1024)     /* shared read buffer */
#define CARRY_MAX_BYTES (64 * 1024) /* largest partial frame/handshake kept per client */
#define MAX_ATTEMPTS 3              /* connect attempts per client */
#define EV_TIMER UINT64_MAX         /* epoll tag of the injection timerfd */
#define EV_PUB (UINT64_MAX - 1)     /* epoll tag of the publisher connection */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NAME_PREFIX "b-"

/* Latency histogram in microseconds: exact below 1024 us, then 512 sub-buckets per
 * power of two (0.2 % resolution) up to 2^63. */
#define HIST_SUB 512
#define HIST_BUCKETS (1024 + 54 * HIST_SUB)

enum conn_state {
    CONN_IDLE,       /* not started, or waiting for a retry */
    CONN_CONNECTING, /* non-blocking connect in progress */
    CONN_HANDSHAKE,  /* upgrade request sent, waiting for 101 */
    CONN_OPEN,       /* WebSocket open */
    CONN_CLOSED,     /* was open, then closed by the server or the network */
    CONN_FAILED      /* never opened */
};

struct conn {
    int fd;
    uint8_t state;      /* enum conn_state */
    uint8_t attempts;   /* connect attempts so far */
    uint8_t msg_opcode; /* opcode of a fragmented message being reassembled, 0 none */
    uint8_t want_out;   /* EPOLLOUT registered */
    uint8_t counted;    /* open when the injection started: owes every event */
    char accept[32];    /* expected Sec-WebSocket-Accept, NUL-terminated */
    unsigned char *in;  /* owned: bytes of an incomplete frame or handshake */
    size_t in_len;
    unsigned char *out; /* owned: bytes not yet written */
    size_t out_len;
    unsigned char *msg; /* owned: fragmented message being reassembled */
    size_t msg_len;
    uint64_t *seen;    /* owned: bitmap of received event indices, events bits */
    int64_t max_idx;   /* highest index received, -1 if none */
    uint32_t received; /* distinct events received */
};

struct srv_sample {
    double cpu_s; /* utime + stime of the master and its children, seconds */
    long rss_kb;  /* sum of VmRSS */
    long pss_kb;  /* sum of Pss (smaps_rollup): shared pages counted once */
    int procs;
};

struct publisher {
    int fd;
    unsigned char *out; /* owned: request bytes not yet written */
    size_t out_len, out_cap;
    char in[16384]; /* response bytes not yet parsed */
    size_t in_len;
    uint64_t responses, errors;
    int last_status;
};

struct opts {
    unsigned clients, events, rate, inflight, source_addrs;
    double connect_timeout_s, settle_s, drain_s, drain_max_s, idle_s;
    const char *url, *inject;
    pid_t server_pid;
    int json, quiet;
};

struct bench {
    struct opts o;
    int ep;
    struct sockaddr_storage dst;
    socklen_t dst_len;
    char host_hdr[300], path[256];
    char *req_head; /* owned: upgrade request up to the key */
    struct conn *conns;
    unsigned next_start; /* next never-started client */
    unsigned *retry;     /* stack of clients to retry */
    unsigned n_retry;
    unsigned inflight, open, failed, closed;
    uint64_t conn_errors, handshake_errors, proto_errors, foreign, pings, retries;
    int first_close_code;
    unsigned char *rbuf;
    uint64_t rng;
    /* injection */
    int tfd;
    const char *dir;
    int dirfd;
    struct publisher pub;
    uint64_t injected;
    uint64_t t_first_inject, t_last_inject, t_last_rx;
    /* results */
    uint64_t deliveries, dups, ooo;
    uint64_t distinct; /* first-time deliveries */
    uint64_t hist[HIST_BUCKETS];
    uint64_t lat_max_us, lat_n;
    uint64_t last_progress; /* time of the last first-time delivery */
};

static const char *progname = "wsbench";

static void
die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void
die_errno(const char *what)
{
    die("%s: %s", what, strerror(errno));
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
rng_next(struct bench *b)
{
    /* xorshift64*: masks and keys only need to be unpredictable enough for a proxy. */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

static double
self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* ---- server sampling from /proc --------------------------------------------------- */

static long
status_field_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long v = 0;
    size_t klen = strlen(key);
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0) {
            v = strtol(line + klen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* srv_sample - sum CPU time and memory over the process pid and its children. */
static void
srv_sample(pid_t pid, struct srv_sample *s)
{
    long tck = sysconf(_SC_CLK_TCK);
    DIR *d;
    struct dirent *de;

    memset(s, 0, sizeof *s);
    if (pid <= 0 || (d = opendir("/proc")) == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[64], buf[1024];
        unsigned long utime, stime;
        int ppid, n;
        long p = strtol(de->d_name, NULL, 10);
        if (p <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", p);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        n = (int)fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')'); /* the command name may contain spaces */
        if (rp == NULL || sscanf(rp + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                                 &ppid, &utime, &stime) != 3)
            continue;
        if (p != pid && ppid != pid)
            continue;
        s->procs++;
        s->cpu_s += (double)(utime + stime) / (double)tck;
        snprintf(path, sizeof path, "/proc/%ld/status", p);
        s->rss_kb += status_field_kb(path, "VmRSS:");
        snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", p);
        s->pss_kb += status_field_kb(path, "Pss:");
    }
    closedir(d);
}

/* ---- latency histogram ------------------------------------------------------------ */

static unsigned
hist_index(uint64_t us)
{
    if (us < 1024)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 10 */
    unsigned shift = e - 9;
    return 1024 + (e - 10) * HIST_SUB + (unsigned)((us >> shift) - HIST_SUB);
}

static uint64_t
hist_value(unsigned i)
{
    if (i < 1024)
        return i;
    unsigned e = (i - 1024) / HIST_SUB + 10;
    uint64_t m = (i - 1024) % HIST_SUB + HIST_SUB;
    return m << (e - 9);
}

static double
hist_pct_ms(const struct bench *b, double pct)
{
    if (b->lat_n == 0)
        return 0;
    uint64_t want = (uint64_t)((double)b->lat_n * pct / 100.0 + 0.5);
    uint64_t acc = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        acc += b->hist[i];
        if (acc >= want)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)b->lat_max_us / 1000.0;
}

/* ---- client connections ----------------------------------------------------------- */

static void
ep_set(struct bench *b, int fd, uint32_t events, uint64_t tag, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(b->ep, op, fd, &ev) < 0)
        die_errno("epoll_ctl");
}

static void
conn_drop(struct bench *b, struct conn *c, enum conn_state to)
{
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE)
        b->inflight--;
    if (c->state == CONN_OPEN)
        b->open--;
    c->in_len = c->out_len = c->msg_len = 0;
    c->msg_opcode = 0;
    c->want_out = 0;
    c->state = (uint8_t)to;
    if (to == CONN_CLOSED)
        b->closed++;
    else if (to == CONN_FAILED)
        b->failed++;
}

/* conn_fail - a connect or handshake attempt failed: retry later or give up. */
static void
conn_fail(struct bench *b, struct conn *c, int retryable)
{
    conn_drop(b, c, CONN_IDLE);
    if (retryable && c->attempts < MAX_ATTEMPTS) {
        b->retry[b->n_retry++] = (unsigned)(c - b->conns);
        b->retries++;
    } else {
        c->state = CONN_FAILED;
        b->failed++;
    }
}

static void
conn_flush(struct bench *b, struct conn *c)
{
    while (c->out_len > 0) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            if (c->state == CONN_OPEN) {
                conn_drop(b, c, CONN_CLOSED);
            } else {
                b->conn_errors++;
                conn_fail(b, c, 1);
            }
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    int want = c->out_len > 0;
    if (want != c->want_out) {
        ep_set(b, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
        c->want_out = (uint8_t)want;
    }
}

static void
conn_send(struct bench *b, struct conn *c, const void *data, size_t len)
{
    c->out = xrealloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    conn_flush(b, c);
}

/* conn_send_control - send a masked control frame (payload <= 125 bytes). */
static void
conn_send_control(struct bench *b, struct conn *c, unsigned opcode, const unsigned char *p,
                  size_t len)
{
    unsigned char f[2 + 4 + 125];
    uint32_t mask = (uint32_t)rng_next(b);
    if (len > 125)
        len = 125;
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, &mask, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = p[i] ^ f[2 + (i & 3)];
    conn_send(b, c, f, 6 + len);
}

static void
make_key(struct bench *b, char key[25], char accept[32])
{
    uint8_t raw[16], digest[SHA1_DIGEST_SIZE];
    struct sha1_ctx sha;
    uint64_t r1 = rng_next(b), r2 = rng_next(b);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    base64_encode_raw(key, sizeof raw, raw);
    key[24] = '\0';
    sha1_init(&sha);
    sha1_update(&sha, 24, (const uint8_t *)key);
    sha1_update(&sha, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(accept, sizeof digest, digest);
    accept[28] = '\0';
}

static void
conn_start(struct bench *b, unsigned idx)
{
    struct conn *c = &b->conns[idx];
    int fd = socket(b->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        die_errno("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (b->o.source_addrs > 0 && b->dst.ss_family == AF_INET) {
        /* Spread over 127.0.0.2.. so that each source address has its own
         * ephemeral port range; the port is still chosen at connect(). */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + idx % b->o.source_addrs);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            die_errno("bind source address");
    }
    c->fd = fd;
    c->attempts++;
    c->state = CONN_CONNECTING;
    b->inflight++;
    ep_set(b, fd, EPOLLOUT, idx, EPOLL_CTL_ADD);
    c->want_out = 1;
    if (connect(fd, (struct sockaddr *)&b->dst, b->dst_len) < 0 && errno != EINPROGRESS) {
        b->conn_errors++;
        conn_fail(b, c, 1);
    }
}

static void
conn_connected(struct bench *b, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    char key[25], req[1024];
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        b->conn_errors++;
        conn_fail(b, c, 1);
        return;
    }
    make_key(b, key, c->accept);
    int n =
        snprintf(req, sizeof req, "%s%s\r\nSec-WebSocket-Version: 13\r\n\r\n", b->req_head, key);
    if (n < 0 || (size_t)n >= sizeof req)
        die("upgrade request too long");
    c->state = CONN_HANDSHAKE;
    conn_send(b, c, req, (size_t)n);
}

static int
header_value(const char *hdrs, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(hdrs, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nlen) == 0 && p[2 + nlen] == ':') {
            const char *v = p + 3 + nlen;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t k = strcspn(v, " \t\r\n");
            if (k >= outsz)
                return -1;
            memcpy(out, v, k);
            out[k] = '\0';
            return 0;
        }
    }
    return -1;
}

/* handshake - parse the response in buf; returns bytes consumed, 0 if incomplete,
 * or -1 if it is not a valid 101 for this client's key. */
static ssize_t
handshake(struct conn *c, unsigned char *buf, size_t len)
{
    char hdrs[4096], accept[64];
    unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len > sizeof hdrs ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 2;
    if (hlen >= sizeof hdrs)
        return -1;
    memcpy(hdrs, buf, hlen);
    hdrs[hlen] = '\0';
    if (strncmp(hdrs, "HTTP/1.1 101", 12) != 0)
        return -1;
    if (header_value(hdrs, "Sec-WebSocket-Accept", accept, sizeof accept) < 0 ||
        strcmp(accept, c->accept) != 0)
        return -1;
    return (ssize_t)(hlen + 2);
}

static void
on_event_message(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now)
{
    static const char key[] = "\"name\":\"" NAME_PREFIX;
    const unsigned char *k = memmem(p, len, key, sizeof key - 1);
    char num[48];
    unsigned long long idx, ns;
    if (k == NULL) {
        b->foreign++;
        return;
    }
    k += sizeof key - 1;
    size_t rest = len - (size_t)(k - p), n = 0;
    while (n < rest && n < sizeof num - 1 && k[n] != '"')
        n++;
    memcpy(num, k, n);
    num[n] = '\0';
    if (sscanf(num, "%llu-%llu", &idx, &ns) != 2 || idx >= b->o.events) {
        b->foreign++;
        return;
    }
    b->deliveries++;
    b->t_last_rx = now;
    uint64_t bit = 1ull << (idx & 63);
    if (c->seen[idx >> 6] & bit) {
        b->dups++;
        return;
    }
    c->seen[idx >> 6] |= bit;
    c->received++;
    b->distinct++;
    if ((int64_t)idx < c->max_idx)
        b->ooo++;
    else
        c->max_idx = (int64_t)idx;
    uint64_t us = now > ns ? (now - ns) / 1000 : 0;
    b->hist[hist_index(us)]++;
    b->lat_n++;
    if (us > b->lat_max_us)
        b->lat_max_us = us;
    b->last_progress = now;
}

static void
on_message(struct bench *b, struct conn *c, unsigned opcode, const unsigned char *p, size_t len,
           uint64_t now)
{
    if (opcode == 1)
        on_event_message(b, c, p, len, now);
    else
        b->foreign++; /* binary */
}

/* parse_frames - handle the complete frames in p[0..len); returns bytes consumed,
 * or -1 after closing the connection. */
static ssize_t
parse_frames(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now)
{
    size_t off = 0;
    while (len - off >= 2) {
        const unsigned char *f = p + off;
        unsigned fin = f[0] & 0x80, opcode = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hlen = 2;
        if (f[1] & 0x80 || (f[0] & 0x70)) { /* servers must not mask; no extensions */
            b->proto_errors++;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hlen = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | f[2 + i];
            hlen = 10;
        }
        if (plen > CARRY_MAX_BYTES) {
            b->proto_errors++;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
        if (len - off < hlen + plen)
            break;
        const unsigned char *pl = f + hlen;
        off += hlen + (size_t)plen;
        switch (opcode) {
        case 0x0: /* continuation */
            if (c->msg_opcode == 0) {
                b->proto_errors++;
                break;
            }
            c->msg = xrealloc(c->msg, c->msg_len + plen);
            memcpy(c->msg + c->msg_len, pl, plen);
            c->msg_len += plen;
            if (fin) {
                on_message(b, c, c->msg_opcode, c->msg, c->msg_len, now);
                c->msg_opcode = 0;
                c->msg_len = 0;
            }
            break;
        case 0x1:
        case 0x2:
            if (fin) {
                on_message(b, c, opcode, pl, plen, now);
            } else {
                c->msg_opcode = (uint8_t)opcode;
                c->msg = xrealloc(c->msg, plen);
                memcpy(c->msg, pl, plen);
                c->msg_len = plen;
            }
            break;
        case 0x8: /* close: echo the code, then count the client as closed */
            if (b->first_close_code == 0)
                b->first_close_code = plen >= 2 ? pl[0] << 8 | pl[1] : 1005;
            conn_send_control(b, c, 0x8, pl, plen >= 2 ? 2 : 0);
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        case 0x9: /* ping */
            b->pings++;
            conn_send_control(b, c, 0xA, pl, plen);
            if (c->state != CONN_OPEN)
                return -1;
            break;
        case 0xA: /* unsolicited pong */
            break;
        default:
            b->proto_errors++;
            conn_drop(b, c, CONN_CLOSED);
            return -1;
        }
    }
    return (ssize_t)off;
}

static void
conn_readable(struct bench *b, struct conn *c)
{
    unsigned char *buf = b->rbuf;
    size_t have = c->in_len;
    ssize_t n, used;

    memcpy(buf, c->in, have);
    c->in_len = 0;
    n = read(c->fd, buf + have, RBUF_BYTES - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->in_len = have; /* unchanged */
        return;
    }
    if (n <= 0) {
        if (c->state == CONN_HANDSHAKE) {
            b->handshake_errors++;
            conn_fail(b, c, 1);
        } else {
            conn_drop(b, c, CONN_CLOSED);
        }
        return;
    }
    have += (size_t)n;
    uint64_t now = now_ns();
    size_t off = 0;
    if (c->state == CONN_HANDSHAKE) {
        used = handshake(c, buf, have);
        if (used < 0) {
            b->handshake_errors++;
            conn_fail(b, c, 0);
            return;
        }
        if (used == 0) {
            c->in = xrealloc(c->in, have);
            memcpy(c->in, buf, have);
            c->in_len = have;
            return;
        }
        c->state = CONN_OPEN;
        b->inflight--;
        b->open++;
        off = (size_t)used;
    }
    used = parse_frames(b, c, buf + off, have - off, now);
    if (used < 0)
        return;
    off += (size_t)used;
    if (have > off) {
        c->in = xrealloc(c->in, have - off);
        memcpy(c->in, buf + off, have - off);
        c->in_len = have - off;
    }
}

static void
conn_event(struct bench *b, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            ep_set(b, c->fd, EPOLLIN, (uint64_t)(c - b->conns), EPOLL_CTL_MOD);
            c->want_out = 0;
            conn_connected(b, c);
        }
        return;
    }
    if ((events & EPOLLOUT) && c->fd >= 0)
        conn_flush(b, c);
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->fd >= 0)
        conn_readable(b, c);
}

static void
start_connections(struct bench *b)
{
    while (b->inflight < b->o.inflight) {
        if (b->n_retry > 0)
            conn_start(b, b->retry[--b->n_retry]);
        else if (b->next_start < b->o.clients)
            conn_start(b, b->next_start++);
        else
            break;
    }
}

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
    snprintf(name, sizeof name, NAME_PREFIX "%" PRIu64 "-%" PRIu64, idx, t);
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
        snprintf(final, sizeof final, NAME_PREFIX "%" PRIu64 ".json", idx);
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
raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die_errno("getrlimit");
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need) {
        rl.rlim_max = need; /* needs CAP_SYS_RESOURCE; fall back to the hard limit */
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return;
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
        die("RLIMIT_NOFILE is %lu, %u clients need %u", (unsigned long)rl.rlim_cur, need - 64,
            need);
}

static void
parse_url(struct bench *b, const char *url)
{
    char host[256], port[16] = "80";
    const char *h, *end, *slash;
    if (strncmp(url, "ws://", 5) != 0)
        die("the URL must start with ws://");
    h = url + 5;
    slash = strchr(h, '/');
    snprintf(b->path, sizeof b->path, "%s", slash ? slash : "/");
    end = slash ? slash : h + strlen(h);
    snprintf(b->host_hdr, sizeof b->host_hdr, "%.*s", (int)(end - h), h);
    if (*h == '[') { /* [::1]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL)
            die("bad IPv6 URL");
        snprintf(host, sizeof host, "%.*s", (int)(rb - h - 1), h + 1);
        if (rb[1] == ':')
            snprintf(port, sizeof port, "%.*s", (int)(end - rb - 2), rb + 2);
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        snprintf(host, sizeof host, "%.*s", (int)((colon ? colon : end) - h), h);
        if (colon)
            snprintf(port, sizeof port, "%.*s", (int)(end - colon - 1), colon + 1);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        die("%s: %s", host, gai_strerror(rc));
    memcpy(&b->dst, ai->ai_addr, ai->ai_addrlen);
    b->dst_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    size_t sz = strlen(b->path) + strlen(b->host_hdr) + 256;
    b->req_head = xmalloc(sz);
    snprintf(b->req_head, sz,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: ",
             b->path, b->host_hdr);
}

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
    enum { O_INFLIGHT = 256, O_CTIMEOUT, O_SETTLE, O_DRAIN, O_DRAIN_MAX, O_IDLE };
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
    if (o->inject != NULL && strncmp(o->inject, "dir:", 4) != 0 &&
        strncmp(o->inject, "post:", 5) != 0)
        die("--inject must be dir:DIR or post:URL");
}

struct report {
    struct srv_sample s0, s1, s2;
    double gen_cpu_events_s, connect_s, events_wall_s;
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
               "\"srv_cpu_events_s\":%.2f,\"deliveries_per_srv_cpu_s\":%.0f,"
               "\"srv_rss_kb\":[%ld,%ld,%ld],\"srv_pss_kb\":[%ld,%ld,%ld],"
               "\"rss_per_conn_b\":%.0f,\"pss_per_conn_b\":%.0f,"
               "\"gen_cpu_events_s\":%.2f,\"gen_cpu_pct\":%.0f}\n",
               o->clients, connected, b->failed, b->retries, b->handshake_errors, r->connect_s,
               o->events, o->rate, b->injected, inj_s, b->deliveries, r->expected, r->lost, b->dups,
               b->ooo, b->foreign, b->proto_errors, b->closed, b->first_close_code, b->pings,
               b->pub.errors, dps, hist_pct_ms(b, 50), hist_pct_ms(b, 99),
               (double)b->lat_max_us / 1000.0, r->s2.procs, r->s1.cpu_s - r->s0.cpu_s, cpu_ev,
               per_cpu, r->s0.rss_kb, r->s1.rss_kb, r->s2.rss_kb, r->s0.pss_kb, r->s1.pss_kb,
               r->s2.pss_kb, rss_conn, pss_conn, r->gen_cpu_events_s, gen_pct);
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
           hist_pct_ms(b, 99), (double)b->lat_max_us / 1000.0);
    printf("server cpu     %.2f s connecting, %.2f s for the events (%.0f deliveries/cpu-s),"
           " %d processes\n",
           r->s1.cpu_s - r->s0.cpu_s, cpu_ev, per_cpu, r->s2.procs);
    printf("server rss     %ld KB before, %ld KB connected, %ld KB after (%.0f B/connection)\n",
           r->s0.rss_kb, r->s1.rss_kb, r->s2.rss_kb, rss_conn);
    printf("server pss     %ld KB before, %ld KB connected, %ld KB after (%.0f B/connection)\n",
           r->s0.pss_kb, r->s1.pss_kb, r->s2.pss_kb, pss_conn);
    printf("wsbench cpu    %.2f s during the events (%.0f %% of one core), %" PRIu64
           " pings answered\n",
           r->gen_cpu_events_s, gen_pct, b->pings);
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
    raise_nofile(b->o.clients + 64);
    parse_url(b, b->o.url);
    if (getrandom(&b->rng, sizeof b->rng, 0) != sizeof b->rng || b->rng == 0)
        b->rng = now_ns() | 1;
    if ((b->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die_errno("epoll_create1");
    b->rbuf = xmalloc(RBUF_BYTES);
    b->conns = calloc(b->o.clients, sizeof *b->conns);
    b->retry = calloc(b->o.clients, sizeof *b->retry);
    if (b->conns == NULL || b->retry == NULL)
        die("out of memory");
    size_t words = ((size_t)b->o.events + 63) / 64;
    for (unsigned i = 0; i < b->o.clients; i++) {
        b->conns[i].fd = -1;
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
        while (b->injected < b->o.events)
            loop_once(b, 100);
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
        for (unsigned i = 0; i < b->o.clients; i++)
            if (b->conns[i].counted)
                r.lost += b->o.events - b->conns[i].received;
    }
    r.events_wall_s = (double)(now_ns() - t0) / 1e9;
    r.gen_cpu_events_s = self_cpu_s() - cpu0;
    srv_sample(b->o.server_pid, &r.s2);
    print_report(b, &r);
    fflush(stdout);
    /* Connections close with the process. */
    return b->failed || b->closed || r.lost || b->dups || b->ooo || b->pub.errors ? 3 : 0;
}
