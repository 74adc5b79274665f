/*
 * config - the validated run-time configuration.
 *
 * config_parse() reads the command line and, when -c/--config names one, a file of
 * "key = value" lines whose keys are the long option names.  Command-line options
 * win over the file.  Every value is range-checked here, so the rest of the daemon
 * trusts struct config.  On a bad option it prints a message naming the option and
 * returns -1 (the caller exits 1).
 */
#ifndef PERSONAD_CONFIG_H
#define PERSONAD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 4096

/* The largest --snapshot-max.  The master maps two halves of it and every
 * worker may hold a few private copies; with 1 GiB the mapping (2 GiB + a
 * header) still fits a 32-bit size_t, and blob offsets are 32-bit anyway. */
#define CONFIG_SNAPSHOT_MAX_LIMIT ((uint64_t)1 << 30)

struct config {
    char listen_addr[256]; /* "" = all addresses (dual-stack when possible) */
    uint16_t listen_port;  /* TCP port, 1..65535 */
    char personas_dir[CONFIG_PATH_MAX];
    char config_file[CONFIG_PATH_MAX]; /* "" when none */
    unsigned workers;                  /* worker processes, 1..256 */
    uint32_t ring_size;                /* events kept in the ring, power of two not required */
    int64_t ping_period_ms;
    int64_t pong_wait_ms;
    int64_t write_deadline_ms;
    int64_t rescan_interval_ms;  /* periodic full rescan of the personas dir */
    uint32_t max_message_bytes;  /* largest accepted incoming message */
    uint32_t max_connections;    /* per worker */
    uint64_t snapshot_max_bytes; /* largest REST snapshot published, <= 1 GiB */
    int64_t rest_deadline_ms;    /* time a REST response may take, per 2 MiB of body begun */
    int verbose;                 /* 1: debug logging */
    char pidfile[CONFIG_PATH_MAX]; /* "" when none */
    unsigned ready_fd;             /* 0 when none */
};

/* config_parse - fill cfg from argv (and the config file it names).
 * Returns 0 to run, 1 when --help/--version was printed (exit 0), -1 on error
 * (message already printed on stderr). */
int config_parse(struct config *cfg, int argc, char **argv);

/* config_option - the long name of option i (0, 1, ... in --help order), NULL past the
 * last; *file_key is set to 1 when the name is also a config-file key.  Lets a test
 * walk every option without a list of its own. */
const char *config_option(size_t i, int *file_key);

#endif
