/* SPDX-License-Identifier: ISC */
/*
 * Listening sockets for the TLS and HTTP entries and the tunnel, and the
 * accept limits: a cap on open visitor connections, and a pause when the
 * process runs out of descriptors, resumed by a timer or by the next
 * connection that closes.  The tunnel listener also pauses while the
 * agents' handshakes in progress are at their cap (gw_tun.c paces it);
 * its long backlog holds a reconnect storm meanwhile.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "gw.h"
#include "log.h"
#include "sock.h"

/* Connections the kernel holds for the tunnel listener while it is
 * paced: a restart's thousands of agents (capped by somaxconn). */
#define GW_LISTEN_TUN_BACKLOG	65535

static int	gw_listen_one(struct gw *, const struct cfg_listen *,
		    enum gw_entry, char *, size_t);
static void	gw_listen_hint_cap(char *, size_t);
static void	gw_listen_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	gw_listen_error_cb(struct evconnlistener *, void *);
static void	gw_listen_resume_cb(evutil_socket_t, short, void *);
static void	gw_listen_pause(struct gw *, int, int);

int
gw_listen_start(struct gw *gw, char *err, size_t errlen)
{
	const struct cfg_gateway	*cfg = gw->cfg;
	size_t				 i;

	for (i = 0; i < cfg->ntls; i++)
		if (gw_listen_one(gw, &cfg->tls[i], GW_ENTRY_TLS, err,
		    errlen) == -1)
			return -1;
	for (i = 0; i < cfg->nhttp; i++)
		if (gw_listen_one(gw, &cfg->http[i], GW_ENTRY_HTTP, err,
		    errlen) == -1)
			return -1;
	for (i = 0; i < cfg->ntunnel; i++)
		if (gw_listen_one(gw, &cfg->tunnel[i], GW_ENTRY_TUNNEL, err,
		    errlen) == -1)
			return -1;
	gw->accept_timer = event_new(gw->base, -1, 0, gw_listen_resume_cb, gw);
	if (gw->accept_timer == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void
gw_listen_stop(struct gw *gw)
{
	struct gw_listener	*l;

	while ((l = TAILQ_FIRST(&gw->listeners)) != NULL) {
		TAILQ_REMOVE(&gw->listeners, l, entry_link);
		evconnlistener_free(l->lev);
		free(l);
	}
	if (gw->accept_timer != NULL) {
		event_free(gw->accept_timer);
		gw->accept_timer = NULL;
	}
}

/*
 * After a reload: close the listeners the new config no longer has, open
 * the ones it adds, leave the rest (and every connection) alone.
 */
void
gw_listen_reload(struct gw *gw)
{
	const struct cfg_gateway	*cfg = gw->cfg;
	struct gw_listener		*l, *next;
	char				 err[768];
	size_t				 i, k;
	const struct {
		enum gw_entry		 entry;
		const struct cfg_listen	*v;
		size_t			 n;
	} lists[] = {
		{ GW_ENTRY_TLS, cfg->tls, cfg->ntls },
		{ GW_ENTRY_HTTP, cfg->http, cfg->nhttp },
		{ GW_ENTRY_TUNNEL, cfg->tunnel, cfg->ntunnel },
	};

	for (l = TAILQ_FIRST(&gw->listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry_link);
		for (k = 0; k < 3; k++) {
			if (lists[k].entry != l->entry)
				continue;
			for (i = 0; i < lists[k].n; i++)
				if (strcmp(lists[k].v[i].text, l->text) == 0)
					break;
			if (i == lists[k].n) {
				log_info("no longer listening on %s", l->text);
				TAILQ_REMOVE(&gw->listeners, l, entry_link);
				evconnlistener_free(l->lev);
				free(l);
			}
			break;		/* one list per entry kind */
		}
	}
	for (k = 0; k < 3; k++) {
		for (i = 0; i < lists[k].n; i++) {
			TAILQ_FOREACH(l, &gw->listeners, entry_link)
				if (l->entry == lists[k].entry &&
				    strcmp(l->text, lists[k].v[i].text) == 0)
					break;
			if (l != NULL)
				continue;
			if (gw_listen_one(gw, &lists[k].v[i], lists[k].entry,
			    err, sizeof(err)) == -1) {
				log_warnx("reload: %s", err);
				continue;
			}
			/* Paused at max_connections: so is the new one. */
			l = TAILQ_LAST(&gw->listeners, gw_listener_list);
			if (gw->accept_paused && l->entry != GW_ENTRY_TUNNEL)
				evconnlistener_disable(l->lev);
			if (gw->tun_paced && l->entry == GW_ENTRY_TUNNEL)
				evconnlistener_disable(l->lev);
		}
	}
}

void
gw_listen_conn_closed(struct gw *gw)
{
	gw->nconns--;
	if (gw->accept_paused && !gw->stopping)
		gw_listen_pause(gw, 0, 1);
}

static int
gw_listen_one(struct gw *gw, const struct cfg_listen *cl, enum gw_entry entry,
    char *err, size_t errlen)
{
	struct gw_listener	*l;
	int			 fd;

	if ((fd = sock_listen(&cl->ss, cl->sslen, cl->text, err, errlen)) ==
	    -1) {
		if (errno == EACCES)
			gw_listen_hint_cap(err, errlen);
		return -1;
	}
	/* listen() again only sets the backlog; the kernel caps it. */
	if (entry == GW_ENTRY_TUNNEL &&
	    listen(fd, GW_LISTEN_TUN_BACKLOG) == -1)
		log_warn("listen %s: backlog", cl->text);
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->gw = gw;
	l->entry = entry;
	l->addr = cl->ss;
	snprintf(l->text, sizeof(l->text), "%s", cl->text);
	l->lev = evconnlistener_new(gw->base, gw_listen_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->lev == NULL) {
		close(fd);
		free(l);
		snprintf(err, errlen, "listen %s: evconnlistener failed",
		    cl->text);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, gw_listen_error_cb);
	TAILQ_INSERT_TAIL(&gw->listeners, l, entry_link);
	log_info("listening on %s (%s)", cl->text, entry == GW_ENTRY_TLS ?
	    "tls" : entry == GW_ENTRY_HTTP ? "http" : "tunnel");
	return 0;
}

/*
 * A privileged port refused to an unprivileged gateway: say how to grant
 * the one capability it needs, naming this very binary, rather than
 * leave the operator to run it as root.
 */
static void
gw_listen_hint_cap(char *err, size_t errlen)
{
	char	exe[512];
	size_t	len = strlen(err);
	ssize_t	n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		snprintf(exe, sizeof(exe), "porch-gateway");
	else
		exe[n] = '\0';
	snprintf(err + len, errlen - len, "; grant it with "
	    "'setcap cap_net_bind_service=+ep %s' or, under systemd, "
	    "AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit", exe);
}

static void
gw_listen_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct gw_listener	*l = arg;
	struct gw		*gw = l->gw;
	int			 on = 1;

	(void)lev;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (l->entry == GW_ENTRY_TUNNEL) {
		gw_tun_accept(gw, l, fd, sa);
		return;
	}
	gw_conn_accept(gw, l, fd, sa, socklen);
	if (gw->nconns >= gw->cfg->max_connections && !gw->accept_paused) {
		log_warnx("max_connections (%u) reached; not accepting "
		    "visitors until one closes", gw->cfg->max_connections);
		gw_listen_pause(gw, 1, 0);
	}
}

/* Out of descriptors: stop accepting for a second rather than spin. */
static void
gw_listen_error_cb(struct evconnlistener *lev, void *arg)
{
	struct gw_listener	*l = arg;
	struct gw		*gw = l->gw;
	struct timeval		 tv = { 1, 0 };
	int			 e = EVUTIL_SOCKET_ERROR();

	(void)lev;
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_warnx("accept on %s: %s; pausing accept for 1s", l->text,
		    strerror(e));
		gw_listen_pause(gw, 1, 1);
		event_add(gw->accept_timer, &tv);
	} else if (e != EAGAIN && e != ECONNABORTED && e != EINTR)
		log_warnx("accept on %s: %s", l->text, strerror(e));
}

static void
gw_listen_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw	*gw = arg;

	(void)fd;
	(void)ev;
	if (gw->accept_paused && !gw->stopping &&
	    gw->nconns < gw->cfg->max_connections)
		gw_listen_pause(gw, 0, 1);
}

/* all: the tunnel listener too (descriptors ran out, not visitors). */
static void
gw_listen_pause(struct gw *gw, int pause, int all)
{
	struct gw_listener	*l;

	if (!pause && gw->nconns >= gw->cfg->max_connections)
		return;
	gw->accept_paused = pause;
	TAILQ_FOREACH(l, &gw->listeners, entry_link) {
		/* The tunnel listener keeps going: agents are few and
		 * must be able to reconnect while visitors are capped. */
		if (l->entry == GW_ENTRY_TUNNEL && pause && !all)
			continue;
		/* Nor does it resume while its handshakes are at the cap. */
		if (l->entry == GW_ENTRY_TUNNEL && !pause && gw->tun_paced)
			continue;
		if (pause)
			evconnlistener_disable(l->lev);
		else
			evconnlistener_enable(l->lev);
	}
}

/*
 * The agents' handshakes in progress reached their cap (pause) or fell
 * below it: accept on the tunnel listeners follows.  Nothing is refused
 * meanwhile; connections wait in the listen backlog.
 */
void
gw_listen_tun_pace(struct gw *gw, int pause)
{
	struct gw_listener	*l;

	if (pause == gw->tun_paced)
		return;
	gw->tun_paced = pause;
	if (pause)
		log_info("%u agent handshakes in progress: accepting more "
		    "tunnels as they finish", gw->tun_pending);
	else
		log_debug("agent handshakes below the cap: accepting "
		    "tunnels again");
	if (gw->stopping)
		return;
	TAILQ_FOREACH(l, &gw->listeners, entry_link) {
		if (l->entry != GW_ENTRY_TUNNEL)
			continue;
		/* Descriptors ran out: gw_listen_resume_cb resumes it. */
		if (!pause && gw->accept_paused && gw->nconns <
		    gw->cfg->max_connections)
			continue;
		if (pause)
			evconnlistener_disable(l->lev);
		else
			evconnlistener_enable(l->lev);
	}
}
