/*
 * check_tls_lib - unit tests for src/common/tls_lib.c (GnuTLS loaded with
 * dlopen when --tls-cert is given): nothing is loaded before the first load;
 * a library that is not there, and one that is not GnuTLS, are refused with
 * the loader's reason and leave nothing loaded; the real one fills every slot
 * of the table with GnuTLS's own functions, once.  Each test runs in a fresh
 * process (Check's fork mode), so each starts unloaded.  Built with
 * --disable-tls, the load is refused as "not built in".
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/tls_lib.h"

#ifdef ENABLE_TLS

START_TEST(test_nothing_loaded_before)
{
    ck_assert_ptr_null(tls_lib());
}
END_TEST

START_TEST(test_missing_library)
{
    char msg[512] = "";
    ck_assert_int_eq(tls_lib_load("libpersonad-no-such-library.so.0", msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "cannot load GnuTLS (libpersonad-no-such-library.so.0): ") == msg,
                  "msg: %s", msg);
    ck_assert_msg(strstr(msg, "No such file") != NULL || strstr(msg, "not found") != NULL,
                  "the loader's reason is missing: %s", msg);
    ck_assert_ptr_null(tls_lib());
}
END_TEST

START_TEST(test_not_gnutls)
{
    /* A library that loads but has none of GnuTLS's functions: the first name
     * of the table is the one reported. */
    char msg[512] = "";
    ck_assert_int_eq(tls_lib_load("libnettle.so.8", msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "libnettle.so.8 has no gnutls_bye: ") == msg, "msg: %s", msg);
    ck_assert_ptr_null(tls_lib());
}
END_TEST

START_TEST(test_loads_every_function_once)
{
    char msg[512] = "";
    ck_assert_int_eq(tls_lib_load(NULL, msg, sizeof(msg)), 0);
    const struct tls_lib *g = tls_lib();
    ck_assert_ptr_nonnull(g);
#define CHECK_SLOT(name) ck_assert_msg(g->gnutls_##name != NULL, "gnutls_" #name " not resolved");
    TLS_LIB_FUNCTIONS(CHECK_SLOT)
#undef CHECK_SLOT
    ck_assert_ptr_nonnull(g->free_fn);
    ck_assert_ptr_nonnull(*g->free_fn);
    /* They are GnuTLS's: its own words for its own error codes. */
    ck_assert_str_eq(g->gnutls_strerror(GNUTLS_E_AGAIN),
                     "Resource temporarily unavailable, try again.");
    gnutls_priority_t prio;
    const char *err_pos = NULL;
    ck_assert_int_eq(g->gnutls_priority_init(&prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3", &err_pos), 0);
    g->gnutls_priority_deinit(prio);
    ck_assert_int_lt(g->gnutls_priority_init(&prio, "NO-SUCH-KEYWORD", &err_pos), 0);
    /* A second load (a reload, a worker) keeps the table. */
    ck_assert_int_eq(tls_lib_load("libpersonad-no-such-library.so.0", msg, sizeof(msg)), 0);
    ck_assert_ptr_eq(tls_lib(), g);
}
END_TEST

#else /* !ENABLE_TLS */

START_TEST(test_not_built_in)
{
    char msg[512] = "";
    ck_assert_int_eq(tls_lib_load(NULL, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "not built in") != NULL, "msg: %s", msg);
}
END_TEST

#endif

int
main(void)
{
    Suite *s = suite_create("tls_lib");
    TCase *tc = tcase_create("tls_lib");
#ifdef ENABLE_TLS
    tcase_add_test(tc, test_nothing_loaded_before);
    tcase_add_test(tc, test_missing_library);
    tcase_add_test(tc, test_not_gnutls);
    tcase_add_test(tc, test_loads_every_function_once);
#else
    tcase_add_test(tc, test_not_built_in);
#endif
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
