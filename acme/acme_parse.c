/* SPDX-License-Identifier: ISC */
/*
 * The pure parsers of what an ACME CA sends: problem documents, RFC 3339
 * dates, renewal information, and the Retry-After and Link header values.
 * No I/O and no state, so that the unit tests and the fuzzer link them
 * without the protocol (acme.c) or the HTTP transport (acme_http.c).
 * Everything parsed is untrusted; messages made from it are one
 * printable line.
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acme_http.h"
#include "acme_parse.h"
#include "log.h"

#define ACME_PARSE_DETAIL_MAX	400	/* of a problem's detail, in msg */
#define ACME_PARSE_LINK_MAX	8192	/* one Link header value */
#define ACME_PARSE_RETRY_MAX	(30 * 24 * 3600)

static void	 acme_parse_err(struct acme_error *, enum acme_err_kind,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static int	 acme_parse_param(const char **, const char *, char *, size_t,
		    char *, size_t);

const char *
acme_chal_name(enum acme_chal c)
{
	switch (c) {
	case ACME_CHAL_HTTP01:
		return "http-01";
	case ACME_CHAL_TLSALPN01:
		return "tls-alpn-01";
	case ACME_CHAL_DNS01:
		return "dns-01";
	}
	return "unknown";
}

void
acme_parse_problem(const struct acme_problem_ctx *ctx, const char *body,
    size_t len, int status, unsigned retry_after, struct acme_error *e)
{
	json_t	*doc = NULL;

	if (body != NULL && len > 0)
		doc = json_loadb(body, len, 0, NULL);
	acme_parse_problem_json(ctx, doc, status, retry_after, e);
	json_decref(doc);
}

void
acme_parse_problem_json(const struct acme_problem_ctx *ctx, json_t *doc,
    int status, unsigned retry_after, struct acme_error *e)
{
	json_t		*sub = NULL, *subs;
	const char	*type, *stype, *dtl, *name, *what, *chal, *port;
	char		 detail[ACME_PARSE_DETAIL_MAX + 1], nm[256], http[32];

	memset(e, 0, sizeof(*e));
	e->http_status = status;
	e->retry_after_s = retry_after;
	what = ctx->what != NULL ? ctx->what : "the request";
	if (status != 0)
		snprintf(http, sizeof(http), "HTTP %d", status);
	else
		snprintf(http, sizeof(http), "validation");
	if ((type = acme_parse_jstr(doc, "type", sizeof(e->type) - 1)) ==
	    NULL) {
		if (status == 429)
			acme_parse_err(e, ACME_ERR_RATE,
			    "the CA's rate limit was "
			    "hit (HTTP 429); retry after %u s", retry_after);
		else
			acme_parse_err(e, ACME_ERR_CA,
			    "the CA answered %s with %s "
			    "and no problem document", what, http);
		e->http_status = status;
		e->retry_after_s = retry_after;
		return;
	}
	snprintf(e->type, sizeof(e->type), "%s", type);
	dtl = json_string_value(json_object_get(doc, "detail"));
	/* The name concerned, and what a compound problem is made of. */
	subs = json_object_get(doc, "subproblems");
	if (json_is_array(subs) && json_array_size(subs) > 0 &&
	    json_is_object(json_array_get(subs, 0)))
		sub = json_array_get(subs, 0);
	name = ctx->name;
	if (name == NULL && sub != NULL)
		name = acme_parse_jstr(json_object_get(sub, "identifier"),
		    "value", 253);
	acme_parse_clean(nm, sizeof(nm), name != NULL ? name :
	    "a requested name");
	stype = type;
	if (sub != NULL && strcmp(type, ACME_URN "compound") == 0 &&
	    acme_parse_jstr(sub, "type", 127) != NULL) {
		stype = acme_parse_jstr(sub, "type", 127);
		if (json_is_string(json_object_get(sub, "detail")))
			dtl = json_string_value(json_object_get(sub,
			    "detail"));
	}
	acme_parse_clean(detail, sizeof(detail), dtl != NULL && *dtl != '\0' ?
	    dtl : "no detail");
	if (strncmp(stype, ACME_URN, strlen(ACME_URN)) == 0)
		stype += strlen(ACME_URN);

	if (strcmp(stype, "rateLimited") == 0) {
		if (retry_after != 0)
			acme_parse_err(e, ACME_ERR_RATE,
			    "the CA's rate limit was "
			    "hit (%s); retry after %u s", detail, retry_after);
		else
			acme_parse_err(e, ACME_ERR_RATE,
			    "the CA's rate limit was "
			    "hit (%s); retry later", detail);
	} else if (ctx->step == ACME_STEP_ACCOUNT && (ctx->eab ?
	    (strcmp(stype, "externalAccountRequired") == 0 ||
	    strcmp(stype, "unauthorized") == 0 ||
	    strcmp(stype, "malformed") == 0 ||
	    strcmp(stype, "badSignatureAlgorithm") == 0) :
	    strcmp(stype, "externalAccountRequired") == 0))
		acme_parse_err(e, ACME_ERR_ACCOUNT,
		    ctx->eab ? "the CA refused the "
		    "external account binding (%s); check acme.eab.kid and "
		    "hmac_key" : "the CA requires an external account binding "
		    "(%s); add acme.eab with the kid and hmac_key shown in "
		    "your account at the CA", detail);
	else if (ctx->step == ACME_STEP_ACCOUNT &&
	    strcmp(stype, "unauthorized") == 0)
		acme_parse_err(e, ACME_ERR_ACCOUNT,
		    "the CA refused to register the "
		    "account (%s); if it needs an external account binding, "
		    "add acme.eab with the kid and hmac_key from your account "
		    "at the CA", detail);
	else if (strcmp(stype, "invalidContact") == 0 ||
	    strcmp(stype, "unsupportedContact") == 0)
		acme_parse_err(e, ACME_ERR_ACCOUNT,
		    "the CA refused the contact "
		    "address (%s); check acme.email", detail);
	else if (strcmp(stype, "accountDoesNotExist") == 0)
		acme_parse_err(e, ACME_ERR_ACCOUNT, "the CA does not know this "
		    "account (%s); remove the account directory under "
		    "acme.state_dir to register a new one", detail);
	else if (strcmp(stype, "dns") == 0)
		acme_parse_err(e, ACME_ERR_DNS,
		    "%s does not resolve for the CA "
		    "(%s); check that %s has A/AAAA records pointing at your "
		    "gateways", nm, detail, nm);
	else if (ctx->step == ACME_STEP_CHALLENGE &&
	    (strcmp(stype, "connection") == 0 ||
	    strcmp(stype, "unauthorized") == 0 ||
	    strcmp(stype, "incorrectResponse") == 0 ||
	    strcmp(stype, "tls") == 0)) {
		chal = acme_chal_name(ctx->chal);
		port = ctx->chal == ACME_CHAL_TLSALPN01 ? "443" : "80";
		if (ctx->chal == ACME_CHAL_DNS01)
			acme_parse_err(e, ACME_ERR_CHALLENGE,
			    "the CA could not validate %s by dns-01 (%s); "
			    "check that the CA's resolvers see the TXT record "
			    "_acme-challenge of the name at every name server "
			    "of the zone", nm, detail);
		else
			acme_parse_err(e, ACME_ERR_CHALLENGE,
			    "the CA could not validate %s by %s (%s); check "
			    "that %s resolves to the gateways, that their port "
			    "%s (%s) is reachable from the internet, and that "
			    "the gateways grant %s to this agent", nm, chal,
			    detail, nm, port, chal, nm);
	} else if (strcmp(stype, "caa") == 0)
		acme_parse_err(e, ACME_ERR_REJECTED,
		    "the CA may not issue for %s "
		    "because of CAA records (%s); check the CAA records of %s "
		    "and its parent domains", nm, detail, nm);
	else if (strcmp(stype, "rejectedIdentifier") == 0 ||
	    strcmp(stype, "unsupportedIdentifier") == 0)
		acme_parse_err(e, ACME_ERR_REJECTED,
		    "the CA will not issue for %s "
		    "(%s); check that it is a public name you control and "
		    "that the CA's policy allows it", nm, detail);
	else if (strcmp(stype, "alreadyRevoked") == 0)
		acme_parse_err(e, ACME_ERR_CA,
		    "the certificate is already revoked "
		    "(%s)", detail);
	else
		acme_parse_err(e, ACME_ERR_CA,
		    "the CA answered %s with %s (%s): %s",
		    what, stype, http, detail);
	e->http_status = status;
	e->retry_after_s = retry_after;
	snprintf(e->type, sizeof(e->type), "%s", type);
}

time_t
acme_parse_rfc3339(const char *s)
{
	struct tm	 tm;
	const char	*p = s;
	int		 v[6], i, k, off = 0, sign;
	static const int len[6] = { 4, 2, 2, 2, 2, 2 };
	static const char sep[6] = { '-', '-', 'T', ':', ':', '\0' };

	memset(&tm, 0, sizeof(tm));
	for (i = 0; i < 6; i++) {
		if (strspn(p, "0123456789") < (size_t)len[i])
			return -1;
		for (v[i] = 0, k = 0; k < len[i]; k++)
			v[i] = v[i] * 10 + (p[k] - '0');
		p += len[i];
		if (sep[i] != '\0') {
			if (toupper((unsigned char)*p) != sep[i])
				return -1;
			p++;
		}
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (toupper((unsigned char)*p) == 'Z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) || p[3] != ':' ||
		    !isdigit((unsigned char)p[4]) ||
		    !isdigit((unsigned char)p[5]))
			return -1;
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		    ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (off > 24 * 3600)
			return -1;
		off *= sign;
		p += 6;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5] == 60 ? 59 : v[5];
	return timegm(&tm) - off;
}

int
acme_parse_renewal_info(const char *body, size_t len, time_t *start,
    time_t *end, char *err, size_t errlen)
{
	json_t		*doc, *win;
	const char	*s, *t;
	int		 rc = -1;

	if ((doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) ==
	    NULL || !json_is_object(doc)) {
		snprintf(err, errlen, "not a JSON object");
		goto out;
	}
	win = json_object_get(doc, "suggestedWindow");
	if ((s = acme_parse_jstr(win, "start", 64)) == NULL ||
	    (t = acme_parse_jstr(win, "end", 64)) == NULL) {
		snprintf(err, errlen, "no suggestedWindow start and end");
		goto out;
	}
	if ((*start = acme_parse_rfc3339(s)) == -1 ||
	    (*end = acme_parse_rfc3339(t)) == -1) {
		snprintf(err, errlen, "suggestedWindow dates are not RFC 3339");
		goto out;
	}
	/* RFC 9773 4.2: a window that ends before it starts is invalid. */
	if (*end < *start) {
		snprintf(err, errlen, "suggestedWindow ends before it starts");
		goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		*start = *end = 0;
	json_decref(doc);
	return rc;
}

unsigned
acme_parse_retry_after(const char *v, time_t now)
{
	unsigned long long	 n = 0;
	const char		*p;
	time_t			 t;

	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		for (p = v; isdigit((unsigned char)*p); p++) {
			n = n * 10 + (unsigned)(*p - '0');
			if (n > ACME_PARSE_RETRY_MAX)
				n = ACME_PARSE_RETRY_MAX;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		return *p == '\0' ? (unsigned)n : 0;
	}
	if (strlen(v) > 64 || (t = curl_getdate(v, NULL)) == -1 || t <= now)
		return 0;
	if (t - now > ACME_PARSE_RETRY_MAX)
		return ACME_PARSE_RETRY_MAX;
	return (unsigned)(t - now);
}

char *
acme_parse_link(const char *v, const char *rel)
{
	const char	*p = v, *u, *ue, *r;
	char		 name[16], val[256], *out;
	size_t		 rlen = strlen(rel);

	if (strlen(v) > ACME_PARSE_LINK_MAX)
		return NULL;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p != '<')
			return NULL;
		u = p + 1;
		if ((ue = strchr(u, '>')) == NULL)
			return NULL;
		p = ue + 1;
		/* The parameters of this link, up to the next ',' or end. */
		while (acme_parse_param(&p, ",", name, sizeof(name), val,
		    sizeof(val)) == 1) {
			if (strcasecmp(name, "rel") != 0)
				continue;
			/* rel is a space-separated list of relation types. */
			for (r = val; *r != '\0'; r += strcspn(r, " ")) {
				r += strspn(r, " ");
				if (strncasecmp(r, rel, rlen) != 0 ||
				    (r[rlen] != '\0' && r[rlen] != ' '))
					continue;
				if ((size_t)(ue - u) > ACME_HTTP_URL_MAX ||
				    (out = malloc(ue - u + 1)) == NULL)
					return NULL;
				memcpy(out, u, ue - u);
				out[ue - u] = '\0';
				return out;
			}
		}
		if (*p != ',')
			return NULL;
	}
}

/* log_escape of a C string (NULL: empty), for the CA's text in messages. */
char *
acme_parse_clean(char *dst, size_t len, const char *src)
{
	return log_escape(dst, len, src, src != NULL ? strlen(src) : 0);
}

/* o[key] if it is a string of 1..max printable bytes. */
const char *
acme_parse_jstr(json_t *o, const char *key, size_t max)
{
	json_t		*v;
	const char	*s;
	size_t		 i, len;

	if (!json_is_object(o) || !json_is_string(v = json_object_get(o,
	    key)))
		return NULL;
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 || len > max)
		return NULL;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return NULL;
	return s;
}

void
acme_parse_verr(struct acme_error *e, enum acme_err_kind kind, const char *fmt,
    va_list ap)
{
	/* A fresh error: nothing left over from an earlier answer. */
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

static void
acme_parse_err(struct acme_error *e, enum acme_err_kind kind, const char *fmt,
    ...)
{
	va_list	ap;

	va_start(ap, fmt);
	acme_parse_verr(e, kind, fmt, ap);
	va_end(ap);
}

/*
 * One ";name=value" link parameter at *pp, stopping before stop or the
 * end.  Returns 1 with name and value (unquoted, truncated), 0 if none.
 */
static int
acme_parse_param(const char **pp, const char *stop, char *name, size_t nlen,
    char *val, size_t vlen)
{
	const char	*p = *pp;
	size_t		 i;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ';')
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	for (i = 0; *p != '\0' && *p != '=' && *p != ';' &&
	    strchr(stop, *p) == NULL && *p != ' '; p++)
		if (i + 1 < nlen)
			name[i++] = *p;
	name[i] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	i = 0;
	if (*p == '=') {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (i + 1 < vlen)
					val[i++] = *p;
			}
			if (*p == '"')
				p++;
		} else {
			for (; *p != '\0' && *p != ';' &&
			    strchr(stop, *p) == NULL && *p != ' '; p++)
				if (i + 1 < vlen)
					val[i++] = *p;
		}
	}
	val[i] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	*pp = p;
	return 1;
}
