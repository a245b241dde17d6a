/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer entry for gw_sni_parse(): no crash, and results that agree
 * with each other under a smaller cap and on prefixes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_sni.h"
#include "name.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(const uint8_t *buf, size_t len, size_t max)
{
	struct gw_sni_hello	h, h2;
	enum gw_sni_result	r;
	char			norm[NAME_MAX_LEN + 1];
	size_t			i, l;

	r = gw_sni_parse(buf, len, max, &h);
	switch (r) {
	case GW_SNI_FOUND:
		break;
	case GW_SNI_NEED_MORE:
		/* More bytes can only help below the cap. */
		if (len >= max)
			abort();
		return;
	case GW_SNI_MALFORMED:
	case GW_SNI_TOO_BIG:
		return;
	default:
		abort();
	}

	if (h.consumed > len || h.consumed > max || h.consumed < 5 + 4 + 41)
		abort();
	if (h.has_name) {
		l = strnlen(h.name, sizeof(h.name));
		if (l == sizeof(h.name) ||
		    name_normalize(h.name, l, norm, 0) == -1 ||
		    strcmp(norm, h.name) != 0)
			abort();
	} else if (h.name[0] != '\0')
		abort();
	if (h.nalpn > GW_SNI_ALPN_MAX)
		abort();
	for (i = 0; i < h.nalpn; i++) {
		l = strnlen(h.alpn[i], sizeof(h.alpn[i]));
		if (l == 0 || l == sizeof(h.alpn[i]))
			abort();
	}

	/* Only the hello's records matter, and the cap may be just them. */
	if (gw_sni_parse(buf, h.consumed, h.consumed, &h2) != GW_SNI_FOUND ||
	    memcmp(&h, &h2, sizeof(h)) != 0)
		abort();
	/* Any shorter prefix is a plausible hello. */
	if (gw_sni_parse(buf, h.consumed - 1, max, &h2) != GW_SNI_NEED_MORE ||
	    gw_sni_parse(buf, h.consumed / 2, max, &h2) != GW_SNI_NEED_MORE ||
	    gw_sni_parse(buf, 0, max, &h2) != GW_SNI_NEED_MORE)
		abort();
	if (gw_sni_parse(buf, h.consumed, h.consumed - 1, &h2) !=
	    GW_SNI_TOO_BIG)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 16384);
	check(data, size, 512);
	return 0;
}
