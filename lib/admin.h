/* admin.h: the read-only HTTP admin listener both daemons serve. */
#ifndef PORCH_ADMIN_H
#define PORCH_ADMIN_H

#include <sys/socket.h>
#include <stddef.h>

#include <event2/event.h>
#include <event2/http.h>

/*
 * Serve GET (and POST) requests on ss with cb, under a request timeout and size
 * limits.  Returns the server (free with evhttp_free) or NULL with err.
 */
struct evhttp	*admin_start(struct event_base *,
		    const struct sockaddr_storage *, socklen_t,
		    const char *text, void (*cb)(struct evhttp_request *,
		    void *), void *arg, char *err, size_t errlen);

/* 200 with body (consumed) as type; 404 for unknown paths. */
void		 admin_reply(struct evhttp_request *, const char *type,
		    struct evbuffer *body);
void		 admin_not_found(struct evhttp_request *);

#endif
