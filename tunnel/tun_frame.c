/* SPDX-License-Identifier: ISC */
/*
 * The tunnel's frame codec.  Pure functions over byte arrays: they never
 * allocate, log or touch sockets, so both daemons, the unit tests and the
 * fuzzer drive exactly the same code.  Every length is checked against
 * the bytes present before it is used.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "tun_frame.h"

static uint32_t	get32(const uint8_t *);
static void	put32(uint8_t *, uint32_t);
static int	get_string(const uint8_t **, const uint8_t *, int, char *,
		    size_t);
static size_t	put_addr(uint8_t *, const struct tun_addr *);
static int	get_addr(const uint8_t *, struct tun_addr *);

int
tun_frame_decode(const uint8_t *buf, size_t len, struct tun_frame *f)
{
	uint32_t	plen;

	if (len < TUN_HDR_LEN)
		return 0;
	plen = ((uint32_t)buf[0] << 16) | ((uint32_t)buf[1] << 8) | buf[2];
	if (plen > TUN_MAX_PAYLOAD)
		return -1;
	if (len < TUN_HDR_LEN + plen)
		return 0;
	f->len = plen;
	f->type = buf[3];
	f->flags = buf[4];
	f->stream = get32(buf + 5) & 0x7fffffff;
	f->payload = buf + TUN_HDR_LEN;
	return (int)(TUN_HDR_LEN + plen);
}

void
tun_frame_header(uint8_t *hdr, uint8_t type, uint8_t flags, uint32_t stream,
    uint32_t len)
{
	hdr[0] = (len >> 16) & 0xff;
	hdr[1] = (len >> 8) & 0xff;
	hdr[2] = len & 0xff;
	hdr[3] = type;
	hdr[4] = flags;
	put32(hdr + 5, stream & 0x7fffffff);
}

size_t
tun_hello_encode(const struct tun_hello *h, uint8_t *out)
{
	size_t	n = 0, nl = strnlen(h->name, sizeof(h->name) - 1);

	out[n++] = h->version;
	out[n++] = h->role;
	put32(out + n, h->window);
	n += 4;
	memcpy(out + n, h->pub, KEY_PUB_LEN);
	n += KEY_PUB_LEN;
	memcpy(out + n, h->sig, KEY_SIG_LEN);
	n += KEY_SIG_LEN;
	out[n++] = (uint8_t)nl;
	memcpy(out + n, h->name, nl);
	n += nl;
	put32(out + n, (uint32_t)(h->instance >> 32));
	put32(out + n + 4, (uint32_t)h->instance);
	return n + 8;
}

int
tun_hello_parse(const struct tun_frame *f, struct tun_hello *h)
{
	const uint8_t	*p = f->payload, *end = f->payload + f->len;

	if (f->type != TUN_HELLO || f->stream != 0 ||
	    f->len < 2 + 4 + KEY_PUB_LEN + KEY_SIG_LEN + 1)
		return -1;
	h->version = *p++;
	h->role = *p++;
	h->window = get32(p);
	p += 4;
	memcpy(h->pub, p, KEY_PUB_LEN);
	p += KEY_PUB_LEN;
	memcpy(h->sig, p, KEY_SIG_LEN);
	p += KEY_SIG_LEN;
	if (get_string(&p, end, 1, h->name, sizeof(h->name)) == -1)
		return -1;
	/* The instance was appended later: older senders leave it out. */
	h->instance = 0;
	if (end - p >= 8)
		h->instance = ((uint64_t)get32(p) << 32) | get32(p + 4);
	/* Trailing bytes are allowed: later versions may append fields. */
	return 0;
}

size_t
tun_open_encode(const struct tun_open *o, uint8_t *out)
{
	size_t	n = 0, nl = strlen(o->name);

	out[n++] = o->kind;
	n += put_addr(out + n, &o->src);
	n += put_addr(out + n, &o->dst);
	out[n++] = (uint8_t)nl;
	memcpy(out + n, o->name, nl);
	return n + nl;
}

int
tun_open_parse(const struct tun_frame *f, struct tun_open *o)
{
	const uint8_t	*p = f->payload, *end = f->payload + f->len;
	char		 raw[256];

	if (f->type != TUN_OPEN || f->stream == 0 || f->len < 1 + 19 + 19 + 1)
		return -1;
	o->kind = *p++;
	if (o->kind != TUN_KIND_TLS && o->kind != TUN_KIND_HTTP &&
	    o->kind != TUN_KIND_ACME_HTTP && o->kind != TUN_KIND_ACME_TLS)
		return -1;
	if (get_addr(p, &o->src) == -1 || get_addr(p + 19, &o->dst) == -1)
		return -1;
	p += 38;
	if (get_string(&p, end, 0, raw, sizeof(raw)) == -1)
		return -1;
	if (name_normalize(raw, strlen(raw), o->name, 1) == -1 ||
	    strcmp(raw, o->name) != 0)
		return -1;
	return 0;
}

size_t
tun_claim_encode(const struct tun_claim *c, int result, uint8_t *out)
{
	size_t	n = 0, nl = strlen(c->name), ml;

	out[n++] = result ? c->status : c->kinds;
	if (!result) {
		out[n++] = c->priority;
		out[n++] = c->policy;
	}
	out[n++] = (uint8_t)nl;
	memcpy(out + n, c->name, nl);
	n += nl;
	if (result) {
		ml = strnlen(c->msg, TUN_MSG_MAX);
		out[n++] = (uint8_t)ml;
		memcpy(out + n, c->msg, ml);
		n += ml;
	}
	return n;
}

int
tun_claim_parse(const struct tun_frame *f, int result, struct tun_claim *c)
{
	const uint8_t	*p = f->payload, *end = f->payload + f->len;
	char		 raw[256];

	if (f->stream != 0 || f->len < 2)
		return -1;
	if (result ? f->type != TUN_CLAIM_RESULT :
	    (f->type != TUN_CLAIM && f->type != TUN_UNCLAIM))
		return -1;
	c->priority = c->policy = 0;
	if (result) {
		c->status = *p++;
		c->kinds = 0;
	} else {
		if (f->len < 4)
			return -1;
		c->kinds = *p++;
		c->priority = *p++;
		c->policy = *p++;
		c->status = 0;
		if (f->type == TUN_CLAIM &&
		    (c->kinds == 0 || (c->kinds & ~TUN_KINDS_ALL) ||
		    c->priority == 0 || c->policy > TUN_POLICY_BALANCE))
			return -1;
	}
	/*
	 * A result may carry an empty name: that is what a result for an
	 * unusable name parses to (below), so it must encode and parse again.
	 */
	if (get_string(&p, end, result, raw, sizeof(raw)) == -1)
		return -1;
	/*
	 * A claim must already be in normal form: the agent normalizes, so
	 * anything else is a bug or an attack, and refusing it keeps both
	 * sides agreeing byte for byte on what was claimed.
	 */
	if (name_normalize(raw, strlen(raw), c->name, 1) == -1 ||
	    strcmp(raw, c->name) != 0) {
		if (!result)
			return -1;
		/* A result for an invalid name echoes it; keep it printable. */
		c->name[0] = '\0';
	}
	c->msg[0] = '\0';
	if (result && get_string(&p, end, 1, c->msg, sizeof(c->msg)) == -1)
		return -1;
	return 0;
}

size_t
tun_reason_encode(const struct tun_reason *r, int goaway, uint8_t *out)
{
	size_t	n = 0, ml = strnlen(r->msg, TUN_MSG_MAX);

	if (goaway) {
		put32(out, r->last_stream);
		n += 4;
	}
	put32(out + n, r->code);
	n += 4;
	memcpy(out + n, r->msg, ml);
	return n + ml;
}

int
tun_reason_parse(const struct tun_frame *f, int goaway, struct tun_reason *r)
{
	const uint8_t	*p = f->payload;
	size_t		 need = goaway ? 8 : 4, ml;

	if (f->type != (goaway ? TUN_GOAWAY : TUN_RESET) || f->len < need ||
	    (goaway ? f->stream != 0 : f->stream == 0))
		return -1;
	r->last_stream = 0;
	if (goaway) {
		r->last_stream = get32(p);
		p += 4;
	}
	r->code = get32(p);
	p += 4;
	ml = f->len - need;
	if (ml > TUN_MSG_MAX)
		ml = TUN_MSG_MAX;
	/* Only ever logged: keep it printable rather than refuse it. */
	log_escape(r->msg, sizeof(r->msg), p, ml);
	return 0;
}

size_t
tun_announce_begin(uint8_t *out, uint32_t ttl_ms)
{
	put32(out, ttl_ms);
	return 4;
}

size_t
tun_announce_add(uint8_t *out, size_t len, const char *name, uint8_t kinds)
{
	size_t	nl = strlen(name);

	if (nl == 0 || nl > NAME_MAX_LEN || len + 2 + nl > TUN_MAX_PAYLOAD)
		return 0;
	out[len] = kinds;
	out[len + 1] = (uint8_t)nl;
	memcpy(out + len + 2, name, nl);
	return len + 2 + nl;
}

int
tun_announce_parse(const struct tun_frame *f, uint32_t *ttl_ms, size_t *off,
    struct tun_claim *c)
{
	const uint8_t	*p, *end = f->payload + f->len;
	char		 raw[256];

	if (f->type != TUN_ANNOUNCE || f->stream != 0 || f->len < 4)
		return -1;
	*ttl_ms = get32(f->payload);
	if (*off < 4)
		*off = 4;
	if (*off >= f->len)
		return 0;
	p = f->payload + *off;
	memset(c, 0, sizeof(*c));
	c->kinds = *p++;
	if (c->kinds & ~TUN_KINDS_ALL)
		return -1;
	if (get_string(&p, end, 0, raw, sizeof(raw)) == -1)
		return -1;
	if (name_normalize(raw, strlen(raw), c->name, 1) == -1 ||
	    strcmp(raw, c->name) != 0)
		return -1;
	*off = (size_t)(p - f->payload);
	return 1;
}

size_t
tun_cluster_encode(const struct tun_gw_info *gw, size_t n, uint8_t *out)
{
	size_t		len = 1, nl, na, i, j;
	struct tun_addr	a;

	if (n > TUN_CLUSTER_GW_MAX)
		n = TUN_CLUSTER_GW_MAX;
	out[0] = (uint8_t)n;
	for (i = 0; i < n; i++) {
		out[len++] = gw[i].flags;
		memcpy(out + len, gw[i].pub, KEY_PUB_LEN);
		len += KEY_PUB_LEN;
		nl = strnlen(gw[i].name, sizeof(gw[i].name) - 1);
		out[len++] = (uint8_t)nl;
		memcpy(out + len, gw[i].name, nl);
		len += nl;
		na = gw[i].naddr > TUN_CLUSTER_ADDR_MAX ?
		    TUN_CLUSTER_ADDR_MAX : gw[i].naddr;
		out[len++] = (uint8_t)na;
		for (j = 0; j < na; j++) {
			a = gw[i].addr[j];
			a.port = 0;
			len += put_addr(out + len, &a);
		}
	}
	return len;
}

int
tun_cluster_parse(const struct tun_frame *f, struct tun_gw_info *gw,
    size_t *n)
{
	const uint8_t	*p, *end = f->payload + f->len;
	size_t		 i, j;

	*n = 0;
	if (f->type != TUN_CLUSTER || f->stream != 0 || f->len < 1 ||
	    f->payload[0] > TUN_CLUSTER_GW_MAX)
		return -1;
	p = f->payload + 1;
	for (i = 0; i < f->payload[0]; i++) {
		memset(&gw[i], 0, sizeof(gw[i]));
		if ((size_t)(end - p) < 1 + KEY_PUB_LEN)
			return -1;
		gw[i].flags = *p++;
		memcpy(gw[i].pub, p, KEY_PUB_LEN);
		p += KEY_PUB_LEN;
		if (get_string(&p, end, 1, gw[i].name,
		    sizeof(gw[i].name)) == -1 || p >= end ||
		    *p > TUN_CLUSTER_ADDR_MAX)
			return -1;
		gw[i].naddr = *p++;
		if ((size_t)(end - p) < (size_t)gw[i].naddr * 19)
			return -1;
		for (j = 0; j < gw[i].naddr; j++, p += 19)
			if (get_addr(p, &gw[i].addr[j]) == -1 ||
			    gw[i].addr[j].family == 0)
				return -1;
	}
	*n = i;
	return 0;		/* bytes after the last entry: ignored */
}

int
tun_window_parse(const struct tun_frame *f, uint32_t *incr)
{
	if (f->type != TUN_WINDOW || f->len != 4 || f->stream == 0)
		return -1;
	*incr = get32(f->payload);
	if (*incr == 0 || *incr > 0x7fffffff)
		return -1;
	return 0;
}

void
tun_addr_from_sa(struct tun_addr *a, const struct sockaddr *sa)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		a->family = 4;
		memcpy(a->addr, &sin->sin_addr, 4);
		a->port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		a->family = 6;
		memcpy(a->addr, &sin6->sin6_addr, 16);
		a->port = ntohs(sin6->sin6_port);
	}
}

void
tun_addr_to_ss(const struct tun_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a->addr, 4);
		sin->sin_port = htons(a->port);
	} else if (a->family == 6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a->addr, 16);
		sin6->sin6_port = htons(a->port);
	} else
		ss->ss_family = AF_UNSPEC;
}

const char *
tun_type_name(uint8_t t)
{
	static const char *names[] = { "?", "HELLO", "CLAIM", "CLAIM_RESULT",
	    "UNCLAIM", "OPEN", "DATA", "WINDOW", "RESET", "PING", "GOAWAY",
	    "ANNOUNCE", "CLUSTER" };

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

const char *
tun_kind_name(uint8_t kind)
{
	switch (kind) {
	case TUN_KIND_TLS:
		return "tls";
	case TUN_KIND_HTTP:
		return "http";
	case TUN_KIND_ACME_HTTP:
		return "acme-http";
	case TUN_KIND_ACME_TLS:
		return "acme-tls";
	}
	return "?";
}

const char *
tun_kinds_text(uint8_t kinds, char *buf, size_t len)
{
	size_t	off = 0;
	uint8_t	k;

	buf[0] = '\0';
	for (k = TUN_KIND_TLS; k != 0 && k <= TUN_KIND_ACME_TLS; k <<= 1) {
		if (!(kinds & k) || off >= len)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    off ? "+" : "", tun_kind_name(k));
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "none");
	return buf;
}

uint8_t
tun_kind_entry(uint8_t kind)
{
	if (kind == TUN_KIND_ACME_TLS)
		return TUN_KIND_TLS;
	if (kind == TUN_KIND_ACME_HTTP)
		return TUN_KIND_HTTP;
	return kind;
}

const char *
tun_err_name(uint32_t e)
{
	static const char *names[] = { "none", "protocol", "refused",
	    "unreachable", "no-service", "flow-control", "limit", "cancel",
	    "shutdown", "auth", "internal", "duplicate" };

	return e < sizeof(names) / sizeof(names[0]) ? names[e] : "unknown";
}

static uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

/* A u8 length and that many printable bytes (allow_empty: may be 0). */
static int
get_string(const uint8_t **pp, const uint8_t *end, int allow_empty, char *out,
    size_t outlen)
{
	const uint8_t	*p = *pp;
	size_t		 n, i;

	if (p >= end)
		return -1;
	n = *p++;
	if ((n == 0 && !allow_empty) || n >= outlen || (size_t)(end - p) < n)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] >= 0x7f)
			return -1;
		out[i] = (char)p[i];
	}
	out[n] = '\0';
	*pp = p + n;
	return 0;
}

static size_t
put_addr(uint8_t *p, const struct tun_addr *a)
{
	p[0] = a->family;
	memcpy(p + 1, a->addr, 16);
	p[17] = a->port >> 8;
	p[18] = a->port & 0xff;
	return 19;
}

static int
get_addr(const uint8_t *p, struct tun_addr *a)
{
	if (p[0] != 0 && p[0] != 4 && p[0] != 6)
		return -1;
	a->family = p[0];
	memcpy(a->addr, p + 1, 16);
	a->port = (uint16_t)((p[17] << 8) | p[18]);
	return 0;
}
