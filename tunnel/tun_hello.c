/* SPDX-License-Identifier: ISC */
/*
 * The HELLO exchange that follows the tunnel's TLS handshake: each end
 * signs, with its Ed25519 identity key, a message bound to this TLS
 * session (the exporter) and to its own role, and checks the peer's.
 * TLS itself is not authenticated by certificates; this signature is
 * what ties a key to the session, so a HELLO taken from another session
 * or reflected back with the other role does not verify.
 *
 * Kept apart from tun.c, which owns the connection: these functions are
 * pure (no I/O, no logging, no tunnel state), so the unit tests drive
 * them with made-up exporters and keys (tests/unit/test_hello.c).
 */

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "tun_hello.h"

#define TUN_AUTH_CTX	"porch-auth-v1"
/* The signed message: the context with its NUL, the role, the exporter. */
#define TUN_AUTH_LEN	(sizeof(TUN_AUTH_CTX) + 1 + TUN_EXPORTER_LEN)

static void	tun_hello_sign_input(uint8_t, const uint8_t *, uint8_t *);
static uint8_t	tun_hello_want_role(enum tun_role);

size_t
tun_hello_build(const struct key_pair *key, enum tun_role role,
    uint32_t window, const char *name, uint64_t instance,
    const uint8_t *exporter, uint8_t *out)
{
	struct tun_hello	 h;
	uint8_t			 msg[TUN_AUTH_LEN];

	memset(&h, 0, sizeof(h));
	h.version = TUN_VERSION;
	h.role = role;
	h.window = window;
	memcpy(h.pub, key->pub, KEY_PUB_LEN);
	tun_hello_sign_input(role, exporter, msg);
	crypto_sign_detached(h.sig, NULL, msg, sizeof(msg), key->sec);
	snprintf(h.name, sizeof(h.name), "%s", name);
	h.instance = instance;
	return tun_hello_encode(&h, out);
}

enum tun_hello_status
tun_hello_check(const struct tun_frame *f, const uint8_t *exporter,
    int accepting, enum tun_role *role, struct tun_hello *h, char *err,
    size_t errlen)
{
	uint8_t	msg[TUN_AUTH_LEN];
	uint8_t	want;

	if (tun_hello_parse(f, h) == -1) {
		snprintf(err, errlen, "malformed HELLO");
		return TUN_HELLO_MALFORMED;
	}
	/* The acceptor learns here whether an agent or a peer gateway
	 * dialed it, and answers in the matching role. */
	if (accepting && h->role == TUN_ROLE_PEER)
		*role = TUN_ROLE_PEER;
	want = tun_hello_want_role(*role);
	if (h->version != TUN_VERSION) {
		snprintf(err, errlen, "unsupported protocol version %u "
		    "(this side speaks %u)", h->version, TUN_VERSION);
		return TUN_HELLO_VERSION;
	}
	if (h->role != want) {
		snprintf(err, errlen, "unexpected peer role");
		return TUN_HELLO_ROLE;
	}
	if (h->window < 16384 || h->window > 0x7fffffff) {
		snprintf(err, errlen, "window out of range");
		return TUN_HELLO_WINDOW;
	}
	/* Over the role the peer claims: checked equal to want above. */
	tun_hello_sign_input(h->role, exporter, msg);
	if (crypto_sign_verify_detached(h->sig, msg, sizeof(msg),
	    h->pub) != 0) {
		snprintf(err, errlen, "identity signature does not verify");
		return TUN_HELLO_SIGNATURE;
	}
	return TUN_HELLO_OK;
}

/* What a HELLO signs: context, the signer's role and the exporter. */
static void
tun_hello_sign_input(uint8_t role, const uint8_t *exporter, uint8_t *msg)
{
	memcpy(msg, TUN_AUTH_CTX, sizeof(TUN_AUTH_CTX));
	msg[sizeof(TUN_AUTH_CTX)] = role;
	memcpy(msg + sizeof(TUN_AUTH_CTX) + 1, exporter, TUN_EXPORTER_LEN);
}

/* The role our peer must sign with: the other end of ours. */
static uint8_t
tun_hello_want_role(enum tun_role ours)
{
	return ours == TUN_ROLE_PEER ? TUN_ROLE_PEER :
	    ours == TUN_ROLE_AGENT ? TUN_ROLE_GATEWAY : TUN_ROLE_AGENT;
}
