/*
 * personad - entry point: parse the configuration, stay in the foreground, and
 * run the master (which forks the workers).
 */
#include "build_config.h"

#include <stdio.h>

#include "common/config.h"
#include "common/log.h"
#include "master/master.h"

int
main(int argc, char **argv)
{
    static struct config cfg; /* the master keeps its own copy (a reload changes it) */
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    log_set_level((enum log_level)config_log_level(&cfg));
    if (cfg.log_target == CONFIG_LOG_SYSLOG) {
        char msg[256];
        if (log_use_syslog(msg, sizeof(msg)) != 0) {
            fprintf(stderr, "personad: --log=syslog: %s\n", msg);
            return 1;
        }
    }
    return master_run(&cfg);
}
