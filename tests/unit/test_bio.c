/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for the tunnel's write BIO (tunnel/tun_bio.c) over a real
 * socket pair and a real event loop: records wait for the end of the
 * loop pass, a full socket loses and reorders nothing, a dead peer is an
 * error, not a retry.  And for its read BIO: one record per read.
 */

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "tun_bio.h"

#define REC	16384

struct pair {
	struct event_base	*base;
	int			 fd[2];		/* [0] the BIO's, [1] the peer */
	BIO			*b;
	int			 drained;
};

static void	pair_open(struct pair *, int sndbuf);
static void	pair_close(struct pair *);
static void	drained_cb(void *);
static void	pattern(uint8_t *, size_t, size_t);
static size_t	drain_peer(struct pair *, uint8_t *, size_t);
static void	loop_once(struct pair *);

static void
pair_open(struct pair *p, int sndbuf)
{
	int	i;

	memset(p, 0, sizeof(*p));
	assert_non_null(p->base = event_base_new());
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(fcntl(p->fd[i], F_SETFL, O_NONBLOCK), 0);
	if (sndbuf > 0)
		assert_int_equal(setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF,
		    &sndbuf, sizeof(sndbuf)), 0);
	assert_non_null(p->b = tun_bio_new(p->base, p->fd[0]));
	tun_bio_set_drained(p->b, drained_cb, p);
}

static void
pair_close(struct pair *p)
{
	BIO_free(p->b);
	if (p->fd[0] != -1)
		close(p->fd[0]);
	if (p->fd[1] != -1)
		close(p->fd[1]);
	event_base_free(p->base);
}

static void
drained_cb(void *arg)
{
	struct pair	*p = arg;

	p->drained++;
}

/* Byte i of a stream that starts at offset off. */
static void
pattern(uint8_t *buf, size_t len, size_t off)
{
	size_t	i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 131 + ((off + i) >> 13));
}

/* Read what the peer has now, appending at out; returns bytes read. */
static size_t
drain_peer(struct pair *p, uint8_t *out, size_t room)
{
	size_t	got = 0;
	ssize_t	n;

	while (got < room &&
	    (n = recv(p->fd[1], out + got, room - got, MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	return got;
}

static void
loop_once(struct pair *p)
{
	/* 1 means no event was pending, which is fine too. */
	assert_true(event_base_loop(p->base, EVLOOP_NONBLOCK) >= 0);
}

/* Records stay in the BIO until the loop pass ends, then go together. */
static void
test_gathers_until_the_pass_ends(void **state)
{
	struct pair	 p;
	uint8_t		 rec[REC], got[4 * REC + 100], want[4 * REC + 100];
	size_t		 off = 0;
	int		 i, fd = -2;

	(void)state;
	pair_open(&p, 0);
	assert_int_equal(BIO_get_fd(p.b, &fd), p.fd[0]);
	assert_int_equal(fd, p.fd[0]);
	for (i = 0; i < 3; i++) {
		pattern(rec, REC, off);
		assert_int_equal(BIO_write(p.b, rec, REC), REC);
		off += REC;
	}
	pattern(rec, 100, off);
	assert_int_equal(BIO_write(p.b, rec, 100), 100);
	off += 100;
	assert_int_equal(BIO_wpending(p.b), off);
	assert_int_equal(tun_bio_pending(p.b), off);
	/* Nothing reached the socket yet: one send at the end of the pass. */
	assert_int_equal(drain_peer(&p, got, sizeof(got)), 0);
	assert_int_equal(p.drained, 0);

	loop_once(&p);
	assert_int_equal(tun_bio_pending(p.b), 0);
	assert_int_equal(p.drained, 1);
	assert_int_equal(drain_peer(&p, got, sizeof(got)), off);
	pattern(want, off, 0);
	assert_memory_equal(got, want, off);

	pair_close(&p);
}

/*
 * The BIO takes everything, even over a full socket (the tunnel bounds
 * what it writes), and its own write event sends the rest as the peer
 * reads: every byte once and in order, and the drained callback after
 * the last one.
 */
static void
test_full_socket_in_order(void **state)
{
	struct pair	 p;
	uint8_t		 rec[REC], *got, *want;
	size_t		 sent, recvd = 0, total = 4 * 1024 * 1024;
	int		 rounds;

	(void)state;
	pair_open(&p, 4096);
	assert_non_null(got = malloc(total));
	assert_non_null(want = malloc(total));
	for (sent = 0; sent < total; sent += REC) {
		pattern(rec, REC, sent);
		assert_int_equal(BIO_write(p.b, rec, REC), REC);
	}
	assert_int_equal(tun_bio_pending(p.b), total);
	/* No more writes: only the BIO's own events move the rest. */
	for (rounds = 0; rounds < 200000 && recvd < total; rounds++) {
		loop_once(&p);
		if (p.drained > 0)
			assert_int_equal(tun_bio_pending(p.b), 0);
		recvd += drain_peer(&p, got + recvd, total - recvd);
	}
	loop_once(&p);
	assert_int_equal(recvd, total);
	assert_int_equal(tun_bio_pending(p.b), 0);
	assert_int_equal(p.drained, 1);
	pattern(want, total, 0);
	assert_memory_equal(got, want, total);
	free(got);
	free(want);
	pair_close(&p);
}

/* BIO_flush (OpenSSL's, after a handshake flight): 1 when all is out,
 * "retry" while the socket is full. */
static void
test_flush(void **state)
{
	struct pair	 p;
	uint8_t		 rec[REC], sink[REC];
	int		 i;

	(void)state;
	pair_open(&p, 4096);
	memset(rec, 'x', sizeof(rec));
	assert_int_equal(BIO_write(p.b, rec, 1000), 1000);
	assert_int_equal(BIO_flush(p.b), 1);
	assert_int_equal(tun_bio_pending(p.b), 0);
	for (i = 0; i < 64; i++)
		assert_int_equal(BIO_write(p.b, rec, REC), REC);
	assert_true(BIO_flush(p.b) <= 0);
	assert_true(BIO_should_retry(p.b));
	assert_true(BIO_should_write(p.b));
	while (tun_bio_pending(p.b) > 0) {
		while (recv(p.fd[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		(void)BIO_flush(p.b);
	}
	assert_int_equal(BIO_flush(p.b), 1);
	pair_close(&p);
}

/* A closed peer is an error with errno set, never an endless retry. */
static void
test_dead_peer_is_an_error(void **state)
{
	struct pair	 p;
	uint8_t		 rec[REC];
	int		 i, n = 0;

	(void)state;
	pair_open(&p, 0);
	close(p.fd[1]);
	p.fd[1] = -1;
	memset(rec, 'y', sizeof(rec));
	assert_int_equal(BIO_write(p.b, rec, 10), 10);
	loop_once(&p);		/* the send fails here */
	for (i = 0; i < 100; i++) {
		errno = 0;
		if ((n = BIO_write(p.b, rec, REC)) <= 0)
			break;
		loop_once(&p);
	}
	assert_true(n <= 0);
	assert_false(BIO_should_retry(p.b));
	assert_true(errno == EPIPE || errno == ECONNRESET);
	assert_int_equal(tun_bio_pending(p.b), 0);
	pair_close(&p);
}

/* finish sends what fits and stops: no callback, no event left. */
static void
test_finish(void **state)
{
	struct pair	 p;
	uint8_t		 rec[100], got[200];

	(void)state;
	pair_open(&p, 0);
	memset(rec, 'z', sizeof(rec));
	assert_int_equal(BIO_write(p.b, rec, sizeof(rec)), sizeof(rec));
	tun_bio_finish(p.b);
	assert_int_equal(drain_peer(&p, got, sizeof(got)), sizeof(rec));
	loop_once(&p);
	assert_int_equal(p.drained, 0);
	assert_int_equal(event_base_get_num_events(p.base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	pair_close(&p);
}

/*
 * Over TCP with TCP_NOTSENT_LOWAT: the BIO reports "drained" only while
 * the kernel holds less than lowat unsent.  Many small sends must add
 * up: the BIO skips asking the kernel while what it sent since it last
 * asked stays below lowat, and must ask once it may have reached it.
 */
static void
test_lowat_small_sends_add_up(void **state)
{
	struct pair		 p;
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);
	uint8_t			 rec[2048], sink[65536];
	int			 lfd, one = 1, small = 4096, lowat = 16384;
	int			 i, d0, rounds, n, hit = 0;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_non_null(p.base = event_base_new());
	assert_true((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	/* A small receive window: the peer takes little while it does not
	 * read, so the rest stays unsent at our end. */
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)), 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_true((p.fd[0] = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(p.fd[0], (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	assert_true((p.fd[1] = accept(lfd, NULL, NULL)) >= 0);
	close(lfd);
	assert_int_equal(fcntl(p.fd[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(setsockopt(p.fd[0], IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)), 0);
	assert_int_equal(setsockopt(p.fd[0], IPPROTO_TCP, TCP_NOTSENT_LOWAT,
	    &lowat, sizeof(lowat)), 0);
	assert_non_null(p.b = tun_bio_new(p.base, p.fd[0]));
	tun_bio_set_drained(p.b, drained_cb, &p);
	tun_bio_set_lowat(p.b, (size_t)lowat);

	/*
	 * Small sends, one per pass, well past lowat in all.  Once one
	 * takes the kernel's unsent bytes to lowat or more while the
	 * socket took it all, that pass must not report "drained".  (Past
	 * that the socket refuses more: TCP_NOTSENT_LOWAT.)
	 */
	memset(rec, 'w', sizeof(rec));
	for (i = 0; i < 64; i++) {
		d0 = p.drained;
		assert_int_equal(BIO_write(p.b, rec, sizeof(rec)),
		    sizeof(rec));
		loop_once(&p);
		if (tun_bio_pending(p.b) == 0 &&
		    ioctl(p.fd[0], SIOCOUTQNSD, &n) == 0 && n >= lowat) {
			assert_int_equal(p.drained, d0);
			hit++;
		}
	}
	assert_true(hit > 0);
	d0 = p.drained;
	/* The peer reads: the socket's write event reports drained. */
	for (rounds = 0; rounds < 100000 && p.drained == d0; rounds++) {
		while (recv(p.fd[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		loop_once(&p);
	}
	assert_int_equal(p.drained, d0 + 1);
	assert_int_equal(tun_bio_pending(p.b), 0);
	pair_close(&p);
}

/*
 * The read BIO: TLS records written to the socket in one piece come out
 * whole and in order, never two (or parts of two) in one read, however
 * large the reader's buffer; a small reader's buffer gets a record in
 * parts; then "retry" on an empty socket and 0 with BIO_eof() at the
 * end.  Record lengths vary, headers straddle the BIO's own reads.
 */
static void
test_rbio_one_record_per_read(void **state)
{
	int		 fd[2], i, n, nrec = 0, lens[400], sndbuf = 1 << 22;
	size_t		 total = 0, off = 0, rec_off, want;
	uint8_t		*stream, *got, out[70000];
	BIO		*b;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	assert_int_equal(fcntl(fd[0], F_SETFL, O_NONBLOCK), 0);
	(void)setsockopt(fd[1], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf));
	assert_non_null(stream = malloc(400 * (5 + 16640)));
	assert_non_null(got = malloc(400 * (5 + 16640)));
	/* Records of 1 to 16640 bytes of body: type 23, version 3.3. */
	for (i = 0; i < 400; i++) {
		n = i % 7 == 0 ? 16640 : (i * 7919) % 16640 + 1;
		lens[nrec++] = 5 + n;
		stream[total] = 23;
		stream[total + 1] = 3;
		stream[total + 2] = 3;
		stream[total + 3] = (uint8_t)(n >> 8);
		stream[total + 4] = (uint8_t)n;
		pattern(stream + total + 5, (size_t)n, total);
		total += 5 + (size_t)n;
	}
	assert_non_null(b = tun_rbio_new(fd[0]));
	assert_int_equal(BIO_get_fd(b, NULL), fd[0]);
	assert_int_equal(BIO_read(b, out, sizeof(out)), -1);
	assert_true(BIO_should_retry(b));
	assert_true(BIO_should_read(b));
	assert_int_equal(tun_rbio_pending(b), 0);

	/* The writer sends in odd pieces; the reader asks for a lot. */
	for (i = 0, rec_off = 0; off < total; ) {
		if (i < nrec * 2) {
			size_t w = total / (size_t)(nrec * 2) + 37;
			size_t at = (size_t)i * w;

			if (at < total) {
				if (at + w > total)
					w = total - at;
				assert_int_equal(write(fd[1], stream + at, w),
				    (ssize_t)w);
			}
			i++;
		}
		n = BIO_read(b, out, i % 3 == 0 ? 3 : sizeof(out));
		if (n <= 0) {
			assert_true(BIO_should_retry(b));
			continue;
		}
		/* Never past the end of the record being read. */
		assert_true(rec_off < (size_t)nrec);
		want = 0;
		{
			size_t	start = 0;
			int	k;

			for (k = 0; k < nrec; k++) {
				if (off < start + (size_t)lens[k]) {
					want = start + (size_t)lens[k] - off;
					break;
				}
				start += (size_t)lens[k];
			}
		}
		assert_true((size_t)n <= want);
		memcpy(got + off, out, (size_t)n);
		off += (size_t)n;
	}
	assert_memory_equal(got, stream, total);
	assert_int_equal(tun_rbio_pending(b), 0);
	assert_int_equal(BIO_read(b, out, sizeof(out)), -1);
	assert_true(BIO_should_retry(b));
	assert_int_equal(BIO_eof(b), 0);
	close(fd[1]);
	assert_int_equal(BIO_read(b, out, sizeof(out)), 0);
	assert_false(BIO_should_retry(b));
	assert_int_equal(BIO_eof(b), 1);
	BIO_free(b);
	close(fd[0]);
	free(stream);
	free(got);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);	/* as the daemons do */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gathers_until_the_pass_ends),
		cmocka_unit_test(test_full_socket_in_order),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_dead_peer_is_an_error),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_lowat_small_sends_add_up),
		cmocka_unit_test(test_rbio_one_record_per_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
