/* SPDX-License-Identifier: ISC */
/*
 * Listening sockets for the TLS and HTTP entries and the tunnel, and the
 * accept limits.  Descriptors are budgeted from RLIMIT_NOFILE: visitors
 * get what is left after a reserve for agents' tunnels, their handshakes,
 * peers and the admin listener, so visitors alone can never starve those
 * (max_connections is capped to the budget, with a warning).  At the
 * visitors' cap the visitor listeners stop; the tunnel listener never
 * stops because of visitors.  On EMFILE all the same (the reserve ran
 * out), the listener's side stops accepting for a second rather than
 * spin.  The tunnel listener also pauses while the agents' handshakes in
 * progress are at their cap (gw_tun.c paces it); its long backlog holds
 * a reconnect storm meanwhile.
 */

#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <limits.h>
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
/* Handshakes in progress at most (gw_tun.c paces admission there). */
#define GW_LISTEN_MAX_PENDING	256
/* Descriptors besides connections: stdio, the event loop, signals,
 * listeners, admin and its clients, DNS, an ACME order's child. */
#define GW_LISTEN_FD_FIXED	64

#define GW_LISTEN_FD_VISITORS	0x1	/* fd_paused: visitor listeners */
#define GW_LISTEN_FD_TUN	0x2	/* fd_paused: tunnel listeners */

static void	gw_listen_limits(struct gw *);
static int	gw_listen_one(struct gw *, const struct cfg_listen *,
		    enum gw_entry, char *, size_t);
static void	gw_listen_hint_cap(char *, size_t);
static void	gw_listen_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	gw_listen_error_cb(struct evconnlistener *, void *);
static void	gw_listen_resume_cb(evutil_socket_t, short, void *);
static void	gw_listen_update(struct gw *);

int
gw_listen_start(struct gw *gw, char *err, size_t errlen)
{
	const struct cfg_gateway	*cfg = gw->cfg;
	size_t				 i;

	gw_listen_limits(gw);
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

	gw_listen_limits(gw);
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
		}
	}
	/* A new listener is paused as its kind is; a new cap applies. */
	gw_listen_update(gw);
}

void
gw_listen_conn_closed(struct gw *gw, const struct sockaddr *src)
{
	gw->nconns--;
	if (src != NULL)
		gw_src_release(gw, src, GW_SRC_VISITOR);
	if (gw->accept_paused)
		gw_listen_update(gw);
}

/*
 * Size the limits from the descriptors we may open (the hard limit, as
 * gw.c raised the soft one to it at start).  Each visitor holds one, each
 * agent and peer tunnel one, each handshake in progress one.
 */
static void
gw_listen_limits(struct gw *gw)
{
	static unsigned long		 warned_budget;
	const struct cfg_gateway	*cfg = gw->cfg;
	struct rlimit			 rl;
	unsigned long			 nofile, reserve, budget, want;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY
	    || rl.rlim_cur > UINT_MAX)
		nofile = UINT_MAX;
	else
		nofile = rl.rlim_cur;
	gw->tun_max_pending = nofile / 8 < GW_LISTEN_MAX_PENDING ?
	    (unsigned)(nofile / 8) : GW_LISTEN_MAX_PENDING;
	if (gw->tun_max_pending < 4)
		gw->tun_max_pending = 4;
	/* The tunnels' share: every admitted agent and peer connected, all
	 * handshakes at once; but never more than a quarter. */
	want = GW_LISTEN_FD_FIXED + gw->tun_max_pending + cfg->nagents +
	    2 * cfg->npeers;
	reserve = nofile / 4 < want ? nofile / 4 : want;
	budget = nofile > reserve * 2 ? nofile - reserve : nofile / 2;
	if (budget < 1)
		budget = 1;
	gw->max_visitors = cfg->max_connections;
	if (cfg->max_connections > budget) {
		gw->max_visitors = (unsigned)budget;
		if (warned_budget != budget)
			log_warnx("limits.max_connections (%u) is more than "
			    "the descriptors allow: at most %lu visitors (open "
			    "files limit %lu, %lu kept for tunnels and admin); "
			    "raise LimitNOFILE or lower max_connections",
			    cfg->max_connections, budget, nofile, reserve);
		warned_budget = budget;
	}
	gw->src_visitors = cfg->connections_per_source;
	if (gw->src_visitors == 0)
		gw->src_visitors = gw->max_visitors / 4;
	if (gw->src_visitors > gw->max_visitors)
		gw->src_visitors = gw->max_visitors;
	if (gw->src_visitors < 1)
		gw->src_visitors = 1;
	gw->src_handshakes = cfg->handshakes_per_source;
	if (gw->src_handshakes > gw->tun_max_pending / 2)
		gw->src_handshakes = gw->tun_max_pending / 2;
	log_debug("limits: %u visitors (%u per source), %u handshakes (%u "
	    "per source), open files %lu", gw->max_visitors,
	    gw->src_visitors, gw->tun_max_pending, gw->src_handshakes,
	    nofile);
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
	l->enabled = 1;
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
	static struct log_ratelimit	 rl;
	struct gw_listener		*l = arg;
	struct gw			*gw = l->gw;
	int				 on = 1;

	(void)lev;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (l->entry == GW_ENTRY_TUNNEL) {
		gw_tun_accept(gw, l, fd, sa);
		return;
	}
	gw_conn_accept(gw, l, fd, sa, socklen);
	if (gw->nconns >= gw->max_visitors && !gw->accept_paused) {
		log_ratelimit(&rl, "%u visitors: not accepting visitors until "
		    "one closes (limits.max_connections %u, open files limit)",
		    gw->nconns, gw->cfg->max_connections);
		gw_listen_update(gw);
	}
}

/*
 * Out of descriptors (the reserve is spent too): stop accepting on this
 * side for a second rather than spin; the other side goes on.
 */
static void
gw_listen_error_cb(struct evconnlistener *lev, void *arg)
{
	static struct log_ratelimit	 rl_fd, rl_other;
	struct gw_listener		*l = arg;
	struct gw			*gw = l->gw;
	struct timeval			 tv = { 1, 0 };
	int				 e = EVUTIL_SOCKET_ERROR();

	(void)lev;
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_ratelimit(&rl_fd, "accept on %s: %s; pausing accept "
		    "there for 1s", l->text, strerror(e));
		gw->fd_paused |= l->entry == GW_ENTRY_TUNNEL ?
		    GW_LISTEN_FD_TUN : GW_LISTEN_FD_VISITORS;
		gw_listen_update(gw);
		if (!evtimer_pending(gw->accept_timer, NULL))
			evtimer_add(gw->accept_timer, &tv);
	} else if (e != EAGAIN && e != ECONNABORTED && e != EINTR)
		log_ratelimit(&rl_other, "accept on %s: %s", l->text,
		    strerror(e));
}

static void
gw_listen_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw	*gw = arg;

	(void)fd;
	(void)ev;
	gw->fd_paused = 0;
	gw_listen_update(gw);
}

/*
 * Accept on each listener exactly when its side may: visitors below their
 * cap and not out of descriptors; the tunnel below its handshake cap and
 * not out of descriptors.  Visitors never stop the tunnel listener.
 */
static void
gw_listen_update(struct gw *gw)
{
	struct gw_listener	*l;
	int			 on;

	gw->accept_paused = gw->nconns >= gw->max_visitors;
	TAILQ_FOREACH(l, &gw->listeners, entry_link) {
		if (gw->stopping)
			on = 0;
		else if (l->entry == GW_ENTRY_TUNNEL)
			on = !gw->tun_paced &&
			    !(gw->fd_paused & GW_LISTEN_FD_TUN);
		else
			on = !gw->accept_paused &&
			    !(gw->fd_paused & GW_LISTEN_FD_VISITORS);
		if (on == l->enabled)
			continue;
		if (on)
			evconnlistener_enable(l->lev);
		else
			evconnlistener_disable(l->lev);
		l->enabled = on;
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
	static struct log_ratelimit	rl;

	if (pause == gw->tun_paced)
		return;
	gw->tun_paced = pause;
	if (pause)
		log_ratelimit(&rl, "%u agent handshakes in progress: "
		    "accepting more tunnels as they finish", gw->tun_pending);
	else
		log_debug("agent handshakes below the cap: accepting "
		    "tunnels again");
	gw_listen_update(gw);
}
