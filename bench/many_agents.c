/* SPDX-License-Identifier: ISC */
/*
 * many_agents: N agent tunnels from one process, each with its own key
 * and one claimed name, for the reconnect-storm benchmark (storm.py).
 * Thousands of porch-agent processes would measure the machine, not the
 * gateway; this runs porch's own tunnel and dialer (tunnel/, lib/) as
 * the agent does: the same handshake, the same claim, the same backoff
 * with jitter after a failure.
 *
 *   many_agents -K -n N [-s SEED]          print the N public keys
 *   many_agents -g HOST:PORT -p GWKEY -n N [-s SEED] [-z ZONE]
 *
 * Agent i has the key derived from SEED and i, and claims
 * "a<i>.<ZONE>" (default zone storm.test).  Lines on stdout, with
 * CLOCK_MONOTONIC seconds (Python's time.monotonic):
 *
 *   all t=12.345 claimed=3000      every agent's claim is granted
 *   lost t=12.345 claimed=2999     the first one lost since then
 *   status t=... up=... claimed=... failed=... lost=...   each second
 *
 * "failed" counts tunnels that ended before they were authenticated
 * (shed or refused by the gateway); the reasons go to stderr, as the
 * agent logs them.  A bench tool, not part of porch.
 */

#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "dial.h"
#include "dns.h"
#include "key.h"
#include "log.h"
#include "proc.h"
#include "tun.h"

struct ma_agent {
	struct ma		*ma;
	unsigned		 idx;
	struct key_pair		 key;
	struct dial		*dial;
	struct tun		*tun;
	int			 authed;
	int			 claimed;
	char			 name[NAME_MAX_LEN + 1];
	char			 label[32];
};

struct ma {
	struct event_base	*base;
	struct dns		*dns;
	SSL_CTX			*ctx;
	uint8_t			 gw_key[KEY_PUB_LEN];
	struct ma_agent		*agents;
	unsigned		 n;
	unsigned		 up;
	unsigned		 claimed;
	unsigned long		 failed;	/* ended before authenticated */
	unsigned long		 lost;		/* ended after */
	uint64_t		 instance;
};

static double	ma_now(void);
static void	ma_keys(unsigned, const char *, unsigned, struct key_pair *);
static void	ma_dialed(int, const char *, void *);
static int	ma_authed(struct tun *, const struct tun_hello *, char *,
		    size_t, void *);
static void	ma_claim(struct tun *, uint8_t, const struct tun_claim *,
		    void *);
static void	ma_open(struct tun *, struct tun_stream *,
		    const struct tun_open *, void *);
static void	ma_goaway(struct tun *, const struct tun_reason *, void *);
static void	ma_stream_closed(struct tun *, struct tun_stream *,
		    const char *, void *);
static void	ma_closed(struct tun *, const char *, void *);
static void	ma_status_cb(evutil_socket_t, short, void *);
static void	ma_usage(void);

static const struct tun_ops ma_ops = {
	.authed = ma_authed,
	.claim = ma_claim,
	.open = ma_open,
	.goaway = ma_goaway,
	.stream_closed = ma_stream_closed,
	.closed = ma_closed,
};

int
main(int argc, char *argv[])
{
	struct ma		 ma;
	struct ma_agent		*ag;
	struct dial_params	 dp;
	struct rlimit		 rl;
	struct event		*status;
	struct timeval		 tv = { 1, 0 };
	const char		*seed = "porch-storm", *zone = "storm.test";
	char			*gw = NULL, *gwkey = NULL, *colon, err[512];
	char			 kt[KEY_TEXT_LEN];
	unsigned		 i, n = 0, port = 0;
	int			 ch, keys_only = 0;

	while ((ch = getopt(argc, argv, "Kg:n:p:s:z:")) != -1) {
		switch (ch) {
		case 'K':
			keys_only = 1;
			break;
		case 'g':
			gw = optarg;
			break;
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			gwkey = optarg;
			break;
		case 's':
			seed = optarg;
			break;
		case 'z':
			zone = optarg;
			break;
		default:
			ma_usage();
		}
	}
	if (n == 0 || sodium_init() < 0)
		ma_usage();
	memset(&ma, 0, sizeof(ma));
	ma.n = n;
	if ((ma.agents = calloc(n, sizeof(*ma.agents))) == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++)
		ma_keys(i, seed, n, &ma.agents[i].key);
	if (keys_only) {
		for (i = 0; i < n; i++)
			printf("%s\n", key_pub_text(ma.agents[i].key.pub, kt));
		return 0;
	}
	if (gw == NULL || gwkey == NULL ||
	    key_pub_parse(gwkey, ma.gw_key) == -1 ||
	    (colon = strrchr(gw, ':')) == NULL)
		ma_usage();
	*colon = '\0';
	port = (unsigned)strtoul(colon + 1, NULL, 10);

	log_init("many_agents", 0);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* One descriptor per agent. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	proc_heap_tune();
	if ((ma.base = proc_base_new()) == NULL)
		fatalx("event base");
	if ((ma.dns = dns_new(ma.base, err, sizeof(err))) == NULL ||
	    (ma.ctx = tun_tls_client_ctx(err, sizeof(err))) == NULL)
		fatalx("%s", err);
	randombytes_buf(&ma.instance, sizeof(ma.instance));
	for (i = 0; i < n; i++) {
		ag = &ma.agents[i];
		ag->ma = &ma;
		ag->idx = i;
		snprintf(ag->name, sizeof(ag->name), "a%u.%s", i, zone);
		snprintf(ag->label, sizeof(ag->label), "gw=storm a%u", i);
		/* The agent's defaults: connect 5 s, backoff 0.5..30 s. */
		memset(&dp, 0, sizeof(dp));
		dp.host = gw;
		dp.port = port;
		dp.connect_ms = 5000;
		dp.min_ms = 500;
		dp.max_ms = 30000;
		dp.label = ag->label;
		if ((ag->dial = dial_new(ma.base, ma.dns, &dp, ma_dialed,
		    ag)) == NULL)
			fatalx("dial_new");
	}
	for (i = 0; i < n; i++)
		dial_start(ma.agents[i].dial);
	if ((status = event_new(ma.base, -1, EV_PERSIST, ma_status_cb,
	    &ma)) == NULL)
		fatalx("event_new");
	event_add(status, &tv);
	event_base_dispatch(ma.base);
	return 0;
}

static void
ma_usage(void)
{
	fprintf(stderr, "usage: many_agents -K -n N [-s seed]\n"
	    "       many_agents -g host:port -p gwkey -n N [-s seed] "
	    "[-z zone]\n");
	exit(2);
}

static double
ma_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Agent i's key: a seed hashed from the run's seed and i. */
static void
ma_keys(unsigned i, const char *seed, unsigned n, struct key_pair *kp)
{
	uint8_t		s[crypto_sign_SEEDBYTES];
	char		in[256];

	(void)n;
	snprintf(in, sizeof(in), "%s/%u", seed, i);
	crypto_generichash(s, sizeof(s), (const uint8_t *)in, strlen(in),
	    NULL, 0);
	crypto_sign_seed_keypair(kp->pub, kp->sec, s);
}

static void
ma_dialed(int fd, const char *addr, void *arg)
{
	struct ma_agent		*ag = arg;
	struct ma		*ma = ag->ma;
	struct tun_params	 p;
	SSL			*ssl;

	(void)addr;
	if ((ssl = SSL_new(ma->ctx)) == NULL) {
		close(fd);
		dial_later(ag->dial, "TLS setup failed");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.role = TUN_ROLE_AGENT;
	p.key = &ag->key;
	p.window = 256 * 1024;
	p.keepalive_ms = 1000;
	p.dead_peer_ms = 4000;
	p.handshake_ms = 10000;
	p.max_streams = 16;
	p.name = ag->name;
	p.label = ag->label;
	p.instance = ma->instance + ag->idx + 1;
	if ((ag->tun = tun_new(ma->base, fd, ssl, 0, &p, &ma_ops, ag)) ==
	    NULL)
		dial_later(ag->dial, "out of memory");
}

static int
ma_authed(struct tun *tun, const struct tun_hello *h, char *msg,
    size_t msglen, void *arg)
{
	struct ma_agent		*ag = arg;
	struct tun_claim	 c;

	if (memcmp(h->pub, ag->ma->gw_key, KEY_PUB_LEN) != 0) {
		snprintf(msg, msglen, "gateway key does not match");
		return -1;
	}
	ag->ma->up++;
	ag->authed = 1;
	dial_reset(ag->dial);
	memset(&c, 0, sizeof(c));
	c.kinds = TUN_KIND_TLS;
	c.priority = 100;
	c.policy = TUN_POLICY_FAILOVER;
	snprintf(c.name, sizeof(c.name), "%s", ag->name);
	tun_send_claim(tun, TUN_CLAIM, &c);
	return 0;
}

static void
ma_claim(struct tun *tun, uint8_t type, const struct tun_claim *c, void *arg)
{
	struct ma_agent	*ag = arg;
	struct ma	*ma = ag->ma;

	(void)tun;
	if (type != TUN_CLAIM_RESULT || strcmp(c->name, ag->name) != 0)
		return;
	if (c->status != TUN_CLAIM_OK) {
		log_warnx("%s: claim refused: %s", ag->label, c->msg);
		return;
	}
	if (ag->claimed)
		return;
	ag->claimed = 1;
	if (++ma->claimed == ma->n)
		printf("all t=%.3f claimed=%u\n", ma_now(), ma->claimed);
}

static void
ma_open(struct tun *tun, struct tun_stream *s, const struct tun_open *o,
    void *arg)
{
	(void)tun;
	(void)o;
	(void)arg;
	tun_stream_reset(s, TUN_E_NO_SERVICE, "a storm agent serves nothing");
}

static void
ma_goaway(struct tun *tun, const struct tun_reason *r, void *arg)
{
	(void)r;
	(void)arg;
	/* As the agent: no streams, so reconnect at once. */
	tun_close(tun, "gateway going away");
}

static void
ma_stream_closed(struct tun *tun, struct tun_stream *s, const char *reason,
    void *arg)
{
	(void)tun;
	(void)s;
	(void)reason;
	(void)arg;
}

static void
ma_closed(struct tun *tun, const char *reason, void *arg)
{
	struct ma_agent	*ag = arg;
	struct ma	*ma = ag->ma;
	char		 why[300];

	(void)tun;
	ag->tun = NULL;
	if (ag->claimed) {
		if (ma->claimed-- == ma->n)
			printf("lost t=%.3f claimed=%u\n", ma_now(),
			    ma->claimed);
		ag->claimed = 0;
	}
	if (ag->authed) {
		ma->up--;
		ma->lost++;
	} else
		ma->failed++;
	snprintf(why, sizeof(why), "tunnel %s: %s",
	    ag->authed ? "lost" : "failed", reason);
	ag->authed = 0;
	dial_later(ag->dial, why);
}

static void
ma_status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ma	*ma = arg;

	(void)fd;
	(void)what;
	printf("status t=%.3f up=%u claimed=%u failed=%lu lost=%lu\n",
	    ma_now(), ma->up, ma->claimed, ma->failed, ma->lost);
}
