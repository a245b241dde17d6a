/* SPDX-License-Identifier: ISC */
/*
 * The porch-agent schema: identity, the admin listener, the gateways it
 * keeps tunnels to (with their pinned keys), reconnect, keepalive and
 * drain timing, and the hostnames it publishes with the local backend
 * behind each, its priority among replicas and its health check.  Walks
 * the tree built by cfg.c and fills a struct cfg_agent, or reports the
 * first error with its position.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg_tree.h"
#include "xmalloc.h"

static const char *const agent_top_keys[] = {
	"identity", "name", "admin", "admin_public", "gateways", "reconnect", "timeouts",
	"limits", "services", "acme", NULL
};
static const char *const agent_acme_keys[] = {
	"directory", "ca_bundle", "email", "agree_tos", "eab", "state_dir",
	"challenge", "renew_hook", "key_type", "retry", NULL
};
static const char *const agent_eab_keys[] = {
	"kid", "hmac_key", NULL
};
static const char *const agent_challenge_names[] = {
	[CFG_CHALLENGE_HTTP01] = "http-01",
	[CFG_CHALLENGE_TLSALPN01] = "tls-alpn-01",
};
static const char *const agent_key_type_names[] = {
	[CFG_KEY_EC_P256] = "ec-p256",
	[CFG_KEY_EC_P384] = "ec-p384",
	[CFG_KEY_RSA_2048] = "rsa-2048",
	[CFG_KEY_RSA_3072] = "rsa-3072",
};
static const char *const agent_gateway_keys[] = {
	"name", "address", "key", "server_name", NULL
};
static const char *const agent_reconnect_keys[] = {
	"min", "max", NULL
};
static const char *const agent_timeout_keys[] = {
	"keepalive", "dead_peer", "connect", "drain", NULL
};
static const char *const agent_limit_keys[] = {
	"stream_window", "max_streams", "gateway_share", NULL
};
static const char *const agent_service_keys[] = {
	"hostname", "tls", "http", "h2c", "proxy_protocol", "priority",
	"policy", "health", "certificate", "certificate_names",
	"max_connections", NULL
};
static const char *const agent_health_keys[] = {
	"check", "interval", "timeout", "rise", "fall", "path", "expect", NULL
};
static const char *const agent_check_names[] = {
	[CFG_CHECK_NONE] = "none",
	[CFG_CHECK_TCP] = "tcp",
	[CFG_CHECK_TLS] = "tls",
	[CFG_CHECK_HTTP] = "http",
};

#define HEALTH_PATH_MAX	255
#define AGENT_RETRY_MAX	(7u * 24 * 60 * 60 * 1000)	/* a week */

static struct cfg_agent *agent_parse(const char *, const char *, size_t,
		    const char *, char *, size_t);
static int	 agent_top(struct cfg_doc *);
static int	 agent_gateways(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *);
static int	 agent_gateway(struct cfg_doc *, struct cfg_remote *,
		    struct cfg_node *, size_t);
static int	 agent_reconnect(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *);
static int	 agent_timeouts(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *);
static int	 agent_limits(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *);
static int	 agent_services(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *);
static int	 agent_service(struct cfg_doc *, struct cfg_service *,
		    struct cfg_node *, size_t);
static int	 agent_service_more(struct cfg_doc *, struct cfg_service *,
		    struct cfg_node *, const char *);
static int	 agent_health(struct cfg_doc *, struct cfg_service *,
		    struct cfg_node *, const char *);
static int	 agent_health_http(struct cfg_doc *, struct cfg_health *,
		    struct cfg_node *, const char *);
static int	 agent_backend(struct cfg_doc *, struct cfg_node *,
		    const char *, const char *, char **);
static int	 agent_dups(struct cfg_doc *, struct cfg_node *, char **,
		    size_t, const char *, const char *, const char *);
static int	 agent_acme(struct cfg_doc *, struct cfg_agent *,
		    struct cfg_node *, const char *);
static int	 agent_acme_more(struct cfg_doc *, struct cfg_acme *,
		    struct cfg_node *, const char *);
static int	 agent_acme_string(struct cfg_doc *, struct cfg_node *,
		    const char *, const char *, char **);
static int	 agent_challenges(struct cfg_doc *, struct cfg_acme *,
		    struct cfg_node *);
static int	 agent_service_tls(struct cfg_doc *, struct cfg_service *,
		    struct cfg_node *, const char *);
static int	 agent_service_cert(struct cfg_doc *, struct cfg_service *,
		    struct cfg_node *, const char *);
static int	 agent_service_acme(struct cfg_doc *, const struct cfg_agent *,
		    struct cfg_node *);

struct cfg_agent *
cfg_agent_load(const char *path, char *err, size_t errlen)
{
	struct cfg_agent	*a;
	char			*text;
	size_t			 len;

	if ((text = cfg_read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	a = agent_parse(path, text, len, path, err, errlen);
	free(text);
	return a;
}

struct cfg_agent *
cfg_agent_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen)
{
	return agent_parse(name, text, len, NULL, err, errlen);
}

void
cfg_agent_free(struct cfg_agent *a)
{
	size_t	i;

	if (a == NULL)
		return;
	free(a->file);
	free(a->identity);
	free(a->name);
	cfg_listen_free(a->admin, a->admin != NULL ? 1 : 0);
	for (i = 0; i < a->ngateways; i++) {
		free(a->gateways[i].name);
		free(a->gateways[i].address);
		free(a->gateways[i].host);
		free(a->gateways[i].server_name);
	}
	free(a->gateways);
	for (i = 0; i < a->nservices; i++) {
		struct cfg_service *s = &a->services[i];
		size_t j;

		free(s->hostname);
		free(s->tls_backend);
		free(s->http_backend);
		free(s->h2c_backend);
		free(s->health.path);
		for (j = 0; j < s->ncert_names; j++)
			free(s->cert_names[j]);
		free(s->cert_names);
	}
	free(a->services);
	if (a->acme != NULL) {
		free(a->acme->directory);
		free(a->acme->ca_bundle);
		free(a->acme->email);
		free(a->acme->eab_kid);
		free(a->acme->eab_hmac);
		free(a->acme->state_dir);
		free(a->acme->renew_hook);
		free(a->acme);
	}
	free(a);
}

/* base, when not NULL, is the file relative identity paths start from. */
static struct cfg_agent *
agent_parse(const char *name, const char *text, size_t len, const char *base,
    char *err, size_t errlen)
{
	struct cfg_doc		 d;
	struct cfg_agent	*a;
	struct cfg_node		*n;

	if (cfg_doc_parse(&d, name, text, len, err, errlen) == -1)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->file = xstrdup(d.file);
	a->reconnect_min_ms = 500;
	a->reconnect_max_ms = 30000;
	a->keepalive_ms = 1000;
	a->dead_peer_ms = 4000;
	a->connect_timeout_ms = 5000;
	a->drain_ms = 10000;
	a->stream_window = CFG_MIB;
	a->max_streams = 4096;

	if (agent_top(&d) == -1 ||
	    cfg_identity(&d, d.root, base, "add 'identity: agent.key', the "
	    "key file made by 'porchctl keygen'", &a->identity) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "name")) != NULL &&
	    cfg_label(&d, n, "name", &a->name) == -1)
		goto fail;
	if (cfg_admin(&d, d.root, "'127.0.0.1:9901' or '[::1]:9901'",
	    &a->admin, &a->admin_public) == -1)
		goto fail;
	if (cfg_map_require(&d, d.root, "top level", "gateways", "list the "
	    "gateways to connect to, with name, address and key", &n) == -1 ||
	    agent_gateways(&d, a, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "reconnect")) != NULL &&
	    agent_reconnect(&d, a, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "timeouts")) != NULL &&
	    agent_timeouts(&d, a, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "limits")) != NULL &&
	    agent_limits(&d, a, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "acme")) != NULL &&
	    agent_acme(&d, a, n, base) == -1)
		goto fail;
	if (cfg_map_require(&d, d.root, "top level", "services", "list the "
	    "hostnames to publish, each with a tls or http backend",
	    &n) == -1 || agent_services(&d, a, n) == -1 ||
	    agent_service_acme(&d, a, n) == -1)
		goto fail;
	cfg_doc_clear(&d);
	return a;
fail:
	cfg_doc_clear(&d);
	cfg_agent_free(a);
	return NULL;
}

static int
agent_top(struct cfg_doc *d)
{
	struct cfg_node	*k;
	size_t		 i;

	/* The commonest mistake: handing the gateway's file to the agent. */
	for (i = 0; i < d->root->nkids; i += 2) {
		k = d->root->kids[i];
		if (strcmp(k->str, "listen") == 0 ||
		    strcmp(k->str, "agents") == 0)
			return cfg_bad(d, k, "top level", "unknown key",
			    "this looks like a porch-gateway config; "
			    "porch-agent takes identity, name, admin, "
			    "gateways, reconnect, timeouts, limits, services, "
			    "acme");
	}
	return cfg_map_keys(d, d->root, "top level", agent_top_keys);
}

/*
 * Each visitor stream costs a backend socket and up to a window of
 * memory: max_streams bounds the agent, gateway_share keeps one
 * gateway's visitors from taking all of it.
 */
static int
agent_limits(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *map)
{
	struct cfg_node	*n;

	if (cfg_expect_map(d, map, "limits") == -1 ||
	    cfg_map_keys(d, map, "limits", agent_limit_keys) == -1)
		return -1;
	if ((n = cfg_map_get(map, "stream_window")) != NULL &&
	    cfg_size(d, n, "limits.stream_window", 16 * CFG_KIB,
	    16 * CFG_MIB, &a->stream_window) == -1)
		return -1;
	if ((n = cfg_map_get(map, "max_streams")) != NULL &&
	    cfg_uint(d, n, "limits.max_streams", 1, 1000000,
	    &a->max_streams) == -1)
		return -1;
	if ((n = cfg_map_get(map, "gateway_share")) != NULL &&
	    cfg_uint(d, n, "limits.gateway_share", 1, 100,
	    &a->gateway_share) == -1)
		return -1;
	return 0;
}

static int
agent_gateways(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *seq)
{
	char	**names;
	size_t	  i;
	int	  rc;

	if (cfg_expect_seq(d, seq, "gateways") == -1)
		return -1;
	if (seq->nkids == 0)
		return cfg_error(d, seq, "gateways: empty list (add at least "
		    "one gateway with name, address and key)");
	a->gateways = xcalloc(seq->nkids, sizeof(*a->gateways));
	for (i = 0; i < seq->nkids; i++) {
		a->ngateways++;
		if (agent_gateway(d, &a->gateways[i], seq->kids[i], i) == -1)
			return -1;
	}
	names = xcalloc(a->ngateways, sizeof(*names));
	for (i = 0; i < a->ngateways; i++)
		names[i] = a->gateways[i].name;
	rc = agent_dups(d, seq, names, a->ngateways, "name", "gateways",
	    "duplicate gateway name");
	free(names);
	return rc;
}

static int
agent_gateway(struct cfg_doc *d, struct cfg_remote *r, struct cfg_node *map,
    size_t idx)
{
	struct cfg_node	*n;
	char		 what[64], f[80];

	snprintf(what, sizeof(what), "gateways[%zu]", idx);
	if (cfg_expect_map(d, map, what) == -1 ||
	    cfg_map_keys(d, map, what, agent_gateway_keys) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.name", what);
	if (cfg_map_require(d, map, what, "name", "add 'name: gw1'",
	    &n) == -1 || cfg_label(d, n, f, &r->name) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.address", what);
	if (cfg_map_require(d, map, what, "address", "add the gateway's "
	    "tunnel address, e.g. 'address: gw1.example.net:7443'",
	    &n) == -1 || cfg_hostport(d, n, f, &r->host, &r->port) == -1)
		return -1;
	r->address = xstrdup(n->str);
	snprintf(f, sizeof(f), "%s.key", what);
	if (cfg_map_require(d, map, what, "key", "pin the gateway's public "
	    "key as printed by 'porchctl pubkey' on the gateway", &n) == -1 ||
	    cfg_pubkey(d, n, f, r->key) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.server_name", what);
	if ((n = cfg_map_get(map, "server_name")) != NULL &&
	    cfg_server_name(d, n, f, &r->server_name) == -1)
		return -1;
	return 0;
}

static int
agent_reconnect(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *map)
{
	struct cfg_node	*lo, *hi;
	char		 b[32];

	if (cfg_expect_map(d, map, "reconnect") == -1 ||
	    cfg_map_keys(d, map, "reconnect", agent_reconnect_keys) == -1)
		return -1;
	if ((lo = cfg_map_get(map, "min")) != NULL &&
	    cfg_duration(d, lo, "reconnect.min", CFG_MS_MIN, CFG_MS_MAX,
	    &a->reconnect_min_ms) == -1)
		return -1;
	if ((hi = cfg_map_get(map, "max")) != NULL &&
	    cfg_duration(d, hi, "reconnect.max", CFG_MS_MIN, CFG_MS_MAX,
	    &a->reconnect_max_ms) == -1)
		return -1;
	if (a->reconnect_min_ms <= a->reconnect_max_ms)
		return 0;
	cfg_fmt_ms(a->reconnect_max_ms, b, sizeof(b));
	if (lo != NULL)
		return cfg_bad(d, lo, "reconnect.min", "above reconnect.max",
		    "max is %s; min must not exceed it", b);
	cfg_fmt_ms(a->reconnect_min_ms, b, sizeof(b));
	return cfg_bad(d, hi, "reconnect.max", "below reconnect.min",
	    "min is %s by default; max must be at least that", b);
}

static int
agent_timeouts(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *map)
{
	struct cfg_node	*n, *ka, *dp;
	char		 b[32];

	if (cfg_expect_map(d, map, "timeouts") == -1 ||
	    cfg_map_keys(d, map, "timeouts", agent_timeout_keys) == -1)
		return -1;
	if ((ka = cfg_map_get(map, "keepalive")) != NULL &&
	    cfg_duration(d, ka, "timeouts.keepalive", CFG_MS_MIN, CFG_MS_MAX,
	    &a->keepalive_ms) == -1)
		return -1;
	if ((dp = cfg_map_get(map, "dead_peer")) != NULL &&
	    cfg_duration(d, dp, "timeouts.dead_peer", CFG_MS_MIN, CFG_MS_MAX,
	    &a->dead_peer_ms) == -1)
		return -1;
	if ((n = cfg_map_get(map, "connect")) != NULL &&
	    cfg_duration(d, n, "timeouts.connect", CFG_MS_MIN, CFG_MS_MAX,
	    &a->connect_timeout_ms) == -1)
		return -1;
	/* 0 resets visitors' streams at once on stop. */
	if ((n = cfg_map_get(map, "drain")) != NULL &&
	    cfg_duration(d, n, "timeouts.drain", 0, CFG_MS_MAX,
	    &a->drain_ms) == -1)
		return -1;
	if (a->dead_peer_ms > a->keepalive_ms)
		return 0;
	if (dp == NULL) {
		cfg_fmt_ms(a->dead_peer_ms, b, sizeof(b));
		return cfg_bad(d, ka, "timeouts.keepalive", "not below "
		    "dead_peer", "dead_peer is %s by default; keep keepalive "
		    "well below it or set dead_peer", b);
	}
	cfg_fmt_ms(a->keepalive_ms, b, sizeof(b));
	return cfg_bad(d, dp, "timeouts.dead_peer", "must be longer than "
	    "keepalive", "keepalive is %s; a dead peer is usually declared "
	    "after three missed keepalives", b);
}

static int
agent_services(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *seq)
{
	char	**names;
	size_t	  i;
	int	  rc;

	if (cfg_expect_seq(d, seq, "services") == -1)
		return -1;
	if (seq->nkids == 0)
		return cfg_error(d, seq, "services: empty list (publish at "
		    "least one hostname with a tls or http backend)");
	a->services = xcalloc(seq->nkids, sizeof(*a->services));
	for (i = 0; i < seq->nkids; i++) {
		a->nservices++;
		if (agent_service(d, &a->services[i], seq->kids[i], i) == -1)
			return -1;
	}
	names = xcalloc(a->nservices, sizeof(*names));
	for (i = 0; i < a->nservices; i++)
		names[i] = a->services[i].hostname;
	rc = agent_dups(d, seq, names, a->nservices, "hostname",
	    "services", "duplicate hostname");
	free(names);
	return rc;
}

static int
agent_service(struct cfg_doc *d, struct cfg_service *s, struct cfg_node *map,
    size_t idx)
{
	struct cfg_node	*n;
	const char	*v;
	char		 what[64], f[80];

	snprintf(what, sizeof(what), "services[%zu]", idx);
	if (cfg_expect_map(d, map, what) == -1 ||
	    cfg_map_keys(d, map, what, agent_service_keys) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.hostname", what);
	if (cfg_map_require(d, map, what, "hostname", "add 'hostname: "
	    "app.example.net'", &n) == -1 ||
	    cfg_hostname(d, n, f, &s->hostname) == -1)
		return -1;
	if (agent_service_tls(d, s, map, what) == -1 ||
	    agent_backend(d, map, what, "http", &s->http_backend) == -1 ||
	    agent_backend(d, map, what, "h2c", &s->h2c_backend) == -1)
		return -1;
	if (s->tls_backend == NULL && s->http_backend == NULL &&
	    !s->tls_terminate)
		return cfg_error(d, map, "%s: no backend (add 'tls: "
		    "127.0.0.1:443' for TLS visitors or 'http: 127.0.0.1:80' "
		    "for plain-HTTP visitors)", what);
	if (agent_service_cert(d, s, map, what) == -1)
		return -1;
	if ((n = cfg_map_get(map, "proxy_protocol")) != NULL) {
		snprintf(f, sizeof(f), "%s.proxy_protocol", what);
		if (cfg_string(d, n, f, &v) == -1)
			return -1;
		if (strcmp(v, "off") == 0)
			s->proxy_protocol = CFG_PROXY_OFF;
		else if (strcmp(v, "v1") == 0)
			s->proxy_protocol = CFG_PROXY_V1;
		else if (strcmp(v, "v2") == 0)
			s->proxy_protocol = CFG_PROXY_V2;
		else
			return cfg_bad(d, n, f, "unknown PROXY protocol "
			    "version", "use off, v1 or v2");
	}
	return agent_service_more(d, s, map, what);
}

/* How replicas of a service share visitors, and when one is up. */
static int
agent_service_more(struct cfg_doc *d, struct cfg_service *s,
    struct cfg_node *map, const char *what)
{
	struct cfg_node	*n;
	const char	*v;
	char		 f[80];

	s->max_connections = 1024;
	snprintf(f, sizeof(f), "%s.max_connections", what);
	if ((n = cfg_map_get(map, "max_connections")) != NULL &&
	    cfg_uint(d, n, f, 1, 1000000, &s->max_connections) == -1)
		return -1;
	s->priority = 100;
	snprintf(f, sizeof(f), "%s.priority", what);
	if ((n = cfg_map_get(map, "priority")) != NULL &&
	    cfg_uint(d, n, f, 1, 255, &s->priority) == -1)
		return -1;
	if ((n = cfg_map_get(map, "policy")) != NULL) {
		snprintf(f, sizeof(f), "%s.policy", what);
		if (cfg_string(d, n, f, &v) == -1)
			return -1;
		if (strcmp(v, "failover") == 0)
			s->policy = CFG_POLICY_FAILOVER;
		else if (strcmp(v, "balance") == 0)
			s->policy = CFG_POLICY_BALANCE;
		else
			return cfg_bad(d, n, f, "unknown policy", "use "
			    "failover (lowest priority first) or balance");
	}
	if ((n = cfg_map_get(map, "health")) != NULL &&
	    agent_health(d, s, n, what) == -1)
		return -1;
	return 0;
}

/* The optional health section; svc names the service in messages. */
static int
agent_health(struct cfg_doc *d, struct cfg_service *s, struct cfg_node *map,
    const char *svc)
{
	struct cfg_health	*h = &s->health;
	struct cfg_node		*n, *iv, *to;
	const char		*v;
	char			 what[80], f[112], b[32];
	enum cfg_check		 c;

	snprintf(what, sizeof(what), "%s.health", svc);
	if (cfg_expect_map(d, map, what) == -1 ||
	    cfg_map_keys(d, map, what, agent_health_keys) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.check", what);
	if (cfg_map_require(d, map, what, "check", "add 'check: tcp', "
	    "'check: tls' or 'check: http'", &n) == -1 ||
	    cfg_string(d, n, f, &v) == -1)
		return -1;
	for (c = CFG_CHECK_TCP; c <= CFG_CHECK_HTTP; c++)
		if (strcmp(v, agent_check_names[c]) == 0)
			break;
	if (c > CFG_CHECK_HTTP)
		return cfg_bad(d, n, f, "unknown check", "use tcp (connect), "
		    "tls (TLS handshake) or http (GET a path)");
	if (c == CFG_CHECK_TLS && s->tls_backend == NULL)
		return cfg_bad(d, n, f, "no tls backend", "a tls check "
		    "handshakes with the service's tls backend; add one or "
		    "use check: tcp");
	if (c == CFG_CHECK_HTTP && s->http_backend == NULL)
		return cfg_bad(d, n, f, "no http backend", "an http check "
		    "asks the service's http backend; add one or use "
		    "check: tcp");
	h->check = c;
	h->interval_ms = 2000;
	h->timeout_ms = 1000;
	h->rise = 2;
	h->fall = 2;

	snprintf(f, sizeof(f), "%s.interval", what);
	if ((iv = cfg_map_get(map, "interval")) != NULL &&
	    cfg_duration(d, iv, f, 100, CFG_MS_MAX, &h->interval_ms) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.timeout", what);
	if ((to = cfg_map_get(map, "timeout")) != NULL &&
	    cfg_duration(d, to, f, CFG_MS_MIN, CFG_MS_MAX,
	    &h->timeout_ms) == -1)
		return -1;
	if (h->timeout_ms >= h->interval_ms) {
		if (to != NULL) {
			cfg_fmt_ms(h->interval_ms, b, sizeof(b));
			return cfg_bad(d, to, f, "not below interval",
			    "interval is %s; a check must end before the "
			    "next one starts", b);
		}
		cfg_fmt_ms(h->timeout_ms, b, sizeof(b));
		snprintf(f, sizeof(f), "%s.interval", what);
		return cfg_bad(d, iv, f, "not above timeout", "timeout is %s "
		    "by default; lengthen interval or set a shorter timeout",
		    b);
	}
	snprintf(f, sizeof(f), "%s.rise", what);
	if ((n = cfg_map_get(map, "rise")) != NULL &&
	    cfg_uint(d, n, f, 1, 100, &h->rise) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.fall", what);
	if ((n = cfg_map_get(map, "fall")) != NULL &&
	    cfg_uint(d, n, f, 1, 100, &h->fall) == -1)
		return -1;
	return agent_health_http(d, h, map, what);
}

/* path and expect: defaults for an http check, errors for the others. */
static int
agent_health_http(struct cfg_doc *d, struct cfg_health *h,
    struct cfg_node *map, const char *what)
{
	struct cfg_node	*n;
	const char	*v = NULL;
	const char	*keys[2] = { "path", "expect" };
	char		 f[112];
	size_t		 i;

	if (h->check != CFG_CHECK_HTTP) {
		for (i = 0; i < 2; i++) {
			if ((n = cfg_map_get(map, keys[i])) == NULL)
				continue;
			snprintf(f, sizeof(f), "%s.%s", what, keys[i]);
			return cfg_bad(d, n, f, "only for check: http",
			    "this check is %s; remove %s or use check: http",
			    agent_check_names[h->check], keys[i]);
		}
		return 0;
	}
	h->expect = 200;
	snprintf(f, sizeof(f), "%s.expect", what);
	if ((n = cfg_map_get(map, "expect")) != NULL &&
	    cfg_uint(d, n, f, 100, 599, &h->expect) == -1)
		return -1;
	if ((n = cfg_map_get(map, "path")) == NULL) {
		h->path = xstrdup("/");
		return 0;
	}
	snprintf(f, sizeof(f), "%s.path", what);
	if (cfg_string(d, n, f, &v) == -1)
		return -1;
	if (v[0] != '/')
		return cfg_bad(d, n, f, "bad path", "must start with '/', "
		    "e.g. '/healthz'");
	if (n->len > HEALTH_PATH_MAX)
		return cfg_bad(d, n, f, "bad path", "at most %d bytes",
		    HEALTH_PATH_MAX);
	for (i = 0; i < n->len; i++)
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] > '~')
			return cfg_bad(d, n, f, "bad path", "printable ASCII "
			    "without spaces; percent-encode the rest, e.g. "
			    "'%%20'");
	h->path = xstrdup(v);
	return 0;
}

/* An optional "host:port" backend, kept as written. */
static int
agent_backend(struct cfg_doc *d, struct cfg_node *map, const char *what,
    const char *key, char **out)
{
	struct cfg_node	*n;
	char		 f[80];
	unsigned	 port;

	if ((n = cfg_map_get(map, key)) == NULL)
		return 0;
	snprintf(f, sizeof(f), "%s.%s", what, key);
	if (cfg_hostport(d, n, f, NULL, &port) == -1)
		return -1;
	*out = xstrdup(n->str);
	return 0;
}

/*
 * names[i] came from key in seq->kids[i]; report the first repeat.  Names
 * are compared as normalized, so "App.example" repeats "app.example".
 */
static int
agent_dups(struct cfg_doc *d, struct cfg_node *seq, char **names, size_t n,
    const char *key, const char *what, const char *problem)
{
	struct cfg_dup	*ents;
	struct cfg_node	*at;
	char		 f[80];
	size_t		 i, first, dup;
	int		 found;

	ents = xcalloc(n, sizeof(*ents));
	for (i = 0; i < n; i++) {
		ents[i].key = names[i];
		ents[i].len = strlen(names[i]);
		ents[i].order = i;
	}
	found = cfg_dup_find(ents, n, &first, &dup);
	free(ents);
	if (!found)
		return 0;
	at = cfg_map_get(seq->kids[dup], key);
	snprintf(f, sizeof(f), "%s[%zu].%s", what, dup, key);
	return cfg_bad(d, at, f, problem, "first at line %u; list it once",
	    cfg_map_get(seq->kids[first], key)->line);
}

/* "tls:" is a backend, or "terminate": the agent ends TLS itself. */
static int
agent_service_tls(struct cfg_doc *d, struct cfg_service *s,
    struct cfg_node *map, const char *what)
{
	struct cfg_node	*n;
	char		 f[80];

	if ((n = cfg_map_get(map, "tls")) == NULL ||
	    n->type != CFG_NODE_SCALAR || n->isnull ||
	    strcmp(n->str, "terminate") != 0)
		return agent_backend(d, map, what, "tls", &s->tls_backend);
	s->tls_terminate = 1;
	snprintf(f, sizeof(f), "%s.tls", what);
	if (cfg_map_get(map, "http") == NULL)
		return cfg_bad(d, n, f, "terminate needs an http backend",
		    "the agent decrypts visitors and passes plain HTTP to "
		    "'http: 127.0.0.1:8080'; add one");
	return 0;
}

/*
 * certificate: acme (implied by tls: terminate) and the extra names of
 * that certificate.  A wildcard needs dns-01, which porch does not do.
 */
static int
agent_service_cert(struct cfg_doc *d, struct cfg_service *s,
    struct cfg_node *map, const char *what)
{
	struct cfg_node	*n, *names, *it;
	const char	*v;
	char		 f[128], **dn;
	size_t		 i, cnt;
	int		 rc;

	snprintf(f, sizeof(f), "%s.certificate", what);
	if ((n = cfg_map_get(map, "certificate")) != NULL) {
		if (cfg_string(d, n, f, &v) == -1)
			return -1;
		if (strcmp(v, "acme") == 0)
			s->acme = 1;
		else if (strcmp(v, "none") != 0)
			return cfg_bad(d, n, f, "unknown certificate source",
			    "use acme (obtain and renew one from the acme: "
			    "section's CA) or none");
		else if (s->tls_terminate)
			return cfg_bad(d, n, f, "tls: terminate needs a "
			    "certificate", "use 'certificate: acme' or leave "
			    "it out");
	} else
		s->acme = s->tls_terminate;
	if (s->h2c_backend != NULL && !s->tls_terminate) {
		snprintf(f, sizeof(f), "%s.h2c", what);
		return cfg_bad(d, cfg_map_get(map, "h2c"), f, "only with "
		    "tls: terminate", "the agent offers h2 to visitors only "
		    "when it terminates their TLS; remove h2c");
	}
	names = cfg_map_get(map, "certificate_names");
	if (!s->acme) {
		if (names == NULL)
			return 0;
		return cfg_error(d, names, "%s.certificate_names: no "
		    "certificate to put them in (add 'certificate: acme')",
		    what);
	}
	snprintf(f, sizeof(f), "%s.hostname", what);
	if (s->hostname[0] == '*')
		return cfg_bad(d, cfg_map_get(map, "hostname"), f,
		    "no ACME certificate for a wildcard", "wildcards need the "
		    "dns-01 challenge, which porch does not do; list the "
		    "exact names as services");
	cnt = names == NULL ? 0 : cfg_list_len(names);
	if (names != NULL && cfg_expect_list(d, names,
	    "certificate_names") == -1)
		return -1;
	s->cert_names = xcalloc(cnt + 1, sizeof(*s->cert_names));
	s->cert_names[s->ncert_names++] = xstrdup(s->hostname);
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(names, i);
		snprintf(f, sizeof(f), "%s.certificate_names[%zu]", what, i);
		if (cfg_hostname(d, it, f, &s->cert_names[s->ncert_names]) ==
		    -1)
			return -1;
		if (s->cert_names[s->ncert_names++][0] == '*')
			return cfg_bad(d, it, f, "no ACME certificate for a "
			    "wildcard", "wildcards need dns-01, which porch "
			    "does not do");
	}
	/* Duplicates would make the CA refuse the order. */
	dn = xcalloc(s->ncert_names, sizeof(*dn));
	for (i = 0; i < s->ncert_names; i++)
		dn[i] = s->cert_names[i];
	rc = 0;
	for (i = 1; i < s->ncert_names && rc == 0; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (strcmp(dn[i], dn[j]) == 0) {
				snprintf(f, sizeof(f),
				    "%s.certificate_names[%zu]", what, i - 1);
				rc = cfg_bad(d, cfg_list_item(names, i - 1),
				    f, "duplicate name", "the hostname is "
				    "always in the certificate; list each "
				    "other name once");
				break;
			}
	}
	free(dn);
	return rc;
}

/* Services that want certificates need the acme: section. */
static int
agent_service_acme(struct cfg_doc *d, const struct cfg_agent *a,
    struct cfg_node *seq)
{
	size_t	i;
	char	f[80];

	if (a->acme != NULL)
		return 0;
	for (i = 0; i < a->nservices; i++) {
		if (!a->services[i].acme)
			continue;
		snprintf(f, sizeof(f), "services[%zu].hostname", i);
		return cfg_bad(d, cfg_map_get(seq->kids[i], "hostname"), f,
		    a->services[i].tls_terminate ? "tls: terminate needs a "
		    "certificate" : "certificate: acme needs a CA", "add an "
		    "'acme:' section with directory, email and agree_tos");
	}
	return 0;
}

static int
agent_acme(struct cfg_doc *d, struct cfg_agent *a, struct cfg_node *map,
    const char *base)
{
	struct cfg_acme	*m;
	struct cfg_node	*n;
	const char	*v;

	if (cfg_expect_map(d, map, "acme") == -1 ||
	    cfg_map_keys(d, map, "acme", agent_acme_keys) == -1)
		return -1;
	m = a->acme = xcalloc(1, sizeof(*a->acme));
	m->retry_min_ms = 60 * 1000;
	m->retry_max_ms = 24 * 60 * 60 * 1000;
	if (cfg_map_require(d, map, "acme", "directory", "add 'directory: "
	    "letsencrypt' (or letsencrypt-staging, or the CA's https URL)",
	    &n) == -1 || cfg_string(d, n, "acme.directory", &v) == -1)
		return -1;
	if (strcmp(v, "letsencrypt") == 0)
		v = "https://acme-v02.api.letsencrypt.org/directory";
	else if (strcmp(v, "letsencrypt-staging") == 0)
		v = "https://acme-staging-v02.api.letsencrypt.org/directory";
	else if (strncmp(v, "https://", 8) != 0 || strlen(v) < 9 ||
	    strlen(v) > 1024)
		return cfg_bad(d, n, "acme.directory", "not an https URL",
		    "use letsencrypt, letsencrypt-staging or the CA's "
		    "directory URL, e.g. 'https://ca.example/directory'");
	m->directory = xstrdup(v);
	if (cfg_map_require(d, map, "acme", "agree_tos", "read the CA's "
	    "terms of service and add 'agree_tos: true'", &n) == -1 ||
	    cfg_string(d, n, "acme.agree_tos", &v) == -1)
		return -1;
	if (strcmp(v, "true") != 0)
		return cfg_bad(d, n, "acme.agree_tos", "the CA's terms must "
		    "be accepted", "a CA issues only to accounts that agree "
		    "to its terms of service; read them and set true");
	if ((n = cfg_map_get(map, "ca_bundle")) != NULL) {
		if (cfg_string(d, n, "acme.ca_bundle", &v) == -1)
			return -1;
		m->ca_bundle = cfg_path_resolve(base, v);
	}
	if (agent_acme_string(d, map, "email", "acme.email",
	    &m->email) == -1)
		return -1;
	if (m->email != NULL && (strchr(m->email, '@') == NULL ||
	    strpbrk(m->email, " ,<>:\"") != NULL))
		return cfg_bad(d, cfg_map_get(map, "email"), "acme.email",
		    "not an email address", "the CA writes to it about "
		    "expiring certificates, e.g. 'admin@example.net'");
	if (cfg_map_require(d, map, "acme", "state_dir", "add 'state_dir: "
	    "/var/lib/porch-agent' (keys and certificates are kept there, "
	    "mode 0700)", &n) == -1 ||
	    cfg_string(d, n, "acme.state_dir", &v) == -1)
		return -1;
	m->state_dir = cfg_path_resolve(base, v);
	if (agent_acme_string(d, map, "renew_hook", "acme.renew_hook",
	    &m->renew_hook) == -1)
		return -1;
	return agent_acme_more(d, m, map, base);
}

/* eab, challenge, key_type and retry. */
static int
agent_acme_more(struct cfg_doc *d, struct cfg_acme *m, struct cfg_node *map,
    const char *base)
{
	struct cfg_node	*n, *lo, *hi;
	const char	*v;
	size_t		 i;

	(void)base;
	if ((n = cfg_map_get(map, "eab")) != NULL) {
		if (cfg_expect_map(d, n, "acme.eab") == -1 ||
		    cfg_map_keys(d, n, "acme.eab", agent_eab_keys) == -1)
			return -1;
		if (cfg_map_get(n, "kid") == NULL ||
		    cfg_map_get(n, "hmac_key") == NULL)
			return cfg_error(d, n, "acme.eab: needs both kid and "
			    "hmac_key (the CA shows them with the account "
			    "you registered there)");
		if (agent_acme_string(d, n, "kid", "acme.eab.kid",
		    &m->eab_kid) == -1 ||
		    agent_acme_string(d, n, "hmac_key", "acme.eab.hmac_key",
		    &m->eab_hmac) == -1)
			return -1;
		for (i = 0; m->eab_hmac[i] != '\0'; i++)
			if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
			    "qrstuvwxyz0123456789-_=", m->eab_hmac[i]) == NULL)
				return cfg_bad(d, cfg_map_get(n, "hmac_key"),
				    "acme.eab.hmac_key", "not base64url",
				    "paste the key exactly as the CA shows "
				    "it");
	}
	if (agent_challenges(d, m, cfg_map_get(map, "challenge")) == -1)
		return -1;
	if ((n = cfg_map_get(map, "key_type")) != NULL) {
		if (cfg_string(d, n, "acme.key_type", &v) == -1)
			return -1;
		for (i = 0; i < 4; i++)
			if (strcmp(v, agent_key_type_names[i]) == 0)
				break;
		if (i == 4)
			return cfg_bad(d, n, "acme.key_type", "unknown key "
			    "type", "use ec-p256 (default), ec-p384, "
			    "rsa-2048 or rsa-3072");
		m->key_type = (enum cfg_key_type)i;
	}
	if ((n = cfg_map_get(map, "retry")) == NULL)
		return 0;
	if (cfg_expect_map(d, n, "acme.retry") == -1 ||
	    cfg_map_keys(d, n, "acme.retry", agent_reconnect_keys) == -1)
		return -1;
	if ((lo = cfg_map_get(n, "min")) != NULL &&
	    cfg_duration(d, lo, "acme.retry.min", 1000, AGENT_RETRY_MAX,
	    &m->retry_min_ms) == -1)
		return -1;
	if ((hi = cfg_map_get(n, "max")) != NULL &&
	    cfg_duration(d, hi, "acme.retry.max", 1000, AGENT_RETRY_MAX,
	    &m->retry_max_ms) == -1)
		return -1;
	if (m->retry_min_ms > m->retry_max_ms)
		return cfg_bad(d, lo != NULL ? lo : hi, lo != NULL ?
		    "acme.retry.min" : "acme.retry.max", "min above max",
		    "after a failure the agent waits min, doubling up to "
		    "max");
	return 0;
}

/* "challenge: http-01" or a list in order of preference. */
static int
agent_challenges(struct cfg_doc *d, struct cfg_acme *m, struct cfg_node *n)
{
	struct cfg_node	*it;
	const char	*v;
	size_t		 i, j, cnt;
	enum cfg_challenge c;

	if (n == NULL) {
		m->challenges[m->nchallenges++] = CFG_CHALLENGE_HTTP01;
		m->challenges[m->nchallenges++] = CFG_CHALLENGE_TLSALPN01;
		return 0;
	}
	if (cfg_expect_list(d, n, "acme.challenge") == -1)
		return -1;
	cnt = cfg_list_len(n);
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(n, i);
		if (cfg_string(d, it, "acme.challenge", &v) == -1)
			return -1;
		for (c = 0; c < CFG_CHALLENGE_MAX; c++)
			if (strcmp(v, agent_challenge_names[c]) == 0)
				break;
		if (c == CFG_CHALLENGE_MAX)
			return cfg_bad(d, it, "acme.challenge", "unknown "
			    "challenge type", "use http-01 (through the "
			    "gateways' port 80) or tls-alpn-01 (port 443); "
			    "dns-01 is not supported");
		for (j = 0; j < m->nchallenges; j++)
			if (m->challenges[j] == c)
				return cfg_bad(d, it, "acme.challenge",
				    "listed twice", "list each type once");
		if (m->nchallenges == CFG_CHALLENGE_MAX)
			break;
		m->challenges[m->nchallenges++] = c;
	}
	if (m->nchallenges == 0)
		return cfg_error(d, n, "acme.challenge: empty (use http-01, "
		    "tls-alpn-01 or both)");
	return 0;
}

/* An optional printable string without newlines. */
static int
agent_acme_string(struct cfg_doc *d, struct cfg_node *map, const char *key,
    const char *what, char **out)
{
	struct cfg_node	*n;
	const char	*v;
	size_t		 i;

	if ((n = cfg_map_get(map, key)) == NULL)
		return 0;
	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (n->len == 0 || n->len > 1024)
		return cfg_bad(d, n, what, "empty or too long", "1 to 1024 "
		    "bytes");
	for (i = 0; i < n->len; i++)
		if ((unsigned char)v[i] < ' ' || v[i] == 0x7f)
			return cfg_bad(d, n, what, "control character",
			    "one line of printable text");
	*out = xstrdup(v);
	return 0;
}
