/*
 * log - leveled logging to stderr, one line per message: "personad[PID]: LEVEL: text".
 *
 * Used by every process (master and workers).  log_warn appends strerror(errno);
 * log_warnx does not.  fatal* log and exit(1): only for start-up errors and master
 * invariants.  panic logs and aborts: impossible states.  Never call these from a
 * signal handler.
 */
#ifndef PERSONAD_LOG_H
#define PERSONAD_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN };

void log_set_level(enum log_level level);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
