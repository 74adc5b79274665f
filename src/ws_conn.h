/*
 * ws_conn - one upgraded WebSocket connection inside a worker.
 *
 * Incoming bytes go through wslay (frame parsing, unmasking, UTF-8 and size
 * checks); the connection ignores data messages, answers pings and closes.
 * Outgoing bytes are: the shared event frames of the worker's window (a cursor,
 * no copy) and a small control buffer (pong, ping, close), sent together with
 * one writev.  A connection is closed in exactly one place, ws_conn_close(),
 * which logs once (within the worker's client_log rate limit); the memory is
 * freed after the loop pass (ws_conn_reap_all).
 */
#ifndef PERSONAD_WS_CONN_H
#define PERSONAD_WS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_NO_STATUS 1005
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_TRY_AGAIN 1013

/* Largest number of queued bytes per connection before it is closed 1013. */
#define WS_QUEUE_MAX_BYTES (256u * 1024u)
/* Bytes written per connection per wake-up, so one fast reader cannot starve the rest. */
#define WS_SEND_MAX_BYTES_PER_WAKEUP (64u * 1024u)
/* How long a closing connection waits for the peer's close before the socket goes. */
#define WS_CLOSE_LINGER_MS 1000

/* ws_conn_new - adopt an upgraded socket (non-blocking), streaming events from
 * start_seq on; extra holds bytes the client sent after its handshake (copied).
 * Returns NULL (fd closed) on failure. */
struct ws_conn *ws_conn_new(struct worker *w, int fd, uint64_t start_seq, const void *extra,
                            size_t extra_len);

/* ws_conn_fanout - new frames are in the window: write them to every connection
 * that is not blocked, and close the ones that fell too far behind. */
void ws_fanout(struct worker *w);

/* ws_conn_expire - run the due ping, pong, write and linger deadlines. */
void ws_expire(struct worker *w);

/* ws_conn_close - start closing c with a close frame (code, reason). */
void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);

/* ws_close_all - send every connection close code (shutdown). */
void ws_close_all(struct worker *w, uint16_t code, const char *reason);

/* ws_drop_all - drop every connection now and free them (worker exit). */
void ws_drop_all(struct worker *w);

/* ws_reap - free the connections closed during this loop pass. */
void ws_reap(struct worker *w);

/* ws_lapped - connections that still need events below first_kept lose them:
 * close them 1013 (or drop them outright if mid-frame), so the window may free
 * those frames.  An event is delivered or the connection is closed, never a gap. */
void ws_lapped(struct worker *w, uint64_t first_kept);

/* ws_min_cursor - the oldest seq any connection or pending handshake still
 * needs (for the window). */
uint64_t ws_min_cursor(const struct worker *w, uint64_t fallback);

#endif
