/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for the HELLO exchange (tunnel/tun_hello.c) without a TLS
 * session: made-up exporters stand for two sessions, fixed seeds for the
 * keys.  A HELLO verifies only under the key it carries, over the
 * session and role it was signed for; the checks run in the order of
 * docs/PROTOCOL.md §2.3 and each refusal says which.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "tun_hello.h"

#define HELLO_FIXED	(2 + 4 + KEY_PUB_LEN + KEY_SIG_LEN)	/* 102 */
#define OFF_VERSION	0
#define OFF_ROLE	1
#define OFF_WINDOW	2
#define OFF_PUB		6
#define OFF_SIG		(OFF_PUB + KEY_PUB_LEN)
#define WINDOW		(256 * 1024)

/* One HELLO as sent, and the frame that carries it. */
struct hello {
	uint8_t			 buf[TUN_MAX_PAYLOAD];
	size_t			 len;
	struct tun_frame	 f;
};

/* Who checks a HELLO: its role and whether it accepted the connection. */
struct side {
	enum tun_role	 role;
	int		 accepting;
};

static const struct side agent = { TUN_ROLE_AGENT, 0 };
static const struct side gateway = { TUN_ROLE_GATEWAY, 1 };
static const struct side peer_dialer = { TUN_ROLE_PEER, 0 };

static struct key_pair	key_a, key_b;
static uint8_t		exp_1[TUN_EXPORTER_LEN], exp_2[TUN_EXPORTER_LEN];

static void	keys_init(void);
static void	make(struct hello *, const struct key_pair *, enum tun_role,
		    uint32_t, const char *, const uint8_t *);
static void	frame(struct hello *, size_t);
static enum tun_hello_status check(const struct hello *, const struct side *,
		    const uint8_t *, struct tun_hello *, char *, size_t);

static void
keys_init(void)
{
	uint8_t	seed[crypto_sign_SEEDBYTES];
	size_t	i;

	memset(seed, 0xa1, sizeof(seed));
	crypto_sign_seed_keypair(key_a.pub, key_a.sec, seed);
	memset(seed, 0xb2, sizeof(seed));
	crypto_sign_seed_keypair(key_b.pub, key_b.sec, seed);
	for (i = 0; i < TUN_EXPORTER_LEN; i++) {
		exp_1[i] = (uint8_t)(i * 7 + 1);
		exp_2[i] = (uint8_t)(i * 7 + 1);
	}
	exp_2[TUN_EXPORTER_LEN - 1] ^= 0x01;	/* another session */
}

static void
make(struct hello *m, const struct key_pair *key, enum tun_role role,
    uint32_t window, const char *name, const uint8_t *exporter)
{
	m->len = tun_hello_build(key, role, window, name,
	    0x0102030405060708ULL, exporter, m->buf);
	frame(m, m->len);
}

/* The frame over the first len bytes of the payload. */
static void
frame(struct hello *m, size_t len)
{
	memset(&m->f, 0, sizeof(m->f));
	m->f.type = TUN_HELLO;
	m->f.stream = 0;
	m->f.len = (uint32_t)len;
	m->f.payload = m->buf;
}

static enum tun_hello_status
check(const struct hello *m, const struct side *side, const uint8_t *exporter,
    struct tun_hello *h, char *err, size_t errlen)
{
	enum tun_role	role = side->role;

	return tun_hello_check(&m->f, exporter, side->accepting, &role, h,
	    err, errlen);
}

/* Each pairing of roles: signed by one key, it verifies, fields intact. */
static void
test_verifies(void **state)
{
	static const struct {
		enum tun_role	 sender;
		struct side	 receiver;
		enum tun_role	 role_after;	/* the receiver's */
	} tab[] = {
		/* The agent dials, the gateway accepts, and back. */
		{ TUN_ROLE_AGENT, { TUN_ROLE_GATEWAY, 1 }, TUN_ROLE_GATEWAY },
		{ TUN_ROLE_GATEWAY, { TUN_ROLE_AGENT, 0 }, TUN_ROLE_AGENT },
		/* A peer gateway dials: the acceptor takes the peer role. */
		{ TUN_ROLE_PEER, { TUN_ROLE_GATEWAY, 1 }, TUN_ROLE_PEER },
		{ TUN_ROLE_PEER, { TUN_ROLE_PEER, 0 }, TUN_ROLE_PEER },
	};
	struct hello		 m;
	struct tun_hello	 h;
	enum tun_role		 role;
	char			 err[TUN_MSG_MAX];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		make(&m, &key_a, tab[i].sender, WINDOW, "home1", exp_1);
		assert_int_equal(m.len, HELLO_FIXED + 1 + 5 + 8);
		role = tab[i].receiver.role;
		memset(&h, 0xee, sizeof(h));
		err[0] = '\0';
		assert_int_equal(tun_hello_check(&m.f, exp_1,
		    tab[i].receiver.accepting, &role, &h, err, sizeof(err)),
		    TUN_HELLO_OK);
		assert_string_equal(err, "");
		assert_int_equal(role, tab[i].role_after);
		assert_int_equal(h.version, TUN_VERSION);
		assert_int_equal(h.role, tab[i].sender);
		assert_int_equal(h.window, WINDOW);
		assert_memory_equal(h.pub, key_a.pub, KEY_PUB_LEN);
		assert_string_equal(h.name, "home1");
		assert_true(h.instance == 0x0102030405060708ULL);
	}
	/* A name longer than the field is cut, still signed. */
	make(&m, &key_a, TUN_ROLE_AGENT, WINDOW,
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "45", exp_1);
	assert_int_equal(m.len, HELLO_FIXED + 1 + 63 + 8);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_OK);
	assert_int_equal(strlen(h.name), 63);
}

/*
 * The signature is the one docs/PROTOCOL.md §2.2 describes, so another
 * implementation can check it: pure Ed25519 over "porch-auth-v1", its
 * NUL, the signer's role and the exporter (47 bytes).
 */
static void
test_signed_message(void **state)
{
	static const enum tun_role roles[] = { TUN_ROLE_AGENT,
	    TUN_ROLE_GATEWAY, TUN_ROLE_PEER };
	struct hello	m;
	uint8_t		msg[47];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		make(&m, &key_a, roles[i], WINDOW, "x", exp_1);
		memcpy(msg, "porch-auth-v1", 14);	/* with its NUL */
		msg[14] = (uint8_t)roles[i];
		memcpy(msg + 15, exp_1, 32);
		assert_int_equal(m.buf[OFF_VERSION], 1);
		assert_int_equal(m.buf[OFF_ROLE], roles[i]);
		assert_memory_equal(m.buf + OFF_PUB, key_a.pub, KEY_PUB_LEN);
		assert_int_equal(crypto_sign_verify_detached(m.buf + OFF_SIG,
		    msg, sizeof(msg), key_a.pub), 0);
		/* Not over another role or another session. */
		msg[14] ^= 0x03;
		assert_int_not_equal(crypto_sign_verify_detached(
		    m.buf + OFF_SIG, msg, sizeof(msg), key_a.pub), 0);
	}
}

/* Any bit of the key or the signature changed: it does not verify. */
static void
test_flipped_byte(void **state)
{
	struct hello		 m, good;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];
	size_t			 off;
	int			 bit;

	(void)state;
	make(&good, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	for (off = OFF_PUB; off < HELLO_FIXED; off++) {
		for (bit = 0; bit < 8; bit += 7) {
			m = good;
			frame(&m, m.len);
			m.buf[off] ^= (uint8_t)(1 << bit);
			err[0] = '\0';
			if (check(&m, &gateway, exp_1, &h, err,
			    sizeof(err)) != TUN_HELLO_SIGNATURE)
				fail_msg("byte %zu bit %d: accepted", off, bit);
			assert_string_equal(err,
			    "identity signature does not verify");
		}
	}
}

/*
 * Signed by one key, claiming another: the signature is checked under
 * the key the HELLO carries, so the claimed key's owner must have signed.
 */
static void
test_wrong_key(void **state)
{
	struct key_pair		 forger;
	struct hello		 m;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];

	(void)state;
	/* Key a's secret with key b's public half. */
	memcpy(forger.sec, key_a.sec, KEY_SEC_LEN);
	memcpy(forger.pub, key_b.pub, KEY_PUB_LEN);
	make(&m, &forger, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);

	/* Key b's own HELLO verifies (admitting b is the owner's call)... */
	make(&m, &key_b, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_OK);
	assert_memory_equal(h.pub, key_b.pub, KEY_PUB_LEN);
	/* ... but not with key a's public key put in its place. */
	memcpy(m.buf + OFF_PUB, key_a.pub, KEY_PUB_LEN);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);
}

/*
 * A HELLO recorded in one session and replayed in another (a man in the
 * middle holds two sessions with two exporters) does not verify.
 */
static void
test_other_session(void **state)
{
	struct hello		 m;
	struct tun_hello	 h;
	uint8_t			 e[TUN_EXPORTER_LEN];
	char			 err[TUN_MSG_MAX];
	size_t			 i;

	(void)state;
	make(&m, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_OK);
	assert_int_equal(check(&m, &gateway, exp_2, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);
	assert_string_equal(err, "identity signature does not verify");
	/* Every byte of the exporter is bound. */
	for (i = 0; i < TUN_EXPORTER_LEN; i++) {
		memcpy(e, exp_1, sizeof(e));
		e[i] ^= 0x80;
		if (check(&m, &gateway, e, &h, err, sizeof(err)) !=
		    TUN_HELLO_SIGNATURE)
			fail_msg("exporter byte %zu is not signed", i);
	}
}

/*
 * Reflection on an agent tunnel: the gateway cannot send the agent's
 * own HELLO back as its own, neither as it is (the role is wrong) nor
 * with the role byte changed (the role is signed).
 */
static void
test_reflected(void **state)
{
	struct hello		 m;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];

	(void)state;
	make(&m, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	assert_int_equal(check(&m, &agent, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_ROLE);
	assert_string_equal(err, "unexpected peer role");
	m.buf[OFF_ROLE] = TUN_ROLE_GATEWAY;
	assert_int_equal(check(&m, &agent, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);

	/* The gateway's HELLO, sent back to the gateway. */
	make(&m, &key_b, TUN_ROLE_GATEWAY, WINDOW, "gw1", exp_1);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_ROLE);
	m.buf[OFF_ROLE] = TUN_ROLE_AGENT;
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);
	/* An agent's HELLO passed off as a peer gateway's. */
	make(&m, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	m.buf[OFF_ROLE] = TUN_ROLE_PEER;
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_SIGNATURE);

	/*
	 * On a peer link both ends sign role 3 over one exporter, so an
	 * echoed HELLO passes these checks (PROTOCOL.md §2.2): only the
	 * owner's check 6, never admitting its own key, stops it.
	 */
	make(&m, &key_a, TUN_ROLE_PEER, WINDOW, "gw1", exp_1);
	assert_int_equal(check(&m, &peer_dialer, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_OK);
	assert_memory_equal(h.pub, key_a.pub, KEY_PUB_LEN);
}

/*
 * Cut anywhere up to the end of the name: malformed.  Cut inside the
 * instance, which older senders leave out: it reads as 0 and verifies
 * (the instance is not signed, §2.1).  Not a HELLO on stream 0: malformed.
 */
static void
test_truncated(void **state)
{
	struct hello		 m;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];
	enum tun_hello_status	 st;
	size_t			 len, named = HELLO_FIXED + 1 + 5;

	(void)state;
	make(&m, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
	assert_int_equal(m.len, named + 8);
	for (len = 0; len < m.len; len++) {
		frame(&m, len);
		err[0] = '\0';
		st = check(&m, &gateway, exp_1, &h, err, sizeof(err));
		if (len < named) {
			if (st != TUN_HELLO_MALFORMED)
				fail_msg("cut at %zu: status %d", len, st);
			assert_string_equal(err, "malformed HELLO");
		} else {
			if (st != TUN_HELLO_OK)
				fail_msg("cut at %zu: status %d", len, st);
			assert_true(h.instance == 0);
		}
	}
	/* Bytes appended by a later version are ignored. */
	memset(m.buf + m.len, 0x33, 16);
	frame(&m, m.len + 16);
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_OK);

	frame(&m, m.len);
	m.f.stream = 1;
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_MALFORMED);
	frame(&m, m.len);
	m.f.type = TUN_PING;
	assert_int_equal(check(&m, &gateway, exp_1, &h, err, sizeof(err)),
	    TUN_HELLO_MALFORMED);
}

/* Any version but 1 is refused first, before the role or signature. */
static void
test_version(void **state)
{
	static const uint8_t	 versions[] = { 0, 2, 0x81, 0xff };
	struct hello		 m;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX], want[TUN_MSG_MAX];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(versions); i++) {
		make(&m, &key_a, TUN_ROLE_AGENT, WINDOW, "home1", exp_1);
		m.buf[OFF_VERSION] = versions[i];
		assert_int_equal(check(&m, &gateway, exp_1, &h, err,
		    sizeof(err)), TUN_HELLO_VERSION);
		snprintf(want, sizeof(want), "unsupported protocol version "
		    "%u (this side speaks 1)", versions[i]);
		assert_string_equal(err, want);
		/* Also with the wrong role and a broken signature. */
		m.buf[OFF_ROLE] = TUN_ROLE_GATEWAY;
		m.buf[OFF_SIG] ^= 0x01;
		assert_int_equal(check(&m, &gateway, exp_1, &h, err,
		    sizeof(err)), TUN_HELLO_VERSION);
	}
}

/* Roles out of place, including ones that do not exist. */
static void
test_role(void **state)
{
	static const struct {
		uint8_t		 role;
		struct side	 receiver;
	} tab[] = {
		{ TUN_ROLE_GATEWAY, { TUN_ROLE_GATEWAY, 1 } },
		{ TUN_ROLE_AGENT, { TUN_ROLE_AGENT, 0 } },
		{ TUN_ROLE_PEER, { TUN_ROLE_AGENT, 0 } },
		{ TUN_ROLE_AGENT, { TUN_ROLE_PEER, 0 } },
		{ TUN_ROLE_GATEWAY, { TUN_ROLE_PEER, 0 } },
		{ 0, { TUN_ROLE_GATEWAY, 1 } },
		{ 4, { TUN_ROLE_GATEWAY, 1 } },
		{ 0xff, { TUN_ROLE_AGENT, 0 } },
	};
	struct hello		 m;
	struct tun_hello	 h;
	enum tun_role		 role;
	char			 err[TUN_MSG_MAX];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		make(&m, &key_a, (enum tun_role)tab[i].role, WINDOW, "x",
		    exp_1);
		role = tab[i].receiver.role;
		if (tun_hello_check(&m.f, exp_1, tab[i].receiver.accepting,
		    &role, &h, err, sizeof(err)) != TUN_HELLO_ROLE)
			fail_msg("role %u accepted by %u", tab[i].role,
			    tab[i].receiver.role);
		assert_string_equal(err, "unexpected peer role");
		assert_int_equal(role, tab[i].receiver.role);
	}
	/* Only an acceptor becomes a peer, and only for a HELLO that parses
	 * (even one that fails later: it answers in the peer's role). */
	make(&m, &key_a, TUN_ROLE_PEER, WINDOW, "x", exp_1);
	role = TUN_ROLE_GATEWAY;
	assert_int_equal(tun_hello_check(&m.f, exp_2, 1, &role, &h, err,
	    sizeof(err)), TUN_HELLO_SIGNATURE);
	assert_int_equal(role, TUN_ROLE_PEER);
	frame(&m, 10);
	role = TUN_ROLE_GATEWAY;
	assert_int_equal(tun_hello_check(&m.f, exp_1, 1, &role, &h, err,
	    sizeof(err)), TUN_HELLO_MALFORMED);
	assert_int_equal(role, TUN_ROLE_GATEWAY);
}

/* 16384 <= window <= 2^31 - 1, before the signature is checked. */
static void
test_window(void **state)
{
	static const struct {
		uint32_t		 window;
		enum tun_hello_status	 want;
	} tab[] = {
		{ 0, TUN_HELLO_WINDOW },
		{ 16383, TUN_HELLO_WINDOW },
		{ 16384, TUN_HELLO_OK },
		{ 0x7fffffff, TUN_HELLO_OK },
		{ 0x80000000, TUN_HELLO_WINDOW },
		{ 0xffffffff, TUN_HELLO_WINDOW },
	};
	struct hello		 m;
	struct tun_hello	 h;
	char			 err[TUN_MSG_MAX];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		make(&m, &key_a, TUN_ROLE_AGENT, tab[i].window, "x", exp_1);
		if (check(&m, &gateway, exp_1, &h, err, sizeof(err)) !=
		    tab[i].want)
			fail_msg("window %u", tab[i].window);
		if (tab[i].want == TUN_HELLO_OK)
			continue;
		assert_string_equal(err, "window out of range");
		m.buf[OFF_SIG] ^= 0x01;
		assert_int_equal(check(&m, &gateway, exp_1, &h, err,
		    sizeof(err)), TUN_HELLO_WINDOW);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verifies),
		cmocka_unit_test(test_signed_message),
		cmocka_unit_test(test_flipped_byte),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_other_session),
		cmocka_unit_test(test_reflected),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_role),
		cmocka_unit_test(test_window),
	};

	if (sodium_init() == -1)
		return 1;
	keys_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
