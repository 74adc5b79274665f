/*
 * source_kube - the ClusterPersonas of a Kubernetes API as a source
 * (source.h): the master's side.  Keys are the objects' names (cluster-scoped).
 *
 * The network is never touched here.  A child process of the master runs the
 * API client (kube_client.h: libcurl, TLS, parsing of what the API sends) and
 * writes frames (kube_pipe.h) to a pipe; this source reads that pipe without
 * blocking, a bounded batch per turn of the loop, and applies each frame to
 * the store: PUT -> store_put, REMOVE -> store_remove, BEGIN/END/CANCEL ->
 * store_sync_begin/end/cancel.  Nothing is committed while a list is in
 * progress; the first complete list is committed as the baseline (no
 * events), later lists (after a 410, or by a new child) as a diff.
 *
 * Until the first list is complete, flags() says SNAP_FLAG_KUBE_UNLISTED
 * (/healthz 503).  After that the last state is served whatever the API or
 * the child does.
 *
 * The child: forked at the first rescan; when it dies (crash, SIGKILL, a
 * protocol error here), its pipe is drained to EOF and a new one is forked,
 * at once after a child that lived over 1 s, else with back-off (100 ms
 * doubling to 5 s), as a worker.  A SIGHUP (rescan) replaces it: the new
 * child lists again, and the store's diff emits what changed.  The master
 * reaps it through source_kube_reaped and stops it with source_kube_stop
 * (SIGKILL and reap: it has nothing to save).
 */
#ifndef PERSONAD_SOURCE_KUBE_H
#define PERSONAD_SOURCE_KUBE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"
#include "master/source.h"
#include "master/store.h"

#define SOURCE_KUBE_RESPAWN_MIN_MS 100
#define SOURCE_KUBE_RESPAWN_MAX_MS 5000

struct source_kube;

/* source_kube_open - resolve the API and credentials (kube_target.h) from cfg
 * and the environment, register with st as the source of "ClusterPersona"s.
 * in_child(arg) runs in each forked child before the client starts: it must
 * close what the master holds (listening sockets, worker sockets, shared
 * memory).  Returns the source, or NULL with a message in msg. */
struct source_kube *source_kube_open(const struct config *cfg, struct store *st,
                                     void (*in_child)(void *), void *arg, char *msg,
                                     size_t msg_size);

struct source *source_kube_source(struct source_kube *sk);

/* source_kube_reaped - the master reaped pid: 1 if it was the client child
 * (its respawn is scheduled), else 0. */
int source_kube_reaped(struct source_kube *sk, pid_t pid, int status);

/* source_kube_stop - SIGKILL the child and reap it (shutdown). */
void source_kube_stop(struct source_kube *sk);

#endif
