/* gw_sni.h: read server_name and ALPN from a TLS ClientHello. */
#ifndef PORCH_GW_SNI_H
#define PORCH_GW_SNI_H

#include <stddef.h>
#include <stdint.h>

#include "name.h"

enum gw_sni_result {
	GW_SNI_FOUND = 0,	/* complete hello parsed; see fields */
	GW_SNI_NEED_MORE,	/* a prefix of a plausible hello: read more */
	GW_SNI_MALFORMED,	/* not TLS, or a broken hello: alert, close */
	GW_SNI_TOO_BIG,		/* hello longer than the cap */
};

#define GW_SNI_ALPN_MAX	8

struct gw_sni_hello {
	int	has_name;		/* server_name extension with host_name */
	int	ip_literal;		/* host_name was an IP address: has_name
					 * is 0, name empty (RFC 6066 3) */
	char	name[NAME_MAX_LEN + 1];	/* normalized (lower-case, no dot) */
	size_t	nalpn;			/* protocols kept (first GW_SNI_ALPN_MAX) */
	char	alpn[GW_SNI_ALPN_MAX][256];
	size_t	consumed;		/* bytes of records holding the hello */
};

/*
 * Parse the TLS records at buf[0..len) as a ClientHello that may span
 * several handshake records.  Pure: no I/O, no allocation, no logging.
 * Records past the one that completes the hello are left alone.  A
 * server_name that is present but not a valid hostname is MALFORMED,
 * unless it is an IP address: then FOUND with has_name = 0 and
 * ip_literal = 1.  A hello without server_name is FOUND with has_name =
 * 0.  Record versions 3.0 to 3.3 are accepted.  max caps the
 * total bytes of records the caller will buffer.
 */
enum gw_sni_result gw_sni_parse(const uint8_t *buf, size_t len, size_t max,
		    struct gw_sni_hello *out);

const char	*gw_sni_result_name(enum gw_sni_result);

#endif
