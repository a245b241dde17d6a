/* SPDX-License-Identifier: ISC */
/*
 * Challenges published: the answers the job's child asks us to serve
 * while the CA validates.  Publishing one claims its name with the ACME
 * kind on every gateway, so that the CA's probes reach this agent and no
 * other replica, and the child goes on once each gateway has answered
 * (or after a few seconds).  Probe streams are matched to a published
 * challenge here and handed to the responder of its type.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "acme.h"
#include "agent.h"
#include "ddns.h"
#include "agent_acme_priv.h"
#include "log.h"

#define ACME_CLAIM_WAIT_MS	5000	/* gateways confirming a claim */

static void	agent_acme_wait_done(struct agent_acme *);
static void	agent_acme_dns01(struct agent_acme *,
		    const struct agent_chal *);

void
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
	if (type == ACME_CHAL_DNS01) {
		agent_acme_dns01(m, ch);
		return;
	}
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

/* A dns-01 answer in flight: who to tell, found again by name (the
 * ACME module may have been replaced by a reload meanwhile). */
struct agent_acme_dns01_wait {
	struct agent	*a;
	char		 name[NAME_MAX_LEN + 1];
	char		 token[128];
};

static void
agent_acme_dns01_done(int ok, const char *msg, void *arg)
{
	struct agent_acme_dns01_wait	*w = arg;
	struct agent_acme		*m = w->a->acme;
	struct agent_chal		*ch;
	char				 line[400];

	if (m != NULL)
		TAILQ_FOREACH(ch, &m->chals, entry)
			if (ch->type == ACME_CHAL_DNS01 &&
			    strcmp(ch->name, w->name) == 0 &&
			    strcmp(ch->token, w->token) == 0) {
				if (ok)
					agent_acme_reply(m, "ok");
				else {
					snprintf(line, sizeof(line), "fail %s",
					    msg);
					agent_acme_reply(m, line);
				}
				break;
			}
	free(w);
}

/* dns-01: the TXT record, through the dns: section, instead of a claim. */
static void
agent_acme_dns01(struct agent_acme *m, const struct agent_chal *ch)
{
	struct agent_acme_dns01_wait	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		agent_acme_reply(m, "fail the agent is out of memory");
		return;
	}
	w->a = m->a;
	snprintf(w->name, sizeof(w->name), "%s", ch->name);
	snprintf(w->token, sizeof(w->token), "%s", ch->token);
	if (agent_dns_acme(m->a, ch->name, ch->key_auth, 1,
	    agent_acme_dns01_done, w) == -1) {
		free(w);
		agent_acme_reply(m, "fail dns-01 needs the dns: section with "
		    "provider rfc2136 and its server looked up");
	}
}

/* The CAA records of one job in flight. */
struct agent_acme_caa_wait {
	struct agent	*a;
	char		 job[NAME_MAX_LEN + 1];
	unsigned	 left;
	int		 failed;
	char		 why[300];
};

static void
agent_acme_caa_done(int ok, const char *msg, void *arg)
{
	struct agent_acme_caa_wait	*w = arg;
	struct agent_acme		*m = w->a->acme;
	char				 line[400];

	if (!ok && !w->failed) {
		w->failed = 1;
		snprintf(w->why, sizeof(w->why), "%s", msg);
	}
	if (--w->left > 0)
		return;
	/* The job that asked may be gone (a reload, a stop). */
	if (m != NULL && m->job != NULL && strcmp(m->job->name, w->job) == 0) {
		if (!w->failed)
			agent_acme_reply(m, "ok");
		else {
			snprintf(line, sizeof(line), "fail %s", w->why);
			agent_acme_reply(m, line);
		}
	}
	free(w);
}

void
agent_acme_caa(struct agent_acme *m, const char *issuer,
    const char *account_url)
{
	struct agent_acme_caa_wait	*w;
	struct agent_cert		*c = m->job;
	const char			*name;
	char				 rdata[600];
	size_t				 i;

	/* Both go into a quoted CAA value: no quotes, spaces or ';'. */
	if (c == NULL || strcspn(issuer, "\" ;\\") != strlen(issuer) ||
	    strcspn(account_url, "\" ;\\") != strlen(account_url) ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		agent_acme_reply(m, "fail the agent refused this CAA record");
		return;
	}
	w->a = m->a;
	snprintf(w->job, sizeof(w->job), "%s", c->name);
	w->left = (unsigned)c->nnames + 1;	/* +1: held until all start */
	for (i = 0; i < c->nnames; i++) {
		name = c->names[i];
		snprintf(rdata, sizeof(rdata), "0 %s \"%s; accounturi=%s\"",
		    strncmp(name, "*.", 2) == 0 ? "issuewild" : "issue",
		    issuer, account_url);
		log_info("acme %s: pinning CAA of %s to %s", c->name,
		    strncmp(name, "*.", 2) == 0 ? name + 2 : name,
		    account_url);
		if (agent_dns_record(m->a, strncmp(name, "*.", 2) == 0 ?
		    name + 2 : name, DDNS_CAA, rdata, 1, agent_acme_caa_done,
		    w) == -1)
			agent_acme_caa_done(0, "CAA records need the dns: "
			    "section with provider rfc2136 and its server "
			    "looked up", w);
	}
	agent_acme_caa_done(1, "", w);
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

void
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

void
agent_acme_chal_del(struct agent_acme *m, enum acme_chal type,
    const char *name, const char *token)
{
	struct agent_chal	*ch;

	TAILQ_FOREACH(ch, &m->chals, entry) {
		if (ch->type != type || strcmp(ch->name, name) != 0 ||
		    strcmp(ch->token, token) != 0)
			continue;
		TAILQ_REMOVE(&m->chals, ch, entry);
		if (type == ACME_CHAL_DNS01)
			agent_dns_acme(m->a, ch->name, ch->key_auth, 0, NULL,
			    NULL);
		else
			agent_svc_reclaim(m->a, name);
		free(ch);
		return;
	}
}

/* The job ended: nothing stays published. */
void
agent_acme_chal_clear(struct agent_acme *m)
{
	struct agent_chal	*ch;
	char			 name[NAME_MAX_LEN + 1];

	while ((ch = TAILQ_FIRST(&m->chals)) != NULL) {
		TAILQ_REMOVE(&m->chals, ch, entry);
		snprintf(name, sizeof(name), "%s", ch->name);
		if (ch->type == ACME_CHAL_DNS01 && !m->a->exiting)
			agent_dns_acme(m->a, ch->name, ch->key_auth, 0, NULL,
			    NULL);
		else if (!m->a->exiting)
			agent_svc_reclaim(m->a, name);
		free(ch);
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
		if (strcmp(ch->name, name) == 0 && ch->type != ACME_CHAL_DNS01)
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
		if (ch->type == ACME_CHAL_DNS01)
			continue;	/* a TXT record: nothing to claim */
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
	agent_acme_http01_open(a, s, o->name);
	return 0;
}
