/* SPDX-License-Identifier: ISC */
/*
 * The ACME protocol (RFC 8555): directory, nonces, account, orders with
 * http-01 and tls-alpn-01 authorizations, finalize, download, revocation,
 * and renewal information (RFC 9773).  Blocking and single-threaded per
 * struct acme.  Everything the CA sends is untrusted: JSON members are
 * type- and length-checked, URLs must be https, tokens base64url, and an
 * authorization is only answered for a name we asked for.  Failures come
 * back as struct acme_error with a message that says what to check;
 * nothing here logs.  What the CA's answers mean (problem documents,
 * dates, renewal windows) is read by the pure parsers of acme_parse.c.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_http.h"
#include "acme_parse.h"
#include "mono.h"

#define ACME_URL_MAX		ACME_HTTP_URL_MAX
#define ACME_TOKEN_MAX		256
#define ACME_AUTHZ_MAX		(2 * ACME_CERT_NAMES_MAX)
#define ACME_NONCE_RETRIES	10	/* RFC 8555 6.5: on badNonce */
#define ACME_POLL_MAX_S		10
/* Without Retry-After: 250 ms, 500 ms, then every second.  A CA often
 * decides in milliseconds; a second between polls is still gentle. */
#define ACME_POLL_FIRST_MS	250
#define ACME_POLL_STEADY_MS	1000

struct acme {
	char		*directory;
	char		*email;
	char		*eab_kid;
	char		*eab_hmac;		/* secret: wiped on free */
	unsigned	 order_timeout_ms;
	struct acme_key	*key;
	char		 thumbprint[ACME_THUMBPRINT_LEN];
	char		*account_url;
	int		 account_given;		/* from acme_new, unconfirmed */
	struct acme_http *http;
	char		 nonce[256];		/* next one to use, or "" */

	int		 have_dir;
	char		*new_nonce;
	char		*new_account;
	char		*new_order;
	char		*revoke_cert;
	char		*renewal_info;
	char		*terms;
	char		*caa_identity;	/* meta.caaIdentities[0], or NULL */
	int		 eab_required;
};

/* One authorization of an order, and the challenge chosen for it. */
struct acme_authz {
	char		*url;
	char		*name;
	enum acme_chal	 type;
	char		*chal_url;
	char		*token;
	char		*key_auth;
	int		 respond;		/* challenge still pending */
	int		 published;
	int		 done;
};

static int	 acme_post(struct acme *, const char *, const char *, int,
		    const char *, const struct acme_problem_ctx *,
		    struct acme_http_resp *, struct acme_error *);
static int	 acme_nonce(struct acme *, struct acme_error *);
static int	 acme_account_new(struct acme *, struct acme_error *);
static json_t	*acme_json(const struct acme_http_resp *, const char *,
		    struct acme_error *);
static const char *acme_jurl(json_t *, const char *);
static const char *acme_jstr(json_t *, const char *, size_t);
static const char *acme_problem_type(const struct acme_http_resp *, char *,
		    size_t);
static int	 acme_authz_fetch(struct acme *, struct acme_authz *,
		    const char *const *, size_t, const enum acme_chal *,
		    size_t, struct acme_error *);
static int	 acme_authz_poll(struct acme *, struct acme_authz *, size_t,
		    uint64_t, acme_publish_fn, void *, struct acme_error *);
static void	 acme_authz_withdraw(struct acme_authz *, size_t,
		    acme_publish_fn, void *);
static void	 acme_authz_clear(struct acme_authz *, size_t);
static int	 acme_authz_error(json_t *, const struct acme_authz *,
		    struct acme_error *);
static int	 acme_order_poll(struct acme *, const char *, const char *,
		    uint64_t, json_t **, struct acme_error *);
static int	 acme_order_failed(json_t *, const char *,
		    struct acme_error *);
static int	 acme_download(struct acme *, const char *, const char *,
		    const char *const *, size_t, char **, struct acme_error *);
static unsigned	 acme_poll_ms(unsigned, unsigned *);
static int	 acme_sleep(unsigned, uint64_t, const char *,
		    struct acme_error *);
static void	 acme_err(struct acme_error *, enum acme_err_kind,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static void	 acme_err_bad(struct acme_error *, const char *);

struct acme *
acme_new(const struct acme_opts *o, struct acme_key *key,
    const char *account_url)
{
	struct acme	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		acme_key_free(key);
		return NULL;
	}
	a->key = key;
	a->order_timeout_ms = o->order_timeout_ms != 0 ? o->order_timeout_ms :
	    5 * 60 * 1000;
	if ((a->directory = strdup(o->directory)) == NULL ||
	    (o->email != NULL && (a->email = strdup(o->email)) == NULL) ||
	    (o->eab_kid != NULL && (a->eab_kid = strdup(o->eab_kid)) ==
	    NULL) ||
	    (o->eab_hmac != NULL && (a->eab_hmac = strdup(o->eab_hmac)) ==
	    NULL) ||
	    (account_url != NULL && (a->account_url = strdup(account_url)) ==
	    NULL) ||
	    (a->http = acme_http_new(o->ca_bundle, o->timeout_ms)) == NULL ||
	    acme_jwk_thumbprint(key, a->thumbprint) == -1) {
		acme_free(a);
		return NULL;
	}
	/* An EAB is a pair: half of one is none. */
	if (a->eab_kid == NULL || a->eab_hmac == NULL) {
		free(a->eab_kid);
		if (a->eab_hmac != NULL)
			sodium_memzero(a->eab_hmac, strlen(a->eab_hmac));
		free(a->eab_hmac);
		a->eab_kid = a->eab_hmac = NULL;
	}
	a->account_given = account_url != NULL;
	return a;
}

void
acme_free(struct acme *a)
{
	if (a == NULL)
		return;
	acme_http_free(a->http);
	acme_key_free(a->key);
	if (a->eab_hmac != NULL)
		sodium_memzero(a->eab_hmac, strlen(a->eab_hmac));
	free(a->eab_hmac);
	free(a->eab_kid);
	free(a->email);
	free(a->directory);
	free(a->account_url);
	free(a->new_nonce);
	free(a->new_account);
	free(a->new_order);
	free(a->revoke_cert);
	free(a->renewal_info);
	free(a->terms);
	free(a->caa_identity);
	free(a);
}

int
acme_directory(struct acme *a, struct acme_error *e)
{
	struct acme_http_resp	 r;
	json_t			*doc, *meta;
	const char		*u[3];
	char			 url[256];

	memset(e, 0, sizeof(*e));
	if (a->have_dir)
		return 0;
	if (acme_http_get(a->http, a->directory, &r, e) == -1)
		return -1;
	if (r.nonce[0] != '\0')
		strcpy(a->nonce, r.nonce);
	acme_parse_clean(url, sizeof(url), a->directory);
	if (r.status != 200) {
		acme_err(e, ACME_ERR_CA, "the CA answered HTTP %ld for the "
		    "directory %s; check acme.directory", r.status, url);
		e->http_status = (int)r.status;
		acme_http_resp_clear(&r);
		return -1;
	}
	doc = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, NULL);
	acme_http_resp_clear(&r);
	u[0] = acme_jurl(doc, "newNonce");
	u[1] = acme_jurl(doc, "newAccount");
	u[2] = acme_jurl(doc, "newOrder");
	if (!json_is_object(doc) || u[0] == NULL || u[1] == NULL ||
	    u[2] == NULL) {
		json_decref(doc);
		acme_err(e, ACME_ERR_CA, "%s is not an ACME directory (no "
		    "newNonce, newAccount and newOrder URLs); check "
		    "acme.directory", url);
		return -1;
	}
	free(a->new_nonce);
	free(a->new_account);
	free(a->new_order);
	a->new_nonce = strdup(u[0]);
	a->new_account = strdup(u[1]);
	a->new_order = strdup(u[2]);
	if ((u[0] = acme_jurl(doc, "revokeCert")) != NULL)
		a->revoke_cert = strdup(u[0]);
	if ((u[0] = acme_jurl(doc, "renewalInfo")) != NULL)
		a->renewal_info = strdup(u[0]);
	meta = json_object_get(doc, "meta");
	if ((u[0] = acme_jstr(meta, "termsOfService", ACME_URL_MAX)) != NULL)
		a->terms = strdup(u[0]);
	a->eab_required = json_is_true(json_object_get(meta,
	    "externalAccountRequired"));
	/* A CAA issuer domain: letters, digits, '-' and dots only, as it
	 * goes into a DNS record. */
	if ((u[0] = json_string_value(json_array_get(json_object_get(meta,
	    "caaIdentities"), 0))) != NULL && strlen(u[0]) < 254 &&
	    strspn(u[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-.") == strlen(u[0]) && u[0][0] != '\0')
		a->caa_identity = strdup(u[0]);
	json_decref(doc);
	if (a->new_nonce == NULL || a->new_account == NULL ||
	    a->new_order == NULL) {
		acme_err(e, ACME_ERR_LOCAL, "out of memory");
		return -1;
	}
	a->have_dir = 1;
	return 0;
}

const char *
acme_terms(const struct acme *a)
{
	return a->terms;
}

const char *
acme_caa_identity(const struct acme *a)
{
	return a->caa_identity;
}

int
acme_has_ari(const struct acme *a)
{
	return a->renewal_info != NULL;
}

int
acme_account(struct acme *a, struct acme_error *e)
{
	if (acme_directory(a, e) == -1)
		return -1;
	/* A URL from an earlier run is trusted until the CA says no. */
	if (a->account_url != NULL)
		return 0;
	return acme_account_new(a, e);
}

const char *
acme_account_url(const struct acme *a)
{
	return a->account_url;
}

int
acme_order(struct acme *a, const char *const *names, size_t n,
    const enum acme_chal *pref, size_t npref, const char *key_pem,
    acme_publish_fn publish, void *arg, char **chain_pem,
    struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the new order" };
	struct acme_http_resp	 r;
	struct acme_authz	*az = NULL;
	json_t			*req = NULL, *ids, *order = NULL, *list;
	char			*text = NULL, *order_url = NULL, *b64 = NULL;
	char			 err[256], *fin_url = NULL;
	const char		*st, *u;
	unsigned char		*der = NULL;
	size_t			 i, naz = 0, derlen = 0;
	uint64_t		 deadline;
	int			 rc = -1;

	*chain_pem = NULL;
	if (acme_account(a, e) == -1)
		return -1;
	if (n == 0 || n > ACME_CERT_NAMES_MAX || npref == 0 ||
	    publish == NULL) {
		acme_err(e, ACME_ERR_LOCAL, "an order needs 1 to %d names, "
		    "a challenge type and a publish callback",
		    ACME_CERT_NAMES_MAX);
		return -1;
	}
	deadline = mono_ms() + a->order_timeout_ms;
	/* The CSR first: a bad key should fail before the CA is asked. */
	if (acme_csr(key_pem, names, n, &der, &derlen, err,
	    sizeof(err)) == -1) {
		acme_err(e, ACME_ERR_LOCAL, "%s", err);
		return -1;
	}
	if ((b64 = malloc(derlen * 4 / 3 + 4)) == NULL)
		goto nomem;
	acme_b64url(der, derlen, b64, derlen * 4 / 3 + 4);
	if ((req = json_object()) == NULL || (ids = json_array()) == NULL ||
	    json_object_set_new(req, "identifiers", ids) == -1)
		goto nomem;
	for (i = 0; i < n; i++)
		if (json_array_append_new(ids, json_pack("{s:s, s:s}", "type",
		    "dns", "value", names[i])) == -1)
			goto nomem;
	if ((text = json_dumps(req, JSON_COMPACT)) == NULL)
		goto nomem;
	if (acme_post(a, a->new_order, text, 0, NULL, &ctx, &r, e) == -1)
		goto out;
	if (r.location == NULL || (order_url = strdup(r.location)) == NULL) {
		acme_http_resp_clear(&r);
		acme_err_bad(e, "the new order (no Location)");
		goto out;
	}
	order = acme_json(&r, "the new order", e);
	acme_http_resp_clear(&r);
	if (order == NULL)
		goto out;
	list = json_object_get(order, "authorizations");
	if ((st = acme_jstr(order, "status", 32)) == NULL ||
	    !json_is_array(list) || json_array_size(list) > ACME_AUTHZ_MAX ||
	    (u = acme_jurl(order, "finalize")) == NULL ||
	    (fin_url = strdup(u)) == NULL) {
		acme_err_bad(e, "the new order");
		goto out;
	}
	if (strcmp(st, "invalid") == 0) {
		acme_order_failed(order, names[0], e);
		goto out;
	}

	/* Authorizations: fetch all, publish and trigger, then poll. */
	naz = json_array_size(list);
	if (naz > 0 && (az = calloc(naz, sizeof(*az))) == NULL)
		goto nomem;
	for (i = 0; i < naz; i++) {
		if ((u = json_string_value(json_array_get(list, i))) == NULL ||
		    strncmp(u, "https://", 8) != 0 ||
		    strlen(u) > ACME_URL_MAX) {
			acme_err_bad(e, "the order's authorizations");
			goto out;
		}
		if ((az[i].url = strdup(u)) == NULL)
			goto nomem;
	}
	for (i = 0; i < naz; i++)
		if (acme_authz_fetch(a, &az[i], names, n, pref, npref,
		    e) == -1)
			goto out;
	if (acme_authz_poll(a, az, naz, deadline, publish, arg, e) == -1)
		goto out;

	/* Finalize with our CSR once the order is ready. */
	json_decref(order);
	order = NULL;
	if (acme_order_poll(a, order_url, "pending", deadline, &order,
	    e) == -1)
		goto out;
	st = acme_jstr(order, "status", 32);
	if (strcmp(st, "ready") == 0) {
		json_decref(req);
		free(text);
		text = NULL;
		if ((req = json_pack("{s:s}", "csr", b64)) == NULL ||
		    (text = json_dumps(req, JSON_COMPACT)) == NULL)
			goto nomem;
		ctx.what = "the finalize request";
		if (acme_post(a, fin_url, text, 0, NULL, &ctx, &r, e) == -1)
			goto out;
		acme_http_resp_clear(&r);
		json_decref(order);
		order = NULL;
		if (acme_order_poll(a, order_url, "ready processing",
		    deadline, &order, e) == -1)
			goto out;
		st = acme_jstr(order, "status", 32);
	}
	if (strcmp(st, "valid") != 0) {
		acme_order_failed(order, names[0], e);
		goto out;
	}
	if ((u = acme_jurl(order, "certificate")) == NULL) {
		acme_err_bad(e, "the valid order (no certificate URL)");
		goto out;
	}
	rc = acme_download(a, u, key_pem, names, n, chain_pem, e);
	goto out;
nomem:
	acme_err(e, ACME_ERR_LOCAL, "out of memory");
out:
	/* Whatever happened, nothing stays published. */
	acme_authz_withdraw(az, naz, publish, arg);
	acme_authz_clear(az, naz);
	free(az);
	json_decref(req);
	json_decref(order);
	free(text);
	free(order_url);
	free(fin_url);
	free(der);
	free(b64);
	return rc;
}

int
acme_revoke(struct acme *a, const char *cert_pem, int reason,
    struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the revocation" };
	struct acme_http_resp	 r;
	unsigned char		*der;
	char			*b64 = NULL, *text = NULL;
	json_t			*req;
	size_t			 len;
	int			 rc = -1;

	if (acme_account(a, e) == -1)
		return -1;
	if (a->revoke_cert == NULL) {
		acme_err(e, ACME_ERR_CA, "the CA's directory offers no "
		    "revokeCert");
		return -1;
	}
	/* RFC 5280 5.3.1: 0..10, 7 is not used. */
	if (reason < 0 || reason > 10 || reason == 7) {
		acme_err(e, ACME_ERR_LOCAL, "revocation reason %d is not an "
		    "RFC 5280 reason code (0-6, 8-10)", reason);
		return -1;
	}
	if (acme_cert_der(cert_pem, &der, &len) == -1) {
		acme_err(e, ACME_ERR_LOCAL, "no PEM certificate to revoke");
		return -1;
	}
	if ((b64 = malloc(len * 4 / 3 + 4)) != NULL) {
		acme_b64url(der, len, b64, len * 4 / 3 + 4);
		if ((req = json_pack("{s:s, s:i}", "certificate", b64,
		    "reason", reason)) != NULL)
			text = json_dumps(req, JSON_COMPACT);
		json_decref(req);
	}
	free(der);
	free(b64);
	if (text == NULL) {
		acme_err(e, ACME_ERR_LOCAL, "out of memory");
		return -1;
	}
	if (acme_post(a, a->revoke_cert, text, 0, NULL, &ctx, &r, e) == 0) {
		acme_http_resp_clear(&r);
		rc = 0;
	}
	free(text);
	return rc;
}

int
acme_renewal_info(struct acme *a, const char *cert_pem, time_t *start,
    time_t *end, unsigned *retry_s, struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the renewal information "
				    "request" };
	struct acme_cert_info	 ci;
	struct acme_http_resp	 r;
	char			 url[ACME_URL_MAX + 300], err[256];
	size_t			 len;

	*start = *end = 0;
	*retry_s = 0;
	if (acme_directory(a, e) == -1)
		return -1;
	if (a->renewal_info == NULL)
		return 1;
	if (acme_cert_info(cert_pem, &ci, err, sizeof(err)) == -1) {
		acme_err(e, ACME_ERR_LOCAL, "%s", err);
		return -1;
	}
	if (ci.ari_id[0] == '\0') {
		acme_cert_info_clear(&ci);
		acme_err(e, ACME_ERR_LOCAL, "the certificate has no authority "
		    "key identifier, so it has no renewal information ID");
		return -1;
	}
	len = strlen(a->renewal_info);
	snprintf(url, sizeof(url), "%s%s%s", a->renewal_info,
	    len > 0 && a->renewal_info[len - 1] == '/' ? "" : "/", ci.ari_id);
	acme_cert_info_clear(&ci);
	if (acme_http_get(a->http, url, &r, e) == -1)
		return -1;
	if (r.nonce[0] != '\0')
		strcpy(a->nonce, r.nonce);
	if (r.status != 200) {
		acme_parse_problem(&ctx, r.body, r.len, (int)r.status,
		    r.retry_after, e);
		acme_http_resp_clear(&r);
		return -1;
	}
	if (acme_parse_renewal_info(r.body, r.len, start, end, err,
	    sizeof(err)) == -1) {
		acme_http_resp_clear(&r);
		acme_err(e, ACME_ERR_CA, "the CA's renewal information is "
		    "malformed: %s", err);
		return -1;
	}
	*retry_s = r.retry_after;
	acme_http_resp_clear(&r);
	return 0;
}

/*
 * A signed POST (payload NULL: POST-as-GET) with the account's kid, or
 * its JWK when jwk is set.  Takes a fresh nonce when needed, retries on
 * badNonce with the one from the error (RFC 8555 6.5), and recreates an
 * account the CA no longer knows once.  Returns 0 with a 2xx/3xx answer
 * in *r (caller clears), or -1 with e from the problem.
 */
static int
acme_post(struct acme *a, const char *url, const char *payload, int jwk,
    const char *accept, const struct acme_problem_ctx *ctx,
    struct acme_http_resp *r, struct acme_error *e)
{
	char	*jws, type[128];
	int	 tries, rc;

	for (tries = 0;; tries++) {
		if (a->nonce[0] == '\0' && acme_nonce(a, e) == -1)
			return -1;
		jws = acme_jws(a->key, jwk ? NULL : a->account_url, a->nonce,
		    url, payload);
		a->nonce[0] = '\0';	/* used, whatever happens */
		if (jws == NULL) {
			acme_err(e, ACME_ERR_LOCAL, "cannot sign the request");
			return -1;
		}
		rc = acme_http_post(a->http, url, jws, accept, r, e);
		free(jws);
		if (rc == -1)
			return -1;
		if (r->nonce[0] != '\0')
			strcpy(a->nonce, r->nonce);
		if (r->status < 400)
			return 0;
		acme_problem_type(r, type, sizeof(type));
		if (strcmp(type, ACME_URN "badNonce") == 0 &&
		    tries < ACME_NONCE_RETRIES) {
			acme_http_resp_clear(r);
			continue;
		}
		if (strcmp(type, ACME_URN "accountDoesNotExist") == 0 &&
		    !jwk && a->account_given) {
			/* The saved URL is stale: register again, once. */
			acme_http_resp_clear(r);
			a->account_given = 0;
			free(a->account_url);
			a->account_url = NULL;
			if (acme_account_new(a, e) == -1)
				return -1;
			tries = -1;
			continue;
		}
		acme_parse_problem(ctx, r->body, r->len, (int)r->status,
		    r->retry_after, e);
		acme_http_resp_clear(r);
		return -1;
	}
}

/* A fresh nonce from newNonce (HEAD). */
static int
acme_nonce(struct acme *a, struct acme_error *e)
{
	struct acme_http_resp	r;

	if (acme_http_head(a->http, a->new_nonce, &r, e) == -1)
		return -1;
	if (r.nonce[0] == '\0') {
		acme_err(e, ACME_ERR_CA, "the CA's newNonce answered HTTP %ld "
		    "without a Replay-Nonce", r.status);
		acme_http_resp_clear(&r);
		return -1;
	}
	strcpy(a->nonce, r.nonce);
	acme_http_resp_clear(&r);
	return 0;
}

/* newAccount: agree to the terms, with contact and binding if set. */
static int
acme_account_new(struct acme *a, struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .step = ACME_STEP_ACCOUNT,
				    .what = "the new account" };
	struct acme_http_resp	 r;
	json_t			*req, *eab, *doc;
	char			*text = NULL, err[256], mail[1100];
	const char		*st;
	int			 rc = -1;

	if (a->eab_required && a->eab_kid == NULL) {
		acme_err(e, ACME_ERR_ACCOUNT, "the CA requires an external "
		    "account binding; add acme.eab with the kid and hmac_key "
		    "shown in your account at the CA");
		return -1;
	}
	if ((req = json_pack("{s:b}", "termsOfServiceAgreed", 1)) == NULL)
		goto nomem;
	if (a->email != NULL) {
		snprintf(mail, sizeof(mail), "mailto:%s", a->email);
		if (json_object_set_new(req, "contact", json_pack("[s]",
		    mail)) == -1)
			goto nomem;
	}
	if (a->eab_kid != NULL) {
		ctx.eab = 1;
		if ((eab = acme_jws_eab(a->key, a->eab_kid, a->eab_hmac,
		    a->new_account, err, sizeof(err))) == NULL) {
			acme_err(e, ACME_ERR_ACCOUNT, "cannot make the "
			    "external account binding: %s", err);
			goto out;
		}
		if (json_object_set_new(req, "externalAccountBinding",
		    eab) == -1)
			goto nomem;
	}
	if ((text = json_dumps(req, JSON_COMPACT)) == NULL)
		goto nomem;
	if (acme_post(a, a->new_account, text, 1, NULL, &ctx, &r, e) == -1)
		goto out;
	if ((r.status != 200 && r.status != 201) || r.location == NULL) {
		acme_err_bad(e, "the new account (no Location)");
		acme_http_resp_clear(&r);
		goto out;
	}
	/* An existing account may be deactivated: no use going on. */
	doc = json_loadb(r.body, r.len, 0, NULL);
	if ((st = acme_jstr(doc, "status", 32)) != NULL &&
	    strcmp(st, "valid") != 0) {
		acme_err(e, ACME_ERR_ACCOUNT, "the CA says this account is %s; "
		    "remove the account directory under acme.state_dir to "
		    "register a new one", st);
		json_decref(doc);
		acme_http_resp_clear(&r);
		goto out;
	}
	json_decref(doc);
	free(a->account_url);
	a->account_url = strdup(r.location);
	acme_http_resp_clear(&r);
	if (a->account_url == NULL)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	acme_err(e, ACME_ERR_LOCAL, "out of memory");
out:
	json_decref(req);
	if (text != NULL)
		sodium_memzero(text, strlen(text));
	free(text);
	return rc;
}

/* The body as a JSON object, or NULL with e set. */
static json_t *
acme_json(const struct acme_http_resp *r, const char *what,
    struct acme_error *e)
{
	json_t	*doc;

	doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		acme_err_bad(e, what);
		return NULL;
	}
	return doc;
}

/* o[key] if it is an https URL of sane length. */
static const char *
acme_jurl(json_t *o, const char *key)
{
	const char	*u;

	if ((u = acme_jstr(o, key, ACME_URL_MAX)) == NULL ||
	    strncmp(u, "https://", 8) != 0)
		return NULL;
	return u;
}

static const char *
acme_jstr(json_t *o, const char *key, size_t max)
{
	return acme_parse_jstr(o, key, max);
}

/* The problem type of an error answer into buf ("" if none). */
static const char *
acme_problem_type(const struct acme_http_resp *r, char *buf, size_t len)
{
	json_t		*doc;
	const char	*t;

	buf[0] = '\0';
	doc = json_loadb(r->body, r->len, 0, NULL);
	if ((t = acme_jstr(doc, "type", 127)) != NULL)
		snprintf(buf, len, "%s", t);
	json_decref(doc);
	return buf;
}

/*
 * Fetch one authorization and choose its challenge.  Valid ones are
 * done; pending ones get the first preferred type the CA offers.
 */
static int
acme_authz_fetch(struct acme *a, struct acme_authz *az,
    const char *const *names, size_t n, const enum acme_chal *pref,
    size_t npref, struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "an authorization" };
	struct acme_http_resp	 r;
	json_t			*doc, *chals, *c, *found = NULL;
	const char		*st, *name, *t, *tok, *u;
	char			 offered[128], nm[256];
	size_t			 i, j, len;
	int			 rc = -1, wild;

	if (acme_post(a, az->url, NULL, 0, NULL, &ctx, &r, e) == -1)
		return -1;
	doc = acme_json(&r, "an authorization", e);
	acme_http_resp_clear(&r);
	if (doc == NULL)
		return -1;
	st = acme_jstr(doc, "status", 32);
	name = acme_jstr(json_object_get(doc, "identifier"), "value", 253);
	t = acme_jstr(json_object_get(doc, "identifier"), "type", 16);
	chals = json_object_get(doc, "challenges");
	if (st == NULL || name == NULL || t == NULL || strcmp(t, "dns") != 0 ||
	    !json_is_array(chals)) {
		acme_err_bad(e, "an authorization");
		goto out;
	}
	/* Never answer for a name we did not ask for.  A wildcard's
	 * authorization names the base and says "wildcard" (RFC 8555
	 * 7.1.4). */
	wild = json_is_true(json_object_get(doc, "wildcard"));
	for (i = 0; i < n; i++)
		if (wild ? strncmp(names[i], "*.", 2) == 0 &&
		    strcasecmp(names[i] + 2, name) == 0 :
		    strcasecmp(names[i], name) == 0)
			break;
	if (i == n) {
		acme_err(e, ACME_ERR_CA, "the CA sent an authorization for %s, "
		    "which was not ordered",
		    acme_parse_clean(nm, sizeof(nm), name));
		goto out;
	}
	if ((az->name = strdup(names[i])) == NULL)
		goto nomem;
	if (strcmp(st, "valid") == 0) {
		az->done = 1;
		rc = 0;
		goto out;
	}
	if (strcmp(st, "pending") != 0) {
		if (acme_authz_error(doc, az, e) == -1)
			acme_err(e, ACME_ERR_CA, "the CA's authorization for "
			    "%s is %s", az->name, st);
		goto out;
	}
	for (i = 0; i < npref && found == NULL; i++)
		for (j = 0; j < json_array_size(chals) && found == NULL; j++) {
			c = json_array_get(chals, j);
			if ((t = acme_jstr(c, "type", 32)) != NULL &&
			    strcmp(t, acme_chal_name(pref[i])) == 0) {
				found = c;
				az->type = pref[i];
			}
		}
	if (found == NULL) {
		offered[0] = '\0';
		for (j = 0; j < json_array_size(chals) && j < 8; j++) {
			if ((t = acme_jstr(json_array_get(chals, j), "type",
			    32)) == NULL)
				continue;
			len = strlen(offered);
			snprintf(offered + len, sizeof(offered) - len, "%s%s",
			    len > 0 ? ", " : "", t);
		}
		acme_parse_clean(nm, sizeof(nm), offered);
		acme_err(e, ACME_ERR_CA, "the CA offers no challenge porch can "
		    "answer for %s (it offers %s); check acme.challenge",
		    az->name, nm[0] != '\0' ? nm : "none");
		goto out;
	}
	tok = acme_jstr(found, "token", ACME_TOKEN_MAX);
	u = acme_jurl(found, "url");
	st = acme_jstr(found, "status", 32);
	/* The token goes into a URL path and a file name: base64url only. */
	if (tok == NULL || u == NULL || st == NULL ||
	    strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") != strlen(tok)) {
		acme_err_bad(e, "a challenge");
		goto out;
	}
	if (strcmp(st, "invalid") == 0) {
		if (acme_authz_error(doc, az, e) == -1)
			acme_err(e, ACME_ERR_CA, "the %s challenge for %s is "
			    "invalid", acme_chal_name(az->type), az->name);
		goto out;
	}
	az->respond = strcmp(st, "pending") == 0;
	len = strlen(tok) + 1 + strlen(a->thumbprint) + 1;
	if ((az->chal_url = strdup(u)) == NULL ||
	    (az->token = strdup(tok)) == NULL ||
	    (az->key_auth = malloc(len)) == NULL)
		goto nomem;
	snprintf(az->key_auth, len, "%s.%s", tok, a->thumbprint);
	rc = 0;
	goto out;
nomem:
	acme_err(e, ACME_ERR_LOCAL, "out of memory");
out:
	json_decref(doc);
	return rc;
}

/*
 * Publish every pending answer, ask the CA to validate, then poll the
 * authorizations until each is decided, withdrawing answers as they are.
 */
static int
acme_authz_poll(struct acme *a, struct acme_authz *az, size_t naz,
    uint64_t deadline, acme_publish_fn publish, void *arg,
    struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "a challenge" };
	struct acme_challenge	 ch;
	struct acme_http_resp	 r;
	json_t			*doc;
	const char		*st;
	char			 msg[512], m[512];
	size_t			 i, left;
	unsigned		 wait, round = 0, ra;

	for (i = 0; i < naz; i++) {
		if (az[i].done)
			continue;
		ch.type = az[i].type;
		ch.name = az[i].name;
		ch.token = az[i].token;
		ch.key_auth = az[i].key_auth;
		msg[0] = '\0';
		if (publish(&ch, 1, msg, sizeof(msg), arg) == -1) {
			acme_err(e, ACME_ERR_LOCAL, "cannot publish the %s "
			    "answer for %s: %s", acme_chal_name(ch.type),
			    ch.name,
			    acme_parse_clean(m, sizeof(m), msg));
			return -1;
		}
		az[i].published = 1;
	}
	for (i = 0; i < naz; i++) {
		if (az[i].done || !az[i].respond)
			continue;
		ctx.name = az[i].name;
		if (acme_post(a, az[i].chal_url, "{}", 0, NULL, &ctx, &r,
		    e) == -1)
			return -1;
		acme_http_resp_clear(&r);
	}
	ctx.what = "an authorization";
	for (;;) {
		left = 0;
		ra = 0;
		for (i = 0; i < naz; i++) {
			if (az[i].done)
				continue;
			ctx.name = az[i].name;
			if (acme_post(a, az[i].url, NULL, 0, NULL, &ctx, &r,
			    e) == -1)
				return -1;
			if (r.retry_after > ra)
				ra = r.retry_after;
			doc = acme_json(&r, "an authorization", e);
			acme_http_resp_clear(&r);
			if (doc == NULL)
				return -1;
			if ((st = acme_jstr(doc, "status", 32)) == NULL) {
				json_decref(doc);
				acme_err_bad(e, "an authorization");
				return -1;
			}
			if (strcmp(st, "valid") == 0) {
				json_decref(doc);
				az[i].done = 1;
				acme_authz_withdraw(&az[i], 1, publish, arg);
				continue;
			}
			if (strcmp(st, "pending") != 0) {
				if (acme_authz_error(doc, &az[i], e) == -1)
					acme_err(e, ACME_ERR_CA, "the CA's "
					    "authorization for %s is %s",
					    az[i].name, st);
				json_decref(doc);
				return -1;
			}
			json_decref(doc);
			left++;
		}
		if (left == 0)
			return 0;
		wait = acme_poll_ms(ra, &round);
		if (acme_sleep(wait, deadline, "validate the challenges",
		    e) == -1)
			return -1;
	}
}

/* Withdraw what is still published; errors do not matter any more. */
static void
acme_authz_withdraw(struct acme_authz *az, size_t naz, acme_publish_fn publish,
    void *arg)
{
	struct acme_challenge	ch;
	char			msg[256];
	size_t			i;

	for (i = 0; i < naz; i++) {
		if (!az[i].published)
			continue;
		ch.type = az[i].type;
		ch.name = az[i].name;
		ch.token = az[i].token;
		ch.key_auth = az[i].key_auth;
		(void)publish(&ch, 0, msg, sizeof(msg), arg);
		az[i].published = 0;
	}
}

static void
acme_authz_clear(struct acme_authz *az, size_t naz)
{
	size_t	i;

	for (i = 0; i < naz; i++) {
		free(az[i].url);
		free(az[i].name);
		free(az[i].chal_url);
		free(az[i].token);
		free(az[i].key_auth);
	}
}

/* The error of a failed authorization's challenge into e; -1 if none. */
static int
acme_authz_error(json_t *doc, const struct acme_authz *az,
    struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .step = ACME_STEP_CHALLENGE,
				    .what = "the challenge" };
	json_t			*chals, *c, *err, *pick = NULL;
	const char		*t;
	size_t			 i;

	ctx.name = az->name;
	ctx.chal = az->type;
	chals = json_object_get(doc, "challenges");
	/* Ours first; else any challenge that carries an error. */
	for (i = 0; i < json_array_size(chals); i++) {
		c = json_array_get(chals, i);
		if (!json_is_object(err = json_object_get(c, "error")))
			continue;
		t = acme_jstr(c, "type", 32);
		if (pick == NULL || (t != NULL &&
		    strcmp(t, acme_chal_name(az->type)) == 0))
			pick = err;
		if (pick == err && t != NULL) {
			if (strcmp(t, "tls-alpn-01") == 0)
				ctx.chal = ACME_CHAL_TLSALPN01;
			else if (strcmp(t, "http-01") == 0)
				ctx.chal = ACME_CHAL_HTTP01;
			else if (strcmp(t, "dns-01") == 0)
				ctx.chal = ACME_CHAL_DNS01;
		}
	}
	if (pick == NULL)
		return -1;
	acme_parse_problem_json(&ctx, pick, 0, 0, e);
	return 0;
}

/*
 * POST-as-GET the order while its status is one of the words in wait,
 * honouring Retry-After, until the deadline.  *out is the last order.
 */
static int
acme_order_poll(struct acme *a, const char *url, const char *wait,
    uint64_t deadline, json_t **out, struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the order" };
	struct acme_http_resp	 r;
	json_t			*doc;
	const char		*st;
	unsigned		 sleep_ms, round = 0;
	size_t			 len;
	const char		*w;

	*out = NULL;
	for (;;) {
		if (acme_post(a, url, NULL, 0, NULL, &ctx, &r, e) == -1)
			return -1;
		sleep_ms = acme_poll_ms(r.retry_after, &round);
		doc = acme_json(&r, "the order", e);
		acme_http_resp_clear(&r);
		if (doc == NULL)
			return -1;
		if ((st = acme_jstr(doc, "status", 32)) == NULL) {
			json_decref(doc);
			acme_err_bad(e, "the order");
			return -1;
		}
		len = strlen(st);
		for (w = wait; (w = strstr(w, st)) != NULL; w += len)
			if ((w == wait || w[-1] == ' ') &&
			    (w[len] == '\0' || w[len] == ' '))
				break;
		if (w == NULL) {
			*out = doc;
			return 0;
		}
		json_decref(doc);
		if (acme_sleep(sleep_ms, deadline, "issue the certificate",
		    e) == -1)
			return -1;
	}
}

/* An order that is neither ready nor valid: its error, or its status. */
static int
acme_order_failed(json_t *order, const char *name, struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the order" };
	const char		*st;
	json_t			*err;

	if (json_is_object(err = json_object_get(order, "error"))) {
		acme_parse_problem_json(&ctx, err, 0, 0, e);
		return -1;
	}
	st = acme_jstr(order, "status", 32);
	acme_err(e, ACME_ERR_CA, "the CA's order for %s ended %s", name,
	    st != NULL ? st : "without a status");
	return -1;
}

/* Download the chain and check it is for our key and names. */
static int
acme_download(struct acme *a, const char *url, const char *key_pem,
    const char *const *names, size_t n, char **chain_pem,
    struct acme_error *e)
{
	struct acme_problem_ctx	 ctx = { .what = "the certificate download" };
	struct acme_http_resp	 r;
	struct acme_cert_info	 ci;
	char			 err[256];
	size_t			 i, j;

	if (acme_post(a, url, NULL, 0, "application/pem-certificate-chain",
	    &ctx, &r, e) == -1)
		return -1;
	if (r.status != 200 || strstr(r.body, "-----BEGIN CERTIFICATE-----") ==
	    NULL || strlen(r.body) != r.len) {
		acme_http_resp_clear(&r);
		acme_err_bad(e, "the certificate download (no PEM chain)");
		return -1;
	}
	if (!acme_cert_key_match(r.body, key_pem)) {
		acme_http_resp_clear(&r);
		acme_err(e, ACME_ERR_CA, "the CA sent a certificate that is "
		    "not for our key; not using it");
		return -1;
	}
	if (acme_cert_info(r.body, &ci, err, sizeof(err)) == -1) {
		acme_http_resp_clear(&r);
		acme_err(e, ACME_ERR_CA, "the CA sent a certificate porch "
		    "cannot read: %s", err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < ci.nnames; j++)
			if (strcasecmp(names[i], ci.names[j]) == 0)
				break;
		if (j == ci.nnames) {
			acme_cert_info_clear(&ci);
			acme_http_resp_clear(&r);
			acme_err(e, ACME_ERR_CA, "the CA sent a certificate "
			    "without %s; not using it", names[i]);
			return -1;
		}
	}
	acme_cert_info_clear(&ci);
	*chain_pem = r.body;
	r.body = NULL;
	acme_http_resp_clear(&r);
	(void)a;
	return 0;
}

/* The next poll's delay: the CA's Retry-After, else our schedule. */
static unsigned
acme_poll_ms(unsigned retry_after_s, unsigned *round)
{
	unsigned	ms;

	if (retry_after_s != 0)
		return retry_after_s > ACME_POLL_MAX_S ? ACME_POLL_MAX_S * 1000 :
		    retry_after_s * 1000;
	ms = *round < 2 ? ACME_POLL_FIRST_MS << *round : ACME_POLL_STEADY_MS;
	(*round)++;
	return ms;
}

/* Wait ms (at most ACME_POLL_MAX_S), unless past the deadline. */
static int
acme_sleep(unsigned wait_ms, uint64_t deadline, const char *doing,
    struct acme_error *e)
{
	struct timespec	ts;
	uint64_t	now = mono_ms(), ms = wait_ms;

	if (ms > ACME_POLL_MAX_S * 1000)
		ms = ACME_POLL_MAX_S * 1000;
	if (now >= deadline) {
		acme_err(e, ACME_ERR_TIMEOUT, "the CA did not %s in time; "
		    "it may be slow or overloaded, try again later", doing);
		return -1;
	}
	if (now + ms > deadline)
		ms = deadline - now;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return 0;
}

static void
acme_err(struct acme_error *e, enum acme_err_kind kind, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	acme_parse_verr(e, kind, fmt, ap);
	va_end(ap);
}

/* The CA sent something that is not what RFC 8555 says. */
static void
acme_err_bad(struct acme_error *e, const char *what)
{
	acme_err(e, ACME_ERR_CA, "the CA's answer to %s is malformed; check "
	    "that acme.directory is an RFC 8555 (ACME v2) directory", what);
}
