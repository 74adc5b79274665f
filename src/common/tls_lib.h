/*
 * tls_lib - GnuTLS, loaded (dlopen) only when --tls-cert is configured.
 *
 * Why not linked: GnuTLS initialises itself when it is loaded (its
 * constructor runs gnutls_global_init), which maps and dirties about 2 MB
 * in every process, a certificate or not (doc/footprint.md, "GnuTLS loaded
 * when used").  A firmware image with a TLS-less libmicrohttpd and personad
 * built with TLS pays for it only when it serves HTTPS.
 *
 * tls_lib_load opens GNUTLS_SONAME (configure: the library -lgnutls links,
 * or --with-gnutls-soname) and resolves every function below; the table
 * stays for the life of the process (never closed: a worker forked from the
 * master inherits it, loaded).  The headers are GnuTLS's own, so the table's
 * types are the library's prototypes.
 */
#ifndef PERSONAD_TLS_LIB_H
#define PERSONAD_TLS_LIB_H

#include <stddef.h>

#ifdef ENABLE_TLS

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* Every GnuTLS function personad calls, without its gnutls_ prefix (the
 * table's member is gnutls_NAME; the loader adds the prefix to the name). */
#define TLS_LIB_FUNCTIONS(X)                                                                       \
    X(bye)                                                                                         \
    X(certificate_allocate_credentials)                                                            \
    X(certificate_free_credentials)                                                                \
    X(certificate_server_set_request)                                                              \
    X(certificate_set_retrieve_function2)                                                          \
    X(credentials_set)                                                                             \
    X(deinit)                                                                                      \
    X(handshake)                                                                                   \
    X(handshake_set_timeout)                                                                       \
    X(init)                                                                                        \
    X(memset)                                                                                      \
    X(pcert_deinit)                                                                                \
    X(pcert_export_x509)                                                                           \
    X(pcert_list_import_x509_raw)                                                                  \
    X(priority_deinit)                                                                             \
    X(priority_init)                                                                               \
    X(priority_set)                                                                                \
    X(privkey_deinit)                                                                              \
    X(privkey_import_x509_raw)                                                                     \
    X(privkey_init)                                                                                \
    X(pubkey_deinit)                                                                               \
    X(pubkey_get_key_id)                                                                           \
    X(pubkey_import_privkey)                                                                       \
    X(pubkey_init)                                                                                 \
    X(record_get_direction)                                                                        \
    X(record_recv)                                                                                 \
    X(record_send)                                                                                 \
    X(strerror)                                                                                    \
    X(transport_set_int2)                                                                          \
    X(x509_crt_deinit)                                                                             \
    X(x509_crt_get_dn3)                                                                            \
    X(x509_crt_get_serial)

struct tls_lib {
#define TLS_LIB_MEMBER(name) __typeof__(gnutls_##name) *gnutls_##name;
    TLS_LIB_FUNCTIONS(TLS_LIB_MEMBER)
#undef TLS_LIB_MEMBER
    /* gnutls_free is a variable (the function GnuTLS frees with), read at each call. */
    gnutls_free_function *free_fn;
};

/* tls_lib - the loaded table, or NULL before tls_lib_load succeeded. */
const struct tls_lib *tls_lib(void);

#endif /* ENABLE_TLS */

/* tls_lib_load - open soname (NULL: GNUTLS_SONAME) and resolve the table, once
 * per process (later calls return 0 at once).  0, or -1 with why in msg (the
 * loader's words: not found, a function missing); nothing stays loaded then. */
int tls_lib_load(const char *soname, char *msg, size_t msg_size);

#endif
