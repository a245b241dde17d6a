/* SPDX-License-Identifier: ISC */
/*
 * Two bufferevents joined: what one side reads, the other writes, as
 * relayd's relay_read()/relay_write() do.  Above a high-water mark of
 * bytes queued towards a side, reading from the other side stops until
 * that queue has drained to half, so a slow side stalls its peer instead
 * of filling memory.  EOF is passed on as a half-close once everything
 * before it is flushed: shutdown(SHUT_WR) on a socket, close_notify and
 * then EOF on a TLS bufferevent, EOF to the partner of a pair.  The relay
 * ends when both directions have ended, or at the first error.
 */

#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent.h"

struct agent_relay_side {
	struct agent_relay	*r;
	struct bufferevent	*bev;
	uint64_t		 moved;	/* bytes read and passed on */
	int			 eof;	/* EOF read here */
	int			 paused;	/* we stopped its reading */
	int			 shut;	/* its write side is shut */
};

struct agent_relay {
	struct agent_relay_side	 side[2];
	size_t			 high;
	agent_relay_cb		 done;
	void			*arg;
};

static void	agent_relay_read_cb(struct bufferevent *, void *);
static void	agent_relay_write_cb(struct bufferevent *, void *);
static void	agent_relay_event_cb(struct bufferevent *, short, void *);
static int	agent_relay_pass(struct agent_relay_side *);
static void	agent_relay_end(struct agent_relay *, int, int,
		    const char *);
static void	agent_relay_error(struct agent_relay_side *, short, char *,
		    size_t);

struct agent_relay *
agent_relay_new(struct bufferevent *a, struct bufferevent *b, size_t high,
    agent_relay_cb done, void *arg)
{
	struct agent_relay	*r;
	int			 i;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		bufferevent_free(a);
		bufferevent_free(b);
		return NULL;
	}
	r->high = high;
	r->done = done;
	r->arg = arg;
	r->side[0].bev = a;
	r->side[1].bev = b;
	for (i = 0; i < 2; i++) {
		r->side[i].r = r;
		bufferevent_setcb(r->side[i].bev, agent_relay_read_cb,
		    agent_relay_write_cb, agent_relay_event_cb, &r->side[i]);
		bufferevent_setwatermark(r->side[i].bev, EV_WRITE, 0, 0);
		bufferevent_set_timeouts(r->side[i].bev, NULL, NULL);
		bufferevent_enable(r->side[i].bev, EV_READ | EV_WRITE);
	}
	/* Bytes read before we took over (a TLS record that came with the
	 * handshake) would wait for the next read event otherwise.  Neither
	 * side has seen EOF yet, so this cannot end the relay. */
	for (i = 0; i < 2; i++)
		agent_relay_pass(&r->side[i]);
	return r;
}

void
agent_relay_eof(struct agent_relay *r, int side)
{
	r->side[side != 0].eof = 1;
	agent_relay_pass(&r->side[side != 0]);
}

void
agent_relay_free(struct agent_relay *r, int reset)
{
	struct linger	 l = { 1, 0 };
	int		 i, fd;

	if (r == NULL)
		return;
	for (i = 0; i < 2; i++) {
		/* A cut transfer must not look complete to the peer. */
		if (reset && (fd = bufferevent_getfd(r->side[i].bev)) != -1)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		bufferevent_free(r->side[i].bev);
	}
	free(r);
}

void
agent_relay_shutdown(struct bufferevent *bev)
{
	struct bufferevent	*under;
	SSL			*ssl;
	int			 fd;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL) {
		under = bufferevent_get_underlying(bev);
		/* The alert is tiny and the last thing sent: let it past the
		 * cap that holds back records waiting for the layer below. */
		if (under != NULL)
			bufferevent_setwatermark(under, EV_WRITE, 0, 0);
		if (SSL_is_init_finished(ssl))
			(void)SSL_shutdown(ssl);
		ERR_clear_error();
		if (under != NULL) {
			agent_relay_shutdown(under);
			return;
		}
	}
	if ((fd = bufferevent_getfd(bev)) != -1)
		shutdown(fd, SHUT_WR);
	else	/* a pair: EOF to the partner, after what is queued */
		bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
}

static void
agent_relay_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	agent_relay_pass(arg);
}

/* Output towards this side drained (to half, or all when an EOF waits). */
static void
agent_relay_write_cb(struct bufferevent *bev, void *arg)
{
	struct agent_relay_side	*to = arg, *from;

	from = &to->r->side[to == &to->r->side[0]];

	(void)bev;
	if (from->paused) {
		from->paused = 0;
		/* A TLS bufferevent decrypts what it holds right here, so the
		 * pass below sees it (and an EOF that came while paused). */
		bufferevent_enable(from->bev, EV_READ);
	}
	agent_relay_pass(from);
}

static void
agent_relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_relay_side	*sd = arg;
	char			 why[160];

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		sd->eof = 1;
		agent_relay_pass(sd);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		agent_relay_error(sd, what, why, sizeof(why));
		agent_relay_end(sd->r, sd == &sd->r->side[1], 0, why);
	}
}

/*
 * Move what from has read to the other side, stop reading from it when
 * the other side's queue is full, and pass its EOF on once that queue is
 * empty.  Returns -1 if the relay ended (and is freed).
 */
static int
agent_relay_pass(struct agent_relay_side *from)
{
	struct agent_relay	*r = from->r;
	struct agent_relay_side	*to = &r->side[from == &r->side[0]];
	struct evbuffer		*in = bufferevent_get_input(from->bev);
	struct evbuffer		*out = bufferevent_get_output(to->bev);
	size_t			 n = evbuffer_get_length(in);

	if (n > 0) {
		if (to->shut)	/* nothing may follow an EOF passed on */
			evbuffer_drain(in, n);
		else {
			evbuffer_add_buffer(out, in);
			from->moved += n;
		}
	}
	if (!from->paused && evbuffer_get_length(out) >= r->high) {
		from->paused = 1;
		bufferevent_disable(from->bev, EV_READ);
		bufferevent_setwatermark(to->bev, EV_WRITE, r->high / 2, 0);
	}
	/*
	 * A paused side may still hold bytes below it (a TLS bufferevent
	 * reports EOF from the layer below while records wait there), so
	 * its EOF counts once it reads again.
	 */
	if (!from->eof || from->paused || to->shut)
		return 0;
	if (evbuffer_get_length(out) > 0) {
		/* The write callback comes back here once it is empty. */
		bufferevent_setwatermark(to->bev, EV_WRITE, 0, 0);
		return 0;
	}
	to->shut = 1;
	bufferevent_disable(from->bev, EV_READ);
	agent_relay_shutdown(to->bev);
	if (from->r->side[0].shut && from->r->side[1].shut) {
		agent_relay_end(r, -1, 1, "eof");
		return -1;
	}
	return 0;
}

/* The only exit besides agent_relay_free: free, then tell the owner. */
static void
agent_relay_end(struct agent_relay *r, int side, int clean, const char *why)
{
	struct agent_relay_end	 e;
	agent_relay_cb		 done = r->done;
	void			*arg = r->arg;
	char			 reason[160];

	snprintf(reason, sizeof(reason), "%s", why);
	memset(&e, 0, sizeof(e));
	e.clean = clean;
	e.side = side;
	e.reason = reason;
	e.a_to_b = r->side[0].moved;
	e.b_to_a = r->side[1].moved;
	agent_relay_free(r, !clean);
	done(&e, arg);
}

/* Why a side failed, in a few words, without secrets. */
static void
agent_relay_error(struct agent_relay_side *sd, short what, char *buf,
    size_t len)
{
	unsigned long	 e, last = 0;
	const char	*dir = (what & BEV_EVENT_WRITING) ? "write" : "read";
	int		 err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(buf, len, "%s timeout", dir);
		return;
	}
	/* The oldest TLS error is the cause; later ones follow from it. */
	while ((e = bufferevent_get_openssl_error(sd->bev)) != 0)
		last = e;
	if (last != 0) {
		snprintf(buf, len, "TLS %s error: %s", dir,
		    ERR_reason_error_string(last) != NULL ?
		    ERR_reason_error_string(last) : "unknown");
		return;
	}
	if (err == 0)
		snprintf(buf, len, "%s error", dir);
	else
		snprintf(buf, len, "%s error: %s", dir, strerror(err));
}
