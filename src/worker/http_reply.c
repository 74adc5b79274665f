/*
 * http_reply - see http_reply.h.
 *
 * Responses are built, given their headers and queued in one expression
 * chain: http_with_header passes NULL on, and http_reply_queue turns NULL
 * into MHD_NO, so a failed allocation anywhere closes the connection rather
 * than sending a response without a header it needs.
 */
#include "build_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "worker/http_reply.h"

struct MHD_Response *
http_with_header(struct MHD_Response *r, const char *name, const char *value)
{
    if (r != NULL && MHD_add_response_header(r, name, value) != MHD_YES) {
        MHD_destroy_response(r); /* never send a response without a header it needs */
        return NULL;
    }
    return r;
}

struct MHD_Response *
http_json_response(const char *json)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    r = http_with_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return r;
}

enum MHD_Result
http_reply_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r)
{
    if (r == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

struct MHD_Response *
http_error_response(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o != NULL && cJSON_AddStringToObject(o, "error", msg) != NULL)
        body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (body == NULL)
        return NULL;
    struct MHD_Response *r = http_json_response(body);
    free(body);
    return r;
}

enum MHD_Result
http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return http_reply_queue(conn, status, http_error_response(msg));
}

enum MHD_Result
http_reply_method_not_allowed(struct MHD_Connection *conn, const char *allow)
{
    struct MHD_Response *r = http_json_response("{\"error\":\"method not allowed\"}");
    return http_reply_queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            http_with_header(r, MHD_HTTP_HEADER_ALLOW, allow));
}

void
http_reply_format_etag(char out[HTTP_REPLY_ETAG_LEN + 1], uint64_t hash)
{
    snprintf(out, HTTP_REPLY_ETAG_LEN + 1, "\"%016" PRIx64 "\"", hash);
}

int
http_reply_etag_matches(const char *if_none_match, const char *etag)
{
    if (if_none_match == NULL)
        return 0;
    size_t elen = strlen(etag);
    const char *p = if_none_match;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (p[0] == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && memcmp(p, etag, n) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end;
    }
    return 0;
}

enum MHD_Result
http_reply_tagged(struct MHD_Connection *conn, struct MHD_Response *r, const char *etag,
                  const char *content_type, const char *cache_control)
{
    const char *inm =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    unsigned status = http_reply_etag_matches(inm, etag) ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    r = http_with_header(r, MHD_HTTP_HEADER_ETAG, etag);
    r = http_with_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    if (status == MHD_HTTP_OK)
        r = http_with_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return http_reply_queue(conn, status, r);
}
