/* SPDX-License-Identifier: ISC */
/*
 * agent_proxy_header() against headers written out by hand from
 * HAProxy's PROXY protocol specification (proxy-protocol.txt): the v1
 * text line and the v2 binary block, for IPv4, IPv6, mixed families
 * (v4-mapped) and an unknown address.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

#define FILL	0xa5	/* what the writer must leave past its header */

/* 192.0.2.10:51234 -> 198.51.100.7:443 */
static const struct tun_addr v4_src = {
	4, { 192, 0, 2, 10 }, 51234
};
static const struct tun_addr v4_dst = {
	4, { 198, 51, 100, 7 }, 443
};
/* [2001:db8::1]:40000 -> [2001:db8:0:1::2a]:8443 */
static const struct tun_addr v6_src = {
	6, { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
	40000
};
static const struct tun_addr v6_dst = {
	6, { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x2a },
	8443
};
static const struct tun_addr unknown = { 0, { 0 }, 0 };

static void
check(enum cfg_proxy_proto proto, const struct tun_addr *src,
    const struct tun_addr *dst, const uint8_t *want, size_t wantlen)
{
	uint8_t	out[AGENT_PROXY_MAX + 16];
	size_t	n, i;

	memset(out, FILL, sizeof(out));
	n = agent_proxy_header(proto, src, dst, out);
	assert_int_equal(n, wantlen);
	assert_memory_equal(out, want, wantlen);
	/* v1 ends in snprintf's NUL, which is not sent; nothing further. */
	i = wantlen;
	if (proto == CFG_PROXY_V1)
		assert_int_equal(out[i++], '\0');
	for (; i < sizeof(out); i++)
		assert_int_equal(out[i], FILL);
}

static void
check_v1(const struct tun_addr *src, const struct tun_addr *dst,
    const char *want)
{
	check(CFG_PROXY_V1, src, dst, (const uint8_t *)want, strlen(want));
}

static void
test_v1_ipv4(void **state)
{
	(void)state;
	check_v1(&v4_src, &v4_dst,
	    "PROXY TCP4 192.0.2.10 198.51.100.7 51234 443\r\n");
}

static void
test_v1_ipv6(void **state)
{
	(void)state;
	check_v1(&v6_src, &v6_dst,
	    "PROXY TCP6 2001:db8::1 2001:db8:0:1::2a 40000 8443\r\n");
}

static void
test_v1_mixed(void **state)
{
	(void)state;
	/* One side IPv4: both given as IPv6, the IPv4 one v4-mapped. */
	check_v1(&v4_src, &v6_dst,
	    "PROXY TCP6 ::ffff:192.0.2.10 2001:db8:0:1::2a 51234 8443\r\n");
	check_v1(&v6_src, &v4_dst,
	    "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 40000 443\r\n");
}

static void
test_v1_unknown(void **state)
{
	(void)state;
	check_v1(&unknown, &unknown, "PROXY UNKNOWN\r\n");
	check_v1(&unknown, &v4_dst, "PROXY UNKNOWN\r\n");
	check_v1(&v6_src, &unknown, "PROXY UNKNOWN\r\n");
}

/* The spec's longest v1 line is 107 bytes with its CRLF; ours fits. */
static void
test_v1_longest(void **state)
{
	struct tun_addr	a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.family = 6;
	memset(a.addr, 0xff, 16);
	a.port = 65535;
	check_v1(&a, &a, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
}

static void
test_v2_ipv4(void **state)
{
	static const uint8_t want[] = {
		/* signature */
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a,
		0x21,			/* version 2, command PROXY */
		0x11,			/* AF_INET, STREAM */
		0x00, 0x0c,		/* 12 address bytes follow */
		192, 0, 2, 10,		/* src_addr */
		198, 51, 100, 7,	/* dst_addr */
		0xc8, 0x22,		/* src_port 51234 */
		0x01, 0xbb,		/* dst_port 443 */
	};

	(void)state;
	check(CFG_PROXY_V2, &v4_src, &v4_dst, want, sizeof(want));
}

static void
test_v2_ipv6(void **state)
{
	static const uint8_t want[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a,
		0x21,			/* version 2, command PROXY */
		0x21,			/* AF_INET6, STREAM */
		0x00, 0x24,		/* 36 address bytes follow */
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
		0x9c, 0x40,		/* src_port 40000 */
		0x20, 0xfb,		/* dst_port 8443 */
	};

	(void)state;
	check(CFG_PROXY_V2, &v6_src, &v6_dst, want, sizeof(want));
}

static void
test_v2_mixed(void **state)
{
	static const uint8_t want[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a,
		0x21,
		0x21,			/* AF_INET6: one side is IPv6 */
		0x00, 0x24,
		/* ::ffff:192.0.2.10 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 192, 0, 2, 10,
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
		0xc8, 0x22,
		0x20, 0xfb,
	};

	(void)state;
	check(CFG_PROXY_V2, &v4_src, &v6_dst, want, sizeof(want));
}

static void
test_v2_unknown(void **state)
{
	static const uint8_t want[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a,
		0x20,			/* version 2, command LOCAL */
		0x00,			/* AF_UNSPEC, UNSPEC */
		0x00, 0x00,		/* no address block */
	};

	(void)state;
	check(CFG_PROXY_V2, &unknown, &unknown, want, sizeof(want));
	check(CFG_PROXY_V2, &v4_src, &unknown, want, sizeof(want));
}

static void
test_off(void **state)
{
	uint8_t	out[AGENT_PROXY_MAX];

	(void)state;
	memset(out, FILL, sizeof(out));
	assert_int_equal(agent_proxy_header(CFG_PROXY_OFF, &v4_src, &v4_dst,
	    out), 0);
	assert_int_equal(out[0], FILL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_ipv4),
		cmocka_unit_test(test_v1_ipv6),
		cmocka_unit_test(test_v1_mixed),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_longest),
		cmocka_unit_test(test_v2_ipv4),
		cmocka_unit_test(test_v2_ipv6),
		cmocka_unit_test(test_v2_mixed),
		cmocka_unit_test(test_v2_unknown),
		cmocka_unit_test(test_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
