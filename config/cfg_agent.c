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
	"identity", "name", "admin", "gateways", "reconnect", "timeouts",
	"limits", "services", NULL
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
	"stream_window", NULL
};
static const char *const agent_service_keys[] = {
	"hostname", "tls", "http", "proxy_protocol", "priority", "policy",
	"health", NULL
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
		free(a->services[i].hostname);
		free(a->services[i].tls_backend);
		free(a->services[i].http_backend);
		free(a->services[i].health.path);
	}
	free(a->services);
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
	a->stream_window = 256 * CFG_KIB;

	if (agent_top(&d) == -1 ||
	    cfg_identity(&d, d.root, base, "add 'identity: agent.key', the "
	    "key file made by 'porchctl keygen'", &a->identity) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "name")) != NULL &&
	    cfg_label(&d, n, "name", &a->name) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "admin")) != NULL) {
		a->admin = xcalloc(1, sizeof(*a->admin));
		if (cfg_listen_addr(&d, n, "admin", "'127.0.0.1:9901' or "
		    "'[::1]:9901'", a->admin) == -1)
			goto fail;
	}
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
	if ((n = cfg_map_get(d.root, "limits")) != NULL) {
		if (cfg_expect_map(&d, n, "limits") == -1 ||
		    cfg_map_keys(&d, n, "limits", agent_limit_keys) == -1)
			goto fail;
		if ((n = cfg_map_get(n, "stream_window")) != NULL &&
		    cfg_size(&d, n, "limits.stream_window", 16 * CFG_KIB,
		    16 * CFG_MIB, &a->stream_window) == -1)
			goto fail;
	}
	if (cfg_map_require(&d, d.root, "top level", "services", "list the "
	    "hostnames to publish, each with a tls or http backend",
	    &n) == -1 || agent_services(&d, a, n) == -1)
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
			    "gateways, reconnect, timeouts, limits, services");
	}
	return cfg_map_keys(d, d->root, "top level", agent_top_keys);
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
	if (agent_backend(d, map, what, "tls", &s->tls_backend) == -1 ||
	    agent_backend(d, map, what, "http", &s->http_backend) == -1)
		return -1;
	if (s->tls_backend == NULL && s->http_backend == NULL)
		return cfg_error(d, map, "%s: no backend (add 'tls: "
		    "127.0.0.1:443' for TLS visitors or 'http: 127.0.0.1:80' "
		    "for plain-HTTP visitors)", what);
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
