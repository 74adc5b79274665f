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
/* Longest --allowed-origins / --allowed-hosts value. */
#define CONFIG_LIST_MAX 2048

/* The largest --snapshot-max.  The master maps two halves of it and every
 * worker may hold a few private copies; with 1 GiB the mapping (2 GiB + a
 * header) still fits a 32-bit size_t, and blob offsets are 32-bit anyway. */
#define CONFIG_SNAPSHOT_MAX_LIMIT ((uint64_t)1 << 30)

struct config {
    char listen_addr[256]; /* "" = all addresses (dual-stack when possible) */
    uint16_t listen_port;  /* TCP port, 1..65535 */
    char personas_dir[CONFIG_PATH_MAX];
    char config_file[CONFIG_PATH_MAX]; /* "" when none */
    char web_root[CONFIG_PATH_MAX];    /* "" = the embedded dashboard at / */
    char auth_token_file[CONFIG_PATH_MAX]; /* "" = no bearer tokens needed */
    char tls_cert[CONFIG_PATH_MAX];    /* "" = plain HTTP; else HTTPS/WSS only */
    char tls_key[CONFIG_PATH_MAX];     /* the key of tls_cert */
    unsigned workers;                  /* worker processes, 1..256 */
    uint32_t ring_size;                /* events kept in the ring, power of two not required */
    int64_t ping_period_ms;
    int64_t pong_wait_ms;
    int64_t write_deadline_ms;
    int64_t coalesce_delay_ms;   /* 0: every fan-out at once */
    int64_t rescan_interval_ms;  /* periodic full rescan of the personas dir */
    uint32_t max_message_bytes;  /* largest accepted incoming message */
    uint32_t max_connections;    /* per worker */
    uint32_t max_connections_per_ip; /* from one address, all workers together; 0: no limit */
    int64_t request_timeout_ms;      /* time for a connection's whole first request head */
    uint64_t snapshot_max_bytes; /* largest REST snapshot published, <= 1 GiB */
    int64_t rest_deadline_ms;    /* time a REST response may take, per 2 MiB of body begun */
    char allowed_origins[CONFIG_LIST_MAX]; /* "" = same-origin only (common/access_list.h) */
    char allowed_hosts[CONFIG_LIST_MAX];   /* "" = any Host */
    int verbose;                 /* 1: debug logging (whatever log_level says) */
    char pidfile[CONFIG_PATH_MAX]; /* "" when none */
    char user[CONFIG_PATH_MAX];    /* --user: "" when none */
    char group[CONFIG_PATH_MAX];   /* --group: "" = the user's primary group */
    unsigned ready_fd;             /* 0 when none */
    int log_target;              /* enum config_log_target */
    int log_level;               /* --log-level: 0 debug, 1 info, 2 warn, 3 error */
    int check_config;            /* --check-config: print the configuration and exit */
    int source;                  /* enum config_source: where personas come from */
    char kube_api[CONFIG_PATH_MAX];        /* --kube-api URL; "" = in-cluster */
    char kube_token_file[CONFIG_PATH_MAX]; /* "" = none (in-cluster: the service account's) */
    char kube_ca_file[CONFIG_PATH_MAX];    /* "" = the system's (in-cluster: the pod's) */
    uint32_t kube_max_object_bytes;        /* longest watch line / listed object */
    /* The command line given at start (main's argv: lives as long as the process), which
     * a reload parses again so that its options keep their precedence over the file. */
    int argc;
    char **argv;
};

enum config_log_target { CONFIG_LOG_STDERR, CONFIG_LOG_SYSLOG };
enum config_source { CONFIG_SOURCE_DIR, CONFIG_SOURCE_KUBERNETES };

/* config_parse - fill cfg from argv (and the config file it names).
 * Returns 0 to run, 1 when --help/--version was printed (exit 0), -1 on error
 * (message already printed on stderr). */
int config_parse(struct config *cfg, int argc, char **argv);

/* config_warning - a combination of values that works but is probably a mistake
 * (logged as a warning at start and at each reload), or NULL. */
const char *config_warning(const struct config *cfg);

/* config_reload - parse running's command line again and re-read its config file
 * into next.  Returns 0, or -1 with the reason in msg (the first error, with
 * "file:line: " when it is in the file); next is then not to be used. */
int config_reload(const struct config *running, struct config *next, char *msg, size_t msg_size);

/* Called by config_update for each option whose value differs: live = 1 when it
 * was applied, 0 when it needs a restart (and was kept); the values as the file
 * spells them. */
typedef void config_note_fn(void *arg, const char *option, int live, const char *old_value,
                            const char *new_value);

/* config_update - copy the live options that differ from next into cfg, leave the
 * others (noting each that differs, if note is not NULL).  Returns how many live
 * options changed. */
unsigned config_update(struct config *cfg, const struct config *next, config_note_fn *note,
                       void *arg);

/* config_log_level - the enum log_level to run with: --log-level, or debug with
 * --verbose. */
int config_log_level(const struct config *cfg);

/* config_option - the long name of option i (0, 1, ... in --help order), NULL past the
 * last; *file_key is set to 1 when the name is also a config-file key.  Lets a test
 * walk every option without a list of its own. */
const char *config_option(size_t i, int *file_key);

/* config_option_live - 1 if option i changes live on a reload, 0 if it needs a
 * restart (or is not a file key). */
int config_option_live(size_t i);

#endif
