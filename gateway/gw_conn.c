/* SPDX-License-Identifier: ISC */
/*
 * One visitor connection, from accept until it is routed: read the TLS
 * ClientHello or the HTTP request head under a size cap and an absolute
 * deadline, pick the agent that claimed the name, and hand the socket and
 * the untouched bytes already read to a new tunnel stream.  Nothing here
 * decrypts anything: the bytes go down the tunnel exactly as they came.
 */

#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "addr.h"
#include "gw.h"
#include "gw_http.h"
#include "gw_sni.h"
#include "log.h"
#include "mono.h"

#define GW_CONN_LINGER_MS	2000	/* bound on flushing an error reply */

struct gw_conn {
	struct gw		*gw;
	enum gw_entry		 kind;		/* a reload may free the listener */
	struct bufferevent	*bev;
	struct event		*timer;
	uint32_t		 id;
	struct sockaddr_storage	 peer;
	uint64_t		 start_ms;
	int			 closing;	/* flushing an error reply */
	char			 name[NAME_MAX_LEN + 1];
	const char		*result;
	TAILQ_ENTRY(gw_conn)	 entry;
};

/* TLS alerts: fatal, in a TLS 1.0 record as servers send before hello. */
static const uint8_t gw_alert_unrecognized_name[] =
    { 0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70 };
static const uint8_t gw_alert_decode_error[] =
    { 0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x32 };

/* Every result a visitor can end with before it is routed. */
static struct gw_conn_result gw_conn_result_tab[] = {
	{ "no-route", 0 }, { "no-sni", 0 }, { "malformed-hello", 0 },
	{ "hello-too-big", 0 }, { "hello-timeout", 0 },
	{ "malformed-request", 0 }, { "head-too-big", 0 },
	{ "closed-before-hello", 0 }, { "error-before-hello", 0 },
	{ "gateway-stopped", 0 }, { "out-of-memory", 0 },
	{ "source-limit", 0 },
};

static void	gw_conn_free(struct gw_conn *, int);
static void	gw_conn_count(const char *);
static void	gw_conn_read_cb(struct bufferevent *, void *);
static void	gw_conn_write_cb(struct bufferevent *, void *);
static void	gw_conn_event_cb(struct bufferevent *, short, void *);
static void	gw_conn_timer_cb(evutil_socket_t, short, void *);
static void	gw_conn_read_tls(struct gw_conn *, const uint8_t *, size_t);
static void	gw_conn_read_http(struct gw_conn *, const uint8_t *, size_t);
static void	gw_conn_route(struct gw_conn *, uint8_t);
static int	gw_conn_is_acme(const struct gw_sni_hello *);
static int	gw_conn_is_agent(struct gw_conn *,
		    const struct gw_sni_hello *);
static void	gw_conn_reply(struct gw_conn *, const char *, const void *,
		    size_t);
static void	gw_conn_http_reply(struct gw_conn *, const char *, int,
		    const char *, const char *);

void
gw_conn_accept(struct gw *gw, struct gw_listener *l, int fd,
    const struct sockaddr *sa, int socklen)
{
	static struct log_ratelimit	 rl;
	struct gw_conn			*c;
	struct timeval			 tv;
	unsigned			 ms = gw->cfg->hello_timeout_ms;
	size_t				 cap;
	char				 peer[64];

	/*
	 * One address may hold only its share of the visitors' slots, idle
	 * ones included (routed, then silent, they are legitimate): beyond
	 * it, close at once, before reading a byte.
	 */
	if (gw_src_hold(gw, sa, GW_SRC_VISITOR, gw->src_visitors) == -1) {
		gw_conn_count("source-limit");
		log_ratelimit(&rl, "visitor from %s refused: %u connections "
		    "from that address already (limits.connections_per_source)",
		    addr_fmt(sa, peer, sizeof(peer)),
		    gw_src_count(gw, sa, GW_SRC_VISITOR));
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		gw_src_release(gw, sa, GW_SRC_VISITOR);
		close(fd);
		return;
	}
	c->gw = gw;
	c->kind = l->entry;
	c->id = gw->next_conn_id++ & 0xffffff;
	c->start_ms = mono_ms();
	memcpy(&c->peer, sa, (size_t)socklen < sizeof(c->peer) ?
	    (size_t)socklen : sizeof(c->peer));
	c->bev = bufferevent_socket_new(gw->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = event_new(gw->base, -1, 0, gw_conn_timer_cb, c);
	if (c->bev == NULL || c->timer == NULL) {
		if (c->bev == NULL)
			close(fd);
		else
			bufferevent_free(c->bev);
		if (c->timer != NULL)
			event_free(c->timer);
		free(c);
		gw_src_release(gw, sa, GW_SRC_VISITOR);
		return;
	}
	gw->nconns++;
	gw->stats.visitors++;
	TAILQ_INSERT_TAIL(&gw->conns, c, entry);
	cap = l->entry == GW_ENTRY_TLS ? gw->cfg->hello_max :
	    gw->cfg->http_head_max;
	/* Stop reading at the cap: the parser then says too big. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, cap);
	bufferevent_setcb(c->bev, gw_conn_read_cb, NULL, gw_conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
	/* An absolute deadline: a trickle of bytes does not extend it. */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(c->timer, &tv);
}

const struct gw_conn_result *
gw_conn_results(size_t *n)
{
	*n = sizeof(gw_conn_result_tab) / sizeof(gw_conn_result_tab[0]);
	return gw_conn_result_tab;
}

void
gw_conn_close_all(struct gw *gw)
{
	struct gw_conn	*c;

	while ((c = TAILQ_FIRST(&gw->conns)) != NULL) {
		c->result = "gateway-stopped";
		gw_conn_free(c, 1);
	}
}

/* The only exit.  counted: the visitor is gone (not handed to a stream). */
static void
gw_conn_free(struct gw_conn *c, int counted)
{
	char	peer[64];

	if (c->result != NULL)
		gw_conn_count(c->result);
	/* The name came from the SNI or from the Host header. */
	if (c->result != NULL)
		log_info("conn=%06x entry=%s peer=%s %s=%s result=%s ms=%llu",
		    c->id, c->kind == GW_ENTRY_TLS ? "tls" : "http",
		    addr_fmt((struct sockaddr *)&c->peer, peer, sizeof(peer)),
		    c->kind == GW_ENTRY_TLS ? "sni" : "host",
		    c->name[0] ? c->name : "-", c->result,
		    (unsigned long long)(mono_ms() - c->start_ms));
	TAILQ_REMOVE(&c->gw->conns, c, entry);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	if (counted)
		gw_listen_conn_closed(c->gw, (struct sockaddr *)&c->peer);
	free(c);
}

static void
gw_conn_count(const char *result)
{
	size_t	i;

	for (i = 0; i < sizeof(gw_conn_result_tab) /
	    sizeof(gw_conn_result_tab[0]); i++)
		if (strcmp(gw_conn_result_tab[i].name, result) == 0)
			gw_conn_result_tab[i].count++;
}

static void
gw_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 len = evbuffer_get_length(in);
	const uint8_t	*buf;

	if (c->closing) {
		evbuffer_drain(in, len);
		return;
	}
	if ((buf = evbuffer_pullup(in, -1)) == NULL) {
		c->result = "out-of-memory";
		gw_conn_free(c, 1);
		return;
	}
	if (c->kind == GW_ENTRY_TLS)
		gw_conn_read_tls(c, buf, len);
	else
		gw_conn_read_http(c, buf, len);
}

static void
gw_conn_read_tls(struct gw_conn *c, const uint8_t *buf, size_t len)
{
	struct gw_sni_hello	h;
	size_t			cap = c->gw->cfg->hello_max;

	switch (gw_sni_parse(buf, len, cap, &h)) {
	case GW_SNI_FOUND:
		/* An IP literal (h.ip_literal) names no route either. */
		if (!h.has_name) {
			gw_conn_reply(c, "no-sni", gw_alert_unrecognized_name,
			    sizeof(gw_alert_unrecognized_name));
			return;
		}
		snprintf(c->name, sizeof(c->name), "%s", h.name);
		if (gw_conn_is_agent(c, &h)) {
			/* An agent behind a port-443-only firewall: this is
			 * a tunnel, and its TLS ends here. */
			bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
			gw_tun_accept_over(c->gw, c->bev,
			    (struct sockaddr *)&c->peer);
			c->bev = NULL;
			c->result = NULL;
			gw_conn_free(c, 1);
			return;
		}
		gw_conn_route(c, gw_conn_is_acme(&h) ? TUN_KIND_ACME_TLS :
		    TUN_KIND_TLS);
		break;
	case GW_SNI_NEED_MORE:
		if (len >= cap)
			gw_conn_reply(c, "hello-too-big", gw_alert_decode_error,
			    sizeof(gw_alert_decode_error));
		break;
	case GW_SNI_TOO_BIG:
		gw_conn_reply(c, "hello-too-big", gw_alert_decode_error,
		    sizeof(gw_alert_decode_error));
		break;
	case GW_SNI_MALFORMED:
		gw_conn_reply(c, "malformed-hello", gw_alert_decode_error,
		    sizeof(gw_alert_decode_error));
		break;
	}
}

static void
gw_conn_read_http(struct gw_conn *c, const uint8_t *buf, size_t len)
{
	struct gw_http_head	h;
	size_t			cap = c->gw->cfg->http_head_max;

	switch (gw_http_parse(buf, len, cap, &h)) {
	case GW_HTTP_FOUND:
		snprintf(c->name, sizeof(c->name), "%s", h.host);
		gw_conn_route(c, strncmp(h.path, TUN_ACME_PATH,
		    strlen(TUN_ACME_PATH)) == 0 ? TUN_KIND_ACME_HTTP :
		    TUN_KIND_HTTP);
		break;
	case GW_HTTP_NEED_MORE:
		if (len < cap)
			break;
		/* FALLTHROUGH */
	case GW_HTTP_TOO_BIG:
		gw_conn_http_reply(c, "head-too-big", 431,
		    "Request Header Fields Too Large",
		    "The request head is larger than this gateway accepts.");
		break;
	case GW_HTTP_MALFORMED:
		gw_conn_http_reply(c, "malformed-request", 400, "Bad Request",
		    "The request could not be parsed, or it has no valid "
		    "Host header.");
		break;
	}
}

/* ALPN porch/1 for the gateway's own name: an agent, not a visitor. */
static int
gw_conn_is_agent(struct gw_conn *c, const struct gw_sni_hello *h)
{
	size_t	i;

	if (strcmp(h->name, c->gw->name) != 0)
		return 0;
	for (i = 0; i < h->nalpn; i++)
		if (strcmp(h->alpn[i], TUN_ALPN) == 0)
			return 1;
	return 0;
}

/* A CA validating a name by tls-alpn-01 (RFC 8737). */
static int
gw_conn_is_acme(const struct gw_sni_hello *h)
{
	size_t	i;

	for (i = 0; i < h->nalpn; i++)
		if (strcmp(h->alpn[i], TUN_ACME_ALPN) == 0)
			return 1;
	return 0;
}

/*
 * Hand the visitor to the agent that claimed the name.  An ACME probe
 * goes to the agent that ordered the certificate; when no agent here or
 * at a peer has, it is an ordinary visitor (a backend may run its own
 * ACME client).
 */
static void
gw_conn_route(struct gw_conn *c, uint8_t kind)
{
	struct tun_open		 o;
	struct sockaddr_storage	 local;
	socklen_t		 llen = sizeof(local);
	int			 rc;

	memset(&o, 0, sizeof(o));
	o.kind = kind;
	snprintf(o.name, sizeof(o.name), "%s", c->name);
	tun_addr_from_sa(&o.src, (struct sockaddr *)&c->peer);
	if (getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&local,
	    &llen) == 0)
		tun_addr_from_sa(&o.dst, (struct sockaddr *)&local);
	/* A replica's stream takes the socket and the bytes read so far. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	rc = -1;
	if (kind != tun_kind_entry(kind))
		rc = gw_fwd_start(c->gw, c->bev, &o, c->id);
	if (rc == -1) {
		o.kind = tun_kind_entry(kind);
		rc = gw_fwd_start(c->gw, c->bev, &o, c->id);
	}
	if (rc == -1) {
		if (o.kind == TUN_KIND_TLS)
			gw_conn_reply(c, "no-route",
			    gw_alert_unrecognized_name,
			    sizeof(gw_alert_unrecognized_name));
		else
			gw_conn_http_reply(c, "no-route", 404, "Not Found",
			    "No service is published under this name here.");
		return;
	}
	c->bev = NULL;
	c->gw->stats.routed++;
	c->result = NULL;	/* the stream logs the rest of its life */
	gw_conn_free(c, 0);
}

/* Send a last word (alert or HTTP error) and close once it is out. */
static void
gw_conn_reply(struct gw_conn *c, const char *result, const void *msg,
    size_t len)
{
	struct timeval	tv = { GW_CONN_LINGER_MS / 1000, 0 };

	c->result = result;
	c->closing = 1;
	bufferevent_setcb(c->bev, gw_conn_read_cb, gw_conn_write_cb,
	    gw_conn_event_cb, c);
	if (bufferevent_write(c->bev, msg, len) == -1) {
		gw_conn_free(c, 1);
		return;
	}
	/* Keep reading (and discarding) so the close is not a RST. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_enable(c->bev, EV_WRITE);
	event_del(c->timer);
	event_add(c->timer, &tv);
}

static void
gw_conn_http_reply(struct gw_conn *c, const char *result, int code,
    const char *reason, const char *text)
{
	char	buf[512];
	int	n, blen;

	blen = (int)strlen(text) + 1;
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %d\r\nConnection: close\r\n"
	    "Cache-Control: no-store\r\n\r\n%s\n", code, reason, blen, text);
	gw_conn_reply(c, result, buf, (size_t)n);
}

static void
gw_conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct gw_conn	*c = arg;

	if (c->closing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		gw_conn_free(c, 1);
}

static void
gw_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct gw_conn	*c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (!c->closing)
			c->result = (what & BEV_EVENT_EOF) ?
			    "closed-before-hello" : "error-before-hello";
		gw_conn_free(c, 1);
	}
}

static void
gw_conn_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw_conn	*c = arg;

	(void)fd;
	(void)ev;
	if (c->closing) {
		gw_conn_free(c, 1);
		return;
	}
	if (c->kind == GW_ENTRY_HTTP)
		gw_conn_http_reply(c, "hello-timeout", 408, "Request Timeout",
		    "The request head did not arrive in time.");
	else {
		c->result = "hello-timeout";
		gw_conn_free(c, 1);
	}
}

