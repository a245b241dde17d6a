/* SPDX-License-Identifier: ISC */
/*
 * The admin listener: libevent's evhttp on a socket of ours, GET only,
 * short timeouts and small limits, since it answers status pages and
 * nothing else.  Both daemons put /status and /metrics on it.
 */

#include <stdio.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "admin.h"
#include "log.h"
#include "sock.h"

struct evhttp *
admin_start(struct event_base *base, const struct sockaddr_storage *ss,
    socklen_t sslen, const char *text,
    void (*cb)(struct evhttp_request *, void *), void *arg, char *err,
    size_t errlen)
{
	struct evhttp	*http;
	int		 fd;

	if ((fd = sock_listen(ss, sslen, text, err, errlen)) == -1)
		return NULL;
	if ((http = evhttp_new(base)) == NULL ||
	    evhttp_accept_socket_with_handle(http, fd) == NULL) {
		snprintf(err, errlen, "admin %s: cannot serve HTTP", text);
		close(fd);
		if (http != NULL)
			evhttp_free(http);
		return NULL;
	}
	evhttp_set_timeout(http, 5);
	evhttp_set_max_headers_size(http, 8192);
	evhttp_set_max_body_size(http, 0);
	/* POST only for actions a daemon offers (porchctl cert renew). */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, cb, arg);
	log_info("admin: status and metrics on http://%s/", text);
	return http;
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
