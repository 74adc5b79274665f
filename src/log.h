/*
 * log - leveled logging to stderr, one line per message: "personad[PID]: LEVEL: text".
 *
 * Used by every process (master and workers).  log_warn appends strerror(errno);
 * log_warnx does not.  fatal* log and exit(1): only for start-up errors and master
 * invariants.  panic logs and aborts: impossible states.  Never call these from a
 * signal handler.
 *
 * The text is escaped after formatting (log_escape), so nothing a file name, a
 * request target or a library message carries can end a line early or reach a
 * terminal as a control sequence; log.c adds the one newline.
 */
#ifndef PERSONAD_LOG_H
#define PERSONAD_LOG_H

#include <stdarg.h>
#include <stddef.h>

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

/* log_escape - copy the len bytes at in to out as text safe on one log line:
 * tab, newline and carriage return become \t \n \r; every other byte below
 * 0x20, DEL, the C1 control characters U+0080-U+009F (UTF-8 C2 80..C2 9F) and
 * every byte that is not part of a valid UTF-8 sequence become \xHH (lower-case
 * hex, one per byte).  Valid UTF-8 from U+00A0 up is copied unchanged;
 * backslashes are not escaped.  Writes at most out_size - 1 bytes and a NUL,
 * never part of an escape or of a character (the rest is cut).  Returns the
 * bytes written before the NUL (0 if out_size is 0). */
size_t log_escape(char *out, size_t out_size, const char *in, size_t len);

#endif
