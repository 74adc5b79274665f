/*
 * kube_watch - what the Kubernetes client reads from the API, parsed: a
 * watch stream split into lines, each line an event, each object a record
 * for the store.  Pure: no I/O, no logging (errors are static strings).
 *
 * Records keep the REST shape {"name","spec","status"}: name from
 * metadata.name, metadata dropped, so a change to metadata alone (a new
 * resourceVersion, managedFields, annotations) gives the same record and the
 * store emits nothing.  resourceVersions are opaque strings.
 */
#ifndef PERSONAD_KUBE_WATCH_H
#define PERSONAD_KUBE_WATCH_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* --- lines ---------------------------------------------------------------- */

/* A watch body arrives in chunks that are not lines: bytes are buffered up
 * to max per line. */
struct kube_lines {
    char *buf; /* owned */
    size_t len, cap, max;
};

void kube_lines_init(struct kube_lines *l, size_t max_line);
void kube_lines_free(struct kube_lines *l);
/* kube_lines_reset - drop a partial line (a watch that ended mid-line). */
void kube_lines_reset(struct kube_lines *l);

/* kube_lines_feed - take n bytes, calling line(arg, text, len) for each
 * whole line (without its "\n"; NUL-terminated; empty lines skipped).  A
 * callback that returns nonzero stops the feed, which returns that value.
 * Returns 0, the callback's value, or -1 when a line grows past max or
 * memory runs out (*err says which; what is held is dropped). */
int kube_lines_feed(struct kube_lines *l, const char *data, size_t n,
                    int (*line)(void *arg, char *text, size_t len), void *arg, const char **err);

/* kube_lines_pending - bytes of a partial line held. */
size_t kube_lines_pending(const struct kube_lines *l);

/* --- objects and events --------------------------------------------------- */

/* kube_object_record - the record of one ClusterPersona object: *name points
 * into obj (metadata.name), *record is malloc'd {"name","spec","status"}
 * (no status when absent: the store's empty one) of *record_len bytes.  Returns NULL, or a static
 * string saying what is wrong (no metadata.name, no spec, out of memory). */
const char *kube_object_record(const cJSON *obj, const char **name, char **record,
                               size_t *record_len);

/* kube_object_rv - metadata.resourceVersion of obj, or NULL. */
const char *kube_object_rv(const cJSON *obj);

enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK,
    KUBE_EVENT_ERROR,
};

struct kube_event {
    enum kube_event_type type;
    cJSON *root;         /* owned: free with kube_event_free */
    const cJSON *object; /* in root */
    const char *rv;      /* the object's resourceVersion, or NULL */
    int code;            /* ERROR: the Status's code (410: expired), else 0 */
};

/* kube_event_parse - one watch line.  Returns NULL (fill ev), or a static
 * string (not JSON, no type or object, an unknown type). */
const char *kube_event_parse(const char *line, size_t len, struct kube_event *ev);
void kube_event_free(struct kube_event *ev);

/* kube_list_parse - one page of a list: root (owned by the caller, free with
 * cJSON_Delete), its items array, metadata.resourceVersion and
 * metadata.continue ("" when the last page).  Returns NULL or a static
 * string. */
const char *kube_list_parse(const char *body, size_t len, cJSON **root, const cJSON **items,
                            const char **rv, const char **cont);

/* kube_status_message - the message of a Status body (an error response), or
 * NULL; root owned by the caller (cJSON_Delete). */
const char *kube_status_message(const char *body, size_t len, cJSON **root);

#endif
