/*
 * personad - entry point: parse the configuration, stay in the foreground, and
 * run the master (which forks the workers).
 */
#include "build_config.h"

#include "common/config.h"
#include "common/log.h"
#include "master/master.h"

int
main(int argc, char **argv)
{
    static struct config cfg; /* read-only after parsing; workers inherit it */
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    log_set_level(cfg.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
    return master_run(&cfg);
}
