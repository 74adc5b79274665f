/*
 * check_auth - unit tests for --auth-token-file: the token file's parser and
 * reader (src/common/auth_tokens.c: comments, blanks, limits, bad files), the
 * constant-time match, the request check without a connection
 * (src/worker/http_auth.c: protected paths, the Bearer header, the
 * access_token parameter's decoding, OPTIONS) and the log redaction of
 * access_token values (src/common/log.c).  The daemon's answers over real
 * sockets are tests/integration/test_auth_token.py's.
 */
#include "build_config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/auth_tokens.h"
#include "common/log.h"
#include "worker/http_auth.h"

static int
parse(struct auth_tokens *t, const char *text, char *msg, size_t msg_size)
{
    return auth_tokens_parse(t, text, strlen(text), "f", msg, msg_size);
}

#define MATCH(t, s) auth_tokens_match((t), (s), strlen(s))

START_TEST(test_parse_comments_blanks_trim)
{
    struct auth_tokens t;
    char msg[256] = "";
    ck_assert_int_eq(parse(&t,
                           "# a comment\n\n   \n\t tok-1 \r\n  # indented comment\nB+/x==\nlast",
                           msg, sizeof(msg)),
                     0);
    ck_assert_uint_eq(t.n, 3);
    ck_assert(MATCH(&t, "tok-1"));
    ck_assert(MATCH(&t, "B+/x=="));
    ck_assert(MATCH(&t, "last")); /* no newline at the end */
    ck_assert(!MATCH(&t, " tok-1"));
    ck_assert(!MATCH(&t, "tok-1 "));
    ck_assert(!MATCH(&t, "tok-"));
    ck_assert(!MATCH(&t, "tok-12"));
    ck_assert(!MATCH(&t, "TOK-1"));
    ck_assert(!MATCH(&t, ""));
    ck_assert(!MATCH(&t, "# a comment"));
    ck_assert(!MATCH(&t, "comment"));
    auth_tokens_free(&t);
    ck_assert_uint_eq(t.n, 0);
    ck_assert(!MATCH(&t, "tok-1")); /* an empty set matches nothing */
}
END_TEST

struct bad_case {
    const char *text;
    const char *msg; /* the message, exactly */
};

static const struct bad_case bad_cases[] = {
    {"", "f: no token in the file"},
    {"\n\n# only comments\n   \n", "f: no token in the file"},
    {"good\ntwo words\n", "f:2: not a token (letters, digits, -._~+/ then any =; no blank inside)"},
    {"a=b\n", "f:1: not a token (letters, digits, -._~+/ then any =; no blank inside)"},
    {"==\n", "f:1: not a token (letters, digits, -._~+/ then any =; no blank inside)"},
    {"tok # trailing comment\n",
     "f:1: not a token (letters, digits, -._~+/ then any =; no blank inside)"},
    {"t\xc3\xa9st\n", "f:1: not a token (letters, digits, -._~+/ then any =; no blank inside)"},
};

START_TEST(test_parse_bad)
{
    const struct bad_case *c = &bad_cases[_i];
    struct auth_tokens t;
    char msg[256] = "";
    ck_assert_int_eq(parse(&t, c->text, msg, sizeof(msg)), -1);
    ck_assert_str_eq(msg, c->msg);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_ptr_null(t.digest);
}
END_TEST

START_TEST(test_parse_limits)
{
    struct auth_tokens t;
    char msg[256];
    /* The longest token passes, one more character does not. */
    char line[AUTH_TOKEN_MAX_LEN + 3];
    memset(line, 'a', AUTH_TOKEN_MAX_LEN);
    line[AUTH_TOKEN_MAX_LEN] = '\0';
    ck_assert_int_eq(parse(&t, line, msg, sizeof(msg)), 0);
    ck_assert(MATCH(&t, line));
    auth_tokens_free(&t);
    strcat(line, "a");
    ck_assert_int_eq(parse(&t, line, msg, sizeof(msg)), -1);
    ck_assert_str_eq(msg, "f:1: a token longer than 512 characters");
    /* AUTH_TOKENS_MAX tokens pass, one more does not. */
    size_t size = (AUTH_TOKENS_MAX + 1) * 8 + 1;
    char *many = malloc(size);
    ck_assert_ptr_nonnull(many);
    size_t o = 0;
    for (unsigned i = 0; i < AUTH_TOKENS_MAX; i++)
        o += (size_t)snprintf(many + o, size - o, "t%05u\n", i);
    ck_assert_int_eq(parse(&t, many, msg, sizeof(msg)), 0);
    ck_assert_uint_eq(t.n, AUTH_TOKENS_MAX);
    ck_assert(MATCH(&t, "t00000"));
    ck_assert(MATCH(&t, "t00255"));
    ck_assert(!MATCH(&t, "t00256"));
    auth_tokens_free(&t);
    snprintf(many + o, size - o, "t%05u\n", AUTH_TOKENS_MAX);
    ck_assert_int_eq(parse(&t, many, msg, sizeof(msg)), -1);
    ck_assert_str_eq(msg, "f:257: more than 256 tokens");
    free(many);
    /* Bytes over the file limit, a NUL byte. */
    char *big = malloc(AUTH_TOKENS_FILE_MAX + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, '\n', AUTH_TOKENS_FILE_MAX + 1);
    big[0] = 'x';
    ck_assert_int_eq(auth_tokens_parse(&t, big, AUTH_TOKENS_FILE_MAX, "f", msg, sizeof(msg)), 0);
    auth_tokens_free(&t);
    ck_assert_int_eq(auth_tokens_parse(&t, big, AUTH_TOKENS_FILE_MAX + 1, "f", msg, sizeof(msg)),
                     -1);
    ck_assert_str_eq(msg, "f: larger than 65536 bytes");
    free(big);
    ck_assert_int_eq(auth_tokens_parse(&t, "ab\0cd\n", 6, "f", msg, sizeof(msg)), -1);
    ck_assert_str_eq(msg, "f: holds a NUL byte");
}
END_TEST

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_load_and_replace)
{
    char dir[] = "/tmp/check_auth.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], msg[512];
    snprintf(path, sizeof(path), "%s/tokens", dir);
    struct auth_tokens t, next;
    ck_assert_int_eq(auth_tokens_load(&t, path, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "cannot open "));
    ck_assert_ptr_nonnull(strstr(msg, "No such file or directory"));
    ck_assert_int_eq(auth_tokens_load(&t, dir, msg, sizeof(msg)), -1); /* a directory */
    ck_assert_ptr_nonnull(strstr(msg, "not a regular file"));
    write_file(path, "one\n");
    ck_assert_int_eq(auth_tokens_load(&t, path, msg, sizeof(msg)), 0);
    ck_assert(MATCH(&t, "one"));
    write_file(path, "two\nthree\n");
    ck_assert_int_eq(auth_tokens_load(&next, path, msg, sizeof(msg)), 0);
    auth_tokens_replace(&t, &next);
    ck_assert_uint_eq(next.n, 0);
    ck_assert_ptr_null(next.digest);
    ck_assert(!MATCH(&t, "one"));
    ck_assert(MATCH(&t, "two"));
    ck_assert(MATCH(&t, "three"));
    write_file(path, "# nothing left\n");
    ck_assert_int_eq(auth_tokens_load(&next, path, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "no token in the file"));
    ck_assert(MATCH(&t, "two")); /* a failed load leaves the set it was to replace */
    auth_tokens_free(&t);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_protected_paths)
{
    ck_assert(http_auth_protected("/ws", "GET"));
    ck_assert(http_auth_protected("/ws", "HEAD"));
    ck_assert(http_auth_protected("/ws/", "GET"));
    ck_assert(http_auth_protected("/api", "GET"));
    ck_assert(http_auth_protected("/api/clusters", "GET"));
    ck_assert(http_auth_protected("/api/clusters/a", "HEAD"));
    ck_assert(http_auth_protected("/api/events", "GET"));
    ck_assert(http_auth_protected("/api/nothing", "POST"));
    ck_assert(http_auth_protected("/metrics", "GET"));
    ck_assert(!http_auth_protected("/api/clusters", "OPTIONS")); /* preflights */
    ck_assert(!http_auth_protected("/ws", "OPTIONS"));
    ck_assert(!http_auth_protected("/healthz", "GET"));
    ck_assert(!http_auth_protected("/", "GET"));
    ck_assert(!http_auth_protected("/app.js", "GET"));
    ck_assert(!http_auth_protected("/index.html", "GET"));
    ck_assert(!http_auth_protected("/wss", "GET"));
    ck_assert(!http_auth_protected("/apis", "GET"));
    ck_assert(!http_auth_protected("/metricsx", "GET"));
    ck_assert(!http_auth_protected("/x/api", "GET"));
}
END_TEST

START_TEST(test_bearer)
{
    const char *tok;
    size_t len;
    ck_assert_int_eq(http_auth_bearer("Bearer abc", &tok, &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(tok, "abc", 3), 0);
    ck_assert_int_eq(http_auth_bearer("bearer  \tabc== \t", &tok, &len), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(tok, "abc==", 5), 0);
    ck_assert_int_eq(http_auth_bearer("BEARER x", &tok, &len), 0);
    ck_assert_int_eq(http_auth_bearer("Bearer", &tok, &len), -1);
    ck_assert_int_eq(http_auth_bearer("Bearer   ", &tok, &len), -1);
    ck_assert_int_eq(http_auth_bearer("Bearerabc", &tok, &len), -1);
    ck_assert_int_eq(http_auth_bearer("Basic YWJjOmRlZg==", &tok, &len), -1);
    ck_assert_int_eq(http_auth_bearer("", &tok, &len), -1);
}
END_TEST

START_TEST(test_decode)
{
    char out[8];
    ck_assert_int_eq(http_auth_decode("a%2Bb%2f%3D", 11, out, sizeof(out)), 5);
    ck_assert_int_eq(memcmp(out, "a+b/=", 5), 0);
    ck_assert_int_eq(http_auth_decode("plain", 5, out, sizeof(out)), 5);
    ck_assert_int_eq(http_auth_decode("", 0, out, sizeof(out)), 0);
    ck_assert_int_eq(http_auth_decode("%", 1, out, sizeof(out)), -1);
    ck_assert_int_eq(http_auth_decode("%4", 2, out, sizeof(out)), -1);
    ck_assert_int_eq(http_auth_decode("%zz", 3, out, sizeof(out)), -1);
    ck_assert_int_eq(http_auth_decode("a%00", 4, out, sizeof(out)), -1);
    ck_assert_int_eq(http_auth_decode("12345678", 8, out, sizeof(out)), 8);
    ck_assert_int_eq(http_auth_decode("123456789", 9, out, sizeof(out)), -1); /* does not fit */
}
END_TEST

#define Q(s) (s), strlen(s)

START_TEST(test_allowed)
{
    struct auth_tokens t;
    char msg[256];
    ck_assert_int_eq(parse(&t, "tok-1\nB+/x==\n", msg, sizeof(msg)), 0);
    /* No token file: everything passes. */
    ck_assert(http_auth_allowed(NULL, "/ws", "GET", NULL, NULL, 0));
    /* Protected paths: nothing, wrong, right; header and parameter. */
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, NULL, 0));
    ck_assert(!http_auth_allowed(&t, "/api/clusters", "GET", "Bearer tok-2", NULL, 0));
    ck_assert(http_auth_allowed(&t, "/api/clusters", "GET", "Bearer tok-1", NULL, 0));
    ck_assert(http_auth_allowed(&t, "/metrics", "GET", "bearer B+/x==", NULL, 0));
    ck_assert(http_auth_allowed(&t, "/ws", "GET", NULL, Q("tok-1")));
    ck_assert(http_auth_allowed(&t, "/ws", "GET", NULL, Q("B%2B%2Fx%3d%3D")));
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, Q("B+%2Fx==x")));
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, Q("")));
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, Q("tok-1%")));
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, Q("tok-1%00")));
    /* A Bearer header is the credential: a wrong one is not saved by the parameter. */
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", "Bearer nope", Q("tok-1")));
    /* Another scheme is no bearer credential: the parameter is looked at. */
    ck_assert(http_auth_allowed(&t, "/ws", "GET", "Basic dXNlcjpwYXNz", Q("tok-1")));
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", "Basic dXNlcjpwYXNz", NULL, 0));
    /* Longer than any token can be, in either form. */
    char longtok[AUTH_TOKEN_MAX_LEN + 16];
    memset(longtok, 'a', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", NULL, Q(longtok)));
    char longhdr[sizeof(longtok) + 8];
    snprintf(longhdr, sizeof(longhdr), "Bearer %s", longtok);
    ck_assert(!http_auth_allowed(&t, "/ws", "GET", longhdr, NULL, 0));
    /* Open paths and OPTIONS pass without any token. */
    ck_assert(http_auth_allowed(&t, "/healthz", "GET", NULL, NULL, 0));
    ck_assert(http_auth_allowed(&t, "/", "GET", "Bearer wrong", NULL, 0));
    ck_assert(http_auth_allowed(&t, "/api/clusters", "OPTIONS", NULL, NULL, 0));
    /* A set that failed to load refuses every protected request. */
    struct auth_tokens none = {0, NULL};
    ck_assert(!http_auth_allowed(&none, "/ws", "GET", "Bearer tok-1", Q("tok-1")));
    ck_assert(http_auth_allowed(&none, "/healthz", "GET", NULL, NULL, 0));
    auth_tokens_free(&t);
}
END_TEST

struct redact_case {
    const char *in, *out;
};

static const struct redact_case redact_cases[] = {
    {"for the request for `/ws?access_token=s3cret&since=4'",
     "for the request for `/ws?access_token=REDACTED&since=4'"},
    {"/ws?since=1&access_token=a%2Bb%2F%3D%3D", "/ws?since=1&access_token=REDACTED"},
    {"/x?ACCESS_TOKEN=ab c", "/x?ACCESS_TOKEN=REDACTED c"},
    {"a access_token=x access_token=yy b", "a access_token=REDACTED access_token=REDACTED b"},
    {"/ws?access_token=&x=1", "/ws?access_token=&x=1"}, /* no value: nothing to hide */
    {"access_token=", "access_token="},
    {"no token here", "no token here"},
    {"access_token=0123456789abcdefghij'", "access_token=REDACTED'"},
};

START_TEST(test_redact)
{
    const struct redact_case *c = &redact_cases[_i];
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", c->in);
    size_t n = log_redact(buf, strlen(buf), sizeof(buf));
    ck_assert_str_eq(buf, c->out);
    ck_assert_uint_eq(n, strlen(c->out));
}
END_TEST

START_TEST(test_redact_cut)
{
    /* REDACTED is longer than the value: a full buffer is cut, never overrun,
     * and the value never survives. */
    char buf[20];
    snprintf(buf, sizeof(buf), "%s", "q=1&access_token=ab");
    ck_assert_uint_eq(strlen(buf), 19);
    size_t n = log_redact(buf, strlen(buf), sizeof(buf));
    ck_assert_uint_eq(n, 19);
    ck_assert_str_eq(buf, "q=1&access_token=RE");
    char buf2[32];
    snprintf(buf2, sizeof(buf2), "%s", "access_token=ab&rest=12345678");
    n = log_redact(buf2, strlen(buf2), sizeof(buf2));
    ck_assert_str_eq(buf2, "access_token=REDACTED&rest=1234");
    ck_assert_uint_eq(n, 31);
}
END_TEST

static Suite *
auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("tokens");
    tcase_add_test(tc, test_parse_comments_blanks_trim);
    tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_parse_limits);
    tcase_add_test(tc, test_load_and_replace);
    suite_add_tcase(s, tc);
    tc = tcase_create("check");
    tcase_add_test(tc, test_protected_paths);
    tcase_add_test(tc, test_bearer);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_allowed);
    suite_add_tcase(s, tc);
    tc = tcase_create("redact");
    tcase_add_loop_test(tc, test_redact, 0, (int)(sizeof(redact_cases) / sizeof(redact_cases[0])));
    tcase_add_test(tc, test_redact_cut);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
