/* SPDX-License-Identifier: ISC */
/*
 * tls_rate: TLS load against one address, with SNI, from several
 * threads.  Prints one JSON line: connections, requests, errors,
 * seconds, rate, p50/p99 latency in ms.
 *
 * Default mode: new connections back to back, each a full handshake (no
 * session reuse), optionally one HTTP request on it (-r); the rate is
 * connections per second and the latency covers connect, handshake and
 * the request.
 *
 * Keep-alive mode (-k RATE, needs -r): each thread keeps one connection
 * and sends GETs on it, paced so that all threads together send RATE
 * requests per second (0: each thread as fast as it can); the rate is
 * requests per second and the latency of a request runs from the moment
 * it was due (paced) or sent (unpaced) to its last body byte, so a
 * request delayed by the one before it counts its wait.  A connection
 * the server closes is opened again (a reconnect, not an error, when no
 * byte of the answer was lost).  Each thread connects before the clock
 * starts.  Paced requests still due when the time is up (the client
 * fell behind) are counted as missed.
 *
 *   tls_rate -c 127.0.0.1:443 -n app.example.org [-t threads] [-s secs]
 *            [-m max] [-r path] [-k rate] [-A cafile] [-T timeout]
 *
 * -m bounds the connections (default mode) or requests (-k); -s bounds
 * the time; -T (default 5 s) bounds each socket read, write and connect.
 *
 * Used by bench/ (issue 4's handshake figures, issue 5's M2 and M3); a
 * bench tool, not part of porch.
 */

#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_SAMPLES	(1 << 22)
#define HEAD_MAX	16384

static struct sockaddr_storage	 target;
static socklen_t		 targetlen;
static const char		*sni;
static const char		*path;
static SSL_CTX			*ctx;
static double			 deadline;
static double			 io_timeout = 5;
static long			 max_conns = -1;
static int			 keepalive;	/* -k given */
static double			 ka_rate;	/* -k RATE, 0: unpaced */
static int			 nthreads = 1;
static atomic_long		 started;
static atomic_long		 done;
static atomic_long		 errors;
static atomic_long		 conns;
static atomic_long		 reconnects;
static atomic_long		 missed;
static double			*samples;
static pthread_barrier_t	 ready, go;
static atomic_long		 nsamples;

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_until(double t)
{
	struct timespec	ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

static void
record(double ms)
{
	long	i;

	atomic_fetch_add(&done, 1);
	i = atomic_fetch_add(&nsamples, 1);
	if (i < MAX_SAMPLES)
		samples[i] = ms;
}

struct conn {
	int	 fd;
	SSL	*ssl;
};

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Connect and handshake; 0 on success (c closed on failure). */
static int
conn_open(struct conn *c)
{
	struct timeval	tv;
	int		on = 1;

	c->ssl = NULL;
	if ((c->fd = socket(target.ss_family, SOCK_STREAM, 0)) == -1)
		return -1;
	atomic_fetch_add(&conns, 1);
	tv.tv_sec = (time_t)io_timeout;
	tv.tv_usec = (suseconds_t)((io_timeout - (double)tv.tv_sec) * 1e6);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(c->fd, (struct sockaddr *)&target, targetlen) == -1)
		goto fail;
	if ((c->ssl = SSL_new(ctx)) == NULL)
		goto fail;
	SSL_set_tlsext_host_name(c->ssl, sni);
	SSL_set1_host(c->ssl, sni);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1)
		goto fail;
	return 0;
fail:
	conn_close(c);
	return -1;
}

/* One connection: connect, handshake, maybe a request; 0 on success. */
static int
one(void)
{
	struct conn	 c;
	char		 buf[16384], req[512];
	int		 rc = -1, n;

	if (conn_open(&c) == -1)
		return -1;
	if (path != NULL) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		    "Connection: close\r\n\r\n", path, sni);
		if (SSL_write(c.ssl, req, (int)strlen(req)) <= 0)
			goto out;
		/* A 200, then read to the end: the answer is small. */
		if ((n = SSL_read(c.ssl, buf, sizeof(buf) - 1)) < 12 ||
		    strncmp(buf, "HTTP/1.1 200", 12) != 0)
			goto out;
		while (SSL_read(c.ssl, buf, sizeof(buf)) > 0)
			;
	}
	rc = 0;
out:
	conn_close(&c);
	return rc;
}

static void *
worker(void *arg)
{
	double	t0;
	long	i;

	(void)arg;
	while (now_s() < deadline) {
		i = atomic_fetch_add(&started, 1);
		if (max_conns >= 0 && i >= max_conns)
			break;
		t0 = now_s();
		if (one() == -1) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		record((now_s() - t0) * 1000);
	}
	return NULL;
}

/* The value of header name in head (NUL-terminated), or NULL. */
static const char *
header(const char *head, const char *name)
{
	const char	*p = head;
	size_t		 len = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
			p += len + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	}
	return NULL;
}

/*
 * One GET on an open connection.  Returns 0 when a whole 200 answer came
 * back (*closed set when the server asked to close), -1 on a failure
 * with bytes of the answer seen, -2 when the server closed before any
 * byte of the answer (a kept-alive connection timed out: try again on a
 * new one).
 */
static int
ka_request(struct conn *c, int *closed)
{
	char		 head[HEAD_MAX + 1], buf[16384], req[512];
	const char	*v, *end;
	size_t		 have = 0;
	long		 clen = -1, body;
	int		 n;

	*closed = 0;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
	    path, sni);
	if (SSL_write(c->ssl, req, n) <= 0)
		return -2;
	/* The head. */
	for (;;) {
		n = SSL_read(c->ssl, head + have, (int)(HEAD_MAX - have));
		if (n <= 0)
			return have == 0 ? -2 : -1;
		have += (size_t)n;
		head[have] = '\0';
		if ((end = strstr(head, "\r\n\r\n")) != NULL)
			break;
		if (have == HEAD_MAX)
			return -1;
	}
	if (strncmp(head, "HTTP/1.1 200", 12) != 0 &&
	    strncmp(head, "HTTP/1.0 200", 12) != 0)
		return -1;
	body = (long)(have - (size_t)(end + 4 - head));
	/* Only look at the head for the headers. */
	head[end + 2 - head] = '\0';
	if ((v = header(head, "Content-Length")) != NULL)
		clen = atol(v);
	if ((v = header(head, "Connection")) != NULL &&
	    strncasecmp(v, "close", 5) == 0)
		*closed = 1;
	if (strncmp(head, "HTTP/1.0", 8) == 0 && !(v != NULL &&
	    strncasecmp(v, "keep-alive", 10) == 0))
		*closed = 1;
	if (clen < 0) {
		/* No length (and no chunked support): read to the end. */
		while (SSL_read(c->ssl, buf, sizeof(buf)) > 0)
			;
		*closed = 1;
		return 0;
	}
	while (body < clen) {
		n = SSL_read(c->ssl, buf, (int)(clen - body < (long)sizeof(buf)
		    ? clen - body : (long)sizeof(buf)));
		if (n <= 0)
			return -1;
		body += n;
	}
	return body == clen ? 0 : -1;
}

static void *
ka_worker(void *arg)
{
	struct conn	c = { -1, NULL };
	double		interval = 0, due, t0;
	long		k = 0, i;
	int		rc, closed, fresh, tries;

	if (ka_rate > 0)
		interval = nthreads / ka_rate;
	/* Connect first: the clock starts once every thread has a
	 * connection (one that fails is retried in the loop). */
	if (conn_open(&c) == -1)
		c.ssl = NULL;
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&go);
	/* Threads take turns: the total is evenly paced. */
	due = now_s() + interval * (double)(long)(intptr_t)arg / nthreads;
	for (;;) {
		if (interval > 0) {
			due += k++ == 0 ? 0 : interval;
			if (due >= deadline)
				break;
			if (now_s() >= deadline) {
				/* Behind at the end: the rest is never sent. */
				atomic_fetch_add(&missed, (long)((deadline -
				    due) / interval) + 1);
				break;
			}
			sleep_until(due);
			t0 = due;
		} else {
			t0 = now_s();
			if (t0 >= deadline)
				break;
		}
		i = atomic_fetch_add(&started, 1);
		if (max_conns >= 0 && i >= max_conns)
			break;
		rc = -1;
		for (tries = 0; tries < 2; tries++) {
			fresh = 0;
			if (c.ssl == NULL) {
				if (conn_open(&c) == -1)
					break;
				fresh = 1;
			}
			rc = ka_request(&c, &closed);
			if (rc == 0) {
				if (closed)
					conn_close(&c);
				break;
			}
			conn_close(&c);
			/* Closed while idle: once more on a new connection. */
			if (rc != -2 || fresh)
				break;
			atomic_fetch_add(&reconnects, 1);
		}
		if (rc != 0) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		record((now_s() - t0) * 1000);
	}
	conn_close(&c);
	return NULL;
}

static int
cmp(const void *x, const void *y)
{
	double	a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void
usage(void)
{
	fprintf(stderr, "usage: tls_rate -c HOST:PORT -n SNI [-t threads] "
	    "[-s secs] [-m max] [-r path] [-k rate] [-A cafile] "
	    "[-T timeout]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct addrinfo	 hints, *res;
	pthread_t	*th;
	const char	*connect_to = NULL, *cafile = NULL;
	char		 host[256], *port;
	double		 secs = 5, t0, el;
	long		 n, ok;
	int		 ch, i;

	while ((ch = getopt(argc, argv, "A:c:k:m:n:r:s:t:T:")) != -1) {
		switch (ch) {
		case 'A':
			cafile = optarg;
			break;
		case 'c':
			connect_to = optarg;
			break;
		case 'k':
			keepalive = 1;
			ka_rate = atof(optarg);
			break;
		case 'm':
			max_conns = atol(optarg);
			break;
		case 'n':
			sni = optarg;
			break;
		case 'r':
			path = optarg;
			break;
		case 's':
			secs = atof(optarg);
			break;
		case 't':
			nthreads = atoi(optarg);
			break;
		case 'T':
			io_timeout = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (connect_to == NULL || sni == NULL || nthreads < 1 ||
	    nthreads > 1024 || secs <= 0 || secs > 600 || io_timeout <= 0 ||
	    io_timeout > 600 || ka_rate < 0 || (keepalive && path == NULL))
		usage();
	snprintf(host, sizeof(host), "%s", connect_to);
	if ((port = strrchr(host, ':')) == NULL)
		usage();
	*port++ = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		usage();
	memcpy(&target, res->ai_addr, res->ai_addrlen);
	targetlen = res->ai_addrlen;
	freeaddrinfo(res);
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 1;
	/* Every connection a full handshake: no tickets, no cache. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* A read or write may return on an ordinary close only. */
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (cafile != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
			return 1;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	if ((samples = calloc(MAX_SAMPLES, sizeof(*samples))) == NULL ||
	    (th = calloc((size_t)nthreads, sizeof(*th))) == NULL)
		return 1;
	pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
	t0 = now_s();
	deadline = t0 + secs;
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, keepalive ? ka_worker : worker,
		    (void *)(intptr_t)i);
	if (keepalive) {
		/* Bounded by -T: a connect or handshake gives up in time. */
		pthread_barrier_wait(&ready);
		t0 = now_s();
		deadline = t0 + secs;
		pthread_barrier_wait(&go);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	el = now_s() - t0;
	n = atomic_load(&nsamples);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(samples, (size_t)n, sizeof(*samples), cmp);
	ok = atomic_load(&done);
	printf("{\"mode\": \"%s\", \"threads\": %d, \"target_rate\": %.1f, "
	    "\"connections\": %ld, \"requests\": %ld, \"reconnects\": %ld, "
	    "\"errors\": %ld, \"missed\": %ld, \"seconds\": %.3f, "
	    "\"rate\": %.1f, "
	    "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
	    keepalive ? "keepalive" : "new", nthreads, keepalive ? ka_rate : 0,
	    keepalive ? atomic_load(&conns) : ok, path != NULL ? ok : 0,
	    atomic_load(&reconnects), atomic_load(&errors),
	    atomic_load(&missed), el, ok / el,
	    n ? samples[n / 2] : 0, n ? samples[(size_t)(n * 0.99)] : 0);
	return atomic_load(&errors) > 0 && ok == 0;
}
