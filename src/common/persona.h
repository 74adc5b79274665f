/*
 * persona - parse and validate one persona file.  Pure: no I/O, no logging.
 *
 * A file holds one ClusterPersona in Kubernetes shape (apiVersion, kind,
 * metadata.name, spec, status) or API shape (name, spec, status).  The result is
 * the cluster's name and its REST object {"name","spec","status"} in canonical
 * form: compact, object keys sorted (memcmp order) at every depth.  Two files that
 * differ only in formatting or key order give byte-identical objects, which is
 * what the change detection compares.  An object with two members of the same
 * name is refused (RFC 8259 says names should be unique; both would reach the
 * REST JSON), and so is a tree over the caps below.
 */
#ifndef PERSONAD_PERSONA_H
#define PERSONAD_PERSONA_H

#include <stddef.h>
#include <stdint.h>

#define PERSONA_FILE_MAX_BYTES (1024 * 1024)
#define PERSONA_NAME_MAX_BYTES 253

/* Caps on one file's JSON tree.  A real persona has tens of members per object
 * and at most a few thousand values (a 1000-node cluster's node list with a
 * dozen fields each: ~13 000); the caps leave ample room above that and bound
 * what one file costs the master, whose loop waits while it parses: cJSON
 * allocates ~64 bytes per value (100 000 values: ~6 MB, where a 1 MiB file of
 * "0," could make it 500 000) and sorting an object's m members is O(m log m). */
#define PERSONA_MAX_JSON_VALUES 100000
#define PERSONA_MAX_OBJECT_MEMBERS 10000

struct persona {
    char *name; /* owned, NUL-terminated, 1..253 bytes of UTF-8 */
    size_t name_len;
    char *obj; /* owned, canonical {"name":..,"spec":..,"status":..} */
    size_t obj_len;
    uint64_t etag;    /* snapshot_hash(obj): computed once, here */
    uint64_t version; /* set by the store: unique per parse, for cheap diffs */
};

/* persona_parse - parse len bytes of a file (data need not be NUL-terminated:
 * nothing past len is read).  Returns NULL and fills *out (free with
 * persona_free), or a static string saying what is wrong.  O(len log len). */
const char *persona_parse(const char *data, size_t len, struct persona *out);

void persona_free(struct persona *p);

/* persona_event_json - the WebSocket message for an event, e.g.
 * {"type":"cluster.updated","data":{"name":"prod"}}; malloc'd, NULL on ENOMEM. */
char *persona_event_json(const char *type, const char *name);

/* persona_utf8_valid - 1 if s[0..len) is well-formed UTF-8. */
int persona_utf8_valid(const unsigned char *s, size_t len);

#endif
