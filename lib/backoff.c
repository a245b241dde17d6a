/* SPDX-License-Identifier: ISC */
/*
 * Jittered exponential backoff, shared by every dial (dial.c: the
 * agent's gateways, the gateway's peers) and the agent's certificate
 * orders, so all back off the same way with one random source.
 */

#include <stdint.h>

#include <sodium.h>

#include "backoff.h"

/* Doublings beyond this cannot matter: 2^32 times 1 ms passes any cap. */
#define BACKOFF_SHIFT_MAX	32

uint64_t
backoff_delay(unsigned failures, unsigned min_ms, unsigned max_ms)
{
	uint64_t	ms = min_ms;
	unsigned	i;

	for (i = 1; i < failures && i <= BACKOFF_SHIFT_MAX && ms < max_ms;
	    i++)
		ms *= 2;
	if (ms > max_ms)
		ms = max_ms;
	return ms / 2 + randombytes_uniform((uint32_t)(ms / 2 + 1));
}
