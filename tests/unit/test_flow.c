/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for a stream's credit (tunnel/tun_flow.c): a sender never
 * spends more than it holds, data past the window is refused exactly at
 * the boundary, WINDOW increments add up to 2^31 - 1 and no further,
 * credit returns in batches of window / 8 (less what was never tunnel
 * data, and none after the peer's FIN); and a sender and a receiver run
 * against each other with WINDOW frames in flight never disagree.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tun_flow.h"

#define W	65536		/* a window */
#define CHUNK	16384		/* at most one DATA frame's payload */

/* A fixed sequence, so a failure repeats (xorshift32). */
static uint32_t
rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void
test_init(void **state)
{
	struct tun_flow	fl;

	(void)state;
	memset(&fl, 0xee, sizeof(fl));
	tun_flow_init(&fl, 20000, W);
	assert_int_equal(fl.send_credit, 20000);
	assert_int_equal(fl.rx_allowed, W);
	assert_int_equal(fl.rx_total, 0);
	assert_int_equal(fl.unacked, 0);
	assert_int_equal(fl.skip, 0);
}

/* Spending what allow gives empties the credit exactly, never past. */
static void
test_credit_never_negative(void **state)
{
	static const size_t	 wants[] = { 0, 1, 100, CHUNK, 3 * CHUNK,
	    W, (size_t)-1 };
	struct tun_flow		 fl;
	size_t			 i, n, spent;
	uint32_t		 x = 7;

	(void)state;
	for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		tun_flow_init(&fl, W, W);
		assert_int_equal(tun_flow_allow(&fl, wants[i]),
		    wants[i] < W ? wants[i] : W);
	}

	tun_flow_init(&fl, W, W);
	for (spent = 0; fl.send_credit > 0 && spent <= W; spent += n) {
		n = tun_flow_allow(&fl, rnd(&x) % (2 * CHUNK));
		assert_true(n <= fl.send_credit);
		tun_flow_sent(&fl, n);
		assert_true(fl.send_credit <= W);	/* no wrap */
	}
	assert_int_equal(spent, W);
	for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
		assert_int_equal(tun_flow_allow(&fl, wants[i]), 0);
	/* A WINDOW lets exactly that much more through. */
	assert_int_equal(tun_flow_window(&fl, 1000), 0);
	assert_int_equal(tun_flow_allow(&fl, (size_t)-1), 1000);
	tun_flow_sent(&fl, 1000);
	assert_int_equal(fl.send_credit, 0);
}

/* Increments add; past 2^31 - 1 in all is an error that changes nothing. */
static void
test_window_increments(void **state)
{
	struct tun_flow	fl;

	(void)state;
	tun_flow_init(&fl, W, W);
	assert_int_equal(tun_flow_window(&fl, 1), 0);
	assert_int_equal(tun_flow_window(&fl, CHUNK), 0);
	assert_int_equal(fl.send_credit, W + 1 + CHUNK);

	/* Up to the maximum exactly, then not a byte more. */
	assert_int_equal(tun_flow_window(&fl,
	    TUN_FLOW_MAX - fl.send_credit), 0);
	assert_int_equal(fl.send_credit, TUN_FLOW_MAX);
	assert_int_equal(tun_flow_window(&fl, 1), -1);
	assert_int_equal(fl.send_credit, TUN_FLOW_MAX);

	/* One increment of the whole range, on top of any credit. */
	tun_flow_init(&fl, 0, W);
	assert_int_equal(tun_flow_window(&fl, TUN_FLOW_MAX), 0);
	tun_flow_init(&fl, 1, W);
	assert_int_equal(tun_flow_window(&fl, TUN_FLOW_MAX), -1);
	assert_int_equal(fl.send_credit, 1);
	/* Would wrap a 32-bit sum: still refused. */
	tun_flow_init(&fl, TUN_FLOW_MAX, W);
	assert_int_equal(tun_flow_window(&fl, 0x80000001u), -1);
	assert_int_equal(fl.send_credit, TUN_FLOW_MAX);
	/* After spending, room again. */
	tun_flow_sent(&fl, 5);
	assert_int_equal(tun_flow_window(&fl, 6), -1);
	assert_int_equal(tun_flow_window(&fl, 5), 0);
}

/* The peer may send exactly what we granted: one byte more is an error. */
static void
test_data_beyond_window(void **state)
{
	struct tun_flow	fl;
	uint32_t	i;

	(void)state;
	tun_flow_init(&fl, W, W);
	for (i = 0; i < W / CHUNK; i++)
		assert_int_equal(tun_flow_recv(&fl, CHUNK), 0);
	assert_int_equal(tun_flow_recv(&fl, 0), 0);	/* a FIN costs nothing */
	assert_int_equal(tun_flow_recv(&fl, 1), -1);

	/* One frame over it, from the start. */
	tun_flow_init(&fl, W, CHUNK);
	assert_int_equal(tun_flow_recv(&fl, CHUNK + 1), -1);

	/* Credit returned covers exactly that much more. */
	tun_flow_init(&fl, W, W);
	assert_int_equal(tun_flow_recv(&fl, W), 0);
	assert_int_equal(tun_flow_drained(&fl, W / 8, W, 0), W / 8);
	assert_int_equal(fl.rx_allowed, W + W / 8);
	assert_int_equal(tun_flow_recv(&fl, W / 8 - 1), 0);
	assert_int_equal(tun_flow_recv(&fl, 1), 0);
	assert_int_equal(tun_flow_recv(&fl, 1), -1);

	/* Bytes delivered but not yet credited give the peer nothing. */
	tun_flow_init(&fl, W, W);
	assert_int_equal(tun_flow_recv(&fl, W), 0);
	assert_int_equal(tun_flow_drained(&fl, W / 8 - 1, W, 0), 0);
	assert_int_equal(tun_flow_recv(&fl, 1), -1);
}

/* One WINDOW per eighth of the window drained, carrying all of it. */
static void
test_drained_batches(void **state)
{
	struct tun_flow	fl;

	(void)state;
	tun_flow_init(&fl, W, W);
	assert_int_equal(tun_flow_drained(&fl, 1000, W, 0), 0);
	assert_int_equal(tun_flow_drained(&fl, W / 8 - 1001, W, 0), 0);
	assert_int_equal(fl.unacked, W / 8 - 1);
	assert_int_equal(fl.rx_allowed, W);
	assert_int_equal(tun_flow_drained(&fl, 1, W, 0), W / 8);
	assert_int_equal(fl.unacked, 0);
	assert_int_equal(fl.rx_allowed, W + W / 8);
	/* A big write returns all of it at once. */
	assert_int_equal(tun_flow_drained(&fl, 3 * W, W, 0), 3 * W);
	assert_int_equal(fl.rx_allowed, 4 * W + W / 8);

	/* The first bytes queued locally (a PROXY header) earn nothing. */
	tun_flow_init(&fl, W, W);
	fl.skip = 100;
	assert_int_equal(tun_flow_drained(&fl, 60, W, 0), 0);
	assert_int_equal(fl.skip, 40);
	assert_int_equal(fl.unacked, 0);
	assert_int_equal(tun_flow_drained(&fl, 40 + W / 8 - 1, W, 0), 0);
	assert_int_equal(fl.skip, 0);
	assert_int_equal(fl.unacked, W / 8 - 1);
	assert_int_equal(tun_flow_drained(&fl, 1, W, 0), W / 8);

	/* After the peer's FIN: no WINDOW, and nothing granted. */
	tun_flow_init(&fl, W, W);
	assert_int_equal(tun_flow_drained(&fl, W, W, 1), 0);
	assert_int_equal(tun_flow_drained(&fl, W, W, 1), 0);
	assert_int_equal(fl.rx_allowed, W);
}

/*
 * A sender and a receiver, with DATA and WINDOW frames in flight and the
 * receiver's socket taking bytes at random: the receiver never refuses
 * the sender's data, credit is conserved (the sender's credit plus the
 * increments in flight equal what the receiver granted less what it
 * got), and the data all gets through.
 */
static void
test_sender_receiver(void **state)
{
	struct tun_flow	 snd, rcv;
	uint64_t	 sent = 0, got = 0, drained = 0, total = 50 * W;
	uint64_t	 data_fly = 0, win_fly = 0;	/* in flight */
	uint32_t	 x = 12345, incr;
	size_t		 n;
	int		 step, stalls = 0;

	(void)state;
	tun_flow_init(&snd, W, W);	/* the peer's window is ours */
	tun_flow_init(&rcv, W, W);
	for (step = 0; step < 1000000 && drained < total; step++) {
		switch (rnd(&x) % 4) {
		case 0:		/* the sender sends a frame */
			if (snd.send_credit == 0)
				stalls++;
			n = tun_flow_allow(&snd, rnd(&x) % (CHUNK + 1));
			if (n > total - sent)
				n = (size_t)(total - sent);
			tun_flow_sent(&snd, n);
			sent += n;
			data_fly += n;
			break;
		case 1:		/* the data arrive */
			if (tun_flow_recv(&rcv, (uint32_t)data_fly) != 0)
				fail_msg("step %d: receiver refused", step);
			got += data_fly;
			data_fly = 0;
			break;
		case 2:		/* the receiver's socket takes some */
			n = rnd(&x) % (CHUNK + 1);
			if (n > got - drained)
				n = (size_t)(got - drained);
			drained += n;
			win_fly += tun_flow_drained(&rcv, n, W, 0);
			break;
		case 3:		/* the WINDOW arrives */
			while (win_fly > 0) {
				incr = win_fly > TUN_FLOW_MAX ? TUN_FLOW_MAX :
				    (uint32_t)win_fly;
				assert_int_equal(tun_flow_window(&snd, incr), 0);
				win_fly -= incr;
			}
			break;
		}
		assert_true(snd.send_credit <= W);
		assert_true(snd.send_credit + win_fly + data_fly ==
		    rcv.rx_allowed - rcv.rx_total);
		assert_true(rcv.rx_allowed - W ==
		    drained - rcv.unacked);
	}
	assert_true(sent == total);
	assert_true(drained == total);
	assert_true(stalls > 0);	/* the window did hold it back */
	assert_true(rcv.rx_total == total);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_credit_never_negative),
		cmocka_unit_test(test_window_increments),
		cmocka_unit_test(test_data_beyond_window),
		cmocka_unit_test(test_drained_batches),
		cmocka_unit_test(test_sender_receiver),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
