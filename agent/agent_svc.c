/* SPDX-License-Identifier: ISC */
/*
 * Streams from the gateways to the home backends: find the service the
 * visitor asked for, dial its backend under a deadline, optionally write
 * a PROXY header, then relay.  A backend that refuses or does not answer
 * becomes a stream reset, so the gateway closes the visitor at once.
 * Each service has a cap on its backend connections (max_connections):
 * a stream over it is reset with "limit", which the gateway replays to
 * another replica, as it does when the descriptors run out.
 * The services themselves live here too, and move onto a reloaded config
 * without touching the streams in flight.  They are found by hostname
 * in a hash table (an agent may serve thousands of names).
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "addr.h"
#include "agent.h"
#include "log.h"

#define AGENT_DIAL_TEXT	272	/* "host:port" of the backend, for logs */

/*
 * The backend connections of a service, counted for max_connections.
 * Shared by the service and its streams, which may outlive it (reload).
 */
struct agent_svc_conns {
	unsigned			 n;
	unsigned			 refs;
};

/*
 * A stream to a backend: its place under the service's cap and, until
 * connected, the connection being made.  The stream's owner, freed when
 * the stream ends.  It copies what it needs of its service, which a
 * reload may free.
 */
struct agent_dial {
	struct agent_stream		 own;
	struct tun_stream		*s;
	struct agent_svc_conns		*conns;
	struct bufferevent		*bev;	/* NULL once the stream's */
	enum cfg_proxy_proto		 proxy;
	struct tun_open			 o;
	char				 backend[AGENT_DIAL_TEXT];
};

/* One service of a config being loaded: resolved, not yet in use. */
struct agent_svc_next {
	const struct cfg_service	*cfg;
	struct agent_service		*old;	/* same hostname, or NULL */
	struct agent_service		*fresh;	/* old == NULL: the new one */
	int				 resolved; /* tls/http below are new */
	struct agent_backend		 tls;
	struct agent_backend		 http;
};

/* Services by hostname: open addressing, at most half full. */
struct agent_svc_slot {
	struct agent_service	*svc;
	size_t			 pos;		/* in a->services: config order */
};

struct agent_svc_index {
	struct agent_svc_slot	*slots;
	size_t			 mask;		/* slots - 1, a power of two */
};

struct agent_svc_reload {
	struct agent_svc_next	*next;
	size_t			 n;
	struct agent_service	**services;	/* the new a->services */
};

static int	agent_svc_resolve(struct agent *, const char *,
		    struct agent_backend *, char *, size_t);
static void	agent_svc_backend_clear(struct agent_backend *);
static void	agent_svc_free(struct agent_service *);
static int	agent_svc_check(struct agent_service *);
static void	agent_svc_announce(struct agent_service *, int);
static int	agent_svc_str_eq(const char *, const char *);
static int	agent_svc_health_eq(const struct cfg_health *,
		    const struct cfg_health *);
static struct agent_service *agent_svc_find(struct agent *, const char *);
static void	agent_svc_conns_put(struct agent_svc_conns *);
static int	agent_svc_dial(struct agent *, struct agent_dial *,
		    const struct agent_backend *);
static void	agent_svc_dial_cb(struct bufferevent *, short, void *);
static void	agent_svc_dial_closed(struct tun_stream *, const char *,
		    void *);
static void	agent_svc_index_build(struct agent *);
static void	agent_svc_index_free(struct agent *);
static const struct agent_svc_slot *agent_svc_index_get(struct agent *,
		    const char *);
static void	agent_svc_health_cb(const struct agent_service *, int, void *);

static const struct agent_stream_ops agent_svc_dial_ops = {
	.closed = agent_svc_dial_closed,
};

int
agent_svc_init(struct agent *a, char *err, size_t errlen)
{
	const struct cfg_agent	*cfg = a->cfg;
	struct agent_service	*svc;
	size_t			 i;

	a->services = calloc(cfg->nservices + 1, sizeof(*a->services));
	if (a->services == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < cfg->nservices; i++) {
		if ((svc = calloc(1, sizeof(*svc))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		a->services[a->nservices++] = svc;
		svc->a = a;
		svc->cfg = &cfg->services[i];
		svc->up = svc->cfg->health.check == CFG_CHECK_NONE;
		if (svc->cfg->tls_backend != NULL &&
		    agent_svc_resolve(a, svc->cfg->tls_backend, &svc->tls,
		    err, errlen) == -1)
			return -1;
		if (svc->cfg->http_backend != NULL &&
		    agent_svc_resolve(a, svc->cfg->http_backend, &svc->http,
		    err, errlen) == -1)
			return -1;
	}
	agent_svc_index_build(a);
	return 0;
}

void
agent_svc_clear(struct agent *a)
{
	size_t	i;

	agent_svc_index_free(a);
	for (i = 0; i < a->nservices; i++)
		agent_svc_free(a->services[i]);
	free(a->services);
	a->services = NULL;
	a->nservices = 0;
}

void
agent_svc_start(struct agent *a)
{
	size_t	i;

	for (i = 0; i < a->nservices; i++)
		if (agent_svc_check(a->services[i]) == -1)
			fatal("health checker for %s",
			    a->services[i]->cfg->hostname);
}

void
agent_svc_stop(struct agent *a)
{
	size_t	i;

	for (i = 0; i < a->nservices; i++) {
		agent_health_free(a->services[i]->health);
		a->services[i]->health = NULL;
	}
}

struct agent_svc_reload *
agent_svc_reload_prepare(struct agent *a, const struct cfg_agent *cfg,
    char *err, size_t errlen)
{
	struct agent_svc_reload	*r;
	struct agent_svc_next	*nx;
	const struct cfg_service *c;
	size_t			 i;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->next = calloc(cfg->nservices + 1, sizeof(*r->next))) == NULL ||
	    (r->services = calloc(cfg->nservices + 1,
	    sizeof(*r->services))) == NULL)
		goto nomem;
	for (i = 0; i < cfg->nservices; i++) {
		nx = &r->next[r->n++];
		c = nx->cfg = &cfg->services[i];
		nx->old = agent_svc_lookup(a, c->hostname);
		if (nx->old == NULL &&
		    (nx->fresh = calloc(1, sizeof(*nx->fresh))) == NULL)
			goto nomem;
		/* Unchanged backends keep their address: no lookup that
		 * could fail the reload. */
		if (nx->old != NULL &&
		    agent_svc_str_eq(nx->old->cfg->tls_backend,
		    c->tls_backend) &&
		    agent_svc_str_eq(nx->old->cfg->http_backend,
		    c->http_backend))
			continue;
		nx->resolved = 1;
		if (c->tls_backend != NULL &&
		    agent_svc_resolve(a, c->tls_backend, &nx->tls, err,
		    errlen) == -1)
			goto fail;
		if (c->http_backend != NULL &&
		    agent_svc_resolve(a, c->http_backend, &nx->http, err,
		    errlen) == -1)
			goto fail;
	}
	return r;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	agent_svc_reload_abort(r);
	return NULL;
}

int
agent_svc_reload_names(struct agent *a, const struct cfg_agent *cfg,
    struct agent_resolve *res)
{
	const struct cfg_service	*c, *was;
	struct agent_service		*old;
	size_t				 i;

	for (i = 0; i < cfg->nservices; i++) {
		c = &cfg->services[i];
		old = agent_svc_lookup(a, c->hostname);
		was = old != NULL ? old->cfg : NULL;
		/* As in prepare: unchanged backends are not looked up. */
		if (was == NULL ||
		    !agent_svc_str_eq(was->tls_backend, c->tls_backend) ||
		    !agent_svc_str_eq(was->http_backend, c->http_backend)) {
			if (c->tls_backend != NULL &&
			    agent_resolve_add(res, c->tls_backend) == -1)
				return -1;
			if (c->http_backend != NULL &&
			    agent_resolve_add(res, c->http_backend) == -1)
				return -1;
		}
		if (c->h2c_backend != NULL && (was == NULL ||
		    !agent_svc_str_eq(was->h2c_backend, c->h2c_backend)) &&
		    agent_resolve_add(res, c->h2c_backend) == -1)
			return -1;
	}
	return 0;
}

void
agent_svc_reload_abort(struct agent_svc_reload *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		free(r->next[i].fresh);
		agent_svc_backend_clear(&r->next[i].tls);
		agent_svc_backend_clear(&r->next[i].http);
	}
	free(r->next);
	free(r->services);
	free(r);
}

void
agent_svc_reload_apply(struct agent *a, struct agent_svc_reload *r,
    struct agent_reload_count *cnt)
{
	struct agent_svc_next		*nx;
	struct agent_service		*svc;
	const struct cfg_service	*was;
	uint8_t				 kinds;
	size_t				 i, j;
	int				 kept, restart, reclaim, was_up;

	memset(cnt, 0, sizeof(*cnt));
	/* Marks the services kept (an old one is kept at most once). */
	for (j = 0; j < r->n; j++)
		if (r->next[j].old != NULL)
			r->next[j].old->kept = 1;
	/* Some are freed below: no lookup until the new index is up. */
	agent_svc_index_free(a);
	/* Gone from the config: withdraw it where it is claimed. */
	for (i = 0; i < a->nservices; i++) {
		svc = a->services[i];
		kept = svc->kept;
		svc->kept = 0;
		if (kept)
			continue;
		log_info("reload: service %s removed", svc->cfg->hostname);
		if (svc->up)
			agent_svc_announce(svc, 0);
		agent_svc_free(svc);
		cnt->removed++;
	}
	for (i = 0; i < r->n; i++) {
		nx = &r->next[i];
		if ((svc = nx->old) == NULL) {
			svc = nx->fresh;
			nx->fresh = NULL;
			svc->a = a;
			svc->cfg = nx->cfg;
			svc->tls = nx->tls;
			svc->http = nx->http;
			memset(&nx->tls, 0, sizeof(nx->tls));
			memset(&nx->http, 0, sizeof(nx->http));
			svc->up = svc->cfg->health.check == CFG_CHECK_NONE;
			r->services[i] = svc;
			cnt->added++;
			log_info("reload: service %s added",
			    svc->cfg->hostname);
			if (agent_svc_check(svc) == -1)
				log_warnx("health %s: out of memory; not "
				    "claimed", svc->cfg->hostname);
			else if (svc->up)
				agent_svc_announce(svc, 1);
			continue;
		}
		r->services[i] = svc;
		was = svc->cfg;
		kinds = agent_svc_kinds(svc);
		was_up = svc->up;
		restart = nx->resolved ||
		    !agent_svc_health_eq(&was->health, &nx->cfg->health);
		reclaim = was->priority != nx->cfg->priority ||
		    was->policy != nx->cfg->policy;
		if (!restart && !reclaim &&
		    was->proxy_protocol == nx->cfg->proxy_protocol) {
			svc->cfg = nx->cfg;	/* same service */
			continue;
		}
		cnt->changed++;
		if (restart) {
			/* Backends change under the checker: stop it first. */
			agent_health_free(svc->health);
			svc->health = NULL;
		}
		svc->cfg = nx->cfg;
		if (nx->resolved) {
			agent_svc_backend_clear(&svc->tls);
			agent_svc_backend_clear(&svc->http);
			svc->tls = nx->tls;
			svc->http = nx->http;
			memset(&nx->tls, 0, sizeof(nx->tls));
			memset(&nx->http, 0, sizeof(nx->http));
		}
		if (restart && svc->cfg->health.check == CFG_CHECK_NONE)
			svc->up = 1;
		log_info("reload: service %s changed%s", svc->cfg->hostname,
		    !restart || svc->cfg->health.check == CFG_CHECK_NONE ?
		    "" : svc->up ? "; its health checks restart, claim kept "
		    "until their first verdict" : "; its health checks "
		    "restart");
		if (restart && agent_svc_check(svc) == -1) {
			log_warnx("health %s: out of memory; withdrawing it",
			    svc->cfg->hostname);
			if (svc->up)
				agent_svc_announce(svc, 0);
			svc->up = 0;
			continue;
		}
		/* The gateway updates a claim in place. */
		if (svc->up && (!was_up || reclaim ||
		    kinds != agent_svc_kinds(svc)))
			agent_svc_announce(svc, 1);
	}
	free(a->services);
	a->services = r->services;
	a->nservices = r->n;
	r->services = NULL;
	agent_svc_reload_abort(r);
	agent_svc_index_build(a);
}

int
agent_svc_is_up(const struct agent_service *svc)
{
	return svc->up;
}

/* Start the service's checker, if it has a health section. */
static int
agent_svc_check(struct agent_service *svc)
{
	if (svc->cfg->health.check == CFG_CHECK_NONE)
		return 0;
	svc->health = agent_health_new(svc->a->base, svc,
	    agent_svc_health_cb, svc);
	if (svc->health == NULL)
		return -1;
	agent_health_start(svc->health);
	return 0;
}

/* A backend came up or went down: tell every gateway. */
static void
agent_svc_health_cb(const struct agent_service *csvc, int up, void *arg)
{
	struct agent_service	*svc = arg;

	(void)csvc;
	if (svc->up == up)
		return;		/* a restarted checker agreeing */
	svc->up = up;
	agent_svc_announce(svc, up);
}

static void
agent_svc_announce(struct agent_service *svc, int up)
{
	struct agent	*a = svc->a;
	size_t		 i;

	for (i = 0; i < a->ngws; i++)
		agent_gw_announce(a->gws[i], svc, up);
}

static void
agent_svc_free(struct agent_service *svc)
{
	if (svc == NULL)
		return;
	agent_health_free(svc->health);
	agent_svc_backend_clear(&svc->tls);
	agent_svc_backend_clear(&svc->http);
	agent_svc_conns_put(svc->conns);
	free(svc);
}

static void
agent_svc_conns_put(struct agent_svc_conns *c)
{
	if (c != NULL && --c->refs == 0)
		free(c);
}

void
agent_svc_conns_release(struct agent_svc_conns *c)
{
	if (c == NULL)
		return;
	c->n--;
	agent_svc_conns_put(c);
}

static void
agent_svc_backend_clear(struct agent_backend *be)
{
	free(be->text);
	memset(be, 0, sizeof(*be));
}

static int
agent_svc_str_eq(const char *x, const char *y)
{
	if (x == NULL || y == NULL)
		return x == y;
	return strcmp(x, y) == 0;
}

static int
agent_svc_health_eq(const struct cfg_health *x, const struct cfg_health *y)
{
	return x->check == y->check && x->interval_ms == y->interval_ms &&
	    x->timeout_ms == y->timeout_ms && x->rise == y->rise &&
	    x->fall == y->fall && x->expect == y->expect &&
	    agent_svc_str_eq(x->path, y->path);
}

uint8_t
agent_svc_kinds(const struct agent_service *svc)
{
	return (svc->tls.sslen || svc->cfg->tls_terminate ? TUN_KIND_TLS : 0) |
	    (svc->http.sslen ? TUN_KIND_HTTP : 0);
}

void
agent_svc_claim(const struct agent_service *svc, struct tun_claim *c)
{
	memset(c, 0, sizeof(*c));
	c->kinds = agent_svc_kinds(svc) |
	    agent_acme_kinds(svc->a, svc->cfg->hostname);
	c->priority = (uint8_t)svc->cfg->priority;
	c->policy = svc->cfg->policy == CFG_POLICY_BALANCE ?
	    TUN_POLICY_BALANCE : TUN_POLICY_FAILOVER;
	snprintf(c->name, sizeof(c->name), "%s", svc->cfg->hostname);
}

uint8_t
agent_svc_claim_for(struct agent *a, const char *name, struct tun_claim *c)
{
	struct agent_service	*svc;

	if ((svc = agent_svc_lookup(a, name)) != NULL) {
		agent_svc_claim(svc, c);
		if (!svc->up)
			c->kinds &= TUN_KINDS_ACME;
		return c->kinds;
	}
	/* An extra name of a certificate: claimed only to validate it. */
	memset(c, 0, sizeof(*c));
	c->kinds = agent_acme_kinds(a, name);
	c->priority = 100;
	c->policy = TUN_POLICY_FAILOVER;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c->kinds;
}

void
agent_svc_reclaim(struct agent *a, const char *name)
{
	struct tun_claim	c;
	size_t			i;

	agent_svc_claim_for(a, name, &c);
	for (i = 0; i < a->ngws; i++)
		agent_gw_send_claim(a->gws[i], &c);
}

void
agent_svc_open(struct agent *a, struct tun *tun, struct tun_stream *s,
    const struct tun_open *o)
{
	struct tun_open			 entry;
	struct agent_service		*svc;
	const struct agent_backend	*be = NULL;
	struct agent_dial		*d;
	char				 msg[512], label[512], peer[64];
	struct sockaddr_storage		 ss;
	int				 term;

	if (o->kind == TUN_KIND_ACME_HTTP || o->kind == TUN_KIND_ACME_TLS) {
		if (agent_acme_open(a, s, o) == 0)
			return;
		/* No order of ours: an ordinary visitor. */
		entry = *o;
		entry.kind = tun_kind_entry(o->kind);
		o = &entry;
	}
	if ((svc = agent_svc_find(a, o->name)) == NULL) {
		snprintf(msg, sizeof(msg), "no service for %s on this agent",
		    o->name);
		tun_stream_reset(s, TUN_E_NO_SERVICE, msg);
		return;
	}
	term = o->kind == TUN_KIND_TLS && svc->cfg->tls_terminate;
	if (!term) {
		be = o->kind == TUN_KIND_TLS ? &svc->tls : &svc->http;
		if (be->sslen == 0) {
			snprintf(msg, sizeof(msg), "service %s has no %s "
			    "backend", svc->cfg->hostname,
			    o->kind == TUN_KIND_TLS ? "tls" : "http");
			tun_stream_reset(s, TUN_E_NO_SERVICE, msg);
			return;
		}
	}
	if (svc->conns == NULL &&
	    (svc->conns = calloc(1, sizeof(*svc->conns))) != NULL)
		svc->conns->refs = 1;
	if (svc->conns == NULL) {
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	/* "limit": the gateway tries another replica with this visitor. */
	if (svc->conns->n >= svc->cfg->max_connections) {
		snprintf(msg, sizeof(msg), "service %s is at its limit of %u "
		    "backend connections (max_connections)",
		    svc->cfg->hostname, svc->cfg->max_connections);
		tun_stream_reset(s, TUN_E_LIMIT, msg);
		return;
	}
	/* The stream's place under the cap: its owner gives it back. */
	svc->conns->refs++;
	svc->conns->n++;
	if (term) {
		agent_term_open(a, tun, s, svc, o, svc->conns);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		agent_svc_conns_release(svc->conns);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	d->s = s;
	d->conns = svc->conns;
	/* From here a reset frees d. */
	agent_stream_own(s, &d->own, &agent_svc_dial_ops, d);
	tun_addr_to_ss(&o->src, &ss);
	/* An HTTP visitor named its site in Host, not in SNI. */
	snprintf(label, sizeof(label), "%s visitor=%s %s=%s backend=%s",
	    tun_label(tun), ss.ss_family == AF_UNSPEC ? "-" :
	    addr_fmt((struct sockaddr *)&ss, peer, sizeof(peer)),
	    o->kind == TUN_KIND_TLS ? "sni" : "host", o->name, be->text);
	tun_stream_set_label(s, label);
	d->proxy = svc->cfg->proxy_protocol;
	d->o = *o;
	snprintf(d->backend, sizeof(d->backend), "%s", be->text);
	agent_svc_dial(a, d, be);
}

/*
 * Connect d to be; on failure reset the stream (which frees d) and
 * return -1.  The socket's kernel buffers are sized to the stream
 * window: a backend that does not read then holds about a window in
 * the kernel besides the window the tunnel lets through, instead of
 * the megabytes TCP autotuning would grant it.
 */
static int
agent_svc_dial(struct agent *a, struct agent_dial *d,
    const struct agent_backend *be)
{
	struct timeval	 tv;
	char		 msg[512];
	unsigned	 ms = a->cfg->connect_timeout_ms;
	int		 fd, e, buf;

	fd = socket(be->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		e = errno;
		snprintf(msg, sizeof(msg), "backend %s: %s", be->text,
		    strerror(e));
		/* Out of descriptors: another replica may have some. */
		tun_stream_reset(d->s, e == EMFILE || e == ENFILE ||
		    e == ENOBUFS || e == ENOMEM ? TUN_E_LIMIT :
		    TUN_E_INTERNAL, msg);
		return -1;
	}
	buf = a->cfg->stream_window > INT_MAX ? INT_MAX :
	    (int)a->cfg->stream_window;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if ((d->bev = bufferevent_socket_new(a->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		tun_stream_reset(d->s, TUN_E_INTERNAL, "agent out of memory");
		return -1;
	}
	bufferevent_setcb(d->bev, NULL, NULL, agent_svc_dial_cb, d);
	/* The write timeout bounds the connect; cleared once connected. */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(d->bev, NULL, &tv);
	if (bufferevent_socket_connect(d->bev,
	    (const struct sockaddr *)&be->ss, (int)be->sslen) == -1) {
		e = errno;
		snprintf(msg, sizeof(msg), "backend %s: %s", be->text,
		    strerror(e));
		log_warnx("%s", msg);
		tun_stream_reset(d->s, e == ECONNREFUSED ? TUN_E_REFUSED :
		    TUN_E_UNREACHABLE, msg);	/* frees d */
		return -1;
	}
	return 0;
}

/* The stream is going away: drop a dial still in progress, and free
 * its place under the service's cap. */
static void
agent_svc_dial_closed(struct tun_stream *s, const char *reason, void *arg)
{
	struct agent_dial	*d = arg;

	(void)s;
	(void)reason;
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	agent_svc_conns_release(d->conns);
	free(d);
}

void
agent_svc_backend_up(struct bufferevent *bev, enum cfg_proxy_proto proxy,
    const struct tun_open *o)
{
	uint8_t	hdr[AGENT_PROXY_MAX];
	size_t	n;
	int	on = 1;

	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &on,
	    sizeof(on));
	if ((n = agent_proxy_header(proxy, &o->src, &o->dst, hdr)) > 0)
		bufferevent_write(bev, hdr, n);
}

static void
agent_svc_dial_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_dial	*d = arg;
	struct tun_stream	*s = d->s;
	char			 msg[512];
	int			 e;

	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_set_timeouts(bev, NULL, NULL);
		agent_svc_backend_up(bev, d->proxy, &d->o);
		/* The stream owns the backend connection from here (the
		 * attach may already end it); d stays, counting it. */
		d->bev = NULL;
		tun_stream_attach(s, bev);
		return;
	}
	e = EVUTIL_SOCKET_ERROR();
	if (what & BEV_EVENT_TIMEOUT)
		e = ETIMEDOUT;
	snprintf(msg, sizeof(msg), "backend %s: %s", d->backend,
	    strerror(e));
	log_warnx("%s (visitor for %s gets closed)", msg, d->o.name);
	tun_stream_reset(s, e == ECONNREFUSED ? TUN_E_REFUSED :
	    TUN_E_UNREACHABLE, msg);	/* frees d and bev */
}

/*
 * Exact names first, then a "*.parent" service one label up, then any
 * wildcard service covering the name (the earliest in the config).
 */
static struct agent_service *
agent_svc_find(struct agent *a, const char *name)
{
	const struct agent_svc_slot	*sl, *best = NULL;
	const char			*dot;
	char				 wild[NAME_MAX_LEN + 3];
	size_t				 i;

	if (a->svc_index != NULL) {
		if ((sl = agent_svc_index_get(a, name)) != NULL)
			return sl->svc;
		/* "*.parent" for each parent: one label up first. */
		for (dot = strchr(name, '.'); dot != NULL;
		    dot = strchr(dot + 1, '.')) {
			snprintf(wild, sizeof(wild), "*%s", dot);
			if ((sl = agent_svc_index_get(a, wild)) == NULL)
				continue;
			if (dot == strchr(name, '.'))
				return sl->svc;
			if (best == NULL || sl->pos < best->pos)
				best = sl;
		}
		return best != NULL ? best->svc : NULL;
	}
	/* Out of memory when the index was built: scan. */
	for (i = 0; i < a->nservices; i++)
		if (strcmp(a->services[i]->cfg->hostname, name) == 0)
			return a->services[i];
	if ((dot = strchr(name, '.')) == NULL)
		return NULL;
	for (i = 0; i < a->nservices; i++) {
		const char *h = a->services[i]->cfg->hostname;

		if (h[0] == '*' && strcmp(h + 1, dot) == 0)
			return a->services[i];
	}
	/* The gateway may route a wildcard claim for the exact name too. */
	for (i = 0; i < a->nservices; i++)
		if (name_pattern_covers(a->services[i]->cfg->hostname, name))
			return a->services[i];
	return NULL;
}

/* Backends are local: resolve them at startup and when a reload
 * changes them, never per stream. */
static int
agent_svc_resolve(struct agent *a, const char *text, struct agent_backend *be,
    char *err, size_t errlen)
{
	if (agent_backend_resolve(a, text, "backend", &be->ss, &be->sslen,
	    err, errlen) == -1)
		return -1;
	if ((be->text = strdup(text)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

struct agent_service *
agent_svc_lookup(struct agent *a, const char *name)
{
	const struct agent_svc_slot	*sl;
	size_t				 i;

	if (a->svc_index != NULL)
		return (sl = agent_svc_index_get(a, name)) != NULL ?
		    sl->svc : NULL;
	for (i = 0; i < a->nservices; i++)
		if (strcmp(a->services[i]->cfg->hostname, name) == 0)
			return a->services[i];
	return NULL;
}

static const struct agent_svc_slot *
agent_svc_index_get(struct agent *a, const char *name)
{
	struct agent_svc_index	*ix = a->svc_index;
	size_t			 h;

	for (h = name_hash(name) & ix->mask; ix->slots[h].svc != NULL;
	    h = (h + 1) & ix->mask)
		if (strcmp(ix->slots[h].svc->cfg->hostname, name) == 0)
			return &ix->slots[h];
	return NULL;
}

/* a->services as they are now; out of memory, lookups scan instead. */
static void
agent_svc_index_build(struct agent *a)
{
	struct agent_svc_index	*ix;
	size_t			 i, h, n = 16;

	agent_svc_index_free(a);
	while (n < 2 * a->nservices)
		n <<= 1;
	if ((ix = calloc(1, sizeof(*ix))) == NULL ||
	    (ix->slots = calloc(n, sizeof(*ix->slots))) == NULL) {
		free(ix);
		log_warnx("out of memory indexing the services; finding "
		    "them by a scan");
		return;
	}
	ix->mask = n - 1;
	for (i = 0; i < a->nservices; i++) {
		for (h = name_hash(a->services[i]->cfg->hostname) & ix->mask;
		    ix->slots[h].svc != NULL; h = (h + 1) & ix->mask)
			if (strcmp(ix->slots[h].svc->cfg->hostname,
			    a->services[i]->cfg->hostname) == 0)
				break;
		if (ix->slots[h].svc == NULL) {	/* the first one wins */
			ix->slots[h].svc = a->services[i];
			ix->slots[h].pos = i;
		}
	}
	a->svc_index = ix;
}

static void
agent_svc_index_free(struct agent *a)
{
	if (a->svc_index == NULL)
		return;
	free(a->svc_index->slots);
	free(a->svc_index);
	a->svc_index = NULL;
}
