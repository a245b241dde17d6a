/* SPDX-License-Identifier: ISC */
/*
 * Read the server_name and ALPN extensions of a TLS ClientHello without
 * terminating TLS.  The hello may arrive split across TCP segments and
 * across several handshake records, so this is a pure function of the
 * bytes buffered so far: the caller retries with more on NEED_MORE.  Each
 * byte is looked at as soon as it is present, so plain HTTP, SSLv2 hellos
 * and other garbage on the TLS port fail on the first bytes.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>

#include "gw_sni.h"
#include "name.h"

#define GW_SNI_CT_HANDSHAKE	22
#define GW_SNI_HS_CLIENT_HELLO	1
#define GW_SNI_REC_HDR		5
#define GW_SNI_HS_HDR		4
#define GW_SNI_REC_MAX		18432	/* 2^14 plus slack, as TLS 1.2 allows */
#define GW_SNI_REASM_MAX	65536	/* hello body bytes we reassemble */
/* version, random, session_id, one suite, one compression method */
#define GW_SNI_HELLO_MIN	(2 + 32 + 1 + 2 + 2 + 1 + 1)
#define GW_SNI_EXT_SERVER_NAME	0
#define GW_SNI_EXT_ALPN		16
#define GW_SNI_NAME_HOST	0

/* A bounded reader over a contiguous byte range. */
struct gw_sni_cur {
	const uint8_t	*p;
	size_t		 n;
};

static enum gw_sni_result gw_sni_records(const uint8_t *, size_t, size_t,
		    size_t *, size_t *, size_t *);
static enum gw_sni_result gw_sni_reassemble(const uint8_t *, size_t,
		    size_t, struct gw_sni_hello *);
static enum gw_sni_result gw_sni_hello(const uint8_t *, size_t,
		    struct gw_sni_hello *);
static enum gw_sni_result gw_sni_server_name(struct gw_sni_cur *,
		    struct gw_sni_hello *);
static enum gw_sni_result gw_sni_alpn(struct gw_sni_cur *,
		    struct gw_sni_hello *);
static int	gw_sni_ipv6(const uint8_t *, size_t);
static int	gw_sni_u8(struct gw_sni_cur *, uint8_t *);
static int	gw_sni_u16(struct gw_sni_cur *, uint16_t *);
static int	gw_sni_skip(struct gw_sni_cur *, size_t);
static int	gw_sni_vec8(struct gw_sni_cur *, struct gw_sni_cur *);
static int	gw_sni_vec16(struct gw_sni_cur *, struct gw_sni_cur *);

enum gw_sni_result
gw_sni_parse(const uint8_t *buf, size_t len, size_t max,
    struct gw_sni_hello *out)
{
	enum gw_sni_result	r;
	size_t			want, end, nrec;

	memset(out, 0, sizeof(*out));
	r = gw_sni_records(buf, len, max, &want, &end, &nrec);
	if (r != GW_SNI_FOUND)
		return r;
	/* The usual case: one record, parse in place. */
	if (nrec == 1)
		r = gw_sni_hello(buf + GW_SNI_REC_HDR + GW_SNI_HS_HDR,
		    want - GW_SNI_HS_HDR, out);
	else
		r = gw_sni_reassemble(buf, end, want, out);
	if (r != GW_SNI_FOUND) {
		memset(out, 0, sizeof(*out));
		return r;
	}
	out->consumed = end;
	return GW_SNI_FOUND;
}

const char *
gw_sni_result_name(enum gw_sni_result r)
{
	switch (r) {
	case GW_SNI_FOUND:
		return "found";
	case GW_SNI_NEED_MORE:
		return "need-more";
	case GW_SNI_MALFORMED:
		return "malformed";
	case GW_SNI_TOO_BIG:
		return "too-big";
	}
	return "unknown";
}

/*
 * Walk the records until the handshake message they carry is complete.
 * On FOUND, *wantp is the length of the handshake message with its
 * header, *endp the bytes of records holding it and *nrecp their count.
 * A record may not carry bytes past the hello: nothing may follow a
 * ClientHello until the server answers.
 */
static enum gw_sni_result
gw_sni_records(const uint8_t *buf, size_t len, size_t max, size_t *wantp,
    size_t *endp, size_t *nrecp)
{
	uint8_t	hs[GW_SNI_HS_HDR];
	size_t	off = 0, got = 0, want = 0, nrec = 0;
	size_t	avail, rlen, seg, i, end;

	for (;;) {
		avail = len - off;
		/* One byte at a time, so that garbage fails fast. */
		if (avail > 0 && buf[off] != GW_SNI_CT_HANDSHAKE)
			return GW_SNI_MALFORMED;
		if (avail > 1 && buf[off + 1] != 3)
			return GW_SNI_MALFORMED;
		/*
		 * RFC 8446 5.1: legacy_record_version is to be ignored in
		 * a first ClientHello.  Clients send 3.1, some 3.0 or 3.3,
		 * in any of the hello's records; the major byte alone is
		 * enough to tell TLS from garbage.
		 */
		if (avail > 2 && buf[off + 2] > 3)
			return GW_SNI_MALFORMED;
		if (avail < GW_SNI_REC_HDR)
			break;
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		if (rlen == 0 || rlen > GW_SNI_REC_MAX)
			return GW_SNI_MALFORMED;
		seg = avail - GW_SNI_REC_HDR;
		if (seg > rlen)
			seg = rlen;

		/* The handshake header itself may be split across records. */
		for (i = 0; i < seg && got + i < GW_SNI_HS_HDR; i++) {
			hs[got + i] = buf[off + GW_SNI_REC_HDR + i];
			if (got + i == 0 && hs[0] != GW_SNI_HS_CLIENT_HELLO)
				return GW_SNI_MALFORMED;
			if (got + i == GW_SNI_HS_HDR - 1) {
				want = (size_t)hs[1] << 16 |
				    (size_t)hs[2] << 8 | hs[3];
				if (want < GW_SNI_HELLO_MIN)
					return GW_SNI_MALFORMED;
				want += GW_SNI_HS_HDR;
			}
		}
		if (want != 0 && got + rlen > want)
			return GW_SNI_MALFORMED;

		/* The fewest bytes of records that could finish the hello. */
		end = off + GW_SNI_REC_HDR + rlen;
		if (want != 0 && got + rlen < want)
			end += GW_SNI_REC_HDR + (want - got - rlen);
		if (end > max ||
		    (want != 0 && want - GW_SNI_HS_HDR > GW_SNI_REASM_MAX))
			return GW_SNI_TOO_BIG;
		if (seg < rlen)
			break;

		got += rlen;
		off += GW_SNI_REC_HDR + rlen;
		nrec++;
		if (want != 0 && got == want) {
			*wantp = want;
			*endp = off;
			*nrecp = nrec;
			return GW_SNI_FOUND;
		}
	}
	return len >= max ? GW_SNI_TOO_BIG : GW_SNI_NEED_MORE;
}

/* Copy the fragments of a hello spread over records, then parse it. */
static enum gw_sni_result
gw_sni_reassemble(const uint8_t *buf, size_t end, size_t want,
    struct gw_sni_hello *out)
{
	uint8_t	body[GW_SNI_REASM_MAX];
	size_t	off, rlen, got = 0, skip, n;

	/* gw_sni_records() checked every header up to end. */
	for (off = 0; off < end; off += GW_SNI_REC_HDR + rlen) {
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		n = rlen;
		skip = 0;
		if (got < GW_SNI_HS_HDR) {
			skip = GW_SNI_HS_HDR - got;
			if (skip > n)
				skip = n;
			n -= skip;
		}
		/* Once past the header, got + skip is at least its size. */
		if (n > 0)
			memcpy(body + (got + skip - GW_SNI_HS_HDR),
			    buf + off + GW_SNI_REC_HDR + skip, n);
		got += rlen;
	}
	return gw_sni_hello(body, want - GW_SNI_HS_HDR, out);
}

/* The ClientHello body, after the handshake header. */
static enum gw_sni_result
gw_sni_hello(const uint8_t *p, size_t n, struct gw_sni_hello *out)
{
	struct gw_sni_cur	 c, v, exts, ext;
	enum gw_sni_result	 r;
	uint8_t			 seen[65536 / 8];
	uint16_t		 version, type;

	c.p = p;
	c.n = n;
	if (gw_sni_u16(&c, &version) == -1 || version >> 8 != 3)
		return GW_SNI_MALFORMED;
	if (gw_sni_skip(&c, 32) == -1)			/* random */
		return GW_SNI_MALFORMED;
	if (gw_sni_vec8(&c, &v) == -1 || v.n > 32)	/* session_id */
		return GW_SNI_MALFORMED;
	if (gw_sni_vec16(&c, &v) == -1 || v.n < 2 || v.n % 2 != 0)
		return GW_SNI_MALFORMED;
	if (gw_sni_vec8(&c, &v) == -1 || v.n < 1)	/* compression */
		return GW_SNI_MALFORMED;
	if (c.n == 0)
		return GW_SNI_FOUND;			/* no extensions */
	if (gw_sni_vec16(&c, &exts) == -1 || c.n != 0)
		return GW_SNI_MALFORMED;

	memset(seen, 0, sizeof(seen));
	while (exts.n > 0) {
		if (gw_sni_u16(&exts, &type) == -1 ||
		    gw_sni_vec16(&exts, &ext) == -1)
			return GW_SNI_MALFORMED;
		/* RFC 8446 4.2: at most one extension of each type. */
		if (seen[type >> 3] & (1 << (type & 7)))
			return GW_SNI_MALFORMED;
		seen[type >> 3] |= 1 << (type & 7);

		switch (type) {
		case GW_SNI_EXT_SERVER_NAME:
			r = gw_sni_server_name(&ext, out);
			break;
		case GW_SNI_EXT_ALPN:
			r = gw_sni_alpn(&ext, out);
			break;
		default:
			r = GW_SNI_FOUND;
			break;
		}
		if (r != GW_SNI_FOUND)
			return r;
	}
	return GW_SNI_FOUND;
}

/*
 * RFC 6066 3.  A second host_name is refused rather than ignored: the
 * backend's TLS library may pick another entry than we routed on.  An IP
 * address there is forbidden, but some clients send one: it names no
 * route, so the hello is one without a usable name.
 */
static enum gw_sni_result
gw_sni_server_name(struct gw_sni_cur *ext, struct gw_sni_hello *out)
{
	struct gw_sni_cur	list, name;
	uint8_t			type;
	int			nhost = 0;

	if (gw_sni_vec16(ext, &list) == -1 || ext->n != 0 || list.n == 0)
		return GW_SNI_MALFORMED;
	while (list.n > 0) {
		if (gw_sni_u8(&list, &type) == -1 ||
		    gw_sni_vec16(&list, &name) == -1)
			return GW_SNI_MALFORMED;
		if (type != GW_SNI_NAME_HOST)
			continue;
		if (nhost++ > 0)
			return GW_SNI_MALFORMED;
		if (name_normalize((const char *)name.p, name.n, out->name,
		    0) == 0) {
			if (!name_ends_in_number(out->name)) {
				out->has_name = 1;
				continue;
			}
		} else if (!gw_sni_ipv6(name.p, name.n))
			return GW_SNI_MALFORMED;
		memset(out->name, 0, sizeof(out->name));
		out->ip_literal = 1;
	}
	return GW_SNI_FOUND;
}

/* RFC 7301 3.1: a non-empty list of names of 1 to 255 bytes. */
static enum gw_sni_result
gw_sni_alpn(struct gw_sni_cur *ext, struct gw_sni_hello *out)
{
	struct gw_sni_cur	list, proto;

	if (gw_sni_vec16(ext, &list) == -1 || ext->n != 0 || list.n == 0)
		return GW_SNI_MALFORMED;
	while (list.n > 0) {
		if (gw_sni_vec8(&list, &proto) == -1 || proto.n == 0)
			return GW_SNI_MALFORMED;
		/* They become C strings. */
		if (memchr(proto.p, '\0', proto.n) != NULL)
			return GW_SNI_MALFORMED;
		if (out->nalpn < GW_SNI_ALPN_MAX) {
			memcpy(out->alpn[out->nalpn], proto.p, proto.n);
			out->alpn[out->nalpn][proto.n] = '\0';
			out->nalpn++;
		}
	}
	return GW_SNI_FOUND;
}

/* An IPv6 address, bare or in brackets. */
static int
gw_sni_ipv6(const uint8_t *p, size_t n)
{
	char		s[INET6_ADDRSTRLEN];
	struct in6_addr	a6;

	if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
		p++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(s) || memchr(p, '\0', n) != NULL)
		return 0;
	memcpy(s, p, n);
	s[n] = '\0';
	return inet_pton(AF_INET6, s, &a6) == 1;
}

static int
gw_sni_u8(struct gw_sni_cur *c, uint8_t *v)
{
	if (c->n < 1)
		return -1;
	*v = c->p[0];
	c->p++;
	c->n--;
	return 0;
}

static int
gw_sni_u16(struct gw_sni_cur *c, uint16_t *v)
{
	if (c->n < 2)
		return -1;
	*v = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2;
	c->n -= 2;
	return 0;
}

static int
gw_sni_skip(struct gw_sni_cur *c, size_t n)
{
	if (c->n < n)
		return -1;
	c->p += n;
	c->n -= n;
	return 0;
}

/* A vector with a one-byte length: sub covers it, c moves past it. */
static int
gw_sni_vec8(struct gw_sni_cur *c, struct gw_sni_cur *sub)
{
	uint8_t	n;

	if (gw_sni_u8(c, &n) == -1 || c->n < n)
		return -1;
	sub->p = c->p;
	sub->n = n;
	return gw_sni_skip(c, n);
}

/* The same with a two-byte length. */
static int
gw_sni_vec16(struct gw_sni_cur *c, struct gw_sni_cur *sub)
{
	uint16_t	n;

	if (gw_sni_u16(c, &n) == -1 || c->n < n)
		return -1;
	sub->p = c->p;
	sub->n = n;
	return gw_sni_skip(c, n);
}
