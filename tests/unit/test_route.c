/* SPDX-License-Identifier: ISC */
/*
 * The route table's replica policy (gw_route.c) with fake claimants:
 * a gw_route_view over plain structs whose state and load the test sets,
 * so failover order, balance, wildcards, kinds, skip lists, draining,
 * removal and revocation are checked without a tunnel.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "gw.h"

/* gw.h leaves struct gw_tun opaque; in this test it is a fake. */
struct gw_tun {
	const char			*name;
	uint64_t			 id;
	enum gw_route_state		 state;
	unsigned			 streams;
	struct gw_route_claim_list	 claims;
};

static enum gw_route_state
fake_state(const struct gw_tun *t)
{
	return t->state;
}

static unsigned
fake_streams(const struct gw_tun *t)
{
	return t->streams;
}

static uint64_t
fake_id(const struct gw_tun *t)
{
	return t->id;
}

static const char *
fake_name(const struct gw_tun *t)
{
	return t->name;
}

static struct gw_route_claim_list *
fake_claims(struct gw_tun *t)
{
	return &t->claims;
}

static const struct gw_route_view fake_view = {
	.state = fake_state,
	.streams = fake_streams,
	.id = fake_id,
	.name = fake_name,
	.claims = fake_claims,
};

#define NTUN	4

struct fixture {
	struct gw_route_table	*rt;
	struct gw_tun		 t[NTUN];	/* "a".."d", ids 101.. */
};

static int
setup(void **state)
{
	static const char	*names[NTUN] = { "a", "b", "c", "d" };
	struct fixture		*f;
	int			 i;

	if ((f = test_calloc(1, sizeof(*f))) == NULL)
		return -1;
	for (i = 0; i < NTUN; i++) {
		f->t[i].name = names[i];
		f->t[i].id = 101 + i;
		f->t[i].state = GW_ROUTE_USABLE;
		TAILQ_INIT(&f->t[i].claims);
	}
	if ((f->rt = gw_route_new(&fake_view)) == NULL) {
		test_free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	gw_route_free(f->rt);
	test_free(f);
	return 0;
}

/* Claim name for t as asked, unbounded (asked == routed). */
static int
claim(struct fixture *f, const char *name, int i, uint8_t kinds,
    uint8_t priority, uint8_t policy)
{
	struct tun_claim	c;

	memset(&c, 0, sizeof(c));
	c.kinds = kinds;
	c.priority = priority;
	c.policy = policy;
	return gw_route_add(f->rt, name, &c, &c, &f->t[i]);
}

/* Index of the tunnel a lookup picks, -1 for none. */
static int
pick(struct fixture *f, const char *name, uint8_t kind, const uint64_t *skip,
    size_t nskip)
{
	struct gw_tun	*t;

	if ((t = gw_route_lookup(f->rt, name, kind, skip, nskip)) == NULL)
		return -1;
	return (int)(t - f->t);
}

/*
 * Whether t's claim list (gw_route's, linked through claims it keeps
 * private) is empty; its contents are seen through gw_route_has() and
 * gw_route_revoke(), which walks it.
 */
static int
no_claims(struct gw_tun *t)
{
	return TAILQ_EMPTY(&t->claims);
}

#define TLS	TUN_KIND_TLS
#define HTTP	TUN_KIND_HTTP
#define FO	TUN_POLICY_FAILOVER
#define BAL	TUN_POLICY_BALANCE

static void
test_failover_priority(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(claim(f, "x.example", 0, TLS, 5, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 2, FO), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 2, FO), 1);
	/* Lowest priority value; b before c, which claimed later. */
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
	f->t[1].state = GW_ROUTE_DRAINING;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	f->t[2].state = GW_ROUTE_NOT_READY;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 0);
	f->t[0].state = GW_ROUTE_DRAINING;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), -1);
	/* Back up: the preferred one again; load plays no part. */
	f->t[0].state = f->t[1].state = f->t[2].state = GW_ROUTE_USABLE;
	f->t[1].streams = 1000;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
}

static void
test_failover_claim_order(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(claim(f, "x.example", 2, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 1, FO), 1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	/* A repeated claim updates in place and keeps its turn. */
	assert_int_equal(claim(f, "x.example", 2, TLS | HTTP, 1, FO), 0);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	assert_int_equal(pick(f, "x.example", HTTP, NULL, 0), 2);
	/* ... and its priority: raised behind the others now. */
	assert_int_equal(claim(f, "x.example", 2, TLS, 9, FO), 0);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 0);
	assert_int_equal(pick(f, "x.example", HTTP, NULL, 0), -1);
	/* Removed and claimed again: last in claim order. */
	assert_int_equal(claim(f, "x.example", 2, TLS, 1, FO), 0);
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[0]), 1);
	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[2]), 1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
}

static void
test_balance_fewest(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 1, BAL), 1);
	f->t[0].streams = 3;
	f->t[1].streams = 7;
	f->t[2].streams = 2;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	f->t[2].state = GW_ROUTE_DRAINING;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 0);
	f->t[0].state = GW_ROUTE_NOT_READY;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
	f->t[1].state = GW_ROUTE_DRAINING;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), -1);
}

static void
test_balance_tie_random(void **state)
{
	struct fixture	*f = *state;
	unsigned	 seen[NTUN] = { 0 };
	int		 i, p;

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 3, TLS, 1, BAL), 1);
	f->t[0].streams = 4;
	f->t[1].streams = 4;
	f->t[2].streams = 9;
	f->t[3].streams = 4;
	for (i = 0; i < 3000; i++) {
		p = pick(f, "x.example", TLS, NULL, 0);
		assert_in_range(p, 0, NTUN - 1);
		seen[p]++;
	}
	/*
	 * Each of the three tied is equally likely (1000 expected); the
	 * bounds are over 7 standard deviations out, never hit by chance.
	 */
	assert_int_equal(seen[2], 0);
	assert_in_range(seen[0], 800, 1200);
	assert_in_range(seen[1], 800, 1200);
	assert_in_range(seen[3], 800, 1200);
}

static void
test_policy_of_preferred(void **state)
{
	struct fixture	*f = *state;

	/* The most preferred claim says balance: the route balances, ... */
	assert_int_equal(claim(f, "x.example", 0, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 2, FO), 1);
	f->t[0].streams = 5;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
	/* ... even while its own tunnel is unusable. */
	f->t[0].state = GW_ROUTE_DRAINING;
	f->t[1].streams = 6;
	assert_int_equal(claim(f, "x.example", 2, TLS, 3, FO), 1);
	f->t[2].streams = 1;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
	/* Outranked by a failover claim: priority decides again. */
	f->t[0].state = GW_ROUTE_USABLE;
	assert_int_equal(claim(f, "x.example", 3, TLS, 0, FO), 1);
	f->t[3].streams = 50;
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 3);
}

static void
test_wildcard(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(claim(f, "*.example.net", 0, TLS | HTTP, 1, FO), 1);
	assert_int_equal(claim(f, "a.example.net", 1, TLS, 1, FO), 1);
	/* The exact name first, whatever the priorities. */
	assert_int_equal(claim(f, "*.example.net", 2, TLS, 0, FO), 1);
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 1);
	/* One label below the wildcard only; never the parent itself. */
	assert_int_equal(pick(f, "b.example.net", TLS, NULL, 0), 2);
	assert_int_equal(pick(f, "x.a.example.net", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "example.net", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "net", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "b.example.org", TLS, NULL, 0), -1);
	/* The exact claim does not take this kind: the wildcard does. */
	assert_int_equal(pick(f, "a.example.net", HTTP, NULL, 0), 0);
	/* The exact claimant is unusable: the wildcard's replicas. */
	f->t[1].state = GW_ROUTE_DRAINING;
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 2);
	/* As is a skipped one. */
	f->t[1].state = GW_ROUTE_USABLE;
	assert_int_equal(pick(f, "a.example.net", TLS,
	    (uint64_t[]){ 102 }, 1), 2);
}

static void
test_kinds(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, HTTP, 2, FO), 1);
	assert_int_equal(claim(f, "x.example", 2, TUN_KIND_ACME_TLS, 0, FO),
	    1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 0);
	assert_int_equal(pick(f, "x.example", HTTP, NULL, 0), 1);
	assert_int_equal(pick(f, "x.example", TUN_KIND_ACME_TLS, NULL, 0), 2);
	assert_int_equal(pick(f, "x.example", TUN_KIND_ACME_HTTP, NULL, 0),
	    -1);
}

static void
test_skip(void **state)
{
	struct fixture	*f = *state;
	uint64_t	 skip[3];

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 2, FO), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 3, FO), 1);
	skip[0] = 101;
	assert_int_equal(pick(f, "x.example", TLS, skip, 1), 1);
	skip[1] = 102;
	assert_int_equal(pick(f, "x.example", TLS, skip, 2), 2);
	skip[2] = 103;
	assert_int_equal(pick(f, "x.example", TLS, skip, 3), -1);
	/* An id not among the claimants changes nothing. */
	skip[0] = 999;
	assert_int_equal(pick(f, "x.example", TLS, skip, 1), 0);

	/* Balance skips too, even the least loaded. */
	assert_int_equal(claim(f, "y.example", 0, TLS, 1, BAL), 1);
	assert_int_equal(claim(f, "y.example", 1, TLS, 1, BAL), 1);
	f->t[0].streams = 0;
	f->t[1].streams = 8;
	skip[0] = 101;
	assert_int_equal(pick(f, "y.example", TLS, skip, 1), 1);
	skip[1] = 102;
	assert_int_equal(pick(f, "y.example", TLS, skip, 2), -1);
}

static void
test_remove(void **state)
{
	struct fixture	*f = *state;
	json_t		*routes;

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 2, FO), 1);
	assert_int_equal(claim(f, "y.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "z.example", 1, TLS, 1, FO), 1);
	assert_false(no_claims(&f->t[0]));
	assert_false(no_claims(&f->t[1]));
	assert_true(no_claims(&f->t[2]));
	assert_true(gw_route_has(f->rt, "x.example", &f->t[0]));
	assert_false(gw_route_has(f->rt, "z.example", &f->t[0]));
	assert_false(gw_route_has(f->rt, "w.example", &f->t[0]));

	/* Not claimed by that tunnel, or not at all: 0, nothing changes. */
	assert_int_equal(gw_route_remove(f->rt, "z.example", &f->t[0]), 0);
	assert_int_equal(gw_route_remove(f->rt, "w.example", &f->t[0]), 0);
	assert_int_equal(pick(f, "z.example", TLS, NULL, 0), 1);

	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[0]), 1);
	assert_false(gw_route_has(f->rt, "x.example", &f->t[0]));
	assert_true(gw_route_has(f->rt, "y.example", &f->t[0]));
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 1);
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[0]), 0);

	/* The last claimant gone, so is the route. */
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[1]), 1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), -1);
	assert_true(gw_route_has(f->rt, "z.example", &f->t[1]));

	/* A tunnel's end takes all its claims, and only its. */
	assert_int_equal(claim(f, "y.example", 1, TLS, 2, FO), 1);
	gw_route_remove_tun(f->rt, &f->t[0]);
	assert_true(no_claims(&f->t[0]));
	assert_false(gw_route_has(f->rt, "y.example", &f->t[0]));
	assert_true(gw_route_has(f->rt, "y.example", &f->t[1]));
	assert_true(gw_route_has(f->rt, "z.example", &f->t[1]));
	assert_int_equal(pick(f, "y.example", TLS, NULL, 0), 1);
	assert_int_equal(pick(f, "z.example", TLS, NULL, 0), 1);
	gw_route_remove_tun(f->rt, &f->t[1]);
	assert_true(no_claims(&f->t[1]));
	assert_int_equal(pick(f, "y.example", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "z.example", TLS, NULL, 0), -1);
	/* No empty route is left behind. */
	assert_non_null(routes = gw_route_status(f->rt));
	assert_int_equal(json_array_size(routes), 0);
	json_decref(routes);
	/* Claimed anew after all that: a fresh route. */
	assert_int_equal(claim(f, "x.example", 2, TLS, 1, FO), 1);
	assert_int_equal(pick(f, "x.example", TLS, NULL, 0), 2);
}

/* Many names in few buckets' worth: chains are kept right on removal. */
static void
test_many(void **state)
{
	struct fixture	*f = *state;
	char		 name[32];
	int		 i;

	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		assert_int_equal(claim(f, name, i % 2, TLS, 1, FO), 1);
	}
	for (i = 0; i < 3000; i += 3) {
		snprintf(name, sizeof(name), "h%d.example", i);
		assert_int_equal(gw_route_remove(f->rt, name, &f->t[i % 2]),
		    1);
	}
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		assert_int_equal(pick(f, name, TLS, NULL, 0),
		    i % 3 == 0 ? -1 : i % 2);
	}
	gw_route_remove_tun(f->rt, &f->t[0]);
	assert_true(no_claims(&f->t[0]));
	assert_int_equal(pick(f, "h0.example", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "h2.example", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "h1.example", TLS, NULL, 0), 1);
}

static void
test_bound(void **state)
{
	struct cfg_grant	g;
	struct tun_claim	asked, eff;

	(void)state;
	memset(&g, 0, sizeof(g));
	memset(&asked, 0, sizeof(asked));
	g.min_priority = 1;
	g.acme = 1;
	asked.kinds = TUN_KINDS_ALL;
	asked.priority = 3;
	asked.policy = BAL;
	assert_int_equal(gw_route_bound(&g, &asked, &eff), 0);
	assert_int_equal(eff.kinds, TUN_KINDS_ALL);
	assert_int_equal(eff.priority, 3);
	assert_int_equal(eff.policy, BAL);

	g.min_priority = 10;
	g.acme = 0;
	assert_int_equal(gw_route_bound(&g, &asked, &eff),
	    GW_ROUTE_RAISED | GW_ROUTE_NO_ACME);
	assert_int_equal(eff.kinds, TLS | HTTP);
	assert_int_equal(eff.priority, 10);
	assert_int_equal(eff.policy, BAL);
	/* The asked claim is left as it was. */
	assert_int_equal(asked.kinds, TUN_KINDS_ALL);
	assert_int_equal(asked.priority, 3);

	/* At the bound is not below it; ACME only leaves nothing. */
	asked.priority = 10;
	asked.kinds = TUN_KINDS_ACME;
	assert_int_equal(gw_route_bound(&g, &asked, &eff), GW_ROUTE_NO_ACME);
	assert_int_equal(eff.kinds, 0);
	assert_int_equal(eff.priority, 10);
}

struct revoked {
	char		names[4][NAME_MAX_LEN + 1];
	uint8_t		kinds[4], priority[4];
	int		n;
};

static void
revoked_cb(const struct tun_claim *c, void *arg)
{
	struct revoked	*r = arg;

	assert_in_range(r->n, 0, 3);
	snprintf(r->names[r->n], sizeof(r->names[0]), "%s", c->name);
	r->kinds[r->n] = c->kinds;
	r->priority[r->n] = c->priority;
	r->n++;
}

/* Claim as the agent asked, routed within g's bounds (as gw_tun.c). */
static void
claim_bounded(struct fixture *f, const struct cfg_grant *g, const char *name,
    int i, uint8_t kinds, uint8_t priority)
{
	struct tun_claim	asked, eff;

	memset(&asked, 0, sizeof(asked));
	asked.kinds = kinds;
	asked.priority = priority;
	asked.policy = FO;
	gw_route_bound(g, &asked, &eff);
	assert_int_equal(gw_route_add(f->rt, name, &eff, &asked, &f->t[i]),
	    1);
}

static void
test_revoke(void **state)
{
	struct fixture	*f = *state;
	char		*pats1[] = { "*.example.net", "solo.example" };
	char		*pats2[] = { "*.example.net" };
	struct cfg_grant g;
	struct revoked	 rv;

	memset(&g, 0, sizeof(g));
	g.patterns = pats1;
	g.npatterns = 2;
	g.min_priority = 5;
	g.acme = 1;
	claim_bounded(f, &g, "a.example.net", 0, TLS, 1);
	claim_bounded(f, &g, "b.example.net", 0, TUN_KIND_ACME_TLS, 1);
	claim_bounded(f, &g, "solo.example", 0, TLS, 7);
	claim_bounded(f, &g, "a.example.net", 1, TLS, 3);
	/* Both raised to 5: a claimed first. */
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 0);

	/* The same grant again: nothing revoked, nothing changes. */
	memset(&rv, 0, sizeof(rv));
	assert_int_equal(gw_route_revoke(f->rt, &f->t[0], &g, revoked_cb,
	    &rv), 0);
	assert_int_equal(rv.n, 0);
	assert_true(gw_route_has(f->rt, "a.example.net", &f->t[0]));
	assert_true(gw_route_has(f->rt, "b.example.net", &f->t[0]));
	assert_true(gw_route_has(f->rt, "solo.example", &f->t[0]));

	/*
	 * Reloaded: solo.example no longer covered, ACME refused, and the
	 * bound lowered, so what a asked (1) applies and a now leads b (3).
	 */
	g.patterns = pats2;
	g.npatterns = 1;
	g.min_priority = 1;
	g.acme = 0;
	memset(&rv, 0, sizeof(rv));
	assert_int_equal(gw_route_revoke(f->rt, &f->t[0], &g, revoked_cb,
	    &rv), 2);
	assert_int_equal(rv.n, 2);
	/* Heard in the tunnel's claim order, as the agent asked them. */
	assert_string_equal(rv.names[0], "b.example.net");
	assert_int_equal(rv.kinds[0], TUN_KIND_ACME_TLS);
	assert_int_equal(rv.priority[0], 1);
	assert_string_equal(rv.names[1], "solo.example");
	assert_int_equal(rv.kinds[1], TLS);
	assert_int_equal(rv.priority[1], 7);
	assert_true(gw_route_has(f->rt, "a.example.net", &f->t[0]));
	assert_false(gw_route_has(f->rt, "solo.example", &f->t[0]));
	assert_false(gw_route_has(f->rt, "b.example.net", &f->t[0]));
	assert_int_equal(pick(f, "solo.example", TLS, NULL, 0), -1);
	assert_int_equal(pick(f, "b.example.net", TUN_KIND_ACME_TLS, NULL, 0),
	    -1);
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 0);

	/* A bound raised by a reload moves a behind b (5). */
	g.min_priority = 6;
	memset(&rv, 0, sizeof(rv));
	assert_int_equal(gw_route_revoke(f->rt, &f->t[0], &g, revoked_cb,
	    &rv), 0);
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 1);
	/* The other tunnel's claims are its own business. */
	assert_true(gw_route_has(f->rt, "a.example.net", &f->t[1]));

	/* A grant with no pattern left revokes the rest of the list. */
	g.npatterns = 0;
	memset(&rv, 0, sizeof(rv));
	assert_int_equal(gw_route_revoke(f->rt, &f->t[0], &g, revoked_cb,
	    &rv), 1);
	assert_string_equal(rv.names[0], "a.example.net");
	assert_int_equal(rv.priority[0], 1);
	assert_true(no_claims(&f->t[0]));
	assert_int_equal(pick(f, "a.example.net", TLS, NULL, 0), 1);
}

static void
foreach_cb(const char *name, uint8_t kinds, void *arg)
{
	uint8_t	*seen = arg;

	if (strcmp(name, "x.example") == 0)
		seen[0] |= kinds | 0x80;
	else if (strcmp(name, "y.example") == 0)
		seen[1] |= kinds | 0x80;
	else
		fail_msg("unexpected name %s", name);
}

static void
test_foreach(void **state)
{
	struct fixture	*f = *state;
	uint8_t		 seen[2] = { 0, 0 };

	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, HTTP, 2, FO), 1);
	assert_int_equal(claim(f, "x.example", 2, TUN_KIND_ACME_HTTP, 2, FO),
	    1);
	assert_int_equal(claim(f, "y.example", 2, TLS, 1, FO), 1);
	f->t[1].state = GW_ROUTE_DRAINING;
	f->t[2].state = GW_ROUTE_NOT_READY;
	/* Only the usable claims' kinds; y has none, so is not heard. */
	gw_route_foreach(f->rt, foreach_cb, seen);
	assert_int_equal(seen[0], 0x80 | TLS);
	assert_int_equal(seen[1], 0);
	f->t[1].state = f->t[2].state = GW_ROUTE_USABLE;
	seen[0] = 0;
	gw_route_foreach(f->rt, foreach_cb, seen);
	assert_int_equal(seen[0], 0x80 | TLS | HTTP | TUN_KIND_ACME_HTTP);
	assert_int_equal(seen[1], 0x80 | TLS);
}

static void
count_cb(const char *name, uint8_t kinds, void *arg)
{
	size_t	*n = arg;

	(void)name;
	(void)kinds;
	(*n)++;
}

/*
 * A hundred thousand names, the table growing under them, with removals
 * between the insertions that make it grow: every name is found, each
 * removed one is gone, and the walks see each route once.
 */
static void
test_grow(void **state)
{
	struct fixture	*f = *state;
	json_t		*routes;
	char		 name[32];
	size_t		 n;
	int		 i;

	for (i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(claim(f, name, i % 3, TLS, 1, FO), 1);
		/* One name in four goes again at once, a few names back. */
		if (i % 4 == 3) {
			snprintf(name, sizeof(name), "n%d.example", i - 2);
			assert_int_equal(gw_route_remove(f->rt, name,
			    &f->t[(i - 2) % 3]), 1);
		}
	}
	for (i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(pick(f, name, TLS, NULL, 0),
		    i % 4 == 1 ? -1 : i % 3);
		assert_int_equal(gw_route_has(f->rt, name, &f->t[i % 3]),
		    i % 4 != 1);
	}
	n = 0;
	gw_route_foreach(f->rt, count_cb, &n);
	assert_int_equal(n, 75000);
	assert_non_null(routes = gw_route_status(f->rt));
	assert_int_equal(json_array_size(routes), 75000);
	json_decref(routes);
	/* A second claimant on every name still there, then the first
	 * tunnel goes: its names are served by the other one. */
	for (i = 0; i < 100000; i += 3) {
		if (i % 4 == 1)
			continue;
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(claim(f, name, 3, TLS, 2, FO), 1);
	}
	gw_route_remove_tun(f->rt, &f->t[0]);
	assert_true(no_claims(&f->t[0]));
	for (i = 0; i < 100000; i += 3) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_int_equal(pick(f, name, TLS, NULL, 0),
		    i % 4 == 1 ? -1 : 3);
	}
	gw_route_remove_tun(f->rt, &f->t[1]);
	gw_route_remove_tun(f->rt, &f->t[2]);
	gw_route_remove_tun(f->rt, &f->t[3]);
	n = 0;
	gw_route_foreach(f->rt, count_cb, &n);
	assert_int_equal(n, 0);
	/* Empty again, and it still takes names. */
	assert_int_equal(claim(f, "n5.example", 1, TLS, 1, FO), 1);
	assert_int_equal(pick(f, "n5.example", TLS, NULL, 0), 1);
}

struct change {
	char	name[32];
	uint8_t	kinds;
};

struct changes {
	struct change	c[8];
	size_t		n;
};

static void
change_cb(const char *name, uint8_t kinds, void *arg)
{
	struct changes	*ch = arg;

	assert_true(ch->n < 8);
	snprintf(ch->c[ch->n].name, sizeof(ch->c[ch->n].name), "%s", name);
	ch->c[ch->n].kinds = kinds;
	ch->n++;
}

/* The changes since the last call: n of them, these (name, kinds). */
static void
assert_changes(struct fixture *f, size_t n, ...)
{
	struct changes	 ch;
	va_list		 ap;
	size_t		 i;

	memset(&ch, 0, sizeof(ch));
	assert_int_equal(gw_route_changes(f->rt, change_cb, &ch), n);
	assert_int_equal(ch.n, n);
	va_start(ap, n);
	for (i = 0; i < n; i++) {
		assert_string_equal(ch.c[i].name, va_arg(ap, const char *));
		assert_int_equal(ch.c[i].kinds, va_arg(ap, int));
	}
	va_end(ap);
}

/*
 * What the peers' announcements take: each name whose kinds may have
 * changed, once, with the kinds now (0: gone); none while not tracking.
 */
static void
test_changes(void **state)
{
	struct fixture	*f = *state;
	char		*pats[] = { "a.example" };
	struct cfg_grant g;
	struct revoked	 rv;
	json_t		*routes;

	/* Not tracking: nothing kept, a route goes with its last claim. */
	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[0]), 1);
	assert_changes(f, 0);

	gw_route_track(f->rt, 1);
	assert_int_equal(claim(f, "x.example", 0, TLS, 1, FO), 1);
	assert_int_equal(claim(f, "x.example", 1, HTTP, 2, FO), 1);
	assert_int_equal(claim(f, "y.example", 1, TLS, 1, FO), 1);
	assert_changes(f, 2, "x.example", TLS | HTTP, "y.example", TLS);
	assert_changes(f, 0);

	/* A repeated claim that changes the kinds; an unknown removal. */
	assert_int_equal(claim(f, "y.example", 1, TLS | HTTP, 1, FO), 0);
	assert_int_equal(gw_route_remove(f->rt, "z.example", &f->t[1]), 0);
	assert_changes(f, 1, "y.example", TLS | HTTP);

	/* Gone, and until the change is taken not shown nor routed. */
	assert_int_equal(gw_route_remove(f->rt, "y.example", &f->t[1]), 1);
	assert_int_equal(pick(f, "y.example", TLS, NULL, 0), -1);
	assert_non_null(routes = gw_route_status(f->rt));
	assert_int_equal(json_array_size(routes), 1);
	json_decref(routes);
	assert_changes(f, 1, "y.example", 0);
	assert_changes(f, 0);

	/* Gone and back before it was taken: one change, as it is now. */
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[0]), 1);
	assert_int_equal(gw_route_remove(f->rt, "x.example", &f->t[1]), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 1, FO), 1);
	assert_changes(f, 1, "x.example", TLS);

	/* A claimant's state: what its names serve, once touched. */
	assert_int_equal(claim(f, "y.example", 2, HTTP, 1, FO), 1);
	assert_changes(f, 1, "y.example", HTTP);
	f->t[2].state = GW_ROUTE_DRAINING;
	gw_route_touch_tun(f->rt, &f->t[2]);
	assert_changes(f, 2, "x.example", 0, "y.example", 0);
	gw_route_remove_tun(f->rt, &f->t[2]);
	assert_changes(f, 2, "x.example", 0, "y.example", 0);

	/* A reload's grant that drops ACME kinds, or the name. */
	memset(&g, 0, sizeof(g));
	g.acme = 1;
	claim_bounded(f, &g, "a.example", 3, TLS | TUN_KIND_ACME_TLS, 1);
	assert_changes(f, 1, "a.example", TLS | TUN_KIND_ACME_TLS);
	g.acme = 0;
	g.patterns = pats;
	g.npatterns = 1;
	memset(&rv, 0, sizeof(rv));
	assert_int_equal(gw_route_revoke(f->rt, &f->t[3], &g, revoked_cb,
	    &rv), 0);
	assert_changes(f, 1, "a.example", TLS);

	/* Off: what was kept goes, routes without claims with it. */
	assert_int_equal(gw_route_remove(f->rt, "a.example", &f->t[3]), 1);
	gw_route_track(f->rt, 0);
	assert_changes(f, 0);
	assert_int_equal(claim(f, "a.example", 3, TLS, 1, FO), 1);
	assert_changes(f, 0);
}

static json_t *
status_replica(json_t *routes, const char *name, const char *agent,
    const char **policy)
{
	json_t		*r, *rep;
	size_t		 i, j;

	json_array_foreach(routes, i, r) {
		if (strcmp(json_string_value(json_object_get(r, "name")),
		    name) != 0)
			continue;
		*policy = json_string_value(json_object_get(r, "policy"));
		json_array_foreach(json_object_get(r, "replicas"), j, rep)
			if (strcmp(json_string_value(json_object_get(rep,
			    "agent")), agent) == 0)
				return rep;
	}
	return NULL;
}

static void
assert_replica(json_t *routes, const char *name, const char *agent,
    const char *policy, const char *st, const char *why)
{
	json_t		*rep;
	const char	*p = NULL;

	rep = status_replica(routes, name, agent, &p);
	assert_non_null(rep);
	assert_string_equal(p, policy);
	assert_string_equal(json_string_value(json_object_get(rep, "state")),
	    st);
	assert_string_equal(json_string_value(json_object_get(rep, "why")),
	    why);
}

static void
test_status(void **state)
{
	struct fixture	*f = *state;
	struct cfg_grant g;
	json_t		*routes, *rep;
	const char	*p;

	memset(&g, 0, sizeof(g));
	g.min_priority = 3;
	g.acme = 0;
	claim_bounded(f, &g, "x.example", 0, TLS | TUN_KIND_ACME_TLS, 1);
	assert_int_equal(claim(f, "x.example", 1, TLS, 4, FO), 1);
	assert_int_equal(claim(f, "x.example", 2, TLS, 5, FO), 1);
	assert_int_equal(claim(f, "x.example", 3, TLS, 6, FO), 1);
	assert_int_equal(claim(f, "y.example", 3, TUN_KIND_ACME_HTTP, 1, BAL),
	    1);
	assert_int_equal(claim(f, "z.example", 1, TLS, 1, BAL), 1);
	f->t[1].streams = 12;
	f->t[2].state = GW_ROUTE_DRAINING;
	f->t[3].state = GW_ROUTE_NOT_READY;

	assert_non_null(routes = gw_route_status(f->rt));
	assert_int_equal(json_array_size(routes), 3);
	assert_replica(routes, "x.example", "a", "failover", "active",
	    "failover: most preferred");
	assert_replica(routes, "x.example", "b", "failover", "standby",
	    "failover: priority 4 behind a (priority 3)");
	assert_replica(routes, "x.example", "c", "failover", "unavailable",
	    "agent draining (GOAWAY)");
	assert_replica(routes, "x.example", "d", "failover", "unavailable",
	    "tunnel not ready");
	assert_replica(routes, "z.example", "b", "balance", "active",
	    "balance: fewest streams wins");
	rep = status_replica(routes, "x.example", "a", &p);
	assert_string_equal(json_string_value(json_object_get(rep, "limited")),
	    "priority 1 raised to 3 by the grant's min_priority; acme-tls "
	    "refused: the grant says acme: false");
	assert_true(json_is_null(json_object_get(status_replica(routes,
	    "x.example", "b", &p), "limited")));
	rep = status_replica(routes, "z.example", "b", &p);
	assert_int_equal(json_integer_value(json_object_get(rep, "streams")),
	    12);
	json_decref(routes);

	f->t[3].state = GW_ROUTE_USABLE;
	assert_non_null(routes = gw_route_status(f->rt));
	assert_replica(routes, "y.example", "d", "balance", "acme",
	    "answers ACME validation only");
	json_decref(routes);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failover_priority,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_claim_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_balance_fewest,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_balance_tie_random,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_of_preferred,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_wildcard,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test(test_bound),
		cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes, setup,
		    teardown),
	};

	if (sodium_init() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
