/*
 * ws_upgrade - the RFC 6455 opening handshake on /ws and the hand-off of the
 * socket from libmicrohttpd to ws_conn.
 *
 * Called through the route table (http_router.c) for every request to /ws,
 * whatever its method; uses the response helpers (http_reply.h) only.
 */
#ifndef PERSONAD_WS_UPGRADE_H
#define PERSONAD_WS_UPGRADE_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/worker.h"

/* ws_upgrade_accept_key - Sec-WebSocket-Accept for a client key (28 chars + NUL). */
void ws_upgrade_accept_key(const char *key, char out[29]);

/* ws_upgrade_key_valid - 1 if key is base64 of exactly 16 bytes. */
int ws_upgrade_key_valid(const char *key);

struct http_request;

/* ws_upgrade_handle - answer a request to /ws (a route handler, http_router.h):
 * 101 and hand-off, or 400/426/503 (405 with Allow: GET for HEAD and OPTIONS).
 * rq is the request's context (it carries the client's start seq to the
 * hand-off); path is "/ws". */
enum MHD_Result ws_upgrade_handle(struct worker *w, struct MHD_Connection *conn,
                                  struct http_request *rq, const char *path, const char *method);

/* ws_upgrade_forget - the request is done: the window no longer keeps events
 * for its handshake (a no-op unless a 101 was queued and never handed off).
 * The /ws route's done hook (called when the request completes). */
void ws_upgrade_forget(struct http_request *rq);

#endif
