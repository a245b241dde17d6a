/* SPDX-License-Identifier: ISC */
/*
 * Links to the other gateways of the cluster.  Each pair of peers keeps
 * one mutually pinned tunnel (role peer): the gateway whose key sorts
 * lower dials, the other accepts.  Over it each side announces, as soft
 * state, the names it can serve through its own agents, and opens
 * streams for visitors that have no local agent.  A stream that arrives
 * from a peer goes to a local agent only, never on to another peer, so a
 * visitor crosses at most one peer hop and never loops.
 *
 * A link is up only once each side has verified the other's key.  The
 * dialer knows it when the acceptor's HELLO verifies (the acceptor
 * answers only after admitting the dialer); the acceptor knows it when
 * the dialer's first ANNOUNCE arrives, which the dialer sends only after
 * accepting the acceptor's HELLO.  Until then the accepted link is
 * pending: it neither replaces a working link nor carries visitors.
 */

#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>
#include <sodium.h>

#include "dial.h"
#include "gw.h"
#include "log.h"
#include "mono.h"

#define GW_PEER_BUCKETS		256
#define GW_PEER_MAX_NAMES	65536	/* learned from all peers */
#define GW_PEER_MAX_PEER_NAMES	8192	/* learned from any one peer */

struct gw_peer {
	struct gw		*gw;
	char			 name[64];
	char			 addr[NAME_MAX_LEN + 16];	/* configured */
	uint8_t			 key[KEY_PUB_LEN];
	uint64_t		 id;		/* in the gw_tun id space */
	struct tun		*tun;		/* the link, NULL when down */
	struct tun		*pending;	/* we admitted it, not it us */
	int			 pending_refused;	/* it said why */
	struct dial		*dial;		/* we dial (our key is lower) */
	int			 authed;
	uint64_t		 gen;		/* of the full set being read */
	unsigned		 nnames;
	unsigned		 nout;		/* names in our last ANNOUNCE */
	uint64_t		 up_ms;		/* mono ms the link came up */
	uint64_t		 rx_ann_ms;	/* its last ANNOUNCE, 0: none */
	uint64_t		 tx_ann_ms;	/* ours, 0: none */
	char			 refusal[512];	/* why we refused its HELLO */
	char			 last_error[600];	/* why it went down */
	uint64_t		 quiet_ms;	/* no link nor attempt since */
	int			 quiet_logged;
	TAILQ_HEAD(, gw_peer_name) names;	/* this peer's, for forget */
	TAILQ_ENTRY(gw_peer)	 entry;
};

/* A name a peer said it can serve, until expires. */
struct gw_peer_name {
	char			 name[NAME_MAX_LEN + 1];
	struct gw_peer		*peer;
	uint8_t			 kinds;
	uint64_t		 expires;	/* mono ms */
	uint64_t		 gen;
	struct gw_peer_name	*next;		/* hash chain */
	TAILQ_ENTRY(gw_peer_name) pentry;	/* its peer's list */
};

struct gw_peers {
	TAILQ_HEAD(, gw_peer)	 list;
	struct gw_peer_name	*buckets[GW_PEER_BUCKETS];
	unsigned		 nnames;
	struct event		*timer;		/* announce and expire */
	unsigned		 timer_ms;	/* its period */
	SSL_CTX			*client_ctx;
};

static int	gw_peer_add(struct gw *, const struct cfg_peer *, char *,
		    size_t);
static void	gw_peer_remove(struct gw *, struct gw_peer *);
static void	gw_peer_orphan_closed(struct tun *, const char *, void *);
static void	gw_peer_dialed(int, const char *, void *);
static void	gw_peer_link(struct gw_peer *, struct tun *);
static void	gw_peer_orphan(struct tun *, const char *);
static void	gw_peer_timer_cb(evutil_socket_t, short, void *);
static void	gw_peer_announce(struct gw_peer *);
static void	gw_peer_quiet(struct gw *, struct gw_peer *, uint64_t);
static void	gw_peer_forget(struct gw_peers *, struct gw_peer *, uint64_t);
static unsigned	gw_peer_hash(const char *);
static void	gw_peer_name_free(struct gw_peers *, struct gw_peer_name *);
static struct gw_peer *gw_peer_by_key(struct gw *, const uint8_t *);

static int	gw_peer_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	gw_peer_frame(struct tun *, const struct tun_frame *, void *);
static void	gw_peer_open(struct tun *, struct tun_stream *,
		    const struct tun_open *, void *);
static void	gw_peer_goaway(struct tun *, const struct tun_reason *,
		    void *);
static void	gw_peer_closed(struct tun *, const char *, void *);

static const struct tun_ops gw_peer_ops = {
	.authed = gw_peer_authed,
	.claim = NULL,
	.open = gw_peer_open,
	.goaway = gw_peer_goaway,
	.stream_closed = gw_fwd_stream_closed_cb,
	.stream_retry = gw_fwd_stream_retry_cb,
	.closed = gw_peer_closed,
	.frame = gw_peer_frame,
};

/* A link whose peer is gone: its streams still end through gw_fwd. */
static const struct tun_ops gw_peer_orphan_ops = {
	.stream_closed = gw_fwd_stream_closed_cb,
	.stream_retry = gw_fwd_stream_retry_cb,
	.closed = gw_peer_orphan_closed,
};

int
gw_peer_start(struct gw *gw, char *err, size_t errlen)
{
	const struct cfg_gateway	*cfg = gw->cfg;
	struct gw_peers			*ps;
	size_t				 i;

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	gw->peers = ps;
	TAILQ_INIT(&ps->list);
	for (i = 0; i < cfg->npeers; i++)
		if (gw_peer_add(gw, &cfg->peers[i], err, errlen) == -1)
			return -1;
	return 0;
}

/*
 * After a reload: peers are matched by key.  Gone ones lose their link
 * and their names; new ones are added; a moved dialer dials the new
 * address; links to the others stay up.
 */
void
gw_peer_reload(struct gw *gw)
{
	const struct cfg_gateway	*cfg = gw->cfg;
	struct gw_peer			*p, *next;
	char				 err[256];
	size_t				 i;

	for (p = TAILQ_FIRST(&gw->peers->list); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		for (i = 0; i < cfg->npeers; i++)
			if (memcmp(cfg->peers[i].key, p->key, KEY_PUB_LEN) == 0)
				break;
		if (i < cfg->npeers && (p->dial == NULL ||
		    (strcmp(cfg->peers[i].host, dial_host(p->dial)) == 0 &&
		    cfg->peers[i].port == dial_port(p->dial)))) {
			snprintf(p->name, sizeof(p->name), "%s",
			    cfg->peers[i].name);
			snprintf(p->addr, sizeof(p->addr), "%s",
			    cfg->peers[i].address);
			continue;	/* unchanged */
		}
		log_info("reload: peer %s %s", p->name, i < cfg->npeers ?
		    "moved; dialing its new address" : "removed");
		gw_peer_remove(gw, p);
	}
	for (i = 0; i < cfg->npeers; i++)
		if (gw_peer_by_key(gw, cfg->peers[i].key) == NULL &&
		    gw_peer_add(gw, &cfg->peers[i], err, sizeof(err)) == -1)
			log_warnx("reload: peer %s: %s", cfg->peers[i].name,
			    err);
	/* The TTL we announce follows announce_ms: so must the period. */
	if (gw->peers->timer != NULL &&
	    gw->peers->timer_ms != cfg->announce_ms) {
		struct timeval	tv;

		tv.tv_sec = cfg->announce_ms / 1000;
		tv.tv_usec = (cfg->announce_ms % 1000) * 1000;
		event_del(gw->peers->timer);
		event_add(gw->peers->timer, &tv);
		gw->peers->timer_ms = cfg->announce_ms;
	}
}

static int
gw_peer_add(struct gw *gw, const struct cfg_peer *cp, char *err,
    size_t errlen)
{
	struct gw_peers		*ps = gw->peers;
	struct gw_peer		*p;
	struct dial_params	 dp;
	struct timeval		 tv;
	char			 label[96];

	if (memcmp(cp->key, gw->key.pub, KEY_PUB_LEN) == 0) {
		snprintf(err, errlen, "peer %s has this gateway's own key; "
		    "list the other gateways under 'peers:'", cp->name);
		return -1;
	}
	if (ps->client_ctx == NULL &&
	    (ps->client_ctx = tun_tls_client_ctx(err, errlen)) == NULL)
		return -1;
	if (ps->timer == NULL) {
		if ((ps->timer = event_new(gw->base, -1, EV_PERSIST,
		    gw_peer_timer_cb, gw)) == NULL)
			goto oom;
		tv.tv_sec = gw->cfg->announce_ms / 1000;
		tv.tv_usec = (gw->cfg->announce_ms % 1000) * 1000;
		event_add(ps->timer, &tv);
		ps->timer_ms = gw->cfg->announce_ms;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto oom;
	TAILQ_INIT(&p->names);
	p->gw = gw;
	p->id = ++gw->next_tun_id;
	p->quiet_ms = mono_ms();
	snprintf(p->name, sizeof(p->name), "%s", cp->name);
	snprintf(p->addr, sizeof(p->addr), "%s", cp->address);
	memcpy(p->key, cp->key, KEY_PUB_LEN);
	TAILQ_INSERT_TAIL(&ps->list, p, entry);
	/* One link per pair: the lower key dials. */
	if (memcmp(gw->key.pub, p->key, KEY_PUB_LEN) < 0) {
		snprintf(label, sizeof(label), "peer %s", p->name);
		memset(&dp, 0, sizeof(dp));
		dp.host = cp->host;
		dp.port = cp->port;
		dp.connect_ms = 5000;
		dp.min_ms = 200;
		dp.max_ms = 10000;
		dp.label = label;
		if ((p->dial = dial_new(gw->base, gw->dns, &dp, gw_peer_dialed,
		    p)) == NULL)
			goto oom;
		dial_start(p->dial);
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Close the link, forget the names, free. */
static void
gw_peer_remove(struct gw *gw, struct gw_peer *p)
{
	struct gw_peers	*ps = gw->peers;

	TAILQ_REMOVE(&ps->list, p, entry);
	if (p->tun != NULL) {
		struct tun *tun = p->tun;

		p->tun = NULL;
		gw_peer_orphan(tun, "peer removed from the configuration");
	}
	if (p->pending != NULL) {
		struct tun *tun = p->pending;

		p->pending = NULL;
		gw_peer_orphan(tun, "peer removed from the configuration");
	}
	dial_free(p->dial);
	gw_peer_forget(ps, p, 0);
	free(p);
}

void
gw_peer_stop(struct gw *gw)
{
	struct gw_peers	*ps = gw->peers;
	struct gw_peer	*p;

	if (ps == NULL)
		return;
	while ((p = TAILQ_FIRST(&ps->list)) != NULL)
		gw_peer_remove(gw, p);
	if (ps->timer != NULL)
		event_free(ps->timer);
	SSL_CTX_free(ps->client_ctx);
	free(ps);
	gw->peers = NULL;
}

/* Draining: peers stop sending us visitors; our streams may finish. */
void
gw_peer_drain(struct gw *gw)
{
	struct gw_peer	*p;

	if (gw->peers == NULL)
		return;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		if (p->dial != NULL)
			dial_stop(p->dial);
		if (p->tun != NULL)
			tun_drain(p->tun, "gateway stopping",
			    gw->cfg->drain_ms);
		if (p->pending != NULL)
			tun_drain(p->pending, "gateway stopping",
			    gw->cfg->drain_ms);
	}
}

/*
 * A tunnel that authenticated with the peer role on our tunnel
 * listener: take it if the key is a listed peer.  0: taken.
 */
int
gw_peer_adopt(struct gw *gw, struct tun *tun, const struct tun_hello *h,
    char *msg, size_t msglen)
{
	struct gw_peer	*p, *q, *guess = NULL;
	char		 kt[KEY_TEXT_LEN], pt[KEY_TEXT_LEN], hint[400];
	const char	*hn = tun_peer_name(tun);
	size_t		 len;
	unsigned	 ndown = 0;

	if ((p = gw_peer_by_key(gw, h->pub)) == NULL) {
		/*
		 * Which entry is probably stale: the one named like the
		 * gateway's own name ("gw2" for gw2.example.net), else the
		 * only peer without a link.
		 */
		for (q = gw->peers != NULL ? TAILQ_FIRST(&gw->peers->list) :
		    NULL; q != NULL; q = TAILQ_NEXT(q, entry)) {
			len = strlen(q->name);
			if (strcmp(hn, q->name) == 0 || (strncmp(hn, q->name,
			    len) == 0 && hn[len] == '.')) {
				guess = q;
				ndown = 1;
				break;
			}
			if (q->tun == NULL) {
				guess = q;
				ndown++;
			}
		}
		key_pub_text(h->pub, kt);
		if (guess != NULL && ndown == 1)
			snprintf(hint, sizeof(hint), "; if it is peer '%s' "
			    "(whose entry pins %s), put %s in that entry and "
			    "reload", guess->name, key_pub_text(guess->key, pt),
			    kt);
		else
			snprintf(hint, sizeof(hint), "; add it under 'peers:' "
			    "if it belongs to the cluster");
		log_warnx("%s: gateway %s presented key %s, which no 'peers:' "
		    "entry in %s pins; refusing the link%s", tun_label(tun),
		    hn, kt, gw->cfg->file, hint);
		snprintf(msg, msglen, "gateway key %s is not a peer of this "
		    "gateway", kt);
		return -1;
	}
	tun_set_ops(tun, &gw_peer_ops, p);
	/* Ours is not verified yet: its first ANNOUNCE will say so. */
	if (p->pending != NULL) {
		struct tun *old = p->pending;

		p->pending = NULL;
		gw_peer_orphan(old, "replaced by a newer attempt");
	}
	p->pending = tun;
	p->pending_refused = 0;
	p->quiet_ms = mono_ms();
	log_debug("peer %s: admitted its key (%s); waiting for it to accept "
	    "ours", p->name, tun_label(tun));
	return 0;
}

/* The peer that claims a visitor's name, if any (one hop only). */
struct tun *
gw_peer_lookup(struct gw *gw, const char *name, uint8_t kind,
    const uint64_t *skip, size_t nskip, const char **peer_name,
    uint64_t *id)
{
	struct gw_peer_name	*n, *best = NULL;
	const char		*dot;
	char			 wild[NAME_MAX_LEN + 3];
	uint64_t		 now = mono_ms();
	double			 rtt, best_rtt = 0;
	size_t			 i;
	int			 pass, skipped;

	if (gw->peers == NULL || gw->stopping)
		return NULL;
	for (pass = 0; pass < 2 && best == NULL; pass++) {
		if (pass == 1) {
			if ((dot = strchr(name, '.')) == NULL)
				break;
			snprintf(wild, sizeof(wild), "*%s", dot);
			name = wild;
		}
		for (n = gw->peers->buckets[gw_peer_hash(name)]; n != NULL;
		    n = n->next) {
			if (strcmp(n->name, name) != 0 || !(n->kinds & kind) ||
			    n->expires < now || n->peer->tun == NULL ||
			    !n->peer->authed ||
			    !tun_is_ready(n->peer->tun) ||
			    tun_is_draining(n->peer->tun))
				continue;
			for (skipped = 0, i = 0; i < nskip; i++)
				skipped |= skip[i] == n->peer->id;
			if (skipped)
				continue;
			/* The nearest peer: lowest keepalive RTT. */
			rtt = tun_rtt_ms(n->peer->tun);
			if (best == NULL || (rtt >= 0 && rtt < best_rtt)) {
				best = n;
				best_rtt = rtt >= 0 ? rtt : 1e9;
			}
		}
	}
	if (best == NULL)
		return NULL;
	*peer_name = best->peer->name;
	*id = best->peer->id;
	return best->peer->tun;
}

/* Streams on peer links (both ways), for the end of a drain. */
unsigned
gw_peer_streams(struct gw *gw)
{
	struct gw_peer	*p;
	unsigned	 n = 0;

	if (gw->peers == NULL)
		return 0;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		if (p->tun != NULL)
			n += tun_stream_count(p->tun);
		if (p->pending != NULL)
			n += tun_stream_count(p->pending);
	}
	return n;
}

/* Local routes changed: tell the peers now rather than at the next tick. */
void
gw_peer_routes_changed(struct gw *gw)
{
	if (gw->peers != NULL && gw->peers->timer != NULL)
		event_active(gw->peers->timer, EV_TIMEOUT, 0);
}

static void
gw_peer_status_out(const char *name, uint8_t kinds, void *arg)
{
	(void)kinds;
	json_array_append_new(arg, json_string(name));
}

/* Seconds since a mono ms stamp, or null when it never happened. */
static json_t *
gw_peer_age(uint64_t then, uint64_t now)
{
	if (then == 0)
		return json_null();
	return json_real((double)(now - then) / 1000.0);
}

static const char *
gw_peer_state(const struct gw_peer *p)
{
	if (p->tun == NULL)
		return p->pending != NULL ? "handshake" : "down";
	if (!p->authed)
		return "handshake";
	return tun_is_draining(p->tun) ? "draining" : "up";
}

/* Every peer: its link, and the names announced each way. */
json_t *
gw_peer_status(struct gw *gw)
{
	struct gw_peer		*p;
	struct gw_peer_name	*n;
	json_t			*a, *o, *in, *out;
	char			 kt[KEY_TEXT_LEN];
	uint64_t		 now = mono_ms();
	double			 rtt;
	int			 up;

	if ((a = json_array()) == NULL)
		return NULL;
	if (gw->peers == NULL)
		return a;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		up = p->tun != NULL && p->authed;
		rtt = up ? tun_rtt_ms(p->tun) : -1;
		if ((in = json_array()) == NULL || (out = json_array()) ==
		    NULL) {
			json_decref(in);
			break;
		}
		TAILQ_FOREACH(n, &p->names, pentry)
			if (n->kinds != 0 && n->expires >= now)
				json_array_append_new(in, json_string(n->name));
		if (up)
			gw_route_foreach(gw->routes, gw_peer_status_out, out);
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, "
		    "s:I, s:o, s:o, s:o, s:o, s:o}",
		    "peer", p->name, "address", p->addr,
		    "key", key_pub_text(p->key, kt),
		    "link", p->dial != NULL ? "dial" : "accept",
		    "state", gw_peer_state(p),
		    "rtt_ms", rtt < 0 ? json_null() : json_real(rtt),
		    "up_s", up ? json_integer((json_int_t)((now - p->up_ms) /
		    1000)) : json_null(),
		    "streams", (json_int_t)(p->tun != NULL ?
		    tun_stream_count(p->tun) : 0),
		    "names_in", (json_int_t)json_array_size(in),
		    "names_out", (json_int_t)(up ? p->nout : 0),
		    "announced_in", in, "announced_out", out,
		    "last_announce_in_age_s", gw_peer_age(p->rx_ann_ms, now),
		    "last_announce_out_age_s", gw_peer_age(p->tx_ann_ms, now),
		    "last_error", p->last_error[0] != '\0' ?
		    json_string(p->last_error) : json_null());
		if (o != NULL)
			json_array_append_new(a, o);
	}
	return a;
}

/*
 * Add the names learned from peers to the route list of
 * gw_route_status(): a replica "via peer NAME" each, in a route of its
 * own when no local agent claims the name.  Whether a visitor would go
 * there is asked of the lookups visitors use, kind by kind.
 */
void
gw_peer_route_status(struct gw *gw, json_t *routes)
{
	struct gw_peer_name	*n;
	json_t			*index, *r, *rep, *reps;
	const char		*pname, *state, *why;
	char			 kinds[64], agent[96], buf[160];
	uint64_t		 now = mono_ms(), id;
	uint8_t			 kind;
	size_t			 i;
	double			 rtt;
	int			 local, mine, other;

	if (gw->peers == NULL || routes == NULL ||
	    (index = json_object()) == NULL)
		return;
	json_array_foreach(routes, i, r)
		json_object_set(index, json_string_value(json_object_get(r,
		    "name")), r);
	for (i = 0; i < GW_PEER_BUCKETS; i++) {
		for (n = gw->peers->buckets[i]; n != NULL; n = n->next) {
			if ((r = json_object_get(index, n->name)) == NULL) {
				r = json_pack("{s:s, s:s, s:[]}", "name",
				    n->name, "policy", "peer", "replicas");
				if (r == NULL)
					continue;
				json_array_append_new(routes, r);
				json_object_set(index, n->name, r);
			}
			local = mine = other = 0;
			for (kind = TUN_KIND_TLS; kind <= TUN_KIND_HTTP;
			    kind <<= 1) {
				if (!(n->kinds & kind))
					continue;
				if (gw_route_lookup(gw->routes, n->name, kind,
				    NULL, 0) != NULL)
					local = 1;
				else if (gw_peer_lookup(gw, n->name, kind,
				    NULL, 0, &pname, &id) == NULL)
					continue;
				else if (id == n->peer->id)
					mine = 1;
				else
					other = 1;
			}
			buf[0] = '\0';
			why = buf;
			if (n->expires < now || n->kinds == 0) {
				state = "down";
				why = "announcement expired";
			} else if (n->peer->tun == NULL || !n->peer->authed) {
				state = "down";
				why = "no link to that peer";
			} else if (tun_is_draining(n->peer->tun)) {
				state = "draining";
				why = "the peer is going away";
			} else if (!(n->kinds & (TUN_KIND_TLS |
			    TUN_KIND_HTTP))) {
				state = "acme";
				why = "answers ACME validation only";
			} else if (mine) {
				state = "active";
				rtt = tun_rtt_ms(n->peer->tun);
				if (rtt >= 0)
					snprintf(buf, sizeof(buf), "no local "
					    "replica: nearest peer (rtt %.3f "
					    "ms)", rtt);
				else
					why = "no local replica: nearest peer";
			} else if (local) {
				state = "standby";
				why = "a local replica comes first";
			} else if (other) {
				state = "standby";
				why = "another peer is nearer";
			} else {
				state = "standby";
				why = "";
			}
			snprintf(agent, sizeof(agent), "via peer %s",
			    n->peer->name);
			rep = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}",
			    "agent", agent, "peer", n->peer->name,
			    "kinds", tun_kinds_text(n->kinds, kinds,
			    sizeof(kinds)), "state", state, "why", why,
			    "streams", (json_int_t)(n->peer->tun != NULL ?
			    tun_stream_count(n->peer->tun) : 0),
			    "expires_in_s", n->expires >= now ?
			    json_real((double)(n->expires - now) / 1000.0) :
			    json_null());
			if (rep != NULL && (reps = json_object_get(r,
			    "replicas")) != NULL)
				json_array_append_new(reps, rep);
			else
				json_decref(rep);
		}
	}
	json_decref(index);
}

static struct gw_peer *
gw_peer_by_key(struct gw *gw, const uint8_t *key)
{
	struct gw_peer	*p;

	if (gw->peers == NULL)
		return NULL;
	TAILQ_FOREACH(p, &gw->peers->list, entry)
		if (sodium_memcmp(p->key, key, KEY_PUB_LEN) == 0)
			return p;
	return NULL;
}

static void
gw_peer_dialed(int fd, const char *addr, void *arg)
{
	struct gw_peer			*p = arg;
	struct gw			*gw = p->gw;
	struct tun_params		 tp;
	struct tun			*tun;
	char				 label[128];
	SSL				*ssl;

	if ((ssl = SSL_new(gw->peers->client_ctx)) == NULL) {
		close(fd);
		dial_later(p->dial, "TLS setup failed");
		return;
	}
	snprintf(label, sizeof(label), "peer=%s addr=%s", p->name, addr);
	gw_tun_params(gw, &tp, TUN_ROLE_PEER, label);
	if ((tun = tun_new(gw->base, fd, ssl, 0, &tp, &gw_peer_ops, p)) ==
	    NULL) {
		dial_later(p->dial, "out of memory");
		return;
	}
	/* The link counts once the peer's HELLO verifies (authed). */
	if (p->tun != NULL && p->tun != tun)
		tun_close(p->tun, "replaced by a new link");
	p->tun = tun;
	p->authed = 0;
}

/* Both sides verified each other's key: this is the link now. */
static void
gw_peer_link(struct gw_peer *p, struct tun *tun)
{
	if (p->tun != NULL && p->tun != tun) {
		struct tun *old = p->tun;

		log_info("peer %s: new link replaces the old one", p->name);
		/* Its names stay until the new link's full set ends. */
		p->tun = NULL;
		gw_peer_orphan(old, "replaced by a new link");
	}
	if (p->pending == tun)
		p->pending = NULL;
	p->tun = tun;
	p->authed = 1;
	p->up_ms = mono_ms();
	p->quiet_logged = 0;
	p->last_error[0] = '\0';
	log_info("peer %s: link up (%s)", p->name, tun_label(tun));
	gw_peer_routes_changed(p->gw);
}

/* Hand a link to nobody and close it; its streams end through gw_fwd. */
static void
gw_peer_orphan(struct tun *tun, const char *why)
{
	tun_set_ops(tun, &gw_peer_orphan_ops, NULL);
	tun_close(tun, why);
}

/* The dialer's side: the acceptor admitted us and sent its HELLO. */
static int
gw_peer_authed(struct tun *tun, const struct tun_hello *h, char *msg,
    size_t msglen, void *arg)
{
	struct gw_peer	*p = arg, *other;
	char		 got[KEY_TEXT_LEN], want[KEY_TEXT_LEN], hint[160];

	if (sodium_memcmp(h->pub, p->key, KEY_PUB_LEN) != 0) {
		key_pub_text(h->pub, got);
		key_pub_text(p->key, want);
		hint[0] = '\0';
		if ((other = gw_peer_by_key(p->gw, h->pub)) != NULL)
			snprintf(hint, sizeof(hint), " (that is the key of "
			    "peer '%s': are the two entries' addresses "
			    "swapped?)", other->name);
		/* Logged once, with the retry delay, when the link closes. */
		snprintf(p->refusal, sizeof(p->refusal), "refusing the link: "
		    "it presented key %s, but the 'peers:' entry '%s' in %s "
		    "pins %s%s; if that gateway's key changed, put its new "
		    "key in that entry and reload", got, p->name,
		    p->gw->cfg->file, want, hint);
		snprintf(msg, msglen, "your key is not the one pinned for you "
		    "there (%s)", want);
		return -1;
	}
	dial_reset(p->dial);
	gw_peer_link(p, tun);
	return 0;
}

static void
gw_peer_frame(struct tun *tun, const struct tun_frame *f, void *arg)
{
	struct gw_peer		*p = arg;
	struct gw_peers		*ps = p->gw->peers;
	struct gw_peer_name	*n;
	struct tun_claim	 c;
	uint32_t		 ttl;
	uint64_t		 now = mono_ms();
	size_t			 off = 0;
	unsigned		 h;
	int			 r;

	if (f->type != TUN_ANNOUNCE)
		return;
	/* The dialer announces only once it has accepted our key. */
	if (tun == p->pending)
		gw_peer_link(p, tun);
	if (tun != p->tun)
		return;
	p->rx_ann_ms = now;
	if (f->flags & TUN_F_START)
		p->gen++;
	while ((r = tun_announce_parse(f, &ttl, &off, &c)) == 1) {
		h = gw_peer_hash(c.name);
		for (n = ps->buckets[h]; n != NULL; n = n->next)
			if (n->peer == p && strcmp(n->name, c.name) == 0)
				break;
		if (n == NULL) {
			if (c.kinds == 0)
				continue;
			if (ps->nnames >= GW_PEER_MAX_NAMES ||
			    p->nnames >= GW_PEER_MAX_PEER_NAMES) {
				log_warnx("peer %s: announces more names than "
				    "kept (%u per peer, %u in all); ignoring %s",
				    p->name, GW_PEER_MAX_PEER_NAMES,
				    GW_PEER_MAX_NAMES, c.name);
				continue;
			}
			if ((n = calloc(1, sizeof(*n))) == NULL)
				continue;
			snprintf(n->name, sizeof(n->name), "%s", c.name);
			n->peer = p;
			n->next = ps->buckets[h];
			ps->buckets[h] = n;
			TAILQ_INSERT_TAIL(&p->names, n, pentry);
			ps->nnames++;
			p->nnames++;
		}
		n->kinds = c.kinds;
		n->gen = p->gen;
		/* Soft state: gone unless announced again in time. */
		n->expires = c.kinds != 0 ? now + ttl : 0;
	}
	if (r == -1) {
		log_warnx("peer %s: malformed ANNOUNCE", p->name);
		return;
	}
	/* The end of a full set: what it did not list is withdrawn. */
	if (f->flags & TUN_F_END)
		gw_peer_forget(ps, p, p->gen);
}

/* A visitor forwarded by a peer: to a local agent only. */
static void
gw_peer_open(struct tun *tun, struct tun_stream *s, const struct tun_open *o,
    void *arg)
{
	struct gw_peer	*p = arg;

	(void)tun;
	gw_fwd_from_peer(p->gw, s, o, p->name);
}

static void
gw_peer_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	struct gw_peer	*p = arg;
	char		 kt[KEY_TEXT_LEN];

	if (tun == p->pending) {
		/* We admitted it, it did not admit us. */
		p->pending_refused = 1;
		snprintf(p->last_error, sizeof(p->last_error), "it refused "
		    "our key %s: %s", key_pub_text(p->gw->key.pub, kt),
		    r->msg);
		log_warnx("peer %s (%s) refused the link: %s; this gateway's "
		    "key is %s: the 'peers:' entry for this gateway in "
		    "%s's config must pin it", p->name, tun_label(tun),
		    r->msg, kt, p->name);
		return;
	}
	log_info("peer %s is going away: %s", p->name, r->msg);
}

static void
gw_peer_closed(struct tun *tun, const char *reason, void *arg)
{
	struct gw_peer	*p = arg;
	char		 why[600], rtt[32], kt[KEY_TEXT_LEN];
	size_t		 rlen = strlen("refused by peer: ");

	if (tun == p->pending) {
		p->pending = NULL;
		if (!p->pending_refused && !p->gw->stopping)
			log_info("peer %s: link from %s closed before it "
			    "accepted our key: %s", p->name, tun_label(tun),
			    reason);
		return;
	}
	if (p->tun != tun)
		return;		/* an older link, already replaced */
	p->tun = NULL;
	gw_peer_forget(p->gw->peers, p, UINT64_MAX);
	if (p->refusal[0] != '\0')
		snprintf(why, sizeof(why), "%s", p->refusal);
	else if (!p->authed && strncmp(reason, "refused by peer: ",
	    rlen) == 0 && strstr(reason, key_pub_text(p->gw->key.pub,
	    kt)) != NULL)
		snprintf(why, sizeof(why), "it does not know our key %s; in "
		    "%s's config, the 'peers:' entry for this gateway must "
		    "pin it", kt, p->name);
	else if (!p->authed && strncmp(reason, "refused by peer: ",
	    rlen) == 0)
		snprintf(why, sizeof(why), "it refused the link: %s",
		    reason + rlen);
	else
		snprintf(why, sizeof(why), "link %s: %s (last %s)", p->authed ?
		    "lost" : "failed", reason, tun_rtt_text(tun, rtt,
		    sizeof(rtt)));
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	p->refusal[0] = '\0';
	p->authed = 0;
	p->up_ms = p->rx_ann_ms = p->tx_ann_ms = 0;
	p->quiet_ms = mono_ms();
	p->nout = 0;
	if (p->dial != NULL && !p->gw->stopping)
		dial_later(p->dial, why);
	else
		log_info("peer %s: %s", p->name, why);
}

/* Drop names of p older than gen (all of them: UINT64_MAX; 0: all). */
static void
gw_peer_forget(struct gw_peers *ps, struct gw_peer *p, uint64_t gen)
{
	struct gw_peer_name	*n, *next;

	for (n = TAILQ_FIRST(&p->names); n != NULL; n = next) {
		next = TAILQ_NEXT(n, pentry);
		if (gen == 0 || gen == UINT64_MAX || n->gen < gen)
			gw_peer_name_free(ps, n);
	}
}

/* Unlink a learned name from its hash chain and its peer's list. */
static void
gw_peer_name_free(struct gw_peers *ps, struct gw_peer_name *n)
{
	struct gw_peer_name	**pp;

	for (pp = &ps->buckets[gw_peer_hash(n->name)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	TAILQ_REMOVE(&n->peer->names, n, pentry);
	ps->nnames--;
	n->peer->nnames--;
	free(n);
}

static void
gw_peer_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw		*gw = arg;
	struct gw_peer		*p;
	struct gw_peer_name	*n, *next;
	uint64_t		 now = mono_ms();

	(void)fd;
	(void)ev;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		if (p->tun != NULL && p->authed)
			gw_peer_announce(p);
		gw_peer_quiet(gw, p, now);
	}
	/* Expire what peers stopped announcing. */
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		for (n = TAILQ_FIRST(&p->names); n != NULL; n = next) {
			next = TAILQ_NEXT(n, pentry);
			if (n->expires < now)
				gw_peer_name_free(gw->peers, n);
		}
	}
}

/*
 * A peer we wait for that never dials: with a wrong key pinned on
 * either side, both may think the other dials, and nothing at all
 * would be logged.  Say so once per quiet spell.
 */
static void
gw_peer_quiet(struct gw *gw, struct gw_peer *p, uint64_t now)
{
	char		kt[KEY_TEXT_LEN], pt[KEY_TEXT_LEN];
	uint64_t	limit = 3 * (uint64_t)gw->cfg->dead_peer_ms;

	if (p->dial != NULL || p->tun != NULL || p->pending != NULL ||
	    p->quiet_logged || gw->stopping || now - p->quiet_ms < limit)
		return;
	p->quiet_logged = 1;
	log_warnx("peer %s: no link for %llus; with the key pinned for it "
	    "in %s (%s), it is the side that dials: check that it runs, "
	    "reaches our tunnel listener and pins our key %s, and that the "
	    "key pinned here is its own", p->name,
	    (unsigned long long)((now - p->quiet_ms) / 1000), gw->cfg->file,
	    key_pub_text(p->key, pt), key_pub_text(gw->key.pub, kt));
}

struct gw_peer_ann {
	struct gw_peer	*p;
	uint8_t		 buf[TUN_MAX_PAYLOAD];
	size_t		 len;
	uint32_t	 ttl;
	unsigned	 count;
	int		 first;
};

static void
gw_peer_ann_flush(struct gw_peer_ann *a, int last)
{
	uint8_t	flags = (a->first ? TUN_F_START : 0) | (last ? TUN_F_END : 0);

	tun_send_frame(a->p->tun, TUN_ANNOUNCE, flags, a->buf, a->len);
	a->first = 0;
	a->len = tun_announce_begin(a->buf, a->ttl);
}

static void
gw_peer_ann_add(const char *name, uint8_t kinds, void *arg)
{
	struct gw_peer_ann	*a = arg;
	size_t			 n;

	if ((n = tun_announce_add(a->buf, a->len, name, kinds)) == 0) {
		gw_peer_ann_flush(a, 0);
		n = tun_announce_add(a->buf, a->len, name, kinds);
	}
	a->len = n;
	a->count++;
}

/* The full set of names our local agents serve, in as many frames. */
static void
gw_peer_announce(struct gw_peer *p)
{
	struct gw_peer_ann	*a;

	if (p->tun == NULL || !tun_is_ready(p->tun) || p->gw->stopping)
		return;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return;
	a->p = p;
	a->ttl = 3 * p->gw->cfg->announce_ms;
	a->first = 1;
	a->len = tun_announce_begin(a->buf, a->ttl);
	gw_route_foreach(p->gw->routes, gw_peer_ann_add, a);
	gw_peer_ann_flush(a, 1);
	p->nout = a->count;
	p->tx_ann_ms = mono_ms();
	free(a);
}

static void
gw_peer_orphan_closed(struct tun *tun, const char *reason, void *arg)
{
	(void)tun;
	(void)reason;
	(void)arg;
}

static unsigned
gw_peer_hash(const char *s)
{
	return name_hash(s) % GW_PEER_BUCKETS;
}
