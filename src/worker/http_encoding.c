/*
 * http_encoding - parse Accept-Encoding for the choice gzip or identity.
 *
 * One pass over the comma-separated list; each element is a coding token,
 * then ";"-separated parameters of which only q matters.  Weights are kept
 * as integers, 0 to 1000 (thousandths), so "0.001" and "1.000" are exact.
 */
#include <stddef.h>

#include "worker/http_encoding.h"

/* A token character (RFC 9110 5.6.2 tchar). */
static int
is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Whether s[0..n) is word, case-insensitively (word is lower case). */
static int
token_is(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i] != '\0'; i++)
        if (lower(s[i]) != word[i])
            return 0;
    return i == n && word[i] == '\0';
}

static const char *
skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A qvalue (RFC 9110 12.4.2) in s[0..n): thousandths, or -1 if malformed. */
static int
parse_qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int q = (s[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (s[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q <= 1000 ? q : -1;
}

/*
 * One element at *pp (up to the next ',' or the end): its coding in
 * [*tok, *tok + *toklen) and weight (thousandths) in *q.  Returns 0 when it
 * parses, -1 when it is to be ignored; *pp is left after the element either way.
 */
static int
parse_element(const char **pp, const char **tok, size_t *toklen, int *q)
{
    const char *p = skip_ows(*pp);
    int ok = 1;
    *tok = p;
    while (is_tchar(*p))
        p++;
    *toklen = (size_t)(p - *tok);
    if (*toklen == 0)
        ok = 0;
    *q = 1000;
    p = skip_ows(p);
    while (ok && *p == ';') {
        p = skip_ows(p + 1);
        const char *name = p;
        while (is_tchar(*p))
            p++;
        size_t namelen = (size_t)(p - name);
        p = skip_ows(p);
        if (namelen == 0 || *p != '=') {
            ok = 0;
            break;
        }
        p = skip_ows(p + 1);
        const char *val = p;
        while (is_tchar(*p))
            p++;
        size_t vallen = (size_t)(p - val);
        if (token_is(name, namelen, "q")) {
            *q = parse_qvalue(val, vallen);
            if (*q < 0)
                ok = 0;
        } else if (vallen == 0) {
            ok = 0; /* a quoted-string parameter: no coding here takes one */
        }
        p = skip_ows(p);
    }
    if (*p != ',' && *p != '\0')
        ok = 0;
    while (*p != ',' && *p != '\0')
        p++;
    if (*p == ',')
        p++;
    *pp = p;
    return ok ? 0 : -1;
}

int
http_accepts_gzip(const char *value)
{
    if (value == NULL)
        return 0;
    int q_gzip = -1, q_identity = -1, q_star = -1; /* -1: not listed */
    const char *p = value;
    while (*p != '\0') {
        const char *tok;
        size_t n;
        int q;
        if (parse_element(&p, &tok, &n, &q) != 0)
            continue;
        if (token_is(tok, n, "gzip") || token_is(tok, n, "x-gzip"))
            q_gzip = q;
        else if (token_is(tok, n, "identity"))
            q_identity = q;
        else if (token_is(tok, n, "*"))
            q_star = q;
    }
    if (q_gzip < 0)
        q_gzip = q_star < 0 ? 0 : q_star;
    if (q_identity < 0)
        q_identity = q_star; /* still -1 when neither is listed */
    return q_gzip > 0 && q_gzip >= q_identity;
}
