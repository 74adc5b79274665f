/*
 * fuzz_snapshot - libFuzzer target: a worker reading a corrupt snapshot from
 * shared memory.
 *
 * The master's real writer formats the segment (snapshot_init, set_epoch)
 * and publishes one or two blobs built by snapshot_build_epoch; then the
 * input overwrites bytes of the header and of the published blob, as a bug
 * or a hostile process with write access to the segment could.  The worker's
 * real reader then attaches and takes a copy through snap_cache_current (the
 * copy, snapshot_blob_valid), and reads what rest_api_list and
 * rest_api_cluster would send: the list, every entry's name and object, and
 * snapshot_find of each name.  Every read is of the private copy, whose
 * exact size ASan knows; an offset that points outside it is a report.
 *
 * Input: byte 0: clusters (0-4) and whether a second generation is
 * published; byte 1: seq; then mutations of 11 bytes: where (bit 7: header,
 * else the current blob; bits 0-1: 1, 2, 4 or 8 bytes), a 16-bit offset, a
 * 64-bit value (little-endian).
 */
#include "build_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "shm/snapshot.h"
#include "worker/snap_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HALF_BYTES 4096

static const char *const names[] = {"a", "b-prod", "c\xc3\xa9", "zz"};

static volatile uint64_t sink; /* keeps the reads */

static void
read_bytes(const uint8_t *p, size_t n)
{
    sink += snapshot_hash(p, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    log_set_level(LOG_LEVEL_ERROR); /* "snapshot ... is malformed" for most inputs */
    uint32_t count = data[0] % 5;
    int twice = (data[0] >> 3) & 1;
    struct snap_item items[4];
    char objs[4][64];
    for (uint32_t i = 0; i < count; i++) {
        int n = snprintf(objs[i], sizeof(objs[i]), "{\"name\":\"%s\",\"spec\":{\"n\":%u}}",
                         names[i], i);
        items[i] =
            (struct snap_item){names[i], (uint32_t)strlen(names[i]), objs[i], (uint32_t)n, 0};
    }
    size_t mem_bytes = snapshot_bytes(HALF_BYTES);
    uint8_t *mem = calloc(1, mem_bytes); /* 16-byte aligned: enough for the atomics */
    if (mem == NULL)
        return 0;
    struct snapshot w;
    snapshot_init(&w, mem, HALF_BYTES);
    if (snapshot_set_epoch(&w, "fuzz1") != 0)
        abort();
    for (int g = 0; g <= twice; g++) {
        size_t len;
        uint8_t *blob = snapshot_build_epoch(items, count - (uint32_t)(g < twice && count > 0),
                                             data[1] + (uint64_t)g, "fuzz1", &len);
        if (blob == NULL || snapshot_publish(&w, blob, len) != SNAPSHOT_OK)
            abort();
        free(blob);
    }
    /* The current blob: the half of the newest generation. */
    uint8_t *cur = mem + sizeof(struct snap_header) + (size_t)(w.gen & 1) * HALF_BYTES;
    for (size_t at = 2; at + 11 <= size; at += 11) {
        size_t width = (size_t)1 << (data[at] & 3);
        size_t off = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        uint8_t *base = (data[at] & 0x80) ? mem : cur;
        size_t room = (data[at] & 0x80) ? sizeof(struct snap_header) : HALF_BYTES;
        off %= room - width + 1;
        memcpy(base + off, data + at + 3, width); /* little-endian hosts: the low bytes */
    }

    struct snapshot r;
    if (snapshot_attach(&r, mem, mem_bytes) == 0) {
        if (strlen(snapshot_epoch(&r)) > SNAP_EPOCH_MAX)
            abort();
        int64_t now = 1000;
        struct snap_cache c;
        snap_cache_init(&c, &r, &now, 30000, 0);
        struct snap_ref *ref = snap_cache_current(&c);
        if (ref != NULL) {
            const uint8_t *blob = snap_cache_blob(ref);
            const struct snap_blob *b = snapshot_blob_header(blob);
            read_bytes(blob + b->list_off, b->list_len); /* GET /api/clusters */
            sink += snapshot_list_etag(blob);
            const struct snap_entry *e = snapshot_blob_entries(blob);
            for (uint32_t i = 0; i < b->count; i++) { /* GET /api/clusters/{name} */
                read_bytes(blob + e[i].name_off, e[i].name_len);
                read_bytes(blob + e[i].obj_off, e[i].obj_len);
                char name[256];
                size_t n = e[i].name_len < sizeof(name) ? e[i].name_len : sizeof(name);
                memcpy(name, blob + e[i].name_off, n);
                const struct snap_entry *f = snapshot_find(blob, name, n);
                if (f != NULL)
                    read_bytes(blob + f->obj_off, f->obj_len);
            }
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                const struct snap_entry *f = snapshot_find(blob, names[i], strlen(names[i]));
                if (f != NULL)
                    read_bytes(blob + f->obj_off, f->obj_len);
            }
        }
        snap_cache_release(&c);
    }
    free(mem);
    return 0;
}
