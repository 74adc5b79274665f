/*
 * check_config - unit tests for src/common/config.c: the defaults; every option's
 * valid and invalid values (listen forms, ports, counts, durations with
 * fractions); the config file ("key = value", comments, unknown keys); the
 * command line winning over the file.
 *
 * config_parse() keeps getopt state in globals, so each table row is its own
 * loop test (one forked process, one config_parse call).  Its messages go to
 * stderr; a few tests capture them to check that they name the culprit.
 */
#include "build_config.h"

#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"

#ifndef PERSONAD_DEFAULT_PERSONAS_DIR
#define PERSONAD_DEFAULT_PERSONAS_DIR "/var/lib/personad/personas"
#endif

#define MAX_ARGS 8

/* config_parse on "personad" followed by the NULL-terminated args. */
static int
parse_args(struct config *cfg, const char *const *args)
{
    static char storage[MAX_ARGS + 1][CONFIG_PATH_MAX + 64];
    static char *argv[MAX_ARGS + 2];
    int argc = 0;
    strcpy(storage[0], "personad");
    argv[argc++] = storage[0];
    for (int i = 0; args[i] != NULL; i++) {
        ck_assert_int_lt(i, MAX_ARGS);
        snprintf(storage[argc], sizeof(storage[argc]), "%s", args[i]);
        argv[argc] = storage[argc];
        argc++;
    }
    argv[argc] = NULL;
    memset(cfg, 0xa5, sizeof(*cfg));
    return config_parse(cfg, argc, argv);
}

static int
parse(struct config *cfg, ...)
{
    const char *args[MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, cfg);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(n, MAX_ARGS);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    return parse_args(cfg, args);
}

/* A config file in $TMPDIR with the given contents; the path is static. */
static const char *
write_config(const char *contents)
{
    static char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/check_config.XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(contents);
    ck_assert_int_eq(write(fd, contents, n), (ssize_t)n);
    close(fd);
    return path;
}

/* Redirect stderr to a temp file while fn runs; returns what was written. */
static char captured[8192];

static int
parse_capturing(struct config *cfg, const char *const *args)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    int rc = parse_args(cfg, args);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(captured, 1, sizeof(captured) - 1, tmp);
    captured[n] = '\0';
    fclose(tmp);
    fputs(captured, stderr); /* keep it visible in the test log */
    return rc;
}

/* --- defaults -------------------------------------------------------------------- */

START_TEST(test_defaults)
{
    struct config cfg;
    ck_assert_int_eq(parse(&cfg, NULL), 0);
    ck_assert_str_eq(cfg.listen_addr, "");
    ck_assert_uint_eq(cfg.listen_port, 8080);
    ck_assert_str_eq(cfg.personas_dir, PERSONAD_DEFAULT_PERSONAS_DIR);
    ck_assert_str_eq(cfg.config_file, "");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want_workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu;
    ck_assert_uint_eq(cfg.workers, want_workers);
    ck_assert_uint_eq(cfg.ring_size, 4096);
    ck_assert_int_eq(cfg.ping_period_ms, 54000);
    ck_assert_int_eq(cfg.pong_wait_ms, 60000);
    ck_assert_int_eq(cfg.write_deadline_ms, 10000);
    ck_assert_int_eq(cfg.rescan_interval_ms, 30000);
    ck_assert_uint_eq(cfg.max_message_bytes, 512);
    ck_assert_uint_eq(cfg.max_connections, 20000);
    ck_assert_uint_eq(cfg.snapshot_max_bytes, 32u << 20);
    ck_assert_int_eq(cfg.rest_deadline_ms, 30000);
    ck_assert_int_eq(cfg.verbose, 0);
    ck_assert_str_eq(cfg.pidfile, "");
    ck_assert_uint_eq(cfg.ready_fd, 0);
}
END_TEST

START_TEST(test_help)
{
    struct config cfg;
    ck_assert_int_eq(parse(&cfg, "--help", NULL), 1);
}
END_TEST

START_TEST(test_version)
{
    struct config cfg;
    ck_assert_int_eq(parse(&cfg, "-V", NULL), 1);
}
END_TEST

/* --- valid values ---------------------------------------------------------------- */

enum field {
    F_LISTEN, /* want_str = address, want = port */
    F_DIR,
    F_WORKERS,
    F_RING,
    F_PING,
    F_PONG,
    F_WRITE,
    F_RESCAN,
    F_MAXMSG,
    F_MAXCONN,
    F_SNAPMAX,
    F_RESTDL,
    F_VERBOSE,
    F_PIDFILE, /* want_str = the path */
    F_READYFD,
};

struct good_opt {
    const char *args[3];
    enum field field;
    int64_t want;
    const char *want_str;
};

static const struct good_opt good_opts[] = {
    {{"-l", "8080"}, F_LISTEN, 8080, ""},
    {{"--listen=9000"}, F_LISTEN, 9000, ""},
    {{"-l", "127.0.0.1:8080"}, F_LISTEN, 8080, "127.0.0.1"},
    {{"--listen", "0.0.0.0:1"}, F_LISTEN, 1, "0.0.0.0"},
    {{"-l", "[::1]:8080"}, F_LISTEN, 8080, "::1"},
    {{"--listen=[::]:65535"}, F_LISTEN, 65535, "::"},
    {{"-l", "[2001:db8::7]:443"}, F_LISTEN, 443, "2001:db8::7"},
    {{"-l65535"}, F_LISTEN, 65535, ""},
    {{"-d", "/srv/personas"}, F_DIR, 0, "/srv/personas"},
    {{"--personas-dir=relative/dir"}, F_DIR, 0, "relative/dir"},
    {{"-w", "1"}, F_WORKERS, 1, NULL},
    {{"-w3"}, F_WORKERS, 3, NULL},
    {{"--workers=256"}, F_WORKERS, 256, NULL},
    {{"--ring-size=16"}, F_RING, 16, NULL},
    {{"--ring-size", "1000"}, F_RING, 1000, NULL},
    {{"--ring-size=1048576"}, F_RING, 1048576, NULL},
    {{"--ping-period=0.2"}, F_PING, 200, NULL},
    {{"--ping-period=54"}, F_PING, 54000, NULL},
    {{"--ping-period", "1.25"}, F_PING, 1250, NULL},
    {{"--ping-period=86400"}, F_PING, 86400000, NULL},
    {{"--pong-wait=0.5"}, F_PONG, 500, NULL},
    {{"--pong-wait=.75"}, F_PONG, 750, NULL},
    {{"--pong-wait=0.001"}, F_PONG, 1, NULL},
    {{"--write-deadline=0.05"}, F_WRITE, 50, NULL},
    {{"--write-deadline=10"}, F_WRITE, 10000, NULL},
    {{"--rescan-interval=2.5"}, F_RESCAN, 2500, NULL},
    {{"--rescan-interval=0.1"}, F_RESCAN, 100, NULL},
    {{"--max-message=1"}, F_MAXMSG, 1, NULL},
    {{"--max-message", "65536"}, F_MAXMSG, 65536, NULL},
    {{"--max-message=16777216"}, F_MAXMSG, 16777216, NULL},
    {{"--max-connections=1"}, F_MAXCONN, 1, NULL},
    {{"--max-connections=1000000"}, F_MAXCONN, 1000000, NULL},
    {{"--snapshot-max=4096"}, F_SNAPMAX, 4096, NULL},
    {{"--snapshot-max=1073741824"}, F_SNAPMAX, 1073741824LL, NULL},
    {{"--rest-deadline=0.5"}, F_RESTDL, 500, NULL},
    {{"--rest-deadline", "600"}, F_RESTDL, 600000, NULL},
    {{"-v"}, F_VERBOSE, 1, NULL},
    {{"--verbose"}, F_VERBOSE, 1, NULL},
    {{"--pidfile=/run/personad/personad.pid"}, F_PIDFILE, 0, "/run/personad/personad.pid"},
    {{"--pidfile", "rel.pid"}, F_PIDFILE, 0, "rel.pid"},
    {{"--ready-fd=3"}, F_READYFD, 3, NULL},
    {{"--ready-fd", "65535"}, F_READYFD, 65535, NULL},
};

static int64_t
field_value(const struct config *cfg, enum field f)
{
    switch (f) {
    case F_LISTEN:
        return cfg->listen_port;
    case F_DIR:
        return 0;
    case F_WORKERS:
        return cfg->workers;
    case F_RING:
        return cfg->ring_size;
    case F_PING:
        return cfg->ping_period_ms;
    case F_PONG:
        return cfg->pong_wait_ms;
    case F_WRITE:
        return cfg->write_deadline_ms;
    case F_RESCAN:
        return cfg->rescan_interval_ms;
    case F_MAXMSG:
        return cfg->max_message_bytes;
    case F_MAXCONN:
        return cfg->max_connections;
    case F_SNAPMAX:
        return (int64_t)cfg->snapshot_max_bytes;
    case F_RESTDL:
        return cfg->rest_deadline_ms;
    case F_VERBOSE:
        return cfg->verbose;
    case F_PIDFILE:
        return 0;
    case F_READYFD:
        return cfg->ready_fd;
    }
    return -1;
}

START_TEST(test_good_option)
{
    const struct good_opt *c = &good_opts[_i];
    struct config cfg;
    const char *args[4] = {c->args[0], c->args[1], c->args[2], NULL};
    int rc = parse_args(&cfg, args);
    ck_assert_msg(rc == 0, "%s %s: config_parse = %d", c->args[0], c->args[1] ? c->args[1] : "",
                  rc);
    ck_assert_msg(field_value(&cfg, c->field) == c->want, "%s %s: got %lld, want %lld", c->args[0],
                  c->args[1] ? c->args[1] : "", (long long)field_value(&cfg, c->field),
                  (long long)c->want);
    if (c->field == F_LISTEN)
        ck_assert_str_eq(cfg.listen_addr, c->want_str);
    if (c->field == F_DIR)
        ck_assert_str_eq(cfg.personas_dir, c->want_str);
    if (c->field == F_PIDFILE)
        ck_assert_str_eq(cfg.pidfile, c->want_str);
    /* Other settings keep their defaults. */
    if (c->field != F_WORKERS)
        ck_assert_uint_ge(cfg.workers, 1);
    if (c->field != F_RING)
        ck_assert_uint_eq(cfg.ring_size, 4096);
    if (c->field != F_PING)
        ck_assert_int_eq(cfg.ping_period_ms, 54000);
}
END_TEST

/* --- invalid values -------------------------------------------------------------- */

struct bad_opt {
    const char *args[3];
};

static const struct bad_opt bad_opts[] = {
    /* listen */
    {{"-l", "0"}},
    {{"-l", "65536"}},
    {{"-l", "99999"}},
    {{"-l", "-1"}},
    {{"-l", "http"}},
    {{"-l", ""}},
    {{"-l", "8080x"}},
    {{"-l", " 8080"}},
    {{"-l", "127.0.0.1:"}},
    {{"-l", "127.0.0.1:0"}},
    {{"-l", "127.0.0.1:65536"}},
    {{"-l", "1.2.3.4:80:80"}},
    {{"-l", "::1"}}, /* bare IPv6 needs brackets */
    {{"-l", "::1:8080"}},
    {{"-l", "fe80::1:80"}},
    {{"-l", "[::1]"}},
    {{"-l", "[::1]8080"}},
    {{"-l", "[::1]:"}},
    {{"-l", "[::1]:0"}},
    {{"-l", "[::1]:70000"}},
    {{"-l", "[::1:8080"}},
    {{"-l", "[]:8080"}},
    {{"--listen"}}, /* missing value */
    /* personas dir */
    {{"-d", ""}},
    /* workers */
    {{"-w", "0"}},
    {{"-w", "257"}},
    {{"-w", "-1"}},
    {{"-w", "two"}},
    {{"-w", ""}},
    {{"-w", "1.5"}},
    {{"-w", "2x"}},
    {{"-w", "18446744073709551617"}},
    /* ring size */
    {{"--ring-size=15"}},
    {{"--ring-size=0"}},
    {{"--ring-size=1048577"}},
    {{"--ring-size=-16"}},
    /* durations */
    {{"--ping-period=0"}},
    {{"--ping-period=-1"}},
    {{"--ping-period=abc"}},
    {{"--ping-period="}},
    {{"--ping-period=nan"}},
    {{"--ping-period=inf"}},
    {{"--ping-period=86401"}},
    {{"--ping-period=1s"}},
    {{"--ping-period=0.2.3"}},
    {{"--ping-period= 1"}},
    {{"--pong-wait=0"}},
    {{"--pong-wait=-0.5"}},
    {{"--write-deadline=0"}},
    {{"--write-deadline=ten"}},
    {{"--rescan-interval=0"}},
    {{"--rescan-interval=x"}},
    /* sizes and counts */
    {{"--max-message=0"}},
    {{"--max-message=16777217"}},
    {{"--max-message=-5"}},
    {{"--max-connections=0"}},
    {{"--max-connections=1000001"}},
    {{"--snapshot-max=4095"}},
    {{"--snapshot-max=17179869185"}},
    /* capped at 1 GiB (issue 8): larger would wrap size arithmetic on 32-bit */
    {{"--snapshot-max=1073741825"}},
    {{"--snapshot-max=17179869184"}},
    {{"--snapshot-max=18446744073709551615"}},
    {{"--rest-deadline=0"}},
    {{"--rest-deadline=-1"}},
    {{"--rest-deadline=abc"}},
    /* supervisors: stdin, stdout and stderr are no readiness descriptors */
    {{"--ready-fd=0"}},
    {{"--ready-fd=2"}},
    {{"--ready-fd=65536"}},
    {{"--ready-fd=x"}},
    {{"--ready-fd=-3"}},
    {{"--pidfile="}},
    /* syntax */
    {{"--bogus"}},
    {{"-x"}},
    {{"--verbose=1"}}, /* takes no value on the command line */
    {{"-w", "2", "stray"}},
    {{"-c"}},
    {{"--config="}},
};

START_TEST(test_bad_option)
{
    const struct bad_opt *c = &bad_opts[_i];
    struct config cfg;
    const char *args[4] = {c->args[0], c->args[1], c->args[2], NULL};
    int rc = parse_args(&cfg, args);
    ck_assert_msg(rc == -1, "'%s' '%s' '%s' accepted (rc %d)", c->args[0],
                  c->args[1] ? c->args[1] : "", c->args[2] ? c->args[2] : "", rc);
}
END_TEST

START_TEST(test_bad_value_message_names_option)
{
    struct config cfg;
    static const char *const args[] = {"--workers=0", NULL};
    ck_assert_int_eq(parse_capturing(&cfg, args), -1);
    ck_assert_msg(strstr(captured, "--workers") != NULL && strstr(captured, "'0'") != NULL,
                  "message does not name the option and value: %s", captured);
}
END_TEST

START_TEST(test_snapshot_max_over_cap_message)
{
    struct config cfg;
    static const char *const args[] = {"--snapshot-max=2147483648", NULL};
    ck_assert_int_eq(parse_capturing(&cfg, args), -1);
    ck_assert_msg(strstr(captured, "--snapshot-max") != NULL &&
                      strstr(captured, "2147483648") != NULL &&
                      strstr(captured, "1073741824") != NULL,
                  "message does not name the option, the value and the limit: %s", captured);
}
END_TEST

/* --- config file ----------------------------------------------------------------- */

static const char full_file[] = "# personad test configuration\n"
                                "\n"
                                "listen = 127.0.0.1:7000\n"
                                "   personas-dir=/x/y z\n"
                                "workers = 3   \n"
                                "\tring-size\t=\t64\n"
                                "ping-period = 0.25\r\n"
                                "pong-wait = 0.5\n"
                                "  # indented comment\n"
                                "write-deadline = 1.5\n"
                                "max-message = 1024\n"
                                "rescan-interval = 2\n"
                                "max-connections = 10\n"
                                "snapshot-max = 8192\n"
                                "verbose = yes\n";

START_TEST(test_file_all_keys)
{
    const char *path = write_config(full_file);
    struct config cfg;
    int rc = parse(&cfg, "-c", path, NULL);
    char saved[512];
    snprintf(saved, sizeof(saved), "%s", path);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(cfg.config_file, saved);
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 7000);
    ck_assert_str_eq(cfg.personas_dir, "/x/y z");
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_uint_eq(cfg.ring_size, 64);
    ck_assert_int_eq(cfg.ping_period_ms, 250);
    ck_assert_int_eq(cfg.pong_wait_ms, 500);
    ck_assert_int_eq(cfg.write_deadline_ms, 1500);
    ck_assert_uint_eq(cfg.max_message_bytes, 1024);
    ck_assert_int_eq(cfg.rescan_interval_ms, 2000);
    ck_assert_uint_eq(cfg.max_connections, 10);
    ck_assert_uint_eq(cfg.snapshot_max_bytes, 8192);
    ck_assert_int_eq(cfg.verbose, 1);
}
END_TEST

START_TEST(test_file_long_option_form)
{
    const char *path = write_config("workers = 5\nlisten = [::1]:7001\n");
    struct config cfg;
    char opt[600];
    snprintf(opt, sizeof(opt), "--config=%s", path);
    int rc = parse(&cfg, opt, NULL);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(cfg.workers, 5);
    ck_assert_str_eq(cfg.listen_addr, "::1");
    ck_assert_uint_eq(cfg.listen_port, 7001);
}
END_TEST

/* Command line over file, whichever comes first on the command line. */
struct override_case {
    const char *args[4]; /* "FILE" is replaced by the config file's path */
};

static const struct override_case override_cases[] = {
    {{"-w", "2", "-c", "FILE"}},
    {{"-c", "FILE", "-w", "2"}},
    {{"--workers=2", "--config", "FILE"}},
};

START_TEST(test_command_line_overrides_file)
{
    const char *path = write_config("workers = 5\n"
                                    "ping-period = 3\n"
                                    "listen = 127.0.0.1:7002\n"
                                    "pong-wait = 9\n");
    const char *args[5];
    for (int i = 0; i < 4; i++)
        args[i] =
            override_cases[_i].args[i] != NULL && strcmp(override_cases[_i].args[i], "FILE") == 0
                ? path
                : override_cases[_i].args[i];
    args[4] = NULL;
    struct config cfg;
    int rc = parse_args(&cfg, args);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(cfg.workers, 2);          /* command line */
    ck_assert_int_eq(cfg.ping_period_ms, 3000); /* file */
    ck_assert_int_eq(cfg.pong_wait_ms, 9000);   /* file */
    ck_assert_uint_eq(cfg.listen_port, 7002);   /* file */
}
END_TEST

START_TEST(test_command_line_overrides_file_listen_and_durations)
{
    const char *path = write_config("listen = 127.0.0.1:7003\nping-period = 3\nverbose = yes\n");
    struct config cfg;
    int rc = parse(&cfg, "-c", path, "-l", "[::1]:7004", "--ping-period=0.2", NULL);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(cfg.listen_addr, "::1");
    ck_assert_uint_eq(cfg.listen_port, 7004);
    ck_assert_int_eq(cfg.ping_period_ms, 200);
    ck_assert_int_eq(cfg.verbose, 1);
}
END_TEST

static const char *const bad_files[] = {
    "workers = 3\nbogus = 1\n",   /* unknown key */
    "Workers = 3\n",              /* keys are case-sensitive long names */
    "w = 3\n",                    /* short names are not keys */
    "config = /etc/other.conf\n", /* no nesting */
    "help = 1\n",
    "version = 1\n",
    "workers 3\n",    /* no '=' */
    "workers = 0\n",  /* bad value */
    "workers =\n",    /* empty value */
    "listen = ::1\n", /* bare IPv6 */
    "listen = 127.0.0.1:0\n",
    "ping-period = 0\n",
    "ping-period = -2\n",
    "pong-wait = soon\n",
    "ring-size = 8\n",
    "max-message = 0\n",
    "verbose = maybe\n",
    "personas-dir =\n",
};

START_TEST(test_bad_file)
{
    const char *path = write_config(bad_files[_i]);
    struct config cfg;
    int rc = parse(&cfg, "-c", path, NULL);
    unlink(path);
    ck_assert_msg(rc == -1, "config file accepted (rc %d):\n%s", rc, bad_files[_i]);
}
END_TEST

START_TEST(test_unknown_key_message)
{
    const char *path = write_config("# comment\nworkers = 2\nbogus-key = 1\n");
    struct config cfg;
    const char *args[] = {"-c", path, NULL};
    int rc = parse_capturing(&cfg, args);
    unlink(path);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(captured, "bogus-key") != NULL && strstr(captured, ":3:") != NULL,
                  "message does not name the key and line: %s", captured);
}
END_TEST

START_TEST(test_missing_file)
{
    struct config cfg;
    ck_assert_int_eq(parse(&cfg, "-c", "/nonexistent/personad-check.conf", NULL), -1);
}
END_TEST

START_TEST(test_file_verbose_off_and_empty_file)
{
    const char *path = write_config("verbose = no\n");
    struct config cfg;
    int rc = parse(&cfg, "-c", path, NULL);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(cfg.verbose, 0);

    path = write_config("");
    rc = parse(&cfg, "-c", path, NULL);
    unlink(path);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(cfg.listen_port, 8080);
}
END_TEST

/* --- the option table ------------------------------------------------------------ */

/* config.c generates getopt's tables, --help and the file's keys from one table;
 * config_option() walks it.  Every row must reach each of them: none half-added. */

static size_t
option_count(void)
{
    size_t n = 0;
    int file_key;
    while (config_option(n, &file_key) != NULL)
        n++;
    return n;
}

/* Redirect stdout to a temp file while config_parse runs; returns what was written. */
static char captured_out[16384];

static int
parse_capturing_stdout(struct config *cfg, const char *const *args)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDOUT_FILENO), 0);
    int rc = parse_args(cfg, args);
    fflush(stdout);
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(captured_out, 1, sizeof(captured_out) - 1, tmp);
    captured_out[n] = '\0';
    fclose(tmp);
    return rc;
}

/* The option on a --help line ("  -x, --NAME..." or "      --NAME..."), or NULL. */
static const char *
help_line_option(const char *line)
{
    if (strncmp(line, "      --", 8) == 0)
        return line + 8;
    if (strncmp(line, "  -", 3) == 0 && line[3] != '-' && line[3] != '\0' &&
        strncmp(line + 4, ", --", 4) == 0)
        return line + 8;
    return NULL;
}

/* Each line of captured_out in turn: call with NULL first, then with the last result. */
static const char *
next_line(const char *line)
{
    if (line == NULL)
        return captured_out;
    const char *nl = strchr(line, '\n');
    return nl != NULL && nl[1] != '\0' ? nl + 1 : NULL;
}

START_TEST(test_help_lists_the_table)
{
    struct config cfg;
    static const char *const args[] = {"--help", NULL};
    ck_assert_int_eq(parse_capturing_stdout(&cfg, args), 1);
    size_t lines = 0;
    for (const char *l = next_line(NULL); l != NULL; l = next_line(l))
        lines += help_line_option(l) != NULL;
    ck_assert_uint_gt(option_count(), 0);
    ck_assert_msg(lines == option_count(), "--help has %zu option lines, the table %zu rows:\n%s",
                  lines, option_count(), captured_out);
}
END_TEST

START_TEST(test_every_option_in_help)
{
    struct config cfg;
    static const char *const args[] = {"--help", NULL};
    ck_assert_int_eq(parse_capturing_stdout(&cfg, args), 1);
    int file_key;
    const char *name = config_option((size_t)_i, &file_key);
    ck_assert_ptr_nonnull(name);
    size_t n = strlen(name);
    int found = 0;
    for (const char *l = next_line(NULL); l != NULL; l = next_line(l)) {
        const char *opt = help_line_option(l);
        /* "--NAME=", "--NAME " or "--NAME" at the end: --ping is not --ping-period */
        if (opt != NULL && strncmp(opt, name, n) == 0 &&
            (opt[n] == '=' || opt[n] == ' ' || opt[n] == '\n'))
            found = 1;
    }
    ck_assert_msg(found, "--%s is not in --help:\n%s", name, captured_out);
}
END_TEST

START_TEST(test_every_option_a_file_key)
{
    int file_key;
    const char *name = config_option((size_t)_i, &file_key);
    ck_assert_ptr_nonnull(name);
    char contents[256];
    snprintf(contents, sizeof(contents), "%s = ?\n", name); /* a bad value for most kinds */
    const char *path = write_config(contents);
    struct config cfg;
    const char *args[] = {"-c", path, NULL};
    int rc = parse_capturing(&cfg, args);
    unlink(path);
    char unknown[128], invalid[128];
    snprintf(unknown, sizeof(unknown), ":1: unknown key '%s'", name);
    snprintf(invalid, sizeof(invalid), ":1: invalid value for --%s: '?'", name);
    if (file_key)
        ck_assert_msg(rc == 0 || (rc == -1 && strstr(captured, invalid) != NULL),
                      "key '%s' not taken as --%s (rc %d): %s", name, name, rc, captured);
    else
        ck_assert_msg(rc == -1 && strstr(captured, unknown) != NULL,
                      "command-line-only '%s' accepted as a key (rc %d): %s", name, rc, captured);
}
END_TEST

/* --- reload ------------------------------------------------------------------ */

static char notes[1024];

static void
record_note(void *arg, const char *option, int live, const char *old_value, const char *new_value)
{
    (void)arg;
    size_t n = strlen(notes);
    snprintf(notes + n, sizeof(notes) - n, "%s:%s:%s->%s;", option, live ? "live" : "restart",
             old_value, new_value);
}

static void
rewrite(const char *path, const char *contents)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(contents, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_reload_applies_live_keeps_restart_and_command_line)
{
    const char *path = write_config("ping-period = 30\nworkers = 2\n");
    char saved[512];
    snprintf(saved, sizeof(saved), "%s", path);
    struct config cfg, next;
    const char *args[] = {"-c", saved, "--pong-wait=90", NULL};
    ck_assert_int_eq(parse_args(&cfg, args), 0);
    rewrite(saved, "ping-period = 0.25\nworkers = 3\npong-wait = 5\nlog-level = error\n"
                   "max-message = 100\n");
    char msg[256];
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), 0);
    notes[0] = '\0';
    ck_assert_uint_eq(config_update(&cfg, &next, record_note, NULL), 3);
    ck_assert_str_eq(notes, "workers:restart:2->3;ping-period:live:30->0.25;"
                            "max-message:live:512->100;log-level:live:info->error;");
    ck_assert_int_eq(cfg.workers, 2);          /* kept */
    ck_assert_int_eq(cfg.ping_period_ms, 250); /* applied */
    ck_assert_int_eq(cfg.pong_wait_ms, 90000); /* the command line still wins */
    ck_assert_int_eq(cfg.max_message_bytes, 100);
    ck_assert_int_eq(config_log_level(&cfg), 3);
    /* the same file again: nothing changes */
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), 0);
    notes[0] = '\0';
    ck_assert_uint_eq(config_update(&cfg, &next, record_note, NULL), 0);
    ck_assert_str_eq(notes, "workers:restart:2->3;");
    unlink(saved);
}
END_TEST

/* --allowed-origins, --allowed-hosts: checked by http_access's parser at
 * start, empty in the file is unset, and a reload applies them (live). */
START_TEST(test_allowed_lists)
{
    struct config cfg;
    static const char *const good[] = {"--allowed-origins=https://ui.example, http://[::1]:8080",
                                       "--allowed-hosts=appliance.lan,127.0.0.1:8080", NULL};
    ck_assert_int_eq(parse_args(&cfg, good), 0);
    ck_assert_str_eq(cfg.allowed_origins, "https://ui.example, http://[::1]:8080");
    ck_assert_str_eq(cfg.allowed_hosts, "appliance.lan,127.0.0.1:8080");
    static const char *const bad_origin[] = {"--allowed-origins=https://ui.example/", NULL};
    ck_assert_int_eq(parse_capturing(&cfg, bad_origin), -1);
    ck_assert_ptr_nonnull(strstr(captured, "invalid value for --allowed-origins"));
    static const char *const bad_host[] = {"--allowed-hosts=http://a", NULL};
    ck_assert_int_eq(parse_capturing(&cfg, bad_host), -1);
    ck_assert_ptr_nonnull(strstr(captured, "invalid value for --allowed-hosts"));
    static const char *const empty[] = {"--allowed-hosts=", NULL};
    ck_assert_int_eq(parse_args(&cfg, empty), -1);

    const char *path = write_config("allowed-origins =\nallowed-hosts = a.lan\n");
    char saved[512];
    snprintf(saved, sizeof(saved), "%s", path);
    const char *args[] = {"-c", saved, NULL};
    ck_assert_int_eq(parse_args(&cfg, args), 0);
    ck_assert_str_eq(cfg.allowed_origins, "");
    ck_assert_str_eq(cfg.allowed_hosts, "a.lan");
    rewrite(saved, "allowed-origins = *\nallowed-hosts = b.lan:1\n");
    struct config next;
    char msg[256];
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), 0);
    notes[0] = '\0';
    ck_assert_uint_eq(config_update(&cfg, &next, record_note, NULL), 2);
    ck_assert_str_eq(notes, "allowed-origins:live:->*;allowed-hosts:live:a.lan->b.lan:1;");
    ck_assert_str_eq(cfg.allowed_origins, "*");
    ck_assert_str_eq(cfg.allowed_hosts, "b.lan:1");
    rewrite(saved, "allowed-origins = nope\n");
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), -1);
    ck_assert_ptr_nonnull(strstr(msg, ":1: invalid value for --allowed-origins"));
    unlink(saved);
}
END_TEST

START_TEST(test_reload_broken_file_says_where)
{
    const char *path = write_config("ping-period = 30\n");
    char saved[512];
    snprintf(saved, sizeof(saved), "%s", path);
    struct config cfg, next;
    const char *args[] = {"-c", saved, NULL};
    ck_assert_int_eq(parse_args(&cfg, args), 0);
    rewrite(saved, "# ok\nping-period = 1\nping-period = soon\n");
    char msg[256], want[600];
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), -1);
    snprintf(want, sizeof(want), "%s:3: invalid value for --ping-period: 'soon'", saved);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(cfg.ping_period_ms, 30000);
    unlink(saved);
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), -1);
    ck_assert_msg(strstr(msg, "cannot open config file") != NULL, "%s", msg);
    /* without a file there is nothing to reload */
    const char *none[] = {NULL};
    ck_assert_int_eq(parse_args(&cfg, none), 0);
    ck_assert_int_eq(config_reload(&cfg, &next, msg, sizeof(msg)), -1);
}
END_TEST

START_TEST(test_log_choices)
{
    struct config cfg;
    const char *a1[] = {"--log=syslog", "--log-level=warn", NULL};
    ck_assert_int_eq(parse_args(&cfg, a1), 0);
    ck_assert_int_eq(cfg.log_target, CONFIG_LOG_SYSLOG);
    ck_assert_int_eq(config_log_level(&cfg), 2);
    const char *a2[] = {"--log-level=warn", "-v", NULL};
    ck_assert_int_eq(parse_args(&cfg, a2), 0);
    ck_assert_int_eq(config_log_level(&cfg), 0); /* -v is debug */
    const char *bad[][2] = {{"--log=file", NULL},
                            {"--log-level=warning", NULL},
                            {"--log=", NULL},
                            {"--log-level=syslog", NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {bad[i][0], NULL};
        ck_assert_int_eq(parse_capturing(&cfg, args), -1);
        ck_assert_msg(strstr(captured, "invalid value for --log") != NULL, "%s", captured);
    }
}
END_TEST

/* personad.conf(5) and the sample say of each key what the table says: live or
 * restart. */
static char *
read_source_file(const char *rel)
{
    const char *top = getenv("TOP_SRCDIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", top != NULL ? top : "..", rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_docs_say_live_or_restart)
{
    int file_key;
    const char *name = config_option((size_t)_i, &file_key);
    if (!file_key)
        return;
    const char *want = config_option_live((size_t)_i) ? "live" : "restart";
    char key[128];
    const char *page = read_source_file("doc/personad.conf.5");
    snprintf(key, sizeof(key), "\n.It Cm %s No =", name);
    const char *at = strstr(page, key);
    ck_assert_msg(at != NULL, "personad.conf.5 has no %s", key + 1);
    const char *mark = strstr(at, "\n.Sy ");
    const char *next = strstr(at + 1, "\n.It ");
    ck_assert_msg(mark != NULL && (next == NULL || mark < next), "%s: no .Sy mark", name);
    ck_assert_msg(strncmp(mark + 5, want, strlen(want)) == 0 && mark[5 + strlen(want)] == ' ',
                  "personad.conf.5 says %.12s for %s, the table %s", mark + 5, name, want);
    const char *sample = read_source_file("contrib/personad.conf.sample.in");
    snprintf(key, sizeof(key), "\n#%s = ", name);
    at = strstr(sample, key);
    ck_assert_msg(at != NULL, "the sample has no %s", key + 1);
    const char *eol = at; /* the comment line before it ends with the mark */
    size_t n = strlen(want);
    ck_assert_msg(eol - sample > (ptrdiff_t)n && strncmp(eol - n, want, n) == 0 &&
                      eol[-(ptrdiff_t)n - 1] == ' ',
                  "the sample's comment on %s does not end with %s", name, want);
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("options");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_version);
    tcase_add_loop_test(tc, test_good_option, 0, (int)(sizeof(good_opts) / sizeof(good_opts[0])));
    tcase_add_loop_test(tc, test_bad_option, 0, (int)(sizeof(bad_opts) / sizeof(bad_opts[0])));
    tcase_add_test(tc, test_bad_value_message_names_option);
    tcase_add_test(tc, test_allowed_lists);
    tcase_add_test(tc, test_snapshot_max_over_cap_message);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("file");
    tcase_set_timeout(tf, 10);
    tcase_add_test(tf, test_file_all_keys);
    tcase_add_test(tf, test_file_long_option_form);
    tcase_add_loop_test(tf, test_command_line_overrides_file, 0,
                        (int)(sizeof(override_cases) / sizeof(override_cases[0])));
    tcase_add_test(tf, test_command_line_overrides_file_listen_and_durations);
    tcase_add_loop_test(tf, test_bad_file, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
    tcase_add_test(tf, test_unknown_key_message);
    tcase_add_test(tf, test_missing_file);
    tcase_add_test(tf, test_file_verbose_off_and_empty_file);
    tcase_add_test(tf, test_reload_applies_live_keeps_restart_and_command_line);
    tcase_add_test(tf, test_reload_broken_file_says_where);
    tcase_add_test(tf, test_log_choices);
    suite_add_tcase(s, tf);
    TCase *tt = tcase_create("table");
    tcase_set_timeout(tt, 10);
    tcase_add_test(tt, test_help_lists_the_table);
    tcase_add_loop_test(tt, test_every_option_in_help, 0, (int)option_count());
    tcase_add_loop_test(tt, test_every_option_a_file_key, 0, (int)option_count());
    tcase_add_loop_test(tt, test_docs_say_live_or_restart, 0, (int)option_count());
    suite_add_tcase(s, tt);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
