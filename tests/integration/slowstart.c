/*
 * slowstart - an LD_PRELOAD shim for the integration tests (built by make
 * check only, never installed).  The first epoll_create1() of each process
 * (a worker's, as it sets up its loop; the master never calls it) sleeps
 * PERSONAD_SLOWSTART_MS first, so a test can tell a READY=1 sent when the
 * workers report ready from one sent as soon as they are forked.  Unset, the
 * shim changes nothing.  Each sleep is noted on stderr ("slowstart: ...").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

int epoll_create1(int flags);

static pid_t slept_in; /* the process that slept already (a fork inherits it) */

int
epoll_create1(int flags)
{
    static int (*real)(int);
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "epoll_create1");
    const char *ms = getenv("PERSONAD_SLOWSTART_MS");
    if (ms != NULL && slept_in != getpid()) {
        slept_in = getpid();
        long v = strtol(ms, NULL, 10);
        char line[96];
        int n = snprintf(line, sizeof(line), "slowstart: pid %ld sleeps %ld ms\n",
                         (long)getpid(), v);
        if (n > 0 && write(2, line, (size_t)n) < 0)
            v = 0;
        struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    return real != NULL ? real(flags) : -1;
}
