/* tun_priv.h: what tun.c and tun_stream.c share; not for the daemons. */
#ifndef PORCH_TUN_PRIV_H
#define PORCH_TUN_PRIV_H

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "tun.h"
#include "tun_flow.h"
#include "tun_hello.h"
#include "tun_replay.h"

#define TUN_BUCKETS_MIN	16	/* stream hash: an idle tunnel's */
#define TUN_BUCKETS_MAX	65536
/* One side opens only odd ids, the other only even: hash id / 2. */
#define TUN_BUCKET(id, n)	(((id) >> 1) & ((n) - 1))
/*
 * Stream data may fill the tunnel's output (frames for TLS, and records
 * not yet in the socket) up to a cap that follows the path: what the
 * socket sends in TUN_OUT_DELAY_MS at the kernel's pacing rate, between
 * these bounds.  Past it, streams queue for their turn; control frames
 * are never held back.
 */
#define TUN_OUT_DELAY_MS 4
#define TUN_OUT_MIN	(32 * 1024)
#define TUN_OUT_HIGH	(1024 * 1024)
#define TUN_OUT_START	(256 * 1024)	/* until the first measurement */
#define TUN_OUT_LOW	(256 * 1024)	/* resume reading the peer */
#define TUN_CAP_MS	100		/* how often the cap is measured */
/* The least the kernel may hold unsent (TCP_NOTSENT_LOWAT, half the
 * cap): bytes in the socket can no longer be reordered. */
#define TUN_NOTSENT	(16 * 1024)
#define TUN_OUT_CAP	(4 * 1024 * 1024)	/* stop reading the peer */
#define TUN_SHUTDOWN_MS	2000		/* bound on flushing a GOAWAY */
#define TUN_TICK_MS	250		/* keepalive and dead-peer checks */
#define TUN_DATA_CHUNK	(16384 - TUN_HDR_LEN)	/* one frame, one record */
#define TUN_READ_MAX	(256 * 1024)	/* tunnel bytes per read callback */
#define TUN_LOCAL_IO	(64 * 1024)	/* local socket bytes per syscall */
/*
 * A stream's turn: a quarter of the cap, so about a quarter of a round
 * trip's worth of the path whatever its speed, within these bounds.  On a
 * slow uplink that is 64 KiB (a new visitor waits ~10 ms per busy stream
 * at 50 Mbit/s); on a fast path a bigger turn puts each stream's bytes
 * in longer runs, so the far end writes its local sockets in fewer,
 * larger writes: with 8 downloads on loopback a 64 KiB turn cost the
 * gateway 60 % more writes to visitors than one download did.
 */
#define TUN_QUANTUM_MIN	(64 * 1024)
#define TUN_QUANTUM_MAX	(256 * 1024)
#define TUN_DIRECT_FRAMES 8		/* DATA frames filled by one readv */

enum tun_state {
	TUN_HANDSHAKE,		/* TLS handshake */
	TUN_AUTH,		/* our HELLO sent, waiting for the peer's */
	TUN_READY,
	TUN_CLOSING,		/* GOAWAY queued, flushing */
};

/* How a stream ends, for tun_stream_free. */
enum tun_end {
	TUN_END_CLEAN,		/* both FINs: the local side gets a FIN */
	TUN_END_ABORT,		/* reset: the local side gets a TCP reset */
	TUN_END_RETRY,		/* as ABORT, but the owner may replay it */
};

/* RESET codes after which a stream may be replayed elsewhere. */
#define TUN_RETRYABLE(c)	((c) == TUN_E_REFUSED || \
	(c) == TUN_E_UNREACHABLE || (c) == TUN_E_NO_SERVICE || \
	(c) == TUN_E_LIMIT || (c) == TUN_E_SHUTDOWN)

#define TUN_S_LOCAL_EOF		0x01	/* local side sent EOF */
#define TUN_S_FIN_SENT		0x02
#define TUN_S_REMOTE_FIN	0x04
#define TUN_S_SHUT_WR		0x08	/* local write side shut down */
#define TUN_S_READING		0x10	/* reading the local side */
#define TUN_S_WAITING		0x20	/* queued for a turn (fresh or
					 * waiting list) */
#define TUN_S_DIRECT		0x40	/* bev is a socket we read and write
					 * ourselves */
#define TUN_S_DIRTY		0x80	/* on the tunnel's dirty list */
#define TUN_S_WBLOCKED		0x100	/* socket full: libevent writes */
#define TUN_S_ATTACHING		0x200	/* in tun_stream_attach: no local
					 * I/O that could free the stream */
#define TUN_S_FRESH		0x400	/* queued on t->fresh */
#define TUN_S_BACKLOG		0x800	/* its last turn left it more to
					 * send: it queues as a bulk stream */

struct tun_stream {
	struct tun		*tun;
	uint32_t		 id;
	struct tun_stream	*hnext;
	TAILQ_ENTRY(tun_stream)	 entry;
	TAILQ_ENTRY(tun_stream)	 wentry;
	TAILQ_ENTRY(tun_stream)	 dentry;
	struct bufferevent	*bev;		/* local side, owned */
	struct event		*rev;		/* DIRECT: bev's socket readable */
	struct evbuffer_cb_entry *drain_cb;
	struct evbuffer		*pending;	/* data before attach */
	struct tun_replay	 replay;	/* sent, until a byte returns */
	struct tun_flow		 flow;		/* credit both ways */
	uint64_t		 in, out;	/* local->tunnel, tunnel->local */
	int			 flags;
	uint64_t		 start_ms;
	char			*label;
	void			*udata;
};

TAILQ_HEAD(tun_stream_list, tun_stream);

struct tun {
	struct event_base	*base;
	struct bufferevent	*bev;
	struct evbuffer		*out;		/* frames not yet given to TLS */
	BIO			*wbio;		/* TLS records not yet sent; the
						 * SSL's (NULL over a filter) */
	BIO			*rbio;		/* records read, not yet taken;
						 * the SSL's (NULL over a filter) */
	struct evbuffer_cb_entry *under_cb;	/* over a filter: its output */
	struct event		*flush_ev;	/* out to TLS, end of the pass */
	struct event		*sink_ev;	/* records went out: resume */
	struct event		*timer;		/* keepalive, dead peer */
	struct event		*hs_timer;	/* handshake deadline */
	struct event		*drain_timer;	/* drain deadline, or drained */
	struct event		*kick;		/* starts I/O from the loop */
	struct event		*eof_ev;	/* closes after the last read */
	struct event		*more_ev;	/* records left for the next
						 * loop turn (tun_read_cb) */
	char			 eof_why[256];
	char			 shut_why[TUN_MSG_MAX + 1];	/* tun_shutdown */
	struct tun_params	 p;
	char			*name;
	char			*label;
	const struct tun_ops	*ops;
	void			*arg;
	enum tun_state		 state;
	int			 accepting;
	int			 draining;	/* GOAWAY sent or received */
	int			 drain_sent;	/* we sent a draining GOAWAY */
	int			 closed;
	int			 busy;		/* callbacks on the stack */
	int			 read_paused;	/* our output is over the cap */
	char			 peer_name[64];
	uint8_t			 peer_key[KEY_PUB_LEN];
	uint64_t		 peer_instance;
	int			 confirmed;	/* the peer accepted us */
	uint32_t		 peer_window;
	uint8_t			 exporter[TUN_EXPORTER_LEN];
	uint64_t		 start_ms;
	uint64_t		 last_rx_ms;
	uint64_t		 last_ping_ms;
	double			 rtt_ms;
	uint32_t		 next_id;
	unsigned		 nstreams;
	struct tun_stream	**buckets;
	size_t			 nbuckets;
	struct tun_stream_list	 streams;
	/* Streams with bytes to send, waiting for a turn: those that were
	 * idle go first (a new visitor's hello), then the backlogged ones
	 * round robin, one quantum each. */
	struct tun_stream_list	 fresh;
	struct tun_stream_list	 waiting;
	size_t			 out_cap;	/* see TUN_OUT_MIN */
	size_t			 quantum;	/* see TUN_QUANTUM_MIN */
	uint64_t		 cap_ms;	/* when out_cap was measured */
	struct tun_stream_list	 dirty;		/* local output to write */
};

/* tun.c */
void	tun_enter(struct tun *);
void	tun_leave(struct tun *);
size_t	tun_out_len(struct tun *);
void	tun_send(struct tun *, uint8_t, uint8_t, uint32_t, const void *,
	    size_t);
void	tun_send_reason(struct tun *, int, uint32_t, uint32_t, const char *);

/* tun_stream.c */
struct tun_stream *tun_stream_new(struct tun *, uint32_t);
struct tun_stream *tun_stream_find(struct tun *, uint32_t);
void	tun_stream_free(struct tun_stream *, const char *, enum tun_end);
int	tun_stream_pump(struct tun_stream *);
void	tun_stream_schedule(struct tun *);
void	tun_stream_recv_data(struct tun *, const uint8_t *, uint32_t,
	    struct evbuffer *);
void	tun_stream_write_dirty(struct tun *);

#endif
