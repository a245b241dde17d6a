/* SPDX-License-Identifier: ISC */
/*
 * ddnsc: send one RFC 2136 update with ddns/, for the system tests that
 * check the library against real servers (BIND 9, Knot) before the
 * agent uses it.  Not installed.
 *
 *   ddnsc SERVER ZONE KEYFILE [PREREQ] CHANGE...
 *	PREREQ:  exists NAME TYPE RDATA[,RDATA...] | absent NAME TYPE
 *	CHANGE:  add NAME TTL TYPE RDATA | del NAME TYPE RDATA
 *
 * Prints "ok NOERROR udp|tcp", or "STATUS: text", and exits 0 when the
 * update was applied, 3 when a prerequisite failed, 1 otherwise.
 *
 *   ddnsc SERVER ZONE KEYFILE read NAME TYPE
 *	prints the RRset as the server holds it, one record a line
 *   ddnsc SERVER ZONE KEYFILE sync NAME TYPE TTL WANT,.. DEAD,..
 *	ddns_sync(): prints "ok N changes: RDATA,..." or "STATUS: text"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "addr.h"
#include "ddns.h"
#include "dns.h"

#define MAXCH	512

static const char *const status_names[] = {
	"ok", "prereq", "refused", "timeout", "network", "badreply",
};

static int	 done = -1;
static uint16_t	 read_type;

static uint16_t
type_of(const char *s)
{
	if (strcasecmp(s, "A") == 0)
		return DDNS_A;
	if (strcasecmp(s, "AAAA") == 0)
		return DDNS_AAAA;
	if (strcasecmp(s, "TXT") == 0)
		return DDNS_TXT;
	if (strcasecmp(s, "CAA") == 0)
		return DDNS_CAA;
	fprintf(stderr, "ddnsc: unknown type %s\n", s);
	exit(2);
}

static void
read_answer(int err, const unsigned char *msg, size_t len, void *arg)
{
	struct ddns_rrset	*set = malloc(sizeof(*set));
	const char		*name = arg;
	char			 why[512];
	size_t			 i;

	if (msg == NULL) {
		printf("error: %s\n", dns_strerror(err));
		done = 1;
	} else if (set == NULL || ddns_rrset_parse(msg, len, name,
	    read_type, set, why, sizeof(why)) == -1) {
		printf("error: %s\n", set == NULL ? "out of memory" : why);
		done = 1;
	} else {
		for (i = 0; i < set->n; i++)
			printf("%s\n", set->rdata[i]);
		done = 0;
	}
	free(set);
}

static void
synced(const struct ddns_result *r, size_t changes,
    const struct ddns_rrset *have, void *arg)
{
	size_t	i;

	(void)arg;
	if (r->status != DDNS_OK) {
		printf("%s: %s\n", status_names[r->status], r->text);
		done = 1;
		return;
	}
	printf("ok %zu changes:", changes);
	for (i = 0; have != NULL && i < have->n; i++)
		printf("%s%s", i ? "," : " ", have->rdata[i]);
	printf("\n");
	done = 0;
}

/* Split "a,b,c" in place; "-" is the empty list. */
static size_t
split(char *list, const char **out, size_t max)
{
	size_t	n = 0;
	char	*tok;

	if (strcmp(list, "-") == 0)
		return 0;
	while ((tok = strsep(&list, ",")) != NULL && n < max)
		out[n++] = tok;
	return n;
}

static void
usage(void)
{
	fprintf(stderr, "usage: ddnsc SERVER ZONE KEYFILE "
	    "[exists NAME TYPE RDATA,.. | absent NAME TYPE] "
	    "{add NAME TTL TYPE RDATA | del NAME TYPE RDATA}...\n");
	exit(2);
}

static void
result(const struct ddns_result *r, void *arg)
{
	(void)arg;
	if (r->status == DDNS_OK)
		printf("ok %s %s\n", r->text, r->tcp ? "tcp" : "udp");
	else
		printf("%s: %s\n", status_names[r->status], r->text);
	fflush(stdout);
	done = r->status == DDNS_OK ? 0 : r->status == DDNS_PREREQ ? 3 : 1;
}

int
main(int argc, char *argv[])
{
	struct ddns_change	 ch[MAXCH];
	struct ddns_prereq	 pre, *pp = NULL;
	const char		*rd[MAXCH];
	struct ddns_key		 key;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct event_base	*base;
	struct dns		*dns;
	struct ddns_msg		*m;
	char			 err[512], *list, *tok;
	size_t			 n = 0;
	int			 i = 4;

	if (argc < 5)
		usage();
	if (addr_parse_numeric(argv[1], &ss, &sslen, err, sizeof(err)) ||
	    ddns_key_load(argv[3], &key, err, sizeof(err))) {
		fprintf(stderr, "ddnsc: %s\n", err);
		return 2;
	}
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "ddnsc: out of memory\n");
		return 2;
	}
	if ((strcmp(argv[i], "read") == 0 && argc == i + 3) ||
	    (strcmp(argv[i], "sync") == 0 && argc == i + 6)) {
		const char	*want[MAXCH], *dead[MAXCH];
		size_t		 nw, nd;

		if ((dns = dns_new_direct(base, (struct sockaddr *)&ss, sslen,
		    err, sizeof(err))) == NULL) {
			fprintf(stderr, "ddnsc: %s\n", err);
			return 2;
		}
		read_type = type_of(argv[i + 2]);
		if (argv[i][0] == 'r')
			dns_query(dns, argv[i + 1], read_type, read_answer,
			    argv[i + 1]);
		else {
			nw = split(argv[i + 4], want, MAXCH);
			nd = split(argv[i + 5], dead, MAXCH);
			if (ddns_sync(base, dns, (struct sockaddr *)&ss, sslen,
			    argv[2], &key, argv[i + 1], read_type,
			    (uint32_t)strtoul(argv[i + 3], NULL, 10), want, nw,
			    dead, nd, synced, NULL) == NULL) {
				fprintf(stderr, "ddnsc: out of memory\n");
				return 2;
			}
		}
		event_base_dispatch(base);
		dns_free(dns);
		event_base_free(base);
		ddns_key_clear(&key);
		return done == -1 ? 2 : done;
	}
	memset(&pre, 0, sizeof(pre));
	if (strcmp(argv[i], "exists") == 0 && i + 3 < argc) {
		pre.name = argv[i + 1];
		pre.type = type_of(argv[i + 2]);
		list = argv[i + 3];
		while ((tok = strsep(&list, ",")) != NULL && pre.n < MAXCH)
			rd[pre.n++] = tok;
		pre.rdata = rd;
		pp = &pre;
		i += 4;
	} else if (strcmp(argv[i], "absent") == 0 && i + 2 < argc) {
		pre.name = argv[i + 1];
		pre.type = type_of(argv[i + 2]);
		pp = &pre;
		i += 3;
	}
	while (i < argc && n < MAXCH) {
		memset(&ch[n], 0, sizeof(ch[n]));
		if (strcmp(argv[i], "add") == 0 && i + 4 < argc) {
			ch[n].name = argv[i + 1];
			ch[n].ttl = (uint32_t)strtoul(argv[i + 2], NULL, 10);
			ch[n].type = type_of(argv[i + 3]);
			ch[n].rdata = argv[i + 4];
			i += 5;
		} else if (strcmp(argv[i], "del") == 0 && i + 3 < argc) {
			ch[n].del = 1;
			ch[n].name = argv[i + 1];
			ch[n].type = type_of(argv[i + 2]);
			ch[n].rdata = argv[i + 3];
			i += 4;
		} else
			usage();
		n++;
	}
	if ((m = ddns_msg_new(argv[2], pp, ch, n, &key, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "ddnsc: %s\n", err);
		return 2;
	}
	if (ddns_send(base, (struct sockaddr *)&ss, sslen, m, &key, result,
	    NULL) == NULL) {
		fprintf(stderr, "ddnsc: out of memory\n");
		return 2;
	}
	event_base_dispatch(base);
	event_base_free(base);
	ddns_key_clear(&key);
	return done == -1 ? 2 : done;
}
