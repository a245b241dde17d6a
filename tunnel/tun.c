/* SPDX-License-Identifier: ISC */
/*
 * One tunnel connection: TLS 1.3 transport, the Ed25519 handshake bound
 * to the TLS exporter (its HELLO frames built and checked by
 * tun_hello.c), frame dispatch and keepalive.  Both daemons use
 * it; the gateway opens streams, the agent accepts them.  The streams
 * themselves are tun_stream.c's.
 *
 * Output: frames queue in t->out and go to SSL_write at the end of the
 * loop pass, after the streams' local writes (whose credit rides along);
 * the write BIO (tun_bio.c) sends the records with one writev.  libevent
 * reads the TLS connection; we write it.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/tcp.h>	/* tcp_info with the pacing rate */
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
#include "tun_bio.h"
#include "tun_hello.h"
#include "tun_priv.h"

static struct tun *tun_new_common(struct event_base *, int,
		    struct bufferevent *, SSL *, int, const struct tun_params *,
		    const struct tun_ops *, void *);
static void	tun_free(struct tun *);
static void	tun_read_cb(struct bufferevent *, void *);
static void	tun_event_cb(struct bufferevent *, short, void *);
static void	tun_timer_cb(evutil_socket_t, short, void *);
static void	tun_hs_timer_cb(evutil_socket_t, short, void *);
static void	tun_drain_timer_cb(evutil_socket_t, short, void *);
static void	tun_kick_cb(evutil_socket_t, short, void *);
static void	tun_eof_cb(evutil_socket_t, short, void *);
static void	tun_more_cb(evutil_socket_t, short, void *);
static int	tun_read_pending(struct tun *);
static int	tun_has_pending(struct tun *, SSL *);
static void	tun_flush_close(struct tun *);
static void	tun_flush_out(struct tun *);
static void	tun_err_reset(void);
static void	tun_out_cb(struct evbuffer *, const struct evbuffer_cb_info *,
		    void *);
static void	tun_flush_cb(evutil_socket_t, short, void *);
static void	tun_sink_cb(evutil_socket_t, short, void *);
static void	tun_drained_cb(void *);
static void	tun_under_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);
static void	tun_connected(struct tun *);
static void	tun_cap_update(struct tun *);
static int	tun_fd(struct tun *);
static void	tun_lowat_set(struct tun *, size_t);
static void	tun_send_hello(struct tun *);
static void	tun_send_ping(struct tun *);
static void	tun_end_text(struct bufferevent *, short, int, char *, size_t);
static int	tun_errno_is_end(int);
static void	tun_dispatch(struct tun *, const struct tun_frame *);
static void	tun_recv_hello(struct tun *, const struct tun_frame *);
static void	tun_recv_open(struct tun *, const struct tun_frame *);
static void	tun_protocol_error(struct tun *, const char *);

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
	TAILQ_INIT(&t->fresh);
	TAILQ_INIT(&t->waiting);
	t->out_cap = TUN_OUT_START;
	t->quantum = TUN_QUANTUM_MIN;
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
	t->more_ev = event_new(base, -1, 0, tun_more_cb, t);
	t->flush_ev = event_new(base, -1, 0, tun_flush_cb, t);
	t->sink_ev = event_new(base, -1, 0, tun_sink_cb, t);
	if (t->timer == NULL || t->hs_timer == NULL ||
	    t->drain_timer == NULL || t->kick == NULL || t->eof_ev == NULL ||
	    t->more_ev == NULL ||
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
		if ((t->rbio = tun_rbio_new(fd)) == NULL ||
		    (t->wbio = tun_bio_new(base, fd)) == NULL) {
			BIO_free(t->rbio);
			t->rbio = NULL;
			goto fail_t;
		}
		SSL_set_bio(ssl, t->rbio, t->wbio);	/* the SSL's now */
		tun_bio_set_drained(t->wbio, tun_drained_cb, t);
		t->bev = bufferevent_openssl_socket_new(base, fd, ssl,
		    accepting ? BUFFEREVENT_SSL_ACCEPTING :
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	}
	/* libevent frees ssl even when it fails; fd stays ours then. */
	ssl = NULL;
	if (t->bev == NULL) {
		t->wbio = t->rbio = NULL;	/* went with ssl */
		goto fail_t;
	}
	fd = -1;
	if (t->wbio == NULL && (t->under_cb = evbuffer_add_cb(
	    bufferevent_get_output(bufferevent_get_underlying(t->bev)),
	    tun_under_cb, t)) == NULL)
		goto fail_t;
	bufferevent_openssl_set_allow_dirty_shutdown(t->bev, 1);
	/* Queue in the kernel only what cannot wait here (the scheduler
	 * cannot reorder bytes once they are in the socket). */
	tun_lowat_set(t, t->out_cap / 2);
	/* No write callback: we write the SSL ourselves (tun_flush_out). */
	bufferevent_setcb(t->bev, tun_read_cb, NULL, tun_event_cb, t);
	/* Without a read mark the TLS layer reads 4 KiB at a time. */
	bufferevent_setwatermark(t->bev, EV_READ, 0, TUN_READ_MAX);
	bufferevent_set_max_single_read(t->bev, TUN_READ_MAX);
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
	if (t->more_ev != NULL)
		event_free(t->more_ev);
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
	event_del(t->more_ev);
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
	/* Said again in the closing line: which shutdown it was. */
	snprintf(t->shut_why, sizeof(t->shut_why), "%s", msg);
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
	event_del(t->timer);
	event_add(t->timer, &tv);
	if (tun_out_len(t) == 0)
		event_active(t->timer, EV_TIMEOUT, 0);	/* nothing to wait for */
}

/* Bytes we queued that the socket has not taken yet. */
size_t
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
 * SSL_get_error judges a failed call by the thread's error queue, so the
 * queue must be empty before the call; SSL_get_error itself looks only
 * at ERR_peek_error().  ERR_clear_error wipes all 16 slots every time:
 * about 840 instructions, called some 13 times per visitor connection,
 * 5 % of the gateway's and the agent's user-space instructions in
 * callgrind.  Peeking costs a fraction of that, and the queue is nearly
 * always empty already.
 */
static void
tun_err_reset(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
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
	struct evbuffer_iovec	 v[4];
	unsigned long		 e;
	int			 r, err, i, n;
	char			 ebuf[160];

	/* Not "SSL_is_init_finished": a KeyUpdate makes that false for a
	 * while, and SSL_write itself carries it through. */
	if (ssl == NULL || t->state == TUN_HANDSHAKE ||
	    evbuffer_get_length(t->out) == 0)
		return;
	/* Once per pass: a successful SSL_write leaves the queue empty. */
	tun_err_reset();
	while (evbuffer_get_length(t->out) > 0) {
		/* Skip empty chains, as libevent's own writer does. */
		n = evbuffer_peek(t->out, -1, NULL, v, 4);
		for (i = 0; i < n && i < 4 && v[i].iov_len == 0; i++)
			;
		if (i == n || i == 4)
			break;
		if ((r = SSL_write(ssl, v[i].iov_base, (int)v[i].iov_len)) > 0) {
			evbuffer_drain(t->out, (size_t)r);
			continue;
		}
		err = SSL_get_error(ssl, r);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
			break;	/* tun_sink_cb or the next read tries again */
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
	struct tun	*t = arg;

	(void)fd;
	(void)ev;
	tun_enter(t);
	/* Local sockets first: what they take returns credit (WINDOW
	 * frames) that then goes out in the same TLS write. */
	tun_stream_write_dirty(t);
	if (!t->closed)
		tun_stream_schedule(t);
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
	char			 why[sizeof(t->shut_why) + 16];

	(void)fd;
	(void)ev;
	tun_enter(t);
	if (!t->closed)
		tun_flush_out(t);
	if (t->closed)
		;
	else if (t->state == TUN_CLOSING) {
		if (tun_out_len(t) == 0) {
			snprintf(why, sizeof(why), "shutdown%s%s",
			    t->shut_why[0] != '\0' ? ": " : "", t->shut_why);
			tun_close(t, why);
		}
	} else {
		if (t->read_paused && tun_out_len(t) < TUN_OUT_LOW) {
			t->read_paused = 0;
			bufferevent_enable(t->bev, EV_READ);
			tun_read_cb(t->bev, t);	/* frames already buffered */
		}
		/* Any progress gives the queued streams their turns, not
		 * only a drained tunnel: a steady flow of bulk data must not
		 * starve them. */
		tun_cap_update(t);
		tun_stream_schedule(t);
	}
	tun_leave(t);
}

/*
 * The stream data the tunnel holds follows the path: what it sends in a
 * few milliseconds, so a slow uplink does not queue seconds of bulk
 * data in front of a new visitor, and a fast one stays busy.  (What is
 * in flight is the kernel's, and not counted here.)
 */
static void
tun_cap_update(struct tun *t)
{
	struct tcp_info	 ti;
	socklen_t	 len = sizeof(ti);
	uint64_t	 now = mono_ms(), c;
	int		 fd = tun_fd(t);

	if (now - t->cap_ms < TUN_CAP_MS || fd < 0)
		return;
	t->cap_ms = now;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return;
	/* The kernel's own rate estimate (BBR's bandwidth, or cwnd/srtt):
	 * the cwnd itself would count the queue BBR builds as it probes. */
	c = ti.tcpi_pacing_rate / 1000 * TUN_OUT_DELAY_MS;
	if (c < TUN_OUT_MIN)
		c = TUN_OUT_MIN;
	if (c > TUN_OUT_HIGH)
		c = TUN_OUT_HIGH;
	if (c != t->out_cap)
		tun_lowat_set(t, (size_t)c / 2);
	t->out_cap = (size_t)c;
	t->quantum = t->out_cap / 4;
	if (t->quantum < TUN_QUANTUM_MIN)
		t->quantum = TUN_QUANTUM_MIN;
	if (t->quantum > TUN_QUANTUM_MAX)
		t->quantum = TUN_QUANTUM_MAX;
}

/*
 * What the kernel may hold unsent (TCP_NOTSENT_LOWAT; the write BIO
 * waits for it): half the cap, so a fast path keeps its socket full and
 * a slow one queues its backlog here, where the scheduler orders it.
 */
static void
tun_lowat_set(struct tun *t, size_t lowat)
{
	int	v;

	if (lowat < TUN_NOTSENT)
		lowat = TUN_NOTSENT;
	v = (int)lowat;
	if (setsockopt(tun_fd(t), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v,
	    sizeof(v)) == 0 && t->wbio != NULL)
		tun_bio_set_lowat(t->wbio, lowat);
}

/* The tunnel's socket (below the filter on the TLS entry). */
static int
tun_fd(struct tun *t)
{
	struct bufferevent	*under = bufferevent_get_underlying(t->bev);

	return bufferevent_getfd(under != NULL ? under : t->bev);
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
tun_is_confirmed(const struct tun *t)
{
	return tun_is_ready(t) && t->confirmed;
}

uint64_t
tun_peer_instance(const struct tun *t)
{
	return t->peer_instance;
}

void
tun_ping(struct tun *t)
{
	if (tun_is_ready(t))
		tun_send_ping(t);
}

uint64_t
tun_last_rx_ms(const struct tun *t)
{
	return t->last_rx_ms;
}

/* Our own send time, echoed back, gives the RTT. */
static void
tun_send_ping(struct tun *t)
{
	uint64_t	us = mono_us();
	uint8_t		ping[8];
	int		i;

	t->last_ping_ms = mono_ms();
	for (i = 0; i < 8; i++)
		ping[i] = (us >> (56 - 8 * i)) & 0xff;
	tun_send(t, TUN_PING, 0, 0, ping, sizeof(ping));
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

/*
 * Callbacks may close the tunnel; the final free waits until the
 * outermost callback returns, so nobody touches freed memory.
 */
void
tun_enter(struct tun *t)
{
	t->busy++;
}

void
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
	event_free(t->more_ev);
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
	size_t			 len, taken = 0;
	int			 got;

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
		    ((hdr[5] & 0x7f) | hdr[6] | hdr[7] | hdr[8]) != 0) {
			/* Payload moves to the stream without a copy. */
			tun_stream_recv_data(t, hdr, plen, in);
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
	/*
	 * Records already read from the socket wait in OpenSSL's buffer or
	 * our read BIO's, where no socket event will tell of them: take
	 * them now, up to TUN_READ_MAX more per callback, and the rest on
	 * the next loop turn (one tunnel must not hold the loop while its
	 * peer keeps sending: each read of a record's rest reads the
	 * socket again).
	 */
	if (!t->closed && !t->read_paused && t->state != TUN_HANDSHAKE &&
	    t->eof_why[0] == '\0') {
		if (taken >= TUN_READ_MAX) {
			/* A timer, not event_active: the loop polls the
			 * sockets before it runs. */
			struct timeval now = { 0, 0 };

			if (t->state != TUN_CLOSING &&
			    tun_has_pending(t, bufferevent_openssl_get_ssl(bev)))
				event_add(t->more_ev, &now);
		} else if ((got = tun_read_pending(t)) > 0) {
			taken += (size_t)got;
			goto again;
		}
	}
	/* An SSL_write that wanted to read first can go on now. */
	if (!t->closed && evbuffer_get_length(t->out) > 0)
		event_active(t->flush_ev, EV_TIMEOUT, 0);
	tun_leave(t);
}

/* Records read from the socket, not yet taken: in OpenSSL's buffer or
 * in our read BIO's (tun_bio.h). */
static int
tun_has_pending(struct tun *t, SSL *ssl)
{
	return SSL_has_pending(ssl) ||
	    (t->rbio != NULL && tun_rbio_pending(t->rbio) > 0);
}

/*
 * Our read BIO (or over a filter, OpenSSL's read-ahead) reads the socket
 * in large pieces and keeps whole records libevent does not ask for (it
 * checks SSL_pending(), which counts only the record being read, and
 * then waits for the socket, which may stay quiet): take them here.
 * Returns the bytes added to the input (0 when nothing was buffered).
 * An end found there closes the tunnel from the loop, after what came
 * before it is read.
 */
static int
tun_read_pending(struct tun *t)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(t->bev);
	struct evbuffer		*in = bufferevent_get_input(t->bev);
	struct evbuffer_iovec	 v;
	int			 n, got = 0, err;

	if (!tun_has_pending(t, ssl))
		return 0;
	tun_err_reset();	/* once, as in tun_flush_out */
	while (tun_has_pending(t, ssl) &&
	    evbuffer_get_length(in) < TUN_READ_MAX) {
		if (evbuffer_reserve_space(in, TUN_MAX_PAYLOAD + TUN_HDR_LEN,
		    &v, 1) < 1)
			break;
		if ((n = SSL_read(ssl, v.iov_base, (int)v.iov_len)) > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(in, &v, 1);
			got += n;
			continue;
		}
		err = SSL_get_error(ssl, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			break;		/* a partial record: the socket has more */
		/* The end, behind records just taken: those are read first
		 * (tun_read_cb goes on), the tunnel closes from the loop. */
		if (err == SSL_ERROR_ZERO_RETURN)
			snprintf(t->eof_why, sizeof(t->eof_why),
			    "connection closed by peer");
		else if (err == SSL_ERROR_SSL && ERR_peek_error() != 0 &&
		    ERR_reason_error_string(ERR_peek_error()) != NULL)
			snprintf(t->eof_why, sizeof(t->eof_why),
			    "TLS error: %s",
			    ERR_reason_error_string(ERR_peek_error()));
		else if (err == SSL_ERROR_SYSCALL && tun_errno_is_end(errno))
			snprintf(t->eof_why, sizeof(t->eof_why), "%s",
			    strerror(errno));
		else
			snprintf(t->eof_why, sizeof(t->eof_why),
			    "connection closed by peer");
		ERR_clear_error();
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
	int		 err = EVUTIL_SOCKET_ERROR();

	tun_enter(t);
	if (what & BEV_EVENT_CONNECTED) {
		tun_connected(t);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		tun_end_text(bev, what, err, why, sizeof(why));
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

/*
 * errno values that end a connection.  libevent takes a reset for a
 * dirty shutdown (an EOF), but errno still says what happened; a stale
 * EAGAIN or EINTR says nothing.
 */
static int
tun_errno_is_end(int e)
{
	return e == ECONNRESET || e == ETIMEDOUT || e == EPIPE ||
	    e == ECONNABORTED || e == EHOSTUNREACH || e == ENETUNREACH ||
	    e == ENETDOWN || e == EHOSTDOWN;
}

/*
 * Why the connection ended, in words.  libevent queues OpenSSL's errors
 * but also SSL_get_error()'s own codes: SSL_ERROR_SYSCALL (5) means the
 * socket failed, which errno tells ("error:00000005:lib(0)::reason(5)"
 * would say nothing to anyone).
 */
static void
tun_end_text(struct bufferevent *bev, short what, int err, char *why,
    size_t len)
{
	unsigned long	 e, first = 0, sys = 0;
	const char	*r;

	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (ERR_GET_LIB(e) == 0 && e <= SSL_ERROR_WANT_CLIENT_HELLO_CB)
			sys = e;
		else if (first == 0)
			first = e;
	}
	if (first != 0 && (r = ERR_reason_error_string(first)) != NULL)
		snprintf(why, len, "TLS error: %s", r);
	else if (first != 0) {
		snprintf(why, len, "TLS error: ");
		ERR_error_string_n(first, why + strlen(why),
		    len - strlen(why));
	} else if (err != 0 && ((what & BEV_EVENT_ERROR) ||
	    (sys == SSL_ERROR_SYSCALL && tun_errno_is_end(err))))
		snprintf(why, len, "%s", evutil_socket_error_to_string(err));
	else if (what & BEV_EVENT_EOF || sys == SSL_ERROR_SYSCALL ||
	    sys == SSL_ERROR_ZERO_RETURN)
		snprintf(why, len, "connection closed by peer");
	else if (sys != 0)
		snprintf(why, len, "TLS connection failed (SSL error %lu)",
		    sys);
	else
		snprintf(why, len, "connection failed");
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

/* The records tun_read_cb left for the next loop turn. */
static void
tun_more_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;

	(void)fd;
	(void)ev;
	tun_read_cb(t->bev, t);
}

static void
tun_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun	*t = arg;
	uint64_t	 now = mono_ms();
	char		 why[sizeof(t->shut_why) + 64];

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
		tun_send_ping(t);
		break;
	case TUN_CLOSING:
		snprintf(why, sizeof(why), "shutdown%s%s%s",
		    t->shut_why[0] != '\0' ? ": " : "", t->shut_why,
		    tun_out_len(t) == 0 ? "" : " (flush timed out)");
		tun_close(t, why);
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
	    tun_has_pending(t, ssl))
		tun_read_cb(t->bev, t);
}

/* Our HELLO: identity key and a signature bound to this TLS session. */
static void
tun_send_hello(struct tun *t)
{
	uint8_t	buf[TUN_MAX_PAYLOAD];
	size_t	n;

	n = tun_hello_build(t->p.key, t->p.role, t->p.window, t->name,
	    t->p.instance, t->exporter, buf);
	tun_send(t, TUN_HELLO, 0, 0, buf, n);
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
	/* Any frame but a refusal: the dialer accepted our HELLO. */
	if (!t->confirmed && f->type != TUN_GOAWAY) {
		t->confirmed = 1;
		if (t->ops->confirmed != NULL) {
			t->ops->confirmed(t, t->arg);
			if (t->closed || t->state != TUN_READY)
				return;
		}
	}

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
		if (tun_flow_window(&s->flow, incr) == -1) {
			tun_stream_reset(s, TUN_E_FLOW, "window overflow");
			break;
		}
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
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];

	switch (tun_hello_check(f, t->exporter, t->accepting, &t->p.role, &h,
	    err, sizeof(err))) {
	case TUN_HELLO_OK:
		break;
	case TUN_HELLO_MALFORMED:
		tun_protocol_error(t, "malformed HELLO");
		return;
	case TUN_HELLO_SIGNATURE:
		tun_shutdown(t, TUN_E_AUTH, err);
		return;
	default:
		tun_shutdown(t, TUN_E_PROTOCOL, err);
		return;
	}
	memcpy(t->peer_key, h.pub, KEY_PUB_LEN);
	t->peer_instance = h.instance;
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
	if (t->closed)
		return;
	/* Admitted: only now does the accepting side prove itself. */
	if (t->accepting) {
		tun_send_hello(t);
		return;
	}
	/*
	 * The dialer has accepted the acceptor.  Say so at once with a
	 * PING (its answer is also the first RTT): an acceptor must not
	 * let this tunnel displace another of the same key before it
	 * knows we did not refuse it.
	 */
	t->confirmed = 1;
	tun_send_ping(t);
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

void
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

void
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

