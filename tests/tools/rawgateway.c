/* SPDX-License-Identifier: ISC */
/*
 * A hostile gateway for the system tests, the mirror of rawagent: it
 * accepts agents' tunnels with the real handshake (the project's own
 * tunnel code and a key the agent pins), then does what the test writes
 * on its standard input, one command a line, and reports on its standard
 * output what the agent does.  Not installed.
 *
 *   rawgateway KEYFILE HOST:PORT [WINDOW]
 *
 * WINDOW is the per-stream credit announced in HELLO (default 65536; up
 * to 2^31-1, which lets the agent send without waiting for WINDOW).
 *
 * Commands, on the newest tunnel:
 *   raw HEX			write the bytes as they are, header included
 *   repeat N HEX		the same, N times
 *   open KIND NAME [HEX]	a stream opened the regular way (kind 1 tls,
 *				2 http, 4 acme-http, 8 acme-tls), HEX sent on
 *				it; prints "opened ID NAME"
 *   openmany N KIND NAME [HEX]	the same, N times
 *   send ID HEX		more bytes on a stream opened so
 *   noread			stop reading the tunnel for good, and
 *				sending our own PINGs
 *   close			close the tunnel (no GOAWAY)
 *   quit			exit
 *
 * Events: "listening PORT", "accepted", "authed NAME", "confirmed",
 * "claim TYPE NAME KINDS" (a CLAIM is granted at once), "goaway CODE
 * MSG", "data ID HEX" (the first MiB of each stream), "eof ID" (the
 * agent's FIN; we answer with ours), "closed ID REASON", "tunnel closed:
 * REASON", "ok VERB" or "error WHAT" after each command.
 */

#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "key.h"
#include "log.h"
#include "proc.h"
#include "sock.h"
#include "tun_priv.h"

/* Our end of a stream's bufferevent pair; the tunnel holds the other. */
struct rg_stream {
	uint32_t		 id;
	struct bufferevent	*bev;
	size_t			 shown;		/* bytes printed */
};

/* Past this, a stream's bytes are read and dropped, not printed. */
#define RG_SHOW_MAX	(1024 * 1024)

static struct event_base	*base;
static struct key_pair		 key;
static SSL_CTX			*ctx;
static struct tun		*cur;
static uint32_t			 window = 65536;
static struct evbuffer		*cmds;

static void	rg_accept_cb(evutil_socket_t, short, void *);
static void	rg_stdin_cb(evutil_socket_t, short, void *);
static void	rg_command(char *);
static size_t	rg_hex(const char *, uint8_t *, size_t);
static void	rg_raw(const char *, long);
static void	rg_open(const char *, const char *, const char *);
static void	rg_stream_read_cb(struct bufferevent *, void *);
static void	rg_stream_event_cb(struct bufferevent *, short, void *);
static void	rg_print_hex(const char *, uint32_t, const uint8_t *, size_t);

static int
rg_authed(struct tun *t, const struct tun_hello *h, char *msg, size_t len,
    void *arg)
{
	(void)t;
	(void)msg;
	(void)len;
	(void)arg;
	printf("authed %s\n", h->name);
	fflush(stdout);
	return 0;
}

static void
rg_confirmed(struct tun *t, void *arg)
{
	(void)t;
	(void)arg;
	printf("confirmed\n");
	fflush(stdout);
}

static void
rg_claim(struct tun *t, uint8_t type, const struct tun_claim *c, void *arg)
{
	struct tun_claim	r;

	(void)arg;
	printf("claim %s %s %u\n", tun_type_name(type), c->name, c->kinds);
	fflush(stdout);
	/* Granted, as a gateway would: the agent then says "serving". */
	if (type != TUN_CLAIM)
		return;
	memset(&r, 0, sizeof(r));
	r.status = TUN_CLAIM_OK;
	snprintf(r.name, sizeof(r.name), "%s", c->name);
	tun_send_claim(t, TUN_CLAIM_RESULT, &r);
}

static void
rg_goaway(struct tun *t, const struct tun_reason *r, void *arg)
{
	(void)t;
	(void)arg;
	printf("goaway %u %s\n", r->code, r->msg);
	fflush(stdout);
}

static void
rg_stream_closed(struct tun *t, struct tun_stream *s, const char *reason,
    void *arg)
{
	struct rg_stream	*rs = tun_stream_udata(s);

	(void)t;
	(void)arg;
	if (rs == NULL)
		return;
	/* What the tunnel wrote to our end before it closed. */
	rg_stream_read_cb(rs->bev, rs);
	printf("closed %u %s\n", rs->id, reason);
	fflush(stdout);
	bufferevent_free(rs->bev);
	free(rs);
}

static void
rg_closed(struct tun *t, const char *reason, void *arg)
{
	(void)arg;
	printf("tunnel closed: %s\n", reason);
	fflush(stdout);
	if (cur == t)
		cur = NULL;
}

static const struct tun_ops rg_ops = {
	.authed = rg_authed,
	.confirmed = rg_confirmed,
	.claim = rg_claim,
	.goaway = rg_goaway,
	.stream_closed = rg_stream_closed,
	.closed = rg_closed,
};

int
main(int argc, char *argv[])
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct event		*lev, *iev;
	char			 err[256];
	int			 fd;

	log_init("rawgateway", 0);
	if (argc < 3 || argc > 4)
		fatalx("usage: rawgateway KEYFILE HOST:PORT [WINDOW]");
	if (key_load(argv[1], &key, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (addr_parse_numeric(argv[2], &ss, &sslen, err, sizeof(err)) == -1)
		fatalx("%s: %s", argv[2], err);
	if (argc == 4)
		window = (uint32_t)strtoul(argv[3], NULL, 0);
	if ((fd = sock_listen(&ss, sslen, argv[2], err, sizeof(err))) == -1)
		fatalx("%s", err);
	if ((base = proc_base_new()) == NULL ||
	    (ctx = tun_tls_server_ctx(err, sizeof(err))) == NULL ||
	    (cmds = evbuffer_new()) == NULL)
		fatalx("setup: %s", err);
	lev = event_new(base, fd, EV_READ | EV_PERSIST, rg_accept_cb, NULL);
	iev = event_new(base, 0, EV_READ | EV_PERSIST, rg_stdin_cb, NULL);
	if (lev == NULL || iev == NULL || event_add(lev, NULL) == -1 ||
	    event_add(iev, NULL) == -1)
		fatalx("events");
	printf("listening %s\n", argv[2]);
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}

/* Every agent that comes in; commands go to the newest. */
static void
rg_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct tun_params	 p;
	SSL			*ssl;
	int			 fd;

	(void)what;
	(void)arg;
	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return;
	evutil_make_socket_nonblocking(fd);
	if ((ssl = SSL_new(ctx)) == NULL)
		fatalx("SSL_new");
	memset(&p, 0, sizeof(p));
	p.role = TUN_ROLE_GATEWAY;
	p.key = &key;
	p.window = window;
	p.keepalive_ms = 1000;
	p.dead_peer_ms = 600000;	/* a test may stop reading */
	p.handshake_ms = 10000;
	p.max_streams = 1000000;
	p.name = "rawgateway";
	p.label = "rawgateway";
	if ((cur = tun_new(base, fd, ssl, 1, &p, &rg_ops, NULL)) == NULL)
		fatalx("tun_new");
	printf("accepted\n");
	fflush(stdout);
}

static void
rg_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	char	*line;
	int	 n;

	(void)what;
	(void)arg;
	if ((n = evbuffer_read(cmds, fd, 1 << 20)) <= 0)
		exit(0);		/* the test is gone */
	while ((line = evbuffer_readln(cmds, NULL, EVBUFFER_EOL_LF)) != NULL) {
		rg_command(line);
		free(line);
	}
	fflush(stdout);
}

static void
rg_command(char *line)
{
	static uint8_t		 buf[4 * TUN_FRAME_MAX];
	struct tun_stream	*s;
	struct rg_stream	*rs;
	char			*verb, *a1, *a2, *a3, *a4;
	size_t			 n;
	long			 i, count;

	verb = strtok(line, " ");
	a1 = strtok(NULL, " ");
	a2 = strtok(NULL, " ");
	a3 = strtok(NULL, " ");
	a4 = strtok(NULL, " ");
	if (verb == NULL)
		return;
	if (strcmp(verb, "quit") == 0)
		exit(0);
	if (cur == NULL || !tun_is_ready(cur)) {
		printf("error no tunnel for %s\n", verb);
		return;
	}
	if (strcmp(verb, "raw") == 0 && a1 != NULL)
		rg_raw(a1, 1);
	else if (strcmp(verb, "repeat") == 0 && a2 != NULL)
		rg_raw(a2, strtol(a1, NULL, 10));
	else if (strcmp(verb, "open") == 0 && a2 != NULL)
		rg_open(a1, a2, a3);
	else if (strcmp(verb, "openmany") == 0 && a3 != NULL) {
		for (count = strtol(a1, NULL, 10), i = 0; i < count &&
		    cur != NULL; i++)
			rg_open(a2, a3, a4);
	} else if (strcmp(verb, "send") == 0 && a2 != NULL) {
		s = tun_stream_find(cur, (uint32_t)strtoul(a1, NULL, 10));
		if (s == NULL || (rs = tun_stream_udata(s)) == NULL) {
			printf("error no stream %s\n", a1);
			return;
		}
		n = rg_hex(a2, buf, sizeof(buf));
		bufferevent_write(rs->bev, buf, n);
	} else if (strcmp(verb, "noread") == 0)
		bufferevent_disable(cur->bev, EV_READ);
	else if (strcmp(verb, "close") == 0)
		tun_close(cur, "rawgateway closes");
	else {
		printf("error bad command %s\n", verb);
		return;
	}
	printf("ok %s\n", verb);
}

/* Not sscanf: it measures the whole string at every call. */
static size_t
rg_hex(const char *text, uint8_t *out, size_t cap)
{
	static const char	 digits[] = "0123456789abcdef";
	const char		*hi, *lo;
	size_t			 n = strlen(text) / 2, i;

	if (n > cap)
		fatalx("hex too long");
	for (i = 0; i < n; i++) {
		if ((hi = strchr(digits, text[2 * i])) == NULL ||
		    (lo = strchr(digits, text[2 * i + 1])) == NULL ||
		    *hi == '\0' || *lo == '\0')
			fatalx("not hex: %.40s", text + 2 * i);
		out[i] = (uint8_t)((hi - digits) << 4 | (lo - digits));
	}
	return n;
}

/* Bytes past the codec's checks, into the tunnel's output as they are. */
static void
rg_raw(const char *hex, long count)
{
	uint8_t	*p;
	size_t	 n, len = strlen(hex) / 2 + 1;
	long	 i;

	if ((p = malloc(len)) == NULL)
		fatalx("out of memory");
	n = rg_hex(hex, p, len);
	for (i = 0; i < count; i++)
		evbuffer_add(cur->out, p, n);
	free(p);
}

/* A visitor from 192.0.2.1:40000 to the entry 198.51.100.1:443. */
static void
rg_open(const char *kind, const char *name, const char *hex)
{
	static uint8_t		 buf[TUN_FRAME_MAX];
	struct bufferevent	*pair[2];
	struct tun_stream	*s;
	struct tun_open		 o;
	struct rg_stream	*rs;
	size_t			 n;

	memset(&o, 0, sizeof(o));
	o.kind = (uint8_t)strtoul(kind, NULL, 10);
	o.src.family = 4;
	memcpy(o.src.addr, "\xc0\x00\x02\x01", 4);
	o.src.port = 40000;
	o.dst.family = 4;
	memcpy(o.dst.addr, "\xc6\x33\x64\x01", 4);
	o.dst.port = 443;
	snprintf(o.name, sizeof(o.name), "%s", name);
	if ((rs = calloc(1, sizeof(*rs))) == NULL ||
	    bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) == -1)
		fatalx("out of memory");
	if ((s = tun_stream_open(cur, &o, pair[0], "rawgateway", rs,
	    0)) == NULL) {
		printf("error open %s\n", name);
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		free(rs);
		return;
	}
	rs->id = tun_stream_id(s);
	rs->bev = pair[1];
	bufferevent_setcb(rs->bev, rg_stream_read_cb, NULL, rg_stream_event_cb,
	    rs);
	bufferevent_enable(rs->bev, EV_READ | EV_WRITE);
	printf("opened %u %s\n", rs->id, name);
	if (hex != NULL) {
		n = rg_hex(hex, buf, sizeof(buf));
		bufferevent_write(rs->bev, buf, n);
	}
}

static void
rg_stream_read_cb(struct bufferevent *bev, void *arg)
{
	struct rg_stream	*rs = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	uint8_t			 chunk[16384];
	int			 n;

	while ((n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0) {
		if (rs->shown >= RG_SHOW_MAX)
			continue;
		rg_print_hex("data", rs->id, chunk, (size_t)n);
		rs->shown += (size_t)n;
	}
	fflush(stdout);
}

/* The agent sent FIN: print it, and end our side too (a visitor that
 * got its whole answer), so that the stream finishes. */
static void
rg_stream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rg_stream	*rs = arg;

	if (!(what & BEV_EVENT_EOF))
		return;
	rg_stream_read_cb(bev, rs);
	printf("eof %u\n", rs->id);
	fflush(stdout);
	bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
}

static void
rg_print_hex(const char *what, uint32_t id, const uint8_t *p, size_t n)
{
	size_t	i;

	printf("%s %u ", what, id);
	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}
