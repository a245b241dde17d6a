/* SPDX-License-Identifier: ISC */
/*
 * One record for the CA, through the dns: section: the TXT of a dns-01
 * challenge (RFC 8555 8.4) or a CAA pin (RFC 8657).  Published by RFC
 * 2136, then asked for at each name server of the zone directly (not
 * through a cache) until every one has it: only then may the CA look.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "addr.h"
#include "agent.h"
#include "agent_dns_priv.h"
#include "dns.h"
#include "log.h"
#include "mono.h"

#define AGENT_DNS_REC_WAIT_MS	50000	/* the order child waits 60 s */
#define AGENT_DNS_REC_POLL_MS	500

/* Report (once), and free. */
void
agent_dns_rec_end(struct agent_dns_rec *x, int ok, const char *msg)
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
agent_dns_rec_nservers(struct agent_dns *d)
{
	const struct cfg_dns	*c = d->a->cfg->dns;

	return c->nnameservers > 0 ? c->nnameservers : 1;
}

static void	agent_dns_rec_ask(struct agent_dns_rec *);

/*
 * The look after an answer, from a timer: the answer came inside
 * c-ares, whose channel must not be freed from its own callback.
 */
static void
agent_dns_rec_again(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns_rec	*x = arg;

	(void)fd;
	(void)what;
	if (x->seen) {
		x->seen = 0;
		dns_free(x->probe);
		x->probe = NULL;
		if (++x->ns == agent_dns_rec_nservers(x->d)) {
			log_info("dns: %s %s is at every name server",
			    x->owner, x->type == DDNS_TXT ? "TXT" : "CAA");
			agent_dns_rec_end(x, 1, "");
			return;
		}
	} else if (mono_ms() >= x->deadline) {
		agent_dns_rec_end(x, 0, x->type == DDNS_TXT ? "the TXT "
		    "record did not reach every name server of the zone in "
		    "time (check dns.nameservers and the zone's transfers)" :
		    "the CAA record did not reach every name server of the "
		    "zone in time (check dns.nameservers and the zone's "
		    "transfers)");
		return;
	}
	agent_dns_rec_ask(x);
}

static void
agent_dns_rec_answer(int err, const unsigned char *msg, size_t len, void *arg)
{
	struct agent_dns_rec	*x = arg;
	struct ddns_rrset	*set;
	struct timeval		 tv = { 0, AGENT_DNS_REC_POLL_MS * 1000 };
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
agent_dns_rec_ask(struct agent_dns_rec *x)
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
			agent_dns_rec_end(x, 0, "dns.nameservers must be IP "
			    "addresses with a port");
			return;
		}
		if ((x->probe = dns_new_direct(d->a->base,
		    (struct sockaddr *)&ss, sslen, why, sizeof(why))) == NULL) {
			agent_dns_rec_end(x, 0, why);
			return;
		}
	}
	x->query = dns_query(x->probe, x->owner, x->type,
	    agent_dns_rec_answer, x);
}

static void
agent_dns_rec_synced(const struct ddns_result *res, size_t changes,
    const struct ddns_rrset *have, void *arg)
{
	struct agent_dns_rec	*x = arg;

	(void)changes;
	(void)have;
	x->sync = NULL;
	if (res->status != DDNS_OK) {
		log_warnx("dns: %s %s: %s", x->owner, x->type == DDNS_TXT ?
		    "TXT" : "CAA", res->text);
		agent_dns_rec_end(x, 0, res->text);
		return;
	}
	if (!x->add) {
		agent_dns_rec_end(x, 1, "");
		return;
	}
	agent_dns_rec_ask(x);
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
	struct agent_dns_rec	*x;
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
	x->deadline = mono_ms() + AGENT_DNS_REC_WAIT_MS;
	snprintf(x->owner, sizeof(x->owner), "%s", owner);
	snprintf(x->value, sizeof(x->value), "%s", rdata);
	TAILQ_INSERT_TAIL(&d->dns01, x, entry);
	one[0] = x->value;
	if ((x->timer = evtimer_new(a->base, agent_dns_rec_again, x)) == NULL ||
	    (x->sync = ddns_sync(a->base, d->direct,
	    (struct sockaddr *)&d->server, d->serverlen, c->zone, &d->key,
	    x->owner, type, c->ttl_ms / 1000, add ? one : NULL, add ? 1 : 0,
	    add ? NULL : one, add ? 0 : 1, agent_dns_rec_synced, x)) == NULL) {
		x->done = NULL;
		agent_dns_rec_end(x, 0, "");
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
