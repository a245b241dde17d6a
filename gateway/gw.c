/* SPDX-License-Identifier: ISC */
/*
 * porch-gateway: accepts visitors on TLS and HTTP entries, routes each
 * by SNI or Host without decrypting, and relays it down the tunnel of
 * the agent that claimed the name.  This file holds main, options and
 * signals; everything else lives in gw_*.c.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "gw.h"
#include "log.h"

static void	gw_usage(FILE *);
static void	gw_signal_cb(evutil_socket_t, short, void *);

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
	    "  -t       check the configuration and the identity key, then exit\n"
	    "  -v       verbose (debug) logging\n"
	    "  -h       this help\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop (tunnels get GOAWAY).\n");
}

int
main(int argc, char *argv[])
{
	struct gw	 gw;
	const char	*conf = NULL;
	char		 err[1024];
	int		 ch, test = 0, verbose = 0;

	log_init("porch-gateway", 0);
	while ((ch = getopt(argc, argv, "c:dhtv")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			break;		/* always foreground; kept for habit */
		case 'h':
			gw_usage(stdout);
			return 0;
		case 't':
			test = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			gw_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || conf == NULL) {
		gw_usage(stderr);
		return 2;
	}
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
	if (test) {
		char kt[KEY_TEXT_LEN];

		printf("configuration OK (gateway key %s)\n",
		    key_pub_text(gw.key.pub, kt));
		key_clear(&gw.key);
		cfg_gateway_free(gw.cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	if ((gw.tun_ctx = tun_tls_server_ctx(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((gw.base = tun_base_new()) == NULL)
		fatalx("event_base_new failed");
	if ((gw.routes = gw_route_new()) == NULL)
		fatalx("out of memory");
	gw.next_conn_id = (uint32_t)getpid() << 12;
	if (gw_listen_start(&gw, err, sizeof(err)) == -1)
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
	gw_tun_close_all(&gw, "gateway stopped");
	log_info("stopped");
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

static void
gw_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct gw	*gw = arg;
	struct timeval	 tv = { 3, 0 };

	(void)ev;
	if (gw->stopping)
		return;
	if (sig == SIGHUP) {
		log_warnx("SIGHUP: configuration reload is not implemented "
		    "yet; restart porch-gateway to apply changes");
		return;
	}
	log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");

	gw->stopping = 1;
	gw_conn_close_all(gw);
	gw_listen_stop(gw);
	/* Agents hear GOAWAY and move on; the loop ends when the last
	 * tunnel is closed, or after a bound. */
	if (TAILQ_EMPTY(&gw->tunnels))
		event_base_loopexit(gw->base, NULL);
	else {
		gw_tun_shutdown_all(gw, "gateway stopping");
		event_base_loopexit(gw->base, &tv);
	}
}
