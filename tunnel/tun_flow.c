/* SPDX-License-Identifier: ISC */
/*
 * A stream's flow control, as numbers: the credit we may still send,
 * and on the receiving side what the peer sent against what we granted,
 * with credit returned in batches as our local socket takes the bytes.
 * tun_stream.c moves the bytes and sends the frames; the sums live here,
 * with no buffers or sockets, so that the unit tests can run a sender
 * and a receiver against each other (tests/unit/test_flow.c).
 */

#include "tun_flow.h"

void
tun_flow_init(struct tun_flow *fl, uint32_t peer_window, uint32_t our_window)
{
	fl->send_credit = peer_window;
	fl->rx_total = 0;
	fl->rx_allowed = our_window;
	fl->unacked = 0;
	fl->skip = 0;
}

size_t
tun_flow_allow(const struct tun_flow *fl, size_t want)
{
	return want < fl->send_credit ? want : fl->send_credit;
}

void
tun_flow_sent(struct tun_flow *fl, size_t n)
{
	fl->send_credit -= (uint32_t)n;
}

int
tun_flow_window(struct tun_flow *fl, uint32_t incr)
{
	if ((uint64_t)fl->send_credit + incr > TUN_FLOW_MAX)
		return -1;
	fl->send_credit += incr;
	return 0;
}

int
tun_flow_recv(struct tun_flow *fl, uint32_t len)
{
	fl->rx_total += len;
	return fl->rx_total > fl->rx_allowed ? -1 : 0;
}

uint32_t
tun_flow_drained(struct tun_flow *fl, size_t n, uint32_t window, int fin)
{
	uint32_t	incr;
	size_t		k;

	if (fl->skip > 0) {
		k = n < fl->skip ? n : fl->skip;
		fl->skip -= k;
		n -= k;
	}
	fl->unacked += (uint32_t)n;
	/* Batched: a WINDOW per eighth of the window, not per write. */
	if (fl->unacked < window / 8 || fin)
		return 0;
	incr = fl->unacked;
	fl->rx_allowed += incr;
	fl->unacked = 0;
	return incr;
}
