/* SPDX-License-Identifier: ISC */
/*
 * agent_acme_priv.h: what the agent_acme*.c files share; not for the
 * rest of the agent, which sees the module through agent.h.
 *
 *	agent_acme.c		the module: its certificates as the config
 *				lists them, across reloads
 *	agent_acme_cert.c	one certificate's renewal schedule
 *	agent_acme_job.c	the order in a child process, supervised
 *	agent_acme_child.c	the child's side of it
 *	agent_acme_chal.c	challenges published and claimed
 *	agent_acme_http01.c	the http-01 responder
 *	agent_acme_hook.c	the renew hook runner
 *	agent_acme_status.c	status and metrics
 */
#ifndef PORCH_AGENT_ACME_PRIV_H
#define PORCH_AGENT_ACME_PRIV_H

#include <sys/queue.h>
#include <sys/types.h>
#include <stdint.h>
#include <time.h>

#include "acme.h"
#include "acme_store.h"
#include "agent.h"

enum agent_job_kind {
	AGENT_JOB_ORDER,
	AGENT_JOB_CHECK,	/* renewal information only */
};

enum agent_order_state {
	AGENT_ORDER_NONE,	/* no order since the agent started */
	AGENT_ORDER_RUNNING,
	AGENT_ORDER_SUCCEEDED,
	AGENT_ORDER_FAILED,
};

/* A challenge answer we serve while the CA validates. */
struct agent_chal {
	TAILQ_ENTRY(agent_chal)	 entry;
	enum acme_chal		 type;
	char			 name[NAME_MAX_LEN + 1];
	char			 token[128];
	char			 key_auth[256];
};

/* One certificate and its renewal schedule. */
struct agent_cert {
	struct agent_acme	*m;
	char			 name[NAME_MAX_LEN + 1];	/* first name */
	char			**names;
	size_t			 nnames;
	int			 have;		/* a current certificate */
	int			 names_match;	/* it covers names[] */
	time_t			 not_before;
	time_t			 not_after;
	char			 issuer[256];
	char			 serial[80];
	time_t			 due;		/* next job, wall clock */
	enum agent_job_kind	 due_kind;
	time_t			 ari_checked;	/* 0: never */
	time_t			 ari_start, ari_end;
	struct acme_store_state	 st;
	struct event		*timer;
	int			 ordering;	/* job of this cert running */
	int			 present;	/* in the config (reload) */
	/*
	 * Orders are numbered per certificate since the agent started, so
	 * that porchctl cert renew --wait follows the order it asked for
	 * (counters of failures say nothing about which order failed).
	 */
	uint64_t		 orders;	/* id of the latest order */
	enum agent_order_state	 order_state;	/* and its outcome */
	int			 requested;	/* renew_now: order next */
	int			 announced;	/* "ordering now" is logged */
	time_t			 manual_at;	/* last renew_now that ordered;
						   0: none, or its order
						   failed (no certificate) */
	uint64_t		 manual_order;	/* the order it asked for */
};

struct agent_acme_hook;		/* agent_acme_hook.c */

/* The module's state: a->acme, NULL without an acme: section. */
struct agent_acme {
	struct agent		*a;
	struct agent_cert	**certs;
	size_t			 ncerts;
	TAILQ_HEAD(, agent_chal) chals;
	TAILQ_HEAD(, agent_acme_hook) hooks;	/* running */
	struct event		*watchdog;	/* job and hook time limits */
	/* The job in flight, at most one. */
	struct agent_cert	*job;
	enum agent_job_kind	 job_kind;
	pid_t			 job_pid;
	struct bufferevent	*job_bev;
	time_t			 job_started;
	int			 job_reaped;
	int			 job_status;
	int			 job_result;	/* a done/fail line came */
	/* An "add" waiting for the gateways to confirm the claim. */
	char			 wait_name[NAME_MAX_LEN + 1];
	unsigned		 wait_left;
	unsigned		 wait_ok;
	char			 wait_refused[256];
	struct event		*wait_timer;
	char			*state_dir;	/* as initialized */
	time_t			 first_up;	/* a gateway came up */
	uint64_t		 issued;	/* counters for metrics */
	uint64_t		 failed;
};

/* agent_acme.c */
const char	*agent_acme_time(time_t, char *, size_t);
const char	*agent_acme_delay(unsigned, char *, size_t);

/* agent_acme_cert.c */
struct agent_cert *agent_acme_cert_new(struct agent_acme *,
		    const struct cfg_service *);
void		 agent_acme_cert_free(struct agent_cert *);
int		 agent_acme_cert_names(struct agent_cert *,
		    const struct cfg_service *);
void		 agent_acme_cert_drop(struct agent_acme *, struct agent_cert *);
void		 agent_acme_cert_load(struct agent_cert *, int);
void		 agent_acme_schedule(struct agent_cert *);
void		 agent_acme_timer_cb(evutil_socket_t, short, void *);
void		 agent_acme_next(struct agent_acme *);
const char	*agent_acme_hold(const struct agent_acme *);
unsigned	 agent_acme_backoff(const struct agent_acme *, unsigned,
		    unsigned);
void		 agent_acme_save_state(struct agent_cert *);

/* agent_acme_job.c */
int		 agent_acme_spawn(struct agent_acme *, struct agent_cert *,
		    enum agent_job_kind);
/* To the job's child: "ok" or "fail MESSAGE" after an "add". */
void		 agent_acme_reply(struct agent_acme *, const char *);
void		 agent_acme_watchdog_cb(evutil_socket_t, short, void *);

/* agent_acme_chal.c */
void		 agent_acme_chal_add(struct agent_acme *, enum acme_chal,
		    const char *, const char *, const char *);
/* CAA pinning: publish "0 issue(wild) ISSUER; accounturi=URL" for each
 * name of the job, then answer the child. */
void		 agent_acme_caa(struct agent_acme *, const char *issuer,
		    const char *account_url);
void		 agent_acme_chal_del(struct agent_acme *, enum acme_chal,
		    const char *, const char *);
void		 agent_acme_chal_clear(struct agent_acme *);
void		 agent_acme_wait_cb(evutil_socket_t, short, void *);

/* agent_acme_http01.c: answer an http-01 probe on s (taken: a failure
 * resets it). */
void		 agent_acme_http01_open(struct agent *, struct tun_stream *,
		    const char *name);

/* agent_acme_hook.c */
void		 agent_acme_hook_run(struct agent_acme *,
		    const struct agent_cert *);
/* 1 if pid was a hook (then reaped and logged), else 0. */
void		 agent_acme_hook_reaped(pid_t, int status, void *m);
/* Kill hooks past their time limit. */
void		 agent_acme_hook_watchdog(struct agent_acme *, time_t now);
/* The agent is going: forget the hooks (they outlive us). */
void		 agent_acme_hook_clear(struct agent_acme *);

#endif
