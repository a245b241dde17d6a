/* SPDX-License-Identifier: ISC */
/*
 * porch-agent: keeps a tunnel open to every configured gateway, claims
 * the services of its config on each, and relays the visitors' streams
 * to the local backends.  This file holds main, options and signals.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent.h"
#include "dns.h"
#include "log.h"

static void	agent_usage(FILE *);
static void	agent_signal_cb(evutil_socket_t, short, void *);

static void
agent_usage(FILE *f)
{
	fprintf(f,
	    "usage: porch-agent [-dhtv] -c config.yaml\n"
	    "\n"
	    "Dials every gateway of the config, claims its services there, and\n"
	    "relays visitors to the local backends.  TLS ends at the backend.\n"
	    "\n"
	    "  -c FILE  configuration file (YAML); see config/examples/agent.yaml\n"
	    "  -t       check the configuration, the key and the backends, then exit\n"
	    "  -v       verbose (debug) logging\n"
	    "  -h       this help\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop (gateways get GOAWAY).\n");
}

int
main(int argc, char *argv[])
{
	struct agent	 a;
	const char	*conf = NULL;
	char		 err[1024], kt[KEY_TEXT_LEN];
	int		 ch, test = 0, verbose = 0, rc = 1;
	size_t		 i;

	log_init("porch-agent", 0);
	while ((ch = getopt(argc, argv, "c:dhtv")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			break;
		case 'h':
			agent_usage(stdout);
			return 0;
		case 't':
			test = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			agent_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || conf == NULL) {
		agent_usage(stderr);
		return 2;
	}
	log_setverbose(verbose);

	memset(&a, 0, sizeof(a));
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
	if (a.cfg->name == NULL) {
		char host[64];

		if (gethostname(host, sizeof(host)) == 0)
			host[sizeof(host) - 1] = '\0';
		else
			snprintf(host, sizeof(host), "agent");
		a.cfg->name = strdup(host);
	}
	if (test) {
		printf("configuration OK (agent key %s)\n",
		    key_pub_text(a.key.pub, kt));
		rc = 0;
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	if ((a.tls_ctx = tun_tls_client_ctx(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((a.base = tun_base_new()) == NULL)
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
	for (i = 0; i < a.ngws; i++)
		agent_gw_start(a.gws[i]);

	event_base_dispatch(a.base);

	a.stopping = 1;
	a.exiting = 1;
	/* Pending lookups are cancelled first: their callbacks name a
	 * gateway, which must still exist then. */
	dns_free(a.dns);
	agent_svc_stop(&a);	/* health checkers: they call gateways */
	for (i = 0; i < a.ngws; i++)
		agent_gw_free(a.gws[i]);
	free(a.gws);
	event_free(a.sig_term);
	event_free(a.sig_int);
	event_free(a.sig_hup);
	event_base_free(a.base);
	SSL_CTX_free(a.tls_ctx);
	log_info("stopped");
	rc = 0;
out:
	agent_svc_clear(&a);
	key_clear(&a.key);
	cfg_agent_free(a.cfg);
	return rc;
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
		log_warnx("SIGHUP: configuration reload is not implemented "
		    "yet; restart porch-agent to apply changes");
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
