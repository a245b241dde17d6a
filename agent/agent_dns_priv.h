/* SPDX-License-Identifier: ISC */
/*
 * agent_dns_priv.h: what the files of the agent's DNS module share.
 *
 *	agent_dns.c		the cluster's view and each name's A/AAAA
 *				records, kept by RFC 2136 (ddns/)
 *	agent_dns_exec.c	provider exec: a command gets each record
 *				set as JSON
 *	agent_dns_record.c	one record for the CA (a dns-01 TXT, a CAA
 *				pin), published and seen at every name server
 *	agent_dns_status.c	/status and /metrics
 *
 * The rest of the agent sees agent.h.
 */
#ifndef PORCH_AGENT_DNS_PRIV_H
#define PORCH_AGENT_DNS_PRIV_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "agent.h"
#include "ddns.h"

#define AGENT_DNS_KNOWN_MAX	256	/* gateways remembered */
#define AGENT_DNS_DEAD_MAX	64	/* addresses deleted in one sync */
#define AGENT_DNS_ADDR_LEN	64	/* an address as text */
#define AGENT_DNS_COALESCE_MS	200
#define AGENT_DNS_REFRESH_MS	(10 * 60 * 1000)
#define AGENT_DNS_RETRY_MIN_MS	1000
#define AGENT_DNS_RETRY_MAX_MS	60000

/* A gateway this agent has heard of, by its key. */
struct agent_dns_gw {
	uint8_t		 pub[KEY_PUB_LEN];
	char		 name[64];
	struct tun_addr	 addr[TUN_CLUSTER_ADDR_MAX];
	uint8_t		 naddr;
	int		 live;		/* in the view now */
	uint64_t	 last_live_ms;	/* mono; 0: not live in this process */
};

/* One hostname's records of one type, and what became of them. */
struct agent_dns_set {
	struct agent_dns *d;
	char		 name[NAME_MAX_LEN + 1];
	uint16_t	 type;		/* DDNS_A or DDNS_AAAA */
	char		 want[DDNS_RRSET_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 nwant;
	char		 dead[AGENT_DNS_DEAD_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 ndead;
	int		 synced;	/* the last sync was of these inputs */
	unsigned	 gen;		/* of the inputs, +1 on each change */
	unsigned	 sync_gen;	/* of those the sync in flight uses */
	struct ddns_sync *sync;		/* in flight (rfc2136) */
	struct agent_dns_exec *exec;	/* in flight (exec) */
	unsigned	 failures;	/* in a row */
	uint64_t	 next_ms;	/* mono: retry or refresh */
	int		 ok;		/* last result */
	char		 result[sizeof(((struct ddns_result *)0)->text)];
	time_t		 result_at;
	char		 published[DDNS_RRSET_MAX][AGENT_DNS_ADDR_LEN];
	size_t		 npublished;
	unsigned long	 updates;	/* changes made, in all */
};

/*
 * One record for the CA: a dns-01 answer (TXT _acme-challenge.NAME) or
 * a CAA pin, published, then looked for at each name server of the zone
 * until all have it, then reported; or removed.
 */
struct agent_dns_rec {
	struct agent_dns	*d;
	char			 owner[NAME_MAX_LEN + 17];
	uint16_t		 type;
	char			 value[DDNS_RDATA_MAX];	/* as written */
	int			 add;
	agent_dns_done_cb	 done;
	void			*arg;
	struct ddns_sync	*sync;
	struct dns		*probe;		/* a name server, directly */
	struct dns_query	*query;
	size_t			 ns;		/* the server being asked */
	int			 seen;		/* it has the record */
	uint64_t		 deadline;	/* mono ms */
	struct event		*timer;		/* next look */
	TAILQ_ENTRY(agent_dns_rec) entry;
};

struct agent_dns {
	struct agent		*a;
	TAILQ_HEAD(, agent_dns_rec) dns01;
	struct ddns_key		 key;
	struct dns_query	*lookup;	/* the server's name */
	struct dns		*direct;	/* asks the server itself */
	struct sockaddr_storage	 server;
	socklen_t		 serverlen;	/* 0: not resolved yet */
	unsigned		 lookup_failures;
	struct agent_dns_gw	 gws[AGENT_DNS_KNOWN_MAX];
	size_t			 ngws;
	struct agent_dns_set	*sets;
	size_t			 nsets;
	struct event		*timer;		/* the next look */
	int			 timer_at_once;	/* armed for "changed" */
	unsigned long		 failures_total;
};


struct agent_dns_exec;

/* agent_dns.c */
void	 agent_dns_synced(const struct ddns_result *, size_t changes,
	    const struct ddns_rrset *have, void *set);
void	 agent_dns_text(const struct tun_addr *, char *, size_t);
/* agent_dns_exec.c */
void	 agent_dns_exec_start(struct agent_dns *, struct agent_dns_set *);
void	 agent_dns_exec_free(struct agent_dns_exec *);
/* agent_dns_record.c */
void	 agent_dns_rec_end(struct agent_dns_rec *, int ok, const char *);
/* agent_dns_status.c */
json_t	*agent_dns_array(char [][AGENT_DNS_ADDR_LEN], size_t);

#endif
