/*
 * tls - the certificate and key of --tls-cert/--tls-key for HTTPS and WSS.
 *
 * libmicrohttpd runs the TLS sessions (MHD_USE_TLS, doc/architecture.md "TLS");
 * this module loads the PEM files with GnuTLS and hands the current pair to
 * each new handshake through the certificate callback, the only way to change
 * the certificate of a running libmicrohttpd daemon.  A reload (SIGHUP) loads
 * the files again: a good pair serves the handshakes from then on, a bad one
 * is refused with the reason and the running pair stays.  Connections keep
 * the session they made.
 *
 * The master calls tls_check at start (a clear error, exit 1, before any
 * worker runs); each worker calls tls_serve_load after fork and at each
 * SIGHUP.  Built with --disable-tls, tls_built_in() is 0 and the rest refuse.
 */
#ifndef PERSONAD_TLS_H
#define PERSONAD_TLS_H

#include <stddef.h>

/* TLS 1.3 and 1.2 only (GnuTLS priority string, MHD_OPTION_HTTPS_PRIORITIES). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* tls_built_in - 1 when this build has TLS (configure --enable-tls). */
int tls_built_in(void);

/* tls_check - load cert_file and key_file as tls_serve_load would, and drop them:
 * 0, or -1 with why in msg (missing, unreadable, not PEM, key not the certificate's). */
int tls_check(const char *cert_file, const char *key_file, char *msg, size_t msg_size);

/* tls_serve_load - load the pair and make it the one new handshakes get (the
 * process's one serving pair: GnuTLS's certificate callback has no argument).
 * 0, or -1 with why in msg and the serving pair unchanged.  Subject and
 * serial of the new certificate go to msg on success too. */
int tls_serve_load(const char *cert_file, const char *key_file, char *msg, size_t msg_size);

#ifdef ENABLE_TLS
#include <gnutls/abstract.h>
/* tls_cert_callback - the function for MHD_OPTION_HTTPS_CERT_CALLBACK: every
 * handshake gets the serving pair. */
gnutls_certificate_retrieve_function2 *tls_cert_callback(void);
#endif

/* tls_serve_free - free the serving pair and the retired ones (at exit). */
void tls_serve_free(void);

#endif
