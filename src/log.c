/*
 * log - see log.h.  Writes each message with one write(2) so lines from the
 * master and the workers do not interleave on a shared stderr.
 */
#include "build_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* The only mutable state: the threshold, set once at start-up and on reload. */
static enum log_level log_threshold = LOG_LEVEL_INFO;

void
log_set_level(enum log_level level)
{
    log_threshold = level;
}

__attribute__((format(printf, 4, 0))) static void
log_emit(const char *level, int with_errno, int saved_errno, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "personad[%ld]: %s: ", (long)getpid(), level);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    if (len < sizeof(line)) {
        n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        if (n > 0)
            len += (size_t)n;
    }
    if (with_errno && len < sizeof(line)) {
        n = snprintf(line + len, sizeof(line) - len, ": %s", strerror(saved_errno));
        if (n > 0)
            len += (size_t)n;
    }
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep room for the newline */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}

#define LOG_BODY(lvl_enum, lvl_name, with_errno)                                                   \
    do {                                                                                           \
        int saved_errno = errno;                                                                   \
        if ((lvl_enum) < log_threshold)                                                            \
            return;                                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_emit(lvl_name, with_errno, saved_errno, fmt, ap);                                      \
        va_end(ap);                                                                                \
        errno = saved_errno;                                                                       \
    } while (0)

void
log_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_DEBUG, "debug", 0);
}

void
log_info(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_INFO, "info", 0);
}

void
log_warn(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_WARN, "warning", 1);
}

void
log_warnx(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_WARN, "warning", 0);
}

void
log_error(const char *fmt, ...)
{
    LOG_BODY(LOG_LEVEL_WARN, "error", 0);
}

void
fatal(const char *fmt, ...)
{
    int saved_errno = errno;
    va_list ap;
    va_start(ap, fmt);
    log_emit("fatal", 1, saved_errno, fmt, ap);
    va_end(ap);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("fatal", 0, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void
panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("panic", 0, 0, fmt, ap);
    va_end(ap);
    abort();
}
