/* SPDX-License-Identifier: ISC */
/*
 * The streams a tunnel carries.  A stream relays between a local
 * bufferevent (the visitor or the home backend) and the tunnel.  Each
 * direction is credit-based: a sender may have at most the receiver's
 * window in flight, and the receiver returns credit only once bytes have
 * left its local socket buffer.  So a slow visitor stalls only its own
 * stream and costs at most one window of memory at each end.  The sums
 * are tun_flow.c's; the copy of what a stream sent, kept for a replay
 * until the peer answers, is tun_replay.c's.
 *
 * A plain local socket is read and written here, not by libevent: read
 * straight into DATA frames on the stream's own event, written at the
 * end of the loop pass (tun_stream_write_dirty); libevent's write event
 * is used only while the socket is full.
 *
 * Streams share the tunnel fairly.  A stream sends at most a quantum at
 * a time, and only while the tunnel's output is below its cap; past
 * that it queues.  The scheduler serves the streams that were idle
 * first (a new visitor's hello, a small request), then the backlogged
 * ones round robin, so no stream waits behind another's bulk data for
 * more than a quantum per busy stream.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "log.h"
#include "mono.h"
#include "tun_bio.h"
#include "tun_priv.h"

static void	tun_stream_buckets_grow(struct tun *);
static int	tun_stream_retry(struct tun_stream *, const char *);
static int	tun_stream_check_done(struct tun_stream *);
static void	tun_stream_set_reading(struct tun_stream *, int);
static void	tun_stream_dirty(struct tun_stream *);
static void	tun_stream_write_now(struct tun_stream *);
static void	tun_stream_read_cb(struct bufferevent *, void *);
static void	tun_stream_readable_cb(evutil_socket_t, short, void *);
static int	tun_stream_read_direct(struct tun_stream *, size_t, int *);
static int	tun_stream_send(struct tun_stream *, size_t, int *);
static int	tun_stream_wants(const struct tun_stream *);
static void	tun_stream_enqueue(struct tun_stream *);
static void	tun_stream_dequeue(struct tun_stream *);
static void	tun_stream_write_cb(struct bufferevent *, void *);
static void	tun_stream_event_cb(struct bufferevent *, short, void *);
static void	tun_stream_drain_cb(struct evbuffer *,
		    const struct evbuffer_cb_info *, void *);

struct tun_stream *
tun_stream_open(struct tun *t, const struct tun_open *o,
    struct bufferevent *bev, const char *label, void *udata,
    size_t replay_max)
{
	struct tun_stream	*s;
	struct tun_replay	 replay;
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
	if (tun_replay_init(&replay, replay_max) == -1)
		return NULL;
	if ((s = tun_stream_new(t, id)) == NULL) {
		tun_replay_clear(&replay);
		return NULL;
	}
	s->replay = replay;
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
	int		 r;

	s->bev = bev;
	/* Whatever the owner queued already (a PROXY header) is not tunnel
	 * data and must not earn the peer credit when it drains. */
	s->flow.skip = evbuffer_get_length(out);
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
	/*
	 * The pump must not read the socket here: a reset found by that
	 * read would free the stream under our caller, which still holds
	 * it (tun_stream_open's caller, a replay).  Reading starts from
	 * the loop.
	 */
	tun_enter(t);
	s->flags |= TUN_S_ATTACHING;
	r = tun_stream_pump(s);		/* without local I/O it cannot free s */
	if (r == 0) {
		s->flags &= ~TUN_S_ATTACHING;
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

void
tun_stream_recv_data(struct tun *t, const uint8_t *hdr, uint32_t plen,
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
	if (tun_flow_recv(&s->flow, plen) == -1 ||
	    (s->flags & TUN_S_REMOTE_FIN)) {
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
	if (plen > 0)
		tun_replay_clear(&s->replay);	/* committed to this replica */
	if (flags & TUN_F_FIN) {
		s->flags |= TUN_S_REMOTE_FIN;
		/* The replica answered, if only with its end. */
		tun_replay_clear(&s->replay);
		if (s->bev != NULL && evbuffer_get_length(dst) == 0)
			tun_stream_write_cb(s->bev, s);
		/* else the write that empties dst passes the FIN on */
	}
}

/* Keep chains short: at most two streams per bucket on average. */
static void
tun_stream_buckets_grow(struct tun *t)
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

struct tun_stream *
tun_stream_new(struct tun *t, uint32_t id)
{
	struct tun_stream	*s;
	size_t			 b;

	tun_stream_buckets_grow(t);
	b = TUN_BUCKET(id, t->nbuckets);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->tun = t;
	s->id = id;
	tun_flow_init(&s->flow, t->peer_window, t->p.window);
	s->start_ms = mono_ms();
	s->hnext = t->buckets[b];
	t->buckets[b] = s;
	TAILQ_INSERT_TAIL(&t->streams, s, entry);
	t->nstreams++;
	return s;
}

struct tun_stream *
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
void
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
	tun_stream_dequeue(s);
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
	tun_replay_clear(&s->replay);
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

	if (bev == NULL || !tun_replay_held(&s->replay) || s->out > 0 ||
	    (s->flags & TUN_S_LOCAL_EOF) || t->ops->stream_retry == NULL)
		return -1;
	if (s->drain_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(bev),
		    s->drain_cb);
	s->drain_cb = NULL;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(bev, EV_READ);
	/* Plain libevent I/O again before the owner (and perhaps a new
	 * stream that sets up its own) gets the socket. */
	if (s->flags & TUN_S_DIRECT) {
		event_free(s->rev);
		s->rev = NULL;
		s->flags &= ~(TUN_S_DIRECT | TUN_S_READING | TUN_S_WBLOCKED);
		bufferevent_enable(bev, EV_WRITE);
	}
	if (tun_replay_restore(&s->replay, bufferevent_get_input(bev)) == -1 ||
	    t->ops->stream_retry(t, s, bev, reason, t->arg) == -1) {
		/* Not taken: the stream frees it as usual. */
		s->drain_cb = evbuffer_add_cb(bufferevent_get_output(bev),
		    tun_stream_drain_cb, s);
		return -1;
	}
	s->bev = NULL;
	return 0;
}

/*
 * Something changed for the stream: local bytes, credit, or EOF.  With
 * nobody queued and room in the tunnel's output it sends a quantum now;
 * otherwise it queues for its turn.  Returns -1 if the stream was freed.
 */
int
tun_stream_pump(struct tun_stream *s)
{
	struct tun	*t = s->tun;
	int		 more;

	if (s->flags & TUN_S_WAITING)
		return 0;		/* its turn is coming */
	if (s->bev != NULL && t->state != TUN_CLOSING &&
	    (!TAILQ_EMPTY(&t->fresh) || !TAILQ_EMPTY(&t->waiting) ||
	    tun_out_len(t) >= t->out_cap) && tun_stream_wants(s)) {
		tun_stream_enqueue(s);
		return 0;
	}
	if (tun_stream_send(s, t->quantum, &more) == -1)
		return -1;
	if (more)
		tun_stream_enqueue(s);
	return 0;
}

/*
 * Give queued streams their turns while the tunnel's output has room:
 * the fresh ones first, then the backlogged ones round robin.
 */
void
tun_stream_schedule(struct tun *t)
{
	struct tun_stream	*s;
	int			 more;

	while (!t->closed && t->state != TUN_CLOSING &&
	    tun_out_len(t) < t->out_cap) {
		if ((s = TAILQ_FIRST(&t->fresh)) == NULL &&
		    (s = TAILQ_FIRST(&t->waiting)) == NULL)
			break;
		tun_stream_dequeue(s);
		if (tun_stream_send(s, t->quantum, &more) == -1)
			continue;	/* freed */
		if (more)
			tun_stream_enqueue(s);
	}
}

/* Might it send now: bytes (or a readable socket) and credit? */
static int
tun_stream_wants(const struct tun_stream *s)
{
	if (s->flow.send_credit == 0)
		return 0;
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		return 1;
	return (s->flags & TUN_S_DIRECT) && !(s->flags & TUN_S_LOCAL_EOF);
}

/* Queue for a turn; no local reads until then (they would spin). */
static void
tun_stream_enqueue(struct tun_stream *s)
{
	struct tun	*t = s->tun;

	if (s->flags & TUN_S_WAITING)
		return;
	tun_stream_set_reading(s, 0);
	if (s->flags & TUN_S_BACKLOG)
		TAILQ_INSERT_TAIL(&t->waiting, s, wentry);
	else {
		TAILQ_INSERT_TAIL(&t->fresh, s, wentry);
		s->flags |= TUN_S_FRESH;
	}
	s->flags |= TUN_S_WAITING;
	/* The scheduler runs at the end of the pass (tun_flush_cb), and
	 * whenever the socket takes bytes (tun_sink_cb). */
	event_active(t->flush_ev, EV_TIMEOUT, 0);
}

static void
tun_stream_dequeue(struct tun_stream *s)
{
	struct tun	*t = s->tun;

	if (!(s->flags & TUN_S_WAITING))
		return;
	if (s->flags & TUN_S_FRESH)
		TAILQ_REMOVE(&t->fresh, s, wentry);
	else
		TAILQ_REMOVE(&t->waiting, s, wentry);
	s->flags &= ~(TUN_S_WAITING | TUN_S_FRESH);
}

/*
 * Move up to budget bytes of what the local side sent into DATA frames,
 * as far as credit and the tunnel's cap allow; *more says it stopped
 * with more to send (it must queue).  Returns -1 if the stream was freed.
 */
static int
tun_stream_send(struct tun_stream *s, size_t budget, int *more)
{
	struct tun	*t = s->tun;
	struct evbuffer	*in, *out = t->out;
	struct evbuffer_iovec iov;
	size_t		 len, n, sent = 0;

	*more = 0;
	if (s->bev == NULL)
		return 0;
	if (t->state == TUN_CLOSING) {
		tun_stream_set_reading(s, 0);
		return 0;
	}
	in = bufferevent_get_input(s->bev);
	while ((len = evbuffer_get_length(in)) > 0 &&
	    s->flow.send_credit > 0) {
		if (sent >= budget || tun_out_len(t) >= t->out_cap) {
			*more = 1;
			break;
		}
		n = tun_flow_allow(&s->flow, len);
		if (n > TUN_DATA_CHUNK)
			n = TUN_DATA_CHUNK;
		if (n > budget - sent)
			n = budget - sent;
		/*
		 * Header and payload in one contiguous piece: the TLS layer
		 * writes one record per piece, so a frame fills exactly one
		 * full-size record instead of a 9-byte record and a split.
		 */
		if (evbuffer_reserve_space(out, TUN_HDR_LEN + n, &iov, 1) < 1)
			break;
		tun_frame_header(iov.iov_base, TUN_DATA, 0, s->id, (uint32_t)n);
		evbuffer_remove(in, (uint8_t *)iov.iov_base + TUN_HDR_LEN, n);
		/* Kept until a byte comes back; past the cap the stream
		 * can no longer be replayed. */
		tun_replay_add(&s->replay, (uint8_t *)iov.iov_base +
		    TUN_HDR_LEN, n);
		iov.iov_len = TUN_HDR_LEN + n;
		evbuffer_commit_space(out, &iov, 1);
		tun_flow_sent(&s->flow, n);
		s->in += n;
		sent += n;
	}
	if (!*more && evbuffer_get_length(in) == 0 &&
	    !(s->flags & TUN_S_ATTACHING) &&
	    tun_stream_read_direct(s, budget - sent, more) == -1)
		return -1;
	len = evbuffer_get_length(in);
	/* A bulk stream, next time it queues: at the back. */
	if (*more || (s->flow.send_credit == 0 && s->in > 0 &&
	    (len > 0 || (s->flags & TUN_S_DIRECT))))
		s->flags |= TUN_S_BACKLOG;
	else
		s->flags &= ~TUN_S_BACKLOG;
	if (*more)
		tun_stream_set_reading(s, 0);	/* queued: read on its turn */
	else if (!(s->flags & TUN_S_DIRECT))
		tun_stream_set_reading(s, len == 0 &&
		    !(s->flags & TUN_S_LOCAL_EOF));
	else if (len > 0 || (s->flags & TUN_S_LOCAL_EOF) ||
	    s->flow.send_credit == 0)
		tun_stream_set_reading(s, 0);	/* a WINDOW pumps again */
	else
		tun_stream_set_reading(s, 1);
	if (len == 0 && (s->flags & TUN_S_LOCAL_EOF) &&
	    !(s->flags & TUN_S_FIN_SENT)) {
		tun_send(t, TUN_DATA, TUN_F_FIN, s->id, NULL, 0);
		s->flags |= TUN_S_FIN_SENT;
		return tun_stream_check_done(s);
	}
	return 0;
}

/* End of the loop pass: write what the tunnel gave the dirty streams. */
void
tun_stream_write_dirty(struct tun *t)
{
	struct tun_stream	*s;

	while (!t->closed && (s = TAILQ_FIRST(&t->dirty)) != NULL) {
		TAILQ_REMOVE(&t->dirty, s, dentry);
		s->flags &= ~TUN_S_DIRTY;
		tun_stream_write_now(s);
	}
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
	int			 r;

	/* A socket bufferevent keeps its output's front frozen except
	 * while it writes; so do we. */
	evbuffer_unfreeze(out, 1);
	r = tun_bio_write_fd(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (r == 1) {
		s->flags |= TUN_S_WBLOCKED;
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	if (r == -1) {
		snprintf(why, sizeof(why), "local write error: %s",
		    strerror(errno));
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
 * what else the socket holds ourselves, up to the credit and the budget
 * (TUN_DIRECT_FRAMES frames per call), straight into frames in the
 * tunnel's output: no copy through the stream's input buffer.  Returns
 * -1 if the stream was reset (and freed).
 */
static int
tun_stream_read_direct(struct tun_stream *s, size_t budget, int *more)
{
	struct tun		*t = s->tun;
	struct evbuffer		*out = t->out;
	struct evbuffer_iovec	 res;
	struct iovec		 iov[TUN_DIRECT_FRAMES];
	uint8_t			*p;
	size_t			 want, got, n, room, total = 0;
	ssize_t			 r = 1;
	int			 fd, err = 0, k, nk;
	char			 why[128];

	if ((s->flags & TUN_S_LOCAL_EOF) || (fd = bufferevent_getfd(s->bev)) < 0)
		return 0;
	while (s->flow.send_credit > 0) {
		if (total >= budget || tun_out_len(t) >= t->out_cap) {
			*more = 1;	/* the socket may hold more */
			break;
		}
		/* Up to TUN_DIRECT_FRAMES frames in one read: payloads go
		 * in place, each after the room for its header.  Not past
		 * the cap by more than a frame: a slow path would queue it. */
		want = tun_flow_allow(&s->flow, budget - total);
		room = t->out_cap - tun_out_len(t);
		if (room < TUN_DATA_CHUNK)
			room = TUN_DATA_CHUNK;
		if (want > room)
			want = room;
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
			tun_replay_add(&s->replay, iov[k].iov_base, n);
			got += n;
		}
		res.iov_len = (size_t)k * TUN_HDR_LEN + (size_t)r;
		evbuffer_commit_space(out, &res, 1);
		tun_flow_sent(&s->flow, (size_t)r);
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
	uint32_t		 incr;
	uint8_t			 b[4];

	(void)buf;
	if (info->n_deleted == 0 || t->closed || t->state == TUN_CLOSING)
		return;
	if ((incr = tun_flow_drained(&s->flow, info->n_deleted, t->p.window,
	    s->flags & TUN_S_REMOTE_FIN)) == 0)
		return;
	b[0] = incr >> 24;
	b[1] = (incr >> 16) & 0xff;
	b[2] = (incr >> 8) & 0xff;
	b[3] = incr & 0xff;
	tun_send(t, TUN_WINDOW, 0, s->id, b, sizeof(b));
}
