/*
 * check_rest_api - unit tests for the pure part of src/worker/rest_api.c:
 * rest_api_decode_name (strict percent-decoding of a cluster name: table of
 * valid names, %2F, %00 and invalid or truncated escapes, the length limit and
 * its exact boundary, no write past the buffer).  The endpoints themselves
 * are covered by tests/integration/test_rest_*.py over real sockets; the
 * route table by check_http_router.c, the response helpers by
 * check_http_reply.c.
 */
#include "build_config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/rest_api.h"
#include "common/persona.h"

#define NAME_BUF (PERSONA_NAME_MAX_BYTES + 1) /* what rest_api_cluster passes */
#define CANARY 0xa5

struct decode_case {
    const char *in;
    long want;       /* length, REST_API_NAME_BAD_ESCAPE or REST_API_NAME_TOO_LONG */
    const char *out; /* expected bytes when want >= 0 */
};

static const struct decode_case decode_cases[] = {
    /* valid */
    {"", 0, ""},
    {"alpha", 5, "alpha"},
    {"prod-eu-west-1", 14, "prod-eu-west-1"},
    {"a%2Fb", 3, "a/b"},
    {"a%2fb", 3, "a/b"},
    {"%2F", 1, "/"},
    {"%41%42%43", 3, "ABC"},
    {"%61%62%63", 3, "abc"},
    {"a%20b", 3, "a b"},
    {"a+b", 3, "a+b"}, /* a plus is a plus in a path */
    {"%2B", 1, "+"},
    {"%25", 1, "%"},
    {"%2541", 3, "%41"}, /* decoded once, not twice */
    {"%22quote%22", 7, "\"quote\""},
    {"back%5Cslash", 10, "back\\slash"},
    {"%C3%A9t%C3%A9", 5, "\xc3\xa9t\xc3\xa9"},
    {"%c3%a9", 2, "\xc3\xa9"},
    {"\xc3\xa9", 2, "\xc3\xa9"}, /* raw UTF-8 passes through */
    {"%F0%9F%98%80", 4, "\xf0\x9f\x98\x80"},
    {"%01", 1, "\x01"}, /* a control character decodes; no name has one */
    {"%7F", 1, "\x7f"},
    {"%FF%FE", 2, "\xff\xfe"}, /* not UTF-8: decodes, matches nothing */
    {"..", 2, ".."},
    {"%2E%2E", 2, ".."},
    {"%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", 16, "../../etc/passwd"},
    {"%0D%0A", 2, "\r\n"},
    /* %00 */
    {"%00", REST_API_NAME_BAD_ESCAPE, NULL},
    {"a%00", REST_API_NAME_BAD_ESCAPE, NULL},
    {"a%00b", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%41%00", REST_API_NAME_BAD_ESCAPE, NULL},
    /* invalid escapes */
    {"%zz", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%z1", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%1z", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%g0", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%0g", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%G0", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%%", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%%41", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%-1", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%+1", REST_API_NAME_BAD_ESCAPE, NULL},
    {"% 1", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%x41", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%\xc3\xa9", REST_API_NAME_BAD_ESCAPE, NULL},
    /* truncated escapes */
    {"%", REST_API_NAME_BAD_ESCAPE, NULL},
    {"a%", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%4", REST_API_NAME_BAD_ESCAPE, NULL},
    {"a%4", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%41%4", REST_API_NAME_BAD_ESCAPE, NULL},
    {"%41%", REST_API_NAME_BAD_ESCAPE, NULL},
};

START_TEST(test_decode_table)
{
    const struct decode_case *c = &decode_cases[_i];
    uint8_t buf[NAME_BUF + 16];
    memset(buf, CANARY, sizeof(buf));
    long n = rest_api_decode_name(c->in, (char *)buf, NAME_BUF);
    ck_assert_msg(n == c->want, "decode(\"%s\") = %ld, want %ld", c->in, n, c->want);
    if (c->want >= 0)
        ck_assert_msg(memcmp(buf, c->out, (size_t)c->want) == 0, "decode(\"%s\") bytes differ",
                      c->in);
    /* On an error, whatever was decoded before it stays inside the buffer. */
    size_t written = c->want >= 0 ? (size_t)c->want : NAME_BUF;
    for (size_t i = written; i < sizeof(buf); i++)
        ck_assert_msg(buf[i] == CANARY, "decode(\"%s\") wrote byte %zu", c->in, i);
}
END_TEST

/* A string of n copies of unit. */
static char *
repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * n + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = '\0';
    return s;
}

/* Lengths around the buffer size, plain and escaped: out_size bytes fit,
 * one more is REST_API_NAME_TOO_LONG, and nothing is written past out_size. */
START_TEST(test_decode_length_limit)
{
    static const char *const units[] = {"a", "%41", "%C3%A9" /* 2 bytes */};
    static const size_t unit_bytes[] = {1, 1, 2};
    for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
        for (size_t bytes = NAME_BUF - 4; bytes <= NAME_BUF + 4; bytes++) {
            if (bytes % unit_bytes[k] != 0)
                continue;
            char *in = repeat(units[k], bytes / unit_bytes[k]);
            uint8_t buf[NAME_BUF + 16];
            memset(buf, CANARY, sizeof(buf));
            long n = rest_api_decode_name(in, (char *)buf, NAME_BUF);
            if (bytes <= NAME_BUF)
                ck_assert_msg(n == (long)bytes, "%zu bytes of %s: got %ld", bytes, units[k], n);
            else
                ck_assert_msg(n == REST_API_NAME_TOO_LONG, "%zu bytes of %s: got %ld", bytes,
                              units[k], n);
            for (size_t i = NAME_BUF; i < sizeof(buf); i++)
                ck_assert_msg(buf[i] == CANARY, "%zu bytes of %s: wrote byte %zu", bytes, units[k],
                              i);
            free(in);
        }
    }
}
END_TEST

START_TEST(test_decode_long_inputs)
{
    /* the 3000-character paths of the integration test */
    char *in = repeat("a", 3000);
    char buf[NAME_BUF];
    ck_assert_int_eq(rest_api_decode_name(in, buf, sizeof(buf)), REST_API_NAME_TOO_LONG);
    free(in);
    in = repeat("%41", 1000);
    ck_assert_int_eq(rest_api_decode_name(in, buf, sizeof(buf)), REST_API_NAME_TOO_LONG);
    free(in);
    /* 253 bytes of UTF-8 (84 three-byte characters and one more byte) fit */
    char *cjk = repeat("%E6%97%A5", 84);
    char name[84 * 9 + 2];
    snprintf(name, sizeof(name), "%sa", cjk);
    free(cjk);
    ck_assert_int_eq(rest_api_decode_name(name, buf, sizeof(buf)), PERSONA_NAME_MAX_BYTES);
}
END_TEST

START_TEST(test_decode_tiny_buffers)
{
    char buf[4];
    ck_assert_int_eq(rest_api_decode_name("", buf, 0), 0);
    ck_assert_int_eq(rest_api_decode_name("a", buf, 0), REST_API_NAME_TOO_LONG);
    ck_assert_int_eq(rest_api_decode_name("%41", buf, 0), REST_API_NAME_TOO_LONG);
    ck_assert_int_eq(rest_api_decode_name("a", buf, 1), 1);
    ck_assert_int_eq(rest_api_decode_name("ab", buf, 1), REST_API_NAME_TOO_LONG);
    ck_assert_int_eq(rest_api_decode_name("%41%42%43%44", buf, 4), 4);
    ck_assert_int_eq(memcmp(buf, "ABCD", 4), 0);
    ck_assert_int_eq(rest_api_decode_name("%41%42%43%44%45", buf, 4), REST_API_NAME_TOO_LONG);
}
END_TEST

static Suite *
rest_api_suite(void)
{
    Suite *s = suite_create("rest_api");
    TCase *tc = tcase_create("decode_name");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_decode_table, 0,
                        (int)(sizeof(decode_cases) / sizeof(decode_cases[0])));
    tcase_add_test(tc, test_decode_length_limit);
    tcase_add_test(tc, test_decode_long_inputs);
    tcase_add_test(tc, test_decode_tiny_buffers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(rest_api_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
