/*
 * check_stats - unit tests for shm/stats.c and the /metrics text
 * (src/worker/metrics.c): sizes, summing over the slots, gauges only of live
 * slots, a respawned worker's takeover (counters continue, its predecessor's
 * open connections become worker_exit drops, nothing goes backwards), each
 * protocol's figures apart (WebSocket, SSE), the
 * worker's mapping (its own slot writable, every other page read-only), and
 * the rendered text's names, groups and values.
 */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#include "build_config.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/shm_map.h"
#include "shm/stats.h"
#include "worker/metrics.h"

#define PAGE 4096u

/* A zero-filled area for nslots in private memory. */
static void *
area(uint32_t nslots, struct stats *s)
{
    size_t bytes = stats_bytes(nslots, PAGE);
    ck_assert_uint_ne(bytes, SIZE_MAX);
    void *mem = calloc(1, bytes);
    ck_assert_ptr_nonnull(mem);
    stats_init(s, mem, nslots, PAGE, 1700000000u);
    return mem;
}

START_TEST(test_bytes)
{
    /* header page + one page per slot */
    ck_assert_uint_eq(stats_bytes(1, 4096), 2 * 4096);
    ck_assert_uint_eq(stats_bytes(5, 4096), 6 * 4096);
    ck_assert_uint_eq(stats_bytes(257, 65536), 258 * 65536);
    ck_assert_uint_eq(stats_bytes(0, 4096), SIZE_MAX);
    ck_assert_uint_eq(stats_bytes(STATS_MAX_SLOTS + 1, 4096), SIZE_MAX);
    ck_assert_uint_eq(stats_bytes(2, 1000), SIZE_MAX);
    ck_assert_uint_eq(stats_bytes(2, 6144), SIZE_MAX);
}
END_TEST

START_TEST(test_sum_over_slots)
{
    struct stats s;
    void *mem = area(4, &s);
    /* Each slot is a page of its own, beyond the header. */
    ck_assert_uint_eq((uintptr_t)stats_slot(&s, 1) - (uintptr_t)stats_slot(&s, 0), PAGE);
    ck_assert_uint_ge((uintptr_t)stats_slot(&s, 0) - (uintptr_t)mem, sizeof(struct stats_header));
    for (uint32_t i = 0; i < 4; i++)
        stats_add(stats_slot(&s, i), STATS_WS_OPENED, 10u * (i + 1));
    stats_add(stats_slot(&s, 2), STATS_WS_OPENED, UINT64_C(1) << 33);
    ck_assert_uint_eq(stats_sum(&s, STATS_WS_OPENED, 1, 4), 20 + 30 + 40 + (UINT64_C(1) << 33));
    ck_assert_uint_eq(stats_sum(&s, STATS_WS_OPENED, 0, 1), 10);
    ck_assert_uint_eq(stats_sum(&s, STATS_WS_OPENED, 1, 99), stats_sum(&s, STATS_WS_OPENED, 1, 4));
    /* Other values untouched. */
    ck_assert_uint_eq(stats_sum(&s, STATS_WS_OPEN, 0, 4), 0);
    free(mem);
}
END_TEST

START_TEST(test_live_gauges)
{
    struct stats s;
    void *mem = area(3, &s);
    struct stats_slot *a = stats_slot(&s, 1), *b = stats_slot(&s, 2);
    stats_slot_takeover(a, 100, 0);
    stats_slot_takeover(b, 200, 0);
    stats_add(a, STATS_WS_OPEN, 3);
    stats_add(b, STATS_WS_OPEN, 4);
    /* Not started by the master (or not yet recorded): not live. */
    ck_assert_uint_eq(stats_sum_live(&s, STATS_WS_OPEN, 1, 3), 0);
    stats_set_pid(&s, 1, 100);
    stats_set_pid(&s, 2, 200);
    ck_assert_int_eq(stats_slot_live(&s, 1), 1);
    ck_assert_uint_eq(stats_sum_live(&s, STATS_WS_OPEN, 1, 3), 7);
    /* Worker 2 died: the master cleared its pid; its gauge no longer counts. */
    stats_set_pid(&s, 2, 0);
    ck_assert_int_eq(stats_slot_live(&s, 2), 0);
    ck_assert_uint_eq(stats_sum_live(&s, STATS_WS_OPEN, 1, 3), 3);
    /* A new pid recorded before the new process took the slot over. */
    stats_set_pid(&s, 2, 201);
    ck_assert_uint_eq(stats_sum_live(&s, STATS_WS_OPEN, 1, 3), 3);
    stats_slot_takeover(b, 201, 0);
    ck_assert_uint_eq(stats_sum_live(&s, STATS_WS_OPEN, 1, 3), 3);
    free(mem);
}
END_TEST

START_TEST(test_takeover_continues)
{
    struct stats s;
    void *mem = area(2, &s);
    struct stats_slot *w = stats_slot(&s, 1);
    stats_slot_takeover(w, 100, 7);
    ck_assert_uint_eq(stats_get(w, STATS_SEEN_SEQ), 7);
    stats_add(w, STATS_WS_OPENED, 5);
    stats_add(w, STATS_WS_OPEN, 5);
    stats_add(w, STATS_WS_CLOSE_1001, 1);
    stats_sub(w, STATS_WS_OPEN, 1);
    stats_add(w, STATS_BYTES_WRITTEN, 12345);
    stats_add(w, STATS_HTTP_200, 9);
    uint64_t before[STATS_IDS];
    for (int i = 0; i < STATS_IDS; i++)
        before[i] = stats_get(w, (enum stats_id)i);
    /* The worker is killed with 4 connections open; its successor starts. */
    stats_slot_takeover(w, 101, 30);
    ck_assert_uint_eq(stats_get(w, STATS_PID), 101);
    ck_assert_uint_eq(stats_get(w, STATS_WS_OPEN), 0);
    ck_assert_uint_eq(stats_get(w, STATS_SEEN_SEQ), 30);
    ck_assert_uint_eq(stats_get(w, STATS_WS_DROP_WORKER_EXIT), 4);
    /* Every counter carries on: nothing went backwards. */
    for (int i = STATS_WS_OPENED; i < STATS_IDS; i++)
        ck_assert_uint_ge(stats_get(w, (enum stats_id)i), before[i]);
    ck_assert_uint_eq(stats_get(w, STATS_WS_OPENED), 5);
    ck_assert_uint_eq(stats_get(w, STATS_BYTES_WRITTEN), 12345);
    ck_assert_uint_eq(stats_get(w, STATS_HTTP_200), 9);
    /* opened = open + closed + dropped still holds. */
    ck_assert_uint_eq(stats_get(w, STATS_WS_OPENED), stats_get(w, STATS_WS_OPEN) +
                                                         stats_get(w, STATS_WS_CLOSE_1001) +
                                                         stats_get(w, STATS_WS_DROP_WORKER_EXIT));
    /* A second takeover with nothing open adds nothing. */
    stats_slot_takeover(w, 102, 30);
    ck_assert_uint_eq(stats_get(w, STATS_WS_DROP_WORKER_EXIT), 4);
    free(mem);
}
END_TEST

/* The worker's mapping: a child maps the area as worker 1 does, writes its
 * own slot, and dies on a write to another slot or the header. */
static int
child_writes(struct stats *s, int ro_fd, uint32_t own, int target)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The default action, so that AddressSanitizer (which handles SIGSEGV
         * itself and would report and exit) stays out of it. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        if (sigaction(SIGSEGV, &sa, NULL) != 0 || stats_map_worker(s, own, ro_fd) != 0)
            _exit(3);
        stats_add(stats_slot(s, own), STATS_WS_OPENED, 1);
        if (target == -1)
            atomic_store(&s->hdr->pid[0], 42);
        else if (target >= 0)
            stats_add(stats_slot(s, (uint32_t)target), STATS_WS_OPENED, 1);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

START_TEST(test_worker_mapping)
{
    char name[64];
    snprintf(name, sizeof(name), "/personad-check-stats-%ld", (long)getpid());
    struct stats s;
    int ro_fd;
    const char *call = NULL;
    size_t bytes = stats_bytes(4, PAGE);
    void *mem = shm_map_create(name, bytes, &ro_fd, &call);
    ck_assert_ptr_nonnull(mem);
    stats_init(&s, mem, 4, PAGE, 1);
    /* Its own slot: written, and the parent sees it. */
    int st = child_writes(&s, dup(ro_fd), 2, -2);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_uint_eq(stats_get(stats_slot(&s, 2), STATS_WS_OPENED), 1);
    /* Any other slot, before or after its own, and the header: SIGSEGV. */
    int targets[] = {0, 1, 3, -1};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        st = child_writes(&s, dup(ro_fd), 2, targets[i]);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "target %d: status %d",
                      targets[i], st);
    }
    ck_assert_uint_eq(stats_get(stats_slot(&s, 2), STATS_WS_OPENED), 5);
    ck_assert_uint_eq(stats_sum(&s, STATS_WS_OPENED, 0, 2), 0);
    ck_assert_uint_eq(stats_get(stats_slot(&s, 3), STATS_WS_OPENED), 0);
    close(ro_fd);
    munmap(mem, bytes);
}
END_TEST

/* The value of the sample line that starts with prefix (name and labels). */
static uint64_t
value_of(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
    ck_abort_msg("no sample %s", prefix);
    return 0;
}

START_TEST(test_render)
{
    struct stats s;
    void *mem = area(3, &s); /* the master and two workers */
    stats_set_pid(&s, 1, 100);
    stats_set_pid(&s, 2, 200);
    stats_slot_takeover(stats_slot(&s, 1), 100, 40);
    stats_slot_takeover(stats_slot(&s, 2), 200, 42);
    struct stats_slot *m = stats_slot(&s, 0), *a = stats_slot(&s, 1), *b = stats_slot(&s, 2);
    stats_add(m, STATS_M_EVENTS_UPDATED, 7);
    stats_add(m, STATS_M_WORKER_RESTARTS, 1);
    stats_add(a, STATS_WS_OPEN, 2);
    stats_add(b, STATS_WS_OPEN, 3);
    stats_add(a, STATS_WS_CLOSE_1009, 1);
    stats_add(b, STATS_WS_CLOSE_1009, 2);
    stats_add(b, STATS_HTTP_404, 1);
    struct metrics_view v = {&s, "1.0 \"x\"\\", 42, 4096};
    size_t len;
    char *text = metrics_render(&v, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_int_eq(text[len - 1], '\n');
    ck_assert_ptr_nonnull(strstr(text, "personad_build_info{version=\"1.0 \\\"x\\\"\\\\\"} 1\n"));
    ck_assert_uint_eq(value_of(text, "personad_start_time_seconds"), 1700000000u);
    ck_assert_uint_eq(value_of(text, "personad_workers"), 2);
    ck_assert_uint_eq(value_of(text, "personad_connections{protocol=\"websocket\"}"), 5);
    ck_assert_uint_eq(
        value_of(text, "personad_connections_closed_total{protocol=\"websocket\",code=\"1009\"}"),
        3);
    ck_assert_uint_eq(value_of(text, "personad_events_total{type=\"cluster.updated\"}"), 7);
    ck_assert_uint_eq(value_of(text, "personad_http_responses_total{code=\"404\"}"), 1);
    ck_assert_uint_eq(value_of(text, "personad_worker_restarts_total"), 1);
    ck_assert_uint_eq(value_of(text, "personad_ring_head_seq"), 42);
    ck_assert_uint_eq(value_of(text, "personad_ring_capacity_events"), 4096);
    ck_assert_uint_eq(value_of(text, "personad_worker_lag_events{worker=\"0\"}"), 2);
    ck_assert_uint_eq(value_of(text, "personad_worker_lag_events{worker=\"1\"}"), 0);
    ck_assert_uint_eq(value_of(text, "personad_worker_up{worker=\"1\"}"), 1);
    /* Every sample's metric has its HELP and TYPE lines just before its group. */
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    char current[128] = "";
    for (char *line = strtok(copy, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(line + 7, "%127s", current), 1);
        } else if (line[0] != '#') {
            ck_assert_msg(strncmp(line, current, strlen(current)) == 0 &&
                              (line[strlen(current)] == ' ' || line[strlen(current)] == '{'),
                          "sample outside its group: %s", line);
        }
    }
    free(copy);
    free(text);
    /* Worker 1 dies: its gauges vanish, its counters stay in the sums. */
    stats_set_pid(&s, 2, 0);
    text = metrics_render(&v, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(value_of(text, "personad_connections{protocol=\"websocket\"}"), 2);
    ck_assert_uint_eq(value_of(text, "personad_worker_up{worker=\"1\"}"), 0);
    ck_assert_ptr_null(strstr(text, "personad_worker_lag_events{worker=\"1\"}"));
    ck_assert_uint_eq(
        value_of(text, "personad_connections_closed_total{protocol=\"websocket\",code=\"1009\"}"),
        3);
    free(text);
    free(mem);
}
END_TEST

/* Each protocol its own figures: a takeover moves each protocol's open
 * connections to its own worker_exit drops, and the text shows them apart. */
START_TEST(test_per_protocol)
{
    struct stats s;
    void *mem = area(2, &s);
    struct stats_slot *w = stats_slot(&s, 1);
    stats_set_pid(&s, 1, 100);
    stats_slot_takeover(w, 100, 0);
    stats_add(w, STATS_WS_OPENED, 2);
    stats_add(w, STATS_WS_OPEN, 2);
    stats_add(w, STATS_WS_RESUME_RESYNC, 1);
    stats_add(w, STATS_SSE_OPENED, 5);
    stats_add(w, STATS_SSE_OPEN, 5);
    stats_add(w, STATS_SSE_RESUME_REPLAYED, 2);
    stats_add(w, STATS_SSE_CLOSE_TOO_SLOW, 1);
    stats_sub(w, STATS_SSE_OPEN, 1);
    stats_add(w, STATS_SSE_DROP_PEER_GONE, 1);
    stats_sub(w, STATS_SSE_OPEN, 1);
    struct metrics_view v = {&s, "1", 0, 64};
    size_t len;
    char *text = metrics_render(&v, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(value_of(text, "personad_connections{protocol=\"websocket\"}"), 2);
    ck_assert_uint_eq(value_of(text, "personad_connections{protocol=\"sse\"}"), 3);
    ck_assert_uint_eq(value_of(text, "personad_connections_opened_total{protocol=\"websocket\"}"),
                      2);
    ck_assert_uint_eq(value_of(text, "personad_connections_opened_total{protocol=\"sse\"}"), 5);
    ck_assert_uint_eq(
        value_of(text, "personad_connections_closed_total{protocol=\"sse\",reason=\"too_slow\"}"),
        1);
    ck_assert_uint_eq(
        value_of(text, "personad_connections_dropped_total{protocol=\"sse\",reason=\"peer_gone\"}"),
        1);
    ck_assert_uint_eq(
        value_of(text,
                 "personad_connections_dropped_total{protocol=\"websocket\",reason=\"peer_gone\"}"),
        0);
    ck_assert_uint_eq(
        value_of(text, "personad_connections_resumed_total{protocol=\"sse\",result=\"replayed\"}"),
        2);
    ck_assert_uint_eq(
        value_of(text,
                 "personad_connections_resumed_total{protocol=\"websocket\",result=\"resync\"}"),
        1);
    free(text);
    /* The worker dies with 2 WebSockets and 3 SSE streams open. */
    stats_set_pid(&s, 1, 101);
    stats_slot_takeover(w, 101, 0);
    ck_assert_uint_eq(stats_get(w, STATS_WS_OPEN), 0);
    ck_assert_uint_eq(stats_get(w, STATS_SSE_OPEN), 0);
    ck_assert_uint_eq(stats_get(w, STATS_WS_DROP_WORKER_EXIT), 2);
    ck_assert_uint_eq(stats_get(w, STATS_SSE_DROP_WORKER_EXIT), 3);
    ck_assert_uint_eq(stats_get(w, STATS_SSE_OPENED), 5);
    ck_assert_uint_eq(stats_get(w, STATS_SSE_RESUME_REPLAYED), 2);
    text = metrics_render(&v, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(value_of(text, "personad_connections{protocol=\"sse\"}"), 0);
    ck_assert_uint_eq(
        value_of(text,
                 "personad_connections_dropped_total{protocol=\"sse\",reason=\"worker_exit\"}"),
        3);
    ck_assert_uint_eq(
        value_of(
            text,
            "personad_connections_dropped_total{protocol=\"websocket\",reason=\"worker_exit\"}"),
        2);
    free(text);
    free(mem);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_sum_over_slots);
    tcase_add_test(tc, test_live_gauges);
    tcase_add_test(tc, test_takeover_continues);
    tcase_add_test(tc, test_per_protocol);
    tcase_add_test(tc, test_worker_mapping);
    tcase_add_test(tc, test_render);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
