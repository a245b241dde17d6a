/* SPDX-License-Identifier: ISC */
/*
 * The porch-gateway schema: identity and own name, listeners (the admin
 * one included), timeouts, limits, the agents it admits with the
 * hostnames each may claim, and the peer gateways of its cluster.  Walks
 * the tree built by cfg.c and fills a struct cfg_gateway, or reports the
 * first error with its position.
 */

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg_tree.h"

#define CFG_OBJ	struct cfg_gateway
static int	 cfg_gw_public(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_admin(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_listen(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_timeouts(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_agents(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_peers(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, void *);
static int	 cfg_gw_grant_hostnames(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_gw_peer_address(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);
static int	 cfg_gw_peer_hostnames(struct cfg_doc *,
		    const struct cfg_node *, struct cfg_node *, const char *,
		    void *);

static const struct cfg_key cfg_gw_listen_keys[] = {
	CFG_LIST("tls", tls, ntls),
	CFG_LIST("http", http, nhttp),
	CFG_LIST("tunnel", tunnel, ntunnel),
	CFG_END
};

static const struct cfg_key cfg_gw_timeout_keys[] = {
	CFG_KEY("hello", CFG_T_DURATION, hello_timeout_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 5000),
	CFG_KEY("handshake", CFG_T_DURATION, handshake_timeout_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 10000),
	CFG_KEY("keepalive", CFG_T_DURATION, keepalive_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 1000),
	CFG_KEY("dead_peer", CFG_T_DURATION, dead_peer_ms,
	    CFG_MS_MIN, CFG_MS_MAX, 4000),
	/* 0 closes visitors at once on stop. */
	CFG_KEY("drain", CFG_T_DURATION, drain_ms, 0, CFG_MS_MAX, 30000),
	CFG_KEY("announce", CFG_T_DURATION, announce_ms, 100, 60 * 1000, 2000),
	CFG_END
};

static const struct cfg_key cfg_gw_limit_keys[] = {
	CFG_KEY("hello_bytes", CFG_T_SIZE, hello_max, 512, 65536, 16384),
	CFG_KEY("http_head_bytes", CFG_T_SIZE, http_head_max,
	    512, 65536, 8192),
	CFG_KEY("streams_per_tunnel", CFG_T_UINT, streams_per_tunnel,
	    1, 1000000, 4096),
	CFG_KEY("stream_window", CFG_T_SIZE, stream_window,
	    16 * CFG_KIB, 16 * CFG_MIB, CFG_MIB),
	CFG_KEY("max_connections", CFG_T_UINT, max_connections,
	    1, 1000000, 20000),
	CFG_KEY("retries", CFG_T_UINT, retries, 0, 8, 2),
	CFG_KEY("replay_bytes", CFG_T_SIZE, replay_max, 0, CFG_MIB,
	    64 * CFG_KIB),
	/* Bounds what one peer can make us hold (~100 bytes a name). */
	CFG_KEY("names_per_peer", CFG_T_UINT, names_per_peer,
	    1, 1000000, 100000),
	CFG_KEY("claims_per_tunnel", CFG_T_UINT, claims_per_tunnel,
	    1, 1000000, 16384),
	/* One address's share: visitors, and agents' TLS handshakes; 0 is
	 * a quarter of max_connections. */
	CFG_KEY("connections_per_source", CFG_T_UINT, connections_per_source,
	    1, 1000000, 0),
	CFG_KEY("handshakes_per_source", CFG_T_UINT, handshakes_per_source,
	    1, 256, 16),
	CFG_END
};

static const struct cfg_key cfg_gw_keys[] = {
	CFG_NEED("identity", CFG_T_PATH, identity, "add 'identity: "
	    "gateway.key', the key file made by 'porchctl keygen'"),
	CFG_KEY("name", CFG_T_SERVER_NAME, name, 0, 0, 0),
	CFG_FUNC("admin", cfg_gw_admin, NULL),
	CFG_OTHER("admin_public"),
	CFG_SECTION("listen", cfg_gw_listen_keys, cfg_gw_listen, "add a "
	    "listen section with tunnel and tls or http addresses"),
	CFG_SECTION("timeouts", cfg_gw_timeout_keys, cfg_gw_timeouts, NULL),
	CFG_SECTION("limits", cfg_gw_limit_keys, NULL, NULL),
	CFG_FUNC("public_addresses", cfg_gw_public, NULL),
	CFG_FUNC("agents", cfg_gw_agents, NULL),
	CFG_FUNC("peers", cfg_gw_peers, NULL),
	CFG_END
};

#undef CFG_OBJ
#define CFG_OBJ	struct cfg_grant
static const struct cfg_key cfg_gw_grant_keys[] = {
	CFG_NEED("name", CFG_T_LABEL, name, "add 'name: alice-home'"),
	CFG_NEED("key", CFG_T_PUBKEY, key, "add the agent's public key as "
	    "printed by 'porchctl pubkey'"),
	CFG_FUNC("hostnames", cfg_gw_grant_hostnames, "list the names this "
	    "agent may claim, e.g. [\"app.example.net\"]"),
	/* Bounds on what the grant lets the agent take from the others. */
	CFG_KEY("min_priority", CFG_T_UINT, min_priority, 1, 255, 1),
	CFG_KEY("acme", CFG_T_BOOL, acme, 0, 1, 1),
	CFG_END
};

#undef CFG_OBJ
#define CFG_OBJ	struct cfg_peer
static const struct cfg_key cfg_gw_peer_keys[] = {
	CFG_NEED("name", CFG_T_LABEL, name, "add 'name: gw2'"),
	CFG_FUNC("address", cfg_gw_peer_address, "add the peer's tunnel "
	    "address, e.g. 'address: gw2.example.net:7443'"),
	CFG_NEED("key", CFG_T_PUBKEY, key, "pin the peer's public key as "
	    "printed by 'porchctl pubkey' on that gateway"),
	CFG_FUNC("hostnames", cfg_gw_peer_hostnames, NULL),
	CFG_END
};
#undef CFG_OBJ

/* Host (at most 255 bytes, as cfg_hostport splits it), ':' and port. */
#define PEER_ADDR_MAX	(255 + 1 + 5 + 1)

/* One bound address for the duplicate check, in file order. */
struct cfg_gw_bind {
	const struct cfg_listen	*l;
	const struct cfg_node	*n;
	const char		*what;
};

/* How the entries of a list of agents or peers must differ, in words. */
struct cfg_gw_ident {
	const char	*list;
	const char	*name_problem;
	const char	*name_hint;
	const char	*key_problem;
	const char	*key_hint;
};

static struct cfg_gateway *cfg_gw_parse(const char *, const char *, size_t,
		    const char *, char *, size_t);
static int	 cfg_gw_top(struct cfg_doc *);
static int	 cfg_gw_listen_dups(struct cfg_doc *, struct cfg_gateway *,
		    const struct cfg_node *);
static int	 cfg_gw_bind_cmp(const void *, const void *);
static int	 cfg_gw_agent_dups(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 cfg_gw_patterns(struct cfg_doc *, struct cfg_node *,
		    const char *, char ***, size_t *);
static int	 cfg_gw_peer_dups(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 cfg_gw_peer_agents(struct cfg_doc *, struct cfg_gateway *,
		    struct cfg_node *);
static int	 cfg_gw_ident_dups(struct cfg_doc *, const struct cfg_node *,
		    const struct cfg_dup *, size_t,
		    const struct cfg_gw_ident *);

static const struct cfg_gw_ident cfg_gw_agent_ident = {
	"agents",
	"duplicate agent name", "give each agent its own name",
	"duplicate agent key", "each agent needs its own key, made by "
	    "'porchctl keygen'",
};

static const struct cfg_gw_ident cfg_gw_peer_ident = {
	"peers",
	"duplicate peer name", "give each peer its own name",
	"duplicate peer key", "each gateway has its own key; copy it from "
	    "'porchctl pubkey' on that gateway",
};

struct cfg_gateway *
cfg_gateway_load(const char *path, char *err, size_t errlen)
{
	struct cfg_gateway	*gw;
	char			*text;
	size_t			 len;

	if ((text = cfg_read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	gw = cfg_gw_parse(path, text, len, path, err, errlen);
	free(text);
	return gw;
}

struct cfg_gateway *
cfg_gateway_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen)
{
	return cfg_gw_parse(name, text, len, NULL, err, errlen);
}

void
cfg_gateway_free(struct cfg_gateway *gw)
{
	size_t	i, j;

	if (gw == NULL)
		return;
	free(gw->public_addrs);
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
cfg_gw_parse(const char *name, const char *text, size_t len, const char *base,
    char *err, size_t errlen)
{
	struct cfg_doc		 d;
	struct cfg_gateway	*gw;

	if (cfg_doc_parse(&d, name, text, len, err, errlen) == -1)
		return NULL;
	d.base = base;
	if ((gw = cfg_alloc(&d, 1, sizeof(*gw))) == NULL ||
	    (gw->file = cfg_strdup(&d, d.file)) == NULL ||
	    cfg_gw_top(&d) == -1 || cfg_walk(&d, d.root, NULL, cfg_gw_keys,
	    gw) == -1) {
		cfg_doc_clear(&d);
		cfg_gateway_free(gw);
		return NULL;
	}
	cfg_doc_clear(&d);
	return gw;
}

/* The commonest mistake: handing the agent's file to the gateway. */
static int
cfg_gw_top(struct cfg_doc *d)
{
	struct cfg_node	*k;
	size_t		 i;

	for (i = 0; i < d->root->nkids; i += 2) {
		k = d->root->kids[i];
		if (strcmp(k->str, "services") == 0 ||
		    strcmp(k->str, "gateways") == 0)
			return cfg_bad(d, k, "top level", "unknown key",
			    "this looks like a porch-agent config; "
			    "porch-gateway takes identity, name, admin, "
			    "listen, timeouts, limits, agents, peers");
	}
	return 0;
}

/* admin, and admin_public with it. */
static int
cfg_gw_admin(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;

	(void)n;
	(void)what;
	return cfg_admin(d, root, "'127.0.0.1:9900' or '[::1]:9900'",
	    &gw->admin, &gw->admin_public);
}

/* A tunnel address, a visitor address, each bound once. */
static int
cfg_gw_listen(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *map, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;
	struct cfg_node		*n;

	(void)root;
	(void)what;
	if (gw->ntunnel == 0)
		return cfg_error(d, (n = cfg_map_get(map, "tunnel")) != NULL ?
		    n : map, "listen: no tunnel address (add 'tunnel: "
		    "[\"0.0.0.0:7443\"]' so that agents can connect)");
	if (gw->ntls + gw->nhttp == 0)
		return cfg_error(d, map, "listen: no visitor address (add "
		    "'tls: [\"0.0.0.0:443\"]' or 'http: [\"0.0.0.0:80\"]')");
	return cfg_gw_listen_dups(d, gw, map);
}

/*
 * Each socket address may be bound once, whatever list it is in, the
 * admin address included.  The later one in the file is reported.
 */
static int
cfg_gw_listen_dups(struct cfg_doc *d, struct cfg_gateway *gw,
    const struct cfg_node *map)
{
	struct cfg_listen	*lists[3] = { gw->tls, gw->http, gw->tunnel };
	size_t			 counts[3] = { gw->ntls, gw->nhttp,
				    gw->ntunnel };
	const char		*keys[3] = { "tls", "http", "tunnel" };
	struct cfg_gw_bind	*b;
	struct cfg_dup		*ents = NULL;
	size_t			 i, j, cnt = 0, first, dup;
	int			 rc = -1;

	if ((b = cfg_alloc(d, gw->ntls + gw->nhttp + gw->ntunnel + 1,
	    sizeof(*b))) == NULL)
		return -1;
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
	qsort(b, cnt, sizeof(*b), cfg_gw_bind_cmp);
	if ((ents = cfg_alloc(d, cnt, sizeof(*ents))) == NULL)
		goto out;
	for (i = 0; i < cnt; i++)
		cfg_dup_set(&ents[i], i, &b[i].l->ss, b[i].l->sslen);
	if ((rc = cfg_dup_find(d, ents, cnt, &first, &dup)) == 1)
		rc = cfg_bad(d, b[dup].n, b[dup].what, "duplicate address",
		    "first at line %u; bind each address once",
		    b[first].n->line);
out:
	free(ents);
	free(b);
	return rc;
}

/* File order: by line, then column. */
static int
cfg_gw_bind_cmp(const void *a, const void *b)
{
	const struct cfg_node	*x = ((const struct cfg_gw_bind *)a)->n;
	const struct cfg_node	*y = ((const struct cfg_gw_bind *)b)->n;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return 0;
}

static int
cfg_gw_timeouts(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *map, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;

	(void)root;
	(void)what;
	return cfg_keepalive(d, map, gw->keepalive_ms, gw->dead_peer_ms);
}

static int
cfg_gw_agents(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *seq, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;

	(void)root;
	if (seq == NULL)
		return 0;
	if (cfg_expect_seq(d, seq, what) == -1)
		return -1;
	if (seq->nkids == 0)
		return 0;
	if ((gw->agents = cfg_alloc(d, seq->nkids,
	    sizeof(*gw->agents))) == NULL ||
	    cfg_walk_seq(d, seq, what, cfg_gw_grant_keys, gw->agents,
	    sizeof(*gw->agents), &gw->nagents) == -1)
		return -1;
	return cfg_gw_agent_dups(d, gw, seq);
}

static int
cfg_gw_grant_hostnames(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *hn, const char *what, void *obj)
{
	struct cfg_grant	*g = obj;

	(void)map;
	if (cfg_expect_list(d, hn, what) == -1)
		return -1;
	if (cfg_list_len(hn) == 0)
		return cfg_error(d, hn, "%s: empty list (grant at least one "
		    "hostname, e.g. [\"app.example.net\"])", what);
	return cfg_gw_patterns(d, hn, what, &g->patterns, &g->npatterns);
}

/* A list of hostname patterns (may be empty), each listed once. */
static int
cfg_gw_patterns(struct cfg_doc *d, struct cfg_node *hn, const char *fhosts,
    char ***patterns, size_t *npatterns)
{
	struct cfg_dup	*ents;
	size_t		 i, cnt, first, dup;
	int		 found;

	if (cfg_expect_list(d, hn, fhosts) == -1)
		return -1;
	if ((cnt = cfg_list_len(hn)) == 0)
		return 0;
	if ((*patterns = cfg_alloc(d, cnt, sizeof(**patterns))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++) {
		if (cfg_hostname(d, cfg_list_item(hn, i), fhosts,
		    &(*patterns)[i]) == -1)
			return -1;
		(*npatterns)++;
	}
	if ((ents = cfg_alloc(d, cnt, sizeof(*ents))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++)
		cfg_dup_set(&ents[i], i, (*patterns)[i],
		    strlen((*patterns)[i]));
	found = cfg_dup_find(d, ents, cnt, &first, &dup);
	free(ents);
	if (found == 1)
		return cfg_bad(d, cfg_list_item(hn, dup), fhosts,
		    "duplicate hostname", "first at line %u; list it once",
		    cfg_list_item(hn, first)->line);
	return found;
}

/* Agent names and keys must each be unique. */
static int
cfg_gw_agent_dups(struct cfg_doc *d, struct cfg_gateway *gw,
    struct cfg_node *seq)
{
	struct cfg_dup	*ents;
	size_t		 i;
	int		 rc;

	if ((ents = cfg_alloc(d, 2 * gw->nagents, sizeof(*ents))) == NULL)
		return -1;
	for (i = 0; i < gw->nagents; i++) {
		cfg_dup_set(&ents[i], i, gw->agents[i].name,
		    strlen(gw->agents[i].name));
		cfg_dup_set(&ents[gw->nagents + i], i, gw->agents[i].key,
		    sizeof(gw->agents[i].key));
	}
	rc = cfg_gw_ident_dups(d, seq, ents, gw->nagents,
	    &cfg_gw_agent_ident);
	free(ents);
	return rc;
}

static int
cfg_gw_peers(struct cfg_doc *d, const struct cfg_node *root,
    struct cfg_node *seq, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;

	(void)root;
	if (seq == NULL)
		return 0;
	if (cfg_expect_seq(d, seq, what) == -1)
		return -1;
	if (seq->nkids == 0)
		return 0;
	if ((gw->peers = cfg_alloc(d, seq->nkids, sizeof(*gw->peers))) == NULL ||
	    cfg_walk_seq(d, seq, what, cfg_gw_peer_keys, gw->peers,
	    sizeof(*gw->peers), &gw->npeers) == -1)
		return -1;
	if (cfg_gw_peer_dups(d, gw, seq) == -1)
		return -1;
	return cfg_gw_peer_agents(d, gw, seq);
}

static int
cfg_gw_peer_address(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_peer	*p = obj;

	(void)map;
	return cfg_address(d, n, what, &p->address, &p->host, &p->port);
}

/*
 * The names a peer's announcements are believed for.  Without the key,
 * none (the gateway warns at start and reload): a peer could otherwise
 * take visitors and ACME probes of any name.  An empty list says so on
 * purpose: the peer only takes our visitors.
 */
static int
cfg_gw_peer_hostnames(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_peer	*p = obj;

	(void)map;
	if (n == NULL)
		return 0;
	p->has_hostnames = 1;
	return cfg_gw_patterns(d, n, what, &p->patterns, &p->npatterns);
}

/*
 * public_addresses: where visitors reach this gateway, sent to agents
 * that keep DNS records (IPv4 and IPv6 literals, no port, at most 8).
 */
static int
cfg_gw_public(struct cfg_doc *d, const struct cfg_node *map,
    struct cfg_node *n, const char *what, void *obj)
{
	struct cfg_gateway	*gw = obj;
	struct cfg_node		*it;
	struct sockaddr_in	*in;
	struct sockaddr_in6	*in6;
	const char		*s;
	char			 f[64];
	size_t			 i, j, cnt;

	(void)map;
	if (n == NULL)
		return 0;
	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	if ((cnt = cfg_list_len(n)) > 8)
		return cfg_error(d, n, "%s: too many addresses (list at most "
		    "8; agents publish at most 8 per gateway)", what);
	if (cnt > 0 && (gw->public_addrs = cfg_alloc(d, cnt,
	    sizeof(*gw->public_addrs))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++) {
		it = cfg_list_item(n, i);
		snprintf(f, sizeof(f), "%s[%zu]", what, i);
		if (cfg_string(d, it, f, &s) == -1)
			return -1;
		in = (struct sockaddr_in *)&gw->public_addrs[i];
		in6 = (struct sockaddr_in6 *)&gw->public_addrs[i];
		if (inet_pton(AF_INET, s, &in->sin_addr) == 1)
			in->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1)
			in6->sin6_family = AF_INET6;
		else
			return cfg_bad(d, it, f, "not an IP address", "write "
			    "the address visitors reach this gateway at, "
			    "without a port, e.g. 192.0.2.1 or 2001:db8::1");
		for (j = 0; j < i; j++)
			if (memcmp(&gw->public_addrs[j], &gw->public_addrs[i],
			    sizeof(gw->public_addrs[i])) == 0)
				return cfg_bad(d, it, f, "duplicate address",
				    "list each address once");
		gw->npublic++;
	}
	return 0;
}

/*
 * Peer names, keys and addresses must each be unique; addresses compare
 * as host (case-insensitive) and port.
 */
static int
cfg_gw_peer_dups(struct cfg_doc *d, struct cfg_gateway *gw,
    struct cfg_node *seq)
{
	struct cfg_dup	*ents;
	char		(*addrs)[PEER_ADDR_MAX] = NULL;
	size_t		 i, j;
	int		 rc;

	if ((ents = cfg_alloc(d, 2 * gw->npeers, sizeof(*ents))) == NULL)
		return -1;
	for (i = 0; i < gw->npeers; i++) {
		cfg_dup_set(&ents[i], i, gw->peers[i].name,
		    strlen(gw->peers[i].name));
		cfg_dup_set(&ents[gw->npeers + i], i, gw->peers[i].key,
		    sizeof(gw->peers[i].key));
	}
	rc = cfg_gw_ident_dups(d, seq, ents, gw->npeers, &cfg_gw_peer_ident);
	if (rc == 0 && (addrs = cfg_alloc(d, gw->npeers,
	    sizeof(*addrs))) == NULL)
		rc = -1;
	for (i = 0; rc == 0 && i < gw->npeers; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "%s:%u",
		    gw->peers[i].host, gw->peers[i].port);
		for (j = 0; addrs[i][j] != '\0'; j++)
			if (addrs[i][j] >= 'A' && addrs[i][j] <= 'Z')
				addrs[i][j] += 'a' - 'A';
		cfg_dup_set(&ents[i], i, addrs[i], j);
	}
	if (rc == 0)
		rc = cfg_seq_dups(d, seq, ents, gw->npeers, "peers", "address",
		    "duplicate peer address", "each peer is another gateway, "
		    "with its own tunnel address");
	free(addrs);
	free(ents);
	return rc;
}

/* A key admits either an agent or a peer gateway, never both. */
static int
cfg_gw_peer_agents(struct cfg_doc *d, struct cfg_gateway *gw,
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
 * Names, then keys, must each be unique among the n entries of a list:
 * ents[i] holds entry i's name, ents[n + i] its key.
 */
static int
cfg_gw_ident_dups(struct cfg_doc *d, const struct cfg_node *seq,
    const struct cfg_dup *ents, size_t n, const struct cfg_gw_ident *id)
{
	if (cfg_seq_dups(d, seq, ents, n, id->list, "name", id->name_problem,
	    id->name_hint) == -1)
		return -1;
	return cfg_seq_dups(d, seq, ents + n, n, id->list, "key",
	    id->key_problem, id->key_hint);
}
