/* SPDX-License-Identifier: ISC */
/*
 * Read the route name of a plain HTTP/1.x request: the authority of an
 * absolute-form target, else the Host header (RFC 9112 3.2.2).  Pure, like
 * gw_sni.c: the caller retries with more bytes on NEED_MORE and forwards
 * the head untouched.  Requests a backend could read differently from us
 * (folded lines, stray control bytes, two Hosts) are refused, and the
 * partial line at the end is checked too, so garbage fails fast.
 */

#include <string.h>
#include <strings.h>

#include "gw_http.h"
#include "name.h"

#define GW_HTTP_METHOD_MAX	15
#define GW_HTTP_VERSION_LEN	8	/* "HTTP/1.x" */

/* What the lines seen so far said about the route. */
struct gw_http_state {
	int		 skipped;	/* empty lines before the request */
	int		 nline;
	int		 minor;		/* HTTP/1.minor */
	const uint8_t	*auth;		/* absolute-form authority */
	size_t		 authlen;
	const uint8_t	*host;		/* Host value, without OWS */
	size_t		 hostlen;
	int		 nhost;
};

static enum gw_http_result gw_http_request_line(struct gw_http_state *,
		    const uint8_t *, size_t, int, struct gw_http_head *);
static enum gw_http_result gw_http_target(struct gw_http_state *,
		    const uint8_t *, size_t);
static enum gw_http_result gw_http_header_line(struct gw_http_state *,
		    const uint8_t *, size_t, int);
static enum gw_http_result gw_http_finish(struct gw_http_state *,
		    struct gw_http_head *);
static int	gw_http_host(const uint8_t *, size_t, char *);
static int	gw_http_tchar(uint8_t);

enum gw_http_result
gw_http_parse(const uint8_t *buf, size_t len, size_t max,
    struct gw_http_head *out)
{
	struct gw_http_state	 st;
	enum gw_http_result	 r;
	const uint8_t		*line, *nl;
	size_t			 scan, pos = 0, n;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	scan = len < max ? len : max;
	while (pos < scan) {
		line = buf + pos;
		nl = memchr(line, '\n', scan - pos);
		n = nl != NULL ? (size_t)(nl - line) : scan - pos;
		/* A CR may only end a line; elsewhere it is a control byte. */
		if (n > 0 && line[n - 1] == '\r')
			n--;

		if (nl != NULL && n == 0 && st.nline == 0) {
			/*
			 * RFC 9112 2.2: a server SHOULD ignore at least one
			 * empty line before the request-line (old clients
			 * put a CRLF after a POST body, some tools one
			 * before the request).  We see only the first
			 * request of a connection, so more than one is
			 * garbage: refusing it fails fast instead of letting
			 * a stream of CRLFs hold the connection until the
			 * cap or the deadline.
			 */
			if (st.skipped++ > 0)
				return GW_HTTP_MALFORMED;
			pos = (size_t)(nl - buf) + 1;
			continue;
		}
		if (nl != NULL && n == 0) {
			out->head_len = (size_t)(nl - buf) + 1;
			r = gw_http_finish(&st, out);
			goto done;
		}
		if (st.nline == 0)
			r = gw_http_request_line(&st, line, n, nl != NULL, out);
		else
			r = gw_http_header_line(&st, line, n, nl != NULL);
		if (r != GW_HTTP_FOUND)
			goto done;
		if (nl == NULL)
			break;		/* a plausible start of a line */
		st.nline++;
		pos = (size_t)(nl - buf) + 1;
	}
	r = len >= max ? GW_HTTP_TOO_BIG : GW_HTTP_NEED_MORE;
done:
	if (r != GW_HTTP_FOUND)
		memset(out, 0, sizeof(*out));
	return r;
}

const char *
gw_http_result_name(enum gw_http_result r)
{
	switch (r) {
	case GW_HTTP_FOUND:
		return "found";
	case GW_HTTP_NEED_MORE:
		return "need-more";
	case GW_HTTP_MALFORMED:
		return "malformed";
	case GW_HTTP_TOO_BIG:
		return "too-big";
	}
	return "unknown";
}

/*
 * method SP request-target SP HTTP-version.  With complete = 0, line is
 * the start of an unfinished line and FOUND means "a plausible prefix".
 */
static enum gw_http_result
gw_http_request_line(struct gw_http_state *st, const uint8_t *line,
    size_t n, int complete, struct gw_http_head *out)
{
	const uint8_t	*target;
	size_t		 i, tlen, rest;

	for (i = 0; i < n && gw_http_tchar(line[i]); i++)
		;
	if (i > GW_HTTP_METHOD_MAX)
		return GW_HTTP_MALFORMED;
	if (i == n)
		return complete ? GW_HTTP_MALFORMED : GW_HTTP_FOUND;
	if (i == 0 || line[i] != ' ')
		return GW_HTTP_MALFORMED;
	memcpy(out->method, line, i);
	out->method[i] = '\0';

	target = line + ++i;
	for (; i < n && line[i] > ' ' && line[i] != 0x7f; i++)
		;
	if (i == n)
		return complete ? GW_HTTP_MALFORMED : GW_HTTP_FOUND;
	if (line[i] != ' ' || line + i == target)
		return GW_HTTP_MALFORMED;
	tlen = (size_t)(line + i - target);

	/* "HTTP/1.0" or "HTTP/1.1", or a prefix of one if incomplete. */
	i++;
	rest = n - i;
	if (rest > GW_HTTP_VERSION_LEN)
		return GW_HTTP_MALFORMED;
	if (memcmp(line + i, "HTTP/1.", rest < GW_HTTP_VERSION_LEN ? rest :
	    GW_HTTP_VERSION_LEN - 1) != 0)
		return GW_HTTP_MALFORMED;
	if (rest == GW_HTTP_VERSION_LEN) {
		if (line[n - 1] != '0' && line[n - 1] != '1')
			return GW_HTTP_MALFORMED;
		st->minor = line[n - 1] - '0';
	}
	if (!complete)
		return GW_HTTP_FOUND;
	if (rest != GW_HTTP_VERSION_LEN)
		return GW_HTTP_MALFORMED;

	i = tlen < sizeof(out->path) - 1 ? tlen : sizeof(out->path) - 1;
	memcpy(out->path, target, i);
	out->path[i] = '\0';
	return gw_http_target(st, target, tlen);
}

/*
 * Origin-form and "*" leave the route to Host.  Absolute-form names it
 * (RFC 9112 3.2.2).  Authority-form only makes sense to a forward proxy,
 * and so do other schemes: neither can be routed here.
 */
static enum gw_http_result
gw_http_target(struct gw_http_state *st, const uint8_t *t, size_t n)
{
	const char	*s = (const char *)t;
	size_t		 skip, i;

	if (t[0] == '/' || (n == 1 && t[0] == '*'))
		return GW_HTTP_FOUND;
	if (n >= 7 && strncasecmp(s, "http://", 7) == 0)
		skip = 7;
	else if (n >= 8 && strncasecmp(s, "https://", 8) == 0)
		skip = 8;
	else
		return GW_HTTP_MALFORMED;
	for (i = skip; i < n && t[i] != '/' && t[i] != '?' && t[i] != '#'; i++)
		if (t[i] == '@')	/* userinfo: RFC 9110 4.2.4 */
			return GW_HTTP_MALFORMED;
	st->auth = t + skip;
	st->authlen = i - skip;
	return GW_HTTP_FOUND;
}

/* field-name ":" OWS field-value OWS, checked like the request line. */
static enum gw_http_result
gw_http_header_line(struct gw_http_state *st, const uint8_t *line,
    size_t n, int complete)
{
	const uint8_t	*v;
	size_t		 i, nlen, vlen;

	/* obs-fold (RFC 9112 5.2): refuse rather than unfold. */
	if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
		return GW_HTTP_MALFORMED;
	for (i = 0; i < n && gw_http_tchar(line[i]); i++)
		;
	if (i == n)
		return complete ? GW_HTTP_MALFORMED : GW_HTTP_FOUND;
	if (i == 0 || line[i] != ':')
		return GW_HTTP_MALFORMED;
	nlen = i;
	v = line + nlen + 1;
	vlen = n - nlen - 1;
	for (i = 0; i < vlen; i++)
		if ((v[i] < ' ' && v[i] != '\t') || v[i] == 0x7f)
			return GW_HTTP_MALFORMED;
	if (!complete)
		return GW_HTTP_FOUND;

	if (nlen != 4 || strncasecmp((const char *)line, "host", 4) != 0)
		return GW_HTTP_FOUND;
	if (st->nhost++ > 0)
		return GW_HTTP_MALFORMED;
	while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	st->host = v;
	st->hostlen = vlen;
	return GW_HTTP_FOUND;
}

static enum gw_http_result
gw_http_finish(struct gw_http_state *st, struct gw_http_head *out)
{
	/* RFC 9112 3.2: HTTP/1.1 needs a Host even with absolute-form. */
	if (st->minor == 1 && st->nhost == 0)
		return GW_HTTP_MALFORMED;
	if (st->auth != NULL) {
		if (gw_http_host(st->auth, st->authlen, out->host) == -1)
			return GW_HTTP_MALFORMED;
	} else if (st->host != NULL) {
		if (gw_http_host(st->host, st->hostlen, out->host) == -1)
			return GW_HTTP_MALFORMED;
	} else {
		/* HTTP/1.0 without Host: nothing to route by. */
		return GW_HTTP_MALFORMED;
	}
	return GW_HTTP_FOUND;
}

/*
 * uri-host [ ":" port ] to a normalized name.  IP literals are refused:
 * the gateway routes by name only.
 */
static int
gw_http_host(const uint8_t *p, size_t n, char *out)
{
	const uint8_t	*colon;
	size_t		 hlen, i;
	unsigned long	 port = 0;

	if (n == 0 || p[0] == '[')
		return -1;
	colon = memchr(p, ':', n);
	hlen = colon != NULL ? (size_t)(colon - p) : n;
	if (colon != NULL) {
		/* port = *DIGIT, so an empty one is allowed. */
		if (n - hlen - 1 > 5)
			return -1;
		for (i = hlen + 1; i < n; i++) {
			if (p[i] < '0' || p[i] > '9')
				return -1;
			port = port * 10 + (p[i] - '0');
		}
		if (port > 65535)
			return -1;
	}
	if (name_normalize((const char *)p, hlen, out, 0) == -1)
		return -1;
	if (name_ends_in_number(out))
		return -1;
	return 0;
}

/* RFC 9110 5.6.2 tchar. */
static int
gw_http_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
