/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for the tunnel frame codec (tunnel/tun_frame.c): every
 * payload codec round-trips, the header decoder copes with every
 * truncation, and each parser refuses a table of malformed payloads.
 */

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tun_frame.h"

#define HELLO_FIXED	(2 + 4 + KEY_PUB_LEN + KEY_SIG_LEN)
#define ADDR_LEN	19
#define OPEN_FIXED	(1 + 2 * ADDR_LEN)

/* A change applied to a valid payload to make it malformed. */
struct mutation {
	const char	*what;
	int		 type;		/* -1: keep */
	int64_t		 stream;	/* -1: keep */
	int		 len;		/* -1: keep, else truncate/extend */
	int		 off;		/* -1: no byte change */
	uint8_t		 val;
};

static void	frame_init(struct tun_frame *, uint8_t, uint32_t,
		    const uint8_t *, size_t);
static void	apply(const struct mutation *, uint8_t *, size_t,
		    struct tun_frame *, uint8_t, uint32_t);
static size_t	put_name(uint8_t *, const char *);
static void	fill_hello(struct tun_hello *, const char *);
static void	fill_addr(struct tun_addr *, uint8_t, const char *, uint16_t);

static void	test_header_layout(void **);
static void	test_header_roundtrip(void **);
static void	test_decode_truncated(void **);
static void	test_decode_oversized(void **);
static void	test_decode_sequence(void **);
static void	test_hello_roundtrip(void **);
static void	test_hello_malformed(void **);
static void	test_open_roundtrip(void **);
static void	test_open_malformed(void **);
static void	test_open_bad_names(void **);
static void	test_claim_roundtrip(void **);
static void	test_claim_result_roundtrip(void **);
static void	test_claim_malformed(void **);
static void	test_claim_bad_names(void **);
static void	test_claim_result_bad_names(void **);
static void	test_reason_roundtrip(void **);
static void	test_reason_msg(void **);
static void	test_reason_malformed(void **);
static void	test_window(void **);
static void	test_window_malformed(void **);
static void	test_addr_sockaddr(void **);
static void	test_names(void **);
static void	test_announce_roundtrip(void **);
static void	test_announce_malformed(void **);
static void	test_cluster_roundtrip(void **);
static void	test_cluster_malformed(void **);

static void
test_header_layout(void **state)
{
	uint8_t			 hdr[TUN_HDR_LEN];
	const uint8_t		 want[TUN_HDR_LEN] = {
	    0x00, 0x12, 0x34, TUN_DATA, TUN_F_FIN, 0x7a, 0xbc, 0xde, 0xf0 };
	struct tun_frame	 f;

	(void)state;
	/* The reserved top bit of the stream id is never sent. */
	tun_frame_header(hdr, TUN_DATA, TUN_F_FIN, 0xfabcdef0, 0x1234);
	assert_memory_equal(hdr, want, sizeof(want));
	/* ... and ignored on receipt; length 0x1234 exceeds what we have. */
	assert_int_equal(tun_frame_decode(hdr, sizeof(hdr), &f), 0);

	tun_frame_header(hdr, TUN_PING, TUN_F_ACK, 0, 0);
	hdr[5] |= 0x80;
	assert_int_equal(tun_frame_decode(hdr, sizeof(hdr), &f), TUN_HDR_LEN);
	assert_int_equal(f.type, TUN_PING);
	assert_int_equal(f.flags, TUN_F_ACK);
	assert_int_equal(f.stream, 0);
	assert_int_equal(f.len, 0);
	assert_ptr_equal(f.payload, hdr + TUN_HDR_LEN);
}

static void
test_header_roundtrip(void **state)
{
	static const struct {
		uint8_t		type, flags;
		uint32_t	stream, len;
	} tab[] = {
		{ TUN_HELLO, 0, 0, 0 },
		{ TUN_DATA, TUN_F_FIN, 1, 1 },
		{ TUN_DATA, 0, 0x7fffffff, TUN_MAX_PAYLOAD },
		{ TUN_WINDOW, 0xff, 0x00010203, 4 },
		{ 0, 0, 42, 255 },
		{ 0xff, 0x80, 0x12345678, 256 },
	};
	static uint8_t		 buf[TUN_FRAME_MAX + 16];
	struct tun_frame	 f;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(buf, 0xa5, sizeof(buf));
		tun_frame_header(buf, tab[i].type, tab[i].flags,
		    tab[i].stream, tab[i].len);
		/* Trailing bytes of a following frame do not matter. */
		assert_int_equal(tun_frame_decode(buf, sizeof(buf), &f),
		    (int)(TUN_HDR_LEN + tab[i].len));
		assert_int_equal(f.type, tab[i].type);
		assert_int_equal(f.flags, tab[i].flags);
		assert_int_equal(f.stream, tab[i].stream);
		assert_int_equal(f.len, tab[i].len);
		assert_ptr_equal(f.payload, buf + TUN_HDR_LEN);
	}
}

static void
test_decode_truncated(void **state)
{
	static const uint32_t	 lens[] = { 0, 1, 4, 103, TUN_MAX_PAYLOAD };
	static uint8_t		 buf[TUN_FRAME_MAX];
	struct tun_frame	 f;
	size_t			 i, cut, total;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(buf, 0x5a, sizeof(buf));
		tun_frame_header(buf, TUN_DATA, 0, 7, lens[i]);
		total = TUN_HDR_LEN + lens[i];
		for (cut = 0; cut < total; cut++)
			assert_int_equal(tun_frame_decode(buf, cut, &f), 0);
		assert_int_equal(tun_frame_decode(buf, total, &f), (int)total);
		assert_int_equal(f.len, lens[i]);
	}
}

static void
test_decode_oversized(void **state)
{
	static const uint32_t	 lens[] = { TUN_MAX_PAYLOAD + 1, 0x8000,
	    0xffffff };
	uint8_t			 buf[TUN_HDR_LEN];
	struct tun_frame	 f;
	size_t			 i, cut;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		tun_frame_header(buf, TUN_DATA, 0, 1, lens[i]);
		/* Refused as soon as the header is complete, not before. */
		for (cut = 0; cut < TUN_HDR_LEN; cut++)
			assert_int_equal(tun_frame_decode(buf, cut, &f), 0);
		assert_int_equal(tun_frame_decode(buf, sizeof(buf), &f), -1);
	}
}

static void
test_decode_sequence(void **state)
{
	uint8_t			 buf[64];
	struct tun_frame	 f;
	size_t			 off = 0;
	int			 n, count = 0;

	(void)state;
	memset(buf, 0, sizeof(buf));
	tun_frame_header(buf, TUN_PING, 0, 0, 8);
	tun_frame_header(buf + 17, 200, 0, 3, 2);	/* unknown type */
	tun_frame_header(buf + 28, TUN_DATA, TUN_F_FIN, 3, 0);
	while ((n = tun_frame_decode(buf + off, 37 - off, &f)) > 0) {
		off += (size_t)n;
		count++;
	}
	assert_int_equal(n, 0);
	assert_int_equal(count, 3);
	assert_int_equal(off, 37);
	assert_int_equal(f.type, TUN_DATA);
	assert_int_equal(f.stream, 3);
}

static void
test_hello_roundtrip(void **state)
{
	static const char	*names[] = { "", "gw1", "home agent #2 (Alice)",
	    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ!" };
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_hello	 h, g;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	assert_int_equal(strlen(names[3]), 63);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fill_hello(&h, names[i]);
		h.instance = 0x0102030405060708ULL * (i + 1);
		n = tun_hello_encode(&h, buf);
		assert_int_equal(n, HELLO_FIXED + 1 + strlen(names[i]) + 8);
		assert_int_equal(buf[0], TUN_VERSION);
		assert_int_equal(buf[1], TUN_ROLE_GATEWAY);
		assert_int_equal(buf[2], 0x00);
		assert_int_equal(buf[3], 0x01);
		assert_int_equal(buf[4], 0x00);
		assert_int_equal(buf[5], 0x00);
		assert_int_equal(buf[HELLO_FIXED], strlen(names[i]));
		frame_init(&f, TUN_HELLO, 0, buf, n);
		memset(&g, 0xee, sizeof(g));
		assert_int_equal(tun_hello_parse(&f, &g), 0);
		assert_int_equal(g.version, h.version);
		assert_int_equal(g.role, h.role);
		assert_int_equal(g.window, h.window);
		assert_memory_equal(g.pub, h.pub, KEY_PUB_LEN);
		assert_memory_equal(g.sig, h.sig, KEY_SIG_LEN);
		assert_string_equal(g.name, names[i]);
		assert_true(g.instance == h.instance);
		/* Big-endian, right after the name. */
		assert_int_equal(buf[HELLO_FIXED + 1 + strlen(names[i])],
		    (uint8_t)(h.instance >> 56));

		/* Later versions may append fields. */
		memset(buf + n, 0xff, 10);
		frame_init(&f, TUN_HELLO, 0, buf, n + 10);
		assert_int_equal(tun_hello_parse(&f, &g), 0);
		assert_string_equal(g.name, names[i]);
		assert_true(g.instance == h.instance);

		/* A sender that predates the instance field: 0. */
		frame_init(&f, TUN_HELLO, 0, buf, n - 8);
		memset(&g, 0xee, sizeof(g));
		assert_int_equal(tun_hello_parse(&f, &g), 0);
		assert_string_equal(g.name, names[i]);
		assert_true(g.instance == 0);
		/* A cut instance is not one. */
		frame_init(&f, TUN_HELLO, 0, buf, n - 3);
		assert_int_equal(tun_hello_parse(&f, &g), 0);
		assert_true(g.instance == 0);
	}

	/* The parser leaves version, role and window to the caller. */
	fill_hello(&h, "x");
	h.version = 77;
	h.role = 9;
	h.window = 0xffffffff;
	n = tun_hello_encode(&h, buf);
	frame_init(&f, TUN_HELLO, 0, buf, n);
	assert_int_equal(tun_hello_parse(&f, &g), 0);
	assert_int_equal(g.version, 77);
	assert_int_equal(g.role, 9);
	assert_int_equal(g.window, 0xffffffff);
}

static void
test_hello_malformed(void **state)
{
	static const struct mutation	 tab[] = {
		{ "type OPEN", TUN_OPEN, -1, -1, -1, 0 },
		{ "type CLAIM", TUN_CLAIM, -1, -1, -1, 0 },
		{ "stream 1", -1, 1, -1, -1, 0 },
		{ "stream max", -1, 0x7fffffff, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "no name length", -1, -1, HELLO_FIXED, -1, 0 },
		{ "half signature", -1, -1, HELLO_FIXED - 32, -1, 0 },
		{ "name past end", -1, -1, -1, HELLO_FIXED, 5 },
		{ "name length 64", -1, -1, HELLO_FIXED + 65, HELLO_FIXED,
		    64 },
		{ "name length 255", -1, -1, HELLO_FIXED + 256, HELLO_FIXED,
		    255 },
		{ "name NUL", -1, -1, -1, HELLO_FIXED + 2, 0x00 },
		{ "name newline", -1, -1, -1, HELLO_FIXED + 1, '\n' },
		{ "name DEL", -1, -1, -1, HELLO_FIXED + 3, 0x7f },
		{ "name high bit", -1, -1, -1, HELLO_FIXED + 1, 0xc3 },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_hello	 h;
	struct tun_frame	 f;
	size_t			 i, n, cut;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		fill_hello(&h, "gw-1");
		n = tun_hello_encode(&h, buf);
		apply(&tab[i], buf, n, &f, TUN_HELLO, 0);
		if (tun_hello_parse(&f, &h) != -1)
			fail_msg("hello accepted: %s", tab[i].what);
	}
	/* Every proper prefix of a valid payload up to the name's end
	 * (the instance after it is optional). */
	fill_hello(&h, "gw-1");
	n = tun_hello_encode(&h, buf) - 8;
	for (cut = 0; cut < n; cut++) {
		frame_init(&f, TUN_HELLO, 0, buf, cut);
		assert_int_equal(tun_hello_parse(&f, &h), -1);
	}
}

static void
test_open_roundtrip(void **state)
{
	static const struct {
		uint8_t		 kind, sfam, dfam;
		const char	*saddr, *daddr;
		uint16_t	 sport, dport;
		const char	*name;
	} tab[] = {
		{ TUN_KIND_TLS, 4, 4, "198.51.100.7", "203.0.113.1", 51000,
		    443, "cloud.alice.example" },
		{ TUN_KIND_HTTP, 6, 6, "2001:db8::1", "2001:db8:ffff::80",
		    65535, 80, "a" },
		{ TUN_KIND_TLS, 4, 6, "0.0.0.0", "::", 0, 0,
		    "xn--bcher-kva.example" },
		{ TUN_KIND_HTTP, 0, 0, NULL, NULL, 0, 0,
		    "under_score.example-1.net" },
		{ TUN_KIND_TLS, 0, 4, NULL, "192.0.2.255", 1, 8443,
		    "*.wild.example" },
		{ TUN_KIND_ACME_HTTP, 4, 0, "192.0.2.9", NULL, 2, 80, "a.ex" },
		{ TUN_KIND_ACME_TLS, 4, 0, "192.0.2.9", NULL, 2, 443, "a.ex" },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_open		 o, p;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.kind = tab[i].kind;
		fill_addr(&o.src, tab[i].sfam, tab[i].saddr, tab[i].sport);
		fill_addr(&o.dst, tab[i].dfam, tab[i].daddr, tab[i].dport);
		snprintf(o.name, sizeof(o.name), "%s", tab[i].name);
		n = tun_open_encode(&o, buf);
		assert_int_equal(n, OPEN_FIXED + 1 + strlen(tab[i].name));
		assert_int_equal(buf[0], tab[i].kind);
		assert_int_equal(buf[1], tab[i].sfam);
		assert_int_equal(buf[18], tab[i].sport >> 8);
		assert_int_equal(buf[19], tab[i].sport & 0xff);
		assert_int_equal(buf[1 + ADDR_LEN], tab[i].dfam);
		assert_int_equal(buf[OPEN_FIXED - 2], tab[i].dport >> 8);
		assert_int_equal(buf[OPEN_FIXED - 1], tab[i].dport & 0xff);
		assert_int_equal(buf[OPEN_FIXED], strlen(tab[i].name));
		frame_init(&f, TUN_OPEN, (uint32_t)i + 1, buf, n);
		memset(&p, 0xee, sizeof(p));
		assert_int_equal(tun_open_parse(&f, &p), 0);
		assert_int_equal(p.kind, o.kind);
		assert_int_equal(p.src.family, o.src.family);
		assert_memory_equal(p.src.addr, o.src.addr, 16);
		assert_int_equal(p.src.port, o.src.port);
		assert_int_equal(p.dst.family, o.dst.family);
		assert_memory_equal(p.dst.addr, o.dst.addr, 16);
		assert_int_equal(p.dst.port, o.dst.port);
		assert_string_equal(p.name, o.name);
	}

	/* The longest name: 253 bytes in labels of 63. */
	memset(&o, 0, sizeof(o));
	o.kind = TUN_KIND_TLS;
	memset(o.name, 'a', 253);
	o.name[63] = o.name[127] = o.name[191] = '.';
	n = tun_open_encode(&o, buf);
	frame_init(&f, TUN_OPEN, 0x7fffffff, buf, n);
	assert_int_equal(tun_open_parse(&f, &p), 0);
	assert_string_equal(p.name, o.name);
}

static void
test_open_malformed(void **state)
{
	static const struct mutation	 tab[] = {
		{ "stream 0", -1, 0, -1, -1, 0 },
		{ "type DATA", TUN_DATA, -1, -1, -1, 0 },
		{ "type HELLO", TUN_HELLO, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "no name", -1, -1, OPEN_FIXED, -1, 0 },
		{ "kind 0", -1, -1, -1, 0, 0 },
		{ "kind 3", -1, -1, -1, 0, 3 },
		{ "kind 0xff", -1, -1, -1, 0, 0xff },
		{ "kind 6", -1, -1, -1, 0, 6 },
		{ "kind 0x10", -1, -1, -1, 0, 0x10 },
		{ "src family 1", -1, -1, -1, 1, 1 },
		{ "src family 5", -1, -1, -1, 1, 5 },
		{ "src family AF_INET6", -1, -1, -1, 1, AF_INET6 },
		{ "dst family 2", -1, -1, -1, 1 + ADDR_LEN, 2 },
		{ "dst family 0xff", -1, -1, -1, 1 + ADDR_LEN, 0xff },
		{ "name length 0", -1, -1, -1, OPEN_FIXED, 0 },
		{ "name past end", -1, -1, -1, OPEN_FIXED, 30 },
		{ "name length 255", -1, -1, -1, OPEN_FIXED, 255 },
		{ "name NUL", -1, -1, -1, OPEN_FIXED + 2, 0 },
		{ "name tab", -1, -1, -1, OPEN_FIXED + 2, '\t' },
		{ "name high bit", -1, -1, -1, OPEN_FIXED + 2, 0xe9 },
		{ "name DEL", -1, -1, -1, OPEN_FIXED + 2, 0x7f },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_open		 o;
	struct tun_frame	 f;
	size_t			 i, n, cut;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.kind = TUN_KIND_TLS;
		fill_addr(&o.src, 4, "192.0.2.1", 1234);
		fill_addr(&o.dst, 6, "2001:db8::2", 443);
		snprintf(o.name, sizeof(o.name), "www.example.org");
		n = tun_open_encode(&o, buf);
		apply(&tab[i], buf, n, &f, TUN_OPEN, 5);
		if (tun_open_parse(&f, &o) != -1)
			fail_msg("OPEN accepted: %s", tab[i].what);
	}
	memset(&o, 0, sizeof(o));
	o.kind = TUN_KIND_HTTP;
	snprintf(o.name, sizeof(o.name), "www.example.org");
	n = tun_open_encode(&o, buf);
	for (cut = 0; cut < n; cut++) {
		frame_init(&f, TUN_OPEN, 5, buf, cut);
		assert_int_equal(tun_open_parse(&f, &o), -1);
	}
}

/* Names that are not in normal form, or not hostnames at all. */
static const char *bad_names[] = {
	"WWW.example.org", "www.Example.org", "www.example.org.", "a.",
	".", "..", ".example.org", "a..b", "-a.example", "a-.example",
	"a.-b", "a.b-", "a b", "a/b", "a:443", "a@b", "*", "*.", "a.*.b",
	"**.a", "\"a\"", "a\\b",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
};

static void
test_open_bad_names(void **state)
{
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	char			 longname[256];
	struct tun_open		 o;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		memset(buf, 0, sizeof(buf));
		buf[0] = TUN_KIND_TLS;
		n = OPEN_FIXED + put_name(buf + OPEN_FIXED, bad_names[i]);
		frame_init(&f, TUN_OPEN, 1, buf, n);
		if (tun_open_parse(&f, &o) != -1)
			fail_msg("OPEN accepted name '%s'", bad_names[i]);
	}
	/* 254 and 255 bytes: too long, with or without a trailing dot. */
	memset(longname, 'a', sizeof(longname));
	longname[63] = longname[127] = longname[191] = '.';
	for (n = 254; n <= 255; n++) {
		longname[n] = '\0';
		if (n == 254)
			longname[253] = '.';
		memset(buf, 0, sizeof(buf));
		buf[0] = TUN_KIND_TLS;
		frame_init(&f, TUN_OPEN, 1, buf,
		    OPEN_FIXED + put_name(buf + OPEN_FIXED, longname));
		assert_int_equal(tun_open_parse(&f, &o), -1);
		longname[253] = 'a';
		longname[n] = 'a';
	}
}

static void
test_kind_names(void **state)
{
	char	buf[64];

	(void)state;
	assert_string_equal(tun_kind_name(TUN_KIND_ACME_TLS), "acme-tls");
	assert_string_equal(tun_kinds_text(TUN_KIND_TLS | TUN_KIND_ACME_HTTP,
	    buf, sizeof(buf)), "tls+acme-http");
	assert_string_equal(tun_kinds_text(TUN_KINDS_ALL, buf, sizeof(buf)),
	    "tls+http+acme-http+acme-tls");
	assert_string_equal(tun_kinds_text(0, buf, sizeof(buf)), "none");
	assert_int_equal(tun_kind_entry(TUN_KIND_ACME_TLS), TUN_KIND_TLS);
	assert_int_equal(tun_kind_entry(TUN_KIND_ACME_HTTP), TUN_KIND_HTTP);
	assert_int_equal(tun_kind_entry(TUN_KIND_HTTP), TUN_KIND_HTTP);
}

static void
test_claim_roundtrip(void **state)
{
	static const struct {
		uint8_t		 type, kinds;
		const char	*name;
	} tab[] = {
		{ TUN_CLAIM, TUN_KIND_TLS, "cloud.alice.example" },
		{ TUN_CLAIM, TUN_KIND_HTTP, "x" },
		{ TUN_CLAIM, TUN_KIND_TLS | TUN_KIND_HTTP, "*.home.example.org" },
		/* A certificate order in progress: ACME probes only. */
		{ TUN_CLAIM, TUN_KIND_ACME_HTTP | TUN_KIND_ACME_TLS, "w.example" },
		{ TUN_CLAIM, TUN_KINDS_ALL, "app.example" },
		{ TUN_UNCLAIM, TUN_KIND_TLS, "cloud.alice.example" },
		/* UNCLAIM does not check its kinds byte. */
		{ TUN_UNCLAIM, 0, "a.b" },
		{ TUN_UNCLAIM, 0xff, "a.b" },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_claim	 c, d;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.kinds = tab[i].kinds;
		c.priority = (uint8_t)(1 + 50 * i);
		c.policy = i % 2 ? TUN_POLICY_BALANCE : TUN_POLICY_FAILOVER;
		c.status = 9;		/* not sent in a CLAIM */
		snprintf(c.name, sizeof(c.name), "%s", tab[i].name);
		snprintf(c.msg, sizeof(c.msg), "not sent either");
		n = tun_claim_encode(&c, 0, buf);
		assert_int_equal(n, 4 + strlen(tab[i].name));
		assert_int_equal(buf[0], tab[i].kinds);
		assert_int_equal(buf[1], c.priority);
		assert_int_equal(buf[2], c.policy);
		assert_int_equal(buf[3], strlen(tab[i].name));
		frame_init(&f, tab[i].type, 0, buf, n);
		memset(&d, 0xee, sizeof(d));
		assert_int_equal(tun_claim_parse(&f, 0, &d), 0);
		assert_int_equal(d.kinds, c.kinds);
		assert_int_equal(d.priority, c.priority);
		assert_int_equal(d.policy, c.policy);
		assert_int_equal(d.status, 0);
		assert_string_equal(d.name, c.name);
		assert_string_equal(d.msg, "");
		/* Not a result, whatever the flag says. */
		assert_int_equal(tun_claim_parse(&f, 1, &d), -1);
	}
}

static void
test_claim_result_roundtrip(void **state)
{
	static const struct {
		uint8_t		 status;
		const char	*name, *msg;
	} tab[] = {
		{ TUN_CLAIM_OK, "cloud.alice.example", "" },
		{ TUN_CLAIM_DENIED, "*.b.example", "key not authorized" },
		{ TUN_CLAIM_INVALID, "c.example", "bad name" },
		{ TUN_CLAIM_LIMIT, "d.example", "too many claims (max 64)" },
		{ 200, "e.example", "unknown status passes the codec" },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	char			 longmsg[TUN_MSG_MAX + 1];
	struct tun_claim	 c, d;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.kinds = 3;		/* not sent in a result */
		c.status = tab[i].status;
		snprintf(c.name, sizeof(c.name), "%s", tab[i].name);
		snprintf(c.msg, sizeof(c.msg), "%s", tab[i].msg);
		n = tun_claim_encode(&c, 1, buf);
		assert_int_equal(n, 3 + strlen(tab[i].name) +
		    strlen(tab[i].msg));
		assert_int_equal(buf[0], tab[i].status);
		frame_init(&f, TUN_CLAIM_RESULT, 0, buf, n);
		memset(&d, 0xee, sizeof(d));
		assert_int_equal(tun_claim_parse(&f, 1, &d), 0);
		assert_int_equal(d.status, c.status);
		assert_int_equal(d.kinds, 0);
		assert_string_equal(d.name, c.name);
		assert_string_equal(d.msg, c.msg);
		assert_int_equal(tun_claim_parse(&f, 0, &d), -1);
	}

	/* The longest message. */
	memset(longmsg, 'm', TUN_MSG_MAX);
	longmsg[TUN_MSG_MAX] = '\0';
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "a.example");
	memcpy(c.msg, longmsg, sizeof(longmsg));
	n = tun_claim_encode(&c, 1, buf);
	frame_init(&f, TUN_CLAIM_RESULT, 0, buf, n);
	assert_int_equal(tun_claim_parse(&f, 1, &d), 0);
	assert_string_equal(d.msg, longmsg);

	/* An empty name survives the round trip too. */
	memset(&c, 0, sizeof(c));
	c.status = TUN_CLAIM_INVALID;
	n = tun_claim_encode(&c, 1, buf);
	assert_int_equal(n, 3);
	frame_init(&f, TUN_CLAIM_RESULT, 0, buf, n);
	assert_int_equal(tun_claim_parse(&f, 1, &d), 0);
	assert_string_equal(d.name, "");
}

static void
test_claim_malformed(void **state)
{
	static const struct mutation	 claim[] = {
		{ "stream 1", -1, 1, -1, -1, 0 },
		{ "type OPEN", TUN_OPEN, -1, -1, -1, 0 },
		{ "type CLAIM_RESULT", TUN_CLAIM_RESULT, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "kinds only", -1, -1, 1, -1, 0 },
		{ "no name length", -1, -1, 3, -1, 0 },
		{ "kinds 0", -1, -1, -1, 0, 0 },
		{ "kinds 0x10", -1, -1, -1, 0, 0x10 },
		{ "kinds 0x1f", -1, -1, -1, 0, 0x1f },
		{ "kinds 0x81", -1, -1, -1, 0, 0x81 },
		{ "priority 0", -1, -1, -1, 1, 0 },
		{ "policy 2", -1, -1, -1, 2, 2 },
		{ "policy 0xff", -1, -1, -1, 2, 0xff },
		{ "name length 0", -1, -1, -1, 3, 0 },
		{ "name past end", -1, -1, -1, 3, 12 },
		{ "name NUL", -1, -1, -1, 5, 0 },
		{ "name DEL", -1, -1, -1, 5, 0x7f },
		{ "name upper", -1, -1, -1, 4, 'A' },
		{ "name space", -1, -1, -1, 5, ' ' },
	};
	static const struct mutation	 result[] = {
		{ "stream 2", -1, 2, -1, -1, 0 },
		{ "type CLAIM", TUN_CLAIM, -1, -1, -1, 0 },
		{ "type UNCLAIM", TUN_UNCLAIM, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "status only", -1, -1, 1, -1, 0 },
		{ "no message length", -1, -1, 2 + 9, -1, 0 },
		{ "name past end", -1, -1, -1, 1, 40 },
		{ "name NUL", -1, -1, -1, 3, 0 },
		{ "name high bit", -1, -1, -1, 3, 0xff },
		{ "message past end", -1, -1, -1, 2 + 9, 5 },
		{ "message length 201", -1, -1, 2 + 9 + 1 + 201, 2 + 9, 201 },
		{ "message NUL", -1, -1, -1, 2 + 9 + 2, 0 },
		{ "message newline", -1, -1, -1, 2 + 9 + 1, '\n' },
		{ "message escape", -1, -1, -1, 2 + 9 + 3, 0x1b },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_claim	 c;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(claim) / sizeof(claim[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.kinds = TUN_KIND_TLS;
		c.priority = 100;
		snprintf(c.name, sizeof(c.name), "a.example");
		n = tun_claim_encode(&c, 0, buf);
		apply(&claim[i], buf, n, &f, TUN_CLAIM, 0);
		if (tun_claim_parse(&f, 0, &c) != -1)
			fail_msg("CLAIM accepted: %s", claim[i].what);
	}
	for (i = 0; i < sizeof(result) / sizeof(result[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.status = TUN_CLAIM_DENIED;
		snprintf(c.name, sizeof(c.name), "a.example");
		snprintf(c.msg, sizeof(c.msg), "nope");
		n = tun_claim_encode(&c, 1, buf);
		apply(&result[i], buf, n, &f, TUN_CLAIM_RESULT, 0);
		if (tun_claim_parse(&f, 1, &c) != -1)
			fail_msg("CLAIM_RESULT accepted: %s", result[i].what);
	}
}

static void
test_claim_bad_names(void **state)
{
	static const uint8_t	 types[] = { TUN_CLAIM, TUN_UNCLAIM };
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_claim	 c;
	struct tun_frame	 f;
	size_t			 i, j, n;

	(void)state;
	for (j = 0; j < sizeof(types); j++) {
		for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]);
		    i++) {
			buf[0] = TUN_KIND_TLS;
			buf[1] = 100;		/* priority */
			buf[2] = TUN_POLICY_FAILOVER;
			n = 3 + put_name(buf + 3, bad_names[i]);
			frame_init(&f, types[j], 0, buf, n);
			if (tun_claim_parse(&f, 0, &c) != -1)
				fail_msg("%s accepted name '%s'",
				    tun_type_name(types[j]), bad_names[i]);
		}
	}
}

/* A result echoes a name it could not use: it parses, name emptied. */
static void
test_claim_result_bad_names(void **state)
{
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_claim	 c;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		buf[0] = TUN_CLAIM_INVALID;
		n = 1 + put_name(buf + 1, bad_names[i]);
		n += put_name(buf + n, "not a hostname");
		frame_init(&f, TUN_CLAIM_RESULT, 0, buf, n);
		memset(&c, 0xee, sizeof(c));
		assert_int_equal(tun_claim_parse(&f, 1, &c), 0);
		assert_string_equal(c.name, "");
		assert_int_equal(c.status, TUN_CLAIM_INVALID);
		assert_string_equal(c.msg, "not a hostname");
	}
}

static void
test_reason_roundtrip(void **state)
{
	static const struct {
		uint32_t	 code, last;
		const char	*msg;
	} tab[] = {
		{ TUN_E_NONE, 0, "" },
		{ TUN_E_REFUSED, 1, "connect: Connection refused" },
		{ TUN_E_SHUTDOWN, 0x7fffffff, "gateway going down" },
		{ 0xffffffff, 0xffffffff, "unknown codes pass the codec" },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_reason	 r, s;
	struct tun_frame	 f;
	size_t			 i, n;
	int			 goaway;

	(void)state;
	for (goaway = 0; goaway <= 1; goaway++) {
		for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
			memset(&r, 0, sizeof(r));
			r.code = tab[i].code;
			r.last_stream = tab[i].last;
			snprintf(r.msg, sizeof(r.msg), "%s", tab[i].msg);
			n = tun_reason_encode(&r, goaway, buf);
			assert_int_equal(n, (goaway ? 8 : 4) +
			    strlen(tab[i].msg));
			if (goaway) {
				frame_init(&f, TUN_GOAWAY, 0, buf, n);
				assert_int_equal(buf[0], tab[i].last >> 24);
				assert_int_equal(buf[7], tab[i].code & 0xff);
			} else {
				frame_init(&f, TUN_RESET, 3, buf, n);
				assert_int_equal(buf[0], tab[i].code >> 24);
				assert_int_equal(buf[3], tab[i].code & 0xff);
			}
			memset(&s, 0xee, sizeof(s));
			assert_int_equal(tun_reason_parse(&f, goaway, &s), 0);
			assert_int_equal(s.code, r.code);
			assert_int_equal(s.last_stream,
			    goaway ? r.last_stream : 0);
			assert_string_equal(s.msg, r.msg);
			assert_int_equal(tun_reason_parse(&f, !goaway, &s),
			    -1);
		}
	}
}

/* Reason texts are cut at TUN_MSG_MAX and made printable, not refused. */
static void
test_reason_msg(void **state)
{
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	char			 want[TUN_MSG_MAX + 1];
	struct tun_reason	 r;
	struct tun_frame	 f;
	size_t			 n;

	(void)state;
	memset(buf, 0, 8);
	buf[3] = TUN_E_PROTOCOL;
	memcpy(buf + 4, "ok\x00\n\x7f\xff.", 7);
	frame_init(&f, TUN_RESET, 9, buf, 11);
	assert_int_equal(tun_reason_parse(&f, 0, &r), 0);
	assert_int_equal(r.code, TUN_E_PROTOCOL);
	assert_string_equal(r.msg, "ok\\x00\\x0a\\x7f\\xff.");

	n = 8 + TUN_MSG_MAX + 50;
	memset(buf + 8, 'z', n - 8);
	frame_init(&f, TUN_GOAWAY, 0, buf, n);
	assert_int_equal(tun_reason_parse(&f, 1, &r), 0);
	memset(want, 'z', TUN_MSG_MAX);
	want[TUN_MSG_MAX] = '\0';
	assert_string_equal(r.msg, want);
	/* Encoding the cut message gives exactly TUN_MSG_MAX bytes. */
	assert_int_equal(tun_reason_encode(&r, 1, buf), 8 + TUN_MSG_MAX);
}

static void
test_reason_malformed(void **state)
{
	static const struct mutation	 reset[] = {
		{ "stream 0", -1, 0, -1, -1, 0 },
		{ "type GOAWAY", TUN_GOAWAY, -1, -1, -1, 0 },
		{ "type DATA", TUN_DATA, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "3 bytes", -1, -1, 3, -1, 0 },
	};
	static const struct mutation	 goaway[] = {
		{ "stream 1", -1, 1, -1, -1, 0 },
		{ "type RESET", TUN_RESET, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "4 bytes", -1, -1, 4, -1, 0 },
		{ "7 bytes", -1, -1, 7, -1, 0 },
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	struct tun_reason	 r;
	struct tun_frame	 f;
	size_t			 i, n;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.code = TUN_E_CANCEL;
	r.last_stream = 17;
	snprintf(r.msg, sizeof(r.msg), "bye");
	for (i = 0; i < sizeof(reset) / sizeof(reset[0]); i++) {
		n = tun_reason_encode(&r, 0, buf);
		apply(&reset[i], buf, n, &f, TUN_RESET, 11);
		if (tun_reason_parse(&f, 0, &r) != -1)
			fail_msg("RESET accepted: %s", reset[i].what);
	}
	for (i = 0; i < sizeof(goaway) / sizeof(goaway[0]); i++) {
		n = tun_reason_encode(&r, 1, buf);
		apply(&goaway[i], buf, n, &f, TUN_GOAWAY, 0);
		if (tun_reason_parse(&f, 1, &r) != -1)
			fail_msg("GOAWAY accepted: %s", goaway[i].what);
	}
}

static void
test_window(void **state)
{
	static const uint32_t	 ok[] = { 1, 4096, 16384, 0x7fffffff };
	uint8_t			 buf[4];
	struct tun_frame	 f;
	uint32_t		 incr;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		buf[0] = ok[i] >> 24;
		buf[1] = (ok[i] >> 16) & 0xff;
		buf[2] = (ok[i] >> 8) & 0xff;
		buf[3] = ok[i] & 0xff;
		frame_init(&f, TUN_WINDOW, 1, buf, 4);
		incr = 0;
		assert_int_equal(tun_window_parse(&f, &incr), 0);
		assert_int_equal(incr, ok[i]);
	}
}

static void
test_window_malformed(void **state)
{
	static const uint32_t		 bad[] = { 0, 0x80000000, 0x80000001,
	    0xfffffffe, 0xffffffff };
	static const struct mutation	 tab[] = {
		{ "stream 0", -1, 0, -1, -1, 0 },
		{ "type DATA", TUN_DATA, -1, -1, -1, 0 },
		{ "type PING", TUN_PING, -1, -1, -1, 0 },
		{ "type RESET", TUN_RESET, -1, -1, -1, 0 },
		{ "empty", -1, -1, 0, -1, 0 },
		{ "3 bytes", -1, -1, 3, -1, 0 },
		{ "5 bytes", -1, -1, 5, -1, 0 },
		{ "8 bytes", -1, -1, 8, -1, 0 },
	};
	uint8_t			 buf[16];
	struct tun_frame	 f;
	uint32_t		 incr;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf[0] = bad[i] >> 24;
		buf[1] = (bad[i] >> 16) & 0xff;
		buf[2] = (bad[i] >> 8) & 0xff;
		buf[3] = bad[i] & 0xff;
		frame_init(&f, TUN_WINDOW, 1, buf, 4);
		if (tun_window_parse(&f, &incr) != -1)
			fail_msg("WINDOW accepted increment %#x", bad[i]);
	}
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		memset(buf, 0, sizeof(buf));
		buf[3] = 1;		/* increment 1 */
		apply(&tab[i], buf, 4, &f, TUN_WINDOW, 3);
		if (tun_window_parse(&f, &incr) != -1)
			fail_msg("WINDOW accepted: %s", tab[i].what);
	}
}

static void
test_addr_sockaddr(void **state)
{
	struct sockaddr_in	 sin, *psin;
	struct sockaddr_in6	 sin6, *psin6;
	struct sockaddr_un	 su;
	struct sockaddr_storage	 ss;
	struct tun_addr		 a;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8443);
	inet_pton(AF_INET, "192.0.2.10", &sin.sin_addr);
	tun_addr_from_sa(&a, (struct sockaddr *)&sin);
	assert_int_equal(a.family, 4);
	assert_int_equal(a.port, 8443);
	assert_memory_equal(a.addr, &sin.sin_addr, 4);
	tun_addr_to_ss(&a, &ss);
	psin = (struct sockaddr_in *)&ss;
	assert_int_equal(psin->sin_family, AF_INET);
	assert_int_equal(ntohs(psin->sin_port), 8443);
	assert_memory_equal(&psin->sin_addr, &sin.sin_addr, 4);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(65535);
	inet_pton(AF_INET6, "2001:db8::beef", &sin6.sin6_addr);
	tun_addr_from_sa(&a, (struct sockaddr *)&sin6);
	assert_int_equal(a.family, 6);
	assert_int_equal(a.port, 65535);
	tun_addr_to_ss(&a, &ss);
	psin6 = (struct sockaddr_in6 *)&ss;
	assert_int_equal(psin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(psin6->sin6_port), 65535);
	assert_memory_equal(&psin6->sin6_addr, &sin6.sin6_addr, 16);

	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	memset(&a, 0xee, sizeof(a));
	tun_addr_from_sa(&a, (struct sockaddr *)&su);
	assert_int_equal(a.family, 0);
	assert_int_equal(a.port, 0);
	tun_addr_to_ss(&a, &ss);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
}

static void
test_announce_roundtrip(void **state)
{
	static const struct {
		const char	*name;
		uint8_t		 kinds;
	} tab[] = {
		{ "app.example.test", TUN_KIND_TLS | TUN_KIND_HTTP },
		{ "*.w.example.test", TUN_KIND_TLS },
		{ "gone.example.test", 0 },	/* withdrawn */
	};
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	char			 big[NAME_MAX_LEN + 1];
	struct tun_claim	 c;
	struct tun_frame	 f;
	uint32_t		 ttl;
	size_t			 i, n, off = 0, count = 0;

	(void)state;
	n = tun_announce_begin(buf, 6000);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		assert_int_not_equal(n = tun_announce_add(buf, n, tab[i].name,
		    tab[i].kinds), 0);
	frame_init(&f, TUN_ANNOUNCE, 0, buf, n);
	while (tun_announce_parse(&f, &ttl, &off, &c) == 1) {
		assert_int_equal(ttl, 6000);
		assert_string_equal(c.name, tab[count].name);
		assert_int_equal(c.kinds, tab[count].kinds);
		count++;
	}
	assert_int_equal(count, 3);
	assert_int_equal(off, n);

	/* Entries stop fitting at the payload limit, never past it. */
	memset(big, 'a', 63);
	big[63] = '\0';
	n = tun_announce_begin(buf, 1);
	for (i = 0; ; i++) {
		size_t m = tun_announce_add(buf, n, big, TUN_KIND_TLS);

		if (m == 0)
			break;
		n = m;
	}
	assert_true(n <= TUN_MAX_PAYLOAD && n + 2 + 63 > TUN_MAX_PAYLOAD);
	assert_int_equal(i, (TUN_MAX_PAYLOAD - 4) / 65);
}

static void
test_announce_malformed(void **state)
{
	static const struct {
		const char	*what;
		uint8_t		 bytes[16];
		size_t		 len;
	} tab[] = {
		{ "short ttl", { 0, 0, 1 }, 3 },
		{ "kinds 0x10", { 0, 0, 0, 1, 0x10, 1, 'a' }, 7 },
		{ "name length 0", { 0, 0, 0, 1, 1, 0 }, 6 },
		{ "name past end", { 0, 0, 0, 1, 1, 5, 'a' }, 7 },
		{ "upper case", { 0, 0, 0, 1, 1, 1, 'A' }, 7 },
		{ "no length", { 0, 0, 0, 1, 1 }, 5 },
	};
	struct tun_claim	c;
	struct tun_frame	f;
	uint32_t		ttl;
	size_t			i, off;
	int			r;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		frame_init(&f, TUN_ANNOUNCE, 0, tab[i].bytes, tab[i].len);
		off = 0;
		while ((r = tun_announce_parse(&f, &ttl, &off, &c)) == 1)
			;
		if (r != -1)
			fail_msg("ANNOUNCE accepted: %s", tab[i].what);
	}
	/* Wrong stream or type. */
	frame_init(&f, TUN_ANNOUNCE, 3, tab[0].bytes, 4);
	off = 0;
	assert_int_equal(tun_announce_parse(&f, &ttl, &off, &c), -1);
	frame_init(&f, TUN_CLAIM, 0, tab[0].bytes, 4);
	off = 0;
	assert_int_equal(tun_announce_parse(&f, &ttl, &off, &c), -1);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(tun_type_name(TUN_HELLO), "HELLO");
	assert_string_equal(tun_type_name(TUN_CLAIM_RESULT), "CLAIM_RESULT");
	assert_string_equal(tun_type_name(TUN_GOAWAY), "GOAWAY");
	assert_string_equal(tun_type_name(0), "?");
	assert_string_equal(tun_type_name(TUN_ANNOUNCE), "ANNOUNCE");
	assert_string_equal(tun_type_name(TUN_CLUSTER), "CLUSTER");
	assert_string_equal(tun_type_name(13), "unknown");
	assert_string_equal(tun_type_name(255), "unknown");
	assert_string_equal(tun_err_name(TUN_E_NONE), "none");
	assert_string_equal(tun_err_name(TUN_E_FLOW), "flow-control");
	assert_string_equal(tun_err_name(TUN_E_INTERNAL), "internal");
	assert_string_equal(tun_err_name(TUN_E_DUPLICATE), "duplicate");
	assert_string_equal(tun_err_name(12), "unknown");
	assert_string_equal(tun_err_name(0xffffffff), "unknown");
}

static void
frame_init(struct tun_frame *f, uint8_t type, uint32_t stream,
    const uint8_t *payload, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->stream = stream;
	f->len = (uint32_t)len;
	f->payload = payload;
}

/* Build a frame over buf (n valid bytes) with one mutation applied. */
static void
apply(const struct mutation *m, uint8_t *buf, size_t n, struct tun_frame *f,
    uint8_t type, uint32_t stream)
{
	if (m->len >= 0) {
		if ((size_t)m->len > n)
			memset(buf + n, 'x', (size_t)m->len - n);
		n = (size_t)m->len;
	}
	if (m->off >= 0)
		buf[m->off] = m->val;
	frame_init(f, m->type >= 0 ? (uint8_t)m->type : type,
	    m->stream >= 0 ? (uint32_t)m->stream : stream, buf, n);
}

/* A u8 length and the bytes of s; returns the bytes written. */
static size_t
put_name(uint8_t *p, const char *s)
{
	size_t	n = strlen(s);

	p[0] = (uint8_t)n;
	memcpy(p + 1, s, n);
	return 1 + n;
}

static void
fill_hello(struct tun_hello *h, const char *name)
{
	size_t	i;

	memset(h, 0, sizeof(*h));
	h->version = TUN_VERSION;
	h->role = TUN_ROLE_GATEWAY;
	h->window = 65536;
	for (i = 0; i < KEY_PUB_LEN; i++)
		h->pub[i] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < KEY_SIG_LEN; i++)
		h->sig[i] = (uint8_t)(255 - i);
	snprintf(h->name, sizeof(h->name), "%s", name);
}

static void
fill_addr(struct tun_addr *a, uint8_t family, const char *text, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->port = port;
	if (family == 4)
		assert_int_equal(inet_pton(AF_INET, text, a->addr), 1);
	else if (family == 6)
		assert_int_equal(inet_pton(AF_INET6, text, a->addr), 1);
}

static void
test_cluster_roundtrip(void **state)
{
	static struct tun_gw_info	 in[TUN_CLUSTER_GW_MAX],
					 out[TUN_CLUSTER_GW_MAX];
	uint8_t				 buf[TUN_MAX_PAYLOAD + 8];
	struct tun_frame		 f;
	size_t				 i, j, n, len;

	(void)state;
	memset(in, 0, sizeof(in));
	in[0].flags = TUN_CF_SELF;
	memset(in[0].pub, 0xaa, KEY_PUB_LEN);
	strcpy(in[0].name, "gw-a");
	in[0].naddr = 2;
	fill_addr(&in[0].addr[0], 4, "192.0.2.1", 443);	/* port dropped */
	fill_addr(&in[0].addr[1], 6, "2001:db8::1", 0);
	memset(in[1].pub, 0xbb, KEY_PUB_LEN);		/* no name, no addr */
	len = tun_cluster_encode(in, 2, buf);
	frame_init(&f, TUN_CLUSTER, 0, buf, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].flags, TUN_CF_SELF);
	assert_memory_equal(out[0].pub, in[0].pub, KEY_PUB_LEN);
	assert_string_equal(out[0].name, "gw-a");
	assert_int_equal(out[0].naddr, 2);
	assert_int_equal(out[0].addr[0].family, 4);
	assert_int_equal(out[0].addr[0].port, 0);
	assert_memory_equal(out[0].addr[1].addr, in[0].addr[1].addr, 16);
	assert_int_equal(out[1].naddr, 0);
	assert_string_equal(out[1].name, "");
	/* Bytes after the last entry are room for later versions. */
	buf[len] = 0x42;
	frame_init(&f, TUN_CLUSTER, 0, buf, len + 1);
	assert_int_equal(tun_cluster_parse(&f, out, &n), 0);
	assert_int_equal(n, 2);

	/* The largest view fits one frame. */
	for (i = 0; i < TUN_CLUSTER_GW_MAX; i++) {
		memset(in[i].pub, (int)i, KEY_PUB_LEN);
		memset(in[i].name, 'g', 63);
		in[i].name[63] = '\0';
		in[i].naddr = TUN_CLUSTER_ADDR_MAX;
		for (j = 0; j < TUN_CLUSTER_ADDR_MAX; j++)
			fill_addr(&in[i].addr[j], 6, "2001:db8::9", 0);
	}
	len = tun_cluster_encode(in, TUN_CLUSTER_GW_MAX + 5, buf);
	assert_true(len <= TUN_MAX_PAYLOAD);
	frame_init(&f, TUN_CLUSTER, 0, buf, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), 0);
	assert_int_equal(n, TUN_CLUSTER_GW_MAX);
	assert_int_equal(out[63].naddr, TUN_CLUSTER_ADDR_MAX);
}

static void
test_cluster_malformed(void **state)
{
	static struct tun_gw_info	 in[2], out[TUN_CLUSTER_GW_MAX];
	uint8_t				 buf[TUN_MAX_PAYLOAD], bad[64];
	struct tun_frame		 f;
	size_t				 len, cut, n;

	(void)state;
	memset(in, 0, sizeof(in));
	strcpy(in[0].name, "gw");
	in[0].naddr = 1;
	fill_addr(&in[0].addr[0], 4, "192.0.2.1", 0);
	len = tun_cluster_encode(in, 1, buf);
	/* Every truncation is malformed. */
	for (cut = 0; cut < len; cut++) {
		frame_init(&f, TUN_CLUSTER, 0, buf, cut);
		assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	}
	/* Stream 0 only. */
	frame_init(&f, TUN_CLUSTER, 1, buf, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	/* More gateways than allowed, more addresses, a bad family, a
	 * name with a control byte. */
	memcpy(bad, buf, len);
	bad[0] = TUN_CLUSTER_GW_MAX + 1;
	frame_init(&f, TUN_CLUSTER, 0, bad, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	memcpy(bad, buf, len);
	bad[1 + 1 + KEY_PUB_LEN + 1 + 2] = TUN_CLUSTER_ADDR_MAX + 1;
	frame_init(&f, TUN_CLUSTER, 0, bad, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	memcpy(bad, buf, len);
	bad[1 + 1 + KEY_PUB_LEN + 1 + 2 + 1] = 5;
	frame_init(&f, TUN_CLUSTER, 0, bad, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	memcpy(bad, buf, len);
	bad[1 + 1 + KEY_PUB_LEN + 1] = '\n';
	frame_init(&f, TUN_CLUSTER, 0, bad, len);
	assert_int_equal(tun_cluster_parse(&f, out, &n), -1);
	/* An empty view is a view. */
	bad[0] = 0;
	frame_init(&f, TUN_CLUSTER, 0, bad, 1);
	assert_int_equal(tun_cluster_parse(&f, out, &n), 0);
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_oversized),
		cmocka_unit_test(test_decode_sequence),
		cmocka_unit_test(test_hello_roundtrip),
		cmocka_unit_test(test_hello_malformed),
		cmocka_unit_test(test_open_roundtrip),
		cmocka_unit_test(test_open_malformed),
		cmocka_unit_test(test_open_bad_names),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_claim_roundtrip),
		cmocka_unit_test(test_claim_result_roundtrip),
		cmocka_unit_test(test_claim_malformed),
		cmocka_unit_test(test_claim_bad_names),
		cmocka_unit_test(test_claim_result_bad_names),
		cmocka_unit_test(test_reason_roundtrip),
		cmocka_unit_test(test_reason_msg),
		cmocka_unit_test(test_reason_malformed),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_window_malformed),
		cmocka_unit_test(test_addr_sockaddr),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_announce_roundtrip),
		cmocka_unit_test(test_announce_malformed),
		cmocka_unit_test(test_cluster_roundtrip),
		cmocka_unit_test(test_cluster_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
