/* SPDX-License-Identifier: ISC */
/*
 * TLS ended at the agent.  The gateway never decrypts: a visitor's TLS
 * stream for a "tls: terminate" service arrives here as it left the
 * visitor, and we do the handshake with the certificate ACME obtained
 * for the service (STATE/certs/NAME/current), then relay plaintext to
 * its http backend, or to its h2c backend when the visitor chose h2.
 * The same machinery answers tls-alpn-01 probes (RFC 8737) with a
 * throw-away certificate for one connection.
 *
 * A stream's visitor side is a bufferevent pair: the tunnel owns one end,
 * a TLS filter owns the other.  The tunnel frees its end without telling
 * the other one, so a connection is the owner of its stream
 * (agent_stream_own) and its end reaches us through
 * agent_term_conn_closed(), the only place a connection is freed: when
 * our side finishes first, it waits there (bounded by a timer).
 *
 * The certificates, and the SNI and ALPN callbacks that choose among
 * them, are in agent_term_site.c.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme_crypto.h"
#include "addr.h"
#include "agent.h"
#include "agent_term_priv.h"
#include "log.h"

#define AGENT_TERM_HIGH		(256 * 1024)	/* per direction */
#define AGENT_TERM_HANDSHAKE_MS	10000
#define AGENT_TERM_LINGER_MS	10000	/* our side done, theirs not */
#define AGENT_TERM_TEXT		272	/* "host:port" of a backend */

enum agent_term_state {
	AGENT_TERM_HANDSHAKE,	/* TLS with the visitor */
	AGENT_TERM_DIAL,	/* connecting to the backend */
	AGENT_TERM_RELAY,	/* plaintext both ways (the relay owns both) */
	AGENT_TERM_CLOSING,	/* close_notify sent; reading to the end */
	AGENT_TERM_DONE,	/* our side ended; the stream not yet */
};

/*
 * One visitor, its stream's owner.  Lives exactly as long as its stream:
 * freed only by agent_term_conn_closed(), which tun_stream_reset() also
 * runs.
 */
struct agent_term_conn {
	struct agent_stream	 own;
	struct agent_term	*t;
	struct tun_stream	*s;
	struct agent_svc_conns	*conns;		/* place under the cap */
	struct agent_term_hs	 hs;		/* the SSL's app data */
	enum agent_term_state	 state;
	int			 tls_eof;	/* visitor EOF in DIAL */
	struct bufferevent	*tls;		/* until relayed */
	struct bufferevent	*backend;	/* being dialed */
	struct agent_relay	*relay;
	struct event		*timer;		/* per state */
	struct tun_open		 o;		/* for PROXY */
	enum cfg_proxy_proto	 proxy;
	/* Backends are copied: a reload may free the service. */
	struct sockaddr_storage	 http, h2c;
	socklen_t		 http_len, h2c_len;
	char			 http_text[AGENT_TERM_TEXT];
	char			 h2c_text[AGENT_TERM_TEXT];
	const char		*backend_text;	/* one of the two */
	char			 visitor[64];
	char			 label[512];	/* stream's, prefix */
};

static void	agent_term_start(struct agent_term_conn *,
		    struct tun_stream *, SSL *);
static void	agent_term_tls_event_cb(struct bufferevent *, short, void *);
static void	agent_term_handshake_done(struct agent_term_conn *);
static void	agent_term_dial(struct agent_term_conn *);
static void	agent_term_dial_cb(struct bufferevent *, short, void *);
static void	agent_term_relay_done(const struct agent_relay_end *,
		    void *);
static void	agent_term_close(struct agent_term_conn *, int);
static void	agent_term_drain_cb(struct bufferevent *, void *);
static void	agent_term_timer_cb(evutil_socket_t, short, void *);
static void	agent_term_reset(struct agent_term_conn *, uint32_t,
		    const char *);
static void	agent_term_conn_closed(struct tun_stream *, const char *,
		    void *);
static void	agent_term_conn_free(struct agent_term_conn *, int);
static void	agent_term_timer(struct agent_term_conn *, unsigned);
static void	agent_term_ssl_error(struct bufferevent *, char *, size_t);

static const struct agent_stream_ops agent_term_stream_ops = {
	.closed = agent_term_conn_closed,
};

void
agent_term_open(struct agent *a, struct tun *tun, struct tun_stream *s,
    const struct agent_service *svc, const struct tun_open *o,
    struct agent_svc_conns *conns)
{
	struct agent_term	*t = a->term;
	struct agent_term_conn	*c;
	struct sockaddr_storage	 ss;
	char			 msg[512];
	SSL			*ssl;

	if (t == NULL) {
		agent_svc_conns_release(conns);
		tun_stream_reset(s, TUN_E_INTERNAL, "TLS termination is not "
		    "set up on this agent");
		return;
	}
	if (svc->http.sslen == 0) {
		agent_svc_conns_release(conns);
		snprintf(msg, sizeof(msg), "service %s has no http backend",
		    svc->cfg->hostname);
		tun_stream_reset(s, TUN_E_NO_SERVICE, msg);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		agent_svc_conns_release(conns);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	c->t = t;
	c->conns = conns;
	c->o = *o;
	c->proxy = svc->cfg->proxy_protocol;
	snprintf(c->hs.site, sizeof(c->hs.site), "%s",
	    svc->cfg->ncert_names > 0 ? svc->cfg->cert_names[0] :
	    svc->cfg->hostname);
	memcpy(&c->http, &svc->http.ss, sizeof(c->http));
	c->http_len = svc->http.sslen;
	snprintf(c->http_text, sizeof(c->http_text), "%s", svc->http.text);
	c->hs.h2_ok = agent_term_h2c(t, c->hs.site, &c->h2c, &c->h2c_len,
	    c->h2c_text, sizeof(c->h2c_text));
	tun_addr_to_ss(&o->src, &ss);
	if (ss.ss_family == AF_UNSPEC)
		snprintf(c->visitor, sizeof(c->visitor), "-");
	else
		addr_fmt((struct sockaddr *)&ss, c->visitor,
		    sizeof(c->visitor));
	snprintf(c->label, sizeof(c->label), "%s visitor=%s sni=%s "
	    "tls=terminate", tun_label(tun), c->visitor, o->name);
	tun_stream_set_label(s, c->label);
	if ((ssl = SSL_new(t->ctx)) == NULL) {
		agent_svc_conns_release(c->conns);
		free(c);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	agent_term_start(c, s, ssl);
}

void
agent_term_alpn01(struct agent *a, struct tun_stream *s, const char *name,
    const char *key_auth)
{
	struct agent_term	*t = a->term;
	struct agent_term_conn	*c = NULL;
	SSL_CTX			*ctx = NULL;
	SSL			*ssl = NULL;
	X509			*x = NULL;
	EVP_PKEY		*pkey = NULL;

	if (t == NULL) {
		tun_stream_reset(s, TUN_E_INTERNAL, "TLS termination is not "
		    "set up on this agent");
		return;
	}
	if (acme_alpn_cert(name, key_auth, &x, &pkey) == -1) {
		log_warnx("acme %s: cannot make the tls-alpn-01 certificate",
		    name);
		tun_stream_reset(s, TUN_E_INTERNAL, "no tls-alpn-01 "
		    "certificate");
		return;
	}
	/* A context of its own: this certificate answers one probe only. */
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (ctx = agent_term_ctx_new(t)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    (ssl = SSL_new(ctx)) == NULL) {
		ERR_clear_error();
		X509_free(x);
		EVP_PKEY_free(pkey);
		SSL_CTX_free(ctx);
		free(c);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	/* The SSL holds its own references to all three. */
	X509_free(x);
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	c->t = t;
	c->hs.alpn01 = 1;
	snprintf(c->hs.site, sizeof(c->hs.site), "%s", name);
	snprintf(c->visitor, sizeof(c->visitor), "-");
	agent_term_start(c, s, ssl);
}

/*
 * Join the stream to a TLS filter over a bufferevent pair and start the
 * handshake.  Takes c and ssl; on failure frees both and resets the
 * stream.
 */
static void
agent_term_start(struct agent_term_conn *c, struct tun_stream *s, SSL *ssl)
{
	struct event_base	*base = c->t->a->base;
	struct bufferevent	*pair[2] = { NULL, NULL };

	if ((c->timer = evtimer_new(base, agent_term_timer_cb, c)) == NULL ||
	    bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) == -1)
		goto fail;
	/* Records wait below the filter only up to this; then the filter
	 * holds plaintext and the relay stops reading the backend. */
	bufferevent_setwatermark(pair[1], EV_WRITE, 0, AGENT_TERM_HIGH);
	SSL_set_app_data(ssl, &c->hs);
	c->tls = bufferevent_openssl_filter_new(base, pair[1], ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->tls == NULL) {
		bufferevent_free(pair[1]);
		pair[1] = NULL;
		goto fail;
	}
	ssl = NULL;		/* the filter's now, with pair[1] */
	/* A visitor's FIN without close_notify is still a half-close. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->tls, 1);
	bufferevent_setcb(c->tls, NULL, NULL, agent_term_tls_event_cb, c);
	c->state = AGENT_TERM_HANDSHAKE;
	c->s = s;
	agent_stream_own(s, &c->own, &agent_term_stream_ops, c);
	agent_term_timer(c, AGENT_TERM_HANDSHAKE_MS);
	/* The ClientHello the tunnel holds flows in now.  Last: the stream
	 * may end from here on, and c with it. */
	tun_stream_attach(s, pair[0]);
	return;
fail:
	SSL_free(ssl);
	if (pair[0] != NULL)
		bufferevent_free(pair[0]);
	if (pair[1] != NULL)
		bufferevent_free(pair[1]);
	if (c->timer != NULL)
		event_free(c->timer);
	agent_svc_conns_release(c->conns);
	free(c);
	tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
}

/* The visitor's TLS side before the relay owns it. */
static void
agent_term_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_term_conn	*c = arg;
	char			 why[320];

	if (what & BEV_EVENT_CONNECTED) {
		agent_term_handshake_done(c);
		return;
	}
	switch (c->state) {
	case AGENT_TERM_HANDSHAKE:
		if (c->hs.why[0] != '\0')
			snprintf(why, sizeof(why), "%s", c->hs.why);
		else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "visitor closed the "
			    "connection");
		else
			agent_term_ssl_error(bev, why, sizeof(why));
		log_info("%s %s: TLS handshake failed: visitor=%s: %s",
		    c->hs.alpn01 ? "acme tls-alpn-01" : "terminate", c->hs.site,
		    c->visitor, why);
		/* Whatever alert OpenSSL queued goes out, then EOF. */
		agent_term_close(c, 0);
		break;
	case AGENT_TERM_DIAL:
		if (what & BEV_EVENT_EOF) {
			c->tls_eof = 1;	/* handed to the relay */
			break;
		}
		agent_term_ssl_error(bev, why, sizeof(why));
		agent_term_reset(c, TUN_E_CANCEL, why);
		break;
	case AGENT_TERM_CLOSING:
		/* The visitor's end after ours: only the stream is left. */
		bufferevent_free(c->tls);
		c->tls = NULL;
		c->state = AGENT_TERM_DONE;
		break;
	default:
		break;
	}
}

static void
agent_term_handshake_done(struct agent_term_conn *c)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(c->tls);
	const unsigned char	*p = NULL;
	unsigned int		 len = 0;
	char			 label[1024];
	int			 h2;

	/* No callback needs c from here on (renegotiation is off). */
	SSL_set_app_data(ssl, NULL);
	evtimer_del(c->timer);
	SSL_get0_alpn_selected(ssl, &p, &len);
	if (c->hs.alpn01) {
		if (len != 10 || memcmp(p, "acme-tls/1", 10) != 0) {
			log_info("acme tls-alpn-01 %s: the client did not ask "
			    "for acme-tls/1; closing", c->hs.site);
			agent_term_close(c, 1);
			return;
		}
		log_info("acme tls-alpn-01 %s: answered the validation "
		    "handshake (%s)", c->hs.site, SSL_get_version(ssl));
		/* Nothing else to say: close without waiting for data. */
		agent_term_close(c, 1);
		return;
	}
	h2 = len == 2 && memcmp(p, "h2", 2) == 0;
	c->backend_text = h2 ? c->h2c_text : c->http_text;
	snprintf(label, sizeof(label), "%s %s alpn=%s backend=%s", c->label,
	    SSL_get_version(ssl), h2 ? "h2" : "http/1.1", c->backend_text);
	tun_stream_set_label(c->s, label);
	agent_term_dial(c);
}

/* The backend, once TLS is up: the ALPN choice picks which one. */
static void
agent_term_dial(struct agent_term_conn *c)
{
	struct agent		*a = c->t->a;
	const struct sockaddr	*sa;
	socklen_t		 len;
	int			 h2 = c->backend_text == c->h2c_text, e;
	char			 msg[512];

	sa = (const struct sockaddr *)(h2 ? &c->h2c : &c->http);
	len = h2 ? c->h2c_len : c->http_len;
	c->backend = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->backend == NULL) {
		agent_term_reset(c, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	c->state = AGENT_TERM_DIAL;
	bufferevent_setcb(c->backend, NULL, NULL, agent_term_dial_cb, c);
	agent_term_timer(c, a->cfg->connect_timeout_ms);
	if (bufferevent_socket_connect(c->backend, sa, (int)len) == -1) {
		e = errno;
		snprintf(msg, sizeof(msg), "backend %s: %s", c->backend_text,
		    strerror(e));
		log_warnx("%s (visitor for %s gets closed)", msg, c->o.name);
		agent_term_close(c, 1);
	}
}

static void
agent_term_dial_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_term_conn	*c = arg;
	int			 e;

	if (what & BEV_EVENT_CONNECTED) {
		evtimer_del(c->timer);
		agent_svc_backend_up(bev, c->proxy, &c->o);
		c->state = AGENT_TERM_RELAY;
		c->relay = agent_relay_new(c->tls, c->backend, AGENT_TERM_HIGH,
		    agent_term_relay_done, c);
		/* The relay's now, even if it failed. */
		c->tls = c->backend = NULL;
		if (c->relay == NULL) {
			agent_term_reset(c, TUN_E_INTERNAL, "agent out of "
			    "memory");
			return;
		}
		if (c->tls_eof)
			agent_relay_eof(c->relay, 0);
		return;
	}
	e = EVUTIL_SOCKET_ERROR();
	log_warnx("backend %s: %s (visitor for %s gets closed)",
	    c->backend_text, strerror(e != 0 ? e : ECONNREFUSED), c->o.name);
	agent_term_close(c, 1);
}

/* Both directions ended (clean), or one side failed. */
static void
agent_term_relay_done(const struct agent_relay_end *e, void *arg)
{
	struct agent_term_conn	*c = arg;
	char			 why[256];

	c->relay = NULL;
	if (e->clean) {
		/* The stream ends once the tunnel has passed both EOFs. */
		c->state = AGENT_TERM_DONE;
		agent_term_timer(c, AGENT_TERM_LINGER_MS);
		return;
	}
	snprintf(why, sizeof(why), "%s %s", e->side == 0 ? "visitor" :
	    "backend", e->reason);
	agent_term_reset(c, TUN_E_CANCEL, why);
}

/*
 * End our side towards the visitor cleanly: close_notify (notify) and
 * EOF after what is queued, so an alert or the last bytes arrive before
 * the close.  Then wait for the visitor's end, reading and dropping.
 */
static void
agent_term_close(struct agent_term_conn *c, int notify)
{
	if (c->backend != NULL) {
		bufferevent_free(c->backend);
		c->backend = NULL;
	}
	if (notify)
		agent_relay_shutdown(c->tls);
	else
		agent_relay_shutdown(bufferevent_get_underlying(c->tls));
	agent_term_timer(c, AGENT_TERM_LINGER_MS);
	if (!notify || c->tls_eof) {
		/* After a TLS failure nothing more can be read anyway. */
		bufferevent_free(c->tls);
		c->tls = NULL;
		c->state = AGENT_TERM_DONE;
		return;
	}
	c->state = AGENT_TERM_CLOSING;
	bufferevent_setcb(c->tls, agent_term_drain_cb, NULL,
	    agent_term_tls_event_cb, c);
	bufferevent_enable(c->tls, EV_READ);
}

/* Closing: what the visitor still sends is dropped until its EOF. */
static void
agent_term_drain_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev),
	    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
agent_term_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent_term_conn	*c = arg;
	char			 msg[512];

	(void)fd;
	(void)ev;
	switch (c->state) {
	case AGENT_TERM_HANDSHAKE:
		log_info("%s %s: TLS handshake failed: visitor=%s: no "
		    "handshake within %u s", c->hs.alpn01 ? "acme tls-alpn-01" :
		    "terminate", c->hs.site, c->visitor,
		    AGENT_TERM_HANDSHAKE_MS / 1000);
		agent_term_reset(c, TUN_E_CANCEL, "TLS handshake timeout");
		break;
	case AGENT_TERM_DIAL:
		snprintf(msg, sizeof(msg), "backend %s: %s", c->backend_text,
		    strerror(ETIMEDOUT));
		log_warnx("%s (visitor for %s gets closed)", msg, c->o.name);
		agent_term_close(c, 1);
		break;
	default:
		/* Our side is done; the visitor keeps its end open. */
		agent_term_reset(c, TUN_E_CANCEL, "visitor did not close");
		break;
	}
}

/* Reset the stream; agent_term_conn_closed() frees c from there. */
static void
agent_term_reset(struct agent_term_conn *c, uint32_t code, const char *msg)
{
	tun_stream_reset(c->s, code, msg);
}

/* The stream ended: the connection goes with it. */
static void
agent_term_conn_closed(struct tun_stream *s, const char *reason, void *arg)
{
	(void)s;
	/* A stream that did not end cleanly cuts the backend too. */
	agent_term_conn_free(arg, reason == NULL ||
	    strcmp(reason, "eof") != 0);
}

static void
agent_term_conn_free(struct agent_term_conn *c, int reset)
{
	agent_relay_free(c->relay, reset);
	if (c->tls != NULL)
		bufferevent_free(c->tls);
	if (c->backend != NULL)
		bufferevent_free(c->backend);
	if (c->timer != NULL)
		event_free(c->timer);
	agent_svc_conns_release(c->conns);
	free(c);
}

static void
agent_term_timer(struct agent_term_conn *c, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

/* The oldest TLS error the filter saw, as words. */
static void
agent_term_ssl_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long	 e, last = 0;
	const char	*r;
	int		 err = EVUTIL_SOCKET_ERROR();

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		last = e;
	if (last != 0 && (r = ERR_reason_error_string(last)) != NULL)
		snprintf(buf, len, "%s", r);
	else if (last != 0)
		snprintf(buf, len, "TLS error %lx", last);
	else if (err != 0)
		snprintf(buf, len, "%s", strerror(err));
	else
		snprintf(buf, len, "connection lost");
}
