/* SPDX-License-Identifier: ISC */
/*
 * The porch-agent schema: identity, the admin listener, the gateways it
 * keeps tunnels to (with their pinned keys), reconnect, keepalive and
 * drain timing, and the hostnames it publishes with the local backend
 * behind each, its priority among replicas and its health check.  Walks
 * the tree built by cfg.c and fills a struct cfg_agent, or reports the
 * first error with its position.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg_tree.h"

#define CFG_RETRY_MAX	(7u * 24 * 60 * 60 * 1000)	/* a week */

/* Rows' functions: (doc, section, node or NULL, name, struct filled). */
static int	 cfg_agent_health_times(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_service_backend(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_service_cert(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_eab_both(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_admin(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_gateways(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_gateway_address(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_reconnect(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_timeouts(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_services(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_tls(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_health(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_check_backend(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_health_path(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_health_expect(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_acme(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_directory(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_email(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_agree_tos(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_eab(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_challenges(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_dns(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_dns_server(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_dns_nameservers(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_dns_provider(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_agent_retry(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);

#define CFG_NITEMS(a)		(sizeof(a) / sizeof((a)[0]))

static const char *const cfg_agent_challenge_names[] = {
	[CFG_CHALLENGE_HTTP01] = "http-01",
	[CFG_CHALLENGE_TLSALPN01] = "tls-alpn-01",
	[CFG_CHALLENGE_DNS01] = "dns-01",
};
static const struct cfg_enum cfg_agent_challenge_enum = {
	cfg_agent_challenge_names, CFG_CHALLENGE_MAX,
	"unknown challenge type", "use http-01 (through the gateways' port "
	"80), tls-alpn-01 (port 443) or dns-01 (a TXT record, through the "
	"dns: section)"
};
static const char *const cfg_agent_key_type_names[] = {
	[CFG_KEY_EC_P256] = "ec-p256",
	[CFG_KEY_EC_P384] = "ec-p384",
	[CFG_KEY_RSA_2048] = "rsa-2048",
	[CFG_KEY_RSA_3072] = "rsa-3072",
};
static const struct cfg_enum cfg_agent_key_type_enum = {
	cfg_agent_key_type_names, CFG_NITEMS(cfg_agent_key_type_names),
	"unknown key type", "use ec-p256 (default), ec-p384, rsa-2048 or "
	"rsa-3072"
};
/* No "none": that is what no health section means. */
static const char *const cfg_agent_check_names[] = {
	[CFG_CHECK_NONE] = NULL,
	[CFG_CHECK_TCP] = "tcp",
	[CFG_CHECK_TLS] = "tls",
	[CFG_CHECK_HTTP] = "http",
};
static const struct cfg_enum cfg_agent_check_enum = {
	cfg_agent_check_names, CFG_NITEMS(cfg_agent_check_names),
	"unknown check", "use tcp (connect), tls (TLS handshake) or http "
	"(GET a path)"
};
static const char *const cfg_agent_proxy_names[] = {
	[CFG_PROXY_OFF] = "off",
	[CFG_PROXY_V1] = "v1",
	[CFG_PROXY_V2] = "v2",
};
static const struct cfg_enum cfg_agent_proxy_enum = {
	cfg_agent_proxy_names, CFG_NITEMS(cfg_agent_proxy_names),
	"unknown PROXY protocol version", "use off, v1 or v2"
};
static const char *const cfg_agent_dns_provider_names[] = {
	[0] = NULL,
	[CFG_DNS_RFC2136] = "rfc2136",
	[CFG_DNS_EXEC] = "exec",
};
static const struct cfg_enum cfg_agent_dns_provider_enum = {
	cfg_agent_dns_provider_names, CFG_NITEMS(cfg_agent_dns_provider_names),
	"unknown provider", "use rfc2136 (dynamic updates signed with a "
	"TSIG key) or exec (a command that gets the records as JSON)"
};
static const char *const cfg_agent_policy_names[] = {
	[CFG_POLICY_FAILOVER] = "failover",
	[CFG_POLICY_BALANCE] = "balance",
};
static const struct cfg_enum cfg_agent_policy_enum = {
	cfg_agent_policy_names, CFG_NITEMS(cfg_agent_policy_names),
	"unknown policy", "use failover (lowest priority first) or balance"
};

#define CFG_OBJ	struct cfg_agent
static const struct cfg_key cfg_agent_reconnect_keys[] = {
	CFG_KEY("min", CFG_T_DURATION, reconnect_min_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 500),
	CFG_KEY("max", CFG_T_DURATION, reconnect_max_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 30000),
	CFG_END
};

static const struct cfg_key cfg_agent_timeout_keys[] = {
	CFG_KEY("keepalive", CFG_T_DURATION, keepalive_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 1000),
	CFG_KEY("dead_peer", CFG_T_DURATION, dead_peer_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 4000),
	CFG_KEY("connect", CFG_T_DURATION, connect_timeout_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 5000),
	/* 0 resets visitors' streams at once on stop. */
	CFG_KEY("drain", CFG_T_DURATION, drain_ms, 0, CFG_MS_MAX, 10000),
	CFG_END
};

/*
 * Each visitor stream costs a backend socket and up to a window of
 * memory: max_streams bounds the agent, gateway_share keeps one
 * gateway's visitors from taking all of it (0: 100 with one gateway,
 * else 50).
 */
static const struct cfg_key cfg_agent_limit_keys[] = {
	CFG_KEY("stream_window", CFG_T_SIZE, stream_window,
	    16 * CFG_KIB, 16 * CFG_MIB, CFG_MIB),
	CFG_KEY("max_streams", CFG_T_UINT, max_streams, 1, 1000000, 4096),
	CFG_KEY("gateway_share", CFG_T_UINT, gateway_share, 1, 100, 0),
	CFG_END
};

static const struct cfg_key cfg_agent_keys[] = {
	CFG_NEED("identity", CFG_T_PATH, identity, "add 'identity: "
	    "agent.key', the key file made by 'porchctl keygen'"),
	CFG_KEY("name", CFG_T_LABEL, name, 0, 0, 0),
	CFG_FUNC("admin", cfg_agent_admin, NULL),
	CFG_OTHER("admin_public"),
	CFG_FUNC("gateways", cfg_agent_gateways, "list the gateways to "
	    "connect to, with name, address and key"),
	CFG_SECTION("reconnect", cfg_agent_reconnect_keys, cfg_agent_reconnect,
	    NULL),
	CFG_SECTION("timeouts", cfg_agent_timeout_keys, cfg_agent_timeouts,
	    NULL),
	CFG_SECTION("limits", cfg_agent_limit_keys, NULL, NULL),
	/* acme (its errors before the services') */
	CFG_CHECK(cfg_agent_acme),
	/* dns (before the services, which may ask for it) */
	CFG_CHECK(cfg_agent_dns),
	CFG_FUNC("services", cfg_agent_services, "list the hostnames to "
	    "publish, each with a tls or http backend"),
	CFG_OTHER("acme"),
	CFG_OTHER("dns"),
	CFG_END
};

#undef CFG_OBJ
#define CFG_OBJ	struct cfg_remote
static const struct cfg_key cfg_agent_gateway_keys[] = {
	CFG_NEED("name", CFG_T_LABEL, name, "add 'name: gw1'"),
	CFG_FUNC("address", cfg_agent_gateway_address, "add the gateway's "
	    "tunnel address, e.g. 'address: gw1.example.net:7443'"),
	CFG_NEED("key", CFG_T_PUBKEY, key, "pin the gateway's public key as "
	    "printed by 'porchctl pubkey' on the gateway"),
	CFG_KEY("server_name", CFG_T_SERVER_NAME, server_name, 0, 0, 0),
	CFG_END
};

#undef CFG_OBJ
#define CFG_OBJ	struct cfg_service
static const struct cfg_key cfg_agent_health_keys[] = {
	CFG_ENUM("check", health.check, &cfg_agent_check_enum, "add 'check: "
	    "tcp', 'check: tls' or 'check: http'"),
	CFG_CHECK(cfg_agent_check_backend),
	CFG_KEY("interval", CFG_T_DURATION, health.interval_ms,
	    100, CFG_MS_MAX, 2000),
	CFG_KEY("timeout", CFG_T_DURATION, health.timeout_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 1000),
	CFG_CHECK(cfg_agent_health_times),
	CFG_KEY("rise", CFG_T_UINT, health.rise, 1, 100, 2),
	CFG_KEY("fall", CFG_T_UINT, health.fall, 1, 100, 2),
	CFG_FUNC("path", cfg_agent_health_path, NULL),
	CFG_FUNC("expect", cfg_agent_health_expect, NULL),
	CFG_END
};

static const struct cfg_key cfg_agent_service_keys[] = {
	CFG_NEED("hostname", CFG_T_HOSTNAME, hostname, "add 'hostname: "
	    "app.example.net'"),
	CFG_FUNC("tls", cfg_agent_tls, NULL),
	CFG_KEY("http", CFG_T_BACKEND, http_backend, 0, 0, 0),
	CFG_KEY("h2c", CFG_T_BACKEND, h2c_backend, 0, 0, 0),
	CFG_CHECK(cfg_agent_service_backend),
	CFG_CHECK(cfg_agent_service_cert),
	CFG_ENUM("proxy_protocol", proxy_protocol, &cfg_agent_proxy_enum,
	    NULL),
	CFG_KEY("priority", CFG_T_UINT, priority, 1, 255, 100),
	CFG_ENUM("policy", policy, &cfg_agent_policy_enum, NULL),
	CFG_FUNC("health", cfg_agent_health, NULL),
	CFG_OTHER("certificate"),	/* read by cfg_agent_service_cert */
	CFG_OTHER("certificate_names"),
	CFG_KEY("max_connections", CFG_T_UINT, max_connections,
	    1, 1000000, 1024),
	CFG_KEY("dns", CFG_T_BOOL, dns, 0, 1, 0),
	CFG_END
};

#undef CFG_OBJ
#define CFG_OBJ	struct cfg_acme
static const struct cfg_key cfg_agent_eab_keys[] = {
	CFG_CHECK(cfg_agent_eab_both),
	CFG_KEY("kid", CFG_T_TEXT, eab_kid, 0, 0, 0),
	CFG_KEY("hmac_key", CFG_T_TEXT, eab_hmac, 0, 0, 0),
	CFG_END
};

static const struct cfg_key cfg_agent_retry_keys[] = {
	CFG_KEY("min", CFG_T_DURATION, retry_min_ms,
	    1000, CFG_RETRY_MAX, 60 * 1000),
	CFG_KEY("max", CFG_T_DURATION, retry_max_ms,
	    1000, CFG_RETRY_MAX, 24 * 60 * 60 * 1000),
	CFG_END
};

static const struct cfg_key cfg_agent_acme_keys[] = {
	CFG_FUNC("directory", cfg_agent_directory, "add 'directory: "
	    "letsencrypt' (or letsencrypt-staging, or the CA's https URL)"),
	CFG_KEY("ca_bundle", CFG_T_PATH, ca_bundle, 0, 0, 0),
	CFG_FUNC("email", cfg_agent_email, NULL),
	CFG_FUNC("agree_tos", cfg_agent_agree_tos, "read the CA's terms of "
	    "service and add 'agree_tos: true'"),
	CFG_SECTION("eab", cfg_agent_eab_keys, cfg_agent_eab, NULL),
	CFG_NEED("state_dir", CFG_T_PATH, state_dir, "add 'state_dir: "
	    "/var/lib/porch-agent' (keys and certificates are kept there, "
	    "mode 0700)"),
	CFG_FUNC("challenge", cfg_agent_challenges, NULL),
	CFG_KEY("renew_hook", CFG_T_TEXT, renew_hook, 0, 0, 0),
	CFG_KEY("caa_pin", CFG_T_BOOL, caa_pin, 0, 1, 0),
	CFG_KEY("caa_identity", CFG_T_LABEL, caa_identity, 0, 0, 0),
	CFG_ENUM("key_type", key_type, &cfg_agent_key_type_enum, NULL),
	CFG_SECTION("retry", cfg_agent_retry_keys, cfg_agent_retry, NULL),
	CFG_END
};
#undef CFG_OBJ

#define CFG_OBJ	struct cfg_dns
static const struct cfg_key cfg_agent_dns_keys[] = {
	CFG_ENUM("provider", provider, &cfg_agent_dns_provider_enum,
	    "add 'provider: rfc2136'"),
	CFG_NEED("zone", CFG_T_HOSTNAME, zone, "add the zone the names are "
	    "in, e.g. 'zone: example.org'"),
	CFG_FUNC("server", cfg_agent_dns_server, NULL),
	CFG_KEY("tsig_key", CFG_T_PATH, tsig_key, 0, 0, 0),
	CFG_KEY("command", CFG_T_TEXT, command, 0, 0, 0),
	CFG_KEY("ttl", CFG_T_DURATION, ttl_ms, 1000, CFG_MS_MAX, 60000),
	CFG_KEY("grace", CFG_T_DURATION, grace_ms, 1000, CFG_MS_MAX, 30000),
	CFG_FUNC("nameservers", cfg_agent_dns_nameservers, NULL),
	CFG_CHECK(cfg_agent_dns_provider),
	CFG_END
};
#undef CFG_OBJ

#define CFG_HEALTH_PATH_MAX	255

static struct cfg_agent *cfg_agent_parse_doc(const char *, const char *,
		    size_t, const char *, char *, size_t);
static int	 cfg_agent_top(struct cfg_doc *);
static int	 cfg_agent_dups(struct cfg_doc *, struct cfg_node *, char **,
		    size_t, const char *, const char *, const char *);
static int	 cfg_agent_http_only(struct cfg_doc *,
		    const struct cfg_health *, const struct cfg_node *,
		    const char *);
static int	 cfg_agent_service_acme(struct cfg_doc *,
		    const struct cfg_agent *, struct cfg_node *);
static int	 cfg_agent_service_dns(struct cfg_doc *,
		    const struct cfg_agent *, struct cfg_node *);

struct cfg_agent *
cfg_agent_load(const char *path, char *err, size_t errlen)
{
	struct cfg_agent	*a;
	char			*text;
	size_t			 len;

	if ((text = cfg_read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	a = cfg_agent_parse_doc(path, text, len, path, err, errlen);
	free(text);
	return a;
}

struct cfg_agent *
cfg_agent_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen)
{
	return cfg_agent_parse_doc(name, text, len, NULL, err, errlen);
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
		free(a->acme->caa_identity);
		free(a->acme);
	}
	if (a->dns != NULL) {
		free(a->dns->server);
		free(a->dns->host);
		free(a->dns->zone);
		free(a->dns->tsig_key);
		free(a->dns->command);
		for (i = 0; i < a->dns->nnameservers; i++)
			free(a->dns->nameservers[i]);
		free(a->dns->nameservers);
		free(a->dns);
	}
	free(a);
}


/* base, when not NULL, is the file relative paths start from. */
static struct cfg_agent *
cfg_agent_parse_doc(const char *name, const char *text, size_t len,
    const char *base, char *err, size_t errlen)
{
	struct cfg_doc		 d;
	struct cfg_agent	*a;

	if (cfg_doc_parse(&d, name, text, len, err, errlen) == -1)
		return NULL;
	d.base = base;
	if ((a = cfg_alloc(&d, 1, sizeof(*a))) == NULL ||
	    (a->file = cfg_strdup(&d, d.file)) == NULL ||
	    cfg_agent_top(&d) == -1 ||
	    cfg_walk(&d, d.root, NULL, cfg_agent_keys, a) == -1 ||
	    cfg_agent_service_acme(&d, a, cfg_map_get(d.root,
	    "services")) == -1 ||
	    cfg_agent_service_dns(&d, a, cfg_map_get(d.root,
	    "services")) == -1) {
		cfg_doc_clear(&d);
		cfg_agent_free(a);
		return NULL;
	}
	cfg_doc_clear(&d);
	return a;
}

/* The commonest mistake: handing the gateway's file to the agent. */
static int
cfg_agent_top(struct cfg_doc *d)
{
	struct cfg_node	*k;
	size_t		 i;

	for (i = 0; i < d->root->nkids; i += 2) {
		k = d->root->kids[i];
		if (strcmp(k->str, "listen") == 0 ||
		    strcmp(k->str, "agents") == 0)
			return cfg_bad(d, k, "top level", "unknown key",
			    "this looks like a porch-gateway config; "
			    "porch-agent takes identity, name, admin, "
			    "gateways, reconnect, timeouts, limits, services, "
			    "acme, dns");
	}
	return 0;
}

/* admin, and admin_public with it. */
static int
cfg_agent_admin(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;

	(void)n;
	(void)what;
	return cfg_admin(d, root, "'127.0.0.1:9901' or '[::1]:9901'",
	    &a->admin, &a->admin_public);
}

static int
cfg_agent_gateways(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *seq, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;
	char			**names;
	size_t			  i;
	int			  rc;

	(void)root;
	if (cfg_expect_seq(d, seq, what) == -1)
		return -1;
	if (seq->nkids == 0)
		return cfg_error(d, seq, "gateways: empty list (add at least "
		    "one gateway with name, address and key)");
	if ((a->gateways = cfg_alloc(d, seq->nkids,
	    sizeof(*a->gateways))) == NULL ||
	    cfg_walk_seq(d, seq, what, cfg_agent_gateway_keys, a->gateways,
	    sizeof(*a->gateways), &a->ngateways) == -1)
		return -1;
	if ((names = cfg_alloc(d, a->ngateways, sizeof(*names))) == NULL)
		return -1;
	for (i = 0; i < a->ngateways; i++)
		names[i] = a->gateways[i].name;
	rc = cfg_agent_dups(d, seq, names, a->ngateways, "name", "gateways",
	    "duplicate gateway name");
	free(names);
	return rc;
}

static int
cfg_agent_gateway_address(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_remote	*r = obj;

	(void)map;
	return cfg_address(d, n, what, &r->address, &r->host, &r->port);
}

static int
cfg_agent_reconnect(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *map, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;
	struct cfg_node		*lo;
	char			 b[32];

	(void)root;
	(void)what;
	if (a->reconnect_min_ms <= a->reconnect_max_ms)
		return 0;
	if ((lo = cfg_map_get(map, "min")) != NULL)
		return cfg_bad(d, lo, "reconnect.min", "above reconnect.max",
		    "max is %s; min must not exceed it",
		    cfg_fmt_ms(a->reconnect_max_ms, b, sizeof(b)));
	return cfg_bad(d, cfg_map_get(map, "max"), "reconnect.max",
	    "below reconnect.min", "min is %s by default; max must be at "
	    "least that", cfg_fmt_ms(a->reconnect_min_ms, b, sizeof(b)));
}

static int
cfg_agent_timeouts(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *map, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;

	(void)root;
	(void)what;
	return cfg_keepalive(d, map, a->keepalive_ms, a->dead_peer_ms);
}

static int
cfg_agent_services(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *seq, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;
	char			**names;
	size_t			  i;
	int			  rc;

	(void)root;
	if (cfg_expect_seq(d, seq, what) == -1)
		return -1;
	if (seq->nkids == 0)
		return cfg_error(d, seq, "services: empty list (publish at "
		    "least one hostname with a tls or http backend)");
	if ((a->services = cfg_alloc(d, seq->nkids,
	    sizeof(*a->services))) == NULL ||
	    cfg_walk_seq(d, seq, what, cfg_agent_service_keys, a->services,
	    sizeof(*a->services), &a->nservices) == -1)
		return -1;
	if ((names = cfg_alloc(d, a->nservices, sizeof(*names))) == NULL)
		return -1;
	for (i = 0; i < a->nservices; i++)
		names[i] = a->services[i].hostname;
	rc = cfg_agent_dups(d, seq, names, a->nservices, "hostname",
	    "services", "duplicate hostname");
	free(names);
	return rc;
}

/* A service needs somewhere to send its visitors. */
static int
cfg_agent_service_backend(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_service	*s = obj;

	(void)n;
	if (s->tls_backend == NULL && s->http_backend == NULL &&
	    !s->tls_terminate)
		return cfg_error(d, map, "%s: no backend (add 'tls: "
		    "127.0.0.1:443' for TLS visitors or 'http: 127.0.0.1:80' "
		    "for plain-HTTP visitors)", what);
	return 0;
}

/* "tls:" is a backend, or "terminate": the agent ends TLS itself. */
static int
cfg_agent_tls(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_service	*s = obj;

	if (n == NULL)
		return 0;
	if (n->type != CFG_NODE_SCALAR || n->isnull ||
	    strcmp(n->str, "terminate") != 0)
		return cfg_backend(d, n, what, &s->tls_backend);
	s->tls_terminate = 1;
	if (cfg_map_get(map, "http") == NULL)
		return cfg_bad(d, n, what, "terminate needs an http backend",
		    "the agent decrypts visitors and passes plain HTTP to "
		    "'http: 127.0.0.1:8080'; add one");
	return 0;
}

/* The optional health section: when a replica is up. */
static int
cfg_agent_health(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	(void)map;
	if (n == NULL)
		return 0;
	return cfg_walk(d, n, what, cfg_agent_health_keys, obj);
}

/* A check must end before the next one starts. */
static int
cfg_agent_health_times(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_health	*h = &((struct cfg_service *)obj)->health;
	struct cfg_node		*to;
	char			 f[112], b[32];

	(void)n;
	if (h->timeout_ms < h->interval_ms)
		return 0;
	if ((to = cfg_map_get(map, "timeout")) != NULL) {
		snprintf(f, sizeof(f), "%s.timeout", what);
		return cfg_bad(d, to, f, "not below interval", "interval is "
		    "%s; a check must end before the next one starts",
		    cfg_fmt_ms(h->interval_ms, b, sizeof(b)));
	}
	snprintf(f, sizeof(f), "%s.interval", what);
	return cfg_bad(d, cfg_map_get(map, "interval"), f, "not above timeout",
	    "timeout is %s by default; lengthen interval or set a shorter "
	    "timeout", cfg_fmt_ms(h->timeout_ms, b, sizeof(b)));
}

/* A check of a backend the service has. */
static int
cfg_agent_check_backend(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_service	*s = obj;
	char			 f[112];

	snprintf(f, sizeof(f), "%s.check", what);
	n = cfg_map_get(map, "check");
	if (s->health.check == CFG_CHECK_TLS && s->tls_backend == NULL)
		return cfg_bad(d, n, f, "no tls backend", "a tls check "
		    "handshakes with the service's tls backend; add one or "
		    "use check: tcp");
	if (s->health.check == CFG_CHECK_HTTP && s->http_backend == NULL)
		return cfg_bad(d, n, f, "no http backend", "an http check "
		    "asks the service's http backend; add one or use "
		    "check: tcp");
	return 0;
}

/* path and expect: errors unless the check is http. */
static int
cfg_agent_http_only(struct cfg_doc *d, const struct cfg_health *h,
    const struct cfg_node *n, const char *what)
{
	const char	*key = strrchr(what, '.') + 1;

	return cfg_bad(d, n, what, "only for check: http", "this check is %s; "
	    "remove %s or use check: http", cfg_agent_check_names[h->check],
	    key);
}

static int
cfg_agent_health_path(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_health	*h = &((struct cfg_service *)obj)->health;
	const char		*v = NULL;
	size_t			 i;

	(void)map;
	if (h->check != CFG_CHECK_HTTP)
		return n == NULL ? 0 : cfg_agent_http_only(d, h, n, what);
	if (n == NULL)
		return (h->path = cfg_strdup(d, "/")) == NULL ? -1 : 0;
	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (v[0] != '/')
		return cfg_bad(d, n, what, "bad path", "must start with '/', "
		    "e.g. '/healthz'");
	if (n->len > CFG_HEALTH_PATH_MAX)
		return cfg_bad(d, n, what, "bad path", "at most %d bytes",
		    CFG_HEALTH_PATH_MAX);
	for (i = 0; i < n->len; i++)
		if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] > '~')
			return cfg_bad(d, n, what, "bad path", "printable "
			    "ASCII without spaces; percent-encode the rest, "
			    "e.g. '%%20'");
	return (h->path = cfg_strdup(d, v)) == NULL ? -1 : 0;
}

static int
cfg_agent_health_expect(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_health	*h = &((struct cfg_service *)obj)->health;

	(void)map;
	if (h->check != CFG_CHECK_HTTP)
		return n == NULL ? 0 : cfg_agent_http_only(d, h, n, what);
	h->expect = 200;
	return n == NULL ? 0 : cfg_uint(d, n, what, 100, 599, &h->expect);
}

/*
 * names[i] came from key in seq->kids[i]; report the first repeat.  Names
 * are compared as normalized, so "App.example" repeats "app.example".
 */
static int
cfg_agent_dups(struct cfg_doc *d, struct cfg_node *seq, char **names,
    size_t n, const char *key, const char *what, const char *problem)
{
	struct cfg_dup	*ents;
	size_t		 i;
	int		 rc;

	if ((ents = cfg_alloc(d, n, sizeof(*ents))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		cfg_dup_set(&ents[i], i, names[i], strlen(names[i]));
	rc = cfg_seq_dups(d, seq, ents, n, what, key, problem,
	    "list it once");
	free(ents);
	return rc;
}

/*
 * certificate: acme (implied by tls: terminate) and the extra names of
 * that certificate.  A wildcard needs dns-01 (cfg_agent_service_acme).
 */
static int
cfg_agent_service_cert(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_service	*s = obj;
	struct cfg_node		*names, *it;
	const char		*v;
	char			 f[128];
	size_t			 i, j, cnt;

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
	cnt = names == NULL ? 0 : cfg_list_len(names);
	if (names != NULL && cfg_expect_list(d, names,
	    "certificate_names") == -1)
		return -1;
	if ((s->cert_names = cfg_alloc(d, cnt + 1,
	    sizeof(*s->cert_names))) == NULL ||
	    (s->cert_names[0] = cfg_strdup(d, s->hostname)) == NULL)
		return -1;
	s->ncert_names = 1;
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(names, i);
		snprintf(f, sizeof(f), "%s.certificate_names[%zu]", what, i);
		if (cfg_hostname(d, it, f, &s->cert_names[s->ncert_names]) ==
		    -1)
			return -1;
		s->ncert_names++;
	}
	/* Duplicates would make the CA refuse the order. */
	for (i = 1; i < s->ncert_names; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(s->cert_names[i], s->cert_names[j]) != 0)
				continue;
			snprintf(f, sizeof(f), "%s.certificate_names[%zu]",
			    what, i - 1);
			return cfg_bad(d, cfg_list_item(names, i - 1), f,
			    "duplicate name", "the hostname is always in the "
			    "certificate; list each other name once");
		}
	}
	return 0;
}

/* Services that want certificates need the acme: section. */
static int
cfg_agent_service_acme(struct cfg_doc *d, const struct cfg_agent *a,
    struct cfg_node *seq)
{
	size_t	i, j;
	char	f[80];
	int	dns01 = 0;

	for (i = 0; a->acme != NULL && i < a->acme->nchallenges; i++)
		dns01 |= a->acme->challenges[i] == CFG_CHALLENGE_DNS01;
	if (a->acme != NULL && a->acme->caa_pin && (a->dns == NULL ||
	    a->dns->provider != CFG_DNS_RFC2136))
		return cfg_error(d, cfg_map_get(cfg_map_get(d->root, "acme"),
		    "caa_pin"), "acme.caa_pin: the CAA records go through a "
		    "'dns:' section with provider rfc2136");
	if (dns01 && a->dns == NULL)
		return cfg_error(d, cfg_map_get(cfg_map_get(d->root, "acme"),
		    "challenge"), "acme.challenge: dns-01 publishes a TXT "
		    "record: add a 'dns:' section (provider, server, zone, "
		    "tsig_key)");
	/* A wildcard is validated by dns-01 only (RFC 8555 7.1.3). */
	for (i = 0; a->acme != NULL && !dns01 && i < a->nservices; i++)
		for (j = 0; j < a->services[i].ncert_names; j++) {
			if (a->services[i].cert_names[j][0] != '*')
				continue;
			snprintf(f, sizeof(f), j == 0 ? "services[%zu]."
			    "hostname" : "services[%zu].certificate_names",
			    i);
			return cfg_bad(d, cfg_map_get(seq->kids[i], j == 0 ?
			    "hostname" : "certificate_names"), f,
			    "no ACME certificate for a wildcard without "
			    "dns-01", "add dns-01 to acme.challenge (with a "
			    "dns: section for the TXT record), or list the "
			    "exact names");
		}
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

/* dns: true needs the dns: section, and a name inside its zone. */
static int
cfg_agent_service_dns(struct cfg_doc *d, const struct cfg_agent *a,
    struct cfg_node *seq)
{
	const char	*h, *z;
	size_t		 i, hl, zl;
	char		 f[80];

	for (i = 0; i < a->nservices; i++) {
		if (!a->services[i].dns)
			continue;
		snprintf(f, sizeof(f), "services[%zu].dns", i);
		if (a->dns == NULL)
			return cfg_error(d, cfg_map_get(seq->kids[i], "dns"),
			    "%s: dns: true needs a DNS server (add a 'dns:' "
			    "section with provider, server, zone and tsig_key)",
			    f);
		h = a->services[i].hostname;
		z = a->dns->zone;
		hl = strlen(h);
		zl = strlen(z);
		if (!(hl == zl && strcmp(h, z) == 0) && !(hl > zl &&
		    h[hl - zl - 1] == '.' && strcmp(h + hl - zl, z) == 0))
			return cfg_error(d, cfg_map_get(seq->kids[i], "dns"),
			    "%s: %s is not in zone %s (dns.zone): leave dns "
			    "out for it, or let an agent with that zone keep "
			    "its records", f, h, z);
	}
	return 0;
}

/* Where the records are kept: the dns section. */
static int
cfg_agent_dns(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;
	int			 rc;

	(void)n;
	(void)what;
	a->dns = cfg_walk_new(d, root, "dns", sizeof(*a->dns),
	    cfg_agent_dns_keys, &rc);
	return rc;
}

/* The zone's primary: host:port, [v6]:port, or a host alone (53). */
static int
cfg_agent_dns_server(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_dns	*c = obj;
	struct cfg_node	 with_port;
	const char	*s, *colon;
	char		*full;
	int		 rc;

	(void)map;
	if (n == NULL)
		return 0;
	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (s[0] == '[' || ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL))
		return cfg_address(d, n, what, &c->server, &c->host,
		    &c->port);
	if (colon != NULL)
		return cfg_bad(d, n, what, "bad address", "write an IPv6 "
		    "server as '[2001:db8::53]:53'");
	if (asprintf(&full, "%s:53", s) == -1)
		return cfg_nomem(d);
	with_port = *n;
	with_port.str = full;
	with_port.len = strlen(full);
	rc = cfg_address(d, &with_port, what, &c->server, &c->host, &c->port);
	free(full);
	return rc;
}

/* Name servers to see a dns-01 record at, host:port each. */
static int
cfg_agent_dns_nameservers(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_dns	*c = obj;
	char		 f[64];
	size_t		 i, cnt;

	(void)map;
	if (n == NULL)
		return 0;
	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	if ((cnt = cfg_list_len(n)) == 0)
		return 0;
	if ((c->nameservers = cfg_alloc(d, cnt, sizeof(char *))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++) {
		snprintf(f, sizeof(f), "%s[%zu]", what, i);
		if (cfg_backend(d, cfg_list_item(n, i), f,
		    &c->nameservers[i]) == -1)
			return -1;
		c->nnameservers++;
	}
	return 0;
}

/* What each provider needs. */
static int
cfg_agent_dns_provider(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_dns	*c = obj;

	(void)n;
	(void)what;
	if (c->provider == CFG_DNS_EXEC) {
		if (c->command == NULL)
			return cfg_error(d, map, "dns: command missing (add "
			    "the command that gets each record set as JSON "
			    "on stdin, e.g. 'command: /usr/local/bin/"
			    "dns-update')");
		if (c->server != NULL || c->tsig_key != NULL)
			return cfg_error(d, map, "dns: server and tsig_key "
			    "are for provider rfc2136; exec runs command");
		return 0;
	}
	if (c->command != NULL)
		return cfg_error(d, map, "dns: command is for provider exec");
	if (c->server == NULL)
		return cfg_error(d, map, "dns: server missing (add the zone's "
		    "primary server, e.g. 'server: ns1.example.org:53')");
	if (c->tsig_key == NULL)
		return cfg_error(d, map, "dns: tsig_key missing (add the key "
		    "file 'tsig-keygen -a hmac-sha256 NAME' wrote, e.g. "
		    "'tsig_key: /etc/porch/dns.key')");
	return 0;
}

/* Where and how certificates are obtained: the acme section. */
static int
cfg_agent_acme(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_agent	*a = obj;
	int			 rc;

	(void)n;
	(void)what;
	a->acme = cfg_walk_new(d, root, "acme", sizeof(*a->acme),
	    cfg_agent_acme_keys, &rc);
	return rc;
}

static int
cfg_agent_directory(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_acme	*m = obj;
	const char	*v;

	(void)map;
	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (strcmp(v, "letsencrypt") == 0)
		v = "https://acme-v02.api.letsencrypt.org/directory";
	else if (strcmp(v, "letsencrypt-staging") == 0)
		v = "https://acme-staging-v02.api.letsencrypt.org/directory";
	else if (strncmp(v, "https://", 8) != 0 || strlen(v) < 9 ||
	    strlen(v) > 1024)
		return cfg_bad(d, n, what, "not an https URL",
		    "use letsencrypt, letsencrypt-staging or the CA's "
		    "directory URL, e.g. 'https://ca.example/directory'");
	return (m->directory = cfg_strdup(d, v)) == NULL ? -1 : 0;
}

static int
cfg_agent_email(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_acme	*m = obj;

	(void)map;
	if (n == NULL)
		return 0;
	if (cfg_text(d, n, what, &m->email) == -1)
		return -1;
	if (strchr(m->email, '@') == NULL ||
	    strpbrk(m->email, " ,<>:\"") != NULL)
		return cfg_bad(d, n, what, "not an email address", "the CA "
		    "writes to it about expiring certificates, e.g. "
		    "'admin@example.net'");
	return 0;
}

static int
cfg_agent_agree_tos(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	const char	*v;

	(void)map;
	(void)obj;
	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (strcmp(v, "true") != 0)
		return cfg_bad(d, n, what, "the CA's terms must be accepted",
		    "a CA issues only to accounts that agree to its terms of "
		    "service; read them and set true");
	return 0;
}

/* External account binding: both halves... */
static int
cfg_agent_eab_both(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	(void)n;
	(void)obj;
	if (cfg_map_get(map, "kid") == NULL ||
	    cfg_map_get(map, "hmac_key") == NULL)
		return cfg_error(d, map, "%s: needs both kid and hmac_key "
		    "(the CA shows them with the account you registered "
		    "there)", what);
	return 0;
}

/* ...and the key in base64url. */
static int
cfg_agent_eab(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_acme	*m = obj;
	size_t		 i;

	(void)map;
	(void)what;
	for (i = 0; m->eab_hmac[i] != '\0'; i++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		    "qrstuvwxyz0123456789-_=", m->eab_hmac[i]) == NULL)
			return cfg_bad(d, cfg_map_get(n, "hmac_key"),
			    "acme.eab.hmac_key", "not base64url", "paste the "
			    "key exactly as the CA shows it");
	return 0;
}

/* "challenge: http-01" or a list in order of preference. */
static int
cfg_agent_challenges(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_acme		*m = obj;
	struct cfg_node		*it;
	size_t			 i, j, cnt;
	int			 c;

	(void)map;
	if (n == NULL) {
		m->challenges[m->nchallenges++] = CFG_CHALLENGE_HTTP01;
		m->challenges[m->nchallenges++] = CFG_CHALLENGE_TLSALPN01;
		return 0;
	}
	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	cnt = cfg_list_len(n);
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(n, i);
		if (cfg_enum(d, it, what, &cfg_agent_challenge_enum,
		    &c) == -1)
			return -1;
		for (j = 0; j < m->nchallenges; j++)
			if (m->challenges[j] == (enum cfg_challenge)c)
				return cfg_bad(d, it, what, "listed twice",
				    "list each type once");
		if (m->nchallenges == CFG_CHALLENGE_MAX)
			break;
		m->challenges[m->nchallenges++] = (enum cfg_challenge)c;
	}
	if (m->nchallenges == 0)
		return cfg_error(d, n, "%s: empty (use http-01, tls-alpn-01 "
		    "or both)", what);
	return 0;
}

/* After a failure the agent waits min, doubling up to max. */
static int
cfg_agent_retry(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *map, const char *what, void *obj)
{
	struct cfg_acme	*m = obj;
	struct cfg_node	*n;

	(void)root;
	(void)what;
	if (m->retry_min_ms <= m->retry_max_ms)
		return 0;
	if ((n = cfg_map_get(map, "min")) != NULL)
		return cfg_bad(d, n, "acme.retry.min", "min above max", "after "
		    "a failure the agent waits min, doubling up to max");
	return cfg_bad(d, cfg_map_get(map, "max"), "acme.retry.max", "min "
	    "above max", "after a failure the agent waits min, doubling up to "
	    "max");
}
