/*
 * config - command line and config file parsing; see config.h.
 *
 * Every option is one row of opts[] (name, short name, help, default, the member it
 * sets and its range); getopt's tables, the --help text, the config file's keys and
 * the defaults are all generated from it, so a new option is one row.  Both sources
 * go through one setter, config_set(), so a key means the same on the command line
 * and in the file.  Options given on the command line are remembered in a bit set
 * and not overridden by the file, which is read after the command line (it is named
 * there).
 */
#include "build_config.h"

#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PERSONAD_DEFAULT_PERSONAS_DIR
#define PERSONAD_DEFAULT_PERSONAS_DIR "/var/lib/personad/personas"
#endif

/* What an option's value is, and so how it is parsed and where it goes. */
enum opt_kind {
    OPT_COUNT,   /* a decimal integer in [min, max], into an unsigned member of 4 or 8 bytes */
    OPT_SECONDS, /* seconds with an optional fraction, into an int64_t member in ms, 1..max */
    OPT_LISTEN,  /* [ADDR:]PORT, into listen_addr and listen_port */
    OPT_PATH,    /* a non-empty path, into a char[CONFIG_PATH_MAX] member */
    OPT_FLAG,    /* no value on the command line (1); 1/yes/true or 0/no/false in the file */
    OPT_HELP,    /* print the help and stop */
    OPT_VERSION, /* print the version and stop */
};

/* One option: its long name (also its config-file key), short name, help line,
 * default, and the member of struct config it sets.  Everything else (getopt's
 * tables, --help, the file's keys, the defaults) is generated from opts[]. */
struct opt {
    const char *name;    /* the long option, and the config-file key */
    char short_name;     /* 0: long only */
    const char *metavar; /* the value's name in --help; NULL: no value on the command line */
    const char *def;     /* the default: set like a value before the command line is read,
                            and printed for "%s" in help; NULL: zero or "" */
    const char *help;    /* "\n" starts an indented continuation line */
    enum opt_kind kind;
    size_t off, size;  /* the member of struct config, for COUNT, SECONDS, PATH and FLAG */
    uint64_t min, max; /* COUNT: the accepted range; SECONDS: max = the longest, in ms */
    const char *cap;   /* COUNT: a number over max is "over the limit of MAX CAP", not an
                          invalid value (a cap the user may run into); NULL: invalid */
    enum { OPT_FILE_KEY, OPT_CMDLINE_ONLY } where; /* also a config-file key, or not */
};

/* The row helpers; each checks at build time that the member fits the kind (and a
 * COUNT's upper bound fits its member). */
#define BUILD_CHECK(cond) (0 * sizeof(char[(cond) ? 1 : -1]))
#define MEMBER_SIZE(m) sizeof(((struct config *)0)->m)
#define MEMBER(m, ok) offsetof(struct config, m), MEMBER_SIZE(m) + BUILD_CHECK(ok)
#define COUNT_CAPPED(m, lo, hi, cap)                                                               \
    OPT_COUNT, MEMBER(m, MEMBER_SIZE(m) == 4 || MEMBER_SIZE(m) == 8), (lo),                        \
        (uint64_t)(hi) + BUILD_CHECK((uint64_t)(hi) <= UINT64_MAX >> (64 - 8 * MEMBER_SIZE(m))),   \
        (cap)
#define COUNT(m, lo, hi) COUNT_CAPPED(m, lo, hi, NULL)
#define SECONDS(m, max_ms)                                                                         \
    OPT_SECONDS, MEMBER(m, MEMBER_SIZE(m) == sizeof(int64_t)), 1, (max_ms), NULL
#define PATH(m) OPT_PATH, MEMBER(m, MEMBER_SIZE(m) == CONFIG_PATH_MAX), 0, 0, NULL
#define FLAG(m) OPT_FLAG, MEMBER(m, MEMBER_SIZE(m) == sizeof(int)), 0, 0, NULL
#define SPECIAL(kind) kind, 0, 0, 0, 0, NULL /* LISTEN, HELP, VERSION: no member of their own */
#define DAY_MS 86400000

/* In --help order. */
static const struct opt opts[] = {
    {"listen", 'l', "[ADDR:]PORT", "8080",
     "default %s on all addresses\n(\"127.0.0.1:8080\", \"[::1]:8080\")", SPECIAL(OPT_LISTEN),
     OPT_FILE_KEY},
    {"personas-dir", 'd', "DIR", PERSONAD_DEFAULT_PERSONAS_DIR,
     "directory of persona files\n(default %s)", PATH(personas_dir), OPT_FILE_KEY},
    {"workers", 'w', "N", NULL, "worker processes (default: online CPUs)", COUNT(workers, 1, 256),
     OPT_FILE_KEY},
    {"ring-size", 0, "N", "4096", "events kept in the shared-memory ring (default %s)",
     COUNT(ring_size, 16, 1u << 20), OPT_FILE_KEY},
    {"ping-period", 0, "SECONDS", "54", "default %s (durations accept fractions, e.g. 0.2)",
     SECONDS(ping_period_ms, DAY_MS), OPT_FILE_KEY},
    {"pong-wait", 0, "SECONDS", "60", "default %s", SECONDS(pong_wait_ms, DAY_MS), OPT_FILE_KEY},
    {"write-deadline", 0, "SECONDS", "10", "default %s", SECONDS(write_deadline_ms, DAY_MS),
     OPT_FILE_KEY},
    {"max-message", 0, "BYTES", "512",
     "largest accepted incoming message, default %s\n"
     "(pings and closes may always carry 125 bytes)",
     COUNT(max_message_bytes, 1, 1u << 24), OPT_FILE_KEY},
    {"rescan-interval", 0, "SECONDS", "30", "periodic full rescan of DIR, default %s",
     SECONDS(rescan_interval_ms, DAY_MS), OPT_FILE_KEY},
    {"max-connections", 0, "N", "20000", "WebSocket and SSE connections per worker, default %s",
     COUNT(max_connections, 1, 1000000), OPT_FILE_KEY},
    {"snapshot-max", 0, "BYTES", "33554432",
     "largest REST snapshot, default %s, at most\n1073741824 (1 GiB)",
     COUNT_CAPPED(snapshot_max_bytes, 4096, CONFIG_SNAPSHOT_MAX_LIMIT, "bytes (1 GiB)"),
     OPT_FILE_KEY},
    {"rest-deadline", 0, "SECONDS", "30",
     "time a REST response may take, per 2 MiB of body\nbegun; then it is cut.  Default %s",
     SECONDS(rest_deadline_ms, DAY_MS), OPT_FILE_KEY},
    {"verbose", 'v', NULL, NULL, "debug logging", FLAG(verbose), OPT_FILE_KEY},
    {"config", 'c', "FILE", NULL, "\"key = value\" lines, keys = the long option names",
     PATH(config_file), OPT_CMDLINE_ONLY},
    {"help", 'h', NULL, NULL, "show this help and exit", SPECIAL(OPT_HELP), OPT_CMDLINE_ONLY},
    {"version", 'V', NULL, NULL, "show the version and exit", SPECIAL(OPT_VERSION),
     OPT_CMDLINE_ONLY},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))
#define HELP_COLUMN 33 /* where the help text starts */

/* config_usage - the --help text, generated from opts[]. */
static void
config_usage(FILE *out)
{
    fputs("Usage: personad [OPTION]...\n"
          "Stream cluster-persona events over WebSocket (/ws) and serve them over REST.\n"
          "\n",
          out);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        size_t n = strlen("  -x, --") + strlen(o->name);
        if (o->short_name != 0)
            fprintf(out, "  -%c, --%s", o->short_name, o->name);
        else
            fprintf(out, "      --%s", o->name);
        if (o->metavar != NULL) {
            fprintf(out, "=%s", o->metavar);
            n += 1 + strlen(o->metavar);
        }
        if (n + 2 > HELP_COLUMN) {
            fputc('\n', out);
            n = 0;
        }
        fprintf(out, "%*s", (int)(HELP_COLUMN - n), "");
        for (const char *h = o->help; *h != '\0'; h++) {
            if (h[0] == '%' && h[1] == 's') {
                fputs(o->def != NULL ? o->def : "", out);
                h++;
            } else if (*h == '\n') {
                fprintf(out, "\n%*s", HELP_COLUMN, "");
            } else {
                fputc(*h, out);
            }
        }
        fputc('\n', out);
    }
}

const char *
config_option(size_t i, int *file_key)
{
    if (i >= NOPTS)
        return NULL;
    *file_key = opts[i].where == OPT_FILE_KEY;
    return opts[i].name;
}

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

/* Seconds with an optional fraction -> milliseconds, at least 1 ms, at most max_ms. */
static int
parse_seconds(const char *s, uint64_t max_ms, int64_t *out_ms)
{
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > (double)max_ms / 1000.0)
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

/* opt_store - parse val for option o into cfg; 0, -1 when it is not a valid value,
 * or -2 when it is a number over the option's cap. */
static int
opt_store(struct config *cfg, const struct opt *o, const char *val)
{
    unsigned char *member = (unsigned char *)cfg + o->off;
    switch (o->kind) {
    case OPT_COUNT: {
        uint64_t u;
        if (parse_u64(val, o->min, UINT64_MAX, &u) != 0)
            return -1;
        if (u > o->max)
            return o->cap != NULL ? -2 : -1;
        if (o->size == sizeof(uint32_t)) {
            uint32_t u32 = (uint32_t)u;
            memcpy(member, &u32, sizeof(u32));
        } else {
            memcpy(member, &u, sizeof(u));
        }
        return 0;
    }
    case OPT_SECONDS: {
        int64_t ms;
        if (parse_seconds(val, o->max, &ms) != 0)
            return -1;
        memcpy(member, &ms, sizeof(ms));
        return 0;
    }
    case OPT_LISTEN:
        return parse_listen(cfg, val);
    case OPT_PATH:
        return copy_path((char *)member, val);
    case OPT_FLAG: {
        int on;
        if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0 ||
            strcmp(val, "true") == 0)
            on = 1;
        else if (strcmp(val, "0") == 0 || strcmp(val, "no") == 0 || strcmp(val, "false") == 0)
            on = 0;
        else
            return -1;
        memcpy(member, &on, sizeof(on));
        return 0;
    }
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
    return -1;
}

/* config_set - apply one option; "where" names its source for the error message. */
static int
config_set(struct config *cfg, const struct opt *o, const char *val, const char *where)
{
    int rc = opt_store(cfg, o, val);
    if (rc == -2) {
        fprintf(stderr, "personad: %s--%s: '%s' is over the limit of %llu %s\n", where, o->name,
                val, (unsigned long long)o->max, o->cap);
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "personad: %sinvalid value for --%s: '%s'\n", where, o->name,
                val ? val : "");
        return -1;
    }
    return 0;
}

static int
config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def != NULL && config_set(cfg, &opts[i], opts[i].def, "default: ") != 0)
            return -1;
    /* The one default that is not a constant. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu;
    return 0;
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

/* The option whose long name is name, or NULL. */
static const struct opt *
find_option(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
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
        const struct opt *o = find_option(key);
        if (o == NULL || o->where != OPT_FILE_KEY) {
            fprintf(stderr, "personad: %s:%u: unknown key '%s'\n", path, lineno, key);
            rc = -1;
            break;
        }
        if (from_cmdline[o - opts])
            continue;
        char where[CONFIG_PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
        rc = config_set(cfg, o, val, where);
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
    unsigned char from_cmdline[NOPTS] = {0};
    /* getopt's tables: a long option returns 256 + its row, a short one its letter. */
    struct option long_options[NOPTS + 1];
    char short_options[1 + 2 * NOPTS + 1];
    size_t ns = 0;
    short_options[ns++] = ':';
    for (size_t i = 0; i < NOPTS; i++) {
        int has_arg = opts[i].metavar != NULL ? required_argument : no_argument;
        long_options[i] = (struct option){opts[i].name, has_arg, NULL, 256 + (int)i};
        if (opts[i].short_name != 0) {
            short_options[ns++] = opts[i].short_name;
            if (has_arg == required_argument)
                short_options[ns++] = ':';
        }
    }
    long_options[NOPTS] = (struct option){NULL, 0, NULL, 0};
    short_options[ns] = '\0';

    if (config_defaults(cfg) != 0)
        return -1;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, short_options, long_options, NULL);
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
        size_t i = 0;
        if (c >= 256)
            i = (size_t)(c - 256);
        else
            while (i < NOPTS && opts[i].short_name != c)
                i++;
        if (i >= NOPTS)
            return -1; /* getopt returned what it was not given: cannot happen */
        const struct opt *o = &opts[i];
        if (o->kind == OPT_HELP) {
            config_usage(stdout);
            return 1;
        }
        if (o->kind == OPT_VERSION) {
            printf("personad %s\n", PACKAGE_VERSION);
            return 1;
        }
        from_cmdline[i] = 1;
        if (config_set(cfg, o, optarg, "") != 0)
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
