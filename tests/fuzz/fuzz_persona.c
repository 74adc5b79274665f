/*
 * fuzz_persona - libFuzzer target: persona_parse over arbitrary file bytes.
 *
 * The input is a persona file (not NUL-terminated: an exact-size copy, so a
 * read past len is an ASan report).  A parse that succeeds must give what the
 * store relies on: a valid name of 1-253 bytes of UTF-8 with no NUL, an object
 * that parses again to the same name and the same canonical bytes (the change
 * detection compares them), and the ETag of those bytes.
 */
#include "build_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/persona.h"
#include "shm/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    struct persona p;
    const char *err = persona_parse(copy, size, &p);
    free(copy);
    if (err != NULL) {
        if (p.name != NULL || p.obj != NULL)
            abort(); /* a refusal leaves nothing to free */
        return 0;
    }
    if (p.name_len < 1 || p.name_len > PERSONA_NAME_MAX_BYTES || strlen(p.name) != p.name_len ||
        !persona_utf8_valid((const unsigned char *)p.name, p.name_len))
        abort();
    if (p.obj_len != strlen(p.obj) || p.etag != snapshot_hash(p.obj, p.obj_len))
        abort();
    /* Canonical form is a fixed point: the object is itself a persona file. */
    struct persona q;
    if (persona_parse(p.obj, p.obj_len, &q) != NULL)
        abort();
    if (q.name_len != p.name_len || memcmp(q.name, p.name, p.name_len) != 0 ||
        q.obj_len != p.obj_len || memcmp(q.obj, p.obj, p.obj_len) != 0)
        abort();
    persona_free(&q);
    char *ev = persona_event_json("cluster.updated", p.name);
    free(ev);
    persona_free(&p);
    return 0;
}
