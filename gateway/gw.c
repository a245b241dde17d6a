/* SPDX-License-Identifier: ISC */
/*
 * porch-gateway: accepts visitors on TLS and HTTP entries, routes each
 * by SNI or Host without decrypting, and relays it down the tunnel of
 * the agent that claimed the name.  This file holds main, options and
 * signals; everything else lives in gw_*.c.
 */

#include <sys/resource.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "gw.h"
#include "log.h"
#include "mono.h"
#include "proc.h"

static void	gw_usage(FILE *);
static void	gw_signal_cb(evutil_socket_t, short, void *);
static void	gw_set_name(struct gw *);
static void	gw_stop_check_cb(evutil_socket_t, short, void *);
static void	gw_reload(struct gw *);
static void	gw_raise_nofile(void);

static void
gw_usage(FILE *f)
{
	fprintf(f,
	    "usage: porch-gateway [-dhtv] -c config.yaml\n"
	    "\n"
	    "Accepts visitors on the TLS and HTTP entries of the config, routes\n"
	    "each by TLS SNI or HTTP Host without decrypting it, and relays it\n"
	    "through the tunnel of the porch-agent that claimed the name.\n"
	    "\n"
	    "  -c FILE  configuration file (YAML); see config/examples/gateway.yaml\n"
	    "           (installed in /usr/local/share/doc/porch/examples/ by default)\n"
	    "  -t       check the configuration and the identity key, then exit\n"
	    "  -v       verbose (debug) logging\n"
	    "  -h       this help\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop accepting, give open connections up\n"
	    "to timeouts.drain to finish (agents and peers get GOAWAY), then stop;\n"
	    "SIGHUP reloads the configuration, keeping established connections\n"
	    "(a configuration with errors is refused and the running one kept).\n");
}

int
main(int argc, char *argv[])
{
	struct gw	 gw;
	const char	*conf = NULL;
	char		 err[1024];
	int		 status, test = 0, verbose = 0;

	log_init("porch-gateway", 0);
	if ((status = proc_options(argc, argv, gw_usage, &conf, &test,
	    &verbose)) != -1)
		return status;
	log_setverbose(verbose);

	memset(&gw, 0, sizeof(gw));
	TAILQ_INIT(&gw.listeners);
	TAILQ_INIT(&gw.tunnels);
	TAILQ_INIT(&gw.conns);
	if ((gw.cfg = cfg_gateway_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "porch-gateway: %s\n", err);
		return 1;
	}
	if (key_load(gw.cfg->identity, &gw.key, err, sizeof(err)) == -1) {
		fprintf(stderr, "porch-gateway: identity: %s\n", err);
		cfg_gateway_free(gw.cfg);
		return 1;
	}
	gw_set_name(&gw);
	if (test) {
		char kt[KEY_TEXT_LEN];

		printf("configuration OK (gateway key %s)\n",
		    key_pub_text(gw.key.pub, kt));
		key_clear(&gw.key);
		cfg_gateway_free(gw.cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	gw_raise_nofile();
	if ((gw.tun_ctx = tun_tls_server_ctx(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	proc_heap_tune();
	if ((gw.base = proc_base_new()) == NULL)
		fatalx("event_base_new failed");
	if ((gw.routes = gw_route_new(&gw_tun_route_view)) == NULL)
		fatalx("out of memory");
	gw.next_conn_id = (uint32_t)getpid() << 12;
	gw.conf_path = conf;
	gw.start_ms = mono_ms();
	if ((gw.dns = dns_new(gw.base, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (gw_listen_start(&gw, err, sizeof(err)) == -1 ||
	    gw_admin_start(&gw, err, sizeof(err)) == -1 ||
	    gw_peer_start(&gw, err, sizeof(err)) == -1)
		fatalx("%s", err);
	gw.sig_term = evsignal_new(gw.base, SIGTERM, gw_signal_cb, &gw);
	gw.sig_int = evsignal_new(gw.base, SIGINT, gw_signal_cb, &gw);
	gw.sig_hup = evsignal_new(gw.base, SIGHUP, gw_signal_cb, &gw);
	evsignal_add(gw.sig_term, NULL);
	evsignal_add(gw.sig_int, NULL);
	evsignal_add(gw.sig_hup, NULL);
	{
		char kt[KEY_TEXT_LEN];

		log_info("porch-gateway started, key %s, %zu agent(s) "
		    "admitted", key_pub_text(gw.key.pub, kt),
		    gw.cfg->nagents);
	}

	event_base_dispatch(gw.base);

	gw_conn_close_all(&gw);		/* before the listeners they point to */
	gw_listen_stop(&gw);
	gw_admin_stop(&gw);
	dns_free(gw.dns);		/* pending lookups dropped first */
	gw_peer_stop(&gw);
	gw_tun_close_all(&gw, "gateway stopped");
	gw_src_free_all(&gw);		/* after every hold is given back */
	log_info("stopped");
	if (gw.stop_timer != NULL)
		event_free(gw.stop_timer);
	event_free(gw.sig_term);
	event_free(gw.sig_int);
	event_free(gw.sig_hup);
	gw_route_free(gw.routes);
	event_base_free(gw.base);
	SSL_CTX_free(gw.tun_ctx);
	key_clear(&gw.key);
	cfg_gateway_free(gw.cfg);
	return 0;
}

/*
 * SIGHUP: load the config again; on any error keep running on the old
 * one.  Agents, routes, replicas, peers, listeners and limits change;
 * established connections stay.  Nothing keeps a pointer into the old
 * config, so it is freed at once.
 */
static void
gw_reload(struct gw *gw)
{
	struct cfg_gateway	*ncfg, *old = gw->cfg;
	char			 err[1024];
	int			 admin_moved, where_moved;

	if ((ncfg = cfg_gateway_load(gw->conf_path, err, sizeof(err))) ==
	    NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (strcmp(ncfg->identity, old->identity) != 0)
		log_warnx("reload: a new identity takes a restart; keeping "
		    "the running key");
	admin_moved = (ncfg->admin == NULL) != (old->admin == NULL) ||
	    (ncfg->admin != NULL && strcmp(ncfg->admin->text,
	    old->admin->text) != 0);
	if (admin_moved)
		gw_admin_stop(gw);
	where_moved = ncfg->npublic != old->npublic ||
	    (ncfg->npublic > 0 && memcmp(ncfg->public_addrs,
	    old->public_addrs, ncfg->npublic *
	    sizeof(*ncfg->public_addrs)) != 0);
	gw->cfg = ncfg;
	gw_set_name(gw);
	gw_listen_reload(gw);
	gw_tun_reauthorize(gw);
	gw_peer_reload(gw);
	if (where_moved)
		gw_cluster_reload(gw);
	if (admin_moved && gw_admin_start(gw, err, sizeof(err)) == -1)
		log_warnx("reload: %s", err);
	cfg_gateway_free(old);
	gw_peer_routes_changed(gw);
	log_info("reloaded %s: %zu agent(s) admitted, %zu peer(s)",
	    gw->conf_path, ncfg->nagents, ncfg->npeers);
}

/* Draining: done once no agent tunnel and no peer stream is left. */
static void
gw_stop_check_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw	*gw = arg;

	(void)fd;
	(void)ev;
	if (TAILQ_EMPTY(&gw->tunnels) && gw_peer_streams(gw) == 0)
		event_base_loopexit(gw->base, NULL);
}

/* Our name: from the config, else the machine's hostname. */
static void
gw_set_name(struct gw *gw)
{
	char	host[256];

	if (gw->cfg->name != NULL) {
		snprintf(gw->name, sizeof(gw->name), "%s", gw->cfg->name);
		return;
	}
	if (gethostname(host, sizeof(host)) == -1 ||
	    name_normalize(host, strnlen(host, sizeof(host)), gw->name,
	    0) == -1)
		snprintf(gw->name, sizeof(gw->name), "porch-gateway");
}

/*
 * Every agent holds a descriptor, and so does every visitor: the soft
 * limit (often 1024) would cap a gateway at a few hundred agents, while
 * the hard limit is what the administrator allows.  Use all of it;
 * gw_listen.c sizes the limits from what we got.
 */
static void
gw_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit RLIMIT_NOFILE");
}

static void
gw_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct gw	*gw = arg;
	struct timeval	 tv;
	unsigned	 ms = gw->cfg->drain_ms + 3000;

	(void)ev;
	if (gw->stopping)
		return;
	if (sig == SIGHUP) {
		gw_reload(gw);
		return;
	}
	log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");

	gw->stopping = 1;
	gw_conn_close_all(gw);
	gw_listen_stop(gw);
	/* Agents and peers hear GOAWAY; open streams get drain_ms to
	 * finish; the loop ends when nothing is left, or after a bound. */
	log_info("draining %u visitor connection(s) for at most %u ms",
	    gw->nconns, gw->cfg->drain_ms);
	gw_peer_drain(gw);
	gw_tun_drain_all(gw, "gateway stopping");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_base_loopexit(gw->base, &tv);
	gw->stop_timer = event_new(gw->base, -1, EV_PERSIST,
	    gw_stop_check_cb, gw);
	if (gw->stop_timer != NULL) {
		tv.tv_sec = 0;
		tv.tv_usec = 100000;
		event_add(gw->stop_timer, &tv);
		event_active(gw->stop_timer, EV_TIMEOUT, 0);
	}
}
