/*
 * log - leveled logging to stderr, one line per message: "personad[PID]: LEVEL: text",
 * or to syslog (log_use_syslog: facility daemon, ident personad, the pid; the
 * level is the priority: debug, info, warning, err, crit for fatal, alert for panic).
 *
 * Used by every process (master and workers).  log_warn appends strerror(errno);
 * log_warnx does not.  Never call these from a signal handler.
 *
 * Which failure gets which:
 *   - log_warn/log_warnx (or log_error): anything recoverable, above all what one
 *     client, request, connection or file can cause, and resource shortages (out
 *     of memory, descriptors) at run time.  The one connection, request or file
 *     is dropped or kept at its last good state; the process goes on serving.
 *   - fatal/fatalx (exit 1): start-up errors before anyone is served (bad
 *     options, the port taken, shared memory that cannot be made) and the
 *     set-up of a new worker before its loop runs (its exit is a crash the
 *     master respawns).  Never for something a client or a file can cause.
 *   - panic (abort): impossible states only, a broken invariant of our own code
 *     that no input can reach (e.g. a checked event that no longer fits its ring
 *     slot); never for a run-time failure of a system call or an allocation.
 *
 * The text is escaped after formatting (log_escape), so nothing a file name, a
 * request target or a library message carries can end a line early or reach a
 * terminal as a control sequence; log.c adds the one newline.
 *
 * Messages a client can cause go through a struct log_limit owned by the caller
 * (a worker has one per source): a few lines a second, then one line saying how
 * many were suppressed.
 */
#ifndef PERSONAD_LOG_H
#define PERSONAD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* In the order of --log-level's words (config.h): debug, info, warn, error. */
enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* The log daemon's socket, and the environment variable that replaces it FOR THE
 * TEST SUITE ONLY (tests/integration/test_syslog.py binds its own datagram socket;
 * glibc's syslog(3) cannot be pointed anywhere but /dev/log). */
#define LOG_SYSLOG_PATH "/dev/log"
#define LOG_SYSLOG_PATH_ENV "PERSONAD_TEST_SYSLOG_SOCKET"

/* log_use_syslog - from now on, lines go to the syslog socket (inherited by the
 * processes forked later).  Returns 0, or -1 with the reason in msg (lines still
 * go to stderr). */
int log_use_syslog(char *msg, size_t msg_size);

void log_set_level(enum log_level level);
/* log_enabled - 1 if messages of level are written, else 0. */
int log_enabled(enum log_level level);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* log_escape - copy the len bytes at in to out as text safe on one log line:
 * tab, newline and carriage return become \t \n \r; every other byte below
 * 0x20, DEL, the C1 control characters U+0080-U+009F (UTF-8 C2 80..C2 9F) and
 * every byte that is not part of a valid UTF-8 sequence become \xHH (lower-case
 * hex, one per byte).  Valid UTF-8 from U+00A0 up is copied unchanged;
 * backslashes are not escaped.  Writes at most out_size - 1 bytes and a NUL,
 * never part of an escape or of a character (the rest is cut).  Returns the
 * bytes written before the NUL (0 if out_size is 0). */
size_t log_escape(char *out, size_t out_size, const char *in, size_t len);

/* log_redact - in the text (len bytes, in a buffer of size bytes) replace the
 * value of every "access_token=" (any case: the bearer-token query parameter,
 * RFC 6750 2.3) by REDACTED: the run of token characters after it (letters,
 * digits, -._~+/= and percent escapes).  Every line logged goes through it,
 * so no request target, however it reaches the log, shows a token.  A text
 * that would outgrow size is cut.  Returns the new length. */
size_t log_redact(char *text, size_t len, size_t size);

/* A rate limit for one source of log lines: at most per_second lines in each
 * second of the caller's clock; the lines over it are counted, and once that
 * second is over one "WHAT: N more message(s) suppressed" line reports them.
 * Plain state, owned and driven by its user (no timer of its own). */
struct log_limit {
    const char *what;     /* names the source in the summary line (static string) */
    enum log_level level; /* level of the summary line */
    unsigned per_second;  /* lines allowed per second */
    int64_t second;       /* the second being counted (ms / 1000) */
    unsigned count;       /* lines allowed in that second */
    unsigned dropped;     /* lines suppressed and not reported yet */
};

/* log_limit_init - per_second lines a second; the summary says what, at level. */
void log_limit_init(struct log_limit *l, const char *what, enum log_level level,
                    unsigned per_second);

/* log_limit_allow - may one more line be logged at now_ms?  Reports the lines
 * suppressed in an earlier second first (log_limit_flush).  Returns 1 (log it)
 * or 0 (suppressed: counted for the summary).  A now_ms older than the second
 * being counted counts in that second. */
int log_limit_allow(struct log_limit *l, int64_t now_ms);

/* log_limit_flush - once the second being counted is over at now_ms, log the
 * summary of its suppressed lines (if any) and start counting afresh. */
void log_limit_flush(struct log_limit *l, int64_t now_ms);

/* log_limit_due_ms - when a summary is owed (the end of the counted second),
 * or INT64_MAX when nothing was suppressed. */
int64_t log_limit_due_ms(const struct log_limit *l);

#endif
