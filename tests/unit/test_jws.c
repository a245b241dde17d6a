/* SPDX-License-Identifier: ISC */
/*
 * acme_jws: the RFC 7515 A.3 P-256 key's JWK and RFC 7638 thumbprint,
 * and JWS requests whose signatures verify under the public key.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "acme_jws.h"

/* RFC 7515 appendix A.3's ES256 key, as PKCS#8 PEM. */
static const char rfc_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
    "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
    "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
    "-----END PRIVATE KEY-----\n";

static void	test_rfc_key(void **);
static void	test_jws_kid(void **);
static void	test_jws_jwk_and_post_as_get(void **);
static void	test_generate_roundtrip(void **);
static void	test_bad_keys(void **);
static size_t	b64dec(const char *, unsigned char *, size_t);
static json_t	*field(const char *, const char *);
static void	verify(const struct acme_key *, const char *);

static void
test_rfc_key(void **state)
{
	struct acme_key	*k;
	json_t		*jwk;
	char		 err[128], tp[ACME_THUMBPRINT_LEN];

	(void)state;
	k = acme_key_load_pem(rfc_pem, sizeof(rfc_pem) - 1, err, sizeof(err));
	assert_non_null(k);
	jwk = acme_jwk(k);
	assert_non_null(jwk);
	assert_string_equal(json_string_value(json_object_get(jwk, "x")),
	    "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU");
	assert_string_equal(json_string_value(json_object_get(jwk, "y")),
	    "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")),
	    "EC");
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
	    "P-256");
	/* Computed independently (SHA-256 of the RFC 7638 form). */
	assert_int_equal(acme_jwk_thumbprint(k, tp), 0);
	assert_string_equal(tp, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
	json_decref(jwk);
	acme_key_free(k);
}

static void
test_jws_kid(void **state)
{
	struct acme_key	*k;
	char		*jws, err[128];
	json_t		*prot, *payload;

	(void)state;
	k = acme_key_load_pem(rfc_pem, sizeof(rfc_pem) - 1, err, sizeof(err));
	jws = acme_jws(k, "https://ca.example/acct/1", "n0nce",
	    "https://ca.example/new-order",
	    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}]}");
	assert_non_null(jws);
	prot = field(jws, "protected");
	assert_string_equal(json_string_value(json_object_get(prot, "alg")),
	    "ES256");
	assert_string_equal(json_string_value(json_object_get(prot, "kid")),
	    "https://ca.example/acct/1");
	assert_string_equal(json_string_value(json_object_get(prot, "nonce")),
	    "n0nce");
	assert_string_equal(json_string_value(json_object_get(prot, "url")),
	    "https://ca.example/new-order");
	assert_null(json_object_get(prot, "jwk"));
	payload = field(jws, "payload");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(json_object_get(payload, "identifiers"), 0),
	    "value")), "a.example");
	verify(k, jws);
	json_decref(prot);
	json_decref(payload);
	free(jws);
	acme_key_free(k);
}

static void
test_jws_jwk_and_post_as_get(void **state)
{
	struct acme_key	*k;
	char		*jws, err[128];
	json_t		*prot, *jwk, *doc;

	(void)state;
	k = acme_key_load_pem(rfc_pem, sizeof(rfc_pem) - 1, err, sizeof(err));
	/* New account: the key itself in the header. */
	jws = acme_jws(k, NULL, "n", "https://ca.example/new-acct",
	    "{\"termsOfServiceAgreed\":true}");
	assert_non_null(jws);
	prot = field(jws, "protected");
	jwk = acme_jwk(k);
	assert_true(json_equal(json_object_get(prot, "jwk"), jwk));
	assert_null(json_object_get(prot, "kid"));
	verify(k, jws);
	json_decref(prot);
	json_decref(jwk);
	free(jws);
	/* POST-as-GET: the payload is the empty string. */
	jws = acme_jws(k, "https://ca.example/acct/1", "n",
	    "https://ca.example/order/7", NULL);
	assert_non_null(jws);
	doc = json_loads(jws, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(doc, "payload")),
	    "");
	verify(k, jws);
	json_decref(doc);
	free(jws);
	acme_key_free(k);
}

static void
test_generate_roundtrip(void **state)
{
	struct acme_key	*k, *k2;
	char		*pem, *jws, err[128], t1[ACME_THUMBPRINT_LEN];
	char		 t2[ACME_THUMBPRINT_LEN];

	(void)state;
	k = acme_key_generate();
	assert_non_null(k);
	pem = acme_key_pem(k);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
	k2 = acme_key_load_pem(pem, strlen(pem), err, sizeof(err));
	assert_non_null(k2);
	assert_int_equal(acme_jwk_thumbprint(k, t1), 0);
	assert_int_equal(acme_jwk_thumbprint(k2, t2), 0);
	assert_string_equal(t1, t2);
	/* What one signs, the other's public key verifies. */
	jws = acme_jws(k, "kid", "n", "u", "{}");
	verify(k2, jws);
	free(jws);
	sodium_memzero(pem, strlen(pem));
	free(pem);
	acme_key_free(k);
	acme_key_free(k2);
}

static void
test_bad_keys(void **state)
{
	static const char	 garbage[] = "not a key";
	EVP_PKEY		*rsa;
	BIO			*bio;
	char			*data, err[128];
	long			 n;

	(void)state;
	assert_null(acme_key_load_pem(garbage, sizeof(garbage) - 1, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "P-256"));
	/* A real key of the wrong kind is refused too. */
	rsa = EVP_RSA_gen(1024);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(bio, &data);
	assert_null(acme_key_load_pem(data, (size_t)n, err, sizeof(err)));
	BIO_free(bio);
	EVP_PKEY_free(rsa);
}

static size_t
b64dec(const char *in, unsigned char *out, size_t outlen)
{
	size_t	len;

	assert_int_equal(sodium_base642bin(out, outlen, in, strlen(in), NULL,
	    &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	return len;
}

/* The JSON inside a base64url member of the JWS. */
static json_t *
field(const char *jws, const char *name)
{
	json_t		*doc = json_loads(jws, 0, NULL), *o;
	unsigned char	 buf[4096];
	size_t		 len;

	assert_non_null(doc);
	len = b64dec(json_string_value(json_object_get(doc, name)), buf,
	    sizeof(buf) - 1);
	buf[len] = '\0';
	o = json_loads((char *)buf, 0, NULL);
	assert_non_null(o);
	json_decref(doc);
	return o;
}

/* The signature, raw r || s, verifies over protected "." payload. */
static void
verify(const struct acme_key *k, const char *jws)
{
	json_t		*doc = json_loads(jws, 0, NULL);
	unsigned char	 sig[64], der[80], *p = der;
	char		*pem, input[8192];
	size_t		 len;
	int		 dlen;
	ECDSA_SIG	*es;
	EVP_MD_CTX	*ctx;
	EVP_PKEY	*pkey;
	BIO		*bio;

	assert_non_null(doc);
	snprintf(input, sizeof(input), "%s.%s",
	    json_string_value(json_object_get(doc, "protected")),
	    json_string_value(json_object_get(doc, "payload")));
	len = b64dec(json_string_value(json_object_get(doc, "signature")),
	    sig, sizeof(sig));
	assert_int_equal(len, 64);
	es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32,
	    NULL));
	dlen = i2d_ECDSA_SIG(es, &p);
	assert_true(dlen > 0);
	pem = acme_key_pem(k);
	bio = BIO_new_mem_buf(pem, -1);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
	    pkey), 1);
	assert_int_equal(EVP_DigestVerify(ctx, der, (size_t)dlen,
	    (unsigned char *)input, strlen(input)), 1);
	/* ... and not over anything else. */
	input[0] ^= 1;
	EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey);
	assert_int_not_equal(EVP_DigestVerify(ctx, der, (size_t)dlen,
	    (unsigned char *)input, strlen(input)), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	free(pem);
	ECDSA_SIG_free(es);
	json_decref(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_key),
		cmocka_unit_test(test_jws_kid),
		cmocka_unit_test(test_jws_jwk_and_post_as_get),
		cmocka_unit_test(test_generate_roundtrip),
		cmocka_unit_test(test_bad_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
