/* dns.h: asynchronous name lookups through c-ares on a libevent base. */
#ifndef PORCH_DNS_H
#define PORCH_DNS_H

#include <sys/socket.h>
#include <stddef.h>

#include <event2/event.h>

struct dns;

/* err != 0: failed (dns_strerror(err)); else n addresses. */
typedef void	(*dns_cb)(int err, const struct sockaddr_storage *,
		    const socklen_t *, size_t n, void *arg);

struct dns	*dns_new(struct event_base *, char *err, size_t errlen);
/* Pending lookups are dropped: their callbacks never run. */
void		 dns_free(struct dns *);
/*
 * Resolve host:port; cb runs exactly once, maybe before this returns
 * (then NULL is returned).  Otherwise the handle can cancel it until cb
 * runs: after dns_cancel the callback never runs.
 */
struct dns_query;
struct dns_query *dns_lookup(struct dns *, const char *host, unsigned port,
		    dns_cb, void *arg);
void		 dns_cancel(struct dns_query *);
const char	*dns_strerror(int);

#endif
