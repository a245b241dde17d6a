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
 * Certificates are one SSL_CTX each, switched to by the SNI callback.
 * A handshake holds a reference to the context it uses (OpenSSL counts
 * them), so a renewal swaps the site's context for new visitors while
 * those in flight keep the old one until they close.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
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
#include "acme_store.h"
#include "addr.h"
#include "agent.h"
#include "log.h"
#include "mono.h"
#include "name.h"

#define AGENT_TERM_HIGH		(256 * 1024)	/* per direction */
#define AGENT_TERM_HANDSHAKE_MS	10000
#define AGENT_TERM_LINGER_MS	10000	/* our side done, theirs not */
#define AGENT_TERM_WARN_MS	60000	/* "no certificate", per name */
#define AGENT_TERM_TEXT		272	/* "host:port" of a backend */
#define AGENT_TERM_SID		"porch-term"

/* One terminating service: its certificate and where h2 goes. */
struct agent_term_site {
	TAILQ_ENTRY(agent_term_site) entry;
	char			*name;	/* first certificate name */
	char			**names;	/* every name it covers */
	size_t			 nnames;
	SSL_CTX			*ctx;	/* NULL: none loaded */
	int			 missing;	/* no files yet: no error */
	char			 why[256];	/* why ctx is NULL */
	uint64_t		 warned_ms;	/* last "no certificate" */
	char			*h2c_text;	/* configured, or NULL */
	struct sockaddr_storage	 h2c;
	socklen_t		 h2c_len;	/* 0: no h2 */
	int			 seen;	/* sync mark */
};

TAILQ_HEAD(agent_term_sites, agent_term_site);

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
	enum agent_term_state	 state;
	int			 alpn01;	/* a tls-alpn-01 answer */
	int			 tls_eof;	/* visitor EOF in DIAL */
	struct bufferevent	*tls;		/* until relayed */
	struct bufferevent	*backend;	/* being dialed */
	struct agent_relay	*relay;
	struct event		*timer;		/* per state */
	struct tun_open		 o;		/* for PROXY */
	enum cfg_proxy_proto	 proxy;
	char			 site[NAME_MAX_LEN + 1];
	int			 h2_ok;		/* offer h2 */
	/* Backends are copied: a reload may free the service. */
	struct sockaddr_storage	 http, h2c;
	socklen_t		 http_len, h2c_len;
	char			 http_text[AGENT_TERM_TEXT];
	char			 h2c_text[AGENT_TERM_TEXT];
	const char		*backend_text;	/* one of the two */
	char			 visitor[64];
	char			 label[512];	/* stream's, prefix */
	char			 why[320];	/* from a TLS callback */
};

struct agent_term {
	struct agent		*a;
	SSL_CTX			*ctx;	/* SSLs start here */
	struct agent_term_sites	 sites;
	char			*state_dir;	/* sites loaded from */
};

static int	agent_term_sync(struct agent_term *, int, char *, size_t);
static struct agent_term_site *agent_term_site_new(
		    const struct cfg_service *);
static int	agent_term_site_names(struct agent_term_site *,
		    const struct cfg_service *);
static int	agent_term_site_h2c(struct agent *, struct agent_term_site *,
		    const struct cfg_service *, char *, size_t);
static int	agent_term_site_load(struct agent_term *,
		    struct agent_term_site *, char *, size_t);
static void	agent_term_site_free(struct agent_term_site *);
static struct agent_term_site *agent_term_site_find(struct agent_term *,
		    const char *);
static struct agent_term_site *agent_term_site_covering(struct agent_term *,
		    const char *);
static int	agent_term_site_covers(const struct agent_term_site *,
		    const char *);
static void	agent_term_site_warn(struct agent_term_site *);
static SSL_CTX	*agent_term_ctx_new(struct agent_term *);
static int	agent_term_sni_cb(SSL *, int *, void *);
static int	agent_term_alpn_cb(SSL *, const unsigned char **,
		    unsigned char *, const unsigned char *, unsigned int,
		    void *);
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

int
agent_term_init(struct agent *a, char *err, size_t errlen)
{
	struct agent_term	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->a = a;
	TAILQ_INIT(&t->sites);
	a->term = t;
	if ((t->ctx = agent_term_ctx_new(t)) == NULL) {
		snprintf(err, errlen, "TLS termination: cannot make a TLS "
		    "context");
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(t->ctx, agent_term_sni_cb);
	SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
	return agent_term_sync(t, 1, err, errlen);
}

void
agent_term_free(struct agent *a)
{
	struct agent_term	*t = a->term;
	struct agent_term_site	*site;

	if (t == NULL)
		return;
	/* No connection is left: each ended with its stream, and the
	 * tunnels were closed before. */
	while ((site = TAILQ_FIRST(&t->sites)) != NULL) {
		TAILQ_REMOVE(&t->sites, site, entry);
		agent_term_site_free(site);
	}
	SSL_CTX_free(t->ctx);
	free(t->state_dir);
	free(t);
	a->term = NULL;
}

/* Cheap unless a service or the state directory is new. */
void
agent_term_services_changed(struct agent *a)
{
	char	err[512];

	if (a->term != NULL && agent_term_sync(a->term, 0, err,
	    sizeof(err)) == -1)
		log_warnx("terminate: %s", err);
}

int
agent_term_reload(struct agent *a, const char *name, char *err,
    size_t errlen)
{
	struct agent_term_site	*site;

	if (a->term == NULL ||
	    (site = agent_term_site_find(a->term, name)) == NULL)
		return 0;	/* no service ends TLS with it */
	if (agent_term_site_load(a->term, site, err, errlen) == -1)
		return -1;	/* the old one, if any, stays in use */
	log_info("terminate %s: new certificate in use for new connections",
	    site->name);
	return 0;
}

int
agent_term_has_cert(struct agent *a, const char *hostname)
{
	struct agent_term_site	*site;

	if (a->term == NULL)
		return 0;
	TAILQ_FOREACH(site, &a->term->sites, entry)
		if (site->ctx != NULL && agent_term_site_covers(site, hostname))
			return 1;
	return 0;
}

void
agent_term_open(struct agent *a, struct tun *tun, struct tun_stream *s,
    const struct agent_service *svc, const struct tun_open *o,
    struct agent_svc_conns *conns)
{
	struct agent_term	*t = a->term;
	struct agent_term_conn	*c;
	struct agent_term_site	*site;
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
	snprintf(c->site, sizeof(c->site), "%s", svc->cfg->ncert_names > 0 ?
	    svc->cfg->cert_names[0] : svc->cfg->hostname);
	memcpy(&c->http, &svc->http.ss, sizeof(c->http));
	c->http_len = svc->http.sslen;
	snprintf(c->http_text, sizeof(c->http_text), "%s", svc->http.text);
	if ((site = agent_term_site_find(t, c->site)) != NULL &&
	    site->h2c_len > 0) {
		c->h2_ok = 1;
		memcpy(&c->h2c, &site->h2c, sizeof(c->h2c));
		c->h2c_len = site->h2c_len;
		snprintf(c->h2c_text, sizeof(c->h2c_text), "%s",
		    site->h2c_text);
	}
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
	c->alpn01 = 1;
	snprintf(c->site, sizeof(c->site), "%s", name);
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
	SSL_set_app_data(ssl, c);
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
		if (c->why[0] != '\0')
			snprintf(why, sizeof(why), "%s", c->why);
		else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "visitor closed the "
			    "connection");
		else
			agent_term_ssl_error(bev, why, sizeof(why));
		log_info("%s %s: TLS handshake failed: visitor=%s: %s",
		    c->alpn01 ? "acme tls-alpn-01" : "terminate", c->site,
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
	if (c->alpn01) {
		if (len != 10 || memcmp(p, "acme-tls/1", 10) != 0) {
			log_info("acme tls-alpn-01 %s: the client did not ask "
			    "for acme-tls/1; closing", c->site);
			agent_term_close(c, 1);
			return;
		}
		log_info("acme tls-alpn-01 %s: answered the validation "
		    "handshake (%s)", c->site, SSL_get_version(ssl));
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
	uint8_t			 hdr[AGENT_PROXY_MAX];
	size_t			 n;
	int			 on = 1, e;

	if (what & BEV_EVENT_CONNECTED) {
		evtimer_del(c->timer);
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &on, sizeof(on));
		n = agent_proxy_header(c->proxy, &c->o.src, &c->o.dst, hdr);
		if (n > 0)
			bufferevent_write(bev, hdr, n);
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
		    "handshake within %u s", c->alpn01 ? "acme tls-alpn-01" :
		    "terminate", c->site, c->visitor,
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

/*
 * The services that end TLS, and their certificates: keep the sites of
 * names still there (their contexts stay loaded), add the new ones,
 * drop the rest.  strict (startup): an h2c backend that does not
 * resolve fails; later it only costs the service its h2.
 */
static int
agent_term_sync(struct agent_term *t, int strict, char *err, size_t errlen)
{
	struct agent			*a = t->a;
	const struct cfg_service	*cs;
	struct agent_term_site		*site, *next;
	const char			*state;
	char				 why[512];
	size_t				 i;
	int				 all, fresh;

	state = a->cfg->acme != NULL ? a->cfg->acme->state_dir : NULL;
	/* Another state directory holds other files: read them all. */
	all = (state == NULL) != (t->state_dir == NULL) ||
	    (state != NULL && strcmp(state, t->state_dir) != 0);
	if (all) {
		free(t->state_dir);
		t->state_dir = NULL;
		if (state != NULL && (t->state_dir = strdup(state)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	TAILQ_FOREACH(site, &t->sites, entry)
		site->seen = 0;
	for (i = 0; i < a->nservices; i++) {
		cs = a->services[i]->cfg;
		if (!cs->tls_terminate)
			continue;
		fresh = 0;
		if ((site = agent_term_site_find(t, cs->ncert_names > 0 ?
		    cs->cert_names[0] : cs->hostname)) == NULL) {
			if ((site = agent_term_site_new(cs)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			TAILQ_INSERT_TAIL(&t->sites, site, entry);
			fresh = 1;
		}
		site->seen = 1;
		if (agent_term_site_names(site, cs) == -1) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (agent_term_site_h2c(a, site, cs, why, sizeof(why)) == -1) {
			if (strict) {
				snprintf(err, errlen, "%s", why);
				return -1;
			}
			log_warnx("terminate %s: %s; h2 is not offered",
			    site->name, why);
		}
		if (!fresh && !all)
			continue;
		if (agent_term_site_load(t, site, why, sizeof(why)) == 0)
			continue;
		if (site->missing)
			log_info("terminate %s: no certificate yet; TLS "
			    "visitors are refused until ACME obtains one",
			    site->name);
		else
			log_warnx("terminate %s: %s", site->name, why);
	}
	for (site = TAILQ_FIRST(&t->sites); site != NULL; site = next) {
		next = TAILQ_NEXT(site, entry);
		if (site->seen)
			continue;
		/* Handshakes in flight hold their own reference. */
		TAILQ_REMOVE(&t->sites, site, entry);
		agent_term_site_free(site);
	}
	return 0;
}

static struct agent_term_site *
agent_term_site_new(const struct cfg_service *cs)
{
	struct agent_term_site	*site;

	if ((site = calloc(1, sizeof(*site))) == NULL)
		return NULL;
	if ((site->name = strdup(cs->ncert_names > 0 ? cs->cert_names[0] :
	    cs->hostname)) == NULL) {
		free(site);
		return NULL;
	}
	site->missing = 1;
	snprintf(site->why, sizeof(site->why), "not loaded");
	return site;
}

/* The names SNI may ask for: a reload may have changed them. */
static int
agent_term_site_names(struct agent_term_site *site,
    const struct cfg_service *cs)
{
	char	**names;
	size_t	  i, n = cs->ncert_names > 0 ? cs->ncert_names : 1;

	if ((names = calloc(n, sizeof(*names))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		names[i] = strdup(cs->ncert_names > 0 ? cs->cert_names[i] :
		    cs->hostname);
		if (names[i] == NULL) {
			while (i-- > 0)
				free(names[i]);
			free(names);
			return -1;
		}
	}
	for (i = 0; i < site->nnames; i++)
		free(site->names[i]);
	free(site->names);
	site->names = names;
	site->nnames = n;
	return 0;
}

/* Resolve the h2c backend when it is new or changed (never per stream). */
static int
agent_term_site_h2c(struct agent *a, struct agent_term_site *site,
    const struct cfg_service *cs, char *err, size_t errlen)
{
	char	*text;

	if (cs->h2c_backend == NULL) {
		free(site->h2c_text);
		site->h2c_text = NULL;
		site->h2c_len = 0;
		return 0;
	}
	if (site->h2c_text != NULL && site->h2c_len > 0 &&
	    strcmp(site->h2c_text, cs->h2c_backend) == 0)
		return 0;
	free(site->h2c_text);
	site->h2c_text = NULL;
	site->h2c_len = 0;
	if (agent_backend_resolve(a, cs->h2c_backend, "h2c backend",
	    &site->h2c, &site->h2c_len, err, errlen) == -1)
		return -1;
	if ((text = strdup(cs->h2c_backend)) == NULL) {
		site->h2c_len = 0;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	site->h2c_text = text;
	return 0;
}

/*
 * Read STATE/certs/NAME/current into a new context and make it the
 * site's.  On failure the site keeps what it had.
 */
static int
agent_term_site_load(struct agent_term *t, struct agent_term_site *site,
    char *err, size_t errlen)
{
	char		 dir[PATH_MAX], real[PATH_MAX];
	char		 chain[PATH_MAX + 16], key[PATH_MAX + 16];
	unsigned long	 e;
	SSL_CTX		*ctx;
	int		 n1, n2;

	if (t->state_dir == NULL) {
		snprintf(err, errlen, "no acme: section to take a certificate "
		    "from");
		goto fail;
	}
	acme_store_cert_dir(t->state_dir, site->name, dir, sizeof(dir));
	/* Both files from one version: "current" may be swapped between
	 * the two reads. */
	if (realpath(dir, real) == NULL) {
		if (site->ctx == NULL)
			site->missing = errno == ENOENT;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	n1 = snprintf(chain, sizeof(chain), "%s/fullchain.pem", real);
	n2 = snprintf(key, sizeof(key), "%s/privkey.pem", real);
	if (n1 < 0 || (size_t)n1 >= sizeof(chain) || n2 < 0 ||
	    (size_t)n2 >= sizeof(key)) {
		snprintf(err, errlen, "%s: path too long", real);
		goto fail;
	}
	if ((ctx = agent_term_ctx_new(t)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1) {
		e = ERR_peek_last_error();
		snprintf(err, errlen, "%s: %s", chain,
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : "unreadable");
		SSL_CTX_free(ctx);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		e = ERR_peek_last_error();
		snprintf(err, errlen, "%s: %s", key,
		    ERR_reason_error_string(e) != NULL ?
		    ERR_reason_error_string(e) : "unreadable");
		SSL_CTX_free(ctx);
		goto fail;
	}
	ERR_clear_error();
	SSL_CTX_free(site->ctx);
	site->ctx = ctx;
	site->missing = 0;
	site->why[0] = '\0';
	log_info("terminate %s: certificate loaded from %s", site->name, real);
	return 0;
fail:
	ERR_clear_error();
	if (site->ctx == NULL)
		snprintf(site->why, sizeof(site->why), "%s", err);
	return -1;
}

static void
agent_term_site_free(struct agent_term_site *site)
{
	size_t	i;

	for (i = 0; i < site->nnames; i++)
		free(site->names[i]);
	free(site->names);
	free(site->name);
	free(site->h2c_text);
	SSL_CTX_free(site->ctx);
	free(site);
}

static struct agent_term_site *
agent_term_site_find(struct agent_term *t, const char *name)
{
	struct agent_term_site	*site;

	TAILQ_FOREACH(site, &t->sites, entry)
		if (strcmp(site->name, name) == 0)
			return site;
	return NULL;
}

/* A site with a loaded certificate for name, if any. */
static struct agent_term_site *
agent_term_site_covering(struct agent_term *t, const char *name)
{
	struct agent_term_site	*site;

	TAILQ_FOREACH(site, &t->sites, entry)
		if (site->ctx != NULL && agent_term_site_covers(site, name))
			return site;
	return NULL;
}

static int
agent_term_site_covers(const struct agent_term_site *site, const char *name)
{
	size_t	i;

	for (i = 0; i < site->nnames; i++)
		if (strcmp(site->names[i], name) == 0)
			return 1;
	return 0;
}

/* Once a minute per name at most: every visitor would repeat it. */
static void
agent_term_site_warn(struct agent_term_site *site)
{
	uint64_t	now = mono_ms();

	if (site->warned_ms != 0 && now - site->warned_ms < AGENT_TERM_WARN_MS)
		return;
	site->warned_ms = now;
	if (site->missing)
		log_warnx("no certificate for %s yet (ACME has not obtained "
		    "one; see porchctl cert status)", site->name);
	else
		log_warnx("no usable certificate for %s: %s (see porchctl "
		    "cert status)", site->name, site->why);
}

/* What every context here shares: TLS 1.2 and 1.3, ALPN by us. */
static SSL_CTX *
agent_term_ctx_new(struct agent_term *t)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)AGENT_TERM_SID,
	    sizeof(AGENT_TERM_SID) - 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Idle visitors should not each hold 2 x 16 KiB of TLS buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, agent_term_alpn_cb, t);
	return ctx;
}

/*
 * Pick the certificate: the one covering the SNI name (the service's
 * own first), else the service's.  None loaded: unrecognized_name.
 */
static int
agent_term_sni_cb(SSL *ssl, int *al, void *arg)
{
	struct agent_term	*t = arg;
	struct agent_term_conn	*c = SSL_get_app_data(ssl);
	struct agent_term_site	*site, *other;
	const char		*sn;
	char			 name[NAME_MAX_LEN + 1];

	if (c == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	site = agent_term_site_find(t, c->site);
	sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (sn != NULL && name_normalize(sn, strlen(sn), name, 0) == 0 &&
	    (site == NULL || site->ctx == NULL ||
	    !agent_term_site_covers(site, name)) &&
	    (other = agent_term_site_covering(t, name)) != NULL)
		site = other;
	if (site == NULL) {
		snprintf(c->why, sizeof(c->why), "service %s was removed",
		    c->site);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (site->ctx == NULL) {
		agent_term_site_warn(site);
		snprintf(c->why, sizeof(c->why), "no certificate for %s",
		    site->name);
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (SSL_set_SSL_CTX(ssl, site->ctx) == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Our preference among what the visitor offers: h2 (only with an h2c
 * backend), then http/1.1; for a tls-alpn-01 probe acme-tls/1 alone.
 * Nothing in common fails the handshake (no_application_protocol).
 */
static int
agent_term_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const char *const web[] = { "h2", "http/1.1", NULL };
	static const char *const acme[] = { "acme-tls/1", NULL };
	struct agent_term_conn	*c = SSL_get_app_data(ssl);
	const char *const	*want;
	unsigned int		 i;
	size_t			 n;

	(void)arg;
	if (c == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	want = c->alpn01 ? acme : c->h2_ok ? web : web + 1;
	for (; *want != NULL; want++) {
		n = strlen(*want);
		for (i = 0; i < inlen; i += 1 + in[i]) {
			if (i + 1 + in[i] > inlen)
				break;	/* OpenSSL checked it */
			if (in[i] == n && memcmp(in + i + 1, *want, n) == 0) {
				*out = in + i + 1;
				*outlen = in[i];
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	snprintf(c->why, sizeof(c->why), "no ALPN protocol in common (we "
	    "offer %s)", c->alpn01 ? "acme-tls/1" : c->h2_ok ?
	    "h2, http/1.1" : "http/1.1");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
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

