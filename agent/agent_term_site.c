/* SPDX-License-Identifier: ISC */
/*
 * The certificates of TLS termination: one site per service that ends
 * TLS here ("tls: terminate"), with the certificate ACME obtained for it
 * (STATE/certs/NAME/current) and its h2c backend, kept in step with the
 * services across reloads and renewals.  The SNI callback picks a
 * visitor's certificate from them, the ALPN callback its protocol.
 *
 * Certificates are one SSL_CTX each, switched to by the SNI callback.
 * A handshake holds a reference to the context it uses (OpenSSL counts
 * them), so a renewal swaps the site's context for new visitors while
 * those in flight keep the old one until they close.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acme_store.h"
#include "agent.h"
#include "agent_term_priv.h"
#include "log.h"
#include "mono.h"
#include "name.h"

#define AGENT_TERM_WARN_MS	60000	/* "no certificate", per name */
#define AGENT_TERM_SID		"porch-term"

/* One terminating service: its certificate and where h2 goes. */
struct agent_term_site {
	TAILQ_ENTRY(agent_term_site) entry;
	char			*name;	/* first certificate name */
	char			**names;	/* every name it covers */
	size_t			 nnames;
	SSL_CTX			*ctx;	/* NULL: none loaded */
	int			 missing;	/* no files yet: no error */
	char			 why[256];	/* why ctx is NULL */
	uint64_t		 warned_ms;	/* last "no certificate" */
	char			*h2c_text;	/* configured, or NULL */
	struct sockaddr_storage	 h2c;
	socklen_t		 h2c_len;	/* 0: no h2 */
	int			 seen;	/* sync mark */
};

static int	agent_term_sync(struct agent_term *, int, char *, size_t);
static struct agent_term_site *agent_term_site_new(
		    const struct cfg_service *);
static int	agent_term_site_names(struct agent_term_site *,
		    const struct cfg_service *);
static int	agent_term_site_h2c(struct agent *, struct agent_term_site *,
		    const struct cfg_service *, char *, size_t);
static int	agent_term_site_load(struct agent_term *,
		    struct agent_term_site *, char *, size_t);
static void	agent_term_site_free(struct agent_term_site *);
static struct agent_term_site *agent_term_site_find(struct agent_term *,
		    const char *);
static struct agent_term_site *agent_term_site_covering(struct agent_term *,
		    const char *);
static int	agent_term_site_covers(const struct agent_term_site *,
		    const char *);
static void	agent_term_site_warn(struct agent_term_site *);
static int	agent_term_sni_cb(SSL *, int *, void *);
static int	agent_term_alpn_cb(SSL *, const unsigned char **,
		    unsigned char *, const unsigned char *, unsigned int,
		    void *);

int
agent_term_init(struct agent *a, char *err, size_t errlen)
{
	struct agent_term	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->a = a;
	TAILQ_INIT(&t->sites);
	a->term = t;
	if ((t->ctx = agent_term_ctx_new(t)) == NULL) {
		snprintf(err, errlen, "TLS termination: cannot make a TLS "
		    "context");
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(t->ctx, agent_term_sni_cb);
	SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
	return agent_term_sync(t, 1, err, errlen);
}

void
agent_term_free(struct agent *a)
{
	struct agent_term	*t = a->term;
	struct agent_term_site	*site;

	if (t == NULL)
		return;
	/* No connection is left: each ended with its stream, and the
	 * tunnels were closed before. */
	while ((site = TAILQ_FIRST(&t->sites)) != NULL) {
		TAILQ_REMOVE(&t->sites, site, entry);
		agent_term_site_free(site);
	}
	SSL_CTX_free(t->ctx);
	free(t->state_dir);
	free(t);
	a->term = NULL;
}

/* Cheap unless a service or the state directory is new. */
void
agent_term_services_changed(struct agent *a)
{
	char	err[512];

	if (a->term != NULL && agent_term_sync(a->term, 0, err,
	    sizeof(err)) == -1)
		log_warnx("terminate: %s", err);
}

int
agent_term_reload(struct agent *a, const char *name, char *err,
    size_t errlen)
{
	struct agent_term_site	*site;

	if (a->term == NULL ||
	    (site = agent_term_site_find(a->term, name)) == NULL)
		return 0;	/* no service ends TLS with it */
	if (agent_term_site_load(a->term, site, err, errlen) == -1)
		return -1;	/* the old one, if any, stays in use */
	log_info("terminate %s: new certificate in use for new connections",
	    site->name);
	return 0;
}

int
agent_term_has_cert(struct agent *a, const char *hostname)
{
	struct agent_term_site	*site;

	if (a->term == NULL)
		return 0;
	TAILQ_FOREACH(site, &a->term->sites, entry)
		if (site->ctx != NULL && agent_term_site_covers(site, hostname))
			return 1;
	return 0;
}

int
agent_term_h2c(struct agent_term *t, const char *name,
    struct sockaddr_storage *ss, socklen_t *len, char *text, size_t textlen)
{
	struct agent_term_site	*site;

	if ((site = agent_term_site_find(t, name)) == NULL ||
	    site->h2c_len == 0)
		return 0;
	memcpy(ss, &site->h2c, sizeof(*ss));
	*len = site->h2c_len;
	snprintf(text, textlen, "%s", site->h2c_text);
	return 1;
}

/*
 * The services that end TLS, and their certificates: keep the sites of
 * names still there (their contexts stay loaded), add the new ones,
 * drop the rest.  strict (startup): an h2c backend that does not
 * resolve fails; later it only costs the service its h2.
 */
static int
agent_term_sync(struct agent_term *t, int strict, char *err, size_t errlen)
{
	struct agent			*a = t->a;
	const struct cfg_service	*cs;
	struct agent_term_site		*site, *next;
	const char			*state;
	char				 why[512];
	size_t				 i;
	int				 all, fresh;

	state = a->cfg->acme != NULL ? a->cfg->acme->state_dir : NULL;
	/* Another state directory holds other files: read them all. */
	all = (state == NULL) != (t->state_dir == NULL) ||
	    (state != NULL && strcmp(state, t->state_dir) != 0);
	if (all) {
		free(t->state_dir);
		t->state_dir = NULL;
		if (state != NULL && (t->state_dir = strdup(state)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	TAILQ_FOREACH(site, &t->sites, entry)
		site->seen = 0;
	for (i = 0; i < a->nservices; i++) {
		cs = a->services[i]->cfg;
		if (!cs->tls_terminate)
			continue;
		fresh = 0;
		if ((site = agent_term_site_find(t, cs->ncert_names > 0 ?
		    cs->cert_names[0] : cs->hostname)) == NULL) {
			if ((site = agent_term_site_new(cs)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			TAILQ_INSERT_TAIL(&t->sites, site, entry);
			fresh = 1;
		}
		site->seen = 1;
		if (agent_term_site_names(site, cs) == -1) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (agent_term_site_h2c(a, site, cs, why, sizeof(why)) == -1) {
			if (strict) {
				snprintf(err, errlen, "%s", why);
				return -1;
			}
			log_warnx("terminate %s: %s; h2 is not offered",
			    site->name, why);
		}
		if (!fresh && !all)
			continue;
		if (agent_term_site_load(t, site, why, sizeof(why)) == 0)
			continue;
		if (site->missing)
			log_info("terminate %s: no certificate yet; TLS "
			    "visitors are refused until ACME obtains one",
			    site->name);
		else
			log_warnx("terminate %s: %s", site->name, why);
	}
	for (site = TAILQ_FIRST(&t->sites); site != NULL; site = next) {
		next = TAILQ_NEXT(site, entry);
		if (site->seen)
			continue;
		/* Handshakes in flight hold their own reference. */
		TAILQ_REMOVE(&t->sites, site, entry);
		agent_term_site_free(site);
	}
	return 0;
}

static struct agent_term_site *
agent_term_site_new(const struct cfg_service *cs)
{
	struct agent_term_site	*site;

	if ((site = calloc(1, sizeof(*site))) == NULL)
		return NULL;
	if ((site->name = strdup(cs->ncert_names > 0 ? cs->cert_names[0] :
	    cs->hostname)) == NULL) {
		free(site);
		return NULL;
	}
	site->missing = 1;
	snprintf(site->why, sizeof(site->why), "not loaded");
	return site;
}

/* The names SNI may ask for: a reload may have changed them. */
static int
agent_term_site_names(struct agent_term_site *site,
    const struct cfg_service *cs)
{
	char	**names;
	size_t	  i, n = cs->ncert_names > 0 ? cs->ncert_names : 1;

	if ((names = calloc(n, sizeof(*names))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		names[i] = strdup(cs->ncert_names > 0 ? cs->cert_names[i] :
		    cs->hostname);
		if (names[i] == NULL) {
			while (i-- > 0)
				free(names[i]);
			free(names);
			return -1;
		}
	}
	for (i = 0; i < site->nnames; i++)
		free(site->names[i]);
	free(site->names);
	site->names = names;
	site->nnames = n;
	return 0;
}

/* Resolve the h2c backend when it is new or changed (never per stream). */
static int
agent_term_site_h2c(struct agent *a, struct agent_term_site *site,
    const struct cfg_service *cs, char *err, size_t errlen)
{
	char	*text;

	if (cs->h2c_backend == NULL) {
		free(site->h2c_text);
		site->h2c_text = NULL;
		site->h2c_len = 0;
		return 0;
	}
	if (site->h2c_text != NULL && site->h2c_len > 0 &&
	    strcmp(site->h2c_text, cs->h2c_backend) == 0)
		return 0;
	free(site->h2c_text);
	site->h2c_text = NULL;
	site->h2c_len = 0;
	if (agent_backend_resolve(a, cs->h2c_backend, "h2c backend",
	    &site->h2c, &site->h2c_len, err, errlen) == -1)
		return -1;
	if ((text = strdup(cs->h2c_backend)) == NULL) {
		site->h2c_len = 0;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	site->h2c_text = text;
	return 0;
}

/*
 * Read STATE/certs/NAME/current into a new context and make it the
 * site's.  On failure the site keeps what it had.
 */
static int
agent_term_site_load(struct agent_term *t, struct agent_term_site *site,
    char *err, size_t errlen)
{
	char		 dir[PATH_MAX], real[PATH_MAX];
	char		 chain[PATH_MAX + 16], key[PATH_MAX + 16];
	unsigned long	 e;
	SSL_CTX		*ctx;
	int		 n1, n2;

	if (t->state_dir == NULL) {
		snprintf(err, errlen, "no acme: section to take a certificate "
		    "from");
		goto fail;
	}
	acme_store_cert_dir(t->state_dir, site->name, dir, sizeof(dir));
	/* Both files from one version: "current" may be swapped between
	 * the two reads. */
	if (realpath(dir, real) == NULL) {
		if (site->ctx == NULL)
			site->missing = errno == ENOENT;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	n1 = snprintf(chain, sizeof(chain), "%s/fullchain.pem", real);
	n2 = snprintf(key, sizeof(key), "%s/privkey.pem", real);
	if (n1 < 0 || (size_t)n1 >= sizeof(chain) || n2 < 0 ||
	    (size_t)n2 >= sizeof(key)) {
		snprintf(err, errlen, "%s: path too long", real);
		goto fail;
	}
	if ((ctx = agent_term_ctx_new(t)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1) {
		e = ERR_peek_last_error();
		snprintf(err, errlen, "%s: %s", chain,
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : "unreadable");
		SSL_CTX_free(ctx);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		e = ERR_peek_last_error();
		snprintf(err, errlen, "%s: %s", key,
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : "unreadable");
		SSL_CTX_free(ctx);
		goto fail;
	}
	ERR_clear_error();
	SSL_CTX_free(site->ctx);
	site->ctx = ctx;
	site->missing = 0;
	site->why[0] = '\0';
	log_info("terminate %s: certificate loaded from %s", site->name, real);
	return 0;
fail:
	ERR_clear_error();
	if (site->ctx == NULL)
		snprintf(site->why, sizeof(site->why), "%s", err);
	return -1;
}

static void
agent_term_site_free(struct agent_term_site *site)
{
	size_t	i;

	for (i = 0; i < site->nnames; i++)
		free(site->names[i]);
	free(site->names);
	free(site->name);
	free(site->h2c_text);
	SSL_CTX_free(site->ctx);
	free(site);
}

static struct agent_term_site *
agent_term_site_find(struct agent_term *t, const char *name)
{
	struct agent_term_site	*site;

	TAILQ_FOREACH(site, &t->sites, entry)
		if (strcmp(site->name, name) == 0)
			return site;
	return NULL;
}

/* A site with a loaded certificate for name, if any. */
static struct agent_term_site *
agent_term_site_covering(struct agent_term *t, const char *name)
{
	struct agent_term_site	*site;

	TAILQ_FOREACH(site, &t->sites, entry)
		if (site->ctx != NULL && agent_term_site_covers(site, name))
			return site;
	return NULL;
}

static int
agent_term_site_covers(const struct agent_term_site *site, const char *name)
{
	size_t	i;

	for (i = 0; i < site->nnames; i++)
		if (strcmp(site->names[i], name) == 0)
			return 1;
	return 0;
}

/* Once a minute per name at most: every visitor would repeat it. */
static void
agent_term_site_warn(struct agent_term_site *site)
{
	uint64_t	now = mono_ms();

	if (site->warned_ms != 0 && now - site->warned_ms < AGENT_TERM_WARN_MS)
		return;
	site->warned_ms = now;
	if (site->missing)
		log_warnx("no certificate for %s yet (ACME has not obtained "
		    "one; see porchctl cert status)", site->name);
	else
		log_warnx("no usable certificate for %s: %s (see porchctl "
		    "cert status)", site->name, site->why);
}

/* What every context here shares: TLS 1.2 and 1.3, ALPN by us. */
SSL_CTX *
agent_term_ctx_new(struct agent_term *t)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)AGENT_TERM_SID,
	    sizeof(AGENT_TERM_SID) - 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Idle visitors should not each hold 2 x 16 KiB of TLS buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, agent_term_alpn_cb, t);
	return ctx;
}

/*
 * Pick the certificate: the one covering the SNI name (the service's
 * own first), else the service's.  None loaded: unrecognized_name.
 */
static int
agent_term_sni_cb(SSL *ssl, int *al, void *arg)
{
	struct agent_term	*t = arg;
	struct agent_term_hs	*hs = SSL_get_app_data(ssl);
	struct agent_term_site	*site, *other;
	const char		*sn;
	char			 name[NAME_MAX_LEN + 1];

	if (hs == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	site = agent_term_site_find(t, hs->site);
	sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (sn != NULL && name_normalize(sn, strlen(sn), name, 0) == 0 &&
	    (site == NULL || site->ctx == NULL ||
	    !agent_term_site_covers(site, name)) &&
	    (other = agent_term_site_covering(t, name)) != NULL)
		site = other;
	if (site == NULL) {
		snprintf(hs->why, sizeof(hs->why), "service %s was removed",
		    hs->site);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (site->ctx == NULL) {
		agent_term_site_warn(site);
		snprintf(hs->why, sizeof(hs->why), "no certificate for %s",
		    site->name);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (SSL_set_SSL_CTX(ssl, site->ctx) == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Our preference among what the visitor offers: h2 (only with an h2c
 * backend), then http/1.1; for a tls-alpn-01 probe acme-tls/1 alone.
 * Nothing in common fails the handshake (no_application_protocol).
 */
static int
agent_term_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const char *const web[] = { "h2", "http/1.1", NULL };
	static const char *const acme[] = { "acme-tls/1", NULL };
	struct agent_term_hs	*hs = SSL_get_app_data(ssl);
	const char *const	*want;
	unsigned int		 i;
	size_t			 n;

	(void)arg;
	if (hs == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	want = hs->alpn01 ? acme : hs->h2_ok ? web : web + 1;
	for (; *want != NULL; want++) {
		n = strlen(*want);
		for (i = 0; i < inlen; i += 1 + in[i]) {
			if (i + 1 + in[i] > inlen)
				break;	/* OpenSSL checked it */
			if (in[i] == n && memcmp(in + i + 1, *want, n) == 0) {
				*out = in + i + 1;
				*outlen = in[i];
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	snprintf(hs->why, sizeof(hs->why), "no ALPN protocol in common (we "
	    "offer %s)", hs->alpn01 ? "acme-tls/1" : hs->h2_ok ?
	    "h2, http/1.1" : "http/1.1");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}
