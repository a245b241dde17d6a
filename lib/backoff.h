/* backoff.h: the one jittered exponential backoff of both daemons. */
#ifndef PORCH_BACKOFF_H
#define PORCH_BACKOFF_H

#include <stdint.h>

/*
 * The delay before the next attempt after `failures' failures in a row
 * (0 counts as 1): min_ms doubled per failure after the first, capped at
 * max_ms, then drawn uniformly from half of that to all of it, so peers
 * that failed together do not come back together.  Random bytes come
 * from libsodium.
 */
uint64_t	backoff_delay(unsigned failures, unsigned min_ms,
		    unsigned max_ms);

#endif
