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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "addr.h"
#include "ddns.h"

#define MAXCH	512

static const char *const status_names[] = {
	"ok", "prereq", "refused", "timeout", "network", "badreply",
};

static int	 done = -1;

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
	if ((base = event_base_new()) == NULL ||
	    ddns_send(base, (struct sockaddr *)&ss, sslen, m, &key, result,
	    NULL) == NULL) {
		fprintf(stderr, "ddnsc: out of memory\n");
		return 2;
	}
	event_base_dispatch(base);
	event_base_free(base);
	ddns_key_clear(&key);
	return done == -1 ? 2 : done;
}
