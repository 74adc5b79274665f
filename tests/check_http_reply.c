/*
 * check_http_reply - unit tests for the parts of src/worker/http_reply.c that need
 * no connection: the headers of http_json_response, http_with_header (a
 * header added, NULL passed on), If-None-Match matching (lists, weak tags,
 * "*", whitespace, near misses) and the ETag format.  Queuing responses is
 * covered by tests/integration/test_rest_*.py over real sockets.
 */
#include "build_config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "worker/http_reply.h"

START_TEST(test_json_response_headers)
{
    struct MHD_Response *r = http_json_response("{\"error\":\"cluster not found\"}");
    ck_assert_ptr_nonnull(r);
    const char *ct = MHD_get_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *cc = MHD_get_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL);
    ck_assert_ptr_nonnull(ct);
    ck_assert_ptr_nonnull(cc);
    ck_assert_str_eq(ct, "application/json");
    ck_assert_str_eq(cc, "no-cache");
    MHD_destroy_response(r);
}
END_TEST

START_TEST(test_with_header)
{
    struct MHD_Response *r = http_json_response("{}");
    ck_assert_ptr_nonnull(r);
    r = http_with_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(MHD_get_response_header(r, MHD_HTTP_HEADER_ALLOW), "GET, HEAD");
    MHD_destroy_response(r);
    /* a failed allocation earlier in the chain stays NULL */
    ck_assert_ptr_null(http_with_header(NULL, MHD_HTTP_HEADER_ALLOW, "GET"));
}
END_TEST

#define TAG "\"0123456789abcdef\""

struct inm_case {
    const char *inm; /* If-None-Match, NULL: absent */
    int want;
};

static const struct inm_case inm_cases[] = {
    {NULL, 0},
    {"", 0},
    {TAG, 1},
    {"W/" TAG, 1}, /* weak comparison (RFC 9110 13.1.2) */
    {"*", 1},
    {"  *", 1},
    {"\"other\", " TAG, 1},
    {"\"other\"," TAG, 1},
    {"\"other\",\t" TAG " ", 1},
    {TAG ", \"other\"", 1},
    {"\"a\", \"b\", W/" TAG, 1},
    {"\"a\", *", 1},
    {", ,," TAG, 1},
    {"\"0123456789abcdee\"", 0},
    {"0123456789abcdef", 0},     /* unquoted */
    {"\"0123456789ABCDEF\"", 0}, /* case matters */
    {"\"0123456789abcdef", 0},
    {TAG "x", 0},
    {"x" TAG, 0},
    {"w/" TAG, 0},
    {"\"other\"", 0},
    {"\"a\", \"b\"", 0},
    {",", 0},
};

START_TEST(test_etag_matches)
{
    const struct inm_case *c = &inm_cases[_i];
    ck_assert_msg(http_reply_etag_matches(c->inm, TAG) == c->want,
                  "If-None-Match: %s should %smatch", c->inm != NULL ? c->inm : "(absent)",
                  c->want ? "" : "not ");
}
END_TEST

START_TEST(test_format_etag)
{
    char buf[HTTP_REPLY_ETAG_LEN + 1];
    http_reply_format_etag(buf, UINT64_C(0x0123456789abcdef));
    ck_assert_str_eq(buf, TAG);
    ck_assert_uint_eq(strlen(buf), HTTP_REPLY_ETAG_LEN);
    http_reply_format_etag(buf, 0);
    ck_assert_str_eq(buf, "\"0000000000000000\"");
    http_reply_format_etag(buf, UINT64_MAX);
    ck_assert_str_eq(buf, "\"ffffffffffffffff\"");
    /* what a client sends back matches */
    ck_assert_int_eq(http_reply_etag_matches(buf, buf), 1);
}
END_TEST

static Suite *
http_reply_suite(void)
{
    Suite *s = suite_create("http_reply");
    TCase *tr = tcase_create("responses");
    tcase_set_timeout(tr, 10);
    tcase_add_test(tr, test_json_response_headers);
    tcase_add_test(tr, test_with_header);
    suite_add_tcase(s, tr);
    TCase *te = tcase_create("etag");
    tcase_set_timeout(te, 10);
    tcase_add_loop_test(te, test_etag_matches, 0, (int)(sizeof(inm_cases) / sizeof(inm_cases[0])));
    tcase_add_test(te, test_format_etag);
    suite_add_tcase(s, te);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_reply_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
