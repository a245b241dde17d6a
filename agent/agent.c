/* SPDX-License-Identifier: ISC */
/*
 * porch-agent: keeps a tunnel open to every configured gateway, claims
 * the services of its config on each, and relays the visitors' streams
 * to the local backends.  This file holds main, options and signals,
 * and the SIGHUP reload that moves the running agent onto a new config.
 */

#include <sys/resource.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "addr.h"
#include "agent.h"
#include "dns.h"
#include "log.h"
#include "proc.h"

/* A reload waits this long for its backend names, then fails. */
#define AGENT_RELOAD_LOOKUP_MS	5000

static void	agent_usage(FILE *);
static void	agent_raise_nofile(struct agent *);
static int	agent_set_name(struct cfg_agent *);
static void	agent_signal_cb(evutil_socket_t, short, void *);
static void	agent_reload(struct agent *);
static void	agent_reload_resolved(struct agent_resolve *, void *);
static void	agent_reload_apply(struct agent *, struct cfg_agent *);
static void	agent_reload_cancel(struct agent *);
static void	agent_reload_identity(struct agent *,
		    const struct cfg_agent *);
static int	agent_has_gw(const struct agent *,
		    const struct agent_gw *);
static struct agent_gw **agent_reload_gws(struct agent *);
static void	agent_reload_gws_apply(struct agent *, struct agent_gw **,
		    size_t, struct agent_reload_count *);

static void
agent_usage(FILE *f)
{
	fprintf(f,
	    "usage: porch-agent [-dhtv] -c config.yaml\n"
	    "\n"
	    "Dials every gateway of the config, claims its services there, and\n"
	    "relays visitors to the local backends.  TLS ends at the backend, or\n"
	    "here for services with 'tls: terminate'; with an 'acme:' section the\n"
	    "agent obtains and renews their certificates itself.\n"
	    "\n"
	    "  -c FILE  configuration file (YAML); see config/examples/agent.yaml\n"
	    "           (installed in /usr/local/share/doc/porch/examples/ by default)\n"
	    "  -t       check the configuration, the key and the backends, then exit\n"
	    "  -v       verbose (debug) logging\n"
	    "  -h       this help\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop (gateways get GOAWAY); SIGHUP\n"
	    "reloads the configuration, keeping established connections.\n");
}

int
main(int argc, char *argv[])
{
	struct agent	 a;
	struct agent_gw	*g;
	const char	*conf = NULL;
	char		 err[1024], kt[KEY_TEXT_LEN];
	int		 status, test = 0, verbose = 0, rc = 1;
	size_t		 i;

	log_init("porch-agent", 0);
	if ((status = proc_options(argc, argv, agent_usage, &conf, &test,
	    &verbose)) != -1)
		return status;
	log_setverbose(verbose);

	memset(&a, 0, sizeof(a));
	TAILQ_INIT(&a.retired);
	/* Gateways tell our reconnects from another process with our key. */
	if (sodium_init() == -1)
		fatalx("sodium_init failed");
	randombytes_buf(&a.instance, sizeof(a.instance));
	if ((a.cfg = cfg_agent_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "porch-agent: %s\n", err);
		return 1;
	}
	if (key_load(a.cfg->identity, &a.key, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-agent: identity: %s\n", err);
		goto out;
	}
	if (agent_svc_init(&a, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-agent: %s: %s\n", conf, err);
		goto out;
	}
	if (agent_set_name(a.cfg) == -1) {
		fprintf(stderr, "porch-agent: out of memory\n");
		goto out;
	}
	/* The TSIG key is checked by -t too (needs no event loop). */
	if (agent_dns_init(&a, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-agent: dns: %s\n", err);
		goto out;
	}
	if (test) {
		printf("configuration OK (agent key %s)\n",
		    key_pub_text(a.key.pub, kt));
		rc = 0;
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	agent_raise_nofile(&a);
	if (agent_acme_init(&a, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-agent: acme: %s\n", err);
		goto out;
	}
	if (agent_term_init(&a, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-agent: %s\n", err);
		goto out;
	}
	if ((a.tls_ctx = tun_tls_client_ctx(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	proc_heap_tune();
	if ((a.base = proc_base_new()) == NULL)
		fatalx("event_base_new failed");
	if ((a.dns = dns_new(a.base, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	a.ngws = a.cfg->ngateways;
	if ((a.gws = calloc(a.ngws, sizeof(*a.gws))) == NULL)
		fatal("calloc");
	for (i = 0; i < a.ngws; i++)
		if ((a.gws[i] = agent_gw_new(&a, &a.cfg->gateways[i])) == NULL)
			fatal("agent_gw_new");
	a.sig_term = evsignal_new(a.base, SIGTERM, agent_signal_cb, &a);
	a.sig_int = evsignal_new(a.base, SIGINT, agent_signal_cb, &a);
	a.sig_hup = evsignal_new(a.base, SIGHUP, agent_signal_cb, &a);
	evsignal_add(a.sig_term, NULL);
	evsignal_add(a.sig_int, NULL);
	evsignal_add(a.sig_hup, NULL);
	log_info("porch-agent %s started, key %s, %zu service(s), %zu "
	    "gateway(s)", a.cfg->name, key_pub_text(a.key.pub, kt),
	    a.nservices, a.ngws);
	agent_svc_start(&a);
	if (agent_child_init(&a) == -1 || agent_acme_start(&a) == -1)
		fatalx("acme: out of memory");
	if (agent_dns_start(&a) == -1)
		fatalx("dns: out of memory");
	if (agent_admin_start(&a, err, sizeof(err)) == -1)
		fatalx("%s", err);
	for (i = 0; i < a.ngws; i++)
		agent_gw_start(a.gws[i]);

	event_base_dispatch(a.base);

	a.stopping = 1;
	a.exiting = 1;
	/* Pending lookups are cancelled first: their callbacks name a
	 * gateway, which must still exist then. */
	agent_admin_stop(&a);
	agent_reload_cancel(&a);
	agent_dns_free(&a);	/* its lookup is on a.dns */
	dns_free(a.dns);
	agent_svc_stop(&a);	/* health checkers: they call gateways */
	agent_acme_free(&a);	/* its job claims names on gateways */
	for (i = 0; i < a.ngws; i++)
		agent_gw_free(a.gws[i]);
	free(a.gws);
	while ((g = TAILQ_FIRST(&a.retired)) != NULL)
		agent_gw_free(g);
	agent_term_free(&a);	/* its connections hold events */
	agent_child_free(&a);
	event_free(a.sig_term);
	event_free(a.sig_int);
	event_free(a.sig_hup);
	event_base_free(a.base);
	SSL_CTX_free(a.tls_ctx);
	log_info("stopped");
	rc = 0;
out:
	agent_acme_free(&a);
	agent_dns_free(&a);
	agent_term_free(&a);
	agent_svc_clear(&a);
	key_clear(&a.key);
	cfg_agent_free(a.cfg);
	return rc;
}

/*
 * Every visitor stream holds a backend socket: the soft limit (often
 * 1024) would refuse visitors long before the machine runs short, while
 * the hard limit is what the administrator allows.  Use all of it, and
 * keep an eighth (at least 64) for tunnels, health checks, ACME and the
 * admin listener: streams beyond the rest are refused with "limit".
 */
static void
agent_raise_nofile(struct agent *a)
{
	struct rlimit	rl;
	rlim_t		n, reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit RLIMIT_NOFILE");
		a->fd_streams = a->cfg->max_streams;
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("setrlimit RLIMIT_NOFILE");
			getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	n = rl.rlim_cur == RLIM_INFINITY ? 1000000 : rl.rlim_cur;
	reserve = n / 8 > 64 ? n / 8 : 64;
	a->fd_streams = n > reserve + 16 ? (unsigned)(n - reserve > 1000000 ?
	    1000000 : n - reserve) : 16;
	if (a->fd_streams < a->cfg->max_streams)
		log_warnx("limits.max_streams is %u, but %llu descriptors "
		    "(RLIMIT_NOFILE) leave room for %u streams; raise the "
		    "hard limit (ulimit -Hn, LimitNOFILE=) to allow more",
		    a->cfg->max_streams, (unsigned long long)n,
		    a->fd_streams);
}

/* The name for logs and HELLO: the config's, else the hostname. */
static int
agent_set_name(struct cfg_agent *cfg)
{
	char	host[64];

	if (cfg->name != NULL)
		return 0;
	if (gethostname(host, sizeof(host)) == 0)
		host[sizeof(host) - 1] = '\0';
	else
		snprintf(host, sizeof(host), "agent");
	return (cfg->name = strdup(host)) == NULL ? -1 : 0;
}

/* Stopping: end the loop once no gateway tunnel is open any more. */
void
agent_check_stopped(struct agent *a)
{
	size_t	i;

	if (!a->stopping || a->exiting)
		return;
	for (i = 0; i < a->ngws; i++)
		if (agent_gw_is_open(a->gws[i]))
			return;
	if (!TAILQ_EMPTY(&a->retired))
		return;		/* dropped by a reload, still draining */
	event_base_loopexit(a->base, NULL);
}

static void
agent_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct agent	*a = arg;
	struct timeval	 tv;
	unsigned	 ms = a->cfg->drain_ms + 3000;
	size_t		 i;

	(void)ev;
	if (a->stopping)
		return;
	if (sig == SIGHUP) {
		agent_reload(a);
		return;
	}
	log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	a->stopping = 1;
	/* Every gateway hears GOAWAY at once; the loop ends when all
	 * tunnels are closed, or after a bound. */
	for (i = 0; i < a->ngws; i++)
		agent_gw_shutdown(a->gws[i]);
	agent_check_stopped(a);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_base_loopexit(a->base, &tv);
}

/*
 * SIGHUP: load the config file again and move onto it.  Everything that
 * can fail (the loader, backend lookups, allocations) runs first, so a
 * failure changes nothing.  Backend names are looked up through c-ares
 * while the loop goes on (a resolver that does not answer must not
 * freeze the tunnels); the reload goes on when the answers are in.
 * Then services and gateways are matched by name against the running
 * ones; what is unchanged keeps running untouched, and nothing points
 * into the old config after the swap, so it is freed at once.  Tunnels
 * and streams already open keep their parameters; the new timeouts and
 * limits apply to new ones.
 */
static void
agent_reload(struct agent *a)
{
	struct cfg_agent	*ncfg;
	struct agent_resolve	*res;
	char			 err[1024];

	if (a->reload_cfg != NULL) {
		log_info("SIGHUP: the previous reload is still looking up "
		    "backend names; reloading again when it is done");
		a->reload_again = 1;
		return;
	}
	if ((ncfg = cfg_agent_load(a->cfg->file, err, sizeof(err))) == NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (agent_set_name(ncfg) == -1 || (res = agent_resolve_new(a)) ==
	    NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s: out of memory", ncfg->file);
		cfg_agent_free(ncfg);
		return;
	}
	if (agent_svc_reload_names(a, ncfg, res) == -1) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s: out of memory", ncfg->file);
		agent_resolve_free(res);
		cfg_agent_free(ncfg);
		return;
	}
	a->reload_cfg = ncfg;
	a->resolve = res;
	if (agent_resolve_pending(res) > 0)
		log_info("reload: looking up %zu backend name(s)",
		    agent_resolve_pending(res));
	agent_resolve_start(res, AGENT_RELOAD_LOOKUP_MS, agent_reload_resolved,
	    a);
}

/* Every backend name is answered (or timed out): finish the reload. */
static void
agent_reload_resolved(struct agent_resolve *res, void *arg)
{
	struct agent	*a = arg;

	(void)res;
	if (a->stopping) {
		log_info("reload dropped: the agent is stopping");
		agent_reload_cancel(a);
		return;
	}
	agent_reload_apply(a, a->reload_cfg);
	agent_resolve_free(a->resolve);
	a->resolve = NULL;
	a->reload_cfg = NULL;
	if (a->reload_again && !a->stopping) {
		a->reload_again = 0;
		agent_reload(a);
	}
}

/* Takes ncfg: it becomes a->cfg, or is freed. */
static void
agent_reload_apply(struct agent *a, struct cfg_agent *ncfg)
{
	struct cfg_agent		*old = a->cfg;
	struct agent_svc_reload		*sr;
	struct agent_gw			**gws;
	struct agent_reload_count	 sc, gc;
	char				 err[1024];

	if ((sr = agent_svc_reload_prepare(a, ncfg, err, sizeof(err))) ==
	    NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s: %s", ncfg->file, err);
		cfg_agent_free(ncfg);
		return;
	}
	/* New gateways dial with the new timeouts. */
	a->cfg = ncfg;
	if ((gws = agent_reload_gws(a)) == NULL) {
		a->cfg = old;
		log_warnx("reload failed, keeping the running configuration: "
		    "%s: out of memory", ncfg->file);
		agent_svc_reload_abort(sr);
		cfg_agent_free(ncfg);
		return;
	}
	agent_reload_identity(a, ncfg);
	agent_svc_reload_apply(a, sr, &sc);
	agent_reload_gws_apply(a, gws, ncfg->ngateways, &gc);
	agent_acme_reload(a);
	agent_dns_reload(a);
	agent_term_services_changed(a);
	agent_admin_reload(a);
	cfg_agent_free(old);
	log_info("reloaded %s: %zu services (+%zu -%zu ~%zu), %zu gateways "
	    "(+%zu -%zu ~%zu)", ncfg->file, a->nservices, sc.added,
	    sc.removed, sc.changed, a->ngws, gc.added, gc.removed, gc.changed);
}

/* A reload still looking up names when the agent stops: drop it. */
static void
agent_reload_cancel(struct agent *a)
{
	agent_resolve_free(a->resolve);
	a->resolve = NULL;
	cfg_agent_free(a->reload_cfg);
	a->reload_cfg = NULL;
}

int
agent_backend_resolve(struct agent *a, const char *text, const char *what,
    struct sockaddr_storage *ss, socklen_t *sslen, char *err, size_t errlen)
{
	/* Before the loop runs (startup, -t) blocking is harmless. */
	if (a->base == NULL)
		return addr_resolve(text, what, ss, sslen, err, errlen);
	if (a->resolve != NULL)
		return agent_resolve_get(a->resolve, text, what, ss, sslen,
		    err, errlen);
	/* Never block the loop: an address needs no lookup. */
	if (addr_parse_numeric(text, ss, sslen, err, errlen) == 0)
		return 0;
	snprintf(err, errlen, "%s '%s': names are looked up only by a "
	    "reload", what, text);
	return -1;
}

/* The running key stays: tunnels are authenticated with it. */
static void
agent_reload_identity(struct agent *a, const struct cfg_agent *ncfg)
{
	struct key_pair	 k;
	char		 err[512], kt[KEY_TEXT_LEN];

	if (key_load(ncfg->identity, &k, err, sizeof(err)) == -1)
		log_warnx("reload: identity: %s; keeping the running key %s",
		    err, key_pub_text(a->key.pub, kt));
	else if (memcmp(k.pub, a->key.pub, KEY_PUB_LEN) != 0)
		log_warnx("reload: identity %s holds another key, which takes "
		    "a restart; keeping the running key %s", ncfg->identity,
		    key_pub_text(a->key.pub, kt));
	key_clear(&k);
}

/* g is one of a->gws. */
static int
agent_has_gw(const struct agent *a, const struct agent_gw *g)
{
	size_t	i;

	for (i = 0; i < a->ngws; i++)
		if (a->gws[i] == g)
			return 1;
	return 0;
}

/*
 * The gateways of a->cfg (the new config), in its order: a running one
 * whose entry is unchanged, else a new one, not yet started.  NULL if
 * out of memory, with nothing changed.
 */
static struct agent_gw **
agent_reload_gws(struct agent *a)
{
	const struct cfg_agent	*cfg = a->cfg;
	struct agent_gw		**gws;
	size_t			 i, j;

	if ((gws = calloc(cfg->ngateways + 1, sizeof(*gws))) == NULL)
		return NULL;
	for (i = 0; i < cfg->ngateways; i++) {
		for (j = 0; j < a->ngws && gws[i] == NULL; j++)
			if (agent_gw_matches(a->gws[j], &cfg->gateways[i]))
				gws[i] = a->gws[j];
		if (gws[i] != NULL)
			continue;
		if ((gws[i] = agent_gw_new(a, &cfg->gateways[i])) == NULL) {
			while (i-- > 0)
				if (!agent_has_gw(a, gws[i]))
					agent_gw_free(gws[i]);
			free(gws);
			return NULL;
		}
	}
	return gws;
}

/*
 * Start the new gateways, drain the dropped ones (a changed entry is
 * both: a new tunnel, and the old one drains), keep the others' tunnels
 * as they are.
 */
static void
agent_reload_gws_apply(struct agent *a, struct agent_gw **gws, size_t n,
    struct agent_reload_count *cnt)
{
	struct agent_gw	*g;
	size_t		 i, j;
	int		 found;

	memset(cnt, 0, sizeof(*cnt));
	for (i = 0; i < n; i++) {
		if (agent_has_gw(a, gws[i]))
			continue;
		for (j = 0, found = 0; j < a->ngws && !found; j++)
			found = strcmp(agent_gw_name(a->gws[j]),
			    agent_gw_name(gws[i])) == 0;
		if (found) {
			log_info("reload: gateway %s changed; a new tunnel "
			    "replaces the old one", agent_gw_name(gws[i]));
			cnt->changed++;
		} else {
			log_info("reload: gateway %s added",
			    agent_gw_name(gws[i]));
			cnt->added++;
		}
		agent_gw_start(gws[i]);
	}
	for (i = 0; i < a->ngws; i++) {
		g = a->gws[i];
		for (j = 0, found = 0; j < n && !found; j++)
			found = gws[j] == g;
		if (found) {
			agent_gw_reconfigure(g);
			continue;
		}
		for (j = 0, found = 0; j < a->cfg->ngateways && !found; j++)
			found = strcmp(a->cfg->gateways[j].name,
			    agent_gw_name(g)) == 0;
		if (!found) {
			log_info("reload: gateway %s removed",
			    agent_gw_name(g));
			cnt->removed++;
		}
		agent_gw_retire(g);
	}
	free(a->gws);
	a->gws = gws;
	a->ngws = n;
}
