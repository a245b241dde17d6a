/* SPDX-License-Identifier: ISC */
/*
 * Asynchronous name lookups for gateway addresses, through c-ares on the
 * agent's event loop: c-ares tells us which sockets to watch, libevent
 * watches them, and one timer drives c-ares's retransmissions.
 */

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "agent.h"
#include "log.h"

#define AGENT_DNS_MAX_FDS	16
#define AGENT_DNS_MAX_ADDRS	8

struct agent_dns_fd {
	ares_socket_t	 fd;
	struct event	*ev;
	short		 what;
};

struct agent_dns {
	struct event_base	*base;
	ares_channel		 channel;
	struct event		*timer;
	struct agent_dns_fd	 fds[AGENT_DNS_MAX_FDS];
	int			 library;	/* ares_library_init done */
};

struct agent_dns_query {
	struct agent_dns	*dns;
	agent_dns_cb		 cb;
	void			*arg;
};

static void	agent_dns_sock_state_cb(void *, ares_socket_t, int, int);
static void	agent_dns_event_cb(evutil_socket_t, short, void *);
static void	agent_dns_timer_cb(evutil_socket_t, short, void *);
static void	agent_dns_reschedule(struct agent_dns *);
static void	agent_dns_result_cb(void *, int, int, struct ares_addrinfo *);

struct agent_dns *
agent_dns_new(struct event_base *base, char *err, size_t errlen)
{
	struct agent_dns	*d;
	struct ares_options	 opts;
	int			 rc, i;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	for (i = 0; i < AGENT_DNS_MAX_FDS; i++)
		d->fds[i].fd = ARES_SOCKET_BAD;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		goto fail;
	d->library = 1;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = agent_dns_sock_state_cb;
	opts.sock_state_cb_data = d;
	opts.timeout = 2000;
	opts.tries = 3;
	rc = ares_init_options(&d->channel, &opts, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS)
		goto fail;
	if ((d->timer = event_new(base, -1, 0, agent_dns_timer_cb, d)) == NULL) {
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
agent_dns_free(struct agent_dns *d)
{
	int	i;

	if (d == NULL)
		return;
	/* Pending callbacks run now with ARES_EDESTRUCTION. */
	ares_destroy(d->channel);
	for (i = 0; i < AGENT_DNS_MAX_FDS; i++)
		if (d->fds[i].ev != NULL)
			event_free(d->fds[i].ev);
	event_free(d->timer);
	ares_library_cleanup();
	free(d);
}

void
agent_dns_lookup(struct agent_dns *d, const char *host, unsigned port,
    agent_dns_cb cb, void *arg)
{
	struct agent_dns_query		*q;
	struct ares_addrinfo_hints	 hints;
	char				 service[8];

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		cb(ARES_ENOMEM, NULL, NULL, 0, arg);
		return;
	}
	q->dns = d;
	q->cb = cb;
	q->arg = arg;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%u", port);
	ares_getaddrinfo(d->channel, host, service, &hints,
	    agent_dns_result_cb, q);
	agent_dns_reschedule(d);
}

const char *
agent_dns_strerror(int err)
{
	return ares_strerror(err);
}

static void
agent_dns_result_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *ai)
{
	struct agent_dns_query		*q = arg;
	struct ares_addrinfo_node	*n;
	struct sockaddr_storage		 ss[AGENT_DNS_MAX_ADDRS];
	socklen_t			 lens[AGENT_DNS_MAX_ADDRS];
	size_t				 cnt = 0;

	(void)timeouts;
	if (status == ARES_SUCCESS && ai != NULL) {
		for (n = ai->nodes; n != NULL && cnt < AGENT_DNS_MAX_ADDRS;
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
	q->cb(status, ss, lens, status == ARES_SUCCESS ? cnt : 0, q->arg);
	free(q);
}

static void
agent_dns_sock_state_cb(void *arg, ares_socket_t fd, int readable,
    int writable)
{
	struct agent_dns	*d = arg;
	struct agent_dns_fd	*slot = NULL, *free_slot = NULL;
	short			 what;
	int			 i;

	for (i = 0; i < AGENT_DNS_MAX_FDS; i++) {
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
	    agent_dns_event_cb, d);
	if (slot->ev == NULL || event_add(slot->ev, NULL) == -1) {
		log_warnx("dns: cannot watch resolver socket");
		if (slot->ev != NULL)
			event_free(slot->ev);
		slot->ev = NULL;
		slot->fd = ARES_SOCKET_BAD;
	}
}

static void
agent_dns_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns	*d = arg;

	ares_process_fd(d->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	agent_dns_reschedule(d);
}

static void
agent_dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns	*d = arg;

	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	agent_dns_reschedule(d);
}

/* Wake up when c-ares next wants to retransmit or give up. */
static void
agent_dns_reschedule(struct agent_dns *d)
{
	struct timeval	 tv, *tvp;

	event_del(d->timer);
	if ((tvp = ares_timeout(d->channel, NULL, &tv)) != NULL)
		event_add(d->timer, tvp);
}
