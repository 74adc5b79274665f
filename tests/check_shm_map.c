/*
 * check_shm_map - unit tests for shm/shm_map.c: the object is unlinked at
 * creation and a read-only descriptor of it is kept; a worker's mapping made
 * from that descriptor (shm_map_readonly) cannot be made writable again
 * (mprotect and mmap fail with EACCES), a write through it faults, and the ring
 * and snapshot readers work on it while the writer's read-write mapping goes on
 * publishing.
 */
#include "build_config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/shm_map.h"
#include "shm/snapshot.h"

#define RING_SLOTS 16
#define HALF_BYTES 4096

struct mapping {
    char name[64];
    void *mem;
    size_t bytes;
    int ro_fd;
};

static void
map_new(struct mapping *m, const char *kind, size_t bytes)
{
    snprintf(m->name, sizeof(m->name), "/personad-check-%ld-%s", (long)getpid(), kind);
    const char *call = "?";
    m->bytes = bytes;
    m->mem = shm_map_create(m->name, bytes, &m->ro_fd, &call);
    ck_assert_msg(m->mem != NULL, "shm_map_create: %s: %s", call, strerror(errno));
    ck_assert_int_ge(m->ro_fd, 0);
}

START_TEST(test_create_unlinks_and_keeps_ro_fd)
{
    struct mapping m;
    map_new(&m, "ring", ring_bytes(RING_SLOTS));
    /* The name is gone at once. */
    errno = 0;
    ck_assert_int_eq(shm_open(m.name, O_RDONLY, 0), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* The kept descriptor is read-only and close-on-exec. */
    int fl = fcntl(m.ro_fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fl & O_ACCMODE, O_RDONLY);
    int fdfl = fcntl(m.ro_fd, F_GETFD);
    ck_assert_int_ge(fdfl, 0);
    ck_assert(fdfl & FD_CLOEXEC);
    /* It can never give a writable shared mapping. */
    errno = 0;
    ck_assert_ptr_eq(mmap(NULL, m.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m.ro_fd, 0),
                     MAP_FAILED);
    ck_assert_int_eq(errno, EACCES);
    /* The creator's mapping is zero-filled and writable. */
    ck_assert_uint_eq(((uint8_t *)m.mem)[m.bytes - 1], 0);
    ((uint8_t *)m.mem)[m.bytes - 1] = 1;
    close(m.ro_fd);
    munmap(m.mem, m.bytes);
}
END_TEST

START_TEST(test_readonly_cannot_become_writable)
{
    struct mapping m;
    map_new(&m, "snapshot", snapshot_bytes(HALF_BYTES));
    ck_assert_int_eq(shm_map_readonly(m.mem, m.bytes, m.ro_fd), 0);
    /* The descriptor was closed by shm_map_readonly. */
    errno = 0;
    ck_assert_int_eq(fcntl(m.ro_fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(mprotect(m.mem, m.bytes, PROT_READ | PROT_WRITE), -1);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(mprotect(m.mem, m.bytes, PROT_READ), 0); /* reading stays fine */
    munmap(m.mem, m.bytes);
}
END_TEST

START_TEST(test_write_faults)
{
    /* Runs in a forked child (CK_FORK): the SIGSEGV is the expected end.  The
     * default action, so that AddressSanitizer (which handles SIGSEGV itself
     * and would report and abort) stays out of it. */
    struct mapping m;
    map_new(&m, "ring", ring_bytes(RING_SLOTS));
    ck_assert_int_eq(shm_map_readonly(m.mem, m.bytes, m.ro_fd), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    ((volatile uint8_t *)m.mem)[0] = 1;
    ck_abort_msg("a write to the read-only mapping did not fault");
}
END_TEST

/* The master keeps its read-write mapping and publishes; a forked "worker"
 * turns its inherited mapping read-only and reads both objects, before and
 * after the master's next publish (the same shared pages). */
START_TEST(test_readers_on_readonly_mapping)
{
    struct mapping rm, sm;
    map_new(&rm, "ring", ring_bytes(RING_SLOTS));
    map_new(&sm, "snapshot", snapshot_bytes(HALF_BYTES));
    struct ring ring;
    struct snapshot snap;
    ring_init(&ring, rm.mem, RING_SLOTS);
    snapshot_init(&snap, sm.mem, HALF_BYTES);
    ck_assert_int_eq(ring_append(&ring, RING_EVENT_ADDED, "one", 3), 1);
    ck_assert_int_eq(snapshot_publish(&snap, "first", 5), SNAPSHOT_OK);
    int go[2], done[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(10);
        if (shm_map_readonly(rm.mem, rm.bytes, rm.ro_fd) != 0 ||
            shm_map_readonly(sm.mem, sm.bytes, sm.ro_fd) != 0)
            _exit(10);
        uint8_t buf[RING_PAYLOAD_MAX];
        uint32_t len, type;
        if (ring_read(&ring, 1, buf, &len, &type) != RING_OK || len != 3 ||
            memcmp(buf, "one", 3) != 0)
            _exit(11);
        uint8_t *copy = NULL;
        size_t clen;
        uint64_t gen;
        if (snapshot_copy(&snap, 0, &copy, &clen, &gen) != SNAPSHOT_OK || gen != 1 || clen != 5 ||
            memcmp(copy, "first", 5) != 0)
            _exit(12);
        free(copy);
        char c = 'r';
        if (write(done[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(13);
        if (ring_head(&ring) != 2 || ring_read(&ring, 2, buf, &len, &type) != RING_OK || len != 3 ||
            memcmp(buf, "two", 3) != 0)
            _exit(14);
        if (snapshot_copy(&snap, 1, &copy, &clen, &gen) != SNAPSHOT_OK || gen != 2 || clen != 6 ||
            memcmp(copy, "second", 6) != 0)
            _exit(15);
        free(copy);
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(done[0], &c, 1), 1);
    ck_assert_int_eq(ring_append(&ring, RING_EVENT_UPDATED, "two", 3), 2);
    ck_assert_int_eq(snapshot_publish(&snap, "second", 6), SNAPSHOT_OK);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader: status %d", st);
    close(rm.ro_fd);
    close(sm.ro_fd);
    munmap(rm.mem, rm.bytes);
    munmap(sm.mem, sm.bytes);
}
END_TEST

static Suite *
shm_map_suite(void)
{
    Suite *s = suite_create("shm_map");
    TCase *tc = tcase_create("readonly");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_create_unlinks_and_keeps_ro_fd);
    tcase_add_test(tc, test_readonly_cannot_become_writable);
    tcase_add_test_raise_signal(tc, test_write_faults, SIGSEGV);
    tcase_add_test(tc, test_readers_on_readonly_mapping);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shm_map_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
