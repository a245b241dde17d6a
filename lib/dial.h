/* dial.h: dial a host:port with a deadline, retrying with backoff. */
#ifndef PORCH_DIAL_H
#define PORCH_DIAL_H

#include <event2/event.h>

struct dial;
struct dns;

/* A TCP connection is up: fd is the caller's, addr the one dialed. */
typedef void	(*dial_cb)(int fd, const char *addr, void *arg);

struct dial_params {
	const char	*host;		/* name or numeric address */
	unsigned	 port;
	unsigned	 connect_ms;	/* per address tried */
	unsigned	 min_ms;	/* backoff after the first failure */
	unsigned	 max_ms;	/* backoff cap */
	const char	*label;		/* for log lines, e.g. "gateway gw1" */
};

/* host and label are copied. */
struct dial	*dial_new(struct event_base *, struct dns *,
		    const struct dial_params *, dial_cb, void *arg);
void		 dial_free(struct dial *);
/* Try now: resolve, then each address in turn; all fail: dial_later. */
void		 dial_start(struct dial *);
/*
 * Try again after the next backoff delay (exponential from min_ms to
 * max_ms, drawn between half and all of it, so many dialers do not
 * arrive together), logging why.
 */
void		 dial_later(struct dial *, const char *why);
/* dial_later, but not sooner than floor_ms (a refusal that retrying
 * soon will not cure). */
void		 dial_later_floor(struct dial *, const char *why,
		    unsigned floor_ms);
/* It worked: the next failure starts from min_ms again. */
void		 dial_reset(struct dial *);
const char	*dial_host(const struct dial *);
unsigned	 dial_port(const struct dial *);
/* Stop: no attempt runs or is scheduled until dial_start. */
void		 dial_stop(struct dial *);

#endif
