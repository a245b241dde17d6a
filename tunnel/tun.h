/* tun.h: one tunnel connection and its streams, used by both daemons. */
#ifndef PORCH_TUN_H
#define PORCH_TUN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "key.h"
#include "tun_frame.h"

struct tun;
struct tun_stream;

/*
 * What the owner of a tunnel hears.  Every callback may call tun_close()
 * or tun_stream_reset(); the tunnel checks for that before going on.
 */
struct tun_ops {
	/* The peer proved its key.  Return 0 to admit it, -1 to refuse
	 * (msg is sent to the peer in a GOAWAY and the tunnel closes).  On
	 * the accepting side it must not send frames: our HELLO follows it. */
	int	(*authed)(struct tun *, const struct tun_hello *, char *msg,
		    size_t msglen, void *arg);
	/* CLAIM, CLAIM_RESULT or UNCLAIM arrived (already parsed). */
	void	(*claim)(struct tun *, uint8_t type, const struct tun_claim *,
		    void *arg);
	/* The peer opened a stream (agent side).  The owner must attach a
	 * bufferevent or reset the stream, now or later. */
	void	(*open)(struct tun *, struct tun_stream *,
		    const struct tun_open *, void *arg);
	/* The peer sent GOAWAY. */
	void	(*goaway)(struct tun *, const struct tun_reason *, void *arg);
	/* A stream is about to be freed; its udata is the owner's. */
	void	(*stream_closed)(struct tun *, struct tun_stream *,
		    const char *reason, void *arg);
	/* A replayable stream failed before any byte came back (reset or
	 * tunnel lost).  bev's input holds every byte it sent, then what
	 * came after.  Return 0 to take bev (stream_closed is then not
	 * called for this stream), -1 to let the stream close it. */
	int	(*stream_retry)(struct tun *, struct tun_stream *,
		    struct bufferevent *bev, const char *reason, void *arg);
	/* Accepting side: the dialer accepted our HELLO (its first frame
	 * after it came in).  Until then it may still refuse us; may be
	 * NULL. */
	void	(*confirmed)(struct tun *, void *arg);
	/* The tunnel is closed; it is freed when this returns. */
	void	(*closed)(struct tun *, const char *reason, void *arg);
	/* A frame of a type the tunnel does not handle (ANNOUNCE, and
	 * types above it) arrived; may be NULL. */
	void	(*frame)(struct tun *, const struct tun_frame *, void *arg);
};

struct tun_params {
	enum tun_role		 role;		/* our role */
	const struct key_pair	*key;		/* our identity; not copied */
	uint32_t		 window;	/* credit we grant per stream */
	unsigned		 keepalive_ms;
	unsigned		 dead_peer_ms;
	unsigned		 handshake_ms;
	unsigned		 max_streams;
	const char		*name;		/* our name, sent in HELLO */
	const char		*label;		/* for log lines, e.g. gw=gw1 */
	uint64_t		 instance;	/* sent in HELLO; 0: none */
};

/*
 * Start a tunnel over a connected socket (takes ownership of fd and ssl;
 * accepting: 1 on the gateway).  params is copied except key.  Returns
 * NULL on allocation failure after closing fd and freeing ssl.
 */
struct tun	*tun_new(struct event_base *, int fd, SSL *, int accepting,
		    const struct tun_params *, const struct tun_ops *,
		    void *arg);

/*
 * The same, accepting, over a bufferevent that already read the peer's
 * ClientHello (the gateway's TLS entry, for agents that can only reach
 * port 443).  Takes ownership of under and ssl.
 */
struct tun	*tun_new_over(struct event_base *, struct bufferevent *under,
		    SSL *, const struct tun_params *, const struct tun_ops *,
		    void *arg);

/* Close now: reset every stream, free, call ops->closed. */
void		 tun_close(struct tun *, const char *reason);

/* Send GOAWAY and close once the frame is out (bounded by a timer). */
void		 tun_shutdown(struct tun *, uint32_t code, const char *msg);

/*
 * Send GOAWAY and let open streams finish: no new streams either way,
 * close when the last one ends or after ms (then cutting the rest).
 */
void		 tun_drain(struct tun *, const char *msg, unsigned ms);

/* Send a control frame on stream 0.  Returns 0 or -1. */
int		 tun_send_claim(struct tun *, uint8_t type,
		    const struct tun_claim *);

/* Hand the tunnel to another owner (from inside authed, typically). */
void		 tun_set_ops(struct tun *, const struct tun_ops *, void *arg);
/* Send a frame on stream 0 (ANNOUNCE).  Returns 0 or -1. */
int		 tun_send_frame(struct tun *, uint8_t type, uint8_t flags,
		    const void *, size_t len);
enum tun_role	 tun_role(const struct tun *);	/* ours, once authed */

int		 tun_is_ready(const struct tun *);	/* authenticated */
/* Ready, and the peer accepted us too (always so on the dialing side). */
int		 tun_is_confirmed(const struct tun *);
uint64_t	 tun_peer_instance(const struct tun *);	/* from HELLO */
int		 tun_is_draining(const struct tun *);	/* GOAWAY seen/sent */
const uint8_t	*tun_peer_key(const struct tun *);
const char	*tun_peer_name(const struct tun *);
const char	*tun_label(const struct tun *);
unsigned	 tun_stream_count(const struct tun *);
double		 tun_rtt_ms(const struct tun *);	/* last ping RTT, -1 */
/* Send a PING now (ready tunnels only); any frame back proves the peer
 * alive: compare tun_last_rx_ms with the time of the ping. */
void		 tun_ping(struct tun *);
uint64_t	 tun_last_rx_ms(const struct tun *);	/* mono_ms() */
/* "rtt=0.214ms" or "rtt=none" for log lines; buf of 32 bytes. */
const char	*tun_rtt_text(const struct tun *, char *buf, size_t);
void		*tun_arg(const struct tun *);

/*
 * Open a stream to the peer (gateway side) and relay bev through it.
 * Takes ownership of bev, whose input buffer may already hold bytes
 * (the ClientHello or request head): they travel first.  label prefixes
 * the stream's closing log line.  replay_max > 0 keeps a copy of what is
 * sent until the first byte comes back (up to that many bytes), so that
 * ops->stream_retry can replay it elsewhere.  Returns NULL on failure,
 * with bev left to the caller.
 */
struct tun_stream *tun_stream_open(struct tun *, const struct tun_open *,
		    struct bufferevent *bev, const char *label, void *udata,
		    size_t replay_max);

/* Agent side: relay an incoming stream through bev (ownership taken).
 * Bytes that arrived before the attach are delivered first. */
void		 tun_stream_attach(struct tun_stream *, struct bufferevent *);

/* Reset a stream (the peer is told why) and free it. */
void		 tun_stream_reset(struct tun_stream *, uint32_t code,
		    const char *msg);

void		 tun_stream_set_label(struct tun_stream *, const char *);
void		 tun_stream_set_udata(struct tun_stream *, void *);
void		*tun_stream_udata(const struct tun_stream *);
uint32_t	 tun_stream_id(const struct tun_stream *);
/* Bytes local->tunnel (in) and tunnel->local (out) so far. */
void		 tun_stream_bytes(const struct tun_stream *, uint64_t *in,
		    uint64_t *out);

/* TLS contexts for the tunnel (tun_tls.c).  NULL on failure, err set. */
SSL_CTX		*tun_tls_server_ctx(char *err, size_t errlen);
SSL_CTX		*tun_tls_client_ctx(char *err, size_t errlen);

#endif
