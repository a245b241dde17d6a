/* SPDX-License-Identifier: ISC */
/*
 * Backend names of a config being reloaded, resolved off the event loop
 * (c-ares) under one deadline.  A blocking getaddrinfo() here once froze
 * the agent for 5 s on a resolver that did not answer, long enough for
 * every gateway to declare it dead.  Numeric addresses need no lookup;
 * names go to c-ares together, and the caller hears once, when all are
 * answered or the deadline passed.  What failed keeps its reason, so a
 * reload that cannot use a backend says which and why, and changes
 * nothing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "agent.h"
#include "dns.h"
#include "log.h"

struct agent_resolve_entry {
	struct agent_resolve	*r;
	char			*text;		/* "host:port" as configured */
	char			 host[256];
	unsigned		 port;
	struct dns_query	*q;		/* lookup in flight, or NULL */
	int			 done;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;		/* 0: failed (err says why) */
	char			 err[256];
};

struct agent_resolve {
	struct agent			 *a;
	struct agent_resolve_entry	**e;
	size_t				  n;
	size_t				  pending;
	unsigned			  timeout_ms;
	struct event			 *timer;	/* deadline, or done */
	agent_resolve_cb		  cb;
	void				 *arg;
	int				  started;
};

static void	agent_resolve_cb_dns(int, const struct sockaddr_storage *,
		    const socklen_t *, size_t, void *);
static void	agent_resolve_timer_cb(evutil_socket_t, short, void *);
static struct agent_resolve_entry *agent_resolve_find(
		    const struct agent_resolve *, const char *);

struct agent_resolve *
agent_resolve_new(struct agent *a)
{
	struct agent_resolve	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->a = a;
	if ((r->timer = evtimer_new(a->base, agent_resolve_timer_cb,
	    r)) == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void
agent_resolve_free(struct agent_resolve *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		dns_cancel(r->e[i]->q);
		free(r->e[i]->text);
		free(r->e[i]);
	}
	free(r->e);
	event_free(r->timer);
	free(r);
}

int
agent_resolve_add(struct agent_resolve *r, const char *text)
{
	struct agent_resolve_entry	*e, **ne;
	char				 why[128];

	if (agent_resolve_find(r, text) != NULL)
		return 0;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	if ((e->text = strdup(text)) == NULL ||
	    (ne = reallocarray(r->e, r->n + 1, sizeof(*ne))) == NULL) {
		free(e->text);
		free(e);
		return -1;
	}
	r->e = ne;
	r->e[r->n++] = e;
	e->r = r;
	if (addr_split(text, e->host, sizeof(e->host), &e->port, why,
	    sizeof(why)) == -1) {
		snprintf(e->err, sizeof(e->err), "%s", why);
		e->done = 1;
	} else if (addr_parse_numeric(text, &e->ss, &e->sslen, why,
	    sizeof(why)) == 0)
		e->done = 1;		/* an address: nothing to look up */
	else {
		e->sslen = 0;
		r->pending++;
	}
	return 0;
}

size_t
agent_resolve_pending(const struct agent_resolve *r)
{
	return r->pending;
}

/*
 * Look up every name; cb runs once from the loop (never from here) when
 * all are answered or timeout_ms passed.
 */
void
agent_resolve_start(struct agent_resolve *r, unsigned timeout_ms,
    agent_resolve_cb cb, void *arg)
{
	struct agent_resolve_entry	*e;
	struct timeval			 tv = { 0, 0 };
	size_t				 i;

	r->cb = cb;
	r->arg = arg;
	r->started = 1;
	r->timeout_ms = timeout_ms;
	for (i = 0; i < r->n; i++) {
		e = r->e[i];
		if (e->done)
			continue;
		/* May answer at once (/etc/hosts): then q is NULL. */
		e->q = dns_lookup(r->a->dns, e->host, e->port,
		    agent_resolve_cb_dns, e);
	}
	if (r->pending > 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
	}
	evtimer_add(r->timer, &tv);
}

int
agent_resolve_get(const struct agent_resolve *r, const char *text,
    const char *what, struct sockaddr_storage *ss, socklen_t *sslen,
    char *err, size_t errlen)
{
	const struct agent_resolve_entry	*e;

	if ((e = agent_resolve_find(r, text)) == NULL) {
		snprintf(err, errlen, "%s '%s': not looked up", what, text);
		return -1;
	}
	if (e->sslen == 0) {
		snprintf(err, errlen, "%s '%s': cannot resolve %s: %s", what,
		    text, e->host, e->err[0] != '\0' ? e->err :
		    "no answer from the resolver");
		return -1;
	}
	memcpy(ss, &e->ss, sizeof(*ss));
	*sslen = e->sslen;
	return 0;
}

static void
agent_resolve_cb_dns(int err, const struct sockaddr_storage *ss,
    const socklen_t *lens, size_t n, void *arg)
{
	struct agent_resolve_entry	*e = arg;
	struct agent_resolve		*r = e->r;
	struct timeval			 now = { 0, 0 };

	e->q = NULL;
	if (e->done)
		return;
	e->done = 1;
	r->pending--;
	if (err != 0 || n == 0)
		snprintf(e->err, sizeof(e->err), "%s", err != 0 ?
		    dns_strerror(err) : "no address");
	else {
		memcpy(&e->ss, &ss[0], sizeof(e->ss));
		e->sslen = lens[0];
	}
	/* The last answer: report from the loop, not from inside c-ares. */
	if (r->pending == 0 && r->started)
		evtimer_add(r->timer, &now);
}

static void
agent_resolve_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_resolve	*r = arg;
	size_t			 i;

	(void)fd;
	(void)what;
	for (i = 0; i < r->n; i++) {
		if (r->e[i]->done)
			continue;
		dns_cancel(r->e[i]->q);
		r->e[i]->q = NULL;
		r->e[i]->done = 1;
		snprintf(r->e[i]->err, sizeof(r->e[i]->err), "no answer "
		    "from the resolver within %u ms", r->timeout_ms);
	}
	r->pending = 0;
	r->cb(r, r->arg);	/* may free r */
}

static struct agent_resolve_entry *
agent_resolve_find(const struct agent_resolve *r, const char *text)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->e[i]->text, text) == 0)
			return r->e[i];
	return NULL;
}
