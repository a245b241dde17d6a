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
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "agent.h"
#include "addr.h"
#include "backoff.h"
#include "ddns.h"
#include "dns.h"
#include "log.h"
#include "mono.h"

#define AGENT_DNS_KNOWN_MAX	256	/* gateways remembered */
#define AGENT_DNS_DEAD_MAX	64	/* addresses deleted in one sync */
#define AGENT_DNS_ADDR_LEN	64	/* an address as text */
#define AGENT_DNS_COALESCE_MS	200
#define AGENT_DNS_REFRESH_MS	(10 * 60 * 1000)
#define AGENT_DNS_RETRY_MIN_MS	1000
#define AGENT_DNS_RETRY_MAX_MS	60000

/* A gateway this agent has heard of, by its key. */
struct agent_dns_gw {
	uint8_t		 pub[KEY_PUB_LEN];
	char		 name[64];
	struct tun_addr	 addr[TUN_CLUSTER_ADDR_MAX];
	uint8_t		 naddr;
	int		 live;		/* in the view now */
	uint64_t	 last_live_ms;	/* mono; 0: not live in this process */
};

/* One hostname's records of one type, and what became of them. */
struct agent_dns_set {
	struct agent_dns *d;
	char		 name[NAME_MAX_LEN + 1];
	uint16_t	 type;		/* DDNS_A or DDNS_AAAA */
	char		 want[DDNS_RRSET_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 nwant;
	char		 dead[AGENT_DNS_DEAD_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 ndead;
	int		 synced;	/* the last sync was of these inputs */
	unsigned	 gen;		/* of the inputs, +1 on each change */
	unsigned	 sync_gen;	/* of those the sync in flight uses */
	struct ddns_sync *sync;		/* in flight (rfc2136) */
	struct agent_dns_exec *exec;	/* in flight (exec) */
	unsigned	 failures;	/* in a row */
	uint64_t	 next_ms;	/* mono: retry or refresh */
	int		 ok;		/* last result */
	char		 result[sizeof(((struct ddns_result *)0)->text)];
	time_t		 result_at;
	char		 published[DDNS_RRSET_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 npublished;
	unsigned long	 updates;	/* changes made, in all */
};

/*
 * One record for the CA: a dns-01 answer (TXT _acme-challenge.NAME) or
 * a CAA pin, published, then looked for at each name server of the zone
 * until all have it, then reported; or removed.
 */
struct agent_dns01 {
	struct agent_dns	*d;
	char			 owner[NAME_MAX_LEN + 17];
	uint16_t		 type;
	char			 value[DDNS_RDATA_MAX];	/* as written */
	int			 add;
	agent_dns_done_cb	 done;
	void			*arg;
	struct ddns_sync	*sync;
	struct dns		*probe;		/* a name server, directly */
	struct dns_query	*query;
	size_t			 ns;		/* the server being asked */
	int			 seen;		/* it has the record */
	uint64_t		 deadline;	/* mono ms */
	struct event		*timer;		/* next look */
	TAILQ_ENTRY(agent_dns01) entry;
};

struct agent_dns {
	struct agent		*a;
	TAILQ_HEAD(, agent_dns01) dns01;
	struct ddns_key		 key;
	struct dns_query	*lookup;	/* the server's name */
	struct dns		*direct;	/* asks the server itself */
	struct sockaddr_storage	 server;
	socklen_t		 serverlen;	/* 0: not resolved yet */
	unsigned		 lookup_failures;
	struct agent_dns_gw	 gws[AGENT_DNS_KNOWN_MAX];
	size_t			 ngws;
	struct agent_dns_set	*sets;
	size_t			 nsets;
	struct event		*timer;		/* the next look */
	int			 timer_at_once;	/* armed for "changed" */
	unsigned long		 failures_total;
};

static void	agent_dns_look(evutil_socket_t, short, void *);
static void	agent_dns01_end(struct agent_dns01 *, int, const char *);
static void	agent_dns_exec_start(struct agent_dns *, struct agent_dns_set *);
static void	agent_dns_exec_free(struct agent_dns_exec *);
static json_t	*agent_dns_array(char [][AGENT_DNS_ADDR_LEN], size_t);
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
		agent_dns01_end(TAILQ_FIRST(&d->dns01), 0, "the agent stopped "
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

static void
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

static void
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

/* ------------------------------------------------------ exec */

/*
 * provider: exec.  The command (sh -c) gets one record set as JSON on
 * its stdin: {"zone", "name", "type", "ttl", "records": what must be
 * there, "delete": what must not (addresses of gateways the cluster
 * gave up)}; anything else at the name is not ours and must stay.  Exit
 * 0 is success; otherwise the first line it wrote is logged.  It gets
 * AGENT_DNS_EXEC_MAX_S, then SIGKILL.
 */
#define AGENT_DNS_EXEC_MAX_S	30
#define AGENT_DNS_EXEC_SAID	512

struct agent_dns_exec {
	struct agent_dns_set	*s;
	pid_t			 pid;
	int			 out;		/* its stdout and stderr */
	struct event		*read_ev;
	struct event		*timer;
	char			 said[AGENT_DNS_EXEC_SAID];
	size_t			 nsaid;
	int			 killed;
};

static void
agent_dns_exec_free(struct agent_dns_exec *x)
{
	if (x == NULL)
		return;
	if (x->pid > 0) {
		/* The agent goes, or a reload: the command does not. */
		agent_child_forget(x->s->d->a, x->pid);
	}
	if (x->read_ev != NULL)
		event_free(x->read_ev);
	if (x->timer != NULL)
		event_free(x->timer);
	if (x->out != -1)
		close(x->out);
	free(x);
}

static void
agent_dns_exec_read(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns_exec	*x = arg;
	char			 buf[1024];
	ssize_t			 n;
	size_t			 keep;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		keep = (size_t)n;
		if (keep > sizeof(x->said) - 1 - x->nsaid)
			keep = sizeof(x->said) - 1 - x->nsaid;
		memcpy(x->said + x->nsaid, buf, keep);
		x->nsaid += keep;
	}
	if (n == 0) {			/* EOF: the exit status says the rest */
		event_del(x->read_ev);
		close(x->out);
		x->out = -1;
	}
}

static void
agent_dns_exec_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns_exec	*x = arg;

	(void)fd;
	(void)what;
	x->killed = 1;
	kill(x->pid, SIGKILL);
}

static void
agent_dns_exec_done(pid_t pid, int st, void *arg)
{
	struct agent_dns_exec	*x = arg;
	struct agent_dns_set	*s = x->s;
	struct ddns_result	 res;
	char			 line[AGENT_DNS_EXEC_SAID], *nl;

	(void)pid;
	x->pid = 0;
	if (x->out != -1)		/* what it wrote before it ended */
		agent_dns_exec_read(x->out, EV_READ, x);
	x->said[x->nsaid] = '\0';
	if ((nl = strchr(x->said, '\n')) != NULL)
		*nl = '\0';		/* the first line */
	log_escape(line, sizeof(line), x->said, strlen(x->said));
	memset(&res, 0, sizeof(res));
	res.rcode = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		res.status = DDNS_OK;
		snprintf(res.text, sizeof(res.text), "the command took it");
	} else {
		res.status = DDNS_REFUSED;
		if (x->killed)
			snprintf(res.text, sizeof(res.text), "the command "
			    "did not finish in %d s", AGENT_DNS_EXEC_MAX_S);
		else if (WIFEXITED(st))
			snprintf(res.text, sizeof(res.text), "the command "
			    "failed (exit %d)%s%.300s", WEXITSTATUS(st),
			    line[0] ? ": " : "", line);
		else
			snprintf(res.text, sizeof(res.text), "the command "
			    "was killed by signal %d", WTERMSIG(st));
	}
	s->exec = NULL;
	agent_dns_exec_free(x);
	agent_dns_synced(&res, res.status == DDNS_OK ? s->nwant + s->ndead :
	    0, NULL, s);
}

static char *
agent_dns_exec_json(struct agent_dns *d, struct agent_dns_set *s)
{
	const struct cfg_dns	*c = d->a->cfg->dns;
	json_t			*o;
	char			*text;

	o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "zone", c->zone,
	    "name", s->name, "type", s->type == DDNS_A ? "A" : "AAAA",
	    "ttl", (json_int_t)(c->ttl_ms / 1000),
	    "records", agent_dns_array(s->want, s->nwant),
	    "delete", agent_dns_array(s->dead, s->ndead));
	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void
agent_dns_exec_start(struct agent_dns *d, struct agent_dns_set *s)
{
	struct agent_dns_exec	*x;
	struct timeval		 tv = { AGENT_DNS_EXEC_MAX_S, 0 };
	struct ddns_result	 res;
	char			*json;
	int			 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	size_t			 len;
	pid_t			 pid;

	memset(&res, 0, sizeof(res));
	res.status = DDNS_NETWORK;
	res.rcode = -1;
	snprintf(res.text, sizeof(res.text), "cannot run the command: out "
	    "of memory or descriptors");
	if ((x = calloc(1, sizeof(*x))) == NULL)
		goto fail;
	x->s = s;
	x->out = -1;
	if ((json = agent_dns_exec_json(d, s)) == NULL)
		goto fail;
	len = strlen(json);
	/* The set is small (at most 96 addresses): it fits a pipe. */
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    write(in[1], json, len) != (ssize_t)len || write(in[1], "\n",
	    1) != 1) {
		free(json);
		goto fail;
	}
	free(json);
	close(in[1]);
	in[1] = -1;
	if ((pid = fork()) == -1)
		goto fail;
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		closefrom(3);
		execl("/bin/sh", "sh", "-c", d->a->cfg->dns->command,
		    (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	x->pid = pid;
	x->out = out[0];
	evutil_make_socket_nonblocking(x->out);
	if ((x->read_ev = event_new(d->a->base, x->out, EV_READ | EV_PERSIST,
	    agent_dns_exec_read, x)) == NULL ||
	    (x->timer = evtimer_new(d->a->base, agent_dns_exec_timeout,
	    x)) == NULL ||
	    agent_child_watch(d->a, pid, agent_dns_exec_done, x) == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		x->pid = 0;
		in[0] = out[0] = out[1] = -1;
		goto fail;
	}
	event_add(x->read_ev, NULL);
	evtimer_add(x->timer, &tv);
	s->exec = x;
	return;
fail:
	if (x != NULL && x->out == -1 && out[0] != -1)
		close(out[0]);
	agent_dns_exec_free(x);
	if (in[0] != -1)
		close(in[0]);
	if (in[1] != -1)
		close(in[1]);
	if (out[1] != -1)
		close(out[1]);
	agent_dns_synced(&res, 0, NULL, s);
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

/* ------------------------------------------------------ dns-01 */

#define AGENT_DNS01_WAIT_MS	50000	/* the order child waits 60 s */
#define AGENT_DNS01_POLL_MS	500

/* Report (once), and free. */
static void
agent_dns01_end(struct agent_dns01 *x, int ok, const char *msg)
{
	agent_dns_done_cb	 done = x->done;
	void			*arg = x->arg;

	TAILQ_REMOVE(&x->d->dns01, x, entry);
	ddns_sync_cancel(x->sync);
	dns_cancel(x->query);
	dns_free(x->probe);
	if (x->timer != NULL)
		event_free(x->timer);
	free(x);
	if (done != NULL)
		done(ok, msg, arg);
}

/* The name servers to see the record at: dns.nameservers, or else the
 * server the updates go to. */
static size_t
agent_dns01_nservers(struct agent_dns *d)
{
	const struct cfg_dns	*c = d->a->cfg->dns;

	return c->nnameservers > 0 ? c->nnameservers : 1;
}

static void	agent_dns01_ask(struct agent_dns01 *);

/*
 * The look after an answer, from a timer: the answer came inside
 * c-ares, whose channel must not be freed from its own callback.
 */
static void
agent_dns01_again(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns01	*x = arg;

	(void)fd;
	(void)what;
	if (x->seen) {
		x->seen = 0;
		dns_free(x->probe);
		x->probe = NULL;
		if (++x->ns == agent_dns01_nservers(x->d)) {
			log_info("dns: %s %s is at every name server",
			    x->owner, x->type == DDNS_TXT ? "TXT" : "CAA");
			agent_dns01_end(x, 1, "");
			return;
		}
	} else if (mono_ms() >= x->deadline) {
		agent_dns01_end(x, 0, "the TXT record did not reach every "
		    "name server of the zone in time (check dns.nameservers "
		    "and the zone's transfers)");
		return;
	}
	agent_dns01_ask(x);
}

static void
agent_dns01_answer(int err, const unsigned char *msg, size_t len, void *arg)
{
	struct agent_dns01	*x = arg;
	struct ddns_rrset	*set;
	struct timeval		 tv = { 0, AGENT_DNS01_POLL_MS * 1000 };
	char			 want[DDNS_RDATA_MAX], why[256];
	size_t			 i;

	(void)err;
	x->query = NULL;
	if (msg != NULL && (set = malloc(sizeof(*set))) != NULL) {
		if (ddns_rrset_parse(msg, len, x->owner, x->type, set, why,
		    sizeof(why)) == 0 && ddns_rdata_norm(x->type, x->value,
		    want, sizeof(want)) == 0)
			for (i = 0; i < set->n; i++)
				x->seen |= strcmp(set->rdata[i], want) == 0;
		free(set);
	}
	if (x->seen)
		tv.tv_usec = 0;		/* the next server at once */
	evtimer_add(x->timer, &tv);
}

/* Ask server x->ns directly whether it has the record yet. */
static void
agent_dns01_ask(struct agent_dns01 *x)
{
	struct agent_dns	*d = x->d;
	const struct cfg_dns	*c = d->a->cfg->dns;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 why[256];

	if (x->probe == NULL) {
		if (c->nnameservers == 0) {
			memcpy(&ss, &d->server, d->serverlen);
			sslen = d->serverlen;
		} else if (addr_parse_numeric(c->nameservers[x->ns], &ss,
		    &sslen, why, sizeof(why)) == -1) {
			agent_dns01_end(x, 0, "dns.nameservers must be IP "
			    "addresses with a port");
			return;
		}
		if ((x->probe = dns_new_direct(d->a->base,
		    (struct sockaddr *)&ss, sslen, why, sizeof(why))) == NULL) {
			agent_dns01_end(x, 0, why);
			return;
		}
	}
	x->query = dns_query(x->probe, x->owner, x->type,
	    agent_dns01_answer, x);
}

static void
agent_dns01_synced(const struct ddns_result *res, size_t changes,
    const struct ddns_rrset *have, void *arg)
{
	struct agent_dns01	*x = arg;

	(void)changes;
	(void)have;
	x->sync = NULL;
	if (res->status != DDNS_OK) {
		log_warnx("dns: %s %s: %s", x->owner, x->type == DDNS_TXT ?
		    "TXT" : "CAA", res->text);
		agent_dns01_end(x, 0, res->text);
		return;
	}
	if (!x->add) {
		agent_dns01_end(x, 1, "");
		return;
	}
	agent_dns01_ask(x);
}

int
agent_dns_ready(const struct agent *a)
{
	return a->dnsu != NULL && a->dnsu->serverlen != 0;
}

int
agent_dns_record(struct agent *a, const char *owner, uint16_t type,
    const char *rdata, int add, agent_dns_done_cb done, void *arg)
{
	struct agent_dns	*d = a->dnsu;
	const struct cfg_dns	*c;
	struct agent_dns01	*x;
	const char		*one[1];

	if (d == NULL || (c = a->cfg->dns)->provider != CFG_DNS_RFC2136 ||
	    d->serverlen == 0 || strlen(owner) >= sizeof(x->owner) ||
	    strlen(rdata) >= sizeof(x->value) ||
	    (x = calloc(1, sizeof(*x))) == NULL)
		return -1;
	x->d = d;
	x->add = add;
	x->done = done;
	x->arg = arg;
	x->type = type;
	x->deadline = mono_ms() + AGENT_DNS01_WAIT_MS;
	snprintf(x->owner, sizeof(x->owner), "%s", owner);
	snprintf(x->value, sizeof(x->value), "%s", rdata);
	TAILQ_INSERT_TAIL(&d->dns01, x, entry);
	one[0] = x->value;
	if ((x->timer = evtimer_new(a->base, agent_dns01_again, x)) == NULL ||
	    (x->sync = ddns_sync(a->base, d->direct,
	    (struct sockaddr *)&d->server, d->serverlen, c->zone, &d->key,
	    x->owner, type, c->ttl_ms / 1000, add ? one : NULL, add ? 1 : 0,
	    add ? NULL : one, add ? 0 : 1, agent_dns01_synced, x)) == NULL) {
		x->done = NULL;
		agent_dns01_end(x, 0, "");
		return -1;
	}
	return 0;
}

int
agent_dns_acme(struct agent *a, const char *name, const char *key_auth,
    int add, agent_dns_done_cb done, void *arg)
{
	unsigned char	md[SHA256_DIGEST_LENGTH];
	char		owner[NAME_MAX_LEN + 17], value[64];

	/* RFC 8555 8.4: _acme-challenge of the name (a wildcard's base),
	 * base64url of the SHA-256 of the key authorization. */
	snprintf(owner, sizeof(owner), "_acme-challenge.%s",
	    strncmp(name, "*.", 2) == 0 ? name + 2 : name);
	SHA256((const unsigned char *)key_auth, strlen(key_auth), md);
	sodium_bin2base64(value, sizeof(value), md, sizeof(md),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return agent_dns_record(a, owner, DDNS_TXT, value, add, done, arg);
}

/* ------------------------------------------------------ status */

static json_t *
agent_dns_array(char list[][AGENT_DNS_ADDR_LEN], size_t n)
{
	json_t	*arr = json_array();
	size_t	 i;

	for (i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, json_string(list[i]));
	return arr;
}

/* The gateways heard of, as the records see them. */
static json_t *
agent_dns_gw_status(struct agent_dns *d)
{
	struct agent		*a = d->a;
	struct agent_dns_gw	*k;
	json_t			*arr, *addrs, *o;
	char			 kt[KEY_TEXT_LEN], text[AGENT_DNS_ADDR_LEN];
	const char		*state;
	uint64_t		 now = mono_ms(), grace = a->cfg->dns->grace_ms;
	size_t			 i, j;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (i = 0; i < d->ngws; i++) {
		k = &d->gws[i];
		if ((addrs = json_array()) == NULL)
			break;
		for (j = 0; j < k->naddr; j++) {
			agent_dns_text(&k->addr[j], text, sizeof(text));
			json_array_append_new(addrs, json_string(text));
		}
		state = k->live ? "live" : k->last_live_ms == 0 ? "unknown" :
		    now - k->last_live_ms < grace ? "lost, in grace" : "dead";
		o = json_pack("{s:s, s:s, s:o, s:s, s:I}", "name", k->name,
		    "key", key_pub_text(k->pub, kt), "addresses", addrs,
		    "state", state, "last_live_ms_ago", k->last_live_ms ?
		    (json_int_t)(now - k->last_live_ms) : (json_int_t)-1);
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	/* A tunnel that brought no view: nothing of it can be published. */
	for (i = 0; i < a->ngws; i++) {
		if (!agent_gw_is_up(a->gws[i]) ||
		    agent_gw_has_cluster(a->gws[i]))
			continue;
		o = json_pack("{s:s, s:s, s:[], s:s}", "name",
		    agent_gw_name(a->gws[i]), "key",
		    key_pub_text(agent_gw_key(a->gws[i]), kt), "addresses",
		    "state", "no addresses from this gateway: an older porch, "
		    "or no public_addresses: in its config");
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
agent_dns_status(struct agent *a)
{
	struct agent_dns	*d = a->dnsu;
	const struct cfg_dns	*c = a->cfg->dns;
	struct agent_dns_set	*s;
	json_t			*arr, *o;
	char			 when[32], srv[64];
	struct tm		 tm;
	size_t			 i;

	if (d == NULL)
		return NULL;
	if ((arr = json_array()) == NULL)
		return NULL;
	for (i = 0; i < d->nsets; i++) {
		s = &d->sets[i];
		when[0] = '\0';
		if (s->result_at != 0 && gmtime_r(&s->result_at, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:b, s:I}",
		    "hostname", s->name, "type", s->type == DDNS_A ? "A" :
		    "AAAA", "desired", agent_dns_array(s->want, s->nwant),
		    "published", agent_dns_array(s->published, s->npublished),
		    "deleting", agent_dns_array(s->dead, s->ndead),
		    "last_result", s->result_at ? s->result : "not yet",
		    "last_update", when, "ok", s->ok,
		    "changes", (json_int_t)s->updates);
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	if (c->provider == CFG_DNS_EXEC)
		snprintf(srv, sizeof(srv), "(exec)");
	else if (d->serverlen != 0)
		addr_fmt((struct sockaddr *)&d->server, srv, sizeof(srv));
	else
		snprintf(srv, sizeof(srv), "%s (not looked up yet)",
		    c->server);
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "provider",
	    c->provider == CFG_DNS_EXEC ? "exec" : "rfc2136",
	    "zone", c->zone, "server", srv, "records", arr, "gateways",
	    agent_dns_gw_status(d));
}

void
agent_dns_metrics(struct agent *a, struct evbuffer *out)
{
	struct agent_dns	*d = a->dnsu;
	struct agent_dns_set	*s;
	size_t			 i;

	if (d == NULL)
		return;
	evbuffer_add_printf(out, "# HELP porch_agent_dns_ok Whether the last "
	    "update of the record set worked.\n"
	    "# TYPE porch_agent_dns_ok gauge\n");
	for (i = 0; i < d->nsets; i++) {
		s = &d->sets[i];
		evbuffer_add_printf(out, "porch_agent_dns_ok{hostname=\"%s\","
		    "type=\"%s\"} %d\n", s->name, s->type == DDNS_A ? "A" :
		    "AAAA", s->ok);
	}
	evbuffer_add_printf(out, "# HELP porch_agent_dns_records Records "
	    "published, as last read.\n"
	    "# TYPE porch_agent_dns_records gauge\n");
	for (i = 0; i < d->nsets; i++) {
		s = &d->sets[i];
		evbuffer_add_printf(out, "porch_agent_dns_records{hostname="
		    "\"%s\",type=\"%s\"} %zu\n", s->name, s->type == DDNS_A ?
		    "A" : "AAAA", s->npublished);
	}
	evbuffer_add_printf(out, "# HELP porch_agent_dns_changes_total "
	    "Records added or deleted.\n"
	    "# TYPE porch_agent_dns_changes_total counter\n");
	for (i = 0; i < d->nsets; i++) {
		s = &d->sets[i];
		evbuffer_add_printf(out, "porch_agent_dns_changes_total{"
		    "hostname=\"%s\",type=\"%s\"} %lu\n", s->name,
		    s->type == DDNS_A ? "A" : "AAAA", s->updates);
	}
}
