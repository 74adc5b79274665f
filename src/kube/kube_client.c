/*
 * kube_client - see kube_client.h.
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/log.h"
#include "kube/kube_client.h"
#include "kube/kube_pipe.h"
#include "kube/kube_watch.h"

#define KUBE_COLLECTION "/apis/dorgu.io/v1/clusterpersonas"
#define KUBE_LIST_LIMIT 500
#define KUBE_WATCH_MIN_S 300 /* timeoutSeconds in [MIN, MIN + SPREAD) */
#define KUBE_WATCH_SPREAD_S 300
#define KUBE_CONNECT_TIMEOUT_S 10
#define KUBE_LIST_TIMEOUT_S 60
#define KUBE_TOKEN_MAX_BYTES 16384
#define KUBE_ERROR_BODY_MAX 4096
#define KUBE_PROBLEM_BYTES 512

/* What a request ended with. */
enum step {
    STEP_OK,     /* done: go on */
    STEP_RELIST, /* list again (410, a line too long) */
    STEP_RETRY,  /* a problem (noted): back off, then the same step */
};

struct body {
    char *buf;
    size_t len, cap, max;
    int over; /* the body grew past max */
};

struct client {
    const struct kube_target *t;
    size_t max_object;
    int out;
    CURL *curl;
    char *rv;                         /* owned: the last resourceVersion seen; NULL before a list */
    char *token;                      /* owned: the last token read, for the header */
    char problem[KUBE_PROBLEM_BYTES]; /* "" while healthy */
    int64_t backoff_ms;
    /* One watch: */
    struct kube_lines lines;
    struct body err; /* a non-200 watch response's body */
    int relist;      /* set by the stream: list again */
    int stream_err;  /* set by the stream: a problem noted */
    unsigned events;
    uint64_t rnd; /* xorshift state, for jitter */
};

/* A pseudo-random number for jitter (xorshift64). */
static uint64_t
jitter_next(struct client *c)
{
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 7;
    c->rnd ^= c->rnd << 17;
    return c->rnd;
}

static void
out_frame(struct client *c, int type, const char *key, const char *data, size_t len)
{
    if (kube_pipe_write(c->out, type, key, data, len) != 0) {
        /* The master is gone (or the pipe broke): nothing to serve. */
        _exit(1);
    }
}

/* --- problems and back-off ---------------------------------------------------- */

static void note_problem(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note_problem(struct client *c, const char *fmt, ...)
{
    char text[KUBE_PROBLEM_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (strcmp(text, c->problem) != 0)
        log_warnx("kubernetes: %s; retrying with back-off (%d s doubling to %d s), serving the "
                  "last state",
                  text, KUBE_BACKOFF_MIN_MS / 1000, KUBE_BACKOFF_MAX_MS / 1000);
    memcpy(c->problem, text, sizeof(text));
}

static void
note_healthy(struct client *c)
{
    if (c->problem[0] != '\0')
        log_info("kubernetes: %s answers again", c->t->api);
    c->problem[0] = '\0';
    c->backoff_ms = 0;
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void
back_off(struct client *c)
{
    c->backoff_ms = c->backoff_ms == 0 ? KUBE_BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > KUBE_BACKOFF_MAX_MS)
        c->backoff_ms = KUBE_BACKOFF_MAX_MS;
    int64_t jitter = (int64_t)(jitter_next(c) % (uint64_t)(c->backoff_ms / 2 + 1));
    log_debug("kubernetes: next attempt in %lld ms", (long long)(c->backoff_ms + jitter));
    sleep_ms(c->backoff_ms + jitter);
}

/* --- requests ----------------------------------------------------------------- */

static size_t
body_append(struct body *b, const char *data, size_t n)
{
    if (b->over || n > b->max - b->len) {
        b->over = 1;
        return n; /* swallowed: the caller sees over */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 65536 : b->cap;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (p == NULL)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    return body_append(arg, data, size * nmemb);
}

/* The token file, read whole (it may have rotated since the last request).
 * Returns 0, or -1 with the problem noted. */
static int
token_read(struct client *c)
{
    if (c->t->token_file[0] == '\0')
        return 0;
    int fd = open(c->t->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    char buf[KUBE_TOKEN_MAX_BYTES + 1];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        note_problem(c, "token file %s: %s", c->t->token_file, strerror(e));
        return -1;
    }
    if (n > KUBE_TOKEN_MAX_BYTES) {
        note_problem(c, "token file %s: longer than %d bytes", c->t->token_file,
                     KUBE_TOKEN_MAX_BYTES);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0 || strpbrk(buf, "\r\n") != NULL) {
        note_problem(c, "token file %s: empty or not one line", c->t->token_file);
        return -1;
    }
    char *tok = strdup(buf);
    if (tok == NULL) {
        note_problem(c, "out of memory");
        return -1;
    }
    free(c->token);
    c->token = tok;
    return 0;
}

/* GET url with the token and CA; the body goes to write(arg).  Returns the
 * libcurl result, the HTTP status in *status (0 when none). */
static CURLcode
http_get(struct client *c, const char *url, long timeout_s, curl_write_callback write, void *arg,
         long *status, struct curl_slist **hdrs)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    *hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (*hdrs != NULL && c->token != NULL) {
        size_t n = strlen(c->token) + 32;
        char *line = malloc(n);
        struct curl_slist *more = NULL;
        if (line != NULL) {
            snprintf(line, n, "Authorization: Bearer %s", c->token);
            more = curl_slist_append(*hdrs, line);
            free(line);
        }
        if (more == NULL) {
            curl_slist_free_all(*hdrs);
            *hdrs = NULL;
        }
    }
    if (*hdrs == NULL)
        return CURLE_OUT_OF_MEMORY;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    if (rc == CURLE_OK)                                                                            \
    rc = curl_easy_setopt(h, opt, val)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, *hdrs);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT, (long)KUBE_CONNECT_TIMEOUT_S);
    SET(CURLOPT_TIMEOUT, timeout_s);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_WRITEFUNCTION, write);
    SET(CURLOPT_WRITEDATA, arg);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_USERAGENT, "personad/" PACKAGE_VERSION);
    if (c->t->ca_file[0] != '\0')
        SET(CURLOPT_CAINFO, c->t->ca_file);
#undef SET
    if (rc != CURLE_OK)
        return rc;
    rc = curl_easy_perform(h);
    *status = 0;
    (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return rc;
}

/* A URL: the collection with query q and, when val is not NULL, key=val
 * escaped.  NULL when out of memory. */
static char *
make_url(struct client *c, const char *q, const char *key, const char *val)
{
    char *esc = NULL;
    if (val != NULL && (esc = curl_easy_escape(c->curl, val, 0)) == NULL)
        return NULL;
    size_t n = strlen(c->t->api) + sizeof(KUBE_COLLECTION) + strlen(q) +
               (key != NULL ? strlen(key) + 2 : 0) + (esc != NULL ? strlen(esc) : 0) + 2;
    char *url = malloc(n);
    if (url != NULL)
        snprintf(url, n, "%s%s?%s%s%s%s%s", c->t->api, KUBE_COLLECTION, q, key != NULL ? "&" : "",
                 key != NULL ? key : "", key != NULL ? "=" : "", esc != NULL ? esc : "");
    curl_free(esc);
    return url;
}

/* A response that is not 200: note it (the Status's message when there is one). */
static void
note_http(struct client *c, const char *what, long status, const struct body *b)
{
    cJSON *root = NULL;
    const char *msg = b->buf != NULL ? kube_status_message(b->buf, b->len, &root) : NULL;
    const char *hint = status == 401   ? " (is the token right? --kube-token-file)"
                       : status == 403 ? " (may the account list and watch "
                                         "clusterpersonas.dorgu.io?)"
                                       : "";
    note_problem(c, "%s: HTTP %ld%s%s%s", what, status, msg != NULL ? ": " : "",
                 msg != NULL ? msg : "", hint);
    cJSON_Delete(root);
}

static int
set_rv(struct client *c, const char *rv)
{
    char *copy = strdup(rv);
    if (copy == NULL)
        return -1;
    free(c->rv);
    c->rv = copy;
    return 0;
}

/* An object of a list or an event as a PUT; a bad one is logged and skipped. */
static void
put_object(struct client *c, const cJSON *obj, const char *where)
{
    const char *name = NULL;
    char *rec = NULL;
    size_t len = 0;
    const char *err = kube_object_record(obj, &name, &rec, &len);
    if (err == NULL && len > c->max_object) {
        err = "larger than --kube-max-object";
        free(rec);
    }
    if (err != NULL) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(md, "name");
        log_warnx("kubernetes: %s: ClusterPersona %s: %s; skipped", where,
                  cJSON_IsString(nm) ? nm->valuestring : "(no name)", err);
        return;
    }
    out_frame(c, KUBE_FRAME_PUT, name, rec, len);
    free(rec);
}

/* --- list --------------------------------------------------------------------- */

static enum step
do_list(struct client *c)
{
    char *cont = NULL;
    enum step res = STEP_RETRY;
    out_frame(c, KUBE_FRAME_BEGIN, NULL, NULL, 0);
    unsigned pages = 0, objects = 0;
    for (;;) {
        char limit[32];
        snprintf(limit, sizeof(limit), "limit=%d", KUBE_LIST_LIMIT);
        char *url = make_url(c, limit, cont != NULL ? "continue" : NULL, cont);
        if (url == NULL || token_read(c) != 0) {
            if (url == NULL)
                note_problem(c, "out of memory");
            free(url);
            break;
        }
        struct body b = {.max = KUBE_LIST_PAGE_MAX_BYTES};
        struct curl_slist *hdrs = NULL;
        long status = 0;
        CURLcode rc = http_get(c, url, KUBE_LIST_TIMEOUT_S, on_body, &b, &status, &hdrs);
        curl_slist_free_all(hdrs);
        free(url);
        if (rc != CURLE_OK || b.over || status != 200) {
            if (rc == CURLE_OK && status == 410 && cont != NULL) {
                log_info("kubernetes: the list's continue token expired; listing again");
                out_frame(c, KUBE_FRAME_CANCEL, NULL, NULL, 0);
                out_frame(c, KUBE_FRAME_BEGIN, NULL, NULL, 0);
                free(cont);
                cont = NULL;
                free(b.buf);
                continue;
            }
            if (b.over)
                note_problem(c, "list: a page is larger than %u bytes", KUBE_LIST_PAGE_MAX_BYTES);
            else if (rc != CURLE_OK)
                note_problem(c, "list %s: %s", c->t->api, curl_easy_strerror(rc));
            else
                note_http(c, "list", status, &b);
            free(b.buf);
            break;
        }
        cJSON *root = NULL;
        const cJSON *items = NULL;
        const char *rv = NULL, *next = NULL;
        const char *err = kube_list_parse(b.buf, b.len, &root, &items, &rv, &next);
        free(b.buf);
        if (err != NULL) {
            note_problem(c, "list: %s", err);
            break;
        }
        pages++;
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            put_object(c, it, "list");
            objects++;
        }
        free(cont);
        cont = NULL;
        if (next[0] != '\0' && (cont = strdup(next)) == NULL) {
            cJSON_Delete(root);
            note_problem(c, "out of memory");
            break;
        }
        if (cont == NULL) {
            int ok = set_rv(c, rv) == 0;
            cJSON_Delete(root);
            if (!ok) {
                note_problem(c, "out of memory");
                break;
            }
            out_frame(c, KUBE_FRAME_END, NULL, NULL, 0);
            log_info("kubernetes: listed %u ClusterPersonas (%u pages), resourceVersion %s",
                     objects, pages, c->rv);
            res = STEP_OK;
            break;
        }
        cJSON_Delete(root);
    }
    free(cont);
    if (res != STEP_OK)
        out_frame(c, KUBE_FRAME_CANCEL, NULL, NULL, 0);
    return res;
}

/* --- watch -------------------------------------------------------------------- */

static int
on_event_line(void *arg, char *text, size_t len)
{
    struct client *c = arg;
    struct kube_event ev;
    const char *err = kube_event_parse(text, len, &ev);
    if (err != NULL) {
        log_warnx("kubernetes: watch: an event line (%zu bytes): %s; skipped", len, err);
        return 0;
    }
    c->events++;
    int stop = 0;
    switch (ev.type) {
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED:
        put_object(c, ev.object, "watch");
        break;
    case KUBE_EVENT_DELETED: {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(ev.object, "metadata");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(md, "name");
        if (cJSON_IsString(nm) && nm->valuestring[0] != '\0')
            out_frame(c, KUBE_FRAME_REMOVE, nm->valuestring, NULL, 0);
        else
            log_warnx("kubernetes: watch: a DELETED event without metadata.name; skipped");
        break;
    }
    case KUBE_EVENT_BOOKMARK:
        break;
    case KUBE_EVENT_ERROR: {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(ev.object, "message");
        if (ev.code == 410) {
            log_info("kubernetes: watch: resourceVersion %s expired (%s); listing again",
                     c->rv != NULL ? c->rv : "", cJSON_IsString(m) ? m->valuestring : "410");
            c->relist = 1;
        } else {
            note_problem(c, "watch: ERROR event, code %d: %s", ev.code,
                         cJSON_IsString(m) ? m->valuestring : "");
            c->stream_err = 1;
        }
        stop = 1;
        break;
    }
    }
    /* An ERROR's object is a Status: its resourceVersion is not the stream's. */
    if (ev.type != KUBE_EVENT_ERROR && ev.rv != NULL && ev.rv[0] != '\0' && set_rv(c, ev.rv) != 0)
        stop = 1, c->relist = 1;
    kube_event_free(&ev);
    return stop;
}

static size_t
on_watch_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct client *c = arg;
    size_t n = size * nmemb;
    long status = 0;
    (void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        c->err.max = KUBE_ERROR_BODY_MAX;
        (void)body_append(&c->err, data, n);
        return n;
    }
    const char *err = NULL;
    int rc = kube_lines_feed(&c->lines, data, n, on_event_line, c, &err);
    if (rc == -1) {
        log_warnx("kubernetes: watch: %s (%zu bytes); listing again", err, c->max_object);
        c->relist = 1;
    }
    return rc == 0 ? n : 0;
}

static enum step
do_watch(struct client *c)
{
    char q[128];
    snprintf(q, sizeof(q), "watch=1&allowWatchBookmarks=true&timeoutSeconds=%ld",
             (long)(KUBE_WATCH_MIN_S + jitter_next(c) % KUBE_WATCH_SPREAD_S));
    char *url = make_url(c, q, "resourceVersion", c->rv);
    if (url == NULL) {
        note_problem(c, "out of memory");
        return STEP_RETRY;
    }
    if (token_read(c) != 0) {
        free(url);
        return STEP_RETRY;
    }
    kube_lines_reset(&c->lines);
    free(c->err.buf);
    c->err = (struct body){0};
    c->relist = c->stream_err = 0;
    c->events = 0;
    int64_t start = clock_now_ms();
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURLcode rc = http_get(c, url, KUBE_WATCH_MIN_S + KUBE_WATCH_SPREAD_S + 60, on_watch_body, c,
                           &status, &hdrs);
    curl_slist_free_all(hdrs);
    free(url);
    if (kube_lines_pending(&c->lines) > 0)
        log_debug("kubernetes: watch ended inside a line (%zu bytes dropped)",
                  kube_lines_pending(&c->lines));
    kube_lines_reset(&c->lines);
    if (c->relist)
        return STEP_RELIST;
    if (c->stream_err)
        return STEP_RETRY;
    if (status == 410) {
        log_info("kubernetes: watch: resourceVersion %s expired (HTTP 410); listing again",
                 c->rv != NULL ? c->rv : "");
        return STEP_RELIST;
    }
    if (status != 0 && status != 200) {
        note_http(c, "watch", status, &c->err);
        return STEP_RETRY;
    }
    if (status == 0) {
        note_problem(c, "watch %s: %s", c->t->api, curl_easy_strerror(rc));
        return STEP_RETRY;
    }
    /* 200, ended (timeout, EOF, reset): watch again, unless it ended at once
     * without an event, which would make this loop spin. */
    if (c->events == 0 && clock_now_ms() - start < 1000) {
        note_problem(c, "watch: the stream ended at once (%s)",
                     rc == CURLE_OK ? "no events" : curl_easy_strerror(rc));
        return STEP_RETRY;
    }
    log_debug("kubernetes: watch ended (%s, %u events); watching again from %s",
              rc == CURLE_OK ? "end of stream" : curl_easy_strerror(rc), c->events, c->rv);
    return STEP_OK;
}

void
kube_client_main(const struct kube_target *t, size_t max_object, int out_fd)
{
    static struct client c; /* one per process */
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.max_object = max_object;
    c.out = out_fd;
    c.rnd = (uint64_t)getpid() << 32 ^ (uint64_t)clock_now_ms() ^ 0x9e3779b97f4a7c15ull;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (c.curl = curl_easy_init()) == NULL) {
        log_error("kubernetes: cannot initialise libcurl");
        _exit(1);
    }
    kube_lines_init(&c.lines, max_object);
    int listed = 0;
    for (;;) {
        enum step s = listed ? do_watch(&c) : do_list(&c);
        if (s == STEP_OK) {
            note_healthy(&c);
            listed = 1;
        } else if (s == STEP_RELIST) {
            note_healthy(&c); /* the API answered */
            listed = 0;
        } else {
            back_off(&c);
        }
    }
}
