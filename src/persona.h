/*
 * persona - parse and validate one persona file.  Pure: no I/O, no logging.
 *
 * A file holds one ClusterPersona in Kubernetes shape (apiVersion, kind,
 * metadata.name, spec, status) or API shape (name, spec, status).  The result is
 * the cluster's name and its REST object {"name","spec","status"} in canonical
 * form: compact, object keys sorted (memcmp order) at every depth.  Two files that
 * differ only in formatting or key order give byte-identical objects, which is
 * what the change detection compares.
 */
#ifndef PERSONAD_PERSONA_H
#define PERSONAD_PERSONA_H

#include <stddef.h>
#include <stdint.h>

#define PERSONA_FILE_MAX_BYTES (1024 * 1024)
#define PERSONA_NAME_MAX_BYTES 253

struct persona {
    char *name; /* owned, NUL-terminated, 1..253 bytes of UTF-8 */
    size_t name_len;
    char *obj; /* owned, canonical {"name":..,"spec":..,"status":..} */
    size_t obj_len;
    uint64_t etag;    /* snapshot_hash(obj): computed once, here */
    uint64_t version; /* set by the store: unique per parse, for cheap diffs */
};

/* persona_parse - parse len bytes of a file.  Returns NULL and fills *out (free
 * with persona_free), or a static string saying what is wrong. */
const char *persona_parse(const char *data, size_t len, struct persona *out);

void persona_free(struct persona *p);

/* persona_event_json - the WebSocket message for an event, e.g.
 * {"type":"cluster.updated","data":{"name":"prod"}}; malloc'd, NULL on ENOMEM. */
char *persona_event_json(const char *type, const char *name);

/* persona_utf8_valid - 1 if s[0..len) is well-formed UTF-8. */
int persona_utf8_valid(const unsigned char *s, size_t len);

#endif
