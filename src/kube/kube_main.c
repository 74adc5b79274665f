/*
 * personad-kube-client - the Kubernetes API client as its own program, run by
 * the master's Kubernetes source (source_kube.h) in a child process, so that
 * libcurl and what it links are mapped by that child only, never by the
 * master or a worker.  Not for running by hand:
 *
 *   personad-kube-client API TOKEN_FILE CA_FILE MAX_OBJECT LOG_LEVEL LOG_TARGET
 *
 * (empty TOKEN_FILE, CA_FILE: none; LOG_LEVEL 0-3 as enum log_level;
 * LOG_TARGET stderr|syslog).  Frames go to descriptor 3 (kube_pipe.h).
 */
#include "build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kube/kube_client.h"
#include "kube/kube_target.h"

#define KUBE_MAIN_PIPE_FD 3

int
main(int argc, char **argv)
{
    static struct kube_target t;
    if (argc != 7 || strlen(argv[1]) >= sizeof(t.api) || strlen(argv[2]) >= sizeof(t.token_file) ||
        strlen(argv[3]) >= sizeof(t.ca_file)) {
        fprintf(stderr, "personad-kube-client: run by personad --source=kubernetes only\n");
        return 2;
    }
    memcpy(t.api, argv[1], strlen(argv[1]) + 1);
    memcpy(t.token_file, argv[2], strlen(argv[2]) + 1);
    memcpy(t.ca_file, argv[3], strlen(argv[3]) + 1);
    char *end;
    unsigned long max = strtoul(argv[4], &end, 10);
    long level = strtol(argv[5], NULL, 10);
    if (*end != '\0' || max < 1 || level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR) {
        fprintf(stderr, "personad-kube-client: bad arguments\n");
        return 2;
    }
    log_set_level((enum log_level)level);
    if (strcmp(argv[6], "syslog") == 0) {
        char msg[256];
        if (log_use_syslog(msg, sizeof(msg)) != 0)
            fprintf(stderr, "personad-kube-client: syslog: %s\n", msg);
    }
    kube_client_main(&t, (size_t)max, KUBE_MAIN_PIPE_FD);
}
