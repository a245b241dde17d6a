/* gw_http.h: read the Host of an HTTP/1.x request head. */
#ifndef PORCH_GW_HTTP_H
#define PORCH_GW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "name.h"

enum gw_http_result {
	GW_HTTP_FOUND = 0,	/* complete head, host valid */
	GW_HTTP_NEED_MORE,	/* no blank line yet */
	GW_HTTP_MALFORMED,	/* not HTTP/1.x, bad or missing/duplicate Host */
	GW_HTTP_TOO_BIG,	/* head longer than the cap */
};

struct gw_http_head {
	char	host[NAME_MAX_LEN + 1];	/* normalized, port removed */
	char	method[16];
	char	path[256];		/* request target, truncated */
	size_t	head_len;		/* bytes up to and including CRLFCRLF,
					 * a leading empty line included */
};

/*
 * Parse buf[0..len) as the start of an HTTP/1.0 or 1.1 request.  Pure.
 * The Host header (or an absolute-form target) names the route; a
 * literal IP address in Host is MALFORMED for routing purposes.  Lines
 * may end in CRLF or bare LF.  One empty line before the request line is
 * ignored (RFC 9112 2.2); a second one is MALFORMED.
 */
enum gw_http_result gw_http_parse(const uint8_t *buf, size_t len, size_t max,
		    struct gw_http_head *out);

const char	*gw_http_result_name(enum gw_http_result);

#endif
