/* SPDX-License-Identifier: ISC */
/*
 * Backend health checks: one checker per service with a health section.
 * Every interval it runs one probe, bounded by the timeout: a TCP connect
 * to every backend of the service, a TLS handshake with the tls backend
 * (no certificate verification: we only ask whether it speaks TLS), or an
 * HTTP GET whose status line must carry the expected code.  The first
 * probe decides the state; afterwards rise successes or fall failures in
 * a row flip it.  Each transition is logged once and reported to the
 * agent, which claims or withdraws the hostname on its gateways.
 */

#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent.h"
#include "log.h"

#define AGENT_HEALTH_CONNS	2	/* tcp: tls and http backends */
#define AGENT_HEALTH_READ_MAX	4096	/* http: bytes for a status line */
#define AGENT_HEALTH_TEXT	320

enum agent_health_step {
	AGENT_HEALTH_IDLE,
	AGENT_HEALTH_CONNECTING,
	AGENT_HEALTH_HANDSHAKE,		/* tls */
	AGENT_HEALTH_SENDING,		/* http: request */
	AGENT_HEALTH_READING,		/* http: status line */
};

/* One connection of a probe; lives inside its checker. */
struct agent_health_conn {
	struct agent_health		*h;
	const struct agent_backend	*be;
	enum agent_health_step		 step;
	int				 fd;	/* -1: closed */
	struct event			 ev;	/* assigned while fd != -1 */
	SSL				*ssl;
	size_t				 off;	/* request sent / reply read */
	char				 buf[AGENT_HEALTH_READ_MAX];
};

struct agent_health {
	struct event_base		*base;
	const struct agent_service	*svc;
	agent_health_cb			 cb;
	void				*arg;
	enum cfg_check			 check;
	unsigned			 interval_ms;
	unsigned			 timeout_ms;
	unsigned			 rise;
	unsigned			 fall;
	unsigned			 expect;
	char				*req;		/* http request */
	size_t				 reqlen;
	SSL_CTX				*ctx;		/* tls only */
	struct event			*tick;		/* next probe */
	struct event			*deadline;	/* probe timeout */
	int				 probing;
	struct agent_health_conn	 conns[AGENT_HEALTH_CONNS];
	size_t				 nconns;
	size_t				 pending;	/* conns not done */

	enum agent_health_state		 state;
	unsigned			 successes;	/* in a row */
	unsigned			 failures;	/* in a row */
	int				 last_ok;
	char				 result[AGENT_HEALTH_TEXT];
	struct timeval			 last_probe;
	struct timeval			 last_success;
	struct timeval			 last_failure;
	struct timeval			 last_change;
};

static void	agent_health_tick_cb(evutil_socket_t, short, void *);
static void	agent_health_deadline_cb(evutil_socket_t, short, void *);
static void	agent_health_conn_cb(evutil_socket_t, short, void *);
static void	agent_health_probe(struct agent_health *);
static int	agent_health_conn_start(struct agent_health_conn *, char *,
		    size_t);
static void	agent_health_conn_wait(struct agent_health_conn *, short);
static void	agent_health_conn_close(struct agent_health_conn *);
static void	agent_health_conn_end(struct agent_health_conn *, int,
		    const char *);
static void	agent_health_handshake(struct agent_health_conn *);
static void	agent_health_send(struct agent_health_conn *);
static void	agent_health_read(struct agent_health_conn *);
static void	agent_health_probe_end(struct agent_health *, int,
		    const struct agent_backend *, const char *);
static void	agent_health_enter_state(struct agent_health *,
		    enum agent_health_state);
static int	agent_health_status_code(const char *, size_t);
static const char *agent_health_check_name(enum cfg_check);
static const char *agent_health_step_name(enum agent_health_step);
static void	agent_health_tv(struct timeval *, unsigned);

struct agent_health *
agent_health_new(struct event_base *base, const struct agent_service *svc,
    agent_health_cb cb, void *arg)
{
	const struct cfg_health	*cfg = &svc->cfg->health;
	const char		*host = svc->cfg->hostname;
	struct agent_health	*h;
	size_t			 i;
	int			 n;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->svc = svc;
	h->cb = cb;
	h->arg = arg;
	h->check = cfg->check;
	/* The loader fills the defaults; these only guard against zeros. */
	h->interval_ms = cfg->interval_ms ? cfg->interval_ms : 2000;
	h->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 1000;
	if (h->timeout_ms >= h->interval_ms)
		h->timeout_ms = h->interval_ms > 1 ? h->interval_ms - 1 : 1;
	h->rise = cfg->rise ? cfg->rise : 1;
	h->fall = cfg->fall ? cfg->fall : 1;
	h->expect = cfg->expect ? cfg->expect : 200;
	for (i = 0; i < AGENT_HEALTH_CONNS; i++) {
		h->conns[i].h = h;
		h->conns[i].fd = -1;
	}
	if (h->check == CFG_CHECK_HTTP) {
		/* A wildcard is no Host: name the backend as a direct client
		 * would. */
		if (host[0] == '*' && svc->http.sslen != 0)
			host = svc->http.text;
		n = asprintf(&h->req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
		    "User-Agent: porch-agent-health\r\nConnection: close\r\n"
		    "\r\n", cfg->path != NULL ? cfg->path : "/", host);
		if (n == -1) {
			h->req = NULL;
			goto fail;
		}
		h->reqlen = (size_t)n;
	}
	if (h->check == CFG_CHECK_TLS) {
		if ((h->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			goto fail;
		SSL_CTX_set_min_proto_version(h->ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(h->ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_session_cache_mode(h->ctx, SSL_SESS_CACHE_OFF);
	}
	h->tick = evtimer_new(base, agent_health_tick_cb, h);
	h->deadline = evtimer_new(base, agent_health_deadline_cb, h);
	if (h->tick == NULL || h->deadline == NULL)
		goto fail;
	return h;
fail:
	agent_health_free(h);
	return NULL;
}

/* Log what is checked and run the first probe from the loop. */
void
agent_health_start(struct agent_health *h)
{
	const struct cfg_health	*cfg = &h->svc->cfg->health;
	struct timeval		 now = { 0, 0 };
	char			 what[300];

	if (h->check == CFG_CHECK_HTTP)
		snprintf(what, sizeof(what), "GET %s expecting %u",
		    cfg->path != NULL ? cfg->path : "/", h->expect);
	else
		snprintf(what, sizeof(what), "%s",
		    agent_health_check_name(h->check));
	/* A reload that restarts the checker keeps the claim meanwhile. */
	log_info("health %s: checking by %s every %u ms (timeout %u ms, "
	    "rise %u, fall %u); %s", h->svc->cfg->hostname, what,
	    h->interval_ms, h->timeout_ms, h->rise, h->fall, h->svc->up ?
	    "the first check decides whether it stays claimed" :
	    "not claimed until the first check passes");
	event_add(h->tick, &now);
}

/* Cancel everything in flight: no callback runs after this. */
void
agent_health_free(struct agent_health *h)
{
	size_t	i;

	if (h == NULL)
		return;
	for (i = 0; i < AGENT_HEALTH_CONNS; i++)
		agent_health_conn_close(&h->conns[i]);
	if (h->tick != NULL)
		event_free(h->tick);
	if (h->deadline != NULL)
		event_free(h->deadline);
	SSL_CTX_free(h->ctx);
	free(h->req);
	free(h);
}

enum agent_health_state
agent_health_state(const struct agent_health *h)
{
	return h->state;
}

const char *
agent_health_state_name(enum agent_health_state s)
{
	switch (s) {
	case AGENT_HEALTH_UP:
		return "up";
	case AGENT_HEALTH_DOWN:
		return "down";
	case AGENT_HEALTH_UNKNOWN:
		break;
	}
	return "unknown";
}

void
agent_health_info(const struct agent_health *h, struct agent_health_info *i)
{
	memset(i, 0, sizeof(*i));
	i->state = h->state;
	i->check = h->check;
	i->last_ok = h->last_ok;
	i->result = h->result;
	i->successes = h->successes;
	i->failures = h->failures;
	i->last_probe = h->last_probe;
	i->last_success = h->last_success;
	i->last_failure = h->last_failure;
	i->last_change = h->last_change;
}

static void
agent_health_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_health	*h = arg;
	struct timeval		 tv;

	(void)fd;
	(void)what;
	/* The timeout is shorter than the interval, so this is only a
	 * guard: a probe never overlaps the next one. */
	if (h->probing)
		agent_health_deadline_cb(-1, EV_TIMEOUT, h);
	agent_health_tv(&tv, h->interval_ms);
	event_add(h->tick, &tv);
	agent_health_probe(h);
}

static void
agent_health_probe(struct agent_health *h)
{
	const struct agent_service	*svc = h->svc;
	struct agent_health_conn	*c;
	struct timeval			 tv;
	char				 why[256];
	size_t				 i;

	h->nconns = 0;
	switch (h->check) {
	case CFG_CHECK_TCP:
		if (svc->tls.sslen != 0)
			h->conns[h->nconns++].be = &svc->tls;
		if (svc->http.sslen != 0)
			h->conns[h->nconns++].be = &svc->http;
		break;
	case CFG_CHECK_TLS:
		if (svc->tls.sslen != 0)
			h->conns[h->nconns++].be = &svc->tls;
		break;
	case CFG_CHECK_HTTP:
		if (svc->http.sslen != 0)
			h->conns[h->nconns++].be = &svc->http;
		break;
	case CFG_CHECK_NONE:
		break;
	}
	h->probing = 1;
	if (h->nconns == 0) {
		snprintf(why, sizeof(why), "the service has no backend for a "
		    "%s check", agent_health_check_name(h->check));
		agent_health_probe_end(h, 0, NULL, why);
		return;
	}
	h->pending = h->nconns;
	agent_health_tv(&tv, h->timeout_ms);
	event_add(h->deadline, &tv);
	for (i = 0; i < h->nconns && h->probing; i++) {
		c = &h->conns[i];
		if (agent_health_conn_start(c, why, sizeof(why)) == -1)
			agent_health_conn_end(c, 0, why); /* ends probe */
	}
}

/* Start a nonblocking connect; the event says when it is done. */
static int
agent_health_conn_start(struct agent_health_conn *c, char *why,
    size_t whylen)
{
	const struct agent_backend	*be = c->be;
	int				 fd, on = 1;

	c->off = 0;
	c->step = AGENT_HEALTH_CONNECTING;
	fd = socket(be->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (const struct sockaddr *)&be->ss, be->sslen) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	c->fd = fd;
	event_assign(&c->ev, c->h->base, fd, EV_WRITE, agent_health_conn_cb,
	    c);
	event_add(&c->ev, NULL);
	return 0;
}

static void
agent_health_conn_wait(struct agent_health_conn *c, short what)
{
	event_del(&c->ev);
	event_assign(&c->ev, c->h->base, c->fd, what, agent_health_conn_cb, c);
	event_add(&c->ev, NULL);
}

static void
agent_health_conn_close(struct agent_health_conn *c)
{
	if (c->fd == -1)
		return;
	event_del(&c->ev);
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
	c->step = AGENT_HEALTH_IDLE;
}

/* One connection is done: a failure ends the probe, else the last one. */
static void
agent_health_conn_end(struct agent_health_conn *c, int ok, const char *why)
{
	struct agent_health	*h = c->h;
	char			 text[256];

	snprintf(text, sizeof(text), "%s", why);	/* may be c->buf */
	agent_health_conn_close(c);
	if (!ok) {
		agent_health_probe_end(h, 0, c->be, text);
		return;
	}
	if (--h->pending == 0)
		agent_health_probe_end(h, 1, h->nconns == 1 ? c->be : NULL,
		    text);
}

static void
agent_health_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_health_conn	*c = arg;
	struct agent_health		*h = c->h;
	socklen_t			 len = sizeof(int);
	int				 soerr = 0;

	(void)what;
	switch (c->step) {
	case AGENT_HEALTH_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			soerr = errno;
		if (soerr != 0) {
			agent_health_conn_end(c, 0, strerror(soerr));
			return;
		}
		if (h->check == CFG_CHECK_TCP) {
			agent_health_conn_end(c, 1, "connected");
			return;
		}
		if (h->check == CFG_CHECK_HTTP) {
			c->step = AGENT_HEALTH_SENDING;
			agent_health_send(c);
			return;
		}
		if ((c->ssl = SSL_new(h->ctx)) == NULL ||
		    SSL_set_fd(c->ssl, c->fd) != 1) {
			agent_health_conn_end(c, 0, "TLS setup failed");
			return;
		}
		/* A wildcard is no server name: send none. */
		if (h->svc->cfg->hostname[0] != '*')
			SSL_set_tlsext_host_name(c->ssl,
			    h->svc->cfg->hostname);
		SSL_set_connect_state(c->ssl);
		c->step = AGENT_HEALTH_HANDSHAKE;
		agent_health_handshake(c);
		break;
	case AGENT_HEALTH_HANDSHAKE:
		agent_health_handshake(c);
		break;
	case AGENT_HEALTH_SENDING:
		agent_health_send(c);
		break;
	case AGENT_HEALTH_READING:
		agent_health_read(c);
		break;
	case AGENT_HEALTH_IDLE:
		break;
	}
}

static void
agent_health_handshake(struct agent_health_conn *c)
{
	char		 why[256], ebuf[200];
	unsigned long	 e;
	int		 r, err, saved;

	ERR_clear_error();
	errno = 0;
	r = SSL_connect(c->ssl);
	saved = errno;
	if (r == 1) {
		snprintf(why, sizeof(why), "TLS handshake done (%s)",
		    SSL_get_version(c->ssl));
		ERR_clear_error();
		agent_health_conn_end(c, 1, why);
		return;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		agent_health_conn_wait(c, EV_READ);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		agent_health_conn_wait(c, EV_WRITE);
		return;
	}
	if ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : ebuf);
	} else if (err == SSL_ERROR_SYSCALL && saved != 0)
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    strerror(saved));
	else
		snprintf(why, sizeof(why), "TLS handshake failed: connection "
		    "closed by the backend");
	ERR_clear_error();
	agent_health_conn_end(c, 0, why);
}

static void
agent_health_send(struct agent_health_conn *c)
{
	struct agent_health	*h = c->h;
	char			 why[256];
	ssize_t			 n;

	while (c->off < h->reqlen) {
		n = send(c->fd, h->req + c->off, h->reqlen - c->off,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR) {
				agent_health_conn_wait(c, EV_WRITE);
				return;
			}
			snprintf(why, sizeof(why), "sending the request: %s",
			    strerror(errno));
			agent_health_conn_end(c, 0, why);
			return;
		}
		c->off += (size_t)n;
	}
	c->off = 0;
	c->step = AGENT_HEALTH_READING;
	/* Persistent: the status line may come in several segments. */
	agent_health_conn_wait(c, EV_READ | EV_PERSIST);
}

/* Read until the status line is complete, at most READ_MAX bytes. */
static void
agent_health_read(struct agent_health_conn *c)
{
	struct agent_health	*h = c->h;
	char			 why[256];
	ssize_t			 n;
	int			 code;

	n = recv(c->fd, c->buf + c->off, sizeof(c->buf) - c->off, 0);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;		/* the event is persistent */
		snprintf(why, sizeof(why), "reading the response: %s",
		    strerror(errno));
		agent_health_conn_end(c, 0, why);
		return;
	}
	c->off += (size_t)n;
	if (memchr(c->buf, '\n', c->off) == NULL) {
		if (n == 0) {
			agent_health_conn_end(c, 0, c->off == 0 ?
			    "connection closed without a response" :
			    "connection closed inside the status line");
			return;
		}
		if (c->off == sizeof(c->buf)) {
			snprintf(why, sizeof(why), "no status line in the "
			    "first %zu bytes", sizeof(c->buf));
			agent_health_conn_end(c, 0, why);
		}
		return;
	}
	if ((code = agent_health_status_code(c->buf, c->off)) == -1) {
		agent_health_conn_end(c, 0, "malformed HTTP status line");
		return;
	}
	if ((unsigned)code != h->expect) {
		snprintf(why, sizeof(why), "HTTP status %d, expected %u", code,
		    h->expect);
		agent_health_conn_end(c, 0, why);
		return;
	}
	snprintf(why, sizeof(why), "HTTP status %d", code);
	agent_health_conn_end(c, 1, why);
}

static void
agent_health_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_health		*h = arg;
	struct agent_health_conn	*c = NULL;
	char				 why[128];
	size_t				 i;

	(void)fd;
	(void)what;
	if (!h->probing)
		return;
	for (i = 0; i < h->nconns && c == NULL; i++)
		if (h->conns[i].fd != -1)
			c = &h->conns[i];
	if (c == NULL) {
		agent_health_probe_end(h, 0, NULL, "timed out");
		return;
	}
	snprintf(why, sizeof(why), "timed out after %u ms %s", h->timeout_ms,
	    agent_health_step_name(c->step));
	agent_health_conn_end(c, 0, why);
}

/* A probe ended: record it, count it, maybe change state. */
static void
agent_health_probe_end(struct agent_health *h, int ok,
    const struct agent_backend *be, const char *why)
{
	size_t	i;

	for (i = 0; i < AGENT_HEALTH_CONNS; i++)
		agent_health_conn_close(&h->conns[i]);
	event_del(h->deadline);
	h->probing = 0;
	h->pending = 0;
	if (be != NULL)
		snprintf(h->result, sizeof(h->result), "backend %s: %s",
		    be->text, why);
	else if (h->nconns == 2)
		snprintf(h->result, sizeof(h->result), "backends %s and %s: "
		    "%s", h->conns[0].be->text, h->conns[1].be->text, why);
	else
		snprintf(h->result, sizeof(h->result), "%s", why);
	h->last_ok = ok;
	gettimeofday(&h->last_probe, NULL);
	if (ok) {
		h->last_success = h->last_probe;
		h->successes++;
		h->failures = 0;
	} else {
		h->last_failure = h->last_probe;
		h->failures++;
		h->successes = 0;
	}
	log_debug("health %s: check %s (%s)", h->svc->cfg->hostname,
	    ok ? "passed" : "failed", h->result);

	switch (h->state) {
	case AGENT_HEALTH_UNKNOWN:
		agent_health_enter_state(h, ok ? AGENT_HEALTH_UP :
		    AGENT_HEALTH_DOWN);
		break;
	case AGENT_HEALTH_UP:
		if (ok)
			break;
		if (h->failures >= h->fall)
			agent_health_enter_state(h, AGENT_HEALTH_DOWN);
		else
			log_info("health %s: check failed, %u of %u to go "
			    "down (%s); still up", h->svc->cfg->hostname,
			    h->failures, h->fall, h->result);
		break;
	case AGENT_HEALTH_DOWN:
		if (!ok)
			break;
		if (h->successes >= h->rise)
			agent_health_enter_state(h, AGENT_HEALTH_UP);
		else
			log_info("health %s: check passed, %u of %u to come "
			    "up (%s); still down", h->svc->cfg->hostname,
			    h->successes, h->rise, h->result);
		break;
	}
}

static void
agent_health_enter_state(struct agent_health *h, enum agent_health_state s)
{
	enum agent_health_state	 old = h->state;
	const char		*name = h->svc->cfg->hostname;

	h->state = s;
	h->last_change = h->last_probe;
	if (old == AGENT_HEALTH_UNKNOWN && s == AGENT_HEALTH_UP)
		log_info("health %s: up at the first check (%s); claiming it "
		    "on every gateway", name, h->result);
	else if (old == AGENT_HEALTH_UNKNOWN)
		log_warnx("health %s: down at the first check (%s); not "
		    "claiming it on any gateway until it is back", name,
		    h->result);
	else if (s == AGENT_HEALTH_UP)
		log_info("health %s: up after %u success%s (%s); claiming it "
		    "again on every gateway", name, h->successes,
		    h->successes == 1 ? "" : "es", h->result);
	else
		log_warnx("health %s: down after %u failure%s (%s); "
		    "withdrawing it from every gateway", name, h->failures,
		    h->failures == 1 ? "" : "s", h->result);
	h->cb(h->svc, s == AGENT_HEALTH_UP, h->arg);
}

/* "HTTP/1.x NNN ..." → NNN, or -1. */
static int
agent_health_status_code(const char *p, size_t len)
{
	if (len < 12 || memcmp(p, "HTTP/", 5) != 0 ||
	    p[5] < '0' || p[5] > '9' || p[6] != '.' ||
	    p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' ||
	    p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	if (len > 12 && p[12] != ' ' && p[12] != '\r' && p[12] != '\n')
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static const char *
agent_health_check_name(enum cfg_check check)
{
	switch (check) {
	case CFG_CHECK_TCP:
		return "tcp";
	case CFG_CHECK_TLS:
		return "tls";
	case CFG_CHECK_HTTP:
		return "http";
	case CFG_CHECK_NONE:
		break;
	}
	return "none";
}

static const char *
agent_health_step_name(enum agent_health_step step)
{
	switch (step) {
	case AGENT_HEALTH_CONNECTING:
		return "connecting";
	case AGENT_HEALTH_HANDSHAKE:
		return "in the TLS handshake";
	case AGENT_HEALTH_SENDING:
		return "sending the request";
	case AGENT_HEALTH_READING:
		return "waiting for the status line";
	case AGENT_HEALTH_IDLE:
		break;
	}
	return "";
}

static void
agent_health_tv(struct timeval *tv, unsigned ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}
