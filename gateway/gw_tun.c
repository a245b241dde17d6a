/* SPDX-License-Identifier: ISC */
/*
 * Agent tunnels on the gateway side: admit only keys in the config, and
 * accept a hostname claim only when one of the agent's patterns covers
 * it.  A refused claim is answered and logged and changes nothing else.
 * A tunnel's routes live exactly as long as the tunnel.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "addr.h"
#include "gw.h"
#include "log.h"

#define GW_TUN_MAX_CLAIMS	4096
#define GW_TUN_MAX_PENDING	256	/* tunnels still proving a key */

struct gw_tun {
	struct gw		*gw;
	struct tun		*tun;
	char			 name[64];	/* the grant's name */
	char			 peer[64];	/* remote address */
	uint64_t		 id;
	unsigned		 nclaims;
	int			 authed;
	TAILQ_ENTRY(gw_tun)	 entry;
};

static int	gw_tun_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	gw_tun_claim(struct tun *, uint8_t, const struct tun_claim *,
		    void *);
static void	gw_tun_goaway(struct tun *, const struct tun_reason *, void *);
static void	gw_tun_closed(struct tun *, const char *, void *);
static const struct cfg_grant *gw_tun_grant(struct gw *, const uint8_t *);
static void	gw_tun_start(struct gw *, int, struct bufferevent *,
		    const struct sockaddr *);

static const struct tun_ops gw_tun_ops = {
	.authed = gw_tun_authed,
	.claim = gw_tun_claim,
	.open = NULL,
	.goaway = gw_tun_goaway,
	.stream_closed = gw_fwd_stream_closed_cb,
	.stream_retry = gw_fwd_stream_retry_cb,
	.closed = gw_tun_closed,
};

void
gw_tun_accept(struct gw *gw, struct gw_listener *l, int fd,
    const struct sockaddr *sa)
{
	(void)l;
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

/* An agent that came in on the TLS entry (ALPN porch/1, our name). */
void
gw_tun_accept_over(struct gw *gw, struct bufferevent *bev,
    const struct sockaddr *sa)
{
	gw_tun_start(gw, -1, bev, sa);
}

/* Takes fd, or bev when fd is -1. */
static void
gw_tun_start(struct gw *gw, int fd, struct bufferevent *bev,
    const struct sockaddr *sa)
{
	struct gw_tun			*gt = NULL;
	struct tun_params		 p;
	SSL				*ssl = NULL;
	char				 label[96], peer[64];

	/* Unauthenticated handshakes cost TLS work and descriptors; an
	 * admitted agent needs only one, so a flood is cut off here. */
	if (gw->tun_pending >= GW_TUN_MAX_PENDING) {
		log_warnx("tunnel from %s: refused, %u handshakes already in "
		    "progress", addr_fmt(sa, peer, sizeof(peer)),
		    gw->tun_pending);
		goto fail;
	}
	if ((gt = calloc(1, sizeof(*gt))) == NULL ||
	    (ssl = SSL_new(gw->tun_ctx)) == NULL)
		goto fail;
	gt->gw = gw;
	gt->id = ++gw->next_tun_id;
	addr_fmt(sa, gt->peer, sizeof(gt->peer));
	snprintf(gt->name, sizeof(gt->name), "?");
	snprintf(label, sizeof(label), "tunnel peer=%s%s", gt->peer,
	    bev != NULL ? " via=tls-entry" : "");
	gw_tun_params(gw, &p, TUN_ROLE_GATEWAY, label);
	/* Linked before tun_new: its callbacks may fire from here on. */
	TAILQ_INSERT_TAIL(&gw->tunnels, gt, entry);
	gw->tun_pending++;
	if (bev != NULL)
		gt->tun = tun_new_over(gw->base, bev, ssl, &p, &gw_tun_ops, gt);
	else
		gt->tun = tun_new(gw->base, fd, ssl, 1, &p, &gw_tun_ops, gt);
	if (gt->tun == NULL) {
		/* tun_new* freed what it was given. */
		log_warnx("tunnel from %s: out of memory", gt->peer);
		gw->tun_pending--;
		TAILQ_REMOVE(&gw->tunnels, gt, entry);
		free(gt);
	}
	return;
fail:
	free(gt);
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
	struct gw_tun	*gt;

	while ((gt = TAILQ_FIRST(&gw->tunnels)) != NULL)
		tun_close(gt->tun, reason);	/* frees gt via closed */
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

static const struct cfg_grant *
gw_tun_grant(struct gw *gw, const uint8_t *key)
{
	size_t	i;

	for (i = 0; i < gw->cfg->nagents; i++)
		if (sodium_memcmp(gw->cfg->agents[i].key, key,
		    KEY_PUB_LEN) == 0)
			return &gw->cfg->agents[i];
	return NULL;
}

static int
gw_tun_authed(struct tun *tun, const struct tun_hello *h, char *msg,
    size_t msglen, void *arg)
{
	struct gw_tun			*gt = arg, *old, *next;
	const struct cfg_grant		*g;
	char				 kt[KEY_TEXT_LEN];

	key_pub_text(h->pub, kt);
	if (h->role == TUN_ROLE_PEER) {
		/* Another gateway of the cluster: gw_peer owns it now. */
		if (gw_peer_adopt(gt->gw, tun, h, msg, msglen) == -1)
			return -1;
		gt->gw->tun_pending--;
		TAILQ_REMOVE(&gt->gw->tunnels, gt, entry);
		free(gt);
		return 0;
	}
	if ((g = gw_tun_grant(gt->gw, h->pub)) == NULL) {
		log_warnx("tunnel from %s (%s): agent key %s is not admitted; "
		    "add it under 'agents:' in %s to let it in", gt->peer,
		    tun_peer_name(tun), kt, gt->gw->cfg->file);
		snprintf(msg, msglen, "agent key %s is not admitted by this "
		    "gateway", kt);
		gt->gw->stats.tunnels_refused++;
		return -1;
	}
	snprintf(gt->name, sizeof(gt->name), "%s", g->name);
	gt->gw->stats.tunnels++;
	gt->authed = 1;
	gt->gw->tun_pending--;
	/*
	 * The same key again means the agent reconnected: its old session
	 * is stale (it would time out eventually), so the names move to the
	 * new one at once instead of staying blocked.
	 */
	for (old = TAILQ_FIRST(&gt->gw->tunnels); old != NULL; old = next) {
		next = TAILQ_NEXT(old, entry);
		/* A draining session is finishing its streams on purpose
		 * (the agent moved it): leave it to end by itself. */
		if (old != gt && tun_is_ready(old->tun) &&
		    !tun_is_draining(old->tun) &&
		    sodium_memcmp(tun_peer_key(old->tun), h->pub,
		    KEY_PUB_LEN) == 0) {
			log_info("agent %s reconnected from %s; replacing its "
			    "session from %s", g->name, gt->peer, old->peer);
			tun_close(old->tun, "replaced by a new session");
			next = TAILQ_FIRST(&gt->gw->tunnels);
		}
	}
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
	const struct cfg_grant	*g;
	struct tun_claim	 r;
	size_t			 i;
	int			 ok = 0, added;
	char			 kinds[64];

	if (type == TUN_UNCLAIM) {
		if (gw_route_remove(gt->gw->routes, c->name, gt) == 1) {
			gt->nclaims--;
			gw_peer_routes_changed(gt->gw);
			log_info("agent %s withdrew %s", gt->name, c->name);
		}
		return;
	}
	if (type != TUN_CLAIM)
		return;
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", c->name);
	if ((g = gw_tun_grant(gt->gw, tun_peer_key(tun))) != NULL)
		for (i = 0; i < g->npatterns && !ok; i++)
			ok = name_pattern_covers(g->patterns[i], c->name);
	if (!ok) {
		gt->gw->stats.claims_refused++;
		r.status = TUN_CLAIM_DENIED;
		snprintf(r.msg, sizeof(r.msg), "agent %s is not authorized "
		    "for this hostname on this gateway", gt->name);
		log_warnx("agent %s claimed %s: refused, no 'hostnames' "
		    "pattern of this agent in %s covers it", gt->name,
		    c->name, gt->gw->cfg->file);
	} else if (gt->nclaims >= GW_TUN_MAX_CLAIMS) {
		r.status = TUN_CLAIM_LIMIT;
		snprintf(r.msg, sizeof(r.msg), "too many hostnames (max %d)",
		    GW_TUN_MAX_CLAIMS);
		log_warnx("agent %s claimed %s: refused, over %d claims",
		    gt->name, c->name, GW_TUN_MAX_CLAIMS);
	} else if ((added = gw_route_add(gt->gw->routes, c->name, c,
	    gt)) == -1) {
		r.status = TUN_CLAIM_LIMIT;
		snprintf(r.msg, sizeof(r.msg), "gateway out of memory");
	} else {
		gt->nclaims += added;
		gw_peer_routes_changed(gt->gw);
		r.status = TUN_CLAIM_OK;
		log_info("agent %s claimed %s (%s, priority %u, %s)",
		    gt->name, c->name, tun_kinds_text(c->kinds, kinds,
		    sizeof(kinds)), c->priority,
		    c->policy == TUN_POLICY_BALANCE ? "balance" : "failover");
	}
	tun_send_claim(tun, TUN_CLAIM_RESULT, &r);
}

static void
gw_tun_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	struct gw_tun	*gt = arg;

	(void)tun;
	/* tun marks itself draining: lookups skip it from now on. */
	log_info("agent %s is going away: %s", gt->name, r->msg);
	gw_peer_routes_changed(gt->gw);
}

static void
gw_tun_closed(struct tun *tun, const char *reason, void *arg)
{
	struct gw_tun	*gt = arg;
	char		 rtt[32];

	gw_route_remove_tun(gt->gw->routes, gt);
	if (gt->nclaims > 0)
		gw_peer_routes_changed(gt->gw);
	TAILQ_REMOVE(&gt->gw->tunnels, gt, entry);
	if (!gt->authed)
		gt->gw->tun_pending--;
	log_info("tunnel from %s (agent %s) closed: %s (last %s)",
	    gt->peer, gt->name, reason, tun_rtt_text(tun, rtt, sizeof(rtt)));
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

static void
gw_tun_revoked(const char *name, void *arg)
{
	struct gw_tun		*gt = arg;
	struct tun_claim	 r;

	log_warnx("reload: agent %s may no longer claim %s; route removed",
	    gt->name, name);
	memset(&r, 0, sizeof(r));
	r.status = TUN_CLAIM_DENIED;
	snprintf(r.name, sizeof(r.name), "%s", name);
	snprintf(r.msg, sizeof(r.msg), "no longer authorized for this "
	    "hostname on this gateway (configuration reloaded)");
	tun_send_claim(gt->tun, TUN_CLAIM_RESULT, &r);
}

void
gw_tun_reauthorize(struct gw *gw)
{
	struct gw_tun		*gt, *next;
	const struct cfg_grant	*g;
	unsigned		 n;

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
	}
}
