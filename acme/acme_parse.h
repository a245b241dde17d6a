/*
 * acme_parse.h: the pure parsers of what an ACME CA sends (problem
 * documents, dates, renewal information, header values).  No I/O: the
 * protocol (acme.c) and the transport (acme_http.c) call them, and the
 * unit tests and the fuzzer link them alone.
 */
#ifndef PORCH_ACME_PARSE_H
#define PORCH_ACME_PARSE_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include "acme.h"

#define ACME_URN	"urn:ietf:params:acme:error:"

struct json_t;

/* What a request was for, so that a problem reads in context. */
enum acme_step {
	ACME_STEP_REQUEST = 0,	/* anything else */
	ACME_STEP_ACCOUNT,	/* newAccount */
	ACME_STEP_CHALLENGE,	/* a challenge's validation */
};

struct acme_problem_ctx {
	enum acme_step	 step;
	const char	*what;	/* e.g. "the new order"; NULL: "the request" */
	const char	*name;	/* the identifier concerned, or NULL */
	enum acme_chal	 chal;	/* ACME_STEP_CHALLENGE: which one */
	int		 eab;	/* ACME_STEP_ACCOUNT: a binding was sent */
};

/*
 * An RFC 7807 problem document (application/problem+json) answered with
 * HTTP status (0: none, e.g. a challenge's error member) into e: kind,
 * type, retry_after and a one-line msg saying what to check.  A body
 * that is not a problem still yields a message from the status.
 */
void		 acme_parse_problem(const struct acme_problem_ctx *,
		    const char *body, size_t len, int status,
		    unsigned retry_after, struct acme_error *);
/* The same for a document already parsed (doc may be NULL). */
void		 acme_parse_problem_json(const struct acme_problem_ctx *,
		    struct json_t *doc, int status, unsigned retry_after,
		    struct acme_error *);

/* An RFC 3339 date-time ("2025-01-02T03:04:05Z", "...+02:00"); -1. */
time_t		 acme_parse_rfc3339(const char *);

/* A renewalInfo answer's suggestedWindow.  0, or -1 with err. */
int		 acme_parse_renewal_info(const char *body, size_t len,
		    time_t *start, time_t *end, char *err, size_t errlen);

/* Retry-After as delta-seconds or an HTTP date after now; 0: none. */
unsigned	 acme_parse_retry_after(const char *, time_t now);
/*
 * The URL of the first link with relation rel in one Link header value
 * ("<url>;rel=\"up\", <url2>;rel=alternate"); caller frees, NULL: none.
 */
char		*acme_parse_link(const char *value, const char *rel);
/* src as one printable line (log_escape), truncated; returns dst. */
char		*acme_parse_clean(char *dst, size_t len, const char *src);

/* o[key] if it is a string of 1..max printable bytes, else NULL. */
const char	*acme_parse_jstr(struct json_t *o, const char *key, size_t max);

/* A fresh e of kind with a formatted message (nothing left over). */
void		 acme_parse_verr(struct acme_error *, enum acme_err_kind,
		    const char *fmt, va_list)
		    __attribute__((format(printf, 3, 0)));

#endif
