/* ntab.h: a hash table of names that grows as it fills. */
#ifndef PORCH_NTAB_H
#define PORCH_NTAB_H

#include <stddef.h>

/*
 * Intrusive: an entry is embedded in the caller's struct, which owns the
 * name and compares it; the table only chains entries by their hash
 * (name_hash()).  It never allocates an entry nor frees one.
 */
struct ntab_entry {
	struct ntab_entry	*next;		/* hash chain */
	unsigned		 hash;
};

struct ntab {
	struct ntab_entry	**buckets;
	size_t			 nbuckets;	/* a power of two, or 0 */
	size_t			 count;
};

/* The struct around an entry: NTAB_ITEM(e, struct gw_route, te). */
#define NTAB_ITEM(e, type, field) \
	((type *)(void *)((char *)(e) - offsetof(type, field)))

/* All zero (calloc) is an empty table too. */
void	ntab_init(struct ntab *);
/* Frees the buckets only: the entries are the caller's. */
void	ntab_clear(struct ntab *);
/*
 * Insert e with e->hash set.  The table doubles once it holds an entry
 * per bucket; if that fails its chains get longer, still correct.
 * Returns 0, or -1 when there is no table at all (no memory).
 */
int	ntab_insert(struct ntab *, struct ntab_entry *);
void	ntab_remove(struct ntab *, struct ntab_entry *);
/* The chain that holds hash h: walk it by next, comparing names. */
struct ntab_entry *ntab_chain(const struct ntab *, unsigned h);
/* Every entry, in no order; removing the current one is allowed when the
 * next was taken first.  NULL at the end. */
struct ntab_entry *ntab_first(const struct ntab *);
struct ntab_entry *ntab_next(const struct ntab *, const struct ntab_entry *);

#endif
