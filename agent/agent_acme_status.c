/* SPDX-License-Identifier: ISC */
/*
 * What the certificates look like from outside: the status list behind
 * porchctl cert status (and cert renew --wait, which follows an order by
 * its id) and the Prometheus metrics.
 */

#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "agent.h"
#include "agent_acme_priv.h"

static const char *agent_acme_order_state(enum agent_order_state);

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
