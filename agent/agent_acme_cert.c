/* SPDX-License-Identifier: ISC */
/*
 * One certificate's renewal schedule: what the store holds for it, when
 * to order or to ask the CA's renewal information next, backoff after
 * failures (saved, so that restarts keep it), and orders asked for by
 * hand (porchctl cert renew).  The most overdue certificate gets the one
 * job slot once the gateway tunnels are up.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "acme_crypto.h"
#include "acme_store.h"
#include "agent.h"
#include "agent_acme_priv.h"
#include "backoff.h"
#include "log.h"

#define ACME_ARI_EVERY_S	(6 * 60 * 60)
#define ACME_SETTLE_S		5	/* after the first tunnel is up */
/* Between manual renewals of a name: a CA allows few duplicates (Let's
 * Encrypt: 5 a week), and renewing again so soon has no use. */
#define ACME_MANUAL_EVERY_S	(10 * 60)

static void	agent_acme_arm(struct agent_cert *);
static int	agent_acme_gws_ready(struct agent_acme *);
static int	agent_acme_probed(const struct agent_acme *);
static int	agent_acme_uses_dns01(const struct agent_acme *);
static int	agent_acme_gws_settled(const struct agent_acme *);

struct agent_cert *
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
int
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

void
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
void
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

/* A reload removed it while its job ran. */
void
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

/*
 * When to act next.  A missing certificate, or one for other names, is
 * ordered now; a good one at two thirds of its lifetime, less a random
 * share so that replicas and restarts spread out, or inside the CA's
 * renewal window once known.  A failure pushes the attempt back
 * exponentially, and the saved schedule survives restarts, so the CA
 * never sees a tight loop.  An order asked for (porchctl cert renew)
 * goes first, backoff or not: a person is waiting for it.
 */
void
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

void
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
void
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
	if (best->due_kind == AGENT_JOB_ORDER && ((agent_acme_probed(m) &&
	    !agent_acme_gws_ready(m)) || (agent_acme_uses_dns01(m) &&
	    !agent_dns_ready(m->a)))) {
		/* The CA's probes need a way in (a gateway coming up calls
		 * us again), or dns-01 its DNS server found. */
		struct timeval tv = { 1, 0 };

		evtimer_add(best->timer, &tv);
		return;
	}
	if (agent_acme_spawn(m, best, best->due_kind) == -1) {
		best->due = now + 60;
		agent_acme_arm(best);
	}
}

/* The CA's probes come through the gateways: any challenge but dns-01. */
static int
agent_acme_probed(const struct agent_acme *m)
{
	const struct cfg_acme	*c = m->a->cfg->acme;
	size_t			 i;

	for (i = 0; i < c->nchallenges; i++)
		if (c->challenges[i] != CFG_CHALLENGE_DNS01)
			return 1;
	return 0;
}

static int
agent_acme_uses_dns01(const struct agent_acme *m)
{
	const struct cfg_acme	*c = m->a->cfg->acme;
	size_t			 i;

	for (i = 0; i < c->nchallenges; i++)
		if (c->challenges[i] == CFG_CHALLENGE_DNS01)
			return 1;
	return 0;
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
const char *
agent_acme_hold(const struct agent_acme *m)
{
	if (m->job != NULL)
		return "ordering after the running job";
	if (m->a->stopping)
		return "not ordering: the agent is stopping";
	if (agent_acme_probed(m) && !agent_acme_gws_settled(m))
		return "ordering once the gateway tunnels are up";
	if (agent_acme_uses_dns01(m) && !agent_dns_ready(m->a))
		return "ordering once the DNS server is found (dns-01)";
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

unsigned
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

void
agent_acme_save_state(struct agent_cert *c)
{
	char	err[512];

	if (acme_store_state_save(c->m->a->cfg->acme->state_dir, c->name,
	    &c->st, err, sizeof(err)) == -1)
		log_warnx("acme %s: %s", c->name, err);
}
