/*
 * kube_client - the Kubernetes API client: the body of the child process the
 * master's Kubernetes source (source_kube.h) forks.  It alone talks to the
 * network (libcurl does HTTP and TLS) and parses what the API sends; it hands
 * the master records over a pipe (kube_pipe.h) and never reads from it.
 *
 * The loop:
 *   LIST   GET /apis/dorgu.io/v1/clusterpersonas?limit=500 and its continue
 *          pages -> BEGIN, PUT per object, END (a 410 on a continue token:
 *          CANCEL, list again from the start).
 *   WATCH  ?watch=1&allowWatchBookmarks=true&timeoutSeconds=[300,600)
 *          &resourceVersion=RV: ADDED/MODIFIED -> PUT, DELETED -> REMOVE,
 *          BOOKMARK: RV only.  The stream ending (timeout, EOF, reset, a
 *          half line) -> WATCH again from the last RV.  410 (the status, or
 *          an ERROR event with code 410), or a line over the maximum object
 *          size -> LIST again (the master's store diffs the new list).
 *   Failures (unreachable, slow, 401/403/5xx, a bad body): back-off 1 s
 *   doubling to 30 s with up to 50 % jitter, then the step that failed
 *   again; one log line when the problem changes, one when it is over.
 * The token file is read before every request (a rotated token is used at
 * once).  A malformed object is logged and skipped.
 */
#ifndef PERSONAD_KUBE_CLIENT_H
#define PERSONAD_KUBE_CLIENT_H

#include <stddef.h>

#include "kube/kube_target.h"

#define KUBE_BACKOFF_MIN_MS 1000
#define KUBE_BACKOFF_MAX_MS 30000
#define KUBE_LIST_PAGE_MAX_BYTES (64u << 20) /* one page of 500 objects */

/* kube_client_main - run the client, writing frames to out_fd; never returns
 * (exits 1 when the pipe breaks, i.e. the master is gone, or at start-up
 * when libcurl cannot be initialised). */
void kube_client_main(const struct kube_target *t, size_t max_object, int out_fd)
    __attribute__((noreturn));

#endif
