/*
 * check_ws_upgrade - the handshake's key checks and Sec-WebSocket-Accept.
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>

#include "worker/ws_upgrade.h"

/* RFC 6455 section 1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" is answered with
 * "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=". */
START_TEST(accept_key_rfc6455_example)
{
    char out[29];
    ws_upgrade_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(key_validity)
{
    ck_assert_int_eq(ws_upgrade_key_valid("dGhlIHNhbXBsZSBub25jZQ=="), 1);
    ck_assert_int_eq(ws_upgrade_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="), 1);
    /* 15 and 17 bytes, not base64, wrong padding, empty */
    ck_assert_int_eq(ws_upgrade_key_valid("dGhlIHNhbXBsZSBub25jZQ="), 0);
    ck_assert_int_eq(ws_upgrade_key_valid("dGhlIHNhbXBsZSBub25j"), 0);
    ck_assert_int_eq(ws_upgrade_key_valid("dGhlIHNhbXBsZSBub25jZXg="), 0);
    ck_assert_int_eq(ws_upgrade_key_valid("dGhlIHNhbXBsZSBub25jZ!=="), 0);
    ck_assert_int_eq(ws_upgrade_key_valid(""), 0);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("ws_upgrade");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, accept_key_rfc6455_example);
    tcase_add_test(tc, key_validity);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
