/*
 * clock - monotonic milliseconds for deadlines and back-off.
 */
#ifndef PERSONAD_CLOCK_H
#define PERSONAD_CLOCK_H

#include <stdint.h>

int64_t clock_now_ms(void);

#endif
