/*
 * acme_http.h: the HTTPS requests of the ACME client, over libcurl.
 * Blocking, one easy handle per client (so connections are reused), the
 * response body capped, and the headers ACME needs picked out.
 */
#ifndef PORCH_ACME_HTTP_H
#define PORCH_ACME_HTTP_H

#include <stddef.h>
#include <time.h>

#include "acme.h"

#define ACME_HTTP_BODY_MAX	(1024 * 1024)
#define ACME_HTTP_URL_MAX	2048	/* longer Location/Link is refused */

struct acme_http_resp {
	long	 status;		/* HTTP status */
	char	*body;			/* NUL-terminated, len bytes */
	size_t	 len;
	char	 content_type[128];	/* lower case, no parameters */
	char	 nonce[256];		/* Replay-Nonce, or "" */
	char	*location;		/* Location, or NULL */
	char	*link_up;		/* first Link rel="up", or NULL */
	char	*link_alt;		/* first rel="alternate", or NULL */
	unsigned retry_after;		/* seconds, 0: none */
};

struct acme_http;

/* ca_bundle: PEM file or NULL (the system's); both copied. */
struct acme_http *acme_http_new(const char *ca_bundle, unsigned timeout_ms);
void		 acme_http_free(struct acme_http *);

/*
 * One request: GET (follows up to 3 https redirects), HEAD, or POST of a
 * JOSE body (application/jose+json, no redirects; accept may be NULL).
 * Returns 0 with *r filled whatever the HTTP status, or -1 (no answer:
 * network, TLS, oversized body) with e set.  Clear r after use.
 */
int		 acme_http_get(struct acme_http *, const char *url,
		    struct acme_http_resp *, struct acme_error *);
int		 acme_http_head(struct acme_http *, const char *url,
		    struct acme_http_resp *, struct acme_error *);
int		 acme_http_post(struct acme_http *, const char *url,
		    const char *jose, const char *accept,
		    struct acme_http_resp *, struct acme_error *);
void		 acme_http_resp_clear(struct acme_http_resp *);

#endif
