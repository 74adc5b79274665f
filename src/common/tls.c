/*
 * tls - see tls.h.
 *
 * The serving pair is the one piece of process-wide state here: GnuTLS calls
 * the certificate callback with the session only.  A handshake in progress
 * holds pointers into the pair the callback returned (GnuTLS does not copy
 * it), so a reload does not free the pair it replaces: the last
 * TLS_RETIRED_KEPT replaced pairs stay, which covers every handshake still
 * running (TLS_FRONT_HANDSHAKE_MS ends a stalled one long before that many
 * reloads).
 */
#include "build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tls.h"
#include "common/tls_lib.h"

#ifdef ENABLE_TLS

#define TLS_FILE_MAX (1024 * 1024) /* a PEM file larger than this is not a certificate */
#define TLS_CHAIN_MAX 16           /* certificates in --tls-cert (leaf first) */
#define TLS_RETIRED_KEPT 4

struct tls_pair {
    gnutls_pcert_st pcert[TLS_CHAIN_MAX];
    unsigned npcert;
    gnutls_privkey_t key;
};

static struct tls_serving {
    struct tls_pair *cur;
    struct tls_pair *retired[TLS_RETIRED_KEPT]; /* [0] the most recently replaced */
} serving;

/* Read a whole regular file of at most TLS_FILE_MAX bytes into d (malloc'd,
 * NUL-terminated for GnuTLS's PEM parser).  0, or -1 with msg. */
static int
read_file(const char *what, const char *path, gnutls_datum_t *d, char *msg, size_t msg_size)
{
    d->data = NULL;
    d->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(msg, msg_size, "%s %s: %s", what, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TLS_FILE_MAX) {
        snprintf(msg, msg_size, "%s %s: not a regular file of 1 to %d bytes", what, path,
                 TLS_FILE_MAX);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(size + 1);
    if (buf == NULL) {
        snprintf(msg, msg_size, "%s %s: out of memory", what, path);
        close(fd);
        return -1;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(msg, msg_size, "%s %s: %s", what, path,
                     r < 0 ? strerror(errno) : "shorter than its size");
            close(fd);
            free(buf);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    d->data = buf;
    d->size = (unsigned)size;
    return 0;
}

static void
datum_wipe_free(gnutls_datum_t *d)
{
    const struct tls_lib *g = tls_lib();
    if (d->data != NULL) {
        g->gnutls_memset(d->data, 0, d->size);
        free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

static void
pair_free(struct tls_pair *p)
{
    const struct tls_lib *g = tls_lib();
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->npcert; i++)
        g->gnutls_pcert_deinit(&p->pcert[i]);
    if (p->key != NULL)
        g->gnutls_privkey_deinit(p->key);
    free(p);
}

/* 1 when key is the private key of cert's public key. */
static int
key_matches(gnutls_pcert_st *cert, gnutls_privkey_t key)
{
    const struct tls_lib *g = tls_lib();
    gnutls_pubkey_t pub;
    unsigned char a[64], b[64];
    size_t alen = sizeof(a), blen = sizeof(b);
    if (g->gnutls_pubkey_init(&pub) < 0)
        return 0;
    int ok = g->gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
             g->gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen) == 0 &&
             g->gnutls_pubkey_get_key_id(cert->pubkey, GNUTLS_KEYID_USE_SHA256, b, &blen) == 0 &&
             alen == blen && memcmp(a, b, alen) == 0;
    g->gnutls_pubkey_deinit(pub);
    return ok;
}

/* "subject ..., serial ..." of the leaf into msg (best effort). */
static void
describe(gnutls_pcert_st *cert, char *msg, size_t msg_size)
{
    const struct tls_lib *g = tls_lib();
    gnutls_x509_crt_t crt;
    if (msg_size == 0 || g->gnutls_pcert_export_x509(cert, &crt) < 0)
        return;
    gnutls_datum_t dn = {NULL, 0};
    unsigned char serial[64];
    size_t slen = sizeof(serial);
    char hex[2 * sizeof(serial) + 1] = "?";
    if (g->gnutls_x509_crt_get_serial(crt, serial, &slen) == 0)
        for (size_t i = 0; i < slen; i++)
            snprintf(hex + 2 * i, 3, "%02x", serial[i]);
    (void)g->gnutls_x509_crt_get_dn3(crt, &dn, 0);
    snprintf(msg, msg_size, "subject %s, serial %s", dn.data != NULL ? (char *)dn.data : "?", hex);
    (*g->free_fn)(dn.data);
    g->gnutls_x509_crt_deinit(crt);
}

/* Load the pair, with GnuTLS loaded first (the first pair of the process
 * loads it). */
static struct tls_pair *
pair_load(const char *cert_file, const char *key_file, char *msg, size_t msg_size)
{
    char why[256];
    if (tls_lib_load(NULL, why, sizeof(why)) != 0) {
        snprintf(msg, msg_size, "--tls-cert: %s", why);
        return NULL;
    }
    const struct tls_lib *g = tls_lib();
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
    struct tls_pair *p = NULL;
    int rc;
    if (read_file("--tls-cert", cert_file, &cert, msg, msg_size) != 0 ||
        read_file("--tls-key", key_file, &key, msg, msg_size) != 0)
        goto fail;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(msg, msg_size, "out of memory loading the certificate");
        goto fail;
    }
    p->npcert = TLS_CHAIN_MAX;
    rc = g->gnutls_pcert_list_import_x509_raw(p->pcert, &p->npcert, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || p->npcert == 0) {
        p->npcert = 0;
        snprintf(msg, msg_size, "--tls-cert %s: no PEM certificate (chain of at most %d): %s",
                 cert_file, TLS_CHAIN_MAX, rc < 0 ? g->gnutls_strerror(rc) : "empty");
        goto fail;
    }
    if ((rc = g->gnutls_privkey_init(&p->key)) < 0) {
        p->key = NULL;
        snprintf(msg, msg_size, "--tls-key: %s", g->gnutls_strerror(rc));
        goto fail;
    }
    rc = g->gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(msg, msg_size, "--tls-key %s: no unencrypted PEM private key: %s", key_file,
                 g->gnutls_strerror(rc));
        goto fail;
    }
    if (!key_matches(&p->pcert[0], p->key)) {
        snprintf(msg, msg_size, "--tls-key %s is not the key of the certificate in --tls-cert %s",
                 key_file, cert_file);
        goto fail;
    }
    datum_wipe_free(&cert);
    datum_wipe_free(&key);
    describe(&p->pcert[0], msg, msg_size);
    return p;
fail:
    datum_wipe_free(&cert);
    datum_wipe_free(&key);
    pair_free(p);
    return NULL;
}

int
tls_serve_load(const char *cert_file, const char *key_file, char *msg, size_t msg_size)
{
    struct tls_pair *p = pair_load(cert_file, key_file, msg, msg_size);
    if (p == NULL)
        return -1;
    pair_free(serving.retired[TLS_RETIRED_KEPT - 1]);
    memmove(&serving.retired[1], &serving.retired[0],
            (TLS_RETIRED_KEPT - 1) * sizeof(serving.retired[0]));
    serving.retired[0] = serving.cur;
    serving.cur = p;
    return 0;
}

void
tls_serve_free(void)
{
    pair_free(serving.cur);
    serving.cur = NULL;
    for (size_t i = 0; i < TLS_RETIRED_KEPT; i++) {
        pair_free(serving.retired[i]);
        serving.retired[i] = NULL;
    }
}

/* gnutls_certificate_retrieve_function2: every handshake gets the serving pair. */
static int
retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    if (serving.cur == NULL)
        return -1; /* the handshake fails */
    *pcert = serving.cur->pcert;
    *pcert_length = serving.cur->npcert;
    *pkey = serving.cur->key;
    return 0;
}

gnutls_certificate_retrieve_function2 *
tls_cert_callback(void)
{
    return retrieve;
}

#else /* !ENABLE_TLS */

int
tls_serve_load(const char *cert_file, const char *key_file, char *msg, size_t msg_size)
{
    (void)cert_file, (void)key_file;
    return tls_lib_load(NULL, msg, msg_size); /* says "not built in" */
}

void
tls_serve_free(void)
{
}

#endif
