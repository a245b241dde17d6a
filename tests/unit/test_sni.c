/* SPDX-License-Identifier: ISC */
/*
 * gw_sni_parse() against one ClientHello captured from openssl s_client
 * and hellos built here, then cut into records, truncated and corrupted.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "gw_sni.h"

#define BIG		16384
#define BUFSZ		70000

/* Offsets in a handshake message from hello_build(). */
#define OFF_VERSION	4
#define OFF_SID		38
#define OFF_SUITES	71
#define OFF_COMP	77
#define OFF_EXTS	79

struct ext {
	uint16_t	 type;
	const uint8_t	*data;
	size_t		 len;
};

/*
 * `openssl s_client -connect 127.0.0.1:PORT -servername x.example
 * -alpn h2,http/1.1` (OpenSSL 3.0.19): one record of 333 bytes.
 */
static const uint8_t real_hello[] = {
	0x16, 0x03, 0x01, 0x01, 0x48, 0x01, 0x00, 0x01, 0x44, 0x03, 0x03, 0x52,
	0xf5, 0x51, 0x6d, 0x85, 0xb6, 0x7b, 0x69, 0x19, 0x64, 0x9a, 0x1c, 0xa6,
	0xfa, 0x17, 0x89, 0x11, 0xd0, 0x12, 0x91, 0x66, 0x7d, 0x31, 0x67, 0x18,
	0xd6, 0xfe, 0xcc, 0x68, 0x1c, 0x39, 0xd6, 0x20, 0xe4, 0x8c, 0xe2, 0xb5,
	0xdb, 0xe2, 0xb0, 0xe0, 0x54, 0xc3, 0x00, 0xd9, 0xfa, 0x33, 0xc1, 0xe6,
	0xf6, 0x11, 0xa2, 0xf0, 0xef, 0xd3, 0x65, 0x92, 0xac, 0x25, 0xc3, 0x48,
	0xd1, 0x97, 0x5d, 0x7f, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
	0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
	0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
	0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xbd,
	0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00, 0x09, 0x78, 0x2e, 0x65,
	0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00,
	0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17,
	0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02,
	0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10, 0x00, 0x0e,
	0x00, 0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74, 0x70, 0x2f, 0x31,
	0x2e, 0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
	0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07,
	0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05,
	0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01,
	0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09,
	0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00,
	0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00,
	0x20, 0x70, 0xf0, 0xeb, 0xa9, 0x37, 0xda, 0xe8, 0x7f, 0x66, 0x20, 0x1e,
	0x9f, 0x26, 0x1a, 0x69, 0x9c, 0x0f, 0xf9, 0x12, 0x70, 0x5d, 0xef, 0xcf,
	0x86, 0x0f, 0xf2, 0x60, 0x66, 0xe8, 0x70, 0xb0, 0x6e,
};

static uint8_t	hs[BUFSZ], rec[BUFSZ];

static void
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A ClientHello handshake message, header included; exts may be NULL. */
static size_t
hello_build(uint8_t *out, const struct ext *exts, size_t next, int noexts)
{
	size_t	n = 0, i, start;

	out[n++] = 1;
	n += 3;				/* length, below */
	out[n++] = 3;
	out[n++] = 3;
	for (i = 0; i < 32; i++)
		out[n++] = (uint8_t)i;	/* random */
	out[n++] = 32;
	for (i = 0; i < 32; i++)
		out[n++] = (uint8_t)(0xa0 + i);
	put16(out + n, 4);
	n += 2;
	out[n++] = 0x13;
	out[n++] = 0x01;
	out[n++] = 0x13;
	out[n++] = 0x02;
	out[n++] = 1;
	out[n++] = 0;
	assert_int_equal(n, OFF_EXTS);
	if (!noexts) {
		start = n;
		n += 2;
		for (i = 0; i < next; i++) {
			put16(out + n, exts[i].type);
			put16(out + n + 2, exts[i].len);
			memcpy(out + n + 4, exts[i].data, exts[i].len);
			n += 4 + exts[i].len;
		}
		put16(out + start, n - start - 2);
	}
	out[1] = (uint8_t)((n - 4) >> 16);
	put16(out + 2, n - 4);
	return n;
}

/* server_name data holding one host_name. */
static size_t
sni_data(uint8_t *out, const char *name, size_t len)
{
	put16(out, len + 3);
	out[2] = 0;
	put16(out + 3, len);
	memcpy(out + 5, name, len);
	return len + 5;
}

/* ALPN data from a NULL-terminated list. */
static size_t
alpn_data(uint8_t *out, const char *const *protos)
{
	size_t	n = 2, l;

	for (; *protos != NULL; protos++) {
		l = strlen(*protos);
		out[n++] = (uint8_t)l;
		memcpy(out + n, *protos, l);
		n += l;
	}
	put16(out, n - 2);
	return n;
}

/* Wrap a handshake message in records of at most frag bytes each. */
static size_t
records(uint8_t *out, const uint8_t *msg, size_t len, size_t frag)
{
	size_t	n = 0, off, l;

	for (off = 0; off < len; off += l) {
		l = len - off < frag ? len - off : frag;
		out[n++] = 22;
		out[n++] = 3;
		out[n++] = 1;
		put16(out + n, l);
		n += 2;
		memcpy(out + n, msg + off, l);
		n += l;
	}
	return n;
}

/* The same cut into nrec records of about equal size. */
static size_t
records_n(uint8_t *out, const uint8_t *msg, size_t len, size_t nrec)
{
	return records(out, msg, len, (len + nrec - 1) / nrec);
}

/* A hello naming name, with optional ALPN and padding, in one record. */
static size_t
simple_hello(uint8_t *out, const char *name, const char *const *alpn,
    size_t pad)
{
	static uint8_t	sd[300], ad[2000], pd[BUFSZ];
	struct ext	e[3];
	size_t		n = 0, l;

	if (name != NULL) {
		e[n].type = 0;
		e[n].data = sd;
		e[n++].len = sni_data(sd, name, strlen(name));
	}
	if (alpn != NULL) {
		e[n].type = 16;
		e[n].data = ad;
		e[n++].len = alpn_data(ad, alpn);
	}
	if (pad > 0) {
		memset(pd, 0, pad);
		e[n].type = 21;
		e[n].data = pd;
		e[n++].len = pad;
	}
	l = hello_build(hs, e, n, 0);
	return records(out, hs, l, 16384);
}

static enum gw_sni_result
parse(const uint8_t *buf, size_t len, size_t max, struct gw_sni_hello *h)
{
	return gw_sni_parse(buf, len, max, h);
}

/* Every strict prefix of a hello that fits is a request for more. */
static void
check_prefixes(const uint8_t *buf, size_t len)
{
	struct gw_sni_hello	h;
	size_t			i;

	for (i = 0; i < len; i++) {
		if (parse(buf, i, BIG, &h) != GW_SNI_NEED_MORE)
			fail_msg("prefix of %zu/%zu bytes: not need-more",
			    i, len);
	}
}

static void
test_real_hello(void **state)
{
	struct gw_sni_hello	h;
	uint8_t			buf[sizeof(real_hello) + 10];

	(void)state;
	assert_int_equal(parse(real_hello, sizeof(real_hello), BIG, &h),
	    GW_SNI_FOUND);
	assert_true(h.has_name);
	assert_string_equal(h.name, "x.example");
	assert_int_equal(h.nalpn, 2);
	assert_string_equal(h.alpn[0], "h2");
	assert_string_equal(h.alpn[1], "http/1.1");
	assert_int_equal(h.consumed, sizeof(real_hello));
	check_prefixes(real_hello, sizeof(real_hello));

	/* What follows the hello is left alone, even if not handshake. */
	memcpy(buf, real_hello, sizeof(real_hello));
	memcpy(buf + sizeof(real_hello), "\x17\x03\x03\x00\x05hello", 10);
	assert_int_equal(parse(buf, sizeof(buf), BIG, &h), GW_SNI_FOUND);
	assert_int_equal(h.consumed, sizeof(real_hello));

	/* The cap counts the hello's records only. */
	assert_int_equal(parse(buf, sizeof(buf), sizeof(real_hello), &h),
	    GW_SNI_FOUND);
	assert_int_equal(parse(real_hello, sizeof(real_hello),
	    sizeof(real_hello) - 1, &h), GW_SNI_TOO_BIG);

	/* The same hello with record version 3.0, as some clients send,
	 * and 3.3: the record version is to be ignored (RFC 8446 5.1). */
	memcpy(buf, real_hello, sizeof(real_hello));
	buf[2] = 0;
	assert_int_equal(parse(buf, sizeof(real_hello), BIG, &h),
	    GW_SNI_FOUND);
	assert_string_equal(h.name, "x.example");
	check_prefixes(buf, sizeof(real_hello));
	buf[2] = 3;
	assert_int_equal(parse(buf, sizeof(real_hello), BIG, &h),
	    GW_SNI_FOUND);
	assert_string_equal(h.name, "x.example");
}

/* The captured hello re-cut into 2, 3 and many records. */
static void
test_real_split(void **state)
{
	static const size_t	nrecs[] = { 2, 3, 7, 100, 324 };
	struct gw_sni_hello	h;
	const uint8_t		*msg = real_hello + 5;
	size_t			msglen = sizeof(real_hello) - 5, i, n;

	(void)state;
	for (i = 0; i < sizeof(nrecs) / sizeof(nrecs[0]); i++) {
		n = records_n(rec, msg, msglen, nrecs[i]);
		assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
		assert_string_equal(h.name, "x.example");
		assert_int_equal(h.nalpn, 2);
		assert_string_equal(h.alpn[1], "http/1.1");
		assert_int_equal(h.consumed, n);
		check_prefixes(rec, n);
	}
}

static void
test_split(void **state)
{
	static const char *const alpn[] = { "h2", "http/1.1", NULL };
	static const size_t	frags[] = { 1, 2, 3, 4, 5, 50, 100, 16384 };
	struct gw_sni_hello	h;
	size_t			i, n, l, nrec;

	(void)state;
	simple_hello(rec, "split.example", alpn, 0);
	l = (size_t)(hs[1] << 16 | hs[2] << 8 | hs[3]) + 4;
	for (nrec = 1; nrec <= 3; nrec++) {
		n = records_n(rec, hs, l, nrec);
		assert_int_equal(n, l + 5 * nrec);
		assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
		assert_string_equal(h.name, "split.example");
		assert_int_equal(h.consumed, n);
		check_prefixes(rec, n);
	}
	/* Fragments so small that the handshake header is split too. */
	for (i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		n = records(rec, hs, l, frags[i]);
		assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
		assert_string_equal(h.name, "split.example");
		assert_int_equal(h.nalpn, 2);
		assert_int_equal(h.consumed, n);
		check_prefixes(rec, n);
	}
}

/* Post-quantum key shares push hellos past one MTU. */
static void
test_large(void **state)
{
	struct gw_sni_hello	h;
	size_t			n, l;

	(void)state;
	n = simple_hello(rec, "big.example", NULL, 1600);
	assert_true(n > 1500);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "big.example");
	assert_int_equal(h.consumed, n);
	check_prefixes(rec, n);

	l = n - 5;
	n = records_n(rec, hs, l, 2);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_int_equal(h.consumed, n);
	check_prefixes(rec, n);

	/* Spread over many records up to nearly the cap. */
	simple_hello(rec, "bigger.example", NULL, 15000);
	l = (size_t)(hs[1] << 16 | hs[2] << 8 | hs[3]) + 4;
	n = records(rec, hs, l, 1000);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "bigger.example");
	assert_int_equal(h.consumed, n);
}

static void
test_too_big(void **state)
{
	struct gw_sni_hello	h;
	size_t			n, l;

	(void)state;
	n = simple_hello(rec, "big.example", NULL, 2000);
	assert_int_equal(parse(rec, n, 1024, &h), GW_SNI_TOO_BIG);
	/* Known as soon as the handshake length is there. */
	assert_int_equal(parse(rec, 9, 1024, &h), GW_SNI_TOO_BIG);
	assert_int_equal(parse(rec, 8, 1024, &h), GW_SNI_TOO_BIG);
	assert_int_equal(parse(rec, n, n, &h), GW_SNI_FOUND);
	assert_int_equal(parse(rec, n, n - 1, &h), GW_SNI_TOO_BIG);

	/* In several records: each header counts against the cap. */
	l = n - 5;
	n = records_n(rec, hs, l, 3);
	assert_int_equal(parse(rec, n, n, &h), GW_SNI_FOUND);
	assert_int_equal(parse(rec, n, n - 1, &h), GW_SNI_TOO_BIG);
	/* Early, the bound assumes one more record at least. */
	assert_int_equal(parse(rec, 9, n - 5, &h), GW_SNI_NEED_MORE);
	assert_int_equal(parse(rec, 9, n - 6, &h), GW_SNI_TOO_BIG);
	check_prefixes(rec, n);

	/* A cap smaller than any hello: refused once that much is in. */
	assert_int_equal(parse(rec, 3, 4, &h), GW_SNI_NEED_MORE);
	assert_int_equal(parse(rec, 4, 4, &h), GW_SNI_TOO_BIG);
	assert_int_equal(parse(rec, 0, 0, &h), GW_SNI_TOO_BIG);

	/* A length beyond what a 64k reassembly can hold. */
	memcpy(rec, "\x16\x03\x01\x40\x00\x01\x01\x00\x01", 9);
	assert_int_equal(parse(rec, 9, 1 << 20, &h), GW_SNI_TOO_BIG);
	memcpy(rec, "\x16\x03\x01\x40\x00\x01\x00\xf0\x00", 9);
	assert_int_equal(parse(rec, 9, 1 << 20, &h), GW_SNI_NEED_MORE);
	assert_int_equal(parse(rec, 9, 10000, &h), GW_SNI_TOO_BIG);
}

/* The largest hello reassembled is 64k of body, in five records. */
static void
test_reassembly_limit(void **state)
{
	struct gw_sni_hello	h;
	size_t			n;

	(void)state;
	n = simple_hello(rec, "huge.example", NULL, 65536 - 81 - 21);
	assert_int_equal(n, 65536 + 4 + 5 * 5);
	assert_int_equal(parse(rec, n, 1 << 20, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "huge.example");
	assert_int_equal(h.consumed, n);
	assert_int_equal(parse(rec, n, n - 1, &h), GW_SNI_TOO_BIG);

	n = simple_hello(rec, "huge.example", NULL, 65536 - 80 - 21);
	assert_int_equal(parse(rec, n, 1 << 20, &h), GW_SNI_TOO_BIG);
}

static void
test_no_sni(void **state)
{
	static const char *const alpn[] = { "h2", NULL };
	struct gw_sni_hello	h;
	size_t			n;

	(void)state;
	n = simple_hello(rec, NULL, alpn, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_false(h.has_name);
	assert_string_equal(h.name, "");
	assert_int_equal(h.nalpn, 1);
	assert_int_equal(h.consumed, n);

	/* No extension block at all, as an SSLv3-era client sends. */
	n = records(rec, hs, hello_build(hs, NULL, 0, 1), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_false(h.has_name);
	assert_int_equal(h.nalpn, 0);

	/* An empty extension block. */
	n = records(rec, hs, hello_build(hs, NULL, 0, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_false(h.has_name);
}

static const struct {
	const char	*in;
	const char	*want;
} good_names[] = {
	{ "x.example", "x.example" },
	{ "WWW.Example.COM.", "www.example.com" },
	{ "MiXeD-Case.example", "mixed-case.example" },
	{ "localhost", "localhost" },
	{ "a1-b2.c3.example", "a1-b2.c3.example" },
	{ "_acme.example", "_acme.example" },
};

static void
test_good_names(void **state)
{
	struct gw_sni_hello	h;
	size_t			i, n;

	(void)state;
	for (i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++) {
		n = simple_hello(rec, good_names[i].in, NULL, 0);
		assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
		assert_true(h.has_name);
		assert_string_equal(h.name, good_names[i].want);
	}
}

static void
test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", ".", "a..b", ".a.example", "a.example..",
		"bad!char.example",
		"sp ace.example", "-lead.example", "trail-.example",
		"*.example", "a/b.example", "a:443", "caf\xc3\xa9.example",
	};
	struct gw_sni_hello	h;
	char			name[300];
	size_t			i, n, l;
	uint8_t			sd[400];
	struct ext		e;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = simple_hello(rec, bad[i], NULL, 0);
		if (parse(rec, n, BIG, &h) != GW_SNI_MALFORMED)
			fail_msg("'%s' accepted", bad[i]);
	}

	/* A 64-byte label; then 254 bytes in all. */
	memset(name, 'a', 64);
	strcpy(name + 64, ".example");
	n = simple_hello(rec, name, NULL, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	n = simple_hello(rec, name + 1, NULL, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);

	for (l = 0; l < 254; l++)
		name[l] = l % 2 ? '.' : 'a';
	name[253] = 'b';
	name[254] = '\0';
	n = simple_hello(rec, name, NULL, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	n = simple_hello(rec, name + 1, NULL, 0);	/* 253, starts '.' */
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	n = simple_hello(rec, name + 2, NULL, 0);	/* 252 */
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_int_equal(strlen(h.name), 252);

	/* A NUL inside the name. */
	e.type = 0;
	e.data = sd;
	e.len = sni_data(sd, "evil.example\0.good.example", 26);
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

static void
test_alpn(void **state)
{
	static const char *const many[] = { "a", "b", "c", "d", "e", "f",
	    "g", "h", "i", "j", NULL };
	static const char *const one[] = { "acme-tls/1", NULL };
	const char		*longp[2];
	char			p255[256];
	struct gw_sni_hello	h;
	struct ext		e;
	uint8_t			ad[64];
	size_t			n, i;

	(void)state;
	n = simple_hello(rec, "a.example", many, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_int_equal(h.nalpn, GW_SNI_ALPN_MAX);
	for (i = 0; i < GW_SNI_ALPN_MAX; i++)
		assert_string_equal(h.alpn[i], many[i]);

	n = simple_hello(rec, "a.example", one, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_int_equal(h.nalpn, 1);
	assert_string_equal(h.alpn[0], "acme-tls/1");

	memset(p255, 'p', 255);
	p255[255] = '\0';
	longp[0] = p255;
	longp[1] = NULL;
	n = simple_hello(rec, "a.example", longp, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_int_equal(strlen(h.alpn[0]), 255);

	e.type = 16;
	e.data = ad;
	/* An empty protocol name. */
	memcpy(ad, "\x00\x04\x02h2\x00", 6);
	e.len = 6;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* An empty list. */
	memcpy(ad, "\x00\x00", 2);
	e.len = 2;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* No list at all. */
	e.len = 0;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* A NUL in a name. */
	memcpy(ad, "\x00\x03\x02h\x00", 5);
	e.len = 5;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* A name running past the list. */
	memcpy(ad, "\x00\x03\x03h2", 5);
	e.len = 5;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* Bytes after the list. */
	memcpy(ad, "\x00\x03\x02h2\x00", 6);
	e.len = 6;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

static void
test_server_name_list(void **state)
{
	struct gw_sni_hello	h;
	struct ext		e;
	uint8_t			sd[64];
	size_t			n;

	(void)state;
	e.type = 0;
	e.data = sd;
	/* Only an unknown name type: present, but nothing to route by. */
	memcpy(sd, "\x00\x06\x07\x00\x03" "abc", 8);
	e.len = 8;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_false(h.has_name);
	/* An unknown type, then host_name. */
	memcpy(sd, "\x00\x0e\x07\x00\x03" "abc\x00\x00\x05" "a.exa", 16);
	e.len = 16;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "a.exa");
	/* Two host_names. */
	memcpy(sd, "\x00\x0e\x00\x00\x03" "b.x\x00\x00\x05" "a.exa", 16);
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* Empty list; no list; empty host_name. */
	memcpy(sd, "\x00\x00", 2);
	e.len = 2;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	e.len = 0;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	memcpy(sd, "\x00\x03\x00\x00\x00", 5);
	e.len = 5;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* A name running past the list; list past the extension. */
	memcpy(sd, "\x00\x06\x00\x00\x04" "abc", 8);
	e.len = 8;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	memcpy(sd, "\x00\x07\x00\x00\x03" "abc", 8);
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* Bytes after the list. */
	memcpy(sd, "\x00\x06\x00\x00\x03" "abcX", 9);
	e.len = 9;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

/*
 * An IP address as server_name (RFC 6066 forbids it, some clients send
 * it) is a hello without a usable name, not a name to look up.
 */
static void
test_ip_literal(void **state)
{
	static const char *const lit[] = {
		"127.0.0.1", "192.168.1.1.", "10.1", "3232235777", "a.0x7f",
		"a.example.123", "::1", "[::1]", "2001:db8::1", "::ffff:1.2.3.4",
		"FE80::1",
	};
	static const char *const bad[] = {
		":::", "[::1", "::1]", "[]", "1:2:3:4:5:6:7:8:9", "[a.example]",
		"127.0.0.1:443",
	};
	struct gw_sni_hello	h;
	struct ext		e;
	uint8_t			sd[64];
	size_t			i, n;

	(void)state;
	for (i = 0; i < sizeof(lit) / sizeof(lit[0]); i++) {
		n = simple_hello(rec, lit[i], NULL, 0);
		if (parse(rec, n, BIG, &h) != GW_SNI_FOUND)
			fail_msg("'%s' not found", lit[i]);
		if (h.has_name || !h.ip_literal || h.name[0] != '\0')
			fail_msg("'%s' taken for a name", lit[i]);
		assert_int_equal(h.consumed, n);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = simple_hello(rec, bad[i], NULL, 0);
		if (parse(rec, n, BIG, &h) != GW_SNI_MALFORMED)
			fail_msg("'%s' accepted", bad[i]);
	}
	/* Names that only look numeric stay names. */
	n = simple_hello(rec, "1x.example", NULL, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_true(h.has_name);
	assert_false(h.ip_literal);
	assert_string_equal(h.name, "1x.example");
	n = simple_hello(rec, "123.example", NULL, 0);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "123.example");
	/* An address and a name: still two host_names. */
	e.type = 0;
	e.data = sd;
	memcpy(sd, "\x00\x10\x00\x00\x03" "::1\x00\x00\x07" "a.exam1", 18);
	e.len = 18;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	memcpy(sd, "\x00\x10\x00\x00\x07" "a.exam1\x00\x00\x03" "::1", 18);
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* An address with a NUL inside is garbage. */
	memcpy(sd, "\x00\x07\x00\x00\x04" "::1\x00", 9);
	e.len = 9;
	n = records(rec, hs, hello_build(hs, &e, 1, 0), 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

static void
test_duplicate_ext(void **state)
{
	static const uint16_t	types[] = { 0, 16, 21, 0x0a0a, 0xffff };
	struct gw_sni_hello	h;
	struct ext		e[3];
	uint8_t			sd[64], ad[64];
	size_t			i, n;

	(void)state;
	e[0].type = 0;
	e[0].data = sd;
	e[0].len = sni_data(sd, "a.example", 9);
	e[1].type = 16;
	e[1].data = ad;
	e[1].len = 5;
	memcpy(ad, "\x00\x03\x02h2", 5);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		e[2] = types[i] == 0 ? e[0] : e[1];
		e[2].type = types[i];
		if (types[i] > 16) {
			e[1].type = types[i];
			n = records(rec, hs, hello_build(hs, e, 2, 0), 16384);
			assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
		}
		n = records(rec, hs, hello_build(hs, e, 3, 0), 16384);
		if (parse(rec, n, BIG, &h) != GW_SNI_MALFORMED)
			fail_msg("duplicate type %u accepted", types[i]);
		e[1].type = 16;
	}
}

/* Valid hellos with one field pointing past its end. */
static void
test_bad_lengths(void **state)
{
	static const struct {
		const char	*what;
		size_t		 off;
		uint8_t		 val;
	} pokes[] = {
		{ "version 2.x", OFF_VERSION, 2 },
		{ "session_id of 33", OFF_SID, 33 },
		{ "session_id of 255", OFF_SID, 255 },
		{ "odd cipher_suites", OFF_SUITES + 1, 3 },
		{ "no cipher_suites", OFF_SUITES + 1, 0 },
		{ "cipher_suites too long", OFF_SUITES, 0x10 },
		{ "no compression", OFF_COMP, 0 },
		{ "compression too long", OFF_COMP, 200 },
		{ "extensions too long", OFF_EXTS + 1, 0xff },
		{ "extensions too short", OFF_EXTS + 1, 0x01 },
		{ "extension too long", OFF_EXTS + 5, 0xff },
		{ "sni list too long", OFF_EXTS + 7, 0xff },
		{ "sni name too long", OFF_EXTS + 10, 0xff },
		{ "handshake too short", 3, 0x30 },
		{ "not a ClientHello", 0, 2 },
	};
	struct gw_sni_hello	h;
	size_t			i, n, l;

	(void)state;
	for (i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		simple_hello(rec, "a.example", NULL, 0);
		l = (size_t)(hs[1] << 16 | hs[2] << 8 | hs[3]) + 4;
		hs[pokes[i].off] = pokes[i].val;
		n = records(rec, hs, l, 16384);
		if (parse(rec, n, BIG, &h) != GW_SNI_MALFORMED)
			fail_msg("%s: accepted", pokes[i].what);
		n = records_n(rec, hs, l, 3);
		if (parse(rec, n, BIG, &h) != GW_SNI_MALFORMED)
			fail_msg("%s in 3 records: accepted", pokes[i].what);
	}

	/* A handshake length past the record is just an unfinished hello. */
	n = simple_hello(rec, "a.example", NULL, 0);
	l = n - 5;
	hs[3] = 0xff;
	n = records(rec, hs, l, 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_NEED_MORE);
	n = records_n(rec, hs, l, 3);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_NEED_MORE);

	/* Bytes after the extensions block. */
	n = simple_hello(rec, "a.example", NULL, 0);
	l = n - 5;
	hs[l] = 0;
	put16(hs + 2, l - 3);
	n = records(rec, hs, l + 1, 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	/* ... and an extension header cut short. */
	hs[l] = 0;
	put16(hs + OFF_EXTS, l + 1 - OFF_EXTS - 2);
	n = records(rec, hs, l + 1, 16384);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

static void
test_records(void **state)
{
	struct gw_sni_hello	h;
	size_t			n, l;

	(void)state;
	n = simple_hello(rec, "a.example", NULL, 0);
	l = n - 5;

	/* Record versions 3.0 to 3.3 (RFC 8446 5.1: ignored), no other. */
	rec[2] = 3;
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	rec[2] = 0;
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "a.example");
	check_prefixes(rec, n);
	rec[2] = 4;
	assert_int_equal(parse(rec, 3, BIG, &h), GW_SNI_MALFORMED);
	rec[2] = 0xff;
	assert_int_equal(parse(rec, 3, BIG, &h), GW_SNI_MALFORMED);
	rec[2] = 1;
	rec[1] = 2;
	assert_int_equal(parse(rec, 2, BIG, &h), GW_SNI_MALFORMED);
	rec[1] = 3;

	/* A record longer than the hello it carries. */
	memcpy(rec + n, "\x00", 1);
	put16(rec + 3, l + 1);
	assert_int_equal(parse(rec, n + 1, BIG, &h), GW_SNI_MALFORMED);
	assert_int_equal(parse(rec, 9, BIG, &h), GW_SNI_MALFORMED);
	/* Empty and oversized records. */
	put16(rec + 3, 0);
	assert_int_equal(parse(rec, 5, BIG, &h), GW_SNI_MALFORMED);
	put16(rec + 3, 18433);
	assert_int_equal(parse(rec, 5, 1 << 20, &h), GW_SNI_MALFORMED);
	put16(rec + 3, l);

	/* Another record type between two halves of the hello. */
	n = records_n(rec, hs, l, 2);
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	/* Each record of the hello may carry any version from 3.0 to 3.3;
	 * a bad one in the second record fails on its own byte. */
	rec[2] = 0;
	rec[5 + (l + 1) / 2 + 2] = 3;
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	assert_string_equal(h.name, "a.example");
	rec[2] = 3;
	rec[5 + (l + 1) / 2 + 2] = 0;
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_FOUND);
	rec[5 + (l + 1) / 2 + 2] = 4;
	assert_int_equal(parse(rec, 5 + (l + 1) / 2 + 3, BIG, &h),
	    GW_SNI_MALFORMED);
	rec[2] = 1;
	rec[5 + (l + 1) / 2 + 2] = 1;
	rec[5 + (l + 1) / 2] = 21;	/* alert */
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	rec[5 + (l + 1) / 2] = 20;	/* change_cipher_spec */
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
	rec[5 + (l + 1) / 2] = 23;	/* application_data */
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);

	/* Not a handshake record at all. */
	n = simple_hello(rec, "a.example", NULL, 0);
	rec[0] = 23;
	assert_int_equal(parse(rec, n, BIG, &h), GW_SNI_MALFORMED);
}

/* Things that are not TLS fail on their first bytes. */
static void
test_garbage(void **state)
{
	static const char *const junk[] = {
		"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
		"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10",	/* SSLv2 */
		"\x00", "\xff", "\x15\x03\x01\x00\x02\x02\x28",
	};
	struct gw_sni_hello	h;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		if (parse((const uint8_t *)junk[i], 1, BIG, &h) !=
		    GW_SNI_MALFORMED)
			fail_msg("junk %zu not refused on byte 1", i);
		if (parse((const uint8_t *)junk[i], strlen(junk[i]) + 1, BIG,
		    &h) != GW_SNI_MALFORMED)
			fail_msg("junk %zu not refused", i);
	}
	/* A handshake record holding something else than a ClientHello. */
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x00\x40\x02",
	    6, BIG, &h), GW_SNI_MALFORMED);
	assert_int_equal(parse((const uint8_t *)"", 0, BIG, &h),
	    GW_SNI_NEED_MORE);
}

static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(gw_sni_result_name(GW_SNI_FOUND), "found");
	assert_string_equal(gw_sni_result_name(GW_SNI_NEED_MORE),
	    "need-more");
	assert_string_equal(gw_sni_result_name(GW_SNI_MALFORMED),
	    "malformed");
	assert_string_equal(gw_sni_result_name(GW_SNI_TOO_BIG), "too-big");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hello),
		cmocka_unit_test(test_real_split),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_reassembly_limit),
		cmocka_unit_test(test_no_sni),
		cmocka_unit_test(test_good_names),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_server_name_list),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_duplicate_ext),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
