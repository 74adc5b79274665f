/*
 * sig - see sig.h.
 *
 * WARNING: signal-handler code.  The handler touches only the flags below
 * (volatile sig_atomic_t) and the pipe's write end, and restores errno.
 * These are the process's only mutable globals besides the log threshold; they
 * must be globals because a handler has no other way to reach the loop.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/sig.h"

#define SIG_MAX 65

static volatile sig_atomic_t sig_pending[SIG_MAX];
static int sig_pipe[2] = {-1, -1};

static const int handled_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};

static void
sig_handler(int signo)
{
    int saved = errno;
    if (signo > 0 && signo < SIG_MAX)
        sig_pending[signo] = 1;
    if (sig_pipe[1] >= 0) {
        ssize_t w = write(sig_pipe[1], "", 1);
        (void)w; /* a full pipe already wakes the loop */
    }
    errno = saved;
}

static int
set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int
sig_setup(void)
{
    if (pipe(sig_pipe) != 0)
        return -1;
    if (set_flags(sig_pipe[0]) != 0 || set_flags(sig_pipe[1]) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
        if (sigaction(handled_signals[i], &sa, NULL) != 0)
            return -1;
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -1;
    sig_release();
    return 0;
}

static void
sig_mask(int how)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
        sigaddset(&set, handled_signals[i]);
    (void)sigprocmask(how, &set, NULL); /* cannot fail with a valid how and set */
}

void
sig_hold(void)
{
    sig_mask(SIG_BLOCK);
}

void
sig_release(void)
{
    sig_mask(SIG_UNBLOCK);
}

int
sig_fd(void)
{
    return sig_pipe[0];
}

void
sig_drain(void)
{
    char buf[64];
    while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
        ;
}

int
sig_take(int signo)
{
    if (signo <= 0 || signo >= SIG_MAX || !sig_pending[signo])
        return 0;
    sig_pending[signo] = 0;
    return 1;
}

void
sig_reset_child(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
        (void)sigaction(handled_signals[i], &sa, NULL);
    if (sig_pipe[0] >= 0)
        close(sig_pipe[0]);
    if (sig_pipe[1] >= 0)
        close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    for (int i = 0; i < SIG_MAX; i++)
        sig_pending[i] = 0;
}
