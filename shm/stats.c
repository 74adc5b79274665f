/*
 * stats - see stats.h.
 */
#include "build_config.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stats.h"

/* Bytes of the header, rounded up to whole pages. */
static uint64_t
header_bytes(uint32_t page_bytes)
{
    uint64_t page = page_bytes;
    return (sizeof(struct stats_header) + page - 1) / page * page;
}

size_t
stats_bytes(uint32_t nslots, uint32_t page_bytes)
{
    if (nslots == 0 || nslots > STATS_MAX_SLOTS || page_bytes < 4096 ||
        (page_bytes & (page_bytes - 1)) != 0)
        return SIZE_MAX;
    uint64_t total = header_bytes(page_bytes) + (uint64_t)nslots * page_bytes;
    return total >= SIZE_MAX ? SIZE_MAX : (size_t)total;
}

void
stats_init(struct stats *s, void *mem, uint32_t nslots, uint32_t page_bytes, uint64_t start_time_s)
{
    s->hdr = mem;
    s->slots = (uint8_t *)mem + header_bytes(page_bytes);
    s->nslots = nslots;
    s->page_bytes = page_bytes;
    s->hdr->magic = STATS_MAGIC;
    s->hdr->version = STATS_VERSION;
    s->hdr->nslots = nslots;
    s->hdr->page_bytes = page_bytes;
    s->hdr->start_time_s = start_time_s;
}

void
stats_set_pid(struct stats *s, uint32_t i, uint64_t pid)
{
    if (i < s->nslots)
        atomic_store_explicit(&s->hdr->pid[i], pid, memory_order_relaxed);
}

int
stats_slot_live(const struct stats *s, uint32_t i)
{
    uint64_t pid = atomic_load_explicit(&s->hdr->pid[i], memory_order_relaxed);
    return pid != 0 && stats_get(stats_slot(s, i), STATS_PID) == pid;
}

uint64_t
stats_sum(const struct stats *s, enum stats_id id, uint32_t first, uint32_t end)
{
    uint64_t sum = 0;
    for (uint32_t i = first; i < end && i < s->nslots; i++)
        sum += stats_get(stats_slot(s, i), id);
    return sum;
}

uint64_t
stats_sum_live(const struct stats *s, enum stats_id id, uint32_t first, uint32_t end)
{
    uint64_t sum = 0;
    for (uint32_t i = first; i < end && i < s->nslots; i++)
        if (stats_slot_live(s, i))
            sum += stats_get(stats_slot(s, i), id);
    return sum;
}

void
stats_slot_takeover(struct stats_slot *sl, uint64_t pid, uint64_t seen_seq)
{
    /* Clear the pid first: no reader takes the predecessor's gauges for ours. */
    stats_set(sl, STATS_PID, 0);
    stats_add(sl, STATS_WS_DROP_WORKER_EXIT, stats_get(sl, STATS_WS_OPEN));
    stats_set(sl, STATS_WS_OPEN, 0);
    stats_add(sl, STATS_SSE_DROP_WORKER_EXIT, stats_get(sl, STATS_SSE_OPEN));
    stats_set(sl, STATS_SSE_OPEN, 0);
    stats_set(sl, STATS_SEEN_SEQ, seen_seq);
    stats_set(sl, STATS_PID, pid);
}

/* Map [off, off + len) of the object read-only over the same addresses. */
static int
map_readonly(const struct stats *s, uint64_t off, uint64_t len, int ro_fd)
{
    if (len == 0)
        return 0;
    void *at = (uint8_t *)(void *)s->hdr + off;
    void *ro = mmap(at, (size_t)len, PROT_READ, MAP_SHARED | MAP_FIXED, ro_fd, (off_t)off);
    return ro == MAP_FAILED ? -1 : 0;
}

int
stats_map_worker(const struct stats *s, uint32_t own, int ro_fd)
{
    uint64_t own_off = header_bytes(s->page_bytes) + (uint64_t)own * s->page_bytes;
    uint64_t end = stats_bytes(s->nslots, s->page_bytes);
    int rc = 0;
    if (own >= s->nslots) {
        errno = EINVAL;
        rc = -1;
    } else if (map_readonly(s, 0, own_off, ro_fd) != 0 ||
               map_readonly(s, own_off + s->page_bytes, end - own_off - s->page_bytes, ro_fd) !=
                   0) {
        rc = -1;
    }
    int saved = errno;
    (void)close(ro_fd);
    errno = saved;
    return rc;
}
