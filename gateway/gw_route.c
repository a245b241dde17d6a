/* SPDX-License-Identifier: ISC */
/*
 * The route table: which agent tunnels claimed which hostnames, for
 * which entry kinds.  Routes belong to live tunnels and vanish with them.
 * A name may have several claimants (replicas); lookup takes the first
 * that is ready and not draining.
 */

#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

#define GW_ROUTE_BUCKETS	1024

struct gw_route_claim {
	struct gw_tun			*tun;
	uint8_t				 kinds;
	TAILQ_ENTRY(gw_route_claim)	 entry;
};

struct gw_route {
	char				*name;
	struct gw_route			*next;
	TAILQ_HEAD(, gw_route_claim)	 claims;
};

struct gw_route_table {
	struct gw_route	*buckets[GW_ROUTE_BUCKETS];
};

static unsigned		 gw_route_hash(const char *);
static struct gw_route	*gw_route_find(struct gw_route_table *, const char *,
			    struct gw_route ***);

struct gw_route_table *
gw_route_new(void)
{
	return calloc(1, sizeof(struct gw_route_table));
}

void
gw_route_free(struct gw_route_table *rt)
{
	struct gw_route		*r, *next;
	struct gw_route_claim	*c;
	size_t			 i;

	if (rt == NULL)
		return;
	for (i = 0; i < GW_ROUTE_BUCKETS; i++) {
		for (r = rt->buckets[i]; r != NULL; r = next) {
			next = r->next;
			while ((c = TAILQ_FIRST(&r->claims)) != NULL) {
				TAILQ_REMOVE(&r->claims, c, entry);
				free(c);
			}
			free(r->name);
			free(r);
		}
	}
	free(rt);
}

int
gw_route_add(struct gw_route_table *rt, const char *name, uint8_t kinds,
    struct gw_tun *t)
{
	struct gw_route		*r, **pp;
	struct gw_route_claim	*c;

	if ((r = gw_route_find(rt, name, &pp)) == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return -1;
		if ((r->name = strdup(name)) == NULL) {
			free(r);
			return -1;
		}
		TAILQ_INIT(&r->claims);
		pp = &rt->buckets[gw_route_hash(name)];
		r->next = *pp;
		*pp = r;
	}
	TAILQ_FOREACH(c, &r->claims, entry) {
		if (c->tun == t) {
			c->kinds = kinds;	/* a repeated claim updates */
			return 0;
		}
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		if (TAILQ_EMPTY(&r->claims)) {
			*pp = r->next;
			free(r->name);
			free(r);
		}
		return -1;
	}
	c->tun = t;
	c->kinds = kinds;
	TAILQ_INSERT_TAIL(&r->claims, c, entry);
	return 1;
}

int
gw_route_remove(struct gw_route_table *rt, const char *name, struct gw_tun *t)
{
	struct gw_route		*r, **pp;
	struct gw_route_claim	*c;
	int			 found = 0;

	if ((r = gw_route_find(rt, name, &pp)) == NULL)
		return 0;
	TAILQ_FOREACH(c, &r->claims, entry) {
		if (c->tun == t) {
			TAILQ_REMOVE(&r->claims, c, entry);
			free(c);
			found = 1;
			break;
		}
	}
	if (TAILQ_EMPTY(&r->claims)) {
		*pp = r->next;
		free(r->name);
		free(r);
	}
	return found;
}

void
gw_route_remove_tun(struct gw_route_table *rt, struct gw_tun *t)
{
	struct gw_route		*r, **pp;
	struct gw_route_claim	*c, *cn;
	size_t			 i;

	for (i = 0; i < GW_ROUTE_BUCKETS; i++) {
		pp = &rt->buckets[i];
		while ((r = *pp) != NULL) {
			for (c = TAILQ_FIRST(&r->claims); c != NULL; c = cn) {
				cn = TAILQ_NEXT(c, entry);
				if (c->tun == t) {
					TAILQ_REMOVE(&r->claims, c, entry);
					free(c);
				}
			}
			if (TAILQ_EMPTY(&r->claims)) {
				*pp = r->next;
				free(r->name);
				free(r);
			} else
				pp = &r->next;
		}
	}
}

struct gw_tun *
gw_route_lookup(struct gw_route_table *rt, const char *name, uint8_t kind)
{
	struct gw_route		*r, **pp;
	struct gw_route_claim	*c;
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
		if ((r = gw_route_find(rt, name, &pp)) == NULL)
			continue;
		TAILQ_FOREACH(c, &r->claims, entry) {
			struct tun *tun = gw_tun_tun(c->tun);

			if ((c->kinds & kind) && tun_is_ready(tun) &&
			    !tun_is_draining(tun))
				return c->tun;
		}
	}
	return NULL;
}

/* FNV-1a: names are already validated, short and lower-case. */
static unsigned
gw_route_hash(const char *s)
{
	unsigned	h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % GW_ROUTE_BUCKETS;
}

static struct gw_route *
gw_route_find(struct gw_route_table *rt, const char *name,
    struct gw_route ***ppp)
{
	struct gw_route	**pp;

	for (pp = &rt->buckets[gw_route_hash(name)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			*ppp = pp;
			return *pp;
		}
	}
	return NULL;
}
