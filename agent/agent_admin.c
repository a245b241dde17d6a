/* SPDX-License-Identifier: ISC */
/*
 * The agent's admin listener: GET /status (JSON: each gateway's tunnel,
 * each service with its health verdict and last check), GET /metrics
 * (Prometheus text) and POST /acme/renew.  Meant for loopback: requests
 * a browser makes for another site are refused (admin_check), and the
 * action needs the secret in admin.secret next to the config, which
 * porchctl reads.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "admin.h"
#include "agent.h"
#include "log.h"

static void	agent_admin_cb(struct evhttp_request *, void *);
static json_t	*agent_admin_status(struct agent *);
static json_t	*agent_admin_service(struct agent *,
		    const struct agent_service *);
static void	 agent_admin_post(struct agent *, struct evhttp_request *,
		    struct evbuffer *);
static void	 agent_admin_metrics(struct agent *, struct evbuffer *);

int
agent_admin_start(struct agent *a, char *err, size_t errlen)
{
	const struct cfg_listen	*cl = a->cfg->admin;

	if (cl == NULL)
		return 0;
	admin_secret_path(a->cfg->file, a->admin_secret_path,
	    sizeof(a->admin_secret_path));
	if (admin_secret_load(a->admin_secret_path, 1, a->admin_secret, err,
	    errlen) == -1)
		return -1;
	a->admin = admin_start(a->base, &cl->ss, cl->sslen, cl->text,
	    agent_admin_cb, a, err, errlen);
	if (a->admin == NULL)
		return -1;
	snprintf(a->admin_text, sizeof(a->admin_text), "%s", cl->text);
	return 0;
}

void
agent_admin_stop(struct agent *a)
{
	if (a->admin != NULL) {
		evhttp_free(a->admin);
		a->admin = NULL;
	}
	a->admin_text[0] = '\0';
}

/* After a reload: follow a moved or removed admin address. */
void
agent_admin_reload(struct agent *a)
{
	const struct cfg_listen	*cl = a->cfg->admin;
	char			 err[256];

	if (cl != NULL && a->admin != NULL &&
	    strcmp(cl->text, a->admin_text) == 0)
		return;
	agent_admin_stop(a);
	if (agent_admin_start(a, err, sizeof(err)) == -1)
		log_warnx("reload: %s", err);
}

static void
agent_admin_cb(struct evhttp_request *req, void *arg)
{
	struct agent	*a = arg;
	struct evbuffer	*out;
	const char	*uri = evhttp_request_get_uri(req);
	json_t		*o;
	char		*text;

	if (admin_check(req, a->admin_text) == -1)
		return;
	if ((out = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		agent_admin_post(a, req, out);
		return;
	}
	if (strcmp(uri, "/status") == 0) {
		o = agent_admin_status(a);
		text = o != NULL ? json_dumps(o, JSON_INDENT(2) |
		    JSON_SORT_KEYS) : NULL;
		evbuffer_add_printf(out, "%s\n", text != NULL ? text :
		    "{\"error\": \"out of memory\"}");
		free(text);
		json_decref(o);
		admin_reply(req, "application/json", out);
	} else if (strcmp(uri, "/metrics") == 0) {
		agent_admin_metrics(a, out);
		admin_reply(req, "text/plain; version=0.0.4", out);
	} else {
		evbuffer_free(out);
		admin_not_found(req);
	}
}

/*
 * POST /acme/renew?name=NAME: order that certificate now.  202 with a
 * line for people and the header Porch-Order: the order_id under which
 * /status shows that order's outcome; 429 within the minimum interval
 * after the last request (the line says when).
 */
static void
agent_admin_post(struct agent *a, struct evhttp_request *req,
    struct evbuffer *out)
{
	const struct evhttp_uri	*u = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq	 q;
	const char		*name = NULL, *path, *query;
	char			 msg[512], id[32];
	uint64_t		 order = 0;
	int			 rc;

	path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	query = u != NULL ? evhttp_uri_get_query(u) : NULL;
	TAILQ_INIT(&q);
	if (admin_check_secret(req, a->admin_secret,
	    a->admin_secret_path) == -1) {
		evbuffer_free(out);
		return;
	}
	if (path == NULL || strcmp(path, "/acme/renew") != 0) {
		evbuffer_free(out);
		admin_not_found(req);
		return;
	}
	if (query != NULL && evhttp_parse_query_str(query, &q) == 0)
		name = evhttp_find_header(&q, "name");
	if (name == NULL) {
		snprintf(msg, sizeof(msg), "missing ?name=HOSTNAME");
		rc = -1;
	} else
		rc = agent_acme_renew_now(a, name, &order, msg, sizeof(msg));
	evhttp_clear_headers(&q);
	evbuffer_add_printf(out, "%s\n", msg);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	/* The order to follow in /status (order_id): porchctl --wait. */
	if (rc == 0) {
		snprintf(id, sizeof(id), "%llu", (unsigned long long)order);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Porch-Order", id);
	}
	evhttp_send_reply(req, rc == 0 ? 202 : rc == -2 ? 429 : 400,
	    rc == 0 ? "Accepted" : rc == -2 ? "Too Many Requests" :
	    "Bad Request", out);
	evbuffer_free(out);
}

static json_t *
agent_admin_status(struct agent *a)
{
	const struct agent_service	*svc;
	json_t				*gws, *svcs, *o;
	char				 kt[KEY_TEXT_LEN];
	size_t				 i;

	if ((gws = json_array()) == NULL || (svcs = json_array()) == NULL) {
		json_decref(gws);
		return NULL;
	}
	for (i = 0; i < a->ngws; i++)
		if ((o = agent_gw_status(a->gws[i])) != NULL)
			json_array_append_new(gws, o);
	for (i = 0; i < a->nservices; i++) {
		svc = a->services[i];
		if ((o = agent_admin_service(a, svc)) != NULL)
			json_array_append_new(svcs, o);
	}
	return json_pack("{s:{s:s, s:s, s:b}, s:o, s:o, s:o*, s:o*}",
	    "agent", "name", a->cfg->name, "key", key_pub_text(a->key.pub, kt),
	    "draining", a->stopping, "gateways", gws, "services", svcs,
	    "certificates", agent_acme_status(a), "dns", agent_dns_status(a));
}

/*
 * One service: its backends and health, and what each gateway said of
 * its claim.  "claimed" is true only while some gateway routes it.
 */
static json_t *
agent_admin_service(struct agent *a, const struct agent_service *svc)
{
	struct agent_health_info	 hi;
	json_t				*per, *g;
	const char			*state, *msg;
	int				 claimed = 0;
	size_t				 i;

	if ((per = json_object()) == NULL)
		return NULL;
	for (i = 0; i < a->ngws; i++) {
		state = agent_gw_claim_state(a->gws[i], svc->cfg->hostname,
		    &msg);
		claimed |= strcmp(state, "claimed") == 0;
		g = msg[0] != '\0' ? json_pack("{s:s, s:s}", "state", state,
		    "reason", msg) : json_pack("{s:s}", "state", state);
		if (g != NULL)
			json_object_set_new(per, agent_gw_name(a->gws[i]), g);
	}
	memset(&hi, 0, sizeof(hi));
	if (svc->health != NULL)
		agent_health_info(svc->health, &hi);
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:b, s:b, s:o, s:s, "
	    "s:s}",
	    "hostname", svc->cfg->hostname,
	    "tls", svc->tls.sslen ? svc->tls.text : "",
	    "http", svc->http.sslen ? svc->http.text : "",
	    "priority", (json_int_t)svc->cfg->priority,
	    "policy", svc->cfg->policy == CFG_POLICY_BALANCE ?
	    "balance" : "failover",
	    "up", agent_svc_is_up(svc),
	    "claimed", claimed,
	    "gateways", per,
	    "health", svc->health == NULL ? "none" :
	    agent_health_state_name(hi.state),
	    "last_check", hi.result != NULL ? hi.result : "");
}

static void
agent_admin_metrics(struct agent *a, struct evbuffer *out)
{
	const char	*msg;
	size_t		 i, j;

	evbuffer_add_printf(out, "# HELP porch_agent_gateway_up Tunnel to "
	    "the gateway is up.\n# TYPE porch_agent_gateway_up gauge\n");
	for (i = 0; i < a->ngws; i++)
		evbuffer_add_printf(out, "porch_agent_gateway_up"
		    "{gateway=\"%s\"} %d\n", agent_gw_name(a->gws[i]),
		    agent_gw_is_up(a->gws[i]));
	evbuffer_add_printf(out, "# HELP porch_agent_service_up Service is "
	    "offered (backend healthy or unchecked).\n"
	    "# TYPE porch_agent_service_up gauge\n");
	for (i = 0; i < a->nservices; i++)
		evbuffer_add_printf(out, "porch_agent_service_up"
		    "{hostname=\"%s\"} %d\n", a->services[i]->cfg->hostname,
		    agent_svc_is_up(a->services[i]));
	evbuffer_add_printf(out, "# HELP porch_agent_claim_granted The "
	    "gateway routes the hostname to this agent.\n"
	    "# TYPE porch_agent_claim_granted gauge\n");
	for (i = 0; i < a->nservices; i++)
		for (j = 0; j < a->ngws; j++)
			evbuffer_add_printf(out, "porch_agent_claim_granted"
			    "{hostname=\"%s\",gateway=\"%s\"} %d\n",
			    a->services[i]->cfg->hostname,
			    agent_gw_name(a->gws[j]), strcmp(
			    agent_gw_claim_state(a->gws[j],
			    a->services[i]->cfg->hostname, &msg),
			    "claimed") == 0);
	agent_acme_metrics(a, out);
	agent_dns_metrics(a, out);
}
