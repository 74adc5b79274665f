/*
 * fuzz_config - libFuzzer target: the configuration file's text through
 * config_reload, the function SIGHUP runs (the same config_load as at
 * start, without its printing), then config_update as the master applies a
 * reload (every changed value formatted back).
 *
 * The text is written to one memfd per process (rewritten for each input),
 * read through /proc/self/fd/N: a file on disk costs a flush per input (ext4
 * flushes a file truncated to 0 when it is closed) and ran 50 times slower.  A file that parses
 * must leave every value in its range: the rest of the daemon trusts struct config without
 * checking.
 */
/* memfd_create(2) is outside POSIX: glibc declares it with _GNU_SOURCE. */
#define _GNU_SOURCE 1
#include "build_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static int fd = -1;

static void
note(void *arg, const char *option, int live, const char *old_value, const char *new_value)
{
    size_t *n = arg;
    *n += strlen(option) + (size_t)live + strlen(old_value) + strlen(new_value);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz_config", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    static char arg0[] = "personad", arg1[] = "--config";
    char *argv[] = {arg0, arg1, path, NULL};
    static struct config running, next;
    memset(&running, 0, sizeof(running));
    strcpy(running.config_file, path);
    running.argc = 3;
    running.argv = argv;
    char msg[CONFIG_PATH_MAX + 256];
    if (config_reload(&running, &next, msg, sizeof(msg)) != 0) {
        if (msg[0] == '\0' || memchr(msg, '\0', sizeof(msg)) == NULL)
            abort(); /* a refusal always says why */
        return 0;
    }
    if (next.listen_port == 0 || next.workers < 1 || next.workers > 256 || next.ring_size < 16 ||
        next.ring_size > (1u << 20) || next.max_message_bytes < 1 ||
        next.max_message_bytes > (1u << 24) || next.max_connections < 1 ||
        next.max_connections > 1000000 || next.snapshot_max_bytes < 4096 ||
        next.snapshot_max_bytes > CONFIG_SNAPSHOT_MAX_LIMIT || next.ping_period_ms < 1 ||
        next.pong_wait_ms < 0 || next.write_deadline_ms < 0 || next.coalesce_delay_ms < 0 ||
        next.rescan_interval_ms < 0 || next.rest_deadline_ms < 0 || next.log_level < 0 ||
        next.log_level > 3 || next.personas_dir[0] == '\0' ||
        memchr(next.personas_dir, '\0', sizeof(next.personas_dir)) == NULL ||
        memchr(next.listen_addr, '\0', sizeof(next.listen_addr)) == NULL ||
        memchr(next.web_root, '\0', sizeof(next.web_root)) == NULL ||
        memchr(next.pidfile, '\0', sizeof(next.pidfile)) == NULL)
        abort();
    (void)config_warning(&next);
    /* The defaults (an empty file, parsed once) as the running configuration:
     * every value the text changed is compared, formatted and noted. */
    static struct config defaults;
    static int have_defaults;
    if (!have_defaults) {
        if (ftruncate(fd, 0) != 0 || config_reload(&running, &defaults, msg, sizeof(msg)) != 0)
            abort();
        have_defaults = 1;
    }
    running = defaults;
    size_t noted = 0;
    (void)config_update(&running, &next, note, &noted);
    return 0;
}
