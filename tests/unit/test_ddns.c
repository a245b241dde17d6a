/* SPDX-License-Identifier: ISC */
/*
 * ddns/: the key file reader (what tsig-keygen writes is accepted, each
 * mistake is named with its line), the update message (read back with
 * ldns: the sections RFC 2136 puts each part in, the classes that say
 * "add", "delete this record", "exists with exactly", "does not
 * exist"), and the check of answers (only a signed NOERROR counts).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>
#include <sodium.h>

#include "ddns.h"

static const char	keygen_text[] =
	"key \"porch-key\" {\n"
	"\talgorithm hmac-sha256;\n"
	"\tsecret \"SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizxcNDDp4g=\";\n"
	"};\n";

static int
parse(const char *text, struct ddns_key *k, char *err, size_t errlen)
{
	return ddns_key_parse(text, strlen(text), k, err, errlen);
}

static void
test_key_keygen_format(void **state)
{
	struct ddns_key	k;
	char		err[512];

	(void)state;
	assert_int_equal(parse(keygen_text, &k, err, sizeof(err)), 0);
	assert_string_equal(k.name, "porch-key.");
	assert_string_equal(k.alg, "hmac-sha256.");
	assert_string_equal(k.secret,
	    "SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizxcNDDp4g=");
	/* Comments of all three kinds, no quotes, one line, sha512. */
	assert_int_equal(parse("# made by hand\n// for porch\n/* a\nb */"
	    "key k.example. { secret \"SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizx"
	    "cNDDp4g=\"; algorithm HMAC-SHA512; };", &k, err, sizeof(err)), 0);
	assert_string_equal(k.name, "k.example.");
	assert_string_equal(k.alg, "hmac-sha512.");
}

static void
test_key_mistakes_named(void **state)
{
	static const struct {
		const char	*text, *want;
	} tab[] = {
		{ "", "no key in the file" },
		{ "# nothing\n", "no key in the file" },
		{ "zone \"x\" {};", "line 1: expected 'key', found 'zone'" },
		{ "key \"k\" {\n algorithm hmac-md5;\n secret \"AAAAAAAAAAAAAA"
		  "AAAAAAAAAA\";\n};", "line 2: algorithm 'hmac-md5' is not "
		  "hmac-sha256 or hmac-sha512" },
		{ "key \"k\" {\n algorithm hmac-sha384;", "line 2: algorithm "
		  "'hmac-sha384' is not" },
		{ "key \"k\" {\n algorithm hmac-sha256;\n secret \"not base64"
		  "\";\n};", "line 3: the secret must be a quoted base64" },
		{ "key \"k\" {\n algorithm hmac-sha256;\n secret \"AAAA\";\n};",
		  "line 3: the secret must be a quoted base64 string of at "
		  "least 16 bytes" },
		{ "key \"k\" { algorithm hmac-sha256; };",
		  "the key has no secret" },
		{ "key \"k\" { secret \"AAAAAAAAAAAAAAAAAAAAAAAA\"; };",
		  "the key has no algorithm" },
		{ "key \"k\" {\n algorithm hmac-sha256\n secret \"AAAAAAAAAAAA"
		  "AAAAAAAAAAAA\";\n};", "line 3: expected ';'" },
		{ "key \"k\" { algorithm hmac-sha256; secret \"AAAAAAAAAAAAAAA"
		  "AAAAAAAAA\"; }", "expected ';' before the end" },
		{ "key \"k\" {\n algorithm hmac-sha256;", "the key's '{' is "
		  "never closed" },
		{ "key \"k\" { owner x; };", "unknown statement 'owner' in the "
		  "key (allowed: algorithm, secret)" },
		{ "key \"k\" { algorithm hmac-sha256; secret \"AAAAAAAAAAAAAAA"
		  "AAAAAAAAA\"; };\nkey \"j\" {};", "line 2: a second key" },
		{ "key \"k\" { secret \"AAAA", "line 1: the secret must be" },
		{ "key \"k\" { \"algorithm", "unterminated string" },
		{ "/* never closed", "unterminated string or comment" },
		{ "key { };", "line 1: expected the key's name" },
		{ "key \"a..b\" { };", "line 1: the key's name must be a "
		  "domain name" },
		{ "key \"k\x7f\" { };", "the key's name must be" },
		{ "key \"k\" { algorithm hmac-sha256; secret \"SZzKmj7RIpcrx"
		  "gGSllJ6Ci\xbc\xbcZo21PJbjHylizxcNDDp4g=\"; };",
		  "the secret must be a quoted base64" },
	};
	struct ddns_key	k;
	char		err[512];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		assert_int_equal(parse(tab[i].text, &k, err, sizeof(err)), -1);
		if (strstr(err, tab[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err,
			    tab[i].want);
		/* Every message shows what the file should look like. */
		assert_non_null(strstr(err, "as tsig-keygen writes it"));
		/* Nothing of a half-read key is left. */
		assert_int_equal(k.secret[0], 0);
	}
}

static ldns_pkt *
wire_of(const struct ddns_msg *m)
{
	ldns_pkt	*pkt;
	size_t		 len;
	const uint8_t	*w = ddns_msg_wire(m, &len);

	assert_int_equal(ldns_wire2pkt(&pkt, w, len), LDNS_STATUS_OK);
	return pkt;
}

static void
test_msg_sections(void **state)
{
	const char *const	 have[] = { "192.0.2.1", "192.0.2.2" };
	struct ddns_prereq	 pre = { "app.example.test", DDNS_A, have, 2 };
	struct ddns_change	 ch[] = {
		{ 0, "app.example.test", DDNS_A, 60, "192.0.2.3" },
		{ 1, "app.example.test.", DDNS_A, 60, "192.0.2.1" },
		{ 0, "_acme-challenge.app.example.test", DDNS_TXT, 30,
		  "\"tok\"" },
	};
	struct ddns_key		 k;
	struct ddns_msg		*m;
	ldns_pkt		*pkt;
	ldns_rr_list		*l;
	char			 err[512];

	(void)state;
	assert_int_equal(parse(keygen_text, &k, err, sizeof(err)), 0);
	m = ddns_msg_new("example.test", &pre, ch, 3, &k, err, sizeof(err));
	assert_non_null(m);
	pkt = wire_of(m);
	assert_int_equal(ldns_pkt_get_opcode(pkt), LDNS_PACKET_UPDATE);
	/* Zone section: example.test SOA. */
	l = ldns_pkt_question(pkt);
	assert_int_equal(ldns_rr_list_rr_count(l), 1);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(l, 0)),
	    LDNS_RR_TYPE_SOA);
	/* Prerequisites: class IN, TTL 0, both records (2.4.2). */
	l = ldns_pkt_answer(pkt);
	assert_int_equal(ldns_rr_list_rr_count(l), 2);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(l, 1)),
	    LDNS_RR_CLASS_IN);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(l, 1)), 0);
	/* Updates: an add (IN, its TTL), a delete of one record (NONE,
	 * TTL 0: never ANY, which would delete the whole RRset). */
	l = ldns_pkt_authority(pkt);
	assert_int_equal(ldns_rr_list_rr_count(l), 3);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(l, 0)),
	    LDNS_RR_CLASS_IN);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(l, 0)), 60);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(l, 1)),
	    LDNS_RR_CLASS_NONE);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(l, 1)), 0);
	assert_int_equal(ldns_rr_rd_count(ldns_rr_list_rr(l, 1)), 1);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(l, 2)), 30);
	/* Signed with the key. */
	assert_non_null(ldns_pkt_tsig(pkt));
	ldns_pkt_free(pkt);
	ddns_msg_free(m);

	/* "Does not exist" (2.4.3): class NONE, no rdata. */
	pre.n = 0;
	m = ddns_msg_new("example.test", &pre, ch, 1, &k, err, sizeof(err));
	assert_non_null(m);
	pkt = wire_of(m);
	l = ldns_pkt_answer(pkt);
	assert_int_equal(ldns_rr_list_rr_count(l), 1);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(l, 0)),
	    LDNS_RR_CLASS_NONE);
	assert_int_equal(ldns_rr_rd_count(ldns_rr_list_rr(l, 0)), 0);
	ldns_pkt_free(pkt);
	ddns_msg_free(m);
}

static void
test_msg_refuses_bad_input(void **state)
{
	struct ddns_change	 out = { 0, "app.other.test", DDNS_A, 60,
	    "192.0.2.1" };
	struct ddns_change	 bad = { 0, "app.example.test", DDNS_A, 60,
	    "not-an-address" };
	struct ddns_key		 k;
	char			 err[512];

	(void)state;
	assert_int_equal(parse(keygen_text, &k, err, sizeof(err)), 0);
	assert_null(ddns_msg_new("example.test", NULL, &out, 1, &k, err,
	    sizeof(err)));
	assert_string_equal(err, "'app.other.test' is not in the zone");
	assert_null(ddns_msg_new("example.test", NULL, &bad, 1, &k, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "is not a record"));
}

/* An answer to m as a server would write it, signed with key or not. */
static uint8_t *
answer(const struct ddns_msg *m, int rcode, const struct ddns_key *key,
    int id_delta, size_t *len)
{
	ldns_pkt	*req, *pkt;
	size_t		 wl;
	const uint8_t	*w = ddns_msg_wire(m, &wl);
	uint8_t		*out;

	assert_int_equal(ldns_wire2pkt(&req, w, wl), LDNS_STATUS_OK);
	pkt = ldns_pkt_new();
	ldns_pkt_set_id(pkt, ldns_pkt_id(req) + id_delta);
	ldns_pkt_set_qr(pkt, true);
	ldns_pkt_set_opcode(pkt, LDNS_PACKET_UPDATE);
	ldns_pkt_set_rcode(pkt, (uint8_t)rcode);
	if (key != NULL)
		assert_int_equal(ldns_pkt_tsig_sign(pkt, key->name,
		    key->secret, 300, key->alg,
		    ldns_rr_rdf(ldns_pkt_tsig(req), 3)), LDNS_STATUS_OK);
	assert_int_equal(ldns_pkt2wire(&out, pkt, len), LDNS_STATUS_OK);
	ldns_pkt_free(pkt);
	ldns_pkt_free(req);
	return out;
}

static void
test_reply_checked(void **state)
{
	struct ddns_change	 ch = { 0, "app.example.test", DDNS_A, 60,
	    "192.0.2.1" };
	struct ddns_key		 k, other;
	struct ddns_result	 r;
	struct ddns_msg		*m;
	uint8_t			*w;
	size_t			 len;
	char			 err[512];

	(void)state;
	assert_int_equal(parse(keygen_text, &k, err, sizeof(err)), 0);
	other = k;
	memcpy(other.secret, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 45);
	m = ddns_msg_new("example.test", NULL, &ch, 1, &k, err, sizeof(err));
	assert_non_null(m);

	w = answer(m, LDNS_RCODE_NOERROR, &k, 0, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), 0);
	assert_int_equal(r.status, DDNS_OK);
	free(w);
	/* Another id is someone else's answer: keep waiting. */
	w = answer(m, LDNS_RCODE_NOERROR, &k, 1, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), -1);
	free(w);
	/* NOERROR unsigned, or signed by another key: not believed. */
	w = answer(m, LDNS_RCODE_NOERROR, NULL, 0, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), 0);
	assert_int_equal(r.status, DDNS_BADREPLY);
	free(w);
	w = answer(m, LDNS_RCODE_NOERROR, &other, 0, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), 0);
	assert_int_equal(r.status, DDNS_BADREPLY);
	free(w);
	/* Prerequisite failures are their own status. */
	w = answer(m, LDNS_RCODE_NXRRSET, &k, 0, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), 0);
	assert_int_equal(r.status, DDNS_PREREQ);
	assert_string_equal(r.text, "NXRRSET: the records changed since "
	    "they were read");
	free(w);
	w = answer(m, LDNS_RCODE_REFUSED, NULL, 0, &len);
	assert_int_equal(ddns_msg_reply(m, w, len, &k, &r), 0);
	assert_int_equal(r.status, DDNS_REFUSED);
	assert_non_null(strstr(r.text, "update-policy"));
	free(w);
	/* Garbage and short input. */
	assert_int_equal(ddns_msg_reply(m, (const uint8_t *)"xx", 2, &k, &r),
	    -1);
	ddns_msg_free(m);
}

static void
test_plan(void **state)
{
	struct ddns_rrset	 have;
	struct ddns_change	 out[8];
	const char *const	 want[] = { "192.0.2.1", "192.0.2.2",
	    "192.0.2.1" };
	const char *const	 dead[] = { "192.0.2.9", "192.0.2.2" };
	size_t			 n;

	(void)state;
	memset(&have, 0, sizeof(have));
	strcpy(have.rdata[0], "192.0.2.9");	/* given up: deleted */
	strcpy(have.rdata[1], "203.0.113.5");	/* not ours: kept */
	strcpy(have.rdata[2], "192.0.2.2");	/* wanted and dead: kept */
	have.n = 3;
	n = ddns_plan("a.example.test", DDNS_A, 60, &have, want, 3, dead, 2,
	    out, 8);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].del, 0);
	assert_string_equal(out[0].rdata, "192.0.2.1");	/* once */
	assert_int_equal(out[0].ttl, 60);
	assert_int_equal(out[1].del, 1);
	assert_string_equal(out[1].rdata, "192.0.2.9");
	/* Nothing wanted: the dead still go (the caller decides when a
	 * name keeps its stale addresses rather than none). */
	assert_int_equal(ddns_plan("a.example.test", DDNS_A, 60, &have,
	    want, 0, dead, 2, out, 8), 2);
	/* The cap holds. */
	assert_int_equal(ddns_plan("a.example.test", DDNS_A, 60, &have,
	    want, 3, dead, 2, out, 1), 1);
}

static void
test_rdata_norm(void **state)
{
	char	out[DDNS_RDATA_MAX];

	(void)state;
	assert_int_equal(ddns_rdata_norm(DDNS_AAAA, "2001:DB8:0:0::1", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(ddns_rdata_norm(DDNS_TXT, "tok", out, sizeof(out)),
	    0);
	assert_string_equal(out, "\"tok\"");
	assert_int_equal(ddns_rdata_norm(DDNS_CAA, "0 issue \"ca.test; "
	    "accounturi=https://ca.test/acct/1\"", out, sizeof(out)), 0);
	assert_string_equal(out, "0 issue \"ca.test; "
	    "accounturi=https://ca.test/acct/1\"");
	assert_int_equal(ddns_rdata_norm(DDNS_A, "300.1.1.1", out,
	    sizeof(out)), -1);
	assert_int_equal(ddns_rdata_norm(DDNS_A, "192.0.2.1", out, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_keygen_format),
		cmocka_unit_test(test_key_mistakes_named),
		cmocka_unit_test(test_msg_sections),
		cmocka_unit_test(test_msg_refuses_bad_input),
		cmocka_unit_test(test_reply_checked),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_rdata_norm),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
