/*
 * check_http_access - unit tests for src/worker/http_access.c: parsing of
 * Origin and Host values and of the two lists (good, malformed, limits), and
 * the checks (same origin with default ports, case, IPv6 literals; listed
 * origins; "*"; CORS only for listed origins; Host lists with and without
 * ports), plus the CORS headers on a response.  The 403/421/204 answers over
 * real sockets are tests/integration/test_origin.py's.
 */
#include "build_config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "worker/http_access.h"

static int
origin(const char *s, struct access_addr *a)
{
    return access_parse_origin(s, strlen(s), a);
}

static int
host(const char *s, struct access_addr *a)
{
    return access_parse_host(s, strlen(s), a);
}

/* --- parsing -------------------------------------------------------------- */

static const struct {
    const char *in;
    const char *host;
    unsigned port, https;
} good_origins[] = {
    {"http://example.com", "example.com", 80, 0},
    {"https://example.com", "example.com", 443, 1},
    {"HTTP://Example.COM:8080", "example.com", 8080, 0},
    {"https://ui.example.com:443", "ui.example.com", 443, 1},
    {"http://127.0.0.1:8080", "127.0.0.1", 8080, 0},
    {"http://[::1]:8080", "[::1]", 8080, 0},
    {"http://[0:0:0:0:0:0:0:1]", "[::1]", 80, 0},
    {"https://[2001:DB8::A]:9", "[2001:db8::a]", 9, 1},
    {"http://localhost:65535", "localhost", 65535, 0},
};

START_TEST(test_parse_origin_good)
{
    struct access_addr a;
    ck_assert_int_eq(origin(good_origins[_i].in, &a), 0);
    ck_assert_str_eq(a.host, good_origins[_i].host);
    ck_assert_uint_eq(a.port, good_origins[_i].port);
    ck_assert_uint_eq(a.https, good_origins[_i].https);
}
END_TEST

static const char *const bad_origins[] = {
    "",
    "null",
    "example.com",
    "ftp://example.com",
    "ws://example.com",
    "http://",
    "http:///",
    "http://example.com/",
    "http://example.com/path",
    "http://example.com:",
    "http://example.com:0",
    "http://example.com:65536",
    "http://example.com:123456",
    "http://example.com:80x",
    "http://user@example.com",
    "http://exa mple.com",
    "http://example.com?x",
    "http://::1",
    "http://[::1",
    "http://[::1]x",
    "http://[]",
    "http://[zz::1]",
    "http://[::1%eth0]",
    "http://a:1:2",
};

START_TEST(test_parse_origin_bad)
{
    struct access_addr a;
    ck_assert_msg(origin(bad_origins[_i], &a) == -1, "'%s' parsed", bad_origins[_i]);
}
END_TEST

START_TEST(test_parse_host)
{
    struct access_addr a;
    ck_assert_int_eq(host("Example.com", &a), 0);
    ck_assert_str_eq(a.host, "example.com");
    ck_assert_uint_eq(a.port, 0);
    ck_assert_int_eq(host("example.com:8080", &a), 0);
    ck_assert_uint_eq(a.port, 8080);
    ck_assert_int_eq(host("[::FFFF:127.0.0.1]:1", &a), 0);
    ck_assert_str_eq(a.host, "[::ffff:127.0.0.1]");
    ck_assert_uint_eq(a.port, 1);
    ck_assert_int_eq(host("", &a), -1);
    ck_assert_int_eq(host(":80", &a), -1);
    ck_assert_int_eq(host("example.com:", &a), -1);
    ck_assert_int_eq(host("http://example.com", &a), -1);
    ck_assert_int_eq(host("example.com/x", &a), -1);
    /* a name of 253 bytes passes, 254 does not */
    char name[300];
    memset(name, 'a', 254);
    name[254] = '\0';
    ck_assert_int_eq(host(name, &a), -1);
    name[253] = '\0';
    ck_assert_int_eq(host(name, &a), 0);
    /* only len bytes count */
    ck_assert_int_eq(access_parse_host("example.com:80/x", 14, &a), 0);
    ck_assert_uint_eq(a.port, 80);
}
END_TEST

START_TEST(test_check_lists)
{
    ck_assert_int_eq(access_check_origins(""), 0);
    ck_assert_int_eq(access_check_origins("*"), 0);
    ck_assert_int_eq(access_check_origins(" * "), 0);
    ck_assert_int_eq(access_check_origins("https://a.example,http://10.0.0.5:8080"), 0);
    ck_assert_int_eq(access_check_origins("https://a.example , http://b.example"), 0);
    ck_assert_int_eq(access_check_origins("https://a.example,"), -1);
    ck_assert_int_eq(access_check_origins(",https://a.example"), -1);
    ck_assert_int_eq(access_check_origins("https://a.example,,http://b"), -1);
    ck_assert_int_eq(access_check_origins("*,https://a.example"), -1);
    ck_assert_int_eq(access_check_origins("https://a.example/"), -1);
    ck_assert_int_eq(access_check_origins("a.example"), -1);
    ck_assert_int_eq(access_check_origins("?"), -1);
    ck_assert_int_eq(access_check_hosts(""), 0);
    ck_assert_int_eq(access_check_hosts("localhost,127.0.0.1:8080,[::1]"), 0);
    ck_assert_int_eq(access_check_hosts("*"), -1);
    ck_assert_int_eq(access_check_hosts("http://a"), -1);
    ck_assert_int_eq(access_check_hosts("a,"), -1);
    /* ACCESS_LIST_MAX entries pass, one more does not */
    char list[ACCESS_LIST_MAX * 8 + 8] = "";
    for (int i = 0; i < ACCESS_LIST_MAX; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%sh%d", i ? "," : "", i);
    ck_assert_int_eq(access_check_hosts(list), 0);
    strcat(list, ",x");
    ck_assert_int_eq(access_check_hosts(list), -1);
}
END_TEST

START_TEST(test_set_keeps_on_error)
{
    struct http_access a;
    ck_assert_int_eq(http_access_set(&a, "https://a.example", "a.example"), 0);
    ck_assert_uint_eq(a.n_origins, 1);
    ck_assert_uint_eq(a.n_hosts, 1);
    ck_assert_int_eq(http_access_set(&a, "bad", ""), -1);
    ck_assert_int_eq(http_access_set(&a, "", "http://bad"), -1);
    ck_assert_uint_eq(a.n_origins, 1); /* unchanged */
    ck_assert_str_eq(a.hosts[0].host, "a.example");
    ck_assert_int_eq(http_access_set(&a, "", ""), 0);
    ck_assert_uint_eq(a.n_origins, 0);
    ck_assert_uint_eq(a.n_hosts, 0);
    ck_assert_int_eq(a.any_origin, 0);
}
END_TEST

/* --- the checks ------------------------------------------------------------- */

static const struct {
    const char *origin, *host;
    int same;
} same_cases[] = {
    {"http://127.0.0.1:8080", "127.0.0.1:8080", 1},
    {"http://127.0.0.1:8080", "127.0.0.1:8081", 0},
    {"http://localhost:8080", "127.0.0.1:8080", 0},
    {"http://LocalHost:8080", "localHOST:8080", 1},
    {"http://example.com", "example.com", 1},
    {"http://example.com", "example.com:80", 1},
    {"http://example.com:80", "example.com", 1},
    {"https://example.com", "example.com", 1}, /* a TLS proxy in front keeps Host */
    {"https://example.com", "example.com:443", 1},
    {"https://example.com", "example.com:80", 0},
    {"http://example.com", "example.com:443", 0},
    {"http://[::1]:8080", "[::1]:8080", 1},
    {"http://[::1]:8080", "[0::1]:8080", 1},
    {"http://[::1]:8080", "[::2]:8080", 0},
    {"http://evil.example", "example.com", 0},
    {"http://example.com.evil", "example.com", 0},
    {"http://example.com", NULL, 0},
    {"http://example.com", "", 0},
    {"http://example.com", "exa mple.com", 0},
};

START_TEST(test_same_origin)
{
    struct access_addr o;
    ck_assert_int_eq(origin(same_cases[_i].origin, &o), 0);
    ck_assert_msg(http_access_same_origin(&o, same_cases[_i].host) == same_cases[_i].same,
                  "%s vs Host %s", same_cases[_i].origin, same_cases[_i].host);
}
END_TEST

START_TEST(test_origin_ok_default)
{
    struct http_access a;
    ck_assert_int_eq(http_access_set(&a, "", ""), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, NULL, "127.0.0.1:8080"), 1); /* tools */
    ck_assert_int_eq(http_access_origin_ok(&a, NULL, NULL), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://127.0.0.1:8080", "127.0.0.1:8080"), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://evil.example", "127.0.0.1:8080"), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "null", "127.0.0.1:8080"), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "", "127.0.0.1:8080"), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://127.0.0.1:8080", NULL), 0);
    ck_assert_int_eq(http_access_cors_ok(&a, "http://127.0.0.1:8080"), 0);
    ck_assert_int_eq(http_access_cors_ok(&a, NULL), 0);
}
END_TEST

START_TEST(test_origin_ok_list)
{
    struct http_access a;
    ck_assert_int_eq(http_access_set(&a, "https://ui.example, http://10.0.0.5:8080", ""), 0);
    const char *h = "127.0.0.1:8080";
    ck_assert_int_eq(http_access_origin_ok(&a, "https://ui.example", h), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "https://UI.example:443", h), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://ui.example", h), 0); /* scheme */
    ck_assert_int_eq(http_access_origin_ok(&a, "https://ui.example:8443", h), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://10.0.0.5:8080", h), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://10.0.0.5", h), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://127.0.0.1:8080", h), 1); /* same */
    ck_assert_int_eq(http_access_origin_ok(&a, "null", h), 0);
    ck_assert_int_eq(http_access_cors_ok(&a, "https://ui.example"), 1);
    ck_assert_int_eq(http_access_cors_ok(&a, "http://10.0.0.5:8080"), 1);
    ck_assert_int_eq(http_access_cors_ok(&a, "http://127.0.0.1:8080"), 0); /* same only */
    ck_assert_int_eq(http_access_cors_ok(&a, "https://evil.example"), 0);
    ck_assert_int_eq(http_access_cors_ok(&a, "null"), 0);
}
END_TEST

START_TEST(test_origin_ok_any)
{
    struct http_access a;
    ck_assert_int_eq(http_access_set(&a, "*", ""), 0);
    ck_assert_int_eq(http_access_origin_ok(&a, "http://evil.example", "127.0.0.1:8080"), 1);
    ck_assert_int_eq(http_access_origin_ok(&a, "null", NULL), 1);
    ck_assert_int_eq(http_access_cors_ok(&a, "http://evil.example"), 1);
    ck_assert_int_eq(http_access_cors_ok(&a, NULL), 0);
    ck_assert_int_eq(http_access_cors_ok(&a, "null"), 0); /* echoed: well-formed only */
    ck_assert_int_eq(http_access_cors_ok(&a, "http://x/../../etc"), 0);
}
END_TEST

START_TEST(test_host_ok)
{
    struct http_access a;
    ck_assert_int_eq(http_access_set(&a, "", ""), 0);
    ck_assert_int_eq(http_access_host_ok(&a, NULL, 80), 1); /* unset: any */
    ck_assert_int_eq(http_access_host_ok(&a, "whatever:1", 80), 1);
    ck_assert_int_eq(http_access_set(&a, "", "appliance.lan,127.0.0.1:8080,[::1]:8080"), 0);
    ck_assert_int_eq(http_access_host_ok(&a, "appliance.lan", 80), 1);
    ck_assert_int_eq(http_access_host_ok(&a, "APPLIANCE.lan:8080", 80), 1); /* any port */
    ck_assert_int_eq(http_access_host_ok(&a, "127.0.0.1:8080", 80), 1);
    ck_assert_int_eq(http_access_host_ok(&a, "127.0.0.1", 80), 0); /* 80 is not 8080 */
    ck_assert_int_eq(http_access_host_ok(&a, "127.0.0.1", 8080), 1);
    ck_assert_int_eq(http_access_host_ok(&a, "127.0.0.1:9", 80), 0);
    ck_assert_int_eq(http_access_host_ok(&a, "[0::1]:8080", 80), 1);
    ck_assert_int_eq(http_access_host_ok(&a, "evil.example", 80), 0);
    ck_assert_int_eq(http_access_host_ok(&a, "appliance.lan.evil.example", 80), 0);
    ck_assert_int_eq(http_access_host_ok(&a, NULL, 80), 0);
    ck_assert_int_eq(http_access_host_ok(&a, "", 80), 0);
    ck_assert_int_eq(http_access_host_ok(&a, "appliance.lan:", 80), 0);
}
END_TEST

/* --- headers ------------------------------------------------------------------ */

START_TEST(test_with_cors)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_eq(http_access_with_cors(r, NULL), r);
    ck_assert_ptr_null(MHD_get_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN));
    ck_assert_ptr_null(MHD_get_response_header(r, MHD_HTTP_HEADER_VARY));
    ck_assert_ptr_eq(http_access_with_cors(r, "https://ui.example"), r);
    ck_assert_str_eq(MHD_get_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN),
                     "https://ui.example");
    ck_assert_str_eq(MHD_get_response_header(r, MHD_HTTP_HEADER_VARY), "Origin");
    MHD_destroy_response(r);
    ck_assert_ptr_null(http_access_with_cors(NULL, "https://ui.example"));
}
END_TEST

static Suite *
http_access_suite(void)
{
    Suite *s = suite_create("http_access");
    TCase *tp = tcase_create("parse");
    tcase_set_timeout(tp, 10);
    tcase_add_loop_test(tp, test_parse_origin_good, 0,
                        (int)(sizeof(good_origins) / sizeof(good_origins[0])));
    tcase_add_loop_test(tp, test_parse_origin_bad, 0,
                        (int)(sizeof(bad_origins) / sizeof(bad_origins[0])));
    tcase_add_test(tp, test_parse_host);
    tcase_add_test(tp, test_check_lists);
    tcase_add_test(tp, test_set_keeps_on_error);
    suite_add_tcase(s, tp);
    TCase *tc = tcase_create("checks");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_same_origin, 0, (int)(sizeof(same_cases) / sizeof(same_cases[0])));
    tcase_add_test(tc, test_origin_ok_default);
    tcase_add_test(tc, test_origin_ok_list);
    tcase_add_test(tc, test_origin_ok_any);
    tcase_add_test(tc, test_host_ok);
    tcase_add_test(tc, test_with_cors);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_access_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
