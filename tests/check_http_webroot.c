/*
 * check_http_webroot - unit tests for src/worker/http_webroot.c without
 * libmicrohttpd running: which paths the web root claims, the strict path
 * decoding, opening beneath a real temporary directory with openat2 and with
 * the O_NOFOLLOW walk (the fallback for kernels without openat2, which the
 * integration test cannot reach), and the Content-Type table.  Serving over
 * the wire: tests/integration/test_web_root.py.
 */
/* syscall(2), to probe openat2: outside POSIX, declared with _GNU_SOURCE. */
#define _GNU_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "worker/http_webroot.h"

START_TEST(test_claims)
{
    static const char *const yes[] = {"/",         "/index.html", "/static/js/a.js", "/api2",
                                      "/wsx",      "/healthzz",   "/metricsx",       "/x/api",
                                      "/clusters", "/.env"};
    static const char *const no[] = {
        "/api",     "/api/",     "/api/clusters", "/ws",        "/ws/", "/ws/x",
        "/healthz", "/healthz/", "/metrics",      "/metrics/x", "",     "relative/x"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(http_webroot_claims(yes[i]), "%s not claimed", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(!http_webroot_claims(no[i]), "%s claimed", no[i]);
}
END_TEST

struct decode_case {
    const char *path;
    enum http_webroot_path want;
    const char *rel; /* HTTP_WEBROOT_PATH_OK / HIDDEN */
};

static const struct decode_case decode_cases[] = {
    {"/", HTTP_WEBROOT_PATH_OK, ""},
    {"//", HTTP_WEBROOT_PATH_OK, ""},
    {"/index.html", HTTP_WEBROOT_PATH_OK, "index.html"},
    {"/a/b/c.js", HTTP_WEBROOT_PATH_OK, "a/b/c.js"},
    {"/a//b///c.js", HTTP_WEBROOT_PATH_OK, "a/b/c.js"},
    {"/a/b/", HTTP_WEBROOT_PATH_OK, "a/b"},
    {"/m%61in.js", HTTP_WEBROOT_PATH_OK, "main.js"},
    {"/a%20b", HTTP_WEBROOT_PATH_OK, "a b"},
    {"/%C3%A9t%c3%a9", HTTP_WEBROOT_PATH_OK, "\xc3\xa9t\xc3\xa9"},
    {"/a..b", HTTP_WEBROOT_PATH_OK, "a..b"},
    {"/a./b", HTTP_WEBROOT_PATH_OK, "a./b"},
    {"/...", HTTP_WEBROOT_PATH_HIDDEN, "..."},
    {"/.env", HTTP_WEBROOT_PATH_HIDDEN, ".env"},
    {"/a/.git/config", HTTP_WEBROOT_PATH_HIDDEN, "a/.git/config"},
    {"/%2eenv", HTTP_WEBROOT_PATH_HIDDEN, ".env"},
    {"/..", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/.", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/../x", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a/../../x", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a/./b", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a/..", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a/../", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%2e%2e/x", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%2E%2E/x", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/.%2e/x", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%2e", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a%2fb", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a%2Fb", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%2f", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a%00", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/a%00.js", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%4", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%zz", HTTP_WEBROOT_PATH_BAD, NULL},
    {"/%4g", HTTP_WEBROOT_PATH_BAD, NULL},
    {"", HTTP_WEBROOT_PATH_BAD, NULL},
    {"index.html", HTTP_WEBROOT_PATH_BAD, NULL},
};

START_TEST(test_decode)
{
    const struct decode_case *c = &decode_cases[_i];
    char out[64];
    memset(out, 'X', sizeof(out));
    enum http_webroot_path got = http_webroot_decode(c->path, out, sizeof(out));
    ck_assert_msg(got == c->want, "%s: %d, want %d", c->path, (int)got, (int)c->want);
    if (c->rel != NULL)
        ck_assert_str_eq(out, c->rel);
}
END_TEST

START_TEST(test_decode_bounded)
{
    /* the output never overruns: a path as long as the buffer is refused */
    char out[8];
    ck_assert_int_eq(http_webroot_decode("/abcdefg", out, sizeof(out)), HTTP_WEBROOT_PATH_OK);
    ck_assert_str_eq(out, "abcdefg");
    ck_assert_int_eq(http_webroot_decode("/abcdefgh", out, sizeof(out)), HTTP_WEBROOT_PATH_BAD);
    ck_assert_int_eq(http_webroot_decode("/abcd/efgh", out, sizeof(out)), HTTP_WEBROOT_PATH_BAD);
    ck_assert_int_eq(http_webroot_decode("/abcdefg/", out, sizeof(out)), HTTP_WEBROOT_PATH_BAD);
    ck_assert_int_eq(http_webroot_decode("/abc/def", out, sizeof(out)), HTTP_WEBROOT_PATH_OK);
    ck_assert_str_eq(out, "abc/def");
    ck_assert_int_eq(http_webroot_decode("/", out, 0), HTTP_WEBROOT_PATH_BAD);
}
END_TEST

/* A temporary tree:  TMP/secret, TMP/root/{index.html, d/f.js, d/in -> f.js,
 * out -> ../secret, abs -> TMP/secret, up -> .., d/up -> ../.., fifo, dir/,
 * big (sparse, one byte over the bound)}. */
static char tmp[64], root[96];

static void
put(const char *rel, const char *content)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(content, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

static void
link_at(const char *target, const char *rel)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

static int
make_tree(void)
{
    strcpy(tmp, "/tmp/check_webroot.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(root, sizeof(root), "%s/root", tmp);
    char p[256];
    ck_assert_int_eq(mkdir(root, 0755), 0);
    snprintf(p, sizeof(p), "%s/d", root);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/dir", root);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/fifo", root);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    put("secret", "SECRET");
    put("root/index.html", "<html>");
    put("root/d/f.js", "f();");
    link_at("f.js", "root/d/in");
    link_at("../secret", "root/out");
    char abs[128];
    snprintf(abs, sizeof(abs), "%s/secret", tmp);
    link_at(abs, "root/abs");
    link_at("..", "root/up");
    link_at("../..", "root/d/up");
    snprintf(p, sizeof(p), "%s/big", root);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)HTTP_WEBROOT_FILE_MAX + 1), 0);
    ck_assert_int_eq(close(fd), 0);
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(rfd, 0);
    return rfd;
}

static void
remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* Open rel beneath rfd; on a file, check its content. */
static enum http_webroot_open
open_case(int rfd, const char *rel, int use_openat2, const char *want_content)
{
    int fd = -1;
    struct stat st;
    enum http_webroot_open res = http_webroot_open(rfd, rel, use_openat2, &fd, &st);
    if (res == HTTP_WEBROOT_FILE) {
        char buf[64] = {0};
        ck_assert_int_ge(read(fd, buf, sizeof(buf) - 1), 0);
        ck_assert_int_eq(close(fd), 0);
        ck_assert_msg(strcmp(buf, "SECRET") != 0, "%s: read the secret", rel);
        if (want_content != NULL)
            ck_assert_str_eq(buf, want_content);
        ck_assert_int_eq((int)st.st_size, (int)strlen(buf));
    }
    return res;
}

/* Both resolutions agree on everything but a symlink that stays inside. */
/* Whether this kernel (or emulator: qemu-user 7.2 has no openat2) runs
 * openat2: without it http_webroot_open walks, and the openat2 case gives the
 * walk's answers. */
static int
openat2_runs(void)
{
#if HAVE_LINUX_OPENAT2_H && defined(SYS_openat2)
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY, .resolve = RESOLVE_BENEATH};
    long r = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
    if (r >= 0) {
        close((int)r);
        return 1;
    }
    return errno != ENOSYS && errno != EPERM;
#else
    return 0;
#endif
}

START_TEST(test_open)
{
    int use_openat2 = _i && openat2_runs();
    if (_i && !use_openat2)
        fprintf(stderr, "openat2 does not run here: its case checks the walk\n");
    int rfd = make_tree();
    ck_assert_int_eq(open_case(rfd, "index.html", use_openat2, "<html>"), HTTP_WEBROOT_FILE);
    ck_assert_int_eq(open_case(rfd, "d/f.js", use_openat2, "f();"), HTTP_WEBROOT_FILE);
    ck_assert_int_eq(open_case(rfd, "nope", use_openat2, NULL), HTTP_WEBROOT_MISSING);
    ck_assert_int_eq(open_case(rfd, "d/nope.js", use_openat2, NULL), HTTP_WEBROOT_MISSING);
    ck_assert_int_eq(open_case(rfd, "nope/x.js", use_openat2, NULL), HTTP_WEBROOT_MISSING);
    ck_assert_int_eq(open_case(rfd, "index.html/x", use_openat2, NULL), HTTP_WEBROOT_MISSING);
    ck_assert_int_eq(open_case(rfd, "dir", use_openat2, NULL), HTTP_WEBROOT_NOT_FILE);
    ck_assert_int_eq(open_case(rfd, "d", use_openat2, NULL), HTTP_WEBROOT_NOT_FILE);
    ck_assert_int_eq(open_case(rfd, "fifo", use_openat2, NULL), HTTP_WEBROOT_NOT_FILE);
    ck_assert_int_eq(open_case(rfd, "big", use_openat2, NULL), HTTP_WEBROOT_TOO_LARGE);
    ck_assert_int_eq(open_case(rfd, "out", use_openat2, NULL), HTTP_WEBROOT_OUTSIDE);
    ck_assert_int_eq(open_case(rfd, "abs", use_openat2, NULL), HTTP_WEBROOT_OUTSIDE);
    ck_assert_int_eq(open_case(rfd, "up/secret", use_openat2, NULL), HTTP_WEBROOT_OUTSIDE);
    ck_assert_int_eq(open_case(rfd, "d/up/secret", use_openat2, NULL), HTTP_WEBROOT_OUTSIDE);
    /* a link inside DIR to a file inside DIR: followed beneath with openat2,
     * refused by the walk, which follows none */
    ck_assert_int_eq(open_case(rfd, "d/in", use_openat2, "f();"),
                     use_openat2 ? HTTP_WEBROOT_FILE : HTTP_WEBROOT_OUTSIDE);
    ck_assert_int_eq(close(rfd), 0);
    remove_tree();
}
END_TEST

START_TEST(test_content_type)
{
    ck_assert_str_eq(http_webroot_content_type("index.html"), "text/html; charset=utf-8");
    ck_assert_str_eq(http_webroot_content_type("a/b/INDEX.HTM"), "text/html; charset=utf-8");
    ck_assert_str_eq(http_webroot_content_type("s/main.3f2a.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(http_webroot_content_type("x.mjs"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(http_webroot_content_type("x.css"), "text/css; charset=utf-8");
    ck_assert_str_eq(http_webroot_content_type("x.js.map"), "application/json");
    ck_assert_str_eq(http_webroot_content_type("x.json"), "application/json");
    ck_assert_str_eq(http_webroot_content_type("x.svg"), "image/svg+xml");
    ck_assert_str_eq(http_webroot_content_type("x.png"), "image/png");
    ck_assert_str_eq(http_webroot_content_type("x.ico"), "image/vnd.microsoft.icon");
    ck_assert_str_eq(http_webroot_content_type("x.woff2"), "font/woff2");
    ck_assert_str_eq(http_webroot_content_type("x.wasm"), "application/wasm");
    ck_assert_str_eq(http_webroot_content_type("LICENSE"), "application/octet-stream");
    ck_assert_str_eq(http_webroot_content_type("x.unknown"), "application/octet-stream");
    ck_assert_str_eq(http_webroot_content_type("x."), "application/octet-stream");
    ck_assert_str_eq(http_webroot_content_type("d.js/file"), "application/octet-stream");
}
END_TEST

static Suite *
http_webroot_suite(void)
{
    Suite *s = suite_create("http_webroot");
    TCase *tc = tcase_create("paths");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_claims);
    tcase_add_loop_test(tc, test_decode, 0, (int)(sizeof(decode_cases) / sizeof(decode_cases[0])));
    tcase_add_test(tc, test_decode_bounded);
    tcase_add_test(tc, test_content_type);
    suite_add_tcase(s, tc);
    TCase *to = tcase_create("open");
    tcase_set_timeout(to, 10);
    tcase_add_loop_test(to, test_open, 0, 2); /* 0: the O_NOFOLLOW walk; 1: openat2 */
    suite_add_tcase(s, to);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_webroot_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
