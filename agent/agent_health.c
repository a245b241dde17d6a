/* SPDX-License-Identifier: ISC */
/*
 * Backend health checks: one checker per service with a health section.
 * Every interval it runs one probe, bounded by the timeout: a TCP connect
 * to every backend of the service (a bufferevent), a TLS handshake with
 * the tls backend (bufferevent_openssl; no certificate verification: we
 * only ask whether it speaks TLS), or an HTTP GET (evhttp's client) whose
 * status line must carry the expected code; the body is never read.  The first
 * probe decides the state; afterwards rise successes or fall failures in
 * a row flip it.  Each transition is logged once and reported to the
 * agent, which claims or withdraws the hostname on its gateways.
 */

#include <sys/socket.h>
#include <sys/time.h>
#include <netdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent.h"
#include "log.h"

#define AGENT_HEALTH_CONNS	2	/* tcp: tls and http backends */
#define AGENT_HEALTH_HEAD_MAX	65536	/* http: the response head */
#define AGENT_HEALTH_TEXT	320

enum agent_health_step {
	AGENT_HEALTH_IDLE,
	AGENT_HEALTH_CONNECTING,
	AGENT_HEALTH_HANDSHAKE,		/* tls */
	AGENT_HEALTH_READING,		/* http: the status line */
};

/* One connection of a probe; lives inside its checker. */
struct agent_health_conn {
	struct agent_health		*h;
	const struct agent_backend	*be;
	enum agent_health_step		 step;	/* IDLE: done */
	struct bufferevent		*bev;	/* tcp, tls */
	/*
	 * http.  A connection that ended inside one of evhttp's callbacks
	 * is already closed by evhttp (it resets before calling back) but
	 * may not be freed there: it goes at the next probe or the free.
	 */
	struct evhttp_connection	*evcon;
	int				 connected;	/* http: got so far */
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
	char				*path;		/* http */
	char				*host;		/* http: Host */
	SSL_CTX				*ctx;		/* tls only */
	struct event			*tick;		/* next probe */
	struct event			*deadline;	/* probe timeout */
	int				 probing;
	int				 in_http;	/* in evhttp's cb */
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
static void	agent_health_probe(struct agent_health *);
static int	agent_health_conn_start(struct agent_health_conn *, char *,
		    size_t);
static int	agent_health_http_start(struct agent_health_conn *, char *,
		    size_t);
static void	agent_health_conn_close(struct agent_health_conn *);
static void	agent_health_conn_end(struct agent_health_conn *, int,
		    const char *);
static void	agent_health_event_cb(struct bufferevent *, short, void *);
static void	agent_health_tls_failed(struct agent_health_conn *, short);
static int	agent_health_head_cb(struct evhttp_request *, void *);
static void	agent_health_error_cb(enum evhttp_request_error, void *);
static void	agent_health_done_cb(struct evhttp_request *, void *);
static void	agent_health_close_cb(struct evhttp_connection *, void *);
static int	agent_health_fd_connected(evutil_socket_t);
static enum agent_health_step agent_health_conn_step(
		    const struct agent_health_conn *);
static void	agent_health_probe_end(struct agent_health *, int,
		    const struct agent_backend *, const char *);
static void	agent_health_enter_state(struct agent_health *,
		    enum agent_health_state);
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
	for (i = 0; i < AGENT_HEALTH_CONNS; i++)
		h->conns[i].h = h;
	if (h->check == CFG_CHECK_HTTP) {
		/* A wildcard is no Host: name the backend as a direct client
		 * would. */
		if (host[0] == '*' && svc->http.sslen != 0)
			host = svc->http.text;
		h->path = strdup(cfg->path != NULL ? cfg->path : "/");
		h->host = strdup(host);
		if (h->path == NULL || h->host == NULL)
			goto fail;
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
	h->in_http = 0;		/* never called from evhttp */
	for (i = 0; i < AGENT_HEALTH_CONNS; i++)
		agent_health_conn_close(&h->conns[i]);
	if (h->tick != NULL)
		event_free(h->tick);
	if (h->deadline != NULL)
		event_free(h->deadline);
	SSL_CTX_free(h->ctx);
	free(h->path);
	free(h->host);
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

/* Start connecting (and for tls, the handshake after it). */
static int
agent_health_conn_start(struct agent_health_conn *c, char *why,
    size_t whylen)
{
	struct agent_health	*h = c->h;
	const struct agent_backend *be = c->be;
	SSL			*ssl;

	agent_health_conn_close(c);	/* the last http one, if left */
	c->connected = 0;
	if (h->check == CFG_CHECK_HTTP)
		return agent_health_http_start(c, why, whylen);
	if (h->check == CFG_CHECK_TLS) {
		if ((ssl = SSL_new(h->ctx)) == NULL) {
			snprintf(why, whylen, "TLS setup failed");
			return -1;
		}
		/* A wildcard is no server name: send none. */
		if (h->svc->cfg->hostname[0] != '*')
			SSL_set_tlsext_host_name(ssl, h->svc->cfg->hostname);
		/* Frees ssl on failure too (BEV_OPT_CLOSE_ON_FREE). */
		c->bev = bufferevent_openssl_socket_new(h->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	} else
		c->bev = bufferevent_socket_new(h->base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	c->step = h->check == CFG_CHECK_TLS ? AGENT_HEALTH_HANDSHAKE :
	    AGENT_HEALTH_CONNECTING;
	bufferevent_setcb(c->bev, NULL, NULL, agent_health_event_cb, c);
	errno = 0;
	if (bufferevent_socket_connect(c->bev,
	    (const struct sockaddr *)&be->ss, (int)be->sslen) == -1) {
		snprintf(why, whylen, "%s", errno != 0 ? strerror(errno) :
		    "connect failed");
		return -1;
	}
	return 0;
}

/* GET the path; evhttp_connection_base_bufferevent_new connects. */
static int
agent_health_http_start(struct agent_health_conn *c, char *why,
    size_t whylen)
{
	struct agent_health	*h = c->h;
	struct evhttp_request	*req;
	struct evkeyvalq	*hdrs;
	struct timeval		 tv;
	char			 host[NI_MAXHOST], port[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)&c->be->ss, c->be->sslen,
	    host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(why, whylen, "bad backend address");
		return -1;
	}
	/* A numeric host: no resolver is asked, nothing blocks. */
	if ((c->evcon = evhttp_connection_base_bufferevent_new(h->base, NULL,
	    NULL, host, (unsigned short)atoi(port))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	/* Our deadline ends the probe; evhttp's own comes later, never. */
	agent_health_tv(&tv, h->timeout_ms + 1000);
	evhttp_connection_set_timeout_tv(c->evcon, &tv);
	evhttp_connection_set_retries(c->evcon, 0);
	evhttp_connection_set_max_headers_size(c->evcon,
	    AGENT_HEALTH_HEAD_MAX);
	evhttp_connection_set_closecb(c->evcon, agent_health_close_cb, c);
	if ((req = evhttp_request_new(agent_health_done_cb, c)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	evhttp_request_set_header_cb(req, agent_health_head_cb);
	evhttp_request_set_error_cb(req, agent_health_error_cb);
	hdrs = evhttp_request_get_output_headers(req);
	if (evhttp_add_header(hdrs, "Host", h->host) == -1 ||
	    evhttp_add_header(hdrs, "User-Agent", "porch-agent-health") == -1 ||
	    evhttp_add_header(hdrs, "Connection", "close") == -1) {
		evhttp_request_free(req);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	c->step = AGENT_HEALTH_CONNECTING;
	/* On failure it freed req. */
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET,
	    h->path) == -1) {
		snprintf(why, whylen, "sending the request failed");
		return -1;
	}
	return 0;
}

static void
agent_health_conn_close(struct agent_health_conn *c)
{
	c->step = AGENT_HEALTH_IDLE;
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	/* Inside evhttp's callback it is closed; freed at the next one. */
	if (c->evcon != NULL && !c->h->in_http) {
		evhttp_connection_free(c->evcon);
		c->evcon = NULL;
	}
}

/* One connection is done: a failure ends the probe, else the last one. */
static void
agent_health_conn_end(struct agent_health_conn *c, int ok, const char *why)
{
	struct agent_health	*h = c->h;
	char			 text[256];

	snprintf(text, sizeof(text), "%s", why);
	agent_health_conn_close(c);
	if (!ok) {
		agent_health_probe_end(h, 0, c->be, text);
		return;
	}
	if (--h->pending == 0)
		agent_health_probe_end(h, 1, h->nconns == 1 ? c->be : NULL,
		    text);
}

/* tcp and tls: connected (and the handshake done), or failed. */
static void
agent_health_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_health_conn	*c = arg;
	SSL				*ssl;
	char				 why[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->h->check == CFG_CHECK_TCP) {
			agent_health_conn_end(c, 1, "connected");
			return;
		}
		ssl = bufferevent_openssl_get_ssl(bev);
		snprintf(why, sizeof(why), "TLS handshake done (%s)",
		    ssl != NULL ? SSL_get_version(ssl) : "?");
		agent_health_conn_end(c, 1, why);
		return;
	}
	if (c->h->check == CFG_CHECK_TLS &&
	    agent_health_fd_connected(bufferevent_getfd(bev))) {
		agent_health_tls_failed(c, what);
		return;
	}
	/* The connect failed: libevent left its SO_ERROR in errno. */
	agent_health_conn_end(c, 0, errno != 0 ? strerror(errno) :
	    "connect failed");
}

/* Say why the handshake failed: OpenSSL's reason, or the socket's. */
static void
agent_health_tls_failed(struct agent_health_conn *c, short what)
{
	char		 why[256], ebuf[200];
	unsigned long	 e;
	int		 saved = errno;

	if ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : ebuf);
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;	/* the rest is detail */
	} else if (!(what & BEV_EVENT_EOF) && saved != 0)
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    strerror(saved));
	else
		snprintf(why, sizeof(why), "TLS handshake failed: connection "
		    "closed by the backend");
	ERR_clear_error();
	agent_health_conn_end(c, 0, why);
}

/*
 * http: the status line and headers are in.  Decide on the code, and
 * return -1 so that evhttp stops there: the body is never read.
 */
static int
agent_health_head_cb(struct evhttp_request *req, void *arg)
{
	struct agent_health_conn	*c = arg;
	struct agent_health		*h = c->h;
	char				 why[256];
	int				 code;

	if (c->step == AGENT_HEALTH_IDLE)
		return -1;
	code = evhttp_request_get_response_code(req);
	h->in_http = 1;
	if ((unsigned)code != h->expect) {
		snprintf(why, sizeof(why), "HTTP status %d, expected %u", code,
		    h->expect);
		agent_health_conn_end(c, 0, why);
	} else {
		snprintf(why, sizeof(why), "HTTP status %d", code);
		agent_health_conn_end(c, 1, why);
	}
	h->in_http = 0;
	return -1;
}

/* http: failed before the headers were in (evhttp already closed it). */
static void
agent_health_error_cb(enum evhttp_request_error err, void *arg)
{
	struct agent_health_conn	*c = arg;
	struct agent_health		*h = c->h;
	const char			*why;
	char				 buf[256];
	int				 saved = errno;

	if (c->step == AGENT_HEALTH_IDLE)
		return;
	switch (err) {
	case EVREQ_HTTP_INVALID_HEADER:
		why = "malformed HTTP status line or header";
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
	case EVREQ_HTTP_BUFFER_ERROR:
		snprintf(buf, sizeof(buf), "no status line and headers in "
		    "the first %u bytes", AGENT_HEALTH_HEAD_MAX);
		why = buf;
		break;
	case EVREQ_HTTP_TIMEOUT:
		why = "timed out";
		break;
	default:
		if (c->connected)
			why = "connection closed without a response";
		else
			why = saved != 0 ? strerror(saved) : "connect failed";
		break;
	}
	h->in_http = 1;
	agent_health_conn_end(c, 0, why);
	h->in_http = 0;
}

/*
 * http: the request's end.  Every answer was decided in the header or
 * error callback; evhttp ends here without either only when the connect
 * was refused (it takes that path for ECONNREFUSED alone, its own
 * connect timeout being longer than our deadline), and errno was lost to
 * its reset by then.
 */
static void
agent_health_done_cb(struct evhttp_request *req, void *arg)
{
	struct agent_health_conn	*c = arg;
	struct agent_health		*h = c->h;

	(void)req;
	if (c->step == AGENT_HEALTH_IDLE)
		return;
	h->in_http = 1;
	agent_health_conn_end(c, 0, c->connected ?
	    "connection closed without a response" : strerror(ECONNREFUSED));
	h->in_http = 0;
}

/* http: evhttp closes a connection that was up (a response may come). */
static void
agent_health_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct agent_health_conn	*c = arg;

	(void)evcon;
	c->connected = 1;
}

static int
agent_health_fd_connected(evutil_socket_t fd)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);

	return fd != -1 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* Where a connection stands, for the timeout's line. */
static enum agent_health_step
agent_health_conn_step(const struct agent_health_conn *c)
{
	evutil_socket_t	fd = -1;

	if (c->bev != NULL)
		fd = bufferevent_getfd(c->bev);
	else if (c->evcon != NULL)
		fd = bufferevent_getfd(evhttp_connection_get_bufferevent(
		    c->evcon));
	if (!agent_health_fd_connected(fd))
		return AGENT_HEALTH_CONNECTING;
	return c->evcon != NULL ? AGENT_HEALTH_READING : c->step;
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
		if (h->conns[i].step != AGENT_HEALTH_IDLE)
			c = &h->conns[i];
	if (c == NULL) {
		agent_health_probe_end(h, 0, NULL, "timed out");
		return;
	}
	snprintf(why, sizeof(why), "timed out after %u ms %s", h->timeout_ms,
	    agent_health_step_name(agent_health_conn_step(c)));
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
