/*
 * ws_conn - the WebSocket protocol (RFC 6455) of one upgraded connection.
 *
 * Incoming bytes go through wslay (frame parsing, unmasking, UTF-8 and size
 * checks); the connection ignores data messages, answers pings, sends its own
 * pings and runs the close handshake and its linger.  Everything else is the
 * connection set's (conn_set.h): the cursor over the worker's event window,
 * the control buffer and the one writev per flush (stream_out.h), the queue
 * cap and the lapping rules, the write deadline, the list and the reaping.
 * The set calls back through the WebSocket struct conn_ops: a close is a
 * close frame (ws_conn_close, which logs once within the set's rate limit).
 */
#ifndef PERSONAD_WS_CONN_H
#define PERSONAD_WS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "worker/conn_set.h"

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_NO_STATUS 1005
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_TRY_AGAIN 1013

/* ws_conn_new - adopt an upgraded socket (non-blocking) into s, streaming
 * events from start_seq on; extra holds bytes the client sent after its
 * handshake (copied).  Returns NULL (fd closed, logged) on failure. */
struct ws_conn *ws_conn_new(struct conn_set *s, int fd, uint64_t start_seq, const void *extra,
                            size_t extra_len);

/* ws_conn_new_at - ws_conn_new for the stream p decided (ws_upgrade.c): its
 * protocol, its live start, its replay (p->first_seq) and, with p->resync, the
 * resync message of epoch first. */
struct ws_conn *ws_conn_new_at(struct conn_set *s, int fd, const struct conn_pending *p,
                               const char *epoch, const void *extra, size_t extra_len);

#endif
