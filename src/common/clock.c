/*
 * clock - see clock.h.
 */
#include "build_config.h"

#include <time.h>

#include "common/clock.h"
#include "common/log.h"

int64_t
clock_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        panic("clock_gettime(CLOCK_MONOTONIC) failed");
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
