/* SPDX-License-Identifier: ISC */
/*
 * tls_rate: new TLS connections per second against one address, with
 * SNI, from several threads, each connection a full handshake (no
 * session reuse), optionally one HTTP request on it.  Prints one JSON
 * line: connections, errors, seconds, rate, p50/p99 latency in ms.
 *
 *   tls_rate -c 127.0.0.1:443 -n app.example.org [-t threads] [-s secs]
 *            [-m max_conns] [-r path] [-A cafile]
 *
 * Used by bench/ (issue 4's handshake figures, issue 5's M2); a bench
 * tool, not part of porch.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_SAMPLES	(1 << 22)

static struct sockaddr_storage	 target;
static socklen_t		 targetlen;
static const char		*sni;
static const char		*path;
static SSL_CTX			*ctx;
static double			 deadline;
static long			 max_conns = -1;
static atomic_long		 started;
static atomic_long		 done;
static atomic_long		 errors;
static double			*samples;
static atomic_long		 nsamples;

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One connection: connect, handshake, maybe a request; 0 on success. */
static int
one(void)
{
	SSL	*ssl = NULL;
	char	 buf[16384], req[512];
	int	 fd, on = 1, rc = -1, n;

	if ((fd = socket(target.ss_family, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (struct sockaddr *)&target, targetlen) == -1)
		goto out;
	if ((ssl = SSL_new(ctx)) == NULL)
		goto out;
	SSL_set_tlsext_host_name(ssl, sni);
	SSL_set1_host(ssl, sni);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		goto out;
	if (path != NULL) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		    "Connection: close\r\n\r\n", path, sni);
		if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
			goto out;
		/* A 200, then read to the end: the answer is small. */
		if ((n = SSL_read(ssl, buf, sizeof(buf) - 1)) < 12 ||
		    strncmp(buf, "HTTP/1.1 200", 12) != 0)
			goto out;
		while (SSL_read(ssl, buf, sizeof(buf)) > 0)
			;
	}
	rc = 0;
out:
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
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
		atomic_fetch_add(&done, 1);
		i = atomic_fetch_add(&nsamples, 1);
		if (i < MAX_SAMPLES)
			samples[i] = (now_s() - t0) * 1000;
	}
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
	    "[-s secs] [-m max] [-r path] [-A cafile]\n");
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
	long		 n;
	int		 ch, threads = 1, i;

	while ((ch = getopt(argc, argv, "A:c:m:n:r:s:t:")) != -1) {
		switch (ch) {
		case 'A':
			cafile = optarg;
			break;
		case 'c':
			connect_to = optarg;
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
			threads = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (connect_to == NULL || sni == NULL || threads < 1 || secs <= 0 ||
	    secs > 600)
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
	if (cafile != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
			return 1;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if ((samples = calloc(MAX_SAMPLES, sizeof(*samples))) == NULL ||
	    (th = calloc((size_t)threads, sizeof(*th))) == NULL)
		return 1;
	t0 = now_s();
	deadline = t0 + secs;
	for (i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	el = now_s() - t0;
	n = atomic_load(&nsamples);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(samples, (size_t)n, sizeof(*samples), cmp);
	printf("{\"connections\": %ld, \"errors\": %ld, \"seconds\": %.3f, "
	    "\"rate\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
	    atomic_load(&done), atomic_load(&errors), el,
	    atomic_load(&done) / el, n ? samples[n / 2] : 0,
	    n ? samples[(size_t)(n * 0.99)] : 0);
	return atomic_load(&errors) > 0 && atomic_load(&done) == 0;
}
