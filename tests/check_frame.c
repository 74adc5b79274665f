/*
 * check_frame - server frame building, the input frame tracker, close codes.
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/ws_frame.h"

START_TEST(header_lengths)
{
    uint8_t h[10];
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    ck_assert_uint_eq(h[0], 0x81);
    ck_assert_uint_eq(h[1], 0);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 125), 2);
    ck_assert_uint_eq(h[1], 125);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    ck_assert_uint_eq(h[1], 126);
    ck_assert_uint_eq(h[2], 0);
    ck_assert_uint_eq(h[3], 126);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    ck_assert_uint_eq(h[2], 0xff);
    ck_assert_uint_eq(h[3], 0xff);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    ck_assert_uint_eq(h[1], 127);
    static const uint8_t want[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    ck_assert_mem_eq(h + 2, want, 8);
}
END_TEST

START_TEST(control_frames)
{
    uint8_t f[130];
    ck_assert_uint_eq(ws_frame_control(f, WS_OP_PING, NULL, 0), 2);
    ck_assert_uint_eq(f[0], 0x89);
    ck_assert_uint_eq(f[1], 0);
    ck_assert_uint_eq(ws_frame_control(f, WS_OP_PONG, "abc", 3), 5);
    ck_assert_mem_eq(f, "\x8a\x03" "abc", 5);
    char big[126];
    memset(big, 'x', sizeof(big));
    ck_assert_uint_eq(ws_frame_control(f, WS_OP_PONG, big, 126), 0);
    ck_assert_uint_eq(ws_frame_control(f, WS_OP_PONG, big, 125), 127);
}
END_TEST

START_TEST(close_frames)
{
    uint8_t f[130];
    size_t n = ws_frame_close(f, 1001, "bye");
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(f, "\x88\x05\x03\xe9" "bye", 7);
    char longr[300];
    memset(longr, 'r', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = '\0';
    n = ws_frame_close(f, 1013, longr);
    ck_assert_uint_eq(n, 127); /* reason truncated so the payload stays <= 125 */
    ck_assert_uint_eq(f[1], 125);
    ck_assert_uint_eq(f[2], 0x03);
    ck_assert_uint_eq(f[3], 0xf5);
}
END_TEST

/* Feed a stream in 1-byte chunks and check idleness after each frame. */
START_TEST(rx_track_boundaries)
{
    struct ws_rx_track t = {0};
    ck_assert(ws_rx_track_idle(&t));
    /* masked text frame, 3 bytes payload, fed byte by byte */
    static const uint8_t text[] = {0x81, 0x83, 1, 2, 3, 4, 'a', 'b', 'c'};
    for (size_t i = 0; i < sizeof(text); i++) {
        ws_rx_track_feed(&t, text + i, 1);
        ck_assert_int_eq(ws_rx_track_idle(&t), i == sizeof(text) - 1);
    }
    /* 16-bit length: 300 bytes of payload */
    uint8_t hdr16[] = {0x82, 0x80 | 126, 0x01, 0x2c, 9, 9, 9, 9};
    ws_rx_track_feed(&t, hdr16, sizeof(hdr16));
    ck_assert(!ws_rx_track_idle(&t));
    uint8_t payload[300] = {0};
    ws_rx_track_feed(&t, payload, 299);
    ck_assert(!ws_rx_track_idle(&t));
    ws_rx_track_feed(&t, payload, 1);
    ck_assert(ws_rx_track_idle(&t));
    /* 64-bit length form with a 1-byte payload */
    uint8_t hdr64[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 'x'};
    ws_rx_track_feed(&t, hdr64, sizeof(hdr64));
    ck_assert(ws_rx_track_idle(&t));
}
END_TEST

START_TEST(rx_track_fragmented_message)
{
    struct ws_rx_track t = {0};
    static const uint8_t first[] = {0x01, 0x81, 0, 0, 0, 0, 'a'}; /* text, FIN=0 */
    static const uint8_t ping[] = {0x89, 0x80, 0, 0, 0, 0};       /* control in between */
    static const uint8_t last[] = {0x80, 0x81, 0, 0, 0, 0, 'b'};  /* continuation, FIN=1 */
    ws_rx_track_feed(&t, first, sizeof(first));
    ck_assert(!ws_rx_track_idle(&t)); /* at a boundary, but mid-message */
    ws_rx_track_feed(&t, ping, sizeof(ping));
    ck_assert(!ws_rx_track_idle(&t));
    ws_rx_track_feed(&t, last, sizeof(last));
    ck_assert(ws_rx_track_idle(&t));
}
END_TEST

START_TEST(close_code_table)
{
    /* RFC 6455 7.4.1 and the IANA "WebSocket Close Code Number" registry */
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        ck_assert_msg(ws_close_code_valid(valid[i]), "%u should be valid", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        ck_assert_msg(!ws_close_code_valid(invalid[i]), "%u should be invalid", invalid[i]);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *tc = tcase_create("frames");
    tcase_add_test(tc, header_lengths);
    tcase_add_test(tc, control_frames);
    tcase_add_test(tc, close_frames);
    tcase_add_test(tc, rx_track_boundaries);
    tcase_add_test(tc, rx_track_fragmented_message);
    tcase_add_test(tc, close_code_table);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
