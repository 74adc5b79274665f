/*
 * sig - signal flags and a self-pipe that wakes the process's event loop.
 *
 * Handlers only save errno, set a flag and write one byte to the pipe; they never
 * log.  The loop polls sig_fd() and calls sig_take() for each signal it cares
 * about.  Each process (master, worker) calls sig_setup() once after fork.
 */
#ifndef PERSONAD_SIG_H
#define PERSONAD_SIG_H

/* sig_setup - install handlers for TERM, INT, HUP, USR1, CHLD; ignore PIPE; then
 * unblock those signals (see sig_hold).  Returns 0, or -1 with errno. */
int sig_setup(void);

/* sig_hold - block the handled signals (before fork: a signal sent to the new
 * child before its sig_setup stays pending instead of meeting the default
 * action, e.g. a SIGHUP forwarded on a reload).  sig_release unblocks them
 * (the parent, after fork; the child's sig_setup does it itself). */
void sig_hold(void);
void sig_release(void);

/* sig_fd - the read end of the self-pipe (readable after any handled signal). */
int sig_fd(void);

/* sig_drain - empty the self-pipe. */
void sig_drain(void);

/* sig_take - 1 if signo arrived since the last call (and clear it), else 0. */
int sig_take(int signo);

/* sig_reset_child - in a freshly forked child: default dispositions, close the
 * parent's pipe (the child calls sig_setup for its own). */
void sig_reset_child(void);

#endif
