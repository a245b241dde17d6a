/* SPDX-License-Identifier: ISC */
/*
 * Asynchronous name lookups (gateway and peer addresses), through c-ares
 * on the daemon's event loop: c-ares tells us which sockets to watch,
 * libevent watches them, and one timer drives c-ares's retransmissions.
 */

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "dns.h"
#include "log.h"

#define DNS_MAX_FDS	16
#define DNS_MAX_ADDRS	8

struct dns_fd {
	ares_socket_t	 fd;
	struct event	*ev;
	short		 what;
};

struct dns {
	struct event_base	*base;
	ares_channel		 channel;
	struct event		*timer;
	struct dns_fd	 fds[DNS_MAX_FDS];
	int			 library;	/* ares_library_init done */
};

struct dns_query {
	struct dns	*dns;
	dns_cb		 cb;		/* NULL once cancelled */
	dns_raw_cb	 raw;		/* dns_query: instead of cb */
	void		*arg;
	int		 starting;	/* inside the c-ares call that starts it */
	int		 done;
};

static void	dns_sock_state_cb(void *, ares_socket_t, int, int);
static void	dns_event_cb(evutil_socket_t, short, void *);
static void	dns_timer_cb(evutil_socket_t, short, void *);
static void	dns_reschedule(struct dns *);
static void	dns_result_cb(void *, int, int, struct ares_addrinfo *);

static struct dns *dns_new_channel(struct event_base *,
		    const struct sockaddr *, char *, size_t);
static void	dns_raw_result_cb(void *, int, int, unsigned char *, int);
static struct dns_query *dns_query_started(struct dns *, struct dns_query *);
static void	dns_query_finish(struct dns_query *);

struct dns *
dns_new(struct event_base *base, char *err, size_t errlen)
{
	return dns_new_channel(base, NULL, err, errlen);
}

struct dns *
dns_new_direct(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, char *err, size_t errlen)
{
	if ((sa->sa_family != AF_INET || salen < sizeof(struct sockaddr_in)) &&
	    (sa->sa_family != AF_INET6 ||
	    salen < sizeof(struct sockaddr_in6))) {
		snprintf(err, errlen, "not an IPv4 or IPv6 address");
		return NULL;
	}
	return dns_new_channel(base, sa, err, errlen);
}

static struct dns *
dns_new_channel(struct event_base *base, const struct sockaddr *server,
    char *err, size_t errlen)
{
	struct dns		*d;
	struct ares_options	 opts;
	struct ares_addr_port_node srv;
	char			 lookups[] = "b";
	int			 rc, i, mask;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	for (i = 0; i < DNS_MAX_FDS; i++)
		d->fds[i].fd = ARES_SOCKET_BAD;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		goto fail;
	d->library = 1;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = d;
	opts.timeout = 2000;
	opts.tries = 3;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	if (server != NULL) {
		/* The server's own data: no recursion, no hosts file. */
		opts.flags = ARES_FLAG_NORECURSE | ARES_FLAG_NOSEARCH |
		    ARES_FLAG_EDNS;
		opts.ednspsz = 1232;
		opts.lookups = lookups;
		mask |= ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_LOOKUPS;
	}
	rc = ares_init_options(&d->channel, &opts, mask);
	if (rc != ARES_SUCCESS)
		goto fail;
	if (server != NULL) {
		memset(&srv, 0, sizeof(srv));
		srv.family = server->sa_family;
		if (server->sa_family == AF_INET) {
			const struct sockaddr_in *in = (const void *)server;

			srv.addr.addr4 = in->sin_addr;
			srv.udp_port = srv.tcp_port = ntohs(in->sin_port);
		} else {
			const struct sockaddr_in6 *in6 = (const void *)server;

			memcpy(&srv.addr.addr6, &in6->sin6_addr,
			    sizeof(in6->sin6_addr));
			srv.udp_port = srv.tcp_port = ntohs(in6->sin6_port);
		}
		if ((rc = ares_set_servers_ports(d->channel, &srv)) !=
		    ARES_SUCCESS) {
			ares_destroy(d->channel);
			goto fail;
		}
	}
	if ((d->timer = event_new(base, -1, 0, dns_timer_cb, d)) == NULL) {
		ares_destroy(d->channel);
		rc = ARES_ENOMEM;
		goto fail;
	}
	return d;
fail:
	snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
	if (d->library)
		ares_library_cleanup();
	free(d);
	return NULL;
}

void
dns_free(struct dns *d)
{
	int	i;

	if (d == NULL)
		return;
	/* Pending callbacks run now with ARES_EDESTRUCTION. */
	ares_destroy(d->channel);
	for (i = 0; i < DNS_MAX_FDS; i++)
		if (d->fds[i].ev != NULL)
			event_free(d->fds[i].ev);
	event_free(d->timer);
	ares_library_cleanup();
	free(d);
}

struct dns_query *
dns_lookup(struct dns *d, const char *host, unsigned port,
    dns_cb cb, void *arg)
{
	struct dns_query		*q;
	struct ares_addrinfo_hints	 hints;
	char				 service[8];

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		cb(ARES_ENOMEM, NULL, NULL, 0, arg);
		return NULL;
	}
	q->dns = d;
	q->cb = cb;
	q->arg = arg;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%u", port);
	q->starting = 1;
	ares_getaddrinfo(d->channel, host, service, &hints,
	    dns_result_cb, q);
	return dns_query_started(d, q);
}

struct dns_query *
dns_query(struct dns *d, const char *name, int type, dns_raw_cb cb,
    void *arg)
{
	struct dns_query	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		cb(ARES_ENOMEM, NULL, 0, arg);
		return NULL;
	}
	q->dns = d;
	q->raw = cb;
	q->arg = arg;
	q->starting = 1;
	ares_query(d->channel, name, 1 /* C_IN */, type, dns_raw_result_cb,
	    q);
	return dns_query_started(d, q);
}

static void
dns_raw_result_cb(void *arg, int status, int timeouts, unsigned char *msg,
    int len)
{
	struct dns_query	*q = arg;

	(void)timeouts;
	if (q->raw != NULL && status != ARES_EDESTRUCTION) {
		if (msg == NULL || len <= 0)
			q->raw(status == ARES_SUCCESS ? ARES_EBADRESP : status,
			    NULL, 0, q->arg);
		else
			q->raw(status, msg, (size_t)len, q->arg);
	}
	dns_query_finish(q);
}

void
dns_cancel(struct dns_query *q)
{
	if (q != NULL) {
		q->cb = NULL;	/* freed when c-ares reports it */
		q->raw = NULL;
	}
}

const char *
dns_strerror(int err)
{
	return ares_strerror(err);
}

static void
dns_result_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *ai)
{
	struct dns_query		*q = arg;
	struct ares_addrinfo_node	*n;
	struct sockaddr_storage		 ss[DNS_MAX_ADDRS];
	socklen_t			 lens[DNS_MAX_ADDRS];
	size_t				 cnt = 0;

	(void)timeouts;
	if (status == ARES_SUCCESS && ai != NULL) {
		for (n = ai->nodes; n != NULL && cnt < DNS_MAX_ADDRS;
		    n = n->ai_next) {
			if ((size_t)n->ai_addrlen > sizeof(ss[0]))
				continue;
			memset(&ss[cnt], 0, sizeof(ss[cnt]));
			memcpy(&ss[cnt], n->ai_addr, n->ai_addrlen);
			lens[cnt++] = n->ai_addrlen;
		}
		if (cnt == 0)
			status = ARES_ENODATA;
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	/* At teardown (ARES_EDESTRUCTION) the owners may be gone already. */
	if (q->cb != NULL && status != ARES_EDESTRUCTION)
		q->cb(status, ss, lens, status == ARES_SUCCESS ? cnt : 0,
		    q->arg);
	dns_query_finish(q);
}

/*
 * After the c-ares call that started q.  c-ares may answer inside it
 * (/etc/hosts, say): then the callback has run, q is freed
 * here and the caller gets NULL, there being nothing left to cancel.
 */
static struct dns_query *
dns_query_started(struct dns *d, struct dns_query *q)
{
	q->starting = 0;
	dns_reschedule(d);
	if (q->done) {
		free(q);
		return NULL;
	}
	return q;
}

/* c-ares is done with q: free it, or let dns_query_started do so. */
static void
dns_query_finish(struct dns_query *q)
{
	if (q->starting)
		q->done = 1;
	else
		free(q);
}

static void
dns_sock_state_cb(void *arg, ares_socket_t fd, int readable,
    int writable)
{
	struct dns	*d = arg;
	struct dns_fd	*slot = NULL, *free_slot = NULL;
	short			 what;
	int			 i;

	for (i = 0; i < DNS_MAX_FDS; i++) {
		if (d->fds[i].fd == fd)
			slot = &d->fds[i];
		else if (d->fds[i].fd == ARES_SOCKET_BAD && free_slot == NULL)
			free_slot = &d->fds[i];
	}
	what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (slot != NULL) {
		event_free(slot->ev);
		slot->ev = NULL;
		slot->fd = ARES_SOCKET_BAD;
		if (what == 0)
			return;
	} else if (what == 0)
		return;
	else
		slot = free_slot;
	if (slot == NULL) {
		log_warnx("dns: too many resolver sockets");
		return;
	}
	slot->fd = fd;
	slot->what = what;
	slot->ev = event_new(d->base, fd, what | EV_PERSIST,
	    dns_event_cb, d);
	if (slot->ev == NULL || event_add(slot->ev, NULL) == -1) {
		log_warnx("dns: cannot watch resolver socket");
		if (slot->ev != NULL)
			event_free(slot->ev);
		slot->ev = NULL;
		slot->fd = ARES_SOCKET_BAD;
	}
}

static void
dns_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns	*d = arg;

	ares_process_fd(d->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_reschedule(d);
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns	*d = arg;

	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_reschedule(d);
}

/* Wake up when c-ares next wants to retransmit or give up. */
static void
dns_reschedule(struct dns *d)
{
	struct timeval	 tv, *tvp;

	event_del(d->timer);
	if ((tvp = ares_timeout(d->channel, NULL, &tv)) != NULL)
		event_add(d->timer, tvp);
}
