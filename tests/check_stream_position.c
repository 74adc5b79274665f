/*
 * check_stream_position - parsing a position (query and Last-Event-ID, the
 * 400 rules), replay-or-resync, the resync message, the seq encoding, and the
 * replay feeder over a real ring in process memory (lapping included).
 */
#include "build_config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"
#include "worker/event_window.h"
#include "worker/stream_position.h"
#include "worker/ws_frame.h"

START_TEST(query_rules)
{
    struct stream_pos p;
    const char *why = NULL;
    ck_assert_int_eq(stream_pos_from_query(NULL, NULL, &p, &why), STREAM_POS_NONE);
    ck_assert_int_eq(stream_pos_from_query("0", "E_x-9", &p, &why), STREAM_POS_OK);
    ck_assert_uint_eq(p.seq, 0);
    ck_assert_str_eq(p.epoch, "E_x-9");
    ck_assert_int_eq(stream_pos_from_query("18446744073709551615", "a", &p, &why), STREAM_POS_OK);
    ck_assert_uint_eq(p.seq, UINT64_MAX);
    ck_assert_int_eq(stream_pos_from_query("007", "a", &p, &why), STREAM_POS_OK);
    ck_assert_uint_eq(p.seq, 7);
    char e32[33], e33[34];
    memset(e32, 'z', 32), e32[32] = '\0';
    memset(e33, 'z', 33), e33[33] = '\0';
    ck_assert_int_eq(stream_pos_from_query("1", e32, &p, &why), STREAM_POS_OK);
    static const char *const bad[][2] = {
        {"1", NULL},
        {NULL, "a"},
        {"", "a"},
        {"-1", "a"},
        {"+1", "a"},
        {"1.0", "a"},
        {" 1", "a"},
        {"abc", "a"},
        {"0x10", "a"},
        {"18446744073709551616", "a"},
        {"000000000000000000001", "a"},
        {"1", ""},
        {"1", "a:b"},
        {"1", "a b"},
        {"1", "ä"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        ck_assert_msg(stream_pos_from_query(bad[i][0], bad[i][1], &p, &why) == STREAM_POS_BAD,
                      "%s / %s", bad[i][0], bad[i][1]);
        ck_assert_ptr_nonnull(why);
    }
    ck_assert_int_eq(stream_pos_from_query("1", e33, &p, &why), STREAM_POS_BAD);
}
END_TEST

START_TEST(event_id_rules)
{
    struct stream_pos p;
    const char *why = NULL;
    ck_assert_int_eq(stream_pos_from_event_id(NULL, &p, &why), STREAM_POS_NONE);
    ck_assert_int_eq(stream_pos_from_event_id("Ab-_9:42", &p, &why), STREAM_POS_OK);
    ck_assert_uint_eq(p.seq, 42);
    ck_assert_str_eq(p.epoch, "Ab-_9");
    static const char *const bad[] = {"", "42", ":42", "E:", "E:-1", "E:4:2", "E:x", "E :1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(stream_pos_from_event_id(bad[i], &p, &why) == STREAM_POS_BAD, "%s", bad[i]);
}
END_TEST

static struct stream_start
decide(uint64_t since, const char *epoch, uint64_t head, uint64_t cap)
{
    struct stream_pos p = {.seq = since};
    snprintf(p.epoch, sizeof(p.epoch), "%s", epoch);
    struct stream_start st;
    stream_pos_decide(&p, "E", head, cap, &st);
    return st;
}

START_TEST(decide_classes)
{
    struct stream_start st;
    stream_pos_decide(NULL, "E", 100, 10, &st); /* plain: live from head + 1 */
    ck_assert(st.first_seq == 101 && st.live_seq == 101 && !st.resync);
    st = decide(100, "E", 100, 10); /* head */
    ck_assert(st.first_seq == 101 && st.live_seq == 101 && !st.resync);
    st = decide(95, "E", 100, 10);
    ck_assert(st.first_seq == 96 && st.live_seq == 101 && !st.resync);
    st = decide(90, "E", 100, 10); /* the ring's edge exactly: 91..100 are readable */
    ck_assert(st.first_seq == 91 && st.live_seq == 101 && !st.resync);
    st = decide(89, "E", 100, 10); /* too old */
    ck_assert(st.first_seq == 101 && st.live_seq == 101 && st.resync);
    st = decide(101, "E", 100, 10); /* future */
    ck_assert(st.first_seq == 101 && st.resync);
    st = decide(UINT64_MAX, "E", 100, 10);
    ck_assert(st.resync);
    st = decide(100, "F", 100, 10); /* another epoch */
    ck_assert(st.first_seq == 101 && st.resync);
    st = decide(100, "EE", 100, 10);
    ck_assert(st.resync);
    st = decide(0, "E", 5, 10); /* from the very start, all in the ring */
    ck_assert(st.first_seq == 1 && st.live_seq == 6 && !st.resync);
}
END_TEST

START_TEST(resync_json)
{
    char buf[STREAM_POS_RESYNC_MAX];
    size_t n = stream_pos_resync_json(buf, sizeof(buf), 43, "abc");
    ck_assert_str_eq(buf, "{\"type\":\"resync\",\"data\":{\"seq\":43,\"epoch\":\"abc\"}}");
    ck_assert_uint_eq(n, strlen(buf));
    char e32[33];
    memset(e32, 'z', 32), e32[32] = '\0';
    ck_assert_uint_gt(stream_pos_resync_json(buf, sizeof(buf), UINT64_MAX, e32), 0);
    ck_assert_uint_eq(stream_pos_resync_json(buf, 20, 43, "abc"), 0);
}
END_TEST

/* The text frame's payload of proto's encoding. */
static char *
frame_text(enum stream_proto proto, uint64_t seq, const char *payload)
{
    uint32_t len = (uint32_t)strlen(payload);
    size_t size = event_encode_size(proto, seq, "", payload, len);
    uint8_t *out = malloc(size);
    ck_assert_uint_eq(event_encode(proto, out, seq, "", payload, len), size);
    size_t h = ws_frame_header(out, WS_OP_TEXT, 0) == 2 && size - 2 < 126 ? 2 : 4;
    ck_assert_uint_eq(out[0], 0x81);
    char *text = calloc(1, size - h + 1);
    memcpy(text, out + h, size - h);
    free(out);
    return text;
}

START_TEST(seq_encoding)
{
    const char *ev = "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod\"}}";
    char *plain = frame_text(STREAM_PROTO_WS, 43, ev);
    ck_assert_str_eq(plain, ev); /* the seed's bytes */
    char *seq = frame_text(STREAM_PROTO_WS_SEQ, 43, ev);
    ck_assert_str_eq(seq, "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod\"},\"seq\":43}");
    free(plain);
    free(seq);
    /* The window holds the same bytes as event_encode gives a replay. */
    struct event_window w;
    ck_assert_int_eq(event_window_init(&w, 4, 7), 0);
    ck_assert_int_eq(event_window_push(&w, 7, ev, (uint32_t)strlen(ev)), 0);
    uint32_t len;
    const uint8_t *b = event_entry_bytes(event_window_get(&w, 7), STREAM_PROTO_WS_SEQ, &len);
    uint8_t direct[256];
    ck_assert_uint_eq(event_encode(STREAM_PROTO_WS_SEQ, direct, 7, "", ev, (uint32_t)strlen(ev)), len);
    ck_assert_mem_eq(b, direct, len);
    event_window_free(&w);
}
END_TEST

START_TEST(replay_fill_and_lap)
{
    enum { SLOTS = 64 };
    void *mem = calloc(1, ring_bytes(SLOTS));
    struct ring r;
    ring_init(&r, mem, SLOTS);
    char ev[RING_PAYLOAD_MAX];
    for (int i = 1; i <= SLOTS; i++) {
        int n =
            snprintf(ev, sizeof(ev), "{\"type\":\"cluster.added\",\"data\":{\"name\":\"c%d\"}}", i);
        ck_assert_int_eq(ring_append(&r, RING_EVENT_ADDED, ev, (uint32_t)n), i);
    }
    struct stream_replay *rp = malloc(sizeof(*rp));
    uint64_t seq = 1, events = 0;
    ck_assert_int_eq(stream_replay_fill(rp, &r, STREAM_PROTO_WS_SEQ, "", &seq, 11, &events),
                     STREAM_REPLAY_OK);
    ck_assert_uint_eq(seq, 11); /* stops at end */
    ck_assert_uint_eq(events, 10);
    /* the buffer is the events' encodings back to back, seq 1..10 */
    size_t off = 0;
    for (uint64_t s = 1; s <= 10; s++) {
        int n =
            snprintf(ev, sizeof(ev), "{\"type\":\"cluster.added\",\"data\":{\"name\":\"c%llu\"}}",
                     (unsigned long long)s);
        uint8_t want[256];
        size_t wl = event_encode(STREAM_PROTO_WS_SEQ, want, s, "", ev, (uint32_t)n);
        ck_assert_mem_eq(rp->buf + off, want, wl);
        off += wl;
    }
    ck_assert_uint_eq(off, rp->len);
    /* large events: only as many whole events as fit */
    memset(ev, 'x', sizeof(ev));
    ev[0] = '{';
    ev[RING_PAYLOAD_MAX - 1] = '}';
    for (int i = 0; i < SLOTS; i++)
        ck_assert_int_gt(ring_append(&r, RING_EVENT_UPDATED, ev, RING_PAYLOAD_MAX), 0);
    seq = ring_head(&r) - SLOTS + 1;
    uint64_t first = seq;
    ck_assert_int_eq(stream_replay_fill(rp, &r, STREAM_PROTO_WS_SEQ, "", &seq, ring_head(&r) + 1,
                                        &events),
                     STREAM_REPLAY_OK);
    ck_assert_uint_eq(seq - first, STREAM_REPLAY_BYTES / (RING_PAYLOAD_MAX + 4 + 12));
    ck_assert_uint_le(rp->len, STREAM_REPLAY_BYTES);
    /* lapped: the ring overwrote seq before it was read */
    seq = ring_head(&r) - SLOTS; /* one past the edge */
    ck_assert_int_eq(stream_replay_fill(rp, &r, STREAM_PROTO_WS_SEQ, "", &seq, ring_head(&r) + 1,
                                        &events),
                     STREAM_REPLAY_LAPPED);
    ck_assert_uint_eq(rp->len, 0);
    ck_assert_uint_eq(stream_pos_ring_capacity(&r), SLOTS);
    free(rp);
    free(mem);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("stream_position");
    TCase *tc = tcase_create("position");
    tcase_add_test(tc, query_rules);
    tcase_add_test(tc, event_id_rules);
    tcase_add_test(tc, decide_classes);
    tcase_add_test(tc, resync_json);
    tcase_add_test(tc, seq_encoding);
    tcase_add_test(tc, replay_fill_and_lap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
