/* agent.h: porch-agent's shared state and its modules' entry points. */
#ifndef PORCH_AGENT_H
#define PORCH_AGENT_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "cfg.h"
#include "key.h"
#include "tun.h"

struct agent_gw;
struct agent_svc_index;
struct agent_svc_conns;
struct agent_acme;
struct agent_term;
struct agent_dns;
struct agent_child;
struct dns;
struct evbuffer;
struct agent_health;
struct evhttp;
struct json_t;

/* A backend address, resolved at startup or when a reload changes it. */
struct agent_backend {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*text;		/* own copy of "host:port" */
};

/*
 * A published hostname.  Each lives on the heap at a fixed address (its
 * checker points at it); a reload updates it in place and repoints cfg
 * at the new config's entry.  Streams copy what they need of it.
 */
struct agent_service {
	struct agent		*a;
	const struct cfg_service *cfg;		/* entry of a->cfg */
	struct agent_backend	 tls;		/* sslen 0: none */
	struct agent_backend	 http;
	struct agent_health	*health;	/* NULL: no checks, always up */
	int			 up;		/* claimable (see is_up) */
	int			 kept;		/* reload: in the new config */
	struct agent_svc_conns	*conns;		/* for max_connections */
};

/* What a reload did to one kind of object, for the summary line. */
struct agent_reload_count {
	size_t	added;
	size_t	removed;
	size_t	changed;
};

struct agent {
	struct event_base	*base;
	struct cfg_agent	*cfg;
	struct key_pair		 key;
	SSL_CTX			*tls_ctx;
	struct dns		*dns;
	struct agent_service	**services;
	size_t			 nservices;
	struct agent_svc_index	*svc_index;	/* services by hostname */
	struct agent_gw		**gws;
	size_t			 ngws;
	/* Gateways a reload dropped, draining their last tunnel. */
	TAILQ_HEAD(agent_gw_list, agent_gw) retired;
	struct event		*sig_term, *sig_int, *sig_hup;
	struct event		*sigchld;	/* agent_child.c */
	struct agent_child	*children;	/* watched, not yet reaped */
	int			 stopping;	/* SIGTERM: GOAWAY sent */
	int			 exiting;	/* loop ended: freeing */
	struct evhttp		*admin;		/* status, or NULL */
	char			 admin_text[80];
	char			 admin_secret[65];	/* for POST actions */
	char			 admin_secret_path[1024];
	struct agent_acme	*acme;		/* certificates, or NULL */
	struct agent_term	*term;		/* TLS ended here, or NULL */
	struct agent_dns	*dnsu;		/* DNS updates, or NULL */
	uint64_t		 instance;	/* random, this process (HELLO) */
	/* A SIGHUP whose backend names are being looked up: its config,
	 * and the answers (which agent_backend_resolve uses meanwhile). */
	struct cfg_agent	*reload_cfg;
	struct agent_resolve	*resolve;
	int			 reload_again;	/* SIGHUP meanwhile */
	unsigned		 fd_streams;	/* streams the descriptor
						   limit leaves room for */
};

/* agent.c */
/*
 * "host:port" of a backend to an address: from the reload's lookups
 * while a reload is applied, else (startup, before the loop runs) with
 * the system resolver.  0, or -1 with err naming what and why.
 */
int		 agent_backend_resolve(struct agent *, const char *text,
		    const char *what, struct sockaddr_storage *,
		    socklen_t *, char *err, size_t errlen);

/* agent_resolve.c: a reload's backend names, looked up off the loop. */
struct agent_resolve;
typedef void	(*agent_resolve_cb)(struct agent_resolve *, void *arg);
struct agent_resolve *agent_resolve_new(struct agent *);
/* Cancels lookups in flight: the callback never runs afterwards. */
void		 agent_resolve_free(struct agent_resolve *);
/* Queue "host:port" (an address needs no lookup); -1: out of memory. */
int		 agent_resolve_add(struct agent_resolve *, const char *text);
size_t		 agent_resolve_pending(const struct agent_resolve *);
/* cb runs once, from the loop, when all are answered or after
 * timeout_ms; it may free the resolver. */
void		 agent_resolve_start(struct agent_resolve *,
		    unsigned timeout_ms, agent_resolve_cb, void *arg);
/* The answer for text; -1 with err as for agent_backend_resolve. */
int		 agent_resolve_get(const struct agent_resolve *,
		    const char *text, const char *what,
		    struct sockaddr_storage *, socklen_t *, char *err,
		    size_t errlen);

/*
 * agent_child.c: the one SIGCHLD watcher.  A module that forks registers
 * the child; cb gets its wait status once it has exited (and is reaped).
 * forget: the owner is gone or reaped it itself; cb never runs.
 */
typedef void	(*agent_child_cb)(pid_t, int status, void *arg);
int		 agent_child_init(struct agent *);	/* needs the base */
void		 agent_child_free(struct agent *);
int		 agent_child_watch(struct agent *, pid_t, agent_child_cb,
		    void *arg);
void		 agent_child_forget(struct agent *, pid_t);

/* agent_admin.c: the status and metrics listener (admin:). */
int		 agent_admin_start(struct agent *, char *err, size_t errlen);
void		 agent_admin_stop(struct agent *);
void		 agent_admin_reload(struct agent *);

/* agent_gw.c: one gateway, its tunnel and its reconnect schedule. */
/* Copies what it needs of r; dials with a->cfg's timeouts. */
struct agent_gw	*agent_gw_new(struct agent *, const struct cfg_remote *);
void		 agent_gw_start(struct agent_gw *);
/* Stop reconnecting and send GOAWAY on the tunnel, if any. */
void		 agent_gw_shutdown(struct agent_gw *);
/* Reload dropped it: shut it down and free it once its tunnel is
 * closed (at once if it has none); meanwhile it is on a->retired. */
void		 agent_gw_retire(struct agent_gw *);
/* 1 if r names the same gateway the same way (address, key, SNI). */
int		 agent_gw_matches(const struct agent_gw *,
		    const struct cfg_remote *);
/* Reload kept it: its tunnel stays; later dials use a->cfg's timeouts. */
void		 agent_gw_reconfigure(struct agent_gw *);
const char	*agent_gw_name(const struct agent_gw *);
int		 agent_gw_is_open(const struct agent_gw *);
int		 agent_gw_is_up(const struct agent_gw *);	/* authed */
struct json_t	*agent_gw_status(const struct agent_gw *);
/* What this gateway said of name's claim, for status: "claimed",
 * "refused" (msg: the gateway's reason), "pending" (no answer yet),
 * "not claimed" (we did not ask: backend down) or "not connected". */
const char	*agent_gw_claim_state(const struct agent_gw *, const char *name,
		    const char **msg);
/* Claim (up) or withdraw the service on this gateway's ready tunnel. */
void		 agent_gw_announce(struct agent_gw *,
		    const struct agent_service *, int up);
/* Send c as CLAIM (kinds set) or UNCLAIM (kinds 0), if ready. */
void		 agent_gw_send_claim(struct agent_gw *, const struct tun_claim *);
void		 agent_gw_free(struct agent_gw *);
/* The pinned key; the gateway's last CLUSTER view on its tunnel (0
 * entries when none came: an older gateway, or no tunnel). */
const uint8_t	*agent_gw_key(const struct agent_gw *);
size_t		 agent_gw_cluster(const struct agent_gw *,
		    const struct tun_gw_info **);
int		 agent_gw_has_cluster(const struct agent_gw *);
/* The agent-wide stream limit now (limits.max_streams within what the
 * descriptors allow), and one gateway's share of it. */
unsigned	 agent_gw_stream_limit(const struct agent *);
unsigned	 agent_gw_share_limit(const struct agent *);

/*
 * agent_stream.c: the one owner of each stream a gateway opens to us.
 * Whoever takes a stream (agent_svc.c, agent_term.c, the http-01
 * responder) keeps a struct agent_stream in its own object and names
 * itself with agent_stream_own(); the stream's end reaches it through
 * ops->closed, once, and by no other way (tun_stream_reset() included).
 * closed frees the owner's object, the pair with it.
 */
struct agent_stream_ops {
	void	(*closed)(struct tun_stream *, const char *reason,
		    void *arg);
};
struct agent_stream {
	const struct agent_stream_ops	*ops;
	void				*arg;
};
/* The stream's udata points at own from here on. */
void		 agent_stream_own(struct tun_stream *, struct agent_stream *own,
		    const struct agent_stream_ops *, void *arg);
/* The tunnel's stream_closed (agent_gw.c): tell the owner, if any. */
void		 agent_stream_closed(struct tun_stream *, const char *reason);

/* agent_svc.c: streams from gateways to local backends. */
int		 agent_svc_init(struct agent *, char *err, size_t errlen);
void		 agent_svc_clear(struct agent *);
/* Start the health checkers (once the event base and gateways exist);
 * stop frees them and must run before the base is freed. */
void		 agent_svc_start(struct agent *);
void		 agent_svc_stop(struct agent *);
/*
 * Reload in two steps, so that a failure changes nothing.  prepare
 * resolves the backends of cfg's new and changed services and allocates
 * what apply needs (NULL and err set on failure; nothing changed).
 * apply runs once a->cfg is cfg and cannot fail: removed services are
 * withdrawn and freed, new ones claimed or checked, changed ones updated
 * in place (re-claimed; the checker restarts only if the health section
 * or the backends changed).  abort frees what prepare made.
 */
struct agent_svc_reload;
struct agent_svc_reload *agent_svc_reload_prepare(struct agent *,
		    const struct cfg_agent *cfg, char *err, size_t errlen);
/* The backend texts a reload to cfg must look up (new or changed). */
int		 agent_svc_reload_names(struct agent *,
		    const struct cfg_agent *cfg, struct agent_resolve *);
void		 agent_svc_reload_apply(struct agent *,
		    struct agent_svc_reload *, struct agent_reload_count *);
void		 agent_svc_reload_abort(struct agent_svc_reload *);
/* Claimable: no health checks, or the last verdict was up (a checker
 * restarted by a reload keeps the old verdict until its first one). */
int		 agent_svc_is_up(const struct agent_service *);
/* The service whose hostname is exactly name, or NULL. */
struct agent_service *agent_svc_lookup(struct agent *, const char *name);
void		 agent_svc_open(struct agent *, struct tun *,
		    struct tun_stream *, const struct tun_open *);
/* A backend connection is up: TCP_NODELAY, then the PROXY header the
 * service asks for (none: nothing) from the stream's OPEN. */
void		 agent_svc_backend_up(struct bufferevent *,
		    enum cfg_proxy_proto, const struct tun_open *);
/* A stream's place under its service's max_connections, held by the
 * stream's owner: given back when the stream ends (NULL: none). */
void		 agent_svc_conns_release(struct agent_svc_conns *);
uint8_t		 agent_svc_kinds(const struct agent_service *);
/* Fill a CLAIM for the service (kinds, priority, policy, name). */
void		 agent_svc_claim(const struct agent_service *,
		    struct tun_claim *);
/* Send name's claim as it stands now to every gateway: its service's
 * kinds while up, plus ACME kinds while validating; else UNCLAIM. */
void		 agent_svc_reclaim(struct agent *, const char *name);
/* That claim for one gateway; returns its kinds (0: withdraw). */
uint8_t		 agent_svc_claim_for(struct agent *, const char *name,
		    struct tun_claim *);

/* agent_health.c: backend health checks, one checker per service. */
enum agent_health_state {
	AGENT_HEALTH_UNKNOWN = 0,	/* no probe has ended yet */
	AGENT_HEALTH_UP,
	AGENT_HEALTH_DOWN,
};

/* For a status page; result is valid until the next probe ends. */
struct agent_health_info {
	enum agent_health_state	 state;
	enum cfg_check		 check;
	int			 last_ok;	/* the last probe passed */
	const char		*result;	/* last probe, or "" */
	unsigned		 successes;	/* in a row */
	unsigned		 failures;	/* in a row */
	struct timeval		 last_probe;	/* wall clock; 0: never */
	struct timeval		 last_success;
	struct timeval		 last_failure;
	struct timeval		 last_change;	/* last transition */
};

/* Runs after each transition was logged; it must not free the checker. */
typedef void	(*agent_health_cb)(const struct agent_service *, int up,
		    void *arg);
/* A checker for svc (health.check != CFG_CHECK_NONE); NULL: no memory. */
struct agent_health *agent_health_new(struct event_base *,
		    const struct agent_service *, agent_health_cb, void *arg);
/* Probe at once, then every interval. */
void		 agent_health_start(struct agent_health *);
/* Cancels the probe in flight: no callback runs afterwards. */
void		 agent_health_free(struct agent_health *);
enum agent_health_state agent_health_state(const struct agent_health *);
const char	*agent_health_state_name(enum agent_health_state);
void		 agent_health_info(const struct agent_health *,
		    struct agent_health_info *);


/* agent_proxy.c: PROXY protocol headers (pure). */
#define AGENT_PROXY_MAX	232
size_t		 agent_proxy_header(enum cfg_proxy_proto,
		    const struct tun_addr *src, const struct tun_addr *dst,
		    uint8_t *out);

/*
 * agent_acme*.c: certificates by ACME, one order at a time in a child
 * process; the challenges it publishes are answered here.  The files
 * and what each holds are listed in agent_acme_priv.h.
 */
int		 agent_acme_init(struct agent *, char *err, size_t errlen);
int		 agent_acme_start(struct agent *);	/* needs the base */
void		 agent_acme_free(struct agent *);
/* After a reload: follow the services' certificates. */
void		 agent_acme_reload(struct agent *);
void		 agent_acme_kick(struct agent *);	/* a tunnel is up */
/* Order NAME now; *order: the id of the order that answers the request
 * (agent_acme_status shows its outcome under that id).  0, -1 (msg says
 * why), or -2: too soon after the last request (msg says when). */
int		 agent_acme_renew_now(struct agent *, const char *name,
		    uint64_t *order, char *msg, size_t msglen);
/* agent_acme_child.c: the order process, in the child after fork();
 * its lines to the agent are at most this long. */
#define AGENT_ACME_LINE_MAX	2048
void		 agent_acme_child(struct agent *, const char *name,
		    char *const *names, size_t nnames, int check_only, int fd)
		    __attribute__((noreturn));
/* TUN_KIND_ACME_* bits to add to name's claim while validating. */
uint8_t		 agent_acme_kinds(const struct agent *, const char *name);
void		 agent_acme_foreach_name(const struct agent *,
		    void (*)(const char *, void *), void *);
void		 agent_acme_claim_result(struct agent *, const char *gw,
		    const char *name, int ok);
/* An ACME probe stream: 0 taken, -1 not ours (an ordinary visitor). */
int		 agent_acme_open(struct agent *, struct tun_stream *,
		    const struct tun_open *);
struct json_t	*agent_acme_status(struct agent *);
void		 agent_acme_metrics(struct agent *, struct evbuffer *);

/*
 * agent_term.c (one visitor) and agent_term_site.c (the certificates):
 * TLS ended at the agent (tls: terminate, tls-alpn-01).
 * init makes the contexts and loads every certificate present (a
 * missing one is not an error; needs no event base); free runs after
 * the tunnels are gone.  services_changed follows a reload's services.
 */
int		 agent_term_init(struct agent *, char *err, size_t errlen);
void		 agent_term_free(struct agent *);
/* Read name's current certificate again for new handshakes; 0 also
 * when no service terminates with it, -1 (old one kept) on failure. */
int		 agent_term_reload(struct agent *, const char *name,
		    char *err, size_t errlen);
/* 1 if a certificate for hostname is loaded (for status). */
int		 agent_term_has_cert(struct agent *, const char *hostname);
void		 agent_term_services_changed(struct agent *);
/* Take a TLS stream of a terminating service (svc is not kept) and
 * the stream's place under the service's cap (released with it, or at
 * once on failure). */
void		 agent_term_open(struct agent *, struct tun *,
		    struct tun_stream *, const struct agent_service *,
		    const struct tun_open *, struct agent_svc_conns *);
/* Answer a tls-alpn-01 probe for name (RFC 8737), then close. */
void		 agent_term_alpn01(struct agent *, struct tun_stream *,
		    const char *name, const char *key_auth);

/*
 * agent_dns.c: DNS records that follow the cluster (dns:).  Each
 * published hostname's A/AAAA records list the public addresses of the
 * gateways that can serve it now, kept by RFC 2136 updates (ddns/) that
 * add and delete single records, so replicas share the RRset.
 */
int		 agent_dns_init(struct agent *, char *err, size_t errlen);
int		 agent_dns_start(struct agent *);	/* needs the base */
void		 agent_dns_free(struct agent *);
/* After a reload (a->cfg is the new config). */
void		 agent_dns_reload(struct agent *);
/* A tunnel, a claim or a gateway's view changed: look again (soon,
 * coalesced).  Safe to call at any time, also without dns:. */
void		 agent_dns_changed(struct agent *);
struct json_t	*agent_dns_status(struct agent *);
/*
 * dns-01 (RFC 8555 8.4): publish (add) the TXT record of name's
 * challenge for key_auth and call done once every name server has it,
 * or remove it (done may be NULL).  -1 (done not called): no dns:
 * section with provider rfc2136, its server not looked up yet, or no
 * memory.
 */
typedef void	(*agent_dns_done_cb)(int ok, const char *msg, void *arg);
/* The same for any record: published (add) and seen at every name
 * server, or removed; type DDNS_TXT or DDNS_CAA. */
int		 agent_dns_record(struct agent *, const char *owner,
		    uint16_t type, const char *rdata, int add,
		    agent_dns_done_cb, void *arg);
/* The DNS server is known: dns-01 can go. */
int		 agent_dns_ready(const struct agent *);
int		 agent_dns_acme(struct agent *, const char *name,
		    const char *key_auth, int add, agent_dns_done_cb,
		    void *arg);
void		 agent_dns_metrics(struct agent *, struct evbuffer *);

/*
 * agent_relay.c: bytes both ways between two bufferevents, with
 * backpressure (reading stops while more than high bytes wait for the
 * other side) and half-close (EOF passed on once flushed).
 */
struct agent_relay;
struct agent_relay_end {
	int		 clean;		/* both directions saw EOF */
	int		 side;		/* failed: 0 a, 1 b; clean: -1 */
	const char	*reason;	/* "eof", or the failure */
	uint64_t	 a_to_b, b_to_a;	/* bytes moved */
};
/* Runs once, after the relay freed itself and both bufferevents. */
typedef void	(*agent_relay_cb)(const struct agent_relay_end *,
		    void *arg);
/* Takes a and b (freed too if this returns NULL); done never runs from
 * inside agent_relay_new. */
struct agent_relay *agent_relay_new(struct bufferevent *a,
		    struct bufferevent *b, size_t high, agent_relay_cb done,
		    void *arg);
/* side's EOF came before the relay took it over (may end the relay). */
void		 agent_relay_eof(struct agent_relay *, int side);
/* End now, without done; reset: sockets get a RST, not a FIN. */
void		 agent_relay_free(struct agent_relay *, int reset);
/* EOF on bev's write side after what is queued: shutdown(SHUT_WR), TLS
 * close_notify (then EOF below it), or EOF to a pair's partner. */
void		 agent_relay_shutdown(struct bufferevent *);

/* Stop the loop once every gateway tunnel has closed (shutdown). */
void		 agent_check_stopped(struct agent *);

#endif
