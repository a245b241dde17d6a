/* SPDX-License-Identifier: ISC */
/* Listening sockets, with the errors an operator can act on. */

#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

int
sock_listen(const struct sockaddr_storage *ss, socklen_t sslen,
    const char *text, char *err, size_t errlen)
{
	int	fd, on = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", text,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)ss, sslen) == -1) {
		snprintf(err, errlen, "listen %s: bind: %s%s", text,
		    strerror(errno), errno == EADDRINUSE ?
		    " (is another porch daemon or web server running?)" :
		    errno == EACCES ? " (ports below 1024 need "
		    "CAP_NET_BIND_SERVICE)" : "");
		close(fd);
		return -1;
	}
	if (listen(fd, 1024) == -1) {
		snprintf(err, errlen, "listen %s: %s", text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
