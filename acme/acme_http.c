/* SPDX-License-Identifier: ISC */
/*
 * The transport of the ACME client: GET, HEAD and JOSE POST over one
 * libcurl easy handle.  The CA is untrusted input: the body is capped,
 * only https is spoken, POSTs never follow redirects, and the headers
 * ACME needs (Replay-Nonce, Location, Retry-After, Link) are checked and
 * copied out bounded.  Failures to get any answer at all become an
 * acme_error in plain words; what the answer means is acme.c's business.
 */

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "acme_http.h"
#include "acme_parse.h"

#define ACME_HTTP_UA		"porch-acme/1"

enum acme_http_method {
	ACME_HTTP_GET,
	ACME_HTTP_HEAD,
	ACME_HTTP_POST,
};

struct acme_http {
	CURL		*curl;
	char		*ca_bundle;
	unsigned	 timeout_ms;
	char		 errbuf[CURL_ERROR_SIZE];
};

struct acme_http_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	int	 overflow;		/* 1: over the cap, -1: no memory */
};

static pthread_once_t	acme_http_once = PTHREAD_ONCE_INIT;
static CURLcode		acme_http_global_rc = CURLE_FAILED_INIT;

static void	 acme_http_global(void);
static int	 acme_http_do(struct acme_http *, enum acme_http_method,
		    const char *, const char *, const char *,
		    struct acme_http_resp *, struct acme_error *);
static size_t	 acme_http_write_cb(char *, size_t, size_t, void *);
static void	 acme_http_fail(struct acme_http *, CURLcode, const char *,
		    struct acme_error *);
static void	 acme_http_headers(struct acme_http *, const char *,
		    struct acme_http_resp *);
static char	*acme_http_resolve(const char *, const char *);

/* curl_global_init is not thread-safe: run it once, on first use. */
static void
acme_http_global(void)
{
	acme_http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct acme_http *
acme_http_new(const char *ca_bundle, unsigned timeout_ms)
{
	struct acme_http	*h;

	if (pthread_once(&acme_http_once, acme_http_global) != 0 ||
	    acme_http_global_rc != CURLE_OK)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->timeout_ms = timeout_ms != 0 ? timeout_ms : 30000;
	if ((ca_bundle != NULL && (h->ca_bundle = strdup(ca_bundle)) ==
	    NULL) || (h->curl = curl_easy_init()) == NULL) {
		acme_http_free(h);
		return NULL;
	}
	return h;
}

void
acme_http_free(struct acme_http *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->ca_bundle);
	free(h);
}

int
acme_http_get(struct acme_http *h, const char *url, struct acme_http_resp *r,
    struct acme_error *e)
{
	return acme_http_do(h, ACME_HTTP_GET, url, NULL, NULL, r, e);
}

int
acme_http_head(struct acme_http *h, const char *url, struct acme_http_resp *r,
    struct acme_error *e)
{
	return acme_http_do(h, ACME_HTTP_HEAD, url, NULL, NULL, r, e);
}

int
acme_http_post(struct acme_http *h, const char *url, const char *jose,
    const char *accept, struct acme_http_resp *r, struct acme_error *e)
{
	return acme_http_do(h, ACME_HTTP_POST, url, jose, accept, r, e);
}

void
acme_http_resp_clear(struct acme_http_resp *r)
{
	free(r->body);
	free(r->location);
	free(r->link_up);
	free(r->link_alt);
	memset(r, 0, sizeof(*r));
}

static int
acme_http_do(struct acme_http *h, enum acme_http_method m, const char *url,
    const char *body, const char *accept, struct acme_http_resp *r,
    struct acme_error *e)
{
	struct acme_http_buf	 buf;
	struct curl_slist	*hdrs = NULL, *n;
	char			 line[160], *ct = NULL, *p = NULL;
	const char		*base = url;
	CURLcode		 rc;
	size_t			 i;

	memset(r, 0, sizeof(*r));
	memset(&buf, 0, sizeof(buf));
	h->errbuf[0] = '\0';
	curl_easy_reset(h->curl);
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "https");
	/* CURLOPT_NOSIGNAL stays 0: then libcurl itself ignores SIGPIPE
	 * while it works, so a CA closing on us cannot kill porchctl or
	 * the agent's ACME child, and no process-wide handler is needed. */
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(h->timeout_ms < 10000 ? h->timeout_ms : 10000));
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, ACME_HTTP_UA);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, acme_http_write_cb);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &buf);
	if (h->ca_bundle != NULL)
		curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->ca_bundle);
	switch (m) {
	case ACME_HTTP_GET:
		curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h->curl, CURLOPT_MAXREDIRS, 3L);
		curl_easy_setopt(h->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
		break;
	case ACME_HTTP_HEAD:
		curl_easy_setopt(h->curl, CURLOPT_NOBODY, 1L);
		break;
	case ACME_HTTP_POST:
		snprintf(line, sizeof(line), "Accept: %s", accept != NULL ?
		    accept : "application/json");
		if ((n = curl_slist_append(hdrs,
		    "Content-Type: application/jose+json")) == NULL)
			goto nomem;
		hdrs = n;
		if ((n = curl_slist_append(hdrs, line)) == NULL)
			goto nomem;
		hdrs = n;
		/* No 100-continue round trip: the bodies are small. */
		if ((n = curl_slist_append(hdrs, "Expect:")) == NULL)
			goto nomem;
		hdrs = n;
		curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(body));
		break;
	}
	rc = curl_easy_perform(h->curl);
	curl_slist_free_all(hdrs);
	hdrs = NULL;
	if (rc != CURLE_OK) {
		if (buf.overflow == -1) {
			memset(e, 0, sizeof(*e));
			e->kind = ACME_ERR_LOCAL;
			snprintf(e->msg, sizeof(e->msg), "out of memory");
		} else if (buf.overflow) {
			acme_parse_clean(line, sizeof(line), url);
			memset(e, 0, sizeof(*e));
			e->kind = ACME_ERR_CA;
			snprintf(e->msg, sizeof(e->msg), "the CA's answer from "
			    "%s is larger than %d KiB; check the directory URL",
			    line, ACME_HTTP_BODY_MAX / 1024);
		} else
			acme_http_fail(h, rc, url, e);
		free(buf.data);
		return -1;
	}
	if (buf.data == NULL && (buf.data = calloc(1, 1)) == NULL)
		goto nomem;
	r->body = buf.data;
	r->len = buf.len;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ct) ==
	    CURLE_OK && ct != NULL) {
		while (*ct == ' ')
			ct++;
		for (i = 0; ct[i] != '\0' && ct[i] != ';' && ct[i] != ' ' &&
		    i + 1 < sizeof(r->content_type); i++)
			r->content_type[i] =
			    (char)tolower((unsigned char)ct[i]);
		r->content_type[i] = '\0';
	}
	/* Relative Location and Link resolve against where we ended up. */
	if (curl_easy_getinfo(h->curl, CURLINFO_EFFECTIVE_URL, &p) ==
	    CURLE_OK && p != NULL)
		base = p;
	acme_http_headers(h, base, r);
	return 0;
nomem:
	curl_slist_free_all(hdrs);
	free(buf.data);
	memset(e, 0, sizeof(*e));
	e->kind = ACME_ERR_LOCAL;
	snprintf(e->msg, sizeof(e->msg), "out of memory");
	return -1;
}

/* Append to the body, refusing more than ACME_HTTP_BODY_MAX. */
static size_t
acme_http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct acme_http_buf	*b = arg;
	size_t			 len = size * nmemb, ncap;
	char			*p;

	if (len > ACME_HTTP_BODY_MAX - b->len) {
		b->overflow = 1;
		return 0;
	}
	if (b->len + len + 1 > b->cap) {
		ncap = b->cap == 0 ? 16384 : b->cap;
		while (ncap < b->len + len + 1)
			ncap *= 2;
		if ((p = realloc(b->data, ncap)) == NULL) {
			b->overflow = -1;
			return 0;
		}
		b->data = p;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* No answer from the CA: say why in words the operator can act on. */
static void
acme_http_fail(struct acme_http *h, CURLcode rc, const char *url,
    struct acme_error *e)
{
	char	u[256], why[CURL_ERROR_SIZE], ca[256];

	memset(e, 0, sizeof(*e));
	acme_parse_clean(u, sizeof(u), url);
	acme_parse_clean(why, sizeof(why), h->errbuf[0] != '\0' ? h->errbuf :
	    curl_easy_strerror(rc));
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		e->kind = ACME_ERR_TLS;
		if (h->ca_bundle != NULL)
			snprintf(e->msg, sizeof(e->msg), "the CA's TLS "
			    "certificate did not verify against acme.ca_bundle "
			    "%s (%s); check that the bundle holds the root of "
			    "the CA at %s", acme_parse_clean(ca, sizeof(ca),
			    h->ca_bundle), why, u);
		else
			snprintf(e->msg, sizeof(e->msg), "the CA's TLS "
			    "certificate did not verify (%s) at %s; for a "
			    "private CA set acme.ca_bundle to its root "
			    "certificate (PEM)", why, u);
		break;
	case CURLE_SSL_CACERT_BADFILE:
		e->kind = ACME_ERR_TLS;
		snprintf(e->msg, sizeof(e->msg), "cannot use acme.ca_bundle "
		    "%s (%s); check that the file exists and holds PEM "
		    "certificates", acme_parse_clean(ca, sizeof(ca),
		    h->ca_bundle != NULL ? h->ca_bundle : "(system)"), why);
		break;
	case CURLE_OUT_OF_MEMORY:
		e->kind = ACME_ERR_LOCAL;
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		break;
	default:
		e->kind = ACME_ERR_NETWORK;
		snprintf(e->msg, sizeof(e->msg), "cannot reach the CA at %s: "
		    "%s; check the directory URL and this machine's network",
		    u, why);
		break;
	}
}

/* Replay-Nonce, Location, Retry-After and Link of the last response. */
static void
acme_http_headers(struct acme_http *h, const char *base,
    struct acme_http_resp *r)
{
	struct curl_header	*hd;
	const char		*v;
	char			*u;
	size_t			 i, cnt;

	if (curl_easy_header(h->curl, "Replay-Nonce", 0, CURLH_HEADER, -1,
	    &hd) == CURLHE_OK) {
		v = hd->value;
		/* RFC 8555 6.5.1: base64url, so anything else is refused. */
		if (strlen(v) < sizeof(r->nonce) && v[0] != '\0' &&
		    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
		    "vwxyz0123456789-_") == strlen(v))
			strcpy(r->nonce, v);
	}
	if (curl_easy_header(h->curl, "Location", 0, CURLH_HEADER, -1,
	    &hd) == CURLHE_OK)
		r->location = acme_http_resolve(base, hd->value);
	if (curl_easy_header(h->curl, "Retry-After", 0, CURLH_HEADER, -1,
	    &hd) == CURLHE_OK)
		r->retry_after = acme_parse_retry_after(hd->value, time(NULL));
	if (curl_easy_header(h->curl, "Link", 0, CURLH_HEADER, -1,
	    &hd) != CURLHE_OK)
		return;
	cnt = hd->amount;
	for (i = 0; i < cnt && i < 32; i++) {
		if (curl_easy_header(h->curl, "Link", i, CURLH_HEADER, -1,
		    &hd) != CURLHE_OK)
			break;
		if (r->link_up == NULL &&
		    (u = acme_parse_link(hd->value, "up")) != NULL) {
			r->link_up = acme_http_resolve(base, u);
			free(u);
		}
		if (r->link_alt == NULL &&
		    (u = acme_parse_link(hd->value, "alternate")) != NULL) {
			r->link_alt = acme_http_resolve(base, u);
			free(u);
		}
	}
}

/* An absolute https URL for ref (maybe relative to base), or NULL. */
static char *
acme_http_resolve(const char *base, const char *ref)
{
	CURLU	*cu;
	char	*s = NULL, *out = NULL;

	if (strlen(ref) > ACME_HTTP_URL_MAX || (cu = curl_url()) == NULL)
		return NULL;
	if (curl_url_set(cu, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(cu, CURLUPART_URL, ref, 0) == CURLUE_OK &&
	    curl_url_get(cu, CURLUPART_URL, &s, 0) == CURLUE_OK &&
	    strncmp(s, "https://", 8) == 0 && strlen(s) <= ACME_HTTP_URL_MAX)
		out = strdup(s);
	curl_free(s);
	curl_url_cleanup(cu);
	return out;
}

