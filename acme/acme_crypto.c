/* SPDX-License-Identifier: ISC */
/*
 * Certificate-side crypto of the ACME client: new certificate keys, the
 * CSR sent at finalize, what porch needs to know about an issued
 * certificate (dates, names, issuer, the RFC 9773 certID), and the
 * self-signed certificate that answers a tls-alpn-01 challenge (RFC
 * 8737).  Pure: no files, no logging; private keys only ever pass
 * through memory BIOs that are wiped on free.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_crypto.h"
#include "log.h"
#include "acme_jws.h"

#define ACME_CRYPTO_PEM_MAX	(1024 * 1024)
#define ACME_CRYPTO_NAME_MAX	253
/* id-pe-acmeIdentifier, RFC 8737 section 6.1. */
#define ACME_CRYPTO_OID_ACME_ID	"1.3.6.1.5.5.7.1.31"

static EVP_PKEY	*acme_crypto_key(const char *);
static X509	*acme_crypto_cert(const char *);
static int	 acme_crypto_names_ok(const char *const *, size_t, char *,
		    size_t);
static GENERAL_NAMES *acme_crypto_san(const char *const *, size_t);
static int	 acme_crypto_ari_id(X509 *, char *, size_t);
static time_t	 acme_crypto_time(const ASN1_TIME *);

char *
acme_certkey_new(enum acme_key_type type)
{
	EVP_PKEY	*pkey = NULL;
	BIO		*bio;
	char		*data, *out = NULL;
	long		 n;

	switch (type) {
	case ACME_KEY_EC_P256:
		pkey = EVP_EC_gen("P-256");
		break;
	case ACME_KEY_EC_P384:
		pkey = EVP_EC_gen("P-384");
		break;
	case ACME_KEY_RSA_2048:
		pkey = EVP_RSA_gen(2048);
		break;
	case ACME_KEY_RSA_3072:
		pkey = EVP_RSA_gen(3072);
		break;
	}
	if (pkey == NULL)
		return NULL;
	/* The secure-memory BIO clears its buffer when freed. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return out;
}

int
acme_csr(const char *key_pem, const char *const *names, size_t n,
    unsigned char **der, size_t *derlen, char *err, size_t errlen)
{
	EVP_PKEY		*pkey;
	X509_REQ		*req = NULL;
	X509_NAME		*subj;
	GENERAL_NAMES		*san = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION		*ext;
	unsigned char		*p = NULL;
	int			 len, rc = -1;

	*der = NULL;
	*derlen = 0;
	if (acme_crypto_names_ok(names, n, err, errlen) == -1)
		return -1;
	if ((pkey = acme_crypto_key(key_pem)) == NULL) {
		snprintf(err, errlen, "the certificate key is not a PEM "
		    "private key");
		return -1;
	}
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    (subj = X509_REQ_get_subject_name(req)) == NULL)
		goto fail;
	/* A CN is optional (the SANs count); keep it when it fits. */
	if (strlen(names[0]) <= 64 && X509_NAME_add_entry_by_NID(subj,
	    NID_commonName, MBSTRING_ASC, (const unsigned char *)names[0], -1,
	    -1, 0) != 1)
		goto fail;
	if ((san = acme_crypto_san(names, n)) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    (ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, san)) == NULL)
		goto fail;
	if (sk_X509_EXTENSION_push(exts, ext) == 0) {
		X509_EXTENSION_free(ext);
		goto fail;
	}
	if (X509_REQ_add_extensions(req, exts) != 1 ||
	    X509_REQ_set_pubkey(req, pkey) != 1 ||
	    X509_REQ_sign(req, pkey, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, &p)) <= 0)
		goto fail;
	if ((*der = malloc((size_t)len)) == NULL)
		goto fail;
	memcpy(*der, p, (size_t)len);
	*derlen = (size_t)len;
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "cannot build the CSR (%s)",
	    ERR_reason_error_string(ERR_peek_last_error()) != NULL ?
	    ERR_reason_error_string(ERR_peek_last_error()) : "OpenSSL");
	ERR_clear_error();
out:
	OPENSSL_free(p);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(san);
	X509_REQ_free(req);
	EVP_PKEY_free(pkey);
	return rc;
}

int
acme_cert_info(const char *pem, struct acme_cert_info *ci, char *err,
    size_t errlen)
{
	X509			*x;
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	const ASN1_INTEGER	*sn;
	BIGNUM			*bn;
	BIO			*bio;
	const char		*cdata;
	char			*hex, *data;
	long			 n;
	int			 i, j, len;

	memset(ci, 0, sizeof(*ci));
	if ((x = acme_crypto_cert(pem)) == NULL) {
		snprintf(err, errlen, "no PEM certificate");
		return -1;
	}
	ci->not_before = acme_crypto_time(X509_get0_notBefore(x));
	ci->not_after = acme_crypto_time(X509_get0_notAfter(x));
	if (ci->not_before == (time_t)-1 || ci->not_after == (time_t)-1) {
		snprintf(err, errlen, "the certificate's validity dates do "
		    "not parse");
		goto fail;
	}
	sn = X509_get0_serialNumber(x);
	if ((bn = ASN1_INTEGER_to_BN(sn, NULL)) == NULL)
		goto nomem;
	hex = BN_bn2hex(bn);
	BN_free(bn);
	if (hex == NULL)
		goto nomem;
	for (i = 0; hex[i] != '\0' && (size_t)i + 1 < sizeof(ci->serial); i++)
		ci->serial[i] = (char)tolower((unsigned char)hex[i]);
	ci->serial[i] = '\0';
	OPENSSL_free(hex);
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto nomem;
	if (X509_NAME_print_ex(bio, X509_get_issuer_name(x), 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0)
		log_escape(ci->issuer, sizeof(ci->issuer), data, (size_t)n);
	BIO_free(bio);
	if (acme_crypto_ari_id(x, ci->ari_id, sizeof(ci->ari_id)) == -1)
		ci->ari_id[0] = '\0';
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) &&
	    ci->nnames < ACME_CERT_NAMES_MAX; i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		len = ASN1_STRING_length(g->d.dNSName);
		cdata = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		/* Control bytes, NULs or absurd lengths: not a name. */
		if (len <= 0 || len > ACME_CRYPTO_NAME_MAX)
			continue;
		for (j = 0; j < len; j++)
			if (cdata[j] <= ' ' || cdata[j] >= 0x7f)
				break;
		if (j < len)
			continue;
		if ((ci->names[ci->nnames] = strndup(cdata, (size_t)len)) ==
		    NULL) {
			GENERAL_NAMES_free(gens);
			goto nomem;
		}
		ci->nnames++;
	}
	GENERAL_NAMES_free(gens);
	X509_free(x);
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	X509_free(x);
	acme_cert_info_clear(ci);
	return -1;
}

void
acme_cert_info_clear(struct acme_cert_info *ci)
{
	size_t	i;

	for (i = 0; i < ci->nnames; i++)
		free(ci->names[i]);
	memset(ci, 0, sizeof(*ci));
}

int
acme_cert_der(const char *pem, unsigned char **der, size_t *derlen)
{
	X509		*x;
	unsigned char	*p = NULL;
	int		 len;

	*der = NULL;
	*derlen = 0;
	if ((x = acme_crypto_cert(pem)) == NULL)
		return -1;
	len = i2d_X509(x, &p);
	X509_free(x);
	/* Copied so that the caller frees with free(), as the header says. */
	if (len <= 0 || (*der = malloc((size_t)len)) == NULL) {
		OPENSSL_free(p);
		return -1;
	}
	memcpy(*der, p, (size_t)len);
	OPENSSL_free(p);
	*derlen = (size_t)len;
	return 0;
}

int
acme_cert_key_match(const char *chain_pem, const char *key_pem)
{
	X509		*x;
	EVP_PKEY	*pkey;
	int		 rc = 0;

	if ((x = acme_crypto_cert(chain_pem)) == NULL)
		return 0;
	if ((pkey = acme_crypto_key(key_pem)) != NULL)
		rc = EVP_PKEY_eq(X509_get0_pubkey(x), pkey) == 1;
	EVP_PKEY_free(pkey);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int
acme_alpn_cert(const char *name, const char *key_auth, X509 **out,
    EVP_PKEY **outkey)
{
	EVP_PKEY		*pkey;
	X509			*x = NULL;
	X509_EXTENSION		*ext = NULL;
	ASN1_OBJECT		*obj = NULL;
	ASN1_OCTET_STRING	*digest = NULL, *value = NULL;
	GENERAL_NAMES		*san = NULL;
	BIGNUM			*bn = NULL;
	unsigned char		 md[32], serial[16], *der = NULL;
	const char		*names[1];
	int			 len, rc = -1;

	*out = NULL;
	*outkey = NULL;
	names[0] = name;
	if (acme_crypto_names_ok(names, 1, NULL, 0) == -1 ||
	    (pkey = EVP_EC_gen("P-256")) == NULL)
		return -1;
	if (EVP_Digest(key_auth, strlen(key_auth), md, NULL, EVP_sha256(),
	    NULL) != 1 || RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;	/* a positive serial */
	if ((x = X509_new()) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) == NULL ||
	    X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
	    NID_commonName, MBSTRING_ASC, (const unsigned char *)"porch "
	    "acme-tls/1", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, pkey) != 1)
		goto out;
	/* SAN: exactly the name being validated. */
	if ((san = acme_crypto_san(names, 1)) == NULL ||
	    X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, 0) != 1)
		goto out;
	/*
	 * The acmeIdentifier extension is critical and its extnValue is
	 * the DER of an OCTET STRING holding the digest: so the value
	 * handed to X509_EXTENSION is itself an encoded OCTET STRING.  A
	 * fresh, unregistered OID object keeps OpenSSL's table untouched.
	 */
	if ((digest = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(digest, md, sizeof(md)) != 1 ||
	    (len = i2d_ASN1_OCTET_STRING(digest, &der)) <= 0 ||
	    (value = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(value, der, len) != 1 ||
	    (obj = OBJ_txt2obj(ACME_CRYPTO_OID_ACME_ID, 1)) == NULL ||
	    (ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, value)) ==
	    NULL || X509_add_ext(x, ext, -1) != 1)
		goto out;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto out;
	*out = x;
	*outkey = pkey;
	x = NULL;
	pkey = NULL;
	rc = 0;
out:
	OPENSSL_free(der);
	ASN1_OCTET_STRING_free(digest);
	ASN1_OCTET_STRING_free(value);
	ASN1_OBJECT_free(obj);
	X509_EXTENSION_free(ext);
	GENERAL_NAMES_free(san);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rc;
}

/* A private key from PEM, or NULL. */
static EVP_PKEY *
acme_crypto_key(const char *pem)
{
	EVP_PKEY	*pkey;
	BIO		*bio;
	size_t		 len = strlen(pem);

	if (len > ACME_CRYPTO_PEM_MAX ||
	    (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return NULL;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return pkey;
}

/* The first certificate of a PEM text, or NULL. */
static X509 *
acme_crypto_cert(const char *pem)
{
	X509	*x;
	BIO	*bio;
	size_t	 len = strlen(pem);

	if (len > ACME_CRYPTO_PEM_MAX ||
	    (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return NULL;
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return x;
}

/* 1..ACME_CERT_NAMES_MAX names of printable ASCII, each 1..253 bytes. */
static int
acme_crypto_names_ok(const char *const *names, size_t n, char *err,
    size_t errlen)
{
	size_t	 i, len;
	const char *p;

	if (n == 0 || n > ACME_CERT_NAMES_MAX) {
		if (err != NULL)
			snprintf(err, errlen, "a certificate needs 1 to %d "
			    "names", ACME_CERT_NAMES_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		len = strlen(names[i]);
		for (p = names[i]; *p != '\0'; p++)
			if (*p <= ' ' || *p >= 0x7f)
				break;
		if (len == 0 || len > ACME_CRYPTO_NAME_MAX || *p != '\0') {
			if (err != NULL)
				snprintf(err, errlen, "name %zu is not a DNS "
				    "name", i + 1);
			return -1;
		}
	}
	return 0;
}

/* A subjectAltName of dNSNames, or NULL. */
static GENERAL_NAMES *
acme_crypto_san(const char *const *names, size_t n)
{
	GENERAL_NAMES	*gens;
	GENERAL_NAME	*g;
	ASN1_IA5STRING	*s;
	size_t		 i;

	if ((gens = GENERAL_NAMES_new()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((s = ASN1_IA5STRING_new()) == NULL)
			goto fail;
		if (ASN1_STRING_set(s, names[i], (int)strlen(names[i])) != 1 ||
		    (g = GENERAL_NAME_new()) == NULL) {
			ASN1_IA5STRING_free(s);
			goto fail;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		if (sk_GENERAL_NAME_push(gens, g) == 0) {
			GENERAL_NAME_free(g);
			goto fail;
		}
	}
	return gens;
fail:
	GENERAL_NAMES_free(gens);
	return NULL;
}

/*
 * RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(serial), the
 * serial being the content octets of its DER INTEGER (so with the
 * leading zero a positive serial with the high bit set carries).
 */
static int
acme_crypto_ari_id(X509 *x, char *out, size_t outlen)
{
	const ASN1_OCTET_STRING	*kid;
	unsigned char		*der = NULL;
	const unsigned char	*p;
	size_t			 hdr, clen, n;
	int			 len, rc = -1;

	if ((kid = X509_get0_authority_key_id(x)) == NULL ||
	    ASN1_STRING_length(kid) <= 0 || ASN1_STRING_length(kid) > 64)
		goto out;
	if ((len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der)) < 3)
		goto out;
	/* Skip the tag and the (short or long form) length. */
	p = der;
	if (p[0] != V_ASN1_INTEGER)
		goto out;
	if (p[1] < 0x80) {
		hdr = 2;
		clen = p[1];
	} else if (p[1] == 0x81 && len >= 3) {
		hdr = 3;
		clen = p[2];
	} else
		goto out;
	if (hdr + clen != (size_t)len || clen == 0 || clen > 64)
		goto out;
	if ((n = acme_b64url(ASN1_STRING_get0_data(kid),
	    (size_t)ASN1_STRING_length(kid), out, outlen)) == 0 ||
	    n + 2 > outlen)
		goto out;
	out[n] = '.';
	if (acme_b64url(der + hdr, clen, out + n + 1, outlen - n - 1) == 0)
		goto out;
	rc = 0;
out:
	OPENSSL_free(der);
	return rc;
}

/* An ASN1_TIME as time_t (UTC), or -1. */
static time_t
acme_crypto_time(const ASN1_TIME *t)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}
