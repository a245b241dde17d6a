/* SPDX-License-Identifier: ISC */
/*
 * The admin listener: libevent's evhttp on a socket of ours, short
 * timeouts and small limits, since it answers status pages and a few
 * actions.  Both daemons put /status and /metrics on it.  It is meant
 * for loopback, where any local program and any web page the user
 * opens can reach it: requests a browser makes for another site are
 * refused (Origin, Host), and actions need a secret from a 0600 file.
 */

#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sodium.h>

#include "addr.h"
#include "admin.h"
#include "log.h"
#include "sock.h"

/* Kept open to take, and close, a connection we have no descriptor for. */
static int	admin_spare_fd = -1;

static int	admin_host_ok(const char *, unsigned);
static void	admin_refuse(struct evhttp_request *, int, const char *,
		    const char *);
static void	admin_accept_error_cb(struct evconnlistener *, void *);

struct evhttp *
admin_start(struct event_base *base, const struct sockaddr_storage *ss,
    socklen_t sslen, const char *text,
    void (*cb)(struct evhttp_request *, void *), void *arg, char *err,
    size_t errlen)
{
	struct evhttp			*http;
	struct evhttp_bound_socket	*bound = NULL;
	int				 fd;

	if ((fd = sock_listen(ss, sslen, text, err, errlen)) == -1)
		return NULL;
	if ((http = evhttp_new(base)) == NULL ||
	    (bound = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		snprintf(err, errlen, "admin %s: cannot serve HTTP", text);
		close(fd);
		if (http != NULL)
			evhttp_free(http);
		return NULL;
	}
	/* Without it libevent logs and retries a failed accept forever. */
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound),
	    admin_accept_error_cb);
	if (admin_spare_fd == -1)
		admin_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	evhttp_set_timeout(http, 5);
	evhttp_set_max_headers_size(http, 8192);
	evhttp_set_max_body_size(http, 0);
	/* POST only for actions a daemon offers (porchctl cert renew). */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, cb, arg);
	log_info("admin: status and metrics on http://%s/", text);
	return http;
}

/*
 * Out of descriptors: the pending connections would wake the loop again
 * at once (it is level-triggered), so take each with the spare descriptor
 * and close it.  A status page is not worth an agent's tunnel.
 */
static void
admin_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	static struct log_ratelimit	 rl;
	int				 e = EVUTIL_SOCKET_ERROR(), fd;

	(void)arg;
	if (e == EAGAIN || e == EINTR || e == ECONNABORTED)
		return;
	log_ratelimit(&rl, "admin: accept: %s; closing admin connections "
	    "while descriptors are short", strerror(e));
	if (e != EMFILE && e != ENFILE)
		return;
	if (admin_spare_fd != -1) {
		close(admin_spare_fd);
		admin_spare_fd = -1;
	}
	while ((fd = accept(evconnlistener_get_fd(lev), NULL, NULL)) != -1)
		close(fd);
	admin_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void
admin_reply(struct evhttp_request *req, const char *type,
    struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", type);
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

void
admin_not_found(struct evhttp_request *req)
{
	evhttp_send_error(req, 404, "try /status or /metrics");
}

int
admin_check(struct evhttp_request *req, const char *listen)
{
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	const char		*origin, *host;
	char			 lhost[256], why[64];
	unsigned		 port;

	if ((origin = evhttp_find_header(h, "Origin")) != NULL) {
		admin_refuse(req, 403, "Forbidden", "cross-site request "
		    "refused: the admin listener takes no requests with an "
		    "Origin header");
		return -1;
	}
	/* Only a browser is fooled by a name; it always sends Host. */
	if ((host = evhttp_find_header(h, "Host")) == NULL)
		return 0;
	if (addr_split(listen, lhost, sizeof(lhost), &port, why,
	    sizeof(why)) == -1 ||
	    !admin_host_ok(host, port)) {
		admin_refuse(req, 403, "Forbidden", "foreign Host refused: "
		    "ask for the admin address itself, localhost or an IP "
		    "address, with its port");
		return -1;
	}
	return 0;
}

/* "localhost", an IPv4 address or a bracketed IPv6 one; port as given
 * (or none for port 80). */
static int
admin_host_ok(const char *host, unsigned port)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	char		 name[64], *end;
	const char	*p;
	size_t		 n;
	unsigned long	 v;

	if (host[0] == '[') {
		if ((p = strchr(host, ']')) == NULL)
			return 0;
		n = (size_t)(p - host - 1);
		if (n >= sizeof(name))
			return 0;
		memcpy(name, host + 1, n);
		name[n] = '\0';
		if (inet_pton(AF_INET6, name, &a6) != 1)
			return 0;
		p++;
	} else {
		p = strchr(host, ':');
		n = p != NULL ? (size_t)(p - host) : strlen(host);
		if (n >= sizeof(name))
			return 0;
		memcpy(name, host, n);
		name[n] = '\0';
		if (strcasecmp(name, "localhost") != 0 &&
		    inet_pton(AF_INET, name, &a4) != 1)
			return 0;
		if (p == NULL)
			p = host + n;
	}
	if (*p == '\0')
		return port == 80;
	if (*p != ':' || p[1] < '0' || p[1] > '9')
		return 0;
	errno = 0;
	v = strtoul(p + 1, &end, 10);
	return *end == '\0' && errno == 0 && v == port;
}

static void
admin_refuse(struct evhttp_request *req, int code, const char *reason,
    const char *msg)
{
	struct evbuffer	*out;

	if ((out = evbuffer_new()) == NULL) {
		evhttp_send_error(req, code, reason);
		return;
	}
	evbuffer_add_printf(out, "%s\n", msg);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

char *
admin_secret_path(const char *config, char *buf, size_t len)
{
	const char	*slash = strrchr(config, '/');

	if (slash == NULL)
		snprintf(buf, len, "%s", ADMIN_SECRET_FILE);
	else
		snprintf(buf, len, "%.*s/%s", (int)(slash - config), config,
		    ADMIN_SECRET_FILE);
	return buf;
}

int
admin_secret_load(const char *path, int create, char *out, char *err,
    size_t errlen)
{
	unsigned char	 raw[ADMIN_SECRET_HEX / 2];
	char		 hex[ADMIN_SECRET_HEX + 2];
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT && create) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
		sodium_memzero(raw, sizeof(raw));
		hex[ADMIN_SECRET_HEX] = '\n';
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 || write(fd, hex, ADMIN_SECRET_HEX + 1) !=
		    ADMIN_SECRET_HEX + 1 || close(fd) == -1) {
			snprintf(err, errlen, "admin secret %s: cannot create "
			    "it: %s", path, strerror(errno));
			if (fd != -1)
				unlink(path);
			sodium_memzero(hex, sizeof(hex));
			return -1;
		}
		memcpy(out, hex, ADMIN_SECRET_HEX);
		out[ADMIN_SECRET_HEX] = '\0';
		sodium_memzero(hex, sizeof(hex));
		log_info("admin: created the admin secret %s (porchctl reads "
		    "it for actions)", path);
		return 0;
	}
	if (fd == -1) {
		snprintf(err, errlen, "admin secret %s: %s", path,
		    errno == ELOOP ? "a symbolic link; use the file itself" :
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "admin secret %s: not a regular file",
		    path);
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "admin secret %s: %s; it must be this "
		    "user's alone (chown, then chmod 600 %s)", path,
		    st.st_uid != geteuid() ? "owned by another user" :
		    "readable by others", path);
		close(fd);
		return -1;
	}
	n = read(fd, hex, sizeof(hex));
	close(fd);
	while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r'))
		n--;
	if (n != ADMIN_SECRET_HEX) {
		snprintf(err, errlen, "admin secret %s: not %d hex digits; "
		    "remove it and restart the daemon to make a new one", path,
		    ADMIN_SECRET_HEX);
		sodium_memzero(hex, sizeof(hex));
		return -1;
	}
	memcpy(out, hex, ADMIN_SECRET_HEX);
	out[ADMIN_SECRET_HEX] = '\0';
	sodium_memzero(hex, sizeof(hex));
	return 0;
}

int
admin_check_secret(struct evhttp_request *req, const char *secret,
    const char *path)
{
	const char	*v;
	char		 msg[PATH_MAX + 128];

	v = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0) {
		snprintf(msg, sizeof(msg), "this action needs the admin "
		    "secret (Authorization: Bearer, from %s); porchctl sends "
		    "it", path);
		admin_refuse(req, 401, "Unauthorized", msg);
		return -1;
	}
	v += 7;
	if (strlen(v) != ADMIN_SECRET_HEX || strlen(secret) !=
	    ADMIN_SECRET_HEX || sodium_memcmp(v, secret,
	    ADMIN_SECRET_HEX) != 0) {
		snprintf(msg, sizeof(msg), "wrong admin secret (it is in %s)",
		    path);
		admin_refuse(req, 403, "Forbidden", msg);
		return -1;
	}
	return 0;
}
