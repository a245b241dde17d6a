/* SPDX-License-Identifier: ISC */
/*
 * One gateway as the agent sees it: resolve its name, dial it, run the
 * tunnel, claim every service, and after any failure try again with
 * exponential backoff and jitter.  Each gateway lives on its own; losing
 * one changes nothing for the others.  It keeps its own copy of its
 * config entry, so a reload can free the config while a gateway it
 * dropped still drains its streams.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "agent.h"
#include "dial.h"
#include "log.h"
#include "ntab.h"

/* A claim sent on the current tunnel, and the gateway's answer. */
enum agent_gw_claim_state {
	AGENT_GW_CLAIM_PENDING,
	AGENT_GW_CLAIM_OK,
	AGENT_GW_CLAIM_REFUSED,
};

struct agent_gw_claim {
	struct ntab_entry	 te;		/* g->claims, by name */
	char			 name[NAME_MAX_LEN + 1];
	enum agent_gw_claim_state state;
	char			 msg[TUN_MSG_MAX + 1];
};

enum agent_gw_state {
	AGENT_GW_DIALING,	/* resolving, connecting, or backing off */
	AGENT_GW_TUNNEL,	/* tunnel up or handshaking */
	AGENT_GW_STOPPED,
};

struct agent_gw {
	struct agent		*a;
	char			*name;		/* copied from the config */
	char			*address;
	char			*host;
	unsigned		 port;
	uint8_t			 key[KEY_PUB_LEN];
	char			*server_name;	/* NULL: host, if a name */
	enum agent_gw_state	 state;
	struct dial		*dial;
	unsigned		 connect_ms;	/* what dial was made with */
	unsigned		 min_ms;
	unsigned		 max_ms;
	struct tun		*tun;
	int			 authed;	/* this tunnel got that far */
	int			 close_pending;	/* drained after GOAWAY */
	int			 retired;	/* free once closed */
	struct event		*timer;		/* close_pending, retired */
	char			 addr_text[64];	/* address connected to */
	int			 duplicate;	/* refused: our key is in use */
	struct ntab		 claims;	/* on this tunnel, by name */
	struct event		*limit_ev;	/* sums refusals at the limit */
	unsigned		 limit_refused;	/* since the last line */
	char			 limit_first[NAME_MAX_LEN + 1];
	char			 limit_msg[TUN_MSG_MAX + 1];
	TAILQ_ENTRY(agent_gw)	 entry;		/* a->retired */
	/* The gateway's last CLUSTER frame on this tunnel: itself and its
	 * live peers with their public addresses (agent_dns.c). */
	struct tun_gw_info	*cluster;	/* TUN_CLUSTER_GW_MAX */
	size_t			 ncluster;
	int			 has_cluster;	/* one came on this tunnel */
};

/* A refused duplicate retries no sooner than this: the other agent with
 * our key does not go away by itself. */
#define AGENT_GW_DUPLICATE_RETRY_MS	30000

static struct dial *agent_gw_dial_new(struct agent_gw *);
static int	agent_gw_str_eq(const char *, const char *);
static void	agent_gw_dialed(int, const char *, void *);
static void	agent_gw_timer_cb(evutil_socket_t, short, void *);
static int	agent_gw_claim_send(struct agent_gw *, struct tun *, uint8_t,
		    const struct tun_claim *);
static struct agent_gw_claim *agent_gw_claim_find(const struct agent_gw *,
		    const char *);
static void	agent_gw_claim_drop(struct agent_gw *, const char *);
static void	agent_gw_claim_clear(struct agent_gw *);
static void	agent_gw_limit_cb(evutil_socket_t, short, void *);
static void	agent_gw_limit_log(struct agent_gw *);
static const char *agent_gw_busy(const char *, unsigned, char *, size_t);

static int	agent_gw_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	agent_gw_claim_acme(const char *, void *);
static void	agent_gw_claim(struct tun *, uint8_t, const struct tun_claim *,
		    void *);
static void	agent_gw_open(struct tun *, struct tun_stream *,
		    const struct tun_open *, void *);
static void	agent_gw_goaway(struct tun *, const struct tun_reason *,
		    void *);
static void	agent_gw_stream_closed(struct tun *, struct tun_stream *,
		    const char *, void *);
static void	agent_gw_closed(struct tun *, const char *, void *);
static void	agent_gw_frame(struct tun *, const struct tun_frame *,
		    void *);

static const struct tun_ops agent_gw_ops = {
	.authed = agent_gw_authed,
	.claim = agent_gw_claim,
	.open = agent_gw_open,
	.goaway = agent_gw_goaway,
	.stream_closed = agent_gw_stream_closed,
	.closed = agent_gw_closed,
	.frame = agent_gw_frame,
};

struct agent_gw *
agent_gw_new(struct agent *a, const struct cfg_remote *r)
{
	struct agent_gw		*g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->a = a;
	g->state = AGENT_GW_DIALING;
	g->port = r->port;
	memcpy(g->key, r->key, sizeof(g->key));
	g->name = strdup(r->name);
	g->address = strdup(r->address);
	g->host = strdup(r->host);
	if (r->server_name != NULL &&
	    (g->server_name = strdup(r->server_name)) == NULL)
		goto fail;
	if (g->name == NULL || g->address == NULL || g->host == NULL)
		goto fail;
	g->timer = event_new(a->base, -1, 0, agent_gw_timer_cb, g);
	g->limit_ev = evtimer_new(a->base, agent_gw_limit_cb, g);
	g->dial = agent_gw_dial_new(g);
	if (g->timer == NULL || g->limit_ev == NULL || g->dial == NULL)
		goto fail;
	return g;
fail:
	agent_gw_free(g);
	return NULL;
}

/* A dialer with the agent's current timeouts. */
static struct dial *
agent_gw_dial_new(struct agent_gw *g)
{
	const struct cfg_agent	*cfg = g->a->cfg;
	struct dial_params	 dp;
	struct dial		*d;
	char			 label[96];

	snprintf(label, sizeof(label), "gateway %s", g->name);
	memset(&dp, 0, sizeof(dp));
	dp.host = g->host;
	dp.port = g->port;
	dp.connect_ms = cfg->connect_timeout_ms;
	dp.min_ms = cfg->reconnect_min_ms;
	dp.max_ms = cfg->reconnect_max_ms;
	dp.label = label;
	if ((d = dial_new(g->a->base, g->a->dns, &dp, agent_gw_dialed,
	    g)) == NULL)
		return NULL;
	g->connect_ms = dp.connect_ms;
	g->min_ms = dp.min_ms;
	g->max_ms = dp.max_ms;
	return d;
}

void
agent_gw_start(struct agent_gw *g)
{
	dial_start(g->dial);
}

/* SIGTERM: stop redialing; the gateway stops sending us visitors at
 * once, and open streams get drain_ms to finish. */
void
agent_gw_shutdown(struct agent_gw *g)
{
	dial_stop(g->dial);
	g->state = AGENT_GW_STOPPED;
	if (g->tun != NULL)
		tun_drain(g->tun, "agent stopping", g->a->cfg->drain_ms);
}

void
agent_gw_retire(struct agent_gw *g)
{
	g->retired = 1;
	agent_gw_shutdown(g);
	if (g->tun == NULL) {
		log_info("gateway %s: dropped by the reload", g->name);
		agent_gw_free(g);
		return;
	}
	log_info("gateway %s: dropped by the reload; its tunnel drains",
	    g->name);
	TAILQ_INSERT_TAIL(&g->a->retired, g, entry);
}

int
agent_gw_matches(const struct agent_gw *g, const struct cfg_remote *r)
{
	return strcmp(g->name, r->name) == 0 &&
	    strcmp(g->address, r->address) == 0 &&
	    memcmp(g->key, r->key, sizeof(g->key)) == 0 &&
	    agent_gw_str_eq(g->server_name, r->server_name);
}

/*
 * A reload kept this gateway.  The tunnel stays as it is (it got its
 * parameters when it started); a new dialer takes over if the connect
 * or reconnect timeouts changed, so the next tunnel uses them.
 */
void
agent_gw_reconfigure(struct agent_gw *g)
{
	const struct cfg_agent	*cfg = g->a->cfg;
	struct dial		*d;

	if (g->connect_ms == cfg->connect_timeout_ms &&
	    g->min_ms == cfg->reconnect_min_ms &&
	    g->max_ms == cfg->reconnect_max_ms)
		return;
	if ((d = agent_gw_dial_new(g)) == NULL) {
		log_warnx("gateway %s: out of memory; it redials with the "
		    "old timeouts", g->name);
		return;
	}
	dial_free(g->dial);
	g->dial = d;
	if (g->state == AGENT_GW_DIALING)
		dial_start(d);		/* instead of the old attempt */
}

const char *
agent_gw_name(const struct agent_gw *g)
{
	return g->name;
}

int
agent_gw_is_open(const struct agent_gw *g)
{
	return g->tun != NULL;
}

void
agent_gw_free(struct agent_gw *g)
{
	if (g == NULL)
		return;
	g->state = AGENT_GW_STOPPED;
	if (g->tun != NULL)
		tun_close(g->tun, "agent stopped");
	if (g->entry.tqe_prev != NULL)		/* on a->retired */
		TAILQ_REMOVE(&g->a->retired, g, entry);
	dial_free(g->dial);
	if (g->timer != NULL)
		event_free(g->timer);
	if (g->limit_ev != NULL)
		event_free(g->limit_ev);
	free(g->name);
	free(g->address);
	free(g->host);
	free(g->server_name);
	free(g->cluster);
	agent_gw_claim_clear(g);
	free(g);
}

static int
agent_gw_str_eq(const char *x, const char *y)
{
	if (x == NULL || y == NULL)
		return x == y;
	return strcmp(x, y) == 0;
}

static void
agent_gw_dialed(int fd, const char *addr, void *arg)
{
	struct agent_gw		*g = arg;
	const struct cfg_agent	*cfg = g->a->cfg;
	struct tun_params	 p;
	char			 label[128];
	const char		*sni;
	SSL			*ssl;

	snprintf(g->addr_text, sizeof(g->addr_text), "%s", addr);
	if ((ssl = SSL_new(g->a->tls_ctx)) == NULL) {
		close(fd);
		dial_later(g->dial, "TLS setup failed");
		return;
	}
	/*
	 * The gateway's name as SNI: a gateway reached on its TLS entry
	 * (port 443) sees ALPN porch/1 for its own name and takes us as a
	 * tunnel.  An IP address is no SNI; server_name then says it.
	 */
	sni = g->server_name;
	if (sni == NULL &&
	    inet_pton(AF_INET, g->host, &(struct in_addr){0}) != 1 &&
	    inet_pton(AF_INET6, g->host, &(struct in6_addr){0}) != 1)
		sni = g->host;
	if (sni != NULL)
		SSL_set_tlsext_host_name(ssl, sni);
	snprintf(label, sizeof(label), "gw=%s", g->name);
	memset(&p, 0, sizeof(p));
	p.role = TUN_ROLE_AGENT;
	p.key = &g->a->key;
	p.window = (uint32_t)cfg->stream_window;
	p.keepalive_ms = cfg->keepalive_ms;
	p.dead_peer_ms = cfg->dead_peer_ms;
	p.handshake_ms = cfg->connect_timeout_ms * 2;
	p.max_streams = 65536;
	p.name = cfg->name;
	p.label = label;
	p.instance = g->a->instance;
	g->state = AGENT_GW_TUNNEL;
	g->authed = 0;
	g->tun = tun_new(g->a->base, fd, ssl, 0, &p, &agent_gw_ops, g);
	if (g->tun == NULL) {
		g->state = AGENT_GW_DIALING;
		dial_later(g->dial, "out of memory");
	}
}

static void
agent_gw_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_gw	*g = arg;
	struct agent	*a = g->a;

	(void)fd;
	(void)what;
	if (g->retired && g->tun == NULL) {
		/* Its last tunnel is closed: nothing refers to it now. */
		agent_gw_free(g);
		agent_check_stopped(a);
		return;
	}
	if (g->close_pending) {
		g->close_pending = 0;
		if (g->tun != NULL)
			tun_close(g->tun, "gateway going away");
	}
}

static int
agent_gw_authed(struct tun *tun, const struct tun_hello *h, char *msg,
    size_t msglen, void *arg)
{
	struct agent_gw		*g = arg;
	struct agent		*a = g->a;
	struct tun_claim	 c;
	char			 got[KEY_TEXT_LEN], want[KEY_TEXT_LEN];
	size_t			 i;

	if (sodium_memcmp(h->pub, g->key, KEY_PUB_LEN) != 0) {
		log_warnx("gateway %s (%s) presented key %s, but %s pins %s "
		    "for it; refusing this gateway (check its 'key:')",
		    g->name, g->addr_text, key_pub_text(h->pub, got),
		    a->cfg->file, key_pub_text(g->key, want));
		snprintf(msg, msglen, "gateway key does not match the key "
		    "this agent pins");
		return -1;
	}
	g->authed = 1;
	dial_reset(g->dial);
	log_info("gateway %s (%s): tunnel up", g->name, g->addr_text);
	for (i = 0; i < a->nservices; i++) {
		/* A backend that is down (or not checked yet) is claimed
		 * when its checker says it is up. */
		if (!agent_svc_is_up(a->services[i])) {
			log_debug("gateway %s: not claiming %s: backend not "
			    "up", g->name, a->services[i]->cfg->hostname);
			continue;
		}
		agent_svc_claim(a->services[i], &c);
		agent_gw_claim_send(g, tun, TUN_CLAIM, &c);
	}
	/* Certificate orders in progress: their probes come here too. */
	agent_acme_foreach_name(a, agent_gw_claim_acme, tun);
	agent_acme_kick(a);
	agent_dns_changed(a);
	return 0;
}

/* A name being validated: claim it unless its service's claim, sent
 * just before, already carried the ACME kinds. */
static void
agent_gw_claim_acme(const char *name, void *arg)
{
	struct tun		*tun = arg;
	struct agent_gw		*g = tun_arg(tun);
	struct agent_service	*svc;
	struct tun_claim	 c;

	if ((svc = agent_svc_lookup(g->a, name)) != NULL &&
	    agent_svc_is_up(svc))
		return;
	if (agent_svc_claim_for(g->a, name, &c) != 0)
		agent_gw_claim_send(g, tun, TUN_CLAIM, &c);
}

void
agent_gw_announce(struct agent_gw *g, const struct agent_service *svc,
    int up)
{
	struct tun_claim	c;

	agent_svc_claim(svc, &c);
	/* A withdrawn service still answers a certificate order's probes. */
	if (!up)
		c.kinds &= TUN_KINDS_ACME;
	agent_gw_send_claim(g, &c);
}

void
agent_gw_send_claim(struct agent_gw *g, const struct tun_claim *c)
{
	int	up = c->kinds != 0;

	if (g->tun == NULL || !g->authed || !tun_is_ready(g->tun))
		return;		/* claimed, if up, when the tunnel is */
	if (up && g->a->stopping)
		return;		/* draining: nothing new */
	if (agent_gw_claim_send(g, g->tun, up ? TUN_CLAIM : TUN_UNCLAIM,
	    c) == -1)
		return;
	if (!up)
		log_info("gateway %s: withdrew %s", g->name, c->name);
}

static void
agent_gw_claim(struct tun *tun, uint8_t type, const struct tun_claim *c,
    void *arg)
{
	struct agent_gw		*g = arg;
	struct agent_gw_claim	*cl;

	(void)tun;
	if (type != TUN_CLAIM_RESULT)
		return;
	/*
	 * Also unasked: a gateway reload granted a name it had refused.
	 * A result for a name never claimed on this tunnel means nothing,
	 * and is not logged: a gateway could flood the log with them.
	 */
	if ((cl = agent_gw_claim_find(g, c->name)) == NULL) {
		log_debug("gateway %s: result for unclaimed name %s ignored",
		    g->name, c->name[0] ? c->name : "?");
		return;
	}
	cl->state = c->status == TUN_CLAIM_OK ? AGENT_GW_CLAIM_OK :
	    AGENT_GW_CLAIM_REFUSED;
	snprintf(cl->msg, sizeof(cl->msg), "%s",
	    c->status == TUN_CLAIM_OK ? "" : c->msg);
	agent_acme_claim_result(g->a, g->name, c->name,
	    c->status == TUN_CLAIM_OK);
	agent_dns_changed(g->a);
	switch (c->status) {
	case TUN_CLAIM_OK:
		log_info("gateway %s: serving %s", g->name, c->name);
		break;
	case TUN_CLAIM_LIMIT:
		/* Thousands of names may hit it at once: one line. */
		if (g->limit_refused++ == 0) {
			struct timeval tv = { 1, 0 };

			snprintf(g->limit_first, sizeof(g->limit_first), "%s",
			    c->name[0] ? c->name : "?");
			snprintf(g->limit_msg, sizeof(g->limit_msg), "%s",
			    c->msg);
			evtimer_add(g->limit_ev, &tv);
		}
		break;
	case TUN_CLAIM_INVALID:
		log_warnx("gateway %s refused hostname %s: %s; check the "
		    "service's hostname in %s", g->name,
		    c->name[0] ? c->name : "?", c->msg, g->a->cfg->file);
		break;
	default:
		log_warnx("gateway %s refused hostname %s: %s; ask the "
		    "gateway's operator to grant it to this agent's key",
		    g->name, c->name[0] ? c->name : "?", c->msg);
		break;
	}
}

static void
agent_gw_limit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	agent_gw_limit_log(arg);
}

/* The names refused over the gateway's limit since the last line. */
static void
agent_gw_limit_log(struct agent_gw *g)
{
	if (g->limit_refused == 0)
		return;
	log_warnx("gateway %s refused %u hostname%s (%s%s): %s; serve fewer "
	    "names through this gateway, or ask its operator to raise "
	    "limits.claims_per_tunnel", g->name, g->limit_refused,
	    g->limit_refused == 1 ? "" : "s", g->limit_first,
	    g->limit_refused > 1 ? " and others" : "", g->limit_msg);
	g->limit_refused = 0;
	evtimer_del(g->limit_ev);
}

/*
 * Streams over the agent's limit, or over this gateway's share of it,
 * are reset with "limit": the gateway replays the visitor to another
 * replica, and one gateway's visitors cannot take all of the agent.
 */
static void
agent_gw_open(struct tun *tun, struct tun_stream *s, const struct tun_open *o,
    void *arg)
{
	struct agent_gw	*g = arg;
	struct agent	*a = g->a;
	struct agent_gw	*r;
	unsigned	 total = 0, limit, share;
	char		 msg[256];
	size_t		 i;

	for (i = 0; i < a->ngws; i++)
		if (a->gws[i]->tun != NULL)
			total += tun_stream_count(a->gws[i]->tun);
	TAILQ_FOREACH(r, &a->retired, entry)
		if (r->tun != NULL)
			total += tun_stream_count(r->tun);
	limit = agent_gw_stream_limit(a);
	share = agent_gw_share_limit(a);
	if (total > limit) {
		snprintf(msg, sizeof(msg), "agent at its limit of %u streams "
		    "(limits.max_streams)", limit);
		tun_stream_reset(s, TUN_E_LIMIT, msg);
		return;
	}
	if (tun_stream_count(tun) > share) {
		snprintf(msg, sizeof(msg), "gateway %s has its share of %u of "
		    "the agent's %u streams (limits.gateway_share)", g->name,
		    share, limit);
		tun_stream_reset(s, TUN_E_LIMIT, msg);
		return;
	}
	agent_svc_open(a, tun, s, o);
}

unsigned
agent_gw_stream_limit(const struct agent *a)
{
	unsigned	limit = a->cfg->max_streams;

	if (a->fd_streams != 0 && a->fd_streams < limit)
		limit = a->fd_streams;
	return limit;
}

unsigned
agent_gw_share_limit(const struct agent *a)
{
	unsigned long long	share = a->cfg->gateway_share;

	if (share == 0)
		share = a->cfg->ngateways > 1 ? 50 : 100;
	share = share * agent_gw_stream_limit(a) / 100;
	return share > 0 ? (unsigned)share : 1;
}

static void
agent_gw_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	struct agent_gw	*g = arg;

	if (r->code == TUN_E_DUPLICATE) {
		/* Retrying soon would only cost the other agent a probe. */
		log_warnx("gateway %s refused this agent: %s. Is a copy of "
		    "%s running elsewhere? Each replica needs a key of its "
		    "own (porchctl keygen), admitted on the gateways",
		    g->name, r->msg, g->a->cfg->identity);
		g->duplicate = 1;
		tun_close(tun, "refused: another agent uses this key");
		return;
	}
	log_info("gateway %s is going away: %s", g->name, r->msg);
	/* Nothing new arrives here; finish what is open, then reconnect. */
	if (tun_stream_count(tun) == 0)
		tun_close(tun, "gateway going away");
}

static void
agent_gw_stream_closed(struct tun *tun, struct tun_stream *s,
    const char *reason, void *arg)
{
	struct agent_gw	*g = arg;
	struct timeval	 now = { 0, 0 };

	agent_stream_closed(s, reason);		/* its owner frees it */
	/* The last stream of a draining tunnel: close it, but not from
	 * inside the stream's own teardown. */
	if (tun_is_draining(tun) && tun_stream_count(tun) == 1 &&
	    g->state != AGENT_GW_STOPPED && !g->a->stopping &&
	    !g->close_pending) {
		g->close_pending = 1;
		event_add(g->timer, &now);
	}
}

/*
 * CLUSTER: where this gateway and its live peers are.  A malformed one
 * is logged and the view kept (PROTOCOL §4.9); a gateway never sends
 * it to a dialer it has not admitted, so it comes after our HELLO.
 */
static void
agent_gw_frame(struct tun *tun, const struct tun_frame *f, void *arg)
{
	/* One frame at a time (one thread): a scratch view, then only
	 * what it holds is kept (a tunnel is not 16 KiB heavier for a
	 * 64-gateway array).  Kept without dns: too: a reload may add it. */
	static struct tun_gw_info	 view[TUN_CLUSTER_GW_MAX];
	struct agent_gw			*g = arg;
	struct tun_gw_info		*keep;
	size_t				 n;

	(void)tun;
	if (f->type != TUN_CLUSTER)
		return;
	if (tun_cluster_parse(f, view, &n) == -1) {
		log_warnx("gateway %s: malformed CLUSTER frame ignored",
		    g->name);
		return;
	}
	if (n > 0 && (keep = reallocarray(g->cluster, n,
	    sizeof(*keep))) == NULL) {
		log_warnx("gateway %s: out of memory for its CLUSTER view",
		    g->name);
		return;
	}
	if (n > 0) {
		g->cluster = keep;
		memcpy(g->cluster, view, n * sizeof(*keep));
	}
	g->ncluster = n;
	g->has_cluster = 1;
	agent_dns_changed(g->a);
}

size_t
agent_gw_cluster(const struct agent_gw *g, const struct tun_gw_info **out)
{
	*out = g->cluster;
	return g->has_cluster ? g->ncluster : 0;
}

int
agent_gw_has_cluster(const struct agent_gw *g)
{
	return g->has_cluster;
}

const uint8_t *
agent_gw_key(const struct agent_gw *g)
{
	return g->key;
}

static void
agent_gw_closed(struct tun *tun, const char *reason, void *arg)
{
	struct agent_gw	*g = arg;
	struct timeval	 now = { 0, 0 };
	char		 why[300], rtt[32];

	g->tun = NULL;
	g->close_pending = 0;
	agent_gw_claim_clear(g);	/* the gateway forgot them too */
	agent_gw_limit_log(g);
	g->ncluster = 0;		/* its view came with the tunnel */
	g->has_cluster = 0;
	agent_dns_changed(g->a);
	if (g->retired) {
		log_info("gateway %s (dropped by the reload): tunnel "
		    "closed: %s", g->name, reason);
		event_add(g->timer, &now);	/* freed from the loop */
		return;
	}
	if (g->state == AGENT_GW_STOPPED || g->a->stopping) {
		g->state = AGENT_GW_STOPPED;
		agent_check_stopped(g->a);
		return;
	}
	if (g->authed || agent_gw_busy(reason, g->connect_ms, why,
	    sizeof(why)) == NULL)
		snprintf(why, sizeof(why), "tunnel %s: %s (last %s)",
		    g->authed ? "lost" : "failed", reason,
		    tun_rtt_text(tun, rtt, sizeof(rtt)));
	g->state = AGENT_GW_DIALING;
	if (g->duplicate) {
		g->duplicate = 0;
		dial_later_floor(g->dial, why, AGENT_GW_DUPLICATE_RETRY_MS);
		return;
	}
	dial_later(g->dial, why);	/* after a working tunnel: quickly */
}

/*
 * A tunnel that ended before the gateway answered the TLS handshake:
 * a gateway at its limit of handshakes in progress closes or leaves
 * waiting what it cannot take.  Say so in words, not as a TLS error.
 * NULL: some other failure.
 */
static const char *
agent_gw_busy(const char *reason, unsigned connect_ms, char *buf,
    size_t len)
{
	if (strstr(reason, "during TLS handshake") != NULL &&
	    (strstr(reason, "closed by peer") != NULL ||
	    strstr(reason, "reset by peer") != NULL ||
	    strstr(reason, "unexpected eof") != NULL)) {
		snprintf(buf, len, "gateway busy: it closed the connection "
		    "before the TLS handshake (too many agents connecting "
		    "at once?)");
		return buf;
	}
	if (strstr(reason, "handshake timeout (TLS not finished)") != NULL) {
		snprintf(buf, len, "gateway busy: it did not answer the TLS "
		    "handshake within %u s", connect_ms * 2 / 1000);
		return buf;
	}
	return NULL;
}

int
agent_gw_is_up(const struct agent_gw *g)
{
	return g->tun != NULL && g->authed && tun_is_ready(g->tun);
}

json_t *
agent_gw_status(const struct agent_gw *g)
{
	double	rtt = g->tun != NULL ? tun_rtt_ms(g->tun) : -1;

	return json_pack("{s:s, s:s, s:s, s:i, s:o}", "gateway", g->name,
	    "address", g->address, "state", g->tun == NULL ? "connecting" :
	    !g->authed ? "handshake" : tun_is_draining(g->tun) ? "draining" :
	    "up", "streams", (json_int_t)(g->tun != NULL ?
	    tun_stream_count(g->tun) : 0),
	    "rtt_ms", rtt < 0 ? json_null() : json_real(rtt));
}

const char *
agent_gw_claim_state(const struct agent_gw *g, const char *name,
    const char **msg)
{
	const struct agent_gw_claim	*cl;

	*msg = "";
	if (!agent_gw_is_up(g))
		return "not connected";
	if ((cl = agent_gw_claim_find(g, name)) == NULL)
		return "not claimed";
	switch (cl->state) {
	case AGENT_GW_CLAIM_OK:
		return "claimed";
	case AGENT_GW_CLAIM_REFUSED:
		*msg = cl->msg;
		return "refused";
	default:
		return "pending";
	}
}

/* Send a CLAIM or UNCLAIM on tun and track it for the status page. */
static int
agent_gw_claim_send(struct agent_gw *g, struct tun *tun, uint8_t type,
    const struct tun_claim *c)
{
	struct agent_gw_claim	*cl;

	if (tun_send_claim(tun, type, c) == -1)
		return -1;
	if (type == TUN_UNCLAIM) {
		agent_gw_claim_drop(g, c->name);
		return 0;
	}
	if ((cl = agent_gw_claim_find(g, c->name)) != NULL) {
		/* An update of a granted claim stays granted meanwhile. */
		if (cl->state == AGENT_GW_CLAIM_REFUSED)
			cl->state = AGENT_GW_CLAIM_PENDING;
		return 0;
	}
	/* Out of memory: only the status misses it. */
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return 0;
	snprintf(cl->name, sizeof(cl->name), "%s", c->name);
	cl->state = AGENT_GW_CLAIM_PENDING;
	cl->te.hash = name_hash(cl->name);
	if (ntab_insert(&g->claims, &cl->te) == -1)
		free(cl);
	return 0;
}

/* By name in a hash: an agent may claim ten thousand names. */
static struct agent_gw_claim *
agent_gw_claim_find(const struct agent_gw *g, const char *name)
{
	struct ntab_entry	*e;
	struct agent_gw_claim	*cl;
	unsigned		 h = name_hash(name);

	for (e = ntab_chain(&g->claims, h); e != NULL; e = e->next) {
		cl = NTAB_ITEM(e, struct agent_gw_claim, te);
		if (e->hash == h && strcmp(cl->name, name) == 0)
			return cl;
	}
	return NULL;
}

static void
agent_gw_claim_drop(struct agent_gw *g, const char *name)
{
	struct agent_gw_claim	*cl;

	if ((cl = agent_gw_claim_find(g, name)) == NULL)
		return;
	ntab_remove(&g->claims, &cl->te);
	free(cl);
}

/* Forget every claim (the tunnel is gone, or g). */
static void
agent_gw_claim_clear(struct agent_gw *g)
{
	struct ntab_entry	*e, *next;

	for (e = ntab_first(&g->claims); e != NULL; e = next) {
		next = ntab_next(&g->claims, e);
		free(NTAB_ITEM(e, struct agent_gw_claim, te));
	}
	ntab_clear(&g->claims);
}
