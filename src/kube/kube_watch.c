/*
 * kube_watch - see kube_watch.h.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>

#include "kube/kube_watch.h"

void
kube_lines_init(struct kube_lines *l, size_t max_line)
{
    memset(l, 0, sizeof(*l));
    l->max = max_line;
}

void
kube_lines_free(struct kube_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

void
kube_lines_reset(struct kube_lines *l)
{
    l->len = 0;
}

size_t
kube_lines_pending(const struct kube_lines *l)
{
    return l->len;
}

/* Append n bytes to the partial line; -1 past max or without memory. */
static int
lines_append(struct kube_lines *l, const char *data, size_t n, const char **err)
{
    if (n > l->max - l->len) {
        *err = "line longer than --kube-max-object";
        l->len = 0;
        return -1;
    }
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap == 0 ? 4096 : l->cap;
        while (cap < l->len + n + 1)
            cap *= 2;
        if (cap > l->max + 1)
            cap = l->max + 1;
        char *b = realloc(l->buf, cap);
        if (b == NULL) {
            *err = "out of memory";
            l->len = 0;
            return -1;
        }
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, data, n);
    l->len += n;
    l->buf[l->len] = '\0';
    return 0;
}

int
kube_lines_feed(struct kube_lines *l, const char *data, size_t n,
                int (*line)(void *arg, char *text, size_t len), void *arg, const char **err)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - data) : n;
        if (lines_append(l, data, take, err) != 0)
            return -1;
        if (nl == NULL)
            return 0;
        data += take + 1;
        n -= take + 1;
        size_t len = l->len;
        if (len > 0 && l->buf[len - 1] == '\r')
            l->buf[--len] = '\0';
        l->len = 0;
        if (len == 0)
            continue;
        int rc = line(arg, l->buf, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const char *
kube_object_rv(const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
    return cJSON_IsString(rv) ? rv->valuestring : NULL;
}

const char *
kube_object_record(const cJSON *obj, const char **name, char **record, size_t *record_len)
{
    if (!cJSON_IsObject(obj))
        return "object is not a JSON object";
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(md, "name");
    if (!cJSON_IsString(nm) || nm->valuestring[0] == '\0')
        return "no metadata.name";
    if (strlen(nm->valuestring) > 253)
        return "metadata.name longer than 253 bytes";
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (spec == NULL)
        return "no spec";
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(obj, "status");
    cJSON *out = cJSON_CreateObject();
    if (out == NULL || cJSON_AddStringToObject(out, "name", nm->valuestring) == NULL) {
        cJSON_Delete(out);
        return "out of memory";
    }
    /* References: out does not own spec and status (freed without them). */
    if (!cJSON_AddItemReferenceToObject(out, "spec", (cJSON *)spec) ||
        (status != NULL && !cJSON_AddItemReferenceToObject(out, "status", (cJSON *)status))) {
        cJSON_Delete(out);
        return "out of memory";
    }
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (s == NULL)
        return "out of memory";
    *name = nm->valuestring;
    *record = s;
    *record_len = strlen(s);
    return NULL;
}

const char *
kube_event_parse(const char *line, size_t len, struct kube_event *ev)
{
    static const char *const names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    memset(ev, 0, sizeof(*ev));
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (root == NULL)
        return "not JSON";
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "object");
    if (!cJSON_IsString(type) || !cJSON_IsObject(obj)) {
        cJSON_Delete(root);
        return "no type or object";
    }
    size_t i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type->valuestring, names[i]) == 0)
            break;
    if (i == sizeof(names) / sizeof(names[0])) {
        cJSON_Delete(root);
        return "unknown event type";
    }
    ev->type = (enum kube_event_type)i;
    ev->root = root;
    ev->object = obj;
    ev->rv = kube_object_rv(obj);
    if (ev->type == KUBE_EVENT_ERROR) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        ev->code = cJSON_IsNumber(code) ? code->valueint : 0;
    }
    return NULL;
}

void
kube_event_free(struct kube_event *ev)
{
    cJSON_Delete(ev->root);
    ev->root = NULL;
}

const char *
kube_list_parse(const char *body, size_t len, cJSON **root, const cJSON **items, const char **rv,
                const char **cont)
{
    cJSON *r = cJSON_ParseWithLength(body, len);
    if (r == NULL)
        return "list is not JSON";
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(r, "items");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(md, "continue");
    if (!cJSON_IsArray(it) && !cJSON_IsNull(it) && it != NULL) {
        cJSON_Delete(r);
        return "list without an items array";
    }
    if (!cJSON_IsString(v)) {
        cJSON_Delete(r);
        return "list without metadata.resourceVersion";
    }
    *root = r;
    *items = it;
    *rv = v->valuestring;
    *cont = cJSON_IsString(c) ? c->valuestring : "";
    return NULL;
}

const char *
kube_status_message(const char *body, size_t len, cJSON **root)
{
    *root = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(*root, "message");
    return cJSON_IsString(m) ? m->valuestring : NULL;
}
