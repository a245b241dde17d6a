/* SPDX-License-Identifier: ISC */
/*
 * acme: problem documents into plain messages, the RFC 9773 certID and
 * renewal window, header parsers, certificate keys, CSRs, the RFC 8737
 * validation certificate, the EAB binding and the state directory.
 * Nothing here talks to a CA or sleeps.
 */

#include <sys/stat.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_parse.h"
#include "acme_store.h"

/*
 * A P-256 leaf for app.example.test and www.example.test, serial
 * 0xC0FFEE1234 (high bit set: its DER carries a leading zero), issued by
 * "CN=porch test CA".  The certID was computed apart from porch:
 *   openssl x509 -noout -ext authorityKeyIdentifier -serial
 *   -> keyid 3C:75:EE:51:F4:89:10:E1:91:96:E0:B1:14:19:68:A4:87:AA:53:1A
 *      serial C0FFEE1234, DER content 00 C0 FF EE 12 34
 * each base64url-encoded without padding.
 */
static const char leaf_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBmjCCAUCgAwIBAgIGAMD/7hI0MAoGCCqGSM49BAMCMBgxFjAUBgNVBAMMDXBv\n"
    "cmNoIHRlc3QgQ0EwIBcNMjYxMTIyMDA0MTMyWhgPMjEyNjEwMjkwMDQxMzJaMBsx\n"
    "GTAXBgNVBAMMEGFwcC5leGFtcGxlLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
    "BwNCAASSNhER4/IxpQS9khLkqYssy/EiOg4J0p761t80nIW3LrYNyjuj/dOv/L3f\n"
    "6kmS9UgAP33lncinjBMmvG4WAYb+o3EwbzAtBgNVHREEJjAkghBhcHAuZXhhbXBs\n"
    "ZS50ZXN0ghB3d3cuZXhhbXBsZS50ZXN0MB8GA1UdIwQYMBaAFDx17lH0iRDhkZbg\n"
    "sRQZaKSHqlMaMB0GA1UdDgQWBBSUvjhHlTj05JjkAH363gkEo1StrjAKBggqhkjO\n"
    "PQQDAgNIADBFAiEApPkhuAcFtYBd9Jtr8IChDnQcciNYnuXsq4TL4h1OiKgCIE1r\n"
    "015rsRHP6qFaeQLdKAifO66vzZFBmqrGY1IE7jY6\n"
    "-----END CERTIFICATE-----\n";
static const char leaf_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4WJjLYbo2GRrtguA\n"
    "H7eVGJvbvVVOueaTyqW6MaLrL36hRANCAASSNhER4/IxpQS9khLkqYssy/EiOg4J\n"
    "0p761t80nIW3LrYNyjuj/dOv/L3f6kmS9UgAP33lncinjBMmvG4WAYb+\n"
    "-----END PRIVATE KEY-----\n";
#define LEAF_ARI_ID	"PHXuUfSJEOGRluCxFBlopIeqUxo.AMD_7hI0"
#define LEAF_NOT_BEFORE	1795308092	/* 2026-11-22 00:41:32 UTC */
#define LEAF_NOT_AFTER	4948908092LL	/* 2126-10-29 00:41:32 UTC */

#define URN	"urn:ietf:params:acme:error:"
#define RIP(b, s, e, err) \
	acme_parse_renewal_info((b), strlen(b), (s), (e), (err), sizeof(err))

static void	 has(const char *, const char *);
static void	 problem(const struct acme_problem_ctx *, const char *, int,
		    unsigned, struct acme_error *);
static char	*tmpdir(void);
static void	 rmtree(const char *);
static void	 test_store_state_dir_checked(void **);
static int	 count_versions(const char *);
static char	*slurp(const char *);

/* s contains sub, or the test fails showing s. */
static void
has(const char *s, const char *sub)
{
	if (strstr(s, sub) == NULL)
		fail_msg("'%s' not in '%s'", sub, s);
}

static void
problem(const struct acme_problem_ctx *ctx, const char *body, int status,
    unsigned retry, struct acme_error *e)
{
	acme_parse_problem(ctx, body, strlen(body), status, retry, e);
	/* One line, whatever the CA sent. */
	assert_null(strchr(e->msg, '\n'));
}

static void
test_problem_rate(void **state)
{
	struct acme_problem_ctx	ctx = { .what = "the new order" };
	struct acme_error	e;

	(void)state;
	problem(&ctx, "{\"type\":\"" URN "rateLimited\",\"detail\":\"too many "
	    "certificates already issued\",\"status\":429}", 429, 3600, &e);
	assert_int_equal(e.kind, ACME_ERR_RATE);
	assert_int_equal(e.http_status, 429);
	assert_int_equal(e.retry_after_s, 3600);
	assert_string_equal(e.type, URN "rateLimited");
	has(e.msg, "the CA's rate limit was hit (too many certificates "
	    "already issued); retry after 3600 s");
	problem(&ctx, "{\"type\":\"" URN "rateLimited\"}", 429, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_RATE);
	has(e.msg, "retry later");
}

static void
test_problem_dns(void **state)
{
	struct acme_problem_ctx	ctx = { .step = ACME_STEP_CHALLENGE,
				    .name = "app.example.test" };
	struct acme_error	e;

	(void)state;
	problem(&ctx, "{\"type\":\"" URN "dns\",\"detail\":\"NXDOMAIN looking "
	    "up A for app.example.test\"}", 0, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_DNS);
	has(e.msg, "app.example.test does not resolve for the CA (NXDOMAIN "
	    "looking up A for app.example.test); check that app.example.test "
	    "has A/AAAA records pointing at your gateways");
}

static void
test_problem_challenge(void **state)
{
	static const char	*types[] = { "connection", "unauthorized",
				    "incorrectResponse", "tls" };
	struct acme_problem_ctx	 ctx = { .step = ACME_STEP_CHALLENGE,
				    .name = "app.example.test" };
	struct acme_error	 e;
	char			 body[256];
	size_t			 i;

	(void)state;
	for (i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), "{\"type\":\"" URN "%s\","
		    "\"detail\":\"dial tcp 127.0.0.9:80: connection "
		    "refused\"}", types[i]);
		ctx.chal = ACME_CHAL_HTTP01;
		problem(&ctx, body, 0, 0, &e);
		assert_int_equal(e.kind, ACME_ERR_CHALLENGE);
		has(e.msg, "the CA could not validate app.example.test by "
		    "http-01 (dial tcp 127.0.0.9:80: connection refused); "
		    "check that app.example.test resolves to the gateways");
		has(e.msg, "port 80 (http-01) is reachable from the internet");
		has(e.msg, "grant app.example.test to this agent");
		ctx.chal = ACME_CHAL_TLSALPN01;
		problem(&ctx, body, 0, 0, &e);
		assert_int_equal(e.kind, ACME_ERR_CHALLENGE);
		has(e.msg, "by tls-alpn-01");
		has(e.msg, "port 443 (tls-alpn-01)");
	}
	/* Outside a challenge, unauthorized is just the CA saying no. */
	ctx.step = ACME_STEP_REQUEST;
	ctx.what = "the new order";
	problem(&ctx, "{\"type\":\"" URN "unauthorized\",\"detail\":\"no\"}",
	    403, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_CA);
}

static void
test_problem_account(void **state)
{
	struct acme_problem_ctx	ctx = { .step = ACME_STEP_ACCOUNT,
				    .what = "the new account" };
	struct acme_error	e;

	(void)state;
	problem(&ctx, "{\"type\":\"" URN "externalAccountRequired\","
	    "\"detail\":\"EAB required\"}", 400, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	has(e.msg, "add acme.eab with the kid and hmac_key");
	ctx.eab = 1;
	problem(&ctx, "{\"type\":\"" URN "unauthorized\",\"detail\":\"bad "
	    "MAC\"}", 401, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	has(e.msg, "the CA refused the external account binding (bad MAC); "
	    "check acme.eab.kid and hmac_key");
	problem(&ctx, "{\"type\":\"" URN "malformed\",\"detail\":\"EAB kid "
	    "unknown\"}", 400, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	has(e.msg, "check acme.eab.kid and hmac_key");
	problem(&ctx, "{\"type\":\"" URN "externalAccountRequired\"}", 400, 0,
	    &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	ctx.eab = 0;
	problem(&ctx, "{\"type\":\"" URN "unauthorized\",\"detail\":\"x\"}",
	    401, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	has(e.msg, "acme.eab");
	problem(&ctx, "{\"type\":\"" URN "invalidContact\",\"detail\":\"bad "
	    "domain\"}", 400, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_ACCOUNT);
	has(e.msg, "acme.email");
}

static void
test_problem_rejected(void **state)
{
	struct acme_problem_ctx	ctx = { .what = "the new order" };
	struct acme_error	e;

	(void)state;
	problem(&ctx, "{\"type\":\"" URN "rejectedIdentifier\",\"detail\":"
	    "\"policy forbids\",\"subproblems\":[{\"type\":\"" URN
	    "rejectedIdentifier\",\"detail\":\"blocked\",\"identifier\":"
	    "{\"type\":\"dns\",\"value\":\"blocked.example.test\"}}]}", 400,
	    0, &e);
	assert_int_equal(e.kind, ACME_ERR_REJECTED);
	has(e.msg, "the CA will not issue for blocked.example.test (policy "
	    "forbids)");
	problem(&ctx, "{\"type\":\"" URN "caa\",\"detail\":\"CAA forbids\"}",
	    403, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_REJECTED);
	has(e.msg, "CAA");
	/* A compound problem is judged by what it is made of. */
	problem(&ctx, "{\"type\":\"" URN "compound\",\"detail\":\"several\","
	    "\"subproblems\":[{\"type\":\"" URN "caa\",\"detail\":\"no CA "
	    "allowed\",\"identifier\":{\"type\":\"dns\",\"value\":"
	    "\"c.example.test\"}}]}", 403, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_REJECTED);
	has(e.msg, "c.example.test");
	has(e.msg, "no CA allowed");
	assert_string_equal(e.type, URN "compound");
}

static void
test_problem_other(void **state)
{
	struct acme_problem_ctx	ctx = { .what = "the finalize request" };
	struct acme_error	e;
	char			big[8192];

	(void)state;
	problem(&ctx, "{\"type\":\"" URN "serverInternal\",\"detail\":\"db "
	    "down\"}", 500, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_CA);
	assert_int_equal(e.http_status, 500);
	has(e.msg, "the CA answered the finalize request with serverInternal "
	    "(HTTP 500): db down");
	/* Not a problem document at all. */
	problem(&ctx, "<html>bad gateway</html>", 502, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_CA);
	has(e.msg, "HTTP 502");
	assert_null(strstr(e.msg, "html"));
	/* Wrong member types are no detail. */
	problem(&ctx, "{\"type\":7,\"detail\":[1]}", 400, 0, &e);
	assert_int_equal(e.kind, ACME_ERR_CA);
	/* Control characters and length are tamed. */
	problem(&ctx, "{\"type\":\"" URN "malformed\",\"detail\":\"a\\nb\\u001b"
	    "[31mc\"}", 400, 0, &e);
	has(e.msg, "a\\x0ab\\x1b[31mc");
	memset(big, 'x', sizeof(big));
	memcpy(big, "{\"type\":\"" URN "malformed\",\"detail\":\"", 51);
	strcpy(big + sizeof(big) - 4, "\"}");
	problem(&ctx, big, 400, 0, &e);
	assert_true(strlen(e.msg) < sizeof(e.msg) - 1);
}

static void
test_ari(void **state)
{
	struct acme_cert_info	 ci;
	char			 err[256];
	time_t			 s, e;

	(void)state;
	assert_int_equal(acme_cert_info(leaf_pem, &ci, err, sizeof(err)), 0);
	assert_string_equal(ci.ari_id, LEAF_ARI_ID);
	assert_string_equal(ci.serial, "c0ffee1234");
	assert_string_equal(ci.issuer, "CN=porch test CA");
	assert_int_equal(ci.not_before, LEAF_NOT_BEFORE);
	assert_true((long long)ci.not_after == LEAF_NOT_AFTER);
	assert_int_equal(ci.nnames, 2);
	assert_string_equal(ci.names[0], "app.example.test");
	assert_string_equal(ci.names[1], "www.example.test");
	acme_cert_info_clear(&ci);
	assert_int_equal(acme_cert_info("junk", &ci, err, sizeof(err)), -1);

	assert_int_equal(acme_parse_rfc3339("2025-01-02T03:04:05Z"),
	    1735787045);
	assert_int_equal(acme_parse_rfc3339("2025-01-02t03:04:05.123456z"),
	    1735787045);
	assert_int_equal(acme_parse_rfc3339("2025-01-02T05:04:05+02:00"),
	    1735787045);
	assert_int_equal(acme_parse_rfc3339("2025-01-01T23:04:05-04:00"),
	    1735787045);
	assert_int_equal(acme_parse_rfc3339("2025-01-02 03:04:05Z"), -1);
	assert_int_equal(acme_parse_rfc3339("2025-13-02T03:04:05Z"), -1);
	assert_int_equal(acme_parse_rfc3339("2025-01-02T03:04:05"), -1);
	assert_int_equal(acme_parse_rfc3339("2025-01-02T03:04:05Zjunk"), -1);
	assert_int_equal(acme_parse_rfc3339(""), -1);

	/* RFC 9773 section 4.2's example shape. */
	assert_int_equal(RIP("{\"suggestedWindow\":"
	    "{\"start\":\"2025-01-02T03:04:05Z\",\"end\":"
	    "\"2025-01-03T03:04:05Z\"},\"explanationURL\":"
	    "\"https://ca.example/x\"}", &s, &e, err), 0);
	assert_int_equal(s, 1735787045);
	assert_int_equal(e, 1735787045 + 86400);
	assert_int_equal(RIP("{\"suggestedWindow\":"
	    "{\"start\":\"2025-01-03T03:04:05Z\",\"end\":"
	    "\"2025-01-02T03:04:05Z\"}}", &s, &e, err), -1);
	has(err, "ends before");
	assert_int_equal(RIP("{\"suggestedWindow\":"
	    "{\"start\":1,\"end\":2}}", &s, &e, err), -1);
	assert_int_equal(RIP("[]", &s, &e, err), -1);
	assert_int_equal(RIP("{\"suggestedWindow\":{\"start\":"
	    "\"2025-01-02T03:04:05Z\"}}", &s, &e, err), -1);
}

static void
test_http_headers(void **state)
{
	char	*u;

	(void)state;
	assert_int_equal(acme_parse_retry_after("120", 0), 120);
	assert_int_equal(acme_parse_retry_after(" 7 ", 0), 7);
	assert_int_equal(acme_parse_retry_after("12x", 0), 0);
	assert_int_equal(acme_parse_retry_after("99999999999999999999", 0),
	    30 * 24 * 3600);
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
	assert_int_equal(acme_parse_retry_after("Sun, 06 Nov 1994 08:49:37 "
	    "GMT", 784111777 - 90), 90);
	assert_int_equal(acme_parse_retry_after("Sun, 06 Nov 1994 08:49:37 "
	    "GMT", 784111777 + 5), 0);
	assert_int_equal(acme_parse_retry_after("soon", 0), 0);

	u = acme_parse_link("<https://ca.example/issuer>;rel=\"up\"", "up");
	assert_string_equal(u, "https://ca.example/issuer");
	free(u);
	u = acme_parse_link("<https://a.example/x,y>; rel=\"index\", "
	    "<https://b.example/alt/1> ; title=\"x;y\"; rel=alternate",
	    "alternate");
	assert_string_equal(u, "https://b.example/alt/1");
	free(u);
	u = acme_parse_link("<https://a.example/>; rel=\"up other\"", "up");
	assert_string_equal(u, "https://a.example/");
	free(u);
	assert_null(acme_parse_link("<https://a.example/>; rel=\"upx\"", "up"));
	assert_null(acme_parse_link("https://a.example/; rel=up", "up"));
	assert_null(acme_parse_link("<https://a.example/", "up"));
	assert_null(acme_parse_link("", "up"));
}

static void
test_alpn_cert(void **state)
{
	X509			*x;
	EVP_PKEY		*pkey;
	ASN1_OBJECT		*obj;
	X509_EXTENSION		*ext;
	ASN1_OCTET_STRING	*os, *inner;
	GENERAL_NAMES		*gens;
	GENERAL_NAME		*g;
	const unsigned char	*p;
	unsigned char		 md[32];
	const char		*ka = "tok3n.thumbpr1nt";
	int			 idx;

	(void)state;
	assert_int_equal(acme_alpn_cert("app.example.test", ka, &x, &pkey),
	    0);
	assert_int_equal(X509_verify(x, pkey), 1);	/* self-signed */
	obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	idx = X509_get_ext_by_OBJ(x, obj, -1);
	assert_true(idx >= 0);
	ext = X509_get_ext(x, idx);
	assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
	/* extnValue is the DER of an OCTET STRING of SHA-256(key_auth). */
	os = X509_EXTENSION_get_data(ext);
	p = ASN1_STRING_get0_data(os);
	assert_int_equal(ASN1_STRING_length(os), 34);
	assert_int_equal(p[0], 0x04);
	assert_int_equal(p[1], 32);
	inner = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(os));
	assert_non_null(inner);
	EVP_Digest(ka, strlen(ka), md, NULL, EVP_sha256(), NULL);
	assert_int_equal(ASN1_STRING_length(inner), 32);
	assert_memory_equal(ASN1_STRING_get0_data(inner), md, 32);
	ASN1_OCTET_STRING_free(inner);
	/* Exactly the one name. */
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	g = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(g->type, GEN_DNS);
	assert_int_equal(ASN1_STRING_length(g->d.dNSName), 16);
	assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName),
	    "app.example.test", 16);
	GENERAL_NAMES_free(gens);
	ASN1_OBJECT_free(obj);
	X509_free(x);
	EVP_PKEY_free(pkey);
	assert_int_equal(acme_alpn_cert("bad name", ka, &x, &pkey), -1);
	assert_null(x);
}

static void
test_csr(void **state)
{
	static const char *const names[] = { "app.example.test",
	    "www.example.test", "api.example.test" };
	static const enum acme_key_type types[] = { ACME_KEY_EC_P256,
	    ACME_KEY_EC_P384, ACME_KEY_RSA_2048, ACME_KEY_RSA_3072 };
	static const char *const algs[] = { "EC", "EC", "RSA", "RSA" };
	static const int bits[] = { 256, 384, 2048, 3072 };
	const unsigned char	*p;
	unsigned char		*der;
	size_t			 len, i;
	char			*key, err[256];
	X509_REQ		*req;
	EVP_PKEY		*pub;
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES		*gens;
	GENERAL_NAME		*g;
	int			 j;

	(void)state;
	for (i = 0; i < 4; i++) {
		key = acme_certkey_new(types[i]);
		assert_non_null(key);
		has(key, "-----BEGIN PRIVATE KEY-----");
		assert_int_equal(acme_csr(key, names, 3, &der, &len, err,
		    sizeof(err)), 0);
		p = der;
		req = d2i_X509_REQ(NULL, &p, (long)len);
		assert_non_null(req);
		pub = X509_REQ_get0_pubkey(req);
		assert_true(EVP_PKEY_is_a(pub, algs[i]));
		assert_int_equal(EVP_PKEY_get_bits(pub), bits[i]);
		assert_int_equal(X509_REQ_verify(req, pub), 1);
		exts = X509_REQ_get_extensions(req);
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
		assert_int_equal(sk_GENERAL_NAME_num(gens), 3);
		for (j = 0; j < 3; j++) {
			g = sk_GENERAL_NAME_value(gens, j);
			assert_int_equal(g->type, GEN_DNS);
			assert_int_equal(ASN1_STRING_length(g->d.dNSName),
			    (int)strlen(names[j]));
			assert_memory_equal(ASN1_STRING_get0_data(
			    g->d.dNSName), names[j], strlen(names[j]));
		}
		GENERAL_NAMES_free(gens);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		X509_REQ_free(req);
		free(der);
		free(key);
	}
	assert_int_equal(acme_csr("not a key", names, 1, &der, &len, err,
	    sizeof(err)), -1);
	assert_int_equal(acme_csr(leaf_key, names, 0, &der, &len, err,
	    sizeof(err)), -1);
}

static void
test_key_match(void **state)
{
	char		*other;
	unsigned char	*der;
	size_t		 len;

	(void)state;
	assert_int_equal(acme_cert_key_match(leaf_pem, leaf_key), 1);
	other = acme_certkey_new(ACME_KEY_EC_P256);
	assert_int_equal(acme_cert_key_match(leaf_pem, other), 0);
	assert_int_equal(acme_cert_key_match("junk", leaf_key), 0);
	free(other);
	assert_int_equal(acme_cert_der(leaf_pem, &der, &len), 0);
	assert_true(len > 300 && der[0] == 0x30);
	free(der);
}

static void
test_eab(void **state)
{
	struct acme_key	*k;
	json_t		*eab, *prot, *jwk, *pay;
	unsigned char	 buf[1024], mac[32], key[32];
	unsigned int	 maclen;
	char		 err[256], input[2048], s64[64], hmac[64];
	const char	*p64, *j64;
	size_t		 len;

	(void)state;
	k = acme_key_generate();
	memset(key, 0xa5, sizeof(key));
	acme_b64url(key, sizeof(key), hmac, sizeof(hmac));
	eab = acme_jws_eab(k, "kid-1", hmac, "https://ca.example/new-acct",
	    err, sizeof(err));
	assert_non_null(eab);
	p64 = json_string_value(json_object_get(eab, "protected"));
	j64 = json_string_value(json_object_get(eab, "payload"));
	assert_int_equal(sodium_base642bin(buf, sizeof(buf) - 1, p64,
	    strlen(p64), NULL, &len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	buf[len] = '\0';
	prot = json_loads((char *)buf, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(prot, "alg")),
	    "HS256");
	assert_string_equal(json_string_value(json_object_get(prot, "kid")),
	    "kid-1");
	assert_string_equal(json_string_value(json_object_get(prot, "url")),
	    "https://ca.example/new-acct");
	assert_null(json_object_get(prot, "nonce"));
	assert_int_equal(sodium_base642bin(buf, sizeof(buf) - 1, j64,
	    strlen(j64), NULL, &len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	buf[len] = '\0';
	jwk = acme_jwk(k);
	pay = json_loads((char *)buf, 0, NULL);
	assert_true(json_equal(pay, jwk));
	json_decref(pay);
	/* The MAC, computed here with OpenSSL's one-shot HMAC. */
	snprintf(input, sizeof(input), "%s.%s", p64, j64);
	HMAC(EVP_sha256(), key, sizeof(key), (unsigned char *)input,
	    strlen(input), mac, &maclen);
	acme_b64url(mac, maclen, s64, sizeof(s64));
	assert_string_equal(json_string_value(json_object_get(eab,
	    "signature")), s64);
	json_decref(prot);
	json_decref(jwk);
	json_decref(eab);
	/* Padded keys are accepted; junk is refused without quoting it. */
	strcat(hmac, "=");
	eab = acme_jws_eab(k, "kid-1", hmac, "https://x/", err, sizeof(err));
	assert_non_null(eab);
	json_decref(eab);
	assert_null(acme_jws_eab(k, "kid-1", "s3cr*t!", "https://x/", err,
	    sizeof(err)));
	assert_null(strstr(err, "s3cr"));
	acme_key_free(k);
}

static void
test_store_cert(void **state)
{
	char			*dir, path[1024], link1[256], link2[256];
	char			*key, *chain, *k2, *c2, err[256], *text;
	char			 full[4096];
	struct stat		 st;
	struct acme_store_state	 s, s2;
	ssize_t			 n;

	(void)state;
	dir = tmpdir();
	assert_int_equal(acme_store_init(dir, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(full, sizeof(full), "%s%s", leaf_pem, leaf_pem);
	assert_int_equal(acme_store_cert_save(dir, "app.example.test",
	    leaf_key, full, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/current", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(path, link1, sizeof(link1) - 1);
	assert_true(n > 0);
	link1[n] = '\0';
	assert_null(strchr(link1, '/'));	/* relative: movable tree */
	snprintf(path, sizeof(path), "%s/certs/app.example.test/current/"
	    "privkey.pem", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/current/"
	    "cert.pem", dir);
	text = slurp(path);
	assert_string_equal(text, leaf_pem);
	free(text);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/current/"
	    "chain.pem", dir);
	text = slurp(path);
	assert_string_equal(text, leaf_pem);
	free(text);
	snprintf(path, sizeof(path), "%s/certs/app.example.test", dir);
	assert_int_equal(count_versions(path), 1);

	/* A second save keeps the first as the one previous version. */
	assert_int_equal(acme_store_cert_save(dir, "app.example.test",
	    leaf_key, leaf_pem, err, sizeof(err)), 0);
	assert_int_equal(count_versions(path), 2);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/current", dir);
	n = readlink(path, link2, sizeof(link2) - 1);
	link2[n] = '\0';
	assert_string_not_equal(link1, link2);
	assert_int_equal(acme_store_cert_load(dir, "app.example.test", &key,
	    &chain, err, sizeof(err)), 0);
	assert_string_equal(key, leaf_key);
	assert_string_equal(chain, leaf_pem);
	free(key);
	free(chain);
	/* A third drops the oldest. */
	assert_int_equal(acme_store_cert_save(dir, "app.example.test",
	    leaf_key, full, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/%s", dir,
	    link1);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/certs/app.example.test/%s", dir,
	    link2);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/certs/app.example.test", dir);
	assert_int_equal(count_versions(path), 2);
	assert_int_equal(acme_store_cert_load(dir, "app.example.test", NULL,
	    &c2, err, sizeof(err)), 0);
	assert_string_equal(c2, full);
	free(c2);

	assert_int_equal(acme_store_cert_load(dir, "none.example.test", &k2,
	    &c2, err, sizeof(err)), -1);
	has(err, "no certificate for none.example.test yet");
	assert_int_equal(acme_store_cert_save(dir, "../escape", leaf_key,
	    leaf_pem, err, sizeof(err)), -1);
	assert_int_equal(acme_store_cert_save(dir, "a/b", leaf_key, leaf_pem,
	    err, sizeof(err)), -1);
	assert_int_equal(acme_store_cert_save(dir, "x.test", leaf_key,
	    "no pem", err, sizeof(err)), -1);

	/* The renewal state survives a round trip; missing is zero. */
	assert_int_equal(acme_store_state_load(dir, "none.example.test", &s,
	    err, sizeof(err)), 0);
	assert_int_equal(s.failures, 0);
	assert_int_equal(s.last_attempt, 0);
	s.last_attempt = 1700000000;
	s.next_attempt = 1700003600;
	s.failures = 3;
	snprintf(s.last_error, sizeof(s.last_error), "the CA could not "
	    "validate \"x\"");
	assert_int_equal(acme_store_state_save(dir, "app.example.test", &s,
	    err, sizeof(err)), 0);
	assert_int_equal(acme_store_state_load(dir, "app.example.test", &s2,
	    err, sizeof(err)), 0);
	assert_memory_equal(&s, &s2, sizeof(s));
	rmtree(dir);
	free(dir);
}

static void
test_store_account(void **state)
{
	struct acme_key	*k1, *k2;
	char		*dir, *url, path[1024], err[256];
	char		 t1[ACME_THUMBPRINT_LEN], t2[ACME_THUMBPRINT_LEN];
	const char	*d = "https://127.0.0.1:14000/dir";
	struct stat	 st;
	DIR		*dd;
	struct dirent	*de;

	(void)state;
	dir = tmpdir();
	assert_null(acme_store_account_find(dir, d, &url, err, sizeof(err)));
	k1 = acme_store_account(dir, d, &url, err, sizeof(err));
	assert_non_null(k1);
	assert_null(url);
	snprintf(path, sizeof(path), "%s/accounts/127.0.0.1_14000/account.key",
	    dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/accounts/127.0.0.1_14000", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* No temporary files left behind. */
	dd = opendir(path);
	while ((de = readdir(dd)) != NULL)
		assert_true(strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "account.key") == 0);
	closedir(dd);
	assert_int_equal(acme_store_account_url(dir, d,
	    "https://127.0.0.1:14000/my-account/1", err, sizeof(err)), 0);
	k2 = acme_store_account(dir, d, &url, err, sizeof(err));
	assert_non_null(k2);
	assert_string_equal(url, "https://127.0.0.1:14000/my-account/1");
	free(url);
	assert_int_equal(acme_jwk_thumbprint(k1, t1), 0);
	assert_int_equal(acme_jwk_thumbprint(k2, t2), 0);
	assert_string_equal(t1, t2);
	acme_key_free(k2);
	/* Same host, other directory: same key, but not that URL. */
	k2 = acme_store_account(dir, "https://127.0.0.1:14000/other", &url,
	    err, sizeof(err));
	assert_non_null(k2);
	assert_null(url);
	acme_key_free(k2);
	/* A key readable by others is refused, as ssh does. */
	snprintf(path, sizeof(path), "%s/accounts/127.0.0.1_14000/account.key",
	    dir);
	chmod(path, 0644);
	assert_null(acme_store_account(dir, d, &url, err, sizeof(err)));
	has(err, "chmod 600");
	chmod(path, 0600);
	/* Hosts that make no safe directory name. */
	assert_null(acme_store_account(dir, "https://[::1]:14000/dir", &url,
	    err, sizeof(err)));
	assert_null(acme_store_account(dir, "https://u@ca.example/dir", &url,
	    err, sizeof(err)));
	assert_null(acme_store_account(dir, "https://../dir", &url, err,
	    sizeof(err)));
	assert_null(acme_store_account(dir, "http://ca.example/dir", &url,
	    err, sizeof(err)));
	k2 = acme_store_account(dir, "https://CA.Example/dir", &url, err,
	    sizeof(err));
	assert_non_null(k2);
	snprintf(path, sizeof(path), "%s/accounts/ca.example/account.key",
	    dir);
	assert_int_equal(stat(path, &st), 0);
	acme_key_free(k2);
	acme_key_free(k1);
	rmtree(dir);
	free(dir);
}

static void
test_store_write(void **state)
{
	char		*dir, path[1024], err[256], *t;
	struct stat	 st;

	(void)state;
	dir = tmpdir();
	assert_int_equal(acme_store_init(dir, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(acme_store_write(path, "one", 3, 0640, err,
	    sizeof(err)), 0);
	assert_int_equal(acme_store_write(path, "two", 3, 0600, err,
	    sizeof(err)), 0);
	t = slurp(path);
	assert_string_equal(t, "two");
	free(t);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/missing/f", dir);
	assert_int_equal(acme_store_write(path, "x", 1, 0600, err,
	    sizeof(err)), -1);
	rmtree(dir);
	free(dir);
}

/* A state directory made by hand, 0755, is made private. */
static void
test_store_private(void **state)
{
	char		*dir, err[256];
	struct stat	 st;

	(void)state;
	dir = tmpdir();
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(acme_store_init(dir, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	rmtree(dir);
	free(dir);
}

/* A state directory behind a symlink, or another user's, is refused. */
static void
test_store_state_dir_checked(void **state)
{
	char	*dir, real[1100], err[512];

	(void)state;
	dir = tmpdir();
	snprintf(real, sizeof(real), "%s.real", dir);
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, dir), 0);
	assert_int_equal(acme_store_init(dir, err, sizeof(err)), -1);
	has(err, "is a symbolic link; set acme.state_dir to the directory");
	assert_int_equal(unlink(dir), 0);
	/* Another user's directory (only root can make one to test). */
	if (geteuid() == 0) {
		assert_int_equal(mkdir(dir, 0700), 0);
		assert_int_equal(chown(dir, 65534, 65534), 0);
		assert_int_equal(acme_store_init(dir, err, sizeof(err)), -1);
		has(err, "is owned by uid 65534, not by the user the agent "
		    "runs as (uid 0)");
		assert_int_equal(chown(dir, 0, 0), 0);
		assert_int_equal(acme_store_init(dir, err, sizeof(err)), 0);
	}
	rmtree(dir);
	free(dir);
}

static char *
tmpdir(void)
{
	char	tmpl[] = "/tmp/test_acme.XXXXXX", *d;

	assert_non_null(mkdtemp(tmpl));
	/* A state directory that does not exist yet, below it. */
	d = malloc(strlen(tmpl) + 8);
	sprintf(d, "%s/state", tmpl);
	return d;
}

static void
rmtree(const char *state)
{
	char	cmd[1200];

	/* The parent mkdtemp made, with everything in it. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strrchr(state,
	    '/') - state), state);
	assert_int_equal(system(cmd), 0);
}

static int
count_versions(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
			n++;
	closedir(d);
	return n;
}

static char *
slurp(const char *path)
{
	FILE	*f;
	char	*buf;
	size_t	 n;

	assert_non_null(f = fopen(path, "r"));
	buf = calloc(1, 65536);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_problem_rate),
		cmocka_unit_test(test_problem_dns),
		cmocka_unit_test(test_problem_challenge),
		cmocka_unit_test(test_problem_account),
		cmocka_unit_test(test_problem_rejected),
		cmocka_unit_test(test_problem_other),
		cmocka_unit_test(test_ari),
		cmocka_unit_test(test_http_headers),
		cmocka_unit_test(test_alpn_cert),
		cmocka_unit_test(test_csr),
		cmocka_unit_test(test_key_match),
		cmocka_unit_test(test_eab),
		cmocka_unit_test(test_store_cert),
		cmocka_unit_test(test_store_account),
		cmocka_unit_test(test_store_write),
		cmocka_unit_test(test_store_private),
		cmocka_unit_test(test_store_state_dir_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
