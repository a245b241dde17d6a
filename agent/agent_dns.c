/* SPDX-License-Identifier: ISC */
/*
 * DNS records that follow the cluster (dns:).
 *
 * Each gateway tells the agent where it is and which peers it has live
 * links to (CLUSTER, PROTOCOL §4.9).  From that the agent keeps, for
 * every published hostname, the A and AAAA records at the public
 * addresses of the gateways that can serve the name now: those where
 * its claim is accepted, and their live peers, which forward.  A
 * gateway is dead for DNS only when the cluster has lost it for
 * dns.grace (no tunnel of ours and no live peer link to it), not when
 * only our own tunnel to it broke, and only a dead gateway's addresses
 * are ever deleted.  Records of gateways we never heard of, another
 * replica's or an admin's, are left alone (ddns_plan).
 *
 * Updates go to the zone's primary by RFC 2136 (ddns/), one RRset at a
 * time as a compare-and-swap, and are made again after a failure with
 * a backoff, and every 10 minutes to repair what someone else changed.
 * The other files of the module are listed in agent_dns_priv.h.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "addr.h"
#include "agent.h"
#include "agent_dns_priv.h"
#include "backoff.h"
#include "ddns.h"
#include "dns.h"
#include "log.h"
#include "mono.h"

static void	agent_dns_look(evutil_socket_t, short, void *);
static void	agent_dns_resolve(struct agent_dns *);

/* The hostnames to keep, two sets each, from a->cfg. */
static int
agent_dns_sets(struct agent_dns *d, char *err, size_t errlen)
{
	const struct cfg_agent	*cfg = d->a->cfg;
	struct agent_dns_set	*sets;
	size_t			 i, n = 0;

	for (i = 0; i < cfg->nservices; i++)
		if (cfg->services[i].dns)
			n += 2;
	if (n > 0 && (sets = calloc(n, sizeof(*sets))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (n == 0)
		sets = NULL;
	for (i = 0; i < n; i++)
		sets[i].d = d;
	for (i = 0, n = 0; i < cfg->nservices; i++) {
		if (!cfg->services[i].dns)
			continue;
		snprintf(sets[n].name, sizeof(sets[n].name), "%s",
		    cfg->services[i].hostname);
		sets[n++].type = DDNS_A;
		snprintf(sets[n].name, sizeof(sets[n].name), "%s",
		    cfg->services[i].hostname);
		sets[n++].type = DDNS_AAAA;
	}
	d->sets = sets;
	d->nsets = n;
	return 0;
}

int
agent_dns_init(struct agent *a, char *err, size_t errlen)
{
	const struct cfg_dns	*c = a->cfg->dns;
	struct agent_dns	*d;

	if (c == NULL)
		return 0;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->a = a;
	if (c->provider == CFG_DNS_RFC2136 &&
	    ddns_key_load(c->tsig_key, &d->key, err, errlen) == -1) {
		free(d);
		return -1;
	}
	if (agent_dns_sets(d, err, errlen) == -1) {
		ddns_key_clear(&d->key);
		free(d);
		return -1;
	}
	TAILQ_INIT(&d->dns01);
	a->dnsu = d;
	return 0;
}

int
agent_dns_start(struct agent *a)
{
	struct agent_dns	*d = a->dnsu;

	if (d == NULL)
		return 0;
	if ((d->timer = evtimer_new(a->base, agent_dns_look, d)) == NULL) {
		agent_dns_free(a);
		return -1;
	}
	agent_dns_resolve(d);
	return 0;
}

void
agent_dns_free(struct agent *a)
{
	struct agent_dns	*d = a->dnsu;
	size_t			 i;

	if (d == NULL)
		return;
	a->dnsu = NULL;
	for (i = 0; i < d->nsets; i++) {
		ddns_sync_cancel(d->sets[i].sync);
		agent_dns_exec_free(d->sets[i].exec);
	}
	while (!TAILQ_EMPTY(&d->dns01))
		agent_dns_rec_end(TAILQ_FIRST(&d->dns01), 0, "the agent stopped "
		    "or reloaded");
	dns_cancel(d->lookup);
	dns_free(d->direct);
	if (d->timer != NULL)
		event_free(d->timer);
	ddns_key_clear(&d->key);
	free(d->sets);
	free(d);
}

void
agent_dns_reload(struct agent *a)
{
	struct agent_dns_gw	*known = NULL;
	size_t			 nknown = 0;
	char			 err[512] = "";

	/*
	 * Start over from the new config (the records at the server stay,
	 * and the first look finds them in place), but keep the gateways
	 * heard of: one that died before the reload is still deleted.
	 */
	if (a->dnsu != NULL && a->dnsu->ngws > 0 &&
	    (known = calloc(a->dnsu->ngws, sizeof(*known))) != NULL) {
		nknown = a->dnsu->ngws;
		memcpy(known, a->dnsu->gws, nknown * sizeof(*known));
	}
	agent_dns_free(a);
	if (agent_dns_init(a, err, sizeof(err)) == -1 ||
	    agent_dns_start(a) == -1) {
		log_warnx("dns: %s; DNS records are not kept until the next "
		    "reload", a->dnsu == NULL && err[0] ? err : "out of memory");
		free(known);
		return;
	}
	if (a->dnsu != NULL && nknown > 0) {
		memcpy(a->dnsu->gws, known, nknown * sizeof(*known));
		a->dnsu->ngws = nknown;
	}
	free(known);
}

void
agent_dns_changed(struct agent *a)
{
	struct agent_dns	*d = a->dnsu;
	struct timeval		 tv = { 0, AGENT_DNS_COALESCE_MS * 1000 };

	if (d == NULL || d->timer == NULL || a->exiting)
		return;
	if (d->timer_at_once && evtimer_pending(d->timer, NULL))
		return;
	d->timer_at_once = 1;
	evtimer_add(d->timer, &tv);
}

/* ------------------------------------------------------ the server */

static void
agent_dns_resolved(int err, const struct sockaddr_storage *ss,
    const socklen_t *lens, size_t n, void *arg)
{
	struct agent_dns	*d = arg;
	const struct cfg_dns	*c = d->a->cfg->dns;
	char			 why[256], text[64];
	struct timeval		 tv;
	uint64_t		 ms;

	d->lookup = NULL;
	if (err == 0 && n > 0) {
		memcpy(&d->server, &ss[0], lens[0]);
		d->serverlen = lens[0];
		if ((d->direct = dns_new_direct(d->a->base,
		    (struct sockaddr *)&d->server, d->serverlen, why,
		    sizeof(why))) != NULL) {
			log_info("dns: updates for zone %s go to %s", c->zone,
			    addr_fmt((struct sockaddr *)&d->server, text,
			    sizeof(text)));
			d->lookup_failures = 0;
			agent_dns_changed(d->a);
			return;
		}
		d->serverlen = 0;
	} else
		snprintf(why, sizeof(why), "%s", dns_strerror(err));
	ms = backoff_delay(++d->lookup_failures, AGENT_DNS_RETRY_MIN_MS,
	    AGENT_DNS_RETRY_MAX_MS);
	log_warnx("dns: cannot look up the DNS server %s: %s; trying again "
	    "in %llu s", c->server, why, (unsigned long long)(ms + 999) /
	    1000);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	d->timer_at_once = 0;
	evtimer_add(d->timer, &tv);
}

static void
agent_dns_resolve(struct agent_dns *d)
{
	const struct cfg_dns	*c = d->a->cfg->dns;

	if (c->provider != CFG_DNS_RFC2136)
		return;
	d->lookup = dns_lookup(d->a->dns, c->host, c->port,
	    agent_dns_resolved, d);
}

/* ------------------------------------------------------ the view */

static struct agent_dns_gw *
agent_dns_gw(struct agent_dns *d, const uint8_t *pub)
{
	size_t	i;

	for (i = 0; i < d->ngws; i++)
		if (memcmp(d->gws[i].pub, pub, KEY_PUB_LEN) == 0)
			return &d->gws[i];
	if (d->ngws == AGENT_DNS_KNOWN_MAX)
		return NULL;
	memset(&d->gws[d->ngws], 0, sizeof(d->gws[0]));
	memcpy(d->gws[d->ngws].pub, pub, KEY_PUB_LEN);
	return &d->gws[d->ngws++];
}

/* What a gateway said of itself or of a peer: live, and where. */
static void
agent_dns_saw(struct agent_dns *d, const struct tun_gw_info *info,
    uint64_t now)
{
	struct agent_dns_gw	*k;

	if ((k = agent_dns_gw(d, info->pub)) == NULL)
		return;
	k->live = 1;
	k->last_live_ms = now;
	snprintf(k->name, sizeof(k->name), "%s", info->name);
	k->naddr = info->naddr;
	memcpy(k->addr, info->addr, sizeof(k->addr));
}

void
agent_dns_text(const struct tun_addr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, buf,
	    (socklen_t)len) == NULL)
		buf[0] = '\0';
}

static int
agent_dns_has(char list[][AGENT_DNS_ADDR_LEN], size_t n, const char *s)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* Add the addresses of family fam of one gateway to a list. */
static void
agent_dns_add(char list[][AGENT_DNS_ADDR_LEN], size_t *n, size_t max,
    const struct tun_addr *addr, size_t naddr, int fam)
{
	char	text[AGENT_DNS_ADDR_LEN];
	size_t	i;

	for (i = 0; i < naddr && *n < max; i++) {
		if (addr[i].family != fam)
			continue;
		agent_dns_text(&addr[i], text, sizeof(text));
		if (text[0] != '\0' && !agent_dns_has(list, *n, text))
			snprintf(list[(*n)++], AGENT_DNS_ADDR_LEN, "%s", text);
	}
}

/* The want and dead lists of one set now; 1 if they changed. */
static int
agent_dns_inputs(struct agent_dns *d, struct agent_dns_set *s,
    uint64_t now)
{
	struct agent		*a = d->a;
	const struct tun_gw_info *view;
	char			 want[DDNS_RRSET_MAX][AGENT_DNS_ADDR_LEN];
	char			 dead[AGENT_DNS_DEAD_MAX][AGENT_DNS_ADDR_LEN];
	size_t			 nwant = 0, ndead = 0, i, j, nv;
	size_t			 servable = 0;	/* addresses, both families */
	int			 fam = s->type == DDNS_A ? 4 : 6;
	const char		*msg;
	uint64_t		 grace = a->cfg->dns->grace_ms;

	for (i = 0; i < a->ngws; i++) {
		if (!agent_gw_is_up(a->gws[i]) ||
		    strcmp(agent_gw_claim_state(a->gws[i], s->name, &msg),
		    "claimed") != 0)
			continue;
		nv = agent_gw_cluster(a->gws[i], &view);
		for (j = 0; j < nv; j++) {	/* itself and its live peers */
			agent_dns_add(want, &nwant, DDNS_RRSET_MAX,
			    view[j].addr, view[j].naddr, fam);
			servable += view[j].naddr;
		}
	}
	/* No gateway can serve the name at all (our uplink may be down):
	 * stale addresses are better than none. */
	for (i = 0; servable > 0 && i < d->ngws; i++) {
		if (d->gws[i].live || (d->gws[i].last_live_ms != 0 &&
		    now - d->gws[i].last_live_ms < grace))
			continue;
		agent_dns_add(dead, &ndead, AGENT_DNS_DEAD_MAX,
		    d->gws[i].addr, d->gws[i].naddr, fam);
	}
	if (nwant == s->nwant && ndead == s->ndead &&
	    memcmp(want, s->want, nwant * sizeof(want[0])) == 0 &&
	    memcmp(dead, s->dead, ndead * sizeof(dead[0])) == 0)
		return 0;
	memcpy(s->want, want, nwant * sizeof(want[0]));
	memcpy(s->dead, dead, ndead * sizeof(dead[0]));
	s->nwant = nwant;
	s->ndead = ndead;
	return 1;
}

/* ------------------------------------------------------ updates */

static void
agent_dns_list(char *buf, size_t len, char list[][AGENT_DNS_ADDR_LEN],
    size_t n)
{
	size_t	i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i ? " " : "", list[i]);
	if (n == 0)
		snprintf(buf, len, "(none)");
}

void
agent_dns_synced(const struct ddns_result *res, size_t changes,
    const struct ddns_rrset *have, void *arg)
{
	struct agent_dns_set	*s = arg;
	const char		*tname = s->type == DDNS_A ? "A" : "AAAA";
	char			 list[512];
	size_t			 i;
	uint64_t		 now = mono_ms();

	s->sync = NULL;
	s->result_at = time(NULL);
	snprintf(s->result, sizeof(s->result), "%s", res->text);
	if (res->status == DDNS_OK) {
		s->ok = 1;
		s->failures = 0;
		/* Inputs that changed meanwhile need another sync. */
		s->synced = s->sync_gen == s->gen;
		s->updates += changes;
		s->npublished = 0;
		for (i = 0; have != NULL && i < have->n &&
		    i < DDNS_RRSET_MAX; i++)
			snprintf(s->published[s->npublished++],
			    AGENT_DNS_ADDR_LEN, "%s", have->rdata[i]);
		if (have == NULL) {	/* exec: what the command was given */
			memcpy(s->published, s->want, sizeof(s->want));
			s->npublished = s->nwant;
		}
		s->next_ms = now + AGENT_DNS_REFRESH_MS;
		if (changes > 0) {
			agent_dns_list(list, sizeof(list), s->published,
			    s->npublished);
			log_info("dns: %s %s is now %s (%zu change%s)",
			    s->name, tname, list, changes,
			    changes == 1 ? "" : "s");
		}
	} else {
		s->ok = 0;
		s->d->failures_total++;
		s->next_ms = now + backoff_delay(++s->failures,
		    AGENT_DNS_RETRY_MIN_MS, AGENT_DNS_RETRY_MAX_MS);
		log_warnx("dns: %s %s: %s; nothing changed, trying again in "
		    "%llu s", s->name, tname, res->text,
		    (unsigned long long)(s->next_ms - now + 999) / 1000);
	}
	agent_dns_changed(s->d->a);	/* the next look, and its timer */
}

static void
agent_dns_sync(struct agent_dns *d, struct agent_dns_set *s)
{
	const struct cfg_dns	*c = d->a->cfg->dns;
	const char		*want[DDNS_RRSET_MAX];
	const char		*dead[AGENT_DNS_DEAD_MAX];
	size_t			 i;

	s->sync_gen = s->gen;
	if (c->provider == CFG_DNS_EXEC) {
		agent_dns_exec_start(d, s);
		return;
	}
	for (i = 0; i < s->nwant; i++)
		want[i] = s->want[i];
	for (i = 0; i < s->ndead; i++)
		dead[i] = s->dead[i];
	if ((s->sync = ddns_sync(d->a->base, d->direct,
	    (struct sockaddr *)&d->server, d->serverlen, c->zone, &d->key,
	    s->name, s->type, c->ttl_ms / 1000, want, s->nwant, dead, s->ndead,
	    agent_dns_synced, s)) == NULL) {
		log_warnx("dns: %s: out of memory", s->name);
		s->next_ms = mono_ms() + AGENT_DNS_RETRY_MAX_MS;
	}
}

/* Recompute the view and every set; start the syncs that are due. */
static void
agent_dns_look(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns	*d = arg;
	struct agent		*a = d->a;
	const struct tun_gw_info *view;
	struct agent_dns_gw	*k;
	struct agent_dns_set	*s;
	struct timeval		 tv;
	uint64_t		 now = mono_ms(), next = now + AGENT_DNS_REFRESH_MS;
	uint64_t		 grace = a->cfg->dns->grace_ms;
	size_t			 i, j, nv;

	(void)fd;
	(void)what;
	d->timer_at_once = 0;
	if (a->cfg->dns->provider == CFG_DNS_RFC2136 && d->serverlen == 0) {
		if (d->lookup == NULL && d->direct == NULL)
			agent_dns_resolve(d);
		return;
	}
	for (i = 0; i < d->ngws; i++)
		d->gws[i].live = 0;
	for (i = 0; i < a->ngws; i++) {
		if (!agent_gw_is_up(a->gws[i]))
			continue;
		/* Our tunnel is up: live, even if it sends no view. */
		if ((k = agent_dns_gw(d, agent_gw_key(a->gws[i]))) != NULL) {
			k->live = 1;
			k->last_live_ms = now;
		}
		nv = agent_gw_cluster(a->gws[i], &view);
		for (j = 0; j < nv; j++)
			agent_dns_saw(d, &view[j], now);
	}
	for (i = 0; i < d->ngws; i++) {
		k = &d->gws[i];
		/* A gateway inside its grace: look again when it ends. */
		if (!k->live && k->last_live_ms != 0 &&
		    now - k->last_live_ms < grace &&
		    k->last_live_ms + grace < next)
			next = k->last_live_ms + grace;
	}
	for (i = 0; i < d->nsets; i++) {
		s = &d->sets[i];
		if (agent_dns_inputs(d, s, now)) {
			s->synced = 0;
			s->gen++;
		}
		if (s->sync != NULL || s->exec != NULL)
			continue;	/* looked at again when it ends */
		if (!s->synced && (s->failures == 0 || now >= s->next_ms))
			agent_dns_sync(d, s);
		else if (s->synced && now >= s->next_ms)
			agent_dns_sync(d, s);	/* the periodic repair */
		if (s->next_ms > now && s->next_ms < next)
			next = s->next_ms;
	}
	if (next <= now)
		next = now + AGENT_DNS_RETRY_MIN_MS;
	tv.tv_sec = (time_t)((next - now) / 1000);
	tv.tv_usec = (suseconds_t)((next - now) % 1000) * 1000;
	evtimer_add(d->timer, &tv);
}
