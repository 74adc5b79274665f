/*
 * persona - see persona.h.  cJSON does the parsing and printing; this file only
 * validates, picks the name and canonicalises key order.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../shm/snapshot.h"
#include "persona.h"

int
persona_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned min;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Sort an object's members by key, recursively.  Insertion sort on the linked
 * list: O(n^2) per object, fine for the tens of keys personas have; stable, so
 * duplicate keys keep their file order. */
static void
sort_keys(cJSON *node)
{
    if (node == NULL)
        return;
    for (cJSON *c = node->child; c != NULL; c = c->next)
        sort_keys(c);
    if (!cJSON_IsObject(node) || node->child == NULL)
        return;
    cJSON *sorted = NULL;
    cJSON *c = node->child;
    while (c != NULL) {
        cJSON *next = c->next;
        c->prev = c->next = NULL;
        if (sorted == NULL || strcmp(c->string, sorted->string) < 0) {
            c->next = sorted;
            sorted = c;
        } else {
            cJSON *p = sorted;
            while (p->next != NULL && strcmp(p->next->string, c->string) <= 0)
                p = p->next;
            c->next = p->next;
            p->next = c;
        }
        c = next;
    }
    /* cJSON keeps child->prev pointing at the last element. */
    cJSON *last = sorted;
    for (cJSON *p = sorted; p != NULL; p = p->next) {
        if (p->next != NULL)
            p->next->prev = p;
        last = p;
    }
    sorted->prev = last;
    node->child = sorted;
}

static const char *
check_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return "cluster name is empty";
    if (len > PERSONA_NAME_MAX_BYTES)
        return "cluster name is longer than 253 bytes";
    if (!persona_utf8_valid((const unsigned char *)name, len))
        return "cluster name is not valid UTF-8";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return "cluster name contains control characters";
    return NULL;
}

/* Detach member key of obj, or make an empty object; NULL if present but not an object. */
static cJSON *
take_object(cJSON *obj, const char *key, const char **err, const char *msg)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(obj, key);
    if (v == NULL)
        return cJSON_CreateObject();
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        *err = msg;
        return NULL;
    }
    return v;
}

/* 1 if a JSON string in data escapes a NUL (\u0000).  cJSON decodes it into a
 * C string, which would silently cut the value short there (two names "a\u0000x"
 * and "a\u0000y" would both become "a"), so such files are rejected.  Only
 * string contents are looked at, and an escaped backslash is skipped. */
static int
has_nul_escape(const char *data, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = data[i] == '"';
        } else if (data[i] == '"') {
            in_string = 0;
        } else if (data[i] == '\\' && i + 1 < len) {
            if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0)
                return 1;
            i++; /* the escaped character, e.g. the second backslash of \\ */
        }
    }
    return 0;
}

const char *
persona_parse(const char *data, size_t len, struct persona *out)
{
    memset(out, 0, sizeof(*out));
    if (len > PERSONA_FILE_MAX_BYTES)
        return "file is larger than 1 MiB";
    if (!persona_utf8_valid((const unsigned char *)data, len))
        return "file is not valid UTF-8";
    if (has_nul_escape(data, len))
        return "a string contains \\u0000 (NUL), which is not supported";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (root == NULL)
        return "invalid JSON";
    /* Only white space may follow the value. */
    for (const char *p = end; p != NULL && p < data + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return "invalid JSON: trailing data after the object";
        }
    }
    const char *err = NULL;
    cJSON *obj = NULL, *spec = NULL, *status = NULL;
    const char *name = NULL;
    if (!cJSON_IsObject(root)) {
        err = "not a JSON object";
        goto out;
    }
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    cJSON *n = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "name") : NULL;
    if (n == NULL)
        n = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (n == NULL) {
        err = "no cluster name (metadata.name or name)";
        goto out;
    }
    if (!cJSON_IsString(n) || n->valuestring == NULL) {
        err = "cluster name is not a string";
        goto out;
    }
    name = n->valuestring;
    if ((err = check_name(name)) != NULL)
        goto out;
    if ((spec = take_object(root, "spec", &err, "spec is not an object")) == NULL)
        goto out;
    if ((status = take_object(root, "status", &err, "status is not an object")) == NULL)
        goto out;
    sort_keys(spec);
    sort_keys(status);
    obj = cJSON_CreateObject();
    if (obj == NULL || cJSON_AddStringToObject(obj, "name", name) == NULL) {
        err = "out of memory";
        goto out;
    }
    cJSON_AddItemToObject(obj, "spec", spec);
    spec = NULL;
    cJSON_AddItemToObject(obj, "status", status);
    status = NULL;
    out->obj = cJSON_PrintUnformatted(obj);
    out->name = strdup(name);
    if (out->obj == NULL || out->name == NULL) {
        persona_free(out);
        err = "out of memory";
        goto out;
    }
    out->obj_len = strlen(out->obj);
    out->etag = snapshot_hash(out->obj, out->obj_len);
    out->name_len = strlen(out->name);
out:
    cJSON_Delete(spec);
    cJSON_Delete(status);
    cJSON_Delete(obj);
    cJSON_Delete(root);
    return err;
}

void
persona_free(struct persona *p)
{
    /* obj comes from cJSON's allocator, which is malloc unless hooks are set. */
    free(p->obj);
    free(p->name);
    memset(p, 0, sizeof(*p));
}

char *
persona_event_json(const char *type, const char *name)
{
    cJSON *msg = cJSON_CreateObject();
    cJSON *data = cJSON_CreateObject();
    char *out = NULL;
    if (msg != NULL && data != NULL && cJSON_AddStringToObject(msg, "type", type) != NULL &&
        cJSON_AddStringToObject(data, "name", name) != NULL) {
        cJSON_AddItemToObject(msg, "data", data);
        data = NULL;
        out = cJSON_PrintUnformatted(msg);
    }
    cJSON_Delete(data);
    cJSON_Delete(msg);
    return out;
}
