/* SPDX-License-Identifier: ISC */
/*
 * The admin listener: GET /status (JSON: the gateway, its agents, its
 * peers, every route, local or learned from a peer, and why each replica
 * is used or not) and GET /metrics (Prometheus text).  Read-only; meant
 * for loopback, and closed to requests a browser makes for another site
 * (admin_check).  Served by libevent's evhttp with a request timeout and
 * size limits.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "admin.h"
#include "gw.h"
#include "log.h"
#include "mono.h"

static void	gw_admin_cb(struct evhttp_request *, void *);
static void	gw_admin_status(struct gw *, struct evbuffer *);
static void	gw_admin_metrics(struct gw *, struct evbuffer *);
static void	gw_admin_peer_metrics(struct gw *, struct evbuffer *);
static const char *gw_admin_label(const char *, char *, size_t);

int
gw_admin_start(struct gw *gw, char *err, size_t errlen)
{
	const struct cfg_listen	*cl = gw->cfg->admin;

	if (cl == NULL)
		return 0;
	gw->admin = admin_start(gw->base, &cl->ss, cl->sslen, cl->text,
	    gw_admin_cb, gw, err, errlen);
	return gw->admin != NULL ? 0 : -1;
}

void
gw_admin_stop(struct gw *gw)
{
	if (gw->admin != NULL) {
		evhttp_free(gw->admin);
		gw->admin = NULL;
	}
}

static void
gw_admin_cb(struct evhttp_request *req, void *arg)
{
	struct gw	*gw = arg;
	struct evbuffer	*out;
	const char	*uri = evhttp_request_get_uri(req);

	if (admin_check(req, gw->cfg->admin != NULL ? gw->cfg->admin->text :
	    "") == -1)
		return;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "the gateway's admin listener is "
		    "read-only: GET /status or /metrics");
		return;
	}
	if ((out = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (strcmp(uri, "/status") == 0) {
		gw_admin_status(gw, out);
		admin_reply(req, "application/json", out);
	} else if (strcmp(uri, "/metrics") == 0) {
		gw_admin_metrics(gw, out);
		admin_reply(req, "text/plain; version=0.0.4", out);
	} else {
		evbuffer_free(out);
		admin_not_found(req);
	}
}

static void
gw_admin_status(struct gw *gw, struct evbuffer *out)
{
	json_t	*o, *routes;
	char	*text, kt[KEY_TEXT_LEN];

	routes = gw_route_status(gw->routes);
	gw_peer_route_status(gw, routes);
	o = json_pack("{s:{s:s, s:s, s:I, s:i, s:i, s:b}, s:o, s:o, s:o}",
	    "gateway", "name", gw->name, "key", key_pub_text(gw->key.pub, kt),
	    "uptime_s", (json_int_t)((mono_ms() - gw->start_ms) / 1000),
	    "connections", (json_int_t)gw->nconns,
	    "tunnels_pending", (json_int_t)gw->tun_pending,
	    "draining", gw->stopping,
	    "agents", gw_tun_status(gw),
	    "peers", gw_peer_status(gw),
	    "routes", routes);
	if (o == NULL || (text = json_dumps(o, JSON_INDENT(2) |
	    JSON_SORT_KEYS)) == NULL) {
		evbuffer_add_printf(out, "{\"error\": \"out of memory\"}\n");
		json_decref(o);
		return;
	}
	evbuffer_add_printf(out, "%s\n", text);
	free(text);
	json_decref(o);
}

static void
gw_admin_metrics(struct gw *gw, struct evbuffer *out)
{
	const struct gw_conn_result	*res;
	const struct gw_stats		*st = &gw->stats;
	size_t				 i, n;

#define COUNTER(name, help, v)						\
	evbuffer_add_printf(out, "# HELP porch_gateway_" name " " help "\n" \
	    "# TYPE porch_gateway_" name " counter\n"			\
	    "porch_gateway_" name " %llu\n", (unsigned long long)(v))
#define GAUGE(name, help, v)						\
	evbuffer_add_printf(out, "# HELP porch_gateway_" name " " help "\n" \
	    "# TYPE porch_gateway_" name " gauge\n"			\
	    "porch_gateway_" name " %llu\n", (unsigned long long)(v))

	GAUGE("connections", "Visitor connections open.", gw->nconns);
	GAUGE("tunnels_pending", "Tunnels still authenticating.",
	    gw->tun_pending);
	COUNTER("visitors_total", "Visitor connections accepted.",
	    st->visitors);
	COUNTER("routed_total", "Visitors handed to a replica.", st->routed);
	COUNTER("replays_total", "Visitors replayed to another replica.",
	    st->replays);
	COUNTER("replay_failed_total", "Failed visitors with no replica "
	    "left.", st->replay_failed);
	COUNTER("tunnels_total", "Agent tunnels authenticated.",
	    st->tunnels);
	COUNTER("tunnels_refused_total", "Tunnels refused (key not "
	    "admitted).", st->tunnels_refused);
	COUNTER("claims_refused_total", "Hostname claims refused.",
	    st->claims_refused);
	COUNTER("bytes_in_total", "Bytes from visitors, closed streams.",
	    st->bytes_in);
	COUNTER("bytes_out_total", "Bytes to visitors, closed streams.",
	    st->bytes_out);
	COUNTER("to_peers_total", "Visitors sent on to a peer gateway.",
	    st->to_peers);
	COUNTER("from_peers_total", "Visitors a peer gateway sent here.",
	    st->from_peers);
	COUNTER("from_peers_refused_total", "Visitors a peer gateway sent "
	    "here, refused at max_connections.", st->peer_refused);
	evbuffer_add_printf(out, "# HELP porch_gateway_rejected_total "
	    "Visitors closed before routing, by result.\n"
	    "# TYPE porch_gateway_rejected_total counter\n");
	res = gw_conn_results(&n);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(out, "porch_gateway_rejected_total"
		    "{result=\"%s\"} %llu\n", res[i].name,
		    (unsigned long long)res[i].count);
	gw_admin_peer_metrics(gw, out);
#undef COUNTER
#undef GAUGE
}

/* One series per peer (and direction), from the status document. */
static void
gw_admin_peer_metrics(struct gw *gw, struct evbuffer *out)
{
	static const struct {
		const char	*name, *type, *help, *field, *dir;
	} m[] = {
		{ "peer_up", "gauge", "1 if the link to the peer is up (both "
		    "keys verified).", NULL, NULL },
		{ "peer_rtt_seconds", "gauge", "Last keepalive round trip to "
		    "the peer.", "rtt_ms", NULL },
		{ "peer_streams", "gauge", "Visitor streams on the peer link.",
		    "streams", NULL },
		{ "peer_names_announced", "gauge", "Names announced: in, by "
		    "the peer; out, by this gateway.", "names_in", "in" },
		{ NULL, NULL, NULL, "names_out", "out" },
		{ "peer_last_announce_age_seconds", "gauge", "Seconds since "
		    "the last announcement each way.",
		    "last_announce_in_age_s", "in" },
		{ NULL, NULL, NULL, "last_announce_out_age_s", "out" },
	};
	json_t		*peers, *p, *v;
	const char	*name = NULL;
	char		 label[256];
	double		 x;
	size_t		 i, k;

	if ((peers = gw_peer_status(gw)) == NULL)
		return;
	for (k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		if (m[k].name != NULL) {
			name = m[k].name;
			evbuffer_add_printf(out, "# HELP porch_gateway_%s %s\n"
			    "# TYPE porch_gateway_%s %s\n", name, m[k].help,
			    name, m[k].type);
		}
		json_array_foreach(peers, i, p) {
			gw_admin_label(json_string_value(json_object_get(p,
			    "peer")), label, sizeof(label));
			if (m[k].field == NULL)
				x = strcmp(json_string_value(json_object_get(p,
				    "state")), "up") == 0 ||
				    strcmp(json_string_value(json_object_get(p,
				    "state")), "draining") == 0;
			else if (json_is_number(v = json_object_get(p,
			    m[k].field)))
				x = json_number_value(v);
			else
				continue;	/* unknown: no sample */
			if (strcmp(name, "peer_rtt_seconds") == 0)
				x /= 1000.0;
			if (m[k].dir != NULL)
				evbuffer_add_printf(out, "porch_gateway_%s"
				    "{peer=\"%s\",direction=\"%s\"} %.6g\n",
				    name, label, m[k].dir, x);
			else
				evbuffer_add_printf(out, "porch_gateway_%s"
				    "{peer=\"%s\"} %.6g\n", name, label, x);
		}
	}
	json_decref(peers);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static const char *
gw_admin_label(const char *s, char *buf, size_t len)
{
	size_t	n = 0;

	for (; s != NULL && *s != '\0' && n + 3 < len; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\n' ? 'n' : *s;
		} else
			buf[n++] = *s;
	}
	buf[n] = '\0';
	return buf;
}
