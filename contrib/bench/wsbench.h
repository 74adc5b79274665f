/*
 * wsbench.h - shared state of the wsbench load generator (contrib/bench).
 *
 * wsbench.c: options, injection, the loop and the report.  wsclient.c: the
 * WebSocket clients (connect, upgrade, frames, delivery bookkeeping).
 * benchstat.c: helpers, /proc sampling of the server, the latency histogram.
 * One thread: nothing here is locked.
 */
#ifndef WSBENCH_H
#define WSBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

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

struct hist {
    uint64_t b[HIST_BUCKETS];
    uint64_t n, max_us;
};

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
    uint8_t paused;     /* not reading: EPOLLIN off (wscampaign's stuck and paused clients) */
    uint8_t close_sent; /* this client sent a close frame: the server's is the answer */
    uint16_t srv_code;  /* code of the server's close frame, 1005 without one; 0 none */
    uint32_t read_max;  /* bytes per read(), 0 = the whole shared buffer */
    uint32_t rcvbuf;    /* SO_RCVBUF set before connecting, 0 = the kernel's */
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
    uint64_t last_seq; /* --resume: the last "seq" received: where a reconnect resumes */
    uint64_t t_open;   /* --resume: when the upgrade was sent (ns): older events are replayed */
};

struct srv_sample {
    double cpu_s;        /* utime + stime of the master and its children, seconds */
    double master_cpu_s; /* the master's share of cpu_s */
    long rss_kb;         /* sum of VmRSS */
    long pss_kb;         /* sum of Pss (smaps_rollup): shared pages counted once */
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
    const char *resume; /* EPOCH:SEQ: connect to ?since=SEQ&epoch=EPOCH, resume from the last seq */
    double churn_pct;   /* --resume: open clients cut and resumed per second, percent */
    unsigned storm;     /* --resume: after the run, all disconnect, N events, all resume at once */
    double connect_timeout_s, settle_s, drain_s, drain_max_s, idle_s;
    const char *url, *inject;
    pid_t server_pid;
    int json, quiet;
};

struct bench;

/* Hooks for a driver that keeps its own per-session books (wscampaign).  NULL in
 * wsbench, whose books are the fields of struct conn and struct bench. */
struct conn_ops {
    /* the 101 was verified: the WebSocket is open */
    void (*opened)(struct bench *b, struct conn *c, uint64_t now);
    /* one complete text message */
    void (*text)(struct bench *b, struct conn *c, const unsigned char *p, size_t len, uint64_t now);
    /* an open connection ended: code of the server's close frame, 1005 for one
     * without a code, 1006 for EOF, a reset or an error, 1002 for a framing
     * violation by the server */
    void (*ended)(struct bench *b, struct conn *c, int code, uint64_t now);
    /* connecting or the handshake failed (not retried by wsclient) */
    void (*failed)(struct bench *b, struct conn *c);
    /* a paused connection's peer closed or reset it (EPOLLRDHUP, EPOLLHUP) */
    void (*peer_gone)(struct bench *b, struct conn *c);
};

struct bench {
    struct opts o;
    const struct conn_ops *ops; /* NULL: wsbench's own books */
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
    struct hist lat;
    uint64_t last_progress; /* time of the last first-time delivery */
    /* --resume */
    char epoch[40];
    struct hist lat_replay; /* deliveries of events injected before their connection opened */
    uint64_t resumes, resyncs, replayed;
};

/* benchstat.c */
extern const char *progname;
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void die_errno(const char *what) __attribute__((noreturn));
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
uint64_t now_ns(void); /* CLOCK_MONOTONIC, ns */
uint64_t rng_next(struct bench *b);
double self_cpu_s(void); /* this process's user + system time */
/* srv_sample - sum CPU time and memory over the process pid and its children. */
void srv_sample(pid_t pid, struct srv_sample *s);
/* raise_nofile - raise RLIMIT_NOFILE to need (or the hard limit), or die. */
void raise_nofile(unsigned need);
/* parse_url - resolve ws://HOST:PORT/PATH into b->dst, b->host_hdr, b->path, b->req_head. */
void parse_url(struct bench *b, const char *url);
/* proc_status_kb - a "Key:   N kB" field of /proc/PID/status ("VmRSS:"), 0 if gone. */
long proc_status_kb(pid_t pid, const char *key);
void hist_record(struct hist *h, uint64_t us);
void hist_merge(struct hist *dst, const struct hist *src);
double hist_ms(const struct hist *h, double pct); /* pct-th percentile, ms */
void hist_add(struct bench *b, uint64_t us);      /* into b->lat */
double hist_pct_ms(const struct bench *b, double pct);

/* wsclient.c */
void ep_set(struct bench *b, int fd, uint32_t events, uint64_t tag, int op);
void conn_drop(struct bench *b, struct conn *c, enum conn_state to);
void conn_event(struct bench *b, struct conn *c, uint32_t events);
/* start_connections - start clients until --inflight handshakes are under way. */
void start_connections(struct bench *b);
/* conn_start - begin connecting client idx (non-blocking). */
void conn_start(struct bench *b, unsigned idx);
/* conn_send_close - send a masked close frame with code; the connection ends
 * when the server's close frame (or EOF) arrives. */
void conn_send_close(struct bench *b, struct conn *c, unsigned code);
/* conn_set_paused - stop (1) or resume (0) reading an open connection. */
void conn_set_paused(struct bench *b, struct conn *c, int paused);
/* header_value - copy header name's value from CRLF-separated hdrs; 0 or -1. */
int header_value(const char *hdrs, const char *name, char *out, size_t outsz);

#endif
