/*
 * acme.h: an RFC 8555 client.  Blocking (libcurl): porchctl calls it
 * directly and porch-agent runs it in a child process, so that a slow CA
 * never stalls the agent's event loop.  No logging: every failure comes
 * back as a struct acme_error whose msg says, in plain words, what
 * happened and what to check.
 */
#ifndef PORCH_ACME_H
#define PORCH_ACME_H

#include <stddef.h>
#include <time.h>

#include "acme_jws.h"

enum acme_chal {	/* agent_acme_child.c asserts = cfg_challenge */
	ACME_CHAL_HTTP01 = 0,
	ACME_CHAL_TLSALPN01,
	ACME_CHAL_DNS01,	/* a TXT record: any name, wildcards too */
};

enum acme_err_kind {
	ACME_ERR_NONE = 0,
	ACME_ERR_NETWORK,	/* could not talk to the CA at all */
	ACME_ERR_TLS,		/* the CA's certificate did not verify */
	ACME_ERR_CA,		/* the CA answered with a problem */
	ACME_ERR_RATE,		/* rateLimited; see retry_after */
	ACME_ERR_ACCOUNT,	/* EAB wrong or missing, account refused */
	ACME_ERR_DNS,		/* a name does not resolve (dns problem) */
	ACME_ERR_CHALLENGE,	/* the CA could not reach our answer */
	ACME_ERR_REJECTED,	/* the CA will not issue for a name */
	ACME_ERR_TIMEOUT,	/* polling gave up */
	ACME_ERR_LOCAL,		/* our side: memory, keys, files */
};

struct acme_error {
	enum acme_err_kind	 kind;
	int			 http_status;	/* 0: none */
	char			 type[128];	/* problem type, or "" */
	unsigned		 retry_after_s;	/* from the CA, 0: none */
	char			 msg[1024];	/* one line, plain words */
};

struct acme_opts {
	const char	*directory;	/* https URL */
	const char	*ca_bundle;	/* PEM file; NULL: the system's */
	const char	*email;		/* NULL: no contact */
	const char	*eab_kid;	/* NULL: no external account binding */
	const char	*eab_hmac;	/* base64url HMAC key */
	unsigned	 timeout_ms;	/* per HTTP request; 0: 30 s */
	unsigned	 order_timeout_ms;	/* whole order; 0: 5 min */
};

/* What the caller must serve before the CA validates. */
struct acme_challenge {
	enum acme_chal	 type;
	const char	*name;		/* the identifier */
	const char	*token;
	const char	*key_auth;	/* token "." account thumbprint */
};

/*
 * Publish (add 1) a challenge answer before the CA is asked to validate
 * it, withdraw it (add 0) once the authorization is decided.  Return 0,
 * or -1 to abandon the order (msg says why).
 */
typedef int	(*acme_publish_fn)(const struct acme_challenge *, int add,
		    char *msg, size_t msglen, void *arg);

struct acme;

/* Takes the account key (freed on failure too).  account_url: the kid
 * from an earlier run, or NULL to find or create the account.  NULL only
 * without memory. */
struct acme	*acme_new(const struct acme_opts *, struct acme_key *account,
		    const char *account_url);
void		 acme_free(struct acme *);

/* Fetch the directory (done by the calls below when needed). */
int		 acme_directory(struct acme *, struct acme_error *);
/* The directory's termsOfService URL, or NULL. */
const char	*acme_terms(const struct acme *);
/* The CA's domain for CAA records (meta.caaIdentities[0]), or NULL. */
const char	*acme_caa_identity(const struct acme *);
/* 1 if the directory offers renewal information (RFC 9773). */
int		 acme_has_ari(const struct acme *);

/* Find or create the account (agreeing to the terms; EAB if set). */
int		 acme_account(struct acme *, struct acme_error *);
/* The kid in use, or NULL.  A call that finds the saved URL unknown to
 * the CA registers again and changes it: save it after every call. */
const char	*acme_account_url(const struct acme *);

/*
 * Order a certificate for names[0..n) (names[0] becomes the CN-less
 * CSR's first SAN), solving each pending authorization with the first
 * type of pref[0..npref) the CA offers, and finalize with a CSR for
 * key_pem.  On success *chain_pem (leaf first, then intermediates) is
 * the caller's.  Returns 0 or -1.
 */
int		 acme_order(struct acme *, const char *const *names, size_t n,
		    const enum acme_chal *pref, size_t npref,
		    const char *key_pem, acme_publish_fn, void *arg,
		    char **chain_pem, struct acme_error *);

/* Revoke a certificate we ordered (RFC 5280 reason code, 0..10). */
int		 acme_revoke(struct acme *, const char *cert_pem, int reason,
		    struct acme_error *);

/*
 * The CA's suggested renewal window for a certificate (RFC 9773).
 * Returns 0 with *start and *end set (and *retry_s, the poll interval
 * it asked for, 0 if none), 1 if the CA offers no renewal information,
 * -1 on error.
 */
int		 acme_renewal_info(struct acme *, const char *cert_pem,
		    time_t *start, time_t *end, unsigned *retry_s,
		    struct acme_error *);

/* "http-01": the CA's name for it (acme_parse.c). */
const char	*acme_chal_name(enum acme_chal);

#endif
