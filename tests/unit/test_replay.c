/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for the copy a stream keeps for a replay
 * (tunnel/tun_replay.c): up to its cap exactly, given up for good past
 * it, and restored in front of the visitor's later bytes so that the
 * next replica gets the very same byte stream.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tun_replay.h"

#define MAX	(64 * 1024)
#define CHUNK	16375		/* a DATA frame's payload in porch */

static uint8_t	 data[4 * MAX];

static void
fill(void)
{
	size_t	i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + (i >> 8));
}

/* dst holds exactly len bytes, equal to want. */
static void
assert_buffer(struct evbuffer *dst, const uint8_t *want, size_t len)
{
	assert_int_equal(evbuffer_get_length(dst), len);
	if (len > 0)
		assert_memory_equal(evbuffer_pullup(dst, -1), want, len);
}

/* Cap 0: nothing is kept, nothing to restore. */
static void
test_off(void **state)
{
	struct tun_replay	 r;
	struct evbuffer		*dst;

	(void)state;
	assert_int_equal(tun_replay_init(&r, 0), 0);
	assert_false(tun_replay_held(&r));
	tun_replay_add(&r, data, 10);
	assert_false(tun_replay_held(&r));
	assert_non_null(dst = evbuffer_new());
	evbuffer_add(dst, "later", 5);
	assert_int_equal(tun_replay_restore(&r, dst), -1);
	assert_buffer(dst, (const uint8_t *)"later", 5);
	tun_replay_clear(&r);
	evbuffer_free(dst);
}

/* Up to the cap exactly; a piece past it drops the copy for good. */
static void
test_bounds(void **state)
{
	struct tun_replay	 r;
	struct evbuffer		*dst;
	size_t			 off;

	(void)state;
	assert_int_equal(tun_replay_init(&r, MAX), 0);
	for (off = 0; off + CHUNK <= MAX; off += CHUNK)
		tun_replay_add(&r, data + off, CHUNK);
	tun_replay_add(&r, data + off, MAX - off);	/* to the cap */
	assert_true(tun_replay_held(&r));
	assert_int_equal(evbuffer_get_length(r.buf), MAX);
	tun_replay_add(&r, data, 0);
	assert_true(tun_replay_held(&r));
	tun_replay_add(&r, data + MAX, 1);		/* one over */
	assert_false(tun_replay_held(&r));
	/* No later piece brings it back: it would have a hole. */
	tun_replay_add(&r, data, 1);
	assert_false(tun_replay_held(&r));
	assert_non_null(dst = evbuffer_new());
	assert_int_equal(tun_replay_restore(&r, dst), -1);
	assert_int_equal(evbuffer_get_length(dst), 0);
	evbuffer_free(dst);

	/* One piece bigger than the cap, on an empty copy. */
	assert_int_equal(tun_replay_init(&r, 100), 0);
	tun_replay_add(&r, data, 101);
	assert_false(tun_replay_held(&r));
	assert_int_equal(tun_replay_init(&r, 100), 0);
	tun_replay_add(&r, data, 100);
	assert_true(tun_replay_held(&r));
	tun_replay_clear(&r);
}

/*
 * What was sent, then what the visitor sent since (still in the input):
 * restored, the input reads as the whole stream from its first byte.
 */
static void
test_exact_resend(void **state)
{
	static const size_t	 pieces[] = { 1, 517, CHUNK, 3, CHUNK, 0, 9000 };
	struct tun_replay	 r;
	struct evbuffer		*dst;
	size_t			 i, off = 0;

	(void)state;
	assert_int_equal(tun_replay_init(&r, MAX), 0);
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		tun_replay_add(&r, data + off, pieces[i]);
		off += pieces[i];
	}
	assert_true(tun_replay_held(&r));
	assert_non_null(dst = evbuffer_new());
	evbuffer_add(dst, data + off, 7777);		/* not sent yet */
	assert_int_equal(tun_replay_restore(&r, dst), 0);
	assert_buffer(dst, data, off + 7777);
	/* Given away: nothing left to restore twice. */
	assert_false(tun_replay_held(&r));
	assert_int_equal(tun_replay_restore(&r, dst), -1);
	assert_int_equal(evbuffer_get_length(dst), off + 7777);
	evbuffer_free(dst);

	/* Into an empty input too. */
	assert_int_equal(tun_replay_init(&r, MAX), 0);
	tun_replay_add(&r, data, 100);
	assert_non_null(dst = evbuffer_new());
	assert_int_equal(tun_replay_restore(&r, dst), 0);
	assert_buffer(dst, data, 100);
	evbuffer_free(dst);
}

/* The replica answered: the copy goes, and the stream stays where it is. */
static void
test_clear(void **state)
{
	struct tun_replay	 r;
	struct evbuffer		*dst;

	(void)state;
	assert_int_equal(tun_replay_init(&r, MAX), 0);
	tun_replay_add(&r, data, 100);
	tun_replay_clear(&r);
	assert_false(tun_replay_held(&r));
	tun_replay_add(&r, data, 100);
	assert_false(tun_replay_held(&r));
	assert_non_null(dst = evbuffer_new());
	assert_int_equal(tun_replay_restore(&r, dst), -1);
	assert_int_equal(evbuffer_get_length(dst), 0);
	tun_replay_clear(&r);		/* twice is fine */
	evbuffer_free(dst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_exact_resend),
		cmocka_unit_test(test_clear),
	};

	fill();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
