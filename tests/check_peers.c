/*
 * check_peers - unit tests for shm/peers.c (--max-connections-per-ip's
 * per-worker tables) and net_peer_key: the slot sizes, counting up and down,
 * one address's counts summed over two workers' slots, a full probe path
 * (not counted, admitted), entries reused after their count reaches zero,
 * clearing, and IPv4 and IPv4-mapped IPv6 as one key.
 */
#include "build_config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/net.h"
#include "shm/peers.h"
#include "shm/stats.h"

#define PAGE 4096u

static void
key_of(uint32_t n, uint8_t key[16])
{
    memset(key, 0, 16);
    key[10] = key[11] = 0xff;
    key[12] = (uint8_t)(n >> 24);
    key[13] = (uint8_t)(n >> 16);
    key[14] = (uint8_t)(n >> 8);
    key[15] = (uint8_t)n;
}

/* Two slots of slot_bytes in a zero-filled stats area. */
static void *
area(uint32_t slot_bytes, struct stats *s)
{
    size_t bytes = stats_bytes(3, slot_bytes);
    ck_assert_uint_ne(bytes, SIZE_MAX);
    void *mem = aligned_alloc(PAGE, bytes);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0, bytes);
    stats_init(s, mem, 3, slot_bytes, 1700000000u);
    return mem;
}

START_TEST(test_sizes)
{
    ck_assert_uint_eq(peers_capacity(PAGE), 0);
    ck_assert_uint_eq(peers_slot_bytes(PAGE, 1), 2 * PAGE);
    ck_assert_uint_eq(peers_capacity(2 * PAGE), 128); /* 4096 / 24 = 170 -> 128 */
    uint32_t b = peers_slot_bytes(PAGE, 42048);
    ck_assert_uint_ge(peers_capacity(b), PEERS_MAX_ENTRIES);
    ck_assert_uint_le(peers_capacity(b), PEERS_MAX_ENTRIES);
    ck_assert_uint_eq(b & (b - 1), 0);
    ck_assert_uint_ge(peers_capacity(peers_slot_bytes(PAGE, 1000)), 1000);
}
END_TEST

START_TEST(test_count_and_sum)
{
    struct stats s;
    uint32_t sb = peers_slot_bytes(PAGE, 256);
    void *mem = area(sb, &s);
    uint8_t a[16], b[16];
    key_of(0x7f000001, a);
    key_of(0x7f000002, b);
    struct stats_slot *w0 = stats_slot(&s, 1), *w1 = stats_slot(&s, 2);
    ck_assert_int_eq(peers_add(w0, sb, a, 1), 0);
    ck_assert_int_eq(peers_add(w0, sb, a, 1), 0);
    ck_assert_int_eq(peers_add(w1, sb, a, 1), 0);
    ck_assert_int_eq(peers_add(w1, sb, b, 1), 0);
    ck_assert_uint_eq(peers_get(w0, sb, a) + peers_get(w1, sb, a), 3);
    ck_assert_uint_eq(peers_get(w0, sb, b) + peers_get(w1, sb, b), 1);
    /* The values before the table are untouched. */
    for (unsigned i = 0; i < STATS_SLOT_VALUES; i++)
        ck_assert_uint_eq(stats_get(w0, (enum stats_id)i), 0);
    ck_assert_int_eq(peers_add(w0, sb, a, -1), 0);
    ck_assert_uint_eq(peers_get(w0, sb, a), 1);
    ck_assert_int_eq(peers_add(w0, sb, a, -1), 0);
    ck_assert_uint_eq(peers_get(w0, sb, a), 0);
    /* Never below zero; an unknown key changes nothing. */
    ck_assert_int_eq(peers_add(w0, sb, a, -1), -1);
    ck_assert_int_eq(peers_add(w0, sb, b, -1), -1);
    ck_assert_uint_eq(peers_get(w0, sb, a), 0);
    ck_assert_uint_eq(peers_get(w1, sb, b), 1);
    peers_clear(w1, sb);
    ck_assert_uint_eq(peers_get(w1, sb, a), 0);
    ck_assert_uint_eq(peers_get(w1, sb, b), 0);
    free(mem);
}
END_TEST

START_TEST(test_full_and_reuse)
{
    struct stats s;
    uint32_t sb = 2 * PAGE; /* 128 entries */
    void *mem = area(sb, &s);
    struct stats_slot *w0 = stats_slot(&s, 1);
    uint32_t cap = peers_capacity(sb);
    uint8_t k[16];
    unsigned counted = 0;
    for (uint32_t i = 0; i < cap; i++) {
        key_of(0x0a000000 + i, k);
        counted += peers_add(w0, sb, k, 1) == 0;
    }
    /* Probe paths are bounded: a nearly full table may refuse some. */
    ck_assert_uint_gt(counted, cap / 2);
    key_of(0x0b000000, k);
    int rc = peers_add(w0, sb, k, 1);
    if (counted == cap)
        ck_assert_int_eq(rc, -1); /* full: not counted */
    /* Every counted address goes: its entries are free for new addresses. */
    for (uint32_t i = 0; i < cap; i++) {
        key_of(0x0a000000 + i, k);
        (void)peers_add(w0, sb, k, -1);
        ck_assert_uint_eq(peers_get(w0, sb, k), 0);
    }
    for (uint32_t i = 0; i < 64; i++) {
        key_of(0x0c000000 + i, k);
        ck_assert_int_eq(peers_add(w0, sb, k, 1), 0);
        ck_assert_uint_eq(peers_get(w0, sb, k), 1);
    }
    free(mem);
}
END_TEST

START_TEST(test_mapped_is_ipv4)
{
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons(1)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(2)};
    ck_assert_int_eq(inet_pton(AF_INET, "192.0.2.7", &in4.sin_addr), 1);
    ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:192.0.2.7", &in6.sin6_addr), 1);
    uint8_t k4[16], k6[16], other[16];
    ck_assert_int_eq(net_peer_key((struct sockaddr *)&in4, sizeof(in4), k4), 0);
    ck_assert_int_eq(net_peer_key((struct sockaddr *)&in6, sizeof(in6), k6), 0);
    ck_assert_mem_eq(k4, k6, 16);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr), 1);
    ck_assert_int_eq(net_peer_key((struct sockaddr *)&in6, sizeof(in6), other), 0);
    ck_assert_int_ne(memcmp(k4, other, 16), 0);
    struct sockaddr un = {.sa_family = AF_UNIX};
    ck_assert_int_eq(net_peer_key(&un, sizeof(un), other), -1);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("peers");
    TCase *tc = tcase_create("peers");
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_count_and_sum);
    tcase_add_test(tc, test_full_and_reuse);
    tcase_add_test(tc, test_mapped_is_ipv4);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
