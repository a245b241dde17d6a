/* SPDX-License-Identifier: ISC */
/*
 * A hostile agent for the system tests: it authenticates like a real
 * agent (the project's own tunnel code), then writes frames given in hex
 * on the command line, as they are, and reports how the gateway ended
 * the tunnel.  Not installed.
 *
 *   rawagent KEYFILE GWKEY HOST:PORT HEXFRAME...
 *
 * Prints "authed" once admitted, then "closed: REASON" and exits 0 when
 * the gateway closes the tunnel, 1 if it is still open after 5 s.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr.h"
#include "key.h"
#include "log.h"
#include "proc.h"
#include "sock.h"
#include "tun_priv.h"

static struct event_base	*base;
static uint8_t			 gw_key[KEY_PUB_LEN];
static char			**frames;
static int			 nframes, closed;

static int
ra_authed(struct tun *t, const struct tun_hello *h, char *msg, size_t len,
    void *arg)
{
	uint8_t	buf[TUN_HDR_LEN + TUN_MAX_PAYLOAD];
	size_t	n, i;
	int	k;
	unsigned v;

	(void)arg;
	if (memcmp(h->pub, gw_key, KEY_PUB_LEN) != 0) {
		snprintf(msg, len, "gateway key does not match");
		return -1;
	}
	printf("authed\n");
	fflush(stdout);
	for (k = 0; k < nframes; k++) {
		n = strlen(frames[k]) / 2;
		if (n > sizeof(buf))
			fatalx("frame %d too long", k);
		for (i = 0; i < n; i++) {
			if (sscanf(frames[k] + 2 * i, "%2x", &v) != 1)
				fatalx("frame %d: not hex", k);
			buf[i] = (uint8_t)v;
		}
		/* Raw bytes, header included, past the codec's checks. */
		evbuffer_add(t->out, buf, n);
	}
	return 0;
}

static void
ra_closed(struct tun *t, const char *reason, void *arg)
{
	(void)t;
	(void)arg;
	printf("closed: %s\n", reason);
	fflush(stdout);
	closed = 1;
	event_base_loopexit(base, NULL);
}

static const struct tun_ops ra_ops = {
	.authed = ra_authed,
	.closed = ra_closed,
};

int
main(int argc, char *argv[])
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct key_pair		 key;
	struct tun_params	 p;
	struct timeval		 tv = { 5, 0 };
	SSL_CTX			*ctx;
	SSL			*ssl;
	char			 err[256];
	int			 fd;

	log_init("rawagent", 0);
	if (argc < 4)
		fatalx("usage: rawagent KEYFILE GWKEY HOST:PORT HEXFRAME...");
	frames = argv + 4;
	nframes = argc - 4;
	if (key_load(argv[1], &key, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (key_pub_parse(argv[2], gw_key) == -1)
		fatalx("bad gateway key");
	if (addr_parse_numeric(argv[3], &ss, &sslen, err, sizeof(err)) == -1)
		fatalx("%s: %s", argv[3], err);
	if ((fd = socket(ss.ss_family, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&ss, sslen) == -1)
		fatal("connect %s", argv[3]);
	if ((base = proc_base_new()) == NULL ||
	    (ctx = tun_tls_client_ctx(err, sizeof(err))) == NULL ||
	    (ssl = SSL_new(ctx)) == NULL)
		fatalx("setup: %s", err);
	memset(&p, 0, sizeof(p));
	p.role = TUN_ROLE_AGENT;
	p.key = &key;
	p.window = 65536;
	p.keepalive_ms = 1000;
	p.dead_peer_ms = 10000;
	p.handshake_ms = 5000;
	p.max_streams = 16;
	p.name = "rawagent";
	p.label = "rawagent";
	evutil_make_socket_nonblocking(fd);
	if (tun_new(base, fd, ssl, 0, &p, &ra_ops, NULL) == NULL)
		fatalx("tun_new");
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	if (!closed)
		printf("still open\n");
	return closed ? 0 : 1;
}
