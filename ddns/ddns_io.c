/* SPDX-License-Identifier: ISC */
/*
 * ddns_io.c: send one update and wait for its answer, on the event loop.
 *
 * UDP first, as every DNS client does, resent with a doubling wait
 * (1, 2, 4 s) because a datagram can be lost; TCP when the message does
 * not fit a plain 512-byte datagram or the answer came back truncated (RFC 2136
 * 6.3 lets a server answer an update over either).  The same signed
 * bytes are resent: the TSIG time stays within the fudge.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "ddns.h"

#define DDNS_UDP_MAX	512		/* no EDNS0 on an update here */
#define DDNS_UDP_TRIES	3		/* sent at 0, 1 and 3 s; 7 s in all */
#define DDNS_TCP_SECS	10

struct ddns_send {
	struct event_base	*base;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct ddns_msg		*msg;
	const struct ddns_key	*key;
	ddns_cb			 cb;
	void			*arg;

	int			 fd;		/* UDP */
	struct event		*ev;		/* UDP readable */
	struct event		*timer;		/* resend / give up */
	int			 tries;
	struct bufferevent	*bev;		/* TCP */
	struct event		*start;		/* cb never before return */
	struct ddns_result	 res;
};

static void	ddns_send_udp(struct ddns_send *);
static void	ddns_send_tcp(struct ddns_send *);

static void
ddns_send_free(struct ddns_send *s)
{
	if (s->ev != NULL)
		event_free(s->ev);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->start != NULL)
		event_free(s->start);
	if (s->fd != -1)
		close(s->fd);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	ddns_msg_free(s->msg);
	free(s);
}

/* Report and free: the one way a send ends. */
static void
ddns_send_done(struct ddns_send *s, const struct ddns_result *res)
{
	struct ddns_result	r = *res;
	ddns_cb			cb = s->cb;
	void			*arg = s->arg;

	ddns_send_free(s);
	cb(&r, arg);
}

static void
ddns_send_fail(struct ddns_send *s, enum ddns_status st, const char *what,
    int err)
{
	struct ddns_result	r;
	char			a[64];

	memset(&r, 0, sizeof(r));
	r.status = st;
	r.rcode = -1;
	r.tcp = s->bev != NULL;
	snprintf(r.text, sizeof(r.text), "%s %s%s%s", what,
	    addr_fmt((struct sockaddr *)&s->ss, a, sizeof(a)),
	    err ? ": " : "", err ? strerror(err) : "");
	ddns_send_done(s, &r);
}

/* An answer; returns 1 if it ended the send. */
static int
ddns_send_answer(struct ddns_send *s, const uint8_t *p, size_t len, int tcp)
{
	struct ddns_result	r;

	if (ddns_msg_reply(s->msg, p, len, s->key, &r) == -1)
		return 0;		/* not ours: keep waiting */
	r.tcp = tcp;
	if (r.truncated && !tcp) {
		ddns_send_tcp(s);
		return 0;
	}
	if (r.status == DDNS_BADREPLY && !tcp)
		return 0;		/* maybe forged: the real one may come */
	ddns_send_done(s, &r);
	return 1;
}

static void
ddns_udp_read(evutil_socket_t fd, short what, void *arg)
{
	struct ddns_send	*s = arg;
	uint8_t			 buf[DDNS_UDP_MAX * 8];
	ssize_t			 n;

	(void)what;
	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1) {
			/* ICMP port unreachable comes back as ECONNREFUSED. */
			ddns_send_fail(s, DDNS_NETWORK, "no DNS server at",
			    errno);
			return;
		}
		if (ddns_send_answer(s, buf, (size_t)n, 0) || s->fd == -1)
			return;		/* done, or moved to TCP */
	}
}

static void
ddns_udp_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ddns_send	*s = arg;

	(void)fd;
	(void)what;
	if (s->tries >= DDNS_UDP_TRIES) {
		ddns_send_fail(s, DDNS_TIMEOUT, "no answer in 7 s from", 0);
		return;
	}
	ddns_send_udp(s);
}

static void
ddns_send_udp(struct ddns_send *s)
{
	struct timeval	 tv = { 1 << s->tries, 0 };
	size_t		 len;
	const uint8_t	*w = ddns_msg_wire(s->msg, &len);

	s->tries++;
	if (send(s->fd, w, len, 0) == -1 && errno != EAGAIN &&
	    errno != ENOBUFS) {
		ddns_send_fail(s, DDNS_NETWORK, "cannot send to", errno);
		return;
	}
	evtimer_add(s->timer, &tv);
}

static void
ddns_tcp_read(struct bufferevent *bev, void *arg)
{
	struct ddns_send	*s = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	uint8_t			*p;
	size_t			 len;

	for (;;) {
		if (evbuffer_get_length(in) < 2)
			return;
		p = evbuffer_pullup(in, 2);
		len = (size_t)p[0] << 8 | p[1];
		if (evbuffer_get_length(in) < 2 + len)
			return;
		if ((p = evbuffer_pullup(in, 2 + len)) == NULL) {
			ddns_send_fail(s, DDNS_NETWORK, "out of memory "
			    "reading from", 0);
			return;
		}
		if (ddns_send_answer(s, p + 2, len, 1))
			return;
		evbuffer_drain(in, 2 + len);
	}
}

static void
ddns_tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct ddns_send	*s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT)
		ddns_send_fail(s, DDNS_TIMEOUT, "no answer over TCP in 10 s "
		    "from", 0);
	else if (what & BEV_EVENT_EOF)
		ddns_send_fail(s, DDNS_NETWORK, "connection closed without "
		    "an answer by", 0);
	else
		ddns_send_fail(s, DDNS_NETWORK, "cannot reach",
		    EVUTIL_SOCKET_ERROR());
}

static void
ddns_send_tcp(struct ddns_send *s)
{
	struct timeval	 tv = { DDNS_TCP_SECS, 0 };
	uint8_t		 hdr[2];
	size_t		 len;
	const uint8_t	*w = ddns_msg_wire(s->msg, &len);

	if (s->fd != -1) {
		event_del(s->ev);
		evtimer_del(s->timer);
		close(s->fd);
		s->fd = -1;
	}
	if ((s->bev = bufferevent_socket_new(s->base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		ddns_send_fail(s, DDNS_NETWORK, "out of memory for", 0);
		return;
	}
	bufferevent_setcb(s->bev, ddns_tcp_read, NULL, ddns_tcp_event, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	hdr[0] = (uint8_t)(len >> 8);
	hdr[1] = (uint8_t)len;
	if (bufferevent_write(s->bev, hdr, 2) == -1 ||
	    bufferevent_write(s->bev, w, len) == -1 ||
	    bufferevent_enable(s->bev, EV_READ | EV_WRITE) == -1) {
		ddns_send_fail(s, DDNS_NETWORK, "out of memory for", 0);
		return;
	}
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&s->ss,
	    (int)s->sslen) == -1)
		ddns_send_fail(s, DDNS_NETWORK, "cannot connect to",
		    EVUTIL_SOCKET_ERROR());
}

static void
ddns_send_start(evutil_socket_t fd, short what, void *arg)
{
	struct ddns_send	*s = arg;
	size_t			 len;

	(void)fd;
	(void)what;
	ddns_msg_wire(s->msg, &len);
	if (len > DDNS_UDP_MAX)
		ddns_send_tcp(s);
	else
		ddns_send_udp(s);
}

struct ddns_send *
ddns_send(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, struct ddns_msg *msg, const struct ddns_key *key,
    ddns_cb cb, void *arg)
{
	struct ddns_send	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ddns_msg_free(msg);
		return NULL;
	}
	s->fd = -1;
	s->base = base;
	s->msg = msg;
	s->key = key;
	s->cb = cb;
	s->arg = arg;
	if (salen > sizeof(s->ss))
		goto fail;
	memcpy(&s->ss, sa, salen);
	s->sslen = salen;
	if ((s->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	/* Connected: only the server's datagrams arrive, and ICMP errors
	 * are reported. */
	if (connect(s->fd, sa, salen) == -1)
		goto fail;
	if ((s->ev = event_new(base, s->fd, EV_READ | EV_PERSIST,
	    ddns_udp_read, s)) == NULL ||
	    (s->timer = evtimer_new(base, ddns_udp_timer, s)) == NULL ||
	    (s->start = evtimer_new(base, ddns_send_start, s)) == NULL ||
	    event_add(s->ev, NULL) == -1)
		goto fail;
	event_active(s->start, EV_TIMEOUT, 0);
	return s;
fail:
	ddns_send_free(s);
	return NULL;
}

void
ddns_send_cancel(struct ddns_send *s)
{
	if (s != NULL)
		ddns_send_free(s);
}
