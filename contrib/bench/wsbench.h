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
void hist_add(struct bench *b, uint64_t us);
double hist_pct_ms(const struct bench *b, double pct);

/* wsclient.c */
void ep_set(struct bench *b, int fd, uint32_t events, uint64_t tag, int op);
void conn_drop(struct bench *b, struct conn *c, enum conn_state to);
void conn_event(struct bench *b, struct conn *c, uint32_t events);
/* start_connections - start clients until --inflight handshakes are under way. */
void start_connections(struct bench *b);
/* header_value - copy header name's value from CRLF-separated hdrs; 0 or -1. */
int header_value(const char *hdrs, const char *name, char *out, size_t outsz);

#endif
