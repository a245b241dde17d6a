/* SPDX-License-Identifier: ISC */
/*
 * Streams from the gateways to the home backends: find the service the
 * visitor asked for, dial its backend under a deadline, optionally write
 * a PROXY header, then relay.  A backend that refuses or does not answer
 * becomes a stream reset, so the gateway closes the visitor at once.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "addr.h"
#include "agent.h"
#include "log.h"

/* A backend connection in progress; freed once attached or reset. */
struct agent_dial {
	struct agent			*a;
	struct tun_stream		*s;
	struct bufferevent		*bev;
	const struct agent_service	*svc;
	const struct agent_backend	*be;
	struct tun_open			 o;
};

static int	agent_svc_resolve(const char *, struct agent_backend *, char *,
		    size_t);
static const struct agent_service *agent_svc_find(struct agent *,
		    const char *);
static void	agent_svc_dial_cb(struct bufferevent *, short, void *);
static void	agent_svc_health_cb(const struct agent_service *, int, void *);

int
agent_svc_init(struct agent *a, char *err, size_t errlen)
{
	const struct cfg_agent	*cfg = a->cfg;
	struct agent_service	*svc;
	size_t			 i;

	a->services = calloc(cfg->nservices, sizeof(*a->services));
	if (a->services == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->nservices = cfg->nservices;
	for (i = 0; i < cfg->nservices; i++) {
		svc = &a->services[i];
		svc->cfg = &cfg->services[i];
		if (svc->cfg->tls_backend != NULL &&
		    agent_svc_resolve(svc->cfg->tls_backend, &svc->tls, err,
		    errlen) == -1)
			return -1;
		if (svc->cfg->http_backend != NULL &&
		    agent_svc_resolve(svc->cfg->http_backend, &svc->http, err,
		    errlen) == -1)
			return -1;
	}
	return 0;
}

void
agent_svc_clear(struct agent *a)
{
	agent_svc_stop(a);
	free(a->services);
	a->services = NULL;
	a->nservices = 0;
}

void
agent_svc_start(struct agent *a)
{
	struct agent_service	*svc;
	size_t			 i;

	for (i = 0; i < a->nservices; i++) {
		svc = &a->services[i];
		if (svc->cfg->health.check == CFG_CHECK_NONE)
			continue;
		svc->health = agent_health_new(a->base, svc,
		    agent_svc_health_cb, a);
		if (svc->health == NULL)
			fatal("health checker for %s", svc->cfg->hostname);
		agent_health_start(svc->health);
	}
}

void
agent_svc_stop(struct agent *a)
{
	size_t	i;

	for (i = 0; i < a->nservices; i++) {
		agent_health_free(a->services[i].health);
		a->services[i].health = NULL;
	}
}

int
agent_svc_is_up(const struct agent_service *svc)
{
	return svc->health == NULL ||
	    agent_health_state(svc->health) == AGENT_HEALTH_UP;
}

/* A backend came up or went down: tell every gateway. */
static void
agent_svc_health_cb(const struct agent_service *svc, int up, void *arg)
{
	struct agent	*a = arg;
	size_t		 i;

	for (i = 0; i < a->ngws; i++)
		agent_gw_announce(a->gws[i], svc, up);
}

uint8_t
agent_svc_kinds(const struct agent_service *svc)
{
	return (svc->tls.sslen ? TUN_KIND_TLS : 0) |
	    (svc->http.sslen ? TUN_KIND_HTTP : 0);
}

void
agent_svc_claim(const struct agent_service *svc, struct tun_claim *c)
{
	memset(c, 0, sizeof(*c));
	c->kinds = agent_svc_kinds(svc);
	c->priority = (uint8_t)svc->cfg->priority;
	c->policy = svc->cfg->policy == CFG_POLICY_BALANCE ?
	    TUN_POLICY_BALANCE : TUN_POLICY_FAILOVER;
	snprintf(c->name, sizeof(c->name), "%s", svc->cfg->hostname);
}

void
agent_svc_open(struct agent *a, struct tun *tun, struct tun_stream *s,
    const struct tun_open *o)
{
	const struct agent_service	*svc;
	const struct agent_backend	*be;
	struct agent_dial		*d;
	struct timeval			 tv;
	char				 msg[512], label[512], peer[64];
	struct sockaddr_storage		 ss;
	unsigned			 ms = a->cfg->connect_timeout_ms;

	if ((svc = agent_svc_find(a, o->name)) == NULL) {
		snprintf(msg, sizeof(msg), "no service for %s on this agent",
		    o->name);
		tun_stream_reset(s, TUN_E_NO_SERVICE, msg);
		return;
	}
	be = o->kind == TUN_KIND_TLS ? &svc->tls : &svc->http;
	if (be->sslen == 0) {
		snprintf(msg, sizeof(msg), "service %s has no %s backend",
		    svc->cfg->hostname, o->kind == TUN_KIND_TLS ? "tls" :
		    "http");
		tun_stream_reset(s, TUN_E_NO_SERVICE, msg);
		return;
	}
	tun_addr_to_ss(&o->src, &ss);
	snprintf(label, sizeof(label), "%s visitor=%s sni=%s backend=%s",
	    tun_label(tun), ss.ss_family == AF_UNSPEC ? "-" :
	    addr_fmt((struct sockaddr *)&ss, peer, sizeof(peer)), o->name,
	    be->text);
	tun_stream_set_label(s, label);
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	d->a = a;
	d->s = s;
	d->svc = svc;
	d->be = be;
	d->o = *o;
	d->bev = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (d->bev == NULL) {
		free(d);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	tun_stream_set_udata(s, d);
	bufferevent_setcb(d->bev, NULL, NULL, agent_svc_dial_cb, d);
	/* The write timeout bounds the connect; cleared once connected. */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(d->bev, NULL, &tv);
	if (bufferevent_socket_connect(d->bev, (const struct sockaddr *)&be->ss,
	    (int)be->sslen) == -1) {
		int e = errno;

		snprintf(msg, sizeof(msg), "backend %s: %s", be->text,
		    strerror(e));
		log_warnx("%s", msg);
		tun_stream_reset(s, e == ECONNREFUSED ? TUN_E_REFUSED :
		    TUN_E_UNREACHABLE, msg);	/* frees d */
	}
}

/* The stream is going away: drop a dial still in progress. */
void
agent_svc_stream_closed(struct tun_stream *s)
{
	struct agent_dial	*d = tun_stream_udata(s);

	if (d == NULL)
		return;
	bufferevent_free(d->bev);
	free(d);
}

static void
agent_svc_dial_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_dial	*d = arg;
	struct tun_stream	*s = d->s;
	uint8_t			 hdr[AGENT_PROXY_MAX];
	char			 msg[512];
	size_t			 n;
	int			 on = 1, e;

	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_set_timeouts(bev, NULL, NULL);
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &on, sizeof(on));
		n = agent_proxy_header(d->svc->cfg->proxy_protocol, &d->o.src,
		    &d->o.dst, hdr);
		if (n > 0)
			bufferevent_write(bev, hdr, n);
		/* The stream owns the backend connection from here. */
		tun_stream_set_udata(s, NULL);
		free(d);
		tun_stream_attach(s, bev);
		return;
	}
	e = EVUTIL_SOCKET_ERROR();
	if (what & BEV_EVENT_TIMEOUT)
		e = ETIMEDOUT;
	snprintf(msg, sizeof(msg), "backend %s: %s", d->be->text,
	    strerror(e));
	log_warnx("%s (visitor for %s gets closed)", msg, d->o.name);
	tun_stream_reset(s, e == ECONNREFUSED ? TUN_E_REFUSED :
	    TUN_E_UNREACHABLE, msg);	/* frees d and bev */
}

/* Exact names first, then a "*.parent" service one label up. */
static const struct agent_service *
agent_svc_find(struct agent *a, const char *name)
{
	const char	*dot;
	size_t		 i;

	for (i = 0; i < a->nservices; i++)
		if (strcmp(a->services[i].cfg->hostname, name) == 0)
			return &a->services[i];
	if ((dot = strchr(name, '.')) == NULL)
		return NULL;
	for (i = 0; i < a->nservices; i++) {
		const char *h = a->services[i].cfg->hostname;

		if (h[0] == '*' && strcmp(h + 1, dot) == 0)
			return &a->services[i];
	}
	/* The gateway may route a wildcard claim for the exact name too. */
	for (i = 0; i < a->nservices; i++)
		if (name_pattern_covers(a->services[i].cfg->hostname, name))
			return &a->services[i];
	return NULL;
}

/* Backends are local and named once: resolve them at startup. */
static int
agent_svc_resolve(const char *text, struct agent_backend *be, char *err,
    size_t errlen)
{
	struct addrinfo	 hints, *res = NULL;
	char		 host[256], port[8], why[128];
	unsigned	 p;
	int		 rc;

	if (addr_split(text, host, sizeof(host), &p, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "backend '%s': %s", text, why);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL) {
		snprintf(err, errlen, "backend '%s': cannot resolve %s: %s",
		    text, host, gai_strerror(rc));
		return -1;
	}
	memcpy(&be->ss, res->ai_addr, res->ai_addrlen);
	be->sslen = res->ai_addrlen;
	be->text = text;
	freeaddrinfo(res);
	return 0;
}
