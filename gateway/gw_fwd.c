/* SPDX-License-Identifier: ISC */
/*
 * A routed visitor: pick a replica for its name (a local agent, or else a
 * peer gateway that has one), open a stream there, and if that stream
 * fails before anything came back (the agent vanished, its backend
 * refused), replay the bytes it sent to the next replica.  The visitor
 * sees one connection that works.
 *
 * A visitor that a peer forwarded to us arrives as a stream on the peer
 * link; a bufferevent pair joins it to a stream towards a local agent, so
 * both halves keep their own flow control.  Such a visitor is never sent
 * on to another peer: one hop at most, and no loops.
 *
 * An ACME probe goes to a peer only as far as the peer is believed for
 * the name: when an agent of ours is granted the name, a peer must be
 * granted it too (peers[].hostnames), whatever else may prove its
 * claim, or else a peer's operator could validate, and obtain a
 * certificate for, a name it does not serve.
 *
 * A gw_fwd lives as long as the visitor's connection; the streams that
 * carry it hold it as udata.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "addr.h"
#include "gw.h"
#include "mono.h"
#include "log.h"

#define GW_FWD_MAX_TRIES	9	/* first try + cfg retries (<= 8) */

struct gw_fwd {
	struct gw		*gw;
	uint32_t		 conn_id;
	unsigned		 tries;
	uint64_t		 tried[GW_FWD_MAX_TRIES];	/* tunnel ids */
	struct tun_open		 o;
	struct tun_stream	*out;		/* to the current replica */
	struct tun_stream	*in;		/* from a peer, or NULL */
	char			 via[64];	/* that peer's name */
	int			 counted;	/* one of gw->nconns */
};

static int	gw_fwd_open(struct gw_fwd *, struct bufferevent *);
static void	gw_fwd_free(struct gw_fwd *);
static const char *gw_fwd_name_key(const struct gw_fwd *);
static enum gw_peer_trust gw_fwd_trust(struct gw *, const struct gw_fwd *);

int
gw_fwd_start(struct gw *gw, struct bufferevent *bev, const struct tun_open *o,
    uint32_t conn_id)
{
	struct gw_fwd	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	f->gw = gw;
	f->conn_id = conn_id;
	f->o = *o;
	if (gw_fwd_open(f, bev) == -1) {
		free(f);
		return -1;
	}
	f->counted = 1;
	return 0;
}

void
gw_fwd_from_peer(struct gw *gw, struct tun_stream *in,
    const struct tun_open *o, const char *peer)
{
	struct gw_fwd		*f;
	struct bufferevent	*pair[2] = { NULL, NULL };
	char			 msg[NAME_MAX_LEN + 64];

	/* A peer's visitor costs what our own do: it waits for the same
	 * room (LIMIT: the peer may replay it to another replica). */
	if (gw->nconns >= gw->cfg->max_connections) {
		gw->stats.peer_refused++;
		if (mono_ms() - gw->peer_full_ms >= 1000) {
			gw->peer_full_ms = mono_ms();
			log_warnx("max_connections (%u) reached: refusing "
			    "visitors from peer %s (%llu so far)",
			    gw->cfg->max_connections, peer,
			    (unsigned long long)gw->stats.peer_refused);
		}
		tun_stream_reset(in, TUN_E_LIMIT, "gateway at max_connections");
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    bufferevent_pair_new(gw->base, BEV_OPT_CLOSE_ON_FREE, pair) == -1) {
		free(f);
		tun_stream_reset(in, TUN_E_INTERNAL, "gateway out of memory");
		return;
	}
	f->gw = gw;
	f->conn_id = gw->next_conn_id++ & 0xffffff;
	f->o = *o;
	snprintf(f->via, sizeof(f->via), "%s", peer);
	if (gw_fwd_open(f, pair[1]) == -1) {
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		free(f);
		snprintf(msg, sizeof(msg), "no agent for %s at this gateway",
		    o->name);
		tun_stream_reset(in, TUN_E_NO_SERVICE, msg);
		return;
	}
	gw->stats.from_peers++;
	/* A relayed visitor costs what a direct one does: count it. */
	gw->nconns++;
	f->counted = 1;
	f->in = in;
	tun_stream_set_udata(in, f);
	tun_stream_attach(in, pair[0]);
}

/* The stream failed before an answer; bev's input holds all it sent. */
int
gw_fwd_stream_retry_cb(struct tun *tun, struct tun_stream *s,
    struct bufferevent *bev, const char *why, void *arg)
{
	struct gw_fwd	*f = tun_stream_udata(s);

	(void)tun;
	(void)arg;
	if (f == NULL)
		return -1;
	f->out = NULL;		/* that stream is going away */
	if (f->tries > f->gw->cfg->retries || f->tries >= GW_FWD_MAX_TRIES)
		return -1;
	log_info("conn=%06x %s=%s: replaying to another replica after: %s",
	    f->conn_id, gw_fwd_name_key(f), f->o.name, why);
	if (gw_fwd_open(f, bev) == -1) {
		log_warnx("conn=%06x %s=%s: no other replica to replay to",
		    f->conn_id, gw_fwd_name_key(f), f->o.name);
		f->gw->stats.replay_failed++;
		return -1;
	}
	f->gw->stats.replays++;
	return 0;
}

/*
 * One of our streams is gone for good.  When the visitor came from a
 * peer, a failure on either side resets the other: neither may see a
 * clean end of a transfer that was cut.
 */
void
gw_fwd_stream_closed_cb(struct tun *tun, struct tun_stream *s,
    const char *reason, void *arg)
{
	struct gw_fwd	*f = tun_stream_udata(s);
	char		 why[200];
	uint64_t	 in, out;
	int		 clean = strcmp(reason, "eof") == 0;

	(void)tun;
	(void)arg;
	if (f == NULL)
		return;
	if (s == f->out) {
		tun_stream_bytes(s, &in, &out);
		f->gw->stats.bytes_in += in;
		f->gw->stats.bytes_out += out;
	}
	if (s == f->in) {
		f->in = NULL;
		if (!clean && f->out != NULL) {
			snprintf(why, sizeof(why), "peer side ended: %s",
			    reason);
			tun_stream_reset(f->out, TUN_E_CANCEL, why);
			/* ... which came back here and freed f. */
		}
		return;
	}
	f->out = NULL;
	if (f->in != NULL) {
		tun_stream_set_udata(f->in, NULL);
		if (!clean) {
			snprintf(why, sizeof(why), "agent side ended: %s",
			    reason);
			tun_stream_reset(f->in, TUN_E_CANCEL, why);
		}
		/* Clean: the pair passes the EOF on by itself. */
		f->in = NULL;
	}
	gw_fwd_free(f);
}

static void
gw_fwd_free(struct gw_fwd *f)
{
	struct sockaddr_storage	ss;

	/* A direct visitor holds a slot of its address (gw_conn took it);
	 * one a peer sent us does not. */
	tun_addr_to_ss(&f->o.src, &ss);
	if (f->counted)
		gw_listen_conn_closed(f->gw, f->via[0] == '\0' ?
		    (struct sockaddr *)&ss : NULL);
	free(f);
}

static int
gw_fwd_open(struct gw_fwd *f, struct bufferevent *bev)
{
	struct gw		*gw = f->gw;
	struct gw_tun		*t;
	struct tun		*tun;
	struct tun_stream	*s;
	struct sockaddr_storage	 ss;
	const char		*peer;
	char			 label[NAME_MAX_LEN + 320], addr[64];
	char			 agent[80];
	uint64_t		 id;
	size_t			 replay;

	tun_addr_to_ss(&f->o.src, &ss);
	while (f->tries < GW_FWD_MAX_TRIES) {
		if ((t = gw_route_lookup(gw->routes, f->o.name, f->o.kind,
		    f->tried, f->tries)) != NULL) {
			tun = gw_tun_tun(t);
			id = gw_tun_id(t);
			snprintf(agent, sizeof(agent), "%s", gw_tun_name(t));
		} else if (f->in == NULL && f->via[0] == '\0' &&
		    (tun = gw_peer_lookup(gw, f->o.name, f->o.kind,
		    gw_fwd_trust(gw, f), f->tried, f->tries, &peer,
		    &id)) != NULL) {
			/* No local agent: one hop to a peer that has one. */
			snprintf(agent, sizeof(agent), "peer:%s", peer);
		} else
			return -1;
		f->tried[f->tries++] = id;
		snprintf(label, sizeof(label), "conn=%06x entry=%s peer=%s "
		    "%s=%s agent=%s%s%s%s", f->conn_id,
		    tun_kind_name(f->o.kind),
		    ss.ss_family == AF_UNSPEC ? "-" :
		    addr_fmt((struct sockaddr *)&ss, addr, sizeof(addr)),
		    gw_fwd_name_key(f), f->o.name, agent,
		    f->via[0] ? " via=peer:" : "", f->via,
		    f->tries > 1 ? " replayed=1" : "");
		/* Keep a copy for a replay only while one is still allowed. */
		replay = f->tries <= gw->cfg->retries ? gw->cfg->replay_max : 0;
		if ((s = tun_stream_open(tun, &f->o, bev, label, f, replay)) !=
		    NULL) {
			f->out = s;
			if (strncmp(agent, "peer:", 5) == 0)
				gw->stats.to_peers++;
			return 0;
		}
	}
	return -1;
}

/* The log key of the route name: where the visitor said it. */
static const char *
gw_fwd_name_key(const struct gw_fwd *f)
{
	return tun_kind_entry(f->o.kind) == TUN_KIND_HTTP ? "host" : "sni";
}

/*
 * How far a peer must be believed for the visitor's name.  An ACME probe
 * for a name one of our agents is granted needs the operator's own
 * grant to the peer: our agent may be the name's only rightful server,
 * and the probe decides who gets a certificate.
 */
static enum gw_peer_trust
gw_fwd_trust(struct gw *gw, const struct gw_fwd *f)
{
	const struct cfg_grant	*g;
	size_t			 i, k;

	if (!(f->o.kind & TUN_KINDS_ACME))
		return GW_PEER_TRUST_SOME;
	for (i = 0; i < gw->cfg->nagents; i++) {
		g = &gw->cfg->agents[i];
		for (k = 0; k < g->npatterns; k++)
			if (name_pattern_covers(g->patterns[k], f->o.name))
				return GW_PEER_TRUST_GRANT;
	}
	return GW_PEER_TRUST_SOME;
}
