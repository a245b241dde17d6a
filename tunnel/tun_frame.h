/* tun_frame.h: the tunnel's frame codec (see docs/PROTOCOL.md). */
#ifndef PORCH_TUN_FRAME_H
#define PORCH_TUN_FRAME_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "name.h"

#define TUN_VERSION		1
#define TUN_HDR_LEN		9
#define TUN_MAX_PAYLOAD		16384
#define TUN_FRAME_MAX		(TUN_HDR_LEN + TUN_MAX_PAYLOAD)
#define TUN_ALPN		"porch/1"
#define TUN_EXPORTER_LABEL	"EXPORTER-porch-auth"
#define TUN_MSG_MAX		200	/* reasons in RESET/GOAWAY/CLAIM_RESULT */

enum tun_type {
	TUN_HELLO = 1,
	TUN_CLAIM = 2,
	TUN_CLAIM_RESULT = 3,
	TUN_UNCLAIM = 4,
	TUN_OPEN = 5,
	TUN_DATA = 6,
	TUN_WINDOW = 7,
	TUN_RESET = 8,
	TUN_PING = 9,
	TUN_GOAWAY = 10,
	TUN_ANNOUNCE = 11,	/* peer links: names this gateway serves */
	TUN_CLUSTER = 12,	/* gateways and their public addresses */
};

#define TUN_F_FIN	0x01	/* DATA: sender will send no more */
#define TUN_F_ACK	0x01	/* PING: this is the answer */
#define TUN_F_START	0x01	/* ANNOUNCE: first frame of a full set */
#define TUN_F_END	0x02	/* ANNOUNCE: last frame of a full set */

enum tun_role {
	TUN_ROLE_AGENT = 1,
	TUN_ROLE_GATEWAY = 2,
	TUN_ROLE_PEER = 3,	/* gateway to gateway */
};

enum tun_kind {			/* entry kinds, also a CLAIM bitmask */
	TUN_KIND_TLS = 1,
	TUN_KIND_HTTP = 2,
	/* ACME validation: the claimant ordered a certificate for the name
	 * and answers the CA's probes itself.  HTTP requests under
	 * /.well-known/acme-challenge/ and TLS hellos offering ALPN
	 * acme-tls/1 go to it in preference to the other replicas. */
	TUN_KIND_ACME_HTTP = 4,
	TUN_KIND_ACME_TLS = 8,
};
#define TUN_KINDS_ALL	(TUN_KIND_TLS | TUN_KIND_HTTP | TUN_KIND_ACME_HTTP | \
			    TUN_KIND_ACME_TLS)
#define TUN_KINDS_ACME	(TUN_KIND_ACME_HTTP | TUN_KIND_ACME_TLS)
#define TUN_ACME_ALPN	"acme-tls/1"
#define TUN_ACME_PATH	"/.well-known/acme-challenge/"

enum tun_claim_status {
	TUN_CLAIM_OK = 0,
	TUN_CLAIM_DENIED = 1,	/* key not authorized for the name */
	TUN_CLAIM_INVALID = 2,	/* not a valid hostname */
	TUN_CLAIM_LIMIT = 3,	/* too many claims */
};

enum tun_err {			/* RESET and GOAWAY codes */
	TUN_E_NONE = 0,
	TUN_E_PROTOCOL = 1,
	TUN_E_REFUSED = 2,	/* backend refused the connection */
	TUN_E_UNREACHABLE = 3,	/* backend timed out or unreachable */
	TUN_E_NO_SERVICE = 4,	/* agent has no such service */
	TUN_E_FLOW = 5,		/* flow-control window exceeded */
	TUN_E_LIMIT = 6,	/* too many streams */
	TUN_E_CANCEL = 7,	/* the local side went away */
	TUN_E_SHUTDOWN = 8,
	TUN_E_AUTH = 9,
	TUN_E_INTERNAL = 10,
	TUN_E_DUPLICATE = 11,	/* GOAWAY: another live agent has this key */
};

struct tun_frame {
	uint8_t		 type;
	uint8_t		 flags;
	uint32_t	 stream;
	uint32_t	 len;
	const uint8_t	*payload;	/* points into the decoded buffer */
};

struct tun_hello {
	uint8_t		 version;
	uint8_t		 role;
	uint32_t	 window;	/* initial per-stream credit granted */
	uint8_t		 pub[KEY_PUB_LEN];
	uint8_t		 sig[KEY_SIG_LEN];
	char		 name[64];	/* free text, for logs only */
	/* Random per process start (0: the sender did not say): a gateway
	 * tells two agents sharing one key from one agent reconnecting. */
	uint64_t	 instance;
};

struct tun_addr {		/* visitor and entry addresses in OPEN */
	uint8_t		 family;	/* 4 or 6, 0 for unknown */
	uint8_t		 addr[16];
	uint16_t	 port;
};

struct tun_open {
	uint8_t		 kind;
	struct tun_addr	 src;
	struct tun_addr	 dst;
	char		 name[NAME_MAX_LEN + 1];
};

enum tun_policy {		/* how a gateway picks among replicas */
	TUN_POLICY_FAILOVER = 0,	/* lowest priority value */
	TUN_POLICY_BALANCE = 1,		/* fewest active streams */
};

struct tun_claim {
	uint8_t		 kinds;		/* CLAIM: TUN_KIND_* bits */
	uint8_t		 priority;	/* CLAIM: 1..255, lower preferred */
	uint8_t		 policy;	/* CLAIM: enum tun_policy */
	uint8_t		 status;	/* CLAIM_RESULT only */
	char		 name[NAME_MAX_LEN + 1];
	char		 msg[TUN_MSG_MAX + 1];	/* CLAIM_RESULT only */
};

struct tun_reason {		/* RESET, GOAWAY */
	uint32_t	 code;
	uint32_t	 last_stream;	/* GOAWAY only */
	char		 msg[TUN_MSG_MAX + 1];
};

/*
 * Decode one frame header from buf.  Returns the frame's total length
 * (header + payload) when complete, 0 when more bytes are needed, -1 when
 * the header is invalid (payload over TUN_MAX_PAYLOAD).  Unknown types
 * decode fine; the caller ignores them.  Pure.
 */
int	tun_frame_decode(const uint8_t *buf, size_t len, struct tun_frame *);

/* Write a frame header into hdr (TUN_HDR_LEN bytes). */
void	tun_frame_header(uint8_t *hdr, uint8_t type, uint8_t flags,
	    uint32_t stream, uint32_t len);

/*
 * Payload codecs.  Encoders write at most TUN_MAX_PAYLOAD bytes into out
 * and return the length.  Parsers validate every field (names are
 * normalized hostnames, strings are printable) and return 0 or -1.
 */
size_t	tun_hello_encode(const struct tun_hello *, uint8_t *out);
int	tun_hello_parse(const struct tun_frame *, struct tun_hello *);
size_t	tun_open_encode(const struct tun_open *, uint8_t *out);
int	tun_open_parse(const struct tun_frame *, struct tun_open *);
size_t	tun_claim_encode(const struct tun_claim *, int result, uint8_t *out);
int	tun_claim_parse(const struct tun_frame *, int result, struct tun_claim *);
size_t	tun_reason_encode(const struct tun_reason *, int goaway, uint8_t *out);
int	tun_reason_parse(const struct tun_frame *, int goaway, struct tun_reason *);
int	tun_window_parse(const struct tun_frame *, uint32_t *incr);

/*
 * ANNOUNCE (stream 0): u32 ttl_ms, then entries of u8 kinds, u8 name
 * length, name; kinds 0 withdraws the name.  Build one with _begin and
 * _add (returns the new length, or 0 when the entry does not fit);
 * read it with _parse, which fills the next entry and returns 1, or 0 at
 * the end, or -1 if malformed (then the whole frame is).
 */
size_t	tun_announce_begin(uint8_t *out, uint32_t ttl_ms);
size_t	tun_announce_add(uint8_t *out, size_t len, const char *name,
	    uint8_t kinds);
int	tun_announce_parse(const struct tun_frame *, uint32_t *ttl_ms,
	    size_t *off, struct tun_claim *);

/*
 * CLUSTER (stream 0): u8 count, then count entries of u8 flags, the
 * gateway's 32-byte public key, u8 name length + name, u8 address count
 * + that many addresses as in OPEN (port 0); bytes after the last entry
 * are ignored.  On an agent tunnel the gateway sends itself (SELF) and
 * its live peers; on a peer link a gateway sends only itself.  Each
 * frame is the whole view, replacing the one before.
 */
#define TUN_CLUSTER_GW_MAX	64
#define TUN_CLUSTER_ADDR_MAX	8
#define TUN_CF_SELF		0x01	/* the sending gateway */

struct tun_gw_info {
	uint8_t		 flags;
	uint8_t		 pub[KEY_PUB_LEN];
	char		 name[64];
	uint8_t		 naddr;
	struct tun_addr	 addr[TUN_CLUSTER_ADDR_MAX];
};

/* Returns the payload length (n <= TUN_CLUSTER_GW_MAX: always fits). */
size_t	tun_cluster_encode(const struct tun_gw_info *, size_t n, uint8_t *out);
/* Reads all entries into gw (TUN_CLUSTER_GW_MAX); 0, or -1 if malformed. */
int	tun_cluster_parse(const struct tun_frame *, struct tun_gw_info *gw,
	    size_t *n);

/* Convert socket addresses for OPEN and back (unknown family: 0). */
void	tun_addr_from_sa(struct tun_addr *, const struct sockaddr *);
void	tun_addr_to_ss(const struct tun_addr *, struct sockaddr_storage *);

const char	*tun_type_name(uint8_t);
/* One kind ("tls", "acme-http"), or a set joined by '+' into buf. */
const char	*tun_kind_name(uint8_t kind);
const char	*tun_kinds_text(uint8_t kinds, char *buf, size_t len);
/* The entry a kind arrives on: TLS for ACME_TLS, HTTP for ACME_HTTP. */
uint8_t		 tun_kind_entry(uint8_t kind);
const char	*tun_err_name(uint32_t);

#endif
