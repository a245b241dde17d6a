/* SPDX-License-Identifier: ISC */
/*
 * One tunnel connection: TLS 1.3 transport, the Ed25519 handshake bound
 * to the TLS exporter, frame dispatch, keepalive, and the streams it
 * carries.  Both daemons use it; the gateway opens streams, the agent
 * accepts them.
 *
 * A stream relays between a local bufferevent (the visitor or the home
 * backend) and the tunnel.  Each direction is credit-based: a sender may
 * have at most the receiver's window in flight, and the receiver returns
 * credit only once bytes have left its local socket buffer.  So a slow
 * visitor stalls only its own stream and costs at most one window of
 * memory at each end.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <sodium.h>

#include "log.h"
#include "mono.h"
#include "tun.h"
#include "tun_bio.h"

#define TUN_BUCKETS_MIN	16	/* stream hash: an idle tunnel's */
#define TUN_BUCKETS_MAX	65536
/* One side opens only odd ids, the other only even: hash id / 2. */
#define TUN_BUCKET(id, n)	(((id) >> 1) & ((n) - 1))
#define TUN_OUT_HIGH	(1024 * 1024)	/* tunnel output that stops streams */
#define TUN_OUT_LOW	(256 * 1024)	/* ... and resumes them */
#define TUN_OUT_CAP	(4 * 1024 * 1024)	/* stop reading the peer */
#define TUN_SHUTDOWN_MS	2000		/* bound on flushing a GOAWAY */
#define TUN_TICK_MS	250		/* keepalive and dead-peer checks */
#define TUN_DATA_CHUNK	(16384 - TUN_HDR_LEN)	/* one frame, one record */
#define TUN_READ_MAX	(256 * 1024)	/* tunnel bytes per read callback */
#define TUN_LOCAL_IO	(64 * 1024)	/* local socket bytes per syscall */
#define TUN_DIRECT_FRAMES 4		/* DATA frames filled by one readv */
#define TUN_AUTH_CTX	"porch-auth-v1"

enum tun_state {
	TUN_HANDSHAKE,		/* TLS handshake */
	TUN_AUTH,		/* our HELLO sent, waiting for the peer's */
	TUN_READY,
	TUN_CLOSING,		/* GOAWAY queued, flushing */
};

/* How a stream ends, for tun_stream_free. */
enum tun_end {
	TUN_END_CLEAN,		/* both FINs: the local side gets a FIN */
	TUN_END_ABORT,		/* reset: the local side gets a TCP reset */
	TUN_END_RETRY,		/* as ABORT, but the owner may replay it */
};

/* RESET codes after which a stream may be replayed elsewhere. */
#define TUN_RETRYABLE(c)	((c) == TUN_E_REFUSED || \
	(c) == TUN_E_UNREACHABLE || (c) == TUN_E_NO_SERVICE || \
	(c) == TUN_E_LIMIT || (c) == TUN_E_SHUTDOWN)

#define TUN_S_LOCAL_EOF		0x01	/* local side sent EOF */
#define TUN_S_FIN_SENT		0x02
#define TUN_S_REMOTE_FIN	0x04
#define TUN_S_SHUT_WR		0x08	/* local write side shut down */
#define TUN_S_READING		0x10	/* reading the local side */
#define TUN_S_WAITING		0x20	/* on the tunnel's waiting list */
#define TUN_S_DIRECT		0x40	/* bev is a socket we read and write
					 * ourselves */
#define TUN_S_DIRTY		0x80	/* on the tunnel's dirty list */
#define TUN_S_WBLOCKED		0x100	/* socket full: libevent writes */

struct tun_stream {
	struct tun		*tun;
	uint32_t		 id;
	struct tun_stream	*hnext;
	TAILQ_ENTRY(tun_stream)	 entry;
	TAILQ_ENTRY(tun_stream)	 wentry;
	TAILQ_ENTRY(tun_stream)	 dentry;
	struct bufferevent	*bev;		/* local side, owned */
	struct event		*rev;		/* DIRECT: bev's socket readable */
	struct evbuffer_cb_entry *drain_cb;
	struct evbuffer		*pending;	/* data before attach */
	struct evbuffer		*replay;	/* sent, until a byte returns */
	size_t			 replay_max;
	uint32_t		 send_credit;
	uint64_t		 rx_total;	/* bytes the peer sent us */
	uint64_t		 rx_allowed;	/* credit we granted in all */
	uint32_t		 unacked;	/* delivered, not yet credited */
	size_t			 skip;		/* local bytes not to credit */
	uint64_t		 in, out;	/* local->tunnel, tunnel->local */
	int			 flags;
	uint64_t		 start_ms;
	char			*label;
	void			*udata;
};

TAILQ_HEAD(tun_stream_list, tun_stream);

struct tun {
	struct event_base	*base;
	struct bufferevent	*bev;
	struct evbuffer		*out;		/* frames not yet given to TLS */
	BIO			*wbio;		/* TLS records not yet sent; the
						 * SSL's (NULL over a filter) */
	struct evbuffer_cb_entry *under_cb;	/* over a filter: its output */
	struct event		*flush_ev;	/* out to TLS, end of the pass */
	struct event		*sink_ev;	/* records went out: resume */
	struct event		*timer;		/* keepalive, dead peer */
	struct event		*hs_timer;	/* handshake deadline */
	struct event		*drain_timer;	/* drain deadline, or drained */
	struct event		*kick;		/* starts I/O from the loop */
	struct event		*eof_ev;	/* closes after the last read */
	char			 eof_why[256];
	struct tun_params	 p;
	char			*name;
	char			*label;
	const struct tun_ops	*ops;
	void			*arg;
	enum tun_state		 state;
	int			 accepting;
	int			 draining;	/* GOAWAY sent or received */
	int			 drain_sent;	/* we sent a draining GOAWAY */
	int			 closed;
	int			 busy;		/* callbacks on the stack */
	int			 read_paused;	/* our output is over the cap */
	char			 peer_name[64];
	uint8_t			 peer_key[KEY_PUB_LEN];
	uint32_t		 peer_window;
	uint8_t			 exporter[32];
	uint64_t		 start_ms;
	uint64_t		 last_rx_ms;
	uint64_t		 last_ping_ms;
	double			 rtt_ms;
	uint32_t		 next_id;
	unsigned		 nstreams;
	struct tun_stream	**buckets;
	size_t			 nbuckets;
	struct tun_stream_list	 streams;
	struct tun_stream_list	 waiting;
	struct tun_stream_list	 dirty;		/* local output to write */
};

static struct tun *tun_new_common(struct event_base *, int,
		    struct bufferevent *, SSL *, int, const struct tun_params *,
		    const struct tun_ops *, void *);
static void	tun_enter(struct tun *);
static void	tun_leave(struct tun *);
static void	tun_free(struct tun *);
static void	tun_read_cb(struct bufferevent *, void *);
static void	tun_event_cb(struct bufferevent *, short, void *);
static void	tun_timer_cb(evutil_socket_t, short, void *);
static void	tun_hs_timer_cb(evutil_socket_t, short, void *);
static void	tun_drain_timer_cb(evutil_socket_t, short, void *);
static void	tun_kick_cb(evutil_socket_t, short, void *);
static void	tun_eof_cb(evutil_socket_t, short, void *);
static int	tun_read_pending(struct tun *);
static void	tun_flush_close(struct tun *);
static size_t	tun_out_len(struct tun *);
static void	tun_flush_out(struct tun *);
static void	tun_out_cb(struct evbuffer *, const struct evbuffer_cb_info *,
		    void *);
static void	tun_flush_cb(evutil_socket_t, short, void *);
static void	tun_sink_cb(evutil_socket_t, short, void *);
static void	tun_drained_cb(void *);
static void	tun_under_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	tun_connected(struct tun *);
static void	tun_send_hello(struct tun *);
static void	tun_dispatch(struct tun *, const struct tun_frame *);
static void	tun_recv_hello(struct tun *, const struct tun_frame *);
static void	tun_recv_data(struct tun *, const uint8_t *, uint32_t,
		    struct evbuffer *);
static void	tun_recv_open(struct tun *, const struct tun_frame *);
static void	tun_send(struct tun *, uint8_t, uint8_t, uint32_t,
		    const void *, size_t);
static void	tun_send_reason(struct tun *, int, uint32_t, uint32_t,
		    const char *);
static void	tun_protocol_error(struct tun *, const char *);
static void	tun_sign_input(const struct tun *, uint8_t, uint8_t *);

static struct tun_stream *tun_stream_new(struct tun *, uint32_t);
static struct tun_stream *tun_stream_find(struct tun *, uint32_t);
static void	tun_stream_free(struct tun_stream *, const char *, enum tun_end);
static int	tun_stream_retry(struct tun_stream *, const char *);
static int	tun_stream_pump(struct tun_stream *);
static int	tun_stream_check_done(struct tun_stream *);
static void	tun_stream_set_reading(struct tun_stream *, int);
static void	tun_stream_dirty(struct tun_stream *);
static void	tun_stream_write_now(struct tun_stream *);
static void	tun_stream_read_cb(struct bufferevent *, void *);
static void	tun_stream_readable_cb(evutil_socket_t, short, void *);
static int	tun_stream_read_direct(struct tun_stream *);
static void	tun_stream_write_cb(struct bufferevent *, void *);
static void	tun_stream_event_cb(struct bufferevent *, short, void *);
static void	tun_stream_drain_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);

struct tun *
tun_new(struct event_base *base, int fd, SSL *ssl, int accepting,
    const struct tun_params *p, const struct tun_ops *ops, void *arg)
{
	return tun_new_common(base, fd, NULL, ssl, accepting, p, ops, arg);
}

struct tun *
tun_new_over(struct event_base *base, struct bufferevent *under, SSL *ssl,
    const struct tun_params *p, const struct tun_ops *ops, void *arg)
{
	return tun_new_common(base, -1, under, ssl, 1, p, ops, arg);
}

/* Over a socket (fd) or over a bufferevent already read from (under). */
static struct tun *
tun_new_common(struct event_base *base, int fd, struct bufferevent *under,
    SSL *ssl, int accepting, const struct tun_params *p,
    const struct tun_ops *ops, void *arg)
{
	struct tun	*t;
	struct timeval	 tv;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto fail;
	t->base = base;
	t->p = *p;
	t->ops = ops;
	t->arg = arg;
	t->accepting = accepting;
	t->state = TUN_HANDSHAKE;
	t->rtt_ms = -1;
	/* Dialers open odd stream ids, acceptors even (peer links open
	 * streams both ways; on agent tunnels only the gateway does). */
	t->next_id = accepting ? 2 : 1;
	t->start_ms = t->last_rx_ms = mono_ms();
	TAILQ_INIT(&t->streams);
	TAILQ_INIT(&t->waiting);
	TAILQ_INIT(&t->dirty);
	/* Small while idle (most tunnels, most of the time); doubled as
	 * streams come (tun_stream_new). */
	t->nbuckets = TUN_BUCKETS_MIN;
	if ((t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL)
		goto fail_t;
	t->name = strdup(p->name ? p->name : "");
	t->label = strdup(p->label ? p->label : "tun");
	if (t->name == NULL || t->label == NULL)
		goto fail_t;
	t->p.name = t->name;
	t->p.label = t->label;
	/* Timers exist before the bufferevent: its callbacks may close us. */
	t->timer = event_new(base, -1, EV_PERSIST, tun_timer_cb, t);
	t->hs_timer = event_new(base, -1, 0, tun_hs_timer_cb, t);
	t->drain_timer = event_new(base, -1, 0, tun_drain_timer_cb, t);
	t->kick = event_new(base, -1, 0, tun_kick_cb, t);
	t->eof_ev = event_new(base, -1, 0, tun_eof_cb, t);
	t->flush_ev = event_new(base, -1, 0, tun_flush_cb, t);
	t->sink_ev = event_new(base, -1, 0, tun_sink_cb, t);
	if (t->timer == NULL || t->hs_timer == NULL ||
	    t->drain_timer == NULL || t->kick == NULL || t->eof_ev == NULL ||
	    t->flush_ev == NULL || t->sink_ev == NULL)
		goto fail_t;
	if ((t->out = evbuffer_new()) == NULL ||
	    evbuffer_add_cb(t->out, tun_out_cb, t) == NULL)
		goto fail_t;
	if (under != NULL) {
		t->bev = bufferevent_openssl_filter_new(base, under, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		under = NULL;	/* libevent's now, even when it failed */
	} else {
		BIO	*rbio = BIO_new_socket(fd, BIO_NOCLOSE);

		if (rbio == NULL || (t->wbio = tun_bio_new(base, fd)) == NULL) {
			BIO_free(rbio);
			goto fail_t;
		}
		SSL_set_bio(ssl, rbio, t->wbio);	/* the SSL's now */
		tun_bio_set_drained(t->wbio, tun_drained_cb, t);
		t->bev = bufferevent_openssl_socket_new(base, fd, ssl,
		    accepting ? BUFFEREVENT_SSL_ACCEPTING :
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	}
	/* libevent frees ssl even when it fails; fd stays ours then. */
	ssl = NULL;
	if (t->bev == NULL) {
		t->wbio = NULL;		/* went with ssl */
		goto fail_t;
	}
	fd = -1;
	if (t->wbio == NULL && (t->under_cb = evbuffer_add_cb(
	    bufferevent_get_output(bufferevent_get_underlying(t->bev)),
	    tun_under_cb, t)) == NULL)
		goto fail_t;
	bufferevent_openssl_set_allow_dirty_shutdown(t->bev, 1);
	/* No write callback: we write the SSL ourselves (tun_flush_out). */
	bufferevent_setcb(t->bev, tun_read_cb, NULL, tun_event_cb, t);
	/* Without a read mark the TLS layer reads 4 KiB at a time. */
	bufferevent_setwatermark(t->bev, EV_READ, 0, TUN_READ_MAX);
	bufferevent_set_max_single_read(t->bev, TUN_READ_MAX);
	bufferevent_set_max_single_write(t->bev, TUN_READ_MAX);
	/* Tick finer than the keepalive, so a dead peer is declared close
	 * to dead_peer_ms rather than up to a keepalive later. */
	tv.tv_sec = 0;
	tv.tv_usec = (p->keepalive_ms < TUN_TICK_MS ? p->keepalive_ms :
	    TUN_TICK_MS) * 1000;
	event_add(t->timer, &tv);
	tv.tv_sec = p->handshake_ms / 1000;
	tv.tv_usec = (p->handshake_ms % 1000) * 1000;
	event_add(t->hs_timer, &tv);
	/*
	 * Start from the loop, not from here: over a filter the ClientHello
	 * is already buffered, so starting may run the whole handshake (and
	 * fail, and close us) before the caller even has our pointer.
	 */
	event_active(t->kick, EV_TIMEOUT, 0);
	return t;
fail_t:
	if (t->timer != NULL)
		event_free(t->timer);
	if (t->hs_timer != NULL)
		event_free(t->hs_timer);
	if (t->drain_timer != NULL)
		event_free(t->drain_timer);
	if (t->kick != NULL)
		event_free(t->kick);
	if (t->eof_ev != NULL)
		event_free(t->eof_ev);
	if (t->flush_ev != NULL)
		event_free(t->flush_ev);
	if (t->sink_ev != NULL)
		event_free(t->sink_ev);
	if (t->out != NULL)
		evbuffer_free(t->out);
	if (t->bev != NULL)
		bufferevent_free(t->bev);
	free(t->buckets);
	free(t->name);
	free(t->label);
	free(t);
fail:
	if (ssl != NULL)
		SSL_free(ssl);
	if (fd != -1)
		close(fd);
	if (under != NULL)
		bufferevent_free(under);
	return NULL;
}

void
tun_close(struct tun *t, const char *reason)
{
	struct tun_stream	*s;
	char			 why[128];

	if (t->closed)
		return;
	t->closed = 1;
	snprintf(why, sizeof(why), "tunnel-lost (%s)", reason);
	while ((s = TAILQ_FIRST(&t->streams)) != NULL)
		tun_stream_free(s, why, TUN_END_RETRY);
	/* What we queued, then a close_notify, so the peer sees a clean
	 * close rather than a truncated TLS stream; best effort. */
	tun_flush_out(t);
	if (t->state != TUN_HANDSHAKE && evbuffer_get_length(t->out) == 0) {
		SSL *ssl = bufferevent_openssl_get_ssl(t->bev);

		if (ssl != NULL && SSL_is_init_finished(ssl))
			(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	bufferevent_disable(t->bev, EV_READ | EV_WRITE);
	event_del(t->timer);
	event_del(t->hs_timer);
	event_del(t->drain_timer);
	event_del(t->kick);
	event_del(t->eof_ev);
	event_del(t->flush_ev);
	event_del(t->sink_ev);
	if (t->ops->closed != NULL)
		t->ops->closed(t, reason, t->arg);
	if (t->busy == 0)
		tun_free(t);
}

void
tun_shutdown(struct tun *t, uint32_t code, const char *msg)
{
	if (t->closed || t->state == TUN_CLOSING)
		return;
	if (t->state == TUN_HANDSHAKE) {
		tun_close(t, msg);
		return;
	}
	tun_send_reason(t, 1, code, t->next_id, msg);
	tun_flush_close(t);
}

/* Read nothing more; close when the output is written, or later. */
static void
tun_flush_close(struct tun *t)
{
	struct timeval	tv = { TUN_SHUTDOWN_MS / 1000, 0 };

	t->state = TUN_CLOSING;
	t->draining = 1;
	bufferevent_disable(t->bev, EV_READ);
	bufferevent_setwatermark(t->bev, EV_WRITE, 0, 0);
	event_del(t->timer);
	event_add(t->timer, &tv);
	if (tun_out_len(t) == 0)
		event_active(t->timer, EV_TIMEOUT, 0);	/* nothing to wait for */
}

/* Bytes we queued that the socket has not taken yet. */
static size_t
tun_out_len(struct tun *t)
{
	size_t	n = evbuffer_get_length(t->out);

	if (t->wbio != NULL)
		n += tun_bio_pending(t->wbio);
	else
		n += evbuffer_get_length(bufferevent_get_output(
		    bufferevent_get_underlying(t->bev)));
	return n;
}

/*
 * Hand the queued frames to TLS, a buffer chain per SSL_write.  Neither
 * sink below the SSL refuses a record (tun_bio.c; a filter's bufferevent
 * without a write high mark), so this does not block and libevent's
 * write event, armed and disarmed around every write, is never used.
 */
static void
tun_flush_out(struct tun *t)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(t->bev);
	struct evbuffer_iovec	 v;
	unsigned long		 e;
	int			 r, err;
	char			 ebuf[160];

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return;
	while (evbuffer_get_length(t->out) > 0) {
		if (evbuffer_peek(t->out, -1, NULL, &v, 1) < 1)
			break;
		ERR_clear_error();
		if ((r = SSL_write(ssl, v.iov_base, (int)v.iov_len)) > 0) {
			evbuffer_drain(t->out, (size_t)r);
			continue;
		}
		err = SSL_get_error(ssl, r);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
			break;		/* tun_sink_cb tries again */
		if (!t->closed && t->eof_why[0] == '\0') {
			if ((e = ERR_peek_error()) != 0) {
				ERR_error_string_n(e, ebuf, sizeof(ebuf));
				snprintf(t->eof_why, sizeof(t->eof_why),
				    "TLS write error: %s", ebuf);
			} else
				snprintf(t->eof_why, sizeof(t->eof_why),
				    "write error: %s", errno != 0 ?
				    strerror(errno) : "connection lost");
			bufferevent_disable(t->bev, EV_READ | EV_WRITE);
			event_active(t->eof_ev, EV_TIMEOUT, 0);
		}
		ERR_clear_error();
		/* Nothing queued can go out any more. */
		evbuffer_drain(t->out, evbuffer_get_length(t->out));
		break;
	}
	/* No wakeup of tun_sink_cb from here: it calls us, and the sink
	 * reports its own progress (tun_drained_cb, tun_under_cb). */
}

/* Frames arrived in an empty queue: write them at the end of the pass,
 * with whatever else the pass queues. */
static void
tun_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct tun	*t = arg;

	(void)buf;
	if (info->n_added > 0 && info->orig_size == 0 && !t->closed)
		event_active(t->flush_ev, EV_TIMEOUT, 0);
}

static void
tun_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun		*t = arg;
	struct tun_stream	*s;

	(void)fd;
	(void)ev;
	tun_enter(t);
	/* Local sockets first: what they take returns credit (WINDOW
	 * frames) that then goes out in the same TLS write. */
	while (!t->closed && (s = TAILQ_FIRST(&t->dirty)) != NULL) {
		TAILQ_REMOVE(&t->dirty, s, dentry);
		s->flags &= ~TUN_S_DIRTY;
		tun_stream_write_now(s);
	}
	if (!t->closed)
		tun_flush_out(t);
	tun_leave(t);
}

/*
 * Records left for the socket: a closing tunnel is done once all are
 * out; otherwise, below the low mark, read the peer again and resume
 * the streams that waited for room.
 */
static void
tun_sink_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun		*t = arg;
	struct tun_stream	*s;

	(void)fd;
	(void)ev;
	tun_enter(t);
	if (!t->closed)
		tun_flush_out(t);
	if (t->closed)
		;
	else if (t->state == TUN_CLOSING) {
		if (tun_out_len(t) == 0)
			tun_close(t, "shutdown");
	} else if (tun_out_len(t) < TUN_OUT_LOW) {
		if (t->read_paused) {
			t->read_paused = 0;
			bufferevent_enable(t->bev, EV_READ);
			tun_read_cb(t->bev, t);	/* frames already buffered */
		}
		while (!t->closed && (s = TAILQ_FIRST(&t->waiting)) != NULL) {
			TAILQ_REMOVE(&t->waiting, s, wentry);
			s->flags &= ~TUN_S_WAITING;
			tun_stream_pump(s);
			if (tun_out_len(t) >= TUN_OUT_HIGH)
				break;
		}
	}
	tun_leave(t);
}

/* The write BIO sent its last bytes. */
static void
tun_drained_cb(void *arg)
{
	struct tun	*t = arg;

	event_active(t->sink_ev, EV_TIMEOUT, 0);
}

/* Over a filter: the socket below took bytes. */
static void
tun_under_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct tun	*t = arg;

	(void)buf;
	if (info->n_deleted > 0 && !t->closed)
		event_active(t->sink_ev, EV_TIMEOUT, 0);
}

void
tun_drain(struct tun *t, const char *msg, unsigned ms)
{
	struct timeval	tv;

	if (t->closed || t->state == TUN_CLOSING || t->drain_sent)
		return;
	if (t->state != TUN_READY) {
		tun_close(t, msg);
		return;
	}
	tun_send_reason(t, 1, TUN_E_SHUTDOWN, t->next_id, msg);
	t->draining = 1;
	t->drain_sent = 1;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(t->drain_timer, &tv);
	if (t->nstreams == 0)
		event_active(t->drain_timer, EV_TIMEOUT, 0);
}

static void
tun_drain_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;
	char		 why[64];

	(void)fd;
	(void)ev;
	tun_enter(t);
	if (t->nstreams == 0)
		tun_flush_close(t);
	else {
		snprintf(why, sizeof(why), "drain time over, %u stream(s) cut",
		    t->nstreams);
		tun_close(t, why);
	}
	tun_leave(t);
}

int
tun_send_claim(struct tun *t, uint8_t type, const struct tun_claim *c)
{
	uint8_t	buf[TUN_MAX_PAYLOAD];
	size_t	n;

	if (t->closed || t->state != TUN_READY)
		return -1;
	n = tun_claim_encode(c, type == TUN_CLAIM_RESULT, buf);
	tun_send(t, type, 0, 0, buf, n);
	return 0;
}

void
tun_set_ops(struct tun *t, const struct tun_ops *ops, void *arg)
{
	t->ops = ops;
	t->arg = arg;
}

int
tun_send_frame(struct tun *t, uint8_t type, uint8_t flags,
    const void *payload, size_t len)
{
	if (t->closed || t->state != TUN_READY || len > TUN_MAX_PAYLOAD)
		return -1;
	tun_send(t, type, flags, 0, payload, len);
	return 0;
}

enum tun_role
tun_role(const struct tun *t)
{
	return t->p.role;
}

int
tun_is_ready(const struct tun *t)
{
	return !t->closed && t->state == TUN_READY;
}

int
tun_is_draining(const struct tun *t)
{
	return t->draining;
}

const uint8_t *
tun_peer_key(const struct tun *t)
{
	return t->peer_key;
}

const char *
tun_peer_name(const struct tun *t)
{
	return t->peer_name;
}

const char *
tun_label(const struct tun *t)
{
	return t->label;
}

unsigned
tun_stream_count(const struct tun *t)
{
	return t->nstreams;
}

double
tun_rtt_ms(const struct tun *t)
{
	return t->rtt_ms;
}

const char *
tun_rtt_text(const struct tun *t, char *buf, size_t len)
{
	if (t->rtt_ms < 0)
		snprintf(buf, len, "rtt=none");
	else
		snprintf(buf, len, "rtt=%.3fms", t->rtt_ms);
	return buf;
}

void *
tun_arg(const struct tun *t)
{
	return t->arg;
}

struct tun_stream *
tun_stream_open(struct tun *t, const struct tun_open *o,
    struct bufferevent *bev, const char *label, void *udata,
    size_t replay_max)
{
	struct tun_stream	*s;
	struct evbuffer		*replay = NULL;
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	size_t			 n;
	uint32_t		 id;

	if (!tun_is_ready(t) || t->draining || t->nstreams >= t->p.max_streams)
		return NULL;
	/* Ids are never reused while in use; they wrap after 2^31. */
	do {
		id = t->next_id;
		t->next_id = (t->next_id + 2) & 0x7fffffff;
		if (t->next_id < 3)
			t->next_id = t->accepting ? 2 : 1;
	} while (tun_stream_find(t, id) != NULL);
	if (replay_max > 0 && (replay = evbuffer_new()) == NULL)
		return NULL;
	if ((s = tun_stream_new(t, id)) == NULL) {
		if (replay != NULL)
			evbuffer_free(replay);
		return NULL;
	}
	s->replay = replay;
	s->replay_max = replay_max;
	s->udata = udata;
	if (label != NULL)
		tun_stream_set_label(s, label);
	n = tun_open_encode(o, buf);
	tun_send(t, TUN_OPEN, 0, id, buf, n);
	tun_stream_attach(s, bev);
	return s;
}

void
tun_stream_attach(struct tun_stream *s, struct bufferevent *bev)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	struct tun	*t = s->tun;

	s->bev = bev;
	/* Whatever the owner queued already (a PROXY header) is not tunnel
	 * data and must not earn the peer credit when it drains. */
	s->skip = evbuffer_get_length(out);
	if (s->pending != NULL) {
		evbuffer_add_buffer(out, s->pending);
		evbuffer_free(s->pending);
		s->pending = NULL;
	}
	s->drain_cb = evbuffer_add_cb(out, tun_stream_drain_cb, s);
	bufferevent_setcb(bev, tun_stream_read_cb, tun_stream_write_cb,
	    tun_stream_event_cb, s);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_set_max_single_read(bev, TUN_LOCAL_IO);
	bufferevent_set_max_single_write(bev, TUN_LOCAL_IO);
	/* Reading starts off; the pump turns it on while there is credit.
	 * (The gateway hands over a socket that was being read.) */
	bufferevent_disable(bev, EV_READ);
	s->flags &= ~TUN_S_READING;
	/*
	 * A plain socket we write ourselves at the end of each pass
	 * (tun_stream_write_now), and libevent only once it is full: its
	 * write event would cost a loop turn and two epoll_ctl per write.
	 * We read it ourselves too, straight into frames, on our own
	 * event: libevent's read would first take 4 KiB into bev's input
	 * (a FIONREAD and a readv), making a small frame of each wakeup.
	 */
	if (bufferevent_getfd(bev) >= 0 &&
	    bufferevent_get_underlying(bev) == NULL &&
	    bufferevent_openssl_get_ssl(bev) == NULL &&
	    (s->rev = event_new(t->base, bufferevent_getfd(bev),
	    EV_READ | EV_PERSIST, tun_stream_readable_cb, s)) != NULL) {
		s->flags |= TUN_S_DIRECT;
		bufferevent_disable(bev, EV_WRITE);
	} else
		bufferevent_enable(bev, EV_WRITE);
	tun_enter(t);
	if (tun_stream_pump(s) == 0) {
		if (evbuffer_get_length(out) > 0)
			tun_stream_dirty(s);
		else if (s->flags & TUN_S_REMOTE_FIN)
			tun_stream_write_cb(bev, s);
	}
	tun_leave(t);
}

void
tun_stream_reset(struct tun_stream *s, uint32_t code, const char *msg)
{
	char	why[TUN_MSG_MAX + 32];

	tun_send_reason(s->tun, 0, code, s->id, msg);
	snprintf(why, sizeof(why), "%s (%s)", tun_err_name(code), msg);
	tun_stream_free(s, why, TUN_END_ABORT);
}

void
tun_stream_set_label(struct tun_stream *s, const char *label)
{
	char	*l;

	if ((l = strdup(label)) == NULL)
		return;
	free(s->label);
	s->label = l;
}

void
tun_stream_set_udata(struct tun_stream *s, void *udata)
{
	s->udata = udata;
}

void *
tun_stream_udata(const struct tun_stream *s)
{
	return s->udata;
}

uint32_t
tun_stream_id(const struct tun_stream *s)
{
	return s->id;
}

void
tun_stream_bytes(const struct tun_stream *s, uint64_t *in, uint64_t *out)
{
	*in = s->in;
	*out = s->out;
}

struct event_base *
tun_base_new(void)
{
	struct event_config	*ec;
	struct event_base	*base;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	/*
	 * Relaying toggles read and write interest on every buffer that
	 * fills or drains; the changelist folds those toggles into one
	 * epoll_ctl per descriptor per loop turn instead of one per toggle.
	 */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/*
 * Callbacks may close the tunnel; the final free waits until the
 * outermost callback returns, so nobody touches freed memory.
 */
static void
tun_enter(struct tun *t)
{
	t->busy++;
}

static void
tun_leave(struct tun *t)
{
	if (--t->busy == 0 && t->closed)
		tun_free(t);
}

static void
tun_free(struct tun *t)
{
	event_free(t->timer);
	event_free(t->hs_timer);
	event_free(t->drain_timer);
	event_free(t->kick);
	event_free(t->eof_ev);
	event_free(t->flush_ev);
	event_free(t->sink_ev);
	evbuffer_free(t->out);
	if (t->wbio != NULL)
		tun_bio_finish(t->wbio);	/* the close_notify, if it fits */
	if (t->under_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(
		    bufferevent_get_underlying(t->bev)), t->under_cb);
	bufferevent_free(t->bev);
	free(t->buckets);
	free(t->name);
	free(t->label);
	sodium_memzero(t->exporter, sizeof(t->exporter));
	free(t);
}

static void
tun_read_cb(struct bufferevent *bev, void *arg)
{
	struct tun		*t = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct tun_frame	 f;
	const uint8_t		*hdr, *buf;
	uint32_t		 plen;
	size_t			 len;

	tun_enter(t);
again:
	while (!t->closed && t->state != TUN_CLOSING &&
	    t->state != TUN_HANDSHAKE) {
		/*
		 * A peer that sends PINGs and claims but never reads our
		 * answers would grow our output without end: stop reading it
		 * until it takes some (stream data is bounded by credit).
		 */
		if (tun_out_len(t) > TUN_OUT_CAP) {
			bufferevent_disable(bev, EV_READ);
			t->read_paused = 1;
			break;
		}
		len = evbuffer_get_length(in);
		if (len < TUN_HDR_LEN)
			break;
		hdr = evbuffer_pullup(in, TUN_HDR_LEN);
		plen = ((uint32_t)hdr[0] << 16) | ((uint32_t)hdr[1] << 8) |
		    hdr[2];
		if (plen > TUN_MAX_PAYLOAD) {
			tun_protocol_error(t, "frame larger than the maximum");
			break;
		}
		if (len < TUN_HDR_LEN + plen)
			break;
		t->last_rx_ms = mono_ms();
		if (hdr[3] == TUN_DATA && t->state == TUN_READY &&
		    (hdr[5] | hdr[6] | hdr[7] | hdr[8]) != 0) {
			/* Payload moves to the stream without a copy. */
			tun_recv_data(t, hdr, plen, in);
			continue;
		}
		buf = evbuffer_pullup(in, TUN_HDR_LEN + plen);
		if (tun_frame_decode(buf, TUN_HDR_LEN + plen, &f) <= 0) {
			tun_protocol_error(t, "undecodable frame");
			break;
		}
		tun_dispatch(t, &f);
		if (!t->closed)
			evbuffer_drain(in, TUN_HDR_LEN + plen);
	}
	if (!t->closed && !t->read_paused && t->state != TUN_HANDSHAKE &&
	    t->eof_why[0] == '\0' && tun_read_pending(t) > 0)
		goto again;
	tun_leave(t);
}

/*
 * With read-ahead, OpenSSL reads the socket in large pieces and keeps
 * whole records libevent does not ask for (it checks SSL_pending(),
 * which counts only the record being read, and then waits for the
 * socket, which may stay quiet): take them here.  Returns the bytes
 * added to the input (0 when nothing was buffered).  An end found there
 * closes the tunnel from the loop, after what came before it is read.
 */
static int
tun_read_pending(struct tun *t)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(t->bev);
	struct evbuffer		*in = bufferevent_get_input(t->bev);
	struct evbuffer_iovec	 v;
	int			 n, got = 0, err;

	while (SSL_has_pending(ssl) && evbuffer_get_length(in) < TUN_READ_MAX) {
		if (evbuffer_reserve_space(in, TUN_MAX_PAYLOAD + TUN_HDR_LEN,
		    &v, 1) < 1)
			break;
		ERR_clear_error();
		if ((n = SSL_read(ssl, v.iov_base, (int)v.iov_len)) > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(in, &v, 1);
			got += n;
			continue;
		}
		err = SSL_get_error(ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			break;		/* a partial record: the socket has more */
		ERR_clear_error();
		/* The end, behind records just taken: those are read first
		 * (tun_read_cb goes on), the tunnel closes from the loop. */
		snprintf(t->eof_why, sizeof(t->eof_why), "%s",
		    err == SSL_ERROR_ZERO_RETURN ? "connection closed by peer" :
		    "TLS error");
		bufferevent_disable(t->bev, EV_READ | EV_WRITE);
		event_active(t->eof_ev, EV_TIMEOUT, 0);
		break;
	}
	return got;
}

static void
tun_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tun	*t = arg;
	char		 why[256];
	unsigned long	 e;
	int		 err = EVUTIL_SOCKET_ERROR();

	tun_enter(t);
	if (what & BEV_EVENT_CONNECTED) {
		tun_connected(t);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if ((e = bufferevent_get_openssl_error(bev)) != 0) {
			char ebuf[200];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			snprintf(why, sizeof(why), "TLS error: %s", ebuf);
		} else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "connection closed by peer");
		else
			snprintf(why, sizeof(why), "%s",
			    evutil_socket_error_to_string(err));
		if (t->state == TUN_HANDSHAKE) {
			size_t l = strlen(why);

			snprintf(why + l, sizeof(why) - l,
			    " during TLS handshake");
		}
		/*
		 * libevent 2.1 reports the end from inside its read, before
		 * it commits the records that same read took (a GOAWAY, a
		 * stream's last bytes) and hands them to tun_read_cb; with
		 * read-ahead both often come in one read.  Close from the
		 * loop, once they are read.
		 */
		if (t->state == TUN_HANDSHAKE)
			tun_close(t, why);
		else if (t->eof_why[0] == '\0') {
			snprintf(t->eof_why, sizeof(t->eof_why), "%s", why);
			bufferevent_disable(bev, EV_READ | EV_WRITE);
			event_active(t->eof_ev, EV_TIMEOUT, 0);
		}
	}
	tun_leave(t);
}

static void
tun_eof_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;

	(void)fd;
	(void)ev;
	tun_enter(t);
	if (!t->closed) {
		if (evbuffer_get_length(bufferevent_get_input(t->bev)) > 0)
			tun_read_cb(t->bev, t);
		if (!t->closed)
			tun_close(t, t->eof_why);
	}
	tun_leave(t);
}

static void
tun_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;
	uint64_t	 now = mono_ms(), us;
	uint8_t		 ping[8];
	char		 why[128];
	int		 i;

	(void)fd;
	(void)ev;
	tun_enter(t);
	switch (t->state) {
	case TUN_HANDSHAKE:
	case TUN_AUTH:
		break;		/* tun_hs_timer_cb watches these */
	case TUN_READY:
		if (now - t->last_rx_ms >= t->p.dead_peer_ms) {
			snprintf(why, sizeof(why), "dead peer: nothing "
			    "received for %llu ms",
			    (unsigned long long)(now - t->last_rx_ms));
			tun_close(t, why);
			break;
		}
		if (now - t->last_ping_ms < t->p.keepalive_ms)
			break;
		t->last_ping_ms = now;
		/* Our own send time, echoed back, gives the RTT. */
		us = mono_us();
		for (i = 0; i < 8; i++)
			ping[i] = (us >> (56 - 8 * i)) & 0xff;
		tun_send(t, TUN_PING, 0, 0, ping, sizeof(ping));
		break;
	case TUN_CLOSING:
		tun_close(t, tun_out_len(t) == 0 ? "shutdown" :
		    "shutdown (flush timed out)");
		break;
	}
	tun_leave(t);
}

static void
tun_kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun		*t = arg;
	struct bufferevent	*under;

	(void)fd;
	(void)ev;
	tun_enter(t);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
	/* The ClientHello already below a filter: nothing new will arrive
	 * to wake the TLS layer for it. */
	if (!t->closed && (under = bufferevent_get_underlying(t->bev)) != NULL)
		bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
	tun_leave(t);
}

static void
tun_hs_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;

	(void)fd;
	(void)ev;
	tun_enter(t);
	if (t->state == TUN_HANDSHAKE)
		tun_close(t, "handshake timeout (TLS not finished)");
	else if (t->state == TUN_AUTH)
		tun_close(t, "handshake timeout (no HELLO from the peer)");
	tun_leave(t);
}

/*
 * TLS is up: check ALPN and derive the exporter.  The dialing side (the
 * agent) proves itself first; the accepting side answers with its own
 * HELLO only once it has admitted the dialer, so a dialer that sees the
 * answer knows it was accepted, and a refused one sees only GOAWAY.
 */
static void
tun_connected(struct tun *t)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(t->bev);
	const unsigned char	*alpn;
	unsigned int		 alpnlen;

	SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
	if (alpnlen != strlen(TUN_ALPN) ||
	    memcmp(alpn, TUN_ALPN, alpnlen) != 0) {
		tun_close(t, "peer does not speak porch/1 (ALPN)");
		return;
	}
	if (SSL_export_keying_material(ssl, t->exporter, sizeof(t->exporter),
	    TUN_EXPORTER_LABEL, strlen(TUN_EXPORTER_LABEL), NULL, 0, 0) != 1) {
		tun_close(t, "TLS exporter failed");
		return;
	}
	t->state = TUN_AUTH;
	t->last_rx_ms = mono_ms();
	if (!t->accepting)
		tun_send_hello(t);
	/* Over a filter, libevent reads what came with the client's
	 * Finished (its HELLO) before it reports the handshake: that input
	 * waited for us (tun_read_cb) and is read now.  With read-ahead,
	 * it may also still sit in OpenSSL's buffer. */
	if (evbuffer_get_length(bufferevent_get_input(t->bev)) > 0 ||
	    SSL_has_pending(ssl))
		tun_read_cb(t->bev, t);
}

/* Our HELLO: identity key and a signature bound to this TLS session. */
static void
tun_send_hello(struct tun *t)
{
	struct tun_hello	 h;
	uint8_t			 msg[sizeof(TUN_AUTH_CTX) + 1 + 32];
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	size_t			 n;

	memset(&h, 0, sizeof(h));
	h.version = TUN_VERSION;
	h.role = t->p.role;
	h.window = t->p.window;
	memcpy(h.pub, t->p.key->pub, KEY_PUB_LEN);
	tun_sign_input(t, t->p.role, msg);
	crypto_sign_detached(h.sig, NULL, msg, sizeof(msg), t->p.key->sec);
	snprintf(h.name, sizeof(h.name), "%s", t->name);
	n = tun_hello_encode(&h, buf);
	tun_send(t, TUN_HELLO, 0, 0, buf, n);
}

/* What a HELLO signs: context, the signer's role and the exporter. */
static void
tun_sign_input(const struct tun *t, uint8_t role, uint8_t *msg)
{
	memcpy(msg, TUN_AUTH_CTX, sizeof(TUN_AUTH_CTX));
	msg[sizeof(TUN_AUTH_CTX)] = role;
	memcpy(msg + sizeof(TUN_AUTH_CTX) + 1, t->exporter, 32);
}

static void
tun_dispatch(struct tun *t, const struct tun_frame *f)
{
	struct tun_stream	*s;
	struct tun_reason	 r;
	struct tun_claim	 c;
	uint32_t		 incr;
	char			 why[TUN_MSG_MAX + 64];

	if (t->state == TUN_AUTH) {
		if (f->type == TUN_GOAWAY && tun_reason_parse(f, 1, &r) == 0) {
			snprintf(why, sizeof(why), "refused by peer: %s",
			    r.msg);
			tun_close(t, why);
		} else if (f->type != TUN_HELLO)
			tun_protocol_error(t, "expected HELLO");
		else
			tun_recv_hello(t, f);
		return;
	}
	if (t->state != TUN_READY)
		return;

	switch (f->type) {
	case TUN_HELLO:
		tun_protocol_error(t, "second HELLO");
		break;
	case TUN_CLAIM:
	case TUN_UNCLAIM:
	case TUN_CLAIM_RESULT:
		if (tun_claim_parse(f, f->type == TUN_CLAIM_RESULT, &c) == -1) {
			tun_protocol_error(t, "malformed claim");
			break;
		}
		if (t->ops->claim != NULL)
			t->ops->claim(t, f->type, &c, t->arg);
		break;
	case TUN_OPEN:
		tun_recv_open(t, f);
		break;
	case TUN_WINDOW:
		if (tun_window_parse(f, &incr) == -1) {
			tun_protocol_error(t, "malformed WINDOW");
			break;
		}
		if ((s = tun_stream_find(t, f->stream)) == NULL)
			break;		/* raced with a close */
		if ((uint64_t)s->send_credit + incr > 0x7fffffff) {
			tun_stream_reset(s, TUN_E_FLOW, "window overflow");
			break;
		}
		s->send_credit += incr;
		tun_stream_pump(s);
		break;
	case TUN_RESET:
		if (tun_reason_parse(f, 0, &r) == -1) {
			tun_protocol_error(t, "malformed RESET");
			break;
		}
		if ((s = tun_stream_find(t, f->stream)) == NULL)
			break;
		snprintf(why, sizeof(why), "reset by peer: %s (%s)",
		    tun_err_name(r.code), r.msg);
		tun_stream_free(s, why, TUN_RETRYABLE(r.code) ? TUN_END_RETRY :
		    TUN_END_ABORT);
		break;
	case TUN_DATA:
		/* Stream data arrives on the fast path; this is stream 0. */
		tun_protocol_error(t, "DATA on stream 0");
		break;
	case TUN_PING:
		if (f->len != 8 || f->stream != 0) {
			tun_protocol_error(t, "malformed PING");
			break;
		}
		if (f->flags & TUN_F_ACK) {
			uint64_t sent = 0;
			int i;

			for (i = 0; i < 8; i++)
				sent = (sent << 8) | f->payload[i];
			t->rtt_ms = (double)(mono_us() - sent) / 1000.0;
			log_debug("%s: rtt %.3f ms", t->label, t->rtt_ms);
		} else
			tun_send(t, TUN_PING, TUN_F_ACK, 0, f->payload, 8);
		break;
	case TUN_GOAWAY:
		if (tun_reason_parse(f, 1, &r) == -1) {
			tun_protocol_error(t, "malformed GOAWAY");
			break;
		}
		t->draining = 1;
		if (t->ops->goaway != NULL)
			t->ops->goaway(t, &r, t->arg);
		break;
	default:
		/* Others go to the owner, or are ignored: room to grow. */
		if (f->type >= TUN_ANNOUNCE && t->ops->frame != NULL)
			t->ops->frame(t, f, t->arg);
		break;
	}
}

static void
tun_recv_hello(struct tun *t, const struct tun_frame *f)
{
	struct tun_hello	h;
	uint8_t			msg[sizeof(TUN_AUTH_CTX) + 1 + 32];
	char			err[TUN_MSG_MAX];
	uint8_t			want;

	if (tun_hello_parse(f, &h) == -1) {
		tun_protocol_error(t, "malformed HELLO");
		return;
	}
	/* The acceptor learns here whether an agent or a peer gateway
	 * dialed it, and answers in the matching role. */
	if (t->accepting && h.role == TUN_ROLE_PEER)
		t->p.role = TUN_ROLE_PEER;
	want = t->p.role == TUN_ROLE_PEER ? TUN_ROLE_PEER :
	    t->p.role == TUN_ROLE_AGENT ? TUN_ROLE_GATEWAY : TUN_ROLE_AGENT;
	if (h.version != TUN_VERSION) {
		snprintf(err, sizeof(err), "unsupported protocol version %u "
		    "(this side speaks %u)", h.version, TUN_VERSION);
		tun_shutdown(t, TUN_E_PROTOCOL, err);
		return;
	}
	if (h.role != want) {
		tun_shutdown(t, TUN_E_PROTOCOL, "unexpected peer role");
		return;
	}
	if (h.window < 16384 || h.window > 0x7fffffff) {
		tun_shutdown(t, TUN_E_PROTOCOL, "window out of range");
		return;
	}
	tun_sign_input(t, h.role, msg);
	if (crypto_sign_verify_detached(h.sig, msg, sizeof(msg), h.pub) != 0) {
		tun_shutdown(t, TUN_E_AUTH,
		    "identity signature does not verify");
		return;
	}
	memcpy(t->peer_key, h.pub, KEY_PUB_LEN);
	log_escape(t->peer_name, sizeof(t->peer_name), h.name,
	    strlen(h.name));
	t->peer_window = h.window;
	snprintf(err, sizeof(err), "not authorized");
	/* READY first: the dialer's owner sends its claims from authed(). */
	t->state = TUN_READY;
	if (t->ops->authed(t, &h, err, sizeof(err), t->arg) == -1) {
		if (!t->closed)
			tun_shutdown(t, TUN_E_AUTH, err);
		return;
	}
	/* Admitted: only now does the accepting side prove itself. */
	if (t->accepting && !t->closed)
		tun_send_hello(t);
}

static void
tun_recv_open(struct tun *t, const struct tun_frame *f)
{
	struct tun_open		 o;
	struct tun_stream	*s;

	if (t->p.role == TUN_ROLE_GATEWAY) {
		tun_protocol_error(t, "agents may not open streams");
		return;
	}
	if ((f->stream & 1) != (t->accepting ? 1u : 0u)) {
		tun_protocol_error(t, "OPEN with the other side's stream id");
		return;
	}
	if (tun_open_parse(f, &o) == -1) {
		tun_protocol_error(t, "malformed OPEN");
		return;
	}
	if (tun_stream_find(t, f->stream) != NULL) {
		tun_protocol_error(t, "OPEN for a stream id in use");
		return;
	}
	if (t->nstreams >= t->p.max_streams) {
		tun_send_reason(t, 0, TUN_E_LIMIT, f->stream,
		    "too many streams");
		return;
	}
	if (t->drain_sent) {
		/* Raced with our GOAWAY: the gateway replays it elsewhere. */
		tun_send_reason(t, 0, TUN_E_SHUTDOWN, f->stream,
		    "agent is draining");
		return;
	}
	if ((s = tun_stream_new(t, f->stream)) == NULL) {
		tun_send_reason(t, 0, TUN_E_INTERNAL, f->stream,
		    "out of memory");
		return;
	}
	if ((s->pending = evbuffer_new()) == NULL) {
		tun_stream_reset(s, TUN_E_INTERNAL, "out of memory");
		return;
	}
	t->ops->open(t, s, &o, t->arg);
}

static void
tun_recv_data(struct tun *t, const uint8_t *hdr, uint32_t plen,
    struct evbuffer *in)
{
	struct tun_stream	*s;
	struct evbuffer		*dst;
	uint32_t		 id;
	uint8_t			 flags = hdr[4];

	id = (((uint32_t)hdr[5] << 24) | ((uint32_t)hdr[6] << 16) |
	    ((uint32_t)hdr[7] << 8) | hdr[8]) & 0x7fffffff;
	evbuffer_drain(in, TUN_HDR_LEN);
	if ((s = tun_stream_find(t, id)) == NULL) {
		/* Frames in flight when we reset the stream. */
		evbuffer_drain(in, plen);
		return;
	}
	s->rx_total += plen;
	if (s->rx_total > s->rx_allowed || (s->flags & TUN_S_REMOTE_FIN)) {
		evbuffer_drain(in, plen);
		tun_stream_reset(s, TUN_E_FLOW, (s->flags & TUN_S_REMOTE_FIN) ?
		    "data after FIN" : "peer exceeded its window");
		return;
	}
	dst = s->bev != NULL ? bufferevent_get_output(s->bev) : s->pending;
	evbuffer_remove_buffer(in, dst, plen);
	s->out += plen;
	if (plen > 0 && s->bev != NULL)
		tun_stream_dirty(s);
	if (plen > 0 && s->replay != NULL) {
		evbuffer_free(s->replay);	/* committed to this replica */
		s->replay = NULL;
	}
	if (flags & TUN_F_FIN) {
		s->flags |= TUN_S_REMOTE_FIN;
		if (s->replay != NULL) {
			/* The replica answered, if only with its end. */
			evbuffer_free(s->replay);
			s->replay = NULL;
		}
		if (s->bev != NULL && evbuffer_get_length(dst) == 0)
			tun_stream_write_cb(s->bev, s);
		/* else the write that empties dst passes the FIN on */
	}
}

static void
tun_send(struct tun *t, uint8_t type, uint8_t flags, uint32_t stream,
    const void *payload, size_t len)
{
	struct evbuffer		*out = t->out;
	struct evbuffer_iovec	 v;

	/* One commit, so the TLS layer makes one record of the frame,
	 * not one of its header and one of its payload. */
	if (evbuffer_reserve_space(out, TUN_HDR_LEN + len, &v, 1) != 1)
		return;		/* out of memory: the peer times out */
	tun_frame_header(v.iov_base, type, flags, stream, (uint32_t)len);
	if (len > 0)
		memcpy((uint8_t *)v.iov_base + TUN_HDR_LEN, payload, len);
	v.iov_len = TUN_HDR_LEN + len;
	evbuffer_commit_space(out, &v, 1);
}

static void
tun_send_reason(struct tun *t, int goaway, uint32_t code, uint32_t id,
    const char *msg)
{
	struct tun_reason	r;
	uint8_t			buf[TUN_MAX_PAYLOAD];
	size_t			n;

	if (t->closed || t->state == TUN_HANDSHAKE)
		return;
	memset(&r, 0, sizeof(r));
	r.code = code;
	r.last_stream = id;
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	n = tun_reason_encode(&r, goaway, buf);
	tun_send(t, goaway ? TUN_GOAWAY : TUN_RESET, 0, goaway ? 0 : id, buf,
	    n);
}

static void
tun_protocol_error(struct tun *t, const char *what)
{
	char	why[128];

	snprintf(why, sizeof(why), "protocol error: %s", what);
	log_warnx("%s: %s", t->label, why);
	tun_shutdown(t, TUN_E_PROTOCOL, why);
}

/* Keep chains short: at most two streams per bucket on average. */
static void
tun_buckets_grow(struct tun *t)
{
	struct tun_stream	**nb, *s, *next;
	size_t			  i, n = t->nbuckets * 2, b;

	if (t->nstreams < t->nbuckets * 2 || n > TUN_BUCKETS_MAX ||
	    (nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* without memory, longer chains still work */
	for (i = 0; i < t->nbuckets; i++)
		for (s = t->buckets[i]; s != NULL; s = next) {
			next = s->hnext;
			b = TUN_BUCKET(s->id, n);
			s->hnext = nb[b];
			nb[b] = s;
		}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

static struct tun_stream *
tun_stream_new(struct tun *t, uint32_t id)
{
	struct tun_stream	*s;
	size_t			 b;

	tun_buckets_grow(t);
	b = TUN_BUCKET(id, t->nbuckets);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->tun = t;
	s->id = id;
	s->send_credit = t->peer_window;
	s->rx_allowed = t->p.window;
	s->start_ms = mono_ms();
	s->hnext = t->buckets[b];
	t->buckets[b] = s;
	TAILQ_INSERT_TAIL(&t->streams, s, entry);
	t->nstreams++;
	return s;
}

static struct tun_stream *
tun_stream_find(struct tun *t, uint32_t id)
{
	struct tun_stream	*s;

	for (s = t->buckets[TUN_BUCKET(id, t->nbuckets)]; s != NULL;
	    s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

/*
 * The only exit of a stream.  abort: it did not end cleanly, so the
 * local peer gets a TCP reset rather than a FIN that would make a cut-off
 * response look complete.
 */
static void
tun_stream_free(struct tun_stream *s, const char *reason, enum tun_end end)
{
	struct tun		*t = s->tun;
	struct tun_stream	**pp;
	int			 moved;

	moved = end == TUN_END_RETRY && tun_stream_retry(s, reason) == 0;
	log_info("%s stream=%u in=%llu out=%llu ms=%llu reason=%s%s",
	    s->label != NULL ? s->label : t->label, s->id,
	    (unsigned long long)s->in, (unsigned long long)s->out,
	    (unsigned long long)(mono_ms() - s->start_ms), reason,
	    moved ? " (replayed elsewhere)" : "");
	if (!moved && t->ops->stream_closed != NULL)
		t->ops->stream_closed(t, s, reason, t->arg);
	for (pp = &t->buckets[TUN_BUCKET(s->id, t->nbuckets)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	}
	TAILQ_REMOVE(&t->streams, s, entry);
	if (s->flags & TUN_S_WAITING)
		TAILQ_REMOVE(&t->waiting, s, wentry);
	if (s->flags & TUN_S_DIRTY)
		TAILQ_REMOVE(&t->dirty, s, dentry);
	if (s->rev != NULL)
		event_free(s->rev);
	if (s->bev != NULL) {
		if (end != TUN_END_CLEAN && bufferevent_getfd(s->bev) != -1) {
			struct linger l = { 1, 0 };

			setsockopt(bufferevent_getfd(s->bev), SOL_SOCKET,
			    SO_LINGER, &l, sizeof(l));
		}
		if (s->drain_cb != NULL)
			evbuffer_remove_cb_entry(
			    bufferevent_get_output(s->bev), s->drain_cb);
		bufferevent_free(s->bev);
	}
	if (s->pending != NULL)
		evbuffer_free(s->pending);
	if (s->replay != NULL)
		evbuffer_free(s->replay);
	free(s->label);
	free(s);
	t->nstreams--;
	/* A draining tunnel closes once its last stream is done. */
	if (t->drain_sent && t->nstreams == 0 && !t->closed)
		event_active(t->drain_timer, EV_TIMEOUT, 0);
}

/*
 * Nothing came back yet and we still hold every byte we sent: give the
 * local connection back to the owner, sent bytes first, to try another
 * replica.  Returns 0 if the owner took it.
 */
static int
tun_stream_retry(struct tun_stream *s, const char *reason)
{
	struct tun		*t = s->tun;
	struct bufferevent	*bev = s->bev;

	if (bev == NULL || s->replay == NULL || s->out > 0 ||
	    (s->flags & TUN_S_LOCAL_EOF) || t->ops->stream_retry == NULL)
		return -1;
	if (s->drain_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(bev),
		    s->drain_cb);
	s->drain_cb = NULL;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(bev, EV_READ);
	if (evbuffer_prepend_buffer(bufferevent_get_input(bev),
	    s->replay) == -1 ||
	    t->ops->stream_retry(t, s, bev, reason, t->arg) == -1) {
		/* Not taken: the stream frees it as usual. */
		s->drain_cb = evbuffer_add_cb(bufferevent_get_output(bev),
		    tun_stream_drain_cb, s);
		return -1;
	}
	if (s->flags & TUN_S_DIRECT) {
		event_free(s->rev);
		s->rev = NULL;
		s->flags &= ~(TUN_S_DIRECT | TUN_S_READING);
		bufferevent_enable(bev, EV_WRITE);	/* the owner's again */
	}
	s->bev = NULL;
	return 0;
}

/*
 * Move what the local side sent into DATA frames, as far as credit and
 * the tunnel's own backlog allow.  Returns -1 if the stream was freed.
 */
static int
tun_stream_pump(struct tun_stream *s)
{
	struct tun	*t = s->tun;
	struct evbuffer	*in, *out = t->out;
	struct evbuffer_iovec iov;
	size_t		 len, n;

	if (s->bev == NULL)
		return 0;
	if (t->state == TUN_CLOSING) {
		tun_stream_set_reading(s, 0);
		return 0;
	}
	in = bufferevent_get_input(s->bev);
	while ((len = evbuffer_get_length(in)) > 0 && s->send_credit > 0) {
		if (tun_out_len(t) >= TUN_OUT_HIGH) {
			if (!(s->flags & TUN_S_WAITING)) {
				TAILQ_INSERT_TAIL(&t->waiting, s, wentry);
				s->flags |= TUN_S_WAITING;
			}
			break;
		}
		n = len;
		if (n > s->send_credit)
			n = s->send_credit;
		if (n > TUN_DATA_CHUNK)
			n = TUN_DATA_CHUNK;
		/*
		 * Header and payload in one contiguous piece: the TLS layer
		 * writes one record per piece, so a frame fills exactly one
		 * full-size record instead of a 9-byte record and a split.
		 */
		if (evbuffer_reserve_space(out, TUN_HDR_LEN + n, &iov, 1) < 1)
			break;
		tun_frame_header(iov.iov_base, TUN_DATA, 0, s->id, (uint32_t)n);
		evbuffer_remove(in, (uint8_t *)iov.iov_base + TUN_HDR_LEN, n);
		if (s->replay != NULL) {
			/* Kept until a byte comes back; past the cap the
			 * stream can no longer be replayed. */
			if (evbuffer_get_length(s->replay) + n > s->replay_max ||
			    evbuffer_add(s->replay, (uint8_t *)iov.iov_base +
			    TUN_HDR_LEN, n) == -1) {
				evbuffer_free(s->replay);
				s->replay = NULL;
			}
		}
		iov.iov_len = TUN_HDR_LEN + n;
		evbuffer_commit_space(out, &iov, 1);
		s->send_credit -= n;
		s->in += n;
	}
	if (evbuffer_get_length(in) == 0 && tun_stream_read_direct(s) == -1)
		return -1;
	len = evbuffer_get_length(in);
	if (!(s->flags & TUN_S_DIRECT))
		tun_stream_set_reading(s, len == 0 &&
		    !(s->flags & TUN_S_LOCAL_EOF));
	else if (len > 0 || (s->flags & TUN_S_LOCAL_EOF) ||
	    s->send_credit == 0)
		tun_stream_set_reading(s, 0);	/* a WINDOW pumps again */
	else if (tun_out_len(t) >= TUN_OUT_HIGH) {
		/* No read until the tunnel drains, or the socket, still
		 * readable, would wake us in a loop. */
		tun_stream_set_reading(s, 0);
		if (!(s->flags & TUN_S_WAITING)) {
			TAILQ_INSERT_TAIL(&t->waiting, s, wentry);
			s->flags |= TUN_S_WAITING;
		}
	} else
		tun_stream_set_reading(s, 1);
	if (len == 0 && (s->flags & TUN_S_LOCAL_EOF) &&
	    !(s->flags & TUN_S_FIN_SENT)) {
		tun_send(t, TUN_DATA, TUN_F_FIN, s->id, NULL, 0);
		s->flags |= TUN_S_FIN_SENT;
		return tun_stream_check_done(s);
	}
	return 0;
}

/* The stream's local output has bytes: write them at the end of the
 * pass, unless libevent is already waiting for the socket. */
static void
tun_stream_dirty(struct tun_stream *s)
{
	struct tun	*t = s->tun;

	if (!(s->flags & TUN_S_DIRECT) ||
	    (s->flags & (TUN_S_DIRTY | TUN_S_WBLOCKED)))
		return;
	TAILQ_INSERT_TAIL(&t->dirty, s, dentry);
	s->flags |= TUN_S_DIRTY;
	event_active(t->flush_ev, EV_TIMEOUT, 0);
}

/*
 * Write a direct stream's local output now (the drain callback returns
 * the credit); what the socket does not take, libevent writes when it
 * can.  May free the stream.
 */
static void
tun_stream_write_now(struct tun_stream *s)
{
	struct bufferevent	*bev = s->bev;
	struct evbuffer		*out = bufferevent_get_output(bev);
	char			 why[128];
	int			 n;

	while (evbuffer_get_length(out) > 0) {
		/* A socket bufferevent keeps its output's front frozen
		 * except while it writes; so do we. */
		evbuffer_unfreeze(out, 1);
		n = evbuffer_write(out, bufferevent_getfd(bev));
		evbuffer_freeze(out, 1);
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->flags |= TUN_S_WBLOCKED;
			bufferevent_enable(bev, EV_WRITE);
			return;
		}
		snprintf(why, sizeof(why), "local write error: %s",
		    n == 0 ? "connection closed" : strerror(errno));
		tun_stream_reset(s, TUN_E_CANCEL, why);
		return;
	}
	tun_stream_write_cb(bev, s);	/* a FIN waiting for the bytes */
}

/* Both directions finished cleanly: the stream is done. */
static int
tun_stream_check_done(struct tun_stream *s)
{
	if ((s->flags & TUN_S_FIN_SENT) && (s->flags & TUN_S_SHUT_WR)) {
		tun_stream_free(s, "eof", TUN_END_CLEAN);
		return -1;
	}
	return 0;
}

static void
tun_stream_set_reading(struct tun_stream *s, int on)
{
	if (on && !(s->flags & TUN_S_READING)) {
		if (s->flags & TUN_S_DIRECT)
			event_add(s->rev, NULL);
		else
			bufferevent_enable(s->bev, EV_READ);
		s->flags |= TUN_S_READING;
	} else if (!on && (s->flags & TUN_S_READING)) {
		if (s->flags & TUN_S_DIRECT)
			event_del(s->rev);
		else
			bufferevent_disable(s->bev, EV_READ);
		s->flags &= ~TUN_S_READING;
	}
}

static void
tun_stream_readable_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun_stream	*s = arg;
	struct tun		*t = s->tun;

	(void)fd;
	(void)ev;
	tun_enter(t);
	tun_stream_pump(s);
	tun_leave(t);
}

static void
tun_stream_read_cb(struct bufferevent *bev, void *arg)
{
	struct tun_stream	*s = arg;
	struct tun		*t = s->tun;

	(void)bev;
	tun_enter(t);
	tun_stream_pump(s);
	tun_leave(t);
}

/*
 * libevent 2.1 reads at most 4 KiB per wakeup (EVBUFFER_MAX_READ), which
 * made every DATA frame and every tunnel TLS record 4 KiB long.  Read
 * what else the socket holds ourselves, up to the credit and TUN_LOCAL_IO
 * per call, straight into frames in the tunnel's output: no copy through
 * the stream's input buffer.  Returns -1 if the stream was reset (and
 * freed).
 */
static int
tun_stream_read_direct(struct tun_stream *s)
{
	struct tun		*t = s->tun;
	struct evbuffer		*out = t->out;
	struct evbuffer_iovec	 res;
	struct iovec		 iov[TUN_DIRECT_FRAMES];
	uint8_t			*p;
	size_t			 want, got, n, total = 0;
	ssize_t			 r = 1;
	int			 fd, err = 0, k, nk;
	char			 why[128];

	if ((s->flags & TUN_S_LOCAL_EOF) || (fd = bufferevent_getfd(s->bev)) < 0)
		return 0;
	while (s->send_credit > 0 && total < TUN_LOCAL_IO &&
	    tun_out_len(t) < TUN_OUT_HIGH) {
		/* Up to TUN_DIRECT_FRAMES frames in one read: payloads go
		 * in place, each after the room for its header. */
		want = s->send_credit < TUN_LOCAL_IO - total ? s->send_credit :
		    TUN_LOCAL_IO - total;
		nk = (int)((want + TUN_DATA_CHUNK - 1) / TUN_DATA_CHUNK);
		if (nk > TUN_DIRECT_FRAMES) {
			nk = TUN_DIRECT_FRAMES;
			want = (size_t)nk * TUN_DATA_CHUNK;
		}
		if (evbuffer_reserve_space(out, (ev_ssize_t)(nk * TUN_HDR_LEN +
		    want), &res, 1) < 1)
			break;
		p = res.iov_base;
		for (k = 0, got = 0; k < nk; k++) {
			n = want - got < TUN_DATA_CHUNK ? want - got :
			    TUN_DATA_CHUNK;
			iov[k].iov_base = p + k * (TUN_HDR_LEN + TUN_DATA_CHUNK) +
			    TUN_HDR_LEN;
			iov[k].iov_len = n;
			got += n;
		}
		r = readv(fd, iov, nk);
		err = errno;
		if (r <= 0) {
			res.iov_len = 0;
			evbuffer_commit_space(out, &res, 1);
			break;
		}
		/* Headers for the frames the bytes filled, the last one
		 * perhaps partly. */
		for (k = 0, got = 0; got < (size_t)r; k++) {
			n = (size_t)r - got < iov[k].iov_len ? (size_t)r - got :
			    iov[k].iov_len;
			tun_frame_header(p + k * (TUN_HDR_LEN + TUN_DATA_CHUNK),
			    TUN_DATA, 0, s->id, (uint32_t)n);
			if (s->replay != NULL &&
			    (evbuffer_get_length(s->replay) + n > s->replay_max ||
			    evbuffer_add(s->replay, iov[k].iov_base, n) == -1)) {
				evbuffer_free(s->replay);
				s->replay = NULL;
			}
			got += n;
		}
		res.iov_len = (size_t)k * TUN_HDR_LEN + (size_t)r;
		evbuffer_commit_space(out, &res, 1);
		s->send_credit -= (size_t)r;
		s->in += (size_t)r;
		total += (size_t)r;
		if ((size_t)r < want)
			return 0;	/* drained */
	}
	if (r == 0) {
		/* EOF now; libevent would not see it again after an error. */
		s->flags |= TUN_S_LOCAL_EOF;
	} else if (r < 0 && err != EAGAIN && err != EWOULDBLOCK &&
	    err != EINTR) {
		snprintf(why, sizeof(why), "local read error: %s",
		    strerror(err));
		tun_stream_reset(s, TUN_E_CANCEL, why);
		return -1;
	}
	return 0;
}

/* The local output buffer is empty: pass on a FIN we were holding. */
static void
tun_stream_write_cb(struct bufferevent *bev, void *arg)
{
	struct tun_stream	*s = arg;
	struct tun		*t = s->tun;

	if ((s->flags & TUN_S_WBLOCKED) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		/* Drained: back to writing it ourselves. */
		bufferevent_disable(bev, EV_WRITE);
		s->flags &= ~TUN_S_WBLOCKED;
	}
	if (!(s->flags & TUN_S_REMOTE_FIN) || (s->flags & TUN_S_SHUT_WR))
		return;
	tun_enter(t);
	if (bufferevent_getfd(bev) >= 0)
		shutdown(bufferevent_getfd(bev), SHUT_WR);
	else	/* a bufferevent pair (peer relay): EOF to the partner */
		bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
	s->flags |= TUN_S_SHUT_WR;
	tun_stream_check_done(s);
	tun_leave(t);
}

static void
tun_stream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tun_stream	*s = arg;
	struct tun		*t = s->tun;
	char			 why[128];
	int			 err = EVUTIL_SOCKET_ERROR();

	(void)bev;
	tun_enter(t);
	if (what & BEV_EVENT_EOF) {
		s->flags |= TUN_S_LOCAL_EOF;
		tun_stream_pump(s);
	} else if (what & BEV_EVENT_ERROR) {
		snprintf(why, sizeof(why), "local %s error: %s",
		    (what & BEV_EVENT_READING) ? "read" : "write",
		    evutil_socket_error_to_string(err));
		tun_stream_reset(s, TUN_E_CANCEL, why);
	}
	tun_leave(t);
}

/* Bytes left the local socket buffer: give the peer that much credit. */
static void
tun_stream_drain_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct tun_stream	*s = arg;
	struct tun		*t = s->tun;
	size_t			 n = info->n_deleted, k;
	uint8_t			 incr[4];

	(void)buf;
	if (n == 0 || t->closed || t->state == TUN_CLOSING)
		return;
	if (s->skip > 0) {
		k = n < s->skip ? n : s->skip;
		s->skip -= k;
		n -= k;
	}
	s->unacked += (uint32_t)n;
	if (s->unacked < t->p.window / 8 || (s->flags & TUN_S_REMOTE_FIN))
		return;
	incr[0] = s->unacked >> 24;
	incr[1] = (s->unacked >> 16) & 0xff;
	incr[2] = (s->unacked >> 8) & 0xff;
	incr[3] = s->unacked & 0xff;
	tun_send(t, TUN_WINDOW, 0, s->id, incr, sizeof(incr));
	s->rx_allowed += s->unacked;
	s->unacked = 0;
}

