/* tun_flow.h: a stream's credit, both ways (docs/PROTOCOL.md §6). */
#ifndef PORCH_TUN_FLOW_H
#define PORCH_TUN_FLOW_H

#include <stddef.h>
#include <stdint.h>

#define TUN_FLOW_MAX	0x7fffffff	/* the most credit a sender holds */

/*
 * Counted in bytes of DATA payload.  The fields may be read; they change
 * only through the functions below.
 */
struct tun_flow {
	uint32_t	 send_credit;	/* what we may still send */
	uint64_t	 rx_total;	/* bytes the peer sent us */
	uint64_t	 rx_allowed;	/* credit we granted in all */
	uint32_t	 unacked;	/* delivered, not yet credited */
	size_t		 skip;		/* local bytes not to credit */
};

/* A new stream: the peer's window to send, ours to receive. */
void	tun_flow_init(struct tun_flow *, uint32_t peer_window,
	    uint32_t our_window);

/* How much of want may be sent now: never more than the credit. */
size_t	tun_flow_allow(const struct tun_flow *, size_t want);

/* n bytes went out, n no more than tun_flow_allow() gave. */
void	tun_flow_sent(struct tun_flow *, size_t n);

/* A WINDOW increment arrived.  Returns 0, or -1 (credit unchanged) when
 * it would take the credit past TUN_FLOW_MAX: a stream error. */
int	tun_flow_window(struct tun_flow *, uint32_t incr);

/* A DATA payload of len bytes arrived.  Returns 0, or -1 when the peer
 * went past the credit we granted: a stream error. */
int	tun_flow_recv(struct tun_flow *, uint32_t len);

/*
 * n bytes left our local buffer for the socket (the first skip bytes
 * were never tunnel data).  Returns the increment to send in a WINDOW
 * frame, now counted as granted, or 0 while less than window / 8 waits
 * or once the peer sent its FIN (fin nonzero).
 */
uint32_t tun_flow_drained(struct tun_flow *, size_t n, uint32_t window,
	    int fin);

#endif
