/*
 * check_kube_watch - what the Kubernetes client parses: watch lines split
 * across chunks and bounded, events, list pages, the published record (no
 * metadata), and the API target from options and the in-cluster environment.
 */
#include "build_config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_target.h"
#include "kube/kube_watch.h"

struct seen {
    char lines[8][256];
    int n;
    int stop_at; /* return 1 for this line (1-based), 0: never */
};

static int
on_line(void *arg, char *text, size_t len)
{
    struct seen *s = arg;
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_int_lt(s->n, 8);
    snprintf(s->lines[s->n], sizeof(s->lines[0]), "%s", text);
    s->n++;
    return s->n == s->stop_at;
}

START_TEST(lines_split_across_chunks)
{
    static const char body[] = "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}\n{\"half\":";
    for (size_t step = 1; step < sizeof(body); step++) {
        struct kube_lines l;
        kube_lines_init(&l, 64);
        struct seen s = {0};
        const char *err = NULL;
        for (size_t off = 0; off < sizeof(body) - 1; off += step) {
            size_t n = off + step > sizeof(body) - 1 ? sizeof(body) - 1 - off : step;
            ck_assert_int_eq(kube_lines_feed(&l, body + off, n, on_line, &s, &err), 0);
        }
        ck_assert_int_eq(s.n, 3);
        ck_assert_str_eq(s.lines[0], "{\"a\":1}");
        ck_assert_str_eq(s.lines[1], "{\"b\":2}");
        ck_assert_str_eq(s.lines[2], "{\"c\":3}");
        ck_assert_uint_eq(kube_lines_pending(&l), strlen("{\"half\":"));
        kube_lines_reset(&l); /* a watch that ended mid-line */
        ck_assert_uint_eq(kube_lines_pending(&l), 0);
        kube_lines_free(&l);
    }
}
END_TEST

START_TEST(lines_bounded)
{
    struct kube_lines l;
    kube_lines_init(&l, 8);
    struct seen s = {0};
    const char *err = NULL;
    /* exactly max bytes: accepted */
    ck_assert_int_eq(kube_lines_feed(&l, "12345678\n", 9, on_line, &s, &err), 0);
    ck_assert_int_eq(s.n, 1);
    /* one more, across two chunks: refused, and what was held is dropped */
    ck_assert_int_eq(kube_lines_feed(&l, "12345", 5, on_line, &s, &err), 0);
    ck_assert_int_eq(kube_lines_feed(&l, "6789", 4, on_line, &s, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_uint_eq(kube_lines_pending(&l), 0);
    /* a callback's stop is returned */
    s.stop_at = 2;
    ck_assert_int_eq(kube_lines_feed(&l, "a\nb\nc\n", 6, on_line, &s, &err), 1);
    ck_assert_int_eq(s.n, 2);
    kube_lines_free(&l);
}
END_TEST

static const char *
record_of(const char *json, char **rec)
{
    cJSON *obj = cJSON_Parse(json);
    ck_assert_ptr_nonnull(obj);
    const char *name = NULL;
    size_t len = 0;
    *rec = NULL;
    const char *err = kube_object_record(obj, &name, rec, &len);
    if (err == NULL) {
        ck_assert_uint_eq(strlen(*rec), len);
        ck_assert_str_eq(name, "prod");
    }
    cJSON_Delete(obj);
    return err;
}

START_TEST(object_records)
{
    char *rec = NULL;
    ck_assert_ptr_null(record_of("{\"apiVersion\":\"dorgu.io/v1\",\"kind\":\"ClusterPersona\","
                                 "\"metadata\":{\"name\":\"prod\",\"resourceVersion\":\"7\","
                                 "\"managedFields\":[{}]},\"spec\":{\"a\":1},"
                                 "\"status\":{\"phase\":\"Ready\"}}",
                                 &rec));
    ck_assert_str_eq(rec,
                     "{\"name\":\"prod\",\"spec\":{\"a\":1},\"status\":{\"phase\":\"Ready\"}}");
    free(rec);
    /* metadata only differs: the same record */
    ck_assert_ptr_null(record_of("{\"metadata\":{\"name\":\"prod\",\"resourceVersion\":\"8\","
                                 "\"annotations\":{\"x\":\"y\"}},\"spec\":{\"a\":1},"
                                 "\"status\":{\"phase\":\"Ready\"}}",
                                 &rec));
    ck_assert_str_eq(rec,
                     "{\"name\":\"prod\",\"spec\":{\"a\":1},\"status\":{\"phase\":\"Ready\"}}");
    free(rec);
    /* no status: none in the record */
    ck_assert_ptr_null(record_of("{\"metadata\":{\"name\":\"prod\"},\"spec\":{}}", &rec));
    ck_assert_str_eq(rec, "{\"name\":\"prod\",\"spec\":{}}");
    free(rec);
    ck_assert_ptr_nonnull(record_of("{\"metadata\":{},\"spec\":{}}", &rec));
    ck_assert_ptr_nonnull(record_of("{\"metadata\":{\"name\":\"\"},\"spec\":{}}", &rec));
    ck_assert_ptr_nonnull(record_of("{\"metadata\":{\"name\":7},\"spec\":{}}", &rec));
    ck_assert_ptr_nonnull(record_of("{\"metadata\":{\"name\":\"prod\"}}", &rec));
    ck_assert_ptr_nonnull(record_of("[1]", &rec));
}
END_TEST

START_TEST(events)
{
    struct kube_event ev;
    static const char added[] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
                                "\"resourceVersion\":\"12\"},\"spec\":{}}}";
    ck_assert_ptr_null(kube_event_parse(added, strlen(added), &ev));
    ck_assert_int_eq(ev.type, KUBE_EVENT_ADDED);
    ck_assert_str_eq(ev.rv, "12");
    kube_event_free(&ev);
    static const char bm[] = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ClusterPersona\","
                             "\"metadata\":{\"resourceVersion\":\"12746\"}}}";
    ck_assert_ptr_null(kube_event_parse(bm, strlen(bm), &ev));
    ck_assert_int_eq(ev.type, KUBE_EVENT_BOOKMARK);
    ck_assert_str_eq(ev.rv, "12746");
    kube_event_free(&ev);
    static const char gone[] = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
                               "\"v1\",\"status\":\"Failure\",\"message\":\"too old resource "
                               "version: 1 (2)\",\"reason\":\"Expired\",\"code\":410}}";
    ck_assert_ptr_null(kube_event_parse(gone, strlen(gone), &ev));
    ck_assert_int_eq(ev.type, KUBE_EVENT_ERROR);
    ck_assert_int_eq(ev.code, 410);
    kube_event_free(&ev);
    /* an opaque resourceVersion stays a string */
    static const char opaque[] = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\","
                                 "\"resourceVersion\":\"abc/def==\"}}}";
    ck_assert_ptr_null(kube_event_parse(opaque, strlen(opaque), &ev));
    ck_assert_int_eq(ev.type, KUBE_EVENT_DELETED);
    ck_assert_str_eq(ev.rv, "abc/def==");
    kube_event_free(&ev);
    static const char *const bad[] = {"",
                                      "not json",
                                      "{\"type\":\"ADDED\"}",
                                      "{\"type\":\"RESYNC\",\"object\":{}}",
                                      "{\"type\":1,\"object\":{}}",
                                      "{\"type\":\"ADDED\",\"object\":[]}",
                                      "{\"type\":\"ADDED\",\"object\":{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(kube_event_parse(bad[i], strlen(bad[i]), &ev) != NULL, "%s", bad[i]);
        ck_assert_ptr_null(ev.root);
    }
    /* the length bounds the parse: nothing past it is read */
    static const char two[] = "{\"type\":\"BOOKMARK\",\"object\":{}}garbage";
    ck_assert_ptr_null(kube_event_parse(two, strlen(two) - 7, &ev));
    kube_event_free(&ev);
}
END_TEST

START_TEST(list_pages)
{
    static const char page[] = "{\"kind\":\"ClusterPersonaList\",\"metadata\":{\"resourceVersion\":"
                               "\"10245\",\"continue\":\"T\"},\"items\":[{},{}]}";
    cJSON *root = NULL;
    const cJSON *items = NULL;
    const char *rv = NULL, *cont = NULL;
    ck_assert_ptr_null(kube_list_parse(page, strlen(page), &root, &items, &rv, &cont));
    ck_assert_str_eq(rv, "10245");
    ck_assert_str_eq(cont, "T");
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);
    cJSON_Delete(root);
    static const char last[] = "{\"metadata\":{\"resourceVersion\":\"9\"},\"items\":null}";
    ck_assert_ptr_null(kube_list_parse(last, strlen(last), &root, &items, &rv, &cont));
    ck_assert_str_eq(cont, "");
    cJSON_Delete(root);
    static const char *const bad[] = {"[]", "{\"items\":[]}",
                                      "{\"metadata\":{\"resourceVersion\":9},\"items\":[]}",
                                      "{\"metadata\":{\"resourceVersion\":\"9\"},\"items\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(kube_list_parse(bad[i], strlen(bad[i]), &root, &items, &rv, &cont) != NULL,
                      "%s", bad[i]);
}
END_TEST

/* A fake environment for kube_target_resolve. */
static const char *env_host, *env_port, *env_sa;

static char *
fake_getenv(const char *name)
{
    if (strcmp(name, "KUBERNETES_SERVICE_HOST") == 0)
        return (char *)env_host;
    if (strcmp(name, "KUBERNETES_SERVICE_PORT") == 0)
        return (char *)env_port;
    if (strcmp(name, "PERSONAD_KUBE_SA_DIR") == 0)
        return (char *)env_sa;
    return NULL;
}

START_TEST(targets)
{
    static struct config cfg;
    struct kube_target t;
    char msg[512];
    memset(&cfg, 0, sizeof(cfg));
    env_host = env_port = env_sa = NULL;
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "not in a pod"));
    env_host = "10.96.0.1";
    env_port = "443";
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), 0);
    ck_assert_str_eq(t.api, "https://10.96.0.1:443");
    ck_assert_str_eq(t.token_file, KUBE_SA_DIR "/token");
    ck_assert_str_eq(t.ca_file, KUBE_SA_DIR "/ca.crt");
    env_host = "fd00::1";
    env_sa = "/tmp/sa";
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), 0);
    ck_assert_str_eq(t.api, "https://[fd00::1]:443");
    ck_assert_str_eq(t.token_file, "/tmp/sa/token");
    strcpy(cfg.kube_token_file, "/etc/tok");
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), 0);
    ck_assert_str_eq(t.token_file, "/etc/tok");
    ck_assert_str_eq(t.ca_file, "/tmp/sa/ca.crt");
    env_port = "443/x";
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), -1);
    /* --kube-api: only the files given, whatever the environment */
    env_port = "443";
    cfg.kube_token_file[0] = '\0';
    strcpy(cfg.kube_api, "http://127.0.0.1:8001/");
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), 0);
    ck_assert_str_eq(t.api, "http://127.0.0.1:8001");
    ck_assert_str_eq(t.token_file, "");
    ck_assert_str_eq(t.ca_file, "");
    strcpy(cfg.kube_api, "127.0.0.1:8001");
    ck_assert_int_eq(kube_target_resolve(&cfg, fake_getenv, &t, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, "http://"));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("kube_watch");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, lines_split_across_chunks);
    tcase_add_test(tc, lines_bounded);
    tcase_add_test(tc, object_records);
    tcase_add_test(tc, events);
    tcase_add_test(tc, list_pages);
    tcase_add_test(tc, targets);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
