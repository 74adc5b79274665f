/*
 * check_log - escaping of log lines (log_escape, and the lines log.c writes)
 * and the rate limit (struct log_limit).  Lines are read back from a real
 * stderr: each test runs in its own process (CK_FORK) with fd 2 on a tmpfile.
 */
#include "build_config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* --- log_escape -------------------------------------------------------------- */

static const struct {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *out;
} escapes[] = {
    {"plain text, 100% ascii ~", 0, "plain text, 100% ascii ~"},
    {"a\nb", 0, "a\\nb"},
    {"tab\there\r", 0, "tab\\there\\r"},
    {"\x1b[31mred\x1b]0;title\x07", 0, "\\x1b[31mred\\x1b]0;title\\x07"},
    {"del\x7f", 0, "del\\x7f"},
    {"\x01\x1f", 0, "\\x01\\x1f"},
    {"nul\0in", 6, "nul\\x00in"},
    {"back\\slash", 0, "back\\slash"}, /* not escaped */
    /* C1 controls as UTF-8 (U+0080, NEL U+0085, CSI U+009B, U+009F) */
    {"\xc2\x80|\xc2\x85|\xc2\x9b[2J|\xc2\x9f", 0, "\\xc2\\x80|\\xc2\\x85|\\xc2\\x9b[2J|\\xc2\\x9f"},
    /* valid UTF-8 is kept: NBSP, é, 日本, an emoji, U+10FFFF */
    {"\xc2\xa0", 0, "\xc2\xa0"},
    {"caf\xc3\xa9", 0, "caf\xc3\xa9"},
    {"\xe6\x97\xa5\xe6\x9c\xac", 0, "\xe6\x97\xa5\xe6\x9c\xac"},
    {"\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80"},
    {"\xf4\x8f\xbf\xbf", 0, "\xf4\x8f\xbf\xbf"},
    /* single C1 bytes and other invalid UTF-8: byte by byte */
    {"\x9b\x85\x80", 0, "\\x9b\\x85\\x80"},
    {"\xff\xfe", 0, "\\xff\\xfe"},
    {"\xc0\xaf", 0, "\\xc0\\xaf"},                   /* overlong '/' */
    {"\xc1\x81", 0, "\\xc1\\x81"},                   /* overlong 'A' */
    {"\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf"},          /* overlong, 3 bytes */
    {"\xed\xa0\x80", 0, "\\xed\\xa0\\x80"},          /* a UTF-16 surrogate */
    {"\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80"}, /* above U+10FFFF */
    {"\xf5\x80\x80\x80", 0, "\\xf5\\x80\\x80\\x80"},
    {"\xc3Z", 0, "\\xc3Z"},                 /* lead byte without continuation */
    {"\xe6\x97", 0, "\\xe6\\x97"},          /* cut short at the end */
    {"\xe6\x97\n", 0, "\\xe6\\x97\\n"},     /* cut short by a newline */
    {"\xc3\xa9\xa9", 0, "\xc3\xa9\\xa9"},   /* a stray continuation byte */
    {"\xc2\xc2\x85", 0, "\\xc2\\xc2\\x85"}, /* resynchronises on the next byte */
};

START_TEST(escape_table)
{
    const char *in = escapes[_i].in;
    size_t len = escapes[_i].len ? escapes[_i].len : strlen(in);
    char out[256];
    memset(out, 'Z', sizeof(out));
    size_t n = log_escape(out, sizeof(out), in, len);
    ck_assert_msg(strcmp(out, escapes[_i].out) == 0, "case %d: got \"%s\", want \"%s\"", _i, out,
                  escapes[_i].out);
    ck_assert_uint_eq(n, strlen(escapes[_i].out));
}
END_TEST

START_TEST(escape_cuts_between_characters)
{
    char out[16];
    ck_assert_uint_eq(log_escape(out, 0, "abc", 3), 0);
    ck_assert_uint_eq(log_escape(out, 1, "abc", 3), 0);
    ck_assert_str_eq(out, "");
    /* "ab\n": room for 3 bytes, but the escape of \n takes 2: cut before it */
    ck_assert_uint_eq(log_escape(out, 4, "ab\n", 3), 2);
    ck_assert_str_eq(out, "ab");
    ck_assert_uint_eq(log_escape(out, 5, "ab\n", 3), 4);
    ck_assert_str_eq(out, "ab\\n");
    /* 日本 in 5 bytes: only the first character fits whole */
    ck_assert_uint_eq(log_escape(out, 5, "\xe6\x97\xa5\xe6\x9c\xac", 6), 3);
    ck_assert_str_eq(out, "\xe6\x97\xa5");
    /* a C1 control is one 8-byte escape or nothing */
    ck_assert_uint_eq(log_escape(out, 8, "\xc2\x9b", 2), 0);
    ck_assert_uint_eq(log_escape(out, 9, "\xc2\x9b", 2), 8);
    ck_assert_str_eq(out, "\\xc2\\x9b");
}
END_TEST

/* --- whole lines, read back from stderr ---------------------------------------- */

static FILE *captured;

static void
capture_stderr(void)
{
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    ck_assert_int_eq(dup2(fileno(captured), STDERR_FILENO), STDERR_FILENO);
}

/* Everything written to stderr since the last call (static buffer). */
static const char *
stderr_text(size_t *len)
{
    static char buf[65536];
    static off_t done;
    ssize_t n = pread(fileno(captured), buf, sizeof(buf) - 1, done);
    ck_assert_int_ge(n, 0);
    done += n;
    buf[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static const char *
prefix(const char *level)
{
    static char p[64];
    snprintf(p, sizeof(p), "personad[%ld]: %s: ", (long)getpid(), level);
    return p;
}

START_TEST(line_is_escaped_after_formatting)
{
    capture_stderr();
    char want[512];
    /* a file name that would forge a line and clear the terminal */
    log_warnx("persona file %s: %s; skipped", "x\npersonad[1]: info: forged\x1b[2J.json", "bad");
    snprintf(want, sizeof(want),
             "%spersona file x\\npersonad[1]: info: forged\\x1b[2J.json: bad; skipped\n",
             prefix("warning"));
    ck_assert_str_eq(stderr_text(NULL), want);
    /* the format string itself is escaped too: no caller can smuggle a newline */
    log_info("two\nlines caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xc2\x9b \xff");
    snprintf(want, sizeof(want),
             "%stwo\\nlines caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \\xc2\\x9b \\xff\n",
             prefix("info"));
    ck_assert_str_eq(stderr_text(NULL), want);
    /* strerror is appended before escaping; errno is preserved */
    errno = ENOENT;
    log_warn("open %s", "a\tb");
    ck_assert_int_eq(errno, ENOENT);
    snprintf(want, sizeof(want), "%sopen a\\tb: %s\n", prefix("warning"), strerror(ENOENT));
    ck_assert_str_eq(stderr_text(NULL), want);
}
END_TEST

START_TEST(long_lines_are_cut_with_one_newline)
{
    capture_stderr();
    char big[3000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t len;
    log_info("%s", big);
    const char *t = stderr_text(&len);
    ck_assert_uint_le(len, 1024 + 64);
    ck_assert_ptr_eq(strchr(t, '\n'), t + len - 1);
    /* escaping grows it fourfold, still one write of whole escapes and a newline */
    memset(big, 0x1b, sizeof(big) - 1);
    log_info("%s", big);
    t = stderr_text(&len);
    ck_assert_uint_le(len, 4096);
    ck_assert_uint_gt(len, 1024);
    ck_assert_ptr_eq(strchr(t, '\n'), t + len - 1);
    ck_assert_ptr_null(strchr(t, 0x1b));
    const char *body = t + strlen(prefix("info"));
    ck_assert_uint_eq((size_t)(t + len - 1 - body) % 4, 0); /* whole "\x1b"s only */
}
END_TEST

/* --- rate limit ------------------------------------------------------------------ */

START_TEST(limit_counts_per_second_and_reports)
{
    capture_stderr();
    struct log_limit l;
    log_limit_init(&l, "libmicrohttpd", LOG_LEVEL_WARN, 3);
    ck_assert_int_eq(log_limit_due_ms(&l), INT64_MAX);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(log_limit_allow(&l, 10000 + i * 100), 1);
    ck_assert_int_eq(log_limit_allow(&l, 10500), 0);
    ck_assert_int_eq(log_limit_allow(&l, 10999), 0);
    ck_assert_int_eq(log_limit_due_ms(&l), 11000);
    /* an older clock reading (another caller's) counts in the same second */
    ck_assert_int_eq(log_limit_allow(&l, 9000), 0);
    log_limit_flush(&l, 10999);
    ck_assert_str_eq(stderr_text(NULL), "");
    log_limit_flush(&l, 11000);
    char want[128];
    snprintf(want, sizeof(want), "%slibmicrohttpd: 3 more message(s) suppressed\n",
             prefix("warning"));
    ck_assert_str_eq(stderr_text(NULL), want);
    ck_assert_int_eq(log_limit_due_ms(&l), INT64_MAX);
    log_limit_flush(&l, 11500); /* reported once */
    ck_assert_str_eq(stderr_text(NULL), "");
    /* a fresh budget in the new second */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(log_limit_allow(&l, 11500), 1);
    ck_assert_int_eq(log_limit_allow(&l, 11600), 0);
    ck_assert_str_eq(stderr_text(NULL), "");
    /* without a flush, the next line reports first, then is allowed */
    ck_assert_int_eq(log_limit_allow(&l, 15000), 1);
    snprintf(want, sizeof(want), "%slibmicrohttpd: 1 more message(s) suppressed\n",
             prefix("warning"));
    ck_assert_str_eq(stderr_text(NULL), want);
    /* a second that suppressed nothing says nothing */
    log_limit_flush(&l, 20000);
    ck_assert_str_eq(stderr_text(NULL), "");
}
END_TEST

START_TEST(limit_summary_level)
{
    capture_stderr();
    struct log_limit l;
    log_limit_init(&l, "ws", LOG_LEVEL_INFO, 1);
    ck_assert_int_eq(log_limit_allow(&l, 0), 1);
    ck_assert_int_eq(log_limit_allow(&l, 1), 0);
    ck_assert_int_eq(log_limit_allow(&l, 2), 0);
    log_limit_flush(&l, INT64_MAX); /* what a worker does at exit */
    char want[128];
    snprintf(want, sizeof(want), "%sws: 2 more message(s) suppressed\n", prefix("info"));
    ck_assert_str_eq(stderr_text(NULL), want);
    /* lines after that final flush are still counted, without overflow */
    ck_assert_int_eq(log_limit_allow(&l, 5), 1);
    ck_assert_int_eq(log_limit_allow(&l, 5), 0);
    ck_assert_int_eq(log_limit_due_ms(&l), INT64_MAX);
    /* below the threshold the summary is not written either */
    log_set_level(LOG_LEVEL_WARN);
    ck_assert(!log_enabled(LOG_LEVEL_INFO));
    ck_assert(log_enabled(LOG_LEVEL_WARN));
    log_limit_init(&l, "ws", LOG_LEVEL_INFO, 1);
    ck_assert_int_eq(log_limit_allow(&l, 0), 1);
    ck_assert_int_eq(log_limit_allow(&l, 0), 0);
    log_limit_flush(&l, 1000);
    ck_assert_str_eq(stderr_text(NULL), "");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("log");
    TCase *te = tcase_create("escape");
    tcase_add_loop_test(te, escape_table, 0, (int)(sizeof(escapes) / sizeof(escapes[0])));
    tcase_add_test(te, escape_cuts_between_characters);
    tcase_add_test(te, line_is_escaped_after_formatting);
    tcase_add_test(te, long_lines_are_cut_with_one_newline);
    tcase_set_timeout(te, 10);
    suite_add_tcase(s, te);
    TCase *tl = tcase_create("limit");
    tcase_add_test(tl, limit_counts_per_second_and_reports);
    tcase_add_test(tl, limit_summary_level);
    tcase_set_timeout(tl, 10);
    suite_add_tcase(s, tl);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
