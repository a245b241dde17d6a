/* acme_crypto.h: certificate keys, CSRs, and reading certificates. */
#ifndef PORCH_ACME_CRYPTO_H
#define PORCH_ACME_CRYPTO_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

enum acme_key_type {	/* agent_acme_child.c asserts = cfg_key_type */
	ACME_KEY_EC_P256 = 0,
	ACME_KEY_EC_P384,
	ACME_KEY_RSA_2048,
	ACME_KEY_RSA_3072,
};

/* A new private key as PKCS#8 PEM (secret), or NULL.  Caller frees. */
char	*acme_certkey_new(enum acme_key_type);

/* A DER CSR for names[0..n) signed by key_pem; caller frees *der. */
int	 acme_csr(const char *key_pem, const char *const *names, size_t n,
	    unsigned char **der, size_t *derlen, char *err, size_t errlen);

#define ACME_CERT_NAMES_MAX	100

struct acme_cert_info {
	time_t	 not_before;
	time_t	 not_after;
	char	 serial[80];		/* hex */
	char	 issuer[256];		/* one line, e.g. "CN=Pebble ..." */
	char	 ari_id[256];		/* RFC 9773 certID: aki.serial */
	size_t	 nnames;
	char	*names[ACME_CERT_NAMES_MAX];	/* dNSName SANs; own copies */
};

/* Read the first certificate of a PEM chain.  0 or -1 (err set). */
int	 acme_cert_info(const char *pem, struct acme_cert_info *,
	    char *err, size_t errlen);
void	 acme_cert_info_clear(struct acme_cert_info *);

/* The DER of the first certificate of pem; caller frees *der.  0, -1. */
int	 acme_cert_der(const char *pem, unsigned char **der, size_t *derlen);

/* 1 if the first certificate of chain_pem is for key_pem's key. */
int	 acme_cert_key_match(const char *chain_pem, const char *key_pem);

/*
 * The RFC 8737 tls-alpn-01 validation certificate for name: self-signed,
 * a fresh P-256 key, SAN dNSName name, and the critical acmeIdentifier
 * extension holding SHA-256(key_auth).  0 or -1; caller frees both.
 */
int	 acme_alpn_cert(const char *name, const char *key_auth, X509 **,
	    EVP_PKEY **);

#endif
