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

/* Every GnuTLS function personad calls. */
#define TLS_LIB_FUNCTIONS(X)                                                                       \
    X(gnutls_bye)                                                                                  \
    X(gnutls_certificate_allocate_credentials)                                                     \
    X(gnutls_certificate_free_credentials)                                                         \
    X(gnutls_certificate_server_set_request)                                                       \
    X(gnutls_certificate_set_retrieve_function2)                                                   \
    X(gnutls_credentials_set)                                                                      \
    X(gnutls_deinit)                                                                               \
    X(gnutls_handshake)                                                                            \
    X(gnutls_handshake_set_timeout)                                                                \
    X(gnutls_init)                                                                                 \
    X(gnutls_memset)                                                                               \
    X(gnutls_pcert_deinit)                                                                         \
    X(gnutls_pcert_export_x509)                                                                    \
    X(gnutls_pcert_list_import_x509_raw)                                                           \
    X(gnutls_priority_deinit)                                                                      \
    X(gnutls_priority_init)                                                                        \
    X(gnutls_priority_set)                                                                         \
    X(gnutls_privkey_deinit)                                                                       \
    X(gnutls_privkey_import_x509_raw)                                                              \
    X(gnutls_privkey_init)                                                                         \
    X(gnutls_pubkey_deinit)                                                                        \
    X(gnutls_pubkey_get_key_id)                                                                    \
    X(gnutls_pubkey_import_privkey)                                                                \
    X(gnutls_pubkey_init)                                                                          \
    X(gnutls_record_get_direction)                                                                 \
    X(gnutls_record_recv)                                                                          \
    X(gnutls_record_send)                                                                          \
    X(gnutls_strerror)                                                                             \
    X(gnutls_transport_set_int2)                                                                   \
    X(gnutls_x509_crt_deinit)                                                                      \
    X(gnutls_x509_crt_get_dn3)                                                                     \
    X(gnutls_x509_crt_get_serial)

struct tls_lib {
#define TLS_LIB_MEMBER(name) __typeof__(name) *name;
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
