/*
 * auth_tokens - see auth_tokens.h.
 */
#include "build_config.h"

#include "common/auth_tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/memops.h>
#include <nettle/sha2.h>

__attribute__((format(printf, 3, 4))) static void
set_msg(char *msg, size_t msg_size, const char *fmt, ...)
{
    if (msg_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
}

/* RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int
b64token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* 1 if the len bytes at s are a b64token. */
static int
b64token(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && b64token_char((unsigned char)s[i]))
        i++;
    if (i == 0)
        return 0;
    while (i < len && s[i] == '=')
        i++;
    return i == len;
}

static int
blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void
digest_of(const char *token, size_t len, uint8_t out[AUTH_TOKEN_DIGEST_LEN])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)token);
    sha256_digest(&ctx, AUTH_TOKEN_DIGEST_LEN, out);
}

int
auth_tokens_parse(struct auth_tokens *t, const char *buf, size_t len, const char *where, char *msg,
                  size_t msg_size)
{
    t->n = 0;
    t->digest = NULL;
    if (len > AUTH_TOKENS_FILE_MAX) {
        set_msg(msg, msg_size, "%s: larger than %u bytes", where, (unsigned)AUTH_TOKENS_FILE_MAX);
        return -1;
    }
    if (memchr(buf, '\0', len) != NULL) {
        set_msg(msg, msg_size, "%s: holds a NUL byte", where);
        return -1;
    }
    uint8_t(*digest)[AUTH_TOKEN_DIGEST_LEN] = NULL;
    size_t n = 0;
    unsigned lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl != NULL);
        lineno++;
        while (llen > 0 && blank(line[0]))
            line++, llen--;
        while (llen > 0 && blank(line[llen - 1]))
            llen--;
        if (llen == 0 || line[0] == '#')
            continue;
        if (llen > AUTH_TOKEN_MAX_LEN || !b64token(line, llen) || n == AUTH_TOKENS_MAX) {
            if (llen > AUTH_TOKEN_MAX_LEN)
                set_msg(msg, msg_size, "%s:%u: a token longer than %u characters", where, lineno,
                        (unsigned)AUTH_TOKEN_MAX_LEN);
            else if (n == AUTH_TOKENS_MAX)
                set_msg(msg, msg_size, "%s:%u: more than %u tokens", where, lineno,
                        (unsigned)AUTH_TOKENS_MAX);
            else
                set_msg(msg, msg_size,
                        "%s:%u: not a token (letters, digits, -._~+/ then any =; no blank inside)",
                        where, lineno);
            free(digest);
            return -1;
        }
        if (digest == NULL) {
            digest = malloc(AUTH_TOKENS_MAX * sizeof(*digest));
            if (digest == NULL) {
                set_msg(msg, msg_size, "%s: out of memory", where);
                return -1;
            }
        }
        digest_of(line, llen, digest[n++]);
    }
    if (n == 0) {
        set_msg(msg, msg_size, "%s: no token in the file", where);
        return -1;
    }
    t->n = n;
    t->digest = digest;
    return 0;
}

int
auth_tokens_load(struct auth_tokens *t, const char *path, char *msg, size_t msg_size)
{
    t->n = 0;
    t->digest = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        set_msg(msg, msg_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_msg(msg, msg_size, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* One byte over the limit tells a file that is too large. */
    char *buf = malloc(AUTH_TOKENS_FILE_MAX + 1);
    if (buf == NULL) {
        set_msg(msg, msg_size, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    size_t len = 0;
    int rc = 0;
    while (len < AUTH_TOKENS_FILE_MAX + 1) {
        ssize_t r = read(fd, buf + len, AUTH_TOKENS_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_msg(msg, msg_size, "reading %s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0)
        rc = auth_tokens_parse(t, buf, len, path, msg, msg_size);
    /* The buffer held the tokens in clear: wipe it before it goes back to the heap. */
    memset(buf, 0, AUTH_TOKENS_FILE_MAX + 1);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
    free(buf);
    return rc;
}

void
auth_tokens_replace(struct auth_tokens *t, struct auth_tokens *next)
{
    free(t->digest);
    *t = *next;
    next->n = 0;
    next->digest = NULL;
}

void
auth_tokens_free(struct auth_tokens *t)
{
    free(t->digest);
    t->n = 0;
    t->digest = NULL;
}

int
auth_tokens_match(const struct auth_tokens *t, const char *token, size_t len)
{
    uint8_t d[AUTH_TOKEN_DIGEST_LEN];
    digest_of(token, len, d);
    int found = 0;
    for (size_t i = 0; i < t->n; i++)
        found |= memeql_sec(d, t->digest[i], AUTH_TOKEN_DIGEST_LEN);
    return found;
}
