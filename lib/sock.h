/* sock.h: listening sockets, shared by every listener of both daemons. */
#ifndef PORCH_SOCK_H
#define PORCH_SOCK_H

#include <sys/socket.h>
#include <stddef.h>

/*
 * A non-blocking listening TCP socket on ss (IPv6 sockets are v6-only).
 * Returns the fd, or -1 with "listen TEXT: bind: why (hint)" in err.
 */
int	sock_listen(const struct sockaddr_storage *, socklen_t,
	    const char *text, char *err, size_t errlen);

#endif
