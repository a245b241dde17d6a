/* mono.h: monotonic milliseconds, for deadlines and durations. */
#ifndef PORCH_MONO_H
#define PORCH_MONO_H

#include <stdint.h>

uint64_t	mono_ms(void);
uint64_t	mono_us(void);

#endif
