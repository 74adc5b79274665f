/*
 * check_persona - unit tests for src/common/persona.c, table-driven over the fixtures
 * in tests/data/personas/{good,bad}/: the name each good file yields and its
 * exact canonical object, byte-identical objects for differently formatted
 * files, the exact error string for each bad file, the 1 MiB and 253-byte
 * limits, the caps on values and members, duplicate member names, the key
 * order (and that sorting is not quadratic), that nothing past len is read,
 * UTF-8 validation, and persona_event_json's exact bytes (or NULL when an
 * allocation fails).
 *
 * Fixtures are found under $TOP_SRCDIR (set by make check), else $srcdir,
 * else the current directory.
 */
/* MAP_ANONYMOUS is not in POSIX 2008; glibc wants _DEFAULT_SOURCE for it. */
#define _DEFAULT_SOURCE 1
#include "build_config.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/persona.h"

#define UNICODE_NAME "caf\xc3\xa9-\xe9\x9b\x86\xe7\xbe\xa4-\xf0\x9f\x9a\x80"

static const char *
fixture_root(void)
{
    const char *d = getenv("TOP_SRCDIR");
    if (d == NULL || *d == '\0')
        d = getenv("srcdir");
    if (d == NULL || *d == '\0')
        d = ".";
    return d;
}

/* Read a fixture into a malloc'd buffer of exactly its size (no NUL after it,
 * so a parser that reads past len trips ASan/Valgrind). */
static char *
read_fixture(const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/personas/%s", fixture_root(), rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open fixture %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Parse a buffer copied to exactly len bytes of heap. */
static const char *
parse_exact(const char *data, size_t len, struct persona *p)
{
    char *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, data, len);
    const char *err = persona_parse(copy, len, p);
    free(copy);
    return err;
}

/* --- good files ------------------------------------------------------------------ */

struct good_case {
    const char *file;
    const char *name;
    const char *obj;
};

static const struct good_case good_cases[] = {
    {"good/k8s-prod.json", "prod-cluster",
     "{\"name\":\"prod-cluster\",\"spec\":{\"addons\":[\"coredns\",\"metrics-server\"],"
     "\"nodes\":[{\"cpu\":4,\"name\":\"node-1\",\"role\":\"control-plane\"},"
     "{\"cpu\":8,\"name\":\"node-2\",\"role\":\"worker\"}],\"region\":\"eu-west-1\","
     "\"version\":\"1.29.3\"},\"status\":{\"healthy\":true,\"lastTransition\":null,"
     "\"phase\":\"Running\",\"readyNodes\":2}}"},
    {"good/api-staging.json", "staging",
     "{\"name\":\"staging\",\"spec\":{\"region\":\"us-east-2\",\"replicas\":3},"
     "\"status\":{\"phase\":\"Provisioning\"}}"},
    {"good/unicode-name.json", UNICODE_NAME,
     "{\"name\":\"" UNICODE_NAME "\",\"spec\":{\"owner\":\"\xc3\xa9quipe\"},\"status\":{}}"},
    {"good/unicode-escaped.json", UNICODE_NAME,
     "{\"name\":\"" UNICODE_NAME "\",\"spec\":{\"owner\":\"\xc3\xa9quipe\"},\"status\":{}}"},
    {"good/bare-api.json", "bare", "{\"name\":\"bare\",\"spec\":{},\"status\":{}}"},
    {"good/bare-k8s.json", "bare-k8s", "{\"name\":\"bare-k8s\",\"spec\":{},\"status\":{}}"},
    {"good/metadata-wins.json", "from-metadata",
     "{\"name\":\"from-metadata\",\"spec\":{\"a\":1},\"status\":{}}"},
    {"good/escaped-name.json", "we\"ird\\name/x",
     "{\"name\":\"we\\\"ird\\\\name/x\",\"spec\":{},\"status\":{}}"},
    {"good/reordered-a.json", "reordered",
     "{\"name\":\"reordered\",\"spec\":{\"addons\":[{\"name\":\"x\",\"version\":\"1.0\"},"
     "{\"name\":\"y\",\"version\":\"2.0\"}],\"count\":10,\"empty\":{},"
     "\"nested\":{\"a\":[3,2,1],\"z\":{\"a\":1,\"b\":2}},\"none\":null,\"ratio\":0.5,"
     "\"zone\":\"b\"},\"status\":{\"conditions\":[{\"status\":\"True\",\"type\":\"Ready\"}],"
     "\"phase\":\"Ready\"}}"},
    {"good/reordered-b.json", "reordered",
     "{\"name\":\"reordered\",\"spec\":{\"addons\":[{\"name\":\"x\",\"version\":\"1.0\"},"
     "{\"name\":\"y\",\"version\":\"2.0\"}],\"count\":10,\"empty\":{},"
     "\"nested\":{\"a\":[3,2,1],\"z\":{\"a\":1,\"b\":2}},\"none\":null,\"ratio\":0.5,"
     "\"zone\":\"b\"},\"status\":{\"conditions\":[{\"status\":\"True\",\"type\":\"Ready\"}],"
     "\"phase\":\"Ready\"}}"},
};

#define N_GOOD (sizeof(good_cases) / sizeof(good_cases[0]))

START_TEST(test_good_fixture)
{
    const struct good_case *c = &good_cases[_i];
    size_t len;
    char *data = read_fixture(c->file, &len);
    struct persona p;
    const char *err = persona_parse(data, len, &p);
    free(data);
    ck_assert_msg(err == NULL, "%s: unexpected error '%s'", c->file, err);
    ck_assert_ptr_nonnull(p.name);
    ck_assert_ptr_nonnull(p.obj);
    ck_assert_uint_eq(p.name_len, strlen(c->name));
    ck_assert_msg(strcmp(p.name, c->name) == 0, "%s: name '%s', want '%s'", c->file, p.name,
                  c->name);
    ck_assert_uint_eq(p.obj_len, strlen(p.obj));
    ck_assert_msg(strcmp(p.obj, c->obj) == 0, "%s:\n got  %s\n want %s", c->file, p.obj, c->obj);

    /* The canonical form is a fixed point: parsing it gives it back. */
    struct persona q;
    err = parse_exact(p.obj, p.obj_len, &q);
    ck_assert_msg(err == NULL, "%s: canonical object does not parse: %s", c->file, err);
    ck_assert_str_eq(q.obj, p.obj);
    ck_assert_str_eq(q.name, p.name);
    persona_free(&q);
    persona_free(&p);
    ck_assert_ptr_null(p.name);
    ck_assert_ptr_null(p.obj);
}
END_TEST

static char *
parse_obj_of(const char *file)
{
    size_t len;
    char *data = read_fixture(file, &len);
    struct persona p;
    const char *err = persona_parse(data, len, &p);
    free(data);
    ck_assert_msg(err == NULL, "%s: %s", file, err);
    char *obj = strdup(p.obj);
    persona_free(&p);
    return obj;
}

START_TEST(test_formatting_and_key_order_do_not_matter)
{
    char *a = parse_obj_of("good/reordered-a.json");
    char *b = parse_obj_of("good/reordered-b.json");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    a = parse_obj_of("good/unicode-name.json");
    b = parse_obj_of("good/unicode-escaped.json");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_content_change_changes_obj)
{
    /* The converse: a value change must show in the canonical bytes. */
    static const char a[] = "{\"name\":\"x\",\"spec\":{\"n\":1,\"list\":[1,2]}}";
    static const char b[] = "{\"name\":\"x\",\"spec\":{\"n\":2,\"list\":[1,2]}}";
    static const char c[] = "{\"name\":\"x\",\"spec\":{\"n\":1,\"list\":[2,1]}}";
    static const char d[] =
        "{\"name\":\"x\",\"spec\":{\"n\":1,\"list\":[1,2]},\"status\":{\"p\":1}}";
    struct persona pa, pb, pc, pd;
    ck_assert_ptr_null(parse_exact(a, sizeof(a) - 1, &pa));
    ck_assert_ptr_null(parse_exact(b, sizeof(b) - 1, &pb));
    ck_assert_ptr_null(parse_exact(c, sizeof(c) - 1, &pc));
    ck_assert_ptr_null(parse_exact(d, sizeof(d) - 1, &pd));
    ck_assert_str_ne(pa.obj, pb.obj);
    ck_assert_str_ne(pa.obj, pc.obj);
    ck_assert_str_ne(pa.obj, pd.obj);
    ck_assert_str_eq(pa.obj, "{\"name\":\"x\",\"spec\":{\"list\":[1,2],\"n\":1},\"status\":{}}");
    persona_free(&pa);
    persona_free(&pb);
    persona_free(&pc);
    persona_free(&pd);
}
END_TEST

/* --- bad files ------------------------------------------------------------------- */

struct bad_case {
    const char *file;
    const char *err;
};

static const struct bad_case bad_cases[] = {
    {"bad/invalid-json.json", "invalid JSON"},
    {"bad/empty-file.json", "invalid JSON"},
    {"bad/whitespace-only.json", "invalid JSON"},
    {"bad/trailing-garbage.json", "invalid JSON: trailing data after the object"},
    {"bad/trailing-word.json", "invalid JSON: trailing data after the object"},
    {"bad/not-object-array.json", "not a JSON object"},
    {"bad/not-object-string.json", "not a JSON object"},
    {"bad/no-name.json", "no cluster name (metadata.name or name)"},
    {"bad/name-not-string.json", "cluster name is not a string"},
    {"bad/name-null.json", "cluster name is not a string"},
    {"bad/empty-name.json", "cluster name is empty"},
    {"bad/name-254.json", "cluster name is longer than 253 bytes"},
    {"bad/name-control-char.json", "cluster name contains control characters"},
    {"bad/name-newline.json", "cluster name contains control characters"},
    {"bad/name-del.json", "cluster name contains control characters"},
    /* "trunc\u0000ated": a NUL is a control character too; accepting it would
     * silently turn the name into "trunc". */
    {"bad/name-nul.json", "a string contains \\u0000 (NUL), which is not supported"},
    {"bad/invalid-utf8.json", "file is not valid UTF-8"},
    {"bad/invalid-utf8-overlong.json", "file is not valid UTF-8"},
    {"bad/spec-not-object.json", "spec is not an object"},
    {"bad/status-not-object.json", "status is not an object"},
    /* Duplicate member names anywhere (RFC 8259: "should be unique"), here in
     * an object inside an array inside spec, and at the top ("name" twice,
     * which was "first" and the second one silently ignored). */
    {"bad/duplicate-member.json", "an object has two members with the same name"},
    {"bad/duplicate-name.json", "an object has two members with the same name"},
    /* A raw NUL in a string would cut the C string as \u0000 would. */
    {"bad/name-raw-nul.json", "invalid JSON: a raw NUL byte in a string"},
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

START_TEST(test_bad_fixture)
{
    const struct bad_case *c = &bad_cases[_i];
    size_t len;
    char *data = read_fixture(c->file, &len);
    struct persona p;
    memset(&p, 0x5a, sizeof(p));
    const char *err = persona_parse(data, len, &p);
    free(data);
    if (err == NULL)
        ck_abort_msg("%s: accepted (name '%s', obj %s), want error '%s'", c->file, p.name, p.obj,
                     c->err);
    ck_assert_msg(strcmp(err, c->err) == 0, "%s: error '%s', want '%s'", c->file, err, c->err);
    /* On error nothing is owned: out is cleared. */
    ck_assert_ptr_null(p.name);
    ck_assert_ptr_null(p.obj);
    persona_free(&p);
}
END_TEST

/* --- limits ---------------------------------------------------------------------- */

/* {"name":"big","spec":{"pad":"xxx..."}} of exactly total bytes. */
static char *
big_file(size_t total)
{
    static const char head[] = "{\"name\":\"big\",\"spec\":{\"pad\":\"";
    static const char tail[] = "\"}}";
    char *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, head, sizeof(head) - 1);
    memset(buf + sizeof(head) - 1, 'x', total - (sizeof(head) - 1) - (sizeof(tail) - 1));
    memcpy(buf + total - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    return buf;
}

START_TEST(test_size_limit)
{
    struct persona p;
    char *buf = big_file(PERSONA_FILE_MAX_BYTES);
    const char *err = persona_parse(buf, PERSONA_FILE_MAX_BYTES, &p);
    ck_assert_msg(err == NULL, "exactly 1 MiB refused: %s", err);
    ck_assert_str_eq(p.name, "big");
    persona_free(&p);
    free(buf);

    buf = big_file(PERSONA_FILE_MAX_BYTES + 1);
    err = persona_parse(buf, PERSONA_FILE_MAX_BYTES + 1, &p);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, "file is larger than 1 MiB");
    ck_assert_ptr_null(p.name);
    free(buf);
}
END_TEST

START_TEST(test_name_length_limit)
{
    char file[400];
    char name[300];
    struct persona p;
    for (size_t n = 250; n <= 256; n++) {
        memset(name, 'a', n);
        name[n] = '\0';
        int len = snprintf(file, sizeof(file), "{\"metadata\":{\"name\":\"%s\"}}", name);
        const char *err = parse_exact(file, (size_t)len, &p);
        if (n <= PERSONA_NAME_MAX_BYTES) {
            ck_assert_msg(err == NULL, "name of %zu bytes refused: %s", n, err);
            ck_assert_uint_eq(p.name_len, n);
            persona_free(&p);
        } else {
            ck_assert_msg(err != NULL && strcmp(err, "cluster name is longer than 253 bytes") == 0,
                          "name of %zu bytes: %s", n, err ? err : "accepted");
        }
    }
    /* The limit is in bytes, not characters: 127 two-byte characters = 254 bytes. */
    size_t k = 0;
    for (int i = 0; i < 127; i++) {
        name[k++] = '\xc3';
        name[k++] = '\xa9';
    }
    name[k] = '\0';
    int len = snprintf(file, sizeof(file), "{\"name\":\"%s\"}", name);
    const char *err = parse_exact(file, (size_t)len, &p);
    ck_assert_msg(err != NULL && strcmp(err, "cluster name is longer than 253 bytes") == 0,
                  "254-byte UTF-8 name: %s", err ? err : "accepted");
    /* The 253-byte fixture passes. */
    size_t flen;
    char *data = read_fixture("good/name-253.json", &flen);
    err = persona_parse(data, flen, &p);
    free(data);
    ck_assert_msg(err == NULL, "name-253.json: %s", err);
    ck_assert_uint_eq(p.name_len, 253);
    persona_free(&p);
}
END_TEST

START_TEST(test_len_is_honoured)
{
    /* Bytes past len are not part of the file. */
    static const char data[] = "{\"name\":\"x\"}GARBAGE";
    struct persona p;
    const char *err = parse_exact(data, 12, &p);
    ck_assert_msg(err == NULL, "%s", err);
    ck_assert_str_eq(p.name, "x");
    persona_free(&p);
    err = parse_exact(data, 11, &p);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, "invalid JSON");
}
END_TEST

START_TEST(test_objects_in_arrays)
{
    /* Objects inside arrays are canonicalised; array order is kept. */
    static const char data[] =
        "{\"name\":\"n\",\"spec\":{\"b\":[{\"y\":1,\"x\":2},[{\"d\":1,\"c\":2}]],\"a\":true}}";
    struct persona p;
    ck_assert_ptr_null(parse_exact(data, sizeof(data) - 1, &p));
    ck_assert_str_eq(p.obj, "{\"name\":\"n\",\"spec\":{\"a\":true,\"b\":[{\"x\":2,\"y\":1},"
                            "[{\"c\":2,\"d\":1}]]},\"status\":{}}");
    persona_free(&p);
}
END_TEST

/* --- duplicate names, caps, key order ---------------------------------------------- */

START_TEST(test_duplicate_members)
{
    static const char *const dups[] = {
        "{\"name\":\"x\",\"spec\":{\"a\":1,\"a\":1}}",
        "{\"name\":\"x\",\"spec\":{\"a\":1,\"b\":2,\"a\":3}}",
        "{\"name\":\"x\",\"status\":{\"deep\":{\"er\":[{\"k\":1,\"k\":2}]}}}",
        "{\"metadata\":{\"name\":\"x\",\"name\":\"y\"}}",
        "{\"name\":\"x\",\"spec\":{},\"spec\":{\"a\":1}}",
        "{\"name\":\"x\",\"spec\":{\"\":1,\"\":2}}",
        /* equal once decoded: an escape is the same name */
        "{\"name\":\"x\",\"spec\":{\"\\u00e9\":1,\"\xc3\xa9\":2}}",
    };
    struct persona p;
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        const char *err = parse_exact(dups[i], strlen(dups[i]), &p);
        ck_assert_msg(err != NULL &&
                          strcmp(err, "an object has two members with the same name") == 0,
                      "case %zu: %s", i, err ? err : "accepted");
        ck_assert_ptr_null(p.name);
    }
    /* Same name in different objects, or differing in case: fine. */
    static const char ok[] = "{\"name\":\"x\",\"spec\":{\"a\":{\"a\":1},\"A\":[{\"a\":1},{\"a\":2}]"
                             "},\"status\":{\"a\":1}}";
    ck_assert_ptr_null(parse_exact(ok, sizeof(ok) - 1, &p));
    persona_free(&p);
}
END_TEST

/* A growable string for generated files. */
struct gen {
    char *buf;
    size_t len, cap;
};

static void gen_add(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
gen_add(struct gen *g, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(g->buf + g->len, g->cap - g->len, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(n, 0);
        if ((size_t)n < g->cap - g->len) {
            g->len += (size_t)n;
            return;
        }
        g->cap = g->cap ? g->cap * 2 : 4096;
        g->buf = realloc(g->buf, g->cap);
        ck_assert_ptr_nonnull(g->buf);
    }
}

/* {"name":"m","spec":{"k00000":0,...}} with n members, in ascending or
 * descending key order. */
static struct gen
members_file(size_t n, int descending)
{
    struct gen g = {0};
    gen_add(&g, "{\"name\":\"m\",\"spec\":{");
    for (size_t i = 0; i < n; i++)
        gen_add(&g, "%s\"k%05zu\":0", i ? "," : "", descending ? n - 1 - i : i);
    gen_add(&g, "}}");
    return g;
}

START_TEST(test_member_cap)
{
    struct persona p;
    struct gen g = members_file(PERSONA_MAX_OBJECT_MEMBERS, 1);
    const char *err = parse_exact(g.buf, g.len, &p);
    ck_assert_msg(err == NULL, "%d members refused: %s", PERSONA_MAX_OBJECT_MEMBERS, err);
    /* Sorted, and the canonical bytes are those of an ascending file. */
    struct gen want = members_file(PERSONA_MAX_OBJECT_MEMBERS, 0);
    ck_assert_uint_eq(p.obj_len, want.len + strlen(",\"status\":{}"));
    ck_assert_int_eq(memcmp(p.obj, want.buf, want.len - 1), 0);
    persona_free(&p);
    free(want.buf);
    free(g.buf);
    g = members_file(PERSONA_MAX_OBJECT_MEMBERS + 1, 0);
    err = parse_exact(g.buf, g.len, &p);
    ck_assert_msg(err != NULL && strcmp(err, "an object has more than 10000 members") == 0, "%s",
                  err ? err : "accepted");
    ck_assert_ptr_null(p.name);
    free(g.buf);
}
END_TEST

/* A file of exactly 'values' JSON values (the root included), mixing empty and
 * non-empty arrays and objects, strings holding structural characters, and
 * white space, so that a miscount anywhere shows at the cap. */
static struct gen
values_file(size_t values)
{
    struct gen g = {0};
    /* The root, name, spec and list: 4 values. */
    gen_add(&g, "{ \"name\" : \"v\", \"spec\" : { \"list\" : [ ");
    size_t have = 4;
    int first = 1;
    while (have < values) {
        size_t left = values - have;
        const char *sep = first ? "" : " , ";
        if (left >= 6) {
            /* 6 values: {}, [ ], "[,{", {"a":[]}  (object + array), 0 */
            gen_add(&g, "%s{} , [ ] , \"[,{\\\"\" , {\"a\" : [ ]} , 0", sep);
            have += 6;
        } else {
            gen_add(&g, "%s1", sep);
            have += 1;
        }
        first = 0;
    }
    gen_add(&g, " ] } }\n");
    return g;
}

START_TEST(test_value_cap)
{
    struct persona p;
    struct gen g = values_file(PERSONA_MAX_JSON_VALUES);
    const char *err = parse_exact(g.buf, g.len, &p);
    ck_assert_msg(err == NULL, "%d values refused: %s", PERSONA_MAX_JSON_VALUES, err);
    persona_free(&p);
    free(g.buf);
    g = values_file(PERSONA_MAX_JSON_VALUES + 1);
    err = parse_exact(g.buf, g.len, &p);
    ck_assert_msg(err != NULL && strcmp(err, "more than 100000 JSON values") == 0, "%s",
                  err ? err : "accepted");
    ck_assert_ptr_null(p.name);
    free(g.buf);
}
END_TEST

START_TEST(test_key_order)
{
    /* Byte order (unsigned), shorter first on a common prefix, the empty name
     * first; UTF-8 after ASCII.  These are the bytes the insertion sort gave,
     * so events and ETags of existing files do not change. */
    static const char data[] =
        "{\"name\":\"o\",\"spec\":{\"\xc3\xa9\":1,\"b\":2,\"ab\":3,\"a\":4,\"A\":5,\"_\":6,"
        "\"a b\":7,\"\":8,\"~\":9,\"0\":10,\"aa\":11,\"\\u00e8\":12,\"Z\":13}}";
    struct persona p;
    ck_assert_ptr_null(parse_exact(data, sizeof(data) - 1, &p));
    ck_assert_str_eq(p.obj, "{\"name\":\"o\",\"spec\":{\"\":8,\"0\":10,\"A\":5,\"Z\":13,\"_\":6,"
                            "\"a\":4,\"a b\":7,\"aa\":11,\"ab\":3,\"b\":2,\"~\":9,"
                            "\"\xc3\xa8\":12,\"\xc3\xa9\":1},\"status\":{}}");
    persona_free(&p);
}
END_TEST

static double
elapsed_s(const struct timespec *a)
{
    struct timespec z;
    clock_gettime(CLOCK_MONOTONIC, &z);
    return (double)(z.tv_sec - a->tv_sec) + (double)(z.tv_nsec - a->tv_nsec) / 1e9;
}

/* {"name":"big","spec":{"o0":{...},...}}: nobj objects of m members each, keys
 * ascending or descending. */
static struct gen
objects_file(int nobj, int m, int descending)
{
    struct gen g = {0};
    gen_add(&g, "{\"name\":\"big\",\"spec\":{");
    for (int o = 0; o < nobj; o++) {
        gen_add(&g, "%s\"o%d\":{", o ? "," : "", o);
        for (int i = 0; i < m; i++)
            gen_add(&g, "%s\"k%05d\":0", i ? "," : "", descending ? m - 1 - i : i);
        gen_add(&g, "}");
    }
    gen_add(&g, "}}");
    return g;
}

/* The CPU time of one parse, in seconds: this process's own, so that other
 * processes on a loaded machine do not count. */
static double
parse_cpu_s(const struct gen *g)
{
    struct persona p;
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    const char *err = parse_exact(g->buf, g->len, &p);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    ck_assert_msg(err == NULL, "%s", err);
    persona_free(&p);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* The faster of three parses, in CPU seconds. */
static double
parse_time(const struct gen *g)
{
    double best = 1e9;
    for (int k = 0; k < 3; k++) {
        double dt = parse_cpu_s(g);
        best = dt < best ? dt : best;
    }
    return best;
}

START_TEST(test_sort_is_not_quadratic)
{
    /* Nine objects at the member cap, ~1 MiB, keys ascending against the same
     * keys descending.  The old insertion sort walked the whole list for
     * every ascending key (2.2 s here) and stopped at the head for every
     * descending one (0.1 s); O(m log m) takes about as long for both.  A
     * ratio of two files of the same shape, so that a loaded machine does not
     * fail it. */
    struct gen asc = objects_file(9, PERSONA_MAX_OBJECT_MEMBERS, 0);
    struct gen desc = objects_file(9, PERSONA_MAX_OBJECT_MEMBERS, 1);
    ck_assert_uint_le(asc.len, PERSONA_FILE_MAX_BYTES);
    double t_asc = parse_time(&asc), t_desc = parse_time(&desc);
    free(asc.buf);
    free(desc.buf);
    ck_assert_msg(t_asc < 3 * t_desc + 0.01, "keys ascending: %.3f s; descending: %.3f s", t_asc,
                  t_desc);

    /* The file: 50 000 equal keys (250 KB), now refused at once. */
    struct gen e = {0};
    gen_add(&e, "{\"name\":\"eq\",\"spec\":{");
    for (int i = 0; i < 50000; i++)
        gen_add(&e, "%s\"a\":0", i ? "," : "");
    gen_add(&e, "}}");
    struct persona p;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *err = parse_exact(e.buf, e.len, &p);
    double dt = elapsed_s(&t0);
    free(e.buf);
    ck_assert_msg(err != NULL && strcmp(err, "an object has more than 10000 members") == 0, "%s",
                  err ? err : "accepted");
    ck_assert_msg(dt < 2.0, "50 000 equal keys took %.2f s", dt);
}
END_TEST

/* --- nothing past len is read ---------------------------------------------------- */

/* Parse data[0..len) placed so that its last byte is the last byte before an
 * inaccessible page: any read past len is a SIGSEGV, in every build (under ASan
 * parse_exact's exact-size heap copy would catch it too). */
static const char *
parse_at_page_end(const char *data, size_t len, struct persona *p)
{
    long pg = sysconf(_SC_PAGESIZE);
    ck_assert_int_gt(pg, 0);
    size_t page = (size_t)pg, span = (len + page - 1) / page * page + page;
    char *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + span - page, page, PROT_NONE), 0);
    char *at = map + span - page - len;
    memcpy(at, data, len);
    const char *err = persona_parse(at, len, p);
    ck_assert_int_eq(munmap(map, span), 0);
    return err;
}

START_TEST(test_no_read_past_len)
{
    /* cJSON before 1.7.18 read the byte after an object's trailing comma
     * (cJSON issue #800); these end exactly there or just after it. */
    static const char *const cases[] = {
        "{\"name\":\"x\",",
        "{\"1\":1,",
        "{\"1\":1, ",
        "{\"name\":\"x\",\"spec\":{\"a\":1,",
        "{\"name\":\"x\",\"spec\":[1,",
        "{\"name\":\"x\",\"spec\":{\"a\"",
        "{\"name\":\"x\\",
        "{\"name\":\"\\u00e",
        "{\"name\":tru",
        "{\"name\":-1e",
        "{",
        "[",
        "\"",
        " ",
    };
    struct persona p;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i]);
        const char *err = parse_at_page_end(cases[i], len, &p);
        ck_assert_msg(err != NULL, "case %zu accepted", i);
        err = parse_exact(cases[i], len, &p);
        ck_assert_msg(err != NULL, "case %zu accepted", i);
    }
    /* Every prefix of a real file. */
    size_t flen;
    char *data = read_fixture("good/k8s-prod.json", &flen);
    for (size_t n = 0; n <= flen; n++) {
        const char *err = parse_at_page_end(data, n, &p);
        if (err == NULL)
            persona_free(&p);
    }
    free(data);
}
END_TEST

/* --- UTF-8 ----------------------------------------------------------------------- */

struct utf8_case {
    const char *bytes;
    int valid;
};

static const struct utf8_case utf8_cases[] = {
    {"", 1},
    {"plain ascii", 1},
    {"caf\xc3\xa9", 1},
    {"\xe9\x9b\x86", 1},
    {"\xf0\x9f\x9a\x80", 1},
    {"\xf4\x8f\xbf\xbf", 1},     /* U+10FFFF */
    {"\xed\x9f\xbf", 1},         /* U+D7FF */
    {"\xee\x80\x80", 1},         /* U+E000 */
    {"\xc0\xaf", 0},             /* overlong '/' */
    {"\xc1\xbf", 0},             /* overlong */
    {"\xe0\x80\xaf", 0},         /* overlong */
    {"\xf0\x80\x80\xaf", 0},     /* overlong */
    {"\xed\xa0\x80", 0},         /* U+D800 surrogate */
    {"\xed\xbf\xbf", 0},         /* U+DFFF surrogate */
    {"\xf4\x90\x80\x80", 0},     /* U+110000 */
    {"\xf8\x88\x80\x80\x80", 0}, /* 5-byte form */
    {"\xff", 0},
    {"\x80", 0},         /* lone continuation */
    {"a\xc3", 0},        /* truncated */
    {"\xe9\x9b", 0},     /* truncated */
    {"\xf0\x9f\x9a", 0}, /* truncated */
    {"\xc3\x28", 0},     /* bad continuation */
    {"\xe2\x28\xa1", 0},
};

START_TEST(test_utf8)
{
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const char *s = utf8_cases[i].bytes;
        ck_assert_msg(persona_utf8_valid((const unsigned char *)s, strlen(s)) ==
                          utf8_cases[i].valid,
                      "case %zu: want %d", i, utf8_cases[i].valid);
    }
    /* len is honoured: a valid prefix of an invalid string. */
    ck_assert_int_eq(persona_utf8_valid((const unsigned char *)"ab\xff", 2), 1);
    ck_assert_int_eq(persona_utf8_valid((const unsigned char *)"\xc3\xa9", 1), 0);
}
END_TEST

/* --- event messages -------------------------------------------------------------- */

struct event_case {
    const char *type;
    const char *name;
    const char *want;
};

static const struct event_case event_cases[] = {
    {"cluster.updated", "prod-cluster",
     "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"prod-cluster\"}}"},
    {"cluster.added", "staging", "{\"type\":\"cluster.added\",\"data\":{\"name\":\"staging\"}}"},
    {"cluster.deleted", "x", "{\"type\":\"cluster.deleted\",\"data\":{\"name\":\"x\"}}"},
    {"cluster.added", "we\"ird\\name/x",
     "{\"type\":\"cluster.added\",\"data\":{\"name\":\"we\\\"ird\\\\name/x\"}}"},
    {"cluster.updated", "\"\\\"",
     "{\"type\":\"cluster.updated\",\"data\":{\"name\":\"\\\"\\\\\\\"\"}}"},
    /* Non-ASCII stays raw UTF-8 (valid JSON, what clients compare against). */
    {"cluster.deleted", UNICODE_NAME,
     "{\"type\":\"cluster.deleted\",\"data\":{\"name\":\"" UNICODE_NAME "\"}}"},
};

START_TEST(test_event_json)
{
    const struct event_case *c = &event_cases[_i];
    char *msg = persona_event_json(c->type, c->name);
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strcmp(msg, c->want) == 0, "\n got  %s\n want %s", msg, c->want);
    free(msg);
}
END_TEST

START_TEST(test_event_json_long_name)
{
    char name[PERSONA_NAME_MAX_BYTES + 1];
    memset(name, 'n', PERSONA_NAME_MAX_BYTES);
    name[PERSONA_NAME_MAX_BYTES] = '\0';
    char *msg = persona_event_json("cluster.added", name);
    ck_assert_ptr_nonnull(msg);
    char want[400];
    snprintf(want, sizeof(want), "{\"type\":\"cluster.added\",\"data\":{\"name\":\"%s\"}}", name);
    ck_assert_str_eq(msg, want);
    free(msg);
}
END_TEST

/* cJSON's allocations (persona_event_json makes all its own through cJSON):
 * json_fail_at-th from now fails, once; -1: none. */
static long json_fail_at = -1;
static int json_failed;

static void *
json_malloc(size_t n)
{
    if (json_fail_at >= 0 && json_fail_at-- == 0) {
        json_failed = 1;
        return NULL;
    }
    return malloc(n);
}

/* Out of memory at any allocation: NULL, never a message missing a part. */
START_TEST(test_event_json_out_of_memory)
{
    cJSON_Hooks hooks = {json_malloc, free};
    cJSON_InitHooks(&hooks);
    static const char want[] = "{\"type\":\"cluster.added\",\"data\":{\"name\":\"prod\"}}";
    long k;
    for (k = 0; k < 100; k++) {
        json_fail_at = k;
        json_failed = 0;
        char *msg = persona_event_json("cluster.added", "prod");
        json_fail_at = -1;
        if (!json_failed) {
            ck_assert_ptr_nonnull(msg);
            ck_assert_str_eq(msg, want);
            free(msg);
            break;
        }
        ck_assert_msg(msg == NULL, "allocation %ld failed, yet: %s", k, msg);
    }
    cJSON_InitHooks(NULL);
    ck_assert_int_ge(k, 5); /* two objects, two strings, two keys, the text */
}
END_TEST

static Suite *
persona_suite(void)
{
    Suite *s = suite_create("persona");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_good_fixture, 0, (int)N_GOOD);
    tcase_add_test(tc, test_formatting_and_key_order_do_not_matter);
    tcase_add_test(tc, test_content_change_changes_obj);
    tcase_add_loop_test(tc, test_bad_fixture, 0, (int)N_BAD);
    tcase_add_test(tc, test_size_limit);
    tcase_add_test(tc, test_name_length_limit);
    tcase_add_test(tc, test_len_is_honoured);
    tcase_add_test(tc, test_objects_in_arrays);
    tcase_add_test(tc, test_duplicate_members);
    tcase_add_test(tc, test_member_cap);
    tcase_add_test(tc, test_value_cap);
    tcase_add_test(tc, test_key_order);
    tcase_add_test(tc, test_no_read_past_len);
    tcase_add_test(tc, test_utf8);
    suite_add_tcase(s, tc);
    /* Seconds of CPU (it parses ~1 MiB files several times and compares CPU
     * times): on a loaded machine the wall clock needs more than 10 s. */
    TCase *tq = tcase_create("sort");
    tcase_set_timeout(tq, 60);
    tcase_add_test(tq, test_sort_is_not_quadratic);
    suite_add_tcase(s, tq);
    TCase *te = tcase_create("event");
    tcase_set_timeout(te, 10);
    tcase_add_loop_test(te, test_event_json, 0,
                        (int)(sizeof(event_cases) / sizeof(event_cases[0])));
    tcase_add_test(te, test_event_json_long_name);
    tcase_add_test(te, test_event_json_out_of_memory);
    suite_add_tcase(s, te);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(persona_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
