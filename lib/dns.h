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

/*
 * A channel that asks only the server at sa, without recursion, search
 * domains or /etc/hosts: what the authoritative server itself holds
 * (read before an update, or to see a record has reached every server
 * of a zone).  Truncated answers are asked again over TCP.
 */
struct dns	*dns_new_direct(struct event_base *, const struct sockaddr *,
		    socklen_t, char *err, size_t errlen);

/*
 * Ask for name/type (class IN).  cb gets the whole answer message, or
 * NULL with err set when none came (timeout, refused); an answer with
 * NXDOMAIN or no records is still passed, err ARES_ENOTFOUND or
 * ARES_ENODATA.  Same cancel rules as dns_lookup.
 */
typedef void	(*dns_raw_cb)(int err, const unsigned char *msg, size_t len,
		    void *arg);
struct dns_query *dns_query(struct dns *, const char *name, int type,
		    dns_raw_cb, void *arg);

#endif
