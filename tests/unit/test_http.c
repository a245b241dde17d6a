/* SPDX-License-Identifier: ISC */
/*
 * gw_http_parse() against tables of good and bad request heads, and every
 * prefix of the good ones.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw_http.h"

#define BIG	16384

static const struct {
	const char	*in;
	const char	*host;
	const char	*method;
	const char	*path;
	size_t		 body;		/* bytes after the head */
} good[] = {
	{ "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	    "example.com", "GET", "/", 0 },
	{ "GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\n"
	    "User-Agent: t\r\n\r\n", "example.com", "GET", "/a?b=c", 0 },
	{ "GET / HTTP/1.1\nHost: lf.example\n\n",
	    "lf.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: mixed.example\n\r\n",
	    "mixed.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: WWW.Example.COM.\r\n\r\n",
	    "www.example.com", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nhOsT:  \t spaces.example \t \r\n\r\n",
	    "spaces.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost:nospace.example\r\n\r\n",
	    "nospace.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: port.example:\r\n\r\n",
	    "port.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: port.example:65535\r\n\r\n",
	    "port.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: _acme.example\r\n\r\n",
	    "_acme.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    "localhost", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: a.example\r\n\r\nPOSTDATA",
	    "a.example", "GET", "/", 8 },
	{ "POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n"
	    "\r\nbody", "a.example", "POST", "/up", 4 },
	{ "GET / HTTP/1.0\r\nHost: old.example\r\n\r\n",
	    "old.example", "GET", "/", 0 },
	{ "OPTIONS * HTTP/1.1\r\nHost: star.example\r\n\r\n",
	    "star.example", "OPTIONS", "*", 0 },
	{ "GET http://abs.example:81/x HTTP/1.1\r\nHost: other.example\r\n"
	    "\r\n", "abs.example", "GET", "http://abs.example:81/x", 0 },
	{ "GET HTTPS://Abs.Example?q HTTP/1.1\r\nHost: x\r\n\r\n",
	    "abs.example", "GET", "HTTPS://Abs.Example?q", 0 },
	{ "GET http://abs.example HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n",
	    "abs.example", "GET", "http://abs.example", 0 },
	{ "GET http://abs.example/ HTTP/1.0\r\n\r\n",
	    "abs.example", "GET", "http://abs.example/", 0 },
	{ "M-SEARCH / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	    "a.example", "M-SEARCH", "/", 0 },
	{ "ABCDEFGHIJKLMNO / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	    "a.example", "ABCDEFGHIJKLMNO", "/", 0 },
	{ "GET /\xc3\xa9 HTTP/1.1\r\nHost: a.example\r\n"
	    "X-Utf8: caf\xc3\xa9\tbar\r\nX-Empty:\r\n\r\n",
	    "a.example", "GET", "/\xc3\xa9", 0 },
	{ "GET / HTTP/1.1\r\nX-Host: not.example\r\nHost: a.example\r\n"
	    "Hosts: b.example\r\n\r\n", "a.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: 1x.example\r\n\r\n",
	    "1x.example", "GET", "/", 0 },
	{ "GET / HTTP/1.1\r\nHost: example.0xg\r\n\r\n",
	    "example.0xg", "GET", "/", 0 },
	/* One empty line before the request line (RFC 9112 2.2). */
	{ "\r\nGET / HTTP/1.1\r\nHost: lead.example\r\n\r\n",
	    "lead.example", "GET", "/", 0 },
	{ "\nGET / HTTP/1.1\nHost: lead-lf.example\n\n",
	    "lead-lf.example", "GET", "/", 0 },
	{ "\r\nPOST /p HTTP/1.0\r\nHost: lead.example\r\n\r\nxy",
	    "lead.example", "POST", "/p", 2 },
};

static const struct {
	const char	*what;
	const char	*in;
} bad[] = {
	{ "no Host", "GET / HTTP/1.1\r\n\r\n" },
	{ "no Host in 1.0", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n" },
	{ "no Host, absolute-form",
	    "GET http://a.example/ HTTP/1.1\r\n\r\n" },
	{ "two Hosts", "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "two Hosts, cases", "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "host: b.example\r\n\r\n" },
	{ "two Hosts, absolute-form", "GET http://a.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\nHost: b.example\r\n\r\n" },
	{ "empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n" },
	{ "blank Host", "GET / HTTP/1.1\r\nHost:  \r\n\r\n" },
	{ "IPv4", "GET / HTTP/1.1\r\nHost: 192.168.1.1\r\n\r\n" },
	{ "IPv4 and port", "GET / HTTP/1.1\r\nHost: 1.2.3.4:80\r\n\r\n" },
	{ "short IPv4", "GET / HTTP/1.1\r\nHost: 10.1\r\n\r\n" },
	{ "IPv4 number", "GET / HTTP/1.1\r\nHost: 3232235777\r\n\r\n" },
	{ "hex IPv4", "GET / HTTP/1.1\r\nHost: a.0x7f\r\n\r\n" },
	{ "numeric TLD", "GET / HTTP/1.1\r\nHost: a.example.123\r\n\r\n" },
	{ "IPv6", "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n" },
	{ "IPv6 and port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n" },
	{ "absolute IPv4", "GET http://127.0.0.1/ HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "absolute IPv6", "GET http://[::1]:80/ HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "absolute, no authority", "GET http:///x HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "absolute, userinfo", "GET http://u:p@a.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "absolute, bad name", "GET http://a_b!.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "other scheme", "GET ftp://a.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "authority-form", "CONNECT a.example:443 HTTP/1.1\r\n"
	    "Host: a.example:443\r\n\r\n" },
	{ "bad port", "GET / HTTP/1.1\r\nHost: a.example:8o\r\n\r\n" },
	{ "port too big", "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n" },
	{ "port too long", "GET / HTTP/1.1\r\nHost: a.example:000080\r\n\r\n" },
	{ "two ports", "GET / HTTP/1.1\r\nHost: a.example:1:2\r\n\r\n" },
	{ "empty label", "GET / HTTP/1.1\r\nHost: a..example\r\n\r\n" },
	{ "leading hyphen", "GET / HTTP/1.1\r\nHost: -a.example\r\n\r\n" },
	{ "space in Host", "GET / HTTP/1.1\r\nHost: a example\r\n\r\n" },
	{ "wildcard", "GET / HTTP/1.1\r\nHost: *.example\r\n\r\n" },
	{ "obs-fold", "GET / HTTP/1.1\r\nHost: a.example\r\n x\r\n\r\n" },
	{ "obs-fold tab", "GET / HTTP/1.1\r\nX: y\r\n\tHost: a.example\r\n"
	    "\r\n" },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n" },
	{ "no colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n" },
	{ "empty name", "GET / HTTP/1.1\r\n: x\r\nHost: a.example\r\n\r\n" },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n" },
	{ "HTTP/1.2", "GET / HTTP/1.2\r\nHost: a.example\r\n\r\n" },
	{ "lower-case version", "GET / http/1.1\r\nHost: a.example\r\n\r\n" },
	{ "HTTP/0.9", "GET /\r\n\r\n" },
	{ "version tail", "GET / HTTP/1.10\r\nHost: a.example\r\n\r\n" },
	{ "trailing space", "GET / HTTP/1.1 \r\nHost: a.example\r\n\r\n" },
	{ "double space", "GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n" },
	{ "tab separator", "GET\t/ HTTP/1.1\r\nHost: a.example\r\n\r\n" },
	{ "long method", "ABCDEFGHIJKLMNOP / HTTP/1.1\r\nHost: a.example\r\n"
	    "\r\n" },
	{ "empty method", " / HTTP/1.1\r\nHost: a.example\r\n\r\n" },
	{ "two leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "two leading LFs", "\n\nGET / HTTP/1.1\r\nHost: a.example\r\n"
	    "\r\n" },
	{ "leading bare CR", "\rGET / HTTP/1.1\r\nHost: a.example\r\n\r\n" },
	{ "leading space line", " \r\nGET / HTTP/1.1\r\nHost: a.example\r\n"
	    "\r\n" },
	{ "empty line only", "\r\n\r\n" },
	{ "CR inside", "GET / HTTP/1.1\r\nHost: a.exa\rmple\r\n\r\n" },
	{ "bare CR ending", "GET / HTTP/1.1\rHost: a.example\r\r" },
	{ "control in value", "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "X: \x01\r\n\r\n" },
	{ "DEL in value", "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "X: \x7f\r\n\r\n" },
	{ "control in target", "GET /\x1b HTTP/1.1\r\nHost: a.example\r\n"
	    "\r\n" },
	{ "8-bit name", "GET / HTTP/1.1\r\nX\xc3\xa9: 1\r\n"
	    "Host: a.example\r\n\r\n" },
	{ "TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" },
	{ "SSH", "SSH-2.0-OpenSSH_9.6\r\n\r\n" },
};

/* Every prefix of a head that fits is a request for more. */
static void
check_prefixes(const char *in, size_t len)
{
	struct gw_http_head	h;
	size_t			i;

	for (i = 0; i < len; i++) {
		if (gw_http_parse((const uint8_t *)in, i, BIG, &h) !=
		    GW_HTTP_NEED_MORE)
			fail_msg("prefix %zu of '%s': not need-more", i, in);
	}
}

static void
test_good(void **state)
{
	struct gw_http_head	h;
	size_t			i, len, head;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		len = strlen(good[i].in);
		head = len - good[i].body;
		if (gw_http_parse((const uint8_t *)good[i].in, len, BIG, &h) !=
		    GW_HTTP_FOUND)
			fail_msg("'%s' refused", good[i].in);
		assert_string_equal(h.host, good[i].host);
		assert_string_equal(h.method, good[i].method);
		assert_string_equal(h.path, good[i].path);
		assert_int_equal(h.head_len, head);
		/* The cap is on the head only. */
		assert_int_equal(gw_http_parse((const uint8_t *)good[i].in,
		    len, head, &h), GW_HTTP_FOUND);
		assert_int_equal(gw_http_parse((const uint8_t *)good[i].in,
		    len, head - 1, &h), GW_HTTP_TOO_BIG);
		check_prefixes(good[i].in, head);
	}
}

static void
test_bad(void **state)
{
	struct gw_http_head	h;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (gw_http_parse((const uint8_t *)bad[i].in,
		    strlen(bad[i].in), BIG, &h) != GW_HTTP_MALFORMED)
			fail_msg("%s: accepted", bad[i].what);
		/* Nothing is left behind for a careless caller. */
		assert_string_equal(h.host, "");
		assert_int_equal(h.head_len, 0);
	}
}

/* Broken requests are refused before the head ends. */
static void
test_fail_fast(void **state)
{
	static const char *const early[] = {
		"\x16", "\x80", "\x00", " ", "\r\n\r\n", "\n\n", "\r\n\n",
		"\r\n ", "\r\n\x16", "GET\x01",
		"GET / HTTP/2", "GET / HTTP/1.2", "GET / HTTP/1.1x",
		"GET / http", "ABCDEFGHIJKLMNOP",
		"GET / HTTP/1.1\r\n ",
		"GET / HTTP/1.1\r\nHost : ",
		"GET / HTTP/1.1\r\nHost: a\x01",
		"GET / HTTP/1.1\r\nHost: a\rb",
	};
	struct gw_http_head	h;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
		/* +1 so that a test string may end in NUL. */
		if (gw_http_parse((const uint8_t *)early[i],
		    strlen(early[i]) + (early[i][0] == '\0'), BIG, &h) !=
		    GW_HTTP_MALFORMED)
			fail_msg("'%s' not refused early", early[i]);
	}
	assert_int_equal(gw_http_parse((const uint8_t *)"GET /\0", 6, BIG, &h),
	    GW_HTTP_MALFORMED);
}

static void
test_too_big(void **state)
{
	static char		buf[BIG + 100];
	struct gw_http_head	h;
	size_t			n;

	(void)state;
	n = (size_t)snprintf(buf, sizeof(buf),
	    "GET / HTTP/1.1\r\nHost: a.example\r\nCookie: ");
	memset(buf + n, 'c', BIG);
	assert_int_equal(gw_http_parse((const uint8_t *)buf, BIG - 1, BIG, &h),
	    GW_HTTP_NEED_MORE);
	assert_int_equal(gw_http_parse((const uint8_t *)buf, BIG, BIG, &h),
	    GW_HTTP_TOO_BIG);
	assert_int_equal(gw_http_parse((const uint8_t *)buf, BIG + 50, BIG,
	    &h), GW_HTTP_TOO_BIG);
	assert_int_equal(gw_http_parse((const uint8_t *)buf, 100, 50, &h),
	    GW_HTTP_TOO_BIG);

	/* Ends exactly at the cap. */
	memcpy(buf + BIG - 4, "\r\n\r\n", 4);
	assert_int_equal(gw_http_parse((const uint8_t *)buf, BIG + 50, BIG,
	    &h), GW_HTTP_FOUND);
	assert_int_equal(h.head_len, BIG);
	assert_string_equal(h.host, "a.example");
	assert_int_equal(gw_http_parse((const uint8_t *)buf, BIG + 50,
	    BIG - 1, &h), GW_HTTP_TOO_BIG);
	assert_int_equal(gw_http_parse((const uint8_t *)"", 0, 0, &h),
	    GW_HTTP_TOO_BIG);
}

static void
test_long_path(void **state)
{
	static char		buf[1024];
	struct gw_http_head	h;
	size_t			n;

	(void)state;
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'p', 400);
	n = 405;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n,
	    " HTTP/1.1\r\nHost: a.example\r\n\r\n");
	assert_int_equal(gw_http_parse((const uint8_t *)buf, n, BIG, &h),
	    GW_HTTP_FOUND);
	assert_int_equal(strlen(h.path), sizeof(h.path) - 1);
	assert_int_equal(h.path[0], '/');
	assert_int_equal(h.head_len, n);
}

static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(gw_http_result_name(GW_HTTP_FOUND), "found");
	assert_string_equal(gw_http_result_name(GW_HTTP_NEED_MORE),
	    "need-more");
	assert_string_equal(gw_http_result_name(GW_HTTP_MALFORMED),
	    "malformed");
	assert_string_equal(gw_http_result_name(GW_HTTP_TOO_BIG), "too-big");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_fail_fast),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
