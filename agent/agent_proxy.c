/* SPDX-License-Identifier: ISC */
/*
 * PROXY protocol headers (HAProxy's v1 text and v2 binary forms), so a
 * home backend sees the visitor's address instead of the agent's.  The
 * addresses come from the gateway's OPEN frame.
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

static const uint8_t agent_proxy_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static void	agent_proxy_v6(const struct tun_addr *, uint8_t *);

size_t
agent_proxy_header(enum cfg_proxy_proto proto, const struct tun_addr *src,
    const struct tun_addr *dst, uint8_t *out)
{
	char		 s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	uint8_t		 s6[16], d6[16];
	size_t		 n = 0;
	int		 v4, known;

	known = src->family != 0 && dst->family != 0;
	v4 = src->family == 4 && dst->family == 4;
	if (proto == CFG_PROXY_V1) {
		if (!known)
			return (size_t)snprintf((char *)out, AGENT_PROXY_MAX,
			    "PROXY UNKNOWN\r\n");
		if (v4) {
			inet_ntop(AF_INET, src->addr, s, sizeof(s));
			inet_ntop(AF_INET, dst->addr, d, sizeof(d));
		} else {
			agent_proxy_v6(src, s6);
			agent_proxy_v6(dst, d6);
			inet_ntop(AF_INET6, s6, s, sizeof(s));
			inet_ntop(AF_INET6, d6, d, sizeof(d));
		}
		return (size_t)snprintf((char *)out, AGENT_PROXY_MAX,
		    "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", s, d,
		    src->port, dst->port);
	}
	if (proto != CFG_PROXY_V2)
		return 0;
	memcpy(out, agent_proxy_sig, sizeof(agent_proxy_sig));
	n = sizeof(agent_proxy_sig);
	if (!known) {
		out[n++] = 0x20;	/* v2, LOCAL */
		out[n++] = 0x00;
		out[n++] = 0;
		out[n++] = 0;
		return n;
	}
	out[n++] = 0x21;		/* v2, PROXY */
	if (v4) {
		out[n++] = 0x11;	/* TCP over IPv4 */
		out[n++] = 0;
		out[n++] = 12;
		memcpy(out + n, src->addr, 4);
		memcpy(out + n + 4, dst->addr, 4);
		n += 8;
	} else {
		out[n++] = 0x21;	/* TCP over IPv6 */
		out[n++] = 0;
		out[n++] = 36;
		agent_proxy_v6(src, out + n);
		agent_proxy_v6(dst, out + n + 16);
		n += 32;
	}
	out[n++] = src->port >> 8;
	out[n++] = src->port & 0xff;
	out[n++] = dst->port >> 8;
	out[n++] = dst->port & 0xff;
	return n;
}

/* IPv4 as a v4-mapped IPv6 address when the two families differ. */
static void
agent_proxy_v6(const struct tun_addr *a, uint8_t *out)
{
	if (a->family == 6) {
		memcpy(out, a->addr, 16);
		return;
	}
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, a->addr, 4);
}
