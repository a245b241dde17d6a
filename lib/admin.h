/* admin.h: the HTTP admin listener both daemons serve. */
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

/*
 * Refuse requests a web browser makes for some other site: any Origin
 * header (cross-site fetches and form posts), and any Host other than
 * localhost or an IP literal with the listener's port (a name is DNS
 * rebinding).  listen is the admin address as configured.  0: serve it;
 * -1: answered 403 with the reason.
 */
int		 admin_check(struct evhttp_request *, const char *listen);

/* The admin secret of a daemon: a file next to its config. */
#define ADMIN_SECRET_FILE	"admin.secret"
#define ADMIN_SECRET_HEX	64	/* 32 random bytes */
/* That file's path for the config file config (buf of PATH_MAX). */
char		*admin_secret_path(const char *config, char *buf, size_t len);
/*
 * Read the secret at path into out (ADMIN_SECRET_HEX + 1 bytes); create
 * it (mode 0600) if missing.  -1 with err when it cannot be made, or is
 * not ours, not a regular file or readable by others.
 */
int		 admin_secret_load(const char *path, int create, char *out,
		    char *err, size_t errlen);
/*
 * Actions need "Authorization: Bearer SECRET".  0: it matches; -1:
 * answered 401 (none given) or 403 (wrong), naming path.
 */
int		 admin_check_secret(struct evhttp_request *, const char *secret,
		    const char *path);

#endif
