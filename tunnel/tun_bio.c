/* SPDX-License-Identifier: ISC */
/*
 * The tunnel's write BIO: TLS records gathered over one loop pass and
 * sent with one writev().  A bulk stream gives the agent four 16 KiB
 * records per read of its backend; sent one by one they cost four
 * segments, four softirq passes on loopback and four wakeups of the
 * gateway, where one would do.  The price is one copy of each record
 * into the buffer.
 *
 * It never refuses a record, so OpenSSL never waits on it and the
 * tunnel writes without libevent's write event: bounding the backlog is
 * the tunnel's job (tun_bio_pending).  What the socket does not take at
 * the end of a pass waits on our own write event.
 */

#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "tun_bio.h"

struct tun_bio {
	int		 fd;
	struct evbuffer	*buf;		/* records not yet in the socket */
	int		 err;		/* errno of a failed send; sticks */
	int		 scheduled;	/* flush_ev is active */
	int		 finished;
	struct event	*flush_ev;	/* end of this loop pass */
	struct event	*wait_ev;	/* the socket has room again */
	void		(*drained)(void *);
	void		*arg;
	size_t		 lowat;		/* wait for unsent < lowat */
	size_t		 unsent_max;	/* the kernel holds at most this
					 * unsent: last measured, plus what
					 * we sent since */
};

static BIO_METHOD	*tun_bio_method(void);
static int	tun_bio_write_m(BIO *, const char *, int);
static long	tun_bio_ctrl_m(BIO *, int, long, void *);
static int	tun_bio_destroy_m(BIO *);
static void	tun_bio_send(struct tun_bio *);
static void	tun_bio_flush_cb(evutil_socket_t, short, void *);
static int	tun_bio_backlogged(struct tun_bio *);
static BIO_METHOD	*tun_rbio_method(void);
static int	tun_rbio_read_m(BIO *, char *, int);
static long	tun_rbio_ctrl_m(BIO *, int, long, void *);
static int	tun_rbio_destroy_m(BIO *);

/* Below glibc's mmap threshold (128 KiB): taken from and returned to
 * the heap, without a syscall, each time the buffer fills and empties. */
#define TUN_RBIO_SIZE	(120 * 1024)
#define TUN_TLS_HDR	5		/* type, version, length */

struct tun_rbio {
	int		 fd;
	uint8_t		*buf;		/* TUN_RBIO_SIZE, or NULL if empty */
	size_t		 off, len;	/* unread: buf[off..len) */
	uint8_t		 hdr[TUN_TLS_HDR]; /* the current record's header */
	size_t		 hdr_have;	/* of it handed over; 5: in the body */
	size_t		 body_left;	/* of the body not handed over */
	int		 eof;
};

BIO *
tun_bio_new(struct event_base *base, int fd)
{
	BIO_METHOD	*m;
	BIO		*b;
	struct tun_bio	*w;

	if ((m = tun_bio_method()) == NULL || (b = BIO_new(m)) == NULL)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		BIO_free(b);
		return NULL;
	}
	w->fd = fd;
	BIO_set_data(b, w);
	BIO_set_init(b, 1);
	w->buf = evbuffer_new();
	w->flush_ev = event_new(base, -1, 0, tun_bio_flush_cb, w);
	w->wait_ev = event_new(base, fd, EV_WRITE, tun_bio_flush_cb, w);
	if (w->buf == NULL || w->flush_ev == NULL || w->wait_ev == NULL) {
		BIO_free(b);	/* tun_bio_destroy_m frees w */
		return NULL;
	}
	return b;
}

size_t
tun_bio_pending(BIO *b)
{
	struct tun_bio	*w = BIO_get_data(b);

	return evbuffer_get_length(w->buf);
}

void
tun_bio_set_drained(BIO *b, void (*cb)(void *), void *arg)
{
	struct tun_bio	*w = BIO_get_data(b);

	w->drained = cb;
	w->arg = arg;
}

void
tun_bio_set_lowat(BIO *b, size_t lowat)
{
	struct tun_bio	*w = BIO_get_data(b);

	w->lowat = lowat;
}

void
tun_bio_finish(BIO *b)
{
	struct tun_bio	*w = BIO_get_data(b);

	tun_bio_send(w);
	w->finished = 1;
	w->drained = NULL;
	event_del(w->flush_ev);
	event_del(w->wait_ev);
	w->scheduled = 0;
}

static BIO_METHOD *
tun_bio_method(void)
{
	static BIO_METHOD	*m;

	/* Made once and kept for the life of the process. */
	if (m != NULL)
		return m;
	if ((m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "porch tunnel writer")) == NULL)
		return NULL;
	if (BIO_meth_set_write(m, tun_bio_write_m) != 1 ||
	    BIO_meth_set_ctrl(m, tun_bio_ctrl_m) != 1 ||
	    BIO_meth_set_destroy(m, tun_bio_destroy_m) != 1) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

static int
tun_bio_write_m(BIO *b, const char *in, int inl)
{
	struct tun_bio	*w = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (inl <= 0)
		return 0;
	if (w->err != 0) {
		errno = w->err;
		return -1;
	}
	if (evbuffer_add(w->buf, in, (size_t)inl) == -1) {
		errno = ENOMEM;
		return -1;
	}
	if (!w->scheduled && !w->finished) {
		w->scheduled = 1;
		event_active(w->flush_ev, EV_TIMEOUT, 0);
	}
	return inl;
}

static long
tun_bio_ctrl_m(BIO *b, int cmd, long num, void *ptr)
{
	struct tun_bio	*w = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = w->fd;
		return w->fd;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_SET_CLOSE:
		return 1;	/* never ours to close */
	case BIO_CTRL_WPENDING:
		return (long)evbuffer_get_length(w->buf);
	case BIO_CTRL_FLUSH:
		/* After a handshake flight, which must be out before the
		 * handshake goes on. */
		BIO_clear_retry_flags(b);
		tun_bio_send(w);
		if (evbuffer_get_length(w->buf) == 0)
			return 1;
		if (w->err == 0) {
			BIO_set_retry_write(b);
			if (!w->finished)
				event_add(w->wait_ev, NULL);
		} else
			errno = w->err;
		return -1;
	default:
		return 0;
	}
}

static int
tun_bio_destroy_m(BIO *b)
{
	struct tun_bio	*w = BIO_get_data(b);

	if (w == NULL)
		return 1;
	if (w->flush_ev != NULL)
		event_free(w->flush_ev);
	if (w->wait_ev != NULL)
		event_free(w->wait_ev);
	if (w->buf != NULL)
		evbuffer_free(w->buf);
	free(w);
	BIO_set_data(b, NULL);
	return 1;
}

int
tun_bio_write_fd(struct evbuffer *buf, int fd)
{
	int	n;

	while (evbuffer_get_length(buf) > 0) {
		if ((n = evbuffer_write(buf, fd)) > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n == 0)
			errno = EPIPE;
		return -1;
	}
	return 0;
}

/* Send what the socket takes. */
static void
tun_bio_send(struct tun_bio *w)
{
	size_t	len = evbuffer_get_length(w->buf);
	int	r;

	if (w->err != 0)
		return;
	r = tun_bio_write_fd(w->buf, w->fd);
	w->unsent_max += len - evbuffer_get_length(w->buf);
	if (r != -1)
		return;
	w->err = errno;
	/* Can never be sent. */
	evbuffer_drain(w->buf, evbuffer_get_length(w->buf));
}

static void
tun_bio_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tun_bio	*w = arg;

	(void)fd;
	(void)ev;
	w->scheduled = 0;
	tun_bio_send(w);
	if (evbuffer_get_length(w->buf) > 0 || tun_bio_backlogged(w))
		event_add(w->wait_ev, NULL);
	else if (w->drained != NULL)
		w->drained(w->arg);
}

/*
 * The kernel still holds lowat or more unsent: more now would only wait
 * there.  The socket turns writable (wait_ev) once it is below (the
 * socket's TCP_NOTSENT_LOWAT is the same).  Unsent bytes only shrink
 * between our sends, so while the last count plus what we sent since is
 * below lowat, no need to ask: a gateway sending little but WINDOW
 * frames asked the kernel once per frame, 8,000 times per GiB.
 */
static int
tun_bio_backlogged(struct tun_bio *w)
{
	int	n;

	if (w->lowat == 0 || w->err != 0 || w->unsent_max < w->lowat)
		return 0;
	if (ioctl(w->fd, SIOCOUTQNSD, &n) == -1)
		return 0;
	w->unsent_max = (size_t)n;
	return (size_t)n >= w->lowat;
}

BIO *
tun_rbio_new(int fd)
{
	BIO_METHOD	*m;
	BIO		*b;
	struct tun_rbio	*r;

	if ((m = tun_rbio_method()) == NULL || (b = BIO_new(m)) == NULL)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		BIO_free(b);
		return NULL;
	}
	r->fd = fd;
	BIO_set_data(b, r);
	BIO_set_init(b, 1);
	return b;
}

size_t
tun_rbio_pending(BIO *b)
{
	struct tun_rbio	*r = BIO_get_data(b);

	return r->len - r->off;
}

static BIO_METHOD *
tun_rbio_method(void)
{
	static BIO_METHOD	*m;

	/* Made once and kept for the life of the process. */
	if (m != NULL)
		return m;
	if ((m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
	    BIO_TYPE_DESCRIPTOR, "porch tunnel reader")) == NULL)
		return NULL;
	if (BIO_meth_set_read(m, tun_rbio_read_m) != 1 ||
	    BIO_meth_set_ctrl(m, tun_rbio_ctrl_m) != 1 ||
	    BIO_meth_set_destroy(m, tun_rbio_destroy_m) != 1) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

/* Of avail bytes at p, those up to the end of the current record. */
static size_t
tun_rbio_span(const struct tun_rbio *r, const uint8_t *p, size_t avail)
{
	uint8_t	h[TUN_TLS_HDR];
	size_t	need, body;

	if (r->hdr_have == TUN_TLS_HDR)
		return avail < r->body_left ? avail : r->body_left;
	need = TUN_TLS_HDR - r->hdr_have;
	if (avail <= need)
		return avail;
	memcpy(h, r->hdr, r->hdr_have);
	memcpy(h + r->hdr_have, p, need);
	body = ((size_t)h[3] << 8) | h[4];
	return need + (avail - need < body ? avail - need : body);
}

/* n bytes at p were handed over: follow the record headers. */
static void
tun_rbio_advance(struct tun_rbio *r, const uint8_t *p, size_t n)
{
	size_t	k;

	while (n > 0) {
		if (r->hdr_have < TUN_TLS_HDR) {
			k = TUN_TLS_HDR - r->hdr_have < n ?
			    TUN_TLS_HDR - r->hdr_have : n;
			memcpy(r->hdr + r->hdr_have, p, k);
			r->hdr_have += k;
			if (r->hdr_have == TUN_TLS_HDR)
				r->body_left = ((size_t)r->hdr[3] << 8) |
				    r->hdr[4];
		} else {
			k = r->body_left < n ? r->body_left : n;
			r->body_left -= k;
		}
		p += k;
		n -= k;
		if (r->hdr_have == TUN_TLS_HDR && r->body_left == 0)
			r->hdr_have = 0;	/* the next record starts */
	}
}

/*
 * Up to outl bytes, never past the end of the current record: so when
 * OpenSSL starts the next record its buffer is empty, and it moves
 * nothing.  (A header incomplete in our buffer goes over as far as it
 * is; OpenSSL asks again for the rest.)
 */
static int
tun_rbio_read_m(BIO *b, char *out, int outl)
{
	struct tun_rbio	*r = BIO_get_data(b);
	const uint8_t	*p;
	size_t		 n;
	ssize_t		 got;

	BIO_clear_retry_flags(b);
	if (outl <= 0)
		return 0;
	if (r->off == r->len) {
		if (r->eof)
			return 0;
		if (r->buf == NULL && (r->buf = malloc(TUN_RBIO_SIZE)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		do
			got = read(r->fd, r->buf, TUN_RBIO_SIZE);
		while (got == -1 && errno == EINTR);
		if (got <= 0) {
			if (got == 0)
				r->eof = 1;
			else if (errno == EAGAIN || errno == EWOULDBLOCK)
				BIO_set_retry_read(b);
			free(r->buf);	/* idle: hold no buffer */
			r->buf = NULL;
			return got == 0 ? 0 : -1;
		}
		r->off = 0;
		r->len = (size_t)got;
	}
	p = r->buf + r->off;
	n = tun_rbio_span(r, p, r->len - r->off);
	if (n > (size_t)outl)
		n = (size_t)outl;
	tun_rbio_advance(r, p, n);
	memcpy(out, p, n);
	r->off += n;
	if (r->off == r->len) {
		free(r->buf);
		r->buf = NULL;
		r->off = r->len = 0;
	}
	return (int)n;
}

static long
tun_rbio_ctrl_m(BIO *b, int cmd, long num, void *ptr)
{
	struct tun_rbio	*r = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = r->fd;
		return r->fd;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_SET_CLOSE:
		return 1;	/* never ours to close */
	case BIO_CTRL_PENDING:
		return (long)(r->len - r->off);
	case BIO_CTRL_EOF:
		return r->eof && r->off == r->len;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int
tun_rbio_destroy_m(BIO *b)
{
	struct tun_rbio	*r = BIO_get_data(b);

	if (r == NULL)
		return 1;
	free(r->buf);
	free(r);
	BIO_set_data(b, NULL);
	return 1;
}
