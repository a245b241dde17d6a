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

/* A visitor entry opens streams of its own kind; the tunnel entry none. */
enum gw_entry {
	GW_ENTRY_TLS = TUN_KIND_TLS,
	GW_ENTRY_HTTP = TUN_KIND_HTTP,
	GW_ENTRY_TUNNEL = 3,
};
_Static_assert(GW_ENTRY_TUNNEL != GW_ENTRY_TLS &&
    GW_ENTRY_TUNNEL != GW_ENTRY_HTTP, "enum gw_entry values collide");

struct gw_listener {
	struct gw		*gw;
	enum gw_entry		 entry;
	struct evconnlistener	*lev;
	int			 enabled;	/* accepting right now */
	struct sockaddr_storage	 addr;
	char			 text[80];
	TAILQ_ENTRY(gw_listener) entry_link;
};

struct gw_tun;
struct gw_conn;
struct gw_route_claim;
struct gw_tun_index;
TAILQ_HEAD(gw_tun_list, gw_tun);
TAILQ_HEAD(gw_route_claim_list, gw_route_claim);
TAILQ_HEAD(gw_conn_list, gw_conn);
TAILQ_HEAD(gw_listener_list, gw_listener);

struct gw_route_table;
struct gw_srcs;
struct gw_peers;
struct evhttp;
struct dns;

/* Counters for /metrics; they only grow. */
struct gw_stats {
	uint64_t	visitors;	/* accepted on the entries */
	uint64_t	routed;		/* handed to a replica */
	uint64_t	replays;	/* replayed to another replica */
	uint64_t	replay_failed;	/* no replica left to replay to */
	uint64_t	to_peers;	/* visitors sent on to a peer */
	uint64_t	from_peers;	/* visitors a peer sent us */
	uint64_t	peer_refused;	/* ... refused at max_connections */
	uint64_t	tunnels;	/* agent tunnels authenticated */
	uint64_t	tunnels_refused;
	uint64_t	claims_refused;
	uint64_t	bytes_in;	/* visitor to agent, closed streams */
	uint64_t	bytes_out;
};

struct gw {
	struct event_base	*base;
	struct cfg_gateway	*cfg;
	struct key_pair		 key;
	char			 name[NAME_MAX_LEN + 1];	/* our own */
	SSL_CTX			*tun_ctx;
	struct gw_listener_list	 listeners;
	struct gw_tun_list	 tunnels;
	struct gw_conn_list	 conns;		/* visitors not yet routed */
	struct gw_route_table	*routes;
	struct event		*accept_timer;	/* resumes accept after EMFILE */
	int			 accept_paused;
	unsigned		 nconns;	/* visitor connections open */
	unsigned		 tun_pending;	/* tunnels not yet authenticated */
	int			 tun_paced;	/* tunnel accept off: pending
						 * handshakes at their cap */
	struct gw_tun_index	*tun_index;	/* gw_tun.c's: by key */
	/* Limits gw_listen.c derives from the config and the descriptors. */
	unsigned		 max_visitors;	/* max_connections, within
						 * the descriptors */
	unsigned		 tun_max_pending;	/* handshakes at once */
	unsigned		 src_visitors;	/* per source address */
	unsigned		 src_handshakes;	/* per source address */
	int			 fd_paused;	/* GW_LISTEN_FD_*: EMFILE */
	struct gw_srcs		*srcs;		/* gw_src.c's: per source */
	uint32_t		 next_conn_id;
	uint64_t		 next_tun_id;
	struct event		*sig_term, *sig_int, *sig_hup;
	struct event		*stop_timer;	/* drain: done yet? */
	int			 stopping;
	struct evhttp		*admin;		/* status and metrics, or NULL */
	struct dns		*dns;
	struct gw_peers		*peers;
	struct gw_stats		 stats;
	uint64_t		 start_ms;
	uint64_t		 peer_full_ms;	/* last "refusing peers" line */
	const char		*conf_path;
};

/*
 * gw_cluster.c: CLUSTER frames (PROTOCOL §4.9), where this gateway and
 * its live peers are, for agents that keep DNS records.
 */
void	gw_cluster_send_agent(struct gw *, struct tun *);
void	gw_cluster_send_peer(struct gw *, struct tun *);
/* Our public_addresses changed (reload): tell peers and agents. */
void	gw_cluster_reload(struct gw *);
/* gw_tun.c: send the view again to every live agent tunnel. */
void	gw_tun_cluster_changed(struct gw *);

/* gw_listen.c */
int	gw_listen_start(struct gw *, char *err, size_t errlen);
void	gw_listen_stop(struct gw *);
/* A visitor went away; src: the address it held a slot of, or NULL. */
void	gw_listen_conn_closed(struct gw *, const struct sockaddr *src);
void	gw_listen_reload(struct gw *);
/* Stop (1) or resume (0) accepting on the tunnel listeners: admission
 * is paced at the handshake cap, the kernel's backlog holds the rest. */
void	gw_listen_tun_pace(struct gw *, int pause);

/*
 * gw_src.c: what each source address (IPv4, or IPv6 /64) holds open.
 * hold: -1 when the source already holds limit of kind (or out of
 * memory), else 0 and one more held; release gives one back.
 */
enum gw_src_kind {
	GW_SRC_VISITOR,		/* visitor connections */
	GW_SRC_HANDSHAKE,	/* tunnels not yet authenticated */
	GW_SRC_NKINDS
};
int	gw_src_hold(struct gw *, const struct sockaddr *, enum gw_src_kind,
	    unsigned limit);
void	gw_src_release(struct gw *, const struct sockaddr *, enum gw_src_kind);
unsigned gw_src_count(struct gw *, const struct sockaddr *, enum gw_src_kind);
void	gw_src_free_all(struct gw *);

/* gw_conn.c: one visitor connection until it is routed. */
void	gw_conn_accept(struct gw *, struct gw_listener *, int fd,
	    const struct sockaddr *, int socklen);
void	gw_conn_close_all(struct gw *);

/* gw_tun.c: agent tunnels. */
void	gw_tun_accept(struct gw *, struct gw_listener *, int fd,
	    const struct sockaddr *);
/* Takes bev, whose input holds a ClientHello for us with ALPN porch/1. */
void	gw_tun_accept_over(struct gw *, struct bufferevent *,
	    const struct sockaddr *);
/* Also frees the key indexes: at exit. */
void	gw_tun_close_all(struct gw *, const char *reason);
void	gw_tun_drain_all(struct gw *, const char *reason);
/* After a reload: drop agents no longer admitted, claims not covered. */
void	gw_tun_reauthorize(struct gw *);
const char *gw_tun_name(const struct gw_tun *);
struct tun *gw_tun_tun(const struct gw_tun *);
uint64_t gw_tun_id(const struct gw_tun *);	/* unique for the process */
/* The tunnel's claims, linked by gw_route (its tun_link). */
struct gw_route_claim_list *gw_tun_claims(struct gw_tun *);
void	gw_tun_params(struct gw *, struct tun_params *, enum tun_role,
	    const char *label);
struct json_t *gw_tun_status(struct gw *);	/* every agent tunnel */

/* gw_fwd.c: a routed visitor, its replica, and replays to the next. */
struct gw_fwd;
/* Takes bev (input: the bytes read so far) if a replica took it: 0.
 * -1: no replica; bev is still the caller's. */
int	gw_fwd_start(struct gw *, struct bufferevent *, const struct tun_open *,
	    uint32_t conn_id);
/* A stream opened by a peer: relay it to a local replica, or reset it. */
void	gw_fwd_from_peer(struct gw *, struct tun_stream *,
	    const struct tun_open *, const char *peer);
/* tun_ops for every tunnel whose streams carry a gw_fwd as udata. */
void	gw_fwd_stream_closed_cb(struct tun *, struct tun_stream *,
	    const char *reason, void *arg);
int	gw_fwd_stream_retry_cb(struct tun *, struct tun_stream *,
	    struct bufferevent *, const char *reason, void *arg);

/* gw_peer.c: links to the other gateways of the cluster. */
int	gw_peer_start(struct gw *, char *err, size_t errlen);
void	gw_peer_reload(struct gw *);
void	gw_peer_stop(struct gw *);
void	gw_peer_drain(struct gw *);
int	gw_peer_adopt(struct gw *, struct tun *, const struct tun_hello *,
	    char *msg, size_t msglen);
/*
 * How far a peer's announcement of a name is believed.  Today only the
 * operator's grant (peers[].hostnames) makes it believed; a proof that
 * the name's DNS points at the peer would add a level below GRANT: good
 * for visitors, never enough to take ACME probes from a local agent.
 */
enum gw_peer_trust {
	GW_PEER_TRUST_NONE = 0,		/* not believed: for the status */
	GW_PEER_TRUST_SOME = 1,		/* the least believed: visitors */
	GW_PEER_TRUST_GRANT = 2,	/* peers[].hostnames covers it */
};
/* The nearest peer that announced name for kind, believed at least
 * min_trust; NULL: none. */
struct tun *gw_peer_lookup(struct gw *, const char *name, uint8_t kind,
	    enum gw_peer_trust min_trust, const uint64_t *skip, size_t nskip,
	    const char **peer_name, uint64_t *id);
void	gw_peer_routes_changed(struct gw *);
/* The peers whose link is up, with where each said it is (none yet:
 * key and name only); returns how many were written (max at most). */
size_t	gw_peer_cluster(struct gw *, struct tun_gw_info *, size_t max);
/* Send our CLUSTER entry on every live link again (a reload). */
void	gw_peer_cluster_resend(struct gw *);
unsigned gw_peer_streams(struct gw *);
/* Every peer: link state, RTT, names announced each way (jansson). */
struct json_t *gw_peer_status(struct gw *);
/* Add the names learned from peers, as replicas "via peer X". */
void	gw_peer_route_status(struct gw *, struct json_t *routes);

/* gw_admin.c: the status and metrics listener. */
int	gw_admin_start(struct gw *, char *err, size_t errlen);
void	gw_admin_stop(struct gw *);

/* gw_conn.c: visitors refused before routing, by result, for metrics. */
struct gw_conn_result {
	const char	*name;
	uint64_t	 count;
};
const struct gw_conn_result *gw_conn_results(size_t *n);

/* gw_route.c: hostname -> agent tunnels that claimed it. */
/*
 * What the route table asks of a claimant: the gateway answers with its
 * live tunnels (gw_tun_route_view), the unit test with fakes, so the
 * replica policy is tested without a tunnel.
 */
enum gw_route_state {
	GW_ROUTE_USABLE = 0,	/* ready, not draining */
	GW_ROUTE_NOT_READY,
	GW_ROUTE_DRAINING,	/* the agent sent GOAWAY */
};
struct gw_route_view {
	enum gw_route_state (*state)(const struct gw_tun *);
	unsigned	 (*streams)(const struct gw_tun *);	/* open now */
	uint64_t	 (*id)(const struct gw_tun *);	/* as in skip lists */
	const char	*(*name)(const struct gw_tun *);
	/* The tunnel's claims, linked by gw_route (its tun_link). */
	struct gw_route_claim_list *(*claims)(struct gw_tun *);
};
extern const struct gw_route_view gw_tun_route_view;	/* gw_tun.c */
struct gw_route_table *gw_route_new(const struct gw_route_view *);
void	gw_route_free(struct gw_route_table *);
/*
 * The claim a grant allows (eff): a priority below its min_priority
 * raised, ACME kinds dropped if it says acme: false.  Returns what
 * changed: GW_ROUTE_* bits.  eff->kinds 0: nothing left to route.
 */
#define GW_ROUTE_RAISED		0x01
#define GW_ROUTE_NO_ACME	0x02
int	gw_route_bound(const struct cfg_grant *, const struct tun_claim *asked,
	    struct tun_claim *eff);
/* Route eff (asked, as the agent sent it, is kept for the status and
 * reloads).  1: a new claim, 0: an existing one updated, -1: no memory. */
int	gw_route_add(struct gw_route_table *, const char *name,
	    const struct tun_claim *eff, const struct tun_claim *asked,
	    struct gw_tun *);
/* Remove t's claims that no pattern of g covers, or that g's bounds
 * leave no kind of; cb hears each one.  The others get g's bounds. */
unsigned gw_route_revoke(struct gw_route_table *, struct gw_tun *,
	    const struct cfg_grant *,
	    void (*cb)(const struct tun_claim *, void *), void *);
/* 1 if the tunnel had claimed the name, else 0. */
int	gw_route_remove(struct gw_route_table *, const char *name,
	    struct gw_tun *);
/* 1 if the tunnel has claimed the name, else 0. */
int	gw_route_has(struct gw_route_table *, const char *name,
	    const struct gw_tun *);
void	gw_route_remove_tun(struct gw_route_table *, struct gw_tun *);
/*
 * The replica for a visitor: exact name first, then the one-label
 * wildcard "*.parent"; among the usable claims (ready, not draining, not
 * in skip) the route's policy picks.  NULL: none.
 */
struct gw_tun *gw_route_lookup(struct gw_route_table *, const char *name,
	    uint8_t kind, const uint64_t *skip, size_t nskip);
/* Each name with a usable local claim, and the union of its kinds. */
void	gw_route_foreach(struct gw_route_table *,
	    void (*)(const char *name, uint8_t kinds, void *), void *);
/*
 * Changes, for the peers: once tracking is on, every name whose kinds
 * (as gw_route_foreach gives them) may have changed is kept until
 * gw_route_changes hands it to cb, with kinds 0 when none is left, and
 * forgets it.  Off: none is kept.  A claimant whose state changed
 * (ready, draining) is reported with gw_route_touch_tun.
 */
void	gw_route_track(struct gw_route_table *, int on);
void	gw_route_touch_tun(struct gw_route_table *, struct gw_tun *);
size_t	gw_route_changes(struct gw_route_table *,
	    void (*)(const char *name, uint8_t kinds, void *), void *);
/* Every route, its replicas and why each is used or not (jansson). */
struct json_t;
struct json_t *gw_route_status(struct gw_route_table *);

#endif
