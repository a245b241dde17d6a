/* SPDX-License-Identifier: ISC */
/*
 * The admin listener: libevent's evhttp on a socket of ours, GET only,
 * short timeouts and small limits, since it answers status pages and
 * nothing else.  Both daemons put /status and /metrics on it.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "admin.h"
#include "log.h"
#include "sock.h"

/* Kept open to take, and close, a connection we have no descriptor for. */
static int	admin_spare_fd = -1;

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
