/* SPDX-License-Identifier: ISC */
/*
 * Hostname checks shared by the SNI and Host readers, the route table and
 * the config loader, so that every path agrees on what a name is.
 */

#include <string.h>

#include "name.h"

int
name_normalize(const char *in, size_t inlen, char *out, int allow_wildcard)
{
	size_t	i, o = 0, label = 0;

	if (inlen > 0 && in[inlen - 1] == '.')
		inlen--;
	if (inlen == 0 || inlen > NAME_MAX_LEN)
		return -1;
	i = 0;
	if (allow_wildcard && inlen > 2 && in[0] == '*' && in[1] == '.') {
		out[o++] = '*';
		out[o++] = '.';
		i = 2;
	}
	for (; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 'A' && c <= 'Z')
			c = c - 'A' + 'a';
		if (c == '.') {
			if (label == 0 || out[o - 1] == '-')
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_') {
			label++;
		} else if (c == '-') {
			if (label == 0)
				return -1;
			label++;
		} else
			return -1;
		if (label > 63)
			return -1;
		out[o++] = (char)c;
	}
	if (label == 0 || out[o - 1] == '-')
		return -1;
	out[o] = '\0';
	return 0;
}

int
name_pattern_covers(const char *pattern, const char *claim)
{
	size_t	pl, cl;

	if (strcmp(pattern, claim) == 0)
		return 1;
	if (pattern[0] != '*' || pattern[1] != '.')
		return 0;
	/* "*.a.example" covers "x.a.example", "*.x.a.example", ... */
	pattern++;		/* ".a.example" */
	pl = strlen(pattern);
	cl = strlen(claim);
	if (cl <= pl)
		return 0;
	return strcmp(claim + cl - pl, pattern) == 0;
}

unsigned
name_hash(const char *s)
{
	unsigned	h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

int
name_ends_in_number(const char *name)
{
	const char	*label, *s;

	label = strrchr(name, '.');
	label = label != NULL ? label + 1 : name;
	if (label[0] == '0' && label[1] == 'x') {
		for (s = label + 2; *s != '\0'; s++)
			if (!((*s >= '0' && *s <= '9') ||
			    (*s >= 'a' && *s <= 'f')))
				return 0;
		return 1;
	}
	for (s = label; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}
