/* SPDX-License-Identifier: ISC */
/*
 * backoff_delay(): every draw lies between half and all of the step for
 * its failure count, the step doubles from min_ms per failure up to
 * max_ms, and the draws are jittered (not one fixed value).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>
#include <sodium.h>

#include "backoff.h"

#define DRAWS	2000	/* per case: enough to see both ends move */

/* The step before jitter, written out the long way. */
static uint64_t
step(unsigned failures, unsigned min_ms, unsigned max_ms)
{
	uint64_t	ms = min_ms;

	while (failures-- > 1 && ms < max_ms)
		ms *= 2;
	return ms < max_ms ? ms : max_ms;
}

static void
test_backoff_range(void **state)
{
	static const struct {
		unsigned	failures, min_ms, max_ms;
	} tab[] = {
		{ 0, 1000, 60000 },		/* 0 is the first failure */
		{ 1, 1000, 60000 },
		{ 2, 1000, 60000 },
		{ 6, 1000, 60000 },
		{ 7, 1000, 60000 },		/* capped: 64 s > 60 s */
		{ 200, 1000, 60000 },
		{ 4000000000u, 1, 4000000000u },	/* no overflow */
		{ 3, 60000, 86400000 },		/* the ACME defaults */
		{ 1, 0, 0 },
		{ 5, 7, 7 },
	};
	uint64_t	d, want, lo, hi;
	size_t		i, j;

	(void)state;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		want = step(tab[i].failures, tab[i].min_ms, tab[i].max_ms);
		lo = UINT64_MAX;
		hi = 0;
		for (j = 0; j < DRAWS; j++) {
			d = backoff_delay(tab[i].failures, tab[i].min_ms,
			    tab[i].max_ms);
			if (d < want / 2 || d > want)
				fail_msg("case %zu: %llu outside [%llu, %llu]",
				    i, (unsigned long long)d,
				    (unsigned long long)(want / 2),
				    (unsigned long long)want);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* Jitter: with a range this wide, 2000 draws spread out. */
		if (want >= 1000 && hi - lo < want / 4)
			fail_msg("case %zu: draws %llu..%llu, not jittered",
			    i, (unsigned long long)lo,
			    (unsigned long long)hi);
	}
}

/* Each failure doubles the step until the cap, then it stays there. */
static void
test_backoff_growth(void **state)
{
	uint64_t	d, max_seen;
	unsigned	f;
	size_t		j;

	(void)state;
	for (f = 1; f <= 10; f++) {
		max_seen = 0;
		for (j = 0; j < DRAWS; j++) {
			d = backoff_delay(f, 100, 10000);
			max_seen = d > max_seen ? d : max_seen;
		}
		/* 100, 200, ... 6400, then 10000: the top is near reached. */
		assert_true(max_seen <= step(f, 100, 10000));
		assert_true(max_seen >= step(f, 100, 10000) * 9 / 10);
		/* The lower half is never drawn: it grew with f. */
		assert_true(backoff_delay(f, 100, 10000) >=
		    step(f, 100, 10000) / 2);
	}
	assert_int_equal(step(7, 100, 10000), 6400);
	assert_int_equal(step(8, 100, 10000), 10000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_range),
		cmocka_unit_test(test_backoff_growth),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
