/*
 * benchstat - helpers of wsbench and wscampaign: errors, memory, clocks, the
 * descriptor limit and the target URL, the server's CPU and memory from /proc,
 * and the latency histogram.  See wsbench.h.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "wsbench.h"

const char *progname = "wsbench";

void
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

void
die_errno(const char *what)
{
    die("%s: %s", what, strerror(errno));
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
rng_next(struct bench *b)
{
    /* xorshift64*: masks and keys only need to be unpredictable enough for a proxy. */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

double
self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

void
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

void
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

long
proc_status_kb(pid_t pid, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    return status_field_kb(path, key);
}

/* srv_sample - sum CPU time and memory over the process pid and its children. */
void
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
        if (p == pid)
            s->master_cpu_s = (double)(utime + stime) / (double)tck;
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

void
hist_record(struct hist *h, uint64_t us)
{
    h->b[hist_index(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

double
hist_ms(const struct hist *h, double pct)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * pct / 100.0 + 0.5);
    uint64_t acc = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)h->max_us / 1000.0;
}

void
hist_add(struct bench *b, uint64_t us)
{
    hist_record(&b->lat, us);
}

double
hist_pct_ms(const struct bench *b, double pct)
{
    return hist_ms(&b->lat, pct);
}
