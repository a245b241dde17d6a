/* SPDX-License-Identifier: ISC */
/*
 * A chained hash table of names, grown (doubled, rehashed) once it holds
 * as many entries as buckets, so a lookup stays O(1) from one name to
 * a hundred thousand.  It never shrinks: a table that was large once
 * costs a pointer a bucket, and growth never happens under a removal,
 * so a walk may remove the entry it stands on.  Used by the gateway's
 * routes and peer names and the agent's claims per gateway.
 */

#include <stdlib.h>

#include "ntab.h"

#define NTAB_MIN_BUCKETS	64

static void	ntab_grow(struct ntab *);

void
ntab_init(struct ntab *t)
{
	t->buckets = NULL;
	t->nbuckets = 0;
	t->count = 0;
}

void
ntab_clear(struct ntab *t)
{
	free(t->buckets);
	ntab_init(t);
}

int
ntab_insert(struct ntab *t, struct ntab_entry *e)
{
	size_t	b;

	if (t->count >= t->nbuckets)
		ntab_grow(t);
	if (t->nbuckets == 0)
		return -1;
	b = e->hash & (t->nbuckets - 1);
	e->next = t->buckets[b];
	t->buckets[b] = e;
	t->count++;
	return 0;
}

void
ntab_remove(struct ntab *t, struct ntab_entry *e)
{
	struct ntab_entry	**pp;

	if (t->nbuckets == 0)
		return;
	for (pp = &t->buckets[e->hash & (t->nbuckets - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			t->count--;
			return;
		}
	}
}

struct ntab_entry *
ntab_chain(const struct ntab *t, unsigned h)
{
	if (t->nbuckets == 0)
		return NULL;
	return t->buckets[h & (t->nbuckets - 1)];
}

struct ntab_entry *
ntab_first(const struct ntab *t)
{
	size_t	b;

	for (b = 0; b < t->nbuckets; b++)
		if (t->buckets[b] != NULL)
			return t->buckets[b];
	return NULL;
}

struct ntab_entry *
ntab_next(const struct ntab *t, const struct ntab_entry *e)
{
	size_t	b;

	if (e->next != NULL)
		return e->next;
	for (b = (e->hash & (t->nbuckets - 1)) + 1; b < t->nbuckets; b++)
		if (t->buckets[b] != NULL)
			return t->buckets[b];
	return NULL;
}

/* Double the buckets and move every entry; on no memory, keep them. */
static void
ntab_grow(struct ntab *t)
{
	struct ntab_entry	**nb, *e, *next;
	size_t			 size, i, b;

	size = t->nbuckets == 0 ? NTAB_MIN_BUCKETS : 2 * t->nbuckets;
	if ((nb = calloc(size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < t->nbuckets; i++) {
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			b = e->hash & (size - 1);
			e->next = nb[b];
			nb[b] = e;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = size;
}
