/* acme_jws.h: ES256 account keys and the JWS requests of RFC 8555. */
#ifndef PORCH_ACME_JWS_H
#define PORCH_ACME_JWS_H

#include <stddef.h>

#include <jansson.h>

#define ACME_THUMBPRINT_LEN	44	/* base64url of SHA-256, with NUL */

struct acme_key;

/* A new P-256 key; NULL on failure. */
struct acme_key	*acme_key_generate(void);
/* From PEM (PKCS#8 or SEC1); NULL with a reason in err. */
struct acme_key	*acme_key_load_pem(const char *pem, size_t len, char *err,
		    size_t errlen);
/* PKCS#8 PEM of the private key (secret: write it 0600); caller frees. */
char		*acme_key_pem(const struct acme_key *);
void		 acme_key_free(struct acme_key *);

/* The public key as a JWK {"crv","kty","x","y"}; caller decrefs. */
json_t		*acme_jwk(const struct acme_key *);
/* RFC 7638 thumbprint of that JWK, base64url, into out.  0 or -1. */
int		 acme_jwk_thumbprint(const struct acme_key *,
		    char out[ACME_THUMBPRINT_LEN]);

/*
 * A flattened JWS (RFC 7515 7.2.2) for an ACME request: protected header
 * {alg: ES256, nonce, url} plus kid, or the JWK when kid is NULL (new
 * account); payload NULL is POST-as-GET (an empty payload).  Returns the
 * JSON text (caller frees) or NULL.
 */
char		*acme_jws(const struct acme_key *, const char *kid,
		    const char *nonce, const char *url, const char *payload);

/*
 * The externalAccountBinding member of a newAccount payload (RFC 8555
 * 7.3.4): a flattened JWS signed HS256 with the MAC key the CA issued
 * (hmac, base64url, padding allowed) over this account's JWK, with
 * protected {alg, kid, url}.  Returns the object (caller decrefs), or
 * NULL with a reason in err that never quotes the key.
 */
json_t		*acme_jws_eab(const struct acme_key *, const char *kid,
		    const char *hmac, const char *url, char *err,
		    size_t errlen);

/* base64url without padding into out; returns the length, 0 if short. */
size_t		 acme_b64url(const void *, size_t, char *out, size_t outlen);

#endif
