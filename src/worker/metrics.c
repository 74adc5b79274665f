/*
 * metrics - see metrics.h.
 *
 * The text is built in one growing buffer: a few hundred bytes per worker
 * (its up and lag lines) plus a fixed part, so at most a few tens of KiB.
 * Label values are fixed strings of ours (codes, reasons, worker indexes);
 * only the version is escaped, as the format wants (\\, \", \n).
 */
#include "build_config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"
#include "worker/http_reply.h"
#include "worker/metrics.h"
#include "worker/worker.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct buf {
    char *p;
    size_t len, cap;
    int failed; /* out of memory: the text is not returned */
};

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 > b->len + (size_t)n + 1 ? b->cap * 2 : b->len + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* The HELP and TYPE lines of one metric. */
static void
head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample without labels. */
static void
sample(struct buf *b, const char *name, uint64_t v)
{
    buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* A metric with one label: each row's value is a sum of stats ids over the
 * workers (or the master's slot). */
struct row {
    const char *value;
    enum stats_id id;
};

static void
labelled(struct buf *b, const struct stats *s, const char *name, const char *labels,
         const char *label, const struct row *rows, size_t n, uint32_t first, uint32_t end)
{
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s{%s%s=\"%s\"} %" PRIu64 "\n", name, labels, label, rows[i].value,
                   stats_sum(s, rows[i].id, first, end));
}

/* Metrics of one unlabelled sample each, a sum over the workers or the
 * master's value: one X-macro row per metric, walked by one loop (a call
 * pair per metric took 600 bytes more text), kept as one string of
 * "name\0type\0help\0" rows and an array of ids: no pointers, so nothing to
 * relocate (the binary's budget, doc/footprint.md "The last page"). */
#define PLAIN_TEXT(name, type, help, id) name "\0" type "\0" help "\0"
#define PLAIN_ID(name, type, help, id) id,
_Static_assert(STATS_IDS <= 256, "a stats id fits the rows' uint8_t");

static void
plain_rows(struct buf *b, const struct stats *s, const char *text, const uint8_t *ids, size_t n,
           uint32_t first, uint32_t end)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = text, *type = name + strlen(name) + 1, *help = type + strlen(type) + 1;
        text = help + strlen(help) + 1;
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                   stats_sum(s, (enum stats_id)ids[i], first, end));
    }
}

static void
escaped(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            buf_printf(b, "\\n");
        else
            buf_printf(b, "%c", *s);
    }
}

char *
metrics_render(const struct metrics_view *v, size_t *len)
{
    const struct stats *s = v->stats;
    const uint32_t M = 0, W = 1, END = s->nslots; /* master's slot; workers' slots [W, END) */
    const struct stats_slot *ms = stats_slot(s, M);
    struct buf b = {.p = malloc(8192), .cap = 8192};
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';

    head(&b, "personad_build_info", "gauge", "Always 1; the version of the running personad.");
    buf_printf(&b, "personad_build_info{version=\"");
    escaped(&b, v->version);
    buf_printf(&b, "\"} 1\n");
    head(&b, "personad_start_time_seconds", "gauge",
         "When the master process started, in seconds since the epoch.");
    sample(&b, "personad_start_time_seconds", s->hdr->start_time_s);

    head(&b, "personad_workers", "gauge", "Worker processes configured (--workers).");
    sample(&b, "personad_workers", END - W);
    head(&b, "personad_worker_up", "gauge",
         "1 while the worker runs, 0 while it awaits its respawn.");
    for (uint32_t i = W; i < END; i++)
        buf_printf(&b, "personad_worker_up{worker=\"%" PRIu32 "\"} %d\n", i - W,
                   stats_slot_live(s, i));
    head(&b, "personad_worker_restarts_total", "counter",
         "Workers started again after one exited or was killed.");
    sample(&b, "personad_worker_restarts_total", stats_get(ms, STATS_M_WORKER_RESTARTS));

    static const struct row now_open[] = {
        {"websocket", STATS_WS_OPEN},
        {"sse", STATS_SSE_OPEN},
    };
    head(&b, "personad_connections", "gauge", "Stream connections open (or closing), by protocol.");
    for (size_t i = 0; i < sizeof(now_open) / sizeof(now_open[0]); i++)
        buf_printf(&b, "personad_connections{protocol=\"%s\"} %" PRIu64 "\n", now_open[i].value,
                   stats_sum_live(s, now_open[i].id, W, END));
    static const struct row opened[] = {
        {"websocket", STATS_WS_OPENED},
        {"sse", STATS_SSE_OPENED},
    };
    head(&b, "personad_connections_opened_total", "counter",
         "Stream connections accepted after their handshake, by protocol.");
    labelled(&b, s, "personad_connections_opened_total", "", "protocol", opened,
             sizeof(opened) / sizeof(opened[0]), W, END);
    static const struct row closes[] = {
        {"1000", STATS_WS_CLOSE_1000},   {"1001", STATS_WS_CLOSE_1001},
        {"1002", STATS_WS_CLOSE_1002},   {"1007", STATS_WS_CLOSE_1007},
        {"1009", STATS_WS_CLOSE_1009},   {"1013", STATS_WS_CLOSE_1013},
        {"other", STATS_WS_CLOSE_OTHER},
    };
    static const struct row sse_closes[] = {
        {"too_slow", STATS_SSE_CLOSE_TOO_SLOW},
        {"shutdown", STATS_SSE_CLOSE_SHUTDOWN},
    };
    head(&b, "personad_connections_closed_total", "counter",
         "Closes personad began with a goodbye: WebSocket by the code of the close frame it sent "
         "(an echoed close counts under the code echoed), SSE by the reason of its closing "
         "comment.");
    labelled(&b, s, "personad_connections_closed_total", "protocol=\"websocket\",", "code", closes,
             sizeof(closes) / sizeof(closes[0]), W, END);
    labelled(&b, s, "personad_connections_closed_total", "protocol=\"sse\",", "reason", sse_closes,
             sizeof(sse_closes) / sizeof(sse_closes[0]), W, END);
    static const struct row drops[] = {
        {"peer_gone", STATS_WS_DROP_PEER_GONE},
        {"write_failed", STATS_WS_DROP_WRITE_FAILED},
        {"write_deadline", STATS_WS_DROP_WRITE_DEADLINE},
        {"lapped", STATS_WS_DROP_LAPPED},
        {"epoll", STATS_WS_DROP_EPOLL},
        {"no_memory", STATS_WS_DROP_NO_MEMORY},
        {"worker_exit", STATS_WS_DROP_WORKER_EXIT},
    };
    static const struct row sse_drops[] = {
        {"peer_gone", STATS_SSE_DROP_PEER_GONE},
        {"write_failed", STATS_SSE_DROP_WRITE_FAILED},
        {"write_deadline", STATS_SSE_DROP_WRITE_DEADLINE},
        {"lapped", STATS_SSE_DROP_LAPPED},
        {"epoll", STATS_SSE_DROP_EPOLL},
        {"worker_exit", STATS_SSE_DROP_WORKER_EXIT},
    };
    head(&b, "personad_connections_dropped_total", "counter",
         "Stream connections ended without a close handshake, by reason.");
    labelled(&b, s, "personad_connections_dropped_total", "protocol=\"websocket\",", "reason",
             drops, sizeof(drops) / sizeof(drops[0]), W, END);
    labelled(&b, s, "personad_connections_dropped_total", "protocol=\"sse\",", "reason", sse_drops,
             sizeof(sse_drops) / sizeof(sse_drops[0]), W, END);
    static const struct row ws_resumes[] = {
        {"replayed", STATS_WS_RESUME_REPLAYED},
        {"resync", STATS_WS_RESUME_RESYNC},
    };
    static const struct row sse_resumes[] = {
        {"replayed", STATS_SSE_RESUME_REPLAYED},
        {"resync", STATS_SSE_RESUME_RESYNC},
    };
    head(&b, "personad_connections_resumed_total", "counter",
         "Stream connections opened at a position the client gave: replayed from it (nothing "
         "missed), or sent a resync (another epoch, too old, in the future).");
    labelled(&b, s, "personad_connections_resumed_total", "protocol=\"websocket\",", "result",
             ws_resumes, sizeof(ws_resumes) / sizeof(ws_resumes[0]), W, END);
    labelled(&b, s, "personad_connections_resumed_total", "protocol=\"sse\",", "result",
             sse_resumes, sizeof(sse_resumes) / sizeof(sse_resumes[0]), W, END);

    static const struct row events[] = {
        {"cluster.added", STATS_M_EVENTS_ADDED},
        {"cluster.updated", STATS_M_EVENTS_UPDATED},
        {"cluster.deleted", STATS_M_EVENTS_DELETED},
    };
    head(&b, "personad_events_total", "counter",
         "Events the master appended to the ring, by type.");
    labelled(&b, s, "personad_events_total", "", "type", events, sizeof(events) / sizeof(events[0]),
             M, W);
    head(&b, "personad_ring_head_seq", "gauge", "Sequence number of the newest event in the ring.");
    sample(&b, "personad_ring_head_seq", v->ring_head);
    head(&b, "personad_ring_capacity_events", "gauge", "Events the ring holds (--ring-size).");
    sample(&b, "personad_ring_capacity_events", v->ring_slots);
    head(&b, "personad_worker_lag_events", "gauge",
         "Events in the ring the worker has not read yet (running workers only).");
    for (uint32_t i = W; i < END; i++) {
        if (!stats_slot_live(s, i))
            continue;
        uint64_t seen = stats_get(stats_slot(s, i), STATS_SEEN_SEQ);
        buf_printf(&b, "personad_worker_lag_events{worker=\"%" PRIu32 "\"} %" PRIu64 "\n", i - W,
                   v->ring_head > seen ? v->ring_head - seen : 0);
    }
#define WORKER_SUMS(X)                                                                             \
    X("personad_worker_events_read_total", "counter",                                              \
      "Ring events read and encoded, summed over the workers.", STATS_EVENTS_READ)                 \
    X("personad_worker_ring_overruns_total", "counter",                                            \
      "Times a worker was lapped by the ring and skipped events.", STATS_RING_OVERRUNS)            \
    X("personad_stream_frames_written_total", "counter",                                           \
      "Event messages written whole to stream connections.", STATS_FRAMES_WRITTEN)                 \
    X("personad_stream_written_bytes_total", "counter",                                            \
      "Bytes written to stream connections (events and control frames).", STATS_BYTES_WRITTEN)     \
    X("personad_stream_writes_total", "counter",                                                   \
      "writev calls on stream connections (one may carry several frames).", STATS_WRITES)          \
    X("personad_worker_fanout_passes_total", "counter",                                            \
      "Fan-out passes over the connections (--coalesce-delay merges them under load).",            \
      STATS_FANOUT_PASSES)                                                                         \
    X("personad_worker_fanout_behind_total", "counter",                                            \
      "Fan-out passes that ended with new events already waiting: the worker is behind, and "      \
      "--coalesce-delay holds the next pass for all of it.",                                       \
      STATS_FANOUT_BEHIND)
    static const char worker_sums_text[] = WORKER_SUMS(PLAIN_TEXT);
    static const uint8_t worker_sums_ids[] = {WORKER_SUMS(PLAIN_ID)};
    plain_rows(&b, s, worker_sums_text, worker_sums_ids, sizeof(worker_sums_ids), W, END);

    static const struct row codes[] = {
        {"101", STATS_HTTP_101}, {"200", STATS_HTTP_200}, {"304", STATS_HTTP_304},
        {"400", STATS_HTTP_400}, {"404", STATS_HTTP_404}, {"405", STATS_HTTP_405},
        {"426", STATS_HTTP_426}, {"503", STATS_HTTP_503}, {"other", STATS_HTTP_OTHER},
    };
    head(&b, "personad_http_responses_total", "counter",
         "HTTP responses personad queued, by status code.");
    labelled(&b, s, "personad_http_responses_total", "", "code", codes,
             sizeof(codes) / sizeof(codes[0]), W, END);

    head(&b, "personad_personas", "gauge",
         "Persona records held, by whether their current content is valid.");
    buf_printf(&b, "personad_personas{state=\"valid\"} %" PRIu64 "\n",
               stats_get(ms, STATS_M_PERSONAS_VALID));
    buf_printf(&b, "personad_personas{state=\"invalid\"} %" PRIu64 "\n",
               stats_get(ms, STATS_M_PERSONAS_INVALID));
#define MASTER_VALUES(X)                                                                           \
    X("personad_persona_file_errors_total", "counter",                                             \
      "Persona contents found bad (unreadable, not JSON, not a ClusterPersona).",                  \
      STATS_M_PERSONA_FILE_ERRORS)                                                                 \
    X("personad_snapshot_bytes", "gauge", "Size of the snapshot last published.",                  \
      STATS_M_SNAPSHOT_BYTES)                                                                      \
    X("personad_snapshot_publishes_total", "counter", "Snapshots the master published.",           \
      STATS_M_SNAPSHOT_PUBLISHES)
    static const char master_values_text[] = MASTER_VALUES(PLAIN_TEXT);
    static const uint8_t master_values_ids[] = {MASTER_VALUES(PLAIN_ID)};
    plain_rows(&b, s, master_values_text, master_values_ids, sizeof(master_values_ids), M, W);

    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

void
metrics_count_response(struct worker *w, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (ci == NULL)
        return; /* nothing queued (refused: the connection is closed) */
    static const struct {
        uint16_t status;
        uint8_t id;
    } ids[] = {
        {MHD_HTTP_SWITCHING_PROTOCOLS, STATS_HTTP_101},
        {MHD_HTTP_OK, STATS_HTTP_200},
        {MHD_HTTP_NOT_MODIFIED, STATS_HTTP_304},
        {MHD_HTTP_BAD_REQUEST, STATS_HTTP_400},
        {MHD_HTTP_NOT_FOUND, STATS_HTTP_404},
        {MHD_HTTP_METHOD_NOT_ALLOWED, STATS_HTTP_405},
        {MHD_HTTP_UPGRADE_REQUIRED, STATS_HTTP_426},
        {MHD_HTTP_SERVICE_UNAVAILABLE, STATS_HTTP_503},
    };
    enum stats_id id = STATS_HTTP_OTHER;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (ids[i].status == ci->http_status)
            id = (enum stats_id)ids[i].id;
    stats_add(w->own_stats, id, 1);
}

enum MHD_Result
metrics_handle(struct worker *w, struct MHD_Connection *conn, struct http_request *rq,
               const char *path, const char *method)
{
    (void)rq, (void)path, (void)method;
    struct metrics_view v = {
        .stats = w->shm_stats,
        .version = PACKAGE_VERSION,
        .ring_head = ring_head(w->ring),
        .ring_slots = w->ring->slot_count,
    };
    size_t len;
    char *text = metrics_render(&v, &len);
    if (text == NULL)
        return MHD_NO; /* out of memory: the connection is closed */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL)
        free(text);
    r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
    r = http_with_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return http_reply_queue(conn, MHD_HTTP_OK, r);
}
