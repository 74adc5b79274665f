/*
 * notify - tell a supervisor how the daemon is doing, without libsystemd.
 *
 * systemd's readiness protocol (sd_notify(3)): one datagram of "KEY=VALUE\n"
 * lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or a Linux
 * abstract name when it starts with '@').  READY=1, RELOADING=1 with
 * MONOTONIC_USEC=, STOPPING=1, STATUS= and WATCHDOG=1; with $WATCHDOG_USEC set
 * (and $WATCHDOG_PID unset or ours) the caller pings at half the period.
 *
 * And the fd convention s6's notification-fd (and others) use: --ready-fd=N
 * gets one newline when the daemon is ready, then it is closed.
 *
 * notify_init reads and unsets the variables, so no child ever talks to the
 * supervisor itself.  Nothing here blocks: a send that fails (no listener, a
 * full queue) is logged once per run of failures and otherwise ignored.
 */
#ifndef PERSONAD_NOTIFY_H
#define PERSONAD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct notify {
    struct sockaddr_un addr; /* $NOTIFY_SOCKET */
    socklen_t addr_len;      /* 0: no socket, nothing is sent */
    int64_t watchdog_ms;     /* $WATCHDOG_USEC / 2 in ms (at least 1); 0: no watchdog */
    int ready_fd;            /* --ready-fd, -1 when none or already used */
    int failing;             /* the last send failed (and was logged) */
};

/* notify_init - read (and unset) $NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID;
 * ready_fd is --ready-fd (0: none).  A malformed variable is warned about and
 * ignored.  Returns 0, or -1 with msg set when ready_fd is not an open
 * descriptor (a start-up error). */
int notify_init(struct notify *n, int ready_fd, char *msg, size_t msg_size);

/* notify_active - 1 when there is a $NOTIFY_SOCKET to send to. */
int notify_active(const struct notify *n);

/* notify_send - one datagram holding text (lines without the final newline). */
void notify_send(struct notify *n, const char *text);

/* notify_ready - READY=1 (with status, a STATUS= text, when not NULL), and the
 * newline on --ready-fd, which is then closed. */
void notify_ready(struct notify *n, const char *status);

/* notify_reloading - RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC now>. */
void notify_reloading(struct notify *n);

/* notify_child - in a forked child: let go of what belongs to the master (the
 * --ready-fd descriptor).  No I/O. */
void notify_child(struct notify *n);

#endif
