/* SPDX-License-Identifier: ISC */
/*
 * Agent tunnels on the gateway side: admit only keys in the config, and
 * accept a hostname claim only when one of the agent's patterns covers
 * it.  A refused claim is answered and logged and changes nothing else,
 * but is remembered: a reload that grants the name makes it live at
 * once.  A tunnel's routes live exactly as long as the tunnel.
 *
 * One key, one live session: a reconnecting agent replaces its stale
 * session, but only once it has accepted us too, and never a session
 * of another live process with the same key (a copied config): that
 * one is refused, and both sides are told why.
 *
 * Tunnels and grants are found by key in hash tables, and each tunnel
 * lists its own claims, so a reconnect storm of thousands of agents
 * costs each one O(1), not a scan of all the others.  Admission is
 * paced: at gw->tun_max_pending handshakes in progress (256, fewer when
 * descriptors are short) the tunnel listener stops accepting (the
 * kernel's backlog holds the rest) and agents on the TLS entry wait in a
 * queue, until a handshake ends.
 *
 * A flood of connections that never finish a handshake must not keep
 * agents out: one source address (IPv4, IPv6 /64) may hold only
 * limits.handshakes_per_source of them, on either path in (further ones
 * are closed at once), and past half the cap the deadline of every
 * handshake in progress drops to GW_TUN_BUSY_DIV of the usual one.
 */

#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "addr.h"
#include "gw.h"
#include "log.h"
#include "mono.h"

#define GW_TUN_BUSY_DIV		4	/* busy: handshake deadline / 4 */
#define GW_TUN_BUSY_MIN_MS	1000	/* but at least this */
#define GW_TUN_MAX_WAITING	4096	/* TLS-entry tunnels queued */
#define GW_TUN_KEY_BUCKETS	256	/* to start with; doubles */
#define GW_TUN_LIMIT_LOG_MS	1000	/* refusals over the limit: summed */
#define GW_TUN_MAX_WANTS	256	/* refused claims remembered */
/* How long an older session of the key has to show it is alive. */
#define GW_TUN_PROBE_MIN_MS	1000
#define GW_TUN_PROBE_MAX_MS	3000

/* A claim not routed (yet): refused, or waiting for the probe. */
struct gw_tun_want {
	struct tun_claim		 claim;
	TAILQ_ENTRY(gw_tun_want)	 entry;
};

LIST_HEAD(gw_tun_keylist, gw_tun);

/* A tunnel on the TLS entry waiting for a handshake slot. */
struct gw_tun_wait {
	struct bufferevent		*bev;
	struct sockaddr_storage		 sa;
	TAILQ_ENTRY(gw_tun_wait)	 entry;
};

/*
 * Lookups by public key.  A public key is no secret, so a plain memcmp
 * finds it: the constant-time compare the old scans used guarded
 * nothing, and cost a compare with every agent for every handshake.
 */
struct gw_tun_index {
	struct gw_tun_keylist	*tuns;		/* authed agent tunnels */
	size_t			 ntbuckets;	/* a power of two */
	size_t			 ntuns;
	const struct cfg_gateway *cfg;		/* grants were built from */
	const struct cfg_grant	**grants;	/* open addressing, or NULL */
	size_t			 ngslots;	/* a power of two */
	uint64_t		 seed;
	TAILQ_HEAD(, gw_tun_wait) waiting;
	unsigned		 nwaiting;
	struct event		*admit_ev;	/* a handshake slot is free */
	int			 busy;		/* past half the handshakes */
};

struct gw_tun {
	struct gw		*gw;
	struct tun		*tun;
	char			 name[64];	/* the grant's name */
	char			 peer[64];	/* remote address */
	uint64_t		 id;
	unsigned		 nclaims;
	struct gw_route_claim_list claims;	/* gw_route's, by tun_link */
	int			 indexed;	/* on the key index */
	LIST_ENTRY(gw_tun)	 key_link;
	struct event		*limit_ev;	/* sum refusals over the limit */
	struct sockaddr_storage	 src;		/* holds a handshake slot of */
	int			 src_held;	/* ... until authed or gone */
	uint64_t		 start_ms;
	struct event		*hs_ev;		/* shortened deadline, busy */
	unsigned		 limit_refused;	/* since the last line */
	char			 limit_first[NAME_MAX_LEN + 1];
	int			 authed;
	int			 refused;	/* authed said no, and why */
	int			 live;		/* confirmed, may hold routes */
	struct event		*probe;		/* rival session alive? */
	uint64_t		 probe_ms;	/* when we pinged it */
	uint64_t		 rival;		/* its id */
	TAILQ_HEAD(, gw_tun_want) wants;
	unsigned		 nwants;
	TAILQ_ENTRY(gw_tun)	 entry;
};

static int	gw_tun_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	gw_tun_claim(struct tun *, uint8_t, const struct tun_claim *,
		    void *);
static void	gw_tun_confirmed(struct tun *, void *);
static void	gw_tun_goaway(struct tun *, const struct tun_reason *, void *);
static void	gw_tun_closed(struct tun *, const char *, void *);
static const struct cfg_grant *gw_tun_grant(struct gw *, const uint8_t *);
static void	gw_tun_start(struct gw *, int, struct bufferevent *,
		    const struct sockaddr *);
static void	gw_tun_free(struct gw_tun *);
static struct gw_tun *gw_tun_rival(struct gw_tun *);
static void	gw_tun_replace(struct gw_tun *, struct gw_tun *, const char *);
static void	gw_tun_probe_cb(evutil_socket_t, short, void *);
static void	gw_tun_go_live(struct gw_tun *);
static int	gw_tun_covered(struct gw_tun *, const char *);
static void	gw_tun_decide(struct gw_tun *, const struct tun_claim *, int);
static void	gw_tun_want_put(struct gw_tun *, const struct tun_claim *);
static void	gw_tun_want_del(struct gw_tun *, const char *);
static void	gw_tun_regrant(struct gw_tun *);
static struct gw_tun_index *gw_tun_index(struct gw *);
static uint64_t	gw_tun_key_hash(const struct gw_tun_index *, const uint8_t *);
static void	gw_tun_index_add(struct gw_tun *);
static void	gw_tun_index_del(struct gw_tun *);
static void	gw_tun_grants_build(struct gw *);
static void	gw_tun_pending_done(struct gw *);
static void	gw_tun_admit_cb(evutil_socket_t, short, void *);
static void	gw_tun_limit_cb(evutil_socket_t, short, void *);
static void	gw_tun_limit_log(struct gw_tun *);
static int	gw_tun_src_hold(struct gw *, const struct sockaddr *,
		    const char *);
static void	gw_tun_src_done(struct gw_tun *);
static unsigned	gw_tun_busy_ms(struct gw *);
static void	gw_tun_busy_check(struct gw *);
static void	gw_tun_hs_cb(evutil_socket_t, short, void *);

static const struct tun_ops gw_tun_ops = {
	.authed = gw_tun_authed,
	.claim = gw_tun_claim,
	.open = NULL,
	.goaway = gw_tun_goaway,
	.stream_closed = gw_fwd_stream_closed_cb,
	.stream_retry = gw_fwd_stream_retry_cb,
	.confirmed = gw_tun_confirmed,
	.closed = gw_tun_closed,
};

void
gw_tun_accept(struct gw *gw, struct gw_listener *l, int fd,
    const struct sockaddr *sa)
{
	(void)l;
	if (gw_tun_src_hold(gw, sa, "") == -1) {
		close(fd);
		return;
	}
	gw_tun_start(gw, fd, NULL, sa);
}

/* The tunnel settings of this gateway's config, for any of its tunnels. */
void
gw_tun_params(struct gw *gw, struct tun_params *p, enum tun_role role,
    const char *label)
{
	const struct cfg_gateway	*cfg = gw->cfg;

	memset(p, 0, sizeof(*p));
	p->role = role;
	p->key = &gw->key;
	p->window = (uint32_t)cfg->stream_window;
	p->keepalive_ms = cfg->keepalive_ms;
	p->dead_peer_ms = cfg->dead_peer_ms;
	p->handshake_ms = cfg->handshake_timeout_ms;
	p->max_streams = cfg->streams_per_tunnel;
	p->name = gw->name;
	p->label = label;
}

/*
 * An agent that came in on the TLS entry (ALPN porch/1, our name).  That
 * listener serves visitors too and cannot stop for agents: at the cap,
 * the agent waits in a queue (its bytes stay unread) for a slot.
 */
void
gw_tun_accept_over(struct gw *gw, struct bufferevent *bev,
    const struct sockaddr *sa)
{
	struct gw_tun_index	*ix;
	struct gw_tun_wait	*w;
	char			 peer[64];

	if ((ix = gw_tun_index(gw)) == NULL) {
		log_warnx("tunnel from %s: out of memory",
		    addr_fmt(sa, peer, sizeof(peer)));
		bufferevent_free(bev);
		return;
	}
	/* The same share per source as on the tunnel listener. */
	if (gw_tun_src_hold(gw, sa, " (on the TLS entry)") == -1) {
		bufferevent_free(bev);
		return;
	}
	if (gw->tun_pending < gw->tun_max_pending &&
	    TAILQ_EMPTY(&ix->waiting)) {
		gw_tun_start(gw, -1, bev, sa);
		return;
	}
	if (ix->nwaiting >= GW_TUN_MAX_WAITING ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		static struct log_ratelimit	rl;

		/* The agent hears a close before the TLS handshake and
		 * says the gateway is busy. */
		log_ratelimit(&rl, "tunnel from %s (on the TLS entry): "
		    "refused, %u handshakes in progress and %u agents waiting",
		    addr_fmt(sa, peer, sizeof(peer)), gw->tun_pending,
		    ix->nwaiting);
		gw_src_release(gw, sa, GW_SRC_HANDSHAKE);
		bufferevent_free(bev);
		return;
	}
	/* gw_conn's callbacks point to a gw_conn that is gone. */
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	w->bev = bev;
	memcpy(&w->sa, sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	TAILQ_INSERT_TAIL(&ix->waiting, w, entry);
	ix->nwaiting++;
}

/* Takes fd, or bev when fd is -1, and the source's handshake slot. */
static void
gw_tun_start(struct gw *gw, int fd, struct bufferevent *bev,
    const struct sockaddr *sa)
{
	struct gw_tun			*gt = NULL;
	struct tun_params		 p;
	SSL				*ssl = NULL;
	char				 label[96];

	if (gw_tun_index(gw) == NULL ||
	    (gt = calloc(1, sizeof(*gt))) == NULL) {
		gw_src_release(gw, sa, GW_SRC_HANDSHAKE);
		goto fail;
	}
	gt->gw = gw;
	memcpy(&gt->src, sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	gt->src_held = 1;
	gt->start_ms = mono_ms();
	TAILQ_INIT(&gt->wants);
	TAILQ_INIT(&gt->claims);
	if ((ssl = SSL_new(gw->tun_ctx)) == NULL ||
	    (gt->probe = evtimer_new(gw->base, gw_tun_probe_cb, gt)) == NULL ||
	    (gt->limit_ev = evtimer_new(gw->base, gw_tun_limit_cb,
	    gt)) == NULL ||
	    (gt->hs_ev = evtimer_new(gw->base, gw_tun_hs_cb, gt)) == NULL)
		goto fail;
	gt->id = ++gw->next_tun_id;
	addr_fmt(sa, gt->peer, sizeof(gt->peer));
	snprintf(gt->name, sizeof(gt->name), "?");
	snprintf(label, sizeof(label), "tunnel peer=%s%s", gt->peer,
	    bev != NULL ? " via=tls-entry" : "");
	gw_tun_params(gw, &p, TUN_ROLE_GATEWAY, label);
	/* Linked before tun_new: its callbacks may fire from here on. */
	TAILQ_INSERT_TAIL(&gw->tunnels, gt, entry);
	/*
	 * Unauthenticated handshakes cost TLS work and descriptors; at the
	 * cap the tunnel listener stops accepting until one ends, so a
	 * storm of agents is admitted at the pace the CPU allows and none
	 * is turned away (gw_tun_admit_cb resumes).
	 */
	if (++gw->tun_pending >= gw->tun_max_pending && !gw->tun_paced)
		gw_listen_tun_pace(gw, 1);
	/* Busy: this one gets the short deadline, and so do the others. */
	gw_tun_busy_check(gw);
	if (gw->tun_index->busy)
		p.handshake_ms = gw_tun_busy_ms(gw);
	if (bev != NULL)
		gt->tun = tun_new_over(gw->base, bev, ssl, &p, &gw_tun_ops, gt);
	else
		gt->tun = tun_new(gw->base, fd, ssl, 1, &p, &gw_tun_ops, gt);
	if (gt->tun == NULL) {
		/* tun_new* freed what it was given. */
		log_warnx("tunnel from %s: out of memory", gt->peer);
		TAILQ_REMOVE(&gw->tunnels, gt, entry);
		gw_tun_free(gt);
		gw_tun_pending_done(gw);
	}
	return;
fail:
	gw_tun_free(gt);	/* gives the source's slot back */
	if (ssl != NULL)
		SSL_free(ssl);
	if (bev != NULL)
		bufferevent_free(bev);
	else
		close(fd);
}

void
gw_tun_close_all(struct gw *gw, const char *reason)
{
	struct gw_tun_index	*ix = gw->tun_index;
	struct gw_tun_wait	*w;
	struct gw_tun		*gt;

	while ((gt = TAILQ_FIRST(&gw->tunnels)) != NULL)
		tun_close(gt->tun, reason);	/* frees gt via closed */
	if (ix == NULL)
		return;
	while ((w = TAILQ_FIRST(&ix->waiting)) != NULL) {
		TAILQ_REMOVE(&ix->waiting, w, entry);
		gw_src_release(gw, (struct sockaddr *)&w->sa,
		    GW_SRC_HANDSHAKE);
		bufferevent_free(w->bev);
		free(w);
	}
	event_free(ix->admit_ev);
	free(ix->tuns);
	free(ix->grants);
	free(ix);
	gw->tun_index = NULL;
}

/*
 * Tell every agent we are leaving (GOAWAY): no new streams, open ones
 * finish within drain_ms, then each tunnel closes.
 */
void
gw_tun_drain_all(struct gw *gw, const char *reason)
{
	struct gw_tun	*gt, *next;

	for (gt = TAILQ_FIRST(&gw->tunnels); gt != NULL; gt = next) {
		next = TAILQ_NEXT(gt, entry);
		tun_drain(gt->tun, reason, gw->cfg->drain_ms);
	}
}

const char *
gw_tun_name(const struct gw_tun *gt)
{
	return gt->name;
}

struct tun *
gw_tun_tun(const struct gw_tun *gt)
{
	return gt->tun;
}

uint64_t
gw_tun_id(const struct gw_tun *gt)
{
	return gt->id;
}

struct gw_route_claim_list *
gw_tun_claims(struct gw_tun *gt)
{
	return &gt->claims;
}

/* The route table's view of a claimant: its live tunnel. */
static enum gw_route_state
gw_tun_route_state(const struct gw_tun *gt)
{
	if (!tun_is_ready(gt->tun))
		return GW_ROUTE_NOT_READY;
	if (tun_is_draining(gt->tun))
		return GW_ROUTE_DRAINING;
	return GW_ROUTE_USABLE;
}

static unsigned
gw_tun_route_streams(const struct gw_tun *gt)
{
	return tun_stream_count(gt->tun);
}

const struct gw_route_view gw_tun_route_view = {
	.state = gw_tun_route_state,
	.streams = gw_tun_route_streams,
	.id = gw_tun_id,
	.name = gw_tun_name,
	.claims = gw_tun_claims,
};

/* The grant of a key; a key is public, so memcmp (see gw_tun_index). */
static const struct cfg_grant *
gw_tun_grant(struct gw *gw, const uint8_t *key)
{
	struct gw_tun_index	*ix = gw->tun_index;
	size_t			 i, mask;

	if (ix->cfg != gw->cfg)
		gw_tun_grants_build(gw);
	if (ix->grants == NULL) {
		/* Out of memory when it was built: scan. */
		for (i = 0; i < gw->cfg->nagents; i++)
			if (memcmp(gw->cfg->agents[i].key, key,
			    KEY_PUB_LEN) == 0)
				return &gw->cfg->agents[i];
		return NULL;
	}
	mask = ix->ngslots - 1;
	for (i = gw_tun_key_hash(ix, key) & mask; ix->grants[i] != NULL;
	    i = (i + 1) & mask)
		if (memcmp(ix->grants[i]->key, key, KEY_PUB_LEN) == 0)
			return ix->grants[i];
	return NULL;
}

static int
gw_tun_authed(struct tun *tun, const struct tun_hello *h, char *msg,
    size_t msglen, void *arg)
{
	struct gw_tun			*gt = arg;
	const struct cfg_grant		*g;
	char				 kt[KEY_TEXT_LEN];

	key_pub_text(h->pub, kt);
	if (h->role == TUN_ROLE_PEER) {
		/* Another gateway of the cluster: gw_peer owns it now. */
		struct gw	*gw = gt->gw;

		if (gw_peer_adopt(gw, tun, h, msg, msglen) == -1) {
			gt->refused = 1;
			return -1;
		}
		TAILQ_REMOVE(&gw->tunnels, gt, entry);
		gw_tun_free(gt);
		gw_tun_pending_done(gw);
		return 0;
	}
	if ((g = gw_tun_grant(gt->gw, h->pub)) == NULL) {
		log_warnx("tunnel from %s (%s): agent key %s is not admitted; "
		    "add it under 'agents:' in %s to let it in", gt->peer,
		    tun_peer_name(tun), kt, gt->gw->cfg->file);
		snprintf(msg, msglen, "agent key %s is not admitted by this "
		    "gateway", kt);
		gt->gw->stats.tunnels_refused++;
		gt->refused = 1;
		return -1;
	}
	snprintf(gt->name, sizeof(gt->name), "%s", g->name);
	gt->gw->stats.tunnels++;
	gt->authed = 1;
	gw_tun_src_done(gt);
	gw_tun_index_add(gt);
	gw_tun_pending_done(gt->gw);
	/* An older session of this key is dealt with once the agent has
	 * accepted us too (gw_tun_confirmed): a dialer that pins another
	 * gateway key must not cost the good session anything. */
	log_info("tunnel from %s%s: agent %s (%s) authenticated", gt->peer,
	    strstr(tun_label(tun), "via=tls-entry") != NULL ?
	    " (on the TLS entry)" : "", g->name, kt);
	return 0;
}

static void
gw_tun_claim(struct tun *tun, uint8_t type, const struct tun_claim *c,
    void *arg)
{
	struct gw_tun		*gt = arg;

	(void)tun;
	if (type == TUN_UNCLAIM) {
		gw_tun_want_del(gt, c->name);
		if (gw_route_remove(gt->gw->routes, c->name, gt) == 1) {
			gt->nclaims--;
			gw_peer_routes_changed(gt->gw);
			log_info("agent %s withdrew %s", gt->name, c->name);
		}
		return;
	}
	if (type != TUN_CLAIM)
		return;
	if (!gt->live) {
		/* Decided once we know whose session this is. */
		gw_tun_want_put(gt, c);
		return;
	}
	gw_tun_decide(gt, c, 0);
}

/* 1 if one of the agent's 'hostnames' patterns covers name. */
static int
gw_tun_covered(struct gw_tun *gt, const char *name)
{
	const struct cfg_grant	*g;
	size_t			 i;

	if ((g = gw_tun_grant(gt->gw, tun_peer_key(gt->tun))) == NULL)
		return 0;
	for (i = 0; i < g->npatterns; i++)
		if (name_pattern_covers(g->patterns[i], name))
			return 1;
	return 0;
}

/*
 * Route the claim, or refuse it and remember it (a reload may grant it
 * later); answer the agent either way.  reload: the grant is new.
 */
static void
gw_tun_decide(struct gw_tun *gt, const struct tun_claim *c, int reload)
{
	const struct cfg_grant	*g;
	struct tun_claim	 r, eff;
	int			 added, bounded = 0;
	char			 kinds[64], refused[64], note[200];

	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", c->name);
	note[0] = '\0';
	eff = *c;
	/* The operator's bounds: what this agent may take from others. */
	if ((g = gw_tun_grant(gt->gw, tun_peer_key(gt->tun))) != NULL)
		bounded = gw_route_bound(g, c, &eff);
	if (bounded & GW_ROUTE_NO_ACME)
		snprintf(note, sizeof(note), "%s refused: agents[].acme is "
		    "false for this agent", tun_kinds_text(c->kinds &
		    TUN_KINDS_ACME, refused, sizeof(refused)));
	if (bounded & GW_ROUTE_RAISED)
		snprintf(note + strlen(note), sizeof(note) - strlen(note),
		    "%spriority %u raised to agents[].min_priority %u",
		    note[0] != '\0' ? "; " : "", c->priority, eff.priority);
	if (!gw_tun_covered(gt, c->name)) {
		gt->gw->stats.claims_refused++;
		gw_tun_want_put(gt, c);
		r.status = TUN_CLAIM_DENIED;
		snprintf(r.msg, sizeof(r.msg), "agent %s is not authorized "
		    "for this hostname on this gateway", gt->name);
		log_warnx("agent %s claimed %s: refused, no 'hostnames' "
		    "pattern of this agent in %s covers it", gt->name,
		    c->name, gt->gw->cfg->file);
	} else if (gt->nclaims >= gt->gw->cfg->claims_per_tunnel &&
	    !gw_route_has(gt->gw->routes, c->name, gt)) {
		gw_tun_want_del(gt, c->name);
		gt->gw->stats.claims_refused++;
		r.status = TUN_CLAIM_LIMIT;
		snprintf(r.msg, sizeof(r.msg), "the gateway allows at most "
		    "%u names per agent", gt->gw->cfg->claims_per_tunnel);
		/* One line per burst, with the count (gw_tun_limit_cb). */
		if (gt->limit_refused++ == 0) {
			struct timeval tv = { GW_TUN_LIMIT_LOG_MS / 1000,
			    (GW_TUN_LIMIT_LOG_MS % 1000) * 1000 };

			snprintf(gt->limit_first, sizeof(gt->limit_first),
			    "%s", c->name);
			evtimer_add(gt->limit_ev, &tv);
		}
	} else if (eff.kinds == 0) {
		/* Only ACME kinds, all refused.  Remembered: a reload that
		 * allows them makes the claim live. */
		gt->gw->stats.claims_refused++;
		gw_tun_want_put(gt, c);
		if (gw_route_remove(gt->gw->routes, c->name, gt) == 1) {
			gt->nclaims--;
			gw_peer_routes_changed(gt->gw);
		}
		r.status = TUN_CLAIM_DENIED;
		snprintf(r.msg, sizeof(r.msg), "agent %s may not answer ACME "
		    "validation on this gateway", gt->name);
		log_warnx("agent %s claimed %s: refused, %s in %s", gt->name,
		    c->name, note, gt->gw->cfg->file);
	} else if ((added = gw_route_add(gt->gw->routes, c->name, &eff, c,
	    gt)) == -1) {
		r.status = TUN_CLAIM_LIMIT;
		snprintf(r.msg, sizeof(r.msg), "gateway out of memory");
	} else {
		gw_tun_want_del(gt, c->name);
		gt->nclaims += added;
		gw_peer_routes_changed(gt->gw);
		r.status = TUN_CLAIM_OK;
		/* The agent hears what was changed; the status shows it. */
		snprintf(r.msg, sizeof(r.msg), "%s", note);
		log_info("%sagent %s claimed %s (%s, priority %u, %s)%s%s",
		    reload ? "reload: granted; " : "", gt->name, c->name,
		    tun_kinds_text(eff.kinds, kinds, sizeof(kinds)),
		    eff.priority, c->policy == TUN_POLICY_BALANCE ?
		    "balance" : "failover", note[0] != '\0' ? ": " : "",
		    note);
	}
	tun_send_claim(gt->tun, TUN_CLAIM_RESULT, &r);
}

/* Remember (or update) a claim that is not routed. */
static void
gw_tun_want_put(struct gw_tun *gt, const struct tun_claim *c)
{
	struct gw_tun_want	*w;

	TAILQ_FOREACH(w, &gt->wants, entry) {
		if (strcmp(w->claim.name, c->name) == 0) {
			w->claim = *c;
			return;
		}
	}
	if (gt->nwants >= GW_TUN_MAX_WANTS) {
		/* Bounded: past this a reload cannot grant it by itself;
		 * the agent's next claim (or reconnect) asks again. */
		log_debug("agent %s: not remembering the claim for %s "
		    "(%d remembered)", gt->name, c->name, GW_TUN_MAX_WANTS);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return;
	w->claim = *c;
	TAILQ_INSERT_TAIL(&gt->wants, w, entry);
	gt->nwants++;
}

static void
gw_tun_want_del(struct gw_tun *gt, const char *name)
{
	struct gw_tun_want	*w;

	TAILQ_FOREACH(w, &gt->wants, entry) {
		if (strcmp(w->claim.name, name) == 0) {
			TAILQ_REMOVE(&gt->wants, w, entry);
			gt->nwants--;
			free(w);
			return;
		}
	}
}

/*
 * The agent accepted our HELLO.  Another live session of its key is
 * either this agent's own stale one (it reconnected: take the names
 * over at once), or another process using the same key.  The HELLO's
 * instance tells a restarted process from the same one; a different
 * one gets a probe: if the older session answers, it stays and this
 * one is refused.
 */
static void
gw_tun_confirmed(struct tun *tun, void *arg)
{
	struct gw_tun	*gt = arg, *old;
	struct timeval	 tv;
	double		 rtt;
	uint64_t	 ms;

	if (!gt->authed)
		return;
	if ((old = gw_tun_rival(gt)) == NULL) {
		gw_tun_go_live(gt);
		return;
	}
	if (tun_peer_instance(tun) == 0 ||
	    tun_peer_instance(tun) == tun_peer_instance(old->tun)) {
		gw_tun_replace(old, gt, "reconnected");
		gw_tun_go_live(gt);
		return;
	}
	/* A few round trips of the old session, within bounds. */
	rtt = tun_rtt_ms(old->tun);
	ms = GW_TUN_PROBE_MIN_MS + (rtt > 0 ? (uint64_t)(4 * rtt) : 0);
	if (ms > GW_TUN_PROBE_MAX_MS)
		ms = GW_TUN_PROBE_MAX_MS;
	gt->rival = old->id;
	gt->probe_ms = mono_ms();
	tun_ping(old->tun);
	log_info("agent %s connected from %s while its session from %s is "
	    "open; checking whether that one is still alive", gt->name,
	    gt->peer, old->peer);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(gt->probe, &tv);
}

/* The live session of gt's key other than gt, or NULL. */
static struct gw_tun *
gw_tun_rival(struct gw_tun *gt)
{
	struct gw_tun		*old;
	struct gw_tun_index	*ix = gt->gw->tun_index;
	const uint8_t		*key = tun_peer_key(gt->tun);

	LIST_FOREACH(old, &ix->tuns[gw_tun_key_hash(ix, key) &
	    (ix->ntbuckets - 1)], key_link) {
		/* A draining session is finishing its streams on purpose
		 * (the agent moved it): leave it to end by itself. */
		if (old != gt && old->live && tun_is_ready(old->tun) &&
		    !tun_is_draining(old->tun) &&
		    memcmp(tun_peer_key(old->tun), key, KEY_PUB_LEN) == 0)
			return old;
	}
	return NULL;
}

/* Its names move to gt now; the old session's agent hears why. */
static void
gw_tun_replace(struct gw_tun *old, struct gw_tun *gt, const char *how)
{
	char	msg[TUN_MSG_MAX];

	log_info("agent %s %s from %s; replacing its session from %s",
	    gt->name, how, gt->peer, old->peer);
	snprintf(msg, sizeof(msg), "replaced by a new session of this "
	    "agent's key from %s", gt->peer);
	tun_shutdown(old->tun, TUN_E_SHUTDOWN, msg);
}

static void
gw_tun_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_tun		*gt = arg, *old;
	struct gw_tun_index	*ix = gt->gw->tun_index;
	char			 kt[KEY_TEXT_LEN], msg[TUN_MSG_MAX + 64];

	(void)fd;
	(void)what;
	/* The rival has our key: it is in our bucket, if still there. */
	LIST_FOREACH(old, &ix->tuns[gw_tun_key_hash(ix,
	    tun_peer_key(gt->tun)) & (ix->ntbuckets - 1)], key_link)
		if (old->id == gt->rival)
			break;
	if (old == NULL || !tun_is_ready(old->tun) ||
	    tun_is_draining(old->tun)) {
		gw_tun_go_live(gt);	/* it went away meanwhile */
		return;
	}
	if (tun_last_rx_ms(old->tun) < gt->probe_ms) {
		gw_tun_replace(old, gt, "reconnected (its old session stopped "
		    "answering)");
		gw_tun_go_live(gt);
		return;
	}
	key_pub_text(tun_peer_key(gt->tun), kt);
	log_warnx("two agents are using key %s (agent %s): one connected "
	    "from %s, another from %s; keeping the first and refusing the "
	    "newer. Give each replica its own key (porchctl keygen) and "
	    "admit each under 'agents:' in %s", kt, gt->name, old->peer,
	    gt->peer, gt->gw->cfg->file);
	gt->gw->stats.tunnels_refused++;
	snprintf(msg, sizeof(msg), "two agents are using key %s (the other "
	    "from %s): give each replica its own key", kt, old->peer);
	tun_shutdown(gt->tun, TUN_E_DUPLICATE, msg);
}

/* The session is this key's: decide the claims it made meanwhile. */
static void
gw_tun_go_live(struct gw_tun *gt)
{
	struct gw_tun_want	*w, *next;
	struct tun_claim	 c;

	gt->live = 1;
	gw_cluster_send_agent(gt->gw, gt->tun);
	for (w = TAILQ_FIRST(&gt->wants); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		c = w->claim;
		gw_tun_want_del(gt, c.name);
		gw_tun_decide(gt, &c, 0);
	}
}

void
gw_tun_cluster_changed(struct gw *gw)
{
	struct gw_tun	*gt;

	TAILQ_FOREACH(gt, &gw->tunnels, entry)
		if (gt->live && gt->tun != NULL && tun_is_ready(gt->tun))
			gw_cluster_send_agent(gw, gt->tun);
}

static void
gw_tun_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	struct gw_tun	*gt = arg;

	(void)tun;
	/* tun marks itself draining: lookups skip it from now on. */
	log_info("agent %s is going away: %s", gt->name, r->msg);
	gw_route_touch_tun(gt->gw->routes, gt);
	gw_peer_routes_changed(gt->gw);
}

static void
gw_tun_closed(struct tun *tun, const char *reason, void *arg)
{
	struct gw_tun	*gt = arg;
	struct gw	*gw = gt->gw;
	char		 rtt[32];
	int		 authed = gt->authed;

	gw_route_remove_tun(gw->routes, gt);
	if (gt->nclaims > 0)
		gw_peer_routes_changed(gw);
	TAILQ_REMOVE(&gw->tunnels, gt, entry);
	gw_tun_limit_log(gt);
	/* A refusal was logged with its reason; its close says nothing. */
	if (gt->refused)
		log_debug("tunnel from %s (refused) closed: %s", gt->peer,
		    reason);
	else
		log_info("tunnel from %s (agent %s) closed: %s (last %s)",
		    gt->peer, gt->name, reason,
		    tun_rtt_text(tun, rtt, sizeof(rtt)));
	gw_tun_free(gt);
	if (!authed)
		gw_tun_pending_done(gw);
}

static void
gw_tun_free(struct gw_tun *gt)
{
	struct gw_tun_want	*w;

	if (gt == NULL)
		return;
	gw_tun_src_done(gt);
	gw_tun_index_del(gt);
	while ((w = TAILQ_FIRST(&gt->wants)) != NULL) {
		TAILQ_REMOVE(&gt->wants, w, entry);
		free(w);
	}
	if (gt->probe != NULL)
		event_free(gt->probe);
	if (gt->limit_ev != NULL)
		event_free(gt->limit_ev);
	if (gt->hs_ev != NULL)
		event_free(gt->hs_ev);
	free(gt);
}

/* One entry per agent tunnel, for the status page. */
json_t *
gw_tun_status(struct gw *gw)
{
	struct gw_tun	*gt;
	json_t		*a, *o;
	char		 kt[KEY_TEXT_LEN];
	double		 rtt;

	if ((a = json_array()) == NULL)
		return NULL;
	TAILQ_FOREACH(gt, &gw->tunnels, entry) {
		rtt = tun_rtt_ms(gt->tun);
		o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o}",
		    "agent", gt->name, "peer", gt->peer,
		    "key", gt->authed ? key_pub_text(tun_peer_key(gt->tun), kt) :
		    "", "state", !gt->authed ? "handshake" :
		    tun_is_draining(gt->tun) ? "draining" : "ready",
		    "streams", (json_int_t)tun_stream_count(gt->tun),
		    "claims", (json_int_t)gt->nclaims,
		    "rtt_ms", rtt < 0 ? json_null() : json_real(rtt));
		if (o != NULL)
			json_array_append_new(a, o);
	}
	return a;
}

/* A reload took a granted name away: tell the agent, and remember the
 * claim, so that a later reload granting it again makes it live. */
static void
gw_tun_revoked(const struct tun_claim *c, void *arg)
{
	struct gw_tun		*gt = arg;
	struct tun_claim	 r;
	int			 acme = gw_tun_covered(gt, c->name);

	/* Covered yet revoked: only ACME kinds, now refused (acme: false). */
	log_warnx("reload: agent %s may no longer claim %s%s; route removed",
	    gt->name, c->name, acme ? " for ACME validation" : "");
	gw_tun_want_put(gt, c);
	memset(&r, 0, sizeof(r));
	r.status = TUN_CLAIM_DENIED;
	snprintf(r.name, sizeof(r.name), "%s", c->name);
	snprintf(r.msg, sizeof(r.msg), "no longer authorized for this "
	    "hostname%s on this gateway (configuration reloaded)",
	    acme ? " for ACME validation" : "");
	tun_send_claim(gt->tun, TUN_CLAIM_RESULT, &r);
}

void
gw_tun_reauthorize(struct gw *gw)
{
	struct gw_tun		*gt, *next;
	const struct cfg_grant	*g;
	unsigned		 n;

	if (gw->tun_index != NULL)
		gw_tun_grants_build(gw);	/* the old config goes */
	for (gt = TAILQ_FIRST(&gw->tunnels); gt != NULL; gt = next) {
		next = TAILQ_NEXT(gt, entry);
		if (!gt->authed)
			continue;
		if ((g = gw_tun_grant(gw, tun_peer_key(gt->tun))) == NULL) {
			log_warnx("reload: agent %s is no longer admitted; "
			    "closing its tunnel", gt->name);
			tun_shutdown(gt->tun, TUN_E_AUTH, "agent key no longer "
			    "admitted by this gateway");
			continue;
		}
		snprintf(gt->name, sizeof(gt->name), "%s", g->name);
		n = gw_route_revoke(gw->routes, gt, g, gw_tun_revoked, gt);
		gt->nclaims -= n;
		if (n > 0)
			gw_peer_routes_changed(gw);
		if (gt->live)
			gw_tun_regrant(gt);
	}
}

/* After a reload: names refused before that the agent may now claim. */
static void
gw_tun_regrant(struct gw_tun *gt)
{
	const struct cfg_grant	*g;
	struct gw_tun_want	*w, *next;
	struct tun_claim	 c, eff;

	if ((g = gw_tun_grant(gt->gw, tun_peer_key(gt->tun))) == NULL)
		return;
	for (w = TAILQ_FIRST(&gt->wants); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (!gw_tun_covered(gt, w->claim.name))
			continue;
		/* Still refused by the bounds: decide would put it back at
		 * the tail, and this loop would meet it again. */
		gw_route_bound(g, &w->claim, &eff);
		if (eff.kinds == 0)
			continue;
		c = w->claim;
		gw_tun_want_del(gt, c.name);
		gw_tun_decide(gt, &c, 1);
	}
}

/* The key indexes and the admission queue, made with the first tunnel. */
static struct gw_tun_index *
gw_tun_index(struct gw *gw)
{
	struct gw_tun_index	*ix;

	if (gw->tun_index != NULL)
		return gw->tun_index;
	if ((ix = calloc(1, sizeof(*ix))) == NULL)
		return NULL;
	ix->ntbuckets = GW_TUN_KEY_BUCKETS;
	ix->tuns = calloc(ix->ntbuckets, sizeof(*ix->tuns));
	ix->admit_ev = event_new(gw->base, -1, 0, gw_tun_admit_cb, gw);
	if (ix->tuns == NULL || ix->admit_ev == NULL) {
		if (ix->admit_ev != NULL)
			event_free(ix->admit_ev);
		free(ix->tuns);
		free(ix);
		return NULL;
	}
	randombytes_buf(&ix->seed, sizeof(ix->seed));
	TAILQ_INIT(&ix->waiting);
	gw->tun_index = ix;
	return ix;
}

/* Keys are uniform bytes already; the seed keeps chains unguessable. */
static uint64_t
gw_tun_key_hash(const struct gw_tun_index *ix, const uint8_t *key)
{
	uint64_t	h;

	memcpy(&h, key, sizeof(h));
	h = (h ^ ix->seed) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/* An agent proved its key: findable by it from now on. */
static void
gw_tun_index_add(struct gw_tun *gt)
{
	struct gw_tun_index	*ix = gt->gw->tun_index;
	struct gw_tun_keylist	*nb;
	struct gw_tun		*t;
	size_t			 i, n;

	if (ix->ntuns >= 2 * ix->ntbuckets &&
	    (nb = calloc(2 * ix->ntbuckets, sizeof(*nb))) != NULL) {
		/* Rehash; out of memory, the chains just grow longer. */
		n = 2 * ix->ntbuckets;
		for (i = 0; i < ix->ntbuckets; i++) {
			while ((t = LIST_FIRST(&ix->tuns[i])) != NULL) {
				LIST_REMOVE(t, key_link);
				LIST_INSERT_HEAD(&nb[gw_tun_key_hash(ix,
				    tun_peer_key(t->tun)) & (n - 1)], t,
				    key_link);
			}
		}
		free(ix->tuns);
		ix->tuns = nb;
		ix->ntbuckets = n;
	}
	LIST_INSERT_HEAD(&ix->tuns[gw_tun_key_hash(ix,
	    tun_peer_key(gt->tun)) & (ix->ntbuckets - 1)], gt, key_link);
	ix->ntuns++;
	gt->indexed = 1;
}

static void
gw_tun_index_del(struct gw_tun *gt)
{
	if (!gt->indexed)
		return;
	LIST_REMOVE(gt, key_link);
	gt->gw->tun_index->ntuns--;
	gt->indexed = 0;
}

/*
 * The grants of the running config by key (open addressing, at most
 * half full).  A key listed twice finds its first entry, as the scan
 * did.  Out of memory: NULL, and gw_tun_grant scans.
 */
static void
gw_tun_grants_build(struct gw *gw)
{
	struct gw_tun_index	*ix = gw->tun_index;
	const struct cfg_grant	**slots, *g;
	size_t			 i, h, n = 16;

	free(ix->grants);
	ix->grants = NULL;
	ix->cfg = gw->cfg;
	while (n < 2 * gw->cfg->nagents)
		n <<= 1;
	if ((slots = calloc(n, sizeof(*slots))) == NULL) {
		log_warnx("out of memory indexing the agents; finding them "
		    "by a scan");
		return;
	}
	for (i = 0; i < gw->cfg->nagents; i++) {
		g = &gw->cfg->agents[i];
		for (h = gw_tun_key_hash(ix, g->key) & (n - 1);
		    slots[h] != NULL; h = (h + 1) & (n - 1))
			if (memcmp(slots[h]->key, g->key, KEY_PUB_LEN) == 0)
				break;
		if (slots[h] == NULL)
			slots[h] = g;
	}
	ix->grants = slots;
	ix->ngslots = n;
}

/* A handshake ended (either way): a paced listener may go on. */
static void
gw_tun_pending_done(struct gw *gw)
{
	gw->tun_pending--;
	if (gw->tun_paced)
		event_active(gw->tun_index->admit_ev, EV_TIMEOUT, 0);
}

/*
 * Slots are free: first the agents waiting on the TLS entry, in order,
 * then the tunnel listener again (its backlog waited in the kernel).
 * From the loop, not from inside the tunnel whose handshake ended.
 */
static void
gw_tun_admit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw		*gw = arg;
	struct gw_tun_index	*ix = gw->tun_index;
	struct gw_tun_wait	*w;
	struct bufferevent	*bev;
	struct sockaddr_storage	 sa;

	(void)fd;
	(void)what;
	while (gw->tun_pending < gw->tun_max_pending &&
	    (w = TAILQ_FIRST(&ix->waiting)) != NULL) {
		TAILQ_REMOVE(&ix->waiting, w, entry);
		ix->nwaiting--;
		bev = w->bev;
		sa = w->sa;
		free(w);
		gw_tun_start(gw, -1, bev, (struct sockaddr *)&sa);
	}
	if (gw->tun_paced && gw->tun_pending < gw->tun_max_pending &&
	    TAILQ_EMPTY(&ix->waiting))
		gw_listen_tun_pace(gw, 0);
}

/*
 * A new unauthenticated tunnel from sa: within its source's share, take
 * a slot (0); beyond it, -1 and the caller closes it at once, while
 * every other source is still admitted.
 */
static int
gw_tun_src_hold(struct gw *gw, const struct sockaddr *sa, const char *via)
{
	static struct log_ratelimit	 rl;
	char				 peer[64];

	if (gw_src_hold(gw, sa, GW_SRC_HANDSHAKE, gw->src_handshakes) == 0)
		return 0;
	log_ratelimit(&rl, "tunnel from %s%s refused: %u handshakes from "
	    "that address in progress already (limits.handshakes_per_source)",
	    addr_fmt(sa, peer, sizeof(peer)), via,
	    gw_src_count(gw, sa, GW_SRC_HANDSHAKE));
	return -1;
}

/* The handshake ended: the source's slot is free again. */
static void
gw_tun_src_done(struct gw_tun *gt)
{
	if (!gt->src_held)
		return;
	gt->src_held = 0;
	gw_src_release(gt->gw, (struct sockaddr *)&gt->src, GW_SRC_HANDSHAKE);
	if (gt->hs_ev != NULL)
		evtimer_del(gt->hs_ev);
}

static unsigned
gw_tun_busy_ms(struct gw *gw)
{
	unsigned	ms = gw->cfg->handshake_timeout_ms / GW_TUN_BUSY_DIV;

	if (ms < GW_TUN_BUSY_MIN_MS)
		ms = GW_TUN_BUSY_MIN_MS;
	if (ms > gw->cfg->handshake_timeout_ms)
		ms = gw->cfg->handshake_timeout_ms;
	return ms;
}

/*
 * Past half the handshake cap, someone may be holding slots without
 * finishing: the deadline of the handshakes already in progress drops
 * too (new ones get it from gw_tun_start), so slots turn over quickly
 * and an agent waits one short deadline at most.
 */
static void
gw_tun_busy_check(struct gw *gw)
{
	static struct log_ratelimit	 rl;
	struct gw_tun_index		*ix = gw->tun_index;
	struct gw_tun			*gt;
	struct timeval			 tv;
	uint64_t			 now, age, left, ms;

	if (gw->tun_pending * 2 <= gw->tun_max_pending) {
		ix->busy = 0;
		return;
	}
	if (ix->busy)
		return;
	ix->busy = 1;
	ms = gw_tun_busy_ms(gw);
	log_ratelimit(&rl, "%u agent handshakes in progress: their deadline "
	    "is %llu ms while more than %u are", gw->tun_pending,
	    (unsigned long long)ms, gw->tun_max_pending / 2);
	now = mono_ms();
	TAILQ_FOREACH(gt, &gw->tunnels, entry) {
		if (gt->authed || !gt->src_held || gt->hs_ev == NULL)
			continue;
		age = now - gt->start_ms;
		left = age < ms ? ms - age : 0;
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		evtimer_add(gt->hs_ev, &tv);
	}
}

/* A handshake ran past the shortened deadline. */
static void
gw_tun_hs_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_tun	*gt = arg;

	(void)fd;
	(void)what;
	if (gt->authed)
		return;
	tun_close(gt->tun, "handshake timeout (gateway busy)");
	/* gt is gone (gw_tun_closed). */
}

static void
gw_tun_limit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_tun_limit_log(arg);
}

/* The claims refused over the limit since the last line, in one line. */
static void
gw_tun_limit_log(struct gw_tun *gt)
{
	if (gt->limit_refused == 0)
		return;
	log_warnx("agent %s: refused %u claim%s over the limit of %u names "
	    "per agent (%s%s; limits.claims_per_tunnel in %s)", gt->name,
	    gt->limit_refused, gt->limit_refused == 1 ? "" : "s",
	    gt->gw->cfg->claims_per_tunnel, gt->limit_first,
	    gt->limit_refused > 1 ? " and others" : "", gt->gw->cfg->file);
	gt->limit_refused = 0;
	evtimer_del(gt->limit_ev);
}
