/* name.h: DNS hostnames as porch routes them. */
#ifndef PORCH_NAME_H
#define PORCH_NAME_H

#include <stddef.h>

#define NAME_MAX_LEN	253

/*
 * Normalize an untrusted hostname: lower-case, drop one trailing dot,
 * check letters/digits/hyphens (and '_') in labels of 1-63 bytes, at most
 * 253 bytes.  If allow_wildcard, a leading "*." label is accepted.  out
 * must hold NAME_MAX_LEN + 1 bytes.  Returns 0 or -1.
 */
int	name_normalize(const char *in, size_t inlen, char *out, int allow_wildcard);

/*
 * Does an authorization pattern cover a claimed name?  "a.example"
 * covers only itself; "*.a.example" covers every name below a.example at
 * any depth, wildcard claims included.  Both normalized.
 */
int	name_pattern_covers(const char *pattern, const char *claim);

/*
 * 1 if the last label of a normalized name is a decimal or 0x number:
 * a browser takes such a name for an IPv4 address (WHATWG URL "ends in
 * a number"), so "10.1", "1.2.3.4" and "a.0x7f" are literals, not names.
 * No top-level domain is numeric.
 */
int	name_ends_in_number(const char *);

/* FNV-1a of a (validated, short) name, for hash tables. */
unsigned	name_hash(const char *);

#endif
