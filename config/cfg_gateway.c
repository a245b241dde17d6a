/* SPDX-License-Identifier: ISC */
/*
 * The porch-gateway schema: identity and own name, listeners (the admin
 * one included), timeouts, limits, the agents it admits with the
 * hostnames each may claim, and the peer gateways of its cluster.  Walks
 * the tree built by cfg.c and fills a struct cfg_gateway, or reports the
 * first error with its position.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg_tree.h"
#include "xmalloc.h"

static const char *const gw_top_keys[] = {
	"identity", "name", "admin", "admin_public", "listen", "timeouts", "limits", "agents",
	"peers", NULL
};
static const char *const gw_listen_keys[] = {
	"tls", "http", "tunnel", NULL
};
static const char *const gw_timeout_keys[] = {
	"hello", "handshake", "keepalive", "dead_peer", "drain", "announce",
	NULL
};
static const char *const gw_limit_keys[] = {
	"hello_bytes", "http_head_bytes", "streams_per_tunnel",
	"stream_window", "max_connections", "retries", "replay_bytes",
	"names_per_peer", "claims_per_tunnel", "connections_per_source",
	"handshakes_per_source", NULL
};
static const char *const gw_agent_keys[] = {
	"name", "key", "hostnames", "min_priority", "acme", NULL
};
static const char *const gw_peer_keys[] = {
	"name", "address", "key", "hostnames", NULL
};

/* Host (at most 255 bytes, as cfg_hostport splits it), ':' and port. */
#define PEER_ADDR_MAX	(255 + 1 + 5 + 1)

/* One bound address for the duplicate check, in file order. */
struct gw_bind {
	const struct cfg_listen	*l;
	const struct cfg_node	*n;
	const char		*what;
};

static struct cfg_gateway *gw_parse(const char *, const char *, size_t,
		    const char *, char *, size_t);
static int	 gw_top(struct cfg_doc *);
static int	 gw_listen(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_listen_list(struct cfg_doc *, struct cfg_node *,
		    const char *, struct cfg_listen **, size_t *);
static int	 gw_listen_dups(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_bind_cmp(const void *, const void *);
static int	 gw_timeouts(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_limits(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_agents(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_agent(struct cfg_doc *, struct cfg_grant *,
		    struct cfg_node *, size_t);
static int	 gw_agent_dups(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_patterns(struct cfg_doc *, struct cfg_node *,
		    const char *, char ***, size_t *);
static int	 gw_bool(struct cfg_doc *, const struct cfg_node *,
		    const char *, int *);
static int	 gw_peers(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_peer(struct cfg_doc *, struct cfg_peer *,
		    struct cfg_node *, size_t);
static int	 gw_peer_dups(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_peer_agents(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 gw_dups(struct cfg_doc *, struct cfg_node *,
		    struct cfg_dup *, size_t, const char *, const char *,
		    const char *, const char *);

struct cfg_gateway *
cfg_gateway_load(const char *path, char *err, size_t errlen)
{
	struct cfg_gateway	*gw;
	char			*text;
	size_t			 len;

	if ((text = cfg_read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	gw = gw_parse(path, text, len, path, err, errlen);
	free(text);
	return gw;
}

struct cfg_gateway *
cfg_gateway_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen)
{
	return gw_parse(name, text, len, NULL, err, errlen);
}

void
cfg_gateway_free(struct cfg_gateway *gw)
{
	size_t	i, j;

	if (gw == NULL)
		return;
	free(gw->file);
	free(gw->identity);
	free(gw->name);
	cfg_listen_free(gw->admin, gw->admin != NULL ? 1 : 0);
	cfg_listen_free(gw->tls, gw->ntls);
	cfg_listen_free(gw->http, gw->nhttp);
	cfg_listen_free(gw->tunnel, gw->ntunnel);
	for (i = 0; i < gw->nagents; i++) {
		free(gw->agents[i].name);
		for (j = 0; j < gw->agents[i].npatterns; j++)
			free(gw->agents[i].patterns[j]);
		free(gw->agents[i].patterns);
	}
	free(gw->agents);
	for (i = 0; i < gw->npeers; i++) {
		free(gw->peers[i].name);
		free(gw->peers[i].address);
		free(gw->peers[i].host);
		for (j = 0; j < gw->peers[i].npatterns; j++)
			free(gw->peers[i].patterns[j]);
		free(gw->peers[i].patterns);
	}
	free(gw->peers);
	free(gw);
}

/* base, when not NULL, is the file relative identity paths start from. */
static struct cfg_gateway *
gw_parse(const char *name, const char *text, size_t len, const char *base,
    char *err, size_t errlen)
{
	struct cfg_doc		 d;
	struct cfg_gateway	*gw;
	struct cfg_node		*n;

	if (cfg_doc_parse(&d, name, text, len, err, errlen) == -1)
		return NULL;
	gw = xcalloc(1, sizeof(*gw));
	gw->file = xstrdup(d.file);
	gw->hello_timeout_ms = 5000;
	gw->keepalive_ms = 1000;
	gw->dead_peer_ms = 4000;
	gw->handshake_timeout_ms = 10000;
	gw->hello_max = 16384;
	gw->http_head_max = 8192;
	gw->streams_per_tunnel = 4096;
	gw->stream_window = CFG_MIB;
	gw->max_connections = 20000;
	gw->names_per_peer = 100000;
	gw->drain_ms = 30000;
	gw->announce_ms = 2000;
	gw->retries = 2;
	gw->replay_max = 64 * CFG_KIB;
	gw->claims_per_tunnel = 16384;
	gw->handshakes_per_source = 16;

	if (gw_top(&d) == -1 ||
	    cfg_identity(&d, d.root, base, "add 'identity: gateway.key', the "
	    "key file made by 'porchctl keygen'", &gw->identity) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "name")) != NULL &&
	    cfg_server_name(&d, n, "name", &gw->name) == -1)
		goto fail;
	if (cfg_admin(&d, d.root, "'127.0.0.1:9900' or '[::1]:9900'",
	    &gw->admin, &gw->admin_public) == -1)
		goto fail;
	if (cfg_map_require(&d, d.root, "top level", "listen", "add a listen "
	    "section with tunnel and tls or http addresses", &n) == -1 ||
	    gw_listen(&d, gw, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "timeouts")) != NULL &&
	    gw_timeouts(&d, gw, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "limits")) != NULL &&
	    gw_limits(&d, gw, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "agents")) != NULL &&
	    gw_agents(&d, gw, n) == -1)
		goto fail;
	if ((n = cfg_map_get(d.root, "peers")) != NULL &&
	    gw_peers(&d, gw, n) == -1)
		goto fail;
	cfg_doc_clear(&d);
	return gw;
fail:
	cfg_doc_clear(&d);
	cfg_gateway_free(gw);
	return NULL;
}

static int
gw_top(struct cfg_doc *d)
{
	struct cfg_node	*k;
	size_t		 i;

	/* The commonest mistake: handing the agent's file to the gateway. */
	for (i = 0; i < d->root->nkids; i += 2) {
		k = d->root->kids[i];
		if (strcmp(k->str, "services") == 0 ||
		    strcmp(k->str, "gateways") == 0)
			return cfg_bad(d, k, "top level", "unknown key",
			    "this looks like a porch-agent config; "
			    "porch-gateway takes identity, name, admin, "
			    "listen, timeouts, limits, agents, peers");
	}
	return cfg_map_keys(d, d->root, "top level", gw_top_keys);
}

static int
gw_listen(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *map)
{
	struct cfg_node	*n;

	if (cfg_expect_map(d, map, "listen") == -1 ||
	    cfg_map_keys(d, map, "listen", gw_listen_keys) == -1)
		return -1;
	if ((n = cfg_map_get(map, "tls")) != NULL &&
	    gw_listen_list(d, n, "listen.tls", &gw->tls, &gw->ntls) == -1)
		return -1;
	if ((n = cfg_map_get(map, "http")) != NULL &&
	    gw_listen_list(d, n, "listen.http", &gw->http, &gw->nhttp) == -1)
		return -1;
	if ((n = cfg_map_get(map, "tunnel")) != NULL &&
	    gw_listen_list(d, n, "listen.tunnel", &gw->tunnel,
	    &gw->ntunnel) == -1)
		return -1;
	if (gw->ntunnel == 0)
		return cfg_error(d, n != NULL ? n : map, "listen: no tunnel "
		    "address (add 'tunnel: [\"0.0.0.0:7443\"]' so that agents "
		    "can connect)");
	if (gw->ntls + gw->nhttp == 0)
		return cfg_error(d, map, "listen: no visitor address (add "
		    "'tls: [\"0.0.0.0:443\"]' or 'http: [\"0.0.0.0:80\"]')");
	return gw_listen_dups(d, gw, map);
}

static int
gw_listen_list(struct cfg_doc *d, struct cfg_node *n, const char *what,
    struct cfg_listen **out, size_t *nout)
{
	size_t	i, cnt;

	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	if ((cnt = cfg_list_len(n)) == 0)
		return 0;
	*out = xcalloc(cnt, sizeof(**out));
	for (i = 0; i < cnt; i++) {
		if (cfg_listen_addr(d, cfg_list_item(n, i), what,
		    "'0.0.0.0:443' or '[::]:443'", &(*out)[i]) == -1)
			return -1;
		(*nout)++;
	}
	return 0;
}

/*
 * Each socket address may be bound once, whatever list it is in, the
 * admin address included.  The later one in the file is reported.
 */
static int
gw_listen_dups(struct cfg_doc *d, struct cfg_gateway *gw,
    struct cfg_node *map)
{
	struct cfg_listen	*lists[3] = { gw->tls, gw->http, gw->tunnel };
	size_t			 counts[3] = { gw->ntls, gw->nhttp,
				    gw->ntunnel };
	const char		*keys[3] = { "tls", "http", "tunnel" };
	struct gw_bind		*b;
	struct cfg_dup		*ents;
	size_t			 i, j, cnt = 0, first, dup;
	int			 rc = 0;

	b = xcalloc(gw->ntls + gw->nhttp + gw->ntunnel + 1, sizeof(*b));
	for (i = 0; i < 3; i++) {
		for (j = 0; j < counts[i]; j++) {
			b[cnt].l = &lists[i][j];
			b[cnt].n = cfg_list_item(cfg_map_get(map, keys[i]), j);
			b[cnt].what = "listen";
			cnt++;
		}
	}
	if (gw->admin != NULL) {
		b[cnt].l = gw->admin;
		b[cnt].n = cfg_map_get(d->root, "admin");
		b[cnt].what = "admin";
		cnt++;
	}
	qsort(b, cnt, sizeof(*b), gw_bind_cmp);
	ents = xcalloc(cnt, sizeof(*ents));
	for (i = 0; i < cnt; i++) {
		ents[i].key = &b[i].l->ss;
		ents[i].len = b[i].l->sslen;
		ents[i].order = i;
	}
	if (cfg_dup_find(ents, cnt, &first, &dup))
		rc = cfg_bad(d, b[dup].n, b[dup].what, "duplicate address",
		    "first at line %u; bind each address once",
		    b[first].n->line);
	free(ents);
	free(b);
	return rc;
}

/* File order: by line, then column. */
static int
gw_bind_cmp(const void *a, const void *b)
{
	const struct cfg_node	*x = ((const struct gw_bind *)a)->n;
	const struct cfg_node	*y = ((const struct gw_bind *)b)->n;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return 0;
}

static int
gw_timeouts(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *map)
{
	struct cfg_node	*n, *ka, *dp;
	char		 a[32], b[32];

	if (cfg_expect_map(d, map, "timeouts") == -1 ||
	    cfg_map_keys(d, map, "timeouts", gw_timeout_keys) == -1)
		return -1;
	if ((n = cfg_map_get(map, "hello")) != NULL &&
	    cfg_duration(d, n, "timeouts.hello", CFG_MS_MIN, CFG_MS_MAX,
	    &gw->hello_timeout_ms) == -1)
		return -1;
	if ((n = cfg_map_get(map, "handshake")) != NULL &&
	    cfg_duration(d, n, "timeouts.handshake", CFG_MS_MIN, CFG_MS_MAX,
	    &gw->handshake_timeout_ms) == -1)
		return -1;
	if ((ka = cfg_map_get(map, "keepalive")) != NULL &&
	    cfg_duration(d, ka, "timeouts.keepalive", CFG_MS_MIN, CFG_MS_MAX,
	    &gw->keepalive_ms) == -1)
		return -1;
	if ((dp = cfg_map_get(map, "dead_peer")) != NULL &&
	    cfg_duration(d, dp, "timeouts.dead_peer", CFG_MS_MIN, CFG_MS_MAX,
	    &gw->dead_peer_ms) == -1)
		return -1;
	/* 0 closes visitors at once on stop. */
	if ((n = cfg_map_get(map, "drain")) != NULL &&
	    cfg_duration(d, n, "timeouts.drain", 0, CFG_MS_MAX,
	    &gw->drain_ms) == -1)
		return -1;
	if ((n = cfg_map_get(map, "announce")) != NULL &&
	    cfg_duration(d, n, "timeouts.announce", 100, 60 * 1000,
	    &gw->announce_ms) == -1)
		return -1;
	if (gw->dead_peer_ms > gw->keepalive_ms)
		return 0;
	cfg_fmt_ms(gw->dead_peer_ms, a, sizeof(a));
	cfg_fmt_ms(gw->keepalive_ms, b, sizeof(b));
	if (dp == NULL)
		return cfg_bad(d, ka, "timeouts.keepalive", "not below "
		    "dead_peer", "dead_peer is %s by default; keep keepalive "
		    "well below it or set dead_peer", a);
	return cfg_bad(d, dp, "timeouts.dead_peer", "must be longer than "
	    "keepalive", "keepalive is %s; a dead peer is usually declared "
	    "after three missed keepalives", b);
}

static int
gw_limits(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *map)
{
	struct cfg_node	*n;

	if (cfg_expect_map(d, map, "limits") == -1 ||
	    cfg_map_keys(d, map, "limits", gw_limit_keys) == -1)
		return -1;
	if ((n = cfg_map_get(map, "hello_bytes")) != NULL &&
	    cfg_size(d, n, "limits.hello_bytes", 512, 65536,
	    &gw->hello_max) == -1)
		return -1;
	if ((n = cfg_map_get(map, "http_head_bytes")) != NULL &&
	    cfg_size(d, n, "limits.http_head_bytes", 512, 65536,
	    &gw->http_head_max) == -1)
		return -1;
	if ((n = cfg_map_get(map, "streams_per_tunnel")) != NULL &&
	    cfg_uint(d, n, "limits.streams_per_tunnel", 1, 1000000,
	    &gw->streams_per_tunnel) == -1)
		return -1;
	if ((n = cfg_map_get(map, "stream_window")) != NULL &&
	    cfg_size(d, n, "limits.stream_window", 16 * CFG_KIB,
	    16 * CFG_MIB, &gw->stream_window) == -1)
		return -1;
	if ((n = cfg_map_get(map, "max_connections")) != NULL &&
	    cfg_uint(d, n, "limits.max_connections", 1, 1000000,
	    &gw->max_connections) == -1)
		return -1;
	/* Bounds what one peer can make us hold (~100 bytes a name). */
	if ((n = cfg_map_get(map, "names_per_peer")) != NULL &&
	    cfg_uint(d, n, "limits.names_per_peer", 1, 1000000,
	    &gw->names_per_peer) == -1)
		return -1;
	if ((n = cfg_map_get(map, "retries")) != NULL &&
	    cfg_uint(d, n, "limits.retries", 0, 8, &gw->retries) == -1)
		return -1;
	if ((n = cfg_map_get(map, "replay_bytes")) != NULL &&
	    cfg_size(d, n, "limits.replay_bytes", 0, CFG_MIB,
	    &gw->replay_max) == -1)
		return -1;
	if ((n = cfg_map_get(map, "claims_per_tunnel")) != NULL &&
	    cfg_uint(d, n, "limits.claims_per_tunnel", 1, 1000000,
	    &gw->claims_per_tunnel) == -1)
		return -1;
	/* One address's share: visitors, and agents' TLS handshakes. */
	if ((n = cfg_map_get(map, "connections_per_source")) != NULL &&
	    cfg_uint(d, n, "limits.connections_per_source", 1, 1000000,
	    &gw->connections_per_source) == -1)
		return -1;
	if ((n = cfg_map_get(map, "handshakes_per_source")) != NULL &&
	    cfg_uint(d, n, "limits.handshakes_per_source", 1, 256,
	    &gw->handshakes_per_source) == -1)
		return -1;
	return 0;
}

static int
gw_agents(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *seq)
{
	size_t	i;

	if (cfg_expect_seq(d, seq, "agents") == -1)
		return -1;
	if (seq->nkids == 0)
		return 0;
	gw->agents = xcalloc(seq->nkids, sizeof(*gw->agents));
	for (i = 0; i < seq->nkids; i++) {
		gw->nagents++;
		if (gw_agent(d, &gw->agents[i], seq->kids[i], i) == -1)
			return -1;
	}
	return gw_agent_dups(d, gw, seq);
}

static int
gw_agent(struct cfg_doc *d, struct cfg_grant *g, struct cfg_node *map,
    size_t idx)
{
	struct cfg_node	*n, *hn;
	char		 what[64], fname[80], fkey[80], fhosts[80], f[80];

	snprintf(what, sizeof(what), "agents[%zu]", idx);
	snprintf(fname, sizeof(fname), "%s.name", what);
	snprintf(fkey, sizeof(fkey), "%s.key", what);
	snprintf(fhosts, sizeof(fhosts), "%s.hostnames", what);
	if (cfg_expect_map(d, map, what) == -1 ||
	    cfg_map_keys(d, map, what, gw_agent_keys) == -1)
		return -1;
	if (cfg_map_require(d, map, what, "name", "add 'name: alice-home'",
	    &n) == -1 || cfg_label(d, n, fname, &g->name) == -1)
		return -1;
	if (cfg_map_require(d, map, what, "key", "add the agent's public key "
	    "as printed by 'porchctl pubkey'", &n) == -1 ||
	    cfg_pubkey(d, n, fkey, g->key) == -1)
		return -1;
	if (cfg_map_require(d, map, what, "hostnames", "list the names this "
	    "agent may claim, e.g. [\"app.example.net\"]", &hn) == -1)
		return -1;
	if (cfg_expect_list(d, hn, fhosts) == -1)
		return -1;
	if (cfg_list_len(hn) == 0)
		return cfg_error(d, hn, "%s: empty list (grant at least one "
		    "hostname, e.g. [\"app.example.net\"])", fhosts);
	if (gw_patterns(d, hn, fhosts, &g->patterns, &g->npatterns) == -1)
		return -1;
	/* Bounds on what the grant lets the agent take from the others. */
	g->min_priority = 1;
	g->acme = 1;
	snprintf(f, sizeof(f), "%s.min_priority", what);
	if ((n = cfg_map_get(map, "min_priority")) != NULL &&
	    cfg_uint(d, n, f, 1, 255, &g->min_priority) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.acme", what);
	if ((n = cfg_map_get(map, "acme")) != NULL &&
	    gw_bool(d, n, f, &g->acme) == -1)
		return -1;
	return 0;
}

/* A list of hostname patterns (may be empty), each listed once. */
static int
gw_patterns(struct cfg_doc *d, struct cfg_node *hn, const char *fhosts,
    char ***patterns, size_t *npatterns)
{
	struct cfg_dup	*ents;
	size_t		 i, cnt, first, dup;
	int		 found;

	if (cfg_expect_list(d, hn, fhosts) == -1)
		return -1;
	if ((cnt = cfg_list_len(hn)) == 0)
		return 0;
	*patterns = xcalloc(cnt, sizeof(**patterns));
	for (i = 0; i < cnt; i++) {
		if (cfg_hostname(d, cfg_list_item(hn, i), fhosts,
		    &(*patterns)[i]) == -1)
			return -1;
		(*npatterns)++;
	}
	ents = xcalloc(cnt, sizeof(*ents));
	for (i = 0; i < cnt; i++) {
		ents[i].key = (*patterns)[i];
		ents[i].len = strlen((*patterns)[i]);
		ents[i].order = i;
	}
	found = cfg_dup_find(ents, cnt, &first, &dup);
	free(ents);
	if (found)
		return cfg_bad(d, cfg_list_item(hn, dup), fhosts,
		    "duplicate hostname", "first at line %u; list it once",
		    cfg_list_item(hn, first)->line);
	return 0;
}

static int
gw_bool(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    int *out)
{
	const char	*v;

	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0)
		*out = 0;
	else
		return cfg_bad(d, n, what, "not a boolean", "write true or "
		    "false");
	return 0;
}

/* Agent names and keys must each be unique. */
static int
gw_agent_dups(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *seq)
{
	struct cfg_dup	*ents;
	size_t		 i;
	int		 rc;

	ents = xcalloc(gw->nagents, sizeof(*ents));
	for (i = 0; i < gw->nagents; i++) {
		ents[i].key = gw->agents[i].name;
		ents[i].len = strlen(gw->agents[i].name);
		ents[i].order = i;
	}
	rc = gw_dups(d, seq, ents, gw->nagents, "agents", "name",
	    "duplicate agent name", "give each agent its own name");
	for (i = 0; rc == 0 && i < gw->nagents; i++) {
		ents[i].key = gw->agents[i].key;
		ents[i].len = sizeof(gw->agents[i].key);
	}
	if (rc == 0)
		rc = gw_dups(d, seq, ents, gw->nagents, "agents", "key",
		    "duplicate agent key", "each agent needs its own key, made "
		    "by 'porchctl keygen'");
	free(ents);
	return rc;
}

static int
gw_peers(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *seq)
{
	size_t	i;

	if (cfg_expect_seq(d, seq, "peers") == -1)
		return -1;
	if (seq->nkids == 0)
		return 0;
	gw->peers = xcalloc(seq->nkids, sizeof(*gw->peers));
	for (i = 0; i < seq->nkids; i++) {
		gw->npeers++;
		if (gw_peer(d, &gw->peers[i], seq->kids[i], i) == -1)
			return -1;
	}
	if (gw_peer_dups(d, gw, seq) == -1)
		return -1;
	return gw_peer_agents(d, gw, seq);
}

static int
gw_peer(struct cfg_doc *d, struct cfg_peer *p, struct cfg_node *map,
    size_t idx)
{
	struct cfg_node	*n;
	char		 what[64], f[80];

	snprintf(what, sizeof(what), "peers[%zu]", idx);
	if (cfg_expect_map(d, map, what) == -1 ||
	    cfg_map_keys(d, map, what, gw_peer_keys) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.name", what);
	if (cfg_map_require(d, map, what, "name", "add 'name: gw2'",
	    &n) == -1 || cfg_label(d, n, f, &p->name) == -1)
		return -1;
	snprintf(f, sizeof(f), "%s.address", what);
	if (cfg_map_require(d, map, what, "address", "add the peer's tunnel "
	    "address, e.g. 'address: gw2.example.net:7443'", &n) == -1 ||
	    cfg_hostport(d, n, f, &p->host, &p->port) == -1)
		return -1;
	p->address = xstrdup(n->str);
	snprintf(f, sizeof(f), "%s.key", what);
	if (cfg_map_require(d, map, what, "key", "pin the peer's public key "
	    "as printed by 'porchctl pubkey' on that gateway", &n) == -1 ||
	    cfg_pubkey(d, n, f, p->key) == -1)
		return -1;
	/*
	 * The names its announcements are believed for.  Without the key,
	 * none (the gateway warns at start and reload): a peer could
	 * otherwise take visitors and ACME probes of any name.  An empty
	 * list says so on purpose: the peer only takes our visitors.
	 */
	snprintf(f, sizeof(f), "%s.hostnames", what);
	if ((n = cfg_map_get(map, "hostnames")) != NULL) {
		p->has_hostnames = 1;
		if (gw_patterns(d, n, f, &p->patterns, &p->npatterns) == -1)
			return -1;
	}
	return 0;
}

/*
 * Peer names, keys and addresses must each be unique; addresses compare
 * as host (case-insensitive) and port.
 */
static int
gw_peer_dups(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *seq)
{
	struct cfg_dup	*ents;
	char		(*addrs)[PEER_ADDR_MAX];
	size_t		 i, j;
	int		 rc;

	ents = xcalloc(gw->npeers, sizeof(*ents));
	for (i = 0; i < gw->npeers; i++) {
		ents[i].key = gw->peers[i].name;
		ents[i].len = strlen(gw->peers[i].name);
		ents[i].order = i;
	}
	rc = gw_dups(d, seq, ents, gw->npeers, "peers", "name",
	    "duplicate peer name", "give each peer its own name");
	for (i = 0; rc == 0 && i < gw->npeers; i++) {
		ents[i].key = gw->peers[i].key;
		ents[i].len = sizeof(gw->peers[i].key);
	}
	if (rc == 0)
		rc = gw_dups(d, seq, ents, gw->npeers, "peers", "key",
		    "duplicate peer key", "each gateway has its own key; "
		    "copy it from 'porchctl pubkey' on that gateway");
	addrs = xcalloc(gw->npeers, sizeof(*addrs));
	for (i = 0; rc == 0 && i < gw->npeers; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "%s:%u",
		    gw->peers[i].host, gw->peers[i].port);
		for (j = 0; addrs[i][j] != '\0'; j++)
			if (addrs[i][j] >= 'A' && addrs[i][j] <= 'Z')
				addrs[i][j] += 'a' - 'A';
		ents[i].key = addrs[i];
		ents[i].len = j;
	}
	if (rc == 0)
		rc = gw_dups(d, seq, ents, gw->npeers, "peers", "address",
		    "duplicate peer address", "each peer is another gateway, "
		    "with its own tunnel address");
	free(addrs);
	free(ents);
	return rc;
}

/* A key admits either an agent or a peer gateway, never both. */
static int
gw_peer_agents(struct cfg_doc *d, struct cfg_gateway *gw,
    struct cfg_node *seq)
{
	struct cfg_node	*agents;
	char		 f[80];
	size_t		 i, j;

	agents = cfg_map_get(d->root, "agents");
	for (i = 0; i < gw->npeers; i++) {
		for (j = 0; j < gw->nagents; j++) {
			if (memcmp(gw->peers[i].key, gw->agents[j].key,
			    sizeof(gw->peers[i].key)) != 0)
				continue;
			snprintf(f, sizeof(f), "peers[%zu].key", i);
			return cfg_bad(d, cfg_map_get(seq->kids[i], "key"), f,
			    "also an agent's key", "agent '%s' at line %u has "
			    "it; a key is either an agent or a peer",
			    gw->agents[j].name,
			    cfg_map_get(agents->kids[j], "key")->line);
		}
	}
	return 0;
}

/*
 * ents[i] came from key in seq->kids[i]; report the first repeat as
 * "list[i].key: problem: 'value' (first at line N; hint)".
 */
static int
gw_dups(struct cfg_doc *d, struct cfg_node *seq, struct cfg_dup *ents,
    size_t n, const char *list, const char *key, const char *problem,
    const char *hint)
{
	char	f[80];
	size_t	first, dup;

	if (!cfg_dup_find(ents, n, &first, &dup))
		return 0;
	snprintf(f, sizeof(f), "%s[%zu].%s", list, dup, key);
	return cfg_bad(d, cfg_map_get(seq->kids[dup], key), f, problem,
	    "first at line %u; %s", cfg_map_get(seq->kids[first], key)->line,
	    hint);
}
