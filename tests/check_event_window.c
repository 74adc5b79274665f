/*
 * check_event_window - the worker's window of encoded events (the WebSocket
 * encoding: one text frame per event; the SSE encoding: one event).
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/event_window.h"
#include "worker/ws_frame.h"

/* The WebSocket encoding of seq in w (NULL if not held). */
static const uint8_t *
ws_bytes(const struct event_window *w, uint64_t seq, uint32_t *len)
{
    const struct event_entry *e = event_window_get(w, seq);
    return e != NULL ? event_entry_bytes(e, STREAM_PROTO_WS, len) : NULL;
}

START_TEST(window_push_get)
{
    struct event_window w;
    uint32_t len;
    ck_assert_int_eq(event_window_init(&w, 4, 10), 0);
    ck_assert_ptr_null(event_window_get(&w, 10));
    ck_assert_int_eq(event_window_push(&w, 10, "hello", 5), 0);
    const uint8_t *f = ws_bytes(&w, 10, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(len, 7);
    ck_assert_mem_eq(f, "\x81\x05hello", 7);
    ck_assert_uint_eq(event_window_get(&w, 10)->seq, 10);
    ck_assert_uint_eq(w.next_seq, 11);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 10, 0), 7);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 10, 3), 4);
    ck_assert_int_eq(event_window_push(&w, 11, "ab", 2), 0);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 10, 0), 11);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 11, 0), 4);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 12, 0), 0); /* not held */
    event_window_free(&w);
}
END_TEST

START_TEST(window_capacity_drops_oldest)
{
    struct event_window w;
    ck_assert_int_eq(event_window_init(&w, 3, 1), 0);
    for (uint64_t s = 1; s <= 5; s++)
        ck_assert_int_eq(event_window_push(&w, s, "x", 1), 0);
    ck_assert_uint_eq(w.first_seq, 3);
    ck_assert_ptr_null(event_window_get(&w, 2));
    ck_assert_ptr_nonnull(event_window_get(&w, 3));
    ck_assert_ptr_nonnull(event_window_get(&w, 5));
    ck_assert_ptr_null(event_window_get(&w, 6));
    event_window_release(&w, 5);
    ck_assert_uint_eq(w.first_seq, 5);
    ck_assert_ptr_null(event_window_get(&w, 4));
    event_window_release(&w, 100); /* never past next_seq */
    ck_assert_uint_eq(w.first_seq, 6);
    event_window_reset(&w, 50);
    ck_assert_uint_eq(w.first_seq, 50);
    ck_assert_uint_eq(w.next_seq, 50);
    ck_assert_int_eq(event_window_push(&w, 50, "y", 1), 0);
    ck_assert_ptr_nonnull(event_window_get(&w, 50));
    event_window_free(&w);
}
END_TEST

START_TEST(window_large_frame)
{
    struct event_window w;
    uint32_t len;
    ck_assert_int_eq(event_window_init(&w, 2, 1), 0);
    char *big = malloc(70000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'z', 70000);
    ck_assert_int_eq(event_window_push(&w, 1, big, 70000), 0);
    const uint8_t *f = ws_bytes(&w, 1, &len);
    ck_assert_uint_eq(len, 70010);
    ck_assert_uint_eq(f[1], 127);
    ck_assert_uint_eq(f[10], 'z');
    free(big);
    event_window_free(&w);
}
END_TEST

/* The encoder's size is exact at every header-length boundary, and the
 * encoding is header + payload, the same as ws_frame_header builds. */
START_TEST(ws_encoder_sizes)
{
    static const uint32_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    char *payload = malloc(70000);
    ck_assert_ptr_nonnull(payload);
    for (uint32_t i = 0; i < 70000; i++)
        payload[i] = (char)('a' + i % 26);
    struct event_window w;
    ck_assert_int_eq(event_window_init(&w, 16, 1), 0);
    uint64_t stream = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t hdr[10];
        size_t h = ws_frame_header(hdr, WS_OP_TEXT, lens[i]);
        ck_assert_uint_eq(ws_frame_text_size(lens[i]), h + lens[i]);
        ck_assert_int_eq(event_window_push(&w, i + 1, payload, lens[i]), 0);
        uint32_t len;
        const uint8_t *f = ws_bytes(&w, i + 1, &len);
        ck_assert_uint_eq(len, h + lens[i]);
        ck_assert_mem_eq(f, hdr, h);
        if (lens[i] > 0)
            ck_assert_mem_eq(f + h, payload, lens[i]);
        stream += len;
        ck_assert_uint_eq(w.stream_bytes[STREAM_PROTO_WS], stream);
    }
    /* From the first event on, a cursor has the whole stream still to send. */
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 1, 0), stream);
    free(payload);
    event_window_free(&w);
}
END_TEST

/* SSE: "id: E:N", then data: the JSON with ,"seq":N before its brace, then
 * an empty line; the stream counts every protocol's bytes apart; a payload
 * without a closing brace goes as it is. */
START_TEST(sse_encoding)
{
    struct event_window w;
    uint32_t len;
    ck_assert_int_eq(event_window_init(&w, 8, 41), 0);
    ck_assert_int_eq(event_window_set_epoch(&w, "Ab_9-z"), 0);
    static const char ev[] = "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod\"}}";
    ck_assert_int_eq(event_window_push(&w, 41, ev, sizeof(ev) - 1), 0);
    const uint8_t *b = event_entry_bytes(event_window_get(&w, 41), STREAM_PROTO_SSE, &len);
    static const char want[] = "id: Ab_9-z:41\n"
                               "data: {\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod\"},"
                               "\"seq\":41}\n\n";
    ck_assert_uint_eq(len, sizeof(want) - 1);
    ck_assert_mem_eq(b, want, len);
    /* the WebSocket encoding of the same event is untouched: the seed's bytes */
    const uint8_t *f = ws_bytes(&w, 41, &len);
    ck_assert_uint_eq(len, 2 + sizeof(ev) - 1);
    ck_assert_mem_eq(f + 2, ev, sizeof(ev) - 1);
    ck_assert_int_eq(event_window_push(&w, 42, "x", 1), 0);
    b = event_entry_bytes(event_window_get(&w, 42), STREAM_PROTO_SSE, &len);
    ck_assert_uint_eq(len, strlen("id: Ab_9-z:42\ndata: x\n\n"));
    ck_assert_mem_eq(b, "id: Ab_9-z:42\ndata: x\n\n", len);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_SSE, 41, 0), sizeof(want) - 1 + len);
    ck_assert_uint_eq(event_window_pending(&w, STREAM_PROTO_WS, 41, 0), 2 + sizeof(ev) - 1 + 3);
    /* an epoch longer than 32 is refused and changes nothing */
    ck_assert_int_eq(event_window_set_epoch(&w, "123456789012345678901234567890123"), -1);
    ck_assert_str_eq(w.epoch, "Ab_9-z");
    event_window_free(&w);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("event_window");
    TCase *tc = tcase_create("window");
    tcase_add_test(tc, window_push_get);
    tcase_add_test(tc, window_capacity_drops_oldest);
    tcase_add_test(tc, window_large_frame);
    tcase_add_test(tc, ws_encoder_sizes);
    tcase_add_test(tc, sse_encoding);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
