/*
 * log - see log.h.  Writes each message with one write(2) so lines from the
 * master and the workers do not interleave on a shared stderr.  The message is
 * formatted first and escaped afterwards, in one place, so no caller can
 * forget to escape what it got from a file, a client or a library.
 *
 * syslog: one datagram per message on a connected AF_UNIX socket, in the
 * format syslog(3) sends ("<PRI>Mmm dd hh:mm:ss personad[PID]: text"), written
 * here rather than by syslog(3) for two reasons: a send never blocks (glibc's
 * does while the log daemon is slow, which would stall a worker and all its
 * clients; a line that does not fit the socket's queue is dropped instead),
 * and the socket's path can be pointed at a test's own socket.
 */
#include "build_config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

/* The formatted message, before escaping (longer messages are cut). */
#define LOG_TEXT_BYTES 1024
/* One escaped line with its prefix and newline.  Escaping may grow the text
 * fourfold; up to PIPE_BUF (4096 on Linux) one write to a pipe is atomic. */
#define LOG_LINE_BYTES 4096

/* The only mutable state: the threshold (set at start-up and at each reload) and
 * the syslog socket (-1: lines go to stderr) with its path. */
static enum log_level log_threshold = LOG_LEVEL_INFO;
static int log_syslog_fd = -1;
static struct sockaddr_un log_syslog_addr;

int
log_use_syslog(char *msg, size_t msg_size)
{
    const char *path = getenv(LOG_SYSLOG_PATH_ENV);
    if (path == NULL || path[0] == '\0')
        path = LOG_SYSLOG_PATH;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(msg, msg_size, "syslog socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, msg_size, "socket(AF_UNIX, SOCK_DGRAM): %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(msg, msg_size, "cannot connect to the syslog socket %s: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    log_syslog_addr = sa;
    log_syslog_fd = fd;
    return 0;
}

/* One datagram; after the log daemon restarted (the socket refused), connect
 * again once.  A full queue drops the line; any other failure goes to stderr. */
static void
syslog_send(const char *buf, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (send(log_syslog_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return;
        if (errno != ECONNREFUSED && errno != ENOTCONN && errno != ECONNRESET)
            break;
        if (connect(log_syslog_fd, (const struct sockaddr *)&log_syslog_addr,
                    sizeof(log_syslog_addr)) != 0)
            break;
    }
    /* Nobody listens: the line (after its syslog header) goes to stderr. */
    const char *text = memchr(buf, '>', len);
    text = text != NULL ? text + 1 : buf;
    char line[LOG_LINE_BYTES + 2];
    size_t n = len - (size_t)(text - buf);
    if (n > LOG_LINE_BYTES)
        n = LOG_LINE_BYTES;
    memcpy(line, text, n);
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void
log_set_level(enum log_level level)
{
    log_threshold = level;
}

int
log_enabled(enum log_level level)
{
    return level >= log_threshold;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if there is
 * none: no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t
utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf; /* what the second byte may be */
    size_t len;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        if (p[0] == 0xe0)
            lo = 0xa0;
        else if (p[0] == 0xed)
            hi = 0x9f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        if (p[0] == 0xf0)
            lo = 0x90;
        else if (p[0] == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* Append \xHH for byte b at tok + *tn. */
static void
hex_escape(char *tok, size_t *tn, unsigned char b)
{
    static const char hex[] = "0123456789abcdef";
    tok[(*tn)++] = '\\';
    tok[(*tn)++] = 'x';
    tok[(*tn)++] = hex[b >> 4];
    tok[(*tn)++] = hex[b & 0xf];
}

size_t
log_escape(char *out, size_t out_size, const char *in, size_t len)
{
    if (out_size == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char tok[8]; /* one character as it is written: at most two \xHH */
        size_t tn = 0, used = 1;
        unsigned char b = p[i];
        if (b >= 0x20 && b < 0x7f) {
            tok[tn++] = (char)b;
        } else if (b == '\n' || b == '\t' || b == '\r') {
            tok[tn++] = '\\';
            tok[tn++] = b == '\n' ? 'n' : b == '\t' ? 't' : 'r';
        } else if (b < 0x80) {
            hex_escape(tok, &tn, b); /* C0 controls and DEL */
        } else if ((used = utf8_seq_len(p + i, len - i)) == 0) {
            used = 1;
            hex_escape(tok, &tn, b); /* not UTF-8: this byte alone */
        } else if (used == 2 && b == 0xc2 && p[i + 1] < 0xa0) {
            hex_escape(tok, &tn, b); /* a C1 control, U+0080-U+009F */
            hex_escape(tok, &tn, p[i + 1]);
        } else {
            memcpy(tok, p + i, used);
            tn = used;
        }
        if (tn > out_size - 1 - o)
            break; /* cut between characters, never inside one */
        memcpy(out + o, tok, tn);
        o += tn;
        i += used;
    }
    out[o] = '\0';
    return o;
}

#define LOG_REDACT_KEY "access_token="
#define LOG_REDACTED "REDACTED"

static int
token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("-._~+/=%", c) != NULL;
}

size_t
log_redact(char *text, size_t len, size_t size)
{
    const size_t klen = sizeof(LOG_REDACT_KEY) - 1, rlen = sizeof(LOG_REDACTED) - 1;
    if (size == 0 || len >= size)
        return len; /* not a text in its buffer: nothing is touched */
    for (size_t i = 0; i + klen <= len; i++) {
        if (strncasecmp(text + i, LOG_REDACT_KEY, klen) != 0)
            continue;
        size_t v = i + klen, e = v;
        while (e < len && text[e] != '\0' && token_char((unsigned char)text[e]))
            e++;
        if (e == v) {
            i = v - 1;
            continue;
        }
        /* text[v..e) becomes REDACTED, the tail follows it; cut to size - 1. */
        size_t room = size - 1, r = rlen, tail = len - e;
        if (v + r > room)
            r = room - v;
        if (v + r + tail > room)
            tail = room - v - r;
        memmove(text + v + r, text + e, tail);
        memcpy(text + v, LOG_REDACTED, r);
        len = v + r + tail;
        text[len] = '\0';
        i = v + r - 1;
    }
    return len;
}

__attribute__((format(printf, 5, 0))) static void
log_emit(int prio, const char *level, int with_errno, int saved_errno, const char *fmt, va_list ap)
{
    char text[LOG_TEXT_BYTES];
    size_t tlen = 0;
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    if (n > 0)
        tlen = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    if (with_errno && tlen < sizeof(text) - 1) {
        n = snprintf(text + tlen, sizeof(text) - tlen, ": %s", strerror(saved_errno));
        if (n > 0)
            tlen += (size_t)n < sizeof(text) - tlen ? (size_t)n : sizeof(text) - tlen - 1;
    }
    tlen = log_redact(text, tlen, sizeof(text));
    char line[LOG_LINE_BYTES];
    if (log_syslog_fd >= 0) {
        /* RFC 3164 as syslog(3) writes it; the level is in the priority. */
        char stamp[32] = "";
        struct timespec now;
        struct tm tm;
        if (clock_gettime(CLOCK_REALTIME, &now) != 0 || localtime_r(&now.tv_sec, &tm) == NULL || strftime(stamp, sizeof(stamp), "%b %e %T", &tm) == 0)
            stamp[0] = '\0';
        n = snprintf(line, sizeof(line), "<%d>%s personad[%ld]: ", LOG_DAEMON | prio, stamp,
                     (long)getpid());
        if (n < 0 || (size_t)n >= sizeof(line))
            return;
        size_t len = (size_t)n;
        len += log_escape(line + len, sizeof(line) - len, text, tlen);
        syslog_send(line, len);
        return;
    }
    n = snprintf(line, sizeof(line), "personad[%ld]: %s: ", (long)getpid(), level);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    size_t len = (size_t)n;
    len += log_escape(line + len, sizeof(line) - len, text, tlen);
    line[len++] = '\n'; /* where log_escape put its NUL: there is room */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}

#define LOG_BODY(lvl_enum, prio, lvl_name, with_errno)                                             \
    do {                                                                                           \
        int saved_errno = errno;                                                                   \
        if ((lvl_enum) < log_threshold)                                                            \
            return;                                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_emit(prio, lvl_name, with_errno, saved_errno, fmt, ap);                                \
        va_end(ap);                                                                                \
        errno = saved_errno;                                                                       \
    } while (0)

void
log_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_DEBUG, LOG_DEBUG, "debug", 0);
}

void
log_info(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_INFO, LOG_INFO, "info", 0);
}

void
log_warn(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_WARN, LOG_WARNING, "warning", 1);
}

void
log_warnx(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_WARN, LOG_WARNING, "warning", 0);
}

void
log_error(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_ERROR, LOG_ERR, "error", 0);
}

void
fatal(const char *fmt, ...)
{
    int saved_errno = errno;
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal", 1, saved_errno, fmt, ap);
    va_end(ap);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal", 0, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void
panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_ALERT, "panic", 0, 0, fmt, ap);
    va_end(ap);
    abort();
}

/* --- rate limit ------------------------------------------------------------- */

static const char *
level_name(enum log_level level, int *prio)
{
    switch (level) {
    case LOG_LEVEL_DEBUG:
        *prio = LOG_DEBUG;
        return "debug";
    case LOG_LEVEL_INFO:
        *prio = LOG_INFO;
        return "info";
    case LOG_LEVEL_WARN:
        break;
    case LOG_LEVEL_ERROR:
        *prio = LOG_ERR;
        return "error";
    }
    *prio = LOG_WARNING;
    return "warning";
}

__attribute__((format(printf, 2, 3))) static void
log_at(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    int saved_errno = errno;
    va_list ap;
    va_start(ap, fmt);
    int prio;
    const char *name = level_name(level, &prio);
    log_emit(prio, name, 0, 0, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

void
log_limit_init(struct log_limit *l, const char *what, enum log_level level, unsigned per_second)
{
    *l = (struct log_limit){.what = what, .level = level, .per_second = per_second};
}

void
log_limit_flush(struct log_limit *l, int64_t now_ms)
{
    int64_t second = now_ms / 1000;
    if (second <= l->second)
        return;
    if (l->dropped > 0)
        log_at(l->level, "%s: %u more message(s) suppressed", l->what, l->dropped);
    l->second = second;
    l->count = l->dropped = 0;
}

int
log_limit_allow(struct log_limit *l, int64_t now_ms)
{
    log_limit_flush(l, now_ms);
    if (l->count < l->per_second) {
        l->count++;
        return 1;
    }
    if (l->dropped < UINT_MAX)
        l->dropped++;
    return 0;
}

int64_t
log_limit_due_ms(const struct log_limit *l)
{
    if (l->dropped == 0 || l->second >= INT64_MAX / 1000 - 1)
        return INT64_MAX; /* nothing owed, or counting past a final flush */
    return (l->second + 1) * 1000;
}
