/*
 * check_kube_pipe - the frames between the Kubernetes client child and the
 * master: round trips byte by byte and in one piece, and every bad frame
 * refused.
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kube_pipe.h"

/* Feed n bytes to r in pieces of step bytes. */
static void
feed(struct kube_pipe_reader *r, const unsigned char *b, size_t n)
{
    size_t room = 0;
    unsigned char *at = kube_pipe_reader_space(r, &room);
    ck_assert_ptr_nonnull(at);
    ck_assert_uint_ge(room, n);
    memcpy(at, b, n);
    kube_pipe_reader_commit(r, n);
}

START_TEST(round_trip)
{
    unsigned char buf[4096];
    size_t n = 0;
    n += kube_pipe_encode(buf + n, KUBE_FRAME_BEGIN, NULL, NULL, 0);
    n += kube_pipe_encode(buf + n, KUBE_FRAME_PUT, "prod", "{\"name\":\"prod\"}", 15);
    n += kube_pipe_encode(buf + n, KUBE_FRAME_PUT, "empty", "", 0);
    n += kube_pipe_encode(buf + n, KUBE_FRAME_REMOVE, "old", NULL, 0);
    n += kube_pipe_encode(buf + n, KUBE_FRAME_END, NULL, NULL, 0);
    n += kube_pipe_encode(buf + n, KUBE_FRAME_CANCEL, NULL, NULL, 0);
    for (size_t step = 1; step <= n; step = step < 8 ? step + 1 : step < n ? n : n + 1) {
        struct kube_pipe_reader r;
        kube_pipe_reader_init(&r, 1024);
        struct kube_frame f[8];
        int got = 0;
        const char *err = NULL;
        for (size_t off = 0; off < n; off += step) {
            feed(&r, buf + off, off + step > n ? n - off : step);
            int rc;
            while ((rc = kube_pipe_next(&r, &f[got], &err)) == 1) {
                /* copy out: the frame is valid until the next call */
                ck_assert_int_lt(got, 8);
                if (f[got].key != NULL)
                    f[got].key = strdup(f[got].key);
                if (f[got].data != NULL)
                    f[got].data = strndup(f[got].data, f[got].len);
                got++;
            }
            ck_assert_int_eq(rc, 0);
        }
        ck_assert_int_eq(got, 6);
        ck_assert_int_eq(f[0].type, KUBE_FRAME_BEGIN);
        ck_assert_int_eq(f[1].type, KUBE_FRAME_PUT);
        ck_assert_str_eq(f[1].key, "prod");
        ck_assert_str_eq(f[1].data, "{\"name\":\"prod\"}");
        ck_assert_uint_eq(f[1].len, 15);
        ck_assert_str_eq(f[2].key, "empty");
        ck_assert_uint_eq(f[2].len, 0);
        ck_assert_int_eq(f[3].type, KUBE_FRAME_REMOVE);
        ck_assert_str_eq(f[3].key, "old");
        ck_assert_ptr_null(f[3].data);
        ck_assert_int_eq(f[4].type, KUBE_FRAME_END);
        ck_assert_int_eq(f[5].type, KUBE_FRAME_CANCEL);
        ck_assert_uint_eq(kube_pipe_pending(&r), 0);
        for (int i = 0; i < got; i++) {
            free((char *)f[i].key);
            free((char *)f[i].data);
        }
        kube_pipe_reader_free(&r);
    }
}
END_TEST

static const char *
bad(const unsigned char *b, size_t n, size_t max)
{
    struct kube_pipe_reader r;
    kube_pipe_reader_init(&r, max);
    feed(&r, b, n);
    struct kube_frame f;
    const char *err = NULL;
    int rc = kube_pipe_next(&r, &f, &err);
    kube_pipe_reader_free(&r);
    return rc == -1 ? err : NULL;
}

START_TEST(bad_frames)
{
    /* Longer than max: refused from the header alone, before the payload. */
    static const unsigned char too_long[] = {'P', 0, 0, 4, 1};
    ck_assert_ptr_nonnull(bad(too_long, sizeof(too_long), 1024));
    static const unsigned char huge[] = {'P', 0xff, 0xff, 0xff, 0xff};
    ck_assert_ptr_nonnull(bad(huge, sizeof(huge), 1u << 20));
    static const unsigned char unknown[] = {'X', 0, 0, 0, 0};
    ck_assert_ptr_nonnull(bad(unknown, sizeof(unknown), 1024));
    static const unsigned char no_key[] = {'R', 0, 0, 0, 0};
    ck_assert_ptr_nonnull(bad(no_key, sizeof(no_key), 1024));
    static const unsigned char put_no_nul[] = {'P', 0, 0, 0, 3, 'a', 'b', 'c'};
    ck_assert_ptr_nonnull(bad(put_no_nul, sizeof(put_no_nul), 1024));
    static const unsigned char put_empty_key[] = {'P', 0, 0, 0, 2, 0, 'x'};
    ck_assert_ptr_nonnull(bad(put_empty_key, sizeof(put_empty_key), 1024));
    static const unsigned char remove_nul[] = {'R', 0, 0, 0, 3, 'a', 0, 'b'};
    ck_assert_ptr_nonnull(bad(remove_nul, sizeof(remove_nul), 1024));
    static const unsigned char begin_payload[] = {'B', 0, 0, 0, 1, 'x'};
    ck_assert_ptr_nonnull(bad(begin_payload, sizeof(begin_payload), 1024));
    /* At the limit: accepted. */
    static const unsigned char at_max[] = {'P', 0, 0, 0, 4, 'k', 0, 'v', 'w'};
    ck_assert_ptr_null(bad(at_max, sizeof(at_max), 4));
}
END_TEST

START_TEST(pipe_write)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(kube_pipe_write(p[1], KUBE_FRAME_PUT, "k", "{}", 2), 0);
    close(p[1]);
    struct kube_pipe_reader r;
    kube_pipe_reader_init(&r, 64);
    size_t room = 0;
    unsigned char *at = kube_pipe_reader_space(&r, &room);
    ssize_t n = read(p[0], at, room);
    ck_assert_int_eq(n, KUBE_PIPE_HEADER_BYTES + 4);
    kube_pipe_reader_commit(&r, (size_t)n);
    struct kube_frame f;
    const char *err = NULL;
    ck_assert_int_eq(kube_pipe_next(&r, &f, &err), 1);
    ck_assert_str_eq(f.key, "k");
    ck_assert_str_eq(f.data, "{}");
    close(p[0]);
    kube_pipe_reader_free(&r);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("kube_pipe");
    TCase *tc = tcase_create("frames");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, bad_frames);
    tcase_add_test(tc, pipe_write);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
