/* gw.h: porch-gateway's shared state and its modules' entry points. */
#ifndef PORCH_GW_H
#define PORCH_GW_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "cfg.h"
#include "key.h"
#include "tun.h"

enum gw_entry {
	GW_ENTRY_TLS = 1,	/* = TUN_KIND_TLS */
	GW_ENTRY_HTTP = 2,	/* = TUN_KIND_HTTP */
	GW_ENTRY_TUNNEL = 3,
};

struct gw_listener {
	struct gw		*gw;
	enum gw_entry		 entry;
	struct evconnlistener	*lev;
	struct sockaddr_storage	 addr;
	char			 text[80];
	TAILQ_ENTRY(gw_listener) entry_link;
};

struct gw_tun;
struct gw_conn;
TAILQ_HEAD(gw_tun_list, gw_tun);
TAILQ_HEAD(gw_conn_list, gw_conn);
TAILQ_HEAD(gw_listener_list, gw_listener);

struct gw_route_table;

struct gw {
	struct event_base	*base;
	struct cfg_gateway	*cfg;
	struct key_pair		 key;
	SSL_CTX			*tun_ctx;
	struct gw_listener_list	 listeners;
	struct gw_tun_list	 tunnels;
	struct gw_conn_list	 conns;		/* visitors not yet routed */
	struct gw_route_table	*routes;
	struct event		*accept_timer;	/* resumes accept after EMFILE */
	int			 accept_paused;
	unsigned		 nconns;	/* visitor connections open */
	unsigned		 tun_pending;	/* tunnels not yet authenticated */
	uint32_t		 next_conn_id;
	struct event		*sig_term, *sig_int, *sig_hup;
	int			 stopping;
};

/* gw_listen.c */
int	gw_listen_start(struct gw *, char *err, size_t errlen);
void	gw_listen_stop(struct gw *);
void	gw_listen_conn_closed(struct gw *);	/* a visitor went away */

/* gw_conn.c: one visitor connection until it is routed. */
void	gw_conn_accept(struct gw *, struct gw_listener *, int fd,
	    const struct sockaddr *, int socklen);
void	gw_conn_close_all(struct gw *);

/* gw_tun.c: agent tunnels. */
void	gw_tun_accept(struct gw *, struct gw_listener *, int fd,
	    const struct sockaddr *);
void	gw_tun_close_all(struct gw *, const char *reason);
void	gw_tun_shutdown_all(struct gw *, const char *reason);
const char *gw_tun_name(const struct gw_tun *);
struct tun *gw_tun_tun(const struct gw_tun *);

/* gw_route.c: hostname -> agent tunnels that claimed it. */
struct gw_route_table *gw_route_new(void);
void	gw_route_free(struct gw_route_table *);
/* 1: a new claim, 0: an existing one updated, -1: out of memory. */
int	gw_route_add(struct gw_route_table *, const char *name, uint8_t kinds,
	    struct gw_tun *);
/* 1 if the tunnel had claimed the name, else 0. */
int	gw_route_remove(struct gw_route_table *, const char *name,
	    struct gw_tun *);
void	gw_route_remove_tun(struct gw_route_table *, struct gw_tun *);
/* Exact name first, then the one-label wildcard "*.parent". */
struct gw_tun *gw_route_lookup(struct gw_route_table *, const char *name,
	    uint8_t kind);

#endif
