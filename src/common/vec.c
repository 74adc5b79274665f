/*
 * vec - see vec.h.
 */
#include "build_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/vec.h"

void *
vec_insert(void *items, size_t *n, size_t *cap, size_t size, size_t at, void **slot)
{
    if (*n == *cap) {
        size_t want = *cap ? *cap * 2 : 64;
        if (want < *cap || want > SIZE_MAX / size)
            return NULL;
        void *grown = realloc(items, want * size);
        if (grown == NULL)
            return NULL;
        items = grown;
        *cap = want;
    }
    char *base = items;
    memmove(base + (at + 1) * size, base + at * size, (*n - at) * size);
    (*n)++;
    memset(base + at * size, 0, size);
    *slot = base + at * size;
    return items;
}

void
vec_remove(void *items, size_t *n, size_t size, size_t at)
{
    char *base = items;
    memmove(base + at * size, base + (at + 1) * size, (*n - at - 1) * size);
    (*n)--;
}
