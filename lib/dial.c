/* SPDX-License-Identifier: ISC */
/*
 * Dialing out: agents to their gateways, gateways to their peers.  Resolve
 * the name (c-ares), connect to each address with a deadline, and after a
 * failure try again with exponential backoff and jitter, so a gateway that
 * comes back is not stampeded by every agent at the same moment.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "backoff.h"
#include "dial.h"
#include "dns.h"
#include "log.h"

#define DIAL_MAX_ADDRS	8

enum dial_state {
	DIAL_IDLE,		/* stopped, or waiting for the backoff timer */
	DIAL_RESOLVING,
	DIAL_CONNECTING,
};

struct dial {
	struct event_base	*base;
	struct dns		*dns;
	struct dial_params	 p;
	char			*host;
	char			*label;
	dial_cb			 cb;
	void			*arg;
	enum dial_state		 state;
	unsigned		 failures;
	struct dns_query	*query;		/* lookup in flight */
	struct event		*timer;		/* backoff */
	struct event		*conn_ev;	/* connect, with deadline */
	int			 fd;
	struct sockaddr_storage	 addrs[DIAL_MAX_ADDRS];
	socklen_t		 lens[DIAL_MAX_ADDRS];
	size_t			 naddrs, next;
	char			 addr_text[64];
	char			 last_error[256];
};

static void	dial_resolved(int, const struct sockaddr_storage *,
		    const socklen_t *, size_t, void *);
static void	dial_try_next(struct dial *);
static void	dial_conn_cb(evutil_socket_t, short, void *);
static void	dial_timer_cb(evutil_socket_t, short, void *);
static void	dial_cancel(struct dial *);

struct dial *
dial_new(struct event_base *base, struct dns *dns,
    const struct dial_params *p, dial_cb cb, void *arg)
{
	struct dial	*d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->base = base;
	d->dns = dns;
	d->p = *p;
	d->cb = cb;
	d->arg = arg;
	d->fd = -1;
	d->host = strdup(p->host);
	d->label = strdup(p->label != NULL ? p->label : p->host);
	d->timer = event_new(base, -1, 0, dial_timer_cb, d);
	if (d->host == NULL || d->label == NULL || d->timer == NULL) {
		dial_free(d);
		return NULL;
	}
	d->p.host = d->host;
	d->p.label = d->label;
	return d;
}

void
dial_free(struct dial *d)
{
	if (d == NULL)
		return;
	dial_cancel(d);
	if (d->timer != NULL)
		event_free(d->timer);
	free(d->host);
	free(d->label);
	free(d);
}

void
dial_start(struct dial *d)
{
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			text[300], err[128];

	dial_cancel(d);
	d->last_error[0] = '\0';
	/* A numeric address needs no resolver; "[v6]" is written so. */
	snprintf(text, sizeof(text), strchr(d->host, ':') != NULL ?
	    "[%s]:%u" : "%s:%u", d->host, d->p.port);
	if (addr_parse_numeric(text, &ss, &len, err, sizeof(err)) == 0) {
		d->addrs[0] = ss;
		d->lens[0] = len;
		d->naddrs = 1;
		d->next = 0;
		dial_try_next(d);
		return;
	}
	d->state = DIAL_RESOLVING;
	d->query = dns_lookup(d->dns, d->host, d->p.port, dial_resolved, d);
}

void
dial_later(struct dial *d, const char *why)
{
	dial_later_floor(d, why, 0);
}

void
dial_later_floor(struct dial *d, const char *why, unsigned floor_ms)
{
	struct timeval	 tv;
	uint64_t	 delay;
	char		 msg[1024];	/* a peer key refusal: two keys */

	snprintf(msg, sizeof(msg), "%s", why);	/* may be last_error */
	dial_cancel(d);
	delay = backoff_delay(d->failures + 1, d->p.min_ms, d->p.max_ms);
	if (delay < floor_ms)
		delay = floor_ms + randombytes_uniform(floor_ms / 4 + 1);
	d->failures++;
	log_warnx(strchr(d->host, ':') != NULL ?
	    "%s ([%s]:%u): %s; retrying in %llu ms" :
	    "%s (%s:%u): %s; retrying in %llu ms", d->label, d->host,
	    d->p.port, msg, (unsigned long long)delay);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	event_add(d->timer, &tv);
}

void
dial_reset(struct dial *d)
{
	d->failures = 0;
}

const char *
dial_host(const struct dial *d)
{
	return d->host;
}

unsigned
dial_port(const struct dial *d)
{
	return d->p.port;
}

void
dial_stop(struct dial *d)
{
	dial_cancel(d);
}

/* Drop whatever is in flight; a pending lookup is ignored on arrival. */
static void
dial_cancel(struct dial *d)
{
	if (d->timer != NULL)
		event_del(d->timer);
	dns_cancel(d->query);
	d->query = NULL;
	if (d->conn_ev != NULL) {
		event_free(d->conn_ev);
		d->conn_ev = NULL;
	}
	if (d->fd != -1) {
		close(d->fd);
		d->fd = -1;
	}
	d->state = DIAL_IDLE;
}

static void
dial_resolved(int err, const struct sockaddr_storage *ss,
    const socklen_t *lens, size_t n, void *arg)
{
	struct dial	*d = arg;
	char		 why[300];
	size_t		 i;

	d->query = NULL;
	if (d->state != DIAL_RESOLVING)
		return;		/* stopped meanwhile */
	if (err != 0 || n == 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", d->host,
		    dns_strerror(err));
		dial_later(d, why);
		return;
	}
	for (i = 0; i < n && i < DIAL_MAX_ADDRS; i++) {
		d->addrs[i] = ss[i];
		d->lens[i] = lens[i];
	}
	d->naddrs = i;
	d->next = 0;
	dial_try_next(d);
}

/* Connect to the next address; when none is left, back off. */
static void
dial_try_next(struct dial *d)
{
	struct timeval	 tv;
	int		 fd, on = 1;
	size_t		 i;

	if (d->next >= d->naddrs) {
		dial_later(d, d->last_error[0] ? d->last_error :
		    "no address to connect to");
		return;
	}
	i = d->next++;
	addr_fmt((struct sockaddr *)&d->addrs[i], d->addr_text,
	    sizeof(d->addr_text));
	fd = socket(d->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(d->last_error, sizeof(d->last_error), "socket: %s",
		    strerror(errno));
		dial_try_next(d);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (struct sockaddr *)&d->addrs[i], d->lens[i]) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect %s: %s", d->addr_text, strerror(errno));
		close(fd);
		dial_try_next(d);
		return;
	}
	d->fd = fd;
	d->state = DIAL_CONNECTING;
	if ((d->conn_ev = event_new(d->base, fd, EV_WRITE, dial_conn_cb,
	    d)) == NULL) {
		dial_later(d, "out of memory");
		return;
	}
	tv.tv_sec = d->p.connect_ms / 1000;
	tv.tv_usec = (d->p.connect_ms % 1000) * 1000;
	event_add(d->conn_ev, &tv);
}

static void
dial_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dial	*d = arg;
	socklen_t	 len = sizeof(int);
	int		 soerr = 0;

	event_free(d->conn_ev);
	d->conn_ev = NULL;
	if (what & EV_TIMEOUT)
		soerr = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		snprintf(d->last_error, sizeof(d->last_error),
		    "connect %s: %s", d->addr_text, strerror(soerr));
		close(d->fd);
		d->fd = -1;
		dial_try_next(d);
		return;
	}
	d->fd = -1;
	d->state = DIAL_IDLE;
	d->cb(fd, d->addr_text, d->arg);
}

static void
dial_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dial_start(arg);
}
