/*
 * sse_conn - one Server-Sent Events stream (GET /api/events) after its
 * hand-off from libmicrohttpd (sse_handoff.c).
 *
 * The stream is a close-delimited HTTP/1.1 200 body of text/event-stream:
 * the response head and "retry: 5000" (written at the hand-off), then one
 * event per ring entry in the window's SSE encoding (event_window.h:
 * "id: E:N", "data: " the JSON with ,"seq":N, an empty line), a comment line
 * ": ping" every --ping-period between events, and nothing else.  Input is
 * read only to notice the client's end and is otherwise discarded.
 * Everything else is the connection set's (conn_set.h), as for WebSocket:
 * the cursor, the control bytes and the one writev per flush, the queue cap
 * and the lapping rules, the write deadline, the linger and the reaping.
 * SSE has no goodbye frame: a close (too slow, shutdown) queues a comment
 * naming the reason, then our side is shut down once everything is sent.
 */
#ifndef PERSONAD_SSE_CONN_H
#define PERSONAD_SSE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "worker/conn_set.h"

/* The comment every --ping-period (keeps proxies from timing the stream out). */
#define SSE_PING_LINE ": ping\n"

/* sse_conn_new - adopt a socket (non-blocking) whose request was answered by
 * no one yet into s: write preamble (the response head and the stream's first
 * lines; queued if the socket takes less), then stream events from first_seq
 * on (a replay while below live_seq, stream_out.h); resumed: the client gave
 * a position (counted as replayed, or resync: the preamble holds a resync).
 * Returns NULL (fd closed, logged) on failure. */
struct sse_conn *sse_conn_new(struct conn_set *s, int fd, uint64_t live_seq, uint64_t first_seq,
                              int resumed, int resync, const void *preamble, size_t preamble_len);

#endif
