/* SPDX-License-Identifier: ISC */
/*
 * porchctl's one HTTP client for the admin API of both daemons (the
 * gateway's /status, the agent's /status and POST /acme/...): libcurl
 * with a connect timeout and a total deadline, so a listener that
 * accepts and never answers, or an address that drops SYNs, costs
 * seconds, not forever.  curl's Host header is the host:port of the
 * URL, which admin_check accepts (an IP literal or localhost with the
 * admin port).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ctl.h"

#define CTL_ADMIN_MAX		(4 * 1024 * 1024)	/* a big /status */
#define CTL_ADMIN_CONNECT_MS	5000L
#define CTL_ADMIN_TIMEOUT_MS	10000L

static size_t
ctl_admin_body(char *data, size_t size, size_t n, void *arg)
{
	struct ctl_answer	*a = arg;
	char			*p;

	if (a->len + size * n > CTL_ADMIN_MAX) {
		a->too_large = 1;
		return 0;
	}
	if ((p = realloc(a->body, a->len + size * n + 1)) == NULL)
		return 0;
	memcpy(p + a->len, data, size * n);
	a->body = p;
	a->len += size * n;
	p[a->len] = '\0';
	return size * n;
}

/* "Porch-Order: N": the id of the order the agent's answer is about. */
static size_t
ctl_admin_header(char *data, size_t size, size_t n, void *arg)
{
	struct ctl_answer	*a = arg;
	const char		*name = "Porch-Order:";
	char			 v[32], *end;
	size_t			 len = size * n, k = strlen(name);

	if (len > k && len - k < sizeof(v) && strncasecmp(data, name,
	    k) == 0) {
		memcpy(v, data + k, len - k);
		v[len - k] = '\0';
		a->order = strtoull(v, &end, 10);
		if (end == v || strspn(end, " \t\r\n") != strlen(end))
			a->order = 0;
	}
	return len;
}

int
ctl_admin_request(const char *addr, const char *path, const char *secret,
    struct ctl_answer *a, char *err, size_t errlen)
{
	struct curl_slist	*hdrs = NULL;
	CURL			*c;
	CURLcode		 rc;
	char			 url[512], auth[128];

	memset(a, 0, sizeof(*a));
	if ((size_t)snprintf(url, sizeof(url), "http://%s%s", addr, path) >=
	    sizeof(url)) {
		snprintf(err, errlen, "admin address too long");
		return -1;
	}
	if ((c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	/* The admin listener is local: never through an http_proxy. */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CTL_ADMIN_CONNECT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, CTL_ADMIN_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_admin_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ctl_admin_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	if (secret != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    secret);
		hdrs = curl_slist_append(NULL, auth);
		explicit_bzero(auth, sizeof(auth));
		if (hdrs == NULL) {
			snprintf(err, errlen, "out of memory");
			curl_easy_cleanup(c);
			return -1;
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_cleanup(c);
	if (hdrs != NULL) {
		/* The secret's copy in the list: gone before it is freed. */
		explicit_bzero(hdrs->data, strlen(hdrs->data));
		curl_slist_free_all(hdrs);
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", a->too_large ? "answer too large" :
		    curl_easy_strerror(rc));
		ctl_answer_free(a);
		return -1;
	}
	return 0;
}

void
ctl_answer_free(struct ctl_answer *a)
{
	free(a->body);
	a->body = NULL;
	a->len = 0;
}
