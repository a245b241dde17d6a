/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer entry for what ddns/ reads from outside, by the first byte
 * mod 3: TSIG key files (0), the server's answers to an update (1), its
 * answers to a query for an RRset (2).  No crash; a key that parses is
 * one ldns can sign with; a record read is in normal form.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ddns.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char	key_text[] = "key \"porch-key\" { algorithm "
    "hmac-sha256; secret \"SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizxcNDDp4g=\"; };";

static void
rrset(uint16_t type, const uint8_t *data, size_t len)
{
	static struct ddns_rrset set;
	char			 err[512], norm[DDNS_RDATA_MAX];
	size_t			 i;

	if (ddns_rrset_parse(data, len, "app.example.test", type, &set, err,
	    sizeof(err)) == -1) {
		if (set.n != 0)
			abort();
		return;
	}
	if (set.n > DDNS_RRSET_MAX)
		abort();
	for (i = 0; i < set.n; i++) {
		if (memchr(set.rdata[i], '\0', DDNS_RDATA_MAX) == NULL)
			abort();
		/* What was read compares equal to what we would write. */
		if (ddns_rdata_norm(type, set.rdata[i], norm,
		    sizeof(norm)) == -1 || strcmp(norm, set.rdata[i]) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct ddns_key	 key;
	static struct ddns_msg	*msg;
	struct ddns_change	 ch = { 0, "app.example.test", DDNS_A, 60,
	    "192.0.2.1" };
	struct ddns_result	 res;
	struct ddns_key		 k;
	struct ddns_msg		*m;
	char			 err[512];
	uint8_t			*buf;
	size_t			 wl;

	if (msg == NULL) {
		if (sodium_init() == -1 ||
		    ddns_key_parse(key_text, strlen(key_text), &key, err,
		    sizeof(err)) == -1 ||
		    (msg = ddns_msg_new("example.test", NULL, &ch, 1, &key,
		    err, sizeof(err))) == NULL)
			abort();
	}
	if (len == 0)
		return 0;
	if (data[0] % 3 == 2) {
		rrset(data[0] & 0x80 ? DDNS_AAAA : data[0] & 0x40 ?
		    DDNS_TXT : DDNS_A, data + 1, len - 1);
		return 0;
	}
	if (data[0] % 3 == 0) {
		if (ddns_key_parse((const char *)data + 1, len - 1, &k, err,
		    sizeof(err)) == 0) {
			if (k.name[strlen(k.name) - 1] != '.' ||
			    strncmp(k.alg, "hmac-sha", 8) != 0)
				abort();
			/* A key that parses must sign. */
			if ((m = ddns_msg_new("example.test", NULL, &ch, 1, &k,
			    err, sizeof(err))) == NULL)
				abort();
			ddns_msg_free(m);
		} else if (strstr(err, "tsig-keygen") == NULL)
			abort();
		return 0;
	}
	/* The answer carries our id (random per run), else it is
	 * dropped before anything else is read. */
	if ((buf = malloc(len - 1 + 1)) == NULL)
		abort();
	memcpy(buf, data + 1, len - 1);
	if (len - 1 >= 2)
		memcpy(buf, ddns_msg_wire(msg, &wl), 2);
	if (ddns_msg_reply(msg, buf, len - 1, &key, &res) == 0) {
		/* An answer to this update: it never says OK unsigned. */
		if (res.status == DDNS_OK && res.rcode != 0)
			abort();
		if (res.text[0] == '\0' && !res.truncated)
			abort();
	}
	free(buf);
	return 0;
}
