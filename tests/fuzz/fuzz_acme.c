/* SPDX-License-Identifier: ISC */
/*
 * Fuzz the parsers of what an ACME server sends: problem documents,
 * renewal information, dates, Retry-After and Link headers, and the
 * certificate chain.  The first byte picks the parser; each must stay in
 * bounds and produce a terminated, one-line message.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_parse.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static void
check_msg(const struct acme_error *e)
{
	CHECK(memchr(e->msg, '\0', sizeof(e->msg)) != NULL);
	CHECK(strchr(e->msg, '\n') == NULL);
	CHECK(memchr(e->type, '\0', sizeof(e->type)) != NULL);
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acme_problem_ctx	 ctx;
	struct acme_error	 e;
	struct acme_cert_info	 ci;
	char			*s, *l, err[256], line[128];
	time_t			 a, b;

	if (size < 1)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	memset(&ctx, 0, sizeof(ctx));
	memset(&e, 0, sizeof(e));
	switch (data[0] % 8) {
	case 0:
	case 1:
		ctx.step = (enum acme_step)(data[0] / 8 % 3);
		ctx.name = data[0] & 0x40 ? "app.example" : NULL;
		ctx.eab = data[0] & 0x80;
		acme_parse_problem(&ctx, (const char *)data + 1, size - 1,
		    data[0] & 0x10 ? 429 : 400, data[0] & 0x20 ? 60 : 0, &e);
		check_msg(&e);
		break;
	case 2:
		if (acme_parse_renewal_info((const char *)data + 1, size - 1,
		    &a, &b, err, sizeof(err)) == 0)
			CHECK(a <= b);
		break;
	case 3:
		(void)acme_parse_rfc3339(s);
		(void)acme_parse_retry_after(s, 1700000000);
		break;
	case 4:
		if ((l = acme_parse_link(s, data[0] & 0x8 ? "up" :
		    "alternate")) != NULL) {
			CHECK(strlen(l) < size);
			free(l);
		}
		break;
	case 5:
		memset(&ci, 0, sizeof(ci));
		if (acme_cert_info(s, &ci, err, sizeof(err)) == 0)
			CHECK(ci.nnames <= ACME_CERT_NAMES_MAX);
		acme_cert_info_clear(&ci);
		break;
	default:
		acme_parse_clean(line, sizeof(line), s);
		CHECK(strlen(line) < sizeof(line));
		CHECK(strchr(line, '\n') == NULL);
		break;
	}
	free(s);
	return 0;
}
