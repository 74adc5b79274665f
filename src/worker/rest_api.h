/*
 * rest_api - the REST endpoints of a worker, served from its snapshot cache.
 *
 *   GET /healthz                  200 {"status":"ok"}, or while the personas directory
 *                                 is missing (the last state is served meanwhile) 200
 *                                 {"status":"degraded","reason":"personas directory missing"}
 *   GET /api/clusters             the snapshot's list JSON
 *   GET /api/clusters/{name}      one cluster (name percent-decoded, exact match)
 *
 * HEAD is GET without the body; both carry an ETag and answer 304 to a
 * matching If-None-Match.  Bodies are bytes of the master's snapshot, read
 * from the worker's private copy (snap_cache.h): no JSON is rebuilt.  503
 * when no snapshot can be had.
 *
 * The handlers are rows of the route table (http_router.c); they use the
 * response helpers (http_reply.h) and the worker's struct snap_cache.
 */
#ifndef PERSONAD_REST_API_H
#define PERSONAD_REST_API_H

#include <microhttpd.h>
#include <stddef.h>

struct http_request;
struct worker;

/* rest_api_healthz, rest_api_list - GET /healthz, GET /api/clusters; path
 * and method are the route's (http_router.h). */
enum MHD_Result rest_api_healthz(struct worker *w, struct MHD_Connection *conn,
                                 struct http_request *rq, const char *path, const char *method);
enum MHD_Result rest_api_list(struct worker *w, struct MHD_Connection *conn,
                              struct http_request *rq, const char *path, const char *method);

/* rest_api_cluster - GET /api/clusters/{name}; path is what follows the
 * prefix, still percent-encoded: a "/" in it or nothing is a 404, an invalid
 * escape or %00 a 400. */
enum MHD_Result rest_api_cluster(struct worker *w, struct MHD_Connection *conn,
                                 struct http_request *rq, const char *path, const char *method);

#define REST_API_NAME_BAD_ESCAPE (-1)
#define REST_API_NAME_TOO_LONG (-2)

/* rest_api_decode_name - strict percent-decoding of a path segment into out
 * (out_size bytes).  Returns the decoded length, REST_API_NAME_BAD_ESCAPE for
 * an invalid escape or %00, or REST_API_NAME_TOO_LONG. */
long rest_api_decode_name(const char *in, char *out, size_t out_size);

#endif
