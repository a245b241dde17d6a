/* SPDX-License-Identifier: ISC */
/*
 * porchctl status: fetch a gateway's /status from its admin listener and
 * print it for people: agents, peers, then every route with its replicas
 * (local agents, or a peer gateway) and why each one is or is not in
 * use.  A GET through ctl_admin_request (connect and total deadlines);
 * --json prints the document as it came.
 */

#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "ctl.h"

static char	*ctl_fetch(const char *, char *, size_t);
static void	 ctl_print(json_t *);
static void	 ctl_print_peers(json_t *);
static void	 ctl_print_dns(json_t *);
static const char *ctl_num(json_t *, const char *, const char *, char *,
		    size_t);

int
ctl_status(const char *addr, int raw)
{
	char	 err[256], *body;
	json_t	*doc;

	if ((body = ctl_fetch(addr, err, sizeof(err))) == NULL) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	if (raw) {
		fputs(body, stdout);
		free(body);
		return 0;
	}
	doc = json_loads(body, 0, NULL);
	free(body);
	if (doc == NULL) {
		fprintf(stderr, "porchctl: %s did not answer with JSON (is it "
		    "a porch admin address?)\n", addr);
		return 1;
	}
	ctl_print(doc);
	json_decref(doc);
	return 0;
}

/* GET /status; returns the body (NUL-terminated, caller frees). */
static char *
ctl_fetch(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct ctl_answer	 a;
	char			 why[128];

	if (addr_parse_numeric(addr, &ss, &sslen, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "admin address '%s': %s (for example "
		    "127.0.0.1:9900)", addr, why);
		return NULL;
	}
	if (ctl_admin_request(addr, "/status", NULL, &a, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s (is 'admin:' set in the gateway "
		    "config, and the gateway running?)", addr, why);
		return NULL;
	}
	if (a.status != 200) {
		snprintf(err, errlen, "%s answered HTTP %ld: %.60s", addr,
		    a.status, a.body != NULL ? a.body : "");
		ctl_answer_free(&a);
		return NULL;
	}
	if (a.body == NULL) {
		snprintf(err, errlen, "%s: empty answer", addr);
		return NULL;
	}
	return a.body;
}

static const char *
str(json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static void
ctl_list(json_t *arr, char *buf, size_t len)
{
	json_t	*v;
	size_t	 i, off = 0;

	buf[0] = '\0';
	json_array_foreach(arr, i, v)
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			    i ? " " : "", json_string_value(v) ?
			    json_string_value(v) : "?");
	if (json_array_size(arr) == 0)
		snprintf(buf, len, "(none)");
}

/* An agent's DNS records and the gateways they come from. */
static void
ctl_print_dns(json_t *dns)
{
	json_t	*v;
	char	 pub[512], want[512];
	size_t	 i;

	if (!json_is_object(dns))
		return;
	printf("\ndns (zone %s at %s):\n", str(dns, "zone"),
	    str(dns, "server"));
	json_array_foreach(json_object_get(dns, "records"), i, v) {
		ctl_list(json_object_get(v, "published"), pub, sizeof(pub));
		ctl_list(json_object_get(v, "desired"), want, sizeof(want));
		printf("  %-28s %-4s %-32s %s%s%s\n", str(v, "hostname"),
		    str(v, "type"), pub,
		    json_is_true(json_object_get(v, "ok")) ? "ok" : "FAILING",
		    *str(v, "last_update") != '-' ? " at " : "",
		    *str(v, "last_update") != '-' ? str(v, "last_update") : "");
		if (strcmp(pub, want) != 0 ||
		    !json_is_true(json_object_get(v, "ok")))
			printf("    wanted %s (last: %s)\n", want,
			    str(v, "last_result"));
	}
	json_array_foreach(json_object_get(dns, "gateways"), i, v) {
		ctl_list(json_object_get(v, "addresses"), pub, sizeof(pub));
		printf("  gateway %-20s %-16s %s\n", str(v, "name"),
		    str(v, "state"), pub);
	}
}

/* An agent's /status: its gateways and services. */
static void
ctl_print_agent(json_t *doc)
{
	json_t		*ag = json_object_get(doc, "agent"), *v, *st;
	const char	*gw;
	size_t		 i;

	printf("agent %s (%s)%s\n", str(ag, "name"), str(ag, "key"),
	    json_is_true(json_object_get(ag, "draining")) ? ", DRAINING" : "");
	printf("\ngateways:\n");
	json_array_foreach(json_object_get(doc, "gateways"), i, v)
		printf("  %-20s %-24s %-10s streams %lld\n", str(v, "gateway"),
		    str(v, "address"), str(v, "state"),
		    (long long)json_integer_value(json_object_get(v,
		    "streams")));
	printf("\nservices:\n");
	json_array_foreach(json_object_get(doc, "services"), i, v) {
		printf("  %-28s %-11s priority %-3lld %-8s health %-7s %s\n",
		    str(v, "hostname"),
		    json_is_true(json_object_get(v, "claimed")) ? "claimed" :
		    json_is_false(json_object_get(v, "up")) ? "withdrawn" :
		    "not claimed",
		    (long long)json_integer_value(json_object_get(v,
		    "priority")), str(v, "policy"), str(v, "health"),
		    str(v, "last_check"));
		/* Per gateway: a refusal names the gateway's reason. */
		json_object_foreach(json_object_get(v, "gateways"), gw, st)
			printf("    on %-20s %s%s%s\n", gw, str(st, "state"),
			    json_object_get(st, "reason") != NULL ? ": " : "",
			    json_object_get(st, "reason") != NULL ?
			    str(st, "reason") : "");
	}
	ctl_print_dns(json_object_get(doc, "dns"));
	if (json_array_size(json_object_get(doc, "certificates")) == 0)
		return;
	printf("\ncertificates:\n");
	json_array_foreach(json_object_get(doc, "certificates"), i, v) {
		printf("  %-28s %-22s until %-21s next %s\n",
		    str(v, "name"), str(v, "state"), str(v, "not_after"),
		    str(v, "next_attempt"));
		if (json_integer_value(json_object_get(v, "failures")) > 0)
			printf("    %lld failure(s) in a row: %s\n",
			    (long long)json_integer_value(json_object_get(v,
			    "failures")), str(v, "last_error"));
	}
}

static void
ctl_print(json_t *doc)
{
	json_t		*g = json_object_get(doc, "gateway"), *v, *r, *rep;
	size_t		 i, j;

	if (json_object_get(doc, "agent") != NULL) {
		ctl_print_agent(doc);
		return;
	}

	printf("gateway %s (%s)%s\n  up %llds, %lld visitor connection(s), "
	    "%lld tunnel handshake(s) pending\n", str(g, "name"),
	    str(g, "key"),
	    json_is_true(json_object_get(g, "draining")) ? ", DRAINING" : "",
	    (long long)json_integer_value(json_object_get(g, "uptime_s")),
	    (long long)json_integer_value(json_object_get(g, "connections")),
	    (long long)json_integer_value(json_object_get(g,
	    "tunnels_pending")));
	printf("\nagents:\n");
	json_array_foreach(json_object_get(doc, "agents"), i, v) {
		json_t	*rtt = json_object_get(v, "rtt_ms");
		char	 rt[32];

		if (json_is_number(rtt))
			snprintf(rt, sizeof(rt), "%.3f ms",
			    json_number_value(rtt));
		else
			snprintf(rt, sizeof(rt), "-");
		printf("  %-20s %-10s %-22s streams %-5lld claims %-4lld "
		    "rtt %s\n", str(v, "agent"), str(v, "state"),
		    str(v, "peer"),
		    (long long)json_integer_value(json_object_get(v,
		    "streams")),
		    (long long)json_integer_value(json_object_get(v,
		    "claims")), rt);
	}
	ctl_print_peers(json_object_get(doc, "peers"));
	printf("\nroutes:\n");
	json_array_foreach(json_object_get(doc, "routes"), i, r) {
		printf("  %s (%s)\n", str(r, "name"),
		    strcmp(str(r, "policy"), "peer") == 0 ?
		    "learned from peers only" : str(r, "policy"));
		json_array_foreach(json_object_get(r, "replicas"), j, rep) {
			if (json_object_get(rep, "peer") != NULL) {
				/* A peer gateway's agent: one hop away. */
				printf("    %-33s %-8s %-11s streams %-5lld "
				    "%s\n", str(rep, "agent"),
				    str(rep, "kinds"), str(rep, "state"),
				    (long long)json_integer_value(
				    json_object_get(rep, "streams")),
				    str(rep, "why"));
				continue;
			}
			printf("    %-20s priority %-3lld %-8s %-11s streams "
			    "%-5lld %s\n", str(rep, "agent"),
			    (long long)json_integer_value(json_object_get(rep,
			    "priority")), str(rep, "kinds"),
			    str(rep, "state"),
			    (long long)json_integer_value(json_object_get(rep,
			    "streams")), str(rep, "why"));
		}
	}
}

/* The other gateways of the cluster: link, RTT, names each way. */
static void
ctl_print_peers(json_t *peers)
{
	json_t	*v;
	size_t	 i;
	char	 rtt[32], in[32], out[32], up[32];

	if (json_array_size(peers) == 0)
		return;
	printf("\npeers:\n");
	json_array_foreach(peers, i, v) {
		printf("  %-20s %-10s %-6s %-22s rtt %s\n", str(v, "peer"),
		    str(v, "state"), str(v, "link"), str(v, "address"),
		    ctl_num(v, "rtt_ms", "%.3f ms", rtt, sizeof(rtt)));
		printf("    names announced: %lld by it (last %s), %lld by "
		    "us (last %s); up %s, streams %lld\n",
		    (long long)json_integer_value(json_object_get(v,
		    "names_in")),
		    ctl_num(v, "last_announce_in_age_s", "%.1fs ago", in,
		    sizeof(in)),
		    (long long)json_integer_value(json_object_get(v,
		    "names_out")),
		    ctl_num(v, "last_announce_out_age_s", "%.1fs ago", out,
		    sizeof(out)),
		    ctl_num(v, "up_s", "%.0fs", up, sizeof(up)),
		    (long long)json_integer_value(json_object_get(v,
		    "streams")));
		if (json_is_string(json_object_get(v, "last_error")))
			printf("    last error: %s\n", str(v, "last_error"));
	}
}

/* A number field formatted with fmt (one double), or "-" if absent. */
static const char *
ctl_num(json_t *o, const char *key, const char *fmt, char *buf, size_t len)
{
	json_t	*v = json_object_get(o, key);

	if (!json_is_number(v))
		return "-";
	snprintf(buf, len, fmt, json_number_value(v));
	return buf;
}
