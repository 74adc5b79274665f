/*
 * ws_upgrade - see ws_upgrade.h.
 *
 * The hand-off: in the upgrade callback we dup() the socket, then tell MHD to
 * close its copy (MHD_UPGRADE_ACTION_CLOSE).  MHD 0.9.75 only close()s its copy
 * of a plain TCP socket, so our duplicate stays connected and MHD frees the
 * connection's memory pool at once (about 9 KB per connection otherwise).  The
 * integration tests prove on the build host that the socket survives.  MHD's
 * own TLS would break this (MHD shuts a TLS socket down); with --tls-cert the
 * socket is the plain end of a tls_front's socketpair, so nothing changes here.
 */
#include "build_config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include "worker/http_reply.h"
#include "worker/http_request.h"
#include "common/log.h"
#include "common/net.h"
#include "worker/stream_position.h"
#include "worker/ws_conn.h"
#include "worker/ws_upgrade.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void
ws_upgrade_accept_key(const char *key, char out[29])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof(ws_guid) - 1, (const uint8_t *)ws_guid);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
    base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

int
ws_upgrade_key_valid(const char *key)
{
    size_t len = strlen(key);
    if (len != 24)
        return 0;
    struct base64_decode_ctx ctx;
    uint8_t out[BASE64_DECODE_LENGTH(24)];
    size_t out_len = sizeof(out);
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &out_len, out, len, key) || !base64_decode_final(&ctx))
        return 0;
    return out_len == 16;
}

/* 1 if a comma-separated header value contains token (case-insensitive). */
static int
has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tlen && strncasecmp(p, token, tlen) == 0)
            return 1;
        p = end;
    }
    return 0;
}

/* A query parameter's value; "" for one without a value (?since), NULL if absent. */
static const char *
query_value(struct MHD_Connection *conn, const char *key)
{
    const char *v = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &len) !=
        MHD_YES)
        return NULL;
    return v != NULL ? v : "";
}

void
ws_upgrade_forget(struct http_request *rq)
{
    conn_set_pending_forget(&rq->ws);
}

static void
upgrade_cb(void *cls, struct MHD_Connection *connection, void *req_cls, const char *extra_in,
           size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct worker *w = cls;
    struct http_request *rq = req_cls;
    /* The connection holds its own cursor from here on (or there is none). */
    ws_upgrade_forget(rq);
    int fd = fcntl(sock, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        log_warn("fcntl(F_DUPFD_CLOEXEC) on an upgraded socket");
    /* extra_in points into MHD's pool: ws_conn_new copies it before the close.
     * On failure ws_conn_new has closed fd and logged why. */
    if (fd >= 0 && net_set_nonblock(fd) != 0) {
        log_warn("fcntl(O_NONBLOCK) on an upgraded socket");
        close(fd);
    } else if (fd >= 0) {
        worker_handoff_begin(w, connection); /* the connection's count goes with it */
        (void)ws_conn_new_at(&w->set, fd, &rq->ws, snapshot_epoch(w->snap), extra_in,
                             extra_in_size);
        conn_set_adopt_end(&w->set);
    }
    if (MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE) != MHD_YES)
        log_warnx("MHD_upgrade_action(CLOSE) failed");
    worker_mhd_run_again(w); /* nothing else wakes MHD to release the connection */
}

enum MHD_Result
ws_upgrade_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
                  const char *path, const char *method)
{
    (void)path;
    if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 || strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
        /* Not a handshake gone wrong but a question about the resource (a
         * probe, a CORS preflight): /ws exists, and only for GET. */
        struct MHD_Response *r = http_json_response("{\"error\":\"method not allowed\"}");
        r = http_with_header(r, MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
        if (r == NULL)
            return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "WebSocket handshake needs GET");
    /* A position (?since=N&epoch=E) is checked before anything is upgraded. */
    struct stream_pos pos;
    const char *why = NULL;
    enum stream_pos_status ps =
        stream_pos_from_query(query_value(conn, "since"), query_value(conn, "epoch"), &pos, &why);
    if (ps == STREAM_POS_BAD)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, why);
    const char *upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
    const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *version =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (upgrade == NULL || !has_token(upgrade, "websocket"))
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "missing Upgrade: websocket");
    if (connection == NULL || !has_token(connection, "upgrade"))
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "missing Connection: Upgrade");
    if (version == NULL)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "missing Sec-WebSocket-Version");
    if (strcmp(version, "13") != 0) {
        struct MHD_Response *r =
            http_json_response("{\"error\":\"unsupported WebSocket version\"}");
        r = http_with_header(r, "Sec-WebSocket-Version", "13");
        if (r == NULL)
            return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_UPGRADE_REQUIRED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (key == NULL || !ws_upgrade_key_valid(key))
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                "missing or malformed Sec-WebSocket-Key");
    if (w->set.nconns >= w->cfg->max_connections || w->stopping)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many connections");
    /* The client's stream starts at the first event after this point: the 101
     * may reach the client before the upgrade callback runs, and an event
     * the client causes right after seeing it must not be missed.  Writing
     * the 101 can take long (a full socket buffer): until the hand-off, the
     * window keeps what this client will need. */
    struct stream_start st;
    stream_pos_decide(ps == STREAM_POS_OK ? &pos : NULL, snapshot_epoch(w->snap),
                      ring_head(w->ring), stream_pos_ring_capacity(w->ring), &st);
    conn_set_pending_add(&w->set, &rq->ws,
                         ps == STREAM_POS_OK ? STREAM_PROTO_WS_SEQ : STREAM_PROTO_WS, st.live_seq);
    rq->ws.first_seq = st.first_seq;
    rq->ws.resync = (uint8_t)st.resync;
    char accept[29];
    ws_upgrade_accept_key(key, accept);
    struct MHD_Response *r = MHD_create_response_for_upgrade(upgrade_cb, w);
    if (r == NULL)
        return MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket") != MHD_YES ||
        MHD_add_response_header(r, "Sec-WebSocket-Accept", accept) != MHD_YES) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}
