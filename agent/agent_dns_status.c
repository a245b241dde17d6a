/* SPDX-License-Identifier: ISC */
/*
 * The DNS module in /status, porchctl status and /metrics: per name and
 * type what is wanted, published and being deleted, with the last
 * result; and the gateways heard of, as the records see them.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "addr.h"
#include "agent.h"
#include "agent_dns_priv.h"
#include "mono.h"

json_t *
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

/* The three figures of a set, by their metric's name. */
static unsigned long
agent_dns_figure(const struct agent_dns_set *s, const char *metric)
{
	if (strcmp(metric, "porch_agent_dns_ok") == 0)
		return (unsigned long)s->ok;
	if (strcmp(metric, "porch_agent_dns_records") == 0)
		return s->npublished;
	return s->updates;
}

void
agent_dns_metrics(struct agent *a, struct evbuffer *out)
{
	static const struct {
		const char	*name, *type, *help;
	} m[] = {
		{ "porch_agent_dns_ok", "gauge",
		  "Whether the last update of the record set worked." },
		{ "porch_agent_dns_records", "gauge",
		  "Records published, as last read." },
		{ "porch_agent_dns_changes_total", "counter",
		  "Records added or deleted." },
	};
	struct agent_dns	*d = a->dnsu;
	size_t			 i, j;

	if (d == NULL)
		return;
	for (j = 0; j < sizeof(m) / sizeof(m[0]); j++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    m[j].name, m[j].help, m[j].name, m[j].type);
		for (i = 0; i < d->nsets; i++)
			evbuffer_add_printf(out, "%s{hostname=\"%s\","
			    "type=\"%s\"} %lu\n", m[j].name, d->sets[i].name,
			    d->sets[i].type == DDNS_A ? "A" : "AAAA",
			    agent_dns_figure(&d->sets[i], m[j].name));
	}
}
