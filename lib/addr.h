/* addr.h: "host:port" strings and socket addresses. */
#ifndef PORCH_ADDR_H
#define PORCH_ADDR_H

#include <sys/socket.h>
#include <stddef.h>

/*
 * Split "host:port", "[v6addr]:port" into host and port.  host must hold
 * 256 bytes.  Returns 0, or -1 with a reason in err.
 */
int	addr_split(const char *, char *host, size_t hostlen, unsigned *port,
	    char *err, size_t errlen);

/*
 * Parse a numeric "ip:port" or "[ip6]:port" into ss.  Returns 0, or -1
 * with a reason in err.
 */
int	addr_parse_numeric(const char *, struct sockaddr_storage *,
	    socklen_t *, char *err, size_t errlen);

/*
 * Resolve "host:port" (blocking: for local backends, once, when a config
 * names them) to its first address.  0, or -1 with what went wrong in
 * err, prefixed with what ("backend 'x:1': cannot resolve x: ...").
 */
int	addr_resolve(const char *text, const char *what,
	    struct sockaddr_storage *, socklen_t *, char *err, size_t errlen);

/* Format sa as "ip:port" or "[ip6]:port" into buf (at least 64 bytes). */
char	*addr_fmt(const struct sockaddr *, char *buf, size_t buflen);

#endif
