/*
 * config - command line and config file parsing; see config.h.
 *
 * Both sources go through one table of options and one setter, config_set(), so a
 * key means the same on the command line and in the file.  Options given on the
 * command line are remembered in a bit set and not overridden by the file, which
 * is read after the command line (it is named there).
 */
#include "build_config.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PERSONAD_DEFAULT_PERSONAS_DIR
#define PERSONAD_DEFAULT_PERSONAS_DIR "/var/lib/personad/personas"
#endif

enum opt_id {
    OPT_LISTEN,
    OPT_PERSONAS_DIR,
    OPT_WORKERS,
    OPT_RING_SIZE,
    OPT_PING_PERIOD,
    OPT_PONG_WAIT,
    OPT_WRITE_DEADLINE,
    OPT_MAX_MESSAGE,
    OPT_RESCAN_INTERVAL,
    OPT_MAX_CONNECTIONS,
    OPT_SNAPSHOT_MAX,
    OPT_REST_DEADLINE,
    OPT_VERBOSE,
    OPT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
    OPT_COUNT
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"personas-dir", required_argument, NULL, 'd'},
    {"workers", required_argument, NULL, 'w'},
    {"ring-size", required_argument, NULL, 256 + OPT_RING_SIZE},
    {"ping-period", required_argument, NULL, 256 + OPT_PING_PERIOD},
    {"pong-wait", required_argument, NULL, 256 + OPT_PONG_WAIT},
    {"write-deadline", required_argument, NULL, 256 + OPT_WRITE_DEADLINE},
    {"max-message", required_argument, NULL, 256 + OPT_MAX_MESSAGE},
    {"rescan-interval", required_argument, NULL, 256 + OPT_RESCAN_INTERVAL},
    {"max-connections", required_argument, NULL, 256 + OPT_MAX_CONNECTIONS},
    {"snapshot-max", required_argument, NULL, 256 + OPT_SNAPSHOT_MAX},
    {"rest-deadline", required_argument, NULL, 256 + OPT_REST_DEADLINE},
    {"verbose", no_argument, NULL, 'v'},
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "Usage: personad [OPTION]...\n"
    "Stream cluster-persona events over WebSocket (/ws) and serve them over REST.\n"
    "\n"
    "  -l, --listen=[ADDR:]PORT       default 8080 on all addresses\n"
    "                                 (\"127.0.0.1:8080\", \"[::1]:8080\")\n"
    "  -d, --personas-dir=DIR         directory of persona files\n"
    "                                 (default " PERSONAD_DEFAULT_PERSONAS_DIR ")\n"
    "  -w, --workers=N                worker processes (default: online CPUs)\n"
    "      --ring-size=N              events kept in the shared-memory ring (default 4096)\n"
    "      --ping-period=SECONDS      default 54 (durations accept fractions, e.g. 0.2)\n"
    "      --pong-wait=SECONDS        default 60\n"
    "      --write-deadline=SECONDS   default 10\n"
    "      --max-message=BYTES        largest accepted incoming message, default 512\n"
    "      --rescan-interval=SECONDS  periodic full rescan of DIR, default 30\n"
    "      --max-connections=N        WebSocket connections per worker, default 20000\n"
    "      --snapshot-max=BYTES       largest REST snapshot, default 33554432, at most\n"
    "                                 1073741824 (1 GiB)\n"
    "      --rest-deadline=SECONDS    time a REST response may take, per 2 MiB of body\n"
    "                                 begun; then it is cut.  Default 30\n"
    "  -v, --verbose                  debug logging\n"
    "  -c, --config=FILE              \"key = value\" lines, keys = the long option names\n"
    "  -h, --help                     show this help and exit\n"
    "  -V, --version                  show the version and exit\n";

static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s == '\0' || *s == '-' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Seconds with an optional fraction -> milliseconds, at least 1 ms, at most a day. */
static int
parse_seconds(const char *s, int64_t *out_ms)
{
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > 86400)
        return -1;
    int64_t ms = (int64_t)llround(v * 1000.0);
    *out_ms = ms < 1 ? 1 : ms;
    return 0;
}

static int
parse_listen(struct config *cfg, const char *s)
{
    const char *port_str;
    size_t addr_len = 0;
    const char *addr = "";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        addr = s + 1;
        addr_len = (size_t)(close - addr);
        port_str = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon != NULL) {
            if (strchr(s, ':') != colon)
                return -1; /* bare IPv6 needs brackets */
            addr = s;
            addr_len = (size_t)(colon - s);
            port_str = colon + 1;
        } else {
            port_str = s;
        }
    }
    uint64_t port;
    if (parse_u64(port_str, 1, 65535, &port) != 0)
        return -1;
    if (addr_len >= sizeof(cfg->listen_addr) || (addr != s + 0 && addr_len == 0 && s[0] == '['))
        return -1;
    memcpy(cfg->listen_addr, addr, addr_len);
    cfg->listen_addr[addr_len] = '\0';
    cfg->listen_port = (uint16_t)port;
    return 0;
}

static int
copy_path(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n >= CONFIG_PATH_MAX)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* config_set - apply one option; "where" names its source for the error message. */
static int
config_set(struct config *cfg, enum opt_id id, const char *name, const char *val, const char *where)
{
    uint64_t u;
    int rc = 0;
    switch (id) {
    case OPT_LISTEN:
        rc = parse_listen(cfg, val);
        break;
    case OPT_PERSONAS_DIR:
        rc = copy_path(cfg->personas_dir, val);
        break;
    case OPT_CONFIG:
        rc = copy_path(cfg->config_file, val);
        break;
    case OPT_WORKERS:
        rc = parse_u64(val, 1, 256, &u);
        if (rc == 0)
            cfg->workers = (unsigned)u;
        break;
    case OPT_RING_SIZE:
        rc = parse_u64(val, 16, 1u << 20, &u);
        if (rc == 0)
            cfg->ring_size = (uint32_t)u;
        break;
    case OPT_PING_PERIOD:
        rc = parse_seconds(val, &cfg->ping_period_ms);
        break;
    case OPT_PONG_WAIT:
        rc = parse_seconds(val, &cfg->pong_wait_ms);
        break;
    case OPT_WRITE_DEADLINE:
        rc = parse_seconds(val, &cfg->write_deadline_ms);
        break;
    case OPT_RESCAN_INTERVAL:
        rc = parse_seconds(val, &cfg->rescan_interval_ms);
        break;
    case OPT_MAX_MESSAGE:
        rc = parse_u64(val, 1, 1u << 24, &u);
        if (rc == 0)
            cfg->max_message_bytes = (uint32_t)u;
        break;
    case OPT_MAX_CONNECTIONS:
        rc = parse_u64(val, 1, 1000000, &u);
        if (rc == 0)
            cfg->max_connections = (uint32_t)u;
        break;
    case OPT_SNAPSHOT_MAX:
        rc = parse_u64(val, 4096, UINT64_MAX, &u);
        if (rc == 0 && u > CONFIG_SNAPSHOT_MAX_LIMIT) {
            fprintf(stderr, "personad: %s--%s: '%s' is over the limit of %llu bytes (1 GiB)\n",
                    where, name, val, (unsigned long long)CONFIG_SNAPSHOT_MAX_LIMIT);
            return -1;
        }
        if (rc == 0)
            cfg->snapshot_max_bytes = u;
        break;
    case OPT_REST_DEADLINE:
        rc = parse_seconds(val, &cfg->rest_deadline_ms);
        break;
    case OPT_VERBOSE:
        if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0 ||
            strcmp(val, "true") == 0)
            cfg->verbose = 1;
        else if (strcmp(val, "0") == 0 || strcmp(val, "no") == 0 || strcmp(val, "false") == 0)
            cfg->verbose = 0;
        else
            rc = -1;
        break;
    default:
        rc = -1;
        break;
    }
    if (rc != 0)
        fprintf(stderr, "personad: %sinvalid value for --%s: '%s'\n", where, name, val ? val : "");
    return rc;
}

static void
config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_port = 8080;
    memcpy(cfg->personas_dir, PERSONAD_DEFAULT_PERSONAS_DIR, sizeof(PERSONAD_DEFAULT_PERSONAS_DIR));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu;
    cfg->ring_size = 4096;
    cfg->ping_period_ms = 54000;
    cfg->pong_wait_ms = 60000;
    cfg->write_deadline_ms = 10000;
    cfg->rescan_interval_ms = 30000;
    cfg->max_message_bytes = 512;
    cfg->max_connections = 20000;
    cfg->snapshot_max_bytes = 32u << 20;
    cfg->rest_deadline_ms = 30000;
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int
find_option(const char *name)
{
    for (int i = 0; long_options[i].name != NULL; i++)
        if (strcmp(long_options[i].name, name) == 0)
            return i;
    return -1;
}

static enum opt_id
option_id(int table_index)
{
    int val = long_options[table_index].val;
    switch (val) {
    case 'l':
        return OPT_LISTEN;
    case 'd':
        return OPT_PERSONAS_DIR;
    case 'w':
        return OPT_WORKERS;
    case 'v':
        return OPT_VERBOSE;
    case 'c':
        return OPT_CONFIG;
    case 'h':
        return OPT_HELP;
    case 'V':
        return OPT_VERSION;
    default:
        return (enum opt_id)(val - 256);
    }
}

static int
config_read_file(struct config *cfg, const char *path, const unsigned char *from_cmdline)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "personad: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[CONFIG_PATH_MAX + 64];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "personad: %s:%u: line too long\n", path, lineno);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            fprintf(stderr, "personad: %s:%u: expected \"key = value\"\n", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        int idx = find_option(key);
        enum opt_id id = idx < 0 ? OPT_COUNT : option_id(idx);
        if (idx < 0 || id == OPT_CONFIG || id == OPT_HELP || id == OPT_VERSION) {
            fprintf(stderr, "personad: %s:%u: unknown key '%s'\n", path, lineno, key);
            rc = -1;
            break;
        }
        if (from_cmdline[id])
            continue;
        char where[CONFIG_PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
        rc = config_set(cfg, id, key, val, where);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "personad: reading %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

int
config_parse(struct config *cfg, int argc, char **argv)
{
    unsigned char from_cmdline[OPT_COUNT] = {0};
    config_defaults(cfg);
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, ":l:d:w:c:vhV", long_options, &idx);
        if (c == -1)
            break;
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (c == ':')
                fprintf(stderr, "personad: option '%s' needs a value\n", bad);
            else
                fprintf(stderr, "personad: unknown option '%s'\n", bad);
            fprintf(stderr, "Try 'personad --help' for more information.\n");
            return -1;
        }
        if (idx < 0) {
            for (int i = 0; long_options[i].name != NULL; i++)
                if (long_options[i].val == c)
                    idx = i;
        }
        enum opt_id id = option_id(idx);
        if (id == OPT_HELP) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (id == OPT_VERSION) {
            printf("personad %s\n", PACKAGE_VERSION);
            return 1;
        }
        from_cmdline[id] = 1;
        if (config_set(cfg, id, long_options[idx].name, optarg, "") != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "personad: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (cfg->config_file[0] != '\0' && config_read_file(cfg, cfg->config_file, from_cmdline) != 0)
        return -1;
    if (cfg->ping_period_ms >= cfg->pong_wait_ms)
        fprintf(stderr, "personad: warning: --ping-period should be shorter than --pong-wait\n");
    return 0;
}
