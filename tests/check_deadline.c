/*
 * check_deadline - the fixed-period deadline lists.
 */
#include "build_config.h"

#include <check.h>
#include <stdlib.h>

#include "worker/deadline.h"

START_TEST(expire_in_arm_order)
{
    struct deadline_list l;
    struct deadline_node n[3] = {{0}};
    deadline_list_init(&l, 100);
    deadline_arm_force(&l, &n[0], 0);
    deadline_arm_force(&l, &n[1], 10);
    deadline_arm_force(&l, &n[2], 20);
    ck_assert_int_eq(deadline_next_ms(&l), 100);
    ck_assert_ptr_null(deadline_pop_expired(&l, 99));
    ck_assert_ptr_eq(deadline_pop_expired(&l, 110), &n[0]);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 110), &n[1]);
    ck_assert_ptr_null(deadline_pop_expired(&l, 110));
    ck_assert(!deadline_armed(&n[0]));
    ck_assert(deadline_armed(&n[2]));
    ck_assert_ptr_eq(deadline_pop_expired(&l, 1000), &n[2]);
    ck_assert_int_eq(deadline_next_ms(&l), INT64_MAX);
}
END_TEST

START_TEST(rearm_moves_to_tail)
{
    struct deadline_list l;
    struct deadline_node a = {0}, b = {0};
    deadline_list_init(&l, 100);
    deadline_arm_force(&l, &a, 0);
    deadline_arm_force(&l, &b, 5);
    deadline_arm_force(&l, &a, 50); /* re-armed: now after b */
    ck_assert_ptr_eq(deadline_pop_expired(&l, 105), &b);
    ck_assert_ptr_null(deadline_pop_expired(&l, 149));
    ck_assert_ptr_eq(deadline_pop_expired(&l, 150), &a);
}
END_TEST

START_TEST(small_rearm_skipped)
{
    struct deadline_list l;
    struct deadline_node a = {0};
    deadline_list_init(&l, 1600);
    deadline_arm(&l, &a, 0);
    deadline_arm(&l, &a, 50); /* < 1600/16: skipped */
    ck_assert_int_eq(a.due_ms, 1600);
    deadline_arm(&l, &a, 100); /* >= period/16: moved */
    ck_assert_int_eq(a.due_ms, 1700);
}
END_TEST

START_TEST(disarm_middle_and_ends)
{
    struct deadline_list l;
    struct deadline_node n[4] = {{0}};
    deadline_list_init(&l, 10);
    for (int i = 0; i < 4; i++)
        deadline_arm_force(&l, &n[i], i);
    deadline_disarm(&n[1]);
    deadline_disarm(&n[0]);
    deadline_disarm(&n[3]);
    deadline_disarm(&n[3]); /* twice is harmless */
    ck_assert_ptr_eq(l.head, &n[2]);
    ck_assert_ptr_eq(l.tail, &n[2]);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 100), &n[2]);
    ck_assert_ptr_null(l.head);
    ck_assert_ptr_null(l.tail);
}
END_TEST

START_TEST(many_nodes_constant_work)
{
    enum { N = 100000 };
    struct deadline_list l;
    struct deadline_node *n = calloc(N, sizeof(*n));
    deadline_list_init(&l, 1000);
    for (int i = 0; i < N; i++)
        deadline_arm_force(&l, &n[i], i / 100);
    int popped = 0;
    int64_t last = 0;
    struct deadline_node *x;
    while ((x = deadline_pop_expired(&l, 5000)) != NULL) {
        ck_assert_int_ge(x->due_ms, last);
        last = x->due_ms;
        popped++;
    }
    ck_assert_int_eq(popped, N);
    free(n);
}
END_TEST

/* A new period applies to the nodes already armed: due = armed + new period,
 * still in order (a reload shortening or lengthening --ping-period). */
START_TEST(set_period_applies_to_armed_nodes)
{
    struct deadline_list l;
    struct deadline_node n[3] = {{0}};
    deadline_list_init(&l, 54000);
    deadline_arm_force(&l, &n[0], 0);
    deadline_arm_force(&l, &n[1], 10);
    deadline_arm_force(&l, &n[2], 20);
    ck_assert_ptr_null(deadline_pop_expired(&l, 1000));
    deadline_list_set_period(&l, 300);
    ck_assert_int_eq(deadline_next_ms(&l), 300);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 1000), &n[0]);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 1000), &n[1]);
    deadline_list_set_period(&l, 5000);
    ck_assert_int_eq(n[2].due_ms, 5020);
    ck_assert_ptr_null(deadline_pop_expired(&l, 1000));
    deadline_arm_force(&l, &n[0], 1000); /* new arms take the new period */
    ck_assert_int_eq(n[0].due_ms, 6000);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 6000), &n[2]);
    ck_assert_ptr_eq(deadline_pop_expired(&l, 6000), &n[0]);
    ck_assert_ptr_null(l.head);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("deadline");
    TCase *tc = tcase_create("lists");
    tcase_add_test(tc, expire_in_arm_order);
    tcase_add_test(tc, rearm_moves_to_tail);
    tcase_add_test(tc, small_rearm_skipped);
    tcase_add_test(tc, disarm_middle_and_ends);
    tcase_add_test(tc, many_nodes_constant_work);
    tcase_add_test(tc, set_period_applies_to_armed_nodes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
