/* SPDX-License-Identifier: ISC */
/*
 * ddns_sync.c: one RRset brought to what this writer wants, as a
 * compare-and-swap: read it at the server, plan the changes, send them
 * with the prerequisite that the set is still what was read.  When a
 * replica wrote in between, the server answers NXRRSET/YXRRSET and
 * nothing was changed: read again and plan again.  Both replicas end
 * with the same set, whichever writes last.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "ddns.h"
#include "dns.h"

#define DDNS_SYNC_ROUNDS	5
#define DDNS_SYNC_WANT_MAX	DDNS_RRSET_MAX
#define DDNS_SYNC_DEAD_MAX	64

struct ddns_sync {
	struct event_base	*base;
	struct dns		*dns;
	struct sockaddr_storage	 server;
	socklen_t		 serverlen;
	char			 zone[DDNS_NAME_MAX];
	const struct ddns_key	*key;
	char			 name[DDNS_NAME_MAX];
	uint16_t		 type;
	uint32_t		 ttl;
	char			 want[DDNS_SYNC_WANT_MAX][DDNS_RDATA_MAX];
	size_t			 nwant;
	char			 dead[DDNS_SYNC_DEAD_MAX][DDNS_RDATA_MAX];
	size_t			 ndead;
	ddns_sync_cb		 cb;
	void			*arg;

	int			 round;
	size_t			 changes;	/* made by the last update */
	struct ddns_rrset	 have;
	struct dns_query	*query;
	struct ddns_send	*send;
	struct event		*timer;		/* start, and between rounds */
	struct ddns_result	 res;		/* of the update sent */
};

static void	ddns_sync_read(struct ddns_sync *);

static void
ddns_sync_end(struct ddns_sync *s, const struct ddns_result *res)
{
	ddns_sync_cb	 cb = s->cb;
	void		*arg = s->arg;
	size_t		 changes = s->changes;
	struct ddns_result r = *res;
	struct ddns_rrset *have;

	/* have is 16 KiB: hand it over from the heap, then free both. */
	if ((have = malloc(sizeof(*have))) != NULL)
		*have = s->have;
	s->query = NULL;
	ddns_sync_cancel(s);
	cb(&r, have != NULL ? changes : 0, have, arg);
	free(have);
}

static void
ddns_sync_fail(struct ddns_sync *s, enum ddns_status st, const char *fmt,
    const char *what)
{
	struct ddns_result	r;

	memset(&r, 0, sizeof(r));
	r.status = st;
	r.rcode = -1;
	snprintf(r.text, sizeof(r.text), fmt, what);
	ddns_sync_end(s, &r);
}

static void
ddns_sync_sent(const struct ddns_result *res, void *arg)
{
	struct ddns_sync	*s = arg;
	struct timeval		 tv;

	s->send = NULL;
	s->res = *res;
	if (res->status == DDNS_PREREQ && s->round < DDNS_SYNC_ROUNDS) {
		/* Another writer was first: read its result, after a
		 * short random wait so two replicas do not keep meeting. */
		tv.tv_sec = 0;
		tv.tv_usec = 50000 + randombytes_uniform(200000);
		evtimer_add(s->timer, &tv);
		return;
	}
	if (res->status != DDNS_OK) {
		s->changes = 0;
		ddns_sync_end(s, res);
		return;
	}
	/* Applied: read once more so the caller sees the set as is. */
	s->round = DDNS_SYNC_ROUNDS + 1;
	ddns_sync_read(s);
}

static void
ddns_sync_answer(int err, const unsigned char *msg, size_t len, void *arg)
{
	struct ddns_sync	*s = arg;
	struct ddns_change	 ch[DDNS_SYNC_WANT_MAX + DDNS_RRSET_MAX];
	const char		*want[DDNS_SYNC_WANT_MAX];
	const char		*dead[DDNS_SYNC_DEAD_MAX];
	const char		*rd[DDNS_RRSET_MAX];
	struct ddns_prereq	 pre;
	struct ddns_msg		*m;
	char			 why[400];
	size_t			 i, n;

	s->query = NULL;
	if (msg == NULL) {
		/* c-ares reports a REFUSED or SERVFAIL answer as a server
		 * it could not use. */
		ddns_sync_fail(s, DDNS_TIMEOUT, "cannot read the records: %s "
		    "(no answer, or the server refused: is it authoritative "
		    "for the zone?)", dns_strerror(err));
		return;
	}
	if (ddns_rrset_parse(msg, len, s->name, s->type, &s->have, why,
	    sizeof(why)) == -1) {
		ddns_sync_fail(s, DDNS_REFUSED, "cannot read the records: %s",
		    why);
		return;
	}
	if (s->round > DDNS_SYNC_ROUNDS) {
		ddns_sync_end(s, &s->res);	/* the read after an update */
		return;
	}
	for (i = 0; i < s->nwant; i++)
		want[i] = s->want[i];
	for (i = 0; i < s->ndead; i++)
		dead[i] = s->dead[i];
	n = ddns_plan(s->name, s->type, s->ttl, &s->have, want, s->nwant,
	    dead, s->ndead, ch, sizeof(ch) / sizeof(ch[0]));
	s->changes = n;
	if (n == 0) {
		memset(&s->res, 0, sizeof(s->res));
		s->res.status = DDNS_OK;
		snprintf(s->res.text, sizeof(s->res.text), "up to date");
		ddns_sync_end(s, &s->res);
		return;
	}
	for (i = 0; i < s->have.n; i++)
		rd[i] = s->have.rdata[i];
	pre = (struct ddns_prereq){ s->name, s->type, rd, s->have.n };
	if ((m = ddns_msg_new(s->zone, &pre, ch, n, s->key, why,
	    sizeof(why))) == NULL) {
		ddns_sync_fail(s, DDNS_REFUSED, "%s", why);
		return;
	}
	s->round++;
	if ((s->send = ddns_send(s->base, (struct sockaddr *)&s->server,
	    s->serverlen, m, s->key, ddns_sync_sent, s)) == NULL)
		ddns_sync_fail(s, DDNS_NETWORK, "%s", "out of memory or "
		    "sockets");
}

static void
ddns_sync_read(struct ddns_sync *s)
{
	s->query = dns_query(s->dns, s->name, s->type, ddns_sync_answer, s);
}

static void
ddns_sync_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ddns_sync_read(arg);
}

struct ddns_sync *
ddns_sync(struct event_base *base, struct dns *dns,
    const struct sockaddr *server, socklen_t serverlen, const char *zone,
    const struct ddns_key *key, const char *name, uint16_t type,
    uint32_t ttl, const char *const *want, size_t nwant,
    const char *const *dead, size_t ndead, ddns_sync_cb cb, void *arg)
{
	struct ddns_sync	*s;
	struct timeval		 now = { 0, 0 };
	size_t			 i;

	if (serverlen > sizeof(s->server) || nwant > DDNS_SYNC_WANT_MAX ||
	    ndead > DDNS_SYNC_DEAD_MAX || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->dns = dns;
	memcpy(&s->server, server, serverlen);
	s->serverlen = serverlen;
	snprintf(s->zone, sizeof(s->zone), "%s", zone);
	s->key = key;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->type = type;
	s->ttl = ttl;
	for (i = 0; i < nwant; i++)
		if (ddns_rdata_norm(type, want[i], s->want[s->nwant],
		    DDNS_RDATA_MAX) == 0)
			s->nwant++;
	for (i = 0; i < ndead; i++)
		if (ddns_rdata_norm(type, dead[i], s->dead[s->ndead],
		    DDNS_RDATA_MAX) == 0)
			s->ndead++;
	s->cb = cb;
	s->arg = arg;
	if ((s->timer = evtimer_new(base, ddns_sync_timer, s)) == NULL) {
		free(s);
		return NULL;
	}
	evtimer_add(s->timer, &now);
	return s;
}

void
ddns_sync_cancel(struct ddns_sync *s)
{
	if (s == NULL)
		return;
	dns_cancel(s->query);
	ddns_send_cancel(s->send);
	if (s->timer != NULL)
		event_free(s->timer);
	free(s);
}
