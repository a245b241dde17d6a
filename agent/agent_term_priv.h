/* SPDX-License-Identifier: ISC */
/*
 * agent_term_priv.h: what agent_term.c (one visitor's TLS) and
 * agent_term_site.c (the certificates and the handshake callbacks)
 * share; not for the rest of the agent, which sees agent.h.
 */
#ifndef PORCH_AGENT_TERM_PRIV_H
#define PORCH_AGENT_TERM_PRIV_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "agent.h"
#include "name.h"

struct agent_term_site;		/* agent_term_site.c */
TAILQ_HEAD(agent_term_sites, agent_term_site);

/* a->term, NULL when no service ends TLS here. */
struct agent_term {
	struct agent		*a;
	SSL_CTX			*ctx;	/* SSLs start here */
	struct agent_term_sites	 sites;
	char			*state_dir;	/* sites loaded from */
};

/*
 * What the SNI and ALPN callbacks need of one visitor, site being its
 * service's certificate name: the SSL's app data points at it (it lives
 * in the visitor's connection) until the handshake is done.
 */
struct agent_term_hs {
	char			 site[NAME_MAX_LEN + 1];
	int			 alpn01;	/* a tls-alpn-01 answer */
	int			 h2_ok;		/* offer h2 */
	char			 why[320];	/* a refusal, in words */
};

/* agent_term_site.c */
/* A context with what all of ours share (TLS 1.2+, our ALPN choice). */
SSL_CTX		*agent_term_ctx_new(struct agent_term *);
/* The h2c backend of site, if it has one: 1 and copied, else 0. */
int		 agent_term_h2c(struct agent_term *, const char *site,
		    struct sockaddr_storage *, socklen_t *, char *text,
		    size_t textlen);

#endif
