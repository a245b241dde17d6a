/* SPDX-License-Identifier: ISC */
/*
 * One gateway as the agent sees it: resolve its name, dial it, run the
 * tunnel, claim every service, and after any failure try again with
 * exponential backoff and jitter.  Each gateway lives on its own; losing
 * one changes nothing for the others.
 */

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "agent.h"
#include "log.h"

#define AGENT_GW_MAX_ADDRS	8

enum agent_gw_state {
	AGENT_GW_IDLE,		/* waiting to (re)connect */
	AGENT_GW_RESOLVING,
	AGENT_GW_CONNECTING,	/* TCP connect in progress */
	AGENT_GW_TUNNEL,	/* tunnel up or handshaking */
	AGENT_GW_STOPPED,
};

struct agent_gw {
	struct agent		*a;
	const struct cfg_remote	*r;
	enum agent_gw_state	 state;
	struct tun		*tun;
	int			 authed;	/* this tunnel got that far */
	int			 close_pending;	/* drained after GOAWAY */
	unsigned		 failures;	/* in a row, for backoff */
	struct event		*timer;		/* backoff and connect deadline */
	struct event		*conn_ev;
	int			 fd;
	struct sockaddr_storage	 addrs[AGENT_GW_MAX_ADDRS];
	socklen_t		 lens[AGENT_GW_MAX_ADDRS];
	size_t			 naddrs, next_addr;
	char			 addr_text[64];	/* address being tried */
	char			 last_error[256];
};

static void	agent_gw_connect(struct agent_gw *);
static void	agent_gw_try_next(struct agent_gw *);
static void	agent_gw_resolved(int, const struct sockaddr_storage *,
		    const socklen_t *, size_t, void *);
static void	agent_gw_conn_cb(evutil_socket_t, short, void *);
static void	agent_gw_timer_cb(evutil_socket_t, short, void *);
static void	agent_gw_retry(struct agent_gw *, const char *);
static void	agent_gw_start_tunnel(struct agent_gw *);

static int	agent_gw_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	agent_gw_claim(struct tun *, uint8_t, const struct tun_claim *,
		    void *);
static void	agent_gw_open(struct tun *, struct tun_stream *,
		    const struct tun_open *, void *);
static void	agent_gw_goaway(struct tun *, const struct tun_reason *,
		    void *);
static void	agent_gw_stream_closed(struct tun *, struct tun_stream *,
		    const char *, void *);
static void	agent_gw_closed(struct tun *, const char *, void *);

static const struct tun_ops agent_gw_ops = {
	.authed = agent_gw_authed,
	.claim = agent_gw_claim,
	.open = agent_gw_open,
	.goaway = agent_gw_goaway,
	.stream_closed = agent_gw_stream_closed,
	.closed = agent_gw_closed,
};

struct agent_gw *
agent_gw_new(struct agent *a, const struct cfg_remote *r)
{
	struct agent_gw	*g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->a = a;
	g->r = r;
	g->fd = -1;
	g->state = AGENT_GW_IDLE;
	g->timer = event_new(a->base, -1, 0, agent_gw_timer_cb, g);
	if (g->timer == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void
agent_gw_start(struct agent_gw *g)
{
	agent_gw_connect(g);
}

void
agent_gw_shutdown(struct agent_gw *g)
{
	event_del(g->timer);
	if (g->conn_ev != NULL) {
		event_free(g->conn_ev);
		g->conn_ev = NULL;
	}
	if (g->fd != -1) {
		close(g->fd);
		g->fd = -1;
	}
	g->state = AGENT_GW_STOPPED;
	if (g->tun != NULL)
		tun_shutdown(g->tun, TUN_E_SHUTDOWN, "agent stopping");
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
	if (g->conn_ev != NULL)
		event_free(g->conn_ev);
	if (g->fd != -1)
		close(g->fd);
	event_free(g->timer);
	free(g);
}

static void
agent_gw_connect(struct agent_gw *g)
{
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			err[128];
	char			text[300];

	if (g->state == AGENT_GW_STOPPED || g->a->stopping)
		return;
	/* A numeric address needs no resolver. */
	snprintf(text, sizeof(text), "%s", g->r->address);
	if (addr_parse_numeric(text, &ss, &len, err, sizeof(err)) == 0) {
		g->addrs[0] = ss;
		g->lens[0] = len;
		g->naddrs = 1;
		g->next_addr = 0;
		agent_gw_try_next(g);
		return;
	}
	g->state = AGENT_GW_RESOLVING;
	agent_dns_lookup(g->a->dns, g->r->host, g->r->port, agent_gw_resolved,
	    g);
}

static void
agent_gw_resolved(int err, const struct sockaddr_storage *ss,
    const socklen_t *lens, size_t n, void *arg)
{
	struct agent_gw	*g = arg;
	char		 why[256];
	size_t		 i;

	if (g->state != AGENT_GW_RESOLVING)
		return;
	if (err != 0 || n == 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s",
		    g->r->host, agent_dns_strerror(err));
		agent_gw_retry(g, why);
		return;
	}
	for (i = 0; i < n && i < AGENT_GW_MAX_ADDRS; i++) {
		g->addrs[i] = ss[i];
		g->lens[i] = lens[i];
	}
	g->naddrs = i;
	g->next_addr = 0;
	agent_gw_try_next(g);
}

/* Dial the next resolved address; all failed: back off. */
static void
agent_gw_try_next(struct agent_gw *g)
{
	struct timeval	 tv;
	unsigned	 ms = g->a->cfg->connect_timeout_ms;
	int		 fd, on = 1;
	size_t		 i;

	if (g->next_addr >= g->naddrs) {
		agent_gw_retry(g, g->last_error[0] ? g->last_error :
		    "no address to connect to");
		return;
	}
	i = g->next_addr++;
	addr_fmt((struct sockaddr *)&g->addrs[i], g->addr_text,
	    sizeof(g->addr_text));
	fd = socket(g->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(g->last_error, sizeof(g->last_error), "socket: %s",
		    strerror(errno));
		agent_gw_try_next(g);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (struct sockaddr *)&g->addrs[i], g->lens[i]) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(g->last_error, sizeof(g->last_error),
		    "connect %s: %s", g->addr_text, strerror(errno));
		close(fd);
		agent_gw_try_next(g);
		return;
	}
	g->fd = fd;
	g->state = AGENT_GW_CONNECTING;
	g->conn_ev = event_new(g->a->base, fd, EV_WRITE, agent_gw_conn_cb, g);
	if (g->conn_ev == NULL) {
		close(fd);
		g->fd = -1;
		agent_gw_retry(g, "out of memory");
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(g->conn_ev, &tv);
}

static void
agent_gw_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_gw	*g = arg;
	socklen_t	 len = sizeof(int);
	int		 soerr = 0;

	event_free(g->conn_ev);
	g->conn_ev = NULL;
	if (what & EV_TIMEOUT)
		soerr = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		snprintf(g->last_error, sizeof(g->last_error),
		    "connect %s: %s", g->addr_text, strerror(soerr));
		close(g->fd);
		g->fd = -1;
		agent_gw_try_next(g);
		return;
	}
	agent_gw_start_tunnel(g);
}

static void
agent_gw_start_tunnel(struct agent_gw *g)
{
	const struct cfg_agent	*cfg = g->a->cfg;
	struct tun_params	 p;
	char			 label[128];
	SSL			*ssl;
	int			 fd = g->fd;

	g->fd = -1;
	if ((ssl = SSL_new(g->a->tls_ctx)) == NULL) {
		close(fd);
		agent_gw_retry(g, "TLS setup failed");
		return;
	}
	/* The gateway's name as SNI, so a shared :443 can tell us apart. */
	if (inet_pton(AF_INET, g->r->host, &(struct in_addr){0}) != 1 &&
	    inet_pton(AF_INET6, g->r->host, &(struct in6_addr){0}) != 1)
		SSL_set_tlsext_host_name(ssl, g->r->host);
	snprintf(label, sizeof(label), "gw=%s", g->r->name);
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
	g->state = AGENT_GW_TUNNEL;
	g->authed = 0;
	g->tun = tun_new(g->a->base, fd, ssl, 0, &p, &agent_gw_ops, g);
	if (g->tun == NULL)
		agent_gw_retry(g, "out of memory");
}

/* Schedule the next attempt: exponential, capped, with jitter. */
static void
agent_gw_retry(struct agent_gw *g, const char *why)
{
	const struct cfg_agent	*cfg = g->a->cfg;
	struct timeval		 tv;
	uint64_t		 delay;
	unsigned		 shift;
	char			 msg[300];

	if (g->state == AGENT_GW_STOPPED || g->a->stopping)
		return;
	snprintf(msg, sizeof(msg), "%s", why);	/* may be last_error */
	shift = g->failures < 16 ? g->failures : 16;
	delay = (uint64_t)cfg->reconnect_min_ms << shift;
	if (delay > cfg->reconnect_max_ms)
		delay = cfg->reconnect_max_ms;
	/* Between half and all of it, so agents do not stampede a
	 * gateway that just came back. */
	delay = delay / 2 + randombytes_uniform((uint32_t)(delay / 2 + 1));
	g->failures++;
	g->state = AGENT_GW_IDLE;
	g->last_error[0] = '\0';
	log_warnx("gateway %s (%s): %s; retrying in %llu ms", g->r->name,
	    g->r->address, msg, (unsigned long long)delay);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	event_add(g->timer, &tv);
}

static void
agent_gw_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_gw	*g = arg;

	(void)fd;
	(void)what;
	if (g->close_pending) {
		g->close_pending = 0;
		if (g->tun != NULL)
			tun_close(g->tun, "gateway going away");
		return;
	}
	if (g->state == AGENT_GW_IDLE)
		agent_gw_connect(g);
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

	if (sodium_memcmp(h->pub, g->r->key, KEY_PUB_LEN) != 0) {
		log_warnx("gateway %s (%s) presented key %s, but %s pins %s "
		    "for it; refusing this gateway (check its 'key:')",
		    g->r->name, g->addr_text, key_pub_text(h->pub, got),
		    a->cfg->file, key_pub_text(g->r->key, want));
		snprintf(msg, msglen, "gateway key does not match the key "
		    "this agent pins");
		return -1;
	}
	g->authed = 1;
	g->failures = 0;
	log_info("gateway %s (%s): tunnel up", g->r->name, g->addr_text);
	for (i = 0; i < a->nservices; i++) {
		memset(&c, 0, sizeof(c));
		c.kinds = agent_svc_kinds(&a->services[i]);
		snprintf(c.name, sizeof(c.name), "%s",
		    a->services[i].cfg->hostname);
		tun_send_claim(tun, TUN_CLAIM, &c);
	}
	return 0;
}

static void
agent_gw_claim(struct tun *tun, uint8_t type, const struct tun_claim *c,
    void *arg)
{
	struct agent_gw	*g = arg;

	(void)tun;
	if (type != TUN_CLAIM_RESULT)
		return;
	if (c->status == TUN_CLAIM_OK)
		log_info("gateway %s: serving %s", g->r->name, c->name);
	else
		log_warnx("gateway %s refused hostname %s: %s; ask the "
		    "gateway's operator to grant it to this agent's key",
		    g->r->name, c->name[0] ? c->name : "?", c->msg);
}

static void
agent_gw_open(struct tun *tun, struct tun_stream *s, const struct tun_open *o,
    void *arg)
{
	struct agent_gw	*g = arg;

	agent_svc_open(g->a, tun, s, o);
}

static void
agent_gw_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	struct agent_gw	*g = arg;

	log_info("gateway %s is going away: %s", g->r->name, r->msg);
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

	(void)reason;
	agent_svc_stream_closed(s);
	/* The last stream of a draining tunnel: close it, but not from
	 * inside the stream's own teardown. */
	if (tun_is_draining(tun) && tun_stream_count(tun) == 1 &&
	    !g->a->stopping && !g->close_pending) {
		g->close_pending = 1;
		event_add(g->timer, &now);
	}
}

static void
agent_gw_closed(struct tun *tun, const char *reason, void *arg)
{
	struct agent_gw	*g = arg;
	char		 why[300], rtt[32];

	g->tun = NULL;
	g->close_pending = 0;
	if (g->state == AGENT_GW_STOPPED || g->a->stopping) {
		g->state = AGENT_GW_STOPPED;
		agent_check_stopped(g->a);
		return;
	}
	snprintf(why, sizeof(why), "tunnel %s: %s (last %s)",
	    g->authed ? "lost" : "failed", reason,
	    tun_rtt_text(tun, rtt, sizeof(rtt)));
	if (g->authed)
		g->failures = 0;	/* it worked: come back quickly */
	agent_gw_retry(g, why);
}
