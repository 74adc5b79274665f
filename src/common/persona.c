/*
 * persona - see persona.h.  cJSON does the parsing and printing; this file only
 * validates, picks the name and canonicalises key order.
 */
#include "build_config.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "shm/snapshot.h"
#include "common/persona.h"

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

/* Scratch for canonicalise: one object's members at a time. */
struct canon {
    cJSON **members; /* owned, cap entries */
    size_t cap;
    size_t values; /* values seen so far, the root included */
};

static int
member_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Sort every object's members by name (strcmp order, which is memcmp order for
 * these NUL-free names), at every depth below node, and refuse duplicate names
 * and trees over the caps.  An object's members are collected into an array,
 * sorted with qsort and relinked: O(m log m) for m members.  Names are unique
 * once checked, so the order is total and qsort's instability does not show.
 * Recursion depth is bounded by cJSON's nesting limit (1000). */
static const char *
canonicalise(cJSON *node, struct canon *cx)
{
    size_t m = 0;
    for (cJSON *c = node->child; c != NULL; c = c->next, m++)
        if (++cx->values > PERSONA_MAX_JSON_VALUES)
            return "more than 100000 JSON values";
    if (cJSON_IsObject(node) && m > 1) {
        if (m > PERSONA_MAX_OBJECT_MEMBERS)
            return "an object has more than 10000 members";
        if (m > cx->cap) {
            cJSON **a = realloc(cx->members, m * sizeof(*a));
            if (a == NULL)
                return "out of memory";
            cx->members = a;
            cx->cap = m;
        }
        size_t k = 0;
        for (cJSON *c = node->child; c != NULL; c = c->next)
            cx->members[k++] = c;
        qsort(cx->members, m, sizeof(*cx->members), member_cmp);
        for (k = 1; k < m; k++)
            if (strcmp(cx->members[k - 1]->string, cx->members[k]->string) == 0)
                return "an object has two members with the same name";
        /* cJSON's list: next ends in NULL, the first's prev points at the last. */
        for (k = 0; k < m; k++) {
            cx->members[k]->prev = cx->members[k > 0 ? k - 1 : m - 1];
            cx->members[k]->next = k + 1 < m ? cx->members[k + 1] : NULL;
        }
        node->child = cx->members[0];
    }
    for (cJSON *c = node->child; c != NULL; c = c->next) {
        const char *err = canonicalise(c, cx);
        if (err != NULL)
            return err;
    }
    return NULL;
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

/* One pass over the text before cJSON sees it.
 *
 * A NUL in a string, escaped (\u0000) or raw, is refused: cJSON decodes
 * strings into C strings, which would cut the value short there (names
 * "a\u0000x" and "a\u0000y" would both become "a").  An escaped backslash is
 * skipped.
 *
 * The values cJSON would allocate are counted, so that a tree over the cap is
 * refused before it is built: outside strings, every value but the root follows
 * a comma or opens a non-empty array or object (exact for valid JSON; invalid
 * JSON fails in cJSON anyway).  Like cJSON, every byte up to 0x20 counts as
 * white space between tokens. */
static const char *
prescan(const char *data, size_t len)
{
    size_t values = 1;
    int in_string = 0, after_open = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (in_string) {
            if (c == '"') {
                in_string = 0;
            } else if (c == '\0') {
                return "invalid JSON: a raw NUL byte in a string";
            } else if (c == '\\' && i + 1 < len) {
                if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0)
                    return "a string contains \\u0000 (NUL), which is not supported";
                i++; /* the escaped character, e.g. the second backslash of \\ */
            }
            continue;
        }
        if (c <= 0x20)
            continue;
        if ((after_open && c != ']' && c != '}') || c == ',')
            values++;
        after_open = c == '[' || c == '{';
        in_string = c == '"';
        if (values > PERSONA_MAX_JSON_VALUES)
            return "more than 100000 JSON values";
    }
    return NULL;
}

const char *
persona_parse(const char *data, size_t len, struct persona *out)
{
    memset(out, 0, sizeof(*out));
    if (len > PERSONA_FILE_MAX_BYTES)
        return "file is larger than 1 MiB";
    if (!persona_utf8_valid((const unsigned char *)data, len))
        return "file is not valid UTF-8";
    const char *err = prescan(data, len);
    if (err != NULL)
        return err;
    /* cJSON gets a NUL-terminated copy.  cJSON_ParseWithLengthOpts is meant
     * to stay within len, but before 1.7.18 it read the byte after a trailing
     * comma in an object (cJSON issue #800, CVE-2023-53154: "{\"a\":1," read
     * one past a buffer of exactly len bytes; Debian 12 patched its 1.7.15 only
     * in 1.7.15-1+deb12u3).  The terminator is not counted in the length:
     * trailing bytes are checked below, for a more precise message. */
    char *text = malloc(len + 1);
    if (text == NULL)
        return "out of memory";
    memcpy(text, data, len);
    text[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL) {
        free(text);
        return "invalid JSON";
    }
    /* Only white space may follow the value. */
    for (const char *p = end; p != NULL && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            err = "invalid JSON: trailing data after the object";
            break;
        }
    }
    free(text);
    if (err != NULL) {
        cJSON_Delete(root);
        return err;
    }
    struct canon cx = {NULL, 0, 1};
    cJSON *obj = NULL, *spec = NULL, *status = NULL;
    const char *name = NULL;
    if (!cJSON_IsObject(root)) {
        err = "not a JSON object";
        goto out;
    }
    /* The whole tree, so that no object anywhere has duplicate names; spec and
     * status come out sorted. */
    err = canonicalise(root, &cx);
    free(cx.members);
    if (err != NULL)
        goto out;
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
    /* On failure cJSON_AddItemToObject leaves data to us (and msg without it). */
    if (msg != NULL && data != NULL && cJSON_AddStringToObject(msg, "type", type) != NULL &&
        cJSON_AddStringToObject(data, "name", name) != NULL &&
        cJSON_AddItemToObject(msg, "data", data)) {
        data = NULL;
        out = cJSON_PrintUnformatted(msg);
    }
    cJSON_Delete(data);
    cJSON_Delete(msg);
    return out;
}
