/* SPDX-License-Identifier: ISC */
/*
 * Typed values from the config tree: type checks, strings, numbers,
 * durations ("500ms", "5s", "2m", "1h"), sizes (bytes, KiB, MiB), names,
 * public keys, host:port addresses and numeric listen addresses.  Each
 * getter either fills its result or writes an error that quotes the value
 * and says what to write instead.  cfg_walk() applies a section's table
 * of keys with them.  Nothing here logs.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "cfg_tree.h"
#include "key.h"
#include "name.h"

#define CFG_TEXT_MAX	1024

static int	 walk_unknown(struct cfg_doc *, const struct cfg_node *,
		    const char *, const struct cfg_key *);
static int	 walk_key(struct cfg_doc *, const struct cfg_node *,
		    struct cfg_node *, const char *, const struct cfg_key *,
		    void *);
static int	 walk_listen(struct cfg_doc *, struct cfg_node *,
		    const char *, struct cfg_listen **, size_t *);
static int	 bool_value(struct cfg_doc *, const struct cfg_node *,
		    const char *, int *);
static int	 path_value(struct cfg_doc *, const struct cfg_node *,
		    const char *, char **);
static const char *node_kind(const struct cfg_node *);
static int	 type_error(struct cfg_doc *, const struct cfg_node *,
		    const char *, const char *, const char *);
static int	 parse_number(const char *, unsigned long long *,
		    const char **);
static int	 all_digits(const char *);

int
cfg_expect_map(struct cfg_doc *d, const struct cfg_node *n, const char *what)
{
	if (n->type == CFG_NODE_MAP)
		return 0;
	return type_error(d, n, what, "a mapping",
	    "indent 'key: value' lines below it");
}

int
cfg_expect_seq(struct cfg_doc *d, const struct cfg_node *n, const char *what)
{
	if (n->type == CFG_NODE_SEQ)
		return 0;
	return type_error(d, n, what, "a sequence",
	    "write '- item' lines below it, or [a, b]");
}

int
cfg_expect_list(struct cfg_doc *d, const struct cfg_node *n, const char *what)
{
	if (n->type == CFG_NODE_SEQ ||
	    (n->type == CFG_NODE_SCALAR && !n->isnull))
		return 0;
	return type_error(d, n, what, "a string or a sequence of strings",
	    "write one value, or a list [a, b]");
}

size_t
cfg_list_len(const struct cfg_node *n)
{
	return n->type == CFG_NODE_SEQ ? n->nkids : 1;
}

struct cfg_node *
cfg_list_item(struct cfg_node *n, size_t i)
{
	return n->type == CFG_NODE_SEQ ? n->kids[i] : n;
}

int
cfg_string(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    const char **out)
{
	if (n->type != CFG_NODE_SCALAR || n->isnull)
		return type_error(d, n, what, "a string",
		    "write a single value after the colon");
	if (n->len == 0)
		return cfg_error(d, n, "%s: empty string (write a value)",
		    what);
	*out = n->str;
	return 0;
}

int
cfg_uint(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    unsigned min, unsigned max, unsigned *out)
{
	unsigned long long	 v;
	const char		*s, *end;

	if (n->type != CFG_NODE_SCALAR || n->isnull)
		return type_error(d, n, what, "a number",
		    "write a whole number");
	s = n->str;
	if (parse_number(s, &v, &end) == -1 || *end != '\0')
		return cfg_bad(d, n, what, "not a whole number",
		    "write a number between %u and %u", min, max);
	if (v < min || v > max)
		return cfg_bad(d, n, what, "out of range",
		    "must be between %u and %u", min, max);
	*out = (unsigned)v;
	return 0;
}

int
cfg_duration(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    unsigned min, unsigned max, unsigned *out)
{
	unsigned long long	 v, mult;
	const char		*end;
	char			 a[32], b[32];

	if (n->type != CFG_NODE_SCALAR || n->isnull)
		return type_error(d, n, what, "a duration",
		    "write a number with a unit: 500ms, 5s, 2m or 1h");
	if (parse_number(n->str, &v, &end) == -1)
		return cfg_bad(d, n, what, "bad duration",
		    "write a number with a unit: 500ms, 5s, 2m or 1h");
	if (*end == '\0')
		return cfg_bad(d, n, what, "bad duration",
		    "add a unit: '%.20ss' for seconds or '%.20sms' for "
		    "milliseconds", n->str, n->str);
	while (*end == ' ')
		end++;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 60 * 60 * 1000;
	else
		return cfg_bad(d, n, what, "bad duration",
		    "write a whole number with a unit: 500ms, 5s, 2m or 1h");
	if (v > CFG_MS_MAX || v * mult < min || v * mult > max)
		return cfg_bad(d, n, what, "out of range",
		    "must be between %s and %s", cfg_fmt_ms(min, a, sizeof(a)),
		    cfg_fmt_ms(max, b, sizeof(b)));
	*out = (unsigned)(v * mult);
	return 0;
}

int
cfg_size(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    size_t min, size_t max, size_t *out)
{
	unsigned long long	 v, mult;
	const char		*end;
	char			 a[32], b[32];

	if (n->type != CFG_NODE_SCALAR || n->isnull)
		return type_error(d, n, what, "a size",
		    "write bytes, or a number with KiB or MiB");
	if (parse_number(n->str, &v, &end) == -1)
		return cfg_bad(d, n, what, "bad size",
		    "write bytes, or a number with KiB or MiB: 16384, 256KiB");
	while (*end == ' ')
		end++;
	if (*end == '\0')
		mult = 1;
	else if (strcmp(end, "KiB") == 0)
		mult = CFG_KIB;
	else if (strcmp(end, "MiB") == 0)
		mult = CFG_MIB;
	else
		return cfg_bad(d, n, what, "bad size",
		    "write bytes, or a whole number with KiB or MiB: 16384, "
		    "256KiB");
	if (v > (1ULL << 40) || v * mult < min || v * mult > max)
		return cfg_bad(d, n, what, "out of range",
		    "must be between %s and %s",
		    cfg_fmt_size(min, a, sizeof(a)),
		    cfg_fmt_size(max, b, sizeof(b)));
	*out = (size_t)(v * mult);
	return 0;
}

int
cfg_label(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	const char	*s = NULL;
	size_t		 i;

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-')
			continue;
		break;
	}
	if (s[i] != '\0' || i > 63)
		return cfg_bad(d, n, what, "bad name",
		    "use 1-63 letters, digits, '.', '_' or '-'");
	if ((*out = cfg_strdup(d, s)) == NULL)
		return -1;
	return 0;
}

int
cfg_pubkey(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    uint8_t *out)
{
	const char	*s = NULL;

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (key_pub_parse(s, out) == -1)
		return cfg_bad(d, n, what, "bad public key",
		    "expected 'ed25519:' and 44 base64 characters, as printed "
		    "by 'porchctl pubkey'");
	return 0;
}

int
cfg_hostname(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	char		 buf[NAME_MAX_LEN + 1];
	const char	*s = NULL;

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (name_normalize(s, n->len, buf, 1) == -1)
		return cfg_bad(d, n, what, "bad hostname",
		    "dot-separated labels of letters, digits and '-'; "
		    "'*.' only as the first label");
	if ((*out = cfg_strdup(d, buf)) == NULL)
		return -1;
	return 0;
}

/*
 * A name sent or matched as TLS SNI: a hostname without wildcard, and
 * not an IP address, which SNI cannot carry.
 */
int
cfg_server_name(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	char		 buf[NAME_MAX_LEN + 1];
	const char	*s = NULL, *last;

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (name_normalize(s, n->len, buf, 0) == -1)
		return cfg_bad(d, n, what, "bad hostname",
		    "dot-separated labels of letters, digits and '-', "
		    "no wildcard, e.g. 'gw1.example.net'");
	last = strrchr(buf, '.');
	if (all_digits(last != NULL ? last + 1 : buf))
		return cfg_bad(d, n, what, "not a hostname",
		    "an IP address cannot be sent as TLS SNI; write the "
		    "gateway's DNS name, e.g. 'gw1.example.net'");
	if ((*out = cfg_strdup(d, buf)) == NULL)
		return -1;
	return 0;
}

int
cfg_hostport(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **hostp, unsigned *port)
{
	char		 host[256], e[128], norm[NAME_MAX_LEN + 1];
	const char	*s = NULL, *last;
	struct in6_addr	 a6;
	struct in_addr	 a4;

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (addr_split(s, host, sizeof(host), port, e, sizeof(e)) == -1)
		return cfg_bad(d, n, what, "bad address",
		    "%s; write host:port, e.g. 'gw.example.net:7443', "
		    "'127.0.0.1:9443' or '[::1]:9443'", e);
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return cfg_bad(d, n, what, "bad address",
			    "not an IPv6 address inside [ ]");
	} else if (inet_pton(AF_INET, host, &a4) != 1) {
		/* A name whose last label is all digits is a broken IP. */
		last = strrchr(host, '.');
		last = last != NULL ? last + 1 : host;
		if (name_normalize(host, strlen(host), norm, 0) == -1 ||
		    all_digits(last))
			return cfg_bad(d, n, what, "bad address",
			    "the host is neither an IP address nor a hostname");
	}
	if (hostp != NULL && (*hostp = cfg_strdup(d, host)) == NULL)
		return -1;
	return 0;
}

int
cfg_address(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **address, char **host, unsigned *port)
{
	if (cfg_hostport(d, n, what, host, port) == -1 ||
	    (*address = cfg_strdup(d, n->str)) == NULL)
		return -1;
	return 0;
}

int
cfg_backend(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	unsigned	port;

	if (cfg_hostport(d, n, what, NULL, &port) == -1 ||
	    (*out = cfg_strdup(d, n->str)) == NULL)
		return -1;
	return 0;
}

/* One line of printable text, as a command or an email address. */
int
cfg_text(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	const char	*v;
	size_t		 i;

	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (n->len == 0 || n->len > CFG_TEXT_MAX)
		return cfg_bad(d, n, what, "empty or too long", "1 to 1024 "
		    "bytes");
	for (i = 0; i < n->len; i++)
		if ((unsigned char)v[i] < ' ' || v[i] == 0x7f)
			return cfg_bad(d, n, what, "control character",
			    "one line of printable text");
	if ((*out = cfg_strdup(d, v)) == NULL)
		return -1;
	return 0;
}

int
cfg_enum(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    const struct cfg_enum *en, int *out)
{
	const char	*v;
	size_t		 i;

	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	for (i = 0; i < en->n; i++) {
		if (en->names[i] != NULL && strcmp(v, en->names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return cfg_bad(d, n, what, en->problem, "%s", en->hint);
}

int
cfg_listen_addr(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    const char *example, struct cfg_listen *l)
{
	const char	*s = NULL;
	char		 e[128];

	if (cfg_string(d, n, what, &s) == -1)
		return -1;
	if (addr_parse_numeric(s, &l->ss, &l->sslen, e, sizeof(e)) == -1)
		return cfg_bad(d, n, what, "bad address", "%s; listen "
		    "addresses are numeric ip:port, e.g. %s", e, example);
	if ((l->text = cfg_strdup(d, s)) == NULL)
		return -1;
	return 0;
}

void
cfg_listen_free(struct cfg_listen *l, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(l[i].text);
	free(l);
}

int
cfg_admin(struct cfg_doc *d, const struct cfg_node *root, const char *example,
    struct cfg_listen **out, int *pub)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct cfg_node			*n, *p;
	struct cfg_listen		*l;
	const char			*v;
	int				 loop;

	*pub = 0;
	if ((p = cfg_map_get(root, "admin_public")) != NULL) {
		if (cfg_string(d, p, "admin_public", &v) == -1)
			return -1;
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return cfg_bad(d, p, "admin_public", "not true or false",
			    "true serves the admin listener on an address "
			    "other than loopback");
		*pub = strcmp(v, "true") == 0;
	}
	if ((n = cfg_map_get(root, "admin")) == NULL)
		return 0;
	if ((l = *out = cfg_alloc(d, 1, sizeof(*l))) == NULL)
		return -1;
	if (cfg_listen_addr(d, n, "admin", example, l) == -1)
		return -1;
	if (l->ss.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)&l->ss;
		loop = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else {
		sin6 = (const struct sockaddr_in6 *)&l->ss;
		loop = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127);
	}
	/* Status is readable, and actions are one secret away, from
	 * wherever the address is reachable: only on purpose. */
	if (!loop && !*pub)
		return cfg_bad(d, n, "admin", "not a loopback address",
		    "anyone who can reach it reads the status; use %s, or "
		    "add 'admin_public: true' to serve it there on purpose "
		    "(then firewall it)", example);
	return 0;
}

int
cfg_keepalive(struct cfg_doc *d, const struct cfg_node *map,
    unsigned keepalive_ms, unsigned dead_peer_ms)
{
	const struct cfg_node	*dp;
	char			 b[32];

	if (dead_peer_ms > keepalive_ms)
		return 0;
	/* Only a keepalive written at or above the default gets here. */
	if ((dp = cfg_map_get(map, "dead_peer")) == NULL)
		return cfg_bad(d, cfg_map_get(map, "keepalive"),
		    "timeouts.keepalive", "not below dead_peer", "dead_peer "
		    "is %s by default; keep keepalive well below it or set "
		    "dead_peer", cfg_fmt_ms(dead_peer_ms, b, sizeof(b)));
	return cfg_bad(d, dp, "timeouts.dead_peer", "must be longer than "
	    "keepalive", "keepalive is %s; a dead peer is usually declared "
	    "after three missed keepalives",
	    cfg_fmt_ms(keepalive_ms, b, sizeof(b)));
}

void *
cfg_walk_new(struct cfg_doc *d, const struct cfg_node *root, const char *name,
    size_t size, const struct cfg_key *keys, int *rc)
{
	const struct cfg_node	*map;
	void			*obj;

	*rc = 0;
	if ((map = cfg_map_get(root, name)) == NULL)
		return NULL;
	if ((obj = cfg_alloc(d, 1, size)) == NULL) {
		*rc = -1;
		return NULL;
	}
	/* Kept on error too: the caller's free takes it with the rest. */
	*rc = cfg_walk(d, map, name, keys, obj);
	return obj;
}

int
cfg_walk(struct cfg_doc *d, const struct cfg_node *map, const char *what,
    const struct cfg_key *keys, void *obj)
{
	const struct cfg_key	*k;
	struct cfg_node		*n;
	const char		*section = what != NULL ? what : "top level";
	char			 f[128];

	if (map != NULL && (cfg_expect_map(d, map, section) == -1 ||
	    walk_unknown(d, map, section, keys) == -1))
		return -1;
	for (k = keys; k->type != CFG_T_END; k++) {
		if (k->type == CFG_T_CHECK) {
			if (map != NULL && k->fn(d, map, NULL, section,
			    obj) == -1)
				return -1;
			continue;
		}
		n = map != NULL ? cfg_map_get(map, k->name) : NULL;
		if (n == NULL && map != NULL && k->need != NULL)
			return cfg_error(d, map, "%s: missing required key: "
			    "'%s' (%s)", section, k->name, k->need);
		if (what != NULL)
			snprintf(f, sizeof(f), "%s.%s", what, k->name);
		else
			snprintf(f, sizeof(f), "%s", k->name);
		if (walk_key(d, map, n, f, k, obj) == -1)
			return -1;
	}
	return 0;
}

int
cfg_walk_seq(struct cfg_doc *d, const struct cfg_node *seq, const char *what,
    const struct cfg_key *keys, void *items, size_t sz, size_t *n)
{
	char	w[64];
	size_t	i;

	for (i = 0; i < seq->nkids; i++) {
		(*n)++;
		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if (cfg_walk(d, seq->kids[i], w, keys,
		    (char *)items + i * sz) == -1)
			return -1;
	}
	return 0;
}

const char *
cfg_fmt_ms(unsigned ms, char *buf, size_t len)
{
	if (ms != 0 && ms % (60 * 60 * 1000) == 0)
		snprintf(buf, len, "%uh", ms / (60 * 60 * 1000));
	else if (ms != 0 && ms % (60 * 1000) == 0)
		snprintf(buf, len, "%um", ms / (60 * 1000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else
		snprintf(buf, len, "%ums", ms);
	return buf;
}

const char *
cfg_fmt_size(size_t n, char *buf, size_t len)
{
	if (n != 0 && n % CFG_MIB == 0)
		snprintf(buf, len, "%zuMiB", n / CFG_MIB);
	else if (n != 0 && n % CFG_KIB == 0)
		snprintf(buf, len, "%zuKiB", n / CFG_KIB);
	else
		snprintf(buf, len, "%zu", n);
	return buf;
}

static int
walk_unknown(struct cfg_doc *d, const struct cfg_node *map, const char *what,
    const struct cfg_key *keys)
{
	const struct cfg_key	*k;
	char			 list[512];
	size_t			 i, o;

	for (i = 0; i + 1 < map->nkids; i += 2) {
		for (k = keys; k->type != CFG_T_END; k++)
			if (k->name != NULL &&
			    strcmp(map->kids[i]->str, k->name) == 0)
				break;
		if (k->type != CFG_T_END)
			continue;
		list[0] = '\0';
		for (k = keys, o = 0; k->type != CFG_T_END &&
		    o < sizeof(list); k++)
			if (k->name != NULL)
				o += snprintf(list + o, sizeof(list) - o,
				    "%s%s", o > 0 ? ", " : "", k->name);
		return cfg_bad(d, map->kids[i], what, "unknown key",
		    "allowed: %s", list);
	}
	return 0;
}

/* One key: its default, then its value n if written (map holds it). */
static int
walk_key(struct cfg_doc *d, const struct cfg_node *map, struct cfg_node *n,
    const char *what, const struct cfg_key *k, void *obj)
{
	void	*p = (char *)obj + k->off;

	switch (k->type) {
	case CFG_T_DURATION:
		*(unsigned *)p = (unsigned)k->def;
		return n == NULL ? 0 : cfg_duration(d, n, what,
		    (unsigned)k->min, (unsigned)k->max, p);
	case CFG_T_UINT:
		*(unsigned *)p = (unsigned)k->def;
		return n == NULL ? 0 : cfg_uint(d, n, what, (unsigned)k->min,
		    (unsigned)k->max, p);
	case CFG_T_SIZE:
		*(size_t *)p = (size_t)k->def;
		return n == NULL ? 0 : cfg_size(d, n, what, (size_t)k->min,
		    (size_t)k->max, p);
	case CFG_T_BOOL:
		*(int *)p = (int)k->def;
		return n == NULL ? 0 : bool_value(d, n, what, p);
	case CFG_T_SECTION:
		if (cfg_walk(d, n, what, k->sub, obj) == -1)
			return -1;
		return n == NULL || k->fn == NULL ? 0 :
		    k->fn(d, map, n, what, obj);
	case CFG_T_FUNC:
		return k->fn(d, map, n, what, obj);
	default:
		break;
	}
	if (n == NULL)
		return 0;
	switch (k->type) {
	case CFG_T_TEXT:
		return cfg_text(d, n, what, p);
	case CFG_T_PATH:
		return path_value(d, n, what, p);
	case CFG_T_LABEL:
		return cfg_label(d, n, what, p);
	case CFG_T_HOSTNAME:
		return cfg_hostname(d, n, what, p);
	case CFG_T_SERVER_NAME:
		return cfg_server_name(d, n, what, p);
	case CFG_T_PUBKEY:
		return cfg_pubkey(d, n, what, p);
	case CFG_T_BACKEND:
		return cfg_backend(d, n, what, p);
	case CFG_T_ENUM:
		return cfg_enum(d, n, what, k->en, p);
	case CFG_T_LISTEN:
		return walk_listen(d, n, what, p,
		    (size_t *)(void *)((char *)obj + k->cnt));
	default:
		return 0;
	}
}

/* A listen address or a list of them. */
static int
walk_listen(struct cfg_doc *d, struct cfg_node *n, const char *what,
    struct cfg_listen **out, size_t *nout)
{
	size_t	i, cnt;

	if (cfg_expect_list(d, n, what) == -1)
		return -1;
	if ((cnt = cfg_list_len(n)) == 0)
		return 0;
	if ((*out = cfg_alloc(d, cnt, sizeof(**out))) == NULL)
		return -1;
	for (i = 0; i < cnt; i++) {
		if (cfg_listen_addr(d, cfg_list_item(n, i), what,
		    "'0.0.0.0:443' or '[::]:443'", &(*out)[i]) == -1)
			return -1;
		(*nout)++;
	}
	return 0;
}

static int
bool_value(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    int *out)
{
	const char	*v;

	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0)
		*out = 0;
	else
		return cfg_bad(d, n, what, "not a boolean", "write true or "
		    "false");
	return 0;
}

/* A file name, resolved against the directory of d->base if relative. */
static int
path_value(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    char **out)
{
	const char	*v, *slash;
	size_t		 dl;

	if (cfg_string(d, n, what, &v) == -1)
		return -1;
	if (d->base == NULL || v[0] == '/' ||
	    (slash = strrchr(d->base, '/')) == NULL) {
		if ((*out = cfg_strdup(d, v)) == NULL)
			return -1;
		return 0;
	}
	dl = slash - d->base + 1;
	if ((*out = cfg_alloc(d, dl + n->len + 1, 1)) == NULL)
		return -1;
	memcpy(*out, d->base, dl);
	memcpy(*out + dl, v, n->len + 1);
	return 0;
}

static const char *
node_kind(const struct cfg_node *n)
{
	switch (n->type) {
	case CFG_NODE_MAP:
		return "a mapping";
	case CFG_NODE_SEQ:
		return "a sequence";
	default:
		return n->isnull ? "nothing" : "a string";
	}
}

static int
type_error(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    const char *expected, const char *hint)
{
	char	 problem[96];

	if (n->type == CFG_NODE_SCALAR && !n->isnull) {
		snprintf(problem, sizeof(problem), "expected %s, got a string",
		    expected);
		return cfg_bad(d, n, what, problem, "%s", hint);
	}
	return cfg_error(d, n, "%s: expected %s, got %s (%s)", what, expected,
	    node_kind(n), hint);
}

/* Leading decimal digits, saturating at 10^13; *end after them. */
static int
parse_number(const char *s, unsigned long long *v, const char **end)
{
	size_t	i;

	*v = 0;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
		if (*v < 1000000000000ULL)
			*v = *v * 10 + (s[i] - '0');
	*end = s + i;
	return i == 0 ? -1 : 0;
}

/* A label of digits only is the tail of an IPv4 address, never a TLD. */
static int
all_digits(const char *s)
{
	return strspn(s, "0123456789") == strlen(s);
}
