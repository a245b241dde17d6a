/* SPDX-License-Identifier: ISC */
/*
 * The signing half of the ACME client: ES256 account keys, their JWK and
 * thumbprint, the flattened JWS every ACME request is wrapped in, and the
 * HS256 external account binding some CAs require for a new account.
 * Pure apart from the key material: no I/O, no logging.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "acme_jws.h"

struct acme_key {
	EVP_PKEY	*pkey;
};

static int	acme_key_coords(const struct acme_key *, char *, char *);
static int	acme_sign(const struct acme_key *, const char *, size_t,
		    unsigned char sig[64]);

struct acme_key *
acme_key_generate(void)
{
	struct acme_key	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if ((k->pkey = EVP_EC_gen("P-256")) == NULL) {
		free(k);
		return NULL;
	}
	return k;
}

struct acme_key *
acme_key_load_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	struct acme_key	*k;
	BIO		*bio;
	char		 group[32];
	size_t		 glen;

	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		free(k);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k->pkey == NULL || !EVP_PKEY_is_a(k->pkey, "EC") ||
	    EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0) {
		snprintf(err, errlen, "not a P-256 (ES256) private key in PEM");
		acme_key_free(k);
		return NULL;
	}
	return k;
}

char *
acme_key_pem(const struct acme_key *k)
{
	BIO	*bio;
	char	*data, *out = NULL;
	long	 n;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);	/* the secret is in out only; the caller wipes */
	return out;
}

void
acme_key_free(struct acme_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

json_t *
acme_jwk(const struct acme_key *k)
{
	char	x[64], y[64];

	if (acme_key_coords(k, x, y) == -1)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC",
	    "x", x, "y", y);
}

int
acme_jwk_thumbprint(const struct acme_key *k, char out[ACME_THUMBPRINT_LEN])
{
	unsigned char	 digest[32];
	char		 x[64], y[64], canon[256];
	int		 n;

	if (acme_key_coords(k, x, y) == -1)
		return -1;
	/* RFC 7638: the required members only, sorted, no whitespace. */
	n = snprintf(canon, sizeof(canon),
	    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	    x, y);
	if (n < 0 || (size_t)n >= sizeof(canon) ||
	    EVP_Digest(canon, (size_t)n, digest, NULL, EVP_sha256(), NULL) != 1)
		return -1;
	return acme_b64url(digest, sizeof(digest), out,
	    ACME_THUMBPRINT_LEN) > 0 ? 0 : -1;
}

char *
acme_jws(const struct acme_key *k, const char *kid, const char *nonce,
    const char *url, const char *payload)
{
	json_t		*prot, *jwk = NULL, *jws = NULL;
	char		*ptext = NULL, *p64 = NULL, *b64 = NULL, *input = NULL;
	char		*out = NULL, s64[128];
	unsigned char	 sig[64];
	size_t		 plen, len;

	/* An account URL (kid) once there is an account, else the key. */
	if (kid != NULL)
		prot = json_pack("{s:s, s:s, s:s, s:s}", "alg", "ES256",
		    "kid", kid, "nonce", nonce, "url", url);
	else if ((jwk = acme_jwk(k)) != NULL)
		prot = json_pack("{s:s, s:O, s:s, s:s}", "alg", "ES256",
		    "jwk", jwk, "nonce", nonce, "url", url);
	else
		prot = NULL;
	if (prot == NULL)
		goto out;
	if ((ptext = json_dumps(prot, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	plen = strlen(ptext);
	len = payload != NULL ? strlen(payload) : 0;
	if ((p64 = malloc(plen * 4 / 3 + 4)) == NULL ||
	    (b64 = malloc(len * 4 / 3 + 4)) == NULL)
		goto out;
	acme_b64url(ptext, plen, p64, plen * 4 / 3 + 4);
	if (acme_b64url(payload != NULL ? payload : "", len, b64,
	    len * 4 / 3 + 4) == 0 && len > 0)
		goto out;
	if (len == 0)
		b64[0] = '\0';
	/* The signing input is protected "." payload, both encoded. */
	if ((input = malloc(strlen(p64) + strlen(b64) + 2)) == NULL)
		goto out;
	strcpy(input, p64);
	strcat(input, ".");
	strcat(input, b64);
	if (acme_sign(k, input, strlen(input), sig) == -1 ||
	    acme_b64url(sig, sizeof(sig), s64, sizeof(s64)) == 0)
		goto out;
	if ((jws = json_pack("{s:s, s:s, s:s}", "protected", p64,
	    "payload", b64, "signature", s64)) != NULL)
		out = json_dumps(jws, JSON_COMPACT);
out:
	json_decref(prot);
	json_decref(jwk);
	json_decref(jws);
	free(ptext);
	free(p64);
	free(b64);
	free(input);
	return out;
}

json_t *
acme_jws_eab(const struct acme_key *k, const char *kid, const char *hmac,
    const char *url, char *err, size_t errlen)
{
	unsigned char	 mac[EVP_MAX_MD_SIZE], key[256];
	json_t		*prot = NULL, *jwk = NULL, *out = NULL;
	char		*ptext = NULL, *jtext = NULL, *input = NULL;
	char		 p64[8192], j64[512], s64[128];
	size_t		 keylen, hlen, maclen, n;

	/* Trailing '=' is tolerated: some CAs show the key padded. */
	for (hlen = strlen(hmac); hlen > 0 && hmac[hlen - 1] == '='; hlen--)
		;
	if (sodium_base642bin(key, sizeof(key), hmac, hlen, NULL, &keylen,
	    NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    keylen == 0) {
		snprintf(err, errlen, "acme.eab.hmac_key is not base64url (or "
		    "longer than %zu bytes); paste it exactly as the CA shows "
		    "it", sizeof(key));
		goto out;
	}
	if ((jwk = acme_jwk(k)) == NULL ||
	    (prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", kid,
	    "url", url)) == NULL ||
	    (ptext = json_dumps(prot, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (jtext = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (acme_b64url(ptext, strlen(ptext), p64, sizeof(p64)) == 0 ||
	    acme_b64url(jtext, strlen(jtext), j64, sizeof(j64)) == 0) {
		snprintf(err, errlen, "acme.eab.kid or the directory URL is "
		    "too long");
		goto out;
	}
	n = strlen(p64) + strlen(j64) + 2;
	if ((input = malloc(n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(input, n, "%s.%s", p64, j64);
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
	    (unsigned char *)input, strlen(input), mac, sizeof(mac),
	    &maclen) == NULL || acme_b64url(mac, maclen, s64,
	    sizeof(s64)) == 0) {
		snprintf(err, errlen, "HMAC-SHA256 failed");
		goto out;
	}
	if ((out = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload",
	    j64, "signature", s64)) == NULL)
		snprintf(err, errlen, "out of memory");
out:
	sodium_memzero(key, sizeof(key));
	json_decref(prot);
	json_decref(jwk);
	free(ptext);
	free(jtext);
	free(input);
	return out;
}

size_t
acme_b64url(const void *in, size_t inlen, char *out, size_t outlen)
{
	size_t	need = sodium_base64_ENCODED_LEN(inlen,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	if (outlen < need)
		return 0;
	sodium_bin2base64(out, outlen, in, inlen,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strlen(out);
}

/* The public point as base64url x and y (32 bytes each). */
static int
acme_key_coords(const struct acme_key *k, char *x, char *y)
{
	unsigned char	 pub[65];
	size_t		 len;

	if (EVP_PKEY_get_octet_string_param(k->pkey,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &len) != 1 ||
	    len != 65 || pub[0] != 0x04)
		return -1;
	if (acme_b64url(pub + 1, 32, x, 64) == 0 ||
	    acme_b64url(pub + 33, 32, y, 64) == 0)
		return -1;
	return 0;
}

/* ES256: ECDSA over SHA-256, as the raw 64-byte r || s that JWS wants. */
static int
acme_sign(const struct acme_key *k, const char *msg, size_t len,
    unsigned char sig[64])
{
	EVP_MD_CTX		*ctx;
	ECDSA_SIG		*es = NULL;
	const BIGNUM		*r, *s;
	unsigned char		 der[80];
	const unsigned char	*p = der;
	size_t			 dlen = sizeof(der);
	int			 rc = -1;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)msg,
	    len) != 1)
		goto out;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) == NULL)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32,
	    32) != 32)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return rc;
}
