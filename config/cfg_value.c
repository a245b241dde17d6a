/* SPDX-License-Identifier: ISC */
/*
 * Typed values from the config tree: type checks, strings, numbers,
 * durations ("500ms", "5s", "2m", "1h"), sizes (bytes, KiB, MiB), names,
 * public keys, host:port addresses and numeric listen addresses.  Each
 * getter either fills its result or writes an error that quotes the value
 * and says what to write instead.  Nothing here logs.
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
#include "xmalloc.h"

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
	*out = xstrdup(s);
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
	*out = xstrdup(buf);
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
	*out = xstrdup(buf);
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
	if (hostp != NULL)
		*hostp = xstrdup(host);
	return 0;
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
	l->text = xstrdup(s);
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
	l = *out = xcalloc(1, sizeof(*l));
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
cfg_identity(struct cfg_doc *d, const struct cfg_node *map, const char *base,
    const char *hint, char **out)
{
	struct cfg_node	*n;
	const char	*s = NULL;

	if (cfg_map_require(d, map, "top level", "identity", hint, &n) == -1 ||
	    cfg_string(d, n, "identity", &s) == -1)
		return -1;
	*out = cfg_path_resolve(base, s);
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
