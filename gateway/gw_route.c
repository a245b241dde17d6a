/* SPDX-License-Identifier: ISC */
/*
 * The route table: which agent tunnels claimed which hostnames, for
 * which entry kinds.  Routes belong to live tunnels and vanish with them.
 * A name may have several claimants (replicas).  The route's policy is
 * that of its most preferred claim: failover takes the usable claim with
 * the lowest priority value (the earliest on a tie), balance the one
 * whose tunnel carries the fewest streams (a random one on a tie).
 *
 * A claim is routed within its agent's grant: a priority below the
 * grant's min_priority is raised to it, and ACME kinds are dropped when
 * the grant says acme: false.  What the agent asked is kept, so that a
 * reload can apply new bounds and the status can say what was changed.
 *
 * The table knows its claimants only through a gw_route_view (their
 * state, load, id, name and claim list), never the tunnel itself.
 *
 * Names hash into an ntab that grows with them.  When tracking, each
 * route whose announced kinds may have changed (a claim added, changed
 * or dropped, a claimant's state) goes on a list that the peers' sync
 * takes (gw_route_changes), so an announcement costs what changed, not
 * the table; a route with no claim left stays until it was taken.
 */

#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "gw.h"
#include "ntab.h"

struct gw_route_claim {
	struct gw_tun			*tun;
	struct gw_route			*route;		/* the name claimed */
	uint8_t				 kinds;
	uint8_t				 priority;
	uint8_t				 policy;
	uint8_t				 asked_kinds;	/* before the */
	uint8_t				 asked_priority; /* grant's bounds */
	uint64_t			 seq;		/* claim order */
	TAILQ_ENTRY(gw_route_claim)	 entry;		/* route's claims */
	TAILQ_ENTRY(gw_route_claim)	 tun_link;	/* the tunnel's */
};

struct gw_route {
	struct ntab_entry		 te;		/* rt->names */
	char				*name;
	TAILQ_HEAD(, gw_route_claim)	 claims;
	int				 changed;	/* on rt->changed */
	TAILQ_ENTRY(gw_route)		 change;
};

struct gw_route_table {
	struct ntab			 names;
	int				 track;		/* keep changed */
	TAILQ_HEAD(, gw_route)		 changed;
	uint64_t			 next_seq;
	const struct gw_route_view	*view;
};

#define GW_ROUTE(e)	NTAB_ITEM(e, struct gw_route, te)

static uint8_t		 gw_route_kinds(struct gw_route_table *,
			    struct gw_route *);
static void		 gw_route_touch(struct gw_route_table *,
			    struct gw_route *);
static void		 gw_route_drop(struct gw_route_table *,
			    struct gw_route *);
static uint8_t		 gw_route_policy(struct gw_route *);
static int		 gw_route_usable(struct gw_route_table *,
			    struct gw_route_claim *, uint8_t, const uint64_t *,
			    size_t);
static struct gw_route_claim *gw_route_failover(struct gw_route_table *,
			    struct gw_route *, uint8_t, const uint64_t *, size_t);
static struct gw_route_claim *gw_route_balance(struct gw_route_table *,
			    struct gw_route *, uint8_t, const uint64_t *, size_t);
static struct gw_route	*gw_route_find(struct gw_route_table *,
			    const char *);
static void		 gw_route_unlink(struct gw_route_table *,
			    struct gw_route_claim *);
static void		 gw_route_limited(const struct gw_route_claim *,
			    char *, size_t);

struct gw_route_table *
gw_route_new(const struct gw_route_view *view)
{
	struct gw_route_table	*rt;

	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		return NULL;
	ntab_init(&rt->names);
	TAILQ_INIT(&rt->changed);
	rt->view = view;
	return rt;
}

void
gw_route_free(struct gw_route_table *rt)
{
	struct ntab_entry	*e, *next;
	struct gw_route		*r;
	struct gw_route_claim	*c;

	if (rt == NULL)
		return;
	for (e = ntab_first(&rt->names); e != NULL; e = next) {
		next = ntab_next(&rt->names, e);
		r = GW_ROUTE(e);
		while ((c = TAILQ_FIRST(&r->claims)) != NULL) {
			TAILQ_REMOVE(&r->claims, c, entry);
			free(c);
		}
		free(r->name);
		free(r);
	}
	ntab_clear(&rt->names);
	free(rt);
}

/* The claim asked within g's bounds; GW_ROUTE_* bits say what changed. */
int
gw_route_bound(const struct cfg_grant *g, const struct tun_claim *asked,
    struct tun_claim *eff)
{
	int	changed = 0;

	*eff = *asked;
	if (eff->priority < g->min_priority) {
		eff->priority = g->min_priority;
		changed |= GW_ROUTE_RAISED;
	}
	if (!g->acme && (eff->kinds & TUN_KINDS_ACME)) {
		eff->kinds &= ~TUN_KINDS_ACME;
		changed |= GW_ROUTE_NO_ACME;
	}
	return changed;
}

/* cl: the claim as routed (gw_route_bound), asked: as the agent sent it. */
int
gw_route_add(struct gw_route_table *rt, const char *name,
    const struct tun_claim *cl, const struct tun_claim *asked,
    struct gw_tun *t)
{
	struct gw_route		*r;
	struct gw_route_claim	*c;

	if ((r = gw_route_find(rt, name)) == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return -1;
		if ((r->name = strdup(name)) == NULL) {
			free(r);
			return -1;
		}
		TAILQ_INIT(&r->claims);
		r->te.hash = name_hash(name);
		if (ntab_insert(&rt->names, &r->te) == -1) {
			free(r->name);
			free(r);
			return -1;
		}
	}
	TAILQ_FOREACH(c, &r->claims, entry) {
		if (c->tun == t) {
			c->kinds = cl->kinds;	/* a repeated claim updates */
			c->priority = cl->priority;
			c->policy = cl->policy;
			c->asked_kinds = asked->kinds;
			c->asked_priority = asked->priority;
			gw_route_touch(rt, r);
			return 0;
		}
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		gw_route_drop(rt, r);
		return -1;
	}
	c->tun = t;
	c->kinds = cl->kinds;
	c->priority = cl->priority;
	c->policy = cl->policy;
	c->asked_kinds = asked->kinds;
	c->asked_priority = asked->priority;
	c->seq = rt->next_seq++;
	c->route = r;
	TAILQ_INSERT_TAIL(&r->claims, c, entry);
	TAILQ_INSERT_TAIL(rt->view->claims(t), c, tun_link);
	gw_route_touch(rt, r);
	return 1;
}

int
gw_route_remove(struct gw_route_table *rt, const char *name, struct gw_tun *t)
{
	struct gw_route		*r;
	struct gw_route_claim	*c;

	if ((r = gw_route_find(rt, name)) == NULL)
		return 0;
	TAILQ_FOREACH(c, &r->claims, entry) {
		if (c->tun == t) {
			gw_route_unlink(rt, c);
			return 1;
		}
	}
	return 0;
}

int
gw_route_has(struct gw_route_table *rt, const char *name,
    const struct gw_tun *t)
{
	struct gw_route		*r;
	struct gw_route_claim	*c;

	if ((r = gw_route_find(rt, name)) == NULL)
		return 0;
	TAILQ_FOREACH(c, &r->claims, entry)
		if (c->tun == t)
			return 1;
	return 0;
}

/* O(the tunnel's claims): each claim is on its tunnel's list too. */
void
gw_route_remove_tun(struct gw_route_table *rt, struct gw_tun *t)
{
	struct gw_route_claim	*c;

	while ((c = TAILQ_FIRST(rt->view->claims(t))) != NULL)
		gw_route_unlink(rt, c);
}

/* A claimant's state changed: what each of its names announces may. */
void
gw_route_touch_tun(struct gw_route_table *rt, struct gw_tun *t)
{
	struct gw_route_claim	*c;

	TAILQ_FOREACH(c, rt->view->claims(t), tun_link)
		gw_route_touch(rt, c->route);
}

void
gw_route_track(struct gw_route_table *rt, int on)
{
	struct gw_route	*r;

	rt->track = on;
	while (!on && (r = TAILQ_FIRST(&rt->changed)) != NULL) {
		TAILQ_REMOVE(&rt->changed, r, change);
		r->changed = 0;
		gw_route_drop(rt, r);
	}
}

/*
 * Every name changed since the last call, with the kinds it could serve
 * now (gw_route_foreach's), 0 when it has none; then forget them.  cb
 * must not change the table.  Returns how many.
 */
size_t
gw_route_changes(struct gw_route_table *rt,
    void (*cb)(const char *, uint8_t, void *), void *arg)
{
	struct gw_route	*r;
	size_t		 n = 0;

	while ((r = TAILQ_FIRST(&rt->changed)) != NULL) {
		TAILQ_REMOVE(&rt->changed, r, change);
		r->changed = 0;
		cb(r->name, gw_route_kinds(rt, r), arg);
		gw_route_drop(rt, r);
		n++;
	}
	return n;
}

/* Free a claim, and its route if it was the last claimant. */
static void
gw_route_unlink(struct gw_route_table *rt, struct gw_route_claim *c)
{
	struct gw_route		*r = c->route;

	TAILQ_REMOVE(&r->claims, c, entry);
	TAILQ_REMOVE(rt->view->claims(c->tun), c, tun_link);
	free(c);
	gw_route_touch(rt, r);
	gw_route_drop(rt, r);
}

static void
gw_route_touch(struct gw_route_table *rt, struct gw_route *r)
{
	if (!rt->track || r->changed)
		return;
	r->changed = 1;
	TAILQ_INSERT_TAIL(&rt->changed, r, change);
}

/* Free r if nothing refers to it: no claim, not a change to announce. */
static void
gw_route_drop(struct gw_route_table *rt, struct gw_route *r)
{
	if (!TAILQ_EMPTY(&r->claims) || r->changed)
		return;
	ntab_remove(&rt->names, &r->te);
	free(r->name);
	free(r);
}

struct gw_tun *
gw_route_lookup(struct gw_route_table *rt, const char *name, uint8_t kind,
    const uint64_t *skip, size_t nskip)
{
	struct gw_route		*r;
	struct gw_route_claim	*best;
	const char		*dot;
	char			 wild[NAME_MAX_LEN + 3];
	int			 pass;

	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			/* "*.example.net" matches one label below it. */
			if ((dot = strchr(name, '.')) == NULL)
				break;
			snprintf(wild, sizeof(wild), "*%s", dot);
			name = wild;
		}
		if ((r = gw_route_find(rt, name)) == NULL)
			continue;
		if (gw_route_policy(r) == TUN_POLICY_BALANCE)
			best = gw_route_balance(rt, r, kind, skip, nskip);
		else
			best = gw_route_failover(rt, r, kind, skip, nskip);
		if (best != NULL)
			return best->tun;
	}
	return NULL;
}

/* The policy of the most preferred claim (lowest priority, earliest). */
static uint8_t
gw_route_policy(struct gw_route *r)
{
	struct gw_route_claim	*c, *best = NULL;

	TAILQ_FOREACH(c, &r->claims, entry)
		if (best == NULL || c->priority < best->priority)
			best = c;
	return best != NULL ? best->policy : TUN_POLICY_FAILOVER;
}

static int
gw_route_usable(struct gw_route_table *rt, struct gw_route_claim *c,
    uint8_t kind, const uint64_t *skip, size_t nskip)
{
	size_t	i;

	if (!(c->kinds & kind) || rt->view->state(c->tun) != GW_ROUTE_USABLE)
		return 0;
	for (i = 0; i < nskip; i++)
		if (skip[i] == rt->view->id(c->tun))
			return 0;
	return 1;
}

static struct gw_route_claim *
gw_route_failover(struct gw_route_table *rt, struct gw_route *r, uint8_t kind,
    const uint64_t *skip, size_t nskip)
{
	struct gw_route_claim	*c, *best = NULL;

	/* Claims are kept in claim order, so '<' keeps the earliest. */
	TAILQ_FOREACH(c, &r->claims, entry)
		if (gw_route_usable(rt, c, kind, skip, nskip) &&
		    (best == NULL || c->priority < best->priority))
			best = c;
	return best;
}

static struct gw_route_claim *
gw_route_balance(struct gw_route_table *rt, struct gw_route *r, uint8_t kind,
    const uint64_t *skip, size_t nskip)
{
	struct gw_route_claim	*c, *best = NULL;
	unsigned		 load, best_load = 0, ties = 0;

	TAILQ_FOREACH(c, &r->claims, entry) {
		if (!gw_route_usable(rt, c, kind, skip, nskip))
			continue;
		load = rt->view->streams(c->tun);
		if (best == NULL || load < best_load) {
			best = c;
			best_load = load;
			ties = 1;
		} else if (load == best_load &&
		    randombytes_uniform(++ties) == 0) {
			best = c;	/* each tie equally likely */
		}
	}
	return best;
}

static struct gw_route *
gw_route_find(struct gw_route_table *rt, const char *name)
{
	struct ntab_entry	*e;
	unsigned		 h = name_hash(name);

	for (e = ntab_chain(&rt->names, h); e != NULL; e = e->next)
		if (e->hash == h && strcmp(GW_ROUTE(e)->name, name) == 0)
			return GW_ROUTE(e);
	return NULL;
}

/* The kinds a visitor could be sent to r for now, 0: none. */
static uint8_t
gw_route_kinds(struct gw_route_table *rt, struct gw_route *r)
{
	struct gw_route_claim	*c;
	uint8_t			 kinds = 0;

	TAILQ_FOREACH(c, &r->claims, entry)
		if (gw_route_usable(rt, c, c->kinds, NULL, 0))
			kinds |= c->kinds;
	return kinds;
}

/*
 * Every route with its replicas, and for each replica whether a visitor
 * arriving now could be sent there and why not.
 */
json_t *
gw_route_status(struct gw_route_table *rt)
{
	struct ntab_entry	*e;
	struct gw_route		*r;
	struct gw_route_claim	*c, *tls, *http, *pick;
	json_t			*routes, *o, *reps, *rep;
	const struct gw_route_view *v = rt->view;
	const char		*state, *why;
	char			 buf[160], kinds[64], limited[160];
	uint8_t			 policy;

	if ((routes = json_array()) == NULL)
		return NULL;
	for (e = ntab_first(&rt->names); e != NULL;
	    e = ntab_next(&rt->names, e)) {
		r = GW_ROUTE(e);
		if (TAILQ_EMPTY(&r->claims))
			continue;	/* gone, its withdrawal not sent yet */
		policy = gw_route_policy(r);
		/* The replicas a visitor of each kind gets now. */
		tls = gw_route_failover(rt, r, TUN_KIND_TLS, NULL, 0);
		http = gw_route_failover(rt, r, TUN_KIND_HTTP, NULL, 0);
		pick = tls != NULL ? tls : http;
		reps = json_array();
		TAILQ_FOREACH(c, &r->claims, entry) {
			state = "standby";
			why = buf;
			if (v->state(c->tun) == GW_ROUTE_NOT_READY) {
				state = "unavailable";
				why = "tunnel not ready";
			} else if (v->state(c->tun) ==
			    GW_ROUTE_DRAINING) {
				state = "unavailable";
				why = "agent draining (GOAWAY)";
			} else if (!(c->kinds & (TUN_KIND_TLS |
			    TUN_KIND_HTTP))) {
				state = "acme";
				why = "answers ACME validation only";
			} else if (policy == TUN_POLICY_BALANCE) {
				state = "active";
				why = "balance: fewest streams wins";
			} else if (c == tls || c == http) {
				state = "active";
				why = "failover: most preferred";
			} else if (pick != NULL) {
				snprintf(buf, sizeof(buf), "failover: "
				    "priority %u behind %s (priority "
				    "%u)", c->priority,
				    v->name(pick->tun),
				    pick->priority);
			} else
				why = "";
			gw_route_limited(c, limited, sizeof(limited));
			rep = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, "
			    "s:o}", "agent", v->name(c->tun),
			    "priority", (json_int_t)c->priority,
			    "kinds", tun_kinds_text(c->kinds, kinds,
			    sizeof(kinds)),
			    "state", state, "why", why,
			    "streams",
			    (json_int_t)v->streams(c->tun),
			    "limited", limited[0] != '\0' ?
			    json_string(limited) : json_null());
			if (rep != NULL)
				json_array_append_new(reps, rep);
		}
		o = json_pack("{s:s, s:s, s:o}", "name", r->name,
		    "policy", policy == TUN_POLICY_BALANCE ?
		    "balance" : "failover", "replicas", reps);
		if (o != NULL)
			json_array_append_new(routes, o);
	}
	return routes;
}

/* What the grant's bounds changed in a claim, for the status; "" none. */
static void
gw_route_limited(const struct gw_route_claim *c, char *buf, size_t len)
{
	char	kinds[64];
	uint8_t	refused = c->asked_kinds & ~c->kinds;

	buf[0] = '\0';
	if (c->asked_priority < c->priority)
		snprintf(buf, len, "priority %u raised to %u by the grant's "
		    "min_priority", c->asked_priority, c->priority);
	if (refused != 0)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s refused: "
		    "the grant says acme: false", buf[0] != '\0' ? "; " : "",
		    tun_kinds_text(refused, kinds, sizeof(kinds)));
}

void
gw_route_foreach(struct gw_route_table *rt,
    void (*cb)(const char *, uint8_t, void *), void *arg)
{
	struct ntab_entry	*e;
	uint8_t			 kinds;

	for (e = ntab_first(&rt->names); e != NULL;
	    e = ntab_next(&rt->names, e))
		if ((kinds = gw_route_kinds(rt, GW_ROUTE(e))) != 0)
			cb(GW_ROUTE(e)->name, kinds, arg);
}

unsigned
gw_route_revoke(struct gw_route_table *rt, struct gw_tun *t,
    const struct cfg_grant *g,
    void (*cb)(const struct tun_claim *, void *), void *arg)
{
	struct gw_route_claim	*c, *cn;
	struct tun_claim	 tc, eff;
	unsigned		 n = 0;
	size_t			 k;
	int			 ok;

	for (c = TAILQ_FIRST(rt->view->claims(t)); c != NULL; c = cn) {
		cn = TAILQ_NEXT(c, tun_link);
		memset(&tc, 0, sizeof(tc));
		tc.kinds = c->asked_kinds;
		tc.priority = c->asked_priority;
		tc.policy = c->policy;
		for (ok = 0, k = 0; k < g->npatterns && !ok; k++)
			ok = name_pattern_covers(g->patterns[k],
			    c->route->name);
		/* Covered: the new grant's bounds apply from now on. */
		if (ok) {
			gw_route_bound(g, &tc, &eff);
			if (eff.kinds != 0) {
				if (c->kinds != eff.kinds)
					gw_route_touch(rt, c->route);
				c->kinds = eff.kinds;
				c->priority = eff.priority;
				continue;
			}
		}
		snprintf(tc.name, sizeof(tc.name), "%s", c->route->name);
		cb(&tc, arg);
		gw_route_unlink(rt, c);
		n++;
	}
	return n;
}
