/* SPDX-License-Identifier: ISC */
/*
 * The porch-gateway schema: identity, listeners, timeouts, limits and the
 * agents it admits with the hostnames each may claim.  Walks the tree
 * built by cfg.c and fills a struct cfg_gateway, or reports the first
 * error with its position.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "cfg_tree.h"
#include "xmalloc.h"

static const char *const gw_top_keys[] = {
	"identity", "listen", "timeouts", "limits", "agents", NULL
};
static const char *const gw_listen_keys[] = {
	"tls", "http", "tunnel", NULL
};
static const char *const gw_timeout_keys[] = {
	"hello", "handshake", "keepalive", "dead_peer", NULL
};
static const char *const gw_limit_keys[] = {
	"hello_bytes", "http_head_bytes", "streams_per_tunnel",
	"stream_window", "max_connections", NULL
};
static const char *const gw_agent_keys[] = {
	"name", "key", "hostnames", NULL
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
static void	 gw_listen_free(struct cfg_listen *, size_t);

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
	gw_listen_free(gw->tls, gw->ntls);
	gw_listen_free(gw->http, gw->nhttp);
	gw_listen_free(gw->tunnel, gw->ntunnel);
	for (i = 0; i < gw->nagents; i++) {
		free(gw->agents[i].name);
		for (j = 0; j < gw->agents[i].npatterns; j++)
			free(gw->agents[i].patterns[j]);
		free(gw->agents[i].patterns);
	}
	free(gw->agents);
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
	gw->keepalive_ms = 2000;
	gw->dead_peer_ms = 6000;
	gw->handshake_timeout_ms = 10000;
	gw->hello_max = 16384;
	gw->http_head_max = 8192;
	gw->streams_per_tunnel = 4096;
	gw->stream_window = 256 * CFG_KIB;
	gw->max_connections = 20000;

	if (gw_top(&d) == -1 ||
	    cfg_identity(&d, d.root, base, "add 'identity: gateway.key', the "
	    "key file made by 'porchctl keygen'", &gw->identity) == -1)
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
			    "porch-gateway takes identity, listen, timeouts, "
			    "limits, agents");
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
	struct cfg_listen	*l;
	struct cfg_node		*it;
	const char		*s;
	char			 e[128];
	size_t			 i, cnt;

	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	if ((cnt = cfg_list_len(n)) == 0)
		return 0;
	*out = xcalloc(cnt, sizeof(**out));
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(n, i);
		if (cfg_string(d, it, what, &s) == -1)
			return -1;
		l = &(*out)[i];
		if (addr_parse_numeric(s, &l->ss, &l->sslen, e,
		    sizeof(e)) == -1)
			return cfg_bad(d, it, what, "bad address", "%s; listen "
			    "addresses are numeric ip:port, e.g. '0.0.0.0:443' "
			    "or '[::]:443'", e);
		l->text = xstrdup(s);
		(*nout)++;
	}
	return 0;
}

/* Each socket address may be bound once, whatever list it is in. */
static int
gw_listen_dups(struct cfg_doc *d, struct cfg_gateway *gw,
    struct cfg_node *map)
{
	struct cfg_listen	*lists[3] = { gw->tls, gw->http, gw->tunnel };
	size_t			 counts[3] = { gw->ntls, gw->nhttp,
				    gw->ntunnel };
	const char		*keys[3] = { "tls", "http", "tunnel" };
	struct cfg_dup		*ents;
	struct cfg_node		**nodes;
	size_t			 i, j, cnt = 0, first, dup;
	int			 rc = 0;

	ents = xcalloc(gw->ntls + gw->nhttp + gw->ntunnel, sizeof(*ents));
	nodes = xcalloc(gw->ntls + gw->nhttp + gw->ntunnel, sizeof(*nodes));
	for (i = 0; i < 3; i++) {
		for (j = 0; j < counts[i]; j++) {
			nodes[cnt] = cfg_list_item(cfg_map_get(map, keys[i]),
			    j);
			ents[cnt].key = &lists[i][j].ss;
			ents[cnt].len = lists[i][j].sslen;
			ents[cnt].order = cnt;
			cnt++;
		}
	}
	if (cfg_dup_find(ents, cnt, &first, &dup))
		rc = cfg_bad(d, nodes[dup], "listen", "duplicate address",
		    "first at line %u; bind each address once",
		    nodes[first]->line);
	free(ents);
	free(nodes);
	return rc;
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
	struct cfg_dup	*ents;
	char		 what[64], fname[80], fkey[80], fhosts[80];
	size_t		 i, cnt, first, dup;
	int		 found;

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
	    "agent may claim, e.g. [\"app.example.net\"]", &hn) == -1 ||
	    cfg_expect_list(d, hn, fhosts) == -1)
		return -1;
	if ((cnt = cfg_list_len(hn)) == 0)
		return cfg_error(d, hn, "%s: empty list (grant at least one "
		    "hostname, e.g. [\"app.example.net\"])", fhosts);
	g->patterns = xcalloc(cnt, sizeof(*g->patterns));
	for (i = 0; i < cnt; i++) {
		if (cfg_hostname(d, cfg_list_item(hn, i), fhosts,
		    &g->patterns[i]) == -1)
			return -1;
		g->npatterns++;
	}
	ents = xcalloc(cnt, sizeof(*ents));
	for (i = 0; i < cnt; i++) {
		ents[i].key = g->patterns[i];
		ents[i].len = strlen(g->patterns[i]);
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

/* Agent names and keys must each be unique. */
static int
gw_agent_dups(struct cfg_doc *d, struct cfg_gateway *gw, struct cfg_node *seq)
{
	struct cfg_dup	*ents;
	char		 what[64];
	size_t		 i, first, dup;
	int		 found;

	ents = xcalloc(gw->nagents, sizeof(*ents));
	for (i = 0; i < gw->nagents; i++) {
		ents[i].key = gw->agents[i].name;
		ents[i].len = strlen(gw->agents[i].name);
		ents[i].order = i;
	}
	if ((found = cfg_dup_find(ents, gw->nagents, &first, &dup)) != 0) {
		free(ents);
		snprintf(what, sizeof(what), "agents[%zu].name", dup);
		return cfg_bad(d, cfg_map_get(seq->kids[dup], "name"),
		    what, "duplicate agent name", "first at line %u; "
		    "give each agent its own name",
		    cfg_map_get(seq->kids[first], "name")->line);
	}
	for (i = 0; i < gw->nagents; i++) {
		ents[i].key = gw->agents[i].key;
		ents[i].len = sizeof(gw->agents[i].key);
	}
	found = cfg_dup_find(ents, gw->nagents, &first, &dup);
	free(ents);
	if (!found)
		return 0;
	snprintf(what, sizeof(what), "agents[%zu].key", dup);
	return cfg_bad(d, cfg_map_get(seq->kids[dup], "key"), what,
	    "duplicate agent key", "first at line %u; each agent needs its "
	    "own key, made by 'porchctl keygen'",
	    cfg_map_get(seq->kids[first], "key")->line);
}

static void
gw_listen_free(struct cfg_listen *l, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(l[i].text);
	free(l);
}
