/*
 * shm32 - shm/ on a 32-bit size_t (issue 8, item 9), built with `cc -m32` by
 * tests/shm32.sh (skipped where -m32 cannot link).  libcheck has no 32-bit
 * build here, so this is a plain driver: each case runs in a forked child, and
 * a crash counts as a failure.
 *
 * The cases feed sizes whose 32-bit sums wrap: snapshot index offsets plus
 * lengths, count * sizeof(entry), snapshot_bytes/ring_bytes of huge halves or
 * slot counts, snapshot_build items over 4 GiB in total, and headers of the
 * same kind to ring_attach/snapshot_attach.  The last case maps the objects
 * read-only as a worker does and reads them (64-bit atomic loads on i386 must
 * not be read-modify-writes) and checks that a write faults.  The ring's
 * byte ring gets payloads of every size across its end, page release on a
 * shared mapping, and index offsets that would wrap a 32-bit pointer.
 */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#include "build_config.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/shm_map.h"
#include "shm/snapshot.h"
#include "shm/stats.h"

static int failed_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
            failed_checks++;                                                                       \
        }                                                                                          \
    } while (0)

/* An 8-byte aligned blob with a zeroed header and room for entries. */
static union {
    uint64_t align;
    uint8_t bytes[4096];
} blob;

static struct snap_blob *
blob_hdr(void)
{
    memset(blob.bytes, 0, sizeof(blob.bytes));
    return (struct snap_blob *)(void *)blob.bytes;
}

static void
case_blob_valid_wraps(void)
{
    /* list_off + list_len = 2^32 + 0x100: 0x100 in 32 bits, inside the blob. */
    struct snap_blob *b = blob_hdr();
    b->names_off = 32;
    b->list_off = 0xffffff00u;
    b->list_len = 0x200;
    CHECK(!snapshot_blob_valid(blob.bytes, sizeof(blob.bytes)));

    /* 32 + count * 24 = 2^32 + 40: 40 in 32 bits, so names at 40 "fit", and
     * the entry loop would run off the page (the next one is PROT_NONE). */
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *pg =
        mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pg != MAP_FAILED);
    if (pg == MAP_FAILED)
        return;
    CHECK(mprotect(pg + page, (size_t)page, PROT_NONE) == 0);
    struct snap_blob *gb = (struct snap_blob *)(void *)pg;
    gb->count = 0x0aaaaaabu;
    gb->names_off = gb->list_off = 40;
    gb->list_len = 0;
    /* Entries {name_off 40, name_len 0, obj_off 40, obj_len 0}, each valid on
     * its own, up to the last word of the page (a partial entry included). */
    uint32_t *words = (uint32_t *)(void *)(pg + sizeof(*gb));
    size_t nwords = ((size_t)page - sizeof(*gb)) / 4;
    for (size_t i = 0; i < nwords; i++)
        words[i] = i % 6 == 0 || i % 6 == 2 ? 40 : 0;
    CHECK(!snapshot_blob_valid(pg, (size_t)page));

    /* One entry whose name and object run past 4 GiB. */
    struct snap_entry *e = (struct snap_entry *)(void *)(blob.bytes + sizeof(struct snap_blob));
    b = blob_hdr();
    b->count = 1;
    b->names_off = 56;
    b->list_off = 64;
    b->list_len = 64;
    e->name_off = 60;
    e->name_len = 0xfffffff8u; /* 60 + that = 2^32 + 52 */
    e->obj_off = 64;
    e->obj_len = 8;
    CHECK(!snapshot_blob_valid(blob.bytes, sizeof(blob.bytes)));
    e->name_off = 56;
    e->name_len = 4;
    e->obj_off = 0xfffffff0u; /* 2^32 - 16 + 32 = 2^32 + 16 */
    e->obj_len = 32;
    CHECK(!snapshot_blob_valid(blob.bytes, sizeof(blob.bytes)));
    e->obj_off = 64;
    CHECK(snapshot_blob_valid(blob.bytes, sizeof(blob.bytes))); /* the sane one passes */
}

static void
case_bytes_saturate(void)
{
    CHECK(sizeof(size_t) == 4);
    /* 2 * 2^31 + header wraps to the header alone: a 128-byte mapping. */
    CHECK(snapshot_bytes((uint64_t)1 << 31) == SIZE_MAX);
    CHECK(snapshot_bytes((uint64_t)1 << 34) == SIZE_MAX);
    CHECK(snapshot_bytes(UINT64_MAX) == SIZE_MAX);
    CHECK(snapshot_bytes((uint64_t)1 << 30) == sizeof(struct snap_header) + ((size_t)2 << 30));
    /* 2^21 slots of 2 KiB = 4 GiB. */
    CHECK(ring_bytes(1u << 21) == SIZE_MAX);
    CHECK(ring_bytes(1u << 20) == sizeof(struct ring_header) + ((size_t)1 << 31));
}

static void
case_attach_rejects_wrapping_sizes(void)
{
    static union {
        uint64_t align;
        uint8_t bytes[sizeof(struct ring_header) + 2 * RING_SLOT_BYTES];
    } mem;
    struct ring r, r2;
    ring_init(&r, mem.bytes, 2);
    CHECK(ring_attach(&r2, mem.bytes, sizeof(mem.bytes)) == 0);
    r.hdr->slot_count = 1u << 21; /* 64 + 2^32 bytes: 64 in 32 bits */
    CHECK(ring_attach(&r2, mem.bytes, sizeof(mem.bytes)) == -1);

    static union {
        uint64_t align;
        uint8_t bytes[sizeof(struct snap_header) + 2 * 4096];
    } smem;
    struct snapshot s, s2;
    snapshot_init(&s, smem.bytes, 4096);
    CHECK(snapshot_attach(&s2, smem.bytes, sizeof(smem.bytes)) == 0);
    s.hdr->half_bytes = (uint64_t)1 << 31; /* 2 * 2^31 + 128: 128 in 32 bits */
    CHECK(snapshot_attach(&s2, smem.bytes, sizeof(smem.bytes)) == -1);
}

static void
case_build_over_4gib(void)
{
    /* Three objects of 0xaaaaaaab bytes: 2^33 + 1 bytes of list, 1 in 32 bits.
     * Only 16 bytes exist; snapshot_build must refuse before copying any. */
    static const char obj[16] = "{}";
    struct snap_item items[3];
    for (int i = 0; i < 3; i++)
        items[i] = (struct snap_item){"n", 1, obj, 0xaaaaaaabu, 1};
    size_t len = 0;
    uint8_t *b = snapshot_build(items, 3, 1, &len);
    CHECK(b == NULL);
    free(b);
}

static void
case_readonly_mapping(void)
{
    char rname[64], sname[64];
    snprintf(rname, sizeof(rname), "/personad-shm32-%ld-ring", (long)getpid());
    snprintf(sname, sizeof(sname), "/personad-shm32-%ld-snapshot", (long)getpid());
    size_t rbytes = ring_bytes(16), sbytes = snapshot_bytes(4096);
    const char *call = "?";
    int ring_fd, snap_fd;
    void *rmem = shm_map_create(rname, rbytes, &ring_fd, &call);
    CHECK(rmem != NULL);
    void *smem = shm_map_create(sname, sbytes, &snap_fd, &call);
    CHECK(smem != NULL);
    if (rmem == NULL || smem == NULL)
        return;
    struct ring r;
    struct snapshot s;
    ring_init(&r, rmem, 16);
    snapshot_init(&s, smem, 4096);
    CHECK(ring_append(&r, RING_EVENT_ADDED, "hello", 5) == 1);
    CHECK(snapshot_publish(&s, "blob", 4) == SNAPSHOT_OK);
    CHECK(shm_map_readonly(rmem, rbytes, ring_fd) == 0);
    CHECK(shm_map_readonly(smem, sbytes, snap_fd) == 0);
    uint8_t buf[RING_PAYLOAD_MAX];
    uint32_t len, type;
    CHECK(ring_head(&r) == 1);
    CHECK(ring_read(&r, 1, buf, &len, &type) == RING_OK && len == 5 &&
          memcmp(buf, "hello", 5) == 0);
    uint8_t *copy = NULL;
    size_t clen = 0;
    uint64_t gen = 0;
    CHECK(snapshot_copy(&s, 0, &copy, &clen, &gen) == SNAPSHOT_OK && clen == 4 && gen == 1);
    free(copy);
    CHECK(mprotect(rmem, rbytes, PROT_READ | PROT_WRITE) == -1);
    pid_t pid = fork();
    if (pid == 0) {
        ((volatile uint8_t *)smem)[0] = 1;
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
}

/* The bytes of ring event seq (differ from every other seq's). */
static void
ring_pattern(uint64_t seq, uint8_t *buf, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(seq * 131u + k * 7u + (k >> 8));
}

static uint32_t
ring_len(uint64_t seq)
{
    return seq % 3 == 0 ? RING_PAYLOAD_MAX - (uint32_t)(seq % 2) : (uint32_t)(seq * 37 % 150);
}

/* Read the window of ring r (newest head) and check every payload. */
static void
ring_check_window(const struct ring *r, uint64_t head)
{
    static uint8_t buf[RING_PAYLOAD_MAX], want[RING_PAYLOAD_MAX];
    uint32_t len = 0, type = 0;
    uint64_t oldest = ring_oldest(r, head);
    CHECK(oldest == (head >= r->slot_count ? head - r->slot_count + 1 : 1));
    for (uint64_t q = oldest; q <= head; q++) {
        ring_pattern(q, want, ring_len(q));
        CHECK(ring_read(r, q, buf, &len, &type) == RING_OK && len == ring_len(q) &&
              type == RING_EVENT_UPDATED && memcmp(buf, want, len) == 0);
    }
    if (oldest > 1)
        CHECK(ring_read(r, oldest - 1, buf, &len, &type) == RING_OVERRUN);
}

static void
case_ring_variable_sizes(void)
{
    /* Payloads of 0 to RING_PAYLOAD_MAX bytes that straddle the end of the
     * data area, many laps, in a shared mapping (dead pages released); then a
     * corrupt entry whose offset would wrap a 32-bit pointer. */
    char name[64];
    snprintf(name, sizeof(name), "/personad-shm32-%ld-vring", (long)getpid());
    const uint32_t slots = 32;
    size_t bytes = ring_bytes(slots);
    const char *call = "?";
    int ro_fd;
    void *mem = shm_map_create(name, bytes, &ro_fd, &call);
    CHECK(mem != NULL);
    if (mem == NULL)
        return;
    struct ring r;
    ring_init(&r, mem, slots);
    CHECK(ring_releases(&r) == 0);
    static uint8_t buf[RING_PAYLOAD_MAX];
    for (uint64_t s = 1; s <= slots * 50; s++) {
        ring_pattern(s, buf, ring_len(s));
        CHECK(ring_append(&r, RING_EVENT_UPDATED, buf, ring_len(s)) == (int64_t)s);
        ring_check_window(&r, s);
    }
    CHECK(r.release_calls > 0);
    CHECK(shm_map_readonly(mem, bytes, ro_fd) == 0);
    ring_check_window(&r, slots * 50);
    /* Back to a writable private copy to corrupt entries (heap memory). */
    uint8_t *heap = calloc(1, bytes);
    CHECK(heap != NULL);
    if (heap == NULL)
        return;
    memcpy(heap, mem, bytes);
    struct ring rd;
    CHECK(ring_attach(&rd, heap, bytes) == 0);
    uint64_t head = ring_head(&rd);
    struct ring_entry *e = &rd.index[(head - 1) % slots];
    uint32_t len = 0, type = 0;
    const uint32_t bad_off[] = {UINT32_MAX, UINT32_MAX - RING_PAYLOAD_MAX,
                                slots * RING_PAYLOAD_MAX};
    for (size_t k = 0; k < sizeof(bad_off) / sizeof(bad_off[0]); k++) {
        atomic_store(&e->off, bad_off[k]);
        CHECK(ring_read(&rd, head, buf, &len, &type) == RING_OVERRUN);
    }
    atomic_store(&e->off, slots * RING_PAYLOAD_MAX - 1);
    atomic_store(&e->len_type, RING_PAYLOAD_MAX | (uint32_t)RING_EVENT_ADDED << 16);
    CHECK(ring_read(&rd, head, buf, &len, &type) == RING_OK && len == RING_PAYLOAD_MAX);
    free(heap);
    CHECK(munmap(mem, bytes) == 0);
}

struct test_case {
    const char *name;
    void (*fn)(void);
};

/* The stats area on i386: sizes in 64 bits, 64-bit counters past 2^32
 * summed whole, and a worker's mapping (its own slot writable, another
 * slot's page faulting) with loads only. */
static void
case_stats(void)
{
    CHECK(stats_bytes(STATS_MAX_SLOTS, 1u << 31) == SIZE_MAX);
    char name[64];
    snprintf(name, sizeof(name), "/personad-shm32-%ld-stats", (long)getpid());
    size_t bytes = stats_bytes(3, 4096);
    const char *call = "?";
    int ro_fd;
    void *mem = shm_map_create(name, bytes, &ro_fd, &call);
    CHECK(mem != NULL);
    if (mem == NULL)
        return;
    struct stats s;
    stats_init(&s, mem, 3, 4096, 1);
    stats_add(stats_slot(&s, 1), STATS_BYTES_WRITTEN, UINT64_C(0xffffffff));
    stats_add(stats_slot(&s, 1), STATS_BYTES_WRITTEN, 2);
    stats_add(stats_slot(&s, 2), STATS_BYTES_WRITTEN, UINT64_C(1) << 40);
    CHECK(stats_sum(&s, STATS_BYTES_WRITTEN, 1, 3) == UINT64_C(0x100000001) + (UINT64_C(1) << 40));
    pid_t pid = fork();
    if (pid == 0) {
        if (stats_map_worker(&s, 1, ro_fd) != 0)
            _exit(3);
        stats_add(stats_slot(&s, 1), STATS_BYTES_WRITTEN, 1);
        if (stats_sum(&s, STATS_BYTES_WRITTEN, 0, 3) != UINT64_C(0x100000002) + (UINT64_C(1) << 40))
            _exit(4);
        stats_add(stats_slot(&s, 2), STATS_BYTES_WRITTEN, 1); /* faults */
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    CHECK(stats_get(stats_slot(&s, 1), STATS_BYTES_WRITTEN) == UINT64_C(0x100000002));
    (void)close(ro_fd);
    (void)munmap(mem, bytes);
}

static const struct test_case cases[] = {
    {"blob_valid_wraps", case_blob_valid_wraps},
    {"bytes_saturate", case_bytes_saturate},
    {"attach_rejects_wrapping_sizes", case_attach_rejects_wrapping_sizes},
    {"build_over_4gib", case_build_over_4gib},
    {"readonly_mapping", case_readonly_mapping},
    {"stats", case_stats},
    {"ring_variable_sizes", case_ring_variable_sizes},
};

int
main(void)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 99;
        }
        if (pid == 0) {
            cases[i].fn();
            _exit(failed_checks == 0 ? 0 : 1);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid) {
            perror("waitpid");
            return 99;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("PASS %s\n", cases[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(st))
                printf("FAIL %s (killed by signal %d)\n", cases[i].name, WTERMSIG(st));
            else
                printf("FAIL %s\n", cases[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
