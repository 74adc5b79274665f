/*
 * tls - the certificate and key of --tls-cert/--tls-key for HTTPS and WSS.
 *
 * The worker's TLS fronts run the sessions (worker/tls_front.h,
 * doc/architecture.md "TLS"); this module loads the PEM files with GnuTLS and
 * hands the current pair to each new handshake through GnuTLS's certificate
 * callback.  A reload (SIGHUP) loads the files again: a good pair serves the
 * handshakes from then on, a bad one is refused with the reason and the
 * running pair stays.  Connections keep the session they made.
 *
 * The first pair loaded loads GnuTLS itself (common/tls_lib.h: a process
 * without --tls-cert never maps it).  The master loads the pair at start (a
 * clear error, exit 1, before any worker runs; a worker forked from it
 * inherits both); each worker loads it again at each SIGHUP.  Built with
 * --disable-tls, tls_serve_load refuses.
 */
#ifndef PERSONAD_TLS_H
#define PERSONAD_TLS_H

#include <stddef.h>

/* TLS 1.3 and 1.2 only (a GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* tls_serve_load - load the pair and make it the one new handshakes get (the
 * process's one serving pair: GnuTLS's certificate callback has no argument).
 * 0, or -1 with why in msg (GnuTLS cannot be loaded; a file missing,
 * unreadable, not PEM; the key not the certificate's) and the serving pair
 * unchanged.  Subject and serial of the new certificate go to msg on success
 * too. */
int tls_serve_load(const char *cert_file, const char *key_file, char *msg, size_t msg_size);

#ifdef ENABLE_TLS
#include <gnutls/abstract.h>
/* tls_cert_callback - the function for gnutls_certificate_set_retrieve_function2:
 * every handshake gets the serving pair. */
gnutls_certificate_retrieve_function2 *tls_cert_callback(void);
#endif

/* tls_serve_free - free the serving pair and the retired ones (at exit). */
void tls_serve_free(void);

#endif
