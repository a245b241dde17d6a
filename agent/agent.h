/* agent.h: porch-agent's shared state and its modules' entry points. */
#ifndef PORCH_AGENT_H
#define PORCH_AGENT_H

#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "cfg.h"
#include "key.h"
#include "tun.h"

struct agent_gw;
struct agent_dns;

/* A backend address, resolved once at startup. */
struct agent_backend {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*text;		/* points into the config */
};

struct agent_service {
	const struct cfg_service *cfg;
	struct agent_backend	 tls;		/* sslen 0: none */
	struct agent_backend	 http;
};

struct agent {
	struct event_base	*base;
	struct cfg_agent	*cfg;
	struct key_pair		 key;
	SSL_CTX			*tls_ctx;
	struct agent_dns	*dns;
	struct agent_service	*services;
	size_t			 nservices;
	struct agent_gw		**gws;
	size_t			 ngws;
	struct event		*sig_term, *sig_int, *sig_hup;
	int			 stopping;	/* SIGTERM: GOAWAY sent */
	int			 exiting;	/* loop ended: freeing */
};

/* agent_gw.c: one gateway, its tunnel and its reconnect schedule. */
struct agent_gw	*agent_gw_new(struct agent *, const struct cfg_remote *);
void		 agent_gw_start(struct agent_gw *);
/* Stop reconnecting and send GOAWAY on the tunnel, if any. */
void		 agent_gw_shutdown(struct agent_gw *);
int		 agent_gw_is_open(const struct agent_gw *);
void		 agent_gw_free(struct agent_gw *);

/* agent_svc.c: streams from gateways to local backends. */
int		 agent_svc_init(struct agent *, char *err, size_t errlen);
void		 agent_svc_clear(struct agent *);
void		 agent_svc_open(struct agent *, struct tun *,
		    struct tun_stream *, const struct tun_open *);
void		 agent_svc_stream_closed(struct tun_stream *);
uint8_t		 agent_svc_kinds(const struct agent_service *);

/* agent_dns.c: asynchronous name lookups through c-ares. */
typedef void	(*agent_dns_cb)(int err, const struct sockaddr_storage *,
		    const socklen_t *, size_t n, void *arg);
struct agent_dns *agent_dns_new(struct event_base *, char *err, size_t);
void		 agent_dns_free(struct agent_dns *);
/* Resolve host:port; cb runs later, exactly once (err != 0: failed). */
void		 agent_dns_lookup(struct agent_dns *, const char *host,
		    unsigned port, agent_dns_cb, void *arg);
const char	*agent_dns_strerror(int);

/* agent_proxy.c: PROXY protocol headers (pure). */
#define AGENT_PROXY_MAX	232
size_t		 agent_proxy_header(enum cfg_proxy_proto,
		    const struct tun_addr *src, const struct tun_addr *dst,
		    uint8_t *out);

/* Stop the loop once every gateway tunnel has closed (shutdown). */
void		 agent_check_stopped(struct agent *);

#endif
