/* SPDX-License-Identifier: ISC */
/*
 * What each source address holds open: visitor connections, and tunnel
 * handshakes not yet authenticated.  The limits per source keep one
 * address from taking every slot (visitors from max_connections, agents'
 * handshakes from the pending cap).  A source is an IPv4 address, or an
 * IPv6 /64: one host commonly holds a whole /64, so counting its single
 * addresses would count nothing.
 *
 * A hash table keyed with a random SipHash key (an attacker picks its
 * addresses, not our buckets); an entry lives while its source holds
 * something, so the table is bounded by the descriptors.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw.h"

#define GW_SRC_KEY_LEN		9	/* family tag, then 4 or 8 bytes */
#define GW_SRC_BUCKETS		64	/* to start with; doubles */

struct gw_src {
	uint8_t			 key[GW_SRC_KEY_LEN];
	size_t			 keylen;
	unsigned		 n[GW_SRC_NKINDS];
	LIST_ENTRY(gw_src)	 link;
};

LIST_HEAD(gw_src_bucket, gw_src);

struct gw_srcs {
	struct gw_src_bucket	*buckets;
	size_t			 nbuckets;	/* a power of two */
	size_t			 n;
	uint8_t			 hkey[crypto_shorthash_KEYBYTES];
};

static size_t	gw_src_key(const struct sockaddr *, uint8_t *);
static size_t	gw_src_hash(const struct gw_srcs *, const uint8_t *, size_t);
static struct gw_src *gw_src_find(struct gw_srcs *, const struct sockaddr *,
		    int);
static void	gw_src_grow(struct gw_srcs *);

unsigned
gw_src_count(struct gw *gw, const struct sockaddr *sa, enum gw_src_kind k)
{
	struct gw_src	*s;

	if (gw->srcs == NULL || (s = gw_src_find(gw->srcs, sa, 0)) == NULL)
		return 0;
	return s->n[k];
}

int
gw_src_hold(struct gw *gw, const struct sockaddr *sa, enum gw_src_kind k,
    unsigned limit)
{
	struct gw_srcs	*t = gw->srcs;
	struct gw_src	*s;

	if (limit == 0)
		return -1;
	if (t == NULL) {
		if ((t = calloc(1, sizeof(*t))) == NULL)
			return -1;
		t->nbuckets = GW_SRC_BUCKETS;
		if ((t->buckets = calloc(t->nbuckets,
		    sizeof(*t->buckets))) == NULL) {
			free(t);
			return -1;
		}
		randombytes_buf(t->hkey, sizeof(t->hkey));
		gw->srcs = t;
	}
	if ((s = gw_src_find(t, sa, 1)) == NULL)
		return -1;
	if (s->n[k] >= limit)
		return -1;	/* not a new one: limit > 0 */
	s->n[k]++;
	return 0;
}

void
gw_src_release(struct gw *gw, const struct sockaddr *sa, enum gw_src_kind k)
{
	struct gw_src	*s;
	int		 i;

	if (gw->srcs == NULL || (s = gw_src_find(gw->srcs, sa, 0)) == NULL)
		return;
	if (s->n[k] > 0)
		s->n[k]--;
	for (i = 0; i < GW_SRC_NKINDS; i++)
		if (s->n[i] != 0)
			return;
	LIST_REMOVE(s, link);
	gw->srcs->n--;
	free(s);
}

void
gw_src_free_all(struct gw *gw)
{
	struct gw_srcs	*t = gw->srcs;
	struct gw_src	*s;
	size_t		 i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nbuckets; i++)
		while ((s = LIST_FIRST(&t->buckets[i])) != NULL) {
			LIST_REMOVE(s, link);
			free(s);
		}
	free(t->buckets);
	free(t);
	gw->srcs = NULL;
}

/* The source's key: its IPv4 address (mapped ones too), or its /64. */
static size_t
gw_src_key(const struct sockaddr *sa, uint8_t *key)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(key, 0, GW_SRC_KEY_LEN);
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)sa;
		key[0] = 4;
		memcpy(key + 1, &sin->sin_addr, 4);
		return 5;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, sin6->sin6_addr.s6_addr + 12, 4);
			return 5;
		}
		key[0] = 6;
		memcpy(key + 1, sin6->sin6_addr.s6_addr, 8);
		return 9;
	default:
		return 1;	/* all others are one source */
	}
}

static size_t
gw_src_hash(const struct gw_srcs *t, const uint8_t *key, size_t len)
{
	uint8_t		out[crypto_shorthash_BYTES];
	uint64_t	h;

	crypto_shorthash(out, key, len, t->hkey);
	memcpy(&h, out, sizeof(h));
	return (size_t)h & (t->nbuckets - 1);
}

/* create: add an empty entry when there is none (NULL: out of memory). */
static struct gw_src *
gw_src_find(struct gw_srcs *t, const struct sockaddr *sa, int create)
{
	struct gw_src_bucket	*b;
	struct gw_src		*s;
	uint8_t			 key[GW_SRC_KEY_LEN];
	size_t			 len;

	len = gw_src_key(sa, key);
	b = &t->buckets[gw_src_hash(t, key, len)];
	LIST_FOREACH(s, b, link)
		if (s->keylen == len && memcmp(s->key, key, len) == 0)
			return s;
	if (!create || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	memcpy(s->key, key, sizeof(s->key));
	s->keylen = len;
	LIST_INSERT_HEAD(b, s, link);
	if (++t->n > t->nbuckets * 2)
		gw_src_grow(t);
	return s;
}

/* Twice the buckets; on failure the chains just stay longer. */
static void
gw_src_grow(struct gw_srcs *t)
{
	struct gw_src_bucket	*old = t->buckets, *nb;
	struct gw_src		*s;
	size_t			 i, oldn = t->nbuckets;

	if ((nb = calloc(oldn * 2, sizeof(*nb))) == NULL)
		return;
	t->buckets = nb;
	t->nbuckets = oldn * 2;
	for (i = 0; i < oldn; i++)
		while ((s = LIST_FIRST(&old[i])) != NULL) {
			LIST_REMOVE(s, link);
			LIST_INSERT_HEAD(&t->buckets[gw_src_hash(t, s->key,
			    s->keylen)], s, link);
		}
	free(old);
}
