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
#include "common/access_list.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
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
    OPT_SECONDS, /* seconds with an optional fraction, into an int64_t member in ms, min..max
                    (min 0 or 1 ms: may the value be 0?) */
    OPT_LISTEN,  /* [ADDR:]PORT, into listen_addr and listen_port */
    OPT_PATH,    /* a non-empty path, into a char[CONFIG_PATH_MAX] member */
    OPT_FLAG,    /* no value on the command line (1); 1/yes/true or 0/no/false in the file */
    OPT_CHOICE,  /* one of the words of metavar ("a|b|c"), into an int member: its index */
    OPT_ORIGINS, /* an --allowed-origins list (common/access_list.h), into a char[CONFIG_LIST_MAX] */
    OPT_HOSTS,   /* an --allowed-hosts list (common/access_list.h), into a char[CONFIG_LIST_MAX] */
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
    uint64_t min, max; /* COUNT: the accepted range; SECONDS: the range in ms (min 0: 0 is off) */
    const char *cap;   /* COUNT: a number over max is "over the limit of MAX CAP", not an
                          invalid value (a cap the user may run into); NULL: invalid */
    enum { OPT_FILE_KEY, OPT_CMDLINE_ONLY } where; /* also a config-file key, or not */
    /* A reload (SIGHUP) applies a changed value (OPT_LIVE: to new and existing
     * connections in every process), or logs "needs a restart" and keeps the
     * running one (OPT_RESTART, the default of a row that says nothing). */
    enum { OPT_RESTART, OPT_LIVE } reload;
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
#define SECONDS_OR_OFF(m, max_ms) /* as SECONDS, and 0 (off) */                                    \
    OPT_SECONDS, MEMBER(m, MEMBER_SIZE(m) == sizeof(int64_t)), 0, (max_ms), NULL
#define PATH(m) OPT_PATH, MEMBER(m, MEMBER_SIZE(m) == CONFIG_PATH_MAX), 0, 0, NULL
#define FLAG(m) OPT_FLAG, MEMBER(m, MEMBER_SIZE(m) == sizeof(int)), 0, 0, NULL
#define CHOICE(m) OPT_CHOICE, MEMBER(m, MEMBER_SIZE(m) == sizeof(int)), 0, 0, NULL
#define LIST(kind, m) kind, MEMBER(m, MEMBER_SIZE(m) == CONFIG_LIST_MAX), 0, 0, NULL
#define SPECIAL(kind) kind, 0, 0, 0, 0, NULL /* LISTEN, HELP, VERSION: no member of their own */
#define DAY_MS 86400000

/* In --help order. */
static const struct opt opts[] = {
    {"listen", 'l', "[ADDR:]PORT", "8080",
     "default %s on all addresses\n(\"127.0.0.1:8080\", \"[::1]:8080\")", SPECIAL(OPT_LISTEN),
     OPT_FILE_KEY, OPT_RESTART},
    {"personas-dir", 'd', "DIR", PERSONAD_DEFAULT_PERSONAS_DIR,
     "directory of persona files\n(default %s)", PATH(personas_dir), OPT_FILE_KEY, OPT_RESTART},
    {"source", 0, "dir|kubernetes", "dir",
     "where personas come from: DIR's files, or the\n"
     "ClusterPersonas of a Kubernetes API; default %s\n"
#ifdef ENABLE_KUBERNETES
     "(built in: dir, kubernetes)",
#else
     "(built in: dir; kubernetes was configured out)",
#endif
     CHOICE(source), OPT_FILE_KEY, OPT_RESTART},
    {"kube-api", 0, "URL", NULL,
     "the Kubernetes API (\"http://127.0.0.1:8001\" for\n"
     "kubectl proxy); default: in-cluster, from\n"
     "KUBERNETES_SERVICE_HOST and _PORT",
     PATH(kube_api), OPT_FILE_KEY, OPT_RESTART},
    {"kube-token-file", 0, "FILE", NULL,
     "bearer token for the API, read before each request\n"
     "(default in-cluster: the service account's)",
     PATH(kube_token_file), OPT_FILE_KEY, OPT_RESTART},
    {"kube-ca-file", 0, "FILE", NULL,
     "CA certificates for an https API (default in-cluster:\nthe service account's ca.crt)",
     PATH(kube_ca_file), OPT_FILE_KEY, OPT_RESTART},
    {"kube-max-object", 0, "BYTES", "1048576",
     "longest ClusterPersona (a watch line) accepted,\ndefault %s",
     COUNT(kube_max_object_bytes, 4096, 64u << 20), OPT_FILE_KEY, OPT_RESTART},
    {"workers", 'w', "N", NULL, "worker processes (default: online CPUs)", COUNT(workers, 1, 256),
     OPT_FILE_KEY, OPT_RESTART},
    {"ring-size", 0, "N", "4096", "events kept in the shared-memory ring (default %s)",
     COUNT(ring_size, 16, 1u << 20), OPT_FILE_KEY, OPT_RESTART},
    {"ping-period", 0, "SECONDS", "54", "default %s (durations accept fractions, e.g. 0.2)",
     SECONDS(ping_period_ms, DAY_MS), OPT_FILE_KEY, OPT_LIVE},
    {"pong-wait", 0, "SECONDS", "60", "default %s", SECONDS(pong_wait_ms, DAY_MS), OPT_FILE_KEY,
     OPT_LIVE},
    {"write-deadline", 0, "SECONDS", "10", "default %s", SECONDS(write_deadline_ms, DAY_MS),
     OPT_FILE_KEY, OPT_LIVE},
    {"coalesce-delay", 0, "SECONDS", "0.02",
     "under load, hold a client's events up to this long\nto send them in one write; 0: off.  "
     "Default %s",
     SECONDS_OR_OFF(coalesce_delay_ms, 1000), OPT_FILE_KEY, OPT_LIVE},
    {"max-message", 0, "BYTES", "512",
     "largest accepted incoming message, default %s\n"
     "(pings and closes may always carry 125 bytes)",
     COUNT(max_message_bytes, 1, 1u << 24), OPT_FILE_KEY, OPT_LIVE},
    {"rescan-interval", 0, "SECONDS", "30", "periodic full rescan of DIR, default %s",
     SECONDS(rescan_interval_ms, DAY_MS), OPT_FILE_KEY, OPT_LIVE},
    {"max-connections", 0, "N", "20000", "WebSocket and SSE connections per worker, default %s",
     COUNT(max_connections, 1, 1000000), OPT_FILE_KEY, OPT_RESTART},
    {"max-connections-per-ip", 0, "N", "0",
     "open connections from one address, all workers\ntogether; past it 503.  0: off.  Default %s",
     COUNT(max_connections_per_ip, 0, 1000000), OPT_FILE_KEY, OPT_RESTART},
    {"request-timeout", 0, "SECONDS", "30",
     "time a client has to send its whole request head,\nthen it is dropped.  Default %s",
     SECONDS(request_timeout_ms, DAY_MS), OPT_FILE_KEY, OPT_LIVE},
    {"snapshot-max", 0, "BYTES", "33554432",
     "largest REST snapshot, default %s, at most\n1073741824 (1 GiB)",
     COUNT_CAPPED(snapshot_max_bytes, 4096, CONFIG_SNAPSHOT_MAX_LIMIT, "bytes (1 GiB)"),
     OPT_FILE_KEY, OPT_RESTART},
    {"rest-deadline", 0, "SECONDS", "30",
     "time a REST response may take, per 2 MiB of body\nbegun; then it is cut.  Default %s",
     SECONDS(rest_deadline_ms, DAY_MS), OPT_FILE_KEY, OPT_LIVE},
    {"web-root", 0, "DIR", NULL,
     "serve DIR's files at / instead of the dashboard\n(index.html for unknown paths: an SPA)",
     PATH(web_root), OPT_FILE_KEY, OPT_RESTART},
    {"allowed-origins", 0, "LIST", NULL,
     "origins (\"https://ui.example.com,...\") or \"*\"\nthat may open /ws and /api/events "
     "besides the\nsame origin, and get CORS on /api",
     LIST(OPT_ORIGINS, allowed_origins), OPT_FILE_KEY, OPT_LIVE},
    {"allowed-hosts", 0, "LIST", NULL,
     "Host names or addresses ([:PORT]) served; others\nget 421 (but /healthz).  Default: any",
     LIST(OPT_HOSTS, allowed_hosts), OPT_FILE_KEY, OPT_LIVE},
    {"auth-token-file", 0, "FILE", NULL,
     "/ws, /api and /metrics need one of FILE's tokens\n(one a line; re-read on SIGHUP)",
     PATH(auth_token_file), OPT_FILE_KEY, OPT_RESTART},
    {"tls-cert", 0, "FILE", NULL,
     "PEM certificate (chain) to serve HTTPS and WSS\nonly; with --tls-key; re-read on SIGHUP",
     PATH(tls_cert), OPT_FILE_KEY, OPT_RESTART},
    {"tls-key", 0, "FILE", NULL, "PEM private key of --tls-cert (re-read on SIGHUP)", PATH(tls_key),
     OPT_FILE_KEY, OPT_RESTART},
    {"pidfile", 0, "FILE", NULL, "write the master's pid to FILE once the workers run",
     PATH(pidfile), OPT_FILE_KEY, OPT_RESTART},
    {"user", 0, "NAME", NULL,
     "after binding the port, run as user NAME (the\nworkers, and the master once started)",
     PATH(user), OPT_FILE_KEY, OPT_RESTART},
    {"group", 0, "NAME", NULL, "with --user: run as group NAME (default: NAME's\nprimary group)",
     PATH(group), OPT_FILE_KEY, OPT_RESTART},
    {"ready-fd", 0, "N", NULL,
     "write a newline to descriptor N when ready, then\nclose it (s6's notification-fd)",
     COUNT(ready_fd, 3, 65535), OPT_CMDLINE_ONLY, OPT_RESTART},
    {"log", 0, "stderr|syslog", "stderr",
     "where log lines go, default %s (syslog: the\ndaemon facility, ident personad, with the pid)",
     CHOICE(log_target), OPT_FILE_KEY, OPT_RESTART},
    {"log-level", 0, "debug|info|warn|error", "info", "the least severe level logged, default %s",
     CHOICE(log_level), OPT_FILE_KEY, OPT_LIVE},
    {"verbose", 'v', NULL, NULL, "debug logging (as --log-level=debug)", FLAG(verbose),
     OPT_FILE_KEY, OPT_LIVE},
    {"config", 'c', "FILE", NULL, "\"key = value\" lines, keys = the long option names",
     PATH(config_file), OPT_CMDLINE_ONLY, OPT_RESTART},
    {"check-config", 0, NULL, NULL,
     "check the options and the config file, print\nthe resulting \"key = value\" lines and exit",
     FLAG(check_config), OPT_CMDLINE_ONLY, OPT_RESTART},
    {"help", 'h', NULL, NULL, "show this help and exit", SPECIAL(OPT_HELP), OPT_CMDLINE_ONLY,
     OPT_RESTART},
    {"version", 'V', NULL, NULL, "show the version and exit", SPECIAL(OPT_VERSION),
     OPT_CMDLINE_ONLY, OPT_RESTART},
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
        if (n + 2 > HELP_COLUMN)
            fprintf(out, "\n%*s", HELP_COLUMN, "");
        else
            fprintf(out, "%*s", (int)(HELP_COLUMN - n), "");
        /* The help in spans, "%s" standing for the default and "\n" for an indented
         * line break.  Spans, not characters: fputc would be one more import. */
        for (const char *h = o->help;;) {
            size_t span = strcspn(h, "%\n");
            if (h[span] == '\0') {
                fprintf(out, "%.*s\n", (int)span, h);
                break;
            }
            fprintf(out, "%.*s", (int)span, h);
            h += span;
            if (h[0] == '%' && h[1] == 's') {
                fputs(o->def != NULL ? o->def : "", out);
                h += 2;
            } else if (h[0] == '\n') {
                fprintf(out, "\n%*s", HELP_COLUMN, "");
                h++;
            } else {
                fprintf(out, "%.1s", h);
                h++;
            }
        }
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

int
config_option_live(size_t i)
{
    return i < NOPTS && opts[i].where == OPT_FILE_KEY && opts[i].reload == OPT_LIVE;
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

/* Seconds with an optional fraction -> milliseconds, at least 1 ms (0 only when
 * min_ms is 0), at most max_ms. */
static int
parse_seconds(const char *s, uint64_t min_ms, uint64_t max_ms, int64_t *out_ms)
{
    char *end;
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || (v == 0 && min_ms > 0) ||
        v > (double)max_ms / 1000.0)
        return -1;
    if (v == 0) {
        *out_ms = 0;
        return 0;
    }
    /* v >= 0 and bounded by max_ms, so adding a half rounds it (no libm). */
    int64_t ms = (int64_t)(v * 1000.0 + 0.5);
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
        if (parse_seconds(val, o->min, o->max, &ms) != 0)
            return -1;
        memcpy(member, &ms, sizeof(ms));
        return 0;
    }
    case OPT_LISTEN:
        return parse_listen(cfg, val);
    case OPT_PATH:
        return copy_path((char *)member, val);
    case OPT_ORIGINS:
    case OPT_HOSTS: {
        size_t n = strlen(val);
        if (n == 0 || n >= CONFIG_LIST_MAX ||
            (o->kind == OPT_ORIGINS ? access_check_origins(val)
                                    : access_check_hosts(val)) != 0)
            return -1;
        memcpy(member, val, n + 1);
        return 0;
    }
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
    case OPT_CHOICE: {
        size_t n = strlen(val);
        int index = 0;
        for (const char *w = o->metavar;; index++) {
            size_t wn = strcspn(w, "|");
            if (wn == n && memcmp(w, val, n) == 0) {
                memcpy(member, &index, sizeof(index));
                return 0;
            }
            if (w[wn] == '\0')
                return -1;
            w += wn + 1;
        }
    }
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
    return -1;
}

/* Where a parse reports its first error: a caller's buffer (the start-up prints it
 * on stderr, a reload logs it). */
struct config_err {
    char *msg;
    size_t size;
};

__attribute__((format(printf, 2, 3))) static void
config_error(const struct config_err *e, const char *fmt, ...)
{
    if (e->size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, e->size, fmt, ap);
    va_end(ap);
    if (n < 0)
        e->msg[0] = '\0';
}

/* config_set - apply one option; "where" names its source for the error message. */
static int
config_set(struct config *cfg, const struct opt *o, const char *val, const char *where,
           const struct config_err *e)
{
    /* In the file, a path or list key without a default (web-root, pidfile,
     * allowed-origins, allowed-hosts) may be empty:
     * none, as when it is not there (the sample configuration shows them so).  On
     * the command line an empty path stays an error. */
    if (where[0] != '\0' &&
        (o->kind == OPT_PATH || o->kind == OPT_ORIGINS || o->kind == OPT_HOSTS) && o->def == NULL &&
        val != NULL && val[0] == '\0') {
        ((char *)cfg + o->off)[0] = '\0';
        return 0;
    }
    int rc = opt_store(cfg, o, val);
    if (rc == -2) {
        config_error(e, "%s--%s: '%s' is over the limit of %llu %s", where, o->name, val,
                     (unsigned long long)o->max, o->cap);
        return -1;
    }
    if (rc != 0) {
        config_error(e, "%sinvalid value for --%s: '%s'", where, o->name, val ? val : "");
        return -1;
    }
    return 0;
}

static int
config_defaults(struct config *cfg, const struct config_err *e)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def != NULL && config_set(cfg, &opts[i], opts[i].def, "default: ", e) != 0)
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
config_read_file(struct config *cfg, const char *path, const unsigned char *from_cmdline,
                 const struct config_err *e)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        config_error(e, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[CONFIG_PATH_MAX + 64];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            config_error(e, "%s:%u: line too long", path, lineno);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            config_error(e, "%s:%u: expected \"key = value\"", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const struct opt *o = find_option(key);
        if (o == NULL || o->where != OPT_FILE_KEY) {
            config_error(e, "%s:%u: unknown key '%s'", path, lineno, key);
            rc = -1;
            break;
        }
        if (from_cmdline[o - opts])
            continue;
        char where[CONFIG_PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
        rc = config_set(cfg, o, val, where, e);
    }
    if (rc == 0 && ferror(f)) {
        config_error(e, "reading %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* config_load - defaults, then argv, then the file it names.  Returns 0, 1 after
 * --help or --version (printed on stdout; never on a reload: the start would
 * have stopped there), -1 with the first error in e. */
static int
config_load(struct config *cfg, int argc, char **argv, const struct config_err *e)
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

    if (config_defaults(cfg, e) != 0)
        return -1;
    cfg->argc = argc;
    cfg->argv = argv;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, short_options, long_options, NULL);
        if (c == -1)
            break;
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (c == ':')
                config_error(e, "option '%s' needs a value", bad);
            else
                config_error(e, "unknown option '%s'", bad);
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
        if (config_set(cfg, o, optarg, "", e) != 0)
            return -1;
    }
    if (optind < argc) {
        config_error(e, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (cfg->config_file[0] != '\0' &&
        config_read_file(cfg, cfg->config_file, from_cmdline, e) != 0)
        return -1;
    return 0;
}

/* format_value - option o's value in cfg as the file would spell it; "" for the
 * rows without a value (help, version). */
static void
format_value(const struct config *cfg, const struct opt *o, char *buf, size_t size)
{
    const unsigned char *member = (const unsigned char *)cfg + o->off;
    buf[0] = '\0';
    switch (o->kind) {
    case OPT_COUNT: {
        uint64_t u = 0;
        if (o->size == sizeof(uint32_t)) {
            uint32_t u32;
            memcpy(&u32, member, sizeof(u32));
            u = u32;
        } else {
            memcpy(&u, member, sizeof(u));
        }
        snprintf(buf, size, "%llu", (unsigned long long)u);
        break;
    }
    case OPT_SECONDS: {
        int64_t ms;
        memcpy(&ms, member, sizeof(ms));
        int n = snprintf(buf, size, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
        if (n > 0 && (size_t)n < size) { /* no trailing zeros, no lone point */
            while (n > 0 && buf[n - 1] == '0')
                buf[--n] = '\0';
            if (n > 0 && buf[n - 1] == '.')
                buf[--n] = '\0';
        }
        break;
    }
    case OPT_LISTEN:
        if (strchr(cfg->listen_addr, ':') != NULL)
            snprintf(buf, size, "[%s]:%u", cfg->listen_addr, (unsigned)cfg->listen_port);
        else if (cfg->listen_addr[0] != '\0')
            snprintf(buf, size, "%s:%u", cfg->listen_addr, (unsigned)cfg->listen_port);
        else
            snprintf(buf, size, "%u", (unsigned)cfg->listen_port);
        break;
    case OPT_PATH:
    case OPT_ORIGINS:
    case OPT_HOSTS:
        snprintf(buf, size, "%s", (const char *)member);
        break;
    case OPT_FLAG:
    case OPT_CHOICE: {
        int v;
        memcpy(&v, member, sizeof(v));
        if (o->kind == OPT_FLAG) {
            snprintf(buf, size, "%s", v ? "yes" : "no");
            break;
        }
        const char *w = o->metavar;
        for (int k = 0; k < v && strchr(w, '|') != NULL; k++)
            w = strchr(w, '|') + 1;
        snprintf(buf, size, "%.*s", (int)strcspn(w, "|"), w);
        break;
    }
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
}

/* The rows a reload compares: those with a value of their own in struct config. */
static int
has_value(const struct opt *o)
{
    return o->kind != OPT_HELP && o->kind != OPT_VERSION && o->where == OPT_FILE_KEY;
}

static int
value_equal(const struct config *a, const struct config *b, const struct opt *o)
{
    if (o->kind == OPT_LISTEN)
        return a->listen_port == b->listen_port && strcmp(a->listen_addr, b->listen_addr) == 0;
    if (o->kind == OPT_PATH || o->kind == OPT_ORIGINS || o->kind == OPT_HOSTS)
        return strcmp((const char *)a + o->off, (const char *)b + o->off) == 0;
    return memcmp((const unsigned char *)a + o->off, (const unsigned char *)b + o->off, o->size) ==
           0;
}

const char *
config_warning(const struct config *cfg)
{
    if (cfg->ping_period_ms >= cfg->pong_wait_ms)
        return "--ping-period should be shorter than --pong-wait";
    return NULL;
}

int
config_parse(struct config *cfg, int argc, char **argv)
{
    char msg[CONFIG_PATH_MAX + 256];
    struct config_err e = {msg, sizeof(msg)};
    msg[0] = '\0';
    int rc = config_load(cfg, argc, argv, &e);
    if (rc < 0) {
        fprintf(stderr, "personad: %s\n", msg);
        if (strncmp(msg, "unknown option", 14) == 0 || strncmp(msg, "option '", 8) == 0)
            fprintf(stderr, "Try 'personad --help' for more information.\n");
        return -1;
    }
    if (rc > 0)
        return rc;
    const char *warning = config_warning(cfg);
    if (warning != NULL)
        fprintf(stderr, "personad: warning: %s\n", warning);
    if (cfg->check_config) {
        char val[CONFIG_PATH_MAX + 16];
        for (size_t i = 0; i < NOPTS; i++) {
            if (!has_value(&opts[i]))
                continue;
            format_value(cfg, &opts[i], val, sizeof(val));
            printf("%s = %s\n", opts[i].name, val);
        }
        return 1;
    }
    return 0;
}

int
config_reload(const struct config *running, struct config *next, char *msg, size_t msg_size)
{
    struct config_err e = {msg, msg_size};
    if (msg_size > 0)
        msg[0] = '\0';
    if (running->config_file[0] == '\0' || running->argv == NULL) {
        config_error(&e, "no --config file was given at start");
        return -1;
    }
    /* The same command line as at start: its options keep their precedence. */
    if (config_load(next, running->argc, running->argv, &e) != 0) {
        if (msg_size > 0 && msg[0] == '\0')
            config_error(&e, "the command line no longer parses");
        return -1;
    }
    return 0;
}

unsigned
config_update(struct config *cfg, const struct config *next, config_note_fn *note, void *arg)
{
    unsigned live = 0;
    char old_val[CONFIG_PATH_MAX + 16], new_val[CONFIG_PATH_MAX + 16];
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        if (!has_value(o) || value_equal(cfg, next, o))
            continue;
        if (note != NULL) {
            format_value(cfg, o, old_val, sizeof(old_val));
            format_value(next, o, new_val, sizeof(new_val));
            note(arg, o->name, o->reload == OPT_LIVE, old_val, new_val);
        }
        if (o->reload != OPT_LIVE)
            continue;
        memcpy((unsigned char *)cfg + o->off, (const unsigned char *)next + o->off, o->size);
        live++;
    }
    return live;
}

int
config_log_level(const struct config *cfg)
{
    return cfg->verbose ? 0 : cfg->log_level;
}
