/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer entry for gw_http_parse(): no crash, and results that agree
 * with each other under a smaller cap and on prefixes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_http.h"
#include "name.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(const uint8_t *buf, size_t len, size_t max)
{
	struct gw_http_head	h, h2;
	enum gw_http_result	r;
	char			norm[NAME_MAX_LEN + 1];
	size_t			l, lead;

	r = gw_http_parse(buf, len, max, &h);
	switch (r) {
	case GW_HTTP_FOUND:
		break;
	case GW_HTTP_NEED_MORE:
		if (len >= max)
			abort();
		return;
	case GW_HTTP_MALFORMED:
	case GW_HTTP_TOO_BIG:
		return;
	default:
		abort();
	}

	if (h.head_len > len || h.head_len > max || h.head_len < 2 ||
	    buf[h.head_len - 1] != '\n')
		abort();
	l = strnlen(h.host, sizeof(h.host));
	if (l == 0 || l == sizeof(h.host) ||
	    name_normalize(h.host, l, norm, 0) == -1 ||
	    strcmp(norm, h.host) != 0)
		abort();
	/* The request line starts the head, or follows one empty line. */
	lead = buf[0] == '\n' ? 1 : buf[0] == '\r' && buf[1] == '\n' ? 2 : 0;
	l = strnlen(h.method, sizeof(h.method));
	if (l == 0 || l == sizeof(h.method) || lead + l >= h.head_len ||
	    memcmp(h.method, buf + lead, l) != 0 || buf[lead + l] != ' ')
		abort();
	l = strnlen(h.path, sizeof(h.path));
	if (l == 0 || l == sizeof(h.path))
		abort();

	/* The head alone is enough, and the cap may be just the head. */
	if (gw_http_parse(buf, h.head_len, h.head_len, &h2) != GW_HTTP_FOUND ||
	    memcmp(&h, &h2, sizeof(h)) != 0)
		abort();
	if (gw_http_parse(buf, h.head_len, h.head_len - 1, &h2) !=
	    GW_HTTP_TOO_BIG)
		abort();
	/* Any shorter prefix is a plausible head. */
	if (gw_http_parse(buf, h.head_len - 1, max, &h2) != GW_HTTP_NEED_MORE ||
	    gw_http_parse(buf, h.head_len / 2, max, &h2) != GW_HTTP_NEED_MORE ||
	    gw_http_parse(buf, 0, max, &h2) != GW_HTTP_NEED_MORE)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 16384);
	check(data, size, 512);
	return 0;
}
