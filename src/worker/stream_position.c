/*
 * stream_position - see stream_position.h.
 */
#include "build_config.h"

#include <stdio.h>
#include <string.h>

#include "shm/snapshot.h"
#include "worker/stream_position.h"

static int
parse_seq(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > STREAM_POS_SEQ_DIGITS_MAX)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static enum stream_pos_status
pos_set(const char *since, size_t since_len, const char *epoch, size_t epoch_len,
        struct stream_pos *pos, const char **why)
{
    if (parse_seq(since, since_len, &pos->seq) != 0) {
        *why = "since must be a decimal seq of at most 20 digits";
        return STREAM_POS_BAD;
    }
    if (!snapshot_epoch_valid(epoch, epoch_len)) {
        *why = "epoch must be 1-32 characters of [A-Za-z0-9_-]";
        return STREAM_POS_BAD;
    }
    memcpy(pos->epoch, epoch, epoch_len);
    pos->epoch[epoch_len] = '\0';
    return STREAM_POS_OK;
}

enum stream_pos_status
stream_pos_from_query(const char *since, const char *epoch, struct stream_pos *pos,
                      const char **why)
{
    if (since == NULL && epoch == NULL)
        return STREAM_POS_NONE;
    if (since == NULL || epoch == NULL) {
        *why = "since and epoch go together";
        return STREAM_POS_BAD;
    }
    return pos_set(since, strlen(since), epoch, strlen(epoch), pos, why);
}

enum stream_pos_status
stream_pos_from_event_id(const char *id, struct stream_pos *pos, const char **why)
{
    if (id == NULL)
        return STREAM_POS_NONE;
    const char *colon = strchr(id, ':');
    if (colon == NULL) {
        *why = "Last-Event-ID must be epoch:seq";
        return STREAM_POS_BAD;
    }
    return pos_set(colon + 1, strlen(colon + 1), id, (size_t)(colon - id), pos, why);
}

void
stream_pos_decide(const struct stream_pos *pos, const char *epoch, uint64_t head, uint64_t capacity,
                  struct stream_start *st)
{
    st->live_seq = head + 1;
    st->first_seq = head + 1;
    st->resync = 0;
    if (pos == NULL)
        return;
    /* Every event after N is still in the ring: head - capacity <= N <= head. */
    if (strcmp(pos->epoch, epoch) == 0 && pos->seq <= head && head - pos->seq <= capacity)
        st->first_seq = pos->seq + 1;
    else
        st->resync = 1;
}

uint64_t
stream_pos_ring_capacity(const struct ring *r)
{
    return r->slot_count;
}

size_t
stream_pos_resync_json(char *out, size_t cap, uint64_t head, const char *epoch)
{
    int n = snprintf(out, cap, "{\"type\":\"resync\",\"data\":{\"seq\":%llu,\"epoch\":\"%s\"}}",
                     (unsigned long long)head, epoch);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

enum stream_replay_status
stream_replay_fill(struct stream_replay *rp, const struct ring *r, enum stream_proto proto,
                   const char *epoch, uint64_t *seq, uint64_t end, uint64_t *events)
{
    uint8_t payload[RING_PAYLOAD_MAX];
    rp->len = rp->off = rp->events = 0;
    while (*seq < end) {
        uint32_t len, type;
        if (ring_read(r, *seq, payload, &len, &type) != RING_OK)
            break; /* lapped (or, never, not yet published): what is buffered goes first */
        size_t size = event_encode_size(proto, *seq, epoch, payload, len);
        if (size > sizeof(rp->buf) - rp->len)
            break; /* the next event does not fit: next time (it is in the ring until lapped) */
        rp->len += (uint32_t)event_encode(proto, rp->buf + rp->len, *seq, epoch, payload, len);
        (*seq)++;
        (*events)++;
        rp->events++;
    }
    return rp->len > 0 ? STREAM_REPLAY_OK : STREAM_REPLAY_LAPPED;
}
