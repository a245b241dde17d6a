/* SPDX-License-Identifier: ISC */
/*
 * Certificates by ACME, obtained and renewed at home.  The agent keeps one
 * schedule per certificate (a service with "certificate: acme",
 * agent_acme_cert.c) and runs each order in a child process
 * (agent_acme_job.c): the ACME client blocks on the CA, and a slow or
 * hostile CA must never stall the visitors' event loop.  While a
 * challenge is published (agent_acme_chal.c), the agent adds the ACME
 * kinds to its claim of the name on every gateway, so the CA's probes
 * reach this agent and no other replica.  It answers them itself:
 * http-01 in agent_acme_http01.c, tls-alpn-01 in agent_term.c.  One job
 * runs at a time; the others wait their turn.
 *
 * This file holds the module itself: its certificates as the config
 * lists them, from startup through reloads to the end.
 */

#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>

#include "acme_store.h"
#include "agent.h"
#include "agent_acme_priv.h"
#include "log.h"

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

/*
 * Needs the event base: timers, the child watcher, the first jobs.  -1
 * when out of memory, before anything started: agent_acme_free() then.
 */
int
agent_acme_start(struct agent *a)
{
	struct agent_acme	*m = a->acme;
	struct timeval		 tv = { 1, 0 };
	size_t			 i;

	if (m == NULL)
		return 0;
	m->watchdog = event_new(a->base, -1, EV_PERSIST,
	    agent_acme_watchdog_cb, m);
	m->wait_timer = evtimer_new(a->base, agent_acme_wait_cb, m);
	if (m->watchdog == NULL || m->wait_timer == NULL)
		return -1;
	for (i = 0; i < m->ncerts; i++)
		if ((m->certs[i]->timer = evtimer_new(a->base,
		    agent_acme_timer_cb, m->certs[i])) == NULL)
			return -1;
	event_add(m->watchdog, &tv);
	for (i = 0; i < m->ncerts; i++) {
		agent_acme_cert_load(m->certs[i], 1);
		agent_acme_schedule(m->certs[i]);
	}
	return 0;
}

void
agent_acme_free(struct agent *a)
{
	struct agent_acme	*m = a->acme;
	size_t			 i;

	if (m == NULL)
		return;
	if (m->job_pid > 0) {
		/* The order cannot finish without us; a later start
		 * begins it again. */
		kill(m->job_pid, SIGTERM);
		waitpid(m->job_pid, NULL, 0);
		agent_child_forget(a, m->job_pid);
	}
	agent_acme_hook_clear(m);
	if (m->job_bev != NULL)
		bufferevent_free(m->job_bev);
	agent_acme_chal_clear(m);
	for (i = 0; i < m->ncerts; i++)
		agent_acme_cert_free(m->certs[i]);
	free(m->certs);
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
		} else if (agent_acme_start(a) == -1) {
			log_warnx("reload: acme: out of memory");
			agent_acme_free(a);
		}
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
		} else if (agent_acme_start(a) == -1) {
			log_warnx("reload: acme: out of memory; certificates "
			    "are not renewed until the next reload");
			agent_acme_free(a);
		}
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

const char *
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

const char *
agent_acme_time(time_t t, char *buf, size_t len)
{
	struct tm	tm;

	if (t <= 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}
