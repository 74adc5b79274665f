/*
 * kube_target - which Kubernetes API to talk to and with what credentials:
 * --kube-api, --kube-token-file, --kube-ca-file, or the in-cluster defaults.
 * Pure but for getenv (the caller passes it).
 *
 * In a pod (no --kube-api): https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (an IPv6 address in brackets), the token and CA of the service account in
 * /var/run/secrets/kubernetes.io/serviceaccount/ (token, ca.crt), unless
 * --kube-token-file or --kube-ca-file say otherwise.  The environment
 * variable PERSONAD_KUBE_SA_DIR replaces that directory: for tests only.
 * With --kube-api, only the files given are used (kubectl proxy: none).
 */
#ifndef PERSONAD_KUBE_TARGET_H
#define PERSONAD_KUBE_TARGET_H

#include <stddef.h>

#include "common/config.h"

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_target {
    char api[CONFIG_PATH_MAX];        /* base URL, no trailing '/' */
    char token_file[CONFIG_PATH_MAX]; /* "" = no token */
    char ca_file[CONFIG_PATH_MAX];    /* "" = the TLS library's default CAs */
};

/* kube_target_resolve - fill t from cfg and the environment (getenv_fn, e.g.
 * getenv).  Returns 0, or -1 with a message in msg (no --kube-api and not in
 * a pod, a URL that is not http:// or https://, too long). */
int kube_target_resolve(const struct config *cfg, char *(*getenv_fn)(const char *),
                        struct kube_target *t, char *msg, size_t msg_size);

#endif
