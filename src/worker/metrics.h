/*
 * metrics - GET /metrics: the whole daemon's figures in the Prometheus text
 * format (version 0.0.4), summed from the shared stats area (shm/stats.h) by
 * whichever worker takes the request.
 *
 * A scrape reads each process's slot once per value: O(processes), never
 * O(connections), no lock, no message to the master or the other workers.
 * The metric names and what they count are listed in doc/operations.md.
 */
#ifndef PERSONAD_METRICS_H
#define PERSONAD_METRICS_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/stats.h"

struct http_request;
struct worker;

/* The figures one scrape shows besides the stats area's. */
struct metrics_view {
    const struct stats *stats;
    const char *version; /* personad_build_info's version label */
    uint64_t ring_head;  /* ring_head() */
    uint64_t ring_slots; /* the ring's capacity in events */
};

/* metrics_render - the exposition text of v, NUL-terminated, in malloc'd
 * memory (*len bytes without the NUL); NULL when out of memory. */
char *metrics_render(const struct metrics_view *v, size_t *len);

/* metrics_handle - GET /metrics (and HEAD): 200 text/plain; version=0.0.4. */
enum MHD_Result metrics_handle(struct worker *w, struct MHD_Connection *conn,
                               struct http_request *rq, const char *path, const char *method);

/* metrics_count_response - count the response queued on conn (if any) under
 * its status in w's slot; the router calls it after each request's handler. */
void metrics_count_response(struct worker *w, struct MHD_Connection *conn);

#endif
