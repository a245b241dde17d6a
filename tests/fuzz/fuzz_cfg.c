/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer entry for the config loader: the same bytes go to both
 * schemas, whose results (or errors) are then thrown away.  Anything the
 * loader does with untrusted YAML, from the tree builder to the typed
 * getters, is reached from here.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cfg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cfg_gateway	*gw;
	struct cfg_agent	*a;
	char			 err[512];

	gw = cfg_gateway_parse("fuzz.yaml", (const char *)data, len, err,
	    sizeof(err));
	/* Every failure must leave a NUL-terminated message. */
	if (gw == NULL && memchr(err, '\0', sizeof(err)) == NULL)
		__builtin_trap();
	cfg_gateway_free(gw);
	a = cfg_agent_parse("fuzz.yaml", (const char *)data, len, err,
	    sizeof(err));
	if (a == NULL && memchr(err, '\0', sizeof(err)) == NULL)
		__builtin_trap();
	cfg_agent_free(a);
	return 0;
}
