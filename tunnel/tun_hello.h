/* tun_hello.h: the HELLO that proves each end's key (docs/PROTOCOL.md §2). */
#ifndef PORCH_TUN_HELLO_H
#define PORCH_TUN_HELLO_H

#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "tun_frame.h"

#define TUN_EXPORTER_LEN	32	/* the TLS exporter a HELLO signs */

/* Why a peer's HELLO was refused; the order of the checks. */
enum tun_hello_status {
	TUN_HELLO_OK = 0,
	TUN_HELLO_MALFORMED,	/* GOAWAY PROTOCOL (a protocol error) */
	TUN_HELLO_VERSION,	/* GOAWAY PROTOCOL */
	TUN_HELLO_ROLE,		/* GOAWAY PROTOCOL */
	TUN_HELLO_WINDOW,	/* GOAWAY PROTOCOL */
	TUN_HELLO_SIGNATURE,	/* GOAWAY AUTH */
};

/*
 * Our HELLO payload, signed with key over this session's exporter
 * (TUN_EXPORTER_LEN bytes), into out (TUN_MAX_PAYLOAD bytes).  name is
 * cut to 63 bytes.  Returns the payload length.  Pure.
 */
size_t	tun_hello_build(const struct key_pair *, enum tun_role,
	    uint32_t window, const char *name, uint64_t instance,
	    const uint8_t *exporter, uint8_t *out);

/*
 * Check the peer's HELLO frame against this session's exporter, in the
 * order of docs/PROTOCOL.md §2.3 (checks 1 to 5; admitting the key is
 * the owner's).  *role is ours: an acceptor that a peer gateway dialed
 * takes TUN_ROLE_PEER from a HELLO that parses, whatever follows.  h
 * is filled once the frame parses.  Returns TUN_HELLO_OK, or the failed
 * check with the text for the GOAWAY in err.  Pure.
 */
enum tun_hello_status tun_hello_check(const struct tun_frame *,
	    const uint8_t *exporter, int accepting, enum tun_role *role,
	    struct tun_hello *h, char *err, size_t errlen);

#endif
