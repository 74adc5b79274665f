/*
 * kube_target - see kube_target.h.
 */
#include "build_config.h"

#include <stdio.h>
#include <string.h>

#include "kube/kube_target.h"

static int
copy(char *dst, size_t size, const char *src)
{
    int n = snprintf(dst, size, "%s", src);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
kube_target_resolve(const struct config *cfg, char *(*getenv_fn)(const char *),
                    struct kube_target *t, char *msg, size_t msg_size)
{
    memset(t, 0, sizeof(*t));
    if (cfg->kube_api[0] != '\0') {
        if (strncmp(cfg->kube_api, "http://", 7) != 0 &&
            strncmp(cfg->kube_api, "https://", 8) != 0) {
            snprintf(msg, msg_size, "--kube-api=%s: not an http:// or https:// URL", cfg->kube_api);
            return -1;
        }
        (void)copy(t->api, sizeof(t->api), cfg->kube_api);
        (void)copy(t->token_file, sizeof(t->token_file), cfg->kube_token_file);
        (void)copy(t->ca_file, sizeof(t->ca_file), cfg->kube_ca_file);
    } else {
        const char *host = getenv_fn("KUBERNETES_SERVICE_HOST");
        const char *port = getenv_fn("KUBERNETES_SERVICE_PORT");
        if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
            snprintf(msg, msg_size,
                     "--source=kubernetes: no --kube-api, and not in a pod "
                     "(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset)");
            return -1;
        }
        if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
            strpbrk(host, "/[]@?# ") != NULL) {
            snprintf(msg, msg_size,
                     "--source=kubernetes: KUBERNETES_SERVICE_HOST/_PORT (%.200s, %.20s) "
                     "do not make a URL",
                     host, port);
            return -1;
        }
        int v6 = strchr(host, ':') != NULL; /* an IPv6 address goes in brackets */
        int n = snprintf(t->api, sizeof(t->api), "https://%s%s%s:%s", v6 ? "[" : "", host,
                         v6 ? "]" : "", port);
        if (n < 0 || (size_t)n >= sizeof(t->api)) {
            snprintf(msg, msg_size, "--source=kubernetes: KUBERNETES_SERVICE_HOST too long");
            return -1;
        }
        const char *sa = getenv_fn("PERSONAD_KUBE_SA_DIR");
        if (sa == NULL || sa[0] == '\0')
            sa = KUBE_SA_DIR;
        if (cfg->kube_token_file[0] != '\0')
            (void)copy(t->token_file, sizeof(t->token_file), cfg->kube_token_file);
        else if (snprintf(t->token_file, sizeof(t->token_file), "%s/token", sa) >=
                 (int)sizeof(t->token_file))
            t->token_file[0] = '\0';
        if (cfg->kube_ca_file[0] != '\0')
            (void)copy(t->ca_file, sizeof(t->ca_file), cfg->kube_ca_file);
        else if (snprintf(t->ca_file, sizeof(t->ca_file), "%s/ca.crt", sa) >=
                 (int)sizeof(t->ca_file))
            t->ca_file[0] = '\0';
    }
    size_t n = strlen(t->api);
    while (n > 0 && t->api[n - 1] == '/')
        t->api[--n] = '\0';
    return 0;
}
