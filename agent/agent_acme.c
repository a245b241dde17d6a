/* SPDX-License-Identifier: ISC */
/*
 * Certificates by ACME, obtained and renewed at home.  The agent keeps one
 * schedule per certificate (a service with "certificate: acme") and runs
 * each order in a child process: the ACME client blocks on the CA, and a
 * slow or hostile CA must never stall the visitors' event loop.  The
 * child speaks to us in lines on a socketpair:
 *
 *	child:  add TYPE NAME TOKEN KEYAUTH	publish a challenge answer
 *	us:     ok | fail MESSAGE		once the gateways route it here
 *	child:  del TYPE NAME TOKEN		the CA decided
 *	child:  done				certificate saved in the store
 *	child:  fail KIND RETRY_S MESSAGE	the order failed
 *	child:  ari START END RETRY_S | noari	renewal window (check job)
 *	child:  account URL [terms URL]		the account it used or made
 *	child:  warn MESSAGE			logged as is (DNS checks)
 *
 * The child's side is agent_acme_child.c.
 * While a challenge is published, the agent adds the ACME kinds to its
 * claim of the name on every gateway, so the CA's probes reach this agent
 * and no other replica.  It answers them itself: http-01 here, tls-alpn-01
 * in agent_term.c.  One job runs at a time; the others wait their turn.
 */

#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "agent.h"
#include "backoff.h"
#include "log.h"

#define ACME_JOB_MAX_S		(15 * 60)	/* kill a stuck child */
#define ACME_CLAIM_WAIT_MS	5000	/* gateways confirming a claim */
#define ACME_HOOK_MAX_S		120
#define ACME_ARI_EVERY_S	(6 * 60 * 60)
#define ACME_HTTP_HEAD_MAX	8192
#define ACME_HTTP_WAIT_S	10
#define ACME_SETTLE_S		5	/* after the first tunnel is up */
/* Between manual renewals of a name: a CA allows few duplicates (Let's
 * Encrypt: 5 a week), and renewing again so soon has no use. */
#define ACME_MANUAL_EVERY_S	(10 * 60)

enum agent_job_kind {
	AGENT_JOB_ORDER,
	AGENT_JOB_CHECK,	/* renewal information only */
};

enum agent_order_state {
	AGENT_ORDER_NONE,	/* no order since the agent started */
	AGENT_ORDER_RUNNING,
	AGENT_ORDER_SUCCEEDED,
	AGENT_ORDER_FAILED,
};

/* A challenge answer we serve while the CA validates. */
struct agent_chal {
	TAILQ_ENTRY(agent_chal)	 entry;
	enum acme_chal		 type;
	char			 name[NAME_MAX_LEN + 1];
	char			 token[128];
	char			 key_auth[256];
};

/* One certificate and its renewal schedule. */
struct agent_cert {
	struct agent_acme	*m;
	char			 name[NAME_MAX_LEN + 1];	/* first name */
	char			**names;
	size_t			 nnames;
	int			 have;		/* a current certificate */
	int			 names_match;	/* it covers names[] */
	time_t			 not_before;
	time_t			 not_after;
	char			 issuer[256];
	char			 serial[80];
	time_t			 due;		/* next job, wall clock */
	enum agent_job_kind	 due_kind;
	time_t			 ari_checked;	/* 0: never */
	time_t			 ari_start, ari_end;
	struct acme_store_state	 st;
	struct event		*timer;
	int			 ordering;	/* job of this cert running */
	int			 present;	/* in the config (reload) */
	/*
	 * Orders are numbered per certificate since the agent started, so
	 * that porchctl cert renew --wait follows the order it asked for
	 * (counters of failures say nothing about which order failed).
	 */
	uint64_t		 orders;	/* id of the latest order */
	enum agent_order_state	 order_state;	/* and its outcome */
	int			 requested;	/* renew_now: order next */
	int			 announced;	/* "ordering now" is logged */
	time_t			 manual_at;	/* last renew_now that ordered;
						   0: none, or its order
						   failed (no certificate) */
	uint64_t		 manual_order;	/* the order it asked for */
};

/* A hook command still running. */
struct agent_hook {
	TAILQ_ENTRY(agent_hook)	 entry;
	pid_t			 pid;
	char			 name[NAME_MAX_LEN + 1];
	time_t			 started;
};

struct agent_acme {
	struct agent		*a;
	struct agent_cert	**certs;
	size_t			 ncerts;
	TAILQ_HEAD(, agent_chal) chals;
	TAILQ_HEAD(, agent_hook) hooks;
	struct event		*sigchld;
	struct event		*watchdog;	/* job and hook time limits */
	/* The job in flight, at most one. */
	struct agent_cert	*job;
	enum agent_job_kind	 job_kind;
	pid_t			 job_pid;
	struct bufferevent	*job_bev;
	time_t			 job_started;
	int			 job_reaped;
	int			 job_status;
	int			 job_result;	/* a done/fail line came */
	/* An "add" waiting for the gateways to confirm the claim. */
	char			 wait_name[NAME_MAX_LEN + 1];
	unsigned		 wait_left;
	unsigned		 wait_ok;
	char			 wait_refused[256];
	struct event		*wait_timer;
	char			*state_dir;	/* as initialized */
	time_t			 first_up;	/* a gateway came up */
	uint64_t		 issued;	/* counters for metrics */
	uint64_t		 failed;
};

/*
 * An http-01 probe being answered, over a bufferevent pair whose other
 * end the tunnel holds.  Freeing that end tells this one nothing, so
 * the probe owns its stream and hears of its end through
 * agent_http01_closed(), where it is freed.  It does not depend on
 * struct agent_acme, which a reload may free meanwhile.
 */
struct agent_http01 {
	struct agent_stream	 own;
	struct agent		*a;
	struct tun_stream	*s;
	struct bufferevent	*bev;
	char			 name[NAME_MAX_LEN + 1];
	int			 replied;
};

static struct agent_cert *agent_acme_cert_new(struct agent_acme *,
		    const struct cfg_service *);
static void	agent_acme_cert_free(struct agent_cert *);
static int	agent_acme_cert_names(struct agent_cert *,
		    const struct cfg_service *);
static void	agent_acme_cert_drop(struct agent_acme *, struct agent_cert *);
static void	agent_acme_cert_load(struct agent_cert *, int);
static void	agent_acme_schedule(struct agent_cert *);
static void	agent_acme_arm(struct agent_cert *);
static void	agent_acme_timer_cb(evutil_socket_t, short, void *);
static void	agent_acme_next(struct agent_acme *);
static int	agent_acme_gws_ready(struct agent_acme *);
static int	agent_acme_gws_settled(const struct agent_acme *);
static const char *agent_acme_hold(const struct agent_acme *);
static const char *agent_acme_order_state(enum agent_order_state);
static int	agent_acme_spawn(struct agent_acme *, struct agent_cert *,
		    enum agent_job_kind);
static void	agent_acme_read_cb(struct bufferevent *, void *);
static void	agent_acme_event_cb(struct bufferevent *, short, void *);
static void	agent_acme_line(struct agent_acme *, char *);
static void	agent_acme_job_end(struct agent_acme *, int ok,
		    const char *kind, unsigned retry_s, const char *msg);
static void	agent_acme_job_maybe_done(struct agent_acme *);
static void	agent_acme_reply(struct agent_acme *, const char *);
static void	agent_acme_wait_done(struct agent_acme *);
static void	agent_acme_wait_cb(evutil_socket_t, short, void *);
static void	agent_acme_chal_add(struct agent_acme *, enum acme_chal,
		    const char *, const char *, const char *);
static void	agent_acme_chal_del(struct agent_acme *, enum acme_chal,
		    const char *, const char *);
static void	agent_acme_chal_clear(struct agent_acme *);
static void	agent_acme_sigchld_cb(evutil_socket_t, short, void *);
static void	agent_acme_watchdog_cb(evutil_socket_t, short, void *);
static void	agent_acme_hook(struct agent_acme *, const struct agent_cert *);
static void	agent_acme_save_state(struct agent_cert *);
static unsigned	agent_acme_backoff(const struct agent_acme *, unsigned,
		    unsigned);
static int	agent_acme_parse_chal(const char *, enum acme_chal *);
static void	agent_http01_read_cb(struct bufferevent *, void *);
static void	agent_http01_event_cb(struct bufferevent *, short, void *);
static void	agent_http01_write_cb(struct bufferevent *, void *);
static void	agent_http01_closed(struct tun_stream *, const char *,
		    void *);
static void	agent_http01_done(struct agent_http01 *);
static const char *agent_acme_time(time_t, char *, size_t);
static const char *agent_acme_delay(unsigned, char *, size_t);

static const struct agent_stream_ops agent_http01_ops = {
	.closed = agent_http01_closed,
};

int
agent_acme_init(struct agent *a, char *err, size_t errlen)
{
	struct agent_acme	*m;
	size_t			 i;

	if (a->cfg->acme == NULL)
		return 0;
	if (acme_store_init(a->cfg->acme->state_dir, err, errlen) == -1)
		return -1;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->a = a;
	TAILQ_INIT(&m->chals);
	TAILQ_INIT(&m->hooks);
	a->acme = m;
	if ((m->state_dir = strdup(a->cfg->acme->state_dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((m->certs = calloc(a->cfg->nservices + 1,
	    sizeof(*m->certs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < a->cfg->nservices; i++) {
		if (!a->cfg->services[i].acme)
			continue;
		if ((m->certs[m->ncerts] = agent_acme_cert_new(m,
		    &a->cfg->services[i])) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		m->ncerts++;
	}
	return 0;
}

/* Needs the event base: timers, the child watcher, the first jobs. */
void
agent_acme_start(struct agent *a)
{
	struct agent_acme	*m = a->acme;
	struct timeval		 tv = { 1, 0 };
	size_t			 i;

	if (m == NULL)
		return;
	m->sigchld = evsignal_new(a->base, SIGCHLD, agent_acme_sigchld_cb, m);
	m->watchdog = event_new(a->base, -1, EV_PERSIST,
	    agent_acme_watchdog_cb, m);
	m->wait_timer = evtimer_new(a->base, agent_acme_wait_cb, m);
	if (m->sigchld == NULL || m->watchdog == NULL || m->wait_timer == NULL)
		fatalx("acme: out of memory");
	evsignal_add(m->sigchld, NULL);
	event_add(m->watchdog, &tv);
	for (i = 0; i < m->ncerts; i++) {
		if ((m->certs[i]->timer = evtimer_new(a->base,
		    agent_acme_timer_cb, m->certs[i])) == NULL)
			fatalx("acme: out of memory");
		agent_acme_cert_load(m->certs[i], 1);
		agent_acme_schedule(m->certs[i]);
	}
}

void
agent_acme_free(struct agent *a)
{
	struct agent_acme	*m = a->acme;
	struct agent_hook	*h;
	size_t			 i;

	if (m == NULL)
		return;
	if (m->job_pid > 0) {
		/* The order cannot finish without us; a later start
		 * begins it again. */
		kill(m->job_pid, SIGTERM);
		waitpid(m->job_pid, NULL, 0);
	}
	while ((h = TAILQ_FIRST(&m->hooks)) != NULL) {
		TAILQ_REMOVE(&m->hooks, h, entry);
		free(h);	/* hooks outlive us: they reload backends */
	}
	if (m->job_bev != NULL)
		bufferevent_free(m->job_bev);
	agent_acme_chal_clear(m);
	for (i = 0; i < m->ncerts; i++)
		agent_acme_cert_free(m->certs[i]);
	free(m->certs);
	if (m->sigchld != NULL)
		event_free(m->sigchld);
	if (m->watchdog != NULL)
		event_free(m->watchdog);
	if (m->wait_timer != NULL)
		event_free(m->wait_timer);
	free(m->state_dir);
	free(m);
	a->acme = NULL;
}

/*
 * The services' certificates after a reload: new ones are scheduled,
 * changed names reorder, removed ones are dropped (once their running
 * job, if any, is over).  A new or removed acme: section starts or
 * stops the whole machinery.
 */
void
agent_acme_reload(struct agent *a)
{
	struct agent_acme		*m = a->acme;
	const struct cfg_service	*svc;
	struct agent_cert		*c, **nc;
	char				 err[512];
	size_t				 i, j, n = 0;
	int				 same;

	if (a->cfg->acme == NULL) {
		if (m != NULL)
			log_info("reload: acme section removed; certificates "
			    "are no longer renewed");
		agent_acme_free(a);
		return;
	}
	if (m == NULL) {
		if (agent_acme_init(a, err, sizeof(err)) == -1) {
			log_warnx("reload: acme: %s", err);
			agent_acme_free(a);
			return;
		}
		agent_acme_start(a);
		return;
	}
	if (strcmp(m->state_dir, a->cfg->acme->state_dir) != 0) {
		/* Another store: start over from what it holds. */
		log_info("reload: acme state_dir changed; reading %s",
		    a->cfg->acme->state_dir);
		agent_acme_free(a);
		if (agent_acme_init(a, err, sizeof(err)) == -1) {
			log_warnx("reload: acme: %s; certificates are not "
			    "renewed until this is fixed", err);
			agent_acme_free(a);
			return;
		}
		agent_acme_start(a);
		return;
	}
	if ((nc = calloc(a->cfg->nservices + m->ncerts + 1,
	    sizeof(*nc))) == NULL) {
		log_warnx("reload: acme: out of memory; certificates "
		    "unchanged");
		return;
	}
	for (i = 0; i < m->ncerts; i++)
		m->certs[i]->present = 0;
	for (i = 0; i < a->cfg->nservices; i++) {
		svc = &a->cfg->services[i];
		if (!svc->acme)
			continue;
		for (j = 0, c = NULL; j < m->ncerts && c == NULL; j++)
			if (strcmp(m->certs[j]->name, svc->cert_names[0]) == 0)
				c = m->certs[j];
		if (c != NULL) {
			same = c->nnames == svc->ncert_names;
			for (j = 0; same && j < c->nnames; j++)
				same = strcmp(c->names[j],
				    svc->cert_names[j]) == 0;
			c->present = 1;
			nc[n++] = c;
			if (same)
				continue;
			/* Other names: the new set is ordered at once (or
			 * after the running order; the child has its own
			 * copy of the old set). */
			if (agent_acme_cert_names(c, svc) == -1) {
				log_warnx("reload: acme %s: out of memory",
				    c->name);
				continue;
			}
			c->names_match = 0;
			log_info("reload: acme %s: names changed", c->name);
			if (!c->ordering)
				agent_acme_schedule(c);
			continue;
		}
		if ((c = agent_acme_cert_new(m, svc)) == NULL ||
		    (c->timer = evtimer_new(a->base, agent_acme_timer_cb,
		    c)) == NULL) {
			agent_acme_cert_free(c);
			log_warnx("reload: acme %s: out of memory",
			    svc->cert_names[0]);
			continue;
		}
		nc[n++] = c;
		agent_acme_cert_load(c, 1);
		agent_acme_schedule(c);
	}
	for (i = 0; i < m->ncerts; i++) {
		c = m->certs[i];
		if (c->present)
			continue;
		if (c == m->job) {
			nc[n++] = c;	/* freed when its job ends */
			continue;
		}
		agent_acme_cert_free(c);
	}
	free(m->certs);
	m->certs = nc;
	m->ncerts = n;
}

static struct agent_cert *
agent_acme_cert_new(struct agent_acme *m, const struct cfg_service *svc)
{
	struct agent_cert	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->m = m;
	c->present = 1;
	snprintf(c->name, sizeof(c->name), "%s", svc->cert_names[0]);
	if (agent_acme_cert_names(c, svc) == -1) {
		agent_acme_cert_free(c);
		return NULL;
	}
	return c;
}

/* Own copies of the service's certificate names, replacing any. */
static int
agent_acme_cert_names(struct agent_cert *c, const struct cfg_service *svc)
{
	char	**names;
	size_t	  i;

	if ((names = calloc(svc->ncert_names, sizeof(*names))) == NULL)
		return -1;
	for (i = 0; i < svc->ncert_names; i++)
		if ((names[i] = strdup(svc->cert_names[i])) == NULL) {
			while (i > 0)
				free(names[--i]);
			free(names);
			return -1;
		}
	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	c->names = names;
	c->nnames = svc->ncert_names;
	return 0;
}

static void
agent_acme_cert_free(struct agent_cert *c)
{
	size_t	i;

	if (c == NULL)
		return;
	if (c->timer != NULL)
		event_free(c->timer);
	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c);
}

/* What the store holds for this certificate, and (state) its saved
 * schedule. */
static void
agent_acme_cert_load(struct agent_cert *c, int state_too)
{
	const char		*state = c->m->a->cfg->acme->state_dir;
	struct acme_cert_info	 ci;
	char			*key = NULL, *chain = NULL, err[512];
	size_t			 i, j;

	c->have = c->names_match = 0;
	if (state_too && acme_store_state_load(state, c->name, &c->st, err,
	    sizeof(err)) == -1) {
		log_warnx("acme %s: %s; starting its schedule afresh", c->name,
		    err);
		memset(&c->st, 0, sizeof(c->st));
	}
	if (acme_store_cert_load(state, c->name, &key, &chain, err,
	    sizeof(err)) == -1)
		return;
	memset(&ci, 0, sizeof(ci));
	if (acme_cert_info(chain, &ci, err, sizeof(err)) == -1) {
		log_warnx("acme %s: stored certificate unreadable: %s; "
		    "ordering a new one", c->name, err);
	} else if (!acme_cert_key_match(chain, key)) {
		log_warnx("acme %s: stored certificate and key do not "
		    "match; ordering a new one", c->name);
	} else {
		c->have = 1;
		c->not_before = ci.not_before;
		c->not_after = ci.not_after;
		snprintf(c->issuer, sizeof(c->issuer), "%s", ci.issuer);
		snprintf(c->serial, sizeof(c->serial), "%s", ci.serial);
		c->names_match = 1;
		for (i = 0; i < c->nnames && c->names_match; i++) {
			for (j = 0; j < ci.nnames; j++)
				if (strcmp(ci.names[j], c->names[i]) == 0)
					break;
			c->names_match = j < ci.nnames;
		}
	}
	acme_cert_info_clear(&ci);
	free(key);
	free(chain);
}

/*
 * When to act next.  A missing certificate, or one for other names, is
 * ordered now; a good one at two thirds of its lifetime, less a random
 * share so that replicas and restarts spread out, or inside the CA's
 * renewal window once known.  A failure pushes the attempt back
 * exponentially, and the saved schedule survives restarts, so the CA
 * never sees a tight loop.  An order asked for (porchctl cert renew)
 * goes first, backoff or not: a person is waiting for it.
 */
static void
agent_acme_schedule(struct agent_cert *c)
{
	time_t		 now = time(NULL), life, at;
	const char	*why, *hold;
	char		 b[64];

	c->due_kind = AGENT_JOB_ORDER;
	if (c->requested || !c->have || !c->names_match)
		at = now;
	else if (c->ari_end > 0) {
		at = c->ari_start + (time_t)(arc4random_uniform((uint32_t)
		    (c->ari_end > c->ari_start ? c->ari_end - c->ari_start :
		    1)));
	} else {
		life = c->not_after - c->not_before;
		if (life < 60)
			life = 60;
		at = c->not_before + life * 2 / 3 -
		    (time_t)arc4random_uniform((uint32_t)(life / 30 + 1));
	}
	if (!c->requested && c->st.failures > 0 && c->st.next_attempt > at)
		at = c->st.next_attempt;
	c->due = at;
	why = c->requested ? "renewal requested" : !c->have ?
	    "no certificate yet" : !c->names_match ?
	    "the certificate lacks configured names" : NULL;
	/* Say what really happens next: "ordering now" only when the
	 * order starts now, else when it will. */
	c->announced = 0;
	if (at > now && why != NULL)
		log_info("acme %s: %s; next attempt in %s", c->name, why,
		    agent_acme_delay((unsigned)(at - now), b, sizeof(b)));
	else if (at > now)
		log_info("acme %s: renewal scheduled %s%s", c->name,
		    agent_acme_time(at, b, sizeof(b)), c->ari_end > 0 ?
		    " (inside the CA's renewal window)" : "");
	else if ((hold = agent_acme_hold(c->m)) != NULL)
		log_info("acme %s: %s; %s", c->name, why != NULL ?
		    why : "renewal due", hold);
	else {
		log_info("acme %s: %s; ordering now", c->name, why != NULL ?
		    why : "renewal due");
		c->announced = 1;
	}
	/* Ask the CA's renewal information first, if due for a look: it
	 * may move the date (RFC 9773). */
	if (c->have && c->names_match && at > now &&
	    now - c->ari_checked >= ACME_ARI_EVERY_S) {
		c->due = now + (time_t)arc4random_uniform(30);
		c->due_kind = AGENT_JOB_CHECK;
	}
	agent_acme_arm(c);
}

static void
agent_acme_arm(struct agent_cert *c)
{
	struct timeval	 tv;
	time_t		 now = time(NULL), d;

	d = c->due > now ? c->due - now : 0;
	/* Timers far ahead are re-checked daily: the clock may jump. */
	if (d > 24 * 60 * 60)
		d = 24 * 60 * 60;
	tv.tv_sec = d;
	tv.tv_usec = 0;
	evtimer_add(c->timer, &tv);
}

static void
agent_acme_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent_cert	*c = arg;

	(void)fd;
	(void)ev;
	if (time(NULL) < c->due) {
		agent_acme_arm(c);
		return;
	}
	agent_acme_next(c->m);
}

/* Start the most overdue job, unless one is running. */
static void
agent_acme_next(struct agent_acme *m)
{
	struct agent_cert	*c, *best = NULL;
	time_t			 now = time(NULL);
	size_t			 i;

	if (m->job != NULL || m->a->stopping)
		return;
	for (i = 0; i < m->ncerts; i++) {
		c = m->certs[i];
		if (c->due <= now && (best == NULL || c->due < best->due))
			best = c;
	}
	if (best == NULL)
		return;
	if (best->due_kind == AGENT_JOB_ORDER && !agent_acme_gws_ready(m)) {
		/* The CA's probes need a way in; a gateway coming up
		 * calls us again. */
		struct timeval tv = { 1, 0 };

		evtimer_add(best->timer, &tv);
		return;
	}
	if (agent_acme_spawn(m, best, best->due_kind) == -1) {
		best->due = now + 60;
		agent_acme_arm(best);
	}
}

/*
 * Orders wait for the tunnels: every gateway up, or at least one for a
 * few seconds (the others may be down for long).  Started at once, an
 * order would race the tunnels and the gateways' peer links.
 */
static int
agent_acme_gws_ready(struct agent_acme *m)
{
	struct agent	*a = m->a;
	size_t		 i, up = 0;

	for (i = 0; i < a->ngws; i++)
		up += agent_gw_is_up(a->gws[i]) != 0;
	if (up == 0) {
		m->first_up = 0;
		return 0;
	}
	if (m->first_up == 0)
		m->first_up = time(NULL);
	return agent_acme_gws_settled(m);
}

/* agent_acme_gws_ready without marking the first tunnel's time. */
static int
agent_acme_gws_settled(const struct agent_acme *m)
{
	const struct agent	*a = m->a;
	size_t			 i, up = 0;

	for (i = 0; i < a->ngws; i++)
		up += agent_gw_is_up(a->gws[i]) != 0;
	if (up == 0)
		return 0;
	return up == a->ngws || (m->first_up != 0 &&
	    time(NULL) - m->first_up >= ACME_SETTLE_S);
}

/* What holds back an order that is due, said in words; NULL: none. */
static const char *
agent_acme_hold(const struct agent_acme *m)
{
	if (m->job != NULL)
		return "ordering after the running job";
	if (m->a->stopping)
		return "not ordering: the agent is stopping";
	if (!agent_acme_gws_settled(m))
		return "ordering once the gateway tunnels are up";
	return NULL;
}

/* A gateway tunnel came up: a waiting order may go. */
void
agent_acme_kick(struct agent *a)
{
	if (a->acme != NULL)
		agent_acme_next(a->acme);
}

/*
 * Order now, on request (porchctl cert renew): *order is the id the
 * order answering it has, or will have, in agent_acme_status.  The
 * backoff of earlier failures does not apply; their count stays.
 */
int
agent_acme_renew_now(struct agent *a, const char *name, uint64_t *order,
    char *msg, size_t msglen)
{
	struct agent_acme	*m = a->acme;
	struct agent_cert	*c = NULL;
	const char		*hold;
	char			 at[64], next[64];
	time_t			 now;
	size_t			 i;

	*order = 0;
	if (m == NULL) {
		snprintf(msg, msglen, "this agent has no acme: section");
		return -1;
	}
	for (i = 0; i < m->ncerts; i++)
		if (strcmp(m->certs[i]->name, name) == 0)
			c = m->certs[i];
	if (c == NULL) {
		snprintf(msg, msglen, "no certificate named %s (services with "
		    "certificate: acme are named by their hostname)", name);
		return -1;
	}
	if (c->ordering) {
		*order = c->orders;
		snprintf(msg, msglen, "%s: an order is already running", name);
		return 0;
	}
	now = time(NULL);
	if (c->manual_at != 0 && now >= c->manual_at &&
	    now < c->manual_at + ACME_MANUAL_EVERY_S) {
		snprintf(msg, msglen, "%s: renewed on request at %s; the next "
		    "request is allowed from %s (in %llds): the CA allows "
		    "few duplicate certificates", name, agent_acme_time(
		    c->manual_at, at, sizeof(at)), agent_acme_time(
		    c->manual_at + ACME_MANUAL_EVERY_S, next, sizeof(next)),
		    (long long)(c->manual_at + ACME_MANUAL_EVERY_S - now));
		log_warnx("acme %s: renewal request refused: too soon after "
		    "the last one", name);
		return -2;
	}
	/* The next order of this certificate answers the request, also if
	 * a renewal-information job of it runs now (its end reschedules,
	 * and the schedule honours the request). */
	*order = c->orders + 1;
	c->manual_at = now;
	c->manual_order = *order;
	c->requested = 1;
	c->due = now;
	c->due_kind = AGENT_JOB_ORDER;
	hold = agent_acme_hold(m);
	c->announced = hold == NULL;
	log_info("acme %s: renewal requested; %s", name,
	    hold != NULL ? hold : "ordering now");
	snprintf(msg, msglen, "%s: %s", name, hold != NULL ? hold :
	    "ordering now");
	agent_acme_next(m);
	return 0;
}

static int
agent_acme_spawn(struct agent_acme *m, struct agent_cert *c,
    enum agent_job_kind kind)
{
	int	sv[2];
	pid_t	pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		log_warn("acme %s: socketpair", c->name);
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("acme %s: fork", c->name);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		agent_acme_child(m->a, c->name, c->names, c->nnames,
		    kind == AGENT_JOB_CHECK, sv[1]);
	}
	close(sv[1]);
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_closeonexec(sv[0]);
	m->job_bev = bufferevent_socket_new(m->a->base, sv[0],
	    BEV_OPT_CLOSE_ON_FREE);
	if (m->job_bev == NULL) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	bufferevent_setcb(m->job_bev, agent_acme_read_cb, NULL,
	    agent_acme_event_cb, m);
	bufferevent_enable(m->job_bev, EV_READ);
	m->job = c;
	m->job_kind = kind;
	m->job_pid = pid;
	m->job_started = time(NULL);
	m->job_reaped = 0;
	m->job_result = 0;
	c->ordering = kind == AGENT_JOB_ORDER;
	if (kind == AGENT_JOB_ORDER) {
		c->st.last_attempt = m->job_started;
		c->requested = 0;
		c->orders++;
		c->order_state = AGENT_ORDER_RUNNING;
		/* Said here when the schedule could not say it. */
		if (!c->announced)
			log_info("acme %s: ordering now", c->name);
		c->announced = 0;
	}
	log_debug("acme %s: %s job started, pid %ld", c->name,
	    kind == AGENT_JOB_ORDER ? "order" : "renewal-info", (long)pid);
	return 0;
}

/* ---- the parent's side of a job ---- */

static void
agent_acme_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent_acme	*m = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		agent_acme_line(m, line);
		free(line);
		if (m->job_bev == NULL)
			return;
	}
	if (evbuffer_get_length(in) > AGENT_ACME_LINE_MAX) {
		log_warnx("acme: worker sent an overlong line; stopping it");
		kill(m->job_pid, SIGKILL);
		agent_acme_job_end(m, 0, "local", 0, "internal error: "
		    "overlong line from the ACME worker");
	}
}

static void
agent_acme_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_acme	*m = arg;

	(void)bev;
	(void)what;
	/* EOF: the child is exiting.  Its status comes with SIGCHLD. */
	bufferevent_free(m->job_bev);
	m->job_bev = NULL;
	agent_acme_chal_clear(m);
	agent_acme_job_maybe_done(m);
}

static void
agent_acme_line(struct agent_acme *m, char *line)
{
	struct agent_cert	*c = m->job;
	char			*f[6], *p = line, *msg = NULL;
	enum acme_chal		 type;
	size_t			 nf = 0;
	long long		 s, e;

	if (strncmp(line, "warn ", 5) == 0) {
		log_warnx("acme %s: %s", c->name, line + 5);
		return;
	}
	/* Up to five words, the rest of a fail line is its message. */
	while (nf < 5 && p != NULL && *p != '\0') {
		f[nf++] = strsep(&p, " ");
		if (nf == 3 && strcmp(f[0], "fail") == 0) {
			msg = p;
			break;
		}
	}
	if (nf == 0)
		return;
	if (strcmp(f[0], "add") == 0 && nf == 5 && p == NULL &&
	    agent_acme_parse_chal(f[1], &type) == 0) {
		agent_acme_chal_add(m, type, f[2], f[3], f[4]);
	} else if (strcmp(f[0], "del") == 0 && nf == 4 &&
	    agent_acme_parse_chal(f[1], &type) == 0) {
		agent_acme_chal_del(m, type, f[2], f[3]);
	} else if (strcmp(f[0], "account") == 0 && nf >= 2) {
		log_info("acme: using account %s%s%s", f[1],
		    nf >= 4 ? "; terms of service agreed: " : "",
		    nf >= 4 ? f[3] : "");
	} else if (strcmp(f[0], "done") == 0) {
		agent_acme_job_end(m, 1, NULL, 0, NULL);
	} else if (strcmp(f[0], "noari") == 0) {
		c->ari_checked = time(NULL);
		c->ari_start = c->ari_end = 0;
		m->job_result = 1;
	} else if (strcmp(f[0], "ari") == 0 && nf == 4 &&
	    sscanf(f[1], "%lld", &s) == 1 && sscanf(f[2], "%lld", &e) == 1) {
		c->ari_checked = time(NULL);
		c->ari_start = (time_t)s;
		c->ari_end = (time_t)e;
		m->job_result = 1;
	} else if (strcmp(f[0], "fail") == 0 && nf == 3) {
		agent_acme_job_end(m, 0, f[1], (unsigned)strtoul(f[2], NULL,
		    10), msg != NULL ? msg : "failed");
	} else
		log_warnx("acme: unexpected line from the worker");
}

/*
 * A result line came: an order succeeded or failed.  (The child exits
 * right after; agent_acme_job_maybe_done frees the job.)
 */
static void
agent_acme_job_end(struct agent_acme *m, int ok, const char *kind,
    unsigned retry_s, const char *msg)
{
	struct agent_cert	*c = m->job;
	char			 b[64], err[512];
	unsigned		 delay;

	if (c == NULL || m->job_result)
		return;
	m->job_result = 1;
	if (m->job_kind == AGENT_JOB_CHECK) {
		/* Renewal information is a hint: fall back to 2/3. */
		log_info("acme %s: renewal information unavailable: %s",
		    c->name, msg);
		c->ari_checked = time(NULL);
		return;
	}
	if (ok) {
		m->issued++;
		c->order_state = AGENT_ORDER_SUCCEEDED;
		c->st.failures = 0;
		c->st.next_attempt = 0;
		c->st.last_success = time(NULL);
		c->st.last_error[0] = '\0';
		/* A new certificate: its renewal window is asked for
		 * later, not at once. */
		c->ari_checked = time(NULL);
		c->ari_start = c->ari_end = 0;
		agent_acme_cert_load(c, 0);
		log_info("acme %s: certificate obtained, valid until %s "
		    "(issuer %s)", c->name, agent_acme_time(c->not_after, b,
		    sizeof(b)), c->issuer);
		if (c->m->a->term != NULL &&
		    agent_term_reload(m->a, c->name, err, sizeof(err)) == -1)
			log_warnx("acme %s: TLS termination keeps the old "
			    "certificate: %s", c->name, err);
		agent_acme_hook(m, c);
		agent_acme_save_state(c);
		return;
	}
	m->failed++;
	c->order_state = AGENT_ORDER_FAILED;
	/* No certificate came of it: a manual retry (after a fix) is no
	 * duplicate. */
	if (c->manual_order == c->orders)
		c->manual_at = 0;
	c->st.failures++;
	delay = agent_acme_backoff(m, c->st.failures, retry_s);
	c->st.next_attempt = time(NULL) + delay;
	snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", msg);
	log_warnx("acme %s: %s%s; next attempt in %s (failure %u in a "
	    "row)", c->name, strcmp(kind, "rate") == 0 ? "" : "order failed: ",
	    msg, agent_acme_delay(delay, b, sizeof(b)), c->st.failures);
	agent_acme_save_state(c);
}

/* Both the result (or EOF) and the exit status are in: next job. */
static void
agent_acme_job_maybe_done(struct agent_acme *m)
{
	struct agent_cert	*c = m->job;
	char			 msg[128];

	if (c == NULL || m->job_bev != NULL || !m->job_reaped)
		return;
	if (!m->job_result) {
		if (WIFSIGNALED(m->job_status))
			snprintf(msg, sizeof(msg), "the ACME worker was "
			    "killed by signal %d", WTERMSIG(m->job_status));
		else
			snprintf(msg, sizeof(msg), "the ACME worker exited "
			    "with status %d and no result",
			    WEXITSTATUS(m->job_status));
		agent_acme_job_end(m, 0, "local", 0, msg);
	}
	m->job = NULL;
	m->job_pid = 0;
	c->ordering = 0;
	if (m->wait_name[0] != '\0') {
		evtimer_del(m->wait_timer);
		m->wait_name[0] = '\0';
	}
	if (c->present)
		agent_acme_schedule(c);
	else
		agent_acme_cert_drop(m, c);
	agent_acme_next(m);
}

/* A reload removed it while its job ran. */
static void
agent_acme_cert_drop(struct agent_acme *m, struct agent_cert *c)
{
	size_t	i;

	for (i = 0; i < m->ncerts; i++)
		if (m->certs[i] == c) {
			m->certs[i] = m->certs[--m->ncerts];
			break;
		}
	agent_acme_cert_free(c);
}

static unsigned
agent_acme_backoff(const struct agent_acme *m, unsigned failures,
    unsigned retry_s)
{
	const struct cfg_acme	*cf = m->a->cfg->acme;
	uint64_t		 ms;

	/* Jittered: replicas that failed together do not come back
	 * together. */
	ms = backoff_delay(failures, cf->retry_min_ms, cf->retry_max_ms);
	if (ms < (uint64_t)retry_s * 1000)
		ms = (uint64_t)retry_s * 1000;
	return (unsigned)((ms + 999) / 1000);
}

static void
agent_acme_save_state(struct agent_cert *c)
{
	char	err[512];

	if (acme_store_state_save(c->m->a->cfg->acme->state_dir, c->name,
	    &c->st, err, sizeof(err)) == -1)
		log_warnx("acme %s: %s", c->name, err);
}

static void
agent_acme_reply(struct agent_acme *m, const char *line)
{
	if (m->job_bev == NULL)
		return;
	bufferevent_write(m->job_bev, line, strlen(line));
	bufferevent_write(m->job_bev, "\n", 1);
}

/* ---- challenges: served here, claimed at every gateway ---- */

static int
agent_acme_parse_chal(const char *s, enum acme_chal *t)
{
	if (strcmp(s, "http-01") == 0)
		*t = ACME_CHAL_HTTP01;
	else if (strcmp(s, "tls-alpn-01") == 0)
		*t = ACME_CHAL_TLSALPN01;
	else
		return -1;
	return 0;
}

static void
agent_acme_chal_add(struct agent_acme *m, enum acme_chal type,
    const char *name, const char *token, const char *key_auth)
{
	struct agent		*a = m->a;
	struct agent_chal	*ch;
	struct timeval		 tv;
	size_t			 i, j;
	int			 ours = 0;

	/* Only names of the certificate being ordered, sane tokens. */
	for (i = 0; m->job != NULL && i < m->job->nnames; i++)
		ours |= strcmp(m->job->names[i], name) == 0;
	if (!ours || strlen(token) >= sizeof(ch->token) ||
	    strlen(key_auth) >= sizeof(ch->key_auth) ||
	    strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") != strlen(token)) {
		agent_acme_reply(m, "fail the agent refused this challenge");
		return;
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		agent_acme_reply(m, "fail the agent is out of memory");
		return;
	}
	ch->type = type;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	snprintf(ch->token, sizeof(ch->token), "%s", token);
	snprintf(ch->key_auth, sizeof(ch->key_auth), "%s", key_auth);
	TAILQ_INSERT_TAIL(&m->chals, ch, entry);
	log_info("acme %s: answering %s for %s", m->job->name,
	    acme_chal_name(type), name);
	/* Route the CA's probes here: claim the name with the ACME kind
	 * everywhere, and go on once each gateway has answered. */
	snprintf(m->wait_name, sizeof(m->wait_name), "%s", name);
	m->wait_left = m->wait_ok = 0;
	m->wait_refused[0] = '\0';
	for (j = 0; j < a->ngws; j++)
		if (agent_gw_is_up(a->gws[j]))
			m->wait_left++;
	agent_svc_reclaim(a, name);
	if (m->wait_left == 0) {
		agent_acme_wait_done(m);
		return;
	}
	tv.tv_sec = ACME_CLAIM_WAIT_MS / 1000;
	tv.tv_usec = (ACME_CLAIM_WAIT_MS % 1000) * 1000;
	evtimer_add(m->wait_timer, &tv);
}

/* A gateway answered a claim (agent_gw.c). */
void
agent_acme_claim_result(struct agent *a, const char *gw, const char *name,
    int ok)
{
	struct agent_acme	*m = a->acme;
	size_t			 n;

	if (m == NULL || m->wait_name[0] == '\0' ||
	    strcmp(m->wait_name, name) != 0 || m->wait_left == 0)
		return;
	m->wait_left--;
	if (ok)
		m->wait_ok++;
	else {
		n = strlen(m->wait_refused);
		snprintf(m->wait_refused + n, sizeof(m->wait_refused) - n,
		    "%s%s", n ? ", " : "", gw);
	}
	if (m->wait_left == 0)
		agent_acme_wait_done(m);
}

static void
agent_acme_wait_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent_acme	*m = arg;

	(void)fd;
	(void)ev;
	if (m->wait_name[0] != '\0')
		agent_acme_wait_done(m);
}

static void
agent_acme_wait_done(struct agent_acme *m)
{
	char	line[1024];

	evtimer_del(m->wait_timer);
	if (m->wait_ok > 0) {
		if (m->wait_refused[0] != '\0')
			log_warnx("acme: gateway(s) %s refused %s; the CA's "
			    "probes that land there will fail", m->wait_refused,
			    m->wait_name);
		agent_acme_reply(m, "ok");
	} else if (m->wait_refused[0] != '\0') {
		snprintf(line, sizeof(line), "fail every gateway refused to "
		    "route %s to this agent (%s); ask the gateway operators "
		    "to grant it to this agent's key", m->wait_name,
		    m->wait_refused);
		agent_acme_reply(m, line);
	} else {
		snprintf(line, sizeof(line), "fail no gateway tunnel is up, "
		    "so the CA cannot reach %s; check the gateways: "
		    "section and porchctl status", m->wait_name);
		agent_acme_reply(m, line);
	}
	m->wait_name[0] = '\0';
}

static void
agent_acme_chal_del(struct agent_acme *m, enum acme_chal type,
    const char *name, const char *token)
{
	struct agent_chal	*ch;

	TAILQ_FOREACH(ch, &m->chals, entry) {
		if (ch->type != type || strcmp(ch->name, name) != 0 ||
		    strcmp(ch->token, token) != 0)
			continue;
		TAILQ_REMOVE(&m->chals, ch, entry);
		free(ch);
		agent_svc_reclaim(m->a, name);
		return;
	}
}

/* The job ended: nothing stays published. */
static void
agent_acme_chal_clear(struct agent_acme *m)
{
	struct agent_chal	*ch;
	char			 name[NAME_MAX_LEN + 1];

	while ((ch = TAILQ_FIRST(&m->chals)) != NULL) {
		TAILQ_REMOVE(&m->chals, ch, entry);
		snprintf(name, sizeof(name), "%s", ch->name);
		free(ch);
		if (!m->a->exiting)
			agent_svc_reclaim(m->a, name);
	}
}

/* The ACME kinds to add to this name's claim. */
uint8_t
agent_acme_kinds(const struct agent *a, const char *name)
{
	const struct agent_chal	*ch;
	uint8_t			 k = 0;

	if (a->acme == NULL)
		return 0;
	TAILQ_FOREACH(ch, &a->acme->chals, entry)
		if (strcmp(ch->name, name) == 0)
			k |= ch->type == ACME_CHAL_HTTP01 ?
			    TUN_KIND_ACME_HTTP : TUN_KIND_ACME_TLS;
	return k;
}

/* Names with a pending challenge, for a tunnel that just came up. */
void
agent_acme_foreach_name(const struct agent *a,
    void (*cb)(const char *, void *), void *arg)
{
	const struct agent_chal	*ch, *prev;
	int			 seen;

	if (a->acme == NULL)
		return;
	TAILQ_FOREACH(ch, &a->acme->chals, entry) {
		seen = 0;
		TAILQ_FOREACH(prev, &a->acme->chals, entry) {
			if (prev == ch)
				break;
			seen |= strcmp(prev->name, ch->name) == 0;
		}
		if (!seen)
			cb(ch->name, arg);
	}
}

/*
 * A stream the gateway routed to us as an ACME probe.  Returns 0 if it
 * was taken, -1 if no challenge of ours matches (the caller treats it as
 * an ordinary visitor: the backend may run its own ACME client).
 */
int
agent_acme_open(struct agent *a, struct tun_stream *s,
    const struct tun_open *o)
{
	struct agent_acme	*m = a->acme;
	struct agent_chal	*ch;
	struct agent_http01	*h;
	struct bufferevent	*pair[2];
	struct timeval		 tv = { ACME_HTTP_WAIT_S, 0 };
	enum acme_chal		 want;

	if (m == NULL)
		return -1;
	want = o->kind == TUN_KIND_ACME_TLS ? ACME_CHAL_TLSALPN01 :
	    ACME_CHAL_HTTP01;
	TAILQ_FOREACH(ch, &m->chals, entry)
		if (ch->type == want && strcmp(ch->name, o->name) == 0)
			break;
	if (ch == NULL)
		return -1;
	if (want == ACME_CHAL_TLSALPN01) {
		agent_term_alpn01(a, s, ch->name, ch->key_auth);
		return 0;
	}
	/* http-01: read the request head here and answer it. */
	if (bufferevent_pair_new(a->base, BEV_OPT_CLOSE_ON_FREE, pair) == -1) {
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return 0;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return 0;
	}
	h->a = a;
	h->s = s;
	h->bev = pair[1];
	agent_stream_own(s, &h->own, &agent_http01_ops, h);
	snprintf(h->name, sizeof(h->name), "%s", o->name);
	bufferevent_setcb(h->bev, agent_http01_read_cb, NULL,
	    agent_http01_event_cb, h);
	bufferevent_set_timeouts(h->bev, &tv, &tv);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	tun_stream_attach(s, pair[0]);
	return 0;
}

static void
agent_http01_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent_http01	*h = arg;
	struct agent_acme	*m = h->a->acme;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 end;
	struct agent_chal	*ch = NULL;
	char			 line[512], *tok, *sp;
	const char		*status, *body;
	size_t			 n;

	if (h->replied) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1) {
		end = evbuffer_search(in, "\n\n", 2, NULL);
		if (end.pos == -1) {
			if (evbuffer_get_length(in) > ACME_HTTP_HEAD_MAX)
				agent_http01_done(h);
			return;
		}
	}
	n = evbuffer_copyout(in, line, sizeof(line) - 1);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	/* "GET /.well-known/acme-challenge/TOKEN HTTP/1.1" */
	if (strncmp(line, "GET ", 4) == 0 && strncmp(line + 4, TUN_ACME_PATH,
	    strlen(TUN_ACME_PATH)) == 0) {
		tok = line + 4 + strlen(TUN_ACME_PATH);
		if ((sp = strchr(tok, ' ')) != NULL)
			*sp = '\0';
		if (m != NULL)
			TAILQ_FOREACH(ch, &m->chals, entry)
				if (ch->type == ACME_CHAL_HTTP01 &&
				    strcmp(ch->name, h->name) == 0 &&
				    strcmp(ch->token, tok) == 0)
					break;
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	status = ch != NULL ? "200 OK" : "404 Not Found";
	body = ch != NULL ? ch->key_auth : "no such ACME challenge here\n";
	evbuffer_add_printf(bufferevent_get_output(bev), "HTTP/1.1 %s\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", status, strlen(body), body);
	log_info("acme %s: http-01 probe %s", h->name, ch != NULL ?
	    "answered" : "for an unknown token: 404");
	h->replied = 1;
	/* Close once the answer is out (the write callback fires when
	 * the output buffer drains). */
	bufferevent_setcb(bev, agent_http01_read_cb, agent_http01_write_cb,
	    agent_http01_event_cb, h);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	/* A pair may have passed it all on already. */
	agent_http01_write_cb(bev, h);
}

static void
agent_http01_write_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		agent_http01_done(arg);
}

static void
agent_http01_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_http01	*h = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		/* The prober neither sent a request nor went away. */
		tun_stream_reset(h->s, TUN_E_CANCEL, "http-01 probe timed out");
		return;		/* freed by agent_http01_closed */
	}
	bufferevent_disable(bev, EV_READ);
	if (!h->replied)
		agent_http01_done(h);
}

/* Our side is done: EOF to the stream's end, and wait for it to go. */
static void
agent_http01_done(struct agent_http01 *h)
{
	/* The read timeout stays armed: a prober that never closes is
	 * reset rather than kept. */
	bufferevent_disable(h->bev, EV_WRITE);
	bufferevent_flush(h->bev, EV_WRITE, BEV_FINISHED);
}

/* The stream ended: the probe's only exit. */
static void
agent_http01_closed(struct tun_stream *s, const char *reason, void *arg)
{
	struct agent_http01	*h = arg;

	(void)s;
	(void)reason;
	bufferevent_free(h->bev);
	free(h);
}

/* ---- children and hooks ---- */

static void
agent_acme_sigchld_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct agent_acme	*m = arg;
	struct agent_hook	*h;
	pid_t			 pid;
	int			 st;

	(void)sig;
	(void)ev;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == m->job_pid) {
			m->job_reaped = 1;
			m->job_status = st;
			agent_acme_job_maybe_done(m);
			continue;
		}
		TAILQ_FOREACH(h, &m->hooks, entry)
			if (h->pid == pid)
				break;
		if (h == NULL)
			continue;
		TAILQ_REMOVE(&m->hooks, h, entry);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			log_info("acme %s: renew_hook done", h->name);
		else if (WIFEXITED(st))
			log_warnx("acme %s: renew_hook exited with status %d; "
			    "the new certificate is saved, but whatever the "
			    "hook reloads may still use the old one", h->name,
			    WEXITSTATUS(st));
		else
			log_warnx("acme %s: renew_hook killed by signal %d",
			    h->name, WTERMSIG(st));
		free(h);
	}
}

/* Jobs and hooks are bounded: nothing hangs forever. */
static void
agent_acme_watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent_acme	*m = arg;
	struct agent_hook	*h;
	time_t			 now = time(NULL);

	(void)fd;
	(void)ev;
	if (m->job_pid > 0 && !m->job_reaped &&
	    now - m->job_started > ACME_JOB_MAX_S) {
		log_warnx("acme %s: the order took over %d minutes; stopping "
		    "it", m->job->name, ACME_JOB_MAX_S / 60);
		kill(m->job_pid, SIGKILL);
	}
	TAILQ_FOREACH(h, &m->hooks, entry)
		if (now - h->started > ACME_HOOK_MAX_S) {
			log_warnx("acme %s: renew_hook still running after "
			    "%d s; killing it", h->name, ACME_HOOK_MAX_S);
			kill(h->pid, SIGKILL);
			h->started = now;	/* once */
		}
}

/* Run the configured command; it learns which certificate changed. */
static void
agent_acme_hook(struct agent_acme *m, const struct agent_cert *c)
{
	const struct cfg_acme	*cf = m->a->cfg->acme;
	struct agent_hook	*h;
	char			 dir[1024], names[2048];
	size_t			 i, n = 0;
	pid_t			 pid;

	if (cf->renew_hook == NULL)
		return;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_warnx("acme %s: renew_hook not run: out of memory",
		    c->name);
		return;
	}
	acme_store_cert_dir(cf->state_dir, c->name, dir, sizeof(dir));
	names[0] = '\0';
	for (i = 0; i < c->nnames && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s",
		    i ? " " : "", c->names[i]);
	if ((pid = fork()) == -1) {
		log_warn("acme %s: renew_hook: fork", c->name);
		free(h);
		return;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		setenv("PORCH_CERT_NAME", c->name, 1);
		setenv("PORCH_CERT_NAMES", names, 1);
		setenv("PORCH_CERT_DIR", dir, 1);
		/* A hook that starts a daemon must not keep our sockets. */
		closefrom(3);
		execl("/bin/sh", "sh", "-c", cf->renew_hook, (char *)NULL);
		_exit(127);
	}
	h->pid = pid;
	h->started = time(NULL);
	snprintf(h->name, sizeof(h->name), "%s", c->name);
	TAILQ_INSERT_TAIL(&m->hooks, h, entry);
	log_info("acme %s: running renew_hook (pid %ld)", c->name, (long)pid);
}

static const char *
agent_acme_delay(unsigned s, char *buf, size_t len)
{
	if (s >= 2 * 60 * 60)
		snprintf(buf, len, "%uh%02um", s / 3600, s / 60 % 60);
	else if (s >= 2 * 60)
		snprintf(buf, len, "%um%02us", s / 60, s % 60);
	else
		snprintf(buf, len, "%us", s);
	return buf;
}

static const char *
agent_acme_time(time_t t, char *buf, size_t len)
{
	struct tm	tm;

	if (t <= 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

/* ---- status ---- */

static const char *
agent_acme_order_state(enum agent_order_state s)
{
	switch (s) {
	case AGENT_ORDER_RUNNING:
		return "running";
	case AGENT_ORDER_SUCCEEDED:
		return "succeeded";
	case AGENT_ORDER_FAILED:
		return "failed";
	default:
		return "none";
	}
}

json_t *
agent_acme_status(struct agent *a)
{
	struct agent_acme	*m = a->acme;
	struct agent_cert	*c;
	json_t			*arr, *o, *names;
	time_t			 now = time(NULL);
	char			 b1[64], b2[64], b3[64], b4[64];
	const char		*hold;
	size_t			 i, j;

	if ((arr = json_array()) == NULL || m == NULL)
		return arr;
	for (i = 0; i < m->ncerts; i++) {
		c = m->certs[i];
		if ((names = json_array()) == NULL)
			continue;
		for (j = 0; j < c->nnames; j++)
			json_array_append_new(names, json_string(c->names[j]));
		o = json_pack("{s:s, s:o, s:s, s:s, s:s, s:I, s:s, s:s, s:s, "
		    "s:s, s:i, s:s, s:b}",
		    "name", c->name, "names", names,
		    "serial", c->have ? c->serial : "",
		    "state", c->ordering ? "ordering" : !c->have ? "none" :
		    now >= c->not_after ? "expired" : c->st.failures ?
		    "valid, renewal failing" : "valid",
		    "not_after", c->have ? agent_acme_time(c->not_after, b1,
		    sizeof(b1)) : "",
		    "expires_in_s", (json_int_t)(c->have ? c->not_after - now :
		    0),
		    "issuer", c->issuer,
		    "next_attempt", c->ordering ? "now" :
		    agent_acme_time(c->due, b2, sizeof(b2)),
		    "last_success", agent_acme_time(c->st.last_success, b3,
		    sizeof(b3)),
		    "last_attempt", agent_acme_time(c->st.last_attempt, b4,
		    sizeof(b4)),
		    "failures", (int)c->st.failures,
		    "last_error", c->st.last_error,
		    "renewal_info", c->ari_end > 0);
		if (o == NULL)
			continue;
		/* The latest order by id (porchctl cert renew --wait), and
		 * what holds back one that was asked for. */
		json_object_set_new(o, "order_id",
		    json_integer((json_int_t)c->orders));
		json_object_set_new(o, "order_state", json_string(
		    agent_acme_order_state(c->order_state)));
		json_object_set_new(o, "order_pending", json_string(
		    !c->requested || c->ordering ? "" :
		    (hold = agent_acme_hold(m)) != NULL ? hold :
		    "ordering now"));
		json_array_append_new(arr, o);
	}
	return arr;
}

void
agent_acme_metrics(struct agent *a, struct evbuffer *out)
{
	struct agent_acme	*m = a->acme;
	struct agent_cert	*c;
	size_t			 i;

	if (m == NULL)
		return;
	evbuffer_add_printf(out, "# HELP porch_agent_cert_expiry_seconds "
	    "Unix time the current certificate expires (0: none).\n"
	    "# TYPE porch_agent_cert_expiry_seconds gauge\n");
	for (i = 0; i < m->ncerts; i++) {
		c = m->certs[i];
		evbuffer_add_printf(out, "porch_agent_cert_expiry_seconds"
		    "{name=\"%s\"} %lld\n", c->name, c->have ?
		    (long long)c->not_after : 0LL);
	}
	evbuffer_add_printf(out, "# HELP porch_agent_cert_failures Failed "
	    "orders in a row.\n# TYPE porch_agent_cert_failures gauge\n");
	for (i = 0; i < m->ncerts; i++)
		evbuffer_add_printf(out, "porch_agent_cert_failures"
		    "{name=\"%s\"} %u\n", m->certs[i]->name,
		    m->certs[i]->st.failures);
	evbuffer_add_printf(out, "# HELP porch_agent_certs_issued_total "
	    "Certificates obtained since start.\n"
	    "# TYPE porch_agent_certs_issued_total counter\n"
	    "porch_agent_certs_issued_total %llu\n"
	    "# HELP porch_agent_cert_orders_failed_total Orders that failed "
	    "since start.\n# TYPE porch_agent_cert_orders_failed_total "
	    "counter\nporch_agent_cert_orders_failed_total %llu\n",
	    (unsigned long long)m->issued, (unsigned long long)m->failed);
}
