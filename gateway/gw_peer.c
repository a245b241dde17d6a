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
 *
 * What a peer announces is believed only as far as the operator allows:
 * a name counts (takes visitors, ACME probes) only when the peer's
 * 'hostnames' in our config cover it.  Other names are kept, bounded as
 * any, so that the status can show them and a reload can grant them at
 * once, but no visitor goes there.  And however long a TTL a peer
 * sends, a name lasts at most a few of its full-set intervals.
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
#include "ntab.h"

/*
 * What we announce: a full set to each peer every few periods, and in
 * between only what changed (incremental, coalesced over a short
 * window).  A full set may take about this many bytes per announce
 * period; a larger set is sent every so many periods instead, with a
 * TTL three times that interval, so a large table costs a bounded rate.
 */
#define GW_PEER_FULL_BUDGET	(64 * 1024)
#define GW_PEER_COALESCE_US	5000	/* changes: at most this often */
#define GW_PEER_SYNC_SHARE	20	/* and a sync in 1/20 of that */
/*
 * A peer's TTL is cut to this many of its full-set intervals, as we
 * would send them (GW_PEER_FULL_BUDGET, our timeouts.announce) for a
 * set of the size it last sent.  A sender gives three; four keep a name
 * across two lost sets and a peer whose period is somewhat longer than
 * ours, yet a peer that stops refreshing (or asks for days) loses its
 * names within seconds, as it would by closing the link.
 */
#define GW_PEER_TTL_SETS	4

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
	int			 in_set;	/* between its START and END */
	unsigned		 nnames;
	unsigned		 refused;	/* over the limit, unlogged */
	unsigned		 untrusted_new;	/* names not believed, unlogged */
	char			 untrusted_first[NAME_MAX_LEN + 1];
	size_t			 set_bytes;	/* its last full set's size */
	size_t			 set_acc;	/* the one being read */
	uint64_t		 full_due_ms;	/* our next full set; 0: now */
	uint64_t		 up_ms;		/* mono ms the link came up */
	uint64_t		 rx_ann_ms;	/* its last ANNOUNCE, 0: none */
	uint64_t		 tx_ann_ms;	/* ours, 0: none */
	char			 refusal[512];	/* why we refused its HELLO */
	char			 last_error[600];	/* why it went down */
	uint64_t		 quiet_ms;	/* no link nor attempt since */
	int			 quiet_logged;
	TAILQ_HEAD(, gw_peer_name) names;	/* this peer's, for forget */
	TAILQ_ENTRY(gw_peer)	 entry;
	/* Where it says it is (its CLUSTER on this link), for agents. */
	struct tun_gw_info	 where;
	int			 has_where;
};

/*
 * A name a peer said it can serve, until expires; or (peer NULL) one of
 * ours as we last announced it.
 */
struct gw_peer_name {
	struct ntab_entry	 te;		/* hash: name_hash() */
	TAILQ_ENTRY(gw_peer_name) pentry;	/* its peer's list, or ours */
	struct gw_peer		*peer;
	uint64_t		 seen;		/* mono ms, last announced */
	uint32_t		 ttl;		/* as it said (see expiry) */
	uint64_t		 gen;
	uint8_t			 kinds;
	uint8_t			 trust;		/* enum gw_peer_trust */
	char			 name[];
};
TAILQ_HEAD(gw_peer_name_list, gw_peer_name);

#define GW_PEER_NAME(e)	NTAB_ITEM(e, struct gw_peer_name, te)

struct gw_peers {
	TAILQ_HEAD(, gw_peer)	 list;
	struct ntab		 in;		/* learned from peers */
	struct ntab		 out;		/* ours, as announced */
	struct gw_peer_name_list outlist;	/* the same, in order */
	uint64_t		 out_gen;	/* of the last full sync */
	int			 out_synced;	/* once: a full sync */
	size_t			 out_bytes;	/* a full set's entries */
	struct event		*timer;		/* full sets and expiry */
	unsigned		 timer_ms;	/* its period */
	struct event		*change;	/* one shot: changes */
	uint64_t		 change_us;	/* when it last ran */
	uint64_t		 sync_us;	/* the last sync took */
	SSL_CTX			*client_ctx;
};

/* ANNOUNCE frames being built, kept to send to one peer or several. */
struct gw_peer_ann {
	uint8_t		*out;		/* u8 flags, u16 len, payload */
	size_t		 outlen, outcap;
	size_t		 last;		/* offset of the last record */
	uint8_t		 buf[TUN_MAX_PAYLOAD];
	size_t		 len;
	uint32_t	 ttl;
	unsigned	 count;		/* entries in all frames */
	unsigned	 nframes;
	int		 full;		/* START first, END last */
};

static int	gw_peer_add(struct gw *, const struct cfg_peer *, char *,
		    size_t);
static void	gw_peer_remove(struct gw *, struct gw_peer *);
static void	gw_peer_orphan_closed(struct tun *, const char *, void *);
static void	gw_peer_dialed(int, const char *, void *);
static void	gw_peer_link(struct gw_peer *, struct tun *);
static void	gw_peer_orphan(struct tun *, const char *);
static void	gw_peer_timer_cb(evutil_socket_t, short, void *);
static void	gw_peer_change_cb(evutil_socket_t, short, void *);
static void	gw_peer_announce(struct gw *, int);
static unsigned	gw_peer_full_periods(struct gw_peers *);
static int	gw_peer_full_due(struct gw *, int, uint64_t);
static void	gw_peer_sync(struct gw *, struct gw_peer_ann *, int);
static void	gw_peer_sync_one(const char *, uint8_t, void *);
static void	gw_peer_ann_init(struct gw_peer_ann *, uint32_t, int);
static void	gw_peer_ann_add(struct gw_peer_ann *, const char *, uint8_t);
static void	gw_peer_ann_flush(struct gw_peer_ann *);
static void	gw_peer_ann_finish(struct gw_peer_ann *);
static void	gw_peer_ann_send(struct gw_peer_ann *, struct gw_peer *);
static void	gw_peer_quiet(struct gw *, struct gw_peer *, uint64_t);
static void	gw_peer_refused(struct gw_peer *);
static void	gw_peer_forget(struct gw_peers *, struct gw_peer *, uint64_t);
static void	gw_peer_name_free(struct gw_peers *, struct gw_peer_name *);
static struct gw_peer_name *gw_peer_table_find(struct ntab *,
		    unsigned, const struct gw_peer *, const char *);
static struct gw_peer *gw_peer_by_key(struct gw *, const uint8_t *);
static const struct cfg_peer *gw_peer_cfg(struct gw *, const struct gw_peer *);
static uint8_t	gw_peer_trust(const struct cfg_peer *, const char *);
static void	gw_peer_retrust(struct gw *, struct gw_peer *);
static void	gw_peer_untrusted(struct gw_peer *);
static void	gw_peer_warn_hostnames(struct gw *, const char *);
static uint64_t	gw_peer_expiry(struct gw *, const struct gw_peer_name *);

static int	gw_peer_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	gw_peer_frame(struct tun *, const struct tun_frame *, void *);
static void	gw_peer_where(struct gw_peer *, const struct tun_frame *);
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
	TAILQ_INIT(&ps->outlist);
	for (i = 0; i < cfg->npeers; i++)
		if (gw_peer_add(gw, &cfg->peers[i], err, errlen) == -1)
			return -1;
	gw_peer_warn_hostnames(gw, "");
	return 0;
}

/*
 * A peer entry without 'hostnames' (a config from before they existed)
 * makes the link, but the peer takes nothing from us: say so loudly, at
 * every start and reload, rather than lose its visitors quietly.
 */
static void
gw_peer_warn_hostnames(struct gw *gw, const char *when)
{
	const struct cfg_peer	*cp;
	size_t			 i;

	for (i = 0; i < gw->cfg->npeers; i++) {
		cp = &gw->cfg->peers[i];
		if (cp->has_hostnames)
			continue;
		log_warnx("%speer %s has no 'hostnames' in %s: no name it "
		    "announces is believed, so no visitor or ACME probe goes "
		    "to it; list the names it serves under peers[%zu]."
		    "hostnames (an empty list silences this)", when,
		    cp->name, gw->cfg->file, i);
	}
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
	/* The TTL we announce follows announce_ms: full sets again now. */
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		p->full_due_ms = 0;
		/* A name granted or taken away counts at once. */
		gw_peer_retrust(gw, p);
	}
	gw_peer_warn_hostnames(gw, "reload: ");
	/* ... and the period follows it too. */
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
		/* From now on the announcements take the changes. */
		gw_route_track(gw->routes, 1);
	}
	/* Not the periodic timer: activating that one would delay it. */
	if (ps->change == NULL && (ps->change = evtimer_new(gw->base,
	    gw_peer_change_cb, gw)) == NULL)
		goto oom;
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
	struct gw_peers		*ps = gw->peers;
	struct gw_peer		*p;
	struct gw_peer_name	*n;

	if (ps == NULL)
		return;
	while ((p = TAILQ_FIRST(&ps->list)) != NULL)
		gw_peer_remove(gw, p);
	if (ps->timer != NULL)
		event_free(ps->timer);
	if (ps->change != NULL)
		event_free(ps->change);
	while ((n = TAILQ_FIRST(&ps->outlist)) != NULL)
		gw_peer_name_free(ps, n);
	ntab_clear(&ps->in);
	ntab_clear(&ps->out);
	gw_route_track(gw->routes, 0);
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
    enum gw_peer_trust min_trust, const uint64_t *skip, size_t nskip,
    const char **peer_name, uint64_t *id)
{
	struct gw_peer_name	*n, *best = NULL;
	struct ntab_entry	*e;
	const char		*dot;
	char			 wild[NAME_MAX_LEN + 3];
	uint64_t		 now = mono_ms();
	double			 rtt, best_rtt = 0;
	size_t			 i;
	int			 pass, skipped;

	if (gw->peers == NULL || gw->stopping)
		return NULL;
	if (min_trust < GW_PEER_TRUST_SOME)
		min_trust = GW_PEER_TRUST_SOME;	/* never the unbelieved */
	for (pass = 0; pass < 2 && best == NULL; pass++) {
		if (pass == 1) {
			if ((dot = strchr(name, '.')) == NULL)
				break;
			snprintf(wild, sizeof(wild), "*%s", dot);
			name = wild;
		}
		for (e = ntab_chain(&gw->peers->in, name_hash(name));
		    e != NULL; e = e->next) {
			n = GW_PEER_NAME(e);
			if (strcmp(n->name, name) != 0 || !(n->kinds & kind) ||
			    n->trust < min_trust ||
			    gw_peer_expiry(gw, n) < now ||
			    n->peer->tun == NULL ||
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

/*
 * Local routes changed: tell the peers soon rather than at the next
 * tick.  A burst of changes makes one announcement: the first at once
 * (next loop pass), the next no sooner than a short window later, and
 * the window grows with the cost of comparing a large table.
 */
void
gw_peer_routes_changed(struct gw *gw)
{
	struct gw_peers	*ps = gw->peers;
	struct timeval	 tv;
	uint64_t	 now, at, window;

	if (ps == NULL || ps->change == NULL ||
	    evtimer_pending(ps->change, NULL))
		return;
	now = mono_us();
	window = GW_PEER_COALESCE_US;
	if (window < GW_PEER_SYNC_SHARE * ps->sync_us)
		window = GW_PEER_SYNC_SHARE * ps->sync_us;
	at = ps->change_us + window;
	if (ps->change_us == 0 || at <= now)
		at = now;
	tv.tv_sec = (at - now) / 1000000;
	tv.tv_usec = (at - now) % 1000000;
	evtimer_add(ps->change, &tv);
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
	const struct cfg_peer	*cp;
	json_t			*a, *o, *in, *out, *refused, *hosts;
	char			 kt[KEY_TEXT_LEN];
	uint64_t		 now = mono_ms();
	double			 rtt;
	size_t			 i;
	int			 up;

	if ((a = json_array()) == NULL)
		return NULL;
	if (gw->peers == NULL)
		return a;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		up = p->tun != NULL && p->authed;
		rtt = up ? tun_rtt_ms(p->tun) : -1;
		out = refused = NULL;
		if ((in = json_array()) == NULL || (out = json_array()) ==
		    NULL || (refused = json_array()) == NULL) {
			json_decref(in);
			json_decref(out);
			break;
		}
		/* Believed names, and those its grant does not cover. */
		TAILQ_FOREACH(n, &p->names, pentry)
			if (n->kinds != 0 && gw_peer_expiry(gw, n) >= now)
				json_array_append_new(n->trust >=
				    GW_PEER_TRUST_SOME ? in : refused,
				    json_string(n->name));
		cp = gw_peer_cfg(gw, p);
		hosts = json_null();
		if (cp != NULL && cp->has_hostnames) {
			hosts = json_array();
			for (i = 0; hosts != NULL && i < cp->npatterns; i++)
				json_array_append_new(hosts,
				    json_string(cp->patterns[i]));
		}
		/* What it holds from us: our last full set, and since. */
		if (up && p->full_due_ms != 0)
			TAILQ_FOREACH(n, &gw->peers->outlist, pentry)
				json_array_append_new(out,
				    json_string(n->name));
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, "
		    "s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:o}",
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
		    "names_out", (json_int_t)json_array_size(out),
		    "announced_in", in, "announced_out", out,
		    "last_announce_in_age_s", gw_peer_age(p->rx_ann_ms, now),
		    "last_announce_out_age_s", gw_peer_age(p->tx_ann_ms, now),
		    "last_error", p->last_error[0] != '\0' ?
		    json_string(p->last_error) : json_null(),
		    "hostnames", hosts,
		    "trust", hosts == NULL || json_is_null(hosts) ?
		    "none: no 'hostnames' for this peer in the configuration"
		    : json_array_size(hosts) == 0 ? "none: 'hostnames' is "
		    "empty" : "names covered by 'hostnames'",
		    "names_refused", (json_int_t)json_array_size(refused),
		    "refused_in", refused);
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
	struct ntab_entry	*e;
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
	for (e = ntab_first(&gw->peers->in); e != NULL;
	    e = ntab_next(&gw->peers->in, e)) {
		n = GW_PEER_NAME(e);
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
			    GW_PEER_TRUST_SOME, NULL, 0, &pname,
			    &id) == NULL)
				continue;
			else if (id == n->peer->id)
				mine = 1;
			else
				other = 1;
		}
		buf[0] = '\0';
		why = buf;
		if (n->trust < GW_PEER_TRUST_SOME) {
			state = "refused";
			snprintf(buf, sizeof(buf), "not granted to peer "
			    "%s: no pattern of its 'hostnames' covers "
			    "this name", n->peer->name);
		} else if (gw_peer_expiry(gw, n) < now ||
		    n->kinds == 0) {
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
		    "expires_in_s", gw_peer_expiry(gw, n) >= now ?
		    json_real((double)(gw_peer_expiry(gw, n) - now) /
		    1000.0) : json_null());
		if (rep != NULL && (reps = json_object_get(r,
		    "replicas")) != NULL)
			json_array_append_new(reps, rep);
		else
			json_decref(rep);
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
	p->full_due_ms = 0;
	log_info("peer %s: link up (%s)", p->name, tun_label(tun));
	gw_peer_routes_changed(p->gw);
	p->has_where = 0;
	gw_cluster_send_peer(p->gw, tun);
	gw_tun_cluster_changed(p->gw);
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

/*
 * A peer's CLUSTER: where it is.  Only its own entry counts (a gateway
 * speaks for itself); a malformed one is logged and the last kept.
 */
static void
gw_peer_where(struct gw_peer *p, const struct tun_frame *f)
{
	struct tun_gw_info	*v;
	size_t			 n, i;

	if ((v = calloc(TUN_CLUSTER_GW_MAX, sizeof(*v))) == NULL)
		return;
	if (tun_cluster_parse(f, v, &n) == -1) {
		log_warnx("peer %s: malformed CLUSTER frame ignored", p->name);
		free(v);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!(v[i].flags & TUN_CF_SELF) ||
		    memcmp(v[i].pub, p->key, KEY_PUB_LEN) != 0)
			continue;
		if (!p->has_where || memcmp(&p->where, &v[i],
		    sizeof(v[i])) != 0) {
			p->where = v[i];
			p->has_where = 1;
			gw_tun_cluster_changed(p->gw);
		}
		break;
	}
	free(v);
}

void
gw_peer_cluster_resend(struct gw *gw)
{
	struct gw_peer	*p;

	if (gw->peers == NULL)
		return;
	TAILQ_FOREACH(p, &gw->peers->list, entry)
		if (p->tun != NULL && p->authed && tun_is_ready(p->tun))
			gw_cluster_send_peer(gw, p->tun);
}

size_t
gw_peer_cluster(struct gw *gw, struct tun_gw_info *out, size_t max)
{
	struct gw_peer	*p;
	size_t		 n = 0;

	if (gw->peers == NULL)
		return 0;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		if (p->tun == NULL || !p->authed || n == max)
			continue;
		if (p->has_where)
			out[n] = p->where;
		else {
			/* An older gateway: live, place unknown. */
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(out[n].pub, p->key, KEY_PUB_LEN);
			snprintf(out[n].name, sizeof(out[n].name), "%s",
			    p->name);
		}
		out[n++].flags = 0;
	}
	return n;
}

/*
 * A peer's ANNOUNCE: a frame of a full set, or changes (no flag outside
 * a set).  Each entry refreshes only its own name; the END of a full set
 * withdraws what the set did not list.
 */
static void
gw_peer_frame(struct tun *tun, const struct tun_frame *f, void *arg)
{
	struct gw_peer		*p = arg;
	struct gw_peers		*ps = p->gw->peers;
	struct gw_peer_name	*n;
	struct tun_claim	 c;
	const struct cfg_peer	*cp;
	uint32_t		 ttl;
	uint64_t		 now = mono_ms();
	size_t			 off = 0, nl;
	unsigned		 h;
	int			 r;

	if (f->type != TUN_ANNOUNCE && f->type != TUN_CLUSTER)
		return;
	/* The dialer sends these only once it has accepted our key. */
	if (tun == p->pending)
		gw_peer_link(p, tun);
	if (tun != p->tun)
		return;
	if (f->type == TUN_CLUSTER) {
		gw_peer_where(p, f);
		return;
	}
	p->rx_ann_ms = now;
	if (f->flags & TUN_F_START) {
		gw_peer_refused(p);	/* from updates: a line of their own */
		gw_peer_untrusted(p);
		p->gen++;
		p->in_set = 1;
		p->set_acc = 0;
	}
	cp = gw_peer_cfg(p->gw, p);
	while ((r = tun_announce_parse(f, &ttl, &off, &c)) == 1) {
		h = name_hash(c.name);
		/* The set's size, as the sender sizes its interval. */
		if (p->in_set && c.kinds != 0)
			p->set_acc += 2 + strlen(c.name);
		n = gw_peer_table_find(&ps->in, h, p, c.name);
		if (c.kinds == 0) {
			if (n != NULL)
				gw_peer_name_free(ps, n);
			continue;
		}
		if (n == NULL) {
			/* Counted, and logged once per announcement. */
			if (p->nnames >= p->gw->cfg->names_per_peer) {
				p->refused++;
				continue;
			}
			nl = strlen(c.name);
			if ((n = calloc(1, sizeof(*n) + nl + 1)) == NULL)
				continue;
			memcpy(n->name, c.name, nl + 1);
			n->te.hash = h;
			n->peer = p;
			if (ntab_insert(&ps->in, &n->te) == -1) {
				free(n);
				continue;
			}
			TAILQ_INSERT_TAIL(&p->names, n, pentry);
			p->nnames++;
			n->trust = gw_peer_trust(cp, n->name);
			if (n->trust < GW_PEER_TRUST_SOME &&
			    p->untrusted_new++ == 0)
				snprintf(p->untrusted_first,
				    sizeof(p->untrusted_first), "%s", n->name);
		}
		n->kinds = c.kinds;
		n->gen = p->gen;
		/* Soft state: gone unless announced again in time. */
		n->seen = now;
		n->ttl = ttl;
	}
	if (r == -1) {
		log_warnx("peer %s: malformed ANNOUNCE", p->name);
		return;
	}
	/* The end of a full set: what it did not list is withdrawn. */
	if (f->flags & TUN_F_END) {
		gw_peer_forget(ps, p, p->gen);
		p->in_set = 0;
		p->set_bytes = p->set_acc;
		gw_peer_refused(p);
		gw_peer_untrusted(p);
	}
}

/* New names it announced that no 'hostnames' pattern covers: a line. */
static void
gw_peer_untrusted(struct gw_peer *p)
{
	if (p->untrusted_new == 0)
		return;
	log_warnx("peer %s announced %u name%s not granted to it (%s%s): "
	    "ignored; if it serves %s, add %s to its 'hostnames' in %s",
	    p->name, p->untrusted_new, p->untrusted_new == 1 ? "" : "s",
	    p->untrusted_first, p->untrusted_new > 1 ? ", ..." : "",
	    p->untrusted_new == 1 ? "it" : "them", p->untrusted_new == 1 ?
	    "the name" : "the names", p->gw->cfg->file);
	p->untrusted_new = 0;
}

/* Our config's entry for the peer (by key: the config is replaced on
 * reload, and nothing keeps a pointer into it). */
static const struct cfg_peer *
gw_peer_cfg(struct gw *gw, const struct gw_peer *p)
{
	size_t	i;

	for (i = 0; i < gw->cfg->npeers; i++)
		if (memcmp(gw->cfg->peers[i].key, p->key, KEY_PUB_LEN) == 0)
			return &gw->cfg->peers[i];
	return NULL;
}

/* How far the peer of entry cp is believed for name. */
static uint8_t
gw_peer_trust(const struct cfg_peer *cp, const char *name)
{
	size_t	i;

	if (cp == NULL)
		return GW_PEER_TRUST_NONE;
	for (i = 0; i < cp->npatterns; i++)
		if (name_pattern_covers(cp->patterns[i], name))
			return GW_PEER_TRUST_GRANT;
	/* A proof that name's DNS points at the peer would come here. */
	return GW_PEER_TRUST_NONE;
}

/* After a reload: what p announced, believed by the new grant. */
static void
gw_peer_retrust(struct gw *gw, struct gw_peer *p)
{
	const struct cfg_peer	*cp = gw_peer_cfg(gw, p);
	struct gw_peer_name	*n;

	TAILQ_FOREACH(n, &p->names, pentry)
		n->trust = gw_peer_trust(cp, n->name);
}

/*
 * When a name of a peer expires: when it said (ttl), but no later than
 * GW_PEER_TTL_SETS of its full-set intervals after it last said it.
 * The interval is the one we would use for a set of the size it last
 * sent (or is sending: a first set's names count it in full at END).
 */
static uint64_t
gw_peer_expiry(struct gw *gw, const struct gw_peer_name *n)
{
	const struct gw_peer	*p = n->peer;
	size_t			 bytes;
	uint64_t		 cap;

	bytes = p->set_bytes > p->set_acc ? p->set_bytes : p->set_acc;
	cap = (uint64_t)GW_PEER_TTL_SETS * (1 + bytes / GW_PEER_FULL_BUDGET) *
	    gw->cfg->announce_ms;
	return n->seen + (n->ttl < cap ? n->ttl : cap);
}

/* Names over the limit since the last report: one line for them all. */
static void
gw_peer_refused(struct gw_peer *p)
{
	if (p->refused == 0)
		return;
	log_warnx("peer %s: ignored %u names beyond limits.names_per_peer "
	    "(%u) in its announcement; raise the limit in %s if the "
	    "cluster serves that many", p->name, p->refused,
	    p->gw->cfg->names_per_peer, p->gw->cfg->file);
	p->refused = 0;
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
	p->has_where = 0;
	gw_peer_forget(p->gw->peers, p, UINT64_MAX);
	gw_tun_cluster_changed(p->gw);
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
	p->in_set = 0;
	p->refused = 0;
	p->untrusted_new = 0;
	p->set_bytes = p->set_acc = 0;
	p->full_due_ms = 0;
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

/* Unlink a name from its table and its list, and free it. */
static void
gw_peer_name_free(struct gw_peers *ps, struct gw_peer_name *n)
{
	if (n->peer != NULL) {
		ntab_remove(&ps->in, &n->te);
		TAILQ_REMOVE(&n->peer->names, n, pentry);
		n->peer->nnames--;
	} else {
		ntab_remove(&ps->out, &n->te);
		TAILQ_REMOVE(&ps->outlist, n, pentry);
		ps->out_bytes -= 2 + strlen(n->name);
	}
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
	gw_peer_announce(gw, 1);
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		gw_peer_quiet(gw, p, now);
		/* Refusals among changes: at most one line a period. */
		if (!p->in_set) {
			gw_peer_refused(p);
			gw_peer_untrusted(p);
		}
	}
	/* Expire what peers stopped announcing. */
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		for (n = TAILQ_FIRST(&p->names); n != NULL; n = next) {
			next = TAILQ_NEXT(n, pentry);
			if (gw_peer_expiry(gw, n) < now)
				gw_peer_name_free(gw->peers, n);
		}
	}
}

/* Local routes changed a moment ago (coalesced): announce the changes. */
static void
gw_peer_change_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw	*gw = arg;

	(void)fd;
	(void)ev;
	gw_peer_announce(gw, 0);
	gw->peers->change_us = mono_us();
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

/*
 * Bring our announced table up to date and tell every linked peer: the
 * changes to those that hold our last full set, a full set to those due
 * one (a new link, or the interval passed: tick).
 */
static void
gw_peer_announce(struct gw *gw, int tick)
{
	struct gw_peers		*ps = gw->peers;
	struct gw_peer		*p;
	struct gw_peer_ann	*delta = NULL, *full = NULL;
	struct gw_peer_name	*n;
	uint64_t		 now = mono_ms(), t0, period, every;

	if (gw->stopping)
		return;
	TAILQ_FOREACH(p, &ps->list, entry)
		if (p->tun == NULL || !p->authed || !tun_is_ready(p->tun))
			p->full_due_ms = 0;
	/* Without a link too: the changes are taken, so the route table
	 * keeps no name that went away, and a link that comes up gets a
	 * current full set. */
	period = gw->cfg->announce_ms;
	/* What changes say holds until the next full set, at the latest. */
	every = gw_peer_full_periods(ps) * period;
	if ((delta = calloc(1, sizeof(*delta))) == NULL)
		return;
	gw_peer_ann_init(delta, 3 * every, 0);
	t0 = mono_us();
	gw_peer_sync(gw, delta, gw_peer_full_due(gw, tick, now));
	gw_peer_ann_finish(delta);
	ps->sync_us = mono_us() - t0;
	TAILQ_FOREACH(p, &ps->list, entry) {
		if (p->tun == NULL || !p->authed || !tun_is_ready(p->tun))
			continue;
		if (p->full_due_ms != 0 && p->full_due_ms > now + every)
			p->full_due_ms = now + every;
		/* Due now, within half a period (the ticks' own jitter). */
		if (p->full_due_ms == 0 || (tick &&
		    p->full_due_ms <= now + period / 2)) {
			if (full == NULL) {
				if ((full = calloc(1, sizeof(*full))) == NULL)
					break;
				every = gw_peer_full_periods(ps) * period;
				gw_peer_ann_init(full, 3 * every, 1);
				TAILQ_FOREACH(n, &ps->outlist, pentry)
					gw_peer_ann_add(full, n->name,
					    n->kinds);
				gw_peer_ann_finish(full);
			}
			gw_peer_ann_send(full, p);
			p->full_due_ms = now + every;
		} else if (delta->count > 0)
			gw_peer_ann_send(delta, p);
	}
	free(delta->out);
	free(delta);
	if (full != NULL)
		free(full->out);
	free(full);
}

/* A full set every this many periods: about the budget per period. */
static unsigned
gw_peer_full_periods(struct gw_peers *ps)
{
	return 1 + ps->out_bytes / GW_PEER_FULL_BUDGET;
}

struct gw_peer_sync_arg {
	struct gw_peers		*ps;
	struct gw_peer_ann	*delta;
};

/*
 * Whether a peer gets a full set now (as gw_peer_announce decides): the
 * table is compared whole before it, so that whatever the changes missed
 * is repaired at least as often as full sets go out.
 */
static int
gw_peer_full_due(struct gw *gw, int tick, uint64_t now)
{
	struct gw_peer	*p;

	if (!gw->peers->out_synced)
		return 1;
	TAILQ_FOREACH(p, &gw->peers->list, entry) {
		if (p->tun == NULL || !p->authed || !tun_is_ready(p->tun))
			continue;
		if (p->full_due_ms == 0 || (tick &&
		    p->full_due_ms <= now + gw->cfg->announce_ms / 2))
			return 1;
	}
	return 0;
}

/*
 * Bring what we announced up to date, into delta (kinds 0 for names no
 * longer served): the names that changed since the last sync, and with
 * full the whole route table compared too.
 */
static void
gw_peer_sync(struct gw *gw, struct gw_peer_ann *delta, int full)
{
	struct gw_peers		*ps = gw->peers;
	struct gw_peer_sync_arg	 a;
	struct gw_peer_name	*n, *next;

	a.ps = ps;
	a.delta = delta;
	gw_route_changes(gw->routes, gw_peer_sync_one, &a);
	if (!full)
		return;
	ps->out_synced = 1;
	ps->out_gen++;
	gw_route_foreach(gw->routes, gw_peer_sync_one, &a);
	for (n = TAILQ_FIRST(&ps->outlist); n != NULL; n = next) {
		next = TAILQ_NEXT(n, pentry);
		if (n->gen != ps->out_gen) {
			gw_peer_ann_add(delta, n->name, 0);
			gw_peer_name_free(ps, n);
		}
	}
}

static void
gw_peer_sync_one(const char *name, uint8_t kinds, void *arg)
{
	struct gw_peer_sync_arg	*a = arg;
	struct gw_peers		*ps = a->ps;
	struct gw_peer_name	*n;
	unsigned		 h = name_hash(name);
	size_t			 nl;

	if ((n = gw_peer_table_find(&ps->out, h, NULL, name)) == NULL) {
		if (kinds == 0)
			return;		/* never announced */
		nl = strlen(name);
		/* Out of memory: not announced, tried again next time. */
		if ((n = calloc(1, sizeof(*n) + nl + 1)) == NULL)
			return;
		memcpy(n->name, name, nl + 1);
		n->te.hash = h;
		if (ntab_insert(&ps->out, &n->te) == -1) {
			free(n);
			return;
		}
		TAILQ_INSERT_TAIL(&ps->outlist, n, pentry);
		ps->out_bytes += 2 + nl;
	} else if (kinds == 0) {
		gw_peer_ann_add(a->delta, name, 0);
		gw_peer_name_free(ps, n);
		return;
	} else if (n->kinds == kinds) {
		n->gen = ps->out_gen;
		return;
	}
	n->kinds = kinds;
	n->gen = ps->out_gen;
	gw_peer_ann_add(a->delta, name, kinds);
}

static void
gw_peer_ann_init(struct gw_peer_ann *a, uint32_t ttl, int full)
{
	a->ttl = ttl;
	a->full = full;
	a->len = tun_announce_begin(a->buf, a->ttl);
}

static void
gw_peer_ann_add(struct gw_peer_ann *a, const char *name, uint8_t kinds)
{
	size_t	n;

	if ((n = tun_announce_add(a->buf, a->len, name, kinds)) == 0) {
		gw_peer_ann_flush(a);
		n = tun_announce_add(a->buf, a->len, name, kinds);
	}
	if (n == 0)
		return;
	a->len = n;
	a->count++;
}

/* Keep the frame built so far as a record, and start the next one. */
static void
gw_peer_ann_flush(struct gw_peer_ann *a)
{
	size_t	 need = 3 + a->len, cap;
	uint8_t	*out;

	if (a->outlen + need > a->outcap) {
		cap = a->outcap == 0 ? 4 * TUN_MAX_PAYLOAD : a->outcap;
		while (cap < a->outlen + need)
			cap *= 2;
		/* Out of memory: the frame is lost; a full set repairs. */
		if ((out = realloc(a->out, cap)) == NULL)
			goto next;
		a->out = out;
		a->outcap = cap;
	}
	a->out[a->outlen] = a->full && a->nframes == 0 ? TUN_F_START : 0;
	a->out[a->outlen + 1] = a->len >> 8;
	a->out[a->outlen + 2] = a->len & 0xff;
	memcpy(a->out + a->outlen + 3, a->buf, a->len);
	a->last = a->outlen;
	a->outlen += need;
	a->nframes++;
next:
	a->len = tun_announce_begin(a->buf, a->ttl);
}

/* The last frame: a full set always has one (END; maybe empty). */
static void
gw_peer_ann_finish(struct gw_peer_ann *a)
{
	if (a->len > 4 || (a->full && a->nframes == 0))
		gw_peer_ann_flush(a);
	if (a->full && a->nframes > 0)
		a->out[a->last] |= TUN_F_END;
}

static void
gw_peer_ann_send(struct gw_peer_ann *a, struct gw_peer *p)
{
	size_t	off, len;

	for (off = 0; off < a->outlen; off += 3 + len) {
		len = (size_t)a->out[off + 1] << 8 | a->out[off + 2];
		tun_send_frame(p->tun, TUN_ANNOUNCE, a->out[off],
		    a->out + off + 3, len);
	}
	p->tx_ann_ms = mono_ms();
}

static void
gw_peer_orphan_closed(struct tun *tun, const char *reason, void *arg)
{
	(void)tun;
	(void)reason;
	(void)arg;
}

static struct gw_peer_name *
gw_peer_table_find(struct ntab *t, unsigned h, const struct gw_peer *p,
    const char *name)
{
	struct ntab_entry	*e;
	struct gw_peer_name	*n;

	for (e = ntab_chain(t, h); e != NULL; e = e->next) {
		n = GW_PEER_NAME(e);
		if (e->hash == h && n->peer == p && strcmp(n->name, name) == 0)
			return n;
	}
	return NULL;
}
