/* SPDX-License-Identifier: ISC */
/*
 * Address strings as they appear in configs and logs.  Pure functions:
 * no resolution, no logging.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int
addr_split(const char *s, char *host, size_t hostlen, unsigned *port,
    char *err, size_t errlen)
{
	const char	*colon, *h;
	size_t		 hl;
	char		*end;
	unsigned long	 p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':') {
			snprintf(err, errlen, "expected [address]:port");
			return -1;
		}
		h = s + 1;
		hl = rb - h;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "missing :port");
			return -1;
		}
		if (memchr(s, ':', colon - s) != NULL) {
			snprintf(err, errlen,
			    "IPv6 addresses must be written as [address]:port");
			return -1;
		}
		h = s;
		hl = colon - s;
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, errlen, hl == 0 ? "empty host" : "host too long");
		return -1;
	}
	if (colon[1] < '0' || colon[1] > '9') {
		snprintf(err, errlen, "port must be a number 1-65535");
		return -1;
	}
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535) {
		snprintf(err, errlen, "port must be a number 1-65535");
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return 0;
}

int
addr_parse_numeric(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen, char *err, size_t errlen)
{
	char		 host[256];
	unsigned	 port;

	memset(ss, 0, sizeof(*ss));
	if (addr_split(s, host, sizeof(host), &port, err, errlen) == -1)
		return -1;
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "not an IPv6 address");
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen, "not a numeric IPv4 address");
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*sslen = sizeof(*sin);
	}
	return 0;
}

char *
addr_fmt(const struct sockaddr *sa, char *buf, size_t buflen)
{
	char	a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, buflen, "%s:%u", a, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, buflen, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else
		snprintf(buf, buflen, "unknown");
	return buf;
}

int
addr_resolve(const char *text, const char *what, struct sockaddr_storage *ss,
    socklen_t *sslen, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res = NULL;
	char		 host[256], port[8], why[128];
	unsigned	 p;
	int		 rc;

	if (addr_split(text, host, sizeof(host), &p, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s '%s': %s", what, text, why);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL) {
		snprintf(err, errlen, "%s '%s': cannot resolve %s: %s", what,
		    text, host, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}
