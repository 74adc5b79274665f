/*
 * check_http_encoding - unit tests for src/worker/http_encoding.c: which
 * Accept-Encoding values get the dashboard's gzip bytes and which identity
 * (no header, gzip refused with q=0, "*", case, q-value syntax, identity
 * preferred, malformed elements ignored).  The served bytes and headers are
 * tests/integration/test_dashboard_gzip.py's.
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>

#include "worker/http_encoding.h"

struct ae_case {
    const char *value;
    int gzip;
};

static const struct ae_case cases[] = {
    {NULL, 0},
    {"", 0},
    {"gzip", 1},
    {"GZIP", 1},
    {"x-gzip", 1},
    {"gzip, deflate, br", 1},
    {"deflate, gzip;q=1.0, *;q=0.5", 1},
    {"br;q=1.0, gzip;q=0.8, *;q=0.1", 1},
    {"gzip;q=0", 0},
    {"gzip;q=0.000", 0},
    {"gzip; q=0", 0},
    {"gzip ; Q=0", 0},
    {"gzip;q=0.001", 1},
    {"gzip;q=1", 1},
    {"gzip;q=1.000", 1},
    {"identity", 0},
    {"identity;q=1", 0},
    {"deflate", 0},
    {"br, deflate", 0},
    {"*", 1},
    {"*;q=0", 0},
    {"*;q=0.5", 1},
    {"*, gzip;q=0", 0},
    {"gzip;q=0, *", 0},
    {"*;q=0, gzip", 1},
    {"identity, *;q=0", 0},
    {"identity;q=1, gzip;q=0.5", 0},
    {"identity;q=0.5, gzip;q=1", 1},
    {"gzip;q=0.5, identity;q=0.5", 1},
    {"identity;q=0, gzip", 1},
    {"  gzip  ", 1},
    {"\tgzip\t,", 1},
    {",,gzip,,", 1},
    {"deflate,gzip", 1},
    {"gzipx", 0},
    {"gzi", 0},
    {"xgzip", 0},
    {"gzip;q=2", 0},      /* bad q-value: element ignored */
    {"gzip;q=1.5", 0},
    {"gzip;q=1.0001", 0},
    {"gzip;q=0.5.1", 0},
    {"gzip;q=", 0},
    {"gzip;q=abc", 0},
    {"gzip;q=-1", 0},
    {"gzip;q", 0},
    {"gzip;q=0.5x", 0},
    {"gzip;level=9", 1},  /* other parameters do not matter */
    {"gzip;level=9;q=0", 0},
    {"gzip;q=\"1\"", 0},  /* a quoted q is no qvalue */
    {"gzip junk", 0},
    {"gzip junk, deflate", 0},
    {"gzip junk, *", 1},
    {"gzip;q=2, *;q=0.1", 1},
    {"deflate;q=0.5 gzip", 0},
};

START_TEST(test_accepts_gzip)
{
    const struct ae_case *c = &cases[_i];
    ck_assert_msg(http_accepts_gzip(c->value) == c->gzip, "Accept-Encoding: %s: want %d",
                  c->value ? c->value : "(none)", c->gzip);
}
END_TEST

static Suite *
http_encoding_suite(void)
{
    Suite *s = suite_create("http_encoding");
    TCase *tc = tcase_create("accept_encoding");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_accepts_gzip, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_encoding_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
