/*
 * snapshot - see snapshot.h.
 *
 * WARNING: shared-memory code.  Memory-ordering argument (the same seqlock as
 * ring.c, per half):
 *
 *  Writer, publishing generation g into half h = g & 1 (the half readers are
 *  not directed to, since the current generation g-1 lives in the other one):
 *    1. half[h].gen = 0 (relaxed); release fence
 *    2. copy the blob; half[h].blob_bytes = len
 *    3. half[h].gen = g (release)
 *    4. hdr.gen = g (release)
 *
 *  Reader:
 *    a. g = hdr.gen (acquire); h = g & 1
 *    b. v1 = half[h].gen (acquire); v1 != g -> retry (the writer lapped us)
 *    c. copy blob_bytes and the blob
 *    d. acquire fence; v2 = half[h].gen (relaxed); v2 != g -> retry
 *
 *  The writer only touches half h again when publishing g + 2, and step 1 of
 *  that publish is ordered before its copy, so a reader that still sees v2 == g
 *  after its copy has a whole blob.
 *
 *  Trust: half offsets and the bound on blob_bytes come from half_bytes cached
 *  in struct snapshot, and the writer counts generations in its own struct; the
 *  header's gen words and blob_bytes are read, never believed beyond those
 *  bounds.  Readers only load, so a read-only mapping is enough for them.
 */
#include "build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

#define SNAPSHOT_READ_RETRIES 64

/* The mapping's size for half_bytes in 64 bits: UINT64_MAX on overflow. */
static uint64_t
bytes_u64(uint64_t half_bytes)
{
    if (half_bytes > (UINT64_MAX - sizeof(struct snap_header)) / 2)
        return UINT64_MAX;
    return sizeof(struct snap_header) + 2 * half_bytes;
}

size_t
snapshot_bytes(uint64_t half_bytes)
{
    uint64_t n = bytes_u64(half_bytes);
#if SIZE_MAX < UINT64_MAX
    if (n > SIZE_MAX)
        return SIZE_MAX;
#endif
    return (size_t)n;
}

/* Half h (0 or 1).  half_bytes was mapped twice, so h * half_bytes fits a size_t. */
static uint8_t *
half_at(const struct snapshot *s, uint64_t h)
{
    return s->halves + (size_t)(h * s->half_bytes);
}

void
snapshot_init(struct snapshot *s, void *mem, uint64_t half_bytes)
{
    s->hdr = mem;
    s->halves = (uint8_t *)(s->hdr + 1);
    s->half_bytes = half_bytes;
    s->gen = 0;
    s->epoch[0] = '\0';
    memset(s->hdr, 0, sizeof(*s->hdr));
    s->hdr->magic = SNAP_MAGIC;
    s->hdr->version = SNAP_VERSION;
    s->hdr->half_bytes = half_bytes;
    atomic_store_explicit(&s->hdr->gen, 0, memory_order_release);
}

int
snapshot_attach(struct snapshot *s, void *mem, size_t mem_bytes)
{
    struct snap_header *h = mem;
    if (mem_bytes < sizeof(*h))
        return -1;
    /* Read once: what is checked is what is cached. */
    uint64_t half_bytes = h->half_bytes;
    if (h->magic != SNAP_MAGIC || h->version != SNAP_VERSION ||
        bytes_u64(half_bytes) > (uint64_t)mem_bytes)
        return -1;
    char epoch[SNAP_EPOCH_MAX + 1];
    uint8_t elen = h->epoch_len;
    if (elen > SNAP_EPOCH_MAX)
        return -1;
    memcpy(epoch, h->epoch, elen); /* copied, then checked: what is checked is what is kept */
    if (elen > 0 && !snapshot_epoch_valid(epoch, elen))
        return -1;
    epoch[elen] = '\0';
    s->hdr = h;
    s->halves = (uint8_t *)(h + 1);
    s->half_bytes = half_bytes;
    memcpy(s->epoch, epoch, (size_t)elen + 1);
    s->gen = atomic_load_explicit(&h->gen, memory_order_acquire);
    return 0;
}

uint64_t
snapshot_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t
snapshot_list_etag(const uint8_t *blob)
{
    const struct snap_blob *b = snapshot_blob_header(blob);
    const struct snap_entry *e = snapshot_blob_entries(blob);
    uint64_t h = snapshot_hash(&b->seq, sizeof(b->seq));
    for (uint32_t i = 0; i < b->count; i++) {
        uint64_t x = e[i].etag;
        for (int k = 0; k < 8; k++) {
            h ^= (uint8_t)(x >> (8 * k));
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

int
snapshot_epoch_valid(const char *e, size_t len)
{
    if (len == 0 || len > SNAP_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = e[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int
snapshot_set_epoch(struct snapshot *s, const char *epoch)
{
    size_t len = strlen(epoch);
    if (!snapshot_epoch_valid(epoch, len))
        return -1;
    memcpy(s->hdr->epoch, epoch, len);
    s->hdr->epoch_len = (uint8_t)len;
    memcpy(s->epoch, epoch, len);
    s->epoch[len] = '\0';
    return 0;
}

uint8_t *
snapshot_build(const struct snap_item *items, uint32_t count, uint64_t seq, size_t *blob_len)
{
    return snapshot_build_epoch(items, count, seq, NULL, blob_len);
}

uint8_t *
snapshot_build_epoch(const struct snap_item *items, uint32_t count, uint64_t seq, const char *epoch,
                     size_t *blob_len)
{
    static const char head[] = "{\"clusters\":[";
    char tail[48 + SNAP_EPOCH_MAX];
    size_t elen = epoch != NULL ? strlen(epoch) : 0;
    if (elen > 0 && !snapshot_epoch_valid(epoch, elen))
        return NULL;
    int tail_len = elen > 0
                       ? snprintf(tail, sizeof(tail), "],\"seq\":%llu,\"epoch\":\"%s\"}",
                                  (unsigned long long)seq, epoch)
                       : snprintf(tail, sizeof(tail), "],\"seq\":%llu}", (unsigned long long)seq);
    if (tail_len < 0 || (size_t)tail_len >= sizeof(tail))
        return NULL;
    /* 64-bit sums: at most 2^32 items of two 32-bit lengths each, no wrap, and
     * the 4 GiB check below holds on a 32-bit size_t too. */
    uint64_t names = 0, list = sizeof(head) - 1 + (uint64_t)tail_len;
    for (uint32_t i = 0; i < count; i++) {
        names += items[i].name_len;
        list += (uint64_t)items[i].obj_len + (i > 0);
    }
    uint64_t names_off = sizeof(struct snap_blob) + (uint64_t)count * sizeof(struct snap_entry);
    uint64_t list_off = names_off + names;
    uint64_t total = list_off + list;
    if (total > UINT32_MAX || total > SIZE_MAX)
        return NULL;
    uint8_t *blob = malloc((size_t)total);
    if (blob == NULL)
        return NULL;
    struct snap_blob *b = (struct snap_blob *)(void *)blob;
    struct snap_entry *e = (struct snap_entry *)(void *)(b + 1);
    uint8_t *np = blob + names_off;
    uint8_t *lp = blob + list_off;
    memcpy(lp, head, sizeof(head) - 1);
    lp += sizeof(head) - 1;
    for (uint32_t i = 0; i < count; i++) {
        if (i > 0)
            *lp++ = ',';
        e[i].name_off = (uint32_t)(np - blob);
        e[i].name_len = items[i].name_len;
        memcpy(np, items[i].name, items[i].name_len);
        np += items[i].name_len;
        e[i].obj_off = (uint32_t)(lp - blob);
        e[i].obj_len = items[i].obj_len;
        e[i].etag =
            items[i].etag != 0 ? items[i].etag : snapshot_hash(items[i].obj, items[i].obj_len);
        memcpy(lp, items[i].obj, items[i].obj_len);
        lp += items[i].obj_len;
    }
    memcpy(lp, tail, (size_t)tail_len);
    b->seq = seq;
    b->count = count;
    b->names_off = (uint32_t)names_off;
    b->list_off = (uint32_t)list_off;
    b->list_len = (uint32_t)list;
    b->list_etag = snapshot_list_etag(blob);
    for (size_t i = 0; i < elen; i++) { /* FNV-1a continued over the epoch */
        b->list_etag ^= (uint8_t)epoch[i];
        b->list_etag *= 0x100000001b3ull;
    }
    *blob_len = (size_t)total;
    return blob;
}

enum snapshot_status
snapshot_publish(struct snapshot *s, const void *blob, size_t len)
{
    if ((uint64_t)len > s->half_bytes)
        return SNAPSHOT_TOOBIG;
    uint64_t g = s->gen + 1;
    struct snap_half_meta *m = &s->hdr->half[g & 1];
    atomic_store_explicit(&m->gen, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(half_at(s, g & 1), blob, len);
    m->blob_bytes = len;
    atomic_store_explicit(&m->gen, g, memory_order_release);
    atomic_store_explicit(&s->hdr->gen, g, memory_order_release);
    s->gen = g;
    return SNAPSHOT_OK;
}

uint64_t
snapshot_generation(const struct snapshot *s)
{
    return atomic_load_explicit(&s->hdr->gen, memory_order_acquire);
}

void
snapshot_set_flags(struct snapshot *s, uint32_t flags)
{
    atomic_store_explicit(&s->hdr->flags, flags, memory_order_release);
}

uint32_t
snapshot_flags(const struct snapshot *s)
{
    return atomic_load_explicit(&s->hdr->flags, memory_order_acquire);
}

enum snapshot_status
snapshot_copy(const struct snapshot *s, uint64_t known_gen, uint8_t **blob, size_t *len,
              uint64_t *gen)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int attempt = 0; attempt < SNAPSHOT_READ_RETRIES; attempt++) {
        uint64_t g = snapshot_generation(s);
        if (g == known_gen) {
            free(buf);
            return SNAPSHOT_UNCHANGED;
        }
        const struct snap_half_meta *m = &s->hdr->half[g & 1];
        if (atomic_load_explicit(&m->gen, memory_order_acquire) != g)
            continue;
        uint64_t bytes = m->blob_bytes;
        if (bytes > s->half_bytes)
            continue;             /* torn or bogus length: never copy past the half */
        size_t n = (size_t)bytes; /* <= half_bytes, which was mapped, so it fits */
        if (buf == NULL || n > cap) { /* 0 bytes (a corrupt header) get a buffer too */
            free(buf);
            buf = malloc(n ? n : 1);
            if (buf == NULL)
                return SNAPSHOT_NOMEM;
            cap = n;
        }
        memcpy(buf, half_at(s, g & 1), n);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&m->gen, memory_order_relaxed) != g)
            continue;
        *blob = buf;
        *len = n;
        *gen = g;
        return SNAPSHOT_OK;
    }
    free(buf);
    return SNAPSHOT_BUSY;
}

int
snapshot_blob_valid(const uint8_t *blob, size_t len)
{
    if (len < sizeof(struct snap_blob))
        return 0;
    const struct snap_blob *b = snapshot_blob_header(blob);
    /* Every sum in 64 bits: 32-bit offsets plus 32-bit lengths (and count * 24)
     * would wrap a 32-bit size_t and pass the checks. */
    uint64_t n = len;
    uint64_t index_end = sizeof(*b) + (uint64_t)b->count * sizeof(struct snap_entry);
    uint64_t list_end = (uint64_t)b->list_off + b->list_len;
    if (index_end > n || b->names_off < index_end || b->list_off < b->names_off || list_end > n)
        return 0;
    const struct snap_entry *e = snapshot_blob_entries(blob);
    for (uint32_t i = 0; i < b->count; i++) {
        if ((uint64_t)e[i].name_off + e[i].name_len > b->list_off || e[i].name_off < b->names_off ||
            e[i].obj_off < b->list_off || (uint64_t)e[i].obj_off + e[i].obj_len > list_end)
            return 0;
    }
    return 1;
}

int
snapshot_name_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

const struct snap_entry *
snapshot_find(const uint8_t *blob, const char *name, size_t name_len)
{
    const struct snap_blob *b = snapshot_blob_header(blob);
    const struct snap_entry *e = snapshot_blob_entries(blob);
    size_t lo = 0, hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = snapshot_name_cmp(blob + e[mid].name_off, e[mid].name_len, name, name_len);
        if (c == 0)
            return &e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
